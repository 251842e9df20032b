//! The inventory of edge sites (MEC hosts): what each site is (location, zone, services,
//! VIM connection), what it has free (refreshed from its VIM) and whether it is healthy, plus
//! placement over the whole inventory, e.g. to ask where an onboarded application would go.
//!
//! Sites come from the configuration (upserted at start) or the REST API; their VIM is a
//! Kubernetes, K3s or KubeEdge cluster reached through a kubeconfig, or a simulated one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use api_specs::common::{MAX_NAME, check_text};
use api_specs::inventory::SiteCleanup;
use api_specs::mm1::appd::AppD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vim_adapters::kubernetes::{ClusterConnection, KubeVim};
use vim_adapters::sim::SimulatedVim;
use vim_adapters::{Capacity, Vim};

use crate::placement::{PlacementDecision, PlacementRequest, SiteView, place};
use crate::store::{SiteDeletion, SiteRow, Store, StoreError};
use api_specs::location::LocationConstraints;

/// A simulated cluster with these resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatedCluster {
    /// CPU (millicores).
    pub cpu_millis: u64,
    /// Memory (MiB).
    pub memory_mib: u64,
    /// GPUs.
    #[serde(default)]
    pub gpus: u32,
    /// Node architectures.
    #[serde(default = "default_architectures")]
    pub architectures: Vec<String>,
    /// Time a workload takes to become ready (ms).
    #[serde(default)]
    pub startup_ms: u64,
    /// Simulates an outage of the site.
    #[serde(default)]
    pub offline: bool,
    /// File keeping the simulated cluster's workloads across restarts (operator configuration
    /// only).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub state_file: Option<std::path::PathBuf>,
}

/// How the MEAO reaches a site's VIM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum VimConnection {
    /// A simulated cluster with these resources.
    Simulated(SimulatedCluster),
    /// A Kubernetes, K3s or KubeEdge cluster: `kubeconfig`, optional `context`, `namespace`
    /// (default `mec-apps`) and `flavour` (`kubernetes`, `k3s` or `kubeEdge`; detected when
    /// absent).
    Kubernetes(ClusterConnection),
}

/// The document states the union as serde reads it: one closed object per `kind`.
impl utoipa::PartialSchema for VimConnection {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        api_specs::common::tagged_union(
            "kind",
            [
                ("simulated", SimulatedCluster::schema()),
                ("kubernetes", ClusterConnection::schema()),
            ],
            "How the MEAO reaches a site's VIM.",
        )
    }
}

impl ToSchema for VimConnection {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        SimulatedCluster::schemas(schemas);
        ClusterConnection::schemas(schemas);
    }
}

fn default_architectures() -> Vec<String> {
    vec!["x86_64".into()]
}

/// A site as the operator describes it, with the MEAO's VIM connection.
pub type SiteSpec = api_specs::inventory::SiteSpec<VimConnection>;
/// A site with what the MEAO observed of it.
pub type SiteInfo = api_specs::inventory::SiteInfo<VimConnection>;
pub use api_specs::inventory::PlacementQuery;

/// Where a site description comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteOrigin {
    /// The operator's configuration file: it may name the server's files.
    Configuration,
    /// The inventory API: a client, who may not.
    Api,
}

/// Refuses server paths in a client's VIM connection, checks a kubeconfig it gives, and keeps
/// what the client cannot see of the site's current connection when it gives nothing new.
fn keep_server_paths(
    vim: &mut VimConnection,
    previous: Option<&VimConnection>,
) -> Result<(), InventoryError> {
    match (vim, previous) {
        (VimConnection::Simulated(SimulatedCluster { state_file, .. }), previous) => {
            if state_file.is_some() {
                return Err(InventoryError::Invalid(
                    "stateFile names a file on the server: only the MEAO's configuration may"
                        .into(),
                ));
            }
            if let Some(VimConnection::Simulated(SimulatedCluster {
                state_file: kept, ..
            })) = previous
            {
                state_file.clone_from(kept);
            }
        }
        (VimConnection::Kubernetes(cluster), previous) => {
            if cluster.kubeconfig.is_some() {
                return Err(InventoryError::Invalid(
                    "kubeconfig names a file on the server; give the kubeconfig itself in kubeconfigContent".into(),
                ));
            }
            match (&cluster.kubeconfig_content, previous) {
                (Some(content), _) => {
                    vim_adapters::kubernetes::check_client_kubeconfig(&content.0)
                        .map_err(InventoryError::Invalid)?;
                }
                (None, Some(VimConnection::Kubernetes(kept))) => {
                    cluster.kubeconfig.clone_from(&kept.kubeconfig);
                    cluster
                        .kubeconfig_content
                        .clone_from(&kept.kubeconfig_content);
                }
                (None, _) => {
                    return Err(InventoryError::Invalid(
                        "kubeconfigContent is required for a Kubernetes site".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// An inventory failure.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// No such site.
    #[error("site {0} not found")]
    NotFound(String),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The site is in use.
    #[error("{0}")]
    InUse(String),
    /// Persistence failed.
    #[error("store failure")]
    Store(#[from] StoreError),
}

/// The site inventory.
pub struct Inventory {
    store: Store,
    vims: RwLock<BTreeMap<String, Attached>>,
}

/// A site's VIM and the connection it was made from.
#[derive(Clone)]
struct Attached {
    connection: VimConnection,
    vim: Arc<dyn Vim>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").finish_non_exhaustive()
    }
}

fn connect(spec: &SiteSpec) -> Result<Arc<dyn Vim>, vim_adapters::VimError> {
    match &spec.vim {
        VimConnection::Simulated(SimulatedCluster {
            cpu_millis,
            memory_mib,
            gpus,
            architectures,
            startup_ms,
            offline,
            state_file,
        }) => {
            let total = Capacity {
                cpu_millis: *cpu_millis,
                memory_mib: *memory_mib,
                gpus: *gpus,
                architectures: architectures.clone(),
                labels: spec.labels.clone(),
            };
            let startup = Duration::from_millis(*startup_ms);
            let vim = match state_file {
                Some(path) => SimulatedVim::with_state_file(total, startup, path.clone())?,
                None => SimulatedVim::new(total, startup),
            };
            vim.set_offline(*offline);
            Ok(Arc::new(vim))
        }
        VimConnection::Kubernetes(cluster) => Ok(Arc::new(KubeVim::new(cluster.clone()))),
    }
}

fn validate(spec: &SiteSpec) -> Result<(), InventoryError> {
    let id_ok = !spec.id.is_empty()
        && spec.id.len() <= 63
        && spec
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !id_ok {
        return Err(InventoryError::Invalid(
            "site id: 1 to 63 letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let names = check_text("name", &spec.name, MAX_NAME)
        .or_else(|e| if spec.name.is_empty() { Ok(()) } else { Err(e) })
        .and_then(|()| check_text("zone", &spec.zone, MAX_NAME))
        .and_then(|()| {
            spec.services
                .iter()
                .chain(&spec.tracking_areas)
                .chain(spec.labels.keys())
                .chain(spec.labels.values())
                .try_for_each(|v| check_text("services, trackingAreas and labels", v, MAX_NAME))
        });
    names.map_err(InventoryError::Invalid)?;
    if spec.services.len() + spec.tracking_areas.len() + spec.labels.len() > 1024 {
        return Err(InventoryError::Invalid(
            "at most 1024 services, tracking areas and labels".into(),
        ));
    }
    if let Some(cc) = &spec.country_code {
        api_specs::location::check_country_code(cc).map_err(InventoryError::Invalid)?;
    }
    api_specs::location::check_civic_address("civicAddress", &spec.civic_address)
        .map_err(InventoryError::Invalid)?;
    if let Some(r) = &spec.image_registry
        && !crate::images::registry_prefix(r)
    {
        return Err(InventoryError::Invalid(
            "imageRegistry: host[:port][/prefix], the host with a '.' or ':' (or localhost)".into(),
        ));
    }
    if !(-90.0..=90.0).contains(&spec.location.latitude)
        || !(-180.0..=180.0).contains(&spec.location.longitude)
    {
        return Err(InventoryError::Invalid("location out of range".into()));
    }
    if !spec.access_latency_ms.is_finite() || spec.access_latency_ms < 0.0 {
        return Err(InventoryError::Invalid(
            "accessLatencyMs shall be a non-negative number".into(),
        ));
    }
    Ok(())
}

impl Inventory {
    /// Loads the stored sites and upserts the configured ones.
    pub async fn load(store: Store, configured: &[SiteSpec]) -> Result<Self, InventoryError> {
        let inventory = Self {
            store,
            vims: RwLock::new(BTreeMap::new()),
        };
        let mut state_files = std::collections::BTreeSet::new();
        for spec in configured {
            if let VimConnection::Simulated(SimulatedCluster {
                state_file: Some(file),
                ..
            }) = &spec.vim
                && !state_files.insert(file.clone())
            {
                return Err(InventoryError::Invalid(format!(
                    "site {}: state file {} belongs to another site",
                    spec.id,
                    file.display()
                )));
            }
            inventory
                .put(spec.clone(), SiteOrigin::Configuration)
                .await?;
        }
        for row in inventory.store.site_list().await? {
            if let Ok(spec) = serde_json::from_str::<SiteSpec>(&row.spec) {
                inventory.attach(&spec);
            }
        }
        Ok(inventory)
    }

    /// Connects to a site's VIM unless connected with the same description already.
    fn attach(&self, spec: &SiteSpec) {
        let current = self.vims.read().ok().and_then(|v| v.get(&spec.id).cloned());
        if current.is_some_and(|a| a.connection == spec.vim) {
            return;
        }
        match connect(spec) {
            Ok(vim) => {
                if let Ok(mut vims) = self.vims.write() {
                    vims.insert(
                        spec.id.clone(),
                        Attached {
                            connection: spec.vim.clone(),
                            vim,
                        },
                    );
                }
            }
            Err(e) => {
                tracing::error!(site = %spec.id, error = %e, "cannot connect to the site's VIM")
            }
        }
    }

    /// The VIM of a site.
    pub fn vim(&self, site: &str) -> Option<Arc<dyn Vim>> {
        self.vims
            .read()
            .ok()
            .and_then(|v| v.get(site).map(|a| a.vim.clone()))
    }

    /// Creates or replaces a site; returns whether it is new. A site from the API names no
    /// file of the server: a kubeconfig comes as content (with inline credentials) and a
    /// simulated site's state file only from the configuration; what the API leaves out of a
    /// replaced site's VIM connection (the credentials it never shows) is kept. The VIM
    /// connection is set up before anything is stored.
    pub async fn put(
        &self,
        mut spec: SiteSpec,
        origin: SiteOrigin,
    ) -> Result<bool, InventoryError> {
        validate(&spec)?;
        let existing = self.store.site_get(&spec.id).await?;
        let previous = existing
            .as_ref()
            .map(|r| {
                serde_json::from_str::<SiteSpec>(&r.spec).map_err(|e| {
                    InventoryError::Invalid(format!("stored site {} is unreadable: {e}", spec.id))
                })
            })
            .transpose()?;
        if origin == SiteOrigin::Api {
            keep_server_paths(&mut spec.vim, previous.as_ref().map(|p| &p.vim))?;
        }
        if let VimConnection::Kubernetes(cluster) = &spec.vim {
            // each site's workloads are reconciled with its instances: two sites in one
            // namespace would remove each other's
            for row in self.store.site_list().await? {
                let other = serde_json::from_str::<SiteSpec>(&row.spec).ok();
                if row.id != spec.id
                    && let Some(VimConnection::Kubernetes(theirs)) = other.map(|o| o.vim)
                    && theirs.kubeconfig == cluster.kubeconfig
                    && theirs.kubeconfig_content == cluster.kubeconfig_content
                    && theirs.context == cluster.context
                    && theirs.namespace == cluster.namespace
                {
                    return Err(InventoryError::Invalid(format!(
                        "site {} already uses this cluster namespace",
                        row.id
                    )));
                }
            }
        }
        let changed_vim = previous.as_ref().is_some_and(|old| old.vim != spec.vim);
        let fresh = match self.vim(&spec.id) {
            Some(vim) if !changed_vim => vim,
            _ => connect(&spec).map_err(|e| {
                InventoryError::Invalid(format!("the site's VIM connection cannot be set up: {e}"))
            })?,
        };
        let row = SiteRow {
            id: spec.id.clone(),
            spec: serde_json::to_string(&spec).unwrap_or_default(),
            healthy: existing.as_ref().is_some_and(|r| r.healthy),
            free_capacity: existing.as_ref().and_then(|r| r.free_capacity.clone()),
            last_error: existing.as_ref().and_then(|r| r.last_error.clone()),
            refreshed_at: existing.as_ref().map_or(0, |r| r.refreshed_at),
        };
        self.store.site_upsert(&row).await?;
        if let Ok(mut vims) = self.vims.write() {
            vims.insert(
                spec.id.clone(),
                Attached {
                    connection: spec.vim.clone(),
                    vim: fresh,
                },
            );
        }
        self.refresh_one(&spec.id).await?;
        Ok(existing.is_none())
    }

    /// Removes a site that hosts no application instance; with `force`, also one that does
    /// (none with an operation in flight): its instances become NOT_INSTANTIATED and their
    /// workloads wait in [`Inventory::cleanups`] until the site's reconciliation removes them.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), InventoryError> {
        match self.store.site_delete(id, force).await? {
            SiteDeletion::Deleted => {}
            SiteDeletion::NotFound => return Err(InventoryError::NotFound(id.to_owned())),
            SiteDeletion::Hosting(instances) => {
                return Err(InventoryError::InUse(format!(
                    "site {id} hosts application instances ({}): terminate them first, or delete \
                     the site with force=true to leave them NOT_INSTANTIATED",
                    instances.join(", ")
                )));
            }
            SiteDeletion::Busy(instances) => {
                return Err(InventoryError::InUse(format!(
                    "application instances on site {id} have operations in progress or in \
                     FAILED_TEMP ({}): let them end, or retry or fail them first",
                    instances.join(", ")
                )));
            }
        }
        if force {
            tracing::warn!(site = %id, "site deleted by force: its instances are NOT_INSTANTIATED, their workloads wait for clean-up");
        }
        if let Ok(mut vims) = self.vims.write() {
            vims.remove(id);
        }
        Ok(())
    }

    /// Workloads left on sites deleted by force, waiting for a site of that id to answer again.
    pub async fn cleanups(&self) -> Result<Vec<SiteCleanup>, InventoryError> {
        Ok(self
            .store
            .site_cleanups()
            .await?
            .into_iter()
            .map(|r| SiteCleanup {
                site_id: r.site_id,
                app_instance_id: r.app_instance_id,
                workload_name: r.workload,
                recorded_at: r.recorded_at,
            })
            .collect())
    }

    /// A stored site as clients see it: without the server's files or the credentials.
    fn info(row: &SiteRow) -> Option<SiteInfo> {
        let mut spec: SiteSpec = serde_json::from_str(&row.spec).ok()?;
        match &mut spec.vim {
            VimConnection::Simulated(SimulatedCluster { state_file, .. }) => *state_file = None,
            VimConnection::Kubernetes(cluster) => {
                cluster.kubeconfig = None;
                cluster.kubeconfig_content = None;
            }
        }
        Some(SiteInfo {
            spec,
            healthy: row.healthy,
            free_capacity: row
                .free_capacity
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok()),
            last_error: row.last_error.clone(),
            refreshed_at: row.refreshed_at,
        })
    }

    /// Every site.
    pub async fn list(&self) -> Result<Vec<SiteInfo>, InventoryError> {
        Ok(self
            .store
            .site_list()
            .await?
            .iter()
            .filter_map(Self::info)
            .collect())
    }

    /// One site.
    pub async fn get(&self, id: &str) -> Result<SiteInfo, InventoryError> {
        self.store
            .site_get(id)
            .await?
            .as_ref()
            .and_then(Self::info)
            .ok_or_else(|| InventoryError::NotFound(id.to_owned()))
    }

    /// The MEP URL of a site.
    pub async fn mep_url(&self, site: &str) -> Result<Option<String>, InventoryError> {
        Ok(self
            .get(site)
            .await?
            .spec
            .mep_url
            .map(|u| u.trim_end_matches('/').to_owned()))
    }

    /// Refreshes one site's free capacity and health from its VIM (after a change there).
    pub async fn refresh_one(&self, id: &str) -> Result<(), InventoryError> {
        let Some(vim) = self.vim(id) else {
            return Err(InventoryError::NotFound(id.to_owned()));
        };
        let now = server_kit::unix_millis_now();
        let healthy = vim.capacity().await;
        match healthy {
            Ok(free) => {
                self.store
                    .site_observed(
                        id,
                        true,
                        Some(&serde_json::to_string(&free).unwrap_or_default()),
                        None,
                        now,
                    )
                    .await?
            }
            Err(e) => {
                tracing::warn!(site = %id, error = %e, "site refresh failed");
                self.store
                    .site_observed(id, false, None, Some(&e.to_string()), now)
                    .await?
            }
        }
        Ok(())
    }

    /// Sites unhealthy since `before` (Unix ms) or earlier, as the store records it (the same
    /// for every replica and across restarts).
    pub async fn unhealthy_since_before(&self, before: i64) -> Result<Vec<String>, InventoryError> {
        Ok(self.store.sites_unhealthy_since(before).await?)
    }

    /// Refreshes free capacity and health of every site from its VIM.
    /// Sites added, changed or deleted through another replica sharing the store are taken up
    /// here first.
    pub async fn refresh(&self) -> Result<(), InventoryError> {
        let rows = self.store.site_list().await?;
        let stored: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        if let Ok(mut vims) = self.vims.write() {
            vims.retain(|id, _| stored.contains(id.as_str()));
        }
        for row in &rows {
            match serde_json::from_str::<SiteSpec>(&row.spec) {
                Ok(spec) => self.attach(&spec),
                Err(e) => tracing::error!(site = %row.id, error = %e, "stored site unreadable"),
            }
        }
        let ids: Vec<String> = self
            .vims
            .read()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            self.refresh_one(&id).await?;
        }
        Ok(())
    }

    /// The placement view of every site, with the applications instantiated on each.
    pub async fn views(&self) -> Result<Vec<SiteView>, InventoryError> {
        let mut apps: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for (site, app_d_id, count) in self.store.instantiated_by_site().await? {
            apps.entry(site)
                .or_default()
                .insert(app_d_id, usize::try_from(count).unwrap_or(0));
        }
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|s| {
                let total = match &s.spec.vim {
                    VimConnection::Simulated(SimulatedCluster {
                        cpu_millis,
                        memory_mib,
                        gpus,
                        architectures,
                        ..
                    }) => Capacity {
                        cpu_millis: *cpu_millis,
                        memory_mib: *memory_mib,
                        gpus: *gpus,
                        architectures: architectures.clone(),
                        labels: s.spec.labels.clone(),
                    },
                    // A cluster reports what is free; headroom is relative to that.
                    VimConnection::Kubernetes(_) => s.free_capacity.clone().unwrap_or_default(),
                };
                SiteView {
                    healthy: s.healthy,
                    in_service: s.spec.in_service,
                    location: s.spec.location,
                    country_code: s.spec.country_code.clone(),
                    civic_address: s.spec.civic_address.clone(),
                    zone: s.spec.zone.clone(),
                    access_latency_ms: s.spec.access_latency_ms,
                    free: s.free_capacity.clone().unwrap_or_default(),
                    total,
                    services: s.spec.services.clone(),
                    app_instances: apps.remove(&s.spec.id).unwrap_or_default(),
                    id: s.spec.id.into(),
                }
            })
            .collect())
    }

    /// Where an application with this AppD would be placed now.
    pub async fn place_appd(
        &self,
        appd: &AppD,
        query: &PlacementQuery,
    ) -> Result<PlacementDecision, InventoryError> {
        let request = request_for(appd, query);
        Ok(place(&request, &self.views().await?))
    }
}

/// The resources and constraints an AppD asks for: container requests (or the compute
/// descriptor), GPUs, architecture, required services and latency.
pub fn request_for(appd: &AppD, query: &PlacementQuery) -> PlacementRequest {
    let (mut cpu, mut mem) = appd
        .os_container_descriptor
        .iter()
        .fold((0u64, 0u64), |(c, m), d| {
            (
                c + u64::from(d.requested_cpu_resources.unwrap_or(0)),
                m + d.requested_memory_resources.unwrap_or(0.0).max(0.0) as u64,
            )
        });
    let compute = appd.virtual_compute_descriptor.as_ref();
    if cpu == 0 {
        cpu = compute.map_or(0, |c| u64::from(c.virtual_cpu.num_virtual_cpu) * 1000);
    }
    if mem == 0 {
        mem = compute.map_or(0, |c| c.virtual_memory.virtual_mem_size.max(0.0) as u64);
    }
    let gpus = compute
        .map(|c| {
            c.request_additional_capabilities
                .iter()
                .filter(|r| {
                    r.support_mandatory && r.requested_additional_capability_name.contains("gpu")
                })
                .map(|r| {
                    r.target_performance_parameters
                        .get("count")
                        .and_then(|v| v.as_str()?.parse().ok())
                        .unwrap_or(1)
                })
                .sum()
        })
        .unwrap_or(0);
    PlacementRequest {
        app_d_id: appd.app_d_id.clone(),
        cpu_millis: cpu,
        memory_mib: mem,
        gpus,
        architecture: compute.and_then(|c| c.virtual_cpu.cpu_architecture.clone()),
        required_services: appd
            .app_service_required
            .iter()
            .map(|s| s.ser_name.clone())
            .collect(),
        max_latency_ms: appd.app_latency.as_ref().map(|l| l.max_latency),
        user_location: query.user_location.or_else(|| {
            query
                .location_constraints
                .as_ref()
                .and_then(LocationConstraints::users)
        }),
        location: query.location_constraints.clone(),
        zones: query.zones.clone(),
        candidate_sites: query.candidate_sites.clone(),
        affinity: query.affinity.clone(),
        anti_affinity: query.anti_affinity.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_connections_parse() {
        let spec: SiteSpec = serde_json::from_value(serde_json::json!({
            "id": "berlin-1",
            "location": {"latitude": 52.5, "longitude": 13.4},
            "zone": "de",
            "vim": {"kind": "kubernetes", "kubeconfig": "/etc/mec/berlin.kubeconfig", "flavour": "k3s"},
        }))
        .unwrap();
        let VimConnection::Kubernetes(c) = &spec.vim else {
            panic!("{:?}", spec.vim)
        };
        assert_eq!(c.namespace, "mec-apps");
        assert_eq!(c.flavour, Some(vim_adapters::kubernetes::Flavour::K3s));
        let typo = serde_json::json!({"kind": "kubernetes", "kubeconfig": "/k", "namspace": "x"});
        assert!(serde_json::from_value::<VimConnection>(typo).is_err());
    }
}
