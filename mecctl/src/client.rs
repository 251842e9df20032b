//! The MEAO's REST APIs over HTTP(S): a bearer token from the client credentials grant
//! (`/oauth2/token`), JSON in and out, and every error answer turned into [`Error::Api`] with the
//! server's ProblemDetails. A request refused with 401 while using a cached token is repeated
//! once with a new token.

use std::sync::Mutex;

use api_specs::ProblemDetails;
use futures::StreamExt as _;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::{SecretSource, TokenCache, secret};
use crate::config::Context;
use crate::error::{ApiFailure, Error};

/// Base path of the package management API.
pub const APP_PKGM: &str = "/app_pkgm/v1";
/// Base path of the LCM API.
pub const APP_LCM: &str = "/app_lcm/v1";
/// Base path of the inventory API.
pub const INVENTORY: &str = "/inventory/v1";

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// None.
    Empty,
    /// JSON.
    Json(Value),
    /// A package zip; `progress` is told how many bytes went out.
    Zip {
        /// The bytes.
        content: bytes::Bytes,
        /// Called with the running total of bytes sent.
        progress: Option<indicatif::ProgressBar>,
    },
}

/// An answer with a success status.
#[derive(Debug)]
pub struct Answer {
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
}

impl Answer {
    /// The `Location` header's last path segment: the id of what the request created.
    pub fn location_id(&self) -> Option<String> {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .map(str::to_owned)
    }
}

/// A client of one MEAO.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    context: Context,
    secret: SecretSource,
    cache: TokenCache,
    token: Mutex<Option<String>>,
    verbose: bool,
}

/// The token endpoint's answer (RFC 6749 section 5.1).
#[derive(Debug, serde::Deserialize)]
struct Grant {
    access_token: String,
    expires_in: Option<u64>,
}

/// The token endpoint's error (RFC 6749 section 5.2).
#[derive(Debug, serde::Deserialize)]
struct GrantError {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl Client {
    /// A client of the MEAO of `context`, trusting its CA file when it has one.
    pub fn new(
        context: Context,
        secret: SecretSource,
        cache: TokenCache,
        verbose: bool,
    ) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("mecctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(ca) = &context.ca_file {
            let pem = std::fs::read(ca).map_err(Error::io(ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Usage(format!("{}: not a PEM certificate: {e}", ca.display()))
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| Error::Local(Box::new(e)))?;
        Ok(Self {
            http,
            context,
            secret,
            cache,
            token: Mutex::new(None),
            verbose,
        })
    }

    /// The context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Forgets the cached token; whether there was one.
    pub fn logout(&self) -> Result<bool, Error> {
        self.cache.remove(&self.context)
    }

    fn remember(&self, token: &str) {
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token.to_owned());
        }
    }

    /// Grants a new token with the client secret, caches it; its lifetime in seconds.
    pub async fn login(&self) -> Result<u64, Error> {
        let secret = secret(&self.context, &self.secret)?;
        let url = format!("{}/oauth2/token", self.context.url);
        let response = self
            .http
            .post(&url)
            .basic_auth(&self.context.client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|source| Error::Unreachable {
                url: self.context.url.clone(),
                source,
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        self.trace("POST", &url, status);
        if !status.is_success() {
            let why = serde_json::from_str::<GrantError>(&text).map_or_else(
                |_| format!("{status}"),
                |e| format!("{}: {}", e.error, e.error_description),
            );
            return Err(Error::Auth(format!(
                "the MEAO at {} refused the credentials of {} ({why})",
                self.context.url, self.context.client_id
            )));
        }
        let grant: Grant = serde_json::from_str(&text).map_err(|e| Error::Unexpected {
            request: format!("POST {url}"),
            detail: e.to_string(),
        })?;
        let expires_in = grant.expires_in.unwrap_or(300);
        self.cache
            .put(&self.context, &grant.access_token, expires_in)?;
        self.remember(&grant.access_token);
        Ok(expires_in)
    }

    async fn bearer(&self, renew: bool) -> Result<String, Error> {
        if !renew {
            if let Some(t) = self.token.lock().ok().and_then(|t| t.clone()) {
                return Ok(t);
            }
            if let Some(t) = self.cache.get(&self.context) {
                self.remember(&t);
                return Ok(t);
            }
        }
        self.login().await?;
        self.token
            .lock()
            .ok()
            .and_then(|t| t.clone())
            .ok_or_else(|| Error::Auth("no token".into()))
    }

    fn trace(&self, method: &str, url: &str, status: StatusCode) {
        if self.verbose {
            eprintln!("{method} {url} -> {status}");
        }
    }

    /// Sends a request to `path` (below the MEAO's URL); the answer if its status is a success.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
        accept: &str,
    ) -> Result<Answer, Error> {
        let url = format!("{}{path}", self.context.url);
        let request_line = format!("{method} {path}");
        let mut renewed = false;
        loop {
            let token = self.bearer(renewed).await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .header(ACCEPT, accept);
            request = match &body {
                Body::Empty => request,
                Body::Json(v) => request.json(v),
                Body::Zip { content, progress } => {
                    let chunks: Vec<bytes::Bytes> = (0..content.len())
                        .step_by(64 * 1024)
                        .map(|at| content.slice(at..content.len().min(at + 64 * 1024)))
                        .collect();
                    let progress = progress.clone();
                    let stream = futures::stream::iter(chunks).map(move |chunk| {
                        if let Some(p) = &progress {
                            p.inc(chunk.len() as u64);
                        }
                        Ok::<_, std::io::Error>(chunk)
                    });
                    request
                        .header(CONTENT_TYPE, "application/zip")
                        .header(CONTENT_LENGTH, content.len())
                        .body(reqwest::Body::wrap_stream(stream))
                }
            };
            let response = request.send().await.map_err(|source| Error::Unreachable {
                url: self.context.url.clone(),
                source,
            })?;
            let status = response.status();
            self.trace(method.as_str(), &url, status);
            if status == StatusCode::UNAUTHORIZED && !renewed {
                // the cached token may predate a restart of the MEAO with a new key
                self.cache.remove(&self.context)?;
                renewed = true;
                continue;
            }
            let headers = response.headers().clone();
            let text = response.text().await.map_err(|source| Error::Unreachable {
                url: self.context.url.clone(),
                source,
            })?;
            if !status.is_success() {
                return Err(api_error(request_line, status, text));
            }
            let body = if text.trim().is_empty() {
                Value::Null
            } else if accept.contains("json") {
                serde_json::from_str(&text).map_err(|e| Error::Unexpected {
                    request: request_line.clone(),
                    detail: format!("not JSON: {e}"),
                })?
            } else {
                Value::String(text)
            };
            return Ok(Answer { headers, body });
        }
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, Error> {
        Ok(self
            .send(Method::GET, path, Body::Empty, "application/json")
            .await?
            .body)
    }

    /// `GET path`, the answer read as `T` (and as received).
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<(T, Value), Error> {
        let value = self.get(path).await?;
        Ok((typed(path, &value)?, value))
    }

    /// `GET path` of a list: each item read as `T`, beside the item as received.
    pub async fn list<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<(T, Value)>, Error> {
        let Value::Array(items) = self.get(path).await? else {
            return Err(Error::Unexpected {
                request: format!("GET {path}"),
                detail: "not a list".into(),
            });
        };
        items
            .into_iter()
            .map(|v| Ok((typed(path, &v)?, v)))
            .collect()
    }

    /// `method path` with a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Value) -> Result<Answer, Error> {
        self.send(method, path, Body::Json(body), "application/json")
            .await
    }
}

/// Reads `value` (the answer to `path`) as `T`.
pub fn typed<T: DeserializeOwned>(path: &str, value: &Value) -> Result<T, Error> {
    T::deserialize(value).map_err(|e| Error::Unexpected {
        request: format!("GET {path}"),
        detail: e.to_string(),
    })
}

/// The error of an answer with an error status: its ProblemDetails, or one made from the status.
fn api_error(request: String, status: StatusCode, body: String) -> Error {
    let problem = serde_json::from_str::<ProblemDetails>(&body).unwrap_or_else(|_| {
        let reason = status.canonical_reason().unwrap_or("error").to_owned();
        ProblemDetails {
            problem_type: None,
            detail: body.trim().chars().take(300).collect::<String>(),
            title: Some(reason),
            status: status.as_u16(),
            instance: None,
        }
    });
    Error::Api(Box::new(ApiFailure {
        request,
        status: status.as_u16(),
        problem,
        body,
    }))
}

/// Percent-encodes one path segment (ids typed by operators may hold anything).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_problem_or_make_one() {
        let e = api_error(
            "GET /x".into(),
            StatusCode::CONFLICT,
            r#"{"title":"Conflict","status":409,"detail":"busy"}"#.into(),
        );
        assert_eq!(e.to_string(), "Conflict: busy");
        assert_eq!(e.exit_code(), crate::error::exit::CONFLICT);
        let state = format!(
            r#"{{"type":"{}","status":403,"detail":"package x is ENABLED"}}"#,
            api_specs::problem::NOT_ALLOWED_IN_STATE
        );
        let e = api_error("DELETE /x".into(), StatusCode::FORBIDDEN, state);
        assert_eq!(e.exit_code(), crate::error::exit::CONFLICT);
        let e = api_error(
            "GET /x".into(),
            StatusCode::FORBIDDEN,
            r#"{"status":403,"detail":"scope app_lcm missing"}"#.into(),
        );
        assert_eq!(e.exit_code(), crate::error::exit::AUTH);
        let e = api_error(
            "GET /x".into(),
            StatusCode::BAD_GATEWAY,
            "upstream\n".into(),
        );
        assert_eq!(e.to_string(), "Bad Gateway: upstream");
        assert_eq!(segment("a b/ü"), "a%20b%2F%C3%BC");
    }
}
