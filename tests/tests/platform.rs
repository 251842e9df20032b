//! The path of one application across both services: the MEAO onboards a package,
//! instantiates it on a simulated site and configures the site's real MEP over the gRPC MEP
//! link (mutual TLS), which reports readiness and services back; the application
//! confirms readiness at the MEP, whose DNS server then answers its DNS rule and whose UPF (a
//! PFCP peer on a third-party codec) gets a session with its traffic rules; the service it offers
//! over Mp1 is discovered; a `configure_platform_for_app` changes the rules; termination removes
//! it all; the instance's state changes arrive on Kafka as CloudEvents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use e2e::{
    create_instance, get_json, link_configs, meao_config, onboard_example, resolve, run_op, token,
};
use hickory_proto::op::ResponseCode;
use meao::events::testing::{Broker, consume, free_port, kafka};
use serde_json::{Value, json};
use server_kit::auth::{ClientConfig, Secret};
use server_kit::testing::{EVENTUALLY, TestPki, eventually};
use upf_rules::testing::UpfPeer;

const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";

/// Waits until the UPF peer holds exactly `flows` (uplink and downlink PDRs of the one
/// session; none: no session at all).
async fn upf_flows(upf: &Option<UpfPeer>, flows: &[&str]) {
    let Some(upf) = upf else { return };
    eventually("the UPF's flows", EVENTUALLY, async || {
        let sessions = upf.sessions();
        let mut held: Vec<String> = sessions
            .iter()
            .flat_map(|s| s["pdrs"].as_object().unwrap().values())
            .map(|p| p["flows"][0].as_str().unwrap().to_owned())
            .collect();
        held.dedup();
        if held == flows && sessions.len() == usize::from(!flows.is_empty()) {
            Ok(())
        } else {
            Err(format!("{:#} instead of {flows:?}", json!(sessions)))
        }
    })
    .await;
}

/// Polls the MEAO's view of site paris-1's MEP until it is connected and instance `id`
/// satisfies `done`.
async fn site_mep(
    http: &reqwest::Client,
    meao: &str,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let url = format!("{meao}/inventory/v1/sites/paris-1/mep");
    eventually("the MEAO's view of the MEP", EVENTUALLY, async || {
        let mep = get_json(http, &url, token).await;
        let instance = mep["appInstances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["appInstanceId"] == id);
        match instance {
            Some(i) if mep["connected"] == true && done(i) => Ok(i.clone()),
            _ => Err(mep),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instantiate_configures_the_mep_and_terminate_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    // the site's MEP, linked to the MEAO over mutual TLS
    let link_port = free_port();
    let (meao_link, mep_link) =
        link_configs(&TestPki::new(dir.path(), "link CA"), "paris-1", link_port);
    let mut mep_config = mep::config::MepConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}/mep.db?mode=rwc", dir.path().display()),
        ..mep::config::MepConfig::default()
    };
    mep_config.dns.listen = Some("127.0.0.1:0".parse().unwrap());
    mep_config.meao = Some(mep_link);
    // the site's UPF, when scapy is at hand (always under CI)
    let upf = upf_rules::testing::python().map(|py| UpfPeer::start(&py, dir.path()));
    mep_config.upf = upf.as_ref().map(|peer| mep::steering::UpfConfig {
        pfcp_address: peer.addr,
        local: "127.0.0.1:0".parse().unwrap(),
        network_instance: "mec.paris".into(),
        t1_ms: 300,
        n1: 3,
        heartbeat_secs: 1,
    });
    mep_config.auth.signing_key = Some(Secret::new("mep-key"));
    mep_config.auth.clients = vec![ClientConfig {
        client_id: "operator".into(),
        client_secret: Secret::new("operator-secret"),
        scopes: vec![
            "mep_mgmt".into(),
            "mec_app_support".into(),
            "mec_service_mgmt".into(),
        ],
        app_instance_id: None,
    }];
    let mep = mep::server::Server::start(mep_config).await.unwrap();
    let dns = mep.dns_addr.unwrap();

    // the MEAO with one simulated site whose MEP is the one above
    let mut meao_config = meao_config(dir.path());
    meao_config.mep_link = Some(meao_link);
    meao_config.sites = vec![serde_json::from_value(json!({
        "id": "paris-1", "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris", "services": ["RNIS"],
        "mepUrl": mep.api_root, "vim": {"kind": "simulated", "cpuMillis": 16000, "memoryMib": 32768}
    }))
    .unwrap()];
    // Apache Kafka, when its jars are at hand (always under CI)
    let kafka = match kafka() {
        Some(jars) => Some(Broker::start(&jars, free_port()).await),
        None => None,
    };
    meao_config.kafka = kafka.as_ref().map(|broker| meao::events::KafkaConfig {
        brokers: broker.brokers(),
        topic_prefix: "e2e".into(),
        properties: Default::default(),
        poll_interval_ms: 50,
        retention_hours: 1,
    });
    let meao = meao::server::Server::start(meao_config).await.unwrap();
    let http = reqwest::Client::new();
    let (m, p) = (meao.api_root.clone(), mep.api_root.clone());
    let oss = token(&http, &m, "oss", "oss-secret").await;
    let operator = token(&http, &p, "operator", "operator-secret").await;

    // onboard and instantiate
    onboard_example(&http, &m, &oss, "video-analytics").await;
    let id = create_instance(&http, &m, &oss, VA).await;
    let op = run_op(&http, &m, &oss, &id, "instantiate", json!({})).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");

    // the MEP holds the AppD's rules for the instance
    let at_mep: Value = http
        .get(format!("{p}/mep_mgmt/v1/app_instances/{id}"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(at_mep["appTrafficRule"][0]["trafficRuleId"], "camera-rtsp");
    assert_eq!(
        at_mep["appDNSRule"][0]["domainName"],
        "detections.va.mec.example"
    );
    assert_eq!(
        at_mep["appInfo"]["appServiceRequired"][0]["serName"],
        "RNIS"
    );
    assert_eq!(
        resolve(dns, "detections.va.mec.example.").await,
        Err(ResponseCode::NXDomain),
        "not before the app is ready"
    );

    // the application confirms readiness: its DNS rule is answered
    let r = http
        .post(format!(
            "{p}/mec_app_support/v1/applications/{id}/confirm_ready"
        ))
        .bearer_auth(&operator)
        .json(&json!({"indication": "READY"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        resolve(dns, "detections.va.mec.example.").await,
        Ok(vec!["10.100.0.10".to_owned()])
    );
    // ... and the UPF steers its camera traffic
    upf_flows(&upf, &["permit out 6 from 203.0.113.0/24 554,8554 to any"]).await;

    // the application offers its service over Mp1 (only what its AppD says it produces);
    // other applications discover it
    let register = |name: &str| {
        http.post(format!("{p}/mec_service_mgmt/v1/applications/{id}/services"))
            .bearer_auth(&operator)
            .json(&json!({"serName": name, "version": "2.3", "state": "ACTIVE",
                "serializer": "JSON", "transportId": "mep-rest-http",
                "serCategory": {"href": "https://example.invalid/cat/video", "id": "video", "name": "video", "version": "1"}}))
            .send()
    };
    assert_eq!(register("face-recognition").await.unwrap().status(), 403);
    assert_eq!(register("video-detections").await.unwrap().status(), 201);
    let discovered = || async {
        let found: Value = http
            .get(format!(
                "{p}/mec_service_mgmt/v1/services?ser_name=video-detections"
            ))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        found.as_array().unwrap().len()
    };
    assert_eq!(discovered().await, 1);
    // ... and the MEP reports the instance READY with its service up the link
    let steered = if upf.is_some() {
        json!("INSTALLED")
    } else {
        Value::Null
    };
    let reported = site_mep(&http, &m, &oss, &id, |i| {
        i["status"]["steering"] == steered
            && i["status"]["readiness"] == "READY"
            && i["status"]["services"] == json!(["video-detections"])
    })
    .await;
    assert_eq!(reported["status"]["activeDnsRules"], 1, "{reported:#}");
    assert_eq!(reported["ackedVersion"], reported["version"]);

    // a platform configuration needing a transport the MEP does not provide stops with the
    // MEP's reason (FAILED_TEMP: the client decides), and leaves the instance as it was
    let mqtt = json!([{"transport": {"name": "events", "type": "MB_TOPIC_BASED", "protocol": "MQTT",
        "version": "3.1.1", "security": {}}, "serializers": ["JSON"], "labels": ["events"]}]);
    let op = run_op(
        &http,
        &m,
        &oss,
        &id,
        "configure_platform_for_app",
        json!({"transportDependencies": mqtt}),
    )
    .await;
    assert_eq!(op["operationState"], "FAILED_TEMP", "{op:#}");
    assert!(
        op["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("provides no MB_TOPIC_BASED transport MQTT 3.1.1")),
        "{op:#}"
    );
    let failed = http
        .post(format!(
            "{m}/app_lcm/v1/app_lcm_op_occs/{}/fail",
            op["id"].as_str().unwrap()
        ))
        .bearer_auth(&oss)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    assert_eq!(
        resolve(dns, "detections.va.mec.example.").await,
        Ok(vec!["10.100.0.10".to_owned()]),
        "the rules before the failed configuration"
    );

    // configure_platform_for_app moves the DNS rule and the camera port, on the MEP's REST
    // transport
    let body = json!({
        "transportDependencies": [{"transport": {"name": "detections", "type": "REST_HTTP",
            "protocol": "HTTP", "version": "2.0", "security": {}}, "serializers": ["JSON"], "labels": ["api"]}],
        "appDNSRule": [{"dnsRuleId": "detections", "domainName": "detections.va.mec.example", "ipAddressType": "IP_V4", "ipAddress": "10.100.0.11"}],
        "appTrafficRule": [{"trafficRuleId": "camera-rtsp", "filterType": "FLOW", "priority": 5,
            "trafficFilter": [{"dstAddress": ["203.0.113.0/24"], "dstPort": ["9554"], "protocol": ["TCP"]}],
            "action": "FORWARD_DECAPSULATED", "dstInterface": {"interfaceType": "IP", "dstIPAddress": "10.100.0.11"}}]
    });
    let op = run_op(&http, &m, &oss, &id, "configure_platform_for_app", body).await;
    assert_eq!(
        (op["operationState"].as_str(), op["lcmOperation"].as_str()),
        (Some("COMPLETED"), Some("CONFIGURE_PLATFORM_FOR_APP"))
    );
    assert_eq!(
        resolve(dns, "detections.va.mec.example.").await,
        Ok(vec!["10.100.0.11".to_owned()])
    );
    upf_flows(&upf, &["permit out 6 from 203.0.113.0/24 9554 to any"]).await;

    // terminate: the MEP forgets the instance and its DNS rule
    let op = run_op(
        &http,
        &m,
        &oss,
        &id,
        "terminate",
        json!({"terminationType": "FORCEFUL"}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED");
    let r = http
        .get(format!("{p}/mep_mgmt/v1/app_instances/{id}"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        resolve(dns, "detections.va.mec.example.").await,
        Err(ResponseCode::NXDomain)
    );
    upf_flows(&upf, &[]).await;
    assert_eq!(discovered().await, 0, "its service is gone with it");
    let removed = site_mep(&http, &m, &oss, &id, |i| {
        i["status"]["readiness"] == "ABSENT"
    })
    .await;
    assert_eq!(removed["removal"], true);
    assert_eq!(removed["ackedVersion"], removed["version"]);

    // every state change of the instance went out as an event
    if let Some(broker) = &kafka {
        let done = |seen: &BTreeMap<String, BTreeMap<String, Vec<Value>>>| {
            seen.get("app-instances")
                .and_then(|k| k.get(&id))
                .is_some_and(|e| e.len() >= 3)
        };
        let seen = consume(&broker.brokers(), "e2e", done).await.events;
        let states: Vec<&str> = seen["app-instances"][&id]
            .iter()
            .map(|e| e["data"]["instantiationState"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            ["NOT_INSTANTIATED", "INSTANTIATED", "NOT_INSTANTIATED"]
        );
    }

    meao.shutdown().await;
    mep.shutdown().await;
}
