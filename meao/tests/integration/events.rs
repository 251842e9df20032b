//! Events on Apache Kafka: the state changes of an onboarding, an instantiation and a
//! termination, made while the broker is still down, arrive once it is up as CloudEvents on one
//! topic per kind, keyed by resource id, in version order; then the broker crashes, a second
//! instantiation happens meanwhile, and after the broker's restart on its log every event of
//! both is there, at least once and still in order.

use std::collections::BTreeMap;

use meao::events::testing::{Broker, consume, free_port, kafka};
use meao::store::MepReport;
use reqwest::Method;
use serde_json::{Value, json};
use server_kit::on_both_dbs;
use server_kit::testing::{EVENTUALLY, eventually};

use super::common::{Ctx, Db, example, test_config};
use super::lcm::{create_va, lcm, run, site};

on_both_dbs!(
    state_changes_reach_kafka_as_cloudevents,
    replicas_publish_each_event_once,
    an_acknowledged_removal_clears_the_reported_status,
    an_outcome_is_recorded_once
);

fn field<'a>(events: &'a [Value], name: &str) -> Vec<&'a str> {
    events
        .iter()
        .map(|e| e["data"][name].as_str().unwrap_or("-"))
        .collect()
}

async fn state_changes_reach_kafka_as_cloudevents(db: Db) {
    let Some(jars) = kafka() else { return };
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let prefix = format!("t{}", uuid_like());
    let ctx = start(db, &brokers, &prefix, 50).await;

    // Everything happens while the broker is down.
    let (pkg, status) = ctx.onboard("va", example("video-analytics")).await;
    assert_eq!(status, 202);
    ctx.wait_state(&pkg, "ONBOARDED").await;
    let id = create_va(&ctx).await;
    let op = run(&ctx, &format!("/app_instances/{id}/instantiate"), json!({})).await;
    assert_eq!(op["operationState"], "COMPLETED");
    let op = run(
        &ctx,
        &format!("/app_instances/{id}/terminate"),
        json!({"terminationType": "FORCEFUL"}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED");

    // The broker comes up; the outbox delivers what accumulated.
    let store = meao::store::Store::connect(&ctx.config.database_url)
        .await
        .unwrap();
    assert!(
        !store.events_pending(1).await.unwrap().is_empty(),
        "held back while the broker is down"
    );
    let mut broker = Broker::start(&jars, port).await;
    let drained = async || match store.events_pending(1).await.unwrap().len() {
        0 => Ok(()),
        n => Err(n),
    };
    eventually("the outbox drained", EVENTUALLY, &drained).await;

    // The broker crashes; what happens meanwhile waits in the outbox, and what it had
    // acknowledged is still there after its restart.
    broker.kill();
    let op = run(&ctx, &format!("/app_instances/{id}/instantiate"), json!({})).await;
    assert_eq!(op["operationState"], "COMPLETED");
    assert!(
        !store.events_pending(1).await.unwrap().is_empty(),
        "held back while the broker is down"
    );
    broker.restart().await;
    eventually("the outbox drained after the restart", EVENTUALLY, &drained).await;

    let consumed = consume(&brokers, &prefix, |seen| {
        let instance_done = seen
            .get("app-instances")
            .and_then(|k| k.get(&id))
            .is_some_and(|e| e.len() >= 4);
        let ops_done = seen.get("lcm-op-occs").is_some_and(|ops| {
            ops.len() == 3
                && ops
                    .values()
                    .all(|e| field(e, "operationState").last() == Some(&"COMPLETED"))
        });
        let pkg_done = seen
            .get("app-packages")
            .and_then(|k| k.get(&pkg))
            .is_some_and(|e| field(e, "onboardingState").contains(&"ONBOARDED"));
        instance_done && ops_done && pkg_done && seen.contains_key("sites")
    })
    .await;
    let seen = consumed.events;

    let package = &seen["app-packages"][&pkg];
    assert_eq!(
        field(package, "onboardingState")[..4],
        ["CREATED", "UPLOADING", "PROCESSING", "ONBOARDED"]
    );
    let instance = &seen["app-instances"][&id];
    assert_eq!(
        field(instance, "instantiationState"),
        [
            "NOT_INSTANTIATED",
            "INSTANTIATED",
            "NOT_INSTANTIATED",
            "INSTANTIATED"
        ]
    );
    assert_eq!(field(instance, "mecHostId")[1], "paris-1");
    for events in seen.values().flat_map(BTreeMap::values) {
        let sequence: Vec<u64> = events
            .iter()
            .map(|e| e["sequence"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            sequence,
            (1..=sequence.len() as u64).collect::<Vec<_>>(),
            "in version order"
        );
        for e in events {
            assert_eq!(e["specversion"], "1.0");
            assert_eq!(e["source"], "/mecplane/meao");
            assert!(e["type"].as_str().unwrap().starts_with("io.mecplane.meao."));
            assert!(e["time"].as_str().unwrap().ends_with('Z'));
        }
    }
    let ops = &seen["lcm-op-occs"];
    let mut operations: Vec<&str> = ops.values().map(|e| field(e, "lcmOperation")[0]).collect();
    operations.sort();
    assert_eq!(operations, ["INSTANTIATE", "INSTANTIATE", "TERMINATE"]);
}

/// Three replicas on one database publish one outbox: each event reaches Kafka once.
async fn replicas_publish_each_event_once(db: Db) {
    let Some(jars) = kafka() else { return };
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let _broker = Broker::start(&jars, port).await;
    let prefix = format!("t{}", uuid_like());
    let ctx = start(db, &brokers, &prefix, 20).await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(
            meao::server::Server::start(ctx.config.clone())
                .await
                .unwrap(),
        );
    }
    let mut packages = Vec::new();
    for name in ["video-analytics", "iot-gateway"] {
        let (pkg, status) = ctx.onboard(name, example(name)).await;
        assert_eq!(status, 202);
        ctx.wait_state(&pkg, "ONBOARDED").await;
        packages.push(pkg);
    }
    let consumed = consume(&brokers, &prefix, |seen| {
        packages.iter().all(|p| {
            seen.get("app-packages")
                .and_then(|k| k.get(p))
                .is_some_and(|e| field(e, "onboardingState").contains(&"ONBOARDED"))
        })
    })
    .await;
    assert_eq!(consumed.duplicates, 0, "{:#?}", consumed.events);
    for replica in replicas {
        replica.shutdown().await;
    }
}

/// A MEAO with one site publishing to `brokers` under `prefix`, polling its outbox every
/// `poll_ms`.
async fn start(db: Db, brokers: &str, prefix: &str, poll_ms: u64) -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
    let mut config = test_config(url, dir.path());
    config.sites = vec![site("paris-1", 16000, &["RNIS"])];
    config.kafka = Some(meao::events::KafkaConfig {
        brokers: brokers.to_owned(),
        topic_prefix: prefix.to_owned(),
        properties: BTreeMap::new(),
        poll_interval_ms: poll_ms,
        retention_hours: 24,
    });
    Ctx::start_with(config, dir).await
}

fn uuid_like() -> String {
    format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// An instance's status at a MEP goes with its acknowledged removal: the MEP's ABSENT report
/// can be lost with a cut stream, and a new stream reports only what the MEP holds.
async fn an_acknowledged_removal_clears_the_reported_status(db: Db) {
    let ctx = Ctx::start(db).await;
    let store = meao::store::Store::connect(&ctx.config.database_url)
        .await
        .unwrap();
    let desired = store
        .mep_config_desire("paris-1", "i1", Some("{}"), 10, None, 1)
        .await
        .unwrap();
    let acked = |version| MepReport::Acked {
        app_instance_id: "i1".into(),
        version,
    };
    let status = MepReport::Status {
        app_instance_id: "i1".into(),
        status: r#"{"readiness":"READY"}"#.into(),
        at: 2,
    };
    store
        .mep_config_report("paris-1", &[acked(desired.version), status])
        .await
        .unwrap();
    let removal = store
        .mep_config_desire("paris-1", "i1", None, 10, None, 3)
        .await
        .unwrap();
    let held = async || {
        store
            .mep_config_get("paris-1", "i1")
            .await
            .unwrap()
            .unwrap()
    };
    assert!(
        held().await.status.is_some(),
        "kept until the MEP acknowledges the removal"
    );
    store
        .mep_config_report("paris-1", &[acked(removal.version)])
        .await
        .unwrap();
    let held = held().await;
    assert_eq!((held.status, held.status_at), (None, None));
}

/// Two replicas may record one operation's outcome (the saga's executor and a recovery pass
/// that finds the saga ended): the second write changes nothing and queues no event or
/// notification, and a final state is never left.
async fn an_outcome_is_recorded_once(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
    let mut config = test_config(url, dir.path());
    config.sites = vec![site("paris-1", 16000, &["RNIS"])];
    let ctx = Ctx::start_with(config, dir).await;
    assert_eq!(ctx.onboard("va", example("video-analytics")).await.1, 202);
    let id = create_va(&ctx).await;
    let op = run(&ctx, &format!("/app_instances/{id}/instantiate"), json!({})).await;
    assert_eq!(op["operationState"], "COMPLETED");
    let op_id = op["id"].as_str().unwrap();
    let store = meao::store::Store::connect(&ctx.config.database_url)
        .await
        .unwrap();
    for state in ["COMPLETED", "PROCESSING", "FAILED_TEMP"] {
        assert!(
            !store
                .op_occ_set_state(op_id, state, None, &[], 1)
                .await
                .unwrap(),
            "a COMPLETED occurrence moved to {state}"
        );
    }
    let again = lcm(
        &ctx,
        Method::GET,
        &format!("/app_lcm_op_occs/{op_id}"),
        None,
    )
    .await
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(again["operationState"], "COMPLETED");
    assert_eq!(again["stateEnteredTime"], op["stateEnteredTime"]);
}
