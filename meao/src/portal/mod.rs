//! The operator portal: a browser front end served under `/portal/` from assets embedded in
//! the binary, and its sign-in. The portal's script calls the REST APIs themselves with the
//! session cookie instead of a bearer token ([`Edge`] authenticates either), so every action
//! goes through the same handlers and rules as an API client's.
//!
//! Users and their argon2id password hashes come from the configuration (`[portal] users`;
//! `meao hash-password` prints a hash). Every portal response carries a strict
//! Content-Security-Policy (no inline script or style) and the usual security headers.

pub mod live;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};
use axum::Json;
use axum::Router;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use server_kit::auth::{Authority, FailureLimiter};
use server_kit::problem::ApiError;

use session::{CSRF_HEADER, Role, SESSION_COOKIE, Sessions, cookie};

/// One portal user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalUser {
    /// The sign-in name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// The password's argon2id hash in PHC form (`meao hash-password` prints one).
    pub password_hash: String,
}

/// The portal's users and sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// Who may sign in; nobody when empty.
    pub users: Vec<PortalUser>,
    /// A session ends after this long without a request (seconds).
    pub idle_secs: u64,
    /// A session ends this long after sign-in at the latest (seconds).
    pub max_session_secs: u64,
    /// Sessions kept at most; beyond, the oldest ends.
    pub max_sessions: usize,
    /// Failed sign-ins a user name may have per minute before it is refused (429).
    pub max_failures_per_user: u32,
    /// Failed sign-ins a source address may have per minute before it is refused (429).
    pub max_failures_per_source: u32,
    /// How often the live updates read the event outbox (ms).
    pub live_poll_ms: u64,
    /// Live update streams (open portal pages) a replica serves at most.
    pub max_live_streams: usize,
    /// Live update streams one session may have open at once.
    pub max_live_streams_per_session: usize,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            idle_secs: 30 * 60,
            max_session_secs: 8 * 3600,
            max_sessions: 10_000,
            max_failures_per_user: 10,
            max_failures_per_source: 30,
            live_poll_ms: 1000,
            max_live_streams: 1000,
            max_live_streams_per_session: 8,
        }
    }
}

/// Why the portal could not be set up or a password not hashed.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// A configured hash is not an argon2id PHC string.
    #[error("portal user {user}: password_hash is not an argon2id hash ({reason})")]
    BadHash {
        /// The user.
        user: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two users have one name.
    #[error("portal user {0} is configured twice")]
    DuplicateUser(String),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The argon2id hash of `password` in PHC form, with a random salt and the crate's default
/// (OWASP-recommended) parameters.
pub fn hash_password(password: &str) -> Result<String, PortalError> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| PortalError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PortalError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PortalError::Hash(e.to_string()))
}

/// The portal: users, sessions, sign-in throttling.
#[derive(Debug)]
pub struct Portal {
    users: HashMap<String, (Role, String)>,
    /// Compared against when the user is unknown, so that timing does not tell.
    decoy: String,
    sessions: Sessions,
    failures: FailureLimiter,
    max_failures_per_user: u32,
    max_failures_per_source: u32,
    secure_cookie: bool,
    live: Arc<live::Live>,
}

impl Portal {
    /// Checks the users' hashes; sessions kept in `store`; `secure_cookie` when clients reach
    /// the MEAO over TLS.
    pub fn new(
        config: &PortalConfig,
        store: crate::store::Store,
        secure_cookie: bool,
    ) -> Result<Self, PortalError> {
        let mut users = HashMap::new();
        for u in &config.users {
            let parsed = PasswordHash::new(&u.password_hash).map_err(|e| PortalError::BadHash {
                user: u.name.clone(),
                reason: e.to_string(),
            })?;
            if parsed.algorithm != Algorithm::Argon2id.ident() {
                return Err(PortalError::BadHash {
                    user: u.name.clone(),
                    reason: format!("algorithm {}", parsed.algorithm),
                });
            }
            if users
                .insert(u.name.clone(), (u.role, u.password_hash.clone()))
                .is_some()
            {
                return Err(PortalError::DuplicateUser(u.name.clone()));
            }
        }
        let live = Arc::new(live::Live::new(
            store.clone(),
            std::time::Duration::from_millis(config.live_poll_ms),
            config.max_live_streams,
            config.max_live_streams_per_session,
        ));
        Ok(Self {
            users,
            decoy: hash_password("decoy")?,
            live,
            sessions: Sessions::new(
                store,
                config.idle_secs.max(1),
                config.max_session_secs.max(1),
                config.max_sessions,
            ),
            failures: FailureLimiter::default(),
            max_failures_per_user: config.max_failures_per_user.max(1),
            max_failures_per_source: config.max_failures_per_source.max(1),
            secure_cookie,
        })
    }

    /// Whether anyone may sign in (then the MEAO records the events the portal shows).
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// The live updates, whose poller the server runs.
    pub fn live(&self) -> Arc<live::Live> {
        self.live.clone()
    }

    /// The role of `user` if `password` is theirs.
    fn verify(&self, user: &str, password: &str) -> Option<Role> {
        let (role, hash) = match self.users.get(user) {
            Some((role, hash)) => (Some(*role), hash),
            None => (None, &self.decoy),
        };
        let verified = PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        role.filter(|_| verified)
    }

    /// [`Portal::verify`] on a blocking thread (argon2 takes tens of milliseconds on purpose).
    async fn check(self: &Arc<Self>, user: String, password: String) -> Option<Role> {
        let portal = self.clone();
        tokio::task::spawn_blocking(move || portal.verify(&user, &password))
            .await
            .ok()
            .flatten()
    }

    fn cookie(&self, value: &str, max_age: i64) -> Result<HeaderValue, ApiError> {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        ))
        .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// The API edge's authentication: a bearer token, or else a portal session cookie (with the
/// role's scopes and, on mutating calls, the CSRF header).
#[derive(Debug, Clone)]
pub struct Edge {
    /// Verifies bearer tokens.
    pub authority: Arc<Authority>,
    /// The portal and its sessions.
    pub portal: Arc<Portal>,
    /// The scope the routes need.
    pub scope: &'static str,
}

/// Middleware: authenticates the request by [`Edge`]; the [`server_kit::auth::Caller`]
/// extractor then sees the identity.
pub async fn authorize(State(edge): State<Edge>, mut request: Request, next: Next) -> Response {
    let session = request
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| cookie(v, SESSION_COOKIE))
        .filter(|_| !request.headers().contains_key(header::AUTHORIZATION))
        .map(str::to_owned);
    let claims = match session {
        Some(token) => match edge.portal.sessions.get(&token, now()).await {
            Ok(Some(session)) => {
                let path = request
                    .extensions()
                    .get::<OriginalUri>()
                    .map_or_else(|| request.uri().path(), |u| u.path());
                let csrf = request
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok());
                session.authorize(request.method(), path, csrf, edge.scope)
            }
            Ok(None) => Err(ApiError::Unauthorized(
                "the portal session ended: sign in again".into(),
            )),
            Err(e) => Err(e),
        },
        None => edge.authority.authorize(request.headers(), edge.scope),
    };
    match claims {
        Ok(claims) => {
            // the changes the request makes are recorded as the caller's
            let actor = claims.sub.clone();
            request.extensions_mut().insert(claims);
            crate::store::ACTOR.scope(actor, next.run(request)).await
        }
        Err(e) => e.into_response(),
    }
}

fn now() -> i64 {
    server_kit::unix_millis_now() / 1000
}

/// A sign-in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    user: String,
    password: String,
}

/// The signed-in user as the portal's script sees it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionView {
    user: String,
    role: Role,
    /// Whether the role may change packages and applications / the inventory.
    may_operate: bool,
    may_administer: bool,
    csrf_token: String,
    /// Unix seconds.
    expires_at: i64,
}

impl From<session::Session> for SessionView {
    fn from(s: session::Session) -> Self {
        Self {
            may_operate: s.role.may_change(crate::api::SCOPE_APP_LCM),
            may_administer: s.role.may_change(crate::api::SCOPE_INVENTORY),
            user: s.user,
            role: s.role,
            csrf_token: s.csrf,
            expires_at: s.absolute_until,
        }
    }
}

fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| cookie(v, SESSION_COOKIE))
}

/// A sign-in must come from the portal's own page: an `Origin` naming another host is refused
/// (the JSON body already keeps plain cross-site forms out).
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    if origin_host.is_some() && origin_host == host {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "sign-in from origin {origin} refused"
        )))
    }
}

/// A 429 ProblemDetails for `instance`, to be retried after `retry_after` seconds.
fn too_many_requests(detail: String, retry_after: u64, instance: &str) -> Response {
    let problem = api_specs::ProblemDetails {
        problem_type: None,
        title: Some("Too Many Requests".into()),
        status: 429,
        detail,
        instance: Some(instance.into()),
    };
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (
                header::CONTENT_TYPE,
                server_kit::problem::PROBLEM_JSON.to_owned(),
            ),
            (header::RETRY_AFTER, retry_after.to_string()),
        ],
        Json(problem),
    )
        .into_response()
}

/// `POST /portal/session`: signs in.
async fn sign_in(
    State(portal): State<Arc<Portal>>,
    peer: Option<axum::Extension<server_kit::serve::PeerAddr>>,
    headers: HeaderMap,
    body: server_kit::problem::ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let SignIn { user, password } = body.0;
    let now = now();
    let user_key = format!("user:{user}");
    let source_key = peer.map(|p| format!("source:{}", p.0.0.ip()));
    let blocked = portal
        .failures
        .blocked(&user_key, portal.max_failures_per_user, now)
        .or_else(|| {
            source_key.as_deref().and_then(|k| {
                portal
                    .failures
                    .blocked(k, portal.max_failures_per_source, now)
            })
        });
    if let Some(retry_after) = blocked {
        return Ok(too_many_requests(
            format!("too many failed sign-ins; retry in {retry_after} s"),
            retry_after,
            "/portal/session",
        ));
    }
    let Some(role) = portal.check(user.clone(), password).await else {
        portal.failures.record(&user_key, now);
        if let Some(k) = &source_key {
            portal.failures.record(k, now);
        }
        tracing::info!(%user, "portal sign-in failed");
        return Err(ApiError::Unauthorized("wrong user name or password".into()));
    };
    let (token, session) = portal.sessions.create(&user, role, now).await?;
    tracing::info!(%user, ?role, "portal sign-in");
    let cookie = portal.cookie(&token, portal.sessions.max_secs())?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(SessionView::from(session)),
    )
        .into_response())
}

/// `GET /portal/session`: who is signed in, with the CSRF token.
async fn current(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(signed_in(&portal, &headers).await?.into()))
}

/// `DELETE /portal/session`: signs out (with the CSRF header, so another site cannot).
async fn sign_out(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token =
        session_token(&headers).ok_or_else(|| ApiError::Unauthorized("not signed in".into()))?;
    let session = portal
        .sessions
        .get(token, now())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("not signed in".into()))?;
    if !session.csrf_matches(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())) {
        return Err(ApiError::Forbidden(format!(
            "signing out needs the session's {CSRF_HEADER} header"
        )));
    }
    portal.sessions.remove(token).await?;
    tracing::info!(user = %session.user, "portal sign-out");
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, portal.cookie("", 0)?)],
    )
        .into_response())
}

/// The signed-in session of a request.
async fn signed_in(portal: &Portal, headers: &HeaderMap) -> Result<session::Session, ApiError> {
    let token =
        session_token(headers).ok_or_else(|| ApiError::Unauthorized("not signed in".into()))?;
    portal
        .sessions
        .get(token, now())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("not signed in".into()))
}

/// `GET /portal/events`: the session's stream of live updates (server-sent events).
async fn live_updates(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    signed_in(&portal, &headers).await?;
    let token = session_token(&headers).unwrap_or_default();
    Ok(match live::stream(&portal, token) {
        Ok(sse) => sse.into_response(),
        Err(refused) => too_many_requests(refused.to_string(), 5, "/portal/events"),
    })
}

/// The activity feed's query: how many changes, before when.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityQuery {
    limit: Option<i64>,
    /// Unix ms.
    before: Option<i64>,
}

/// `GET /portal/activity`: the most recent changes, newest first.
async fn activity(
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    query: axum::extract::Query<ActivityQuery>,
) -> Result<Json<Vec<live::Change>>, ApiError> {
    signed_in(&portal, &headers).await?;
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let before = query.before.unwrap_or(i64::MAX);
    Ok(Json(
        portal
            .live
            .recent(before, limit)
            .await
            .map_err(session::store_error)?,
    ))
}

/// The embedded assets: name, content type, content.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/portal.css"),
    ),
    (
        "portal.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/portal.js"),
    ),
];

async fn asset(name: Option<Path<String>>) -> Response {
    let name = name.map_or_else(|| "index.html".to_owned(), |Path(n)| n);
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::NoRoute.into_response(),
    }
}

/// What every portal response says about itself: no inline or foreign script, style or
/// connection, no framing, no sniffing, no referrer.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
];

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in SECURITY_HEADERS {
        response
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    response
}

/// The portal's routes: `/portal/` and its assets, `/portal/session`.
pub fn router(portal: Arc<Portal>) -> Router {
    Router::new()
        .route("/portal", get(|| async { Redirect::permanent("/portal/") }))
        .route("/portal/", get(asset))
        .route("/portal/{name}", get(asset))
        .route(
            "/portal/session",
            get(current).post(sign_in).delete(sign_out),
        )
        .route("/portal/events", get(live_updates))
        .route("/portal/activity", get(activity))
        .with_state(portal)
        .layer(from_fn(security_headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a fresh SQLite file (kept while the directory lives).
    async fn store() -> (tempfile::TempDir, crate::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/p.db?mode=rwc", dir.path().display());
        let store = crate::store::Store::connect(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn the_demo_users_sign_in_with_the_passwords_the_example_config_names() {
        let (_dir, store) = store().await;
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/meao.toml");
        let config = crate::config::MeaoConfig::load(Some(&path)).unwrap();
        let portal = Portal::new(&config.portal, store, false).unwrap();
        let roles: Vec<_> = config.portal.users.iter().map(|u| u.role).collect();
        assert_eq!(roles, [Role::Admin, Role::Operator, Role::Viewer]);
        for u in &config.portal.users {
            assert_eq!(
                portal.verify(&u.name, &format!("{}-demo", u.name)),
                Some(u.role)
            );
            assert_eq!(portal.verify(&u.name, "wrong"), None);
        }
        assert_eq!(
            portal.verify("nobody", "decoy"),
            None,
            "the decoy signs nobody in"
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_a_salt_of_their_own() {
        let (_dir, store) = store().await;
        let a = hash_password("pw").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, hash_password("pw").unwrap());
        let users = |hash: &str| PortalConfig {
            users: vec![PortalUser {
                name: "u".into(),
                role: Role::Viewer,
                password_hash: hash.into(),
            }],
            ..PortalConfig::default()
        };
        let portal = Portal::new(&users(&a), store.clone(), false).unwrap();
        assert_eq!(portal.verify("u", "pw"), Some(Role::Viewer));
        let argon2i = a.replacen("$argon2id$", "$argon2i$", 1);
        for bad in ["plain-text", argon2i.as_str()] {
            assert!(matches!(
                Portal::new(&users(bad), store.clone(), false),
                Err(PortalError::BadHash { .. })
            ));
        }
        let mut twice = users(&a);
        twice.users.push(twice.users[0].clone());
        assert!(matches!(
            Portal::new(&twice, store, false),
            Err(PortalError::DuplicateUser(_))
        ));
    }

    #[test]
    fn a_sign_in_from_another_origin_is_refused() {
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("meao.example:8080"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            h
        };
        assert!(same_origin(&headers(None)).is_ok());
        assert!(same_origin(&headers(Some("https://meao.example:8080"))).is_ok());
        for other in ["https://evil.example", "https://meao.example", "null"] {
            assert!(same_origin(&headers(Some(other))).is_err(), "{other}");
        }
    }
}
