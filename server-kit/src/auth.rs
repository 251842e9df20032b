//! OAuth 2.0 client credentials as ETSI GS MEC 009 asks: a token endpoint, bearer tokens,
//! scopes per API and app clients bound to their own app instance.
//!
//! Tokens are JWTs (RFC 7519) signed with HMAC-SHA256 through openssl. The signing key comes
//! from the configuration (shared by replicas and kept across restarts) or, when absent, is
//! random per process, so tokens end with the process. Client secrets are compared in constant
//! time and never logged: [`Secret`] redacts itself in `Debug`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;

/// A secret string: deserialized from config, redacted in `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One OAuth 2.0 client allowed to obtain tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client identifier.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// Scopes the client may be granted, e.g. `mec_service_mgmt`.
    pub scopes: Vec<String>,
    /// The app instance this client acts for; `None` for operator clients.
    #[serde(default)]
    pub app_instance_id: Option<String>,
}

/// Authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// When false, every request is allowed as an operator with all scopes (development only).
    pub enabled: bool,
    /// Issuer (`iss`) of the tokens.
    pub issuer: String,
    /// HMAC key for tokens; random per process when absent.
    pub signing_key: Option<Secret>,
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// The registered clients.
    pub clients: Vec<ClientConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            issuer: "mecplane".into(),
            signing_key: None,
            token_ttl_secs: 3600,
            clients: Vec::new(),
        }
    }
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown client or wrong secret.
    #[error("client authentication failed")]
    InvalidClient,
    /// Grant type other than client_credentials.
    #[error("only the client_credentials grant is supported")]
    UnsupportedGrantType,
    /// Requested a scope the client does not have.
    #[error("scope {0} is not granted to this client")]
    InvalidScope(String),
    /// The bearer token is malformed, badly signed or expired.
    #[error("invalid or expired access token")]
    InvalidToken,
    /// The signing primitive failed.
    #[error("token signing failed")]
    Crypto(#[source] openssl::error::ErrorStack),
}

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The client id.
    pub sub: String,
    /// Granted scopes, space separated.
    pub scope: String,
    /// The app instance the client is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_id: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
}

impl Claims {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }

    /// Allows the request only if the caller may act on `app_instance_id`: an app client only on
    /// its own instance, an operator client (no binding) on any.
    pub fn authorize_app(&self, app_instance_id: &str) -> Result<(), ApiError> {
        match &self.app_instance_id {
            Some(own) if own != app_instance_id => Err(ApiError::Forbidden(format!(
                "client {} may only act on its own application instance",
                self.sub
            ))),
            _ => Ok(()),
        }
    }
}

/// Issues and verifies tokens for the configured clients.
pub struct Authority {
    enabled: bool,
    issuer: String,
    key: PKey<Private>,
    ttl_secs: i64,
    clients: HashMap<String, ClientConfig>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("enabled", &self.enabled)
            .field("issuer", &self.issuer)
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The JOSE header of every token: HMAC-SHA256 only, so `alg: none` and key confusion cannot
/// arise.
const JWT_HEADER: &[u8; 27] = br#"{"alg":"HS256","typ":"JWT"}"#;

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always "Bearer".
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Granted scopes, space separated.
    pub scope: String,
}

impl Authority {
    /// Builds the authority from its configuration.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthError> {
        let raw = match &config.signing_key {
            Some(key) => key.expose().as_bytes().to_vec(),
            None => {
                let mut key = vec![0u8; 32];
                openssl::rand::rand_bytes(&mut key).map_err(AuthError::Crypto)?;
                key
            }
        };
        let key = PKey::hmac(&raw).map_err(AuthError::Crypto)?;
        Ok(Self {
            enabled: config.enabled,
            issuer: config.issuer.clone(),
            key,
            ttl_secs: i64::try_from(config.token_ttl_secs).unwrap_or(i64::MAX),
            clients: config
                .clients
                .iter()
                .map(|c| (c.client_id.clone(), c.clone()))
                .collect(),
        })
    }

    /// Whether requests must carry a token.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let mut signer =
            Signer::new(MessageDigest::sha256(), &self.key).map_err(AuthError::Crypto)?;
        signer.update(data).map_err(AuthError::Crypto)?;
        signer.sign_to_vec().map_err(AuthError::Crypto)
    }

    /// Client credentials grant: checks the client and the requested scopes, issues a token.
    pub fn issue(
        &self,
        client_id: &str,
        client_secret: &str,
        requested_scope: Option<&str>,
        now_secs: i64,
    ) -> Result<TokenResponse, AuthError> {
        let client = self
            .clients
            .get(client_id)
            .filter(|c| {
                let expected = c.client_secret.expose().as_bytes();
                expected.len() == client_secret.len()
                    && openssl::memcmp::eq(expected, client_secret.as_bytes())
            })
            .ok_or(AuthError::InvalidClient)?;
        let scopes: Vec<&str> = match requested_scope {
            Some(requested) if !requested.trim().is_empty() => {
                let requested: Vec<&str> = requested.split_whitespace().collect();
                if let Some(bad) = requested
                    .iter()
                    .find(|s| !client.scopes.iter().any(|c| c == *s))
                {
                    return Err(AuthError::InvalidScope((*bad).to_owned()));
                }
                requested
            }
            _ => client.scopes.iter().map(String::as_str).collect(),
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: client.client_id.clone(),
            scope: scopes.join(" "),
            app_instance_id: client.app_instance_id.clone(),
            iat: now_secs,
            exp: now_secs.saturating_add(self.ttl_secs),
        };
        let header = URL_SAFE_NO_PAD.encode(JWT_HEADER);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.sign(signing_input.as_bytes())?);
        Ok(TokenResponse {
            access_token: format!("{signing_input}.{signature}"),
            token_type: "Bearer".into(),
            expires_in: self.ttl_secs,
            scope: claims.scope,
        })
    }

    /// Verifies a bearer token: signature, issuer and expiry.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Claims, AuthError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(AuthError::InvalidToken)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(AuthError::InvalidToken)?;
        // only tokens this authority issued verify, so the header is exactly ours
        if URL_SAFE_NO_PAD.decode(header).ok().as_deref() != Some(JWT_HEADER.as_slice()) {
            return Err(AuthError::InvalidToken);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::InvalidToken)?;
        let expected = self.sign(signing_input.as_bytes())?;
        if expected.len() != signature.len() || !openssl::memcmp::eq(&expected, &signature) {
            return Err(AuthError::InvalidToken);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(AuthError::InvalidToken)?;
        if claims.iss != self.issuer || claims.exp <= now_secs {
            return Err(AuthError::InvalidToken);
        }
        Ok(claims)
    }

    /// The identity used for every request when authentication is disabled.
    fn anonymous_operator(&self) -> Claims {
        Claims {
            iss: self.issuer.clone(),
            sub: "anonymous".into(),
            scope: "*".into(),
            app_instance_id: None,
            iat: 0,
            exp: i64::MAX,
        }
    }

    /// Authenticates a request's headers and checks it holds `scope`.
    pub fn authorize(&self, headers: &HeaderMap, scope: &str) -> Result<Claims, ApiError> {
        if !self.enabled {
            return Ok(self.anonymous_operator());
        }
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        let claims = self
            .verify(token.trim(), crate::unix_millis_now() / 1000)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if !claims.has_scope(scope) {
            return Err(ApiError::Forbidden(format!(
                "the access token lacks scope {scope}"
            )));
        }
        Ok(claims)
    }
}

/// Middleware state: the authority and the scope a group of routes needs.
#[derive(Debug, Clone)]
pub struct RequireScope {
    /// The authority verifying tokens.
    pub authority: Arc<Authority>,
    /// The scope required.
    pub scope: &'static str,
}

/// Middleware: rejects requests without a valid token holding the scope; otherwise stores the
/// [`Claims`] in the request extensions for the [`Caller`] extractor.
pub async fn require_scope(
    State(required): State<RequireScope>,
    mut request: Request,
    next: Next,
) -> Response {
    match required
        .authority
        .authorize(request.headers(), required.scope)
    {
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Extractor for the authenticated caller set by [`require_scope`].
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::Unauthorized("request was not authenticated".into()))
    }
}

/// Form body of a token request (RFC 6749 section 4.4.2).
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<Secret>,
}

/// An RFC 6749 section 5.2 error: the token endpoint's own error format.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Basic realm=\"mecplane\""),
        );
    }
    response
}

/// `POST /oauth2/token`: the client credentials grant. Credentials come in HTTP Basic
/// (preferred by RFC 6749) or in the form body.
pub async fn token_endpoint(
    State(authority): State<Arc<Authority>>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected an application/x-www-form-urlencoded token request",
        );
    };
    if form.grant_type != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &AuthError::UnsupportedGrantType.to_string(),
        );
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())));
    let (client_id, client_secret) = match (basic, form.client_id, form.client_secret) {
        (Some(pair), _, _) => pair,
        (None, Some(id), Some(secret)) => (id, secret.expose().to_owned()),
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client credentials missing",
            );
        }
    };
    let now = crate::unix_millis_now() / 1000;
    match authority.issue(&client_id, &client_secret, form.scope.as_deref(), now) {
        Ok(token) => {
            tracing::info!(client_id = %client_id, scope = %token.scope, "issued access token");
            let mut response = Json(token).into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(e @ AuthError::InvalidScope(_)) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e.to_string())
        }
        Err(e @ AuthError::Crypto(_)) => {
            tracing::error!(error = %e, "token signing failed");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "")
        }
        Err(e) => {
            tracing::info!(client_id = %client_id, "client authentication failed");
            oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> Authority {
        Authority::new(&AuthConfig {
            signing_key: Some(Secret::new("k")),
            clients: vec![ClientConfig {
                client_id: "app1".into(),
                client_secret: Secret::new("s3cret"),
                scopes: vec!["mec_service_mgmt".into(), "mec_app_support".into()],
                app_instance_id: Some("i1".into()),
            }],
            ..AuthConfig::default()
        })
        .expect("authority")
    }

    #[test]
    fn issued_token_verifies_and_carries_binding() {
        let a = authority();
        let t = a
            .issue("app1", "s3cret", Some("mec_service_mgmt"), 100)
            .unwrap();
        let claims = a.verify(&t.access_token, 101).unwrap();
        assert!(claims.has_scope("mec_service_mgmt"));
        assert!(!claims.has_scope("mec_app_support"));
        assert!(claims.authorize_app("i1").is_ok());
        assert!(claims.authorize_app("i2").is_err());
    }

    #[test]
    fn wrong_secret_scope_tamper_and_expiry_are_refused() {
        let a = authority();
        assert!(matches!(
            a.issue("app1", "nope", None, 0),
            Err(AuthError::InvalidClient)
        ));
        assert!(matches!(
            a.issue("app1", "s3cret", Some("mep_mgmt"), 0),
            Err(AuthError::InvalidScope(_))
        ));
        let t = a.issue("app1", "s3cret", None, 100).unwrap().access_token;
        assert!(a.verify(&t, 100 + 3600).is_err());
        let mut tampered = t.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert!(a.verify(&tampered, 101).is_err());
        let other = Authority::new(&AuthConfig::default()).unwrap();
        assert!(other.verify(&t, 101).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = authority();
        let shown = format!("{c:?} {:?}", Secret::new("s3cret"));
        assert!(!shown.contains("s3cret"));
    }
}
