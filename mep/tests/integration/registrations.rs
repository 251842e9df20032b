//! MEC 011 v3 registrations: an application MEC management did not instantiate registers itself
//! with its own client (where the platform allows it), keeps its AppInfo up to date and
//! deregisters; a provisioned application reads its AppInfo and may not change it. Responses
//! validate against the ETSI MEC 011 v3.1.1 AppInfo schema.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server_kit::testing::EtsiSchemas;

use super::common::{APP1, APP2, Ctx, Db, OPERATOR, service, test_config};
use server_kit::on_both_dbs;

on_both_dbs!(applications_register_themselves_where_allowed);

fn app_info(name: &str) -> Value {
    json!({"appName": name, "appProvider": "ACME",
           "endpoint": {"uris": ["http://10.0.0.5:8080/api"]}})
}

async fn applications_register_themselves_where_allowed(db: Db) {
    let schemas = EtsiSchemas::load(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../api-specs/etsi/MecAppSupportApi.yaml"),
    );
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "mep", dir.path()).await;
    let mut config = test_config(url);
    config.allow_self_registration = true;
    let mut ctx = Ctx::start_with(config, dir).await;
    let (a1, a2) = (ctx.token(APP1).await, ctx.token(APP2).await);
    let base = "/mec_app_support/v1/registrations";

    // app1's client is bound to i1: it registers i1, and only i1
    let mut foreign = app_info("other");
    foreign["appInstanceId"] = json!("i2");
    let r = ctx.call(Method::POST, base, &a1, Some(foreign)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = ctx
        .call(Method::POST, base, &a1, Some(json!({"appName": "x"})))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "an endpoint is required"
    );
    let r = ctx
        .call(Method::POST, base, &a1, Some(app_info("analytics")))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/registrations/i1")
    );
    let created: Value = r.json().await.unwrap();
    schemas.check("AppInfo", &created);
    assert_eq!(
        (
            created["appInstanceId"].clone(),
            created["isInsByMec"].clone()
        ),
        (json!("i1"), json!(false))
    );
    let r = ctx
        .call(Method::POST, base, &a1, Some(app_info("again")))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // the registered instance uses Mp1 like any other
    let r = ctx
        .call(
            Method::POST,
            "/mec_service_mgmt/v1/applications/i1/services",
            &a1,
            Some(service("analytics")),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut updated = app_info("analytics-2");
    updated["appInstanceId"] = json!("i1");
    let r = ctx
        .call(Method::PUT, &format!("{base}/i1"), &a1, Some(updated))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let got: Value = ctx
        .call(Method::GET, &format!("{base}/i1"), &a1, None)
        .await
        .json()
        .await
        .unwrap();
    schemas.check("AppInfo", &got);
    assert_eq!(got["appName"], "analytics-2");
    // another app's client can neither read nor change it
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let body = (method == Method::PUT).then(|| app_info("hijack"));
        let r = ctx
            .call(method.clone(), &format!("{base}/i1"), &a2, body)
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method}");
    }
    // the registration outlives a restart, and deregistration removes its services
    ctx.restart().await;
    let a1 = ctx.token(APP1).await;
    let r = ctx
        .call(Method::DELETE, &format!("{base}/i1"), &a1, None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let gone = ctx
        .call(Method::GET, &format!("{base}/i1"), &a1, None)
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let services: Value = ctx
        .call(Method::GET, "/mec_service_mgmt/v1/services", &a1, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(services, json!([]));

    // a provisioned instance reads its AppInfo but may not change or remove it
    ctx.provision("i2").await;
    let a2 = ctx.token(APP2).await;
    let info: Value = ctx
        .call(Method::GET, &format!("{base}/i2"), &a2, None)
        .await
        .json()
        .await
        .unwrap();
    schemas.check("AppInfo", &info);
    assert_eq!(info["isInsByMec"], true);
    let r = ctx
        .call(
            Method::PUT,
            &format!("{base}/i2"),
            &a2,
            Some(app_info("mine")),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = ctx
        .call(Method::DELETE, &format!("{base}/i2"), &a2, None)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // where the platform does not allow it, nobody registers
    let strict = Ctx::start(Db::Sqlite).await;
    let op = strict.token(OPERATOR).await;
    let r = strict
        .call(Method::POST, base, &op, Some(app_info("x")))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
