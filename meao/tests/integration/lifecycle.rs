//! Enable, disable and delete rules, subscriptions and notifications, and recovery of
//! onboarding interrupted by a crash.

use super::common::{Callback, Ctx, Db, Storage, assert_not_allowed, example, on_dbs_and_s3};
use meao::package::blobs::BlobStore;
use meao::store::{PackageRow, Store};
use reqwest::Method;
use serde_json::{Value, json};

on_dbs_and_s3!(
    enable_disable_delete_with_notifications,
    interrupted_onboarding_resumes_after_restart
);

async fn subscribe(ctx: &Ctx, kind: &str, callback: &str, filter: Option<Value>) -> Value {
    let mut body = json!({"callbackUri": callback, "subscriptionType": kind});
    if let Some(f) = filter {
        body["appPkgFilter"] = json!([f]);
    }
    let r = ctx.call(Method::POST, "/subscriptions", Some(body)).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["_links"]["self"]["href"], location.as_str());
    info
}

async fn enable_disable_delete_with_notifications(db: Db, storage: Storage) {
    let ctx = Ctx::start_stored(db, storage).await;
    let mut onboarded = Callback::start(0).await;
    let mut changed = Callback::start(0).await;
    let mut deleted = Callback::start(0).await;
    let sub = subscribe(
        &ctx,
        "AppPackageOnBoardingSubscription",
        &onboarded.url,
        Some(json!({"appProvider": "StreamCo"})),
    )
    .await;
    subscribe(&ctx, "AppPackageChangeSubscription", &changed.url, None).await;
    subscribe(&ctx, "AppPackageDeletionSubscription", &deleted.url, None).await;
    let list = ctx.json("/subscriptions").await;
    assert_eq!(list["_links"]["subscriptions"].as_array().unwrap().len(), 3);
    let r = ctx
        .call(
            Method::POST,
            "/subscriptions",
            Some(
                json!({"callbackUri": "nope", "subscriptionType": "AppPackageChangeSubscription"}),
            ),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = ctx
        .call(
            Method::POST,
            "/subscriptions",
            Some(json!({"callbackUri": onboarded.url, "subscriptionType": "Whatever"})),
        )
        .await;
    assert_eq!(r.status(), 400);
    // a filter's ids and names are checked as ids in paths are (the fuzzer linked one to a path)
    let r = ctx
        .call(
            Method::POST,
            "/subscriptions",
            Some(json!({"callbackUri": onboarded.url, "subscriptionType": "AppPackageChangeSubscription",
                        "appPkgFilter": [{"appPkgInfoId": "O\u{a2}\u{81}"}]})),
        )
        .await;
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("/appPkgFilter/0/appPkgInfoId"), "{detail}");

    let (va, _) = ctx
        .onboard("video-analytics", example("video-analytics"))
        .await;
    ctx.wait_state(&va, "ONBOARDED").await;
    let va_files = ctx.blob_count().await;
    onboarded
        .none_within(std::time::Duration::from_millis(300))
        .await; // filtered out: another provider
    let (id, _) = ctx.onboard("cdn-cache", example("cdn-cache")).await;
    let n = onboarded.next().await;
    assert_eq!(
        (
            n["notificationType"].as_str(),
            n["appPkgId"].as_str(),
            n["appDId"].as_str()
        ),
        (
            Some("AppPackageOnBoarded"),
            Some(id.as_str()),
            Some("cdn-cache-streamco-5")
        )
    );
    assert_eq!(n["subscriptionId"], sub["id"]);

    let path = format!("/app_packages/{id}");
    let r = ctx.call(Method::DELETE, &path, None).await;
    assert_not_allowed(r, "ENABLED packages cannot be deleted").await;
    let r = ctx
        .call(
            Method::PATCH,
            &path,
            Some(json!({"operationalState": "DISABLED"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["operationalState"],
        "DISABLED"
    );
    assert_eq!(
        changed.next().await["notificationType"],
        "AppPackageDisabled"
    );
    let r = ctx
        .call(
            Method::PATCH,
            &path,
            Some(json!({"operationalState": "DISABLED"})),
        )
        .await;
    assert_eq!(r.status(), 200, "already DISABLED: idempotent");
    assert_eq!(
        r.json::<Value>().await.unwrap()["operationalState"],
        "DISABLED"
    );
    let r = ctx
        .call(
            Method::PATCH,
            "/onboarded_app_packages/cdn-cache-streamco-5",
            Some(json!({"operationalState": "ENABLED"})),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        changed.next().await["notificationType"],
        "AppPackageEnabled"
    );
    let r = ctx
        .call(
            Method::PATCH,
            &path,
            Some(json!({"operationalState": "BROKEN"})),
        )
        .await;
    assert_eq!(r.status(), 400);
    ctx.call(
        Method::PATCH,
        &path,
        Some(json!({"operationalState": "DISABLED"})),
    )
    .await;
    changed.next().await;
    assert!(ctx.blob_count().await > va_files);
    assert_eq!(ctx.call(Method::DELETE, &path, None).await.status(), 204);
    assert_eq!(
        ctx.blob_count().await,
        va_files,
        "a deleted package's files go with it (not at the next restart)"
    );
    let n = deleted.next().await;
    assert_eq!(
        (n["notificationType"].as_str(), n["appPkgId"].as_str()),
        (Some("AppPackageDeleted"), Some(id.as_str()))
    );
    assert_eq!(ctx.call(Method::GET, &path, None).await.status(), 404);

    // a freshly created package (CREATED, DISABLED) may be deleted at once
    let fresh = ctx.create("fresh").await;
    assert_eq!(
        ctx.call(Method::DELETE, &format!("/app_packages/{fresh}"), None)
            .await
            .status(),
        204
    );
    deleted
        .none_within(std::time::Duration::from_millis(200))
        .await;

    let sub_path = format!("/subscriptions/{}", sub["id"].as_str().unwrap());
    assert_eq!(ctx.call(Method::GET, &sub_path, None).await.status(), 200);
    assert_eq!(
        ctx.call(Method::DELETE, &sub_path, None).await.status(),
        204
    );
    assert_eq!(ctx.call(Method::GET, &sub_path, None).await.status(), 404);

    // no token, no access
    let r = ctx.send(ctx.http.get(ctx.url("/app_packages"))).await;
    assert_eq!(r.status(), 401);
}

async fn interrupted_onboarding_resumes_after_restart(db: Db, storage: Storage) {
    let mut ctx = Ctx::start_stored(db, storage).await;
    let store = Store::connect(&ctx.config.database_url).await.unwrap();
    // a crash after the content was stored and PROCESSING recorded
    let blobs = BlobStore::open(&ctx.config.package_storage, &ctx.config.data_dir).unwrap();
    let mut writer = blobs.writer(u64::MAX);
    writer.write(&example("iot-gateway")).await.unwrap();
    let (content, _) = writer.commit().await.unwrap();
    let row = |id: &str, state: &str, content: Option<String>| PackageRow {
        id: id.into(),
        app_d_id: None,
        app_d_version: None,
        onboarding_state: state.into(),
        operational_state: "DISABLED".into(),
        usage_state: "NOT_IN_USE".into(),
        create_request: json!({"appPkgName": "iot", "appPkgVersion": "0.3"}).to_string(),
        content_hash: content,
        details: None,
        appd: None,
        failure: None,
        created_at: 1,
    };
    store
        .package_insert(&row(
            "crashed-processing",
            "PROCESSING",
            Some(content.as_str().to_owned()),
        ))
        .await
        .unwrap();
    // a crash in the middle of an upload, and a file stored that no package names
    store
        .package_insert(&row("crashed-upload", "UPLOADING", None))
        .await
        .unwrap();
    let mut orphan = blobs.writer(u64::MAX);
    orphan.write(b"unreferenced").await.unwrap();
    orphan.commit().await.unwrap();

    ctx.restart().await;
    let p = ctx.wait_state("crashed-processing", "ONBOARDED").await;
    assert_eq!(p["appDId"], "iot-gateway-fieldbus-0.3");
    ctx.wait_state("crashed-upload", "CREATED").await;
    assert_eq!(
        ctx.upload("crashed-upload", example("cdn-cache"))
            .await
            .status(),
        202,
        "the upload can be retried"
    );
    // the sweep keeps what is younger than its grace period (an upload may be writing it) ...
    ctx.wait_state("crashed-upload", "ONBOARDED").await;
    let stored = ctx.blob_count().await;
    let packages = ctx.server.as_ref().unwrap().packages.clone();
    let hour = std::time::Duration::from_secs(3600);
    let young = packages.collect_garbage(hour).await.unwrap();
    assert_eq!((young.removed, young.kept_young), (0, 1));
    // ... and removes the orphan once older, never a referenced file
    let swept = packages
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((swept.removed, swept.kept_young), (1, 0));
    assert_eq!(
        ctx.blob_count().await,
        stored - 1,
        "stored files of packages are kept"
    );
}
