//! Publishing the event outbox to Kafka: every state change of a package, application
//! instance, LCM operation occurrence or site, as a JSON CloudEvent (structured mode,
//! `content-type: application/cloudevents+json`) on topic `<prefix>.<kind>` keyed by the
//! resource id, at least once: an event is marked published only after the broker acknowledged
//! it (`acks=all`, idempotent producer), and per resource in version order.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use crate::store::Store;

#[cfg(feature = "test-support")]
pub mod testing;

/// Kafka publishing settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers (`host:port,host:port`).
    pub brokers: String,
    /// Topic prefix: events go to `<prefix>.app-packages`, `.app-instances`, `.lcm-op-occs` and
    /// `.sites`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Further librdkafka properties (e.g. `security.protocol`, `ssl.ca.location`, `sasl.*`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Pause when there is nothing to publish (ms).
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Hours published events are kept in the outbox.
    #[serde(default = "default_retention")]
    pub retention_hours: u64,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // property values may be passwords: only their names are shown
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn default_prefix() -> String {
    "mecplane".into()
}

fn default_poll() -> u64 {
    200
}

fn default_retention() -> u64 {
    24
}

/// A publisher that cannot start.
#[derive(Debug, thiserror::Error)]
#[error("Kafka producer: {0}")]
pub struct EventsError(#[from] rdkafka::error::KafkaError);

/// How long the publishing lease lasts (ms): twice the longest a batch waits for the broker.
const PUBLISHING_LEASE_MS: i64 = 30_000;

/// Publishes pending events until aborted.
pub struct Publisher {
    store: Store,
    producer: FutureProducer,
    config: KafkaConfig,
    owner: String,
    published: Counter,
    failed: Counter,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher of `store`'s outbox (the broker is contacted when publishing), counting in
    /// `metrics`; `owner` names this replica: of the replicas sharing the store, one publishes
    /// at a time (the one holding the publishing lease), which keeps each resource's events in
    /// order and sends each once in the normal case (again, at least once, only after a
    /// publisher stalled past its lease).
    pub fn new(
        store: Store,
        config: KafkaConfig,
        owner: String,
        metrics: &server_kit::admin::Metrics,
    ) -> Result<Self, EventsError> {
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "15000")
            .set("client.id", "mecplane-meao");
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let published: Counter =
            metrics.registered("events_published", "Events published to Kafka");
        let failed: Counter = metrics.registered(
            "events_publish_failures",
            "Failed attempts to publish events",
        );
        Ok(Self {
            store,
            producer: client.create()?,
            config,
            owner,
            published,
            failed,
        })
    }

    /// Publishes one batch, pipelined (the idempotent producer keeps the order per partition);
    /// marks the delivered prefix published and returns its length, or the first failure when
    /// nothing was delivered.
    pub async fn publish_batch(&self) -> Result<usize, String> {
        let until = server_kit::unix_millis_now() + PUBLISHING_LEASE_MS;
        let holder = self
            .store
            .lease_acquire("events/publisher", &self.owner, until)
            .await
            .map_err(|e| e.to_string())?;
        if !holder {
            return Ok(0);
        }
        let batch = self
            .store
            .events_pending(256)
            .await
            .map_err(|e| e.to_string())?;
        let topics: Vec<String> = batch
            .iter()
            .map(|e| format!("{}.{}", self.config.topic_prefix, e.kind.topic()))
            .collect();
        let mut failure = None;
        let mut deliveries = Vec::with_capacity(batch.len());
        for (event, topic) in batch.iter().zip(&topics) {
            let record = FutureRecord::to(topic)
                .key(&event.resource_id)
                .payload(&event.body)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some("application/cloudevents+json"),
                }));
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        let mut delivered = Vec::with_capacity(deliveries.len());
        for (event, delivery) in batch.iter().zip(deliveries) {
            match tokio::time::timeout(Duration::from_secs(20), delivery).await {
                Ok(Ok(Ok(_))) => delivered.push(event.id.as_str()),
                Ok(Ok(Err((e, _)))) => failure = Some(e.to_string()),
                Ok(Err(_)) => failure = Some("delivery cancelled".into()),
                Err(_) => failure = Some("no delivery report".into()),
            }
            if failure.is_some() {
                break;
            }
        }
        if failure.is_some() {
            self.failed.inc();
        }
        self.published.inc_by(delivered.len() as u64);
        self.store
            .events_published(&delivered, server_kit::unix_millis_now())
            .await
            .map_err(|e| e.to_string())?;
        match failure {
            Some(e) if delivered.is_empty() => Err(e),
            _ => Ok(delivered.len()),
        }
    }

    /// Publishes until aborted, pausing when idle, backing off on failures, and dropping
    /// published events after the retention time.
    pub async fn run(self) {
        let idle = Duration::from_millis(self.config.poll_interval_ms.max(10));
        let mut backoff = Duration::from_millis(500);
        let mut last_purge = tokio::time::Instant::now();
        loop {
            match self.publish_batch().await {
                Ok(0) => tokio::time::sleep(idle).await,
                Ok(n) => {
                    tracing::debug!(events = n, "events published");
                    backoff = Duration::from_millis(500);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "events not published");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            if last_purge.elapsed() > Duration::from_secs(60) {
                last_purge = tokio::time::Instant::now();
                let keep =
                    i64::try_from(self.config.retention_hours * 3_600_000).unwrap_or(i64::MAX);
                if let Err(e) = self
                    .store
                    .events_purge(server_kit::unix_millis_now().saturating_sub(keep))
                    .await
                {
                    tracing::warn!(error = %e, "event purge failed");
                }
            }
        }
    }
}
