//! The accept loop: plain HTTP or TLS (openssl), HTTP/1.1 and HTTP/2, graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// TLS settings of a listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot load TLS material ({what})")]
pub struct TlsError {
    what: String,
    #[source]
    source: openssl::error::ErrorStack,
}

impl TlsError {
    /// A failure to load `what`.
    pub fn new(what: String, source: openssl::error::ErrorStack) -> Self {
        Self { what, source }
    }
}

/// Bounds of a listener: how many connections it holds and how long a client may take to
/// finish its TLS handshake and to send a request's headers (slow-loris clients).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeLimits {
    /// Open connections at most; further connections wait in the accept queue.
    pub max_connections: usize,
    /// Seconds a client has to complete the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds an HTTP/1 client has to send a request's headers.
    pub header_read_timeout_secs: u64,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            tls_handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            max_concurrent_streams: 256,
        }
    }
}

/// The TCP peer of a request, put into its extensions by [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Builds an openssl acceptor (TLS 1.2 or later, Mozilla intermediate ciphers, ALPN h2/http1.1).
pub fn tls_acceptor(config: &TlsConfig) -> Result<Arc<SslAcceptor>, TlsError> {
    let err = |what: String| move |source| TlsError::new(what, source);
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(err("acceptor".into()))?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(err("protocol version".into()))?;
    builder
        .set_certificate_chain_file(&config.cert_file)
        .map_err(err(config.cert_file.display().to_string()))?;
    builder
        .set_private_key_file(&config.key_file, SslFiletype::PEM)
        .map_err(err(config.key_file.display().to_string()))?;
    builder
        .check_private_key()
        .map_err(err("key does not match certificate".into()))?;
    if let Some(ca) = &config.client_ca_file {
        builder
            .set_ca_file(ca)
            .map_err(err(ca.display().to_string()))?;
        builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    builder.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x02h2\x08http/1.1", client)
            .ok_or(openssl::ssl::AlpnError::NOACK)
    });
    Ok(Arc::new(builder.build()))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish
/// (up to `grace`) and closes those still open: none outlives the call, so a long-lived
/// stream (a MEP's link) ends with it and its client reconnects elsewhere. Every request
/// carries its [`PeerAddr`] (and, under mutual TLS, the
/// client's [`PeerIdentity`](crate::grpc::PeerIdentity)); `limits` bound connections,
/// handshakes and header reads.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<SslAcceptor>>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs.max(1)));
    // HTTP/2 pings find peers that vanished without closing (long-lived gRPC streams)
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams.max(1))
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let handshake_timeout = Duration::from_secs(limits.tls_handshake_timeout_secs.max(1));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        // a connection is accepted only once a slot is free: the rest wait in the backlog
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        connections.spawn(async move {
            let _slot = slot;
            let result = match tls {
                None => {
                    let service = TowerToHyperService::new(with_peer(app, peer, None));
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let ssl = match openssl::ssl::Ssl::new(acceptor.context()) {
                        Ok(ssl) => ssl,
                        Err(e) => {
                            tracing::warn!(error = %e, "TLS session setup failed");
                            return;
                        }
                    };
                    let Ok(mut tls_stream) = tokio_openssl::SslStream::new(ssl, stream) else {
                        return;
                    };
                    let handshake = Pin::new(&mut tls_stream).accept();
                    match tokio::time::timeout(handshake_timeout, handshake).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                    let identity = peer_identity(tls_stream.ssl());
                    let service = TowerToHyperService::new(with_peer(app, peer, identity));
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(open = connections.len(), "grace period over, closing connections"),
    }
    connections.shutdown().await;
}

/// `app` with the connection's peer address (and verified client identity) in every request.
fn with_peer(
    app: Router,
    peer: std::net::SocketAddr,
    identity: Option<crate::grpc::PeerIdentity>,
) -> impl tower::Service<
    http::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    tower::ServiceExt::map_request(
        app,
        move |mut request: http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(PeerAddr(peer));
            if let Some(identity) = &identity {
                request.extensions_mut().insert(identity.clone());
            }
            request
        },
    )
}

/// The common name of the verified client certificate of a TLS connection.
fn peer_identity(ssl: &openssl::ssl::SslRef) -> Option<crate::grpc::PeerIdentity> {
    let certificate = ssl.peer_certificate()?;
    let cn = certificate
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()?;
    cn.data().to_string().ok().map(crate::grpc::PeerIdentity)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

/// A bound API listener and the URL clients reach it at.
pub struct BoundListener {
    /// The socket.
    pub listener: TcpListener,
    /// The bound address.
    pub local_addr: std::net::SocketAddr,
    /// Absolute URL prefix of the APIs (configured, or derived from the bound address).
    pub api_root: String,
    /// The TLS acceptor, when TLS is configured.
    pub tls: Option<Arc<SslAcceptor>>,
    /// Bounds of the listener.
    pub limits: ServeLimits,
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl BoundListener {
    /// Binds `addr` (port 0 picks one) with optional TLS.
    pub async fn bind(
        addr: std::net::SocketAddr,
        public_url: Option<&str>,
        tls: Option<&TlsConfig>,
        limits: &ServeLimits,
    ) -> Result<Self, ListenError> {
        let bind_err = |source| ListenError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let api_root = public_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{scheme}://{local_addr}"))
            .trim_end_matches('/')
            .to_owned();
        let tls = tls.map(tls_acceptor).transpose()?;
        Ok(Self {
            listener,
            local_addr,
            api_root,
            tls,
            limits: limits.clone(),
        })
    }
}

/// The background tasks of a service and the signal that stops them.
pub struct Tasks {
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("running", &self.handles.len())
            .finish()
    }
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            stop: tokio::sync::watch::channel(false).0,
            handles: Vec::new(),
        }
    }
}

impl Tasks {
    /// A future that resolves when the tasks are told to stop.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Spawns a task; it should end soon after [`Tasks::stopped`] resolves.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.handles.push(tokio::spawn(task));
    }

    /// Spawns a task that is aborted at shutdown instead of asked to stop.
    pub fn spawn_abortable(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        let stopped = self.stopped();
        self.handles.push(tokio::spawn(async move {
            tokio::select! {
                () = task => {},
                () = stopped => {},
            }
        }));
    }

    /// Spawns `tick` every `period` until stopped. A tick under way when the service stops is
    /// dropped where it is, as a crash would leave it (what ticks do, such as resuming sagas or
    /// reconciling sites, is durable and resumes at the next start): a long tick must not hold
    /// up the shutdown.
    pub fn every<F, Fut>(&mut self, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let stopped = self.stopped();
        self.handles.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut stopped = std::pin::pin!(stopped);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    () = &mut stopped => return,
                }
                tokio::select! {
                    () = tick() => {}
                    () = &mut stopped => return,
                }
            }
        }));
    }

    /// Signals every task to stop and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tick_under_way_does_not_hold_up_the_shutdown() {
        let mut tasks = Tasks::default();
        let (started, mut ticking) = tokio::sync::mpsc::unbounded_channel();
        tasks.every(Duration::from_millis(10), move || {
            let started = started.clone();
            async move {
                let _ = started.send(());
                // a recovery resuming a saga that waits an hour, say
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
        ticking.recv().await;
        tokio::time::timeout(Duration::from_secs(10), tasks.shutdown())
            .await
            .expect("the shutdown does not wait for the tick");
    }
}
