//! At-least-once delivery of notifications to subscriber callbacks.
//!
//! A service writes each notification to its outbox (a table) in the same transaction as the
//! change it reports; [`Deliverer`] POSTs due notifications, records the outcome, and retries
//! failures with exponential backoff until `max_attempts`, after which the notification is kept
//! as given up (with its last error) rather than deleted. Because the outbox is durable, a
//! restart loses nothing; a crash between POST and record means one duplicate, never a loss.
//! Each row keeps the trace context of the span that queued it: the POST runs in a client span
//! under that span and carries its `traceparent`, so the subscriber joins the same trace.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::admin::Metrics;
use crate::telemetry::TraceContext;
use sqlx::{AnyPool, Row};
use tracing::Instrument;

/// Notifications claimed at once by a deliverer.
const BATCH: usize = 256;

/// Error type of outbox implementations.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A notification waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotification {
    /// Outbox row id.
    pub id: String,
    /// Where to POST.
    pub callback_uri: String,
    /// The JSON body.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The trace context of the span that queued it.
    pub trace_context: TraceContext,
}

/// Result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The subscriber answered 2xx.
    Delivered,
    /// Try again at `next_attempt_at` (Unix ms).
    Retry {
        /// When to try again.
        next_attempt_at: i64,
        /// Why this attempt failed.
        error: String,
    },
    /// Attempts exhausted.
    GaveUp {
        /// Why the last attempt failed.
        error: String,
    },
}

/// Durable storage of pending notifications.
pub trait Outbox: Send + Sync + 'static {
    /// Claims up to `limit` notifications due at `now_ms`, oldest first, until `claim_until`
    /// (Unix ms): until then no other deliverer on the same outbox (another replica) gets them;
    /// one whose outcome is not recorded by then is due again (at least once delivery).
    fn due(
        &self,
        now_ms: i64,
        limit: u32,
        claim_until: i64,
    ) -> impl Future<Output = Result<Vec<PendingNotification>, BoxError>> + Send;
    /// Records the outcome of an attempt; `attempts` includes it.
    fn record(
        &self,
        id: &str,
        attempts: u32,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Delay after the first failure (ms); doubles each time.
    pub initial_backoff_ms: u64,
    /// Longest delay between attempts (ms).
    pub max_backoff_ms: u64,
    /// Timeout of one POST (ms).
    pub timeout_ms: u64,
    /// How often to look for due notifications when not woken (ms).
    pub poll_interval_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 300_000,
            timeout_ms: 5_000,
            poll_interval_ms: 1_000,
            concurrency: 16,
        }
    }
}

impl DeliveryConfig {
    /// The outcome of failed attempt number `attempts` at `now_ms`.
    pub fn after_failure(&self, attempts: u32, now_ms: i64, error: String) -> Outcome {
        if attempts >= self.max_attempts {
            return Outcome::GaveUp { error };
        }
        let exponent = attempts.saturating_sub(1).min(30);
        let delay = self
            .initial_backoff_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_backoff_ms);
        Outcome::Retry {
            next_attempt_at: now_ms.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX)),
            error,
        }
    }
}

/// Delivers notifications from an [`Outbox`].
pub struct Deliverer<O> {
    outbox: Arc<O>,
    client: reqwest::Client,
    config: DeliveryConfig,
    wake: Arc<Notify>,
    delivered: Counter,
    failed: Counter,
}

impl<O: Outbox> Deliverer<O> {
    /// A deliverer over `outbox`, registering its counters in `metrics`.
    /// Callbacks are held to `destinations`.
    pub fn new(
        outbox: Arc<O>,
        config: DeliveryConfig,
        destinations: &crate::outbound::Destinations,
        metrics: &Metrics,
    ) -> Result<Self, BoxError> {
        let client = destinations
            .client(reqwest::Client::builder().timeout(Duration::from_millis(config.timeout_ms)))?;
        let delivered: Counter =
            metrics.registered("notifications_delivered", "Notifications delivered");
        let failed: Counter =
            metrics.registered("notifications_failed", "Failed notification attempts");
        Ok(Self {
            outbox,
            client,
            config,
            wake: Arc::new(Notify::new()),
            delivered,
            failed,
        })
    }

    /// A handle that makes the loop look for work now (call after writing to the outbox).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    async fn attempt(&self, pending: PendingNotification) {
        let attempts = pending.attempts.saturating_add(1);
        let mut request = self
            .client
            .post(&pending.callback_uri)
            .header("content-type", "application/json")
            .body(pending.body.clone());
        for (name, value) in TraceContext::current().headers() {
            request = request.header(name, value);
        }
        let result = request.send().await;
        let outcome = match result {
            Ok(response) if response.status().is_success() => {
                self.delivered.inc();
                Outcome::Delivered
            }
            Ok(response) => {
                self.failed.inc();
                let error = format!("callback answered {}", response.status());
                self.config
                    .after_failure(attempts, crate::unix_millis_now(), error)
            }
            Err(e) => {
                self.failed.inc();
                let error = format!("callback unreachable: {e}");
                self.config
                    .after_failure(attempts, crate::unix_millis_now(), error)
            }
        };
        match &outcome {
            Outcome::GaveUp { error } => {
                tracing::warn!(id = %pending.id, callback = %pending.callback_uri, %error, attempts, "gave up on notification");
            }
            Outcome::Retry { error, .. } => {
                tracing::debug!(id = %pending.id, %error, attempts, "notification will be retried");
            }
            Outcome::Delivered => {}
        }
        if let Err(e) = self.outbox.record(&pending.id, attempts, &outcome).await {
            tracing::error!(id = %pending.id, error = %e, "cannot record notification outcome");
        }
    }

    /// Delivers the notifications due now (a batch); returns how many were attempted.
    pub async fn run_once(&self) -> Result<usize, BoxError> {
        // a batch takes at most a POST timeout per round of `concurrency` deliveries
        let concurrency = self.config.concurrency.max(1);
        let rounds = u64::try_from(BATCH.div_ceil(concurrency)).unwrap_or(u64::MAX);
        let claim_ms = self
            .config
            .timeout_ms
            .saturating_mul(rounds)
            .saturating_add(10_000);
        let now = crate::unix_millis_now();
        let claim_until = now.saturating_add(i64::try_from(claim_ms).unwrap_or(i64::MAX));
        let limit = u32::try_from(BATCH).unwrap_or(u32::MAX);
        let due = self.outbox.due(now, limit, claim_until).await?;
        let n = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(concurrency, |p| {
                let span = delivery_span(&p);
                self.attempt(p).instrument(span)
            })
            .await;
        Ok(n)
    }

    /// Runs until `shutdown` resolves. Deliveries under way then are dropped: their claim
    /// expires and they are attempted again (at least once, as after a crash), so a subscriber
    /// that does not answer cannot hold up the shutdown.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        loop {
            let batch = tokio::select! {
                batch = self.run_once() => batch,
                () = &mut shutdown => return,
            };
            match batch {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot read the notification outbox"),
            }
            tokio::select! {
                () = self.wake.notified() => {},
                () = tokio::time::sleep(poll) => {},
                () = &mut shutdown => return,
            }
        }
    }
}

/// The client span of one delivery attempt, the child of the span that queued the notification.
fn delivery_span(pending: &PendingNotification) -> tracing::Span {
    let host = pending
        .callback_uri
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .unwrap_or_default();
    let span = tracing::info_span!(
        "notification",
        otel.name = "POST",
        otel.kind = "client",
        notification_id = %pending.id,
        server.address = %host,
    );
    pending.trace_context.adopt(&span);
    span
}

/// A notification to queue in the `notifications` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRow {
    /// Identifier.
    pub id: String,
    /// The subscription it answers.
    pub subscription_id: String,
    /// Where to POST.
    pub callback_uri: String,
    /// Notification JSON.
    pub body: String,
    /// When queued (Unix ms).
    pub created_at: i64,
}

const PENDING: &str = "PENDING";

/// The outbox as a `notifications` table, which each service's migrations create with the
/// columns `id, subscription_id, callback_uri, body, state, attempts, next_attempt_at,
/// last_error, created_at, trace_context`.
#[derive(Debug, Clone)]
pub struct SqlOutbox {
    pool: AnyPool,
}

impl SqlOutbox {
    /// The outbox in `pool`'s database.
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Queues `n` inside the caller's transaction, so it commits with the change it reports,
    /// with the trace context of the current span.
    pub async fn enqueue(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        n: &NotificationRow,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO notifications (id, subscription_id, callback_uri, body, state, attempts, next_attempt_at, created_at, trace_context) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6, $7)",
        )
        .bind(&n.id)
        .bind(&n.subscription_id)
        .bind(&n.callback_uri)
        .bind(&n.body)
        .bind(PENDING)
        .bind(n.created_at)
        .bind(TraceContext::current().to_json())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Deletes delivered or abandoned notifications older than `before` (Unix ms).
    pub async fn purge(&self, before: i64) -> Result<u64, sqlx::Error> {
        let done =
            sqlx::query("DELETE FROM notifications WHERE state <> $1 AND next_attempt_at < $2")
                .bind(PENDING)
                .bind(before)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// Counts notifications in `state` (PENDING, DELIVERED or GAVE_UP).
    pub async fn count(&self, state: &str) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT COUNT(*) FROM notifications WHERE state = $1")
            .bind(state)
            .fetch_one(&self.pool)
            .await?;
        row.try_get(0)
    }
}

impl Outbox for SqlOutbox {
    async fn due(
        &self,
        now_ms: i64,
        limit: u32,
        claim_until: i64,
    ) -> Result<Vec<PendingNotification>, BoxError> {
        // The claim moves the due time past the claim: one statement, so of two deliverers the
        // second finds the rows no longer due (PostgreSQL re-checks the outer condition on the
        // row the first updated; SQLite runs one writer at a time).
        let rows = sqlx::query(
            "UPDATE notifications SET next_attempt_at = $3 \
             WHERE state = $1 AND next_attempt_at <= $2 AND id IN \
             (SELECT id FROM notifications WHERE state = $1 AND next_attempt_at <= $2 \
              ORDER BY next_attempt_at, created_at LIMIT $4) \
             RETURNING id, callback_uri, body, attempts, created_at, trace_context",
        )
        .bind(PENDING)
        .bind(now_ms)
        .bind(claim_until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = rows
            .into_iter()
            .map(|r| {
                let attempts: i64 = r.try_get(3)?;
                let created_at: i64 = r.try_get(4)?;
                let trace_context: Option<String> = r.try_get(5)?;
                Ok((
                    created_at,
                    PendingNotification {
                        id: r.try_get(0)?,
                        callback_uri: r.try_get(1)?,
                        body: r.try_get(2)?,
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        trace_context: TraceContext::from_json(trace_context.as_deref()),
                    },
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        claimed.sort_by_key(|(created_at, _)| *created_at);
        Ok(claimed.into_iter().map(|(_, p)| p).collect())
    }

    async fn record(&self, id: &str, attempts: u32, outcome: &Outcome) -> Result<(), BoxError> {
        let now = crate::unix_millis_now();
        let (state, next, error) = match outcome {
            Outcome::Delivered => ("DELIVERED", now, None),
            Outcome::Retry {
                next_attempt_at,
                error,
            } => (PENDING, *next_attempt_at, Some(error.as_str())),
            Outcome::GaveUp { error } => ("GAVE_UP", now, Some(error.as_str())),
        };
        sqlx::query(
            "UPDATE notifications SET state = $1, attempts = $2, next_attempt_at = $3, last_error = $4 WHERE id = $5",
        )
        .bind(state)
        .bind(i64::from(attempts))
        .bind(next)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_gives_up() {
        let c = DeliveryConfig {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 350,
            ..DeliveryConfig::default()
        };
        let at = |n| match c.after_failure(n, 0, String::new()) {
            Outcome::Retry {
                next_attempt_at, ..
            } => next_attempt_at,
            other => panic!("{other:?}"),
        };
        assert_eq!((at(1), at(2), at(3), at(4)), (100, 200, 350, 350));
        assert!(matches!(
            c.after_failure(5, 0, String::new()),
            Outcome::GaveUp { .. }
        ));
    }
}
