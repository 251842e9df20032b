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
use server_kit::serve::{BoundListener, ListenError, Tasks, serve};
use tokio::net::UdpSocket;

use crate::api::{self, HttpLimits};
use crate::config::MepConfig;
use crate::platform::{Platform, PlatformSettings};
use crate::store::Store;

/// Why the MEP could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API listener could not be set up.
    #[error("cannot set up the API listener")]
    Listen(#[from] ListenError),
    /// The DNS server could not be bound.
    #[error("cannot bind the DNS server on {addr}")]
    Dns {
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
    tasks: Tasks,
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

impl Server {
    /// Opens the store, binds the listeners and starts every task.
    pub async fn start(config: MepConfig) -> Result<RunningServer, StartError> {
        let store = Store::connect(&config.database_url).await?;
        let bound = BoundListener::bind(
            config.listen,
            config.public_url.as_deref(),
            config.tls.as_ref(),
        )
        .await?;
        let (local_addr, api_root) = (bound.local_addr, bound.api_root.clone());

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

        let mut tasks = Tasks::default();
        let grace = Duration::from_secs(config.shutdown_grace_secs);
        tasks.spawn(serve(
            bound.listener,
            app,
            bound.tls,
            tasks.stopped(),
            grace,
        ));
        tasks.spawn(deliverer.run(tasks.stopped()));
        let sweeper = platform.clone();
        tasks.every(Duration::from_secs(1), move || {
            let platform = sweeper.clone();
            async move {
                if let Err(e) = platform.sweep().await {
                    tracing::error!(error = %e, "housekeeping failed");
                }
            }
        });
        let purger = store.outbox();
        tasks.every(Duration::from_secs(3600), move || {
            let outbox = purger.clone();
            async move {
                match outbox
                    .purge(server_kit::unix_millis_now() - 86_400_000)
                    .await
                {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "purged old notifications"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "notification purge failed"),
                }
            }
        });
        let dns_addr = match config.dns.listen {
            Some(addr) => {
                let dns_err = |source| StartError::Dns { addr, source };
                let socket = UdpSocket::bind(addr).await.map_err(dns_err)?;
                let bound = socket.local_addr().map_err(dns_err)?;
                tasks.spawn_abortable(crate::dns::serve(
                    socket,
                    platform.dns_table(),
                    config.dns.upstream,
                ));
                Some(bound)
            }
            None => None,
        };
        tracing::info!(%local_addr, ?dns_addr, %api_root, "MEP started");
        Ok(RunningServer {
            local_addr,
            dns_addr,
            api_root,
            platform,
            tasks,
        })
    }
}

impl RunningServer {
    /// Stops accepting work, lets in-flight requests finish and waits for every task.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
        tracing::info!("MEP stopped");
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
