//! An application may touch only what its instance was granted: it cannot answer another
//! instance's DNS name (403 outside its grant, 409 for a name answered for someone else) and
//! its traffic rule updates stay inside the envelope MEC management gave it (by default the
//! rules it was provisioned with), unless the platform is explicitly permissive.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::app_support::resolve;
use super::common::{APP1, APP2, Ctx, Db, OPERATOR, app_config, test_config};
use mep::platform::TrafficUpdates;
use server_kit::on_both_dbs;

on_both_dbs!(an_app_cannot_take_another_apps_name);
on_both_dbs!(traffic_rule_updates_stay_inside_the_envelope);

/// Subscriptions may not make the platform call what only it can reach (the tests allow
/// loopback, nothing else special-purpose).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_stay_where_the_outbound_policy_allows() {
    let ctx = Ctx::start(Db::Sqlite).await;
    ctx.provision("i1").await;
    let a = ctx.token(APP1).await;
    for callback in [
        "http://10.0.0.1/cb",
        "http://169.254.169.254/",
        "http://[fd00::1]/cb",
    ] {
        let sub = json!({"subscriptionType": "SerAvailabilityNotificationSubscription",
                         "callbackReference": callback});
        let r = ctx
            .call(
                Method::POST,
                "/mec_service_mgmt/v1/applications/i1/subscriptions",
                &a,
                Some(sub),
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{callback}");
        let p: Value = r.json().await.unwrap();
        assert!(
            p["detail"].as_str().unwrap().contains("outbound policy"),
            "{p}"
        );
    }
}

async fn start(db: Db, configure: impl FnOnce(&mut mep::config::MepConfig)) -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "mep", dir.path()).await;
    let mut config = test_config(url);
    configure(&mut config);
    Ctx::start_with(config, dir).await
}

async fn ready(ctx: &Ctx, id: &str, token: &str) {
    let path = format!("/mec_app_support/v1/applications/{id}/confirm_ready");
    let r = ctx
        .call(
            Method::POST,
            &path,
            token,
            Some(json!({"indication": "READY"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn put_dns(ctx: &Ctx, token: &str, domain: &str, ip: &str) -> StatusCode {
    let rule = json!({"dnsRuleId": "dns1", "domainName": domain, "ipAddressType": "IP_V4",
                      "ipAddress": ip, "ttl": 30, "state": "ACTIVE"});
    ctx.call(
        Method::PUT,
        "/mec_app_support/v1/applications/i1/dns_rules/dns1",
        token,
        Some(rule),
    )
    .await
    .status()
}

async fn an_app_cannot_take_another_apps_name(db: Db) {
    let ctx = start(db, |c| {
        c.app_rules.dns_domain_suffixes = vec!["apps.mec.example".into()];
    })
    .await;
    ctx.provision("i1").await;
    ctx.provision("i2").await;
    let (a, b) = (ctx.token(APP1).await, ctx.token(APP2).await);
    ready(&ctx, "i1", &a).await;
    ready(&ctx, "i2", &b).await;
    let dns = ctx.server().dns_addr.unwrap();

    // the attack: app A answers app B's name with its own address
    assert_eq!(
        put_dns(&ctx, &a, "i2.mec.example", "6.6.6.6").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put_dns(&ctx, &a, "bank.example", "6.6.6.6").await,
        StatusCode::FORBIDDEN
    );
    let answered = resolve(dns, "i2.mec.example.").await.unwrap();
    assert_eq!(answered, ["10.10.0.7".parse::<std::net::IpAddr>().unwrap()]);

    // inside its grant: its own name with another address, or a free name below the suffix
    assert_eq!(
        put_dns(&ctx, &a, "i1.mec.example", "10.10.0.8").await,
        StatusCode::OK
    );
    assert_eq!(
        put_dns(&ctx, &a, "cam.apps.mec.example", "10.10.0.8").await,
        StatusCode::OK
    );
    // a name below the suffix that another instance answers is theirs: 409
    let b_rule = json!({"dnsRuleId": "dns1", "domainName": "cam.apps.mec.example",
                        "ipAddressType": "IP_V4", "ipAddress": "6.6.6.6", "state": "ACTIVE"});
    let r = ctx
        .call(
            Method::PUT,
            "/mec_app_support/v1/applications/i2/dns_rules/dns1",
            &b,
            Some(b_rule),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("i1"),
        "{problem}"
    );
    assert_eq!(
        resolve(dns, "cam.apps.mec.example.").await.unwrap(),
        ["10.10.0.8".parse::<std::net::IpAddr>().unwrap()]
    );

    // MEC management may grant more: a suffix of the instance's own
    let op = ctx.token(OPERATOR).await;
    let mut config = app_config("i1");
    config["appRulePolicy"] = json!({"dnsDomains": ["i1.mec.example", "*.i1.mec.example"]});
    let r = ctx
        .call(
            Method::PUT,
            "/mep_mgmt/v1/app_instances/i1",
            &op,
            Some(config),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        put_dns(&ctx, &a, "edge.i1.mec.example", "10.10.0.9").await,
        StatusCode::OK
    );
    assert_eq!(
        put_dns(&ctx, &a, "edge.i2.mec.example", "10.10.0.9").await,
        StatusCode::FORBIDDEN
    );
}

fn rule(dst: &str, port: &str, priority: u8, action: &str, to: &str) -> Value {
    json!({
        "trafficRuleId": "tr1", "filterType": "FLOW", "priority": priority,
        "trafficFilter": [{"dstAddress": [dst], "dstPort": [port], "protocol": ["TCP"]}],
        "action": action,
        "dstInterface": {"interfaceType": "IP", "dstIpAddress": to},
        "state": "ACTIVE"
    })
}

async fn put_rule(ctx: &Ctx, token: &str, body: Value) -> (StatusCode, Value) {
    let r = ctx
        .call(
            Method::PUT,
            "/mec_app_support/v1/applications/i1/traffic_rules/tr1",
            token,
            Some(body),
        )
        .await;
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn traffic_rule_updates_stay_inside_the_envelope(db: Db) {
    let ctx = start(db, |_| {}).await;
    ctx.provision("i1").await;
    let a = ctx.token(APP1).await;
    let fwd = "FORWARD_DECAPSULATED";
    // the attacks: every flow of the site, top priority, dropped or sent elsewhere
    for (body, why) in [
        (
            rule("0.0.0.0/0", "443", 1, fwd, "10.10.0.7"),
            "trafficFilter",
        ),
        (
            rule("10.20.0.0/16", "1-65535", 1, fwd, "10.10.0.7"),
            "trafficFilter",
        ),
        (rule("10.20.0.0/16", "443", 0, fwd, "10.10.0.7"), "priority"),
        (
            rule("10.20.0.0/16", "443", 1, "DROP", "10.10.0.7"),
            "action",
        ),
        (
            rule("10.20.0.0/16", "443", 1, fwd, "6.6.6.6"),
            "dstInterface",
        ),
    ] {
        let (status, problem) = put_rule(&ctx, &a, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{problem}"
        );
    }
    // inside: narrower destinations, a lower priority, switching the rule off
    let (status, _) = put_rule(&ctx, &a, rule("10.20.1.0/24", "443", 7, fwd, "10.10.0.7")).await;
    assert_eq!(status, StatusCode::OK);
    let mut off = rule("10.20.0.0/16", "443", 1, fwd, "10.10.0.7");
    off["state"] = json!("INACTIVE");
    assert_eq!(put_rule(&ctx, &a, off).await.0, StatusCode::OK);

    // only an explicitly permissive platform lets an app widen its rules
    let open = start(Db::Sqlite, |c| {
        c.app_rules.traffic_updates = TrafficUpdates::Permissive
    })
    .await;
    open.provision("i1").await;
    let a = open.token(APP1).await;
    let (status, _) = put_rule(&open, &a, rule("0.0.0.0/0", "443", 0, "DROP", "10.10.0.7")).await;
    assert_eq!(status, StatusCode::OK);
}
