//! Application LCM over simulated sites: create, instantiate (placement recorded on the
//! occurrence), operate, terminate, delete; FAILED_TEMP, retry and fail; recovery of an
//! operation interrupted by a restart.

use meao::store::{OpOccRow, SagaRow, Store};
use reqwest::Method;
use serde_json::{Value, json};
use server_kit::on_both_dbs;
use server_kit::testing::{EVENTUALLY, eventually};

use super::common::{Ctx, Db, assert_not_allowed, example, test_config};

pub(super) fn site(id: &str, cpu: u64, services: &[&str]) -> meao::inventory::SiteSpec {
    serde_json::from_value(json!({
        "id": id, "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris", "services": services,
        "vim": {"kind": "simulated", "cpuMillis": cpu, "memoryMib": 32768}
    }))
    .unwrap()
}

async fn start(db: Db, sites: Vec<meao::inventory::SiteSpec>) -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
    let mut config = test_config(url, dir.path());
    config.sites = sites;
    config.workload_ready_timeout_secs = 5;
    Ctx::start_with(config, dir).await
}

pub(super) async fn lcm(
    ctx: &Ctx,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = ctx
        .http
        .request(method, format!("{}/app_lcm/v1{path}", ctx.base))
        .bearer_auth(&ctx.token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    ctx.send(r).await
}

/// DELETE of an app instance identifier.
async fn delete_instance(ctx: &Ctx, id: &str) -> reqwest::Response {
    lcm(ctx, Method::DELETE, &format!("/app_instances/{id}"), None).await
}

/// Creates an instance of the video analytics package; its id.
pub(super) async fn create_va(ctx: &Ctx) -> String {
    let created: Value = lcm(
        ctx,
        Method::POST,
        "/app_instances",
        Some(json!({"appDId": VA})),
    )
    .await
    .json()
    .await
    .unwrap();
    created["id"].as_str().unwrap().to_owned()
}

/// Starts an operation and waits for its occurrence to leave STARTING/PROCESSING.
pub(super) async fn run(ctx: &Ctx, path: &str, body: Value) -> Value {
    let r = lcm(ctx, Method::POST, path, Some(body)).await;
    assert_eq!(r.status(), 202, "{path}");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/app_lcm/v1/app_lcm_op_occs/"),
        "relative Location: {location}"
    );
    wait(ctx, location.trim_start_matches("/app_lcm/v1")).await
}

/// Waits for an operation occurrence to leave STARTING/PROCESSING.
async fn wait(ctx: &Ctx, op_path: &str) -> Value {
    eventually(op_path, EVENTUALLY, async || {
        let op: Value = lcm(ctx, Method::GET, op_path, None)
            .await
            .json()
            .await
            .unwrap();
        match op["operationState"].as_str() {
            Some("STARTING" | "PROCESSING") => Err(op),
            _ => Ok(op),
        }
    })
    .await
}

const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";

async fn instance_lifecycle(db: Db) {
    let ctx = start(
        db,
        vec![
            site("paris-1", 16000, &["RNIS"]),
            site("no-rnis", 16000, &[]),
        ],
    )
    .await;
    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let r = lcm(
        &ctx,
        Method::POST,
        "/app_instances",
        Some(json!({"appDId": "unknown"})),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = lcm(
        &ctx,
        Method::POST,
        "/app_instances",
        Some(json!({"appDId": VA, "appInstanceName": "va-paris"})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let instance: Value = r.json().await.unwrap();
    assert_eq!(instance["instantiationState"], "NOT_INSTANTIATED");
    let id = instance["id"].as_str().unwrap().to_owned();
    let pkg = ctx
        .json("/onboarded_app_packages/7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51")
        .await;
    assert_eq!(pkg["usageState"], "IN_USE");

    let op = run(
        &ctx,
        &format!("/app_instances/{id}/instantiate"),
        json!({"locationConstraints": {"latitude": 48.85, "longitude": 2.35}}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    assert_eq!(op["lcmOperation"], "INSTANTIATE");
    assert_eq!(op["placement"]["chosen"], "paris-1");
    assert_eq!(
        op["placement"]["rejected"]["required service RNIS not available"],
        json!(["no-rnis"])
    );
    let instance: Value = lcm(&ctx, Method::GET, &format!("/app_instances/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(instance["instantiationState"], "INSTANTIATED");
    assert_eq!(
        instance["instantiatedAppState"]["operationalState"],
        "STARTED"
    );
    let vim = ctx
        .server
        .as_ref()
        .unwrap()
        .inventory
        .vim("paris-1")
        .unwrap();
    let name = vim_adapters::workload_name(&id);
    assert_eq!(vim.list_owned().await.unwrap(), vec![name.clone()]);
    // a site that hosts an instance stays until the instance is gone
    let r = ctx.delete_site("paris-1").await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains(&id));
    assert_eq!(
        vim.capacity().await.unwrap().cpu_millis,
        16000 - 3000,
        "the analytics container's request"
    );

    let r = lcm(
        &ctx,
        Method::POST,
        &format!("/app_instances/{id}/instantiate"),
        Some(json!({})),
    )
    .await;
    assert_not_allowed(r, "instantiated already").await;
    assert_not_allowed(
        delete_instance(&ctx, &id).await,
        "an instantiated instance's identifier is not deleted",
    )
    .await;

    let op = run(
        &ctx,
        &format!("/app_instances/{id}/operate"),
        json!({"changeStateTo": "STOPPED", "stopType": "GRACEFUL", "gracefulStopTimeout": 5}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED");
    assert_eq!(
        vim.status(&name).await.unwrap().unwrap().phase,
        vim_adapters::WorkloadPhase::Stopped
    );
    let r = lcm(
        &ctx,
        Method::POST,
        &format!("/app_instances/{id}/operate"),
        Some(json!({"changeStateTo": "STOPPED"})),
    )
    .await;
    assert_not_allowed(r, "already STOPPED").await;
    let op = run(
        &ctx,
        &format!("/app_instances/{id}/operate"),
        json!({"changeStateTo": "STARTED"}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED");

    let op = run(
        &ctx,
        &format!("/app_instances/{id}/terminate"),
        json!({"terminationType": "FORCEFUL"}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED");
    assert!(
        vim.list_owned().await.unwrap().is_empty(),
        "nothing left on the site"
    );
    assert_eq!(delete_instance(&ctx, &id).await.status(), 204);
    let r = ctx.delete_site("paris-1").await;
    assert_eq!(r.status(), 204, "hosts nothing any more");
    let pkg = ctx
        .json("/onboarded_app_packages/7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51")
        .await;
    assert_eq!(pkg["usageState"], "NOT_IN_USE");
    let occs: Value = lcm(&ctx, Method::GET, "/app_lcm_op_occs", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        occs.as_array().unwrap().len(),
        4,
        "instantiate, stop, start, terminate"
    );
}

async fn failed_temp_retry_and_fail(db: Db) {
    let ctx = start(db, vec![site("small-1", 1000, &["RNIS"])]).await;
    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let create = || {
        lcm(
            &ctx,
            Method::POST,
            "/app_instances",
            Some(json!({"appDId": VA})),
        )
    };
    let a: Value = create().await.json().await.unwrap();
    assert_not_allowed(
        lcm(
            &ctx,
            Method::POST,
            &format!(
                "/app_instances/{}/configure_platform_for_app",
                a["id"].as_str().unwrap()
            ),
            Some(json!({})),
        )
        .await,
        "a NOT_INSTANTIATED instance has no platform to configure",
    )
    .await;
    let op = run(
        &ctx,
        &format!("/app_instances/{}/instantiate", a["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(op["operationState"], "FAILED_TEMP", "no site has 3 CPUs");
    assert_eq!(
        op["error"]["status"], 409,
        "a placement failure is no server error: {op:#}"
    );
    assert_eq!(op["error"]["title"], "No site can host the application");
    assert!(
        op["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("not enough CPU")
    );
    let op_path = format!("/app_lcm_op_occs/{}", op["id"].as_str().unwrap());
    // capacity arrives: a bigger site joins the inventory; retry completes
    let r = ctx
        .send(
            ctx.http
                .put(format!("{}/inventory/v1/sites/big-1", ctx.base))
                .bearer_auth(&ctx.token)
                .json(&site("big-1", 16000, &["RNIS"])),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        lcm(&ctx, Method::POST, &format!("{op_path}/retry"), None)
            .await
            .status(),
        202
    );
    let op = wait(&ctx, &op_path).await;
    assert_eq!(
        (
            op["operationState"].as_str(),
            op["placement"]["chosen"].as_str()
        ),
        (Some("COMPLETED"), Some("big-1"))
    );
    assert_not_allowed(
        lcm(&ctx, Method::POST, &format!("{op_path}/retry"), None).await,
        "only FAILED_TEMP retries",
    )
    .await;

    // another instance does not fit any more: FAILED_TEMP, then given up
    let b: Value = create().await.json().await.unwrap();
    let b_id = b["id"].as_str().unwrap().to_owned();
    // (big-1 hosts a, so it cannot be deleted: it shrinks)
    let r = ctx
        .send(
            ctx.http
                .put(format!("{}/inventory/v1/sites/big-1", ctx.base))
                .bearer_auth(&ctx.token)
                .json(&site("big-1", 1000, &["RNIS"])),
        )
        .await;
    assert_eq!(r.status(), 200);
    let op = run(
        &ctx,
        &format!("/app_instances/{b_id}/instantiate"),
        json!({}),
    )
    .await;
    assert_eq!(op["operationState"], "FAILED_TEMP");
    assert_not_allowed(
        delete_instance(&ctx, &b_id).await,
        "an operation is pending",
    )
    .await;
    let r = lcm(
        &ctx,
        Method::POST,
        &format!("/app_lcm_op_occs/{}/fail", op["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["operationState"], "FAILED");
    assert_eq!(delete_instance(&ctx, &b_id).await.status(), 204);
}

async fn interrupted_operation_completes_after_restart(db: Db) {
    let mut ctx = start(db, vec![site("paris-1", 16000, &["RNIS"])]).await;
    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let id = create_va(&ctx).await;
    // the state a crash right after accepting the request leaves: occurrence and saga recorded,
    // nothing executed
    let store = Store::connect(&ctx.config.database_url).await.unwrap();
    let op = OpOccRow {
        id: "op-1".into(),
        app_instance_id: id.clone(),
        operation: "INSTANTIATE".into(),
        state: "STARTING".into(),
        params: "{}".into(),
        error: None,
        placement: None,
        start_time: 1,
        state_entered: 1,
        trace_context: None,
    };
    let saga = SagaRow {
        id: "op-1".into(),
        kind: "app-instantiate".into(),
        params: json!({"appInstanceId": id, "appDId": VA, "request": {}}).to_string(),
        outputs: "{}".into(),
        cursor: 0,
        direction: "FORWARD".into(),
        status: "RUNNING".into(),
        error: None,
    };
    assert!(
        store
            .op_occ_start(&op, &saga, ("NOT_INSTANTIATED", None))
            .await
            .unwrap()
    );
    ctx.restart().await;
    let op = wait(&ctx, "/app_lcm_op_occs/op-1").await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    let instance: Value = lcm(&ctx, Method::GET, &format!("/app_instances/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(instance["instantiationState"], "INSTANTIATED");
}

/// Two replicas on one database: of many operations started at once on one instance through
/// both, the database lets exactly one in.
async fn replicas_start_one_operation_per_instance(db: Db) {
    let ctx = start(db, vec![site("paris-1", 16000, &["RNIS"])]).await;
    let other = meao::server::Server::start(ctx.config.clone())
        .await
        .expect("second replica starts");
    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let id = create_va(&ctx).await;
    let attempts = [ctx.base.clone(), other.api_root.clone()]
        .into_iter()
        .cycle()
        .take(16)
        .map(|base| {
            let request = ctx
                .http
                .post(format!("{base}/app_lcm/v1/app_instances/{id}/instantiate"))
                .bearer_auth(&ctx.token)
                .json(&json!({}));
            async move {
                let r = request.send().await.unwrap();
                let location = r
                    .headers()
                    .get("location")
                    .map(|l| l.to_str().unwrap().to_owned());
                (r.status().as_u16(), location)
            }
        });
    let mut answers = futures::future::join_all(attempts).await;
    answers.sort_unstable();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses[0], 202, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 403), "{statuses:?}");
    let location = answers[0].1.as_deref().unwrap();
    let op = wait(&ctx, location.trim_start_matches("/app_lcm/v1")).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    other.shutdown().await;
}

on_both_dbs!(
    instance_lifecycle,
    replicas_start_one_operation_per_instance,
    failed_temp_retry_and_fail,
    interrupted_operation_completes_after_restart
);

async fn notifications_follow_the_lifecycle(db: Db) {
    let ctx = start(db, vec![site("paris-1", 16000, &["RNIS"])]).await;
    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let mut created = super::common::Callback::start(0).await;
    let mut occs = super::common::Callback::start(0).await;
    let mut states = super::common::Callback::start(0).await;
    let mut deleted = super::common::Callback::start(0).await;
    let subscribe =
        |body: Value| async { lcm(&ctx, Method::POST, "/subscriptions", Some(body)).await };
    for (kind, url, extra) in [
        ("AppIdentifierCreationSubscription", &created.url, json!({})),
        (
            "AppLcmOpOccStateChangeSubscription",
            &occs.url,
            json!({"appLcmOpOccSubscriptionFilter": {"operationStates": ["COMPLETED", "FAILED_TEMP"]}}),
        ),
        (
            "AppInstanceStateChangeSubscription",
            &states.url,
            json!({"appInstanceSubscriptionFilter": {"appInstSelectorType": 3, "appInstances": [VA]}}),
        ),
        ("AppIdentifierDeletionSubscription", &deleted.url, json!({})),
    ] {
        let mut body = json!({"subscriptionType": kind, "callbackUri": url});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = subscribe(body).await;
        assert_eq!(r.status(), 201, "{kind}");
    }
    let r = subscribe(json!({"subscriptionType": "Nope", "callbackUri": created.url})).await;
    assert_eq!(r.status(), 400);
    let r = subscribe(
        json!({"subscriptionType": "AppInstanceStateChangeSubscription",
        "callbackUri": created.url,
        "appInstanceSubscriptionFilter": {"appInstSelectorType": 1, "appInstances": ["a\u{7}"]}}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let list: Value = lcm(
        &ctx,
        Method::GET,
        "/subscriptions?subscriptiontype=AppIdentifierCreationSubscription",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(list["_links"]["subscriptions"].as_array().unwrap().len(), 1);

    let id = create_va(&ctx).await;
    let n = created.next().await;
    assert_eq!(
        (n["notificationType"].as_str(), n["appInstanceId"].as_str()),
        (Some("AppIdentifierCreationSubscription"), Some(id.as_str()))
    );
    run(&ctx, &format!("/app_instances/{id}/instantiate"), json!({})).await;
    let n = occs.next().await;
    assert_eq!(
        (n["operationType"].as_str(), n["operationState"].as_str()),
        (Some("INSTANTIATE"), Some("COMPLETED")),
        "PROCESSING is filtered out"
    );
    let n = states.next().await;
    assert_eq!(
        (n["appInstanceState"].as_str(), n["appDId"].as_str()),
        (Some("STARTED"), Some(VA))
    );
    run(
        &ctx,
        &format!("/app_instances/{id}/operate"),
        json!({"changeStateTo": "STOPPED"}),
    )
    .await;
    assert_eq!(states.next().await["appInstanceState"], "STOPPED");
    assert_eq!(occs.next().await["operationType"], "OPERATE");
    run(
        &ctx,
        &format!("/app_instances/{id}/terminate"),
        json!({"terminationType": "GRACEFUL", "gracefulTerminationTimeout": 1}),
    )
    .await;
    assert_eq!(states.next().await["appInstanceState"], "NOT_INSTANTIATED");
    assert_eq!(delete_instance(&ctx, &id).await.status(), 204);
    let n = deleted.next().await;
    assert_eq!(
        n["_links"]["appInstance"]["href"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next(),
        Some(id.as_str())
    );
}

on_both_dbs!(notifications_follow_the_lifecycle);

async fn instances_move_off_a_failed_site(db: Db) {
    let (ctx, id) = two_sites(db, |config| {
        config.site_refresh_secs = 1;
        config.failover_after_secs = Some(0);
    })
    .await;
    let op = run(&ctx, &format!("/app_instances/{id}/instantiate"), json!({})).await;
    assert_eq!(op["placement"]["chosen"], "a-1");

    // site a-1 goes dark
    let mut down = serde_json::to_value(site("a-1", 16000, &["RNIS"])).unwrap();
    down["vim"]["offline"] = json!(true);
    let r = ctx
        .send(
            ctx.http
                .put(format!("{}/inventory/v1/sites/a-1", ctx.base))
                .bearer_auth(&ctx.token)
                .json(&down),
        )
        .await;
    assert_eq!(r.status(), 200);
    let inventory = &ctx.server.as_ref().unwrap().inventory;
    let b = inventory.vim("b-1").unwrap();
    eventually("the instance re-placed on b-1", EVENTUALLY, async || {
        let owned = b.list_owned().await.unwrap();
        if owned == vec![vim_adapters::workload_name(&id)] {
            Ok(())
        } else {
            Err(owned)
        }
    })
    .await;
    let occs: Value = lcm(&ctx, Method::GET, "/app_lcm_op_occs", None)
        .await
        .json()
        .await
        .unwrap();
    let relocation = occs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operationParams"]["relocateFrom"] == "a-1")
        .cloned()
        .expect("a relocation occurrence");
    let relocation = wait(
        &ctx,
        &format!("/app_lcm_op_occs/{}", relocation["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (
            relocation["operationState"].as_str(),
            relocation["placement"]["chosen"].as_str()
        ),
        (Some("COMPLETED"), Some("b-1"))
    );
    assert_eq!(
        relocation["placement"]["rejected"]["site unhealthy"],
        json!(["a-1"])
    );
    let instance: Value = lcm(&ctx, Method::GET, &format!("/app_instances/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        instance["instantiatedAppState"]["operationalState"],
        "STARTED"
    );
}

on_both_dbs!(instances_move_off_a_failed_site);
/// A MEAO over sites a-1 and b-1 (its configuration adjusted by `adjust`), and a created
/// instance of the video analytics package.
async fn two_sites(db: Db, adjust: impl FnOnce(&mut meao::config::MeaoConfig)) -> (Ctx, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
    let mut config = test_config(url, dir.path());
    config.sites = vec![site("a-1", 16000, &["RNIS"]), site("b-1", 16000, &["RNIS"])];
    adjust(&mut config);
    let ctx = Ctx::start_with(config, dir).await;
    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let id = create_va(&ctx).await;
    (ctx, id)
}

/// [`two_sites`], reconciling every second.
async fn two_sites_reconciled(db: Db) -> (Ctx, String) {
    two_sites(db, |config| config.reconcile_interval_secs = 1).await
}

/// What runs on a site is brought back to what its instances say: a workload deleted by hand
/// comes back, one scaled by hand is scaled back, and workloads no instance should run there
/// (a failed-over instance's old copy, one of an unknown instance) are removed.
async fn workloads_are_reconciled(db: Db) {
    let (ctx, id) = two_sites_reconciled(db).await;
    let on_a = json!({"selectedMECHostInfo": [{"hostId": "a-1"}]});
    let op = run(&ctx, &format!("/app_instances/{id}/instantiate"), on_a).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    let inventory = &ctx.server.as_ref().unwrap().inventory;
    let (a1, b1) = (inventory.vim("a-1").unwrap(), inventory.vim("b-1").unwrap());
    let name = vim_adapters::workload_name(&id);
    let deployed = a1.status(&name).await.unwrap().unwrap();
    assert_eq!(deployed.desired_replicas, 1);

    a1.delete(&name).await.unwrap();
    eventually(
        "the deleted workload recreated",
        EVENTUALLY,
        async || match a1.status(&name).await.unwrap() {
            Some(s) if s.desired_replicas == 1 => Ok(()),
            other => Err(other),
        },
    )
    .await;

    let op = run(
        &ctx,
        &format!("/app_instances/{id}/operate"),
        json!({"changeStateTo": "STOPPED"}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    a1.scale(&name, 1).await.unwrap();
    eventually(
        "the stopped workload scaled back to 0",
        EVENTUALLY,
        async || match a1.status(&name).await.unwrap() {
            Some(s) if s.desired_replicas == 0 => Ok(()),
            other => Err(other),
        },
    )
    .await;

    // copies no instance should have: this instance's on b-1, an unknown instance's on a-1
    let mut stray = deployed_workload(&id);
    b1.apply(&stray).await.unwrap();
    stray = deployed_workload("gone-instance");
    a1.apply(&stray).await.unwrap();
    eventually("stray workloads removed", EVENTUALLY, async || {
        let (on_a, on_b) = (
            a1.list_owned().await.unwrap(),
            b1.list_owned().await.unwrap(),
        );
        if on_a == vec![name.clone()] && on_b.is_empty() {
            Ok(())
        } else {
            Err((on_a, on_b))
        }
    })
    .await;
    let metrics = ctx
        .send(
            ctx.http
                .get(format!("{}/metrics", ctx.base.trim_end_matches('/'))),
        )
        .await
        .text()
        .await
        .unwrap();
    for repair in ["recreated", "rescaled", "removed"] {
        assert!(
            metrics.contains(&format!(
                "meao_reconcile_repairs_total{{repair=\"{repair}\"}}"
            )),
            "{repair}: {metrics}"
        );
    }
}

fn deployed_workload(instance: &str) -> vim_adapters::Workload {
    vim_adapters::Workload {
        name: vim_adapters::workload_name(instance),
        app_instance_id: instance.into(),
        containers: vec![vim_adapters::Container {
            name: "c".into(),
            image: "registry.example/stray:1".into(),
            cpu_millis: 100,
            memory_mib: 64,
            ..Default::default()
        }],
        replicas: 1,
        ..Default::default()
    }
}

on_both_dbs!(workloads_are_reconciled);
/// The other `InstantiateAppRequest` attributes of MEC 010-2: a host named by an object, the
/// containers replaced for this instance (used for placement, the workload and every later
/// deployment of it), and those the MEAO cannot use accepted and listed as not applied.
async fn instantiate_request_attributes(db: Db) {
    let (ctx, id) = two_sites_reconciled(db).await;
    let request = json!({
        "selectedMECHostInfo": [{"hostName": "Site B", "hostId": {"siteId": "b-1"}}],
        "osContainerDescriptor": [{
            "osContainerDescId": "analytics", "name": "analytics", "description": "smaller",
            "requestedCpuResources": 1500, "requestedMemoryResources": 2048,
            "swImageDesc": "va-image"
        }],
        "vimConnectionInfo": [{"b-1": {"vimType": "kubernetes"}}],
        "appTermCandsForCoord": {"terminationOptions": []}
    });
    let bad = json!({"selectedMECHostInfo": [{"hostId": {"rack": 7}}]});
    let r = lcm(
        &ctx,
        Method::POST,
        &format!("/app_instances/{id}/instantiate"),
        Some(bad),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("siteId"));
    let op = run(&ctx, &format!("/app_instances/{id}/instantiate"), request).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    assert_eq!(op["placement"]["chosen"], "b-1");
    let not_applied = op["placement"]["notApplied"].as_array().unwrap();
    assert_eq!(not_applied.len(), 2, "{not_applied:?}");
    assert!(
        not_applied[0]
            .as_str()
            .unwrap()
            .starts_with("vimConnectionInfo")
    );
    let inventory = &ctx.server.as_ref().unwrap().inventory;
    let b1 = inventory.vim("b-1").unwrap();
    assert_eq!(
        b1.capacity().await.unwrap().cpu_millis,
        16000 - 1500,
        "the request's container"
    );
    // redeployed by the reconciliation with the same containers
    let name = vim_adapters::workload_name(&id);
    b1.delete(&name).await.unwrap();
    eventually("recreated as instantiated", EVENTUALLY, async || {
        match b1.capacity().await.unwrap().cpu_millis {
            14500 => Ok(()),
            other => Err(other),
        }
    })
    .await;
}

on_both_dbs!(instantiate_request_attributes);

async fn cancel_graceful_terminate_and_anti_affinity(db: Db) {
    let mut slow = site("slow-1", 16000, &["RNIS"]);
    if let meao::inventory::VimConnection::Simulated(meao::inventory::SimulatedCluster {
        startup_ms,
        ..
    }) = &mut slow.vim
    {
        *startup_ms = 3000;
    }
    let ctx = start(db, vec![slow, site("fast-1", 16000, &["RNIS"])]).await;
    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let create = || {
        lcm(
            &ctx,
            Method::POST,
            "/app_instances",
            Some(json!({"appDId": VA})),
        )
    };

    // cancel while the workload is starting on the slow site: rolled back, FAILED_TEMP
    let a: Value = create().await.json().await.unwrap();
    let a_id = a["id"].as_str().unwrap().to_owned();
    let r = lcm(
        &ctx,
        Method::POST,
        &format!("/app_instances/{a_id}/instantiate"),
        Some(json!({"selectedMECHostInfo": [{"hostId": "slow-1"}]})),
    )
    .await;
    let op_path = r.headers()["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/app_lcm/v1")
        .to_owned();
    let slow_vim = ctx
        .server
        .as_ref()
        .unwrap()
        .inventory
        .vim("slow-1")
        .unwrap();
    eventually("the workload starting on slow-1", EVENTUALLY, async || {
        let owned = slow_vim.list_owned().await.unwrap();
        if owned.is_empty() { Err(owned) } else { Ok(()) }
    })
    .await;
    let r = lcm(
        &ctx,
        Method::POST,
        &format!("{op_path}/cancel"),
        Some(json!({"cancelMode": "GRACEFUL"})),
    )
    .await;
    assert_eq!(r.status(), 202);
    let op = wait(&ctx, &op_path).await;
    assert_eq!(op["operationState"], "FAILED_TEMP", "{op:#}");
    assert!(
        slow_vim.list_owned().await.unwrap().is_empty(),
        "the cancelled instantiation left nothing"
    );
    let r = lcm(
        &ctx,
        Method::POST,
        &format!("{op_path}/cancel"),
        Some(json!({"cancelMode": "FORCEFUL"})),
    )
    .await;
    assert_not_allowed(r, "only running operations can be cancelled").await;
    lcm(&ctx, Method::POST, &format!("{op_path}/fail"), None).await;

    // anti-affinity keeps a second application off the first one's site
    let op = run(
        &ctx,
        &format!("/app_instances/{a_id}/instantiate"),
        json!({"selectedMECHostInfo": [{"hostId": "fast-1"}]}),
    )
    .await;
    assert_eq!(op["placement"]["chosen"], "fast-1");
    let b: Value = create().await.json().await.unwrap();
    let b_id = b["id"].as_str().unwrap().to_owned();
    let op = run(
        &ctx,
        &format!("/app_instances/{b_id}/instantiate"),
        json!({"antiAffinity": [VA], "selectedMECHostInfo": [{"hostId": "fast-1"}]}),
    )
    .await;
    assert_eq!(op["operationState"], "FAILED_TEMP");
    assert_eq!(
        op["placement"]["rejected"][format!("anti-affinity with {VA}")],
        json!(["fast-1"])
    );
    // placement counts what each site holds: a, not b, whose placement failed
    let views = ctx
        .server
        .as_ref()
        .unwrap()
        .inventory
        .views()
        .await
        .unwrap();
    let held: Vec<_> = views
        .iter()
        .map(|v| (&*v.id, v.app_instances.clone()))
        .filter(|(_, held)| !held.is_empty())
        .collect();
    assert_eq!(held, [("fast-1", [(VA.to_owned(), 1)].into())]);
    lcm(
        &ctx,
        Method::POST,
        &format!("/app_lcm_op_occs/{}/fail", op["id"].as_str().unwrap()),
        None,
    )
    .await;
    // deleting b leaves the package in use: a is still an instance of it
    assert_eq!(delete_instance(&ctx, &b_id).await.status(), 204);
    let pkg = ctx.json(&format!("/onboarded_app_packages/{VA}")).await;
    assert_eq!(pkg["usageState"], "IN_USE");

    // graceful termination stops the workload before removing it
    let op = run(
        &ctx,
        &format!("/app_instances/{a_id}/terminate"),
        json!({"terminationType": "GRACEFUL", "gracefulTerminationTimeout": 5}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED");
    let fast_vim = ctx
        .server
        .as_ref()
        .unwrap()
        .inventory
        .vim("fast-1")
        .unwrap();
    assert!(fast_vim.list_owned().await.unwrap().is_empty());
}

on_both_dbs!(cancel_graceful_terminate_and_anti_affinity);

/// `GET /inventory/v1/site_cleanups`.
async fn site_cleanups(ctx: &Ctx) -> Value {
    let url = format!("{}/inventory/v1/site_cleanups", ctx.base);
    let r = ctx.send(ctx.http.get(url).bearer_auth(&ctx.token)).await;
    r.json().await.unwrap()
}

/// A site deleted by force while it hosts an instance: the instance is not lost (it becomes
/// NOT_INSTANTIATED and can be instantiated elsewhere), its workload is listed for clean-up,
/// and once a site of that id answers again its reconciliation removes the workload and the
/// record.
async fn a_site_deleted_by_force_leaves_its_workloads_for_cleanup(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("a-1.json");
    let (mut ctx, id) = two_sites(db, |config| {
        config.reconcile_interval_secs = 1;
        config.sites[0] = serde_json::from_value(json!({
            "id": "a-1", "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris", "services": ["RNIS"],
            "vim": {"kind": "simulated", "cpuMillis": 16000, "memoryMib": 32768, "stateFile": state}
        }))
        .unwrap();
    })
    .await;
    let on_a = json!({"selectedMECHostInfo": [{"hostId": "a-1"}]});
    let op = run(&ctx, &format!("/app_instances/{id}/instantiate"), on_a).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    let name = vim_adapters::workload_name(&id);

    let r = ctx.delete_site("a-1").await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("force=true"));
    let forced = |ctx: &Ctx| {
        ctx.http
            .delete(format!("{}/inventory/v1/sites/a-1?force=true", ctx.base))
            .bearer_auth(&ctx.token)
            .send()
    };
    let r = forced(&ctx).await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let instance: Value = lcm(&ctx, Method::GET, &format!("/app_instances/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(instance["instantiationState"], "NOT_INSTANTIATED");
    let left = site_cleanups(&ctx).await;
    assert_eq!(left[0]["siteId"], "a-1", "{left}");
    assert_eq!(left[0]["appInstanceId"], id.as_str());
    assert_eq!(left[0]["workloadName"], name.as_str());
    assert!(
        std::fs::read_to_string(&state).unwrap().contains(&name),
        "nothing could remove the workload from the deleted site"
    );
    let on_b = json!({"selectedMECHostInfo": [{"hostId": "b-1"}]});
    let op = run(&ctx, &format!("/app_instances/{id}/instantiate"), on_b).await;
    assert_eq!(
        op["operationState"], "COMPLETED",
        "instantiated elsewhere: {op:#}"
    );

    // the site comes back (from the configuration, at restart): its leftover goes
    ctx.restart().await;
    eventually(
        "the leftover workload and its record gone",
        EVENTUALLY,
        async || {
            let left = site_cleanups(&ctx).await;
            let running = std::fs::read_to_string(&state).unwrap_or_default();
            if left == json!([]) && !running.contains(&name) {
                Ok(())
            } else {
                Err((left, running))
            }
        },
    )
    .await;
}

on_both_dbs!(a_site_deleted_by_force_leaves_its_workloads_for_cleanup);
