//! Onboarding the shipped example packages: raw and multipart upload, fetch from a URI, AppD
//! and content retrieval, filters and selectors.

use reqwest::Method;
use serde_json::{Value, json};
use server_kit::on_both_dbs;

use super::common::{
    Ctx, Db, Storage, assert_not_allowed, example, example_copy, on_dbs_and_s3, rewrite,
};

on_dbs_and_s3!(
    examples_onboard_and_are_served,
    fetch_from_uri_with_checksum
);
on_both_dbs!(
    checksums_of_the_sha2_and_sha3_families,
    filters_and_selectors
);

async fn examples_onboard_and_are_served(db: Db, storage: Storage) {
    let ctx = Ctx::start_stored(db, storage).await;
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
        .send(
            ctx.http
                .put(ctx.url(&format!("/app_packages/{cdn}/package_content")))
                .bearer_auth(&ctx.token)
                .multipart(form),
        )
        .await;
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
        .send(
            ctx.http
                .get(ctx.url(&format!("/app_packages/{va}/appd")))
                .bearer_auth(&ctx.token)
                .header("accept", "text/plain"),
        )
        .await;
    assert_eq!(text.status(), 200);
    assert!(text.text().await.unwrap().starts_with("# Video analytics"));
    let r = ctx
        .send(
            ctx.http
                .get(ctx.url(&format!("/app_packages/{va}/appd")))
                .bearer_auth(&ctx.token)
                .header("accept", "image/png"),
        )
        .await;
    assert_eq!(r.status(), 406);

    // content, whole and ranged
    let whole = ctx
        .send(
            ctx.http
                .get(ctx.url(&format!("/app_packages/{va}/package_content")))
                .bearer_auth(&ctx.token),
        )
        .await;
    assert_eq!(whole.headers()["content-type"], "application/zip");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), zip.as_slice());
    let part = ctx
        .send(
            ctx.http
                .get(ctx.url(&format!(
                    "/onboarded_app_packages/{}/package_content",
                    "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51"
                )))
                .bearer_auth(&ctx.token)
                .header("range", "bytes=10-19"),
        )
        .await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{}", zip.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &zip[10..20]);

    // a representation the client's Accept excludes is not sent: 406
    let get = async |path: &str, accept: &str| {
        ctx.send(
            ctx.http
                .get(ctx.url(path))
                .bearer_auth(&ctx.token)
                .header("accept", accept),
        )
        .await
    };
    let content = format!("/app_packages/{va}/package_content");
    let package = format!("/app_packages/{va}");
    for (path, accept, status) in [
        (&content, "application/json", 406),
        (&content, "application/zip;q=0, */*", 406),
        (&content, "application/zip", 200),
        (&content, "application/json, */*;q=0.1", 200),
        (&package, "application/zip", 406),
        (&package, "text/html, application/*;q=0.9", 200),
    ] {
        let r = get(path, accept).await;
        assert_eq!(r.status(), status, "GET {path} with Accept: {accept}");
        if status == 406 {
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let problem: Value = r.json().await.unwrap();
            assert_eq!(problem["status"], 406, "{problem}");
        }
    }
    let bad = ctx
        .send(
            ctx.http
                .get(ctx.url(&format!("/app_packages/{va}/package_content")))
                .bearer_auth(&ctx.token)
                .header("range", "bytes=999999-"),
        )
        .await;
    assert_eq!(bad.status(), 416);

    // a package without content has no AppD or content yet
    let empty = ctx.create("later").await;
    assert_not_allowed(
        ctx.call(Method::GET, &format!("/app_packages/{empty}/appd"), None)
            .await,
        "no AppD before onboarding",
    )
    .await;
    assert_not_allowed(
        ctx.call(
            Method::GET,
            &format!("/app_packages/{empty}/package_content"),
            None,
        )
        .await,
        "no content before onboarding",
    )
    .await;
    let p = ctx.json(&format!("/app_packages/{empty}")).await;
    assert_eq!(
        (
            p["onboardingState"].as_str(),
            p["operationalState"].as_str()
        ),
        (Some("CREATED"), Some("DISABLED"))
    );
    // content is accepted once only
    assert_not_allowed(
        ctx.upload(&va, example("video-analytics")).await,
        "content is accepted once only",
    )
    .await;
}

async fn fetch_from_uri_with_checksum(db: Db, storage: Storage) {
    let ctx = Ctx::start_stored(db, storage).await;
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

fn hex_digest(md: openssl::hash::MessageDigest, content: &[u8]) -> String {
    openssl::hash::hash(md, content)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The package's manifest with every digest recomputed with `md`, named `algorithm`.
fn manifest_with(
    zip: &[u8],
    manifest: &str,
    md: openssl::hash::MessageDigest,
    algorithm: &str,
) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let text = std::io::read_to_string(archive.by_name(manifest).unwrap()).unwrap();
    let mut out = String::new();
    let mut source = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Source: ") {
            source = Some(name.to_owned());
            out.push_str(line);
        } else if line.starts_with("Algorithm: ") {
            out.push_str(&format!("Algorithm: {algorithm}"));
        } else if line.starts_with("Hash: ") {
            let name = source.take().unwrap();
            let content = std::io::read_to_string(archive.by_name(&name).unwrap()).unwrap();
            out.push_str(&format!("Hash: {}", hex_digest(md, content.as_bytes())));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    rewrite(zip, manifest, out.as_bytes())
}

async fn checksums_of_the_sha2_and_sha3_families(db: Db) {
    use openssl::hash::MessageDigest;
    let ctx = Ctx::start(db).await;
    let create = |algorithm: &str, hash: &str| json!({"appPkgName": "iot", "appPkgVersion": "1", "checksum": {"algorithm": algorithm, "hash": hash}});
    for (algorithm, digits) in [
        ("MD5", 32),
        ("SHA-1", 40),
        ("SHA-512", 64),
        ("SHA3-256", 63),
    ] {
        let r = ctx
            .call(
                Method::POST,
                "/app_packages",
                Some(create(algorithm, &"a".repeat(digits))),
            )
            .await;
        assert_eq!(r.status(), 400, "{algorithm} with {digits} digits");
    }

    // SHA-512 in the AppD, SHA3-256 in the manifest, SHA-384 declared for the whole package
    let dir = example_copy("iot-gateway");
    let copy = dir.path();
    let image = std::fs::read(copy.join("Artifacts/images/iot-agent-layer.txt")).unwrap();
    let appd_path = copy.join("Definitions/iot-gateway.json");
    let appd = std::fs::read_to_string(&appd_path).unwrap().replace(
        r#""algorithm": "SHA-256", "hash": "3e98a4dbb02faba7ad53e5743d0541473e93142f45e44de08fba30419ee9615e""#,
        &format!(r#""algorithm": "SHA-512", "hash": "{}""#, hex_digest(MessageDigest::sha512(), &image)),
    );
    assert!(appd.contains("SHA-512"));
    std::fs::write(&appd_path, appd).unwrap();
    let built = app_package::build::build(copy, None).unwrap();
    let zip = manifest_with(
        &built,
        "iot-gateway.mf",
        MessageDigest::sha3_256(),
        "SHA3-256",
    );
    let r = ctx
        .call(
            Method::POST,
            "/app_packages",
            Some(create(
                "SHA-384",
                &hex_digest(MessageDigest::sha384(), &zip).to_uppercase(),
            )),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ctx.upload(&id, zip.clone()).await.status(), 202);
    let p = ctx.wait_state(&id, "ONBOARDED").await;
    assert_eq!(p["softwareImages"][0]["checksum"]["algorithm"], "SHA-512");

    // a manifest digest that does not match under its algorithm
    let wrong = manifest_with(
        &built,
        "iot-gateway.mf",
        MessageDigest::sha3_256(),
        "SHA3-512",
    );
    let (id, status) = ctx.onboard("iot-wrong", wrong).await;
    assert_eq!(status, 400);
    let p = ctx.wait_failed(&id).await;
    assert!(
        p["onboardingFailureDetails"]["detail"]
            .as_str()
            .unwrap()
            .contains("digest mismatch"),
        "{p}"
    );

    // content that is not what the SHA3-224 checksum declares
    let va = example("video-analytics");
    let r = ctx
        .call(
            Method::POST,
            "/app_packages",
            Some(create(
                "sha3_224",
                &hex_digest(MessageDigest::sha3_224(), &zip),
            )),
        )
        .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ctx.upload(&id, va).await.status(), 400);
    let p = ctx.wait_failed(&id).await;
    let detail = p["onboardingFailureDetails"]["detail"].as_str().unwrap();
    assert!(detail.contains("SHA3-224 checksum"), "{detail}");
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
