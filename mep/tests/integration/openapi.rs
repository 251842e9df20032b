//! The OpenAPI contract: the checked-in document matches the code, and real responses validate
//! against the ETSI MEC 011 schemas (copied under `api-specs/etsi/`).

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use server_kit::testing::EtsiSchemas;

use super::common::{APP1, APP2, Callback, Ctx, Db, OPERATOR, service};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn checked_in_openapi_matches_the_code() {
    let generated = mep::api::openapi().to_pretty_json().unwrap() + "\n";
    let path = repo().join("api-specs/openapi/mep.json");
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    assert!(
        !generated.contains(api_specs::common::NOT_A_SCHEMA),
        "a schema written as JSON is not read by utoipa"
    );
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "api-specs/openapi/mep.json is stale: run UPDATE_OPENAPI=1 cargo test -p mep checked_in_openapi"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/mec_service_mgmt/v1/services",
        "/mec_service_mgmt/v1/services/{serviceId}",
        "/mec_service_mgmt/v1/transports",
        "/mec_service_mgmt/v1/applications/{appInstanceId}/services/{serviceId}",
        "/mec_service_mgmt/v1/applications/{appInstanceId}/subscriptions/{subscriptionId}",
        "/mec_app_support/v1/applications/{appInstanceId}/confirm_ready",
        "/mec_app_support/v1/applications/{appInstanceId}/confirm_termination",
        "/mec_app_support/v1/applications/{appInstanceId}/traffic_rules/{trafficRuleId}",
        "/mec_app_support/v1/applications/{appInstanceId}/dns_rules/{dnsRuleId}",
        "/mec_app_support/v1/timing/current_time",
        "/mec_app_support/v1/timing/timing_caps",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    server_kit::testing::assert_errors_documented_as_problems(&doc);
}

fn etsi(file: &str) -> EtsiSchemas {
    EtsiSchemas::load(&repo().join("api-specs/etsi").join(file))
}

/// ETSI's one-value enums become the enumerations their descriptions define, so the responses
/// are checked against every value ETSI lists (and no other).
#[test]
fn etsi_enumerations_are_read_from_their_descriptions() {
    let support = etsi("MecAppSupportApi.yaml");
    let doc = support.document();
    let values = |schema: &str, property: &str| {
        doc.pointer(&format!(
            "/components/schemas/{schema}/properties/{property}/enum"
        ))
        .cloned()
    };
    assert_eq!(
        values("DnsRule", "ipAddressType"),
        Some(json!(["IP_V6", "IP_V4"]))
    );
    assert_eq!(
        values("TrafficRule", "state"),
        Some(json!(["ACTIVE", "INACTIVE"]))
    );
    assert_eq!(
        values("TrafficRule", "filterType"),
        Some(json!(["FLOW", "PACKET"]))
    );
    assert_eq!(
        values("TrafficRule", "action").map(|v| v.as_array().unwrap().len()),
        Some(6)
    );
    assert_eq!(
        values("CurrentTime", "timeSourceStatus"),
        Some(json!(["TRACEABLE", "NONTRACEABLE"]))
    );
    assert_eq!(
        values("AppTerminationNotification", "operationAction"),
        Some(json!(["STOPPING", "TERMINATING"]))
    );
    // "e.g. GTP_U, GRE, etc.": an open list, no enumeration
    assert_eq!(values("TunnelInfo", "tunnelType"), None);
    assert!(
        !support.errors("DnsRule", &json!({"dnsRuleId": "d", "domainName": "a.example", "ipAddressType": "IP_V5", "ipAddress": "10.0.0.1"})).is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_validate_against_etsi_schemas() {
    let svc = etsi("MecServiceMgmtApi.yaml");
    let sup = etsi("MecAppSupportApi.yaml");
    let sup_v2 = etsi("v2.1.1/MecAppSupportApi.yaml");

    // the validator rejects what it should (guards against a vacuous test)
    assert!(
        !svc.errors("ServiceInfo", &json!({"version": "1", "state": "ACTIVE"}))
            .is_empty()
    );
    assert!(!sup.errors("DnsRule", &json!({"dnsRuleId": 5})).is_empty());

    let ctx = Ctx::start(Db::Sqlite).await;
    ctx.provision("i1").await;
    ctx.provision("i2").await;
    let (a1, a2, op) = (
        ctx.token(APP1).await,
        ctx.token(APP2).await,
        ctx.token(OPERATOR).await,
    );
    let get = |path: &str, token: &str| {
        let (path, token) = (path.to_owned(), token.to_owned());
        let ctx = &ctx;
        async move {
            ctx.call(Method::GET, &path, &token, None)
                .await
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    let mut avail = Callback::start(0).await;
    let sub: Value = ctx
        .call(Method::POST, "/mec_service_mgmt/v1/applications/i2/subscriptions", &a2,
            Some(json!({"subscriptionType": "SerAvailabilityNotificationSubscription", "callbackReference": avail.url})))
        .await.json().await.unwrap();
    svc.check("SerAvailabilityNotificationSubscription", &sub);
    svc.check(
        "SubscriptionLinkList",
        &get("/mec_service_mgmt/v1/applications/i2/subscriptions", &a2).await,
    );

    let mut body = service("video");
    body["livenessInterval"] = json!(10);
    let created: Value = ctx
        .call(
            Method::POST,
            "/mec_service_mgmt/v1/applications/i1/services",
            &a1,
            Some(body),
        )
        .await
        .json()
        .await
        .unwrap();
    svc.check("ServiceInfo", &created);
    for s in get("/mec_service_mgmt/v1/services", &a1)
        .await
        .as_array()
        .unwrap()
    {
        svc.check("ServiceInfo", s);
    }
    for t in get("/mec_service_mgmt/v1/transports", &a1)
        .await
        .as_array()
        .unwrap()
    {
        svc.check("TransportInfo", t);
    }
    let liveness = created["_links"]["liveness"]["href"].as_str().unwrap();
    let info: Value = ctx
        .send(ctx.http.get(liveness).bearer_auth(&a1))
        .await
        .json()
        .await
        .unwrap();
    svc.check("ServiceLivenessInfo", &info);
    svc.check("ServiceAvailabilityNotification", &avail.next().await);

    for r in get("/mec_app_support/v1/applications/i1/traffic_rules", &a1)
        .await
        .as_array()
        .unwrap()
    {
        sup.check("TrafficRule", r);
    }
    for r in get("/mec_app_support/v1/applications/i1/dns_rules", &a1)
        .await
        .as_array()
        .unwrap()
    {
        sup.check("DnsRule", r);
    }
    sup.check(
        "CurrentTime",
        &get("/mec_app_support/v1/timing/current_time", &a1).await,
    );
    sup_v2.check(
        "TimingCaps",
        &get("/mec_app_support/v1/timing/timing_caps", &a1).await,
    );

    let mut term = Callback::start(0).await;
    let sub: Value = ctx
        .call(Method::POST, "/mec_app_support/v1/applications/i1/subscriptions", &a1,
            Some(json!({"subscriptionType": "AppTerminationNotificationSubscription", "callbackReference": term.url, "appInstanceId": "i1"})))
        .await.json().await.unwrap();
    sup.check("AppTerminationNotificationSubscription", &sub);
    sup.check(
        "SubscriptionLinkList",
        &get("/mec_app_support/v1/applications/i1/subscriptions", &a1).await,
    );
    ctx.call(
        Method::DELETE,
        "/mep_mgmt/v1/app_instances/i1?graceful_timeout=5",
        &op,
        None,
    )
    .await;
    sup.check("AppTerminationNotification", &term.next().await);

    let problem = get("/mec_service_mgmt/v1/services/unknown", &a1).await;
    svc.check("ProblemDetails", &problem);
}

/// The checked-in document states the limits the MEP applies to what a client sends, so a
/// fuzzer working from it (scripts/fuzz-api.sh) finds every documented request accepted and
/// every other one refused: path identifiers, the values ETSI fixes ("Shall be set to ...").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_limits_the_server_applies() {
    use server_kit::testing::documented_valid;
    let text = std::fs::read_to_string(repo().join("api-specs/openapi/mep.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let ctx = Ctx::start(Db::Sqlite).await;
    ctx.provision("i1").await;
    let app = ctx.token(APP1).await;

    let rules = "/paths/~1mec_app_support~1v1~1applications~1{appInstanceId}~1traffic_rules";
    let id_param = format!("{rules}/get/parameters/0/schema");
    for (id, encoded, status) in [
        ("i1", "i1", 200),
        ("i\u{1}", "i%01", 400),
        (" ", "%20", 400),
        ("\u{9f}", "%C2%9F", 400),
    ] {
        let accepted = status == 200;
        assert_eq!(
            documented_valid(&doc, &id_param, &json!(id)),
            accepted,
            "{id:?}"
        );
        let path = format!("/mec_app_support/v1/applications/{encoded}/traffic_rules");
        let r = ctx.call(Method::GET, &path, &app, None).await;
        assert_eq!(r.status(), status, "{id:?}");
    }

    for (indication, status) in [("NOT_READY", 400), ("READY", 204)] {
        let body = json!({"indication": indication});
        let schema = "/components/schemas/AppReadyConfirmation";
        assert_eq!(documented_valid(&doc, schema, &body), status == 204);
        let path = "/mec_app_support/v1/applications/i1/confirm_ready";
        let r = ctx.call(Method::POST, path, &app, Some(body)).await;
        assert_eq!(r.status(), status, "{indication}");
    }

    let cb = Callback::start(0).await;
    for (kind, status) in [
        ("AppTerminationNotificationSubscription", 400),
        ("SerAvailabilityNotificationSubscription", 201),
    ] {
        let body = json!({"subscriptionType": kind, "callbackReference": cb.url});
        let schema = "/components/schemas/SerAvailabilityNotificationSubscription";
        assert_eq!(
            documented_valid(&doc, schema, &body),
            status == 201,
            "{kind}"
        );
        let path = "/mec_service_mgmt/v1/applications/i1/subscriptions";
        let r = ctx.call(Method::POST, path, &app, Some(body)).await;
        assert_eq!(r.status(), status, "{kind}");
    }
}
