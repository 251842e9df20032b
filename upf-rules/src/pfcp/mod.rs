//! A PFCP (TS 29.244) codec for the messages and IEs of the N4 procedures a MEC platform
//! drives: heartbeat, association setup/release, session establishment/modification/deletion.

pub mod ie;
pub mod message;

/// A PFCP decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PfcpError {
    /// Not PFCP version 1.
    #[error("unsupported PFCP version {0}")]
    UnsupportedVersion(u8),
    /// A message type this codec does not handle.
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// Lengths or fields do not add up.
    #[error("malformed PFCP: {0}")]
    Malformed(String),
    /// A message to encode does not fit one UDP datagram (or one of its IEs a 16-bit length).
    #[error("PFCP message too long for one datagram")]
    TooLong,
}
