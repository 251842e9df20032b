//! Every PFCP message type the platform emits, decoded by Wireshark's PFCP dissector (tshark):
//! no malformed packets or expert warnings, and the expected field values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::Ipv4Addr;
use std::process::Command;

use api_specs::mp1::app_support::{
    DestinationInterface, FilterType, InterfaceType, RuleState, TrafficFilter, TrafficRule,
    TrafficRuleAction, TunnelInfo, TunnelType,
};
use upf_rules::compile::{Steering, compile};
use upf_rules::pfcp::ie::{Address, Ies};
use upf_rules::pfcp::message::{Message, MessageType};

const CP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// A classic pcap file of UDP/8805 datagrams over Ethernet/IPv4.
fn pcap(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(0xa1b2_c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(65_535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes()); // Ethernet
    for (i, payload) in datagrams.iter().enumerate() {
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = 20 + 8 + payload.len();
        let mut ip = vec![0x45, 0];
        ip.extend((total as u16).to_be_bytes());
        ip.extend([0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2]);
        let sum = !ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .fold(0u32, |a, b| {
                let s = a + b;
                (s & 0xffff) + (s >> 16)
            }) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend(ip);
        frame.extend(8805u16.to_be_bytes());
        frame.extend(8805u16.to_be_bytes());
        frame.extend(((8 + payload.len()) as u16).to_be_bytes());
        frame.extend([0, 0]);
        frame.extend(payload);
        out.extend((i as u32 + 1).to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend((frame.len() as u32).to_le_bytes());
        out.extend(frame);
    }
    out
}

fn tshark(pcap_path: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap_path)
        .args(args)
        .output()
        .expect("tshark is installed (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tshark display filter of a problem: a malformed packet, expert info of warning severity
/// or worse.
const PROBLEMS: [&str; 3] = [
    "-Y",
    "_ws.malformed || _ws.expert.severity >= 0x600000",
    "-V",
];

/// `messages` encoded (each read back by the own decoder) into a capture at `dir/name`, which
/// tshark reads without a problem.
fn capture(messages: &[Message], dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let datagrams: Vec<Vec<u8>> = messages.iter().map(|m| m.encode().unwrap()).collect();
    for (m, d) in messages.iter().zip(&datagrams) {
        assert_eq!(&Message::decode(d).unwrap(), m, "own decoder round trip");
    }
    let path = dir.join(name);
    std::fs::write(&path, pcap(&datagrams)).unwrap();
    let problems = tshark(&path, &PROBLEMS);
    assert!(
        problems.trim().is_empty(),
        "tshark found problems:\n{problems}"
    );
    path
}

/// The values of `field` in the packets of the capture at `path` that match `filter`: one line
/// per packet, occurrences separated by commas.
fn fields(path: &std::path::Path, filter: &str, field: &str) -> Vec<String> {
    let args = [
        "-Y",
        filter,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "separator=;",
        "-e",
        field,
    ];
    tshark(path, &args).lines().map(str::to_owned).collect()
}

fn rules() -> Vec<TrafficRule> {
    let filter = TrafficFilter {
        src_address: Some(vec!["10.64.0.0/10".into()]),
        dst_address: Some(vec!["203.0.113.10".into(), "203.0.113.11".into()]),
        dst_port: Some(vec!["554".into(), "8000-8010".into()]),
        protocol: Some(vec!["TCP".into()]),
        d_scp: Some(46),
        ..TrafficFilter::default()
    };
    let rule = |id: &str, action, priority| TrafficRule {
        traffic_rule_id: id.into(),
        filter_type: FilterType::Flow,
        priority,
        traffic_filter: vec![filter.clone()],
        action,
        dst_interface: Some(DestinationInterface {
            interface_type: InterfaceType::Tunnel,
            tunnel_info: Some(TunnelInfo {
                tunnel_type: TunnelType::GtpU,
                tunnel_dst_address: Some("10.100.0.10".into()),
                tunnel_src_address: None,
            }),
            src_mac_address: None,
            dst_mac_address: None,
            dst_ip_address: None,
        }),
        state: RuleState::Active,
    };
    vec![
        rule("steer", TrafficRuleAction::ForwardDecapsulated, 20),
        rule("tunnel", TrafficRuleAction::ForwardEncapsulated, 10),
        rule("copy", TrafficRuleAction::DuplicateDecapsulated, 5),
        rule("copy-tunnel", TrafficRuleAction::DuplicateEncapsulated, 4),
        rule("through", TrafficRuleAction::Passthrough, 3),
        rule("block", TrafficRuleAction::Drop, 200),
    ]
}

#[test]
fn tshark_decodes_every_message_type_cleanly() {
    let plan = compile(
        &rules(),
        &Steering {
            app_network_instance: "mec.edge.example".into(),
        },
        1,
        1,
    )
    .unwrap();
    let ies = |write: &dyn Fn(&mut Ies)| {
        let mut ies = Ies::new();
        write(&mut ies);
        ies
    };
    let node = |i: &mut Ies| {
        i.node_id(Address::V4(CP));
    };
    let rts = |i: &mut Ies| {
        i.recovery_time_stamp(3_960_000_000);
    };
    let ok = |i: &mut Ies| {
        i.cause(1);
    };
    let establishment = ies(&|i| {
        node(i);
        i.f_seid(0x1122_3344_5566_7788, Address::V4(CP));
        plan.write_create(i);
    });
    let modification = ies(&|i| {
        plan.write_remove(i);
        plan.write_create(i);
    });
    let messages = [
        Message::new(MessageType::HeartbeatRequest, 0, 1, ies(&rts)),
        Message::new(MessageType::HeartbeatResponse, 0, 1, ies(&rts)),
        Message::new(
            MessageType::AssociationSetupRequest,
            0,
            2,
            ies(&|i| {
                node(i);
                rts(i);
            }),
        ),
        Message::new(
            MessageType::AssociationSetupResponse,
            0,
            2,
            ies(&|i| {
                node(i);
                ok(i);
                rts(i);
            }),
        ),
        Message::new(MessageType::AssociationReleaseRequest, 0, 3, ies(&node)),
        Message::new(
            MessageType::AssociationReleaseResponse,
            0,
            3,
            ies(&|i| {
                node(i);
                ok(i);
            }),
        ),
        Message::new(
            MessageType::SessionEstablishmentRequest,
            0,
            4,
            establishment,
        ),
        Message::new(
            MessageType::SessionEstablishmentResponse,
            0x1122_3344_5566_7788,
            4,
            ies(&|i| {
                node(i);
                ok(i);
                i.f_seid(7, Address::V4(Ipv4Addr::new(127, 0, 0, 2)));
            }),
        ),
        Message::new(MessageType::SessionModificationRequest, 7, 5, modification),
        Message::new(
            MessageType::SessionModificationResponse,
            0x1122_3344_5566_7788,
            5,
            ies(&ok),
        ),
        Message::new(MessageType::SessionDeletionRequest, 7, 6, Ies::new()),
        Message::new(
            MessageType::SessionDeletionResponse,
            0x1122_3344_5566_7788,
            6,
            ies(&ok),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    // No malformed packets, no expert info of warning severity or worse.
    let path = capture(&messages, dir.path(), "pfcp.pcap");
    // The check does catch a bad IE: a Recovery Time Stamp of two octets.
    let bad = Message::new(
        MessageType::HeartbeatRequest,
        0,
        9,
        ies(&|i| {
            i.octets(96, &[1, 2]);
        }),
    );
    let bad_path = dir.path().join("bad.pcap");
    std::fs::write(&bad_path, pcap(&[bad.encode().unwrap()])).unwrap();
    assert!(
        !tshark(&bad_path, &PROBLEMS).trim().is_empty(),
        "tshark flags a short IE"
    );

    let fields = |filter: &str, field: &str| fields(&path, filter, field);
    let types = fields("pfcp", "pfcp.msg_type");
    assert_eq!(
        types,
        [
            "1", "2", "5", "6", "9", "10", "50", "51", "52", "53", "54", "55"
        ]
    );
    let est = "pfcp.msg_type == 50";
    // 6 rules, one filter each; the two steering FLOW rules add a downlink PDR each.
    assert_eq!(fields(est, "pfcp.pdr_id"), ["1,2,3,4,5,6,7,8"]);
    assert_eq!(
        fields(est, "pfcp.far_id"),
        ["1,2,3,4,5,6,7,8,1,2,3,4,5,6,7,8"]
    );
    let flows = fields(est, "pfcp.flow_desc")[0].clone();
    assert!(flows.starts_with("permit out 6 from 203.0.113.10 554,8000-8010 to 10.64.0.0/10,permit out 6 from 203.0.113.11 554,8000-8010 to 10.64.0.0/10"), "{flows}");
    assert_eq!(
        fields(est, "pfcp.precedence")[0].split(',').next(),
        Some("5120") // priority 20: 20 × 256, lower precedence values match first
    );
    assert_eq!(
        fields(est, "pfcp.network_instance")[0].split(',').next(),
        Some("mec.edge.example")
    );
    assert_eq!(fields(est, "pfcp.apply_action.drop")[0], "0,0,0,0,0,0,0,1");
    assert_eq!(fields(est, "pfcp.apply_action.dupl")[0], "0,0,0,0,1,1,0,0");
    assert_eq!(
        fields(est, "pfcp.outer_hdr_creation.ipv4")[0],
        "10.100.0.10,10.100.0.10"
    );
    assert_eq!(
        fields(est, "pfcp.seid"),
        ["0x0000000000000000,0x1122334455667788"],
        "header, CP F-SEID"
    );
    assert_eq!(
        fields("pfcp.msg_type == 51", "pfcp.seid"),
        ["0x1122334455667788,0x0000000000000007"],
        "header, UP F-SEID"
    );
    assert_eq!(fields("pfcp.msg_type == 6", "pfcp.cause"), ["1"]);
    assert_eq!(
        fields("pfcp.msg_type == 5", "pfcp.node_id_ipv4"),
        ["127.0.0.1"]
    );
}

/// A filter's `packetLabel`s are IPv6 flow labels (one SDF filter per flow and label, the FL
/// flag set) and its `uri`s an application the PDR detects, whose PFDs a PFD Management
/// Request provisions: all as Wireshark reads them.
#[test]
fn packet_labels_and_uris_as_wireshark_reads_them() {
    let mut steer = rules().remove(0);
    steer.traffic_filter = vec![
        TrafficFilter {
            dst_address: Some(vec!["2001:db8:10::/48".into()]),
            protocol: Some(vec!["UDP".into()]),
            packet_label: Some(vec!["0x12345".into(), "7".into()]),
            ..TrafficFilter::default()
        },
        TrafficFilter {
            uri: Some(vec![
                "http://cdn.example/video".into(),
                "http://cdn.example/live".into(),
            ]),
            ..TrafficFilter::default()
        },
    ];
    let plan = compile(
        &[steer],
        &Steering {
            app_network_instance: "mec.edge.example".into(),
        },
        1,
        1,
    )
    .unwrap();
    let mut pfds = Ies::new();
    for (id, urls) in &plan.applications {
        pfds.application_pfds(id, urls);
    }
    let mut ies = Ies::new();
    ies.node_id(Address::V4(CP)).f_seid(1, Address::V4(CP));
    plan.write_create(&mut ies);
    let messages = [
        Message::new(MessageType::PfdManagementRequest, 0, 1, pfds),
        Message::new(MessageType::SessionEstablishmentRequest, 0, 2, ies),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = capture(&messages, dir.path(), "labels.pcap");
    let field = |name: &str| fields(&path, "pfcp", name);
    // uplink and downlink PDRs of the first filter, each with an SDF filter per label
    assert_eq!(
        field("pfcp.flow_label")[1],
        "0x012345,0x000007,0x012345,0x000007"
    );
    assert_eq!(
        field("pfcp.url")[0],
        "http://cdn.example/video,http://cdn.example/live"
    );
    let app = upf_rules::compile::application_id(&[
        "http://cdn.example/video".into(),
        "http://cdn.example/live".into(),
    ]);
    let apps = field("pfcp.application_id_str");
    assert_eq!(apps[0], app, "the PFDs' application");
    assert_eq!(
        apps[1],
        format!("{app},{app}"),
        "the uplink and downlink PDRs detect it"
    );
}
