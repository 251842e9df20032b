//! MEC traffic rules (ETSI MEC 011 `TrafficRule`) compiled into PFCP packet detection and
//! forwarding rules of one N4 session per application instance.
//!
//! Each ACTIVE rule becomes an uplink PDR (source interface Access) whose PDI carries one SDF
//! filter per source/destination address and protocol combination (ports as lists), with a
//! precedence from the rule's priority (0, the highest, gives the lowest precedence value, which
//! the UPF matches first: ETSI MEC 011 `TrafficRule` NOTE 1), and a FAR:
//!
//! | action | Apply Action | forwarding | duplicating |
//! |---|---|---|---|
//! | DROP | DROP | | |
//! | PASSTHROUGH | FORW | Core | |
//! | FORWARD_DECAPSULATED | FORW | N6-LAN, the apps' network instance | |
//! | FORWARD_ENCAPSULATED | FORW | N6-LAN + outer header to the tunnel end | |
//! | DUPLICATE_DECAPSULATED | FORW, DUPL | Core | N6-LAN |
//! | DUPLICATE_ENCAPSULATED | FORW, DUPL | Core | N6-LAN + outer header |
//!
//! FLOW rules that steer traffic to the application also get a downlink PDR (source N6-LAN)
//! forwarding the application's answers to Access. INACTIVE rules are not installed.
//!
//! A filter's `packetLabel`s (IPv6 flow labels) go into its SDF filters; its `uri`s make an
//! application the PDR detects (Application ID), whose PFDs (one URL each) the session's
//! [`Plan::applications`] lists for PFD management.

use std::net::IpAddr;

use std::collections::BTreeMap;

use api_specs::mp1::app_support::{
    FilterType, RuleState, TrafficFilter, TrafficRule, TrafficRuleAction, TunnelInfo, TunnelType,
};

use crate::pfcp::ie::{Address, Ies, Interface, apply_action, outer_header, types};

/// Most SDF filters one rule may expand to.
pub const MAX_SDF_FILTERS: usize = 64;

/// A rule that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A filter field is not valid.
    #[error("traffic rule {rule}: {detail}")]
    Invalid {
        /// Traffic rule id.
        rule: String,
        /// What is wrong.
        detail: String,
    },
}

/// Where the UPF sends traffic for the edge applications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steering {
    /// Network instance (DNN) of the edge applications' local data network.
    pub app_network_instance: String,
}

/// Forwarding of a FAR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// Destination interface.
    pub destination: Interface,
    /// Network instance.
    pub network_instance: Option<String>,
    /// Outer header (description, TEID, tunnel end).
    pub outer_header: Option<(u8, Option<u32>, Address)>,
}

/// A forwarding action rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Far {
    /// FAR ID.
    pub id: u32,
    /// Apply Action flags.
    pub apply_action: u8,
    /// Forwarding parameters (when forwarding).
    pub forwarding: Option<Forwarding>,
    /// Duplicating parameters (when duplicating).
    pub duplicating: Option<Forwarding>,
}

/// A packet detection rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdr {
    /// PDR ID.
    pub id: u16,
    /// The traffic rule it comes from.
    pub traffic_rule_id: String,
    /// Precedence.
    pub precedence: u32,
    /// Source interface.
    pub source: Interface,
    /// Network instance of the source (downlink PDRs).
    pub network_instance: Option<String>,
    /// SDF filters: flow descriptions.
    pub flows: Vec<String>,
    /// ToS / traffic class match (value, mask).
    pub tos: Option<(u8, u8)>,
    /// IPv6 flow labels (the filter's `packetLabel`s): one SDF filter per flow and label.
    pub flow_labels: Vec<u32>,
    /// The application it detects (the filter's `uri`s), by Application ID.
    pub application_id: Option<String>,
    /// The FAR applied.
    pub far_id: u32,
}

/// The rules of one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// PDRs.
    pub pdrs: Vec<Pdr>,
    /// FARs.
    pub fars: Vec<Far>,
    /// The applications the PDRs detect (filters' `uri`s): Application ID and the URLs of its
    /// PFDs, to provision at the UP function (PFD management) before the session.
    pub applications: BTreeMap<String, Vec<String>>,
}

/// The Application ID of the application whose PFDs are `urls`: named by their content, so
/// the same URLs are one application at the node whichever session uses them.
pub fn application_id(urls: &[String]) -> String {
    // FNV-1a, 64 bits
    let hash = urls
        .iter()
        .flat_map(|u| u.bytes().chain([b'\n']))
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("mecplane-uri-{hash:016x}")
}

pub(crate) fn invalid(rule: &TrafficRule, detail: impl Into<String>) -> CompileError {
    CompileError::Invalid {
        rule: rule.traffic_rule_id.clone(),
        detail: detail.into(),
    }
}

/// IPFilterRule protocol of a MEC protocol name or number.
pub(crate) fn protocol(rule: &TrafficRule, p: &str) -> Result<String, CompileError> {
    const NAMES: [(&str, &str); 6] = [
        ("ANY", "ip"),
        ("IP", "ip"),
        ("TCP", "6"),
        ("UDP", "17"),
        ("SCTP", "132"),
        ("ICMP", "1"),
    ];
    if let Some((_, number)) = NAMES.iter().find(|(name, _)| p.eq_ignore_ascii_case(name)) {
        return Ok((*number).to_owned());
    }
    p.parse::<u8>()
        .map(|n| n.to_string())
        .map_err(|_| invalid(rule, format!("unknown protocol {p}")))
}

/// An address (or CIDR prefix) of a filter, checked.
pub(crate) fn address(rule: &TrafficRule, a: &str) -> Result<String, CompileError> {
    let (ip, bits) = a.split_once('/').unwrap_or((a, ""));
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| invalid(rule, format!("bad address {a}")))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if !bits.is_empty() && bits.parse::<u8>().map_or(true, |b| b > max) {
        return Err(invalid(rule, format!("bad prefix {a}")));
    }
    Ok(a.to_owned())
}

/// Ports as an IPFilterRule port list (`p` or `p-q`, comma separated).
pub(crate) fn ports(
    rule: &TrafficRule,
    ports: Option<&Vec<String>>,
) -> Result<String, CompileError> {
    let number = |n: &str| n.trim().parse::<u16>().is_ok();
    let mut out = String::new();
    for p in ports.into_iter().flatten() {
        let ok = match p.split_once('-') {
            Some((from, to)) => number(from) && number(to),
            None => number(p),
        };
        if !ok {
            return Err(invalid(rule, format!("bad port {p}")));
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.extend(p.chars().filter(|c| *c != ' '));
    }
    Ok(out)
}

/// Flow descriptions (RFC 6733 IPFilterRule) of a filter. As TS 29.212 5.4.2 has it, `permit
/// out` descriptions name the remote end first and the UE last, whichever way the PDR matches
/// (its source interface gives the direction).
fn flows(rule: &TrafficRule, f: &TrafficFilter) -> Result<Vec<String>, CompileError> {
    let list = |v: &Option<Vec<String>>| -> Result<Vec<String>, CompileError> {
        match v.as_deref() {
            None | Some([]) => Ok(vec!["any".into()]),
            Some(v) => v.iter().map(|a| address(rule, a)).collect(),
        }
    };
    let (src, dst) = (list(&f.src_address)?, list(&f.dst_address)?);
    let (src_ports, dst_ports) = (
        ports(rule, f.src_port.as_ref())?,
        ports(rule, f.dst_port.as_ref())?,
    );
    let protocols = match f.protocol.as_deref() {
        None | Some([]) => vec!["ip".to_owned()],
        Some(p) => p
            .iter()
            .map(|p| protocol(rule, p))
            .collect::<Result<_, _>>()?,
    };
    let combinations = protocols
        .len()
        .saturating_mul(src.len())
        .saturating_mul(dst.len());
    if combinations > MAX_SDF_FILTERS {
        return Err(invalid(
            rule,
            format!("expands to more than {MAX_SDF_FILTERS} SDF filters"),
        ));
    }
    let endpoint = |flow: &mut String, addr: &str, ports: &str| {
        flow.push_str(addr);
        if !ports.is_empty() {
            flow.push(' ');
            flow.push_str(ports);
        }
    };
    let mut out = Vec::with_capacity(combinations);
    for p in &protocols {
        for s in &src {
            for d in &dst {
                let mut flow = String::with_capacity(
                    24 + p.len() + s.len() + d.len() + src_ports.len() + dst_ports.len(),
                );
                flow.push_str("permit out ");
                flow.push_str(p);
                flow.push_str(" from ");
                endpoint(&mut flow, d, &dst_ports);
                flow.push_str(" to ");
                endpoint(&mut flow, s, &src_ports);
                out.push(flow);
            }
        }
    }
    Ok(out)
}

/// The IPv6 flow labels a filter's `packetLabel`s name; refused with IPv4 addresses (a flow
/// label is IPv6's). Both data planes read them so.
pub(crate) fn packet_labels(
    rule: &TrafficRule,
    f: &TrafficFilter,
) -> Result<Vec<u32>, CompileError> {
    let labels: Vec<u32> = f
        .packet_label
        .iter()
        .flatten()
        .map(|l| {
            api_specs::common::flow_label(l)
                .ok_or_else(|| invalid(rule, format!("packetLabel {l} is not an IPv6 flow label")))
        })
        .collect::<Result<_, _>>()?;
    let ipv4 = f
        .src_address
        .iter()
        .chain(&f.dst_address)
        .flatten()
        .any(|a| !a.contains(':'));
    if !labels.is_empty() && ipv4 {
        return Err(invalid(
            rule,
            "packetLabel (an IPv6 flow label) with IPv4 addresses",
        ));
    }
    Ok(labels)
}

/// [`packet_labels`], for `flows` SDF filters that each carry every label.
fn flow_labels(
    rule: &TrafficRule,
    f: &TrafficFilter,
    flows: usize,
) -> Result<Vec<u32>, CompileError> {
    let labels = packet_labels(rule, f)?;
    if flows.saturating_mul(labels.len()) > MAX_SDF_FILTERS {
        return Err(invalid(
            rule,
            format!("expands to more than {MAX_SDF_FILTERS} SDF filters"),
        ));
    }
    Ok(labels)
}

/// The ToS/traffic class match of a filter (DSCP preferred).
fn tos(rule: &TrafficRule, f: &TrafficFilter) -> Result<Option<(u8, u8)>, CompileError> {
    match (f.d_scp, f.t_c) {
        (Some(d), _) if d < 64 => Ok(Some(((d as u8) << 2, 0xfc))),
        (Some(d), _) => Err(invalid(rule, format!("DSCP {d} out of range"))),
        (None, Some(t)) => u8::try_from(t)
            .map(|t| Some((t, 0xff)))
            .map_err(|_| invalid(rule, format!("traffic class {t} out of range"))),
        (None, None) => Ok(None),
    }
}

/// The tunnel of an encapsulating rule.
pub(crate) fn tunnel_info(rule: &TrafficRule) -> Result<&TunnelInfo, CompileError> {
    rule.dst_interface
        .as_ref()
        .and_then(|d| d.tunnel_info.as_ref())
        .ok_or_else(|| {
            invalid(
                rule,
                "an encapsulating action needs dstInterface.tunnelInfo",
            )
        })
}

/// The outer header towards the rule's tunnel end (encapsulating actions).
fn tunnel(rule: &TrafficRule) -> Result<(u8, Option<u32>, Address), CompileError> {
    let info = tunnel_info(rule)?;
    let end: IpAddr = info
        .tunnel_dst_address
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|_| invalid(rule, "tunnelInfo.tunnelDstAddress is not an IP address"))?;
    // GTP-U gets a TEID derived from the rule id; GRE has no PFCP outer header and is sent as
    // plain IP-in-IP to the tunnel end.
    let teid = (info.tunnel_type == TunnelType::GtpU).then(|| teid_of(&rule.traffic_rule_id));
    let (desc, addr) = match (end, info.tunnel_type) {
        (IpAddr::V4(a), TunnelType::GtpU) => (outer_header::GTPU_UDP_IPV4, Address::V4(a)),
        (IpAddr::V6(a), TunnelType::GtpU) => (outer_header::GTPU_UDP_IPV6, Address::V6(a)),
        (IpAddr::V4(a), TunnelType::Gre) => (outer_header::IPV4, Address::V4(a)),
        (IpAddr::V6(a), TunnelType::Gre) => (outer_header::IPV6, Address::V6(a)),
    };
    Ok((desc, teid, addr))
}

/// A stable TEID for a rule (FNV-1a of its id, never 0).
fn teid_of(id: &str) -> u32 {
    let h = id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h.max(1)
}

/// Compiles the rules of one application instance, numbering PDRs from `first_pdr` and FARs
/// from `first_far`.
pub fn compile(
    rules: &[TrafficRule],
    steering: &Steering,
    first_pdr: u16,
    first_far: u32,
) -> Result<Plan, CompileError> {
    let mut plan = Plan::default();
    let (mut pdr_id, mut far_id) = (first_pdr, first_far);
    let app_lan = || Forwarding {
        destination: Interface::SgiLanN6Lan,
        network_instance: Some(steering.app_network_instance.clone()),
        outer_header: None,
    };
    let core = || Forwarding {
        destination: Interface::Core,
        network_instance: None,
        outer_header: None,
    };
    for rule in rules.iter().filter(|r| r.state == RuleState::Active) {
        let (apply, forwarding, duplicating) = match rule.action {
            TrafficRuleAction::Drop => (apply_action::DROP, None, None),
            TrafficRuleAction::Passthrough => (apply_action::FORW, Some(core()), None),
            TrafficRuleAction::ForwardDecapsulated => (apply_action::FORW, Some(app_lan()), None),
            TrafficRuleAction::ForwardEncapsulated => (
                apply_action::FORW,
                Some(Forwarding {
                    outer_header: Some(tunnel(rule)?),
                    ..app_lan()
                }),
                None,
            ),
            TrafficRuleAction::DuplicateDecapsulated => (
                apply_action::FORW | apply_action::DUPL,
                Some(core()),
                Some(Forwarding {
                    network_instance: None,
                    ..app_lan()
                }),
            ),
            TrafficRuleAction::DuplicateEncapsulated => (
                apply_action::FORW | apply_action::DUPL,
                Some(core()),
                Some(Forwarding {
                    network_instance: None,
                    outer_header: Some(tunnel(rule)?),
                    ..app_lan()
                }),
            ),
        };
        let steered = matches!(
            rule.action,
            TrafficRuleAction::ForwardDecapsulated | TrafficRuleAction::ForwardEncapsulated
        );
        // precedence: lower is matched first, as priority 0 is the highest
        let base = u32::from(rule.priority) * 256;
        let uplink_far = far_id;
        plan.fars.push(Far {
            id: uplink_far,
            apply_action: apply,
            forwarding,
            duplicating,
        });
        far_id += 1;
        let downlink_far = (steered && rule.filter_type == FilterType::Flow).then(|| {
            plan.fars.push(Far {
                id: far_id,
                apply_action: apply_action::FORW,
                forwarding: Some(Forwarding {
                    destination: Interface::Access,
                    network_instance: None,
                    outer_header: None,
                }),
                duplicating: None,
            });
            far_id += 1;
            far_id - 1
        });
        let filters: &[TrafficFilter] = if rule.traffic_filter.is_empty() {
            &[TrafficFilter::default()]
        } else {
            &rule.traffic_filter
        };
        for (i, f) in filters.iter().enumerate() {
            let precedence = base + u32::try_from(i.min(255)).unwrap_or(255);
            let tos = tos(rule, f)?;
            let flows = flows(rule, f)?;
            let flow_labels = flow_labels(rule, f, flows.len())?;
            let application_id = f.uri.as_ref().filter(|u| !u.is_empty()).map(|urls| {
                let id = application_id(urls);
                plan.applications.insert(id.clone(), urls.clone());
                id
            });
            let downlink = downlink_far.map(|far| Pdr {
                id: pdr_id.wrapping_add(1),
                traffic_rule_id: rule.traffic_rule_id.clone(),
                precedence,
                source: Interface::SgiLanN6Lan,
                network_instance: Some(steering.app_network_instance.clone()),
                flows: flows.clone(),
                tos,
                flow_labels: flow_labels.clone(),
                application_id: application_id.clone(),
                far_id: far,
            });
            plan.pdrs.push(Pdr {
                id: pdr_id,
                traffic_rule_id: rule.traffic_rule_id.clone(),
                precedence,
                source: Interface::Access,
                network_instance: None,
                flows,
                tos,
                flow_labels,
                application_id,
                far_id: uplink_far,
            });
            pdr_id = pdr_id.wrapping_add(1);
            if let Some(downlink) = downlink {
                plan.pdrs.push(downlink);
                pdr_id = pdr_id.wrapping_add(1);
            }
        }
    }
    Ok(plan)
}

impl Forwarding {
    fn write(&self, ies: &mut Ies) {
        ies.destination_interface(self.destination);
        if let Some(ni) = &self.network_instance {
            ies.network_instance(ni);
        }
        if let Some((desc, teid, addr)) = self.outer_header {
            ies.outer_header_creation(desc, teid, addr, None);
        }
    }
}

impl Pdr {
    /// Appends the Create PDR IE.
    pub fn write_create(&self, ies: &mut Ies) {
        ies.grouped(types::CREATE_PDR, |pdr| {
            pdr.pdr_id(self.id).precedence(self.precedence);
            pdr.grouped(types::PDI, |pdi| {
                pdi.source_interface(self.source);
                if let Some(ni) = &self.network_instance {
                    pdi.network_instance(ni);
                }
                if let Some(app) = &self.application_id {
                    pdi.application_id(app);
                }
                for flow in &self.flows {
                    if self.flow_labels.is_empty() {
                        pdi.sdf_filter(Some(flow), self.tos, None, None);
                    }
                    for label in &self.flow_labels {
                        pdi.sdf_filter(Some(flow), self.tos, Some(*label), None);
                    }
                }
            });
            pdr.far_id(self.far_id);
        });
    }

    /// Appends the Remove PDR IE.
    pub fn write_remove(&self, ies: &mut Ies) {
        ies.grouped(types::REMOVE_PDR, |pdr| {
            pdr.pdr_id(self.id);
        });
    }
}

impl Far {
    /// Appends the Create FAR IE.
    pub fn write_create(&self, ies: &mut Ies) {
        ies.grouped(types::CREATE_FAR, |far| {
            far.far_id(self.id).apply_action(self.apply_action);
            if let Some(f) = &self.forwarding {
                far.grouped(types::FORWARDING_PARAMETERS, |ies| f.write(ies));
            }
            if let Some(d) = &self.duplicating {
                far.grouped(types::DUPLICATING_PARAMETERS, |ies| d.write(ies));
            }
        });
    }

    /// Appends the Remove FAR IE.
    pub fn write_remove(&self, ies: &mut Ies) {
        ies.grouped(types::REMOVE_FAR, |far| {
            far.far_id(self.id);
        });
    }
}

impl Plan {
    /// Appends the Create PDR and Create FAR IEs of every rule.
    pub fn write_create(&self, ies: &mut Ies) {
        self.pdrs.iter().for_each(|p| p.write_create(ies));
        self.fars.iter().for_each(|f| f.write_create(ies));
    }

    /// Appends the Remove PDR and Remove FAR IEs of every rule.
    pub fn write_remove(&self, ies: &mut Ies) {
        self.pdrs.iter().for_each(|p| p.write_remove(ies));
        self.fars.iter().for_each(|f| f.write_remove(ies));
    }

    /// The next free PDR and FAR ids after this plan's.
    pub fn next_ids(&self) -> Option<(u16, u32)> {
        let pdr = self.pdrs.iter().map(|p| p.id).max()?;
        let far = self.fars.iter().map(|f| f.id).max()?;
        Some((pdr.wrapping_add(1).max(1), far.wrapping_add(1).max(1)))
    }
}

#[cfg(test)]
mod tests {
    use api_specs::mp1::app_support::{DestinationInterface, InterfaceType, TunnelInfo};

    use super::*;

    fn steering() -> Steering {
        Steering {
            app_network_instance: "mec".into(),
        }
    }

    fn rule(action: TrafficRuleAction, filter: TrafficFilter) -> TrafficRule {
        TrafficRule {
            traffic_rule_id: "r".into(),
            filter_type: FilterType::Packet,
            priority: 10,
            traffic_filter: vec![filter],
            action,
            dst_interface: None,
            state: RuleState::Active,
        }
    }

    #[test]
    fn priorities_order_precedence_and_inactive_rules_are_left_out() {
        let mut high = rule(TrafficRuleAction::Drop, TrafficFilter::default());
        high.priority = 0;
        let mut off = rule(TrafficRuleAction::Drop, TrafficFilter::default());
        off.state = RuleState::Inactive;
        let low = rule(TrafficRuleAction::Passthrough, TrafficFilter::default());
        let plan = compile(&[low, high, off], &steering(), 1, 1).unwrap();
        assert_eq!(plan.pdrs.len(), 2);
        assert!(plan.pdrs[1].precedence < plan.pdrs[0].precedence);
        assert_eq!(plan.pdrs[0].flows, ["permit out ip from any to any"]);
        assert_eq!(plan.next_ids(), Some((3, 3)));
    }

    #[test]
    fn filters_become_sdf_filters() {
        let f = TrafficFilter {
            src_address: Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]),
            dst_port: Some(vec!["80".into(), "8000-8080".into()]),
            protocol: Some(vec!["UDP".into(), "132".into()]),
            d_scp: Some(10),
            ..TrafficFilter::default()
        };
        let plan = compile(
            &[rule(TrafficRuleAction::ForwardDecapsulated, f)],
            &steering(),
            1,
            1,
        )
        .unwrap();
        let pdr = &plan.pdrs[0];
        assert_eq!(pdr.flows.len(), 4);
        assert_eq!(
            pdr.flows[0],
            "permit out 17 from any 80,8000-8080 to 10.0.0.0/8"
        );
        assert_eq!(pdr.tos, Some((40, 0xfc)));
        let far = &plan.fars[0];
        assert_eq!(far.apply_action, apply_action::FORW);
        let fwd = far.forwarding.as_ref().unwrap();
        assert_eq!(fwd.destination, Interface::SgiLanN6Lan);
        assert_eq!(fwd.network_instance.as_deref(), Some("mec"));
    }

    #[test]
    fn packet_labels_are_ipv6_flow_labels_and_uris_detected_applications() {
        let labelled = |dst: &str| TrafficFilter {
            dst_address: Some(vec![dst.into()]),
            packet_label: Some(vec!["0xfffff".into(), "42".into()]),
            ..TrafficFilter::default()
        };
        let plan = compile(
            &[rule(TrafficRuleAction::Drop, labelled("2001:db8::/32"))],
            &steering(),
            1,
            1,
        )
        .unwrap();
        assert_eq!(plan.pdrs[0].flow_labels, [0xf_ffff, 42]);
        let refused = |f: TrafficFilter| {
            compile(&[rule(TrafficRuleAction::Drop, f)], &steering(), 1, 1)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(labelled("10.0.0.0/8")).contains("IPv4"));
        let uri = |urls: &[&str]| TrafficFilter {
            uri: Some(urls.iter().map(|u| (*u).to_owned()).collect()),
            ..TrafficFilter::default()
        };
        let rules = [
            rule(TrafficRuleAction::Drop, uri(&["http://cdn.example/video"])),
            rule(TrafficRuleAction::Drop, uri(&["http://cdn.example/video"])),
            rule(TrafficRuleAction::Drop, uri(&["http://cdn.example/audio"])),
        ];
        let plan = compile(&rules, &steering(), 1, 1).unwrap();
        let video = application_id(&["http://cdn.example/video".into()]);
        assert_eq!(plan.pdrs[0].application_id.as_deref(), Some(video.as_str()));
        assert_eq!(
            plan.pdrs[1].application_id, plan.pdrs[0].application_id,
            "same URLs"
        );
        assert_ne!(plan.pdrs[2].application_id, plan.pdrs[0].application_id);
        assert_eq!(plan.applications.len(), 2);
        assert_eq!(plan.applications[&video], ["http://cdn.example/video"]);
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let bad =
            |f: TrafficFilter| compile(&[rule(TrafficRuleAction::Drop, f)], &steering(), 1, 1);
        let addr = TrafficFilter {
            dst_address: Some(vec!["10.0.0.300".into()]),
            ..TrafficFilter::default()
        };
        assert!(bad(addr).unwrap_err().to_string().contains("bad address"));
        let prefix = TrafficFilter {
            dst_address: Some(vec!["10.0.0.0/33".into()]),
            ..TrafficFilter::default()
        };
        assert!(bad(prefix).is_err());
        let port = TrafficFilter {
            dst_port: Some(vec!["70000".into()]),
            ..TrafficFilter::default()
        };
        assert!(bad(port).is_err());
        let proto = TrafficFilter {
            protocol: Some(vec!["QUIC".into()]),
            ..TrafficFilter::default()
        };
        assert!(bad(proto).is_err());
        let many = TrafficFilter {
            src_address: Some((0..20).map(|i| format!("10.0.0.{i}")).collect()),
            dst_address: Some((0..20).map(|i| format!("10.1.0.{i}")).collect()),
            ..TrafficFilter::default()
        };
        assert!(bad(many).unwrap_err().to_string().contains("SDF filters"));
        // encapsulation needs a tunnel end
        let enc = rule(
            TrafficRuleAction::ForwardEncapsulated,
            TrafficFilter::default(),
        );
        assert!(compile(&[enc], &steering(), 1, 1).is_err());
    }

    #[test]
    fn gre_tunnels_get_an_ip_outer_header() {
        let mut r = rule(
            TrafficRuleAction::DuplicateEncapsulated,
            TrafficFilter::default(),
        );
        r.dst_interface = Some(DestinationInterface {
            interface_type: InterfaceType::Tunnel,
            tunnel_info: Some(TunnelInfo {
                tunnel_type: TunnelType::Gre,
                tunnel_dst_address: Some("192.0.2.1".into()),
                tunnel_src_address: None,
            }),
            src_mac_address: None,
            dst_mac_address: None,
            dst_ip_address: None,
        });
        let plan = compile(&[r], &steering(), 1, 1).unwrap();
        let dup = plan.fars[0].duplicating.as_ref().unwrap();
        assert_eq!(
            dup.outer_header,
            Some((outer_header::IPV4, None, Address::V4([192, 0, 2, 1].into())))
        );
        assert_eq!(
            plan.fars[0].apply_action,
            apply_action::FORW | apply_action::DUPL
        );
    }
}
