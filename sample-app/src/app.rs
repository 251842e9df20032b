//! The application's life at its MEP:
//!
//! 1. obtain a token with the instance's own credential (waiting while the MEP does not know
//!    it yet), serve HTTP, subscribe to its own termination;
//! 2. read what it requires (its AppInfo), subscribe to the availability of those services
//!    and discover the ones already there;
//! 3. register its service (or take over the registration of the process it replaces), with
//!    heartbeats;
//! 4. confirm ready once every required service is available; while one is missing, its
//!    service is INACTIVE and its traffic rules too (only their state changes: the rules stay
//!    what its AppD declares);
//! 5. on a termination notice the MEP confirms, confirm and exit; on SIGTERM (its pod is
//!    replaced, the instance lives on) withdraw this process's subscriptions and exit.
//!
//! A failed Mp1 call ends the process with an error: restarted (as its pod is), it takes its
//! registration over and carries on.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use mp1_client::api_specs::common::{
    CategoryRef, EndPointInfo, SecurityInfo, SerializerType, TransportInfo, TransportType,
};
use mp1_client::api_specs::mp1::app_support::{OperationActionType, RuleState};
use mp1_client::api_specs::mp1::service_mgmt::{
    FilteringCriteria, LocalityType, ServiceInfo, ServiceState,
};
use mp1_client::listener::{CallbackListener, Notification, local_address_towards};
use mp1_client::{Mp1Client, ServiceQuery};

use crate::config::Config;
use crate::deps::Dependencies;
use crate::http::{self, RegisteredService, Shared, Status};

/// The service the application produces (its AppD's `appServiceProduced`).
pub const SERVICE_NAME: &str = "sample-status";
/// Its version.
pub const SERVICE_VERSION: &str = "1.0";
/// Seconds between heartbeats the application asks for.
const LIVENESS_INTERVAL: u32 = 10;

/// How the application ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The MEP terminated (or stopped) the instance and the application confirmed.
    Confirmed(OperationActionType),
    /// The process was asked to stop (SIGTERM, SIGINT); the instance lives on.
    Signalled,
}

/// Runs the application until the MEP terminates it or the process is signalled.
pub async fn run(config: Config) -> anyhow::Result<Exit> {
    // watched from the start: a SIGTERM during start-up is handled once it is done
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mep_url = config.mp1.mep_url.clone();
    let mep = Mp1Client::connect(config.mp1)
        .await
        .context("the MEP did not accept the instance's credential")?;
    let id = mep.app_instance_id().to_owned();
    tracing::info!(app_instance_id = %id, mep = %mep_url, "authenticated at the MEP");

    let socket = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let port = socket.local_addr()?.port();
    let public_url = match config.public_url {
        Some(url) => url,
        None => {
            let ip = local_address_towards(&mep_url)
                .await
                .context("cannot tell this host's address on the route to the MEP")?;
            format!("http://{}", SocketAddr::new(ip, port))
        }
    };
    let mut listener = CallbackListener::new(&public_url)?;
    let status: Shared = Arc::new(RwLock::new(Status {
        app_instance_id: id.clone(),
        ready: false,
        service: None,
        required: Dependencies::default(),
        notifications: 0,
    }));
    let (stop_serving, stopped) = tokio::sync::oneshot::channel::<()>();
    let routes = http::router(status.clone()).merge(listener.router());
    let server = tokio::spawn(async move {
        axum::serve(socket, routes)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%public_url, "serving HTTP");

    let mut subscriptions = Vec::new();
    let termination = mep.subscribe_termination(listener.callback_url()).await?;
    subscriptions.extend(termination.links.map(|l| l.self_.href));

    let info = mep.app_info().await?;
    let mut deps = Dependencies::new(
        info.app_service_required
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.ser_name),
    );
    if !deps.names().is_empty() {
        let filter = FilteringCriteria {
            ser_names: Some(deps.names()),
            ..FilteringCriteria::default()
        };
        let sub = mep
            .subscribe_availability(listener.callback_url(), Some(filter))
            .await?;
        subscriptions.extend(sub.links.map(|l| l.self_.href));
        // discovered after subscribing: nothing added in between is missed
        let query = ServiceQuery {
            ser_name: Some(deps.names()),
            ..ServiceQuery::default()
        };
        for service in mep.services(&query).await? {
            deps.discovered(&service);
        }
    }

    let mut app = App {
        mep,
        status,
        public_url,
        met: deps.met(),
        deps,
    };
    let service = app.mep.ensure_service(&app.service_info()).await?;
    let _heartbeats = app.mep.spawn_heartbeats(&service.value);
    let ser_instance_id = service
        .value
        .ser_instance_id
        .clone()
        .context("the MEP registered the service without an id")?;
    tracing::info!(%ser_instance_id, "service {SERVICE_NAME} registered");
    app.steer().await?;
    app.show(Some(&ser_instance_id));
    if app.met {
        app.ready().await?;
    } else {
        tracing::info!(missing = ?app.deps.missing(), "waiting for required services");
    }

    let exit = loop {
        tokio::select! {
            notification = listener.next() => {
                if let Some(exit) = app.notified(notification, &ser_instance_id).await? {
                    break exit;
                }
            }
            _ = terminate.recv() => break Exit::Signalled,
            _ = tokio::signal::ctrl_c() => break Exit::Signalled,
        }
    };
    // a terminated instance's subscriptions went with it; otherwise they point at this process
    if exit != Exit::Confirmed(OperationActionType::Terminating) {
        for href in &subscriptions {
            if let Err(e) = app.mep.unsubscribe(href).await {
                tracing::warn!(error = %e, %href, "cannot withdraw a subscription");
            }
        }
    }
    let _ = stop_serving.send(());
    let _ = server.await;
    Ok(exit)
}

struct App {
    mep: Mp1Client,
    status: Shared,
    public_url: String,
    deps: Dependencies,
    /// Whether every required service was available at the last look.
    met: bool,
}

impl App {
    /// The service as registered: ACTIVE while what it requires is available.
    fn service_info(&self) -> ServiceInfo {
        ServiceInfo {
            ser_instance_id: None,
            ser_name: SERVICE_NAME.into(),
            ser_category: Some(CategoryRef {
                href: "https://mecplane.example/catalogue/samples".into(),
                id: "samples".into(),
                name: "Samples".into(),
                version: "1".into(),
            }),
            version: SERVICE_VERSION.into(),
            state: if self.met {
                ServiceState::Active
            } else {
                ServiceState::Inactive
            },
            transport_id: None,
            transport_info: Some(TransportInfo {
                id: "sample-status-rest".into(),
                name: "REST".into(),
                description: Some("The sample application's status".into()),
                transport_type: TransportType::RestHttp,
                protocol: "HTTP".into(),
                version: "1.1".into(),
                endpoint: EndPointInfo {
                    uris: Some(vec![format!("{}/status", self.public_url)]),
                    fqdn: None,
                    addresses: None,
                    alternative: None,
                },
                security: SecurityInfo::default(),
                impl_specific_info: None,
            }),
            serializer: SerializerType::Json,
            scope_of_locality: Some(LocalityType::MecHost),
            consumed_local_only: Some(true),
            is_local: Some(true),
            liveness_interval: Some(LIVENESS_INTERVAL),
            links: None,
        }
    }

    /// Publishes the current state on the status page.
    fn show(&self, ser_instance_id: Option<&str>) {
        let state = self.service_info().state;
        let deps = self.deps.clone();
        http::update(&self.status, |s| {
            s.required = deps;
            if let Some(id) = ser_instance_id {
                s.service = Some(RegisteredService {
                    ser_instance_id: id.to_owned(),
                    state,
                });
            } else if let Some(service) = &mut s.service {
                service.state = state;
            }
        });
    }

    async fn ready(&self) -> anyhow::Result<()> {
        self.mep.confirm_ready().await?;
        http::update(&self.status, |s| s.ready = true);
        tracing::info!("confirmed ready");
        Ok(())
    }

    /// Sets the state of each of the instance's traffic rules: ACTIVE while the required
    /// services are available, INACTIVE otherwise. A rule changed meanwhile is read again.
    async fn steer(&self) -> anyhow::Result<()> {
        let wanted = if self.met {
            RuleState::Active
        } else {
            RuleState::Inactive
        };
        for rule in self.mep.traffic_rules().await? {
            for _ in 0..3 {
                let current = self.mep.traffic_rule(&rule.traffic_rule_id).await?;
                if current.value.state == wanted {
                    break;
                }
                let mut toggled = current.value.clone();
                toggled.state = wanted;
                match self
                    .mep
                    .update_traffic_rule(&toggled, current.etag.as_deref())
                    .await
                {
                    Ok(_) => {
                        tracing::info!(rule = %rule.traffic_rule_id, state = ?wanted, "traffic rule set");
                        break;
                    }
                    Err(e) if e.status() == Some(412) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Handles one notification, then counts it; `Some` when the application is to end.
    async fn notified(
        &mut self,
        notification: Notification,
        ser_instance_id: &str,
    ) -> anyhow::Result<Option<Exit>> {
        let outcome = self.handle(notification, ser_instance_id).await;
        http::update(&self.status, |s| s.notifications += 1);
        outcome
    }

    async fn handle(
        &mut self,
        notification: Notification,
        ser_instance_id: &str,
    ) -> anyhow::Result<Option<Exit>> {
        match notification {
            Notification::ServiceAvailability(n) => {
                for changed in self.deps.notified(&n) {
                    match self.mep.service(&changed).await {
                        Ok(service) => self.deps.discovered(&service.value),
                        Err(e) => tracing::warn!(error = %e, "cannot look up service {changed}"),
                    }
                }
                let met = self.deps.met();
                tracing::info!(references = ?n.service_references, met, "service availability changed");
                if met != self.met {
                    self.met = met;
                    let current = self.mep.own_service(ser_instance_id).await?;
                    self.mep
                        .update_service(
                            ser_instance_id,
                            &self.service_info(),
                            current.etag.as_deref(),
                        )
                        .await?;
                    self.steer().await?;
                }
                self.show(None);
                if met && !http::snapshot(&self.status).ready {
                    self.ready().await?;
                }
                Ok(None)
            }
            Notification::AppTermination(n) => {
                match self.mep.confirm_termination(n.operation_action).await {
                    Ok(()) => {
                        tracing::info!(action = ?n.operation_action, "confirmed termination; leaving");
                        Ok(Some(Exit::Confirmed(n.operation_action)))
                    }
                    Err(e) if e.status() == Some(409) => {
                        tracing::warn!(error = %e, "a termination notice the MEP does not confirm; ignored");
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}
