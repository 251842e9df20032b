//! The site inventory: sites from configuration and the API, health and capacity from their
//! (simulated) VIMs, and placement of an onboarded application with the reasons for every
//! rejected site.

use reqwest::Method;
use serde_json::{Value, json};
use server_kit::on_both_dbs;
use server_kit::testing::{EVENTUALLY, eventually};

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
    ctx.send(
        ctx.http
            .put(format!("{}/inventory/v1/sites/{id}", ctx.base))
            .bearer_auth(&ctx.token)
            .json(&body),
    )
    .await
}

async fn get(ctx: &Ctx, path: &str) -> reqwest::Response {
    ctx.send(
        ctx.http
            .get(format!("{}/inventory/v1{path}", ctx.base))
            .bearer_auth(&ctx.token),
    )
    .await
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
    let mut with_registry = site("reg-1", 48.8, 1000, "x86_64", &[]);
    with_registry["imageRegistry"] = json!("registry.site1.example:5000/mec");
    assert_eq!(put(&ctx, with_registry).await.status(), 201);
    let shown: Value = get(&ctx, "/sites/reg-1").await.json().await.unwrap();
    assert_eq!(shown["imageRegistry"], "registry.site1.example:5000/mec");
    assert_eq!(ctx.delete_site("reg-1").await.status(), 204);

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
        (
            {
                let mut s = site("reg", 0.0, 1, "x86_64", &[]);
                s["imageRegistry"] = json!("no-host/Apps");
                s
            },
            "imageRegistry",
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
    let r = ctx.delete_site("gone-1").await;
    assert_eq!(r.status(), 204);
    assert_eq!(get(&ctx, "/sites/gone-1").await.status(), 404);

    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let query = json!({"appDId": "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51", "userLocation": {"latitude": 48.85, "longitude": 2.35}});
    let r = ctx
        .send(
            ctx.http
                .post(format!("{}/inventory/v1/placement", ctx.base))
                .bearer_auth(&ctx.token)
                .json(&query),
        )
        .await;
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
        .send(
            ctx.http
                .post(format!("{}/inventory/v1/placement", ctx.base))
                .bearer_auth(&ctx.token)
                .json(&json!({"appDId": "unknown"})),
        )
        .await;
    assert_eq!(r.status(), 404);

    // sites added through the API survive a restart; a narrower token is refused
    ctx.restart().await;
    let listed: Value = get(&ctx, "/sites").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);
    let narrow: Value = ctx
        .send(
            ctx.http
                .post(format!("{}/oauth2/token", ctx.base))
                .basic_auth("oss", Some("oss-secret"))
                .form(&[("grant_type", "client_credentials"), ("scope", "app_pkgm")]),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = ctx
        .send(
            ctx.http
                .request(Method::GET, format!("{}/inventory/v1/sites", ctx.base))
                .bearer_auth(narrow["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r.status(), 403);
}

on_both_dbs!(sites_and_placement);

/// A client names no file of the server (a kubeconfig, a simulated site's state file) and the
/// kubeconfig content it gives is checked and never shown again, not even in an error.
async fn sites_from_the_api_name_no_server_files(db: Db) {
    let ctx = Ctx::start(db).await;
    let secret = ctx._dir.path().join("secret.txt");
    std::fs::write(&secret, "TOPSECRET-LINE: a\nanother: [").unwrap();
    let other_state = ctx._dir.path().join("other-site.json");
    std::fs::write(&other_state, "{\"precious\": true}").unwrap();
    let kubernetes = |id: &str, vim: Value| {
        json!({"id": id, "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris",
               "vim": vim})
    };
    let kubeconfig = |cluster: &str, user: &str| {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{{name: k, cluster: {{server: \"https://127.0.0.1:9\", {cluster}}}}}]\n\
             users: [{{name: u, user: {{{user}}}}}]\n\
             contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n"
        )
    };
    let mut simulated = site("sim-evil", 48.86, 1000, "x86_64", &[]);
    simulated["vim"]["stateFile"] = json!(other_state);
    let path = secret.display().to_string();
    for (body, why) in [
        (
            kubernetes(
                "k-evil",
                json!({"kind": "kubernetes", "kubeconfig": path, "namespace": "n"}),
            ),
            "names a file on the server",
        ),
        (simulated, "stateFile names a file on the server"),
        (
            kubernetes(
                "k-evil",
                json!({"kind": "kubernetes", "kubeconfigContent": std::fs::read_to_string(&secret).unwrap(), "namespace": "n"}),
            ),
            "not a valid kubeconfig",
        ),
        (
            kubernetes(
                "k-evil",
                json!({"kind": "kubernetes", "kubeconfigContent": kubeconfig(&format!("certificate-authority: {path}"), "token: t"), "namespace": "n"}),
            ),
            "certificate-authority-data",
        ),
        (
            kubernetes(
                "k-evil",
                json!({"kind": "kubernetes", "kubeconfigContent": kubeconfig("insecure-skip-tls-verify: true", &format!("tokenFile: {path}")), "namespace": "n"}),
            ),
            "inline",
        ),
        (
            kubernetes(
                "k-evil",
                json!({"kind": "kubernetes", "kubeconfigContent": kubeconfig("insecure-skip-tls-verify: true", "exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}"), "namespace": "n"}),
            ),
            "plugins are not allowed",
        ),
        (
            kubernetes("k-evil", json!({"kind": "kubernetes", "namespace": "n"})),
            "kubeconfigContent is required",
        ),
    ] {
        let r = put(&ctx, body).await;
        assert_eq!(r.status(), 400, "{why}");
        let text = r.text().await.unwrap();
        assert!(text.contains(why), "{why}: {text}");
        assert!(!text.contains("TOPSECRET"), "{text}");
    }
    for id in ["k-evil", "sim-evil"] {
        assert_eq!(
            get(&ctx, &format!("/sites/{id}")).await.status(),
            404,
            "{id} not created"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&other_state).unwrap(),
        "{\"precious\": true}"
    );

    // Inline credentials are taken, kept when a replacement leaves them out, and never shown.
    let content = kubeconfig("insecure-skip-tls-verify: true", "token: kc-s3cret-token");
    let body = kubernetes(
        "k-1",
        json!({"kind": "kubernetes", "kubeconfigContent": content, "namespace": "mec"}),
    );
    assert_eq!(put(&ctx, body.clone()).await.status(), 201);
    let mut renamed = body.clone();
    renamed["zone"] = json!("lyon");
    renamed["vim"]
        .as_object_mut()
        .unwrap()
        .remove("kubeconfigContent");
    assert_eq!(put(&ctx, renamed).await.status(), 200, "credentials kept");
    let mut twin = body.clone();
    twin["id"] = json!("k-2");
    let r = put(&ctx, twin).await;
    assert_eq!(r.status(), 400, "one namespace, one site");
    assert!(r.text().await.unwrap().contains("site k-1 already uses"));
    let shown = get(&ctx, "/sites/k-1").await.text().await.unwrap();
    let listed = get(&ctx, "/sites").await.text().await.unwrap();
    for text in [&shown, &listed] {
        assert!(
            !text.contains("s3cret") && !text.contains("kubeconfigContent"),
            "{text}"
        );
    }
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["zone"], "lyon");
    assert_eq!(shown["healthy"], false, "nothing answers on port 9");
    let error = shown["lastError"].as_str().unwrap();
    assert!(
        !error.contains("s3cret") && !error.contains("required"),
        "{error}"
    );
}

on_both_dbs!(sites_from_the_api_name_no_server_files);

/// The failover timer of an unhealthy site lives in the store: it starts at the first failed
/// refresh, later failures do not move it, a restart does not reset it and a healthy refresh
/// clears it.
async fn unhealthy_since_is_stored(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
    let mut config = test_config(url.clone(), dir.path());
    config.sites =
        vec![serde_json::from_value(site("paris-1", 48.86, 16000, "x86_64", &[])).unwrap()];
    let ctx = Ctx::start_with(config, dir).await;
    let store = meao::store::Store::connect(&url).await.unwrap();
    assert!(
        store
            .sites_unhealthy_since(i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .site_observed("paris-1", false, None, Some("down"), 1_000)
        .await
        .unwrap();
    store
        .site_observed("paris-1", false, None, Some("down"), 9_000)
        .await
        .unwrap();
    assert_eq!(
        store.sites_unhealthy_since(1_000).await.unwrap(),
        ["paris-1"]
    );
    assert!(store.sites_unhealthy_since(999).await.unwrap().is_empty());
    let again = meao::store::Store::connect(&url).await.unwrap();
    assert_eq!(
        again.sites_unhealthy_since(1_000).await.unwrap(),
        ["paris-1"]
    );
    store
        .site_observed("paris-1", true, None, None, 10_000)
        .await
        .unwrap();
    assert!(
        store
            .sites_unhealthy_since(i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    drop(ctx);
}

on_both_dbs!(unhealthy_since_is_stored);

/// A site added, changed or removed through one replica reaches another's VIM connections at
/// its next refresh.
async fn replicas_share_the_inventory(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
    let mut config = test_config(url, dir.path());
    config.site_refresh_secs = 1;
    let ctx = Ctx::start_with(config, dir).await;
    let other = meao::server::Server::start(ctx.config.clone())
        .await
        .unwrap();
    assert_eq!(
        put(&ctx, site("late-1", 48.8, 4000, "x86_64", &[]))
            .await
            .status(),
        201
    );
    let cpu_is = async |want: u64| match other.inventory.vim("late-1") {
        Some(vim) => match vim.capacity().await {
            Ok(c) if c.cpu_millis == want => Ok(()),
            Ok(c) => Err(c.cpu_millis.to_string()),
            Err(e) => Err(e.to_string()),
        },
        None => Err("not connected".into()),
    };
    eventually("the other replica connects", EVENTUALLY, async || {
        cpu_is(4000).await
    })
    .await;
    assert_eq!(
        put(&ctx, site("late-1", 48.8, 8000, "x86_64", &[]))
            .await
            .status(),
        200
    );
    eventually("the other replica reconnects", EVENTUALLY, async || {
        cpu_is(8000).await
    })
    .await;
    let r = ctx.delete_site("late-1").await;
    assert_eq!(r.status(), 204);
    eventually(
        "the other replica lets go",
        EVENTUALLY,
        async || match other.inventory.vim("late-1") {
            None => Ok(()),
            Some(_) => Err("still connected"),
        },
    )
    .await;
    other.shutdown().await;
}

on_both_dbs!(replicas_share_the_inventory);

/// `locationConstraints` in the ETSI MEC 010-2 shape: a country, civic address elements or a
/// GeoJSON area (as an object or as its text) filter the sites, each rejected site with its
/// reason; the users' position (the extension) still ranks by latency.
async fn etsi_location_constraints(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
    let mut config = test_config(url, dir.path());
    let located = |id: &str, lat: f64, lon: f64, cc: &str, city: &str| {
        let mut s = site(id, lat, 16000, "x86_64", &[]);
        s["location"]["longitude"] = json!(lon);
        s["countryCode"] = json!(cc);
        s["civicAddress"] = json!([{"caType": 3, "caValue": city}]);
        serde_json::from_value(s).unwrap()
    };
    config.sites = vec![
        located("paris-1", 48.86, 2.35, "FR", "Paris"),
        located("lyon-1", 45.76, 4.84, "FR", "Lyon"),
        located("berlin-1", 52.52, 13.40, "DE", "Berlin"),
    ];
    let ctx = Ctx::start_with(config, dir).await;
    let shown: Value = get(&ctx, "/sites/lyon-1").await.json().await.unwrap();
    // the checked-in OpenAPI document describes the answer as it is
    let doc =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api-specs/openapi/meao.json");
    server_kit::testing::EtsiSchemas::load(&doc).check("SiteInfo", &shown);
    assert_eq!(shown["countryCode"], "FR");
    assert_eq!(shown["civicAddress"][0]["caValue"], "Lyon");
    assert_eq!(ctx.onboard("iot", example("iot-gateway")).await.1, 202);
    let appd = "iot-gateway-fieldbus-0.3";
    let place = async |constraints: Value| {
        ctx.send(
            ctx.http
                .post(format!("{}/inventory/v1/placement", ctx.base))
                .bearer_auth(&ctx.token)
                .json(&json!({"appDId": appd, "locationConstraints": constraints})),
        )
        .await
    };
    let around_paris = json!({"type": "Polygon", "coordinates": [
        [[2.0, 48.5], [2.7, 48.5], [2.7, 49.1], [2.0, 49.1], [2.0, 48.5]]]});
    for (constraints, chosen, reason, rejected) in [
        (
            json!({"countryCode": "DE"}),
            "berlin-1",
            "outside the requested country",
            json!(["lyon-1", "paris-1"]),
        ),
        (
            json!({"area": around_paris}),
            "paris-1",
            "outside the requested area",
            json!(["berlin-1", "lyon-1"]),
        ),
        (
            json!({"area": around_paris.to_string()}),
            "paris-1",
            "outside the requested area",
            json!(["berlin-1", "lyon-1"]),
        ),
        (
            json!({"countryCode": "FR", "civicAddressElement": [{"caType": 3, "caValue": "lyon"}]}),
            "lyon-1",
            "civic address without the requested elements",
            json!(["paris-1"]),
        ),
        (
            json!({"countryCode": "FR", "latitude": 45.7, "longitude": 4.8}),
            "lyon-1",
            "outside the requested country",
            json!(["berlin-1"]),
        ),
    ] {
        let r = place(constraints.clone()).await;
        assert_eq!(r.status(), 200, "{constraints}");
        let decision: Value = r.json().await.unwrap();
        assert_eq!(decision["chosen"], chosen, "{constraints}: {decision:#}");
        assert_eq!(
            decision["rejected"][reason], rejected,
            "{constraints}: {decision:#}"
        );
    }
    for (bad, why) in [
        (
            json!({"civicAddressElement": [{"caType": 3, "caValue": "Paris"}]}),
            "countryCode is required",
        ),
        // refused by the document's pattern, at its path
        (
            json!({"countryCode": "France"}),
            "/locationConstraints/countryCode",
        ),
        (
            json!({"area": {"type": "Polygon", "coordinates": [[[2.0, 48.5], [2.7, 48.5], [2.7, 49.1]]]}}),
            "fewer than four",
        ),
    ] {
        let r = place(bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.text().await.unwrap().contains(why), "{why}");
    }

    // the same constraint on an instantiation
    let created: Value = ctx
        .send(
            ctx.http
                .post(format!("{}/app_lcm/v1/app_instances", ctx.base))
                .bearer_auth(&ctx.token)
                .json(&json!({"appDId": appd})),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let instantiate = async |body: Value| {
        ctx.send(
            ctx.http
                .post(format!(
                    "{}/app_lcm/v1/app_instances/{id}/instantiate",
                    ctx.base
                ))
                .bearer_auth(&ctx.token)
                .json(&body),
        )
        .await
    };
    let r = instantiate(json!({"locationConstraints": {"civicAddressElement": []}})).await;
    assert_eq!(r.status(), 400);
    let r = instantiate(json!({"locationConstraints": {"countryCode": "DE"}})).await;
    assert_eq!(r.status(), 202);
    let op = r.headers()["location"].to_str().unwrap().to_owned();
    eventually("instantiated in Germany", EVENTUALLY, async || {
        let occ: Value = ctx
            .send(
                ctx.http
                    .get(format!("{}{op}", ctx.base))
                    .bearer_auth(&ctx.token),
            )
            .await
            .json()
            .await
            .unwrap();
        match occ["operationState"].as_str() {
            Some("COMPLETED") if occ["placement"]["chosen"] == "berlin-1" => Ok(()),
            _ => Err(occ),
        }
    })
    .await;
}

on_both_dbs!(etsi_location_constraints);
