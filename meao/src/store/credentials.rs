//! Generated keys shared by the replicas, and the identifiers of the applications' Mp1
//! credentials (see `crate::lcm::credentials`).

use sqlx::Row;

use super::{Store, StoreError};

/// The Mp1 credential of one application instance at one site's MEP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// The instance.
    pub app_instance_id: String,
    /// The site.
    pub site_id: String,
    /// The client id it presents at its MEP.
    pub client_id: String,
    /// The current credential.
    pub credential_id: String,
    /// When the current credential was issued (Unix ms).
    pub issued_at: i64,
    /// The credential it replaced, accepted until `previous_not_after`.
    pub previous_credential_id: Option<String>,
    /// End of the previous credential's grace period (Unix ms).
    pub previous_not_after: Option<i64>,
}

impl Store {
    /// The stored key `name`, storing `candidate` first if there is none: every replica ends
    /// with the key the first one stored.
    pub async fn key_get_or_insert(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO keys (name, value, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(server_kit::unix_millis_now())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The Mp1 credential of an instance at a site.
    pub async fn credential_get(
        &self,
        app_instance_id: &str,
        site_id: &str,
    ) -> Result<Option<CredentialRow>, StoreError> {
        let row = sqlx::query(
            "SELECT app_instance_id, site_id, client_id, credential_id, issued_at, \
             previous_credential_id, previous_not_after FROM app_credentials \
             WHERE app_instance_id = $1 AND site_id = $2",
        )
        .bind(app_instance_id)
        .bind(site_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok::<_, sqlx::Error>(CredentialRow {
                app_instance_id: r.try_get(0)?,
                site_id: r.try_get(1)?,
                client_id: r.try_get(2)?,
                credential_id: r.try_get(3)?,
                issued_at: r.try_get(4)?,
                previous_credential_id: r.try_get(5)?,
                previous_not_after: r.try_get(6)?,
            })
        })
        .transpose()
        .map_err(StoreError::from)
    }

    /// Records an instance's credential (replacing what it had).
    pub async fn credential_put(&self, row: &CredentialRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO app_credentials (app_instance_id, site_id, client_id, credential_id, \
             issued_at, previous_credential_id, previous_not_after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (app_instance_id, site_id) DO UPDATE SET client_id = excluded.client_id, \
             credential_id = excluded.credential_id, issued_at = excluded.issued_at, \
             previous_credential_id = excluded.previous_credential_id, \
             previous_not_after = excluded.previous_not_after",
        )
        .bind(&row.app_instance_id)
        .bind(&row.site_id)
        .bind(&row.client_id)
        .bind(&row.credential_id)
        .bind(row.issued_at)
        .bind(&row.previous_credential_id)
        .bind(row.previous_not_after)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets an instance's credential at a site (revoked at that MEP), or at every site.
    pub async fn credential_delete(
        &self,
        app_instance_id: &str,
        site_id: Option<&str>,
    ) -> Result<(), StoreError> {
        match site_id {
            Some(site) => {
                sqlx::query(
                    "DELETE FROM app_credentials WHERE app_instance_id = $1 AND site_id = $2",
                )
                .bind(app_instance_id)
                .bind(site)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query("DELETE FROM app_credentials WHERE app_instance_id = $1")
                    .bind(app_instance_id)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(())
    }
}
