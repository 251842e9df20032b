//! PFCP information elements (TS 29.244 clause 8), kept in their encoding.
//!
//! An [`Ies`] is one buffer of type-length-value IEs. Constructors append to it; a grouped IE
//! is opened, its IEs appended by a closure, and its length filled in when the closure
//! returns. Decoding checks the whole tree of a buffer once (every length, grouped IEs to
//! [`MAX_DEPTH`]) and copies it; [`IeRef`]s then read IEs in place. No IE is an allocation of
//! its own, so building, encoding and decoding a message are each one pass over its octets.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    pub const APPLICATION_ID: u16 = 24;
    pub const PRECEDENCE: u16 = 29;
    pub const DESTINATION_INTERFACE: u16 = 42;
    pub const APPLY_ACTION: u16 = 44;
    pub const PDR_ID: u16 = 56;
    pub const APPLICATION_IDS_PFDS: u16 = 58;
    pub const PFD_CONTEXT: u16 = 59;
    pub const F_SEID: u16 = 57;
    pub const NODE_ID: u16 = 60;
    pub const PFD_CONTENTS: u16 = 61;
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
            | APPLICATION_IDS_PFDS
            | PFD_CONTEXT
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
pub const MAX_DEPTH: usize = 8;

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

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(a),
            IpAddr::V6(a) => Self::V6(a),
        }
    }
}

/// A sequence of encoded IEs: the body of a message or of a grouped IE under construction.
///
/// Equal sequences have equal octets. An IE whose value does not fit PFCP's 16-bit length is
/// left out and marks the sequence as too long, which [`Message::encode`] refuses.
///
/// [`Message::encode`]: super::message::Message::encode
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Ies {
    buf: Vec<u8>,
    too_long: bool,
}

impl fmt::Debug for Ies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Ies {
    /// An empty sequence.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty sequence with room for `octets` octets.
    pub fn with_capacity(octets: usize) -> Self {
        Self {
            buf: Vec::with_capacity(octets),
            too_long: false,
        }
    }

    /// The IEs of `buf`, checked down to the last grouped IE.
    pub fn decode(buf: &[u8]) -> Result<Self, PfcpError> {
        check(buf, 0)?;
        Ok(Self {
            buf: buf.to_vec(),
            too_long: false,
        })
    }

    /// The encoded IEs.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Whether there are no IEs.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether an IE was left out for not fitting a 16-bit length.
    pub fn is_too_long(&self) -> bool {
        self.too_long
    }

    /// The IEs, in order.
    pub fn iter(&self) -> IeIter<'_> {
        IeIter { rest: &self.buf }
    }

    /// The first IE of `ie_type`.
    pub fn find(&self, ie_type: u16) -> Option<IeRef<'_>> {
        self.iter().find(|ie| ie.ie_type == ie_type)
    }

    /// Appends the IEs of `other`.
    pub fn append(&mut self, other: &Ies) -> &mut Self {
        self.buf.extend_from_slice(&other.buf);
        self.too_long |= other.too_long;
        self
    }

    /// Appends an IE with the octets `value`.
    pub fn octets(&mut self, ie_type: u16, value: &[u8]) -> &mut Self {
        match u16::try_from(value.len()) {
            Ok(len) => {
                self.buf.extend_from_slice(&ie_type.to_be_bytes());
                self.buf.extend_from_slice(&len.to_be_bytes());
                self.buf.extend_from_slice(value);
            }
            Err(_) => self.too_long = true,
        }
        self
    }

    /// Appends a grouped IE whose IEs `children` appends.
    pub fn grouped(&mut self, ie_type: u16, children: impl FnOnce(&mut Self)) -> &mut Self {
        let start = self.open(ie_type);
        children(self);
        self.close(start)
    }

    /// Starts an IE of `ie_type` whose value the caller appends to `buf`; returns where it
    /// starts, for [`Self::close`].
    fn open(&mut self, ie_type: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&ie_type.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        start
    }

    /// Fills in the length of the IE opened at `start`, or drops it when it is too long.
    fn close(&mut self, start: usize) -> &mut Self {
        let len = self.buf.len().saturating_sub(start + 4);
        match (u16::try_from(len), self.buf.get_mut(start + 2..start + 4)) {
            (Ok(len), Some(slot)) => slot.copy_from_slice(&len.to_be_bytes()),
            _ => {
                self.buf.truncate(start);
                self.too_long = true;
            }
        }
        self
    }

    /// Node ID of an IP address.
    pub fn node_id(&mut self, addr: Address) -> &mut Self {
        match addr {
            Address::V4(a) => {
                let [a, b, c, d] = a.octets();
                self.octets(types::NODE_ID, &[0, a, b, c, d])
            }
            Address::V6(a) => {
                let start = self.open(types::NODE_ID);
                self.buf.push(1);
                self.buf.extend_from_slice(&a.octets());
                self.close(start)
            }
        }
    }

    /// Cause.
    pub fn cause(&mut self, cause: u8) -> &mut Self {
        self.octets(types::CAUSE, &[cause])
    }

    /// Recovery Time Stamp (seconds since the NTP epoch, 1900).
    pub fn recovery_time_stamp(&mut self, ntp_seconds: u32) -> &mut Self {
        self.octets(types::RECOVERY_TIME_STAMP, &ntp_seconds.to_be_bytes())
    }

    /// F-SEID.
    pub fn f_seid(&mut self, seid: u64, addr: Address) -> &mut Self {
        let start = self.open(types::F_SEID);
        self.buf.push(match addr {
            Address::V4(_) => 0x02,
            Address::V6(_) => 0x01,
        });
        self.buf.extend_from_slice(&seid.to_be_bytes());
        self.address(addr);
        self.close(start)
    }

    /// PDR ID.
    pub fn pdr_id(&mut self, id: u16) -> &mut Self {
        self.octets(types::PDR_ID, &id.to_be_bytes())
    }

    /// FAR ID.
    pub fn far_id(&mut self, id: u32) -> &mut Self {
        self.octets(types::FAR_ID, &id.to_be_bytes())
    }

    /// Precedence (lower values take precedence).
    pub fn precedence(&mut self, value: u32) -> &mut Self {
        self.octets(types::PRECEDENCE, &value.to_be_bytes())
    }

    /// Source Interface.
    pub fn source_interface(&mut self, i: Interface) -> &mut Self {
        self.octets(types::SOURCE_INTERFACE, &[i as u8])
    }

    /// Destination Interface.
    pub fn destination_interface(&mut self, i: Interface) -> &mut Self {
        self.octets(types::DESTINATION_INTERFACE, &[i as u8])
    }

    /// Network Instance, encoded as a DNN (length-prefixed labels, TS 23.003 9.1).
    pub fn network_instance(&mut self, name: &str) -> &mut Self {
        let start = self.open(types::NETWORK_INSTANCE);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            let label = label.as_bytes();
            let label = label.get(..63).unwrap_or(label);
            self.buf.push(label.len() as u8);
            self.buf.extend_from_slice(label);
        }
        self.close(start)
    }

    /// SDF Filter with a flow description (IPFilterRule of RFC 6733), optionally a ToS/Traffic
    /// Class match (value, mask), an IPv6 flow label (20 bits) and an SDF filter id.
    pub fn sdf_filter(
        &mut self,
        flow: Option<&str>,
        tos: Option<(u8, u8)>,
        flow_label: Option<u32>,
        filter_id: Option<u32>,
    ) -> &mut Self {
        let start = self.open(types::SDF_FILTER);
        let flags = u8::from(flow.is_some())
            | (u8::from(tos.is_some()) << 1)
            | (u8::from(flow_label.is_some()) << 3)
            | (u8::from(filter_id.is_some()) << 4);
        self.buf.extend_from_slice(&[flags, 0]);
        if let Some(flow) = flow {
            let flow = flow.as_bytes();
            let flow = flow.get(..usize::from(u16::MAX)).unwrap_or(flow);
            self.buf
                .extend_from_slice(&(flow.len() as u16).to_be_bytes());
            self.buf.extend_from_slice(flow);
        }
        if let Some((value, mask)) = tos {
            self.buf.extend_from_slice(&[value, mask]);
        }
        if let Some(label) = flow_label {
            self.buf
                .extend_from_slice(&(label & 0xf_ffff).to_be_bytes()[1..]);
        }
        if let Some(id) = filter_id {
            self.buf.extend_from_slice(&id.to_be_bytes());
        }
        self.close(start)
    }

    /// Application ID (an application whose packets the UP function detects by its PFDs).
    pub fn application_id(&mut self, id: &str) -> &mut Self {
        self.octets(types::APPLICATION_ID, id.as_bytes())
    }

    /// Application ID's PFDs: the application and one PFD context per URL (TS 29.244 7.4.3.1,
    /// PFD Contents with the URL flag).
    pub fn application_pfds(&mut self, id: &str, urls: &[String]) -> &mut Self {
        self.grouped(types::APPLICATION_IDS_PFDS, |app| {
            app.application_id(id);
            for url in urls {
                app.grouped(types::PFD_CONTEXT, |context| {
                    let start = context.open(types::PFD_CONTENTS);
                    let url = url.as_bytes();
                    let url = url.get(..usize::from(u16::MAX)).unwrap_or(url);
                    context.buf.extend_from_slice(&[0x02, 0]);
                    context
                        .buf
                        .extend_from_slice(&(url.len() as u16).to_be_bytes());
                    context.buf.extend_from_slice(url);
                    context.close(start);
                });
            }
        })
    }

    /// Apply Action (see [`apply_action`]).
    pub fn apply_action(&mut self, flags: u8) -> &mut Self {
        self.octets(types::APPLY_ACTION, &[flags])
    }

    /// Outer Header Creation (see [`outer_header`]): a TEID for GTP-U, a port for UDP.
    pub fn outer_header_creation(
        &mut self,
        description: u8,
        teid: Option<u32>,
        addr: Address,
        port: Option<u16>,
    ) -> &mut Self {
        let start = self.open(types::OUTER_HEADER_CREATION);
        self.buf.extend_from_slice(&[description, 0]);
        if let Some(teid) = teid {
            self.buf.extend_from_slice(&teid.to_be_bytes());
        }
        self.address(addr);
        if let Some(port) = port {
            self.buf.extend_from_slice(&port.to_be_bytes());
        }
        self.close(start)
    }

    fn address(&mut self, addr: Address) {
        match addr {
            Address::V4(a) => self.buf.extend_from_slice(&a.octets()),
            Address::V6(a) => self.buf.extend_from_slice(&a.octets()),
        }
    }
}

impl<'a> IntoIterator for &'a Ies {
    type Item = IeRef<'a>;
    type IntoIter = IeIter<'a>;

    fn into_iter(self) -> IeIter<'a> {
        self.iter()
    }
}

/// One IE, read in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IeRef<'a> {
    ie_type: u16,
    value: &'a [u8],
}

impl fmt::Debug for IeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Ie");
        d.field("ie_type", &self.ie_type);
        if self.is_grouped() {
            d.field("ies", &self.children().collect::<Vec<_>>());
        } else {
            d.field("value", &self.value);
        }
        d.finish()
    }
}

impl<'a> IeRef<'a> {
    /// IE type.
    pub fn ie_type(&self) -> u16 {
        self.ie_type
    }

    /// The value octets (a grouped IE's are its encoded IEs).
    pub fn bytes(&self) -> &'a [u8] {
        self.value
    }

    /// Whether the IE contains IEs.
    pub fn is_grouped(&self) -> bool {
        grouped(self.ie_type)
    }

    /// The IEs of a grouped IE (none for others).
    pub fn children(&self) -> IeIter<'a> {
        IeIter {
            rest: if self.is_grouped() { self.value } else { &[] },
        }
    }

    /// The first child IE of `ie_type`.
    pub fn find(&self, ie_type: u16) -> Option<IeRef<'a>> {
        self.children().find(|ie| ie.ie_type == ie_type)
    }

    /// The value of a non-grouped IE as a big-endian unsigned integer of up to 8 octets.
    pub fn uint(&self) -> Option<u64> {
        let b = self.value;
        (!self.is_grouped() && !b.is_empty() && b.len() <= 8)
            .then(|| b.iter().fold(0u64, |n, &x| (n << 8) | u64::from(x)))
    }

    /// The SEID of an F-SEID.
    pub fn seid(&self) -> Option<u64> {
        match self.value {
            [_, a, b, c, d, e, f, g, h, ..] if self.ie_type == types::F_SEID => {
                Some(u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]))
            }
            _ => None,
        }
    }
}

/// The IEs of a checked buffer, in order.
#[derive(Debug, Clone)]
pub struct IeIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for IeIter<'a> {
    type Item = IeRef<'a>;

    fn next(&mut self) -> Option<IeRef<'a>> {
        let (ie, rest) = split(self.rest)?;
        self.rest = rest;
        Some(ie)
    }
}

/// The first IE of `buf` and what follows it; `None` when `buf` does not start with a whole
/// IE (never for a checked buffer).
fn split(buf: &[u8]) -> Option<(IeRef<'_>, &[u8])> {
    let [t0, t1, l0, l1, rest @ ..] = buf else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*l0, *l1]));
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    let ie_type = u16::from_be_bytes([*t0, *t1]);
    Some((IeRef { ie_type, value }, rest))
}

/// Checks that `buf` is a sequence of whole IEs, grouped ones included, nested at most
/// [`MAX_DEPTH`] deep below `depth`.
fn check(mut buf: &[u8], depth: usize) -> Result<(), PfcpError> {
    if depth > MAX_DEPTH {
        return Err(PfcpError::Malformed("grouped IEs nested too deep".into()));
    }
    while !buf.is_empty() {
        let Some((ie, rest)) = split(buf) else {
            return Err(PfcpError::Malformed(match buf {
                [t0, t1, l0, l1, rest @ ..] => format!(
                    "IE {} claims {} octets, {} remain",
                    u16::from_be_bytes([*t0, *t1]),
                    u16::from_be_bytes([*l0, *l1]),
                    rest.len()
                ),
                _ => format!("{} trailing octets after the last IE", buf.len()),
            }));
        };
        if ie.is_grouped() {
            check(ie.value, depth + 1)?;
        }
        buf = rest;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_lengths_are_filled_in_and_read_back() {
        let mut ies = Ies::new();
        ies.node_id(Address::V4(Ipv4Addr::new(10, 0, 0, 1)))
            .grouped(types::CREATE_PDR, |pdr| {
                pdr.pdr_id(7).grouped(types::PDI, |pdi| {
                    pdi.source_interface(Interface::Access)
                        .network_instance("mec.edge");
                });
                pdr.far_id(9);
            });
        assert_eq!(
            &ies.as_bytes()[..9],
            [0, 60, 0, 5, 0, 10, 0, 0, 1],
            "Node ID: type, length, IPv4 flag, address"
        );
        let pdr = ies.find(types::CREATE_PDR).unwrap();
        assert_eq!(pdr.bytes().len(), 6 + (4 + 5 + 4 + 9) + 8);
        assert_eq!(pdr.find(types::PDR_ID).and_then(|i| i.uint()), Some(7));
        assert_eq!(pdr.find(types::FAR_ID).and_then(|i| i.uint()), Some(9));
        let ni = pdr.find(types::PDI).unwrap().find(types::NETWORK_INSTANCE);
        assert_eq!(ni.unwrap().bytes(), b"\x03mec\x04edge");
        assert_eq!(pdr.uint(), None, "a grouped IE is not a number");
        assert_eq!(Ies::decode(ies.as_bytes()).unwrap(), ies);
    }

    #[test]
    fn an_ie_beyond_16_bit_lengths_is_left_out_and_marked() {
        let mut ies = Ies::new();
        ies.pdr_id(1).grouped(types::CREATE_PDR, |pdr| {
            for _ in 0..300 {
                pdr.sdf_filter(Some(&"x".repeat(250)), None, None, None);
            }
        });
        assert!(ies.is_too_long());
        assert_eq!(
            ies.iter().count(),
            1,
            "the PDR ID stays, the oversized group is gone"
        );
        let mut big = Ies::new();
        big.octets(types::SDF_FILTER, &vec![0; 70_000]);
        assert!(big.is_too_long() && big.is_empty());
    }

    #[test]
    fn decoding_checks_every_level() {
        let mut ies = Ies::new();
        ies.grouped(types::CREATE_FAR, |far| {
            far.far_id(1).grouped(types::FORWARDING_PARAMETERS, |f| {
                f.destination_interface(Interface::Core);
            });
        });
        let good = ies.as_bytes().to_vec();
        assert!(Ies::decode(&good).is_ok());
        // the innermost IE claims one octet more than its group holds
        let mut bad = good.clone();
        let last_len = bad.len() - 2;
        bad[last_len] = 2;
        assert!(matches!(Ies::decode(&bad), Err(PfcpError::Malformed(_))));
        // a non-grouped IE may hold anything
        let mut opaque = Ies::new();
        opaque.octets(types::PRECEDENCE, &[0xff, 0xff, 0xff]);
        assert!(Ies::decode(opaque.as_bytes()).is_ok());
        for len in 1..good.len() {
            assert!(Ies::decode(&good[..len]).is_err(), "truncated to {len}");
        }
    }
}
