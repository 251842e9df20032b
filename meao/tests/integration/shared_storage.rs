//! Two MEAO replicas on one PostgreSQL with the package files in the S3 test server: a package
//! uploaded through one is read (AppD, content, the Helm chart it ships) and deployed through
//! the other, and restarting either, whose start-up sweep runs with a grace period the files
//! are older than, deletes nothing the other's records name; an upload in progress at one
//! replica outlives the other's restarts and recoveries.

use reqwest::Method;
use serde_json::{Value, json};
use server_kit::testing::{Db, fresh_database, pg_admin_url};

use super::common::{Ctx, Storage, example, store_in, test_config};
use super::lcm::{lcm, run, site};

const IOT: &str = "iot-gateway-fieldbus-0.3";

/// A replica on the database `url` with the package files under `storage`, sweeping at every
/// start and every `gc_secs` with that grace period.
async fn replica(url: &str, storage: &meao::package::blobs::StorageConfig, gc_secs: u64) -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(url.to_owned(), dir.path());
    config.package_storage = storage.clone();
    config.sites = vec![site("paris-1", 16000, &[])];
    config.workload_ready_timeout_secs = 5;
    config.packages.gc_interval_secs = gc_secs;
    config.packages.onboarding_lease_secs = 2;
    Ctx::start_with(config, dir).await
}

/// The shared database and bucket of two replicas; `None` (skipped) without PostgreSQL or the
/// S3 test server.
async fn shared() -> Option<(
    tempfile::TempDir,
    String,
    meao::package::blobs::StorageConfig,
)> {
    if pg_admin_url().is_none() || meao::package::blobs::testing::s3_server().is_none() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Db::Postgres, "meao", dir.path()).await;
    let mut config = test_config(url.clone(), dir.path());
    store_in(&mut config, Storage::S3, dir.path());
    Some((dir, url, config.package_storage))
}

async fn content(ctx: &Ctx, id: &str, range: Option<&str>) -> (u16, Vec<u8>) {
    let mut r = ctx
        .http
        .get(ctx.url(&format!("/app_packages/{id}/package_content")))
        .bearer_auth(&ctx.token);
    if let Some(range) = range {
        r = r.header("range", range);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_bucket() {
    let Some((_dir, url, storage)) = shared().await else {
        return;
    };
    let mut a = replica(&url, &storage, 3).await;
    let mut b = replica(&url, &storage, 3).await;

    // uploaded through A, read through B
    let zip = example("iot-gateway");
    let (id, status) = a.onboard("iot", zip.clone()).await;
    assert_eq!(status, 202);
    let onboarded = b.wait_state(&id, "ONBOARDED").await;
    assert_eq!(onboarded["appDId"], IOT);
    let appd = b.json(&format!("/onboarded_app_packages/{IOT}/appd")).await;
    assert_eq!(appd["appDId"], IOT);
    assert_eq!(content(&b, &id, None).await, (200, zip.clone()));
    assert_eq!(
        content(&b, &id, Some("bytes=100-199")).await,
        (206, zip[100..200].to_vec())
    );
    // a second package through B, so each replica's records name files the other wrote
    let (cdn, status) = b.onboard("cdn", example("cdn-cache")).await;
    assert_eq!(status, 202);
    a.wait_state(&cdn, "ONBOARDED").await;
    let stored = a.blob_count().await;
    assert_eq!(b.blob_count().await, stored, "one store");

    // once the files are older than the grace period, restarts sweep and keep them all
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    b.restart().await;
    a.restart().await;
    assert_eq!(a.blob_count().await, stored, "nothing named was deleted");
    assert_eq!(content(&b, &id, None).await, (200, zip.clone()));

    // deployed through B: its workload carries the Helm chart packed from the stored package
    let created: Value = lcm(
        &b,
        Method::POST,
        "/app_instances",
        Some(json!({"appDId": IOT, "appInstanceName": "iot-paris"})),
    )
    .await
    .json()
    .await
    .unwrap();
    let instance = created["id"].as_str().unwrap();
    let op = run(
        &b,
        &format!("/app_instances/{instance}/instantiate"),
        json!({}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED", "{op}");
    let shown: Value = lcm(&a, Method::GET, &format!("/app_instances/{instance}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["instantiationState"], "INSTANTIATED", "{shown}");

    // a package deleted through A takes its files with it, and none of the other's
    let path = format!("/app_packages/{cdn}");
    let r = a
        .call(
            Method::PATCH,
            &path,
            Some(json!({"operationalState": "DISABLED"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(a.call(Method::DELETE, &path, None).await.status(), 204);
    let left = b.blob_count().await;
    assert!(left < stored, "{left} of {stored}");
    assert_eq!(content(&a, &id, None).await, (200, zip));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_outlives_the_other_replicas_restart() {
    let Some((_dir, url, storage)) = shared().await else {
        return;
    };
    let a = replica(&url, &storage, 60).await;
    let mut b = replica(&url, &storage, 60).await;
    let id = a.create("slow").await;
    let zip = example("cdn-cache");
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let upload = a
        .http
        .put(a.url(&format!("/app_packages/{id}/package_content")))
        .bearer_auth(&a.token)
        .header("content-type", "application/zip")
        .body(reqwest::Body::wrap_stream(rx))
        .send();
    let upload = tokio::spawn(upload);
    let half = zip.len() / 2;
    futures::SinkExt::send(&mut tx, Ok(bytes::Bytes::copy_from_slice(&zip[..half])))
        .await
        .unwrap();
    b.wait_state(&id, "UPLOADING").await;
    // B restarts and recovers onboardings for more than two lease periods: A keeps its lease
    b.restart().await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(
        b.json(&format!("/app_packages/{id}")).await["onboardingState"],
        "UPLOADING"
    );
    futures::SinkExt::send(&mut tx, Ok(bytes::Bytes::copy_from_slice(&zip[half..])))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(upload.await.unwrap().unwrap().status(), 202);
    b.wait_state(&id, "ONBOARDED").await;
    assert_eq!(content(&b, &id, None).await, (200, zip));
}
