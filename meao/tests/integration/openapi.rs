//! The OpenAPI contract of the MEAO: the checked-in document matches the code, and real
//! responses validate against the ETSI MEC 010-2 schemas (copied under `api-specs/etsi/`).

use reqwest::Method;
use serde_json::{Value, json};

use server_kit::testing::EtsiSchemas;

use super::common::{Callback, Ctx, Db, example, rewrite};

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn checked_in_openapi_matches_the_code() {
    let generated = meao::api::openapi().to_pretty_json().unwrap() + "\n";
    let path = repo().join("api-specs/openapi/meao.json");
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
        "api-specs/openapi/meao.json is stale: run UPDATE_OPENAPI=1 cargo test -p meao checked_in_openapi"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    for p in [
        "/app_pkgm/v1/app_packages",
        "/app_pkgm/v1/app_packages/{appPkgId}",
        "/app_pkgm/v1/app_packages/{appPkgId}/appd",
        "/app_pkgm/v1/app_packages/{appPkgId}/package_content",
        "/app_pkgm/v1/onboarded_app_packages",
        "/app_pkgm/v1/onboarded_app_packages/{appDId}",
        "/app_pkgm/v1/onboarded_app_packages/{appDId}/appd",
        "/app_pkgm/v1/onboarded_app_packages/{appDId}/package_content",
        "/app_pkgm/v1/subscriptions",
        "/app_pkgm/v1/subscriptions/{subscriptionId}",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    // two types of one name are two schemas
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["OperationalState"]["enum"],
        json!(["ENABLED", "DISABLED"])
    );
    assert_eq!(
        schemas["AppInstanceOperationalState"]["enum"],
        json!(["STARTED", "STOPPED"])
    );
    assert_eq!(
        schemas["TrafficRuleDescriptor"]["properties"]["priority"]["maximum"],
        255
    );
    // errors as they are served, and those the edge gives every operation
    let content = &doc["paths"]["/app_pkgm/v1/app_packages/{appPkgId}/package_content"];
    for status in ["400", "401", "403", "404", "413", "415"] {
        assert!(
            content["put"]["responses"][status]["content"]["application/problem+json"].is_object(),
            "PUT package_content {status}: {content}"
        );
    }
    assert!(content["get"]["responses"]["406"].is_object());
    server_kit::testing::assert_errors_documented_as_problems(&doc);
    // what mecplane accepts beyond ETSI is documented as an extension
    let instantiate = &doc["components"]["schemas"]["InstantiateAppRequest"];
    assert!(
        !instantiate["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("selectedMECHostInfo"))),
        "{instantiate}"
    );
    assert!(
        instantiate["properties"]["selectedMECHostInfo"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("mecplane extension")),
        "{instantiate}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_validate_against_etsi_schemas() {
    let etsi = EtsiSchemas::load(&repo().join("api-specs/etsi/MEC01002_AppPkgMgmt.yaml"));
    assert!(
        !etsi.errors("AppPkgInfo", &json!({"id": 1})).is_empty(),
        "the validator is not vacuous"
    );

    let ctx = Ctx::start(Db::Sqlite).await;
    let mut cb = Callback::start(0).await;
    let r = ctx.call(Method::POST, "/subscriptions", Some(json!({"callbackUri": cb.url, "subscriptionType": "AppPackageOnBoardingSubscription"}))).await;
    etsi.check("AppPkgSubscriptionInfo", &r.json().await.unwrap());
    etsi.check(
        "AppPkgSubscriptionLinkList",
        &ctx.json("/subscriptions").await,
    );
    let (id, _) = ctx.onboard("va", example("video-analytics")).await;
    etsi.check(
        "AppPkgInfo",
        &ctx.json(&format!("/app_packages/{id}")).await,
    );
    for p in ctx.json("/app_packages").await.as_array().unwrap() {
        etsi.check("AppPkgInfo", p);
    }
    // a failed onboarding: CREATED again, the problem in onboardingFailureDetails
    let broken = rewrite(
        &example("cdn-cache"),
        "cdn-cache.yaml",
        b"appDId: [unclosed",
    );
    let (failed, _) = ctx.onboard("broken", broken).await;
    let failed = ctx.wait_failed(&failed).await;
    assert_eq!(failed["onboardingState"], "CREATED");
    // ETSI's AppPkgInfo requires at least one software image and MEC version of every package,
    // which a package without content cannot have: the only errors allowed for one
    let without_content = [
        "[] has less than 1 item at /mecInfo",
        "[] has less than 1 item at /softwareImages",
    ];
    let errors: Vec<String> = etsi
        .errors("AppPkgInfo", &failed)
        .into_iter()
        .filter(|e| !without_content.contains(&e.as_str()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{failed:#}");
    etsi.check("ProblemDetails", &failed["onboardingFailureDetails"]);
    let mut not_etsi = failed.clone();
    not_etsi["onboardingState"] = json!("ERROR");
    assert!(
        !etsi.errors("AppPkgInfo", &not_etsi).is_empty(),
        "the onboarding states are those ETSI defines"
    );
    etsi.check("AppPkgNotification", &cb.next().await);
    let r = ctx
        .call(
            Method::PATCH,
            &format!("/app_packages/{id}"),
            Some(json!({"operationalState": "DISABLED"})),
        )
        .await;
    etsi.check("AppPkgInfoModifications", &r.json().await.unwrap());
    let problem = ctx
        .call(Method::GET, "/app_packages/nope", None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    etsi.check("ProblemDetails", &problem);
}

/// Every byte of `s` percent-encoded: a path segment that reaches the server as it is.
fn encoded(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The checked-in document states the limits the MEAO applies to what a client sends, so a
/// fuzzer working from it (scripts/fuzz-api.sh) finds every documented request accepted and
/// every other one refused: path identifiers, the names of a new package, callback URIs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_the_limits_the_server_applies() {
    use server_kit::testing::documented_valid;
    let text = std::fs::read_to_string(repo().join("api-specs/openapi/meao.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let ctx = Ctx::start(Db::Sqlite).await;

    let id_param = "/paths/~1app_lcm~1v1~1app_instances~1{appInstanceId}/get/parameters/0/schema";
    let long = "i".repeat(257);
    for (id, accepted) in [
        ("x", true),
        ("é x", true),
        ("a\u{1}b", false),
        ("\u{85}", false),
        (" ", false),
        (long.as_str(), false),
    ] {
        assert_eq!(
            documented_valid(&doc, id_param, &json!(id)),
            accepted,
            "{id:?}"
        );
        let url = format!("{}/app_lcm/v1/app_instances/{}", ctx.base, encoded(id));
        let r = ctx.http.get(url).bearer_auth(&ctx.token).send().await;
        let status = r.unwrap().status();
        assert_eq!(status, if accepted { 404 } else { 400 }, "{id:?}");
    }

    let long = "n".repeat(257);
    for (name, data, accepted) in [
        ("video", json!({"team": "vision"}), true),
        (" ", json!(null), false),
        ("a\u{7}", json!(null), false),
        (long.as_str(), json!(null), false),
        // KeyValuePairs: an object, never a list
        ("video", json!([null, null]), false),
    ] {
        let body = json!({"appPkgName": name, "appPkgVersion": "1.0", "userDefinedData": data});
        let schema = "/components/schemas/CreateAppPkg";
        assert_eq!(documented_valid(&doc, schema, &body), accepted, "{name:?}");
        let r = ctx.call(Method::POST, "/app_packages", Some(body)).await;
        assert_eq!(r.status(), if accepted { 201 } else { 400 }, "{name:?}");
    }

    let cb = Callback::start(0).await;
    for (uri, accepted) in [
        (cb.url.as_str(), true),
        ("", false),
        ("ftp://127.0.0.1/x", false),
        ("http://", false),
    ] {
        let body =
            json!({"subscriptionType": "AppPackageOnBoardingSubscription", "callbackUri": uri});
        let schema = "/components/schemas/AppPkgSubscription";
        assert_eq!(documented_valid(&doc, schema, &body), accepted, "{uri:?}");
        let r = ctx.call(Method::POST, "/subscriptions", Some(body)).await;
        assert_eq!(r.status(), if accepted { 201 } else { 400 }, "{uri:?}");
    }
}
