//! OAuth 2.0 client credentials as ETSI GS MEC 009 asks: a token endpoint, bearer tokens,
//! scopes per API and app clients bound to their own app instance.
//!
//! Tokens are JWTs (RFC 7519) signed with HMAC-SHA256 through openssl. The signing key comes
//! from the configuration (shared by replicas and kept across restarts) or, when absent, is
//! random per process, so tokens end with the process. Client secrets are compared as SHA-256
//! digests in constant time (unknown clients too) and never logged: [`Secret`] redacts itself
//! in `Debug`.
//!
//! Clients are configured ([`ClientConfig`]) or registered at run time ([`RegisteredClients`]:
//! the per-instance credentials MEC management issues). A registered client's token names the
//! credential it was issued for, and every verification checks that credential is still
//! accepted, so removing a client or letting a rotated credential's grace period end revokes
//! its tokens at once, not at expiry. Failed token requests are throttled per client and per
//! source address.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use openssl::hash::MessageDigest;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::problem::ApiError;

pub use api_specs::oauth::TokenResponse;

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

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
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
    /// HMAC key for tokens; when absent the MEP picks one per process and the MEAO generates one
    /// kept in its database (shared by its replicas).
    pub signing_key: Option<Secret>,
    /// Token lifetime in seconds.
    pub token_ttl_secs: u64,
    /// The registered clients.
    pub clients: Vec<ClientConfig>,
    /// Failed token requests a client id may make per minute before it is refused (429).
    pub max_failures_per_client: u32,
    /// Failed token requests a source address may make per minute before it is refused (429).
    pub max_failures_per_source: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            issuer: "mecplane".into(),
            signing_key: None,
            token_ttl_secs: 3600,
            clients: Vec::new(),
            max_failures_per_client: 10,
            max_failures_per_source: 30,
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
    /// The bearer token is malformed, badly signed, expired or revoked.
    #[error("invalid, expired or revoked access token")]
    InvalidToken,
    /// Too many failed attempts; retry after the given seconds.
    #[error("too many failed attempts; retry in {0} s")]
    Throttled(u64),
    /// The signing primitive failed.
    #[error("token signing failed")]
    Crypto(#[source] openssl::error::ErrorStack),
    /// The signing key was rejected.
    #[error("the token signing key was rejected")]
    SigningKey,
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
    /// The credential of a registered client the token was issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
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

/// SHA-256 of a client secret. Platforms store this, never the secret: a per-instance secret is
/// 256 random bits, so a fast hash is enough (people's passwords need a slow one).
pub type SecretDigest = [u8; 32];

/// The digest of `secret`.
pub fn secret_digest(secret: &str) -> SecretDigest {
    let mut digest = [0u8; 32];
    if let Ok(d) = openssl::hash::hash(MessageDigest::sha256(), secret.as_bytes()) {
        digest.copy_from_slice(&d);
    }
    digest
}

/// The digest of `secret` as carried between MEC management and a platform: base64url.
pub fn secret_digest_b64(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(secret_digest(secret))
}

/// Parses [`secret_digest_b64`].
pub fn parse_secret_digest(encoded: &str) -> Option<SecretDigest> {
    let raw = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    raw.try_into().ok()
}

/// One accepted secret of a registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredCredential {
    /// Identifier, named in the tokens issued for it.
    pub id: String,
    /// Digest of the secret.
    pub digest: SecretDigest,
    /// Accepted until then (Unix ms); for ever when absent.
    pub not_after: Option<i64>,
}

impl RegisteredCredential {
    fn accepted_at(&self, now_secs: i64) -> bool {
        self.not_after
            .is_none_or(|t| now_secs.saturating_mul(1000) < t)
    }
}

/// A client registered at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// Scopes it may be granted.
    pub scopes: Vec<String>,
    /// The app instance it acts for.
    pub app_instance_id: Option<String>,
    /// Its accepted credentials (two during a rotation's grace period).
    pub credentials: Vec<RegisteredCredential>,
}

/// The clients registered at run time, by client id; replaced as a whole by their owner.
#[derive(Debug, Default)]
pub struct RegisteredClients(RwLock<Arc<HashMap<String, RegisteredClient>>>);

impl RegisteredClients {
    /// Makes `clients` the registered set.
    pub fn replace(&self, clients: HashMap<String, RegisteredClient>) {
        match self.0.write() {
            Ok(mut c) => *c = Arc::new(clients),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(clients),
        }
    }

    fn snapshot(&self) -> Arc<HashMap<String, RegisteredClient>> {
        match self.0.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Counts failed authentication attempts per key (a client, a user, a source address) in
/// one-minute windows, for a bounded number of keys.
#[derive(Debug, Default)]
pub struct FailureLimiter(Mutex<HashMap<String, (u32, i64)>>);

/// Keys the limiter remembers at most; beyond, windows that ended are forgotten first.
const LIMITER_KEYS: usize = 10_000;
const WINDOW_SECS: i64 = 60;

impl FailureLimiter {
    /// Seconds until `key` may try again, if it exhausted `max` failures in its window.
    pub fn blocked(&self, key: &str, max: u32, now_secs: i64) -> Option<u64> {
        let map = self.0.lock().ok()?;
        let (count, start) = *map.get(key)?;
        let remaining = start + WINDOW_SECS - now_secs;
        (count >= max && remaining > 0).then(|| u64::try_from(remaining).unwrap_or(1))
    }

    /// Counts one failed attempt of `key`.
    pub fn record(&self, key: &str, now_secs: i64) {
        let Ok(mut map) = self.0.lock() else { return };
        if map.len() >= LIMITER_KEYS && !map.contains_key(key) {
            map.retain(|_, (_, start)| *start + WINDOW_SECS > now_secs);
            if map.len() >= LIMITER_KEYS {
                map.clear();
            }
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now_secs));
        if entry.1 + WINDOW_SECS <= now_secs {
            *entry = (0, now_secs);
        }
        entry.0 = entry.0.saturating_add(1);
    }
}

/// Issues and verifies tokens for the configured and the registered clients.
pub struct Authority {
    enabled: bool,
    issuer: String,
    /// HMAC-SHA256 keyed once: each token is signed or verified on a copy, without the
    /// algorithm look-up and key set-up an OpenSSL signer makes per call (which were a third
    /// of the MEP's instructions per discovery request).
    key: Hmac<Sha256>,
    ttl_secs: i64,
    clients: HashMap<String, (ClientConfig, SecretDigest)>,
    registered: Option<Arc<RegisteredClients>>,
    failures: FailureLimiter,
    max_failures_per_client: u32,
    max_failures_per_source: u32,
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

impl Authority {
    /// Builds the authority from its configuration and, when clients are registered at run
    /// time, their table.
    pub fn new(
        config: &AuthConfig,
        registered: Option<Arc<RegisteredClients>>,
    ) -> Result<Self, AuthError> {
        let raw = match &config.signing_key {
            Some(key) => key.expose().as_bytes().to_vec(),
            None => {
                let mut key = vec![0u8; 32];
                openssl::rand::rand_bytes(&mut key).map_err(AuthError::Crypto)?;
                key
            }
        };
        let key = Hmac::<Sha256>::new_from_slice(&raw).map_err(|_| AuthError::SigningKey)?;
        Ok(Self {
            enabled: config.enabled,
            issuer: config.issuer.clone(),
            key,
            ttl_secs: i64::try_from(config.token_ttl_secs).unwrap_or(i64::MAX),
            clients: config
                .clients
                .iter()
                .map(|c| {
                    let digest = secret_digest(c.client_secret.expose());
                    (c.client_id.clone(), (c.clone(), digest))
                })
                .collect(),
            registered,
            failures: FailureLimiter::default(),
            max_failures_per_client: config.max_failures_per_client.max(1),
            max_failures_per_source: config.max_failures_per_source.max(1),
        })
    }

    /// Whether requests must carry a token.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        let mut mac = self.key.clone();
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// Client credentials grant: checks the client and the requested scopes, issues a token.
    /// The secret is compared as a digest in constant time, for unknown clients too.
    pub fn issue(
        &self,
        client_id: &str,
        client_secret: &str,
        requested_scope: Option<&str>,
        now_secs: i64,
    ) -> Result<TokenResponse, AuthError> {
        let digest = secret_digest(client_secret);
        let registered = self.registered.as_ref().map(|r| r.snapshot());
        let (scopes, app_instance_id, cid) =
            if let Some((c, expected)) = self.clients.get(client_id) {
                if !openssl::memcmp::eq(expected, &digest) {
                    return Err(AuthError::InvalidClient);
                }
                (&c.scopes, c.app_instance_id.clone(), None)
            } else if let Some(c) = registered.as_ref().and_then(|r| r.get(client_id)) {
                // every accepted credential is compared, so the time does not tell which matched
                let matched = c.credentials.iter().fold(None, |found, k| {
                    let equal = openssl::memcmp::eq(&k.digest, &digest);
                    if equal && k.accepted_at(now_secs) {
                        Some(k)
                    } else {
                        found
                    }
                });
                let Some(credential) = matched else {
                    return Err(AuthError::InvalidClient);
                };
                (
                    &c.scopes,
                    c.app_instance_id.clone(),
                    Some(credential.id.clone()),
                )
            } else {
                let _ = openssl::memcmp::eq(&[0u8; 32], &digest);
                return Err(AuthError::InvalidClient);
            };
        let granted: Vec<&str> = match requested_scope {
            Some(requested) if !requested.trim().is_empty() => {
                let requested: Vec<&str> = requested.split_whitespace().collect();
                if let Some(bad) = requested.iter().find(|s| !scopes.iter().any(|c| c == *s)) {
                    return Err(AuthError::InvalidScope((*bad).to_owned()));
                }
                requested
            }
            _ => scopes.iter().map(String::as_str).collect(),
        };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: client_id.to_owned(),
            scope: granted.join(" "),
            app_instance_id,
            cid,
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

    /// Refuses a token request from `client_id` at `source` while either exhausted its failed
    /// attempts; otherwise runs [`Authority::issue`] and counts a failed authentication.
    pub fn issue_throttled(
        &self,
        client_id: &str,
        client_secret: &str,
        requested_scope: Option<&str>,
        source: Option<std::net::IpAddr>,
        now_secs: i64,
    ) -> Result<TokenResponse, AuthError> {
        let client_key = format!("client:{client_id}");
        let source_key = source.map(|ip| format!("source:{ip}"));
        let blocked = self
            .failures
            .blocked(&client_key, self.max_failures_per_client, now_secs)
            .or_else(|| {
                source_key.as_deref().and_then(|k| {
                    self.failures
                        .blocked(k, self.max_failures_per_source, now_secs)
                })
            });
        if let Some(retry_after) = blocked {
            return Err(AuthError::Throttled(retry_after));
        }
        let issued = self.issue(client_id, client_secret, requested_scope, now_secs);
        if matches!(issued, Err(AuthError::InvalidClient)) {
            self.failures.record(&client_key, now_secs);
            if let Some(k) = &source_key {
                self.failures.record(k, now_secs);
            }
        }
        issued
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
        let current = match &claims.cid {
            None => self.clients.contains_key(&claims.sub),
            Some(cid) => self.registered.as_ref().is_some_and(|r| {
                r.snapshot().get(&claims.sub).is_some_and(|c| {
                    c.app_instance_id == claims.app_instance_id
                        && c.credentials
                            .iter()
                            .any(|k| &k.id == cid && k.accepted_at(now_secs))
                })
            }),
        };
        if !current {
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
            cid: None,
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
            .ok_or_else(|| ApiError::MissingToken("missing bearer token".into()))?;
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
            .ok_or_else(|| ApiError::MissingToken("request was not authenticated".into()))
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
    let body = api_specs::oauth::TokenError {
        error: error.to_owned(),
        error_description: Some(description.to_owned()),
    };
    let mut response = (status, Json(body)).into_response();
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
    peer: Option<axum::Extension<crate::serve::PeerAddr>>,
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
    let source = peer.map(|p| p.0.0.ip());
    let scope = form.scope.as_deref();
    match authority.issue_throttled(&client_id, &client_secret, scope, source, now) {
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
        Err(e @ AuthError::Throttled(retry_after)) => {
            tracing::warn!(client_id = %client_id, ?source, "token requests throttled");
            let mut response = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_client",
                &e.to_string(),
            );
            if let Ok(value) = axum::http::HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
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

    #[test]
    fn signatures_are_the_hmac_sha256_openssl_computes() {
        // tokens issued before the signer changed keep verifying
        let authority = Authority::new(&config(), None).unwrap();
        let key = openssl::pkey::PKey::hmac(b"k").unwrap();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key).unwrap();
        signer.update(b"header.payload").unwrap();
        assert_eq!(
            authority.sign(b"header.payload").unwrap(),
            signer.sign_to_vec().unwrap()
        );
    }

    fn config() -> AuthConfig {
        AuthConfig {
            signing_key: Some(Secret::new("k")),
            clients: vec![ClientConfig {
                client_id: "app1".into(),
                client_secret: Secret::new("s3cret"),
                scopes: vec!["mec_service_mgmt".into(), "mec_app_support".into()],
                app_instance_id: Some("i1".into()),
            }],
            max_failures_per_client: 3,
            max_failures_per_source: 5,
            ..AuthConfig::default()
        }
    }

    fn authority() -> Authority {
        Authority::new(&config(), None).expect("authority")
    }

    fn registered(credentials: &[(&str, &str, Option<i64>)]) -> RegisteredClient {
        RegisteredClient {
            scopes: vec!["mec_app_support".into()],
            app_instance_id: Some("i9".into()),
            credentials: credentials
                .iter()
                .map(|(id, secret, not_after)| RegisteredCredential {
                    id: (*id).into(),
                    digest: secret_digest(secret),
                    not_after: *not_after,
                })
                .collect(),
        }
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
        assert_eq!(claims.cid, None);
    }

    #[test]
    fn wrong_secret_scope_tamper_and_expiry_are_refused() {
        let a = authority();
        assert!(matches!(
            a.issue("app1", "nope", None, 0),
            Err(AuthError::InvalidClient)
        ));
        assert!(matches!(
            a.issue("nobody", "s3cret", None, 0),
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
        let other = Authority::new(&AuthConfig::default(), None).unwrap();
        assert!(other.verify(&t, 101).is_err());
    }

    #[test]
    fn registered_clients_are_revoked_at_once() {
        let table = Arc::new(RegisteredClients::default());
        let a = Authority::new(&config(), Some(table.clone())).unwrap();
        assert!(a.issue("i9", "x", None, 0).is_err(), "not registered yet");
        table.replace([("i9".to_owned(), registered(&[("c1", "x", None)]))].into());
        let t = a.issue("i9", "x", None, 100).unwrap().access_token;
        let claims = a.verify(&t, 101).unwrap();
        assert_eq!(
            (claims.cid.as_deref(), claims.app_instance_id.as_deref()),
            (Some("c1"), Some("i9"))
        );
        table.replace(HashMap::new());
        assert!(
            a.verify(&t, 102).is_err(),
            "a removed client's tokens stop at once"
        );
        assert!(a.issue("i9", "x", None, 103).is_err());
    }

    #[test]
    fn a_rotated_credential_works_until_its_grace_period_ends() {
        let table = Arc::new(RegisteredClients::default());
        let a = Authority::new(&config(), Some(table.clone())).unwrap();
        table.replace([("i9".to_owned(), registered(&[("c1", "old", None)]))].into());
        let old_token = a.issue("i9", "old", None, 100).unwrap().access_token;
        // rotation: c2 is current, c1 accepted until t = 200 s
        let rotated = registered(&[("c2", "new", None), ("c1", "old", Some(200_000))]);
        table.replace([("i9".to_owned(), rotated)].into());
        assert!(a.verify(&old_token, 150).is_ok());
        assert!(a.issue("i9", "old", None, 150).is_ok());
        let new_token = a.issue("i9", "new", None, 150).unwrap().access_token;
        assert!(a.verify(&old_token, 200).is_err(), "grace period over");
        assert!(a.issue("i9", "old", None, 200).is_err());
        assert!(a.verify(&new_token, 200).is_ok());
        assert!(a.issue("i9", "new", None, 200).is_ok_and(|t| {
            a.verify(&t.access_token, 201).unwrap().cid.as_deref() == Some("c2")
        }));
    }

    #[test]
    fn failed_attempts_are_throttled_per_client_and_per_source() {
        let a = authority();
        let src = Some(std::net::IpAddr::from([10, 0, 0, 1]));
        for _ in 0..3 {
            assert!(matches!(
                a.issue_throttled("app1", "wrong", None, src, 1000),
                Err(AuthError::InvalidClient)
            ));
        }
        assert!(matches!(
            a.issue_throttled("app1", "s3cret", None, src, 1001),
            Err(AuthError::Throttled(59))
        ));
        assert!(a.issue_throttled("app1", "s3cret", None, src, 1060).is_ok());
        // the source address is limited across client ids
        let other = Some(std::net::IpAddr::from([10, 0, 0, 2]));
        for i in 0..5 {
            let _ = a.issue_throttled(&format!("guess{i}"), "x", None, other, 2000);
        }
        assert!(matches!(
            a.issue_throttled("app1", "s3cret", None, other, 2001),
            Err(AuthError::Throttled(_))
        ));
        assert!(a.issue_throttled("app1", "s3cret", None, src, 2001).is_ok());
    }

    #[test]
    fn the_limiter_stays_bounded() {
        let limiter = FailureLimiter::default();
        for i in 0..(LIMITER_KEYS + 10) {
            limiter.record(&format!("k{i}"), 0);
        }
        assert!(limiter.0.lock().unwrap().len() <= LIMITER_KEYS);
    }

    #[test]
    fn digests_round_trip() {
        let d = secret_digest_b64("s");
        assert_eq!(parse_secret_digest(&d), Some(secret_digest("s")));
        assert_eq!(parse_secret_digest("short"), None);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = authority();
        let shown = format!("{c:?} {:?}", Secret::new("s3cret"));
        assert!(!shown.contains("s3cret"));
    }
}
