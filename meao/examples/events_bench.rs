//! Event outbox benchmark: records N package state changes (each a CloudEvent written in the
//! transaction of the change) and times publishing them to Apache Kafka.
//!
//! `cargo run --release -p meao --example events_bench -- [brokers] [events]`: against the
//! brokers given, or else a single-node Apache Kafka it starts from the jars in
//! `MECPLANE_KAFKA` (`export MECPLANE_KAFKA=$(tests/kafka/fetch.sh)`).

use std::time::Instant;

use meao::events::testing::{Broker, free_port};
use meao::events::{KafkaConfig, Publisher};
use meao::store::{PackageRow, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let given = args.next_if(|a| a.parse::<usize>().is_err());
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let broker = match (&given, std::env::var_os("MECPLANE_KAFKA")) {
        (None, Some(jars)) => Some(Broker::start(std::path::Path::new(&jars), free_port()).await),
        _ => None,
    };
    let brokers = given
        .or_else(|| broker.as_ref().map(Broker::brokers))
        .ok_or("usage: events_bench [brokers] [events] (without brokers: MECPLANE_KAFKA)")?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url).await?.with_events(true);

    let t = Instant::now();
    for i in 0..events {
        store
            .package_insert(&PackageRow {
                id: format!("pkg-{i}"),
                app_d_id: None,
                app_d_version: None,
                onboarding_state: "CREATED".into(),
                operational_state: "DISABLED".into(),
                usage_state: "NOT_IN_USE".into(),
                create_request: "{}".into(),
                content_hash: None,
                details: None,
                appd: None,
                failure: None,
                created_at: server_kit::unix_millis_now(),
            })
            .await?;
    }
    let recorded = t.elapsed();

    let metrics = server_kit::admin::Metrics::new("bench");
    let publisher = Publisher::new(
        store.clone(),
        KafkaConfig {
            brokers,
            topic_prefix: format!("bench{}", std::process::id()),
            properties: Default::default(),
            poll_interval_ms: 10,
            retention_hours: 1,
        },
        "bench".into(),
        &metrics,
    )?;
    let t = Instant::now();
    let mut published = 0;
    while published < events {
        published += publisher.publish_batch().await?;
    }
    let sent = t.elapsed();
    println!(
        "{events} events: recorded with their changes in {:.2} s ({:.0}/s, SQLite); published in {:.2} s ({:.0}/s, pipelined batches of 256, acks=all)",
        recorded.as_secs_f64(),
        events as f64 / recorded.as_secs_f64(),
        sent.as_secs_f64(),
        events as f64 / sent.as_secs_f64()
    );
    Ok(())
}
