//! Portal users, their roles and server-side sessions, and the check every API request made
//! with a session goes through: the role's scopes, read-only for a viewer, and the session's
//! CSRF token on every mutating call.
//!
//! A session is a random 256-bit token in an HttpOnly cookie; the MEAO keeps only its SHA-256
//! digest with the user, role, CSRF token and expiry (idle and absolute), in the store, so
//! every replica behind a load balancer knows every session.

use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use server_kit::auth::{Claims, secret_digest_b64};
use server_kit::problem::ApiError;

use crate::api::{SCOPE_APP_LCM, SCOPE_APP_PKGM, SCOPE_INVENTORY};
use crate::store::{PortalSessionRow, Store};

/// What a portal user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees everything, changes nothing.
    Viewer,
    /// Onboards packages and runs applications; sees the inventory.
    Operator,
    /// Everything an operator does, and changes the site inventory.
    Admin,
}

impl Role {
    /// The REST scopes the role holds (reading each of them).
    pub fn scopes(self) -> &'static [&'static str] {
        &[SCOPE_APP_PKGM, SCOPE_APP_LCM, SCOPE_INVENTORY]
    }

    /// Whether the role may change what `scope` covers.
    pub fn may_change(self, scope: &str) -> bool {
        match self {
            Self::Viewer => false,
            Self::Operator => scope == SCOPE_APP_PKGM || scope == SCOPE_APP_LCM,
            Self::Admin => true,
        }
    }
}

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "mecplane_session";
/// Header that carries the session's CSRF token on mutating calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Requests that change nothing although they are not GET: a placement query.
fn is_query(method: &Method, path: &str) -> bool {
    method == Method::POST && path == "/inventory/v1/placement"
}

/// Whether `method` may change state.
fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// One signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user name.
    pub user: String,
    /// The user's role.
    pub role: Role,
    /// The token mutating calls must carry in [`CSRF_HEADER`].
    pub csrf: String,
    /// Signed in at (Unix seconds).
    pub created: i64,
    /// Ends then (Unix seconds) unless used before; moved on by every use.
    pub idle_until: i64,
    /// Ends then at the latest (Unix seconds).
    pub absolute_until: i64,
}

impl Session {
    /// Whether `presented` is the session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        let presented = presented.unwrap_or_default().as_bytes();
        let expected = self.csrf.as_bytes();
        presented.len() == expected.len() && openssl::memcmp::eq(presented, expected)
    }

    /// Authorizes a request of this session on `scope`: reads for every role, changes for a
    /// role that may change the scope, with the CSRF token; the identity the handlers see.
    pub fn authorize(
        &self,
        method: &Method,
        path: &str,
        csrf: Option<&str>,
        scope: &str,
    ) -> Result<Claims, ApiError> {
        if !self.role.scopes().contains(&scope) {
            return Err(ApiError::Forbidden(format!(
                "the portal role lacks scope {scope}"
            )));
        }
        if mutating(method) {
            if !self.csrf_matches(csrf) {
                return Err(ApiError::Forbidden(format!(
                    "a {method} from the portal needs the session's {CSRF_HEADER} header"
                )));
            }
            if !is_query(method, path) && !self.role.may_change(scope) {
                return Err(ApiError::Forbidden(format!(
                    "portal user {} ({:?}) may not change {scope}",
                    self.user, self.role
                )));
            }
        }
        Ok(Claims {
            iss: "mecplane-portal".into(),
            sub: format!("portal:{}", self.user),
            scope: self.role.scopes().join(" "),
            app_instance_id: None,
            cid: None,
            iat: self.created,
            exp: self.absolute_until,
        })
    }
}

/// The portal's sessions, in the store.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    idle_secs: i64,
    max_secs: i64,
    max_sessions: i64,
}

/// A random 256-bit value, base64url.
fn random_token() -> Result<String, ApiError> {
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

pub(super) fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::Internal(format!("portal sessions: {e}"))
}

impl Sessions {
    /// Sessions in `store` that end after `idle_secs` without use or `max_secs` after sign-in;
    /// at most `max_sessions` at once (the oldest ends first).
    pub fn new(store: Store, idle_secs: u64, max_secs: u64, max_sessions: usize) -> Self {
        Self {
            store,
            idle_secs: i64::try_from(idle_secs).unwrap_or(i64::MAX),
            max_secs: i64::try_from(max_secs).unwrap_or(i64::MAX),
            max_sessions: i64::try_from(max_sessions.max(1)).unwrap_or(i64::MAX),
        }
    }

    /// Starts a session for `user`; returns its token (the cookie's value) and the session.
    pub async fn create(
        &self,
        user: &str,
        role: Role,
        now: i64,
    ) -> Result<(String, Session), ApiError> {
        let token = random_token()?;
        let session = Session {
            user: user.to_owned(),
            role,
            csrf: random_token()?,
            created: now,
            idle_until: now.saturating_add(self.idle_secs),
            absolute_until: now.saturating_add(self.max_secs),
        };
        let role = serde_json::to_value(role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let row = PortalSessionRow {
            digest: secret_digest_b64(&token),
            user_name: session.user.clone(),
            role,
            csrf: session.csrf.clone(),
            created: session.created,
            idle_until: session.idle_until,
            absolute_until: session.absolute_until,
        };
        self.store
            .portal_session_insert(&row, self.max_sessions)
            .await
            .map_err(store_error)?;
        Ok((token, session))
    }

    /// The live session of `token`, its idle expiry moved on; none for an ended or unknown one.
    pub async fn get(&self, token: &str, now: i64) -> Result<Option<Session>, ApiError> {
        let found = self
            .store
            .portal_session_touch(
                &secret_digest_b64(token),
                now,
                now.saturating_add(self.idle_secs),
            )
            .await
            .map_err(store_error)?;
        Ok(found.and_then(|r| {
            let role = serde_json::from_value(serde_json::Value::String(r.role)).ok()?;
            Some(Session {
                user: r.user_name,
                role,
                csrf: r.csrf,
                created: r.created,
                idle_until: r.idle_until.min(r.absolute_until),
                absolute_until: r.absolute_until,
            })
        }))
    }

    /// Ends the session of `token`.
    pub async fn remove(&self, token: &str) -> Result<(), ApiError> {
        self.store
            .portal_session_delete(&secret_digest_b64(token))
            .await
            .map_err(store_error)
    }

    /// Seconds a new session lasts at most (the cookie's `Max-Age`).
    pub fn max_secs(&self) -> i64 {
        self.max_secs
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(role: Role) -> Session {
        Session {
            user: "u".into(),
            role,
            csrf: random_token().unwrap(),
            created: 1000,
            idle_until: 1060,
            absolute_until: 1600,
        }
    }

    /// Sessions in a fresh SQLite store (kept alive by the returned directory).
    async fn sessions(idle: u64, max: u64, cap: usize) -> (tempfile::TempDir, Sessions) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/s.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.unwrap();
        (dir, Sessions::new(store, idle, max, cap))
    }

    #[test]
    fn a_viewer_reads_everything_and_changes_nothing() {
        let s = session(Role::Viewer);
        let csrf = Some(s.csrf.as_str());
        for scope in [SCOPE_APP_PKGM, SCOPE_APP_LCM, SCOPE_INVENTORY] {
            let claims = s.authorize(&Method::GET, "/x", None, scope).unwrap();
            assert_eq!(claims.sub, "portal:u");
            for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                let e = s.authorize(&method, "/x", csrf, scope).unwrap_err();
                assert!(matches!(e, ApiError::Forbidden(m) if m.contains("may not change")));
            }
        }
        // the placement preview is a query
        s.authorize(
            &Method::POST,
            "/inventory/v1/placement",
            csrf,
            SCOPE_INVENTORY,
        )
        .unwrap();
    }

    #[test]
    fn roles_change_what_their_scopes_cover() {
        let operator = session(Role::Operator);
        let csrf = Some(operator.csrf.as_str());
        for scope in [SCOPE_APP_PKGM, SCOPE_APP_LCM] {
            operator
                .authorize(&Method::DELETE, "/x", csrf, scope)
                .unwrap();
        }
        assert!(
            operator
                .authorize(&Method::PUT, "/inventory/v1/sites/a", csrf, SCOPE_INVENTORY)
                .is_err()
        );
        let admin = session(Role::Admin);
        admin
            .authorize(
                &Method::PUT,
                "/inventory/v1/sites/a",
                Some(&admin.csrf),
                SCOPE_INVENTORY,
            )
            .unwrap();
        assert!(
            operator
                .authorize(&Method::GET, "/x", None, "other")
                .is_err()
        );
    }

    #[test]
    fn every_mutation_needs_the_sessions_csrf_token() {
        let s = session(Role::Admin);
        let other = session(Role::Admin);
        for csrf in [None, Some(""), Some(other.csrf.as_str()), Some("short")] {
            for (method, path) in [
                (Method::POST, "/x"),
                (Method::DELETE, "/x"),
                (Method::POST, "/inventory/v1/placement"),
            ] {
                let e = s
                    .authorize(&method, path, csrf, SCOPE_APP_PKGM)
                    .unwrap_err();
                assert!(matches!(e, ApiError::Forbidden(m) if m.contains(CSRF_HEADER)));
            }
        }
        s.authorize(&Method::POST, "/x", Some(&s.csrf), SCOPE_APP_PKGM)
            .unwrap();
        assert_ne!(s.csrf, other.csrf);
    }

    #[tokio::test]
    async fn sessions_end_idle_at_their_limit_and_at_sign_out() {
        let (_dir, sessions) = sessions(60, 100, 10).await;
        let (token, s) = sessions.create("u", Role::Viewer, 1000).await.unwrap();
        assert_eq!(
            sessions.get(&token, 1059).await.unwrap(),
            Some(Session {
                idle_until: 1100,
                ..s
            }),
            "idle until 1119, but never beyond the absolute limit"
        );
        assert!(sessions.get(&token, 1099).await.unwrap().is_some());
        assert!(sessions.get(&token, 1100).await.unwrap().is_none());
        let (token, _) = sessions.create("u", Role::Viewer, 2000).await.unwrap();
        assert!(
            sessions.get(&token, 2060).await.unwrap().is_none(),
            "idle for 60 s"
        );
        let (token, _) = sessions.create("u", Role::Viewer, 3000).await.unwrap();
        assert!(sessions.get("not-a-session", 3000).await.unwrap().is_none());
        sessions.remove(&token).await.unwrap();
        assert!(sessions.get(&token, 3001).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn at_most_max_sessions_the_oldest_ends_first() {
        let (_dir, sessions) = sessions(60, 600, 2).await;
        let (a, _) = sessions.create("a", Role::Viewer, 1000).await.unwrap();
        let (b, _) = sessions.create("b", Role::Viewer, 1001).await.unwrap();
        let (c, _) = sessions.create("c", Role::Viewer, 1002).await.unwrap();
        assert!(sessions.get(&a, 1003).await.unwrap().is_none());
        assert!(sessions.get(&b, 1003).await.unwrap().is_some());
        assert!(sessions.get(&c, 1003).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_session_is_known_to_every_replica_of_the_store() {
        let (dir, first) = sessions(60, 600, 10).await;
        let url = format!("sqlite://{}/s.db?mode=rwc", dir.path().display());
        let second = Sessions::new(Store::connect(&url).await.unwrap(), 60, 600, 10);
        let (token, s) = first.create("u", Role::Operator, 1000).await.unwrap();
        assert_eq!(
            second.get(&token, 1001).await.unwrap().map(|s| s.csrf),
            Some(s.csrf)
        );
        second.remove(&token).await.unwrap();
        assert!(first.get(&token, 1002).await.unwrap().is_none());
    }

    #[test]
    fn cookie_values_by_name() {
        let h = "a=1; mecplane_session=tok; b=2";
        assert_eq!(cookie(h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(h, "c"), None);
        assert_eq!(cookie("xmecplane_session=1", SESSION_COOKIE), None);
    }
}
