//! Access tokens from the MEP's token endpoint (OAuth 2.0 client credentials, RFC 6749 section
//! 4.4, as ETSI GS MEC 009 asks): one cached token shared by every call, renewed before it
//! expires and after the MEP refused it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use api_specs::oauth::{TokenError, TokenResponse};

use crate::Error;
use crate::settings::{ClientSecret, Settings};

/// Longest time a token is renewed before it expires.
const MAX_RENEW_AHEAD: Duration = Duration::from_secs(60);
/// Longest lifetime a token is trusted for, whatever the MEP says.
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);
/// First and longest pause between start-up attempts.
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(8);

/// A token and when to renew it.
struct Token {
    value: String,
    renew_at: Instant,
    expires_at: Instant,
}

/// The token of one client, fetched on demand.
pub(crate) struct Tokens {
    http: reqwest::Client,
    /// The secret in use (replaced when a rotated one is picked up).
    secret: Mutex<ClientSecret>,
    settings: Settings,
    /// Held while a token is fetched, so concurrent calls wait for one request.
    cached: tokio::sync::Mutex<Option<Token>>,
}

impl Tokens {
    pub(crate) fn new(http: reqwest::Client, settings: &Settings) -> Self {
        Self {
            http,
            secret: Mutex::new(settings.client_secret.clone()),
            settings: settings.clone(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a new one when it is due for renewal. While
    /// the MEP cannot be reached, a token that has not expired yet is used on.
    pub(crate) async fn bearer(&self) -> Result<String, Error> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        if let Some(token) = cached.as_ref().filter(|t| now < t.renew_at) {
            return Ok(token.value.clone());
        }
        match self.fetch().await {
            Ok(token) => {
                let value = token.value.clone();
                *cached = Some(token);
                Ok(value)
            }
            Err(e) if e.is_retryable() => match cached.as_ref().filter(|t| now < t.expires_at) {
                Some(token) => {
                    tracing::warn!(error = %e, "cannot renew the access token yet; using the current one");
                    Ok(token.value.clone())
                }
                None => Err(e),
            },
            Err(e) => {
                *cached = None;
                Err(e)
            }
        }
    }

    /// Forgets `token` after the MEP refused it (revoked, or issued by a restarted MEP), so
    /// the next call fetches a new one; a token fetched meanwhile is kept.
    pub(crate) async fn refused(&self, token: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == token) {
            *cached = None;
        }
    }

    /// Fetches the first token, trying again while the MEP does not know the client yet (it
    /// learns of a new instance's credential shortly after the workload starts), cannot be
    /// reached or throttles, for at most `timeout`.
    pub(crate) async fn first(&self, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            let e = match self.bearer().await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_unknown_client() || e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            let wait = match &e {
                Error::Throttled { retry_after } => *retry_after,
                _ => pause,
            };
            if started.elapsed() + wait > timeout {
                return Err(Error::Startup {
                    waited: started.elapsed(),
                    last: Box::new(e),
                });
            }
            tracing::info!(error = %e, retry_in = ?wait, "the MEP does not accept the credential yet");
            tokio::time::sleep(wait).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// One token request; when the secret is refused and a newer one was mounted meanwhile
    /// (a rotation), that one is tried and kept.
    async fn fetch(&self) -> Result<Token, Error> {
        let secret = self.current_secret();
        match self.request(&secret).await {
            Err(e) if e.is_unknown_client() => {
                let Some(newer) = self.settings.newer_secret(&secret) else {
                    return Err(e);
                };
                let token = self.request(&newer).await?;
                tracing::info!("using the rotated client secret");
                if let Ok(mut s) = self.secret.lock() {
                    *s = newer;
                }
                Ok(token)
            }
            other => other,
        }
    }

    fn current_secret(&self) -> ClientSecret {
        match self.secret.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn request(&self, secret: &ClientSecret) -> Result<Token, Error> {
        let url = &self.settings.token_endpoint;
        let sent = Instant::now();
        let response = self
            .http
            .post(url)
            .basic_auth(&self.settings.client_id, Some(secret.expose()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|source| Error::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs);
            return Err(Error::Throttled { retry_after });
        }
        let body = response.bytes().await.map_err(|source| Error::Transport {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            let refused = serde_json::from_slice::<TokenError>(&body).unwrap_or(TokenError {
                error: status.canonical_reason().unwrap_or("error").to_owned(),
                error_description: None,
            });
            return Err(Error::TokenRefused {
                status: status.as_u16(),
                error: refused.error,
                description: refused.error_description,
            });
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|source| Error::Decode {
                url: url.clone(),
                source,
            })?;
        if !token.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::TokenRefused {
                status: status.as_u16(),
                error: "unsupported_token_type".into(),
                description: Some(format!("token type {}", token.token_type)),
            });
        }
        let lifetime =
            Duration::from_secs(u64::try_from(token.expires_in).unwrap_or(0)).min(MAX_LIFETIME);
        Ok(Token {
            value: token.access_token,
            renew_at: sent + (lifetime - renew_ahead(lifetime)),
            expires_at: sent + lifetime,
        })
    }
}

/// How long before expiry a token of `lifetime` is renewed: a fifth of it, at most a minute.
fn renew_ahead(lifetime: Duration) -> Duration {
    (lifetime / 5).min(MAX_RENEW_AHEAD)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// An in-process token endpoint: refuses the client until `known_after` requests were
    /// made, answers 429 once when `throttle_once`, issues tokens of `lifetime_secs`.
    #[derive(Clone)]
    struct Fake {
        requests: Arc<AtomicU32>,
        known_after: u32,
        throttle_once: bool,
        lifetime_secs: i64,
        secret: &'static str,
    }

    async fn token(State(f): State<Fake>, headers: HeaderMap) -> axum::response::Response {
        let n = f.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if f.throttle_once && n == 1 {
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
        }
        let expected = format!("Basic {}", STANDARD.encode(format!("client:{}", f.secret)));
        let authorized = headers
            .get("authorization")
            .is_some_and(|v| v.to_str().ok() == Some(expected.as_str()));
        if n <= f.known_after || !authorized {
            let body = TokenError {
                error: "invalid_client".into(),
                error_description: Some("client authentication failed".into()),
            };
            return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
        axum::Json(TokenResponse {
            access_token: format!("token-{n}"),
            token_type: "Bearer".into(),
            expires_in: f.lifetime_secs,
            scope: "mec_app_support".into(),
        })
        .into_response()
    }

    async fn serve(fake: Fake) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/oauth2/token", post(token))
            .with_state(fake);
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn fake(known_after: u32, lifetime_secs: i64) -> Fake {
        Fake {
            requests: Arc::default(),
            known_after,
            throttle_once: false,
            lifetime_secs,
            secret: "s1",
        }
    }

    fn tokens(addr: SocketAddr, secret: &str) -> Tokens {
        let settings = Settings::new(
            "i1",
            &format!("http://{addr}"),
            "client",
            ClientSecret::new(secret),
        )
        .unwrap();
        Tokens::new(reqwest::Client::new(), &settings)
    }

    #[tokio::test]
    async fn start_up_waits_for_the_mep_to_know_the_client() {
        let f = fake(3, 3600);
        let t = tokens(serve(f.clone()).await, "s1");
        t.first(Duration::from_secs(10)).await.unwrap();
        assert_eq!(f.requests.load(Ordering::SeqCst), 4);
        assert_eq!(t.bearer().await.unwrap(), "token-4", "cached");
        assert_eq!(f.requests.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn start_up_gives_up_after_its_timeout_and_says_why() {
        let f = fake(u32::MAX, 3600);
        let t = tokens(serve(f.clone()).await, "s1");
        let e = t.first(Duration::from_millis(900)).await.unwrap_err();
        assert!(
            matches!(&e, Error::Startup { last, .. } if last.is_unknown_client()),
            "{e}"
        );
        assert!(f.requests.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn start_up_honours_retry_after() {
        let mut f = fake(0, 3600);
        f.throttle_once = true;
        let t = tokens(serve(f.clone()).await, "s1");
        let started = Instant::now();
        t.first(Duration::from_secs(10)).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "waited for Retry-After"
        );
        // a pause shorter than Retry-After would not fit a shorter budget
        let f = Fake {
            throttle_once: true,
            ..fake(0, 3600)
        };
        let t = tokens(serve(f).await, "s1");
        let e = t.first(Duration::from_millis(500)).await.unwrap_err();
        assert!(
            matches!(&e, Error::Startup { last, .. } if last.status() == Some(429)),
            "{e}"
        );
    }

    #[tokio::test]
    async fn tokens_are_renewed_before_they_expire() {
        let f = fake(0, 2);
        let t = tokens(serve(f.clone()).await, "s1");
        let first = t.bearer().await.unwrap();
        assert_eq!(t.bearer().await.unwrap(), first);
        // renewed a fifth of the lifetime ahead: after 1.7 s of 2 s
        tokio::time::sleep(Duration::from_millis(1700)).await;
        let second = t.bearer().await.unwrap();
        assert_ne!(second, first);
        assert_eq!(f.requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_calls_share_one_token_request() {
        let f = fake(0, 3600);
        let t = Arc::new(tokens(serve(f.clone()).await, "s1"));
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.bearer().await.unwrap() })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), "token-1");
        }
        assert_eq!(f.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_token_is_replaced_once() {
        let f = fake(0, 3600);
        let t = tokens(serve(f.clone()).await, "s1");
        let first = t.bearer().await.unwrap();
        t.refused(&first).await;
        let second = t.bearer().await.unwrap();
        assert_ne!(first, second);
        // a stale refusal does not drop the token fetched meanwhile
        t.refused(&first).await;
        assert_eq!(t.bearer().await.unwrap(), second);
        assert_eq!(f.requests.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_rotated_secret_file_is_picked_up() {
        let f = fake(0, 3600);
        let addr = serve(f.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mec_client_secret");
        std::fs::write(&file, "s1").unwrap();
        let mut settings = Settings::new(
            "i1",
            &format!("http://{addr}"),
            "client",
            ClientSecret::new("s0-rotated-away"),
        )
        .unwrap();
        settings.secret_file = Some(file);
        let t = Tokens::new(reqwest::Client::new(), &settings);
        assert_eq!(
            t.bearer().await.unwrap(),
            "token-2",
            "old secret refused, file used"
        );
        assert_eq!(t.current_secret().expose(), "s1");
    }

    #[test]
    fn renewal_is_a_fifth_ahead_at_most_a_minute() {
        assert_eq!(renew_ahead(Duration::from_secs(10)), Duration::from_secs(2));
        assert_eq!(renew_ahead(Duration::from_secs(3600)), MAX_RENEW_AHEAD);
    }
}
