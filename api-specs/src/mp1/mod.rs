//! ETSI GS MEC 011 v3.1.1 (Mp1) data types: service management and application support.

pub mod app_support;
pub mod provisioning;
pub mod service_mgmt;
pub mod workload;
