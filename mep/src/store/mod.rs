//! Persistence of the MEP: sqlx over SQLite (embedded default) or PostgreSQL, one schema.
//!
//! The domain computes a list of [`Change`]s for each operation; [`Store::apply`] writes them in
//! one transaction, so a state change and the notifications reporting it land together or not
//! at all. At start-up [`Store::load`] reads everything back into memory.

use serde::de::DeserializeOwned;
use server_kit::db::DbError;
use server_kit::notify::{NotificationRow, SqlOutbox};
use sqlx::{AnyPool, Row};

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database")]
    Open(#[from] DbError),
    /// A query failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A stored body no longer parses.
    #[error("stored {what} is corrupt")]
    Corrupt {
        /// Which record.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// One write of an operation; a list of them is applied atomically.
#[derive(Debug, Clone)]
pub enum Change {
    /// Insert or replace an application instance.
    UpsertApp(AppRow),
    /// Delete an application instance and everything it owns.
    DeleteApp(String),
    /// Insert or replace a service.
    UpsertService(ServiceRow),
    /// Delete a service.
    DeleteService(String),
    /// Record a heartbeat of a service.
    Heartbeat {
        /// The service.
        ser_instance_id: String,
        /// When (Unix ms).
        at: i64,
    },
    /// Insert or replace a traffic rule.
    UpsertTrafficRule(RuleRow),
    /// Delete a traffic rule.
    DeleteTrafficRule {
        /// Owner.
        app_instance_id: String,
        /// Rule id.
        rule_id: String,
    },
    /// Insert or replace a DNS rule.
    UpsertDnsRule(RuleRow),
    /// Delete a DNS rule.
    DeleteDnsRule {
        /// Owner.
        app_instance_id: String,
        /// Rule id.
        rule_id: String,
    },
    /// Insert a subscription.
    InsertSubscription(SubscriptionRow),
    /// Delete a subscription.
    DeleteSubscription(String),
    /// Queue a notification for delivery.
    Enqueue(NotificationRow),
    /// Record the version of an instance's desired configuration received from the MEAO.
    DesiredVersion {
        /// The instance.
        app_instance_id: String,
        /// The version.
        version: i64,
    },
}

/// Stored application instance.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRow {
    /// Identifier.
    pub app_instance_id: String,
    /// AppInfo JSON.
    pub app_info: String,
    /// Lifecycle state name.
    pub state: String,
    /// Operation awaiting the app's confirmation (STOPPING or TERMINATING).
    pub pending_action: Option<String>,
    /// When the pending operation proceeds without confirmation (Unix ms).
    pub action_deadline: Option<i64>,
    /// Last change (Unix ms).
    pub updated_at: i64,
    /// The services it declares it produces (JSON array of ServiceDescriptor), if any.
    pub services_produced: Option<String>,
    /// Its OAuth 2.0 client (AppClient JSON), if MEC management issued one.
    pub oauth2_client: Option<String>,
    /// What it may change in its own rules (AppRulePolicy JSON).
    pub rule_policy: Option<String>,
}

/// Stored service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    /// Identifier.
    pub ser_instance_id: String,
    /// Producing app instance.
    pub app_instance_id: String,
    /// Service name.
    pub ser_name: String,
    /// ServiceInfo JSON.
    pub body: String,
    /// Entity tag counter.
    pub etag: i64,
    /// Last heartbeat (Unix ms).
    pub last_heartbeat: i64,
}

/// Stored traffic or DNS rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    /// Owner.
    pub app_instance_id: String,
    /// Rule id.
    pub rule_id: String,
    /// Rule JSON.
    pub body: String,
    /// Entity tag counter.
    pub etag: i64,
}

/// Stored subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    /// Identifier.
    pub subscription_id: String,
    /// Subscribing app instance.
    pub app_instance_id: String,
    /// ETSI subscription type.
    pub subscription_type: String,
    /// Subscription JSON.
    pub body: String,
}

/// Everything stored, read at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Application instances.
    pub apps: Vec<AppRow>,
    /// Services.
    pub services: Vec<ServiceRow>,
    /// Traffic rules.
    pub traffic_rules: Vec<RuleRow>,
    /// DNS rules.
    pub dns_rules: Vec<RuleRow>,
    /// Subscriptions.
    pub subscriptions: Vec<SubscriptionRow>,
    /// Versions of desired configurations received from the MEAO, by instance.
    pub desired_versions: Vec<(String, i64)>,
}

/// The database handle.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = server_kit::db::connect(url, &MIGRATOR).await?;
        Ok(Self { pool })
    }

    /// The notification outbox in this database.
    pub fn outbox(&self) -> SqlOutbox {
        SqlOutbox::new(self.pool.clone())
    }

    /// Reads every stored record.
    pub async fn load(&self) -> Result<Snapshot, StoreError> {
        let apps = sqlx::query(
            "SELECT app_instance_id, app_info, state, pending_action, action_deadline, updated_at, \
             services_produced, oauth2_client, rule_policy FROM app_instances ORDER BY app_instance_id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            Ok(AppRow {
                app_instance_id: r.try_get(0)?,
                app_info: r.try_get(1)?,
                state: r.try_get(2)?,
                pending_action: r.try_get(3)?,
                action_deadline: r.try_get(4)?,
                updated_at: r.try_get(5)?,
                services_produced: r.try_get(6)?,
                oauth2_client: r.try_get(7)?,
                rule_policy: r.try_get(8)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let services = sqlx::query(
            "SELECT ser_instance_id, app_instance_id, ser_name, body, etag, last_heartbeat \
             FROM services ORDER BY ser_instance_id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            Ok(ServiceRow {
                ser_instance_id: r.try_get(0)?,
                app_instance_id: r.try_get(1)?,
                ser_name: r.try_get(2)?,
                body: r.try_get(3)?,
                etag: r.try_get(4)?,
                last_heartbeat: r.try_get(5)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let traffic_rules = self.load_rules("traffic_rules", "traffic_rule_id").await?;
        let dns_rules = self.load_rules("dns_rules", "dns_rule_id").await?;
        let subscriptions = sqlx::query(
            "SELECT subscription_id, app_instance_id, subscription_type, body \
             FROM subscriptions ORDER BY subscription_id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| {
            Ok(SubscriptionRow {
                subscription_id: r.try_get(0)?,
                app_instance_id: r.try_get(1)?,
                subscription_type: r.try_get(2)?,
                body: r.try_get(3)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
        let desired_versions = sqlx::query(
            "SELECT app_instance_id, version FROM desired_versions ORDER BY app_instance_id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
        Ok(Snapshot {
            apps,
            services,
            traffic_rules,
            dns_rules,
            subscriptions,
            desired_versions,
        })
    }

    async fn load_rules(&self, table: &str, id_column: &str) -> Result<Vec<RuleRow>, StoreError> {
        let sql = format!(
            "SELECT app_instance_id, {id_column}, body, etag FROM {table} \
             ORDER BY app_instance_id, {id_column}"
        );
        Ok(sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| {
                Ok(RuleRow {
                    app_instance_id: r.try_get(0)?,
                    rule_id: r.try_get(1)?,
                    body: r.try_get(2)?,
                    etag: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Applies `changes` in one transaction.
    pub async fn apply(&self, changes: &[Change]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for change in changes {
            match change {
                Change::UpsertApp(a) => {
                    sqlx::query(
                        "INSERT INTO app_instances (app_instance_id, app_info, state, pending_action, action_deadline, updated_at, services_produced, oauth2_client, rule_policy) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (app_instance_id) DO UPDATE SET \
                         app_info = excluded.app_info, state = excluded.state, pending_action = excluded.pending_action, \
                         action_deadline = excluded.action_deadline, updated_at = excluded.updated_at, \
                         services_produced = excluded.services_produced, oauth2_client = excluded.oauth2_client, \
                         rule_policy = excluded.rule_policy",
                    )
                    .bind(&a.app_instance_id)
                    .bind(&a.app_info)
                    .bind(&a.state)
                    .bind(&a.pending_action)
                    .bind(a.action_deadline)
                    .bind(a.updated_at)
                    .bind(&a.services_produced)
                    .bind(&a.oauth2_client)
                    .bind(&a.rule_policy)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::DeleteApp(id) => {
                    for table in [
                        "services",
                        "traffic_rules",
                        "dns_rules",
                        "subscriptions",
                        "app_instances",
                    ] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE app_instance_id = $1"))
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                Change::UpsertService(s) => {
                    sqlx::query(
                        "INSERT INTO services (ser_instance_id, app_instance_id, ser_name, body, etag, last_heartbeat) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ser_instance_id) DO UPDATE SET \
                         ser_name = excluded.ser_name, body = excluded.body, etag = excluded.etag, \
                         last_heartbeat = excluded.last_heartbeat",
                    )
                    .bind(&s.ser_instance_id)
                    .bind(&s.app_instance_id)
                    .bind(&s.ser_name)
                    .bind(&s.body)
                    .bind(s.etag)
                    .bind(s.last_heartbeat)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::DeleteService(id) => {
                    sqlx::query("DELETE FROM services WHERE ser_instance_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                Change::Heartbeat {
                    ser_instance_id,
                    at,
                } => {
                    sqlx::query(
                        "UPDATE services SET last_heartbeat = $1 WHERE ser_instance_id = $2",
                    )
                    .bind(*at)
                    .bind(ser_instance_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::UpsertTrafficRule(r) => {
                    upsert_rule(&mut tx, "traffic_rules", "traffic_rule_id", r).await?
                }
                Change::UpsertDnsRule(r) => {
                    upsert_rule(&mut tx, "dns_rules", "dns_rule_id", r).await?
                }
                Change::DeleteTrafficRule {
                    app_instance_id,
                    rule_id,
                } => {
                    sqlx::query("DELETE FROM traffic_rules WHERE app_instance_id = $1 AND traffic_rule_id = $2")
                        .bind(app_instance_id)
                        .bind(rule_id)
                        .execute(&mut *tx)
                        .await?;
                }
                Change::DeleteDnsRule {
                    app_instance_id,
                    rule_id,
                } => {
                    sqlx::query(
                        "DELETE FROM dns_rules WHERE app_instance_id = $1 AND dns_rule_id = $2",
                    )
                    .bind(app_instance_id)
                    .bind(rule_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::InsertSubscription(s) => {
                    sqlx::query(
                        "INSERT INTO subscriptions (subscription_id, app_instance_id, subscription_type, body) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&s.subscription_id)
                    .bind(&s.app_instance_id)
                    .bind(&s.subscription_type)
                    .bind(&s.body)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::DeleteSubscription(id) => {
                    sqlx::query("DELETE FROM subscriptions WHERE subscription_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                Change::Enqueue(n) => SqlOutbox::enqueue(&mut tx, n).await?,
                Change::DesiredVersion {
                    app_instance_id,
                    version,
                } => {
                    sqlx::query(
                        "INSERT INTO desired_versions (app_instance_id, version) VALUES ($1, $2) \
                         ON CONFLICT (app_instance_id) DO UPDATE SET version = excluded.version",
                    )
                    .bind(app_instance_id)
                    .bind(*version)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn upsert_rule(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    id_column: &str,
    r: &RuleRow,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO {table} (app_instance_id, {id_column}, body, etag) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (app_instance_id, {id_column}) DO UPDATE SET body = excluded.body, etag = excluded.etag"
    );
    sqlx::query(&sql)
        .bind(&r.app_instance_id)
        .bind(&r.rule_id)
        .bind(&r.body)
        .bind(r.etag)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Parses a stored JSON body.
pub fn parse_body<T: DeserializeOwned>(what: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        what: what.to_owned(),
        source,
    })
}
