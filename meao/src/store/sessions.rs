//! Portal sessions (see `crate::portal::session`), in the store so every replica knows them.

use sqlx::Row;

use super::{Store, StoreError};

/// A stored portal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSessionRow {
    /// SHA-256 digest of the session token (base64url).
    pub digest: String,
    /// The user name.
    pub user_name: String,
    /// The role (`viewer`, `operator`, `admin`).
    pub role: String,
    /// The CSRF token.
    pub csrf: String,
    /// Signed in at (Unix seconds).
    pub created: i64,
    /// Ends then unless used before (Unix seconds).
    pub idle_until: i64,
    /// Ends then at the latest (Unix seconds).
    pub absolute_until: i64,
}

const COLUMNS: &str = "digest, user_name, role, csrf, created, idle_until, absolute_until";

fn row(r: &sqlx::any::AnyRow) -> Result<PortalSessionRow, sqlx::Error> {
    Ok(PortalSessionRow {
        digest: r.try_get(0)?,
        user_name: r.try_get(1)?,
        role: r.try_get(2)?,
        csrf: r.try_get(3)?,
        created: r.try_get(4)?,
        idle_until: r.try_get(5)?,
        absolute_until: r.try_get(6)?,
    })
}

impl Store {
    /// Records a new session; ended sessions are dropped, and the oldest beyond `max_sessions`.
    pub async fn portal_session_insert(
        &self,
        s: &PortalSessionRow,
        max_sessions: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO portal_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&s.digest)
        .bind(&s.user_name)
        .bind(&s.role)
        .bind(&s.csrf)
        .bind(s.created)
        .bind(s.idle_until)
        .bind(s.absolute_until)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM portal_sessions WHERE idle_until <= $1 OR absolute_until <= $1")
            .bind(s.created)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM portal_sessions WHERE digest NOT IN \
             (SELECT digest FROM portal_sessions ORDER BY created DESC, digest LIMIT $1)",
        )
        .bind(max_sessions.max(1))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live session of `digest` at `now`, its idle expiry moved to `idle_until` (never
    /// beyond its absolute one); none when it ended or never was.
    pub async fn portal_session_touch(
        &self,
        digest: &str,
        now: i64,
        idle_until: i64,
    ) -> Result<Option<PortalSessionRow>, StoreError> {
        let found = sqlx::query(&format!(
            "UPDATE portal_sessions SET idle_until = $1 \
             WHERE digest = $2 AND idle_until > $3 AND absolute_until > $3 RETURNING {COLUMNS}"
        ))
        .bind(idle_until)
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.as_ref().map(row).transpose()?)
    }

    /// Ends the session of `digest`.
    pub async fn portal_session_delete(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portal_sessions WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
