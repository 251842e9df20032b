//! One notification outbox, several deliverers (the replicas of a service on one database):
//! each notification is claimed by one of them and reaches its subscriber once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;

use server_kit::admin::Metrics;
use server_kit::notify::{Deliverer, DeliveryConfig, NotificationRow, SqlOutbox};
use server_kit::on_both_dbs;
use server_kit::outbound::{Destinations, OutboundPolicy};
use server_kit::testing::{Callback, Db};

const NOTIFICATIONS: usize = 600;

async fn deliverers_share_one_outbox(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "outbox", dir.path()).await;
    // the outbox table as a service creates it: the MEP's schema
    static SCHEMA: sqlx::migrate::Migrator = sqlx::migrate!("../mep/migrations");
    // each replica with its own pool, as separate processes would have
    let mut pools = Vec::new();
    for _ in 0..3 {
        pools.push(server_kit::db::connect(&url, &SCHEMA).await.unwrap());
    }
    let pool = pools[0].clone();
    let mut callback = Callback::start(0).await;
    let mut tx = pool.begin().await.unwrap();
    for i in 0..NOTIFICATIONS {
        let row = NotificationRow {
            id: format!("n-{i}"),
            subscription_id: "s".into(),
            callback_uri: callback.url.clone(),
            body: format!("{{\"n\": {i}}}"),
            created_at: i64::try_from(i).unwrap(),
        };
        SqlOutbox::enqueue(&mut tx, &row).await.unwrap();
    }
    tx.commit().await.unwrap();

    let policy = OutboundPolicy {
        allow: vec!["127.0.0.0/8".into()],
        ..OutboundPolicy::default()
    };
    let destinations = Destinations::new(&policy).unwrap();
    let replicas: Vec<_> = pools
        .iter()
        .map(|pool| {
            let deliverer = Deliverer::new(
                Arc::new(SqlOutbox::new(pool.clone())),
                DeliveryConfig::default(),
                &destinations,
                &Metrics::new("test"),
            )
            .unwrap();
            tokio::spawn(async move {
                let mut attempted = 0;
                loop {
                    match deliverer.run_once().await.unwrap() {
                        0 => return attempted,
                        n => attempted += n,
                    }
                }
            })
        })
        .collect();
    let mut attempted = 0;
    for replica in replicas {
        attempted += replica.await.unwrap();
    }
    let mut received = std::collections::BTreeSet::new();
    for _ in 0..NOTIFICATIONS {
        let body = callback.next().await;
        assert!(received.insert(body["n"].as_u64().unwrap()), "{body} twice");
    }
    assert_eq!(received.len(), NOTIFICATIONS);
    assert_eq!(attempted, NOTIFICATIONS, "each claimed by one deliverer");
    assert_eq!(*callback.attempts.lock().unwrap() as usize, NOTIFICATIONS);
    let outbox = SqlOutbox::new(pool);
    assert_eq!(
        outbox.count("DELIVERED").await.unwrap() as usize,
        NOTIFICATIONS
    );
}

on_both_dbs!(deliverers_share_one_outbox);

/// A subscriber that accepts the connection and never answers does not hold up a stopping
/// service: the delivery under way is dropped and stays queued for the next run.
async fn a_stopping_deliverer_leaves_a_hanging_delivery_queued(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "hang", dir.path()).await;
    static SCHEMA: sqlx::migrate::Migrator = sqlx::migrate!("../mep/migrations");
    let pool = server_kit::db::connect(&url, &SCHEMA).await.unwrap();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let row = NotificationRow {
        id: "n-1".into(),
        subscription_id: "s".into(),
        callback_uri: format!("http://{}/cb", silent.local_addr().unwrap()),
        body: "{}".into(),
        created_at: 0,
    };
    let mut tx = pool.begin().await.unwrap();
    SqlOutbox::enqueue(&mut tx, &row).await.unwrap();
    tx.commit().await.unwrap();
    let policy = OutboundPolicy {
        allow: vec!["127.0.0.0/8".into()],
        ..OutboundPolicy::default()
    };
    let deliverer = Deliverer::new(
        Arc::new(SqlOutbox::new(pool.clone())),
        DeliveryConfig {
            timeout_ms: 600_000,
            ..DeliveryConfig::default()
        },
        &Destinations::new(&policy).unwrap(),
        &Metrics::new("test"),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(deliverer.run(async {
        let _ = stopped.await;
    }));
    // the delivery is under way once the subscriber holds its connection
    let (_held, _) = silent.accept().await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(60), running)
        .await
        .expect("the deliverer ends at shutdown, long before its 600 s POST timeout")
        .unwrap();
    let outbox = SqlOutbox::new(pool);
    assert_eq!(outbox.count("DELIVERED").await.unwrap(), 0);
    assert_eq!(outbox.count("PENDING").await.unwrap(), 1);
}

on_both_dbs!(a_stopping_deliverer_leaves_a_hanging_delivery_queued);
