//! Pushes application instance configuration (traffic rules, DNS rules, required services) to
//! a site's MEP through its provisioning API, authenticated with OAuth 2.0 client credentials.
//! This is the HTTP form of the MEAO-MEP link; the gRPC stream of the MEP-link issue replaces
//! the transport, not the contract (`api_specs::mp1::provisioning`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use api_specs::mp1::provisioning::AppInstanceConfig;
use serde::{Deserialize, Serialize};
use server_kit::auth::Secret;

use crate::saga::StepError;

/// The MEAO's credentials at the MEPs (each MEP registers this client with scope `mep_mgmt`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MepClientConfig {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
}

/// A client of the MEPs' provisioning APIs.
pub struct MepClient {
    http: reqwest::Client,
    config: MepClientConfig,
    tokens: Mutex<HashMap<String, (String, std::time::Instant)>>,
}

impl std::fmt::Debug for MepClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MepClient")
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

fn unreachable(e: reqwest::Error) -> StepError {
    StepError::Retryable(format!("MEP unreachable: {e}"))
}

async fn refused(what: &str, r: reqwest::Response) -> StepError {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let detail = format!("MEP refused {what}: {status} {body}");
    if status.is_server_error() || status.as_u16() == 429 {
        StepError::Retryable(detail)
    } else {
        StepError::Permanent(detail)
    }
}

impl MepClient {
    /// A client with the MEAO's credentials.
    pub fn new(config: MepClientConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            config,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    async fn token(&self, base: &str) -> Result<String, StepError> {
        let cached = self.tokens.lock().ok().and_then(|t| t.get(base).cloned());
        if let Some((token, _)) = cached.filter(|(_, until)| *until > std::time::Instant::now()) {
            return Ok(token);
        }
        let r = self
            .http
            .post(format!("{base}/oauth2/token"))
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose()),
            )
            .form(&[("grant_type", "client_credentials"), ("scope", "mep_mgmt")])
            .send()
            .await
            .map_err(unreachable)?;
        if !r.status().is_success() {
            return Err(refused("the MEAO's credentials", r).await);
        }
        let body: server_kit::auth::TokenResponse = r.json().await.map_err(unreachable)?;
        let lifetime = Duration::from_secs(u64::try_from(body.expires_in).unwrap_or(0) / 2);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(
                base.to_owned(),
                (
                    body.access_token.clone(),
                    std::time::Instant::now() + lifetime,
                ),
            );
        }
        Ok(body.access_token)
    }

    /// Creates or replaces the instance's configuration at the MEP at `base`.
    pub async fn provision(
        &self,
        base: &str,
        instance: &str,
        config: &AppInstanceConfig,
    ) -> Result<(), StepError> {
        let r = self
            .http
            .put(format!("{base}/mep_mgmt/v1/app_instances/{instance}"))
            .bearer_auth(self.token(base).await?)
            .json(config)
            .send()
            .await
            .map_err(unreachable)?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(refused("the configuration", r).await)
        }
    }

    /// Removes the instance from the MEP, giving it `graceful_secs` to confirm termination.
    pub async fn deprovision(
        &self,
        base: &str,
        instance: &str,
        graceful_secs: u64,
    ) -> Result<(), StepError> {
        let r = self
            .http
            .delete(format!(
                "{base}/mep_mgmt/v1/app_instances/{instance}?graceful_timeout={graceful_secs}"
            ))
            .bearer_auth(self.token(base).await?)
            .send()
            .await
            .map_err(unreachable)?;
        if r.status().is_success() || r.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(refused("the removal", r).await)
        }
    }
}
