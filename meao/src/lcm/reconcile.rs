//! Continuous reconciliation: what runs on each site's VIM is brought back to what the store
//! says runs there. An instance's workload deleted by hand is recreated, one scaled by hand is
//! scaled back (every workload is re-applied, so fields changed by hand return too), and a
//! workload this platform owns but no instance should have there (the old site's copy after a
//! failover, once that site answers again; one whose instance is gone) is removed. Instances
//! with an operation in flight belong to their saga and are left alone. One replica at a time
//! reconciles a site (a lease in the store). Workloads a forced deletion of the site left
//! behind are among those removed; their clean-up records go once they are gone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use server_kit::admin::Metrics;
use vim_adapters::workload_name;

use super::sagas::{LcmCtx, deploy_at};
use crate::store::{InstanceRow, StoreError};

/// What one pass repaired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repairs {
    /// Workloads recreated (they were gone).
    pub recreated: usize,
    /// Workloads scaled back to their instance's operational state.
    pub rescaled: usize,
    /// Workloads removed (no instance should run there).
    pub removed: usize,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RepairLabels {
    repair: &'static str,
}

/// Reconciles the sites' workloads with the store.
pub struct Reconciler {
    ctx: Arc<LcmCtx>,
    owner: String,
    lease: Duration,
    repairs: Family<RepairLabels, Counter>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    pub(super) fn new(ctx: Arc<LcmCtx>, owner: String, lease: Duration, metrics: &Metrics) -> Self {
        Self {
            ctx,
            owner,
            lease,
            repairs: metrics.registered(
                "reconcile_repairs",
                "Workloads the reconciliation repaired, by repair (recreated, rescaled, removed)",
            ),
        }
    }

    /// One pass over every healthy site whose lease this replica takes.
    pub async fn run_once(&self) -> Result<Repairs, StoreError> {
        let store = &self.ctx.store;
        let busy = store.instances_in_flight().await?;
        let instances = store.instance_list().await?;
        let mut total = Repairs::default();
        for site in store.site_list().await?.into_iter().filter(|s| s.healthy) {
            let until = server_kit::unix_millis_now()
                + i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
            if !store
                .lease_acquire(&format!("reconcile/{}", site.id), &self.owner, until)
                .await?
            {
                continue;
            }
            let Some(vim) = self.ctx.inventory.vim(&site.id) else {
                continue;
            };
            let owned = match vim.list_owned().await {
                Ok(owned) => owned,
                Err(e) => {
                    tracing::warn!(site = %site.id, error = %e, "reconciliation: workloads not listed");
                    continue;
                }
            };
            let mut repairs = Repairs::default();
            let keep = Self::kept(&busy, &instances, &site.id);
            for instance in placed(&instances, &site.id) {
                let name = workload_name(&instance.id);
                if busy.contains(&instance.id) {
                    continue;
                }
                let expected = u32::from(instance.operational_state.as_deref() == Some("STARTED"));
                let repair = match vim.status(&name).await {
                    Ok(None) => Some("recreated"),
                    Ok(Some(status)) if status.desired_replicas != expected => Some("rescaled"),
                    Ok(Some(_)) => None,
                    Err(e) => {
                        tracing::warn!(site = %site.id, instance = %instance.id, error = %e, "reconciliation: status unknown");
                        continue;
                    }
                };
                // an operation may have started since the pass read the store: it owns the
                // workload now (what it leaves, the next pass looks at)
                if store.instance_in_flight(&instance.id).await? {
                    continue;
                }
                let credential = store.credential_get(&instance.id, &site.id).await?;
                let applied = deploy_at(
                    &self.ctx,
                    &instance.id,
                    &instance.app_d_id,
                    &site.id,
                    credential.as_ref(),
                    expected,
                )
                .await;
                match (applied, repair) {
                    (Err(e), _) => {
                        tracing::warn!(site = %site.id, instance = %instance.id, error = %e, "reconciliation: workload not applied");
                    }
                    (Ok(_), Some(repair)) => {
                        tracing::warn!(site = %site.id, instance = %instance.id, %repair, "workload drifted from its instance: repaired");
                        self.count(repair);
                        if repair == "recreated" {
                            repairs.recreated += 1;
                        } else {
                            repairs.rescaled += 1;
                        }
                    }
                    (Ok(_), None) => {}
                }
            }
            let mut strays: Vec<&String> = owned.iter().filter(|n| !keep.contains(*n)).collect();
            if !strays.is_empty() {
                // the workloads were listed after the pass read the store: one an operation
                // applied since (its instance in flight or instantiated here by now) is not
                // a stray, which the store as it is after the listing tells
                let kept = Self::kept(
                    &store.instances_in_flight().await?,
                    &store.instance_list().await?,
                    &site.id,
                );
                strays.retain(|n| !kept.contains(*n));
            }
            let mut remaining: BTreeSet<String> = owned.iter().cloned().collect();
            for name in strays {
                match vim.delete(name).await {
                    Ok(()) => {
                        remaining.remove(name);
                        tracing::warn!(site = %site.id, workload = %name, "workload no instance runs at this site: removed");
                        self.count("removed");
                        repairs.removed += 1;
                    }
                    Err(e) => {
                        tracing::warn!(site = %site.id, workload = %name, error = %e, "reconciliation: stray workload not removed");
                    }
                }
            }
            // what a forced deletion of an earlier site of this id left here is gone now
            let cleaned = store.site_cleanups_done(&site.id, &remaining).await?;
            if cleaned > 0 {
                tracing::info!(site = %site.id, cleaned, "workloads left by the site's forced deletion are gone");
            }
            if repairs != Repairs::default()
                && let Err(e) = self.ctx.inventory.refresh_one(&site.id).await
            {
                tracing::warn!(site = %site.id, error = %e, "capacity refresh after repairs failed");
            }
            total.recreated += repairs.recreated;
            total.rescaled += repairs.rescaled;
            total.removed += repairs.removed;
        }
        Ok(total)
    }

    /// The workload names no pass may remove from `site`: its instances', and any being
    /// operated on.
    fn kept(busy: &BTreeSet<String>, instances: &[InstanceRow], site: &str) -> BTreeSet<String> {
        busy.iter()
            .map(|i| workload_name(i))
            .chain(placed(instances, site).map(|i| workload_name(&i.id)))
            .collect()
    }

    fn count(&self, repair: &'static str) {
        self.repairs.get_or_create(&RepairLabels { repair }).inc();
    }
}

/// The instances instantiated at `site`.
fn placed<'a>(
    instances: &'a [InstanceRow],
    site: &'a str,
) -> impl Iterator<Item = &'a InstanceRow> {
    instances
        .iter()
        .filter(|i| i.instantiation_state == "INSTANTIATED")
        .filter(move |i| i.site_id.as_deref() == Some(site))
}
