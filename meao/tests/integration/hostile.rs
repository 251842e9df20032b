//! Hostile and broken packages: each is refused with a clear problem, the package is CREATED
//! again with its failure kept in `onboardingFailureDetails`, and nothing of it stays stored.

use std::io::Write;

use serde_json::Value;
use server_kit::testing::certificate;

use super::common::{Ctx, Db, example, example_copy, rewrite, test_config};
use app_package::build::{Signer, build};

/// Onboards `content` and asserts it is refused with `status`, the problem naming `needle`,
/// the package CREATED again with the problem as its failure details, and no new stored files.
async fn refused(ctx: &Ctx, content: Vec<u8>, status: u16, needle: &str) -> Value {
    let blobs = ctx.blob_count().await;
    let (id, got) = ctx.onboard("hostile", content).await;
    let p = ctx.json(&format!("/app_packages/{id}")).await;
    assert_eq!(got, status, "status for {needle}: {p}");
    assert_eq!(p["onboardingState"], "CREATED", "{p}");
    let detail = p["onboardingFailureDetails"]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains(needle), "{needle:?} not in {detail:?}");
    assert_eq!(ctx.blob_count().await, blobs, "nothing stored for {needle}");
    p
}

fn zip_with(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(content).unwrap();
    }
    z.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_that_attack_the_reader() {
    let ctx = Ctx::start(Db::Sqlite).await;
    let good = example("cdn-cache");
    refused(&ctx, b"this is not a zip".to_vec(), 400, "not a valid zip").await;
    refused(
        &ctx,
        rewrite(&good, "../../etc/cron.d/evil", b"x"),
        400,
        "escapes the package",
    )
    .await;
    refused(
        &ctx,
        rewrite(&good, "/abs/path", b"x"),
        400,
        "escapes the package",
    )
    .await;
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.add_symlink(
        "link",
        "/etc/passwd",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    refused(
        &ctx,
        z.finish().unwrap().into_inner(),
        400,
        "symbolic links",
    )
    .await;
    refused(
        &ctx,
        rewrite(&good, "bomb.bin", &vec![0u8; 20 << 20]),
        400,
        "compression ratio",
    )
    .await;
    // the many-entry bomb, scaled to the test limits: entries each just small enough
    // to escape the per-entry ratio check, adding up to 300 times the upload
    let spread: Vec<(String, Vec<u8>)> = (0..45)
        .map(|i| (format!("Artifacts/f{i}"), vec![b'a'; 64 << 10]))
        .collect();
    let spread: Vec<(&str, Vec<u8>)> = spread
        .iter()
        .map(|(n, c)| (n.as_str(), c.clone()))
        .collect();
    refused(&ctx, zip_with(&spread), 400, "the package expands").await;
    let many: Vec<(String, Vec<u8>)> = (0..60).map(|i| (format!("f{i}"), vec![1u8])).collect();
    let many: Vec<(&str, Vec<u8>)> = many.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    refused(&ctx, zip_with(&many), 400, "more than the limit").await;
    let filler: String = (0..20_000u32)
        .map(|i| format!("{:x}", i.wrapping_mul(2_654_435_761)))
        .collect();
    let huge = format!("appDId: x\nappDescription: \"{filler}\"\n");
    refused(
        &ctx,
        rewrite(&good, "cdn-cache.yaml", huge.as_bytes()),
        400,
        "descriptor limit",
    )
    .await;
    refused(
        &ctx,
        zip_with(&[("README.txt", b"no descriptor".to_vec())]),
        400,
        "cannot find the AppD",
    )
    .await;
    let r = ctx.upload(&ctx.create("empty").await, Vec::new()).await;
    assert_eq!(r.status(), 400);
    let r = ctx
        .send(
            ctx.http
                .put(ctx.url(&format!(
                    "/app_packages/{}/package_content",
                    ctx.create("typed").await
                )))
                .bearer_auth(&ctx.token)
                .header("content-type", "text/plain")
                .body("x"),
        )
        .await;
    assert_eq!(r.status(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uploads_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(
        format!("sqlite://{}/m.db?mode=rwc", dir.path().display()),
        dir.path(),
    );
    config.packages.limits.max_package_bytes = 64 * 1024;
    let ctx = Ctx::start_with(config, dir).await;
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let id = ctx.create("big").await;
    // the server answers 413 and stops reading, so the client may see the 413 or a reset
    let sent = reqwest::Client::new()
        .put(ctx.url(&format!("/app_packages/{id}/package_content")))
        .bearer_auth(&ctx.token)
        .header("content-type", "application/zip")
        .body(big)
        .send()
        .await;
    if let Ok(r) = sent {
        assert_eq!(r.status(), 413);
    }
    let p = ctx.wait_failed(&id).await;
    assert_eq!(p["onboardingState"], "CREATED");
    assert_eq!(p["onboardingFailureDetails"]["status"], 413);
    assert_eq!(ctx.blob_count().await, 0);
}

async fn descriptors_that_are_wrong(db: Db, storage: super::common::Storage) {
    let ctx = Ctx::start_stored(db, storage).await;
    let good = example("cdn-cache");
    refused(
        &ctx,
        rewrite(&good, "cdn-cache.yaml", b"appDId: [unclosed"),
        400,
        "invalid YAML",
    )
    .await;
    let laughs = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    refused(
        &ctx,
        rewrite(&good, "cdn-cache.yaml", laughs.as_bytes()),
        400,
        "cdn-cache.yaml",
    )
    .await;

    // nesting (the 2.9 KB package of 200,000 brackets held a core for 323 s; so many
    // brackets now exceed the compression ratio first, so fewer show the nesting bound)
    let deep = format!("appDId: {}{}\n", "[".repeat(500), "]".repeat(500));
    refused(
        &ctx,
        rewrite(&good, "cdn-cache.yaml", deep.as_bytes()),
        400,
        "nested deeper than 64 levels",
    )
    .await;

    // structural problems: all reported, each with its path (the manifest is rebuilt to match)
    let dir = example_copy("cdn-cache");
    let appd = std::fs::read_to_string(dir.path().join("cdn-cache.yaml")).unwrap();
    let broken = appd
        .replace("appName: cdn-cache\n", "")
        .replace("numVirtualCpu: 2", "numVirtualCpu: two")
        .replace("appDescription:", "colour: red\nappDescription:");
    std::fs::write(dir.path().join("cdn-cache.yaml"), broken).unwrap();
    let p = refused(&ctx, build(dir.path(), None).unwrap(), 400, "appName").await;
    let detail = p["onboardingFailureDetails"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("/virtualComputeDescriptor/virtualCpu/numVirtualCpu"),
        "{detail}"
    );
    assert!(detail.contains("colour"), "{detail}");

    // semantic problems: all reported
    let dir = example_copy("cdn-cache");
    let broken = appd
        .replace("trafficRuleId: http-to-cache", "trafficRuleId: dup")
        .replace(
            "ipAddress: 10.100.1.20\n    ttl: 30\n  - dnsRuleId: cdn-v6",
            "ipAddress: 10.100.1.999\n    ttl: 30\n  - dnsRuleId: cdn-v6",
        )
        .replace("dstPort: [\"80\", \"443\"]", "dstPort: [\"80\", \"http\"]");
    std::fs::write(dir.path().join("cdn-cache.yaml"), broken).unwrap();
    let p = refused(&ctx, build(dir.path(), None).unwrap(), 400, "10.100.1.999").await;
    let detail = p["onboardingFailureDetails"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("/appTrafficRule/0/trafficFilter/0") && detail.contains("http"),
        "{detail}"
    );

    // a file changed after the manifest was written
    refused(
        &ctx,
        rewrite(
            &good,
            "cdn-cache.yaml",
            appd.replace("5.1.2", "6.6.6").as_bytes(),
        ),
        400,
        "digest mismatch",
    )
    .await;
    // an included image whose content does not match its AppD checksum
    let dir = example_copy("iot-gateway");
    std::fs::write(
        dir.path().join("Artifacts/images/iot-agent-layer.txt"),
        b"tampered layer",
    )
    .unwrap();
    refused(
        &ctx,
        build(dir.path(), None).unwrap(),
        400,
        "image digest mismatch",
    )
    .await;

    // the same appDId and version twice
    assert_eq!(ctx.onboard("first", example("cdn-cache")).await.1, 202);
    let p = refused(&ctx, example("cdn-cache"), 403, "already has appDId").await;
    assert_eq!(p["onboardingFailureDetails"]["status"], 403);
    assert_eq!(
        p["onboardingFailureDetails"]["type"],
        api_specs::problem::NOT_ALLOWED_IN_STATE
    );
    let first = ctx
        .json("/onboarded_app_packages/cdn-cache-streamco-5")
        .await;
    assert_eq!(
        first["onboardingState"], "ONBOARDED",
        "the first package is untouched"
    );
}

super::common::on_dbs_and_s3!(descriptors_that_are_wrong);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_are_required_and_verified() {
    let (ca, ca_key) = certificate("mecplane test CA", None, true);
    let (signer, signer_key) = certificate("ACME release signing", Some((&ca, &ca_key)), false);
    let (rogue_ca, rogue_key) = certificate("rogue CA", None, true);
    let (rogue, rogue_signer_key) =
        certificate("rogue signer", Some((&rogue_ca, &rogue_key)), false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.to_pem().unwrap()).unwrap();
    let mut config = test_config(
        format!("sqlite://{}/m.db?mode=rwc", dir.path().display()),
        dir.path(),
    );
    config.packages.require_signed = true;
    config.packages.trust_anchors = vec![dir.path().join("ca.pem")];
    let ctx = Ctx::start_with(config, dir).await;
    let examples = super::common::examples();

    refused(&ctx, example("video-analytics"), 400, "must be signed").await;
    let signed = build(
        &examples.join("video-analytics"),
        Some(Signer {
            cert: &signer,
            key: &signer_key,
        }),
    )
    .unwrap();
    let (id, status) = ctx.onboard("signed", signed.clone()).await;
    assert_eq!(status, 202);
    let p = ctx.json(&format!("/app_packages/{id}")).await;
    assert!(
        p["signingCertificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    let untrusted = build(
        &examples.join("cdn-cache"),
        Some(Signer {
            cert: &rogue,
            key: &rogue_signer_key,
        }),
    )
    .unwrap();
    refused(&ctx, untrusted, 400, "signature verification failed").await;
    let signed_cdn = build(
        &examples.join("cdn-cache"),
        Some(Signer {
            cert: &signer,
            key: &signer_key,
        }),
    )
    .unwrap();
    // a tampered artifact: the manifest digest no longer matches
    refused(
        &ctx,
        rewrite(&signed_cdn, "cdn-cache.yaml", b"appDId: evil\n"),
        400,
        "digest mismatch",
    )
    .await;
    // a file smuggled in beside the signed manifest
    refused(
        &ctx,
        rewrite(&signed_cdn, "Artifacts/extra.sh", b"#!/bin/sh\n"),
        400,
        "not covered by the signed manifest",
    )
    .await;
    // a manifest edited after signing
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(signed_cdn.clone())).unwrap();
    let mut manifest = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("cdn-cache.mf").unwrap(), &mut manifest)
        .unwrap();
    let edited = manifest.replace("app_package_version: 5.1.2", "app_package_version: 9.9.9");
    refused(
        &ctx,
        rewrite(&signed_cdn, "cdn-cache.mf", edited.as_bytes()),
        400,
        "signature verification failed",
    )
    .await;
    assert_eq!(ctx.onboard("signed-cdn", signed_cdn).await.1, 202);
}
