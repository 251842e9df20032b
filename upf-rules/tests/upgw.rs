//! The UPGW backend on a real Linux data path: four network namespaces (a UE, the gateway, the
//! core and an edge application) joined by veth pairs; UDP datagrams from the UE are steered to
//! the application, duplicated to it, passed to the core or dropped as the rules say, counted
//! by nftables counters where they arrive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::process::Command;

use api_specs::mp1::app_support::{
    DestinationInterface, FilterType, InterfaceType, RuleState, TrafficFilter, TrafficRule,
    TrafficRuleAction,
};
use upf_rules::testing::netns_capable;
use upf_rules::upgw::{UpgwConfig, compile};

fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euc", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Namespaces(String);

impl Namespaces {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in ["ue", "gw", "core", "app"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .status();
        }
    }
}

/// ue(10.64.0.2) ─ gw ─ core(192.0.2.2, owns 203.0.113.10)
///                  └─ app(10.100.0.10, owns 203.0.113.10 too)
fn topology() -> Namespaces {
    let n = Namespaces(format!("mecgw{}", std::process::id()));
    let (ue, gw, core, app) = (n.ns("ue"), n.ns("gw"), n.ns("core"), n.ns("app"));
    sh(&format!(
        r#"
for ns in {ue} {gw} {core} {app}; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add ue0 netns {ue} type veth peer name acc0 netns {gw}
ip link add core0 netns {core} type veth peer name up0 netns {gw}
ip link add app0 netns {app} type veth peer name edge0 netns {gw}
ip -n {ue} addr add 10.64.0.2/24 dev ue0; ip -n {ue} link set ue0 up
ip -n {ue} route add default via 10.64.0.1
ip -n {gw} addr add 10.64.0.1/24 dev acc0; ip -n {gw} link set acc0 up
ip -n {gw} addr add 192.0.2.1/30 dev up0; ip -n {gw} link set up0 up
ip -n {gw} addr add 10.100.0.1/24 dev edge0; ip -n {gw} link set edge0 up
ip -n {gw} route add 203.0.113.0/24 via 192.0.2.2
ip netns exec {gw} sysctl -qw net.ipv4.ip_forward=1
for ns in {gw} {core} {app}; do
  ip netns exec $ns sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
done
ip -n {core} addr add 192.0.2.2/30 dev core0; ip -n {core} link set core0 up
ip -n {core} addr add 203.0.113.10/32 dev lo; ip -n {core} route add 10.64.0.0/24 via 192.0.2.1
ip -n {app} addr add 10.100.0.10/24 dev app0; ip -n {app} link set app0 up
ip -n {app} addr add 203.0.113.10/32 dev lo; ip -n {app} route add 10.64.0.0/24 via 10.100.0.1
for ns in {core} {app}; do
  ip netns exec $ns sysctl -qw net.ipv4.conf.app0.rp_filter=0 2>/dev/null || true
  ip netns exec $ns nft -f - <<'NFT'
table inet seen {{
  chain input {{
    type filter hook input priority 0; policy accept;
    udp dport 554 counter
    udp dport 80 counter
    udp dport 23 counter
    udp dport 5000 counter
    udp dport 6000 counter
  }}
}}
NFT
done
"#
    ));
    n
}

/// Datagrams that arrived in `ns`, by destination port.
fn seen(ns: &str) -> BTreeMap<u16, u64> {
    let json: serde_json::Value = serde_json::from_str(&sh(&format!(
        "ip netns exec {ns} nft -j list table inet seen"
    )))
    .unwrap();
    let mut out = BTreeMap::new();
    for item in json["nftables"].as_array().unwrap() {
        let Some(expr) = item["rule"]["expr"].as_array() else {
            continue;
        };
        let port = expr[0]["match"]["right"].as_u64().unwrap() as u16;
        let packets = expr[1]["counter"]["packets"].as_u64().unwrap();
        out.insert(port, packets);
    }
    out
}

fn send(n: &Namespaces, port: u16) {
    sh(&format!(
        "ip netns exec {} bash -c 'echo hi > /dev/udp/203.0.113.10/{port}'",
        n.ns("ue")
    ));
}

fn rule(id: &str, action: TrafficRuleAction, priority: u8, port: &str) -> TrafficRule {
    TrafficRule {
        traffic_rule_id: id.into(),
        filter_type: FilterType::Flow,
        priority,
        traffic_filter: vec![TrafficFilter {
            dst_address: Some(vec!["203.0.113.0/24".into()]),
            dst_port: Some(vec![port.into()]),
            protocol: Some(vec!["UDP".into()]),
            ..TrafficFilter::default()
        }],
        action,
        dst_interface: Some(DestinationInterface {
            interface_type: InterfaceType::Ip,
            tunnel_info: None,
            src_mac_address: None,
            dst_mac_address: None,
            dst_ip_address: Some("10.100.0.10".into()),
        }),
        state: RuleState::Active,
    }
}

fn counts(pairs: &[(u16, u64)]) -> BTreeMap<u16, u64> {
    pairs.iter().copied().collect()
}

#[tokio::test]
async fn traffic_is_steered_duplicated_passed_and_dropped() {
    if !netns_capable() {
        return;
    }
    let n = topology();
    let config = UpgwConfig {
        netns: Some(n.ns("gw")),
        access_interface: "acc0".into(),
        edge_interface: "edge0".into(),
        first_table: 1000,
        first_rule_priority: 1000,
    };
    let mut inactive = rule("off", TrafficRuleAction::Drop, 250, "6000");
    inactive.state = RuleState::Inactive;
    let rules = BTreeMap::from([(
        "app-1".to_owned(),
        vec![
            rule("rtsp", TrafficRuleAction::ForwardDecapsulated, 20, "554"),
            rule("telnet", TrafficRuleAction::Drop, 200, "23"),
            rule(
                "mirror",
                TrafficRuleAction::DuplicateDecapsulated,
                10,
                "5000",
            ),
            rule("web", TrafficRuleAction::Passthrough, 5, "80"),
            inactive,
        ],
    )]);
    let ruleset = compile(&config, &rules).unwrap();
    config.apply(&ruleset).await.unwrap();
    config.apply(&ruleset).await.unwrap(); // idempotent
    for port in [554, 80, 23, 5000, 6000] {
        send(&n, port);
    }
    assert_eq!(
        seen(&n.ns("app")),
        counts(&[(554, 1), (80, 0), (23, 0), (5000, 1), (6000, 0)]),
        "steered and duplicated reach the app"
    );
    assert_eq!(
        seen(&n.ns("core")),
        counts(&[(554, 0), (80, 1), (23, 0), (5000, 1), (6000, 1)]),
        "passed, duplicated originals and inactive-rule traffic reach the core; dropped reaches nobody"
    );

    // Without rules everything goes to the core, and the policy routes are gone.
    config
        .apply(&compile(&config, &BTreeMap::new()).unwrap())
        .await
        .unwrap();
    send(&n, 554);
    assert_eq!(seen(&n.ns("core"))[&554], 1);
    assert_eq!(seen(&n.ns("app"))[&554], 1, "unchanged");
    let rules_left = sh(&format!("ip -n {} rule show", n.ns("gw")));
    assert!(!rules_left.contains("fwmark"), "{rules_left}");
    let routes_left = sh(&format!("ip -n {} route show table 1000", n.ns("gw")));
    assert!(routes_left.trim().is_empty(), "{routes_left}");
}
