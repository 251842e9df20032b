//! Compiles MEC traffic rules into PFCP (TS 29.244) N4 sessions: [`compile`] turns an
//! application instance's rules into PDRs and FARs, [`pfcp`] encodes and decodes the messages
//! that carry them, [`n4`] drives a UPF over N4 (association, heartbeats and restart
//! recovery, one session per application instance), and [`upgw`] turns the same rules into
//! nftables and policy routing for an inline Linux gateway where there is no UPF.

pub mod compile;
pub mod n4;
pub mod pfcp;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod upgw;
