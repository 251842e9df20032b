//! Start-up and shutdown of the MEAO: store, package manager (with recovery of interrupted
//! onboarding and blob garbage collection), HTTP(S) APIs and notification delivery.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use server_kit::runtime::{Plumbing, PlumbingError};
use server_kit::serve::{BoundListener, ListenError, Tasks, serve};

use crate::config::MeaoConfig;
use crate::inventory::{Inventory, InventoryError};
use crate::lcm::credentials::{CredentialKey, CredentialKeyError};
use crate::lcm::{Lcm, LcmSettings};
use crate::mep_link::MepLink;
use crate::package::blobs::BlobStore;
use crate::package::{PackageError, Packages};
use crate::store::{Events, Store};

/// How long a MEAO that publishes no events keeps them for the portal's activity feed (ms).
const ACTIVITY_RETENTION_MS: i64 = 24 * 3_600_000;

/// Why the MEAO could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The API listener could not be set up.
    #[error("cannot set up the API listener")]
    Listen(#[from] ListenError),
    /// The store could not be opened.
    #[error("cannot open the store")]
    Store(#[from] crate::store::StoreError),
    /// The MEP link's listener could not be set up.
    #[error("cannot set up the MEP link listener")]
    MepLink(#[source] ListenError),
    /// The MEP link has no CA for the MEPs' client certificates.
    #[error("mep_link.tls.client_ca_file is required: MEPs are identified by their certificates")]
    MepLinkWithoutClientCa,
    /// The site inventory could not be loaded.
    #[error("cannot load the site inventory")]
    Inventory(#[from] InventoryError),
    /// The package manager could not start.
    #[error("cannot start package management")]
    Packages(#[from] PackageError),
    /// Authentication or notification delivery could not be set up.
    #[error(transparent)]
    Plumbing(#[from] PlumbingError),
    /// The portal's users are misconfigured.
    #[error(transparent)]
    Portal(#[from] crate::portal::PortalError),
    /// The key of the applications' Mp1 credentials is unusable.
    #[error(transparent)]
    Credentials(#[from] CredentialKeyError),
    /// The image registries are misconfigured.
    #[error("images: {0}")]
    Images(#[from] crate::images::ImageError),
    /// The Kafka producer could not be created.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    /// The API document's request schemas do not compile.
    #[error(transparent)]
    Schema(#[from] server_kit::request_schema::SchemaError),
}

/// A running MEAO.
pub struct RunningServer {
    /// Address of the HTTP(S) listener.
    pub local_addr: SocketAddr,
    /// URL prefix of the APIs.
    pub api_root: String,
    /// Address of the MEP link listener, when configured.
    pub mep_link_addr: Option<SocketAddr>,
    /// The package manager (for in-process inspection by tests).
    pub packages: Arc<Packages>,
    /// The site inventory.
    pub inventory: Arc<Inventory>,
    /// Application LCM.
    pub lcm: Arc<Lcm>,
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
        // the portal shows the outbox's events even when nothing publishes them
        let events = match (&config.kafka, config.portal.users.is_empty()) {
            (Some(_), _) => Events::Published,
            (None, false) => Events::Recorded,
            (None, true) => Events::Off,
        };
        let store = Store::connect(&config.database_url)
            .await?
            .with_event_outbox(events);
        let bound = BoundListener::bind(
            config.listen,
            config.public_url.as_deref(),
            config.tls.as_ref(),
            &config.http,
        )
        .await?;
        let (local_addr, api_root) = (bound.local_addr, bound.api_root.clone());
        let mut auth = config.auth.clone();
        if auth.signing_key.is_none() {
            // replicas on one database share the generated key, and it outlives restarts
            let mut candidate = [0u8; 32];
            openssl::rand::rand_bytes(&mut candidate).map_err(CredentialKeyError::from)?;
            let candidate: String = candidate.iter().map(|b| format!("{b:02x}")).collect();
            let stored = store.key_get_or_insert("token-signing", &candidate).await?;
            auth.signing_key = Some(stored.into());
        }
        let plumbing = Plumbing::new(
            "meao",
            store.outbox(),
            &auth,
            None,
            config.delivery.clone(),
            &config.outbound,
        )?;
        let blobs = BlobStore::open(&config.package_storage, &config.data_dir)
            .map_err(PackageError::Storage)?;
        tracing::info!(store = blobs.describe(), "package files");
        let packages = Arc::new(Packages::new(
            store.clone(),
            blobs,
            config.packages.clone(),
            api_root.clone(),
            plumbing.deliverer.waker(),
            plumbing.destinations.clone(),
        )?);
        let inventory = Arc::new(Inventory::load(store.clone(), &config.sites).await?);
        let mep_link = match &config.mep_link {
            Some(link) => {
                if link.tls.client_ca_file.is_none() {
                    return Err(StartError::MepLinkWithoutClientCa);
                }
                let bound = BoundListener::bind(link.listen, None, Some(&link.tls), &config.http)
                    .await
                    .map_err(StartError::MepLink)?;
                let resend = Duration::from_secs(link.resend_secs);
                let ack_timeout = Duration::from_secs(link.ack_timeout_secs);
                let server = MepLink::new(store.clone(), resend, &plumbing.metrics);
                Some((bound, server, ack_timeout))
            }
            None => None,
        };
        let credentials =
            Arc::new(CredentialKey::load(config.mp1_credentials_key.as_ref(), &store).await?);
        // this replica's name in the leases it holds (sagas, publishing, reconciliation)
        let owner = format!("meao-{}", uuid::Uuid::new_v4());
        let lcm = Arc::new(Lcm::new(
            store.clone(),
            packages.clone(),
            inventory.clone(),
            plumbing.deliverer.waker(),
            LcmSettings {
                api_root: api_root.clone(),
                owner: owner.clone(),
                ready_timeout: Duration::from_secs(config.workload_ready_timeout_secs),
                lease: Duration::from_secs(config.saga_lease_secs.max(1)),
                #[cfg(feature = "fault-drill")]
                fault_drill: config.fault_drill.clone(),
                #[cfg(not(feature = "fault-drill"))]
                fault_drill: None,
                mep_link: mep_link
                    .as_ref()
                    .map(|(_, link, timeout)| (link.clone(), *timeout)),
                credentials,
                images: Arc::new(crate::images::Images::new(
                    &config.images,
                    &plumbing.destinations,
                    config.data_dir.join("image-spool"),
                )?),
                destinations: plumbing.destinations.clone(),
            },
        ));
        #[cfg(feature = "fault-drill")]
        if let Some(drill) = &config.fault_drill {
            tracing::warn!(
                ?drill,
                "a crash drill is armed: the process will abort at that step"
            );
        }
        let secure_cookie = config.tls.is_some()
            || config
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"));
        let portal = Arc::new(crate::portal::Portal::new(
            &config.portal,
            store.clone(),
            secure_cookie,
        )?);
        let live = portal.live();
        let app = crate::api::router(
            packages.clone(),
            inventory.clone(),
            lcm.clone(),
            plumbing.authority.clone(),
            portal,
            plumbing.metrics.clone(),
            plumbing.ready.clone(),
            config.max_body_bytes,
        )?;

        let mut tasks = Tasks::default();
        let gauges = crate::gauges::StateGauges::new(&plumbing.metrics);
        if let Some(kafka) = config.kafka.clone() {
            let publisher = crate::events::Publisher::new(
                store.clone(),
                kafka,
                owner.clone(),
                &plumbing.metrics,
            )?;
            tasks.spawn_abortable(publisher.run());
        } else if events == Events::Recorded {
            // what nobody publishes is kept for the activity feed, then dropped
            let purging = store.clone();
            tasks.every(Duration::from_secs(60), move || {
                let store = purging.clone();
                async move {
                    let before = server_kit::unix_millis_now() - ACTIVITY_RETENTION_MS;
                    if let Err(e) = store.events_purge(before).await {
                        tracing::warn!(error = %e, "event purge failed");
                    }
                }
            });
        }
        tasks.spawn(live.run(tasks.stopped()));
        let grace = Duration::from_secs(config.shutdown_grace_secs);
        let mep_link_addr = mep_link.map(|(bound, link, _)| {
            // MEP streams never end by themselves: a short grace, and the MEPs reconnect.
            let link_grace = grace.min(Duration::from_secs(1));
            let router = link.router();
            let stopped = tasks.stopped();
            tasks.spawn(serve(
                bound.listener,
                router,
                bound.tls,
                bound.limits,
                stopped,
                link_grace,
            ));
            bound.local_addr
        });
        // a site stays with the replica that reconciled it until two passes were missed
        let reconcile_every = Duration::from_secs(config.reconcile_interval_secs.max(1));
        let reconciler = Arc::new(lcm.reconciler(reconcile_every * 2, &plumbing.metrics));
        plumbing.run(&mut tasks, bound, app, grace);
        let refreshing = inventory.clone();
        let failing_over = lcm.clone();
        let failover_after = config.failover_after_secs;
        tasks.every(
            Duration::from_secs(config.site_refresh_secs.max(1)),
            move || {
                let inventory = refreshing.clone();
                let lcm = failing_over.clone();
                async move {
                    if let Err(e) = inventory.refresh().await {
                        tracing::error!(error = %e, "site refresh failed");
                    }
                    let Some(after) = failover_after else { return };
                    let before = server_kit::unix_millis_now()
                        - i64::try_from(after.saturating_mul(1000)).unwrap_or(i64::MAX);
                    let failed = match inventory.unhealthy_since_before(before).await {
                        Ok(failed) => failed,
                        Err(e) => {
                            tracing::error!(error = %e, "failover check failed");
                            return;
                        }
                    };
                    if !failed.is_empty()
                        && let Err(e) = lcm.relocate_from(&failed).await
                    {
                        tracing::error!(error = %e, "failover failed");
                    }
                }
            },
        );
        let gauged = store.clone();
        tasks.every(
            Duration::from_secs(config.site_refresh_secs.max(1)),
            move || {
                let (gauges, store) = (gauges.clone(), gauged.clone());
                async move {
                    if let Err(e) = gauges.update(&store).await {
                        tracing::warn!(error = %e, "state gauges not updated");
                    }
                }
            },
        );
        let sweeping = lcm.clone();
        tasks.every(
            Duration::from_secs(config.saga_recovery_interval_secs.max(1)),
            move || {
                let lcm = sweeping.clone();
                async move {
                    if let Err(e) = lcm.recover().await {
                        tracing::error!(error = %e, "LCM recovery failed");
                    }
                }
            },
        );
        if config.reconcile_interval_secs > 0 {
            tasks.every(reconcile_every, move || {
                let reconciler = reconciler.clone();
                async move {
                    if let Err(e) = reconciler.run_once().await {
                        tracing::error!(error = %e, "reconciliation failed");
                    }
                }
            });
        }
        let collecting = packages.clone();
        let gc = Duration::from_secs(config.packages.gc_interval_secs.max(1));
        tasks.every(gc, move || {
            let packages = collecting.clone();
            async move {
                match packages.collect_garbage(gc).await {
                    Ok(swept) if swept.removed == 0 && swept.kept_young == 0 => {}
                    Ok(swept) => tracing::info!(
                        removed = swept.removed,
                        kept_young = swept.kept_young,
                        referenced = swept.referenced,
                        grace_secs = gc.as_secs(),
                        "package file sweep: removed the unreferenced files older than the grace period, kept the younger ones (an upload may be writing them)"
                    ),
                    Err(e) => tracing::error!(error = %e, "package file sweep skipped"),
                }
            }
        });
        // onboardings whose lease expired: this replica's previous run, or a stopped replica
        let recovering = packages.clone();
        tasks.every(packages.onboarding_lease(), move || {
            let packages = recovering.clone();
            async move {
                if let Err(e) = packages.recover().await {
                    tracing::error!(error = %e, "recovery of interrupted onboarding failed");
                }
            }
        });
        tracing::info!(%local_addr, %api_root, ?mep_link_addr, "MEAO started");
        Ok(RunningServer {
            local_addr,
            mep_link_addr,
            api_root,
            packages,
            inventory,
            lcm,
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
