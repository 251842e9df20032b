//! What every service starts the same way: Prometheus metrics, the token authority, a
//! readiness check on its database, and notification delivery from its SQL outbox with an
//! hourly purge of old notifications.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;

use crate::admin::{Metrics, ReadinessCheck};
use crate::auth::{AuthConfig, AuthError, Authority, RegisteredClients};
use crate::notify::{Deliverer, DeliveryConfig, SqlOutbox};
use crate::outbound::{Destinations, OutboundError, OutboundPolicy};
use crate::serve::{BoundListener, Tasks, serve};

/// Why the plumbing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PlumbingError {
    /// The token authority could not be set up.
    #[error("cannot set up authentication")]
    Auth(#[from] AuthError),
    /// The notification client could not be built.
    #[error("cannot set up notification delivery: {0}")]
    Delivery(String),
    /// The outbound policy is invalid.
    #[error(transparent)]
    Outbound(#[from] OutboundError),
}

/// The shared parts of a service, built before its domain and started after its router.
pub struct Plumbing {
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The token authority.
    pub authority: Arc<Authority>,
    /// Readiness: the database answers.
    pub ready: ReadinessCheck,
    /// Notification delivery (take its waker for the domain).
    pub deliverer: Deliverer<SqlOutbox>,
    /// Where the service may connect on a client's behalf.
    pub destinations: Destinations,
    outbox: SqlOutbox,
}

impl std::fmt::Debug for Plumbing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plumbing")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Plumbing {
    /// Builds the plumbing of service `name` (the metrics prefix) over its outbox; `registered`
    /// are the clients the service registers at run time, if any.
    pub fn new(
        name: &str,
        outbox: SqlOutbox,
        auth: &AuthConfig,
        registered: Option<Arc<RegisteredClients>>,
        delivery: DeliveryConfig,
        outbound: &OutboundPolicy,
    ) -> Result<Self, PlumbingError> {
        let metrics = Metrics::new(name);
        let destinations = Destinations::new(outbound)?;
        let deliverer = Deliverer::new(Arc::new(outbox.clone()), delivery, &destinations, &metrics)
            .map_err(|e| PlumbingError::Delivery(e.to_string()))?;
        let authority = Arc::new(Authority::new(auth, registered)?);
        if !authority.enabled() {
            tracing::warn!("authentication is disabled: every request acts as the operator");
        }
        let probe = outbox.clone();
        let ready: ReadinessCheck = Arc::new(move || {
            let probe = probe.clone();
            Box::pin(async move { probe.ping().await.map_err(|e| e.to_string()) })
        });
        Ok(Self {
            metrics,
            authority,
            ready,
            deliverer,
            destinations,
            outbox,
        })
    }

    /// Serves `app` on `bound` and runs delivery and the purge, all in `tasks`.
    pub fn run(self, tasks: &mut Tasks, bound: BoundListener, app: Router, grace: Duration) {
        tasks.spawn(serve(
            bound.listener,
            app,
            bound.tls,
            bound.limits,
            tasks.stopped(),
            grace,
        ));
        tasks.spawn(self.deliverer.run(tasks.stopped()));
        let outbox = self.outbox;
        tasks.every(Duration::from_secs(3600), move || {
            let outbox = outbox.clone();
            async move {
                match outbox.purge(crate::unix_millis_now() - 86_400_000).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "purged old notifications"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "notification purge failed"),
                }
            }
        });
    }
}
