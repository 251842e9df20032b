//! Times the PFCP hot paths: compiling one application instance's traffic rules into a
//! session, encoding its Session Establishment Request and decoding it again.
//!
//! `cargo run --release -p upf-rules --example pfcp_bench [instances] [rules-per-instance]`

use std::time::Instant;

use api_specs::mp1::app_support::{
    FilterType, RuleState, TrafficFilter, TrafficRule, TrafficRuleAction,
};
use upf_rules::compile::{Steering, compile};
use upf_rules::pfcp::ie::{Address, Ie};
use upf_rules::pfcp::message::{Message, MessageType};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let instances: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let per: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let actions = [
        TrafficRuleAction::ForwardDecapsulated,
        TrafficRuleAction::Drop,
        TrafficRuleAction::Passthrough,
        TrafficRuleAction::DuplicateDecapsulated,
    ];
    let rules: Vec<TrafficRule> = (0..per)
        .map(|i| TrafficRule {
            traffic_rule_id: format!("r{i}"),
            filter_type: FilterType::Flow,
            priority: (i * 10) as u8,
            traffic_filter: vec![TrafficFilter {
                src_address: Some(vec!["10.64.0.0/10".into()]),
                dst_address: Some(vec!["203.0.113.0/24".into(), "198.51.100.0/24".into()]),
                dst_port: Some(vec![format!("{}", 1000 + i), "8000-8080".into()]),
                protocol: Some(vec!["TCP".into(), "UDP".into()]),
                ..TrafficFilter::default()
            }],
            action: actions[i % actions.len()],
            dst_interface: None,
            state: RuleState::Active,
        })
        .collect();
    let steering = Steering {
        app_network_instance: "mec.edge".into(),
    };
    let node = Ie::node_id(Address::V4([127, 0, 0, 1].into()));
    let (mut compile_ns, mut encode_ns, mut decode_ns, mut bytes) = (0u128, 0u128, 0u128, 0usize);
    for n in 0..instances {
        let t = Instant::now();
        let plan = compile(&rules, &steering, 1, 1)?;
        compile_ns += t.elapsed().as_nanos();
        let t = Instant::now();
        let mut ies = vec![
            node.clone(),
            Ie::f_seid(n as u64, Address::V4([127, 0, 0, 1].into())),
        ];
        ies.extend(plan.create_ies());
        let wire =
            Message::new(MessageType::SessionEstablishmentRequest, 0, n as u32, ies).encode();
        encode_ns += t.elapsed().as_nanos();
        let t = Instant::now();
        let back = Message::decode(&wire)?;
        decode_ns += t.elapsed().as_nanos();
        if back.sequence != n as u32 & 0x00ff_ffff {
            return Err("decoded another message".into());
        }
        bytes += wire.len();
    }
    let per_op = |ns: u128| ns as f64 / instances as f64 / 1000.0;
    println!(
        "{instances} sessions of {per} rules ({} octets each): compile {:.1} µs, encode {:.1} µs, decode {:.1} µs per session; {:.0} sessions/s end to end",
        bytes / instances.max(1),
        per_op(compile_ns),
        per_op(encode_ns),
        per_op(decode_ns),
        instances as f64 / ((compile_ns + encode_ns + decode_ns) as f64 / 1e9)
    );
    Ok(())
}
