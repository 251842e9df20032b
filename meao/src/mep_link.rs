//! The MEAO's side of the MEP link (`api_specs::meplink`): MEPs dial in over mutual TLS and
//! keep one bidirectional stream each. Every instance's desired configuration at a site is
//! stored with a version ([`MepLink::desire`]) and sent down the site's stream; the MEP
//! acknowledges the version it holds. What is not acknowledged is sent again every
//! `resend_secs` and on every reconnection, where the MEP's Hello names the versions it holds
//! so that only newer ones travel. Status reports (readiness, services, rules) are stored.
//!
//! Each version carries the trace context of its `send DesiredConfig` span, a child of the LCM
//! step that desired it, on the first send and on every resend; the MEP's apply and ACK are
//! its children, and the ACK's receipt here is the ACK's child.
//!
//! The stream belongs to one MEAO replica; the store is shared, so [`MepLink::await_ack`] sees
//! acknowledgements received by any replica and desires recorded by another replica reach the
//! MEP with the next resend.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_specs::inventory::{MepAppInstance, MepInstanceStatus, Refusal, SiteMep};
use api_specs::meplink::desired_config::Desired as Wire;
use api_specs::meplink::meao_message::Kind as ToMep;
use api_specs::meplink::mep_link_server::{MepLink as MepLinkService, MepLinkServer};
use api_specs::meplink::mep_message::Kind;
use api_specs::meplink::{DesiredConfig, HeldVersion, MeaoMessage, MepMessage, Removal};
use api_specs::mp1::provisioning::AppInstanceConfig;
use futures::{FutureExt, Stream};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use server_kit::admin::Metrics;
use server_kit::grpc::PeerIdentity;
use server_kit::serve::TlsConfig;
use server_kit::telemetry::TraceContext;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::store::{MepConfigRow, MepReport, Store, StoreError};

/// The listener MEPs dial.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MepLinkConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Server certificate and the CA of the MEPs' client certificates (`client_ca_file` is
    /// required: a MEP is the site named by its certificate's common name).
    pub tls: TlsConfig,
    /// Interval of resending unacknowledged configurations (seconds).
    #[serde(default = "default_resend")]
    pub resend_secs: u64,
    /// How long an LCM step waits for the site's acknowledgement before it is retried
    /// (seconds).
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_secs: u64,
}

fn default_resend() -> u64 {
    5
}

fn default_ack_timeout() -> u64 {
    60
}

/// What an instance should be at a site's MEP.
#[derive(Debug, Clone, Copy)]
pub enum Desired<'a> {
    /// Provisioned with this configuration.
    Config(&'a AppInstanceConfig),
    /// Removed; termination subscribers get `graceful_timeout` seconds to confirm.
    Removal {
        /// Seconds.
        graceful_timeout: u32,
    },
}

/// Why a configuration did not reach a MEP.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The store failed.
    #[error("store failure")]
    Store(#[from] StoreError),
    /// The MEP refused the version.
    #[error("the MEP of site {site} refused version {version}: {error}")]
    Refused {
        /// The site.
        site: String,
        /// The version.
        version: i64,
        /// The MEP's reason.
        error: String,
    },
    /// No acknowledgement arrived in time.
    #[error(
        "the MEP of site {site} has not acknowledged version {version} within {timeout:?} ({})",
        if *connected { "connected" } else { "not connected here" }
    )]
    Timeout {
        /// The site.
        site: String,
        /// The version.
        version: i64,
        /// How long it waited.
        timeout: Duration,
        /// Whether the MEP's stream is held by this replica.
        connected: bool,
    },
}

impl From<MepConfigRow> for MepAppInstance {
    fn from(r: MepConfigRow) -> Self {
        Self {
            app_instance_id: r.app_instance_id,
            version: r.version,
            removal: r.config.is_none(),
            acked_version: r.acked_version,
            refused: (r.refused_version > 0).then(|| Refusal {
                version: r.refused_version,
                error: r.error.unwrap_or_default(),
            }),
            status: r.status.and_then(|s| serde_json::from_str(&s).ok()),
            status_at: r.status_at,
        }
    }
}

type Outbound = mpsc::Sender<Result<MeaoMessage, Status>>;

struct Session {
    id: u64,
    tx: Outbound,
}

#[derive(Debug, Clone)]
struct LinkMetrics {
    connected: Gauge,
    sent: Counter,
    acked: Counter,
    refused: Counter,
}

/// Acknowledgement notices kept for waiters that have not looked yet; one that misses more
/// checks the store.
const ACK_NOTICES: usize = 1024;

/// The MEP link's server side.
pub struct MepLink {
    store: Store,
    sessions: Mutex<HashMap<String, Session>>,
    next_session: AtomicU64,
    acks: tokio::sync::broadcast::Sender<Acked>,
    resend: Duration,
    metrics: LinkMetrics,
}

/// What an acknowledgement received on this replica concerns: one instance's configuration at
/// a site, or every instance's of a site (a MEP's resync).
#[derive(Debug, Clone)]
struct Acked {
    site: Arc<str>,
    app_instance_id: Option<Arc<str>>,
}

impl Acked {
    fn concerns(&self, site: &str, app_instance_id: &str) -> bool {
        &*self.site == site
            && self
                .app_instance_id
                .as_deref()
                .is_none_or(|id| id == app_instance_id)
    }
}

impl std::fmt::Debug for MepLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MepLink")
            .field("resend", &self.resend)
            .finish_non_exhaustive()
    }
}

fn config_message(row: &MepConfigRow) -> MeaoMessage {
    let desired = match &row.config {
        Some(json) => Wire::ConfigJson(json.clone()),
        None => Wire::Removal(Removal {
            graceful_timeout: u32::try_from(row.graceful_timeout).unwrap_or(0),
        }),
    };
    MeaoMessage {
        kind: Some(ToMep::Config(DesiredConfig {
            app_instance_id: row.app_instance_id.clone(),
            version: u64::try_from(row.version).unwrap_or(0),
            desired: Some(desired),
            trace_context: TraceContext::from_json(row.trace_context.as_deref()).into_fields(),
        })),
    }
}

fn internal(e: StoreError) -> Status {
    Status::unavailable(server_kit::problem::error_chain(&e))
}

impl MepLink {
    /// The link over `store`; its gauges and counters registered in `metrics`.
    pub fn new(store: Store, resend: Duration, metrics: &Metrics) -> Arc<Self> {
        let m = LinkMetrics {
            connected: metrics
                .registered("mep_link_connected", "MEPs whose stream this replica holds"),
            sent: metrics.registered(
                "mep_link_configs_sent",
                "Desired configurations sent to MEPs (resends included)",
            ),
            acked: metrics.registered("mep_link_acks", "Acknowledgements received from MEPs"),
            refused: metrics.registered("mep_link_refusals", "Desired configurations MEPs refused"),
        };
        Arc::new(Self {
            store,
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            acks: tokio::sync::broadcast::channel(ACK_NOTICES).0,
            resend: resend.max(Duration::from_millis(100)),
            metrics: m,
        })
    }

    /// The gRPC service, as a router for [`server_kit::serve::serve`] (which supplies the
    /// client certificate's identity).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        tonic::service::Routes::new(MepLinkServer::new(LinkService(self.clone())))
            .into_axum_router()
    }

    /// Whether this replica holds the site's stream.
    pub fn connected(&self, site: &str) -> bool {
        self.sessions.lock().is_ok_and(|s| s.contains_key(site))
    }

    /// Records what the instance should be at the site's MEP and sends it if the MEP is
    /// connected here; returns the version to await (unchanged when nothing changed).
    pub async fn desire(
        &self,
        site: &str,
        app_instance_id: &str,
        desired: Desired<'_>,
    ) -> Result<i64, LinkError> {
        let (config, graceful) = match desired {
            Desired::Config(c) => (Some(serde_json::to_string(c).unwrap_or_default()), 0),
            Desired::Removal { graceful_timeout } => (None, i64::from(graceful_timeout)),
        };
        let span = tracing::info_span!(
            "send DesiredConfig",
            otel.kind = "producer",
            site_id = %site,
            app_instance_id = %app_instance_id,
            version = tracing::field::Empty,
        );
        let trace_context = TraceContext::of(&span).to_json();
        async {
            let now = server_kit::unix_millis_now();
            let row = self
                .store
                .mep_config_desire(
                    site,
                    app_instance_id,
                    config.as_deref(),
                    graceful,
                    trace_context.as_deref(),
                    now,
                )
                .await?;
            tracing::Span::current().record("version", row.version);
            if row.acked_version < row.version && row.refused_version < row.version {
                self.send(site, &row);
            }
            Ok(row.version)
        }
        .instrument(span)
        .await
    }

    /// Sends one configuration down the site's stream if this replica holds it; a full or
    /// closed stream is left to the next resend.
    fn send(&self, site: &str, row: &MepConfigRow) -> bool {
        let tx = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(site).map(|s| s.tx.clone()));
        let sent = tx.is_some_and(|tx| tx.try_send(Ok(config_message(row))).is_ok());
        if sent {
            self.metrics.sent.inc();
        }
        sent
    }

    /// Waits until the site's MEP holds `version` of the instance's configuration (or refused
    /// it), at most `timeout`.
    pub async fn await_ack(
        &self,
        site: &str,
        app_instance_id: &str,
        version: i64,
        timeout: Duration,
    ) -> Result<(), LinkError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut acks = self.acks.subscribe();
        loop {
            match self.store.mep_config_get(site, app_instance_id).await? {
                Some(r) if r.acked_version >= version => return Ok(()),
                Some(r) if r.refused_version >= version => {
                    return Err(LinkError::Refused {
                        site: site.into(),
                        version,
                        error: r.error.unwrap_or_default(),
                    });
                }
                _ => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(LinkError::Timeout {
                    site: site.into(),
                    version,
                    timeout,
                    connected: self.connected(site),
                });
            }
            // An acknowledgement of this instance on this replica wakes the wait (or notices
            // missed while it checked); another replica's is polled.
            let poll = deadline.min(now + Duration::from_secs(1));
            loop {
                match tokio::time::timeout_at(poll, acks.recv()).await {
                    Ok(Ok(a)) if !a.concerns(site, app_instance_id) => {}
                    _ => break,
                }
            }
        }
    }

    /// The site's MEP as the link sees it.
    pub async fn site_mep(&self, site: &str) -> Result<SiteMep, LinkError> {
        let rows = self.store.mep_config_list(site, false).await?;
        Ok(SiteMep {
            connected: self.connected(site),
            app_instances: rows.into_iter().map(MepAppInstance::from).collect(),
        })
    }

    fn register(&self, site: &str, tx: Outbound) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sessions) = self.sessions.lock()
            && sessions
                .insert(site.to_owned(), Session { id, tx })
                .is_none()
        {
            self.metrics.connected.inc();
        }
        id
    }

    fn unregister(&self, site: &str, id: u64) {
        if let Ok(mut sessions) = self.sessions.lock()
            && sessions.get(site).is_some_and(|s| s.id == id)
        {
            sessions.remove(site);
            self.metrics.connected.dec();
        }
    }

    /// Sends every configuration the site's MEP has not acknowledged.
    async fn resend(&self, site: &str) -> Result<(), StoreError> {
        for row in self.store.mep_config_list(site, true).await? {
            if !self.send(site, &row) {
                break;
            }
        }
        Ok(())
    }

    /// Records a burst of the MEP's messages (ACKs, refusals and status reports) in one
    /// commit, then wakes the steps awaiting those ACKs. Each ACK's `receive Ack` span, the
    /// child of the MEP's `send Ack`, lasts until the commit.
    async fn received(&self, site: &str, messages: Vec<MepMessage>) -> Result<(), StoreError> {
        let version = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut reports = Vec::with_capacity(messages.len());
        let mut spans = Vec::new();
        let mut acked = Vec::new();
        for message in messages {
            match message.kind {
                Some(Kind::Ack(mut ack)) => {
                    let span = tracing::info_span!(
                        "receive Ack",
                        otel.kind = "consumer",
                        site_id = %site,
                        app_instance_id = %ack.app_instance_id,
                        version = ack.version,
                    );
                    TraceContext::from_fields(std::mem::take(&mut ack.trace_context)).adopt(&span);
                    if !ack.error.is_empty() {
                        self.metrics.refused.inc();
                        span.in_scope(|| tracing::warn!(%site, app_instance_id = %ack.app_instance_id, version = ack.refused_version, error = %ack.error, "the MEP refused a configuration"));
                        reports.push(MepReport::Refused {
                            app_instance_id: ack.app_instance_id.clone(),
                            version: version(ack.refused_version),
                            error: ack.error,
                        });
                    }
                    if ack.version > 0 {
                        self.metrics.acked.inc();
                        reports.push(MepReport::Acked {
                            app_instance_id: ack.app_instance_id.clone(),
                            version: version(ack.version),
                        });
                    }
                    acked.push(ack.app_instance_id);
                    spans.push(span);
                }
                Some(Kind::Status(status)) => reports.push(MepReport::Status {
                    app_instance_id: status.app_instance_id.clone(),
                    status: serde_json::to_string(&MepInstanceStatus::from(status))
                        .unwrap_or_default(),
                    at: server_kit::unix_millis_now(),
                }),
                Some(Kind::Hello(_)) | None => {
                    tracing::warn!(%site, "unexpected message on an open MEP stream ignored");
                }
            }
        }
        self.store.mep_config_report(site, &reports).await?;
        drop(spans);
        let site: Arc<str> = site.into();
        for app_instance_id in acked {
            let _ = self.acks.send(Acked {
                site: site.clone(),
                app_instance_id: Some(app_instance_id.as_str().into()),
            });
        }
        Ok(())
    }

    /// Drives one MEP's stream: resync from the versions it holds, then ACKs and status in,
    /// resends out, until either side closes it.
    async fn serve_session(
        self: Arc<Self>,
        site: String,
        id: u64,
        held: Vec<HeldVersion>,
        mut inbound: Streaming<MepMessage>,
        tx: Outbound,
    ) {
        tracing::info!(%site, held = held.len(), "MEP connected");
        let chain = |e: StoreError| server_kit::problem::error_chain(&e);
        let ended: Result<(), String> = async {
            // what the MEP already holds counts as acknowledged; only those rows are written
            let acked: HashMap<String, i64> = self
                .store
                .mep_config_list(&site, false)
                .await
                .map_err(chain)?
                .into_iter()
                .map(|r| (r.app_instance_id, r.acked_version))
                .collect();
            let newer: Vec<MepReport> = held
                .into_iter()
                .filter_map(|h| {
                    let version = i64::try_from(h.version).unwrap_or(i64::MAX);
                    acked
                        .get(&h.app_instance_id)
                        .is_some_and(|a| *a < version)
                        .then_some(MepReport::Acked {
                            app_instance_id: h.app_instance_id,
                            version,
                        })
                })
                .collect();
            self.store
                .mep_config_report(&site, &newer)
                .await
                .map_err(chain)?;
            let _ = self.acks.send(Acked {
                site: site.as_str().into(),
                app_instance_id: None,
            });
            let mut resend = tokio::time::interval(self.resend);
            loop {
                tokio::select! {
                    _ = resend.tick() => self.resend(&site).await.map_err(chain)?,
                    message = inbound.message() => match message {
                        Ok(Some(m)) => {
                            let (burst, end) = burst(m, &mut inbound);
                            self.received(&site, burst).await.map_err(chain)?;
                            if let Some(end) = end {
                                return end;
                            }
                        }
                        Ok(None) => return Ok(()),
                        Err(status) => return Err(status.to_string()),
                    },
                    () = tx.closed() => return Ok(()),
                }
            }
        }
        .await;
        self.unregister(&site, id);
        match ended {
            Ok(()) => tracing::info!(%site, "MEP disconnected"),
            Err(e) => tracing::warn!(%site, error = %e, "MEP stream ended"),
        }
    }
}

/// Most messages recorded in one commit.
const MAX_BURST: usize = 256;

/// `first` and the messages already received behind it (at most [`MAX_BURST`] in all), and how
/// the stream ended if it did behind them.
fn burst(
    first: MepMessage,
    inbound: &mut Streaming<MepMessage>,
) -> (Vec<MepMessage>, Option<Result<(), String>>) {
    let mut burst = vec![first];
    while burst.len() < MAX_BURST {
        // `message` is cancel-safe: an unfinished read stays buffered for the next call
        match inbound.message().now_or_never() {
            Some(Ok(Some(m))) => burst.push(m),
            Some(Ok(None)) => return (burst, Some(Ok(()))),
            Some(Err(status)) => return (burst, Some(Err(status.to_string()))),
            None => break,
        }
    }
    (burst, None)
}

/// The tonic service over the link.
struct LinkService(Arc<MepLink>);

#[tonic::async_trait]
impl MepLinkService for LinkService {
    type ConnectStream = Pin<Box<dyn Stream<Item = Result<MeaoMessage, Status>> + Send>>;

    async fn connect(
        &self,
        request: Request<Streaming<MepMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let Some(PeerIdentity(identity)) = request.extensions().get::<PeerIdentity>().cloned()
        else {
            return Err(Status::unauthenticated("a client certificate is required"));
        };
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
            Ok(Ok(Some(MepMessage {
                kind: Some(Kind::Hello(hello)),
            }))) => hello,
            _ => {
                return Err(Status::invalid_argument(
                    "the stream must open with a Hello",
                ));
            }
        };
        if hello.mep_id != identity {
            return Err(Status::permission_denied(format!(
                "the certificate of {identity} does not speak for site {}",
                hello.mep_id
            )));
        }
        if self
            .0
            .store
            .site_get(&hello.mep_id)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Err(Status::not_found(format!(
                "site {} is not in the inventory",
                hello.mep_id
            )));
        }
        let (tx, mut rx) = mpsc::channel(1024);
        let link = self.0.clone();
        let id = link.register(&hello.mep_id, tx.clone());
        tokio::spawn(link.serve_session(hello.mep_id, id, hello.held, inbound, tx));
        let outbound = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Response::new(Box::pin(outbound)))
    }
}
