//! A client of the OCI distribution API: resolves a tag to its manifest digest and pushes an
//! image (blobs, then manifests) to a repository. Registries the operator configures are
//! reached at their URL with their credentials and CAs; any other registry a package names is
//! reached over HTTPS through the outbound policy, as a client-given destination. Anonymous,
//! basic and bearer-token authentication (the `WWW-Authenticate` challenge of the distribution
//! token protocol).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use server_kit::auth::Secret;
use server_kit::outbound::Destinations;

use super::ImageError;
use super::layout::{ImageArchive, MAX_MANIFEST_BYTES};
use super::reference::{ImageRef, digest};

/// The manifest types a tag may resolve to, most specific last.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The header a registry names a manifest's digest in.
const CONTENT_DIGEST: &str = "docker-content-digest";

/// A registry the operator configures (`[[images.registries]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry's host (and port) as image references and sites' `imageRegistry` name it.
    pub host: String,
    /// Where the MEAO reaches its API (`https://{host}` when absent); `http://` for a lab
    /// registry without TLS.
    #[serde(default)]
    pub url: Option<String>,
    /// User name, for basic authentication or the registry's token service.
    #[serde(default)]
    pub username: Option<String>,
    /// Password or token of `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// PEM file of the CAs its TLS certificate is checked against, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// How one registry is reached.
#[derive(Debug)]
struct Endpoint {
    host: String,
    base: Url,
    client: Client,
    credentials: Option<(String, Secret)>,
    /// Whether the operator configured it (else its URLs pass the outbound policy).
    trusted: bool,
}

/// The registries the MEAO talks to.
pub struct Registries {
    configured: HashMap<String, Arc<Endpoint>>,
    open: Client,
    destinations: Destinations,
    /// `Authorization` values by (host, scope), as the registry's last challenge asked.
    authorizations: Mutex<HashMap<(String, String), String>>,
}

impl std::fmt::Debug for Registries {
    /// The configured hosts, never the authorizations held.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("configured", &self.configured.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn unavailable(host: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Unavailable {
        host: host.to_owned(),
        what: e.to_string(),
    }
}

fn refused(host: &str, what: String) -> ImageError {
    ImageError::Refused {
        host: host.to_owned(),
        what,
    }
}

/// The parameters of a `WWW-Authenticate` challenge: its scheme and `key="value"` pairs.
fn challenge(header: &str) -> (String, HashMap<String, String>) {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => after.split_once(',').unwrap_or((after, "")),
        };
        params.insert(key, value.to_owned());
        rest = tail.trim_start_matches([',', ' ']);
    }
    (scheme.to_ascii_lowercase(), params)
}

impl Registries {
    /// The configured registries; any other is reached through `destinations`.
    pub fn new(
        configs: &[RegistryConfig],
        destinations: &Destinations,
    ) -> Result<Self, ImageError> {
        let invalid = |host: &str, what: String| {
            ImageError::Invalid(format!("images.registries {host}: {what}"))
        };
        let mut configured = HashMap::new();
        for c in configs {
            let base = Url::parse(c.url.as_deref().unwrap_or(&format!("https://{}", c.host)))
                .map_err(|e| invalid(&c.host, e.to_string()))?;
            let mut builder = Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::limited(5));
            if let Some(ca) = &c.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| invalid(&c.host, format!("{}: {e}", ca.display())))?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| invalid(&c.host, e.to_string()))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
            let client = builder
                .build()
                .map_err(|e| invalid(&c.host, e.to_string()))?;
            let credentials = c
                .username
                .clone()
                .map(|u| (u, c.password.clone().unwrap_or_default()));
            configured.insert(
                c.host.clone(),
                Arc::new(Endpoint {
                    host: c.host.clone(),
                    base,
                    client,
                    credentials,
                    trusted: true,
                }),
            );
        }
        let open = destinations
            .client(Client::builder().connect_timeout(Duration::from_secs(10)))
            .map_err(|e| ImageError::Invalid(e.to_string()))?;
        Ok(Self {
            configured,
            open,
            destinations: destinations.clone(),
            authorizations: Mutex::new(HashMap::new()),
        })
    }

    fn endpoint(&self, host: &str) -> Result<Arc<Endpoint>, ImageError> {
        if let Some(e) = self.configured.get(host) {
            return Ok(e.clone());
        }
        // Docker Hub's API answers at another name than its references use
        let api = if host == "docker.io" {
            "registry-1.docker.io"
        } else {
            host
        };
        let base = Url::parse(&format!("https://{api}"))
            .map_err(|e| ImageError::Invalid(format!("registry {host}: {e}")))?;
        Ok(Arc::new(Endpoint {
            host: host.to_owned(),
            base,
            client: self.open.clone(),
            credentials: None,
            trusted: false,
        }))
    }

    /// Sends the request `build` makes (twice when the registry asks for credentials first),
    /// authorized for `scope`.
    async fn send(
        &self,
        ep: &Endpoint,
        scope: &str,
        build: impl Fn(&Client) -> Result<RequestBuilder, ImageError>,
    ) -> Result<Response, ImageError> {
        let key = (ep.host.clone(), scope.to_owned());
        let cached = self
            .authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let response = dispatch(&ep.host, build(&ep.client)?, cached.as_deref()).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let header = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let authorization = self.authenticate(ep, &header, scope).await?;
        let response = dispatch(&ep.host, build(&ep.client)?, Some(&authorization)).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(refused(
                &ep.host,
                format!("credentials refused for {scope}"),
            ));
        }
        self.authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, authorization);
        Ok(response)
    }

    /// The `Authorization` value answering `header`'s challenge for `scope`.
    async fn authenticate(
        &self,
        ep: &Endpoint,
        header: &str,
        scope: &str,
    ) -> Result<String, ImageError> {
        use base64::Engine;
        let (scheme, params) = challenge(header);
        let basic = ep.credentials.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.expose()))
            )
        });
        match scheme.as_str() {
            "basic" => basic
                .ok_or_else(|| refused(&ep.host, "asks for credentials; none configured".into())),
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| refused(&ep.host, "bearer challenge without a realm".into()))?;
                let mut url = Url::parse(realm)
                    .map_err(|e| refused(&ep.host, format!("token realm: {e}")))?;
                if !ep.trusted {
                    self.destinations
                        .check_uri(url.as_str())
                        .map_err(|e| refused(&ep.host, format!("token realm: {e}")))?;
                }
                if let Some(service) = params.get("service") {
                    url.query_pairs_mut().append_pair("service", service);
                }
                url.query_pairs_mut().append_pair("scope", scope);
                let response = dispatch(&ep.host, ep.client.get(url), basic.as_deref()).await?;
                if !response.status().is_success() {
                    return Err(refused(
                        &ep.host,
                        format!("token service answered {}", response.status()),
                    ));
                }
                #[derive(Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let body = bounded(response, 64 * 1024, &ep.host).await?;
                let token: Token = serde_json::from_slice(&body)
                    .map_err(|e| refused(&ep.host, format!("token answer: {e}")))?;
                token
                    .token
                    .or(token.access_token)
                    .map(|t| format!("Bearer {t}"))
                    .ok_or_else(|| refused(&ep.host, "token answer without a token".into()))
            }
            _ => Err(refused(
                &ep.host,
                format!("unsupported authentication {scheme:?}"),
            )),
        }
    }

    fn url(ep: &Endpoint, path: &str) -> Result<Url, ImageError> {
        let url = ep
            .base
            .join(path)
            .map_err(|e| ImageError::Invalid(e.to_string()))?;
        Ok(url)
    }

    /// A checked URL of a registry not configured (client-given) or of one configured.
    fn checked(&self, ep: &Endpoint, url: Url) -> Result<Url, ImageError> {
        if !ep.trusted {
            self.destinations
                .check_uri(url.as_str())
                .map_err(|e| refused(&ep.host, e.to_string()))?;
        }
        Ok(url)
    }

    /// The digest of the manifest `image`'s tag names now.
    pub async fn resolve(&self, image: &ImageRef) -> Result<String, ImageError> {
        let ep = self.endpoint(&image.registry)?;
        let url = self.checked(
            &ep,
            Self::url(
                &ep,
                &format!("/v2/{}/manifests/{}", image.repository, image.reference()),
            )?,
        )?;
        let scope = format!("repository:{}:pull", image.repository);
        let response = self
            .send(&ep, &scope, |c| {
                Ok(c.head(url.clone()).header(ACCEPT, MANIFEST_TYPES))
            })
            .await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(refused(&ep.host, format!("no manifest {image}"))),
            s if s.is_client_error() => return Err(refused(&ep.host, format!("{image}: {s}"))),
            s => return Err(unavailable(&ep.host, format!("{image}: {s}"))),
        }
        if let Some(d) = response
            .headers()
            .get(CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .filter(|d| digest(d))
        {
            return Ok(d.to_owned());
        }
        // no digest header: the digest of the manifest's bytes
        let response = self
            .send(&ep, &scope, |c| {
                Ok(c.get(url.clone()).header(ACCEPT, MANIFEST_TYPES))
            })
            .await?;
        if !response.status().is_success() {
            return Err(unavailable(
                &ep.host,
                format!("{image}: {}", response.status()),
            ));
        }
        let body = bounded(response, MAX_MANIFEST_BYTES, &ep.host).await?;
        Ok(format!(
            "sha256:{}",
            app_package::hex(&openssl::sha::sha256(&body))
        ))
    }

    /// Pushes `archive` to `target`'s repository under its tag: the blobs the registry lacks,
    /// then the manifests, children first. Returns the digest of the image's root manifest.
    pub async fn push(
        &self,
        target: &ImageRef,
        archive: &ImageArchive,
    ) -> Result<String, ImageError> {
        let ep = self.endpoint(&target.registry)?;
        let repo = &target.repository;
        let scope = format!("repository:{repo}:pull,push");
        for blob in archive.blobs() {
            let url = self.checked(
                &ep,
                Self::url(&ep, &format!("/v2/{repo}/blobs/{}", blob.digest))?,
            )?;
            let head = self.send(&ep, &scope, |c| Ok(c.head(url.clone()))).await?;
            if head.status().is_success() {
                continue;
            }
            let start =
                self.checked(&ep, Self::url(&ep, &format!("/v2/{repo}/blobs/uploads/"))?)?;
            let started = self
                .send(&ep, &scope, |c| {
                    Ok(c.post(start.clone()).header(CONTENT_LENGTH, 0))
                })
                .await?;
            if started.status() != StatusCode::ACCEPTED {
                return Err(refused(
                    &ep.host,
                    format!("blob upload to {repo}: {}", started.status()),
                ));
            }
            let location = started
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| refused(&ep.host, "blob upload without a Location".into()))?;
            let mut upload = start
                .join(location)
                .map_err(|e| refused(&ep.host, format!("blob upload Location: {e}")))?;
            upload.query_pairs_mut().append_pair("digest", &blob.digest);
            let upload = self.checked(&ep, upload)?;
            let done = self
                .send(&ep, &scope, |c| {
                    let body = archive.body(blob)?;
                    Ok(c.put(upload.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, blob.size)
                        .body(body))
                })
                .await?;
            created(done, &ep.host, || format!("blob {}", blob.digest)).await?;
        }
        let manifests = archive.manifests();
        for (i, m) in manifests.iter().enumerate() {
            let last = i + 1 == manifests.len();
            let reference = if last {
                target.reference().to_owned()
            } else {
                m.digest.clone()
            };
            let url = self.checked(
                &ep,
                Self::url(&ep, &format!("/v2/{repo}/manifests/{reference}"))?,
            )?;
            let put = self
                .send(&ep, &scope, |c| {
                    Ok(c.put(url.clone())
                        .header(CONTENT_TYPE, &m.media_type)
                        .body(m.bytes.clone()))
                })
                .await?;
            let put = created(put, &ep.host, || format!("manifest {}", m.digest)).await?;
            if let Some(answered) = put
                .headers()
                .get(CONTENT_DIGEST)
                .and_then(|v| v.to_str().ok())
                && answered != m.digest
            {
                return Err(refused(
                    &ep.host,
                    format!("stored manifest {} as {answered}", m.digest),
                ));
            }
        }
        manifests
            .last()
            .map(|m| m.digest.clone())
            .ok_or_else(|| ImageError::Invalid("the image has no manifest".into()))
    }
}

/// Sends `request` to `host`, with `authorization` when given.
async fn dispatch(
    host: &str,
    mut request: RequestBuilder,
    authorization: Option<&str>,
) -> Result<Response, ImageError> {
    if let Some(a) = authorization {
        request = request.header(AUTHORIZATION, a);
    }
    request
        .send()
        .await
        .map_err(|e| unavailable(host, Destinations::describe(&e)))
}

/// `response` if it says 201 Created, else the refusal of `what` with the registry's words.
async fn created(
    response: Response,
    host: &str,
    what: impl FnOnce() -> String,
) -> Result<Response, ImageError> {
    if response.status() == StatusCode::CREATED {
        return Ok(response);
    }
    let status = response.status();
    let text = bounded(response, 4096, host).await.unwrap_or_default();
    Err(refused(
        host,
        format!(
            "{} refused ({status}): {}",
            what(),
            String::from_utf8_lossy(&text)
        ),
    ))
}

/// The body of `response`, at most `limit` bytes.
async fn bounded(response: Response, limit: usize, host: &str) -> Result<Vec<u8>, ImageError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| unavailable(host, e))?;
        if body.len() + chunk.len() > limit {
            return Err(refused(host, format!("answer larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (scheme, p) = challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(scheme, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
        let (scheme, p) = challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (scheme.as_str(), p["realm"].as_str()),
            ("basic", "Registry Realm")
        );
        assert_eq!(challenge("").0, "");
        assert!(
            challenge(r#"Bearer realm="unterminated"#)
                .1
                .contains_key("realm")
        );
    }
}
