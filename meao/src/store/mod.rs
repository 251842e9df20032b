//! Persistence of the MEAO: packages, package subscriptions, sites, application instances,
//! LCM operation occurrences, sagas and the notification outbox, over
//! SQLite (embedded default) or PostgreSQL with one schema. State transitions are
//! compare-and-set updates, so two requests (or two replicas) cannot both win one.

use std::collections::BTreeSet;

use server_kit::db::DbError;
use server_kit::notify::{NotificationRow, SqlOutbox};
use sqlx::{AnyPool, Row};

pub use self::cleanups::SiteCleanupRow;
pub use self::credentials::CredentialRow;
pub use self::events::{ACTOR, ActivityRow, EventKind, EventRow};
pub use self::mep_configs::{MepConfigRow, MepReport};
pub use self::sessions::PortalSessionRow;

mod cleanups;
mod credentials;
mod events;
mod mep_configs;
mod sessions;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database")]
    Open(#[from] DbError),
    /// A query failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Another onboarded package has the same AppD id and version.
    #[error("duplicate appDId and appDVersion")]
    Duplicate,
}

/// A stored package.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageRow {
    /// Package id.
    pub id: String,
    /// AppD id, once onboarded.
    pub app_d_id: Option<String>,
    /// AppD version, once onboarded.
    pub app_d_version: Option<String>,
    /// Onboarding state name.
    pub onboarding_state: String,
    /// Operational state name.
    pub operational_state: String,
    /// Usage state name.
    pub usage_state: String,
    /// The CreateAppPkg JSON.
    pub create_request: String,
    /// sha256 of the package content.
    pub content_hash: Option<String>,
    /// Onboarding results JSON.
    pub details: Option<String>,
    /// The AppD JSON.
    pub appd: Option<String>,
    /// The failure ProblemDetails JSON.
    pub failure: Option<String>,
    /// Creation time (Unix ms).
    pub created_at: i64,
}

const COLUMNS: &str = "id, app_d_id, app_d_version, onboarding_state, operational_state, usage_state, \
    create_request, content_hash, details, appd, failure, created_at";

fn package_row(r: &sqlx::any::AnyRow) -> Result<PackageRow, sqlx::Error> {
    Ok(PackageRow {
        id: r.try_get(0)?,
        app_d_id: r.try_get(1)?,
        app_d_version: r.try_get(2)?,
        onboarding_state: r.try_get(3)?,
        operational_state: r.try_get(4)?,
        usage_state: r.try_get(5)?,
        create_request: r.try_get(6)?,
        content_hash: r.try_get(7)?,
        details: r.try_get(8)?,
        appd: r.try_get(9)?,
        failure: r.try_get(10)?,
        created_at: r.try_get(11)?,
    })
}

/// Which subscriptions: package management or LCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscriptions {
    /// `app_pkgm/v1` subscriptions.
    Packages,
    /// `app_lcm/v1` subscriptions.
    Lcm,
}

impl Subscriptions {
    fn name(self) -> &'static str {
        match self {
            Self::Packages => "pkg_subscriptions",
            Self::Lcm => "lcm_subscriptions",
        }
    }
}

/// What the store does with state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Events {
    /// Nothing.
    #[default]
    Off,
    /// Records them in the event outbox for the portal only: nothing publishes them.
    Recorded,
    /// Records them in the event outbox to be published.
    Published,
}

impl Events {
    fn records(self) -> bool {
        self != Self::Off
    }

    fn publishes(self) -> bool {
        self == Self::Published
    }
}

/// The JSON documents the LCM steps keep with an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceDoc {
    /// The descriptors its instantiation put in place of the AppD's.
    Overrides,
    /// Its images pinned by digest: software image descriptor id to reference.
    PinnedImages,
}

impl InstanceDoc {
    fn column(self) -> &'static str {
        match self {
            Self::Overrides => "instantiation_overrides",
            Self::PinnedImages => "pinned_images",
        }
    }
}

/// The database handle.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    events: Events,
}

/// What deleting a site did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteDeletion {
    /// Deleted.
    Deleted,
    /// No such site.
    NotFound,
    /// Not deleted: these instances (the first ten) are placed on it.
    Hosting(Vec<String>),
    /// Not deleted, even by force: these instances (the first ten) on it have an operation in
    /// progress or waiting in FAILED_TEMP.
    Busy(Vec<String>),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

impl Store {
    /// Records the change of a resource in the transaction that made it: its event and the
    /// subscribers' `notifications`.
    async fn report(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        kind: EventKind,
        id: &str,
        now: i64,
        notifications: &[NotificationRow],
    ) -> Result<(), sqlx::Error> {
        self.emit(tx, kind, id, now).await?;
        for n in notifications {
            SqlOutbox::enqueue(tx, n).await?;
        }
        Ok(())
    }

    /// Connects to `url` and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            pool: server_kit::db::connect(url, &MIGRATOR).await?,
            events: Events::Off,
        })
    }

    /// The same store, recording every state change in the event outbox to be published
    /// (`true`) or not at all.
    pub fn with_events(self, events: bool) -> Self {
        self.with_event_outbox(if events {
            Events::Published
        } else {
            Events::Off
        })
    }

    /// The same store, doing `events` with every state change.
    pub fn with_event_outbox(self, events: Events) -> Self {
        Self { events, ..self }
    }

    /// The notification outbox in this database.
    pub fn outbox(&self) -> SqlOutbox {
        SqlOutbox::new(self.pool.clone())
    }

    /// Inserts a new package.
    pub async fn package_insert(&self, p: &PackageRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO app_packages ({COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)"
        ))
        .bind(&p.id)
        .bind(&p.app_d_id)
        .bind(&p.app_d_version)
        .bind(&p.onboarding_state)
        .bind(&p.operational_state)
        .bind(&p.usage_state)
        .bind(&p.create_request)
        .bind(&p.content_hash)
        .bind(&p.details)
        .bind(&p.appd)
        .bind(&p.failure)
        .bind(p.created_at)
        .execute(&mut *tx)
        .await?;
        self.emit(&mut tx, EventKind::AppPackage, &p.id, p.created_at)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One package by id.
    pub async fn package_get(&self, id: &str) -> Result<Option<PackageRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM app_packages WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(package_row).transpose()?)
    }

    /// The most recently created onboarded package with this AppD id.
    pub async fn package_get_by_appd(
        &self,
        app_d_id: &str,
    ) -> Result<Option<PackageRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM app_packages WHERE app_d_id = $1 ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(app_d_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(package_row).transpose()?)
    }

    /// Every package, oldest first.
    pub async fn package_list(&self) -> Result<Vec<PackageRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM app_packages ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(package_row).collect::<Result<_, _>>()?)
    }

    /// Keeps an onboarding alive: touches a package that is UPLOADING or PROCESSING, so that no
    /// replica takes it for interrupted; false once it is neither.
    pub async fn package_touch(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE app_packages SET updated_at = $1 \
             WHERE id = $2 AND onboarding_state IN ('UPLOADING', 'PROCESSING')",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes over the onboardings nobody kept alive: the packages UPLOADING or PROCESSING last
    /// touched before `before`, each touched at `now` by one caller only (of replicas asking
    /// at once, one takes each); returns those taken.
    pub async fn package_take_stale(
        &self,
        before: i64,
        now: i64,
    ) -> Result<Vec<PackageRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM app_packages \
             WHERE onboarding_state IN ('UPLOADING', 'PROCESSING') AND updated_at < $1 \
             ORDER BY created_at, id"
        ))
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        let mut taken = Vec::new();
        for row in rows.iter().map(package_row) {
            let row = row?;
            let done = sqlx::query(
                "UPDATE app_packages SET updated_at = $1 \
                 WHERE id = $2 AND onboarding_state = $3 AND updated_at < $4",
            )
            .bind(now)
            .bind(&row.id)
            .bind(&row.onboarding_state)
            .bind(before)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                taken.push(row);
            }
        }
        Ok(taken)
    }

    /// Moves a package from one of `from` to `to`; false if it was in no such state. Moving to
    /// UPLOADING starts a new onboarding attempt: the failure details of the last one go.
    pub async fn package_transition(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "UPDATE app_packages SET onboarding_state = $1, updated_at = $2, \
             failure = CASE WHEN $1 = 'UPLOADING' THEN NULL ELSE failure END \
             WHERE id = $3 AND onboarding_state IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(to).bind(now).bind(id);
        for f in from {
            q = q.bind(*f);
        }
        let mut tx = self.pool.begin().await?;
        if q.execute(&mut *tx).await?.rows_affected() != 1 {
            return Ok(false);
        }
        self.emit(&mut tx, EventKind::AppPackage, id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records the uploaded content: UPLOADING to PROCESSING.
    pub async fn package_content_stored(
        &self,
        id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE app_packages SET onboarding_state = 'PROCESSING', content_hash = $1, failure = NULL, updated_at = $2 \
             WHERE id = $3 AND onboarding_state = 'UPLOADING'",
        )
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.emit(&mut tx, EventKind::AppPackage, id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// PROCESSING to ONBOARDED/ENABLED with the results, queuing `notifications` in the same
    /// transaction. Fails with [`StoreError::Duplicate`] when the AppD id and version are taken.
    #[allow(clippy::too_many_arguments)]
    pub async fn package_onboarded(
        &self,
        id: &str,
        app_d_id: &str,
        app_d_version: &str,
        details: &str,
        appd: &str,
        notifications: &[NotificationRow],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE app_packages SET onboarding_state = 'ONBOARDED', operational_state = 'ENABLED', app_d_id = $1, \
             app_d_version = $2, details = $3, appd = $4, failure = NULL, updated_at = $5 \
             WHERE id = $6 AND onboarding_state = 'PROCESSING'",
        )
        .bind(app_d_id)
        .bind(app_d_version)
        .bind(details)
        .bind(appd)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| if is_unique_violation(&e) { StoreError::Duplicate } else { e.into() })?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.report(&mut tx, EventKind::AppPackage, id, now, notifications)
            .await?;
        tx.commit().await.map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Duplicate
            } else {
                e.into()
            }
        })?;
        Ok(true)
    }

    /// Records a failed onboarding: an UPLOADING or PROCESSING package goes back to CREATED with
    /// the problem kept (`onboardingFailureDetails`) and its content dropped; false if it was in
    /// neither state.
    pub async fn package_failed(
        &self,
        id: &str,
        failure: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE app_packages SET onboarding_state = 'CREATED', failure = $1, content_hash = NULL, updated_at = $2 \
             WHERE id = $3 AND onboarding_state IN ('UPLOADING', 'PROCESSING')",
        )
        .bind(failure)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.emit(&mut tx, EventKind::AppPackage, id, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets the operational state of an onboarded package, queuing `notifications`.
    pub async fn package_set_operational(
        &self,
        id: &str,
        state: &str,
        notifications: &[NotificationRow],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE app_packages SET operational_state = $1, updated_at = $2 WHERE id = $3 AND onboarding_state = 'ONBOARDED'",
        )
        .bind(state)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.report(&mut tx, EventKind::AppPackage, id, now, notifications)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a DISABLED, NOT_IN_USE package, queuing `notifications`; false if it is not.
    pub async fn package_delete(
        &self,
        id: &str,
        notifications: &[NotificationRow],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM app_packages WHERE id = $1 AND operational_state = 'DISABLED' AND usage_state = 'NOT_IN_USE' \
             AND onboarding_state IN ('CREATED', 'ONBOARDED')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.report(
            &mut tx,
            EventKind::AppPackage,
            id,
            server_kit::unix_millis_now(),
            notifications,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets the usage state of a package (IN_USE while instances of it exist).
    pub async fn package_set_usage(&self, id: &str, usage: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE app_packages SET usage_state = $1 WHERE id = $2 AND usage_state <> $1",
        )
        .bind(usage)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            self.emit(
                &mut tx,
                EventKind::AppPackage,
                id,
                server_kit::unix_millis_now(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every blob address a package still references (content and extracted files).
    pub async fn referenced_blobs(
        &self,
    ) -> Result<Vec<(Option<String>, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT content_hash, details FROM app_packages")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Inserts a subscription.
    pub async fn subscription_insert(
        &self,
        table: Subscriptions,
        id: &str,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO {} (id, body, created_at) VALUES ($1, $2, $3)",
            table.name()
        ))
        .bind(id)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every subscription body, oldest first.
    pub async fn subscription_list(&self, table: Subscriptions) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT body FROM {} ORDER BY created_at, id",
            table.name()
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// One subscription body.
    pub async fn subscription_get(
        &self,
        table: Subscriptions,
        id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(&format!("SELECT body FROM {} WHERE id = $1", table.name()))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Deletes a subscription; false if there was none.
    pub async fn subscription_delete(
        &self,
        table: Subscriptions,
        id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!("DELETE FROM {} WHERE id = $1", table.name()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A stored site.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteRow {
    /// Site id.
    pub id: String,
    /// The SiteSpec JSON.
    pub spec: String,
    /// Health at the last refresh.
    pub healthy: bool,
    /// Free capacity JSON at the last refresh.
    pub free_capacity: Option<String>,
    /// Error of the last refresh.
    pub last_error: Option<String>,
    /// Last refresh (Unix ms).
    pub refreshed_at: i64,
}

fn site_row(r: &sqlx::any::AnyRow) -> Result<SiteRow, sqlx::Error> {
    let healthy: i64 = r.try_get(2)?;
    Ok(SiteRow {
        id: r.try_get(0)?,
        spec: r.try_get(1)?,
        healthy: healthy != 0,
        free_capacity: r.try_get(3)?,
        last_error: r.try_get(4)?,
        refreshed_at: r.try_get(5)?,
    })
}

const SITE_COLUMNS: &str = "id, spec, healthy, free_capacity, last_error, refreshed_at";

impl Store {
    /// Inserts or replaces a site.
    pub async fn site_upsert(&self, s: &SiteRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO sites ({SITE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             spec = excluded.spec, healthy = excluded.healthy, free_capacity = excluded.free_capacity, \
             last_error = excluded.last_error, refreshed_at = excluded.refreshed_at"
        ))
        .bind(&s.id)
        .bind(&s.spec)
        .bind(i64::from(s.healthy))
        .bind(&s.free_capacity)
        .bind(&s.last_error)
        .bind(s.refreshed_at)
        .execute(&mut *tx)
        .await?;
        self.emit(
            &mut tx,
            EventKind::Site,
            &s.id,
            server_kit::unix_millis_now(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the outcome of a refresh (free capacity is kept when the refresh failed).
    pub async fn site_observed(
        &self,
        id: &str,
        healthy: bool,
        free_capacity: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // health changes are events; refreshes that change nothing else are not
        let flipped = sqlx::query("UPDATE sites SET healthy = $1 WHERE id = $2 AND healthy <> $1")
            .bind(i64::from(healthy))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        sqlx::query(
            "UPDATE sites SET free_capacity = COALESCE($1, free_capacity), last_error = $2, refreshed_at = $3, \
             unhealthy_since = CASE WHEN $4 = 1 THEN NULL ELSE COALESCE(unhealthy_since, $3) END WHERE id = $5",
        )
        .bind(free_capacity)
        .bind(error)
        .bind(now)
        .bind(i64::from(healthy))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if flipped {
            self.emit(&mut tx, EventKind::Site, id, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sites unhealthy since `before` (Unix ms) or earlier.
    pub async fn sites_unhealthy_since(&self, before: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM sites WHERE unhealthy_since IS NOT NULL AND unhealthy_since <= $1 ORDER BY id",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// One site.
    pub async fn site_get(&self, id: &str) -> Result<Option<SiteRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(site_row).transpose()?)
    }

    /// Every site, by id.
    pub async fn site_list(&self) -> Result<Vec<SiteRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(site_row).collect::<Result<_, _>>()?)
    }

    /// Takes or renews the lease `name` for `owner` until `until` (Unix ms): true when this
    /// owner holds it now (it was free, expired or already this owner's).
    pub async fn lease_acquire(
        &self,
        name: &str,
        owner: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO leases (name, owner, lease_until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until \
             WHERE leases.owner = excluded.owner OR leases.lease_until < $4",
        )
        .bind(name)
        .bind(owner)
        .bind(until)
        .bind(server_kit::unix_millis_now())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a site that hosts no instance. With `force`, one that hosts instances too, as
    /// long as none has an operation in flight: its instances become NOT_INSTANTIATED (their
    /// credentials and MEP configurations there go) and their workloads are recorded in
    /// `site_cleanups` for the site's reconciliation, should it answer again.
    pub async fn site_delete(&self, id: &str, force: bool) -> Result<SiteDeletion, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = server_kit::unix_millis_now();
        // write first: the transaction takes the write lock at once (SQLite cannot upgrade a
        // read lock while another writer is active)
        let guard = if force {
            "NOT EXISTS (SELECT 1 FROM app_lcm_op_occs o JOIN app_instances i ON o.app_instance_id = i.id \
             WHERE i.site_id = $1 AND o.state IN ('STARTING', 'PROCESSING', 'FAILED_TEMP'))"
        } else {
            "NOT EXISTS (SELECT 1 FROM app_instances WHERE site_id = $1)"
        };
        let done = sqlx::query(&format!("DELETE FROM sites WHERE id = $1 AND {guard}"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            let hosted = if force {
                "SELECT DISTINCT i.id FROM app_instances i JOIN app_lcm_op_occs o ON o.app_instance_id = i.id \
                 WHERE i.site_id = $1 AND o.state IN ('STARTING', 'PROCESSING', 'FAILED_TEMP') ORDER BY i.id LIMIT 10"
            } else {
                "SELECT id FROM app_instances WHERE site_id = $1 ORDER BY id LIMIT 10"
            };
            let hosted = sqlx::query(hosted)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(match (hosted.is_empty(), force) {
                (true, _) => SiteDeletion::NotFound,
                (false, false) => SiteDeletion::Hosting(hosted),
                (false, true) => SiteDeletion::Busy(hosted),
            });
        }
        let released = self.site_release_instances(&mut tx, id, now).await?;
        for instance in &released {
            self.emit(&mut tx, EventKind::AppInstance, instance, now)
                .await?;
        }
        self.emit(&mut tx, EventKind::Site, id, now).await?;
        tx.commit().await?;
        Ok(SiteDeletion::Deleted)
    }
}

/// A stored saga (see `crate::saga`).
#[derive(Debug, Clone, PartialEq)]
pub struct SagaRow {
    /// Saga id.
    pub id: String,
    /// Saga kind (selects the step list).
    pub kind: String,
    /// Parameters JSON.
    pub params: String,
    /// Step outputs JSON (object by step name).
    pub outputs: String,
    /// Next step to run forward, or the number of steps left to undo backward.
    pub cursor: i64,
    /// FORWARD or BACKWARD.
    pub direction: String,
    /// RUNNING, SUCCEEDED, FAILED_TEMP or FAILED.
    pub status: String,
    /// Last error.
    pub error: Option<String>,
}

const SAGA_COLUMNS: &str = "id, kind, params, outputs, cursor_pos, direction, status, error";

fn saga_row(r: &sqlx::any::AnyRow) -> Result<SagaRow, sqlx::Error> {
    Ok(SagaRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        params: r.try_get(2)?,
        outputs: r.try_get(3)?,
        cursor: r.try_get(4)?,
        direction: r.try_get(5)?,
        status: r.try_get(6)?,
        error: r.try_get(7)?,
    })
}

impl Store {
    /// Inserts a new saga, RUNNING and unclaimed.
    pub async fn saga_insert(&self, s: &SagaRow, now: i64) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO sagas ({SAGA_COLUMNS}, lease_owner, lease_until, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, $9)"
        ))
        .bind(&s.id)
        .bind(&s.kind)
        .bind(&s.params)
        .bind(&s.outputs)
        .bind(s.cursor)
        .bind(&s.direction)
        .bind(&s.status)
        .bind(&s.error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One saga.
    pub async fn saga_get(&self, id: &str) -> Result<Option<SagaRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SAGA_COLUMNS} FROM sagas WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(saga_row).transpose()?)
    }

    /// RUNNING sagas nobody holds a live lease on.
    pub async fn saga_list_claimable(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM sagas WHERE status = 'RUNNING' AND lease_until < $1 ORDER BY updated_at")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Takes (or renews) the lease of a RUNNING saga for `owner` until `until`; false when
    /// another owner holds a live lease or the saga is not RUNNING.
    pub async fn saga_claim(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sagas SET lease_owner = $1, lease_until = $2 WHERE id = $3 AND status = 'RUNNING' \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $4)",
        )
        .bind(owner)
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records progress while holding the lease; false if the lease was lost.
    /// `loaded_direction` is the direction the step ran in: a cancellation that reversed the
    /// saga meanwhile makes the update fail, so the executor reloads instead of overwriting it.
    pub async fn saga_advance(
        &self,
        s: &SagaRow,
        loaded_direction: &str,
        owner: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sagas SET outputs = $1, cursor_pos = $2, direction = $3, status = $4, error = $5, \
             lease_until = $6, updated_at = $7 WHERE id = $8 AND lease_owner = $9 AND direction = $10",
        )
        .bind(&s.outputs)
        .bind(s.cursor)
        .bind(&s.direction)
        .bind(&s.status)
        .bind(&s.error)
        .bind(until)
        .bind(now)
        .bind(&s.id)
        .bind(owner)
        .bind(loaded_direction)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Reverses a RUNNING forward saga: it undoes what it did, including the step under way;
    /// false if it is not running forward.
    pub async fn saga_cancel(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sagas SET direction = 'BACKWARD', cursor_pos = cursor_pos + 1, error = 'cancelled', \
             updated_at = $1 WHERE id = $2 AND status = 'RUNNING' AND direction = 'FORWARD'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a FAILED_TEMP saga on: back to RUNNING (retry or roll back) or to FAILED.
    /// `cursor_step` is added to the cursor.
    pub async fn saga_resolve(
        &self,
        id: &str,
        status: &str,
        direction: &str,
        cursor_step: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sagas SET status = $1, direction = $2, cursor_pos = cursor_pos + $3, lease_owner = NULL, \
             lease_until = 0, updated_at = $4 WHERE id = $5 AND status = 'FAILED_TEMP'",
        )
        .bind(status)
        .bind(direction)
        .bind(cursor_step)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A stored application instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    /// Instance id.
    pub id: String,
    /// Package id.
    pub app_pkg_id: String,
    /// AppD id.
    pub app_d_id: String,
    /// The creation request and AppD summary JSON.
    pub body: String,
    /// NOT_INSTANTIATED or INSTANTIATED.
    pub instantiation_state: String,
    /// STARTED or STOPPED when instantiated.
    pub operational_state: Option<String>,
    /// The site it runs on.
    pub site_id: Option<String>,
    /// Creation time (Unix ms).
    pub created_at: i64,
}

/// A stored LCM operation occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct OpOccRow {
    /// Occurrence id (also its saga id).
    pub id: String,
    /// The instance.
    pub app_instance_id: String,
    /// INSTANTIATE, OPERATE or TERMINATE.
    pub operation: String,
    /// STARTING, PROCESSING, COMPLETED, FAILED_TEMP or FAILED.
    pub state: String,
    /// The request JSON.
    pub params: String,
    /// ProblemDetails JSON of the failure.
    pub error: Option<String>,
    /// Placement decision JSON.
    pub placement: Option<String>,
    /// Start (Unix ms).
    pub start_time: i64,
    /// When the state was entered (Unix ms).
    pub state_entered: i64,
    /// Trace context (JSON) of the request that started it, which its saga's spans join.
    pub trace_context: Option<String>,
}

const INSTANCE_COLUMNS: &str =
    "id, app_pkg_id, app_d_id, body, instantiation_state, operational_state, site_id, created_at";
const OP_OCC_COLUMNS: &str = "id, app_instance_id, operation, state, params, error, placement, \
    start_time, state_entered, trace_context";

fn instance_row(r: &sqlx::any::AnyRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(InstanceRow {
        id: r.try_get(0)?,
        app_pkg_id: r.try_get(1)?,
        app_d_id: r.try_get(2)?,
        body: r.try_get(3)?,
        instantiation_state: r.try_get(4)?,
        operational_state: r.try_get(5)?,
        site_id: r.try_get(6)?,
        created_at: r.try_get(7)?,
    })
}

fn op_occ_row(r: &sqlx::any::AnyRow) -> Result<OpOccRow, sqlx::Error> {
    Ok(OpOccRow {
        id: r.try_get(0)?,
        app_instance_id: r.try_get(1)?,
        operation: r.try_get(2)?,
        state: r.try_get(3)?,
        params: r.try_get(4)?,
        error: r.try_get(5)?,
        placement: r.try_get(6)?,
        start_time: r.try_get(7)?,
        state_entered: r.try_get(8)?,
        trace_context: r.try_get(9)?,
    })
}

impl Store {
    /// Inserts an instance, queuing `notifications` in the same transaction.
    pub async fn instance_insert(
        &self,
        i: &InstanceRow,
        notifications: &[NotificationRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO app_instances ({INSTANCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&i.id)
        .bind(&i.app_pkg_id)
        .bind(&i.app_d_id)
        .bind(&i.body)
        .bind(&i.instantiation_state)
        .bind(&i.operational_state)
        .bind(&i.site_id)
        .bind(i.created_at)
        .execute(&mut *tx)
        .await?;
        self.report(
            &mut tx,
            EventKind::AppInstance,
            &i.id,
            i.created_at,
            notifications,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One instance.
    pub async fn instance_get(&self, id: &str) -> Result<Option<InstanceRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM app_instances WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(instance_row).transpose()?)
    }

    /// How many INSTANTIATED instances of each AppD each site holds: `(site, appDId, count)`,
    /// counted from an index (placement asks for every decision).
    pub async fn instantiated_by_site(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT site_id, app_d_id, COUNT(*) FROM app_instances \
             WHERE instantiation_state = 'INSTANTIATED' AND site_id IS NOT NULL \
             GROUP BY site_id, app_d_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Whether any instance (in any state) is of package `app_pkg_id`.
    pub async fn package_has_instances(&self, app_pkg_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM app_instances WHERE app_pkg_id = $1 LIMIT 1")
            .bind(app_pkg_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Every instance, oldest first.
    pub async fn instance_list(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM app_instances ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(instance_row).collect::<Result<_, _>>()?)
    }

    /// Records one of an instance's step-written documents (JSON, or none).
    pub async fn instance_set_doc(
        &self,
        id: &str,
        doc: InstanceDoc,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE app_instances SET {} = $1 WHERE id = $2",
            doc.column()
        ))
        .bind(value)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One of an instance's step-written documents (JSON).
    pub async fn instance_doc(
        &self,
        id: &str,
        doc: InstanceDoc,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM app_instances WHERE id = $1",
            doc.column()
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>(0))
            .transpose()?
            .flatten())
    }

    /// Sets the instantiation and operational state and the site of an instance.
    pub async fn instance_set_state(
        &self,
        id: &str,
        instantiation: &str,
        operational: Option<&str>,
        site: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE app_instances SET instantiation_state = $1, operational_state = $2, site_id = $3 WHERE id = $4")
            .bind(instantiation)
            .bind(operational)
            .bind(site)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.emit(
            &mut tx,
            EventKind::AppInstance,
            id,
            server_kit::unix_millis_now(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a NOT_INSTANTIATED instance with no operation in progress, queuing
    /// `notifications`; false otherwise.
    pub async fn instance_delete(
        &self,
        id: &str,
        notifications: &[NotificationRow],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM app_instances WHERE id = $1 AND instantiation_state = 'NOT_INSTANTIATED' AND NOT EXISTS \
             (SELECT 1 FROM app_lcm_op_occs o WHERE o.app_instance_id = $1 AND o.state IN ('STARTING', 'PROCESSING', 'FAILED_TEMP'))",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.report(
            &mut tx,
            EventKind::AppInstance,
            id,
            server_kit::unix_millis_now(),
            notifications,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records an operation occurrence and its saga in one transaction, unless the instance
    /// already has an operation in progress or is no longer in the state the operation was
    /// accepted in (`expected`: instantiation and operational state; false then).
    pub async fn op_occ_start(
        &self,
        o: &OpOccRow,
        saga: &SagaRow,
        expected: (&str, Option<&str>),
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // the unique index on the instances of operations in flight refuses a second one,
        // whichever replica writes it (migration 0009)
        let inserted = sqlx::query(&format!("INSERT INTO app_lcm_op_occs ({OP_OCC_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .bind(&o.id)
            .bind(&o.app_instance_id)
            .bind(&o.operation)
            .bind(&o.state)
            .bind(&o.params)
            .bind(&o.error)
            .bind(&o.placement)
            .bind(o.start_time)
            .bind(o.state_entered)
            .bind(&o.trace_context)
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Ok(false),
            other => other?,
        };
        // read after the insert: an operation that ended before it has committed its state
        let now = sqlx::query(
            "SELECT instantiation_state, operational_state FROM app_instances WHERE id = $1",
        )
        .bind(&o.app_instance_id)
        .fetch_optional(&mut *tx)
        .await?;
        let unchanged = match now {
            Some(row) => {
                let instantiation: String = row.try_get(0)?;
                let operational: Option<String> = row.try_get(1)?;
                (instantiation.as_str(), operational.as_deref()) == expected
            }
            None => false,
        };
        if !unchanged {
            return Ok(false);
        }
        sqlx::query(&format!(
            "INSERT INTO sagas ({SAGA_COLUMNS}, lease_owner, lease_until, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, $9)"
        ))
        .bind(&saga.id)
        .bind(&saga.kind)
        .bind(&saga.params)
        .bind(&saga.outputs)
        .bind(saga.cursor)
        .bind(&saga.direction)
        .bind(&saga.status)
        .bind(&saga.error)
        .bind(o.start_time)
        .execute(&mut *tx)
        .await?;
        self.emit(&mut tx, EventKind::LcmOpOcc, &o.id, o.start_time)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The instances with an operation in flight (STARTING, PROCESSING or FAILED_TEMP).
    pub async fn instances_in_flight(&self) -> Result<BTreeSet<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT app_instance_id FROM app_lcm_op_occs WHERE state IN ('STARTING', 'PROCESSING', 'FAILED_TEMP')",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// Whether the instance has an operation in flight (as [`Store::instances_in_flight`]).
    pub async fn instance_in_flight(&self, app_instance_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM app_lcm_op_occs WHERE app_instance_id = $1 \
             AND state IN ('STARTING', 'PROCESSING', 'FAILED_TEMP')",
        )
        .bind(app_instance_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// One operation occurrence.
    pub async fn op_occ_get(&self, id: &str) -> Result<Option<OpOccRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {OP_OCC_COLUMNS} FROM app_lcm_op_occs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(op_occ_row).transpose()?)
    }

    /// Every operation occurrence, oldest first.
    pub async fn op_occ_list(&self) -> Result<Vec<OpOccRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {OP_OCC_COLUMNS} FROM app_lcm_op_occs ORDER BY start_time, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(op_occ_row).collect::<Result<_, _>>()?)
    }

    /// How many operation occurrences are in `state`.
    pub async fn op_occ_count(&self, state: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM app_lcm_op_occs WHERE state = $1")
            .bind(state)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Sets the state (and error) of an operation occurrence, queuing `notifications` in the
    /// same transaction; whether it changed. An occurrence already in `state`, or in a final
    /// one (COMPLETED, FAILED), is left as it is, its event and notifications not written: of
    /// two replicas recording one outcome (the saga's own and a recovery pass), one does.
    pub async fn op_occ_set_state(
        &self,
        id: &str,
        state: &str,
        error: Option<&str>,
        notifications: &[NotificationRow],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // PostgreSQL re-reads the row after a concurrent update's commit, so the second of two
        // writers finds the state already set
        let changed = sqlx::query(
            "UPDATE app_lcm_op_occs SET state = $1, error = $2, state_entered = $3 \
             WHERE id = $4 AND state <> $1 AND state NOT IN ('COMPLETED', 'FAILED')",
        )
        .bind(state)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !changed {
            return Ok(false);
        }
        self.report(&mut tx, EventKind::LcmOpOcc, id, now, notifications)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records the placement decision of an operation occurrence.
    pub async fn op_occ_set_placement(&self, id: &str, placement: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE app_lcm_op_occs SET placement = $1 WHERE id = $2")
            .bind(placement)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
