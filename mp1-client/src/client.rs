//! The client: one HTTP connection pool, one token, calls as one application instance.

use std::sync::Arc;
use std::time::Duration;

use api_specs::ProblemDetails;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::token::Tokens;
use crate::{Error, Settings};

/// Base path of the service management API.
pub(crate) const SERVICE_MGMT: &str = "/mec_service_mgmt/v1";
/// Base path of the application support API.
pub(crate) const APP_SUPPORT: &str = "/mec_app_support/v1";

/// A resource and its entity tag (`ETag`), for conditional updates (`If-Match`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged<T> {
    /// The resource.
    pub value: T,
    /// Its entity tag, when the MEP sent one.
    pub etag: Option<String>,
}

/// A client of the MEP's Mp1 APIs acting as one application instance. Cheap to clone: clones
/// share the connection pool and the access token.
#[derive(Clone)]
pub struct Mp1Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    settings: Settings,
    tokens: Tokens,
}

impl std::fmt::Debug for Mp1Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp1Client")
            .field("app_instance_id", &self.inner.settings.app_instance_id)
            .field("mep_url", &self.inner.settings.mep_url)
            .finish_non_exhaustive()
    }
}

/// A response the MEP accepted.
struct Answer {
    etag: Option<String>,
    body: bytes::Bytes,
}

impl Mp1Client {
    /// A client with `settings`; nothing is sent until the first call.
    pub fn new(settings: Settings) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mp1-client/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|e| Error::Setting {
                name: crate::settings::CA_FILE_ENV,
                reason: format!("cannot read {}: {e}", path.display()),
            })?;
            let certificates =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Setting {
                    name: crate::settings::CA_FILE_ENV,
                    reason: format!("{} holds no PEM certificates: {e}", path.display()),
                })?;
            if certificates.is_empty() {
                return Err(Error::Setting {
                    name: crate::settings::CA_FILE_ENV,
                    reason: format!("{} holds no PEM certificates", path.display()),
                });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(Error::Client)?;
        let tokens = Tokens::new(http.clone(), &settings);
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                settings,
                tokens,
            }),
        })
    }

    /// A client whose credential the MEP accepts: waits (with back-off, at most
    /// [`Settings::startup_timeout`]) while the MEP does not know the client yet, cannot be
    /// reached or throttles token requests.
    pub async fn connect(settings: Settings) -> Result<Self, Error> {
        let client = Self::new(settings)?;
        client
            .inner
            .tokens
            .first(client.inner.settings.startup_timeout)
            .await?;
        Ok(client)
    }

    /// The application instance this client acts as.
    pub fn app_instance_id(&self) -> &str {
        &self.inner.settings.app_instance_id
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// A valid access token, for calling services discovered at the platform that accept the
    /// MEP's tokens (their `transportInfo.security.oAuth2Info`).
    pub async fn access_token(&self) -> Result<String, Error> {
        self.inner.tokens.bearer().await
    }

    /// `{mep_url}{base}{path}`.
    pub(crate) fn url(&self, base: &str, path: &str) -> String {
        format!("{}{base}{path}", self.inner.settings.mep_url)
    }

    /// The path of this client's own instance under `base`: `/applications/{id}...`.
    pub(crate) fn own(&self, base: &str, rest: &str) -> String {
        self.url(
            base,
            &format!("/applications/{}{rest}", segment(self.app_instance_id())),
        )
    }

    /// A link the MEP returned (`_links`), re-rooted at the MEP URL this client uses: the
    /// MEP may name itself differently (a public URL), and the token goes nowhere else.
    pub(crate) fn link(&self, href: &str) -> Result<String, Error> {
        let mep_url = &self.inner.settings.mep_url;
        let rebased = [SERVICE_MGMT, APP_SUPPORT].iter().find_map(|base| {
            let at = href.find(&format!("{base}/"))?;
            let before = &href[..at];
            // only links of a URL's path, not of its query or fragment
            (!before.contains(['?', '#'])).then(|| format!("{mep_url}{}", &href[at..]))
        });
        rebased.ok_or_else(|| Error::ForeignLink {
            href: href.to_owned(),
            mep_url: mep_url.clone(),
        })
    }

    /// Sends a request with the access token; a 401 renews the token and tries once more.
    async fn call(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        if_match: Option<&str>,
    ) -> Result<Answer, Error> {
        let transport = |source| Error::Transport {
            url: url.to_owned(),
            source,
        };
        let mut renewed = false;
        loop {
            let token = self.inner.tokens.bearer().await?;
            let mut request = self
                .inner
                .http
                .request(method.clone(), url)
                .bearer_auth(&token);
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            if let Some(tag) = if_match {
                request = request.header(reqwest::header::IF_MATCH, tag);
            }
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && !renewed {
                tracing::debug!(%url, "access token refused; renewing it");
                self.inner.tokens.refused(&token).await;
                renewed = true;
                continue;
            }
            let etag = response
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.bytes().await.map_err(transport)?;
            if status.is_success() {
                return Ok(Answer { etag, body });
            }
            let problem = serde_json::from_slice::<ProblemDetails>(&body).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&body);
                ProblemDetails {
                    problem_type: None,
                    title: status.canonical_reason().map(str::to_owned),
                    status: status.as_u16(),
                    detail: text.chars().take(200).collect(),
                    instance: None,
                }
            });
            return Err(Error::Api {
                method,
                url: url.to_owned(),
                status: status.as_u16(),
                problem: Box::new(problem),
            });
        }
    }

    fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|source| Error::Decode {
            url: url.to_owned(),
            source,
        })
    }

    /// `GET url` with a query; the decoded body and its entity tag.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<Tagged<T>, Error> {
        let answer = self.call(Method::GET, url, query, None, None).await?;
        Ok(Tagged {
            value: Self::decode(url, &answer.body)?,
            etag: answer.etag,
        })
    }

    /// A request with a JSON body whose answer carries a resource.
    pub(crate) async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: &B,
        if_match: Option<&str>,
    ) -> Result<Tagged<T>, Error> {
        let answer = self
            .call(method, url, &[], Some(json(body)), if_match)
            .await?;
        Ok(Tagged {
            value: Self::decode(url, &answer.body)?,
            etag: answer.etag,
        })
    }

    /// A request (with a JSON body, if any) whose answer carries nothing of interest.
    pub(crate) async fn execute<B: Serialize>(
        &self,
        method: Method,
        url: &str,
        body: Option<&B>,
    ) -> Result<(), Error> {
        self.call(method, url, &[], body.map(json), None).await?;
        Ok(())
    }
}

fn json<B: Serialize>(body: &B) -> Vec<u8> {
    // the API types serialize infallibly (no maps with non-string keys)
    serde_json::to_vec(body).unwrap_or_default()
}

/// `s` as one URL path segment (RFC 3986 unreserved characters kept, the rest escaped).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ClientSecret;

    fn client() -> Mp1Client {
        let settings = Settings::new(
            "app 1",
            "https://10.0.0.1:8443/mep",
            "c",
            ClientSecret::new("s"),
        )
        .unwrap();
        Mp1Client::new(settings).unwrap()
    }

    #[test]
    fn paths_escape_the_instance_id() {
        assert_eq!(
            client().own(APP_SUPPORT, "/confirm_ready"),
            "https://10.0.0.1:8443/mep/mec_app_support/v1/applications/app%201/confirm_ready"
        );
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn links_are_rerooted_at_the_mep_url_in_use() {
        let c = client();
        assert_eq!(
            c.link(
                "https://mep.public.example/mec_service_mgmt/v1/applications/a/subscriptions/s1"
            )
            .unwrap(),
            "https://10.0.0.1:8443/mep/mec_service_mgmt/v1/applications/a/subscriptions/s1"
        );
        for foreign in [
            "https://evil.example/steal",
            "https://evil.example/x?to=/mec_app_support/v1/y",
            "/mec_app_support/v1",
        ] {
            assert!(
                matches!(c.link(foreign), Err(Error::ForeignLink { .. })),
                "{foreign}"
            );
        }
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let mut settings =
            Settings::new("i", "https://mep.example", "c", ClientSecret::new("s")).unwrap();
        settings.ca_file = Some(path);
        let e = Mp1Client::new(settings.clone()).unwrap_err();
        assert!(e.to_string().contains("MEC_CA_FILE"), "{e}");
        settings.ca_file = Some(dir.path().join("missing.pem"));
        assert!(Mp1Client::new(settings).is_err());
    }
}
