//! The OAuth 2.0 clients of application instances: each instance MEC management provisioned
//! with an [`AppClient`] may obtain tokens at this platform's token endpoint with its own secret
//! (ETSI GS MEC 009 client credentials), scoped to Mp1 and bound to its instance. The platform
//! holds only the digests; the table the token authority consults is rebuilt from the state on
//! every publish, so a terminated instance's tokens stop working with the state that removes it.

use std::collections::HashMap;

use api_specs::mp1::provisioning::{AppClient, MAX_CREDENTIAL_ID, MAX_CREDENTIALS};
use server_kit::auth::{RegisteredClient, RegisteredCredential, parse_secret_digest};

use super::{MepError, Platform, State};

/// The scopes of an instance's own client: the Mp1 APIs.
pub const APP_CLIENT_SCOPES: [&str; 2] = ["mec_app_support", "mec_service_mgmt"];

/// Checks a provisioned client: a usable id, one to four credentials with unique ids and
/// well-formed digests, no clash with a configured client or another instance's client.
pub(super) fn validate_client(
    state: &State,
    reserved: &[String],
    app_instance_id: &str,
    client: &AppClient,
) -> Result<(), MepError> {
    let id = &client.client_id;
    if id.is_empty()
        || id.chars().count() > 256
        || id.contains(':')
        || id.chars().any(char::is_control)
    {
        return Err(MepError::Invalid(
            "oauth2Client.clientId: 1 to 256 characters, no ':' or control characters".into(),
        ));
    }
    if reserved.iter().any(|r| r == id) {
        return Err(MepError::Conflict(format!(
            "client id {id} is configured at this platform"
        )));
    }
    if let Some((other, _)) = state.apps.iter().find(|(other, app)| {
        *other != app_instance_id && app.client.as_ref().is_some_and(|c| &c.client_id == id)
    }) {
        return Err(MepError::Conflict(format!(
            "client id {id} belongs to application instance {other}"
        )));
    }
    if client.credentials.is_empty() || client.credentials.len() > MAX_CREDENTIALS {
        return Err(MepError::Invalid(format!(
            "oauth2Client.credentials: 1 to {MAX_CREDENTIALS} credentials"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for credential in &client.credentials {
        let cid = &credential.credential_id;
        api_specs::common::check_text(
            "oauth2Client.credentials[].credentialId",
            cid,
            MAX_CREDENTIAL_ID,
        )
        .map_err(MepError::Invalid)?;
        if !seen.insert(cid) {
            return Err(MepError::Invalid(format!(
                "oauth2Client.credentials: credentialId {cid:?} is repeated"
            )));
        }
        if credential
            .secret_digest
            .as_deref()
            .and_then(parse_secret_digest)
            .is_none()
        {
            return Err(MepError::Invalid(format!(
                "oauth2Client.credentials[{cid}].secretDigest: SHA-256 of the secret, base64url"
            )));
        }
    }
    Ok(())
}

/// `client` as the platform shows it back: without the digests.
pub(super) fn redacted(client: &AppClient) -> AppClient {
    let mut shown = client.clone();
    for credential in &mut shown.credentials {
        credential.secret_digest = None;
    }
    shown
}

impl Platform {
    /// The client ids configured at the platform.
    pub(super) fn reserved_client_ids(&self) -> &[String] {
        &self.settings.configured_client_ids
    }

    /// Makes the token authority accept exactly the clients of the instances held now.
    pub(super) fn rebuild_clients(&self, state: &State) {
        let clients: HashMap<String, RegisteredClient> = state
            .apps
            .iter()
            .filter_map(|(id, app)| {
                let client = app.client.as_ref()?;
                let credentials = client
                    .credentials
                    .iter()
                    .filter_map(|c| {
                        Some(RegisteredCredential {
                            id: c.credential_id.clone(),
                            digest: parse_secret_digest(c.secret_digest.as_deref()?)?,
                            not_after: c.not_after.map(|t| t.unix_millis()),
                        })
                    })
                    .collect();
                let registered = RegisteredClient {
                    scopes: APP_CLIENT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                    app_instance_id: Some(id.clone()),
                    credentials,
                };
                Some((client.client_id.clone(), registered))
            })
            .collect();
        self.clients.replace(clients);
    }
}
