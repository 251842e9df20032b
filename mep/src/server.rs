//! Start-up and shutdown of a MEP: store, platform, HTTP(S) APIs, DNS server, notification
//! delivery and housekeeping. [`Server::start`] binds everything (port 0 works) and returns a
//! handle, so tests and the e2e harness run the real thing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_specs::common::{
    EndPointInfo, GrantType, OAuth2Info, SecurityInfo, TransportInfo, TransportType,
};
use server_kit::admin::{Metrics, ReadinessCheck};
use server_kit::auth::Authority;
use server_kit::notify::Deliverer;
use server_kit::serve::{serve, tls_acceptor};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, HttpLimits};
use crate::config::MepConfig;
use crate::platform::{Platform, PlatformSettings};
use crate::store::Store;

/// Why the MEP could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot bind {what} on {addr}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store")]
    Store(#[from] crate::store::StoreError),
    /// The stored state could not be loaded.
    #[error("cannot load the platform state")]
    Platform(#[from] crate::platform::MepError),
    /// TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] server_kit::serve::TlsError),
    /// The token authority could not be set up.
    #[error("cannot set up authentication")]
    Auth(#[from] server_kit::auth::AuthError),
    /// The notification client could not be built.
    #[error("cannot set up notification delivery: {0}")]
    Delivery(String),
}

/// A running MEP.
pub struct RunningServer {
    /// Address of the HTTP(S) listener.
    pub local_addr: SocketAddr,
    /// Address of the DNS server, if any.
    pub dns_addr: Option<SocketAddr>,
    /// URL prefix of the APIs.
    pub api_root: String,
    /// The platform (for in-process inspection by tests).
    pub platform: Arc<Platform>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    dns_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addr", &self.local_addr)
            .field("dns_addr", &self.dns_addr)
            .finish_non_exhaustive()
    }
}

/// Entry point of the MEP.
#[derive(Debug)]
pub struct Server;

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl Server {
    /// Opens the store, binds the listeners and starts every task.
    pub async fn start(config: MepConfig) -> Result<RunningServer, StartError> {
        let store = Store::connect(&config.database_url).await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    what: "API listener",
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            what: "API listener",
            addr: config.listen,
            source,
        })?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let api_root = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local_addr}"))
            .trim_end_matches('/')
            .to_owned();
        let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;

        let metrics = Metrics::new("mep");
        let outbox = Arc::new(store.outbox());
        let deliverer = Deliverer::new(outbox, config.delivery.clone(), &metrics)
            .map_err(|e| StartError::Delivery(e.to_string()))?;
        let transports = if config.transports.is_empty() {
            vec![default_transport(&api_root)]
        } else {
            config.transports.clone()
        };
        let settings = PlatformSettings {
            api_root: api_root.clone(),
            transports,
            min_liveness_interval: config.min_liveness_interval_secs,
            default_dns_ttl: config.dns.default_ttl,
            timing: config.timing.clone(),
        };
        let platform = Arc::new(Platform::load(store.clone(), settings, deliverer.waker()).await?);
        let authority = Arc::new(Authority::new(&config.auth)?);
        if !authority.enabled() {
            tracing::warn!("authentication is disabled: every request acts as the operator");
        }
        let ready_store = store.clone();
        let ready: ReadinessCheck = Arc::new(move || {
            let store = ready_store.clone();
            Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
        });
        let app = api::router(
            platform.clone(),
            authority,
            metrics,
            ready,
            HttpLimits {
                max_body_bytes: config.max_body_bytes,
            },
        );

        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let grace = Duration::from_secs(config.shutdown_grace_secs);
        tasks.push(tokio::spawn(serve(
            listener,
            app,
            tls,
            stopped(rx.clone()),
            grace,
        )));
        tasks.push(tokio::spawn(deliverer.run(stopped(rx.clone()))));
        tasks.push(tokio::spawn(housekeeping(platform.clone(), rx.clone())));

        let (dns_addr, dns_task) = match config.dns.listen {
            Some(addr) => {
                let socket = UdpSocket::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind {
                        what: "DNS server",
                        addr,
                        source,
                    })?;
                let bound = socket.local_addr().map_err(|source| StartError::Bind {
                    what: "DNS server",
                    addr,
                    source,
                })?;
                let task = tokio::spawn(crate::dns::serve(
                    socket,
                    platform.dns_table(),
                    config.dns.upstream,
                ));
                (Some(bound), Some(task))
            }
            None => (None, None),
        };
        tracing::info!(%local_addr, ?dns_addr, %api_root, "MEP started");
        Ok(RunningServer {
            local_addr,
            dns_addr,
            api_root,
            platform,
            stop,
            tasks,
            dns_task,
        })
    }
}

impl RunningServer {
    /// Stops accepting work, lets in-flight requests finish and waits for every task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Some(dns) = self.dns_task {
            dns.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        tracing::info!("MEP stopped");
    }
}

/// Once a second: heartbeat supervision and graceful-period deadlines; hourly: purge of
/// delivered notifications older than a day.
async fn housekeeping(platform: Arc<Platform>, rx: watch::Receiver<bool>) {
    let mut stop = std::pin::pin!(stopped(rx));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut purge = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = platform.sweep().await {
                    tracing::error!(error = %e, "housekeeping failed");
                }
            }
            _ = purge.tick() => {
                let day_ago = server_kit::unix_millis_now() - 86_400_000;
                match platform.store().outbox().purge(day_ago).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "purged old notifications"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "notification purge failed"),
                }
            }
            () = &mut stop => return,
        }
    }
}

/// The platform's REST transport, secured by OAuth 2.0 client credentials.
fn default_transport(api_root: &str) -> TransportInfo {
    TransportInfo {
        id: "mep-rest-http".into(),
        name: "REST".into(),
        description: Some("REST over HTTP, the MEP's own API gateway".into()),
        transport_type: TransportType::RestHttp,
        protocol: "HTTP".into(),
        version: "2.0".into(),
        endpoint: EndPointInfo {
            uris: Some(vec![api_root.to_owned()]),
            fqdn: None,
            addresses: None,
            alternative: None,
        },
        security: SecurityInfo {
            o_auth2_info: Some(OAuth2Info {
                grant_types: vec![GrantType::Oauth2ClientCredentials],
                token_endpoint: Some(format!("{api_root}/oauth2/token")),
            }),
        },
        impl_specific_info: None,
    }
}
