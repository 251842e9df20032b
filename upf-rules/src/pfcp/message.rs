//! PFCP messages (TS 29.244 clause 7): the header and the IEs of a message.

use super::PfcpError;
use super::ie::{IeRef, Ies};

/// Message types (TS 29.244 table 7.3-1) used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum MessageType {
    HeartbeatRequest = 1,
    HeartbeatResponse = 2,
    PfdManagementRequest = 3,
    PfdManagementResponse = 4,
    AssociationSetupRequest = 5,
    AssociationSetupResponse = 6,
    AssociationReleaseRequest = 9,
    AssociationReleaseResponse = 10,
    SessionEstablishmentRequest = 50,
    SessionEstablishmentResponse = 51,
    SessionModificationRequest = 52,
    SessionModificationResponse = 53,
    SessionDeletionRequest = 54,
    SessionDeletionResponse = 55,
}

impl MessageType {
    /// The type of a message type value.
    pub fn from_u8(value: u8) -> Option<Self> {
        use MessageType::*;
        [
            HeartbeatRequest,
            HeartbeatResponse,
            PfdManagementRequest,
            PfdManagementResponse,
            AssociationSetupRequest,
            AssociationSetupResponse,
            AssociationReleaseRequest,
            AssociationReleaseResponse,
            SessionEstablishmentRequest,
            SessionEstablishmentResponse,
            SessionModificationRequest,
            SessionModificationResponse,
            SessionDeletionRequest,
            SessionDeletionResponse,
        ]
        .into_iter()
        .find(|t| *t as u8 == value)
    }

    /// Whether messages of this type carry a SEID (session messages).
    pub fn is_session(self) -> bool {
        self as u8 >= 50
    }

    /// Whether this is a request.
    pub fn is_request(self) -> bool {
        use MessageType::*;
        matches!(
            self,
            HeartbeatRequest
                | PfdManagementRequest
                | AssociationSetupRequest
                | AssociationReleaseRequest
                | SessionEstablishmentRequest
                | SessionModificationRequest
                | SessionDeletionRequest
        )
    }

    /// The response type of a request.
    pub fn response(self) -> Option<Self> {
        self.is_request()
            .then(|| Self::from_u8(self as u8 + 1))
            .flatten()
    }
}

/// PFCP Cause values (TS 29.244 8.2.1) used here.
pub mod cause {
    /// Request accepted.
    pub const REQUEST_ACCEPTED: u8 = 1;
    /// Request rejected (reason not specified).
    pub const REQUEST_REJECTED: u8 = 64;
    /// Session context not found.
    pub const SESSION_CONTEXT_NOT_FOUND: u8 = 65;
    /// Mandatory IE missing.
    pub const MANDATORY_IE_MISSING: u8 = 66;
    /// No established PFCP association.
    pub const NO_ESTABLISHED_ASSOCIATION: u8 = 72;
}

/// Largest PFCP message accepted (a UDP datagram).
pub const MAX_MESSAGE: usize = 65_507;

/// A PFCP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Type.
    pub message_type: MessageType,
    /// SEID of a session message (the receiver's; 0 when it has none yet).
    pub seid: Option<u64>,
    /// Sequence number (24 bits).
    pub sequence: u32,
    /// IEs.
    pub ies: Ies,
}

impl Message {
    /// A message; session types get a SEID (0 until one is known).
    pub fn new(message_type: MessageType, seid: u64, sequence: u32, ies: Ies) -> Self {
        Self {
            message_type,
            seid: message_type.is_session().then_some(seid),
            sequence: sequence & 0x00ff_ffff,
            ies,
        }
    }

    /// The first IE of `ie_type`.
    pub fn find(&self, ie_type: u16) -> Option<IeRef<'_>> {
        self.ies.find(ie_type)
    }

    /// The Cause of a response.
    pub fn cause(&self) -> Option<u8> {
        self.find(super::ie::types::CAUSE)
            .and_then(|c| c.bytes().first().copied())
    }

    /// Encodes the message; refuses one longer than [`MAX_MESSAGE`] or holding an IE too long
    /// for its 16-bit length.
    pub fn encode(&self) -> Result<Vec<u8>, PfcpError> {
        let header = if self.seid.is_some() { 16 } else { 8 };
        let total = header + self.ies.as_bytes().len();
        if total > MAX_MESSAGE || self.ies.is_too_long() {
            return Err(PfcpError::TooLong);
        }
        let mut out = Vec::with_capacity(total);
        out.push((1 << 5) | u8::from(self.seid.is_some()));
        out.push(self.message_type as u8);
        out.extend_from_slice(&((total - 4) as u16).to_be_bytes());
        if let Some(seid) = self.seid {
            out.extend_from_slice(&seid.to_be_bytes());
        }
        let [_, s0, s1, s2] = self.sequence.to_be_bytes();
        out.extend_from_slice(&[s0, s1, s2, 0]);
        out.extend_from_slice(self.ies.as_bytes());
        Ok(out)
    }

    /// Decodes one message filling `buf`.
    pub fn decode(buf: &[u8]) -> Result<Self, PfcpError> {
        if buf.len() < 8 {
            return Err(PfcpError::Malformed("shorter than a PFCP header".into()));
        }
        if buf.len() > MAX_MESSAGE {
            return Err(PfcpError::Malformed("longer than a UDP datagram".into()));
        }
        let version = buf[0] >> 5;
        if version != 1 {
            return Err(PfcpError::UnsupportedVersion(version));
        }
        let has_seid = buf[0] & 0x01 == 1;
        let message_type =
            MessageType::from_u8(buf[1]).ok_or(PfcpError::UnknownMessageType(buf[1]))?;
        let length = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if length + 4 != buf.len() {
            return Err(PfcpError::Malformed(format!(
                "header says {} octets, datagram has {}",
                length + 4,
                buf.len()
            )));
        }
        let (seid, rest) = if has_seid {
            if buf.len() < 16 {
                return Err(PfcpError::Malformed("SEID header truncated".into()));
            }
            let mut seid = [0u8; 8];
            seid.copy_from_slice(&buf[4..12]);
            (Some(u64::from_be_bytes(seid)), &buf[12..])
        } else {
            (None, &buf[4..])
        };
        if seid.is_some() != message_type.is_session() {
            return Err(PfcpError::Malformed(format!(
                "S flag {} on a {message_type:?}",
                u8::from(has_seid)
            )));
        }
        let [s0, s1, s2, _, ies @ ..] = rest else {
            return Err(PfcpError::Malformed("header truncated".into()));
        };
        Ok(Self {
            message_type,
            seid,
            sequence: u32::from_be_bytes([0, *s0, *s1, *s2]),
            ies: Ies::decode(ies)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pfcp::ie::{Address, types};

    fn remove_pdr(id: u16) -> Ies {
        let mut ies = Ies::new();
        ies.grouped(types::REMOVE_PDR, |r| {
            r.pdr_id(id);
        });
        ies
    }

    #[test]
    fn round_trips_and_header_fields() {
        let m = Message::new(
            MessageType::SessionModificationRequest,
            42,
            0x0123_4567,
            remove_pdr(3),
        );
        let bytes = m.encode().unwrap();
        assert_eq!(bytes[0], 0x21, "version 1, S flag");
        assert_eq!(&bytes[4..12], &42u64.to_be_bytes());
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back.sequence, 0x23_4567, "24-bit sequence");
        assert_eq!(back.ies, m.ies);
        let hb = Message::new(MessageType::HeartbeatRequest, 9, 1, Ies::new());
        assert_eq!(hb.seid, None, "node messages have no SEID");
        assert_eq!(hb.encode().unwrap().len(), 8);
        assert_eq!(
            MessageType::SessionEstablishmentRequest.response(),
            Some(MessageType::SessionEstablishmentResponse)
        );
    }

    #[test]
    fn a_message_beyond_a_datagram_is_refused() {
        let mut ies = Ies::new();
        for i in 0..300 {
            ies.grouped(types::CREATE_PDR, |pdr| {
                pdr.pdr_id(i).grouped(types::PDI, |pdi| {
                    pdi.sdf_filter(
                        Some(&"permit out ip from any to any ".repeat(8)),
                        None,
                        None,
                        None,
                    );
                });
            });
        }
        assert!(!ies.is_too_long(), "each IE fits its length");
        let m = Message::new(MessageType::SessionEstablishmentRequest, 0, 1, ies);
        assert_eq!(m.encode(), Err(PfcpError::TooLong));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut node = Ies::new();
        node.node_id(Address::V4([10, 0, 0, 1].into()));
        let good = Message::new(MessageType::AssociationSetupRequest, 0, 1, node)
            .encode()
            .unwrap();
        for len in 0..good.len() {
            assert!(Message::decode(&good[..len]).is_err(), "truncated to {len}");
        }
        let mut v2 = good.clone();
        v2[0] = 0x40;
        assert_eq!(Message::decode(&v2), Err(PfcpError::UnsupportedVersion(2)));
        let mut unknown = good.clone();
        unknown[1] = 200;
        assert_eq!(
            Message::decode(&unknown),
            Err(PfcpError::UnknownMessageType(200))
        );
        let mut s_flag = good.clone();
        s_flag[0] |= 1;
        assert!(Message::decode(&s_flag).is_err());
        // an IE longer than the message
        let mut long_ie = good;
        long_ie[7 + 4] = 0xff;
        assert!(Message::decode(&long_ie).is_err());
        // grouped IEs nested beyond the limit
        let mut deep = remove_pdr(1);
        for _ in 0..20 {
            let inner = deep;
            deep = Ies::new();
            deep.grouped(types::CREATE_PDR, |g| {
                g.append(&inner);
            });
        }
        let deep = Message::new(MessageType::SessionEstablishmentRequest, 0, 1, deep);
        assert!(matches!(
            Message::decode(&deep.encode().unwrap()),
            Err(PfcpError::Malformed(_))
        ));
    }
}
