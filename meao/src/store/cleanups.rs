//! Workloads left behind on a site deleted by force (see [`Store::site_delete`]): recorded
//! with the deletion, removed by the reconciliation of a site of that id once it answers again.

use std::collections::BTreeSet;

use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError};

/// A workload left on a deleted site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteCleanupRow {
    /// The deleted site.
    pub site_id: String,
    /// The instance whose workload it is.
    pub app_instance_id: String,
    /// The workload's name at the site.
    pub workload: String,
    /// When the site was deleted (Unix ms).
    pub recorded_at: i64,
}

impl Store {
    /// Releases every instance of `site` (in a deletion's transaction): instantiated ones get
    /// their workload recorded for clean-up, all become NOT_INSTANTIATED, and their credentials
    /// and MEP configurations at the site go. The instances released.
    pub(super) async fn site_release_instances(
        &self,
        tx: &mut Transaction<'_, Any>,
        site: &str,
        now: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let hosted = sqlx::query(
            "SELECT id, instantiation_state FROM app_instances WHERE site_id = $1 ORDER BY id",
        )
        .bind(site)
        .fetch_all(&mut **tx)
        .await?;
        let mut released = Vec::with_capacity(hosted.len());
        for row in &hosted {
            let id: String = row.try_get(0)?;
            let state: String = row.try_get(1)?;
            if state == "INSTANTIATED" {
                sqlx::query(
                    "INSERT INTO site_cleanups (site_id, app_instance_id, workload, recorded_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (site_id, workload) DO NOTHING",
                )
                .bind(site)
                .bind(&id)
                .bind(vim_adapters::workload_name(&id))
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            released.push(id);
        }
        sqlx::query(
            "UPDATE app_instances SET instantiation_state = 'NOT_INSTANTIATED', \
             operational_state = NULL, site_id = NULL WHERE site_id = $1",
        )
        .bind(site)
        .execute(&mut **tx)
        .await?;
        for table in ["app_credentials", "mep_configs"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE site_id = $1"))
                .bind(site)
                .execute(&mut **tx)
                .await?;
        }
        Ok(released)
    }

    /// Every workload waiting for clean-up, by site.
    pub async fn site_cleanups(&self) -> Result<Vec<SiteCleanupRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT site_id, app_instance_id, workload, recorded_at FROM site_cleanups \
             ORDER BY site_id, workload",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SiteCleanupRow {
                    site_id: r.try_get(0)?,
                    app_instance_id: r.try_get(1)?,
                    workload: r.try_get(2)?,
                    recorded_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Forgets the clean-ups of `site` whose workload is no longer among `remaining` (what the
    /// site's VIM still runs of ours); how many.
    pub async fn site_cleanups_done(
        &self,
        site: &str,
        remaining: &BTreeSet<String>,
    ) -> Result<usize, StoreError> {
        let recorded = sqlx::query("SELECT workload FROM site_cleanups WHERE site_id = $1")
            .bind(site)
            .fetch_all(&self.pool)
            .await?;
        let mut done = 0;
        for row in &recorded {
            let workload: String = row.try_get(0)?;
            if remaining.contains(&workload) {
                continue;
            }
            let deleted =
                sqlx::query("DELETE FROM site_cleanups WHERE site_id = $1 AND workload = $2")
                    .bind(site)
                    .bind(&workload)
                    .execute(&self.pool)
                    .await?;
            done += usize::try_from(deleted.rows_affected()).unwrap_or(0);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SiteDeletion;

    async fn store(dir: &std::path::Path) -> Store {
        Store::connect(&format!("sqlite://{}/meao.db?mode=rwc", dir.display()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_forced_deletion_releases_the_instances_and_records_their_workloads() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let now = server_kit::unix_millis_now();
        for site in ["s1", "s2"] {
            sqlx::query(
                "INSERT INTO sites (id, spec, healthy, refreshed_at) VALUES ($1, '{}', 1, $2)",
            )
            .bind(site)
            .bind(now)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        for (id, state, site) in [
            ("i1", "INSTANTIATED", "s1"),
            ("i2", "NOT_INSTANTIATED", "s1"),
            ("i3", "INSTANTIATED", "s2"),
        ] {
            sqlx::query(
                "INSERT INTO app_instances (id, app_pkg_id, app_d_id, body, instantiation_state, \
                 operational_state, site_id, created_at) VALUES ($1, 'p', 'd', '{}', $2, 'STARTED', $3, $4)",
            )
            .bind(id)
            .bind(state)
            .bind(site)
            .bind(now)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        assert_eq!(
            store.site_delete("s1", false).await.unwrap(),
            SiteDeletion::Hosting(vec!["i1".into(), "i2".into()])
        );
        assert_eq!(
            store.site_delete("s1", true).await.unwrap(),
            SiteDeletion::Deleted
        );
        let cleanups = store.site_cleanups().await.unwrap();
        assert_eq!(cleanups.len(), 1, "only the instantiated one ran there");
        assert_eq!(
            (
                cleanups[0].app_instance_id.as_str(),
                cleanups[0].workload.as_str()
            ),
            ("i1", vim_adapters::workload_name("i1").as_str())
        );
        let i1 = store.instance_get("i1").await.unwrap().unwrap();
        assert_eq!(
            (i1.instantiation_state.as_str(), i1.site_id),
            ("NOT_INSTANTIATED", None)
        );
        let i3 = store.instance_get("i3").await.unwrap().unwrap();
        assert_eq!(i3.site_id.as_deref(), Some("s2"), "other sites untouched");
        // an operation in flight on one of its instances blocks even a forced deletion
        sqlx::query(
            "INSERT INTO app_lcm_op_occs (id, app_instance_id, operation, state, params, \
             start_time, state_entered) VALUES ('o1', 'i3', 'OPERATE', 'PROCESSING', '{}', $1, $1)",
        )
        .bind(now)
        .execute(&store.pool)
        .await
        .unwrap();
        assert_eq!(
            store.site_delete("s2", true).await.unwrap(),
            SiteDeletion::Busy(vec!["i3".into()])
        );

        // the workload still runs there: kept; gone: forgotten
        let running = BTreeSet::from([vim_adapters::workload_name("i1")]);
        assert_eq!(store.site_cleanups_done("s1", &running).await.unwrap(), 0);
        assert_eq!(
            store
                .site_cleanups_done("s1", &BTreeSet::new())
                .await
                .unwrap(),
            1
        );
        assert!(store.site_cleanups().await.unwrap().is_empty());
    }
}
