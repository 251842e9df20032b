//! The MEP's side of the MEAO link: it dials the MEAO over mutual TLS, holds one bidirectional
//! gRPC stream (`api_specs::meplink`), applies each desired configuration the MEAO sends and
//! acknowledges its version, and reports its instances' readiness, services and rules up.
//!
//! The platform never waits for the link: Mp1, DNS and steering serve from the store while the
//! MEAO is unreachable. On every (re)connection the Hello carries the versions held here, so the
//! MEAO sends only what is newer.
//!
//! A configuration is applied in an `apply DesiredConfig` span, the child of the MEAO step that
//! desired it (the message carries its trace context), and acknowledged in a `send Ack` span,
//! whose context the ACK carries back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_specs::meplink::desired_config::Desired as Wire;
use api_specs::meplink::meao_message::Kind as FromMeao;
use api_specs::meplink::mep_link_client::MepLinkClient;
use api_specs::meplink::mep_message::Kind;
use api_specs::meplink::{Ack, DesiredConfig, HeldVersion, Hello, InstanceStatus, MepMessage};
use openssl::ssl::SslConnector;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use server_kit::admin::Metrics;
use server_kit::grpc::ClientTlsConfig;
use server_kit::telemetry::TraceContext;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::platform::{AppInstanceConfig, Desired, InstanceReport, MepError, Platform};
use crate::steering::SteeringStatus;

/// How this MEP reaches its MEAO.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeaoLinkConfig {
    /// The MEAO's link endpoint, `https://host:port`.
    pub url: String,
    /// This site's identifier at the MEAO; the common name of the client certificate.
    pub mep_id: String,
    /// The client certificate and the CA of the MEAO's certificate.
    pub tls: ClientTlsConfig,
    /// Longest wait between reconnection attempts (milliseconds).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    /// Interval of HTTP/2 keep-alive pings; a link silent for twice this is down (seconds).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
}

fn default_max_backoff() -> u64 {
    10_000
}

fn default_keep_alive() -> u64 {
    10
}

/// Why a link session ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Channel(#[from] server_kit::grpc::ChannelError),
    #[error("the MEAO refused the stream: {0}")]
    Refused(#[from] tonic::Status),
    #[error("the stream closed")]
    Closed,
}

/// Link state and traffic on /metrics.
#[derive(Debug, Clone)]
pub struct LinkMetrics {
    connected: Gauge,
    sessions: Counter,
    applied: Counter,
    refused: Counter,
}

impl LinkMetrics {
    /// Metrics registered in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            connected: metrics.registered(
                "meao_link_connected",
                "1 while the stream to the MEAO is open",
            ),
            sessions: metrics.registered("meao_link_sessions", "Streams opened to the MEAO"),
            applied: metrics.registered(
                "meao_link_configs_applied",
                "Desired configurations received and acknowledged (repeats included)",
            ),
            refused: metrics.registered(
                "meao_link_configs_refused",
                "Desired configurations refused (invalid or conflicting)",
            ),
        }
    }
}

/// Keeps the link up until aborted, reconnecting with exponential back-off.
pub async fn run(
    platform: Arc<Platform>,
    steering: SteeringStatus,
    config: MeaoLinkConfig,
    connector: SslConnector,
    metrics: LinkMetrics,
) {
    let max_backoff = Duration::from_millis(config.max_backoff_ms.max(10));
    let mut backoff = Duration::from_millis(10).min(max_backoff);
    loop {
        let started = Instant::now();
        let ended = session(&platform, &steering, &config, connector.clone(), &metrics).await;
        metrics.connected.set(0);
        match ended {
            Ok(()) | Err(LinkError::Closed) => {
                tracing::info!(meao = %config.url, "MEAO link closed")
            }
            Err(e) => tracing::warn!(
                meao = %config.url,
                error = %server_kit::problem::error_chain(&e),
                "MEAO link down"
            ),
        }
        if started.elapsed() > max_backoff {
            backoff = Duration::from_millis(10).min(max_backoff);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
}

fn message(kind: Kind) -> MepMessage {
    MepMessage { kind: Some(kind) }
}

/// One stream: Hello with the held versions, then configurations down, ACKs and status up.
async fn session(
    platform: &Platform,
    steering: &SteeringStatus,
    config: &MeaoLinkConfig,
    connector: SslConnector,
    metrics: &LinkMetrics,
) -> Result<(), LinkError> {
    let keep_alive = Duration::from_secs(config.keep_alive_secs.max(1));
    let channel = server_kit::grpc::channel(&config.url, connector, keep_alive).await?;
    let (tx, mut rx) = mpsc::channel::<MepMessage>(1024);
    let held = platform
        .desired_versions()
        .into_iter()
        .map(|(app_instance_id, version)| HeldVersion {
            app_instance_id,
            version,
        })
        .collect();
    let hello = Hello {
        mep_id: config.mep_id.clone(),
        held,
    };
    tx.send(message(Kind::Hello(hello)))
        .await
        .map_err(|_| LinkError::Closed)?;
    let outbound = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut inbound = MepLinkClient::new(channel)
        .connect(outbound)
        .await?
        .into_inner();
    metrics.connected.set(1);
    metrics.sessions.inc();
    tracing::info!(meao = %config.url, "MEAO link up");
    let (mut published, mut steered) = (platform.published(), steering.subscribe());
    let mut reported = HashMap::new();
    report(platform, steering, &mut reported, &tx).await?;
    loop {
        tokio::select! {
            received = inbound.message() => {
                let Some(received) = received? else {
                    return Ok(());
                };
                if let Some(FromMeao::Config(desired)) = received.kind
                    && let Some((ack, span)) = apply(platform, desired, metrics).await
                {
                    let sent = tx.send(message(Kind::Ack(ack))).instrument(span).await;
                    sent.map_err(|_| LinkError::Closed)?;
                }
            }
            changed = published.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                report(platform, steering, &mut reported, &tx).await?;
            }
            changed = steered.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                report(platform, steering, &mut reported, &tx).await?;
            }
        }
    }
}

/// Applies one desired configuration in the trace of the MEAO step that desired it; the ACK and
/// the span to send it in, or none when the store failed (the MEAO sends the version again).
async fn apply(
    platform: &Platform,
    mut desired: DesiredConfig,
    metrics: &LinkMetrics,
) -> Option<(Ack, tracing::Span)> {
    let span = tracing::info_span!(
        "apply DesiredConfig",
        otel.kind = "consumer",
        app_instance_id = %desired.app_instance_id,
        version = desired.version,
    );
    TraceContext::from_fields(std::mem::take(&mut desired.trace_context)).adopt(&span);
    let mut ack = acknowledgement(platform, desired, metrics)
        .instrument(span.clone())
        .await?;
    let sending = tracing::info_span!(
        parent: &span,
        "send Ack",
        otel.kind = "producer",
        app_instance_id = %ack.app_instance_id,
        version = ack.version,
    );
    ack.trace_context = TraceContext::of(&sending).into_fields();
    Some((ack, sending))
}

/// Applies one desired configuration; the ACK, or none when the store failed.
async fn acknowledgement(
    platform: &Platform,
    desired: DesiredConfig,
    metrics: &LinkMetrics,
) -> Option<Ack> {
    let id = desired.app_instance_id;
    let parsed = match desired.desired {
        Some(Wire::ConfigJson(json)) => serde_json::from_str::<AppInstanceConfig>(&json)
            .map(|c| Desired::Config(Box::new(c)))
            .map_err(|e| MepError::Invalid(format!("invalid AppInstanceConfig: {e}"))),
        Some(Wire::Removal(r)) => Ok(Desired::Removal {
            graceful_timeout: r.graceful_timeout,
        }),
        None => Err(MepError::Invalid(
            "neither a configuration nor a removal".into(),
        )),
    };
    let applied = match parsed {
        Ok(d) => platform.apply_desired(&id, desired.version, d).await,
        Err(e) => Err(e),
    };
    match applied {
        Ok(version) => {
            metrics.applied.inc();
            tracing::debug!(app_instance_id = %id, version, "desired configuration held");
            Some(Ack {
                app_instance_id: id,
                version,
                error: String::new(),
                refused_version: 0,
                trace_context: Default::default(),
            })
        }
        Err(MepError::Store(e)) => {
            tracing::error!(app_instance_id = %id, error = %server_kit::problem::error_chain(&e), "cannot store the desired configuration");
            None
        }
        Err(e) => {
            metrics.refused.inc();
            tracing::warn!(app_instance_id = %id, version = desired.version, error = %e, "desired configuration refused");
            Some(Ack {
                version: platform.desired_version(&id),
                app_instance_id: id,
                error: e.to_string(),
                refused_version: desired.version,
                trace_context: Default::default(),
            })
        }
    }
}

fn status(r: InstanceReport, steering: &mut BTreeMap<String, String>) -> InstanceStatus {
    InstanceStatus {
        steering: steering.remove(&r.app_instance_id).unwrap_or_default(),
        app_instance_id: r.app_instance_id,
        readiness: r.state.as_str().into(),
        services: r.services,
        traffic_rules: r.traffic_rules,
        active_traffic_rules: r.active_traffic_rules,
        dns_rules: r.dns_rules,
        active_dns_rules: r.active_dns_rules,
    }
}

/// Sends the status (readiness, services, rules and their steering) of every instance that
/// changed since the last report (all of them on a new stream), and ABSENT for those gone.
async fn report(
    platform: &Platform,
    steering: &SteeringStatus,
    reported: &mut HashMap<String, InstanceStatus>,
    tx: &mpsc::Sender<MepMessage>,
) -> Result<(), LinkError> {
    let mut steered = steering.get();
    let now: HashMap<String, InstanceStatus> = platform
        .instance_reports()
        .into_iter()
        .map(|r| (r.app_instance_id.clone(), status(r, &mut steered)))
        .collect();
    let gone = reported
        .keys()
        .filter(|id| !now.contains_key(*id))
        .map(|id| InstanceStatus {
            app_instance_id: id.clone(),
            readiness: "ABSENT".into(),
            ..InstanceStatus::default()
        });
    let changed = now
        .values()
        .filter(|s| reported.get(&s.app_instance_id) != Some(*s))
        .cloned();
    for s in gone.chain(changed).collect::<Vec<_>>() {
        tx.send(message(Kind::Status(s)))
            .await
            .map_err(|_| LinkError::Closed)?;
    }
    *reported = now;
    Ok(())
}
