//! ETSI GS MEC 010-2 v3.1.1 (Mm1) data types.

pub mod app_lcm;
pub mod app_pkgm;
pub mod appd;
