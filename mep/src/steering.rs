//! Traffic steering: keeps the UPF's N4 sessions equal to the traffic rules of the READY
//! application instances (one PFCP session per instance, rules compiled by `upf-rules`), or,
//! at sites without a 3GPP UPF, the nftables and policy routes of an inline Linux gateway
//! (UPGW).
//!
//! The steering task reconciles whenever the platform publishes a new state, heartbeats the
//! UPF (a restarted UPF gets every session back from the N4 client), retries failed
//! instances every second and, when the UPF stops answering, connects afresh and re-installs
//! everything. The platform keeps serving Mp1 and DNS whatever the UPF does.
//!
//! What a change installs or removes at the UPF runs in a span in the trace of the request or
//! MEAO message that made the change ([`Platform::published_by`]); its PFCP exchanges are that
//! span's children.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_specs::mp1::app_support::TrafficRule;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use server_kit::admin::Metrics;
use server_kit::telemetry::TraceContext;
use tracing::Instrument;
use upf_rules::compile::Steering;
use upf_rules::n4::{N4Client, N4Config};
use upf_rules::upgw::{self, UpgwConfig};

use crate::platform::Platform;

/// The UPF the MEP steers traffic with (PFCP over N4).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpfConfig {
    /// The UPF's PFCP address.
    pub pfcp_address: SocketAddr,
    /// Local PFCP address.
    #[serde(default = "default_local")]
    pub local: SocketAddr,
    /// Network instance (DNN) of the local data network the edge applications are on.
    pub network_instance: String,
    /// Retransmission timer T1 (ms).
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
    /// Retransmissions N1.
    #[serde(default = "default_n1")]
    pub n1: u32,
    /// Seconds between heartbeats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
}

/// The inline Linux gateway the MEP steers with where there is no UPF.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgwSettings {
    /// Network namespace of the gateway; the MEP's own when absent.
    #[serde(default)]
    pub netns: Option<String>,
    /// Interface towards the radio side.
    pub access_interface: String,
    /// Interface towards the edge applications.
    pub edge_interface: String,
    /// First routing table used for steering.
    #[serde(default = "default_first")]
    pub first_table: u32,
    /// First `ip rule` priority used for steering.
    #[serde(default = "default_first")]
    pub first_rule_priority: u32,
}

fn default_first() -> u32 {
    1000
}

fn default_local() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8805))
}

fn default_t1() -> u64 {
    3000
}

fn default_n1() -> u32 {
    3
}

fn default_heartbeat() -> u64 {
    10
}

/// Whether each instance's steered rules are installed, by instance: `INSTALLED` or
/// `FAILED: <reason>` (absent: nothing steered). Written by the steering task, read by the
/// MEAO link.
#[derive(Debug, Clone)]
pub struct SteeringStatus(Arc<tokio::sync::watch::Sender<BTreeMap<String, String>>>);

impl Default for SteeringStatus {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(BTreeMap::new()).0))
    }
}

impl SteeringStatus {
    /// The state of every steered instance.
    pub fn get(&self) -> BTreeMap<String, String> {
        self.0.borrow().clone()
    }

    /// Changes whenever an instance's state does.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<BTreeMap<String, String>> {
        self.0.subscribe()
    }

    fn set(&self, app: &str, state: Option<String>) {
        self.0.send_if_modified(|all| match state {
            Some(s) if all.get(app) != Some(&s) => {
                all.insert(app.to_owned(), s);
                true
            }
            None => all.remove(app).is_some(),
            Some(_) => false,
        });
    }

    fn set_all(&self, apps: impl Iterator<Item = String>, state: &str) {
        let next: BTreeMap<String, String> = apps.map(|a| (a, state.to_owned())).collect();
        self.0.send_if_modified(|all| {
            let changed = *all != next;
            *all = next;
            changed
        });
    }
}

const INSTALLED: &str = "INSTALLED";

/// Counts steering changes applied and failed.
#[derive(Debug, Clone)]
pub struct SteeringMetrics {
    applied: Counter,
    failed: Counter,
    associated: Gauge,
}

impl SteeringMetrics {
    /// Counters registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            applied: metrics.registered(
                "steering_changes",
                "Instances whose traffic rules were installed at or removed from the UPF or UPGW",
            ),
            failed: metrics.registered(
                "steering_failures",
                "Failed attempts to install or remove traffic rules",
            ),
            associated: metrics.registered(
                "upf_associated",
                "1 while the PFCP association with the UPF is up",
            ),
        }
    }
}

/// Runs steering until aborted.
pub async fn run(
    platform: Arc<Platform>,
    config: UpfConfig,
    metrics: SteeringMetrics,
    status: SteeringStatus,
) {
    let n4_config = N4Config {
        local: config.local,
        upf: config.pfcp_address,
        t1: Duration::from_millis(config.t1_ms),
        n1: config.n1,
        steering: Steering {
            app_network_instance: config.network_instance.clone(),
        },
    };
    let heartbeat = Duration::from_secs(config.heartbeat_secs.max(1));
    let mut backoff = Duration::from_secs(1);
    loop {
        let n4 = match N4Client::connect(n4_config.clone()).await {
            Ok(n4) => n4,
            Err(e) => {
                tracing::warn!(upf = %config.pfcp_address, error = %e, "no PFCP association; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        metrics.associated.set(1);
        serve(&platform, &n4, heartbeat, &metrics, &status).await;
        metrics.associated.set(0);
        status.set_all(status.get().into_keys(), "FAILED: UPF unreachable");
        tracing::warn!(upf = %config.pfcp_address, "UPF unreachable; associating again");
    }
}

/// Reconciles with one association until the UPF stops answering heartbeats.
async fn serve(
    platform: &Platform,
    n4: &N4Client,
    heartbeat: Duration,
    metrics: &SteeringMetrics,
    status: &SteeringStatus,
) {
    let mut published = platform.published();
    let mut applied: BTreeMap<String, Vec<TrafficRule>> = BTreeMap::new();
    let mut next_heartbeat = tokio::time::Instant::now() + heartbeat;
    loop {
        let failed = reconcile(platform, n4, &mut applied, metrics, status).await;
        let wake = if failed {
            tokio::time::Instant::now() + Duration::from_secs(1)
        } else {
            next_heartbeat
        };
        tokio::select! {
            _ = published.changed() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
        if tokio::time::Instant::now() >= next_heartbeat {
            if let Err(e) = n4.heartbeat().await {
                tracing::warn!(error = %e, "UPF heartbeat failed");
                return;
            }
            next_heartbeat = tokio::time::Instant::now() + heartbeat;
        }
    }
}

/// The span of installing or removing an instance's rules, in the trace of `cause`.
fn steering_span(name: &'static str, app: &str, cause: &TraceContext) -> tracing::Span {
    let span = tracing::info_span!("steering", otel.name = name, app_instance_id = %app);
    cause.adopt(&span);
    span
}

/// Applies what changed since `applied`; returns whether anything failed (to retry soon).
async fn reconcile(
    platform: &Platform,
    n4: &N4Client,
    applied: &mut BTreeMap<String, Vec<TrafficRule>>,
    metrics: &SteeringMetrics,
    status: &SteeringStatus,
) -> bool {
    let cause = platform.published_by();
    let desired = platform.steered_rules();
    let mut failed = false;
    for (app, rules) in &desired {
        if applied.get(app) == Some(rules) {
            continue;
        }
        let span = steering_span("install traffic rules", app, &cause);
        match n4.apply(app, rules).instrument(span).await {
            Ok(()) => {
                tracing::info!(app_instance_id = %app, rules = rules.len(), "traffic rules installed at the UPF");
                metrics.applied.inc();
                status.set(app, Some(INSTALLED.into()));
                applied.insert(app.clone(), rules.clone());
            }
            Err(e) => {
                tracing::warn!(app_instance_id = %app, error = %e, "traffic rules not installed");
                metrics.failed.inc();
                status.set(app, Some(format!("FAILED: {e}")));
                failed = true;
            }
        }
    }
    let gone: Vec<String> = applied
        .keys()
        .filter(|a| !desired.contains_key(*a))
        .cloned()
        .collect();
    for app in gone {
        let span = steering_span("remove traffic rules", &app, &cause);
        match n4.remove(&app).instrument(span).await {
            Ok(()) => {
                tracing::info!(app_instance_id = %app, "traffic rules removed from the UPF");
                metrics.applied.inc();
                status.set(&app, None);
                applied.remove(&app);
            }
            Err(e) => {
                tracing::warn!(app_instance_id = %app, error = %e, "traffic rules not removed");
                metrics.failed.inc();
                failed = true;
            }
        }
    }
    failed
}

/// Runs UPGW steering until aborted: the gateway is reconfigured whenever the steered rules
/// change, and retried every second while that fails.
pub async fn run_upgw(
    platform: Arc<Platform>,
    settings: UpgwSettings,
    metrics: SteeringMetrics,
    status: SteeringStatus,
) {
    let config = UpgwConfig {
        netns: settings.netns,
        access_interface: settings.access_interface,
        edge_interface: settings.edge_interface,
        first_table: settings.first_table,
        first_rule_priority: settings.first_rule_priority,
    };
    let mut published = platform.published();
    let mut applied: Option<BTreeMap<String, Vec<TrafficRule>>> = None;
    loop {
        let desired = platform.steered_rules();
        let mut failed = false;
        if applied.as_ref() != Some(&desired) {
            let outcome = match upgw::compile(&config, &desired) {
                Ok(ruleset) => config.apply(&ruleset).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(instances = desired.len(), "UPGW rules installed");
                    metrics.applied.inc();
                    status.set_all(desired.keys().cloned(), INSTALLED);
                    applied = Some(desired);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "UPGW rules not installed");
                    metrics.failed.inc();
                    status.set_all(desired.keys().cloned(), &format!("FAILED: {e}"));
                    failed = true;
                }
            }
        }
        if failed {
            tokio::select! {
                _ = published.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        } else if published.changed().await.is_err() {
            return;
        }
    }
}
