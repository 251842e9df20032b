//! The desired configuration of each application instance at its site's MEP, numbered by
//! version, and the MEP's acknowledgements and status reports (see `crate::mep_link`).

use sqlx::Row;

use super::{Store, StoreError};

/// One instance's desired configuration at one site's MEP.
#[derive(Debug, Clone, PartialEq)]
pub struct MepConfigRow {
    /// The site.
    pub site_id: String,
    /// The instance.
    pub app_instance_id: String,
    /// Grows with every change of `config` or `graceful_timeout`.
    pub version: i64,
    /// The AppInstanceConfig JSON; `None` asks for the instance's removal.
    pub config: Option<String>,
    /// Seconds the application gets to confirm a removal.
    pub graceful_timeout: i64,
    /// The newest version the MEP acknowledged.
    pub acked_version: i64,
    /// The newest version the MEP refused, and why.
    pub refused_version: i64,
    /// The MEP's reason for refusing `refused_version`.
    pub error: Option<String>,
    /// The status the MEP last reported (JSON).
    pub status: Option<String>,
    /// When it reported it (Unix ms).
    pub status_at: Option<i64>,
    /// Trace context (JSON) of the step that desired `version`, sent with every resend.
    pub trace_context: Option<String>,
}

/// What a site's MEP reported of one instance it is configured with.
#[derive(Debug, Clone, PartialEq)]
pub enum MepReport {
    /// It holds `version` of the instance's configuration.
    Acked {
        /// The instance.
        app_instance_id: String,
        /// The version it holds.
        version: i64,
    },
    /// It refused `version`, for `error`.
    Refused {
        /// The instance.
        app_instance_id: String,
        /// The version refused.
        version: i64,
        /// The MEP's reason.
        error: String,
    },
    /// The instance's status there (JSON), reported at `at` (Unix ms).
    Status {
        /// The instance.
        app_instance_id: String,
        /// The MepInstanceStatus JSON.
        status: String,
        /// When (Unix ms).
        at: i64,
    },
}

const COLUMNS: &str = "site_id, app_instance_id, version, config, graceful_timeout, \
    acked_version, refused_version, error, status, status_at, trace_context";

fn row(r: &sqlx::any::AnyRow) -> Result<MepConfigRow, sqlx::Error> {
    Ok(MepConfigRow {
        site_id: r.try_get(0)?,
        app_instance_id: r.try_get(1)?,
        version: r.try_get(2)?,
        config: r.try_get(3)?,
        graceful_timeout: r.try_get(4)?,
        acked_version: r.try_get(5)?,
        refused_version: r.try_get(6)?,
        error: r.try_get(7)?,
        status: r.try_get(8)?,
        status_at: r.try_get(9)?,
        trace_context: r.try_get(10)?,
    })
}

/// `sql` with `$1` the site and `$2` the instance bound.
fn of_instance<'q>(
    sql: &'q str,
    site_id: &'q str,
    app_instance_id: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql).bind(site_id).bind(app_instance_id)
}

impl Store {
    /// Records the desired configuration (`None`: removal) of an instance at a site; returns the
    /// row, with a new version only when the configuration changed (a repeat is not a change).
    /// A new version is above any the MEP acknowledged, even one from a restored backup; it
    /// keeps `trace_context`, the desiring step's.
    pub async fn mep_config_desire(
        &self,
        site_id: &str,
        app_instance_id: &str,
        config: Option<&str>,
        graceful_timeout: i64,
        trace_context: Option<&str>,
        now: i64,
    ) -> Result<MepConfigRow, StoreError> {
        let sql = format!(
            "INSERT INTO mep_configs (site_id, app_instance_id, version, config, graceful_timeout, updated_at, trace_context) \
             VALUES ($1, $2, 1, $3, $4, $5, $6) ON CONFLICT (site_id, app_instance_id) DO UPDATE SET \
             version = CASE WHEN mep_configs.acked_version > mep_configs.version \
             THEN mep_configs.acked_version ELSE mep_configs.version END + 1, config = excluded.config, \
             graceful_timeout = excluded.graceful_timeout, updated_at = excluded.updated_at, \
             trace_context = excluded.trace_context \
             WHERE mep_configs.config IS DISTINCT FROM excluded.config \
             OR mep_configs.graceful_timeout <> excluded.graceful_timeout \
             RETURNING {COLUMNS}"
        );
        let bumped = sqlx::query(&sql)
            .bind(site_id)
            .bind(app_instance_id)
            .bind(config)
            .bind(graceful_timeout)
            .bind(now)
            .bind(trace_context)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(r) = bumped {
            return Ok(row(&r)?);
        }
        let current = self.mep_config_get(site_id, app_instance_id).await?;
        current.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// One instance's desired configuration at a site.
    pub async fn mep_config_get(
        &self,
        site_id: &str,
        app_instance_id: &str,
    ) -> Result<Option<MepConfigRow>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM mep_configs WHERE site_id = $1 AND app_instance_id = $2"
        );
        let r = sqlx::query(&sql)
            .bind(site_id)
            .bind(app_instance_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.as_ref().map(row).transpose()?)
    }

    /// Every instance's desired configuration at a site; only those the MEP neither acknowledged
    /// nor refused when `pending`.
    pub async fn mep_config_list(
        &self,
        site_id: &str,
        pending: bool,
    ) -> Result<Vec<MepConfigRow>, StoreError> {
        let filter = if pending {
            " AND acked_version < version AND refused_version < version"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM mep_configs WHERE site_id = $1{filter} ORDER BY app_instance_id"
        );
        let rows = sqlx::query(&sql)
            .bind(site_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// Records what a site's MEP reported, in order and in one transaction: a stream's ACKs
    /// and status reports arrive in bursts (one per instance the MEP applied), which one commit
    /// each made the site's stream a queue.
    pub async fn mep_config_report(
        &self,
        site_id: &str,
        reports: &[MepReport],
    ) -> Result<(), StoreError> {
        if reports.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for report in reports {
            let query = match report {
                // When the acknowledged version is the desired removal, the instance is gone
                // from the MEP, and so is the status it reported: the MEP reports ABSENT only
                // on the stream it removed the instance on, which a cut can lose, and a new
                // stream reports only the instances the MEP holds.
                MepReport::Acked {
                    app_instance_id,
                    version,
                } => of_instance(
                    "UPDATE mep_configs SET acked_version = $3, \
                     status = CASE WHEN config IS NULL AND version <= $3 THEN NULL ELSE status END, \
                     status_at = CASE WHEN config IS NULL AND version <= $3 THEN NULL ELSE status_at END \
                     WHERE site_id = $1 AND app_instance_id = $2 AND acked_version < $3",
                    site_id,
                    app_instance_id,
                )
                .bind(version),
                MepReport::Refused {
                    app_instance_id,
                    version,
                    error,
                } => of_instance(
                    "UPDATE mep_configs SET refused_version = $3, error = $4 \
                     WHERE site_id = $1 AND app_instance_id = $2 AND refused_version < $3",
                    site_id,
                    app_instance_id,
                )
                .bind(version)
                .bind(error),
                MepReport::Status {
                    app_instance_id,
                    status,
                    at,
                } => of_instance(
                    "UPDATE mep_configs SET status = $3, status_at = $4 \
                     WHERE site_id = $1 AND app_instance_id = $2",
                    site_id,
                    app_instance_id,
                )
                .bind(status)
                .bind(at),
            };
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
