//! The message the PFCP benchmark (`benches/pfcp.rs`) times: the Session Establishment
//! Request the MEP sends for one application instance, compiled from a realistic set of MEC
//! traffic rules (ETSI MEC 011 `TrafficRule`) of a video analytics application at an edge site.

use api_specs::mp1::app_support::{
    FilterType, RuleState, TrafficFilter, TrafficRule, TrafficRuleAction,
};
use upf_rules::compile::{CompileError, Plan, Steering, compile};
use upf_rules::pfcp::ie::{Address, Ies};
use upf_rules::pfcp::message::{Message, MessageType};

/// Where the application's traffic is steered.
pub fn steering() -> Steering {
    Steering {
        app_network_instance: "mec.edge.example".into(),
    }
}

/// A filter for traffic of the UEs in `ue_pools` to `dst` on `ports`.
fn filter(ue_pools: &[&str], dst: &[&str], ports: &[&str], protocols: &[&str]) -> TrafficFilter {
    let strings = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect());
    TrafficFilter {
        src_address: strings(ue_pools),
        dst_address: strings(dst),
        dst_port: strings(ports),
        protocol: strings(protocols),
        ..TrafficFilter::default()
    }
}

/// The UE address pools of the site's slice.
const SLICE: &[&str] = &["10.64.0.0/10", "100.72.0.0/13"];

/// The rules of one video analytics instance: camera streams (RTSP, SRT) steered to the
/// application, its dashboard over HTTPS and QUIC steered too, a copy of the telemetry
/// flows to the analytics tap, management traffic of the first pool to the core left alone, telnet from anywhere
/// dropped.
pub fn rules() -> Vec<TrafficRule> {
    let rule = |id: &str, priority, action, f: TrafficFilter| TrafficRule {
        traffic_rule_id: id.into(),
        filter_type: FilterType::Flow,
        priority,
        traffic_filter: vec![f],
        action,
        dst_interface: None,
        state: RuleState::Active,
    };
    vec![
        rule(
            "camera-streams",
            40,
            TrafficRuleAction::ForwardDecapsulated,
            filter(
                SLICE,
                &["203.0.113.10", "203.0.113.11"],
                &["554", "8554", "9000-9010"],
                &["TCP", "UDP"],
            ),
        ),
        rule(
            "dashboard",
            30,
            TrafficRuleAction::ForwardDecapsulated,
            filter(SLICE, &["203.0.113.20"], &["443"], &["TCP", "UDP"]),
        ),
        rule(
            "telemetry-tap",
            20,
            TrafficRuleAction::DuplicateDecapsulated,
            filter(SLICE, &["198.51.100.0/24"], &["1883", "8883"], &["TCP"]),
        ),
        rule(
            "core-management",
            10,
            TrafficRuleAction::Passthrough,
            filter(&SLICE[..1], &["192.0.2.0/24"], &["22", "830"], &["TCP"]),
        ),
        rule(
            "no-telnet",
            250,
            TrafficRuleAction::Drop,
            filter(&[], &[], &["23"], &["TCP"]),
        ),
    ]
}

/// The compiled rules.
pub fn plan() -> Result<Plan, CompileError> {
    compile(&rules(), &steering(), 1, 1)
}

/// The Session Establishment Request carrying `plan`, as the MEP's N4 client builds it.
pub fn establishment(plan: &Plan, cp_seid: u64, sequence: u32) -> Message {
    let cp = Address::V4([192, 0, 2, 1].into());
    let mut ies = Ies::with_capacity(2048);
    ies.node_id(cp).f_seid(cp_seid, cp);
    plan.write_create(&mut ies);
    Message::new(MessageType::SessionEstablishmentRequest, 0, sequence, ies)
}

/// How many IEs, grouped ones and those inside them, `ies` holds.
pub fn count_ies(ies: upf_rules::pfcp::ie::IeIter<'_>) -> usize {
    ies.map(|ie| 1 + count_ies(ie.children())).sum()
}
