//! Application support (`mec_app_support/v1`): readiness, traffic and DNS rules with a real
//! DNS resolver, timing.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use reqwest::Method;
use serde_json::{Value, json};

use super::common::{APP1, APP2, Ctx, Db};
use server_kit::on_both_dbs;

on_both_dbs!(
    readiness_and_rules,
    dns_rules_answer_while_active,
    timing,
    transports_an_instance_depends_on
);

/// An instance's `transportDependencies` (its AppD's, or MEC 010-2 configure_platform_for_app's)
/// name transports the platform shall provide: provisioned when the platform has each (type,
/// protocol, version), refused with the one it lacks otherwise.
async fn transports_an_instance_depends_on(db: Db) {
    let ctx = Ctx::start(db).await;
    let op = ctx.token(super::common::OPERATOR).await;
    let depending_on = |kind: &str, protocol: &str, version: &str| {
        let mut config = super::common::app_config("t1");
        config["transportDependencies"] = json!([{
            "transport": {"name": "api", "type": kind, "protocol": protocol, "version": version,
                "security": {}},
            "serializers": ["JSON"], "labels": ["api"]
        }]);
        config
    };
    let path = "/mep_mgmt/v1/app_instances/t1";
    let r = ctx
        .call(
            Method::PUT,
            path,
            &op,
            Some(depending_on("MB_TOPIC_BASED", "MQTT", "3.1.1")),
        )
        .await;
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("provides no MB_TOPIC_BASED transport MQTT 3.1.1"),
        "{problem}"
    );
    assert_eq!(
        ctx.call(Method::GET, path, &op, None).await.status(),
        404,
        "nothing kept"
    );
    // the platform's own REST transport (GET /transports)
    let r = ctx
        .call(
            Method::PUT,
            path,
            &op,
            Some(depending_on("REST_HTTP", "HTTP", "2.0")),
        )
        .await;
    assert_eq!(r.status(), 201);
}

async fn readiness_and_rules(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let app = ctx.token(APP1).await;
    let ready = |id: &str, indication: &str| {
        let path = format!("/mec_app_support/v1/applications/{id}/confirm_ready");
        let body = json!({"indication": indication});
        let (ctx, app) = (&ctx, app.clone());
        async move {
            ctx.call(Method::POST, &path, &app, Some(body))
                .await
                .status()
        }
    };
    assert_eq!(ready("i1", "NOT_READY").await, 400);
    assert_eq!(ready("i2", "READY").await, 403, "bound to i1");
    assert_eq!(ready("i1", "READY").await, 204);
    assert_eq!(ready("i1", "READY").await, 204, "idempotent");
    let op = ctx.token(super::common::OPERATOR).await;
    let r = ctx
        .call(
            Method::POST,
            "/mec_app_support/v1/applications/nope/confirm_ready",
            &op,
            Some(json!({"indication": "READY"})),
        )
        .await;
    assert_eq!(r.status(), 404);

    // traffic rules: list, get with ETag, conditional put
    let list: Value = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i1/traffic_rules",
            &app,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let r = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i1/traffic_rules/tr1",
            &app,
            None,
        )
        .await;
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let mut rule: Value = r.json().await.unwrap();
    rule["state"] = json!("INACTIVE");
    let put = |tag: &str, body: Value| {
        let req = ctx
            .http
            .put(ctx.url("/mec_app_support/v1/applications/i1/traffic_rules/tr1"))
            .bearer_auth(&app)
            .header("if-match", tag)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    assert_eq!(put("\"42\"", rule.clone()).await.status(), 412);
    let ok = put(&etag, rule.clone()).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["state"], "INACTIVE");
    let mut wrong_id = rule.clone();
    wrong_id["trafficRuleId"] = json!("other");
    assert_eq!(put("*", wrong_id).await.status(), 400);
    let mut no_filter = rule.clone();
    no_filter["trafficFilter"] = json!([]);
    assert_eq!(put("*", no_filter).await.status(), 400);
    let mut bad_addr = rule.clone();
    bad_addr["trafficFilter"] = json!([{"srcAddress": ["not-an-ip"]}]);
    assert_eq!(put("*", bad_addr).await.status(), 400);
    let mut bad_priority = rule;
    bad_priority["priority"] = json!(256);
    assert_eq!(put("*", bad_priority).await.status(), 400);
    let r = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i1/traffic_rules/zzz",
            &app,
            None,
        )
        .await;
    assert_eq!(r.status(), 404);

    // another app sees none of it
    let other = ctx.token(APP2).await;
    let r = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i1/dns_rules",
            &other,
            None,
        )
        .await;
    assert_eq!(r.status(), 403);
}

pub(super) async fn resolve(dns: SocketAddr, name: &str) -> Option<Vec<IpAddr>> {
    let mut config = ResolverConfig::new();
    config.add_name_server(NameServerConfig::new(dns, Protocol::Udp));
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.attempts = 1;
    let resolver = Resolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(opts)
        .build();
    resolver
        .lookup_ip(name)
        .await
        .ok()
        .map(|l| l.iter().collect())
}

async fn dns_rules_answer_while_active(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let dns = ctx.server().dns_addr.expect("DNS server");
    let app = ctx.token(APP1).await;
    let name = "i1.mec.example.";
    assert_eq!(
        resolve(dns, name).await,
        None,
        "not answered before the app is ready"
    );

    let r = ctx
        .call(
            Method::POST,
            "/mec_app_support/v1/applications/i1/confirm_ready",
            &app,
            Some(json!({"indication": "READY"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let expected: IpAddr = "10.10.0.7".parse().unwrap();
    assert_eq!(resolve(dns, name).await, Some(vec![expected]));

    let r = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i1/dns_rules/dns1",
            &app,
            None,
        )
        .await;
    let mut rule: Value = r.json().await.unwrap();
    rule["state"] = json!("INACTIVE");
    let r = ctx
        .call(
            Method::PUT,
            "/mec_app_support/v1/applications/i1/dns_rules/dns1",
            &app,
            Some(rule.clone()),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        resolve(dns, name).await,
        None,
        "INACTIVE rule no longer answered"
    );

    rule["state"] = json!("ACTIVE");
    rule["ipAddress"] = json!("10.10.0.8");
    let r = ctx
        .call(
            Method::PUT,
            "/mec_app_support/v1/applications/i1/dns_rules/dns1",
            &app,
            Some(rule.clone()),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        resolve(dns, name).await,
        Some(vec!["10.10.0.8".parse::<IpAddr>().unwrap()])
    );

    let mut mismatched = rule.clone();
    mismatched["ipAddressType"] = json!("IP_V6");
    let r = ctx
        .call(
            Method::PUT,
            "/mec_app_support/v1/applications/i1/dns_rules/dns1",
            &app,
            Some(mismatched),
        )
        .await;
    assert_eq!(r.status(), 400);
    let mut bad_name = rule;
    bad_name["domainName"] = json!("bad name!");
    let r = ctx
        .call(
            Method::PUT,
            "/mec_app_support/v1/applications/i1/dns_rules/dns1",
            &app,
            Some(bad_name),
        )
        .await;
    assert_eq!(r.status(), 400);
}

async fn timing(db: Db) {
    let ctx = Ctx::start(db).await;
    let app = ctx.token(APP1).await;
    let now: Value = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/timing/current_time",
            &app,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now["seconds"].as_u64().unwrap().abs_diff(wall) <= 2);
    assert_eq!(now["timeSourceStatus"], "NONTRACEABLE");
    let caps: Value = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/timing/timing_caps",
            &app,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(caps["timeStamp"]["seconds"].as_u64().is_some());
    assert!(caps["ntpServers"].is_array() && caps["ptpMasters"].is_array());
}
