//! The event outbox: every state change of a package, application instance, LCM operation
//! occurrence or site becomes a CloudEvent (JSON, structured mode) written in the transaction of
//! the change, numbered per resource, with who made it, and later published to Kafka (see
//! `crate::events`). The portal reads the recent events too (its live updates and activity
//! feed), so a MEAO with portal users records them even when it publishes none.

use serde_json::{Value, json};
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError};

/// The resources whose changes are events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// An application package.
    AppPackage,
    /// An application instance.
    AppInstance,
    /// An LCM operation occurrence.
    LcmOpOcc,
    /// An edge site.
    Site,
}

impl EventKind {
    /// The kind's name in event types and the `kind` column.
    pub fn name(self) -> &'static str {
        match self {
            Self::AppPackage => "app_package",
            Self::AppInstance => "app_instance",
            Self::LcmOpOcc => "lcm_op_occ",
            Self::Site => "site",
        }
    }

    /// Parses [`name`](Self::name).
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::AppPackage,
            Self::AppInstance,
            Self::LcmOpOcc,
            Self::Site,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    /// The Kafka topic suffix of the kind.
    pub fn topic(self) -> &'static str {
        match self {
            Self::AppPackage => "app-packages",
            Self::AppInstance => "app-instances",
            Self::LcmOpOcc => "lcm-op-occs",
            Self::Site => "sites",
        }
    }
}

tokio::task_local! {
    /// Who the changes made in this task are made for: the API caller's identity (set by the
    /// API edge around each request); unset for the MEAO's own work (sagas, refreshes).
    pub static ACTOR: String;
}

/// A recorded event as the portal shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRow {
    /// CloudEvent id.
    pub id: String,
    /// The CloudEvent JSON.
    pub body: String,
    /// Who made the change; `None` for the MEAO's own work.
    pub actor: Option<String>,
    /// When (Unix ms).
    pub created_at: i64,
}

/// A pending event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// CloudEvent id.
    pub id: String,
    /// Kind.
    pub kind: EventKind,
    /// The resource (the Kafka key).
    pub resource_id: String,
    /// The CloudEvent JSON.
    pub body: String,
}

/// The resource's state as the event carries it; `None` once it is deleted.
async fn data(
    tx: &mut Transaction<'_, Any>,
    kind: EventKind,
    id: &str,
) -> Result<Option<Value>, sqlx::Error> {
    let sql = match kind {
        EventKind::AppPackage => {
            "SELECT id, app_d_id, onboarding_state, operational_state, usage_state FROM app_packages WHERE id = $1"
        }
        EventKind::AppInstance => {
            "SELECT id, app_d_id, instantiation_state, operational_state, site_id FROM app_instances WHERE id = $1"
        }
        EventKind::LcmOpOcc => {
            "SELECT id, app_instance_id, operation, state, error FROM app_lcm_op_occs WHERE id = $1"
        }
        EventKind::Site => "SELECT id, healthy, last_error FROM sites WHERE id = $1",
    };
    let Some(r) = sqlx::query(sql).bind(id).fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let text = |i: usize| -> Result<Value, sqlx::Error> {
        Ok(r.try_get::<Option<String>, _>(i)?
            .map_or(Value::Null, Value::String))
    };
    Ok(Some(match kind {
        EventKind::AppPackage => json!({
            "id": text(0)?, "appDId": text(1)?, "onboardingState": text(2)?,
            "operationalState": text(3)?, "usageState": text(4)?,
        }),
        EventKind::AppInstance => json!({
            "id": text(0)?, "appDId": text(1)?, "instantiationState": text(2)?,
            "operationalState": text(3)?, "mecHostId": text(4)?,
        }),
        EventKind::LcmOpOcc => json!({
            "id": text(0)?, "appInstanceId": text(1)?, "lcmOperation": text(2)?,
            "operationState": text(3)?, "error": text(4)?,
        }),
        EventKind::Site => json!({
            "id": text(0)?, "healthy": r.try_get::<i64, _>(1)? != 0, "lastError": text(2)?,
        }),
    }))
}

/// RFC 3339 UTC time of Unix milliseconds.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (h, m, s) = (
        secs.rem_euclid(86_400) / 3600,
        secs.rem_euclid(3600) / 60,
        secs.rem_euclid(60),
    );
    // civil from days (H. Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms.rem_euclid(1000)
    )
}

impl Store {
    /// Records the current state of a resource as an event, inside the transaction that changed
    /// it (after the change, so the row lock orders versions), with the task's [`ACTOR`]. Does
    /// nothing unless events are enabled; an event that is only recorded (not published) is
    /// written as published, so nothing waits for a broker.
    pub(crate) async fn emit(
        &self,
        tx: &mut Transaction<'_, Any>,
        kind: EventKind,
        id: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        if !self.events.records() {
            return Ok(());
        }
        let data = data(tx, kind, id).await?;
        let version: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM events WHERE kind = $1 AND resource_id = $2",
        )
        .bind(kind.name())
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        let event_id = uuid::Uuid::new_v4().to_string();
        let change = if data.is_some() { "changed" } else { "deleted" };
        let body = json!({
            "specversion": "1.0",
            "id": event_id,
            "source": "/mecplane/meao",
            "type": format!("io.mecplane.meao.{}.{change}", kind.name()),
            "subject": id,
            "time": rfc3339(now),
            "sequence": version.to_string(),
            "datacontenttype": "application/json",
            "data": data.unwrap_or_else(|| json!({"id": id})),
        });
        let actor = ACTOR.try_with(Clone::clone).ok();
        let published = (!self.events.publishes()).then_some(now);
        sqlx::query(
            "INSERT INTO events (id, kind, resource_id, version, body, created_at, actor, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&event_id)
        .bind(kind.name())
        .bind(id)
        .bind(version)
        .bind(body.to_string())
        .bind(now)
        .bind(actor)
        .bind(published)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Events recorded at or after `since` (Unix ms), oldest first, at most `limit`.
    pub async fn events_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        self.activity(
            "SELECT id, body, actor, created_at FROM events WHERE created_at >= $1 \
             ORDER BY created_at, kind, resource_id, version LIMIT $2",
            since,
            limit,
        )
        .await
    }

    /// The `limit` most recent events recorded before `before` (Unix ms), newest first.
    pub async fn events_recent(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        self.activity(
            "SELECT id, body, actor, created_at FROM events WHERE created_at < $1 \
             ORDER BY created_at DESC, kind DESC, resource_id DESC, version DESC LIMIT $2",
            before,
            limit,
        )
        .await
    }

    async fn activity(
        &self,
        sql: &str,
        at: i64,
        limit: i64,
    ) -> Result<Vec<ActivityRow>, StoreError> {
        let rows = sqlx::query(sql)
            .bind(at)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ActivityRow {
                    id: r.try_get(0)?,
                    body: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Unpublished events, oldest first (per resource in version order).
    pub async fn events_pending(&self, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, resource_id, body FROM events WHERE published_at IS NULL \
             ORDER BY created_at, kind, resource_id, version LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let kind: String = r.try_get(1)?;
            let Some(kind) = EventKind::parse(&kind) else {
                continue;
            };
            out.push(EventRow {
                id: r.try_get(0)?,
                kind,
                resource_id: r.try_get(2)?,
                body: r.try_get(3)?,
            });
        }
        Ok(out)
    }

    /// The unpublished events: how many, and when the oldest was recorded (Unix ms).
    pub async fn events_backlog(&self) -> Result<(i64, Option<i64>), StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*), MIN(created_at) FROM events WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Marks events published.
    pub async fn events_published(&self, ids: &[&str], now: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "UPDATE events SET published_at = $1 WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(now);
        for id in ids {
            q = q.bind(*id);
        }
        q.execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes events published before `before` (Unix ms); returns how many.
    pub async fn events_purge(&self, before: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM events WHERE published_at IS NOT NULL AND published_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_619_230_761), "2026-11-25T15:07:10.761Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
