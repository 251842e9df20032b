//! The site inventory: sites from configuration and the API, health and capacity from their
//! (simulated) VIMs, and placement of an onboarded application with the reasons for every
//! rejected site.

use reqwest::Method;
use serde_json::{Value, json};
use server_kit::on_both_dbs;

use super::common::{Ctx, Db, example, test_config};

fn site(id: &str, lat: f64, cpu: u64, arch: &str, services: &[&str]) -> Value {
    json!({
        "id": id, "name": format!("Site {id}"), "location": {"latitude": lat, "longitude": 2.35},
        "zone": "paris", "accessLatencyMs": 2.0, "services": services,
        "vim": {"kind": "simulated", "cpuMillis": cpu, "memoryMib": 32768, "architectures": [arch]}
    })
}

async fn put(ctx: &Ctx, body: Value) -> reqwest::Response {
    let id = body["id"].as_str().unwrap_or("x").to_owned();
    ctx.http
        .put(format!("{}/inventory/v1/sites/{id}", ctx.base))
        .bearer_auth(&ctx.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(ctx: &Ctx, path: &str) -> reqwest::Response {
    ctx.http
        .get(format!("{}/inventory/v1{path}", ctx.base))
        .bearer_auth(&ctx.token)
        .send()
        .await
        .unwrap()
}

async fn sites_and_placement(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
    let mut config = test_config(url, dir.path());
    config.sites =
        vec![serde_json::from_value(site("paris-1", 48.86, 16000, "x86_64", &["RNIS"])).unwrap()];
    let mut ctx = Ctx::start_with(config, dir).await;

    let listed: Value = get(&ctx, "/sites").await.json().await.unwrap();
    assert_eq!(listed[0]["id"], "paris-1");
    assert_eq!(listed[0]["healthy"], true);
    assert_eq!(listed[0]["freeCapacity"]["cpuMillis"], 16000);

    for (body, why) in [
        (site("bad id!", 0.0, 1, "x86_64", &[]), "id"),
        (site("polar", 95.0, 1, "x86_64", &[]), "latitude"),
        (
            json!({"id": "k8s", "location": {"latitude": 0, "longitude": 0}, "zone": "z", "vim": {"kind": "kubernetes"}}),
            "unsupported kind",
        ),
        (
            {
                let mut s = site("extra", 0.0, 1, "x86_64", &[]);
                s["colour"] = json!("red");
                s
            },
            "unknown field",
        ),
    ] {
        let r = put(&ctx, body).await;
        assert_eq!(r.status(), 400, "{why}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(
        put(&ctx, site("lyon-1", 45.76, 16000, "x86_64", &[]))
            .await
            .status(),
        201,
        "no RNIS"
    );
    assert_eq!(
        put(&ctx, site("tiny-1", 48.85, 1000, "x86_64", &["RNIS"]))
            .await
            .status(),
        201
    );
    assert_eq!(
        put(&ctx, site("north-1", 70.0, 16000, "x86_64", &["RNIS"]))
            .await
            .status(),
        201,
        "2,350 km from Paris"
    );
    assert_eq!(
        put(&ctx, site("arm-1", 48.85, 16000, "aarch64", &["RNIS"]))
            .await
            .status(),
        201
    );
    assert_eq!(
        put(&ctx, site("gone-1", 48.85, 16000, "x86_64", &["RNIS"]))
            .await
            .status(),
        201
    );
    assert_eq!(
        put(&ctx, site("gone-1", 48.85, 8000, "x86_64", &["RNIS"]))
            .await
            .status(),
        200,
        "replaced"
    );
    let r = ctx
        .http
        .delete(format!("{}/inventory/v1/sites/gone-1", ctx.base))
        .bearer_auth(&ctx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&ctx, "/sites/gone-1").await.status(), 404);

    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let query = json!({"appDId": "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51", "userLocation": {"latitude": 48.85, "longitude": 2.35}});
    let r = ctx
        .http
        .post(format!("{}/inventory/v1/placement", ctx.base))
        .bearer_auth(&ctx.token)
        .json(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let decision: Value = r.json().await.unwrap();
    assert_eq!(decision["chosen"], "paris-1", "{decision:#}");
    assert_eq!(
        decision["rejected"]["required service RNIS not available"],
        json!(["lyon-1"])
    );
    assert_eq!(decision["rejected"]["not enough CPU"], json!(["tiny-1"]));
    assert_eq!(decision["rejected"]["no x86_64 nodes"], json!(["arm-1"]));
    assert_eq!(
        decision["rejected"]["latency above 20 ms"],
        json!(["north-1"])
    );
    let r = ctx
        .http
        .post(format!("{}/inventory/v1/placement", ctx.base))
        .bearer_auth(&ctx.token)
        .json(&json!({"appDId": "unknown"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // sites added through the API survive a restart; a narrower token is refused
    ctx.restart().await;
    let listed: Value = get(&ctx, "/sites").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);
    let narrow: Value = ctx
        .http
        .post(format!("{}/oauth2/token", ctx.base))
        .basic_auth("oss", Some("oss-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "app_pkgm")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = ctx
        .http
        .request(Method::GET, format!("{}/inventory/v1/sites", ctx.base))
        .bearer_auth(narrow["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

on_both_dbs!(sites_and_placement);
