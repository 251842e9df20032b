//! Service registry and discovery (`mec_service_mgmt/v1`).

use reqwest::Method;
use serde_json::{Value, json};

use super::common::{APP1, APP2, Ctx, Db, OPERATOR, app_config, service};
use server_kit::on_both_dbs;
use server_kit::testing::{EVENTUALLY, eventually};

on_both_dbs!(
    register_discover_update_delete,
    discovery_filters,
    liveness_suspends_and_recovers,
    state_survives_restart,
    only_declared_services_are_registered
);

/// An instance that declares the services it produces may register only those, before and
/// after a restart.
async fn only_declared_services_are_registered(db: Db) {
    let mut ctx = Ctx::start(db).await;
    let mut config = app_config("i1");
    config["appServiceProduced"] = json!([{"serName": "video", "version": "1.0",
        "transportsSupported": [{"transport": {"name": "REST", "type": "REST_HTTP", "protocol": "HTTP",
            "version": "2.0", "security": {}}, "serializers": ["JSON"]}]}]);
    let op = ctx.token(OPERATOR).await;
    let r = ctx
        .call(
            Method::PUT,
            "/mep_mgmt/v1/app_instances/i1",
            &op,
            Some(config),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    for restarted in [false, true] {
        if restarted {
            ctx.restart().await;
        }
        let app = ctx.token(APP1).await;
        let path = "/mec_service_mgmt/v1/applications/i1/services";
        let r = ctx
            .call(Method::POST, path, &app, Some(service("audio")))
            .await;
        assert_eq!(r.status(), 403);
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains("audio"),
            "{problem}"
        );
        if !restarted {
            let r = ctx
                .call(Method::POST, path, &app, Some(service("video")))
                .await;
            assert_eq!(r.status(), 201);
        }
    }
}

async fn register_discover_update_delete(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let app = ctx.token(APP1).await;

    let r = ctx
        .call(
            Method::POST,
            "/mec_service_mgmt/v1/applications/i1/services",
            &app,
            Some(service("video")),
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let created: Value = r.json().await.unwrap();
    let id = created["serInstanceId"].as_str().unwrap().to_owned();
    assert_eq!(location, created["_links"]["self"]["href"]);
    assert!(location.ends_with(&format!("/applications/i1/services/{id}")));
    assert_eq!(created["transportInfo"]["type"], "REST_HTTP");
    assert!(created.get("transportId").is_none());

    // any app discovers it
    let other = ctx.token(APP2).await;
    let list: Value = ctx
        .call(Method::GET, "/mec_service_mgmt/v1/services", &other, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let one = ctx
        .call(
            Method::GET,
            &format!("/mec_service_mgmt/v1/services/{id}"),
            &other,
            None,
        )
        .await;
    assert_eq!(one.status(), 200);

    // conditional update: stale tag refused, current tag accepted
    let mut update = created.clone();
    update["state"] = json!("INACTIVE");
    let stale = ctx
        .send(
            ctx.http
                .put(ctx.url(&format!(
                    "/mec_service_mgmt/v1/applications/i1/services/{id}"
                )))
                .bearer_auth(&app)
                .header("if-match", "\"99\"")
                .json(&update),
        )
        .await;
    assert_eq!(stale.status(), 412);
    assert_eq!(stale.headers()["content-type"], "application/problem+json");
    let ok = ctx
        .send(
            ctx.http
                .put(ctx.url(&format!(
                    "/mec_service_mgmt/v1/applications/i1/services/{id}"
                )))
                .bearer_auth(&app)
                .header("if-match", &etag)
                .json(&update),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_ne!(ok.headers()["etag"].to_str().unwrap(), etag);
    let updated: Value = ok.json().await.unwrap();
    assert_eq!(updated["state"], "INACTIVE");

    // another app may not touch it
    let r = ctx
        .call(
            Method::DELETE,
            &format!("/mec_service_mgmt/v1/applications/i1/services/{id}"),
            &other,
            None,
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = ctx
        .call(
            Method::DELETE,
            &format!("/mec_service_mgmt/v1/applications/i1/services/{id}"),
            &app,
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = ctx
        .call(
            Method::GET,
            &format!("/mec_service_mgmt/v1/services/{id}"),
            &app,
            None,
        )
        .await;
    assert_eq!(r.status(), 404);
}

async fn discovery_filters(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    ctx.provision("i2").await;
    let a1 = ctx.token(APP1).await;
    let a2 = ctx.token(APP2).await;
    let mut remote = service("cdn");
    remote["isLocal"] = json!(false);
    remote["scopeOfLocality"] = json!("ZONE");
    remote["serCategory"]["id"] = json!("cat-cdn");
    for (token, app, body) in [
        (&a1, "i1", service("video")),
        (&a2, "i2", remote),
        (&a2, "i2", service("rnis")),
    ] {
        let r = ctx
            .call(
                Method::POST,
                &format!("/mec_service_mgmt/v1/applications/{app}/services"),
                token,
                Some(body),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let names = |v: Value| {
        let mut n: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["serName"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    let get = |q: &str| {
        let path = format!("/mec_service_mgmt/v1/services{q}");
        let ctx = &ctx;
        let a1 = a1.clone();
        async move { ctx.call(Method::GET, &path, &a1, None).await }
    };
    assert_eq!(
        names(get("?ser_name=video,cdn").await.json().await.unwrap()),
        ["cdn", "video"]
    );
    assert_eq!(
        names(
            get("?ser_name=video&ser_name=rnis")
                .await
                .json()
                .await
                .unwrap()
        ),
        ["rnis", "video"]
    );
    assert_eq!(
        names(get("?ser_category_id=cat-cdn").await.json().await.unwrap()),
        ["cdn"]
    );
    assert_eq!(
        names(get("?is_local=false").await.json().await.unwrap()),
        ["cdn"]
    );
    assert_eq!(
        names(
            get("?scope_of_locality=MEC_HOST")
                .await
                .json()
                .await
                .unwrap()
        ),
        ["rnis", "video"]
    );
    assert_eq!(
        names(get("?consumed_local_only=true").await.json().await.unwrap()),
        ["cdn", "rnis", "video"]
    );
    let app2_only: Value = ctx
        .call(
            Method::GET,
            "/mec_service_mgmt/v1/applications/i2/services?ser_name=cdn",
            &a2,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(names(app2_only), ["cdn"]);
    for bad in [
        "?instance_id=1",
        "?ser_name=a&ser_category_id=b",
        "?is_local=maybe",
        "?scope_of_locality=MOON",
    ] {
        let r = get(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let long = format!("?ser_name={}", "x".repeat(5000));
    assert_eq!(get(&long).await.status(), 414);
}

async fn liveness_suspends_and_recovers(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let app = ctx.token(APP1).await;
    let mut body = service("beating");
    body["livenessInterval"] = json!(1);
    let created: Value = ctx
        .call(
            Method::POST,
            "/mec_service_mgmt/v1/applications/i1/services",
            &app,
            Some(body),
        )
        .await
        .json()
        .await
        .unwrap();
    let liveness = created["_links"]["liveness"]["href"]
        .as_str()
        .expect("liveness link")
        .to_owned();
    let info: Value = ctx
        .send(ctx.http.get(&liveness).bearer_auth(&app))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (info["state"].as_str(), info["interval"].as_u64()),
        (Some("ACTIVE"), Some(1))
    );

    // no heartbeat for more than two intervals: SUSPENDED
    eventually(
        "the service suspended without heartbeats",
        EVENTUALLY,
        async || {
            let info: Value = ctx
                .send(ctx.http.get(&liveness).bearer_auth(&app))
                .await
                .json()
                .await
                .unwrap();
            if info["state"] == "SUSPENDED" {
                Ok(())
            } else {
                Err(info)
            }
        },
    )
    .await;
    let bad = ctx
        .send(
            ctx.http
                .patch(&liveness)
                .bearer_auth(&app)
                .json(&json!({"state": "INACTIVE"})),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let beat = ctx
        .send(
            ctx.http
                .patch(&liveness)
                .bearer_auth(&app)
                .json(&json!({"state": "ACTIVE"})),
        )
        .await;
    assert_eq!(beat.status(), 204);
    let info: Value = ctx
        .send(ctx.http.get(&liveness).bearer_auth(&app))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["state"], "ACTIVE");
}

async fn state_survives_restart(db: Db) {
    let mut ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let app = ctx.token(APP1).await;
    let created: Value = ctx
        .call(
            Method::POST,
            "/mec_service_mgmt/v1/applications/i1/services",
            &app,
            Some(service("kept")),
        )
        .await
        .json()
        .await
        .unwrap();
    ctx.restart().await;
    let app = ctx.token(APP1).await;
    let id = created["serInstanceId"].as_str().unwrap();
    let r = ctx
        .call(
            Method::GET,
            &format!("/mec_service_mgmt/v1/services/{id}"),
            &app,
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let rules: Value = ctx
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
    assert_eq!(rules[0]["trafficRuleId"], "tr1");
}
