//! Compiles MEC traffic rules into PFCP (TS 29.244) N4 sessions: [`compile`] turns an
//! application instance's rules into PDRs and FARs, [`pfcp`] encodes and decodes the messages
//! that carry them.

pub mod compile;
pub mod pfcp;
