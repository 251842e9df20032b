//! Start-up and shutdown of a MEP: store, platform, HTTP(S) APIs, DNS server, notification
//! delivery and housekeeping. [`Server::start`] binds everything (port 0 works) and returns a
//! handle, so tests and the e2e harness run the real thing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_specs::common::{
    EndPointInfo, GrantType, OAuth2Info, SecurityInfo, TransportInfo, TransportType,
};
use server_kit::auth::RegisteredClients;
use server_kit::runtime::{Plumbing, PlumbingError};
use server_kit::serve::{BoundListener, ListenError, Tasks};
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
    /// The API document's request schemas do not compile.
    #[error(transparent)]
    Schema(#[from] server_kit::request_schema::SchemaError),
    /// The MEAO link's TLS material is unusable.
    #[error("cannot set up the MEAO link")]
    Link(#[from] server_kit::serve::TlsError),
    /// Authentication or notification delivery could not be set up.
    #[error(transparent)]
    Plumbing(#[from] PlumbingError),
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
            &config.http,
        )
        .await?;
        let (local_addr, api_root) = (bound.local_addr, bound.api_root.clone());

        let clients = Arc::new(RegisteredClients::default());
        let plumbing = Plumbing::new(
            "mep",
            store.outbox(),
            &config.auth,
            Some(clients.clone()),
            config.delivery.clone(),
            &config.outbound,
        )?;
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
            configured_client_ids: config
                .auth
                .clients
                .iter()
                .map(|c| c.client_id.clone())
                .collect(),
            allow_self_registration: config.allow_self_registration,
            app_rules: config.app_rules.clone(),
            destinations: plumbing.destinations.clone(),
        };
        let waker = plumbing.deliverer.waker();
        let platform = Arc::new(Platform::load(store.clone(), settings, waker, clients).await?);
        let app = api::router(
            platform.clone(),
            plumbing.authority.clone(),
            plumbing.metrics.clone(),
            plumbing.ready.clone(),
            HttpLimits {
                max_body_bytes: config.max_body_bytes,
            },
        )?;

        let steering = crate::steering::SteeringMetrics::new(&plumbing.metrics);
        let steered = crate::steering::SteeringStatus::default();
        let link_metrics = crate::link::LinkMetrics::new(&plumbing.metrics);
        let mut tasks = Tasks::default();
        let grace = Duration::from_secs(config.shutdown_grace_secs);
        plumbing.run(&mut tasks, bound, app, grace);
        let sweeper = platform.clone();
        tasks.every(Duration::from_secs(1), move || {
            let platform = sweeper.clone();
            async move {
                if let Err(e) = platform.sweep().await {
                    tracing::error!(error = %e, "housekeeping failed");
                }
            }
        });
        if let Some(upf) = config.upf.clone() {
            tasks.spawn_abortable(crate::steering::run(
                platform.clone(),
                upf,
                steering.clone(),
                steered.clone(),
            ));
        }
        if let Some(upgw) = config.upgw.clone() {
            let upgw = crate::steering::run_upgw(platform.clone(), upgw, steering, steered.clone());
            tasks.spawn_abortable(upgw);
        }
        if let Some(meao) = config.meao.clone() {
            let connector = server_kit::grpc::tls_connector(&meao.tls)?;
            let link = crate::link::run(platform.clone(), steered, meao, connector, link_metrics);
            tasks.spawn_abortable(link);
        }
        let dns_addr = match config.dns.listen {
            Some(addr) => {
                let dns_err = |source| StartError::Dns { addr, source };
                let socket = UdpSocket::bind(addr).await.map_err(dns_err)?;
                let bound = socket.local_addr().map_err(dns_err)?;
                tasks.spawn_abortable(crate::dns::serve(
                    socket,
                    platform.dns_table(),
                    config.dns.clone(),
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
