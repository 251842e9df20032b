//! PFCP information elements (TS 29.244 clause 8): a type-length-value tree whose grouped IEs
//! hold IEs, with constructors and readers for the IEs the compiler and node procedures use.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::PfcpError;

/// IE types (TS 29.244 table 8.1.2-1) used here.
#[allow(missing_docs)]
pub mod types {
    pub const CREATE_PDR: u16 = 1;
    pub const PDI: u16 = 2;
    pub const CREATE_FAR: u16 = 3;
    pub const FORWARDING_PARAMETERS: u16 = 4;
    pub const DUPLICATING_PARAMETERS: u16 = 5;
    pub const CREATE_QER: u16 = 7;
    pub const UPDATE_PDR: u16 = 9;
    pub const UPDATE_FAR: u16 = 10;
    pub const UPDATE_FORWARDING_PARAMETERS: u16 = 11;
    pub const UPDATE_QER: u16 = 14;
    pub const REMOVE_PDR: u16 = 15;
    pub const REMOVE_FAR: u16 = 16;
    pub const REMOVE_QER: u16 = 18;
    pub const CAUSE: u16 = 19;
    pub const SOURCE_INTERFACE: u16 = 20;
    pub const NETWORK_INSTANCE: u16 = 22;
    pub const SDF_FILTER: u16 = 23;
    pub const PRECEDENCE: u16 = 29;
    pub const DESTINATION_INTERFACE: u16 = 42;
    pub const APPLY_ACTION: u16 = 44;
    pub const PDR_ID: u16 = 56;
    pub const F_SEID: u16 = 57;
    pub const NODE_ID: u16 = 60;
    pub const OUTER_HEADER_CREATION: u16 = 84;
    pub const RECOVERY_TIME_STAMP: u16 = 96;
    pub const FAR_ID: u16 = 108;
    pub const UPDATE_DUPLICATING_PARAMETERS: u16 = 105;
}

/// Whether IEs of `ie_type` contain IEs.
fn grouped(ie_type: u16) -> bool {
    use types::*;
    matches!(
        ie_type,
        CREATE_PDR
            | PDI
            | CREATE_FAR
            | FORWARDING_PARAMETERS
            | DUPLICATING_PARAMETERS
            | CREATE_QER
            | UPDATE_PDR
            | UPDATE_FAR
            | UPDATE_FORWARDING_PARAMETERS
            | UPDATE_QER
            | REMOVE_PDR
            | REMOVE_FAR
            | REMOVE_QER
            | UPDATE_DUPLICATING_PARAMETERS
    )
}

/// Deepest nesting of grouped IEs a decoder accepts.
const MAX_DEPTH: usize = 8;

/// The value of an IE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IeValue {
    /// A grouped IE's IEs.
    Grouped(Vec<Ie>),
    /// Any other IE's octets.
    Octets(Vec<u8>),
}

/// One information element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ie {
    /// IE type.
    pub ie_type: u16,
    /// Value.
    pub value: IeValue,
}

/// Interface values of Source/Destination Interface (TS 29.244 8.2.2, 8.2.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Interface {
    /// Access (uplink from the UE).
    Access = 0,
    /// Core.
    Core = 1,
    /// SGi-LAN / N6-LAN: a local data network such as the edge applications'.
    SgiLanN6Lan = 2,
    /// CP function.
    CpFunction = 3,
    /// LI function.
    LiFunction = 4,
}

/// Apply Action flags (TS 29.244 8.2.26, first octet).
pub mod apply_action {
    /// Drop.
    pub const DROP: u8 = 0x01;
    /// Forward.
    pub const FORW: u8 = 0x02;
    /// Buffer.
    pub const BUFF: u8 = 0x04;
    /// Notify the CP function.
    pub const NOCP: u8 = 0x08;
    /// Duplicate.
    pub const DUPL: u8 = 0x10;
}

/// Outer Header Creation descriptions (TS 29.244 8.2.56, first octet).
pub mod outer_header {
    /// GTP-U/UDP/IPv4.
    pub const GTPU_UDP_IPV4: u8 = 0x01;
    /// GTP-U/UDP/IPv6.
    pub const GTPU_UDP_IPV6: u8 = 0x02;
    /// UDP/IPv4.
    pub const UDP_IPV4: u8 = 0x04;
    /// UDP/IPv6.
    pub const UDP_IPV6: u8 = 0x08;
    /// IPv4.
    pub const IPV4: u8 = 0x10;
    /// IPv6.
    pub const IPV6: u8 = 0x20;
}

/// An IP address of an Outer Header Creation or F-SEID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// IPv4.
    V4(Ipv4Addr),
    /// IPv6.
    V6(Ipv6Addr),
}

impl Ie {
    /// An IE with raw octets.
    pub fn octets(ie_type: u16, value: impl Into<Vec<u8>>) -> Self {
        Self {
            ie_type,
            value: IeValue::Octets(value.into()),
        }
    }

    /// A grouped IE.
    pub fn grouped(ie_type: u16, ies: Vec<Ie>) -> Self {
        Self {
            ie_type,
            value: IeValue::Grouped(ies),
        }
    }

    /// Node ID of an IPv4 address.
    pub fn node_id(addr: Address) -> Self {
        let mut v = Vec::with_capacity(17);
        match addr {
            Address::V4(a) => {
                v.push(0);
                v.extend(a.octets());
            }
            Address::V6(a) => {
                v.push(1);
                v.extend(a.octets());
            }
        }
        Self::octets(types::NODE_ID, v)
    }

    /// Cause.
    pub fn cause(cause: u8) -> Self {
        Self::octets(types::CAUSE, [cause])
    }

    /// Recovery Time Stamp (seconds since the NTP epoch, 1900).
    pub fn recovery_time_stamp(ntp_seconds: u32) -> Self {
        Self::octets(types::RECOVERY_TIME_STAMP, ntp_seconds.to_be_bytes())
    }

    /// F-SEID.
    pub fn f_seid(seid: u64, addr: Address) -> Self {
        let mut v = Vec::with_capacity(25);
        match addr {
            Address::V4(a) => {
                v.push(0x02);
                v.extend(seid.to_be_bytes());
                v.extend(a.octets());
            }
            Address::V6(a) => {
                v.push(0x01);
                v.extend(seid.to_be_bytes());
                v.extend(a.octets());
            }
        }
        Self::octets(types::F_SEID, v)
    }

    /// PDR ID.
    pub fn pdr_id(id: u16) -> Self {
        Self::octets(types::PDR_ID, id.to_be_bytes())
    }

    /// FAR ID.
    pub fn far_id(id: u32) -> Self {
        Self::octets(types::FAR_ID, id.to_be_bytes())
    }

    /// Precedence (lower values take precedence).
    pub fn precedence(value: u32) -> Self {
        Self::octets(types::PRECEDENCE, value.to_be_bytes())
    }

    /// Source Interface.
    pub fn source_interface(i: Interface) -> Self {
        Self::octets(types::SOURCE_INTERFACE, [i as u8])
    }

    /// Destination Interface.
    pub fn destination_interface(i: Interface) -> Self {
        Self::octets(types::DESTINATION_INTERFACE, [i as u8])
    }

    /// Network Instance, encoded as a DNN (length-prefixed labels, TS 23.003 9.1).
    pub fn network_instance(name: &str) -> Self {
        let mut v = Vec::with_capacity(name.len() + 1);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            let label = &label.as_bytes()[..label.len().min(63)];
            v.push(label.len() as u8);
            v.extend(label);
        }
        Self::octets(types::NETWORK_INSTANCE, v)
    }

    /// SDF Filter with a flow description (IPFilterRule of RFC 6733), optionally a ToS/Traffic
    /// Class match (value, mask) and an SDF filter id.
    pub fn sdf_filter(flow: Option<&str>, tos: Option<(u8, u8)>, filter_id: Option<u32>) -> Self {
        let mut flags = 0u8;
        let mut body = Vec::new();
        if let Some(flow) = flow {
            flags |= 0x01; // FD
            let flow = &flow.as_bytes()[..flow.len().min(u16::MAX as usize)];
            body.extend((flow.len() as u16).to_be_bytes());
            body.extend(flow);
        }
        if let Some((value, mask)) = tos {
            flags |= 0x02; // TTC
            body.extend([value, mask]);
        }
        if let Some(id) = filter_id {
            flags |= 0x10; // BID
            body.extend(id.to_be_bytes());
        }
        let mut v = vec![flags, 0];
        v.extend(body);
        Self::octets(types::SDF_FILTER, v)
    }

    /// Apply Action (see [`apply_action`]).
    pub fn apply_action(flags: u8) -> Self {
        Self::octets(types::APPLY_ACTION, [flags])
    }

    /// Outer Header Creation (see [`outer_header`]): a TEID for GTP-U, a port for UDP.
    pub fn outer_header_creation(
        description: u8,
        teid: Option<u32>,
        addr: Address,
        port: Option<u16>,
    ) -> Self {
        let mut v = vec![description, 0];
        if let Some(teid) = teid {
            v.extend(teid.to_be_bytes());
        }
        match addr {
            Address::V4(a) => v.extend(a.octets()),
            Address::V6(a) => v.extend(a.octets()),
        }
        if let Some(port) = port {
            v.extend(port.to_be_bytes());
        }
        Self::octets(types::OUTER_HEADER_CREATION, v)
    }

    /// The IEs of a grouped IE (empty for others).
    pub fn children(&self) -> &[Ie] {
        match &self.value {
            IeValue::Grouped(ies) => ies,
            IeValue::Octets(_) => &[],
        }
    }

    /// The octets of a non-grouped IE (empty for grouped ones).
    pub fn bytes(&self) -> &[u8] {
        match &self.value {
            IeValue::Octets(v) => v,
            IeValue::Grouped(_) => &[],
        }
    }

    /// The first child IE of `ie_type`.
    pub fn find(&self, ie_type: u16) -> Option<&Ie> {
        find(self.children(), ie_type)
    }

    /// The value as a big-endian unsigned integer of up to 8 octets.
    pub fn uint(&self) -> Option<u64> {
        let b = self.bytes();
        (!b.is_empty() && b.len() <= 8)
            .then(|| b.iter().fold(0u64, |n, &x| (n << 8) | u64::from(x)))
    }

    /// The SEID of an F-SEID.
    pub fn seid(&self) -> Option<u64> {
        let b = self.bytes();
        (self.ie_type == types::F_SEID && b.len() >= 9)
            .then(|| u64::from_be_bytes([b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]]))
    }

    /// Encoded length (header included).
    pub fn encoded_len(&self) -> usize {
        4 + match &self.value {
            IeValue::Octets(v) => v.len(),
            IeValue::Grouped(ies) => ies.iter().map(Ie::encoded_len).sum(),
        }
    }

    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.ie_type.to_be_bytes());
        let len = self.encoded_len() - 4;
        out.extend((len.min(u16::MAX as usize) as u16).to_be_bytes());
        match &self.value {
            IeValue::Octets(v) => out.extend(v),
            IeValue::Grouped(ies) => ies.iter().for_each(|ie| ie.encode(out)),
        }
    }
}

/// The first IE of `ie_type` in `ies`.
pub fn find(ies: &[Ie], ie_type: u16) -> Option<&Ie> {
    ies.iter().find(|ie| ie.ie_type == ie_type)
}

/// Decodes a sequence of IEs filling `buf`.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Ie>, PfcpError> {
    decode_at(buf, 0)
}

fn decode_at(mut buf: &[u8], depth: usize) -> Result<Vec<Ie>, PfcpError> {
    if depth > MAX_DEPTH {
        return Err(PfcpError::Malformed("grouped IEs nested too deep".into()));
    }
    let mut ies = Vec::new();
    while !buf.is_empty() {
        if buf.len() < 4 {
            return Err(PfcpError::Malformed(format!(
                "{} trailing octets after the last IE",
                buf.len()
            )));
        }
        let ie_type = u16::from_be_bytes([buf[0], buf[1]]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let Some(value) = buf.get(4..4 + len) else {
            return Err(PfcpError::Malformed(format!(
                "IE {ie_type} claims {len} octets, {} remain",
                buf.len() - 4
            )));
        };
        let value = if grouped(ie_type) {
            IeValue::Grouped(decode_at(value, depth + 1)?)
        } else {
            IeValue::Octets(value.to_vec())
        };
        ies.push(Ie { ie_type, value });
        buf = &buf[4 + len..];
    }
    Ok(ies)
}
