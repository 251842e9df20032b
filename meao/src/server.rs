//! Start-up and shutdown of the MEAO: store, package manager (with recovery of interrupted
//! onboarding and blob garbage collection), HTTP(S) APIs and notification delivery.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use server_kit::admin::{Metrics, ReadinessCheck};
use server_kit::auth::Authority;
use server_kit::notify::Deliverer;
use server_kit::serve::{BoundListener, ListenError, Tasks, serve};

use crate::config::MeaoConfig;
use crate::package::{PackageError, Packages};
use crate::store::Store;

/// Why the MEAO could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API listener could not be set up.
    #[error("cannot set up the API listener")]
    Listen(#[from] ListenError),
    /// The store could not be opened.
    #[error("cannot open the store")]
    Store(#[from] crate::store::StoreError),
    /// The package manager could not start.
    #[error("cannot start package management")]
    Packages(#[from] PackageError),
    /// The token authority could not be set up.
    #[error("cannot set up authentication")]
    Auth(#[from] server_kit::auth::AuthError),
    /// The notification client could not be built.
    #[error("cannot set up notification delivery: {0}")]
    Delivery(String),
}

/// A running MEAO.
pub struct RunningServer {
    /// Address of the HTTP(S) listener.
    pub local_addr: SocketAddr,
    /// URL prefix of the APIs.
    pub api_root: String,
    /// The package manager (for in-process inspection by tests).
    pub packages: Arc<Packages>,
    tasks: Tasks,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// Entry point of the MEAO.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Opens the store, recovers interrupted work, binds the listener and starts every task.
    pub async fn start(config: MeaoConfig) -> Result<RunningServer, StartError> {
        let store = Store::connect(&config.database_url).await?;
        let bound = BoundListener::bind(
            config.listen,
            config.public_url.as_deref(),
            config.tls.as_ref(),
        )
        .await?;
        let (local_addr, api_root) = (bound.local_addr, bound.api_root.clone());
        let metrics = Metrics::new("meao");
        let deliverer = Deliverer::new(Arc::new(store.outbox()), config.delivery.clone(), &metrics)
            .map_err(|e| StartError::Delivery(e.to_string()))?;
        let packages = Arc::new(Packages::new(
            store.clone(),
            &config.data_dir,
            config.packages.clone(),
            api_root.clone(),
            deliverer.waker(),
        )?);
        let removed = packages.collect_garbage().await?;
        if removed > 0 {
            tracing::info!(removed, "removed unreferenced package files");
        }
        let authority = Arc::new(Authority::new(&config.auth)?);
        if !authority.enabled() {
            tracing::warn!("authentication is disabled: every request acts as the operator");
        }
        let ready_store = store.clone();
        let ready: ReadinessCheck = Arc::new(move || {
            let store = ready_store.clone();
            Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
        });
        let app = crate::api::router(
            packages.clone(),
            authority,
            metrics,
            ready,
            config.max_body_bytes,
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
        let recovering = packages.clone();
        tasks.spawn(async move {
            if let Err(e) = recovering.resume().await {
                tracing::error!(error = %e, "recovery of interrupted onboarding failed");
            }
        });
        let purger = store.outbox();
        tasks.every(Duration::from_secs(3600), move || {
            let outbox = purger.clone();
            async move {
                if let Err(e) = outbox
                    .purge(server_kit::unix_millis_now() - 86_400_000)
                    .await
                {
                    tracing::error!(error = %e, "notification purge failed");
                }
            }
        });
        tracing::info!(%local_addr, %api_root, "MEAO started");
        Ok(RunningServer {
            local_addr,
            api_root,
            packages,
            tasks,
        })
    }
}

impl RunningServer {
    /// Stops accepting work, lets in-flight requests finish and waits for every task.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
        tracing::info!("MEAO stopped");
    }
}
