//! State gauges on /metrics, read from the store (so every replica reports the same): each
//! site's health, operation occurrences waiting in FAILED_TEMP, and the event outbox's backlog.
//! What the alerting rules of `deploy/monitoring/` watch.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use server_kit::admin::Metrics;

use crate::store::{Store, StoreError};

/// The label of a site's gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabel {
    site: String,
}

/// Gauges of the state in the store.
#[derive(Debug, Clone)]
pub struct StateGauges {
    site_healthy: Family<SiteLabel, Gauge>,
    failed_temp: Gauge,
    events_pending: Gauge,
    events_oldest_age: Gauge,
}

impl StateGauges {
    /// Gauges registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            site_healthy: metrics.registered(
                "site_healthy",
                "1 when the site's VIM answered at the last refresh, else 0",
            ),
            failed_temp: metrics.registered(
                "lcm_op_occs_failed_temp",
                "LCM operation occurrences waiting in FAILED_TEMP for retry, rollback or fail",
            ),
            events_pending: metrics.registered(
                "events_pending",
                "State-change events in the outbox not yet acknowledged by Kafka",
            ),
            events_oldest_age: metrics.registered(
                "events_oldest_pending_age_seconds",
                "Age of the oldest unpublished event (0 when none)",
            ),
        }
    }

    /// Reads the gauges' values from `store`.
    pub async fn update(&self, store: &Store) -> Result<(), StoreError> {
        let sites = store.site_list().await?;
        self.site_healthy.clear();
        for site in sites {
            self.site_healthy
                .get_or_create(&SiteLabel { site: site.id })
                .set(i64::from(site.healthy));
        }
        self.failed_temp
            .set(store.op_occ_count("FAILED_TEMP").await?);
        let (pending, oldest) = store.events_backlog().await?;
        self.events_pending.set(pending);
        let age = oldest.map_or(0, |t| (server_kit::unix_millis_now() - t).max(0) / 1000);
        self.events_oldest_age.set(age);
        Ok(())
    }
}
