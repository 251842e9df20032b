//! Onboarding the shipped example packages: raw and multipart upload, fetch from a URI, AppD
//! and content retrieval, filters and selectors.

use reqwest::Method;
use serde_json::{Value, json};
use server_kit::on_both_dbs;

use super::common::{Ctx, Db, example};

on_both_dbs!(
    examples_onboard_and_are_served,
    fetch_from_uri_with_checksum,
    filters_and_selectors
);

async fn examples_onboard_and_are_served(db: Db) {
    let ctx = Ctx::start(db).await;
    let (va, status) = ctx
        .onboard("video-analytics", example("video-analytics"))
        .await;
    assert_eq!(status, 202);
    let p = ctx.json(&format!("/app_packages/{va}")).await;
    assert_eq!(
        (
            p["onboardingState"].as_str(),
            p["operationalState"].as_str(),
            p["usageState"].as_str()
        ),
        (Some("ONBOARDED"), Some("ENABLED"), Some("NOT_IN_USE"))
    );
    assert_eq!(p["appDId"], "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51");
    assert_eq!(p["appSoftwareVersion"], "2.3.0");
    assert_eq!(p["mecInfo"], json!(["3.1.1"]));
    assert_eq!(
        p["softwareImages"][0]["imagePath"],
        "registry.acme.example/vision/video-analytics:2.3.0"
    );
    assert_eq!(
        p["additionalArtifacts"][0]["artifactPath"],
        "Artifacts/config/detector.yaml"
    );
    let zip = example("video-analytics");
    let digest: String = openssl::sha::sha256(&zip)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(p["checksum"]["hash"], digest.as_str());

    // multipart upload of the second, JSON-descriptor package of the third
    let cdn = ctx.create("cdn-cache").await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(example("cdn-cache")).file_name("cdn-cache.zip"),
    );
    let r = ctx
        .http
        .put(ctx.url(&format!("/app_packages/{cdn}/package_content")))
        .bearer_auth(&ctx.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (iot, status) = ctx.onboard("iot-gateway", example("iot-gateway")).await;
    assert_eq!(status, 202);
    let p = ctx.json(&format!("/app_packages/{iot}")).await;
    assert_eq!(
        p["softwareImages"][0]["imagePath"], "Artifacts/images/iot-agent-layer.txt",
        "included image"
    );

    // by appDId
    let by_appd = ctx
        .json("/onboarded_app_packages/cdn-cache-streamco-5")
        .await;
    assert_eq!(by_appd["id"], cdn.as_str());
    let appd = ctx
        .json("/onboarded_app_packages/cdn-cache-streamco-5/appd")
        .await;
    assert_eq!(appd["appDNSRule"][1]["ipAddressType"], "IP_V6");
    let text = ctx
        .http
        .get(ctx.url(&format!("/app_packages/{va}/appd")))
        .bearer_auth(&ctx.token)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    assert!(text.text().await.unwrap().starts_with("# Video analytics"));
    let r = ctx
        .http
        .get(ctx.url(&format!("/app_packages/{va}/appd")))
        .bearer_auth(&ctx.token)
        .header("accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);

    // content, whole and ranged
    let whole = ctx
        .http
        .get(ctx.url(&format!("/app_packages/{va}/package_content")))
        .bearer_auth(&ctx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.headers()["content-type"], "application/zip");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), zip.as_slice());
    let part = ctx
        .http
        .get(ctx.url(&format!(
            "/onboarded_app_packages/{}/package_content",
            "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51"
        )))
        .bearer_auth(&ctx.token)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{}", zip.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &zip[10..20]);
    let bad = ctx
        .http
        .get(ctx.url(&format!("/app_packages/{va}/package_content")))
        .bearer_auth(&ctx.token)
        .header("range", "bytes=999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);

    // a package without content has no AppD or content yet
    let empty = ctx.create("later").await;
    assert_eq!(
        ctx.call(Method::GET, &format!("/app_packages/{empty}/appd"), None)
            .await
            .status(),
        409
    );
    assert_eq!(
        ctx.call(
            Method::GET,
            &format!("/app_packages/{empty}/package_content"),
            None
        )
        .await
        .status(),
        409
    );
    let p = ctx.json(&format!("/app_packages/{empty}")).await;
    assert_eq!(
        (
            p["onboardingState"].as_str(),
            p["operationalState"].as_str()
        ),
        (Some("CREATED"), Some("DISABLED"))
    );
    // content is accepted once only
    assert_eq!(
        ctx.upload(&va, example("video-analytics")).await.status(),
        409
    );
}

async fn fetch_from_uri_with_checksum(db: Db) {
    let ctx = Ctx::start(db).await;
    let zip = example("cdn-cache");
    let digest: String = openssl::sha::sha256(&zip)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let served = zip.clone();
    let app = axum::Router::new().route(
        "/pkg.zip",
        axum::routing::get(move || {
            let body = served.clone();
            async move { ([("content-type", "application/zip")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}/pkg.zip", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let create = |checksum: &str| json!({"appPkgName": "cdn", "appPkgVersion": "5", "appPkgPath": origin, "checksum": {"algorithm": "SHA-256", "hash": checksum}});
    let r = ctx
        .call(
            Method::POST,
            "/onboarded_app_packages",
            Some(create(&digest)),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ctx.wait_state(&id, "ONBOARDED").await;

    let wrong = "0".repeat(64);
    let r = ctx
        .call(Method::POST, "/app_packages", Some(create(&wrong)))
        .await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = ctx.wait_failed(&id).await;
    assert_eq!(failed["onboardingState"], "CREATED");
    assert!(
        failed["onboardingFailureDetails"]["detail"]
            .as_str()
            .unwrap()
            .contains("checksum")
    );

    let r = ctx
        .call(
            Method::POST,
            "/app_packages",
            Some(
                json!({"appPkgName": "x", "appPkgVersion": "1", "appPkgPath": "ftp://nope/x.zip"}),
            ),
        )
        .await;
    assert_eq!(r.status(), 400);
}

async fn filters_and_selectors(db: Db) {
    let ctx = Ctx::start(db).await;
    for name in ["video-analytics", "cdn-cache", "iot-gateway"] {
        assert_eq!(ctx.onboard(name, example(name)).await.1, 202);
    }
    ctx.create("pending").await;
    let count = |v: Value| v.as_array().unwrap().len();
    assert_eq!(count(ctx.json("/app_packages").await), 4);
    assert_eq!(
        count(
            ctx.json("/onboarded_app_packages?filter=(eq,onboardingState,ONBOARDED)")
                .await
        ),
        3
    );
    assert_eq!(
        count(
            ctx.json("/app_packages?filter=(eq,appProvider,StreamCo)")
                .await
        ),
        1
    );
    assert_eq!(
        count(
            ctx.json("/app_packages?filter=(eq,softwareImages/containerFormat,OCI)")
                .await
        ),
        1
    );
    assert_eq!(count(ctx.json("/app_packages?filter=(in,appName,cdn-cache,iot-gateway);(neq,onboardingState,CREATED)").await), 2);
    let trimmed = ctx
        .json("/app_packages?exclude_default&filter=(eq,appName,cdn-cache)")
        .await;
    assert!(trimmed[0].get("softwareImages").is_none() && trimmed[0].get("appDId").is_some());
    let kept = ctx
        .json("/app_packages?exclude_default&fields=softwareImages&filter=(eq,appName,cdn-cache)")
        .await;
    assert!(kept[0].get("softwareImages").is_some() && kept[0].get("checksum").is_none());
    for bad in [
        "?filter=(eq,colour,red)",
        "?filter=eq,appName",
        "?all_fields&exclude_default",
        "?page=2",
    ] {
        let r = ctx
            .call(Method::GET, &format!("/app_packages{bad}"), None)
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
}
