//! Subscriptions and notifications: service availability, application termination, delivery
//! retries and durability across a restart.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::common::{APP1, APP2, Callback, Ctx, Db, OPERATOR, service, test_config};
use server_kit::on_both_dbs;
use server_kit::testing::{EVENTUALLY, eventually};

on_both_dbs!(
    availability_notifications_follow_filters,
    delivery_retries_until_the_subscriber_answers,
    pending_notifications_survive_a_restart,
    termination_waits_for_confirmation,
    termination_proceeds_at_the_deadline,
);

fn availability_subscription(callback: &str, names: &[&str]) -> Value {
    json!({"subscriptionType": "SerAvailabilityNotificationSubscription", "callbackReference": callback,
           "filteringCriteria": {"serNames": names}})
}

async fn availability_notifications_follow_filters(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    ctx.provision("i2").await;
    let (a1, a2) = (ctx.token(APP1).await, ctx.token(APP2).await);
    let mut cb = Callback::start(0).await;

    for bad in [
        json!({"subscriptionType": "Wrong", "callbackReference": cb.url}),
        json!({"subscriptionType": "SerAvailabilityNotificationSubscription", "callbackReference": "not a uri"}),
        json!({"subscriptionType": "SerAvailabilityNotificationSubscription", "callbackReference": cb.url,
               "filteringCriteria": {"serNames": ["a"], "serInstanceIds": ["b"]}}),
        json!({"subscriptionType": "SerAvailabilityNotificationSubscription", "callbackReference": cb.url,
               "filteringCriteria": {"serInstanceIds": ["b\u{85}"]}}),
    ] {
        let r = ctx
            .call(
                Method::POST,
                "/mec_service_mgmt/v1/applications/i2/subscriptions",
                &a2,
                Some(bad),
            )
            .await;
        assert_eq!(r.status(), 400);
    }
    let r = ctx
        .call(
            Method::POST,
            "/mec_service_mgmt/v1/applications/i2/subscriptions",
            &a2,
            Some(availability_subscription(&cb.url, &["video"])),
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let sub: Value = r.json().await.unwrap();
    assert_eq!(sub["_links"]["self"]["href"], location.as_str());
    let list: Value = ctx
        .call(
            Method::GET,
            "/mec_service_mgmt/v1/applications/i2/subscriptions",
            &a2,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["_links"]["subscriptions"][0]["href"],
        location.as_str()
    );
    assert_eq!(
        list["_links"]["subscriptions"][0]["subscriptionType"],
        "SerAvailabilityNotificationSubscription"
    );
    // the app support API lists only its own subscription type
    let other: Value = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i2/subscriptions",
            &a2,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        other["_links"]["subscriptions"].as_array().unwrap().len(),
        0
    );

    let created: Value = ctx
        .call(
            Method::POST,
            "/mec_service_mgmt/v1/applications/i1/services",
            &a1,
            Some(service("video")),
        )
        .await
        .json()
        .await
        .unwrap();
    let n = cb.next().await;
    assert_eq!(n["notificationType"], "SerAvailabilityNotification");
    assert_eq!(n["serviceReferences"][0]["changeType"], "ADDED");
    assert_eq!(
        n["serviceReferences"][0]["serInstanceId"],
        created["serInstanceId"]
    );
    assert_eq!(n["_links"]["subscription"]["href"], location.as_str());

    ctx.call(
        Method::POST,
        "/mec_service_mgmt/v1/applications/i1/services",
        &a1,
        Some(service("not-watched")),
    )
    .await;
    cb.none_within(Duration::from_millis(400)).await;

    let id = created["serInstanceId"].as_str().unwrap();
    let mut update = created.clone();
    update["state"] = json!("INACTIVE");
    ctx.call(
        Method::PUT,
        &format!("/mec_service_mgmt/v1/applications/i1/services/{id}"),
        &a1,
        Some(update),
    )
    .await;
    let n = cb.next().await;
    assert_eq!(
        (
            n["serviceReferences"][0]["changeType"].as_str(),
            n["serviceReferences"][0]["state"].as_str()
        ),
        (Some("STATE_CHANGED"), Some("INACTIVE"))
    );

    ctx.call(
        Method::DELETE,
        &format!("/mec_service_mgmt/v1/applications/i1/services/{id}"),
        &a1,
        None,
    )
    .await;
    let n = cb.next().await;
    assert_eq!(n["serviceReferences"][0]["changeType"], "REMOVED");
    assert!(n["serviceReferences"][0].get("link").is_none());

    let sub_path = location.strip_prefix(&ctx.base).unwrap().to_owned();
    assert_eq!(
        ctx.call(Method::GET, &sub_path, &a2, None).await.status(),
        200
    );
    assert_eq!(
        ctx.call(Method::GET, &sub_path, &a1, None).await.status(),
        403
    );
    assert_eq!(
        ctx.call(Method::DELETE, &sub_path, &a2, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        ctx.call(Method::GET, &sub_path, &a2, None).await.status(),
        404
    );
    ctx.call(
        Method::POST,
        "/mec_service_mgmt/v1/applications/i1/services",
        &a1,
        Some(service("video")),
    )
    .await;
    cb.none_within(Duration::from_millis(400)).await;
}

async fn delivery_retries_until_the_subscriber_answers(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let a1 = ctx.token(APP1).await;
    let mut cb = Callback::start(2).await;
    ctx.call(
        Method::POST,
        "/mec_service_mgmt/v1/applications/i1/subscriptions",
        &a1,
        Some(availability_subscription(&cb.url, &["video"])),
    )
    .await;
    ctx.call(
        Method::POST,
        "/mec_service_mgmt/v1/applications/i1/services",
        &a1,
        Some(service("video")),
    )
    .await;
    let n = cb.next().await;
    assert_eq!(n["serviceReferences"][0]["changeType"], "ADDED");
    assert_eq!(
        *cb.attempts.lock().unwrap(),
        3,
        "two refusals, then delivered"
    );
    // the outcome is recorded once the callback answered
    let store = ctx.server().platform.store();
    eventually("the delivery recorded", EVENTUALLY, async || {
        match store.outbox().count("DELIVERED").await.unwrap() {
            1 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    assert_eq!(store.outbox().count("PENDING").await.unwrap(), 0);
}

async fn pending_notifications_survive_a_restart(db: Db) {
    // retried for as long as the test may take (a loaded machine must not exhaust them)
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(server_kit::testing::fresh_database(db, "mep", dir.path()).await);
    config.delivery.max_attempts = u32::MAX;
    let mut ctx = Ctx::start_with(config, dir).await;
    ctx.provision("i1").await;
    let a1 = ctx.token(APP1).await;
    // a port nobody listens on yet
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let url = format!("http://{addr}/notify");
    ctx.call(
        Method::POST,
        "/mec_service_mgmt/v1/applications/i1/subscriptions",
        &a1,
        Some(availability_subscription(&url, &["video"])),
    )
    .await;
    ctx.call(
        Method::POST,
        "/mec_service_mgmt/v1/applications/i1/services",
        &a1,
        Some(service("video")),
    )
    .await;
    // an attempt failed, and the notification is kept pending
    eventually("a failed delivery attempt", EVENTUALLY, async || {
        let metrics = reqwest::get(ctx.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let failed = metrics
            .lines()
            .find_map(|l| l.strip_prefix("mep_notifications_failed_total "));
        match failed {
            Some(n) if n != "0" => Ok(()),
            _ => Err(failed.map(str::to_owned)),
        }
    })
    .await;
    let store = ctx.server().platform.store();
    assert_eq!(
        store.outbox().count("PENDING").await.unwrap(),
        1,
        "undeliverable, kept pending"
    );

    ctx.restart().await;
    let mut cb = Callback::start_on(addr, 0).await;
    // an attempt under way at the shutdown is dropped with its claim, which expires only after
    // the deliverer's claim time (here 42 s: the POST timeout per round of a batch, and 10 s),
    // as after a crash
    let n = cb
        .next_within(Duration::from_secs(60))
        .await
        .expect("the pending notification delivered after the restart");
    assert_eq!(n["serviceReferences"][0]["changeType"], "ADDED");
}

fn termination_subscription(callback: &str, app: &str) -> Value {
    json!({"subscriptionType": "AppTerminationNotificationSubscription", "callbackReference": callback, "appInstanceId": app})
}

async fn termination_waits_for_confirmation(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    ctx.provision("i2").await;
    let (a1, a2, op) = (
        ctx.token(APP1).await,
        ctx.token(APP2).await,
        ctx.token(OPERATOR).await,
    );
    let mut term = Callback::start(0).await;
    let mut avail = Callback::start(0).await;
    let r = ctx
        .call(
            Method::POST,
            "/mec_app_support/v1/applications/i1/subscriptions",
            &a1,
            Some(termination_subscription(&term.url, "i2")),
        )
        .await;
    assert_eq!(r.status(), 400, "appInstanceId must be the path's");
    let r = ctx
        .call(
            Method::POST,
            "/mec_app_support/v1/applications/i1/subscriptions",
            &a1,
            Some(termination_subscription(&term.url, "i1")),
        )
        .await;
    assert_eq!(r.status(), 201);
    ctx.call(
        Method::POST,
        "/mec_service_mgmt/v1/applications/i2/subscriptions",
        &a2,
        Some(availability_subscription(&avail.url, &["video"])),
    )
    .await;
    ctx.call(
        Method::POST,
        "/mec_service_mgmt/v1/applications/i1/services",
        &a1,
        Some(service("video")),
    )
    .await;
    assert_eq!(
        avail.next().await["serviceReferences"][0]["changeType"],
        "ADDED"
    );

    let confirm = |action: &str| {
        let body = json!({"operationAction": action});
        let (ctx, a1) = (&ctx, a1.clone());
        async move {
            ctx.call(
                Method::POST,
                "/mec_app_support/v1/applications/i1/confirm_termination",
                &a1,
                Some(body),
            )
            .await
            .status()
        }
    };
    assert_eq!(confirm("TERMINATING").await, 409, "nothing pending yet");
    let r = ctx
        .call(
            Method::DELETE,
            "/mep_mgmt/v1/app_instances/i1?graceful_timeout=30",
            &op,
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    let n = term.next().await;
    assert_eq!(n["notificationType"], "AppTerminationNotification");
    assert_eq!(
        (
            n["operationAction"].as_str(),
            n["maxGracefulTimeout"].as_u64()
        ),
        (Some("TERMINATING"), Some(30))
    );
    assert!(
        n["_links"]["confirmTermination"]["href"]
            .as_str()
            .unwrap()
            .ends_with("/applications/i1/confirm_termination")
    );
    let r = ctx
        .call(
            Method::POST,
            "/mec_app_support/v1/applications/i1/confirm_ready",
            &a1,
            Some(json!({"indication": "READY"})),
        )
        .await;
    assert_eq!(r.status(), 409);
    assert_eq!(confirm("STOPPING").await, 409);
    assert_eq!(confirm("TERMINATING").await, 204);

    assert_eq!(
        ctx.call(Method::GET, "/mep_mgmt/v1/app_instances/i1", &op, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        avail.next().await["serviceReferences"][0]["changeType"],
        "REMOVED"
    );
    let left: Value = ctx
        .call(Method::GET, "/mec_service_mgmt/v1/services", &a2, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(left.as_array().unwrap().len(), 0);
}

async fn termination_proceeds_at_the_deadline(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let (a1, op) = (ctx.token(APP1).await, ctx.token(OPERATOR).await);
    let mut term = Callback::start(0).await;
    ctx.call(
        Method::POST,
        "/mec_app_support/v1/applications/i1/subscriptions",
        &a1,
        Some(termination_subscription(&term.url, "i1")),
    )
    .await;

    let r = ctx
        .call(
            Method::POST,
            "/mep_mgmt/v1/app_instances/i1/stop",
            &op,
            None,
        )
        .await;
    assert_eq!(r.status(), 204, "no graceful period: stopped at once");
    let rec: Value = ctx
        .call(Method::GET, "/mep_mgmt/v1/app_instances/i1", &op, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["state"], "INSTANTIATED");

    let r = ctx
        .call(
            Method::DELETE,
            "/mep_mgmt/v1/app_instances/i1?graceful_timeout=1",
            &op,
            None,
        )
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(term.next().await["operationAction"], "TERMINATING");
    eventually(
        "the instance removed after its graceful period",
        EVENTUALLY,
        async || match ctx
            .call(Method::GET, "/mep_mgmt/v1/app_instances/i1", &op, None)
            .await
            .status()
            .as_u16()
        {
            404 => Ok(()),
            status => Err(status),
        },
    )
    .await;
}
