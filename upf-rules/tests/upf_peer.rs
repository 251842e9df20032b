//! The N4 client against a UPF peer built on a third-party PFCP codec (scapy,
//! tests/pfcp-peer/upf_peer.py): association, sessions carrying compiled rules, modification,
//! deletion, heartbeats, and recovery after the UPF restarts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use api_specs::mp1::app_support::{
    FilterType, RuleState, TrafficFilter, TrafficRule, TrafficRuleAction,
};
use serde_json::Value;
use upf_rules::compile::Steering;
use upf_rules::n4::{Heartbeat, N4Client, N4Config, N4Error};
use upf_rules::testing::{UpfPeer, python};

fn rule(id: &str, action: TrafficRuleAction, priority: u8, port: &str) -> TrafficRule {
    TrafficRule {
        traffic_rule_id: id.into(),
        filter_type: FilterType::Packet,
        priority,
        traffic_filter: vec![TrafficFilter {
            src_address: Some(vec!["10.64.0.0/10".into()]),
            dst_port: Some(vec![port.into()]),
            protocol: Some(vec!["TCP".into()]),
            ..TrafficFilter::default()
        }],
        action,
        dst_interface: None,
        state: RuleState::Active,
    }
}

fn pdrs(session: &Value) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = session["pdrs"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| {
            (
                p["precedence"].as_u64().unwrap(),
                p["flows"][0].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn sessions_follow_the_rules_and_survive_a_upf_restart() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut peer = UpfPeer::start(&python, dir.path());
    let n4 = N4Client::connect(N4Config {
        local: "127.0.0.1:0".parse().unwrap(),
        upf: peer.addr,
        t1: Duration::from_millis(300),
        n1: 3,
        steering: Steering {
            app_network_instance: "mec.edge".into(),
        },
    })
    .await
    .unwrap();
    assert_eq!(peer.state()["associated"], true);

    let video = vec![
        rule("rtsp", TrafficRuleAction::ForwardDecapsulated, 20, "554"),
        rule("block", TrafficRuleAction::Drop, 200, "23"),
    ];
    n4.apply("app-1", &video).await.unwrap();
    let sessions = peer.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        pdrs(&sessions[0]),
        // priority 0 is the highest (MEC 011): 20 matches before 200
        [
            (
                5_120,
                "permit out 6 from any 554 to 10.64.0.0/10".to_owned()
            ),
            (
                51_200,
                "permit out 6 from any 23 to 10.64.0.0/10".to_owned()
            ),
        ]
    );
    let fars: Vec<&Value> = sessions[0]["fars"].as_object().unwrap().values().collect();
    assert!(
        fars.iter()
            .any(|f| f["apply_action"] == serde_json::json!(["DROP"]))
    );
    assert!(
        fars.iter()
            .any(|f| f["forwarding"]["network_instance"] == "mec.edge")
    );

    // A new version of the rules replaces the old ones in the same session.
    let changed = vec![rule(
        "rtsp",
        TrafficRuleAction::ForwardDecapsulated,
        20,
        "8554",
    )];
    n4.apply("app-1", &changed).await.unwrap();
    let sessions = peer.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        pdrs(&sessions[0]),
        [(
            5_120,
            "permit out 6 from any 8554 to 10.64.0.0/10".to_owned()
        )]
    );
    assert_eq!(sessions[0]["fars"].as_object().unwrap().len(), 1);
    n4.apply("app-2", &video).await.unwrap();
    assert_eq!(peer.sessions().len(), 2);

    // A rule with URIs detects an application: its PFDs are provisioned first, the PDR names it.
    let mut cdn = rule("cdn", TrafficRuleAction::ForwardDecapsulated, 30, "80");
    cdn.traffic_filter[0].uri = Some(vec![
        "http://cdn.example/video".into(),
        "http://cdn.example/live".into(),
    ]);
    n4.apply("app-3", &[cdn.clone()]).await.unwrap();
    let app = upf_rules::compile::application_id(cdn.traffic_filter[0].uri.as_ref().unwrap());
    assert_eq!(
        peer.state()["applications"][&app],
        serde_json::json!(["http://cdn.example/video", "http://cdn.example/live"])
    );
    let cdn_session = peer.sessions().into_iter().find(|s| {
        s["pdrs"]
            .as_object()
            .unwrap()
            .values()
            .any(|p| p["application"] == app)
    });
    assert!(cdn_session.is_some(), "{:#}", peer.state());
    n4.remove("app-3").await.unwrap();
    assert_eq!(n4.heartbeat().await.unwrap(), Heartbeat::Alive);

    // The UPF restarts and forgets everything; the next heartbeat puts it all back.
    peer.restart();
    assert!(peer.sessions().is_empty());
    assert_eq!(n4.heartbeat().await.unwrap(), Heartbeat::Restarted);
    let sessions = peer.sessions();
    assert_eq!(sessions.len(), 2);
    assert_eq!(pdrs(&sessions[0]).len() + pdrs(&sessions[1]).len(), 3);
    assert_eq!(n4.sessions().await.len(), 2);

    n4.remove("app-1").await.unwrap();
    n4.remove("app-1").await.unwrap();
    assert_eq!(peer.sessions().len(), 1);
    n4.release().await.unwrap();
    assert_eq!(peer.state()["associated"], false);

    // Without a UPF, requests fail after N1 retransmissions.
    peer.stop();
    let err = n4.apply("app-3", &video).await.unwrap_err();
    assert!(matches!(err, N4Error::Timeout(..)), "{err}");
}
