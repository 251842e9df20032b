//! Application package management: the package lifecycle (CREATED → UPLOADING → PROCESSING →
//! ONBOARDED, or back to CREATED with `onboardingFailureDetails` when onboarding fails, as ETSI
//! MEC 010-2 defines no failed state), enable/disable/delete rules, package subscriptions and
//! notifications.
//!
//! Every step is persisted before the next one starts. Uploaded content is stored (see
//! [`blobs`]) before processing. An onboarding is leased by the replica doing it; once the lease
//! expired (that replica crashed or stopped), any replica resumes it: processing from the stored
//! content, an upload by returning the package to CREATED (or re-fetching it from
//! `appPkgPath`). A failed package keeps its failure details and none of its content.

pub mod appd;
pub mod archive;
pub mod blobs;
pub mod chart;
pub mod onboard;
pub mod signature;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use api_specs::ProblemDetails;
use api_specs::common::{LinkType, TimeStamp};
use api_specs::mm1::app_pkgm::{
    AppPkgArtifactInfo, AppPkgFilter, AppPkgInfo, AppPkgInfoLinks, AppPkgNotification,
    AppPkgNotificationLinks, AppPkgNotificationType, AppPkgSWImageInfo, AppPkgSubscription,
    AppPkgSubscriptionInfo, AppPkgSubscriptionType, Checksum, CreateAppPkg, OnboardingState,
    OperationalState, SelfOnlyLinks, UsageState,
};
use app_package::digest::{HashAlgorithm, algorithm_names};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use openssl::x509::store::X509Store;
use serde::{Deserialize, Serialize};
use server_kit::notify::NotificationRow;
use server_kit::outbound::Destinations;
use tokio::sync::Notify;

use self::archive::ArchiveLimits;
use self::blobs::{BlobId, BlobStore};
use self::onboard::{Policy, StoredFile};
use crate::store::{PackageRow, Store, StoreError, Subscriptions};

/// Base path of the package management API.
pub const APP_PKGM_BASE: &str = "/app_pkgm/v1";

pub use app_package::PackageProblem;

/// A package management failure.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// No such package or subscription.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind.
        kind: &'static str,
        /// Identifier.
        id: String,
    },
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The package's current state (or that of the packages onboarded) does not allow the
    /// request: 403, as ETSI MEC 010-2 lists for "not allowed given the current status".
    #[error("{0}")]
    NotAllowed(String),
    /// The package content is too large.
    #[error("{0}")]
    TooLarge(String),
    /// The package content was rejected.
    #[error("package rejected: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Rejected(Vec<PackageProblem>),
    /// Persistence failed.
    #[error("store failure")]
    Store(#[from] StoreError),
    /// Local storage failed.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl PackageError {
    fn status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::Invalid(_) | Self::Rejected(_) => 400,
            Self::NotAllowed(_) => 403,
            Self::TooLarge(_) => 413,
            Self::Store(_) | Self::Storage(_) => 500,
        }
    }

    /// The problem kept on a failed package.
    fn problem(&self, instance: String) -> ProblemDetails {
        ProblemDetails {
            problem_type: matches!(self, Self::NotAllowed(_))
                .then(|| api_specs::problem::NOT_ALLOWED_IN_STATE.to_owned()),
            title: Some("Onboarding failed".into()),
            status: self.status(),
            detail: self.to_string(),
            instance: Some(instance),
        }
    }
}

/// Package management settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackageConfig {
    /// Archive limits.
    pub limits: ArchiveLimits,
    /// Refuse packages without a valid signature.
    pub require_signed: bool,
    /// PEM files of the CAs trusted to sign packages.
    pub trust_anchors: Vec<PathBuf>,
    /// Timeout of a fetch from `appPkgPath` (seconds).
    pub fetch_timeout_secs: u64,
    /// How often unreferenced package files are swept (seconds); files younger than this are
    /// kept, as an upload may still be writing them.
    pub gc_interval_secs: u64,
    /// Lease of an onboarding (seconds): the replica uploading or processing a package renews
    /// it; once it expired, any replica takes the onboarding for interrupted and resumes it.
    pub onboarding_lease_secs: u64,
}

impl Default for PackageConfig {
    fn default() -> Self {
        Self {
            limits: ArchiveLimits::default(),
            require_signed: false,
            trust_anchors: Vec::new(),
            fetch_timeout_secs: 300,
            gc_interval_secs: 3600,
            onboarding_lease_secs: 30,
        }
    }
}

/// The blobs of one package record: its content and the files found in it. A name that cannot
/// be read is an error: the files must not look unreferenced.
fn blobs_of(
    content: Option<&str>,
    details: Option<&str>,
) -> Result<std::collections::HashSet<BlobId>, PackageError> {
    let unreadable = |what: String| {
        PackageError::Storage(format!(
            "a package record is unreadable ({what}); files kept"
        ))
    };
    let mut blobs = std::collections::HashSet::new();
    if let Some(c) = content {
        blobs.insert(BlobId::parse(c).ok_or_else(|| unreadable(format!("content {c:?}")))?);
    }
    if let Some(d) = details {
        let d: Details = serde_json::from_str(d).map_err(|e| unreadable(e.to_string()))?;
        for f in d.files {
            blobs.insert(
                f.blob_id()
                    .ok_or_else(|| unreadable(format!("file {}", f.path)))?,
            );
        }
    }
    Ok(blobs)
}

/// Why a package that is not ONBOARDED cannot serve a request.
fn not_onboarded(row: &PackageRow) -> PackageError {
    PackageError::NotAllowed(format!(
        "package {} is {}, not ONBOARDED",
        row.id, row.onboarding_state
    ))
}

/// Results of onboarding, stored with the package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Details {
    #[serde(rename = "appDId")]
    app_d_id: String,
    app_name: String,
    app_provider: String,
    app_software_version: String,
    #[serde(rename = "appDVersion")]
    app_d_version: String,
    mec_info: Vec<String>,
    checksum: Checksum,
    software_images: Vec<AppPkgSWImageInfo>,
    additional_artifacts: Vec<AppPkgArtifactInfo>,
    signing_certificate: Option<String>,
    appd_path: String,
    appd_source: String,
    files: Vec<StoredFile>,
}

/// Renews an onboarding's lease while alive (see [`Packages::keep_alive`]).
struct KeepAlive(tokio::task::JoinHandle<()>);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a package is addressed: by package id or by AppD id.
#[derive(Debug, Clone, Copy)]
pub enum PkgRef<'a> {
    /// `/app_packages/{appPkgId}`.
    Id(&'a str),
    /// `/onboarded_app_packages/{appDId}` (a package id is accepted too).
    AppDId(&'a str),
}

fn state_name<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_state<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// The package manager.
pub struct Packages {
    store: Store,
    blobs: BlobStore,
    config: PackageConfig,
    trust: Option<Arc<X509Store>>,
    api_root: String,
    wake: Arc<Notify>,
    http: reqwest::Client,
    destinations: Destinations,
}

impl std::fmt::Debug for Packages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packages")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Packages {
    /// The package manager over `store`, storing files in `blobs`.
    pub fn new(
        store: Store,
        blobs: BlobStore,
        config: PackageConfig,
        api_root: String,
        wake: Arc<Notify>,
        destinations: Destinations,
    ) -> Result<Self, PackageError> {
        let trust = if config.trust_anchors.is_empty() {
            None
        } else {
            Some(Arc::new(
                signature::trust_store(&config.trust_anchors).map_err(|e| {
                    PackageError::Storage(format!("{e}: {:?}", std::error::Error::source(&e)))
                })?,
            ))
        };
        let timeout = std::time::Duration::from_secs(config.fetch_timeout_secs);
        let http = destinations
            .client(reqwest::Client::builder().timeout(timeout))
            .map_err(|e| PackageError::Storage(e.to_string()))?;
        Ok(Self {
            store,
            blobs,
            config,
            trust,
            api_root,
            wake,
            http,
            destinations,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store of package files.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// How long a blob no record names is kept: an upload must record what it wrote sooner.
    fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.gc_interval_secs.max(1))
    }

    /// The onboarding lease.
    pub fn onboarding_lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.onboarding_lease_secs.max(1))
    }

    /// Renews the lease of package `id`'s onboarding until the guard is dropped.
    fn keep_alive(&self, id: &str) -> KeepAlive {
        let (store, id) = (self.store.clone(), id.to_owned());
        let every = self.onboarding_lease() / 3;
        KeepAlive(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store
                    .package_touch(&id, server_kit::unix_millis_now())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(package = %id, error = %e, "cannot renew the onboarding lease")
                    }
                }
            }
        }))
    }

    /// Refuses to record blobs an onboarding started writing at `started` once half the grace
    /// period has passed: the sweep of another replica may take them for abandoned soon.
    fn in_time(&self, started: std::time::Instant) -> Result<(), PackageError> {
        if started.elapsed() > self.grace() / 2 {
            return Err(PackageError::Storage(format!(
                "storing the package took longer than half the clean-up grace period \
                 (packages.gc_interval_secs = {})",
                self.config.gc_interval_secs
            )));
        }
        Ok(())
    }

    /// URL prefix of the package management API.
    pub fn base_url(&self) -> String {
        format!("{}{APP_PKGM_BASE}", self.api_root)
    }

    fn href(&self, id: &str) -> String {
        format!("{}/app_packages/{id}", self.base_url())
    }

    fn info(&self, row: &PackageRow) -> AppPkgInfo {
        let request: Option<CreateAppPkg> = serde_json::from_str(&row.create_request).ok();
        let details: Option<Details> = row
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        let failure: Option<ProblemDetails> = row
            .failure
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok());
        let href = self.href(&row.id);
        let (name, version, provider, user_data, declared) = match &request {
            Some(r) => (
                r.app_pkg_name.clone(),
                r.app_pkg_version.clone(),
                r.app_provider.clone(),
                r.user_defined_data.clone(),
                r.checksum.clone(),
            ),
            None => Default::default(),
        };
        AppPkgInfo {
            id: row.id.clone(),
            app_d_id: details
                .as_ref()
                .map(|d| d.app_d_id.clone())
                .unwrap_or_default(),
            app_provider: details
                .as_ref()
                .map(|d| d.app_provider.clone())
                .or(provider),
            app_name: details.as_ref().map_or(name, |d| d.app_name.clone()),
            app_software_version: details
                .as_ref()
                .map_or(version, |d| d.app_software_version.clone()),
            app_d_version: details
                .as_ref()
                .map(|d| d.app_d_version.clone())
                .unwrap_or_default(),
            checksum: details
                .as_ref()
                .map(|d| d.checksum.clone())
                .or(declared)
                .unwrap_or(Checksum {
                    algorithm: "SHA-256".into(),
                    hash: String::new(),
                }),
            signing_certificate: details.as_ref().and_then(|d| d.signing_certificate.clone()),
            software_images: details
                .as_ref()
                .map(|d| d.software_images.clone())
                .unwrap_or_default(),
            additional_artifacts: details
                .as_ref()
                .map(|d| d.additional_artifacts.clone())
                .unwrap_or_default(),
            onboarding_state: parse_state(&row.onboarding_state)
                .unwrap_or(OnboardingState::Created),
            operational_state: parse_state(&row.operational_state)
                .unwrap_or(OperationalState::Disabled),
            usage_state: parse_state(&row.usage_state).unwrap_or(UsageState::NotInUse),
            mec_info: details
                .as_ref()
                .map(|d| d.mec_info.clone())
                .unwrap_or_default(),
            user_defined_data: user_data,
            onboarding_failure_details: failure,
            links: AppPkgInfoLinks {
                app_d: LinkType::new(format!("{href}/appd")),
                app_pkg_content: LinkType::new(format!("{href}/package_content")),
                self_: LinkType::new(href),
            },
        }
    }

    async fn row(&self, r: PkgRef<'_>) -> Result<PackageRow, PackageError> {
        let found = match r {
            PkgRef::Id(id) => self.store.package_get(id).await?,
            PkgRef::AppDId(id) => match self.store.package_get_by_appd(id).await? {
                Some(row) => Some(row),
                None => self.store.package_get(id).await?,
            },
        };
        let id = match r {
            PkgRef::Id(id) | PkgRef::AppDId(id) => id,
        };
        found.ok_or_else(|| PackageError::NotFound {
            kind: "application package",
            id: id.to_owned(),
        })
    }

    // === lifecycle ===

    /// Creates a package resource; with `appPkgPath` the content is fetched in the background.
    pub async fn create(
        self: &Arc<Self>,
        request: CreateAppPkg,
    ) -> Result<AppPkgInfo, PackageError> {
        use api_specs::common::{MAX_NAME, check_text};
        check_text("appPkgName", &request.app_pkg_name, MAX_NAME)
            .and_then(|()| check_text("appPkgVersion", &request.app_pkg_version, MAX_NAME))
            .map_err(PackageError::Invalid)?;
        if let Some(c) = &request.checksum {
            match HashAlgorithm::parse(&c.algorithm) {
                None => {
                    return Err(PackageError::Invalid(format!(
                        "checksum algorithm {:?} is not supported (supported: {})",
                        c.algorithm,
                        algorithm_names()
                    )));
                }
                Some(a) if !a.well_formed(&c.hash) => {
                    return Err(PackageError::Invalid(format!(
                        "a {} checksum is {} hex digits",
                        a.name(),
                        a.hex_len()
                    )));
                }
                Some(_) => {}
            }
        }
        let fetch_from = match request.app_pkg_path.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => {
                self.destinations
                    .check_client_uri("appPkgPath", path)
                    .map_err(PackageError::Invalid)?;
                Some(path.to_owned())
            }
            None => None,
        };
        let now = server_kit::unix_millis_now();
        let row = PackageRow {
            id: uuid::Uuid::new_v4().to_string(),
            app_d_id: None,
            app_d_version: None,
            onboarding_state: state_name(OnboardingState::Created),
            operational_state: state_name(OperationalState::Disabled),
            usage_state: state_name(UsageState::NotInUse),
            create_request: serde_json::to_string(&request).unwrap_or_default(),
            content_hash: None,
            details: None,
            appd: None,
            failure: None,
            created_at: now,
        };
        self.store.package_insert(&row).await?;
        tracing::info!(package = %row.id, name = %request.app_pkg_name, "package resource created");
        if let Some(uri) = fetch_from {
            let this = self.clone();
            let id = row.id.clone();
            tokio::spawn(async move { this.fetch(&id, &uri).await });
        }
        Ok(self.info(&row))
    }

    async fn fetch(&self, id: &str, uri: &str) {
        tracing::info!(package = %id, %uri, "fetching package content");
        let result = async {
            // what the client is told says what kind of failure it was, never what answered
            let response = self.http.get(uri).send().await.map_err(|e| {
                tracing::info!(package = %id, error = %server_kit::problem::error_chain(&e), "fetch failed");
                PackageError::Invalid(format!(
                    "cannot fetch the package from appPkgPath: {}",
                    Destinations::describe(&e)
                ))
            })?;
            if !response.status().is_success() {
                return Err(PackageError::Invalid(format!(
                    "cannot fetch the package from appPkgPath: it answered HTTP {}",
                    response.status().as_u16()
                )));
            }
            Ok(response
                .bytes_stream()
                .map(|c| c.map_err(|e| e.to_string())))
        }
        .await;
        let outcome = match result {
            Ok(stream) => self.upload(PkgRef::Id(id), stream).await.map(|_| ()),
            Err(e) => {
                if matches!(
                    self.store
                        .package_transition(
                            id,
                            &["CREATED"],
                            "UPLOADING",
                            server_kit::unix_millis_now()
                        )
                        .await,
                    Ok(true)
                ) {
                    self.fail(id, &e).await;
                }
                Err(e)
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(package = %id, error = %e, "fetching the package failed");
        }
    }

    /// Removes blobs no package references any more (after a failed onboarding, or the
    /// package's deletion): blobs are written once for one package, so no other replica can
    /// come to name one of them.
    async fn discard(&self, ids: impl IntoIterator<Item = BlobId>) {
        let referenced = match self.referenced_blobs().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list referenced package files; leaving them to the sweep");
                return;
            }
        };
        let unreferenced: Vec<BlobId> = ids
            .into_iter()
            .filter(|h| !referenced.contains(h))
            .collect();
        if let Err(e) = self.blobs.remove(&unreferenced).await {
            tracing::warn!(error = %e, "cannot remove package files; leaving them to the sweep");
        }
    }

    async fn fail(&self, id: &str, error: &PackageError) {
        let problem = error.problem(self.href(id));
        let json = serde_json::to_string(&problem).unwrap_or_default();
        match self
            .store
            .package_failed(id, &json, server_kit::unix_millis_now())
            .await
        {
            Ok(true) => tracing::info!(package = %id, error = %error, "onboarding failed"),
            Ok(false) => {
                tracing::warn!(package = %id, error = %error, "onboarding failed after the package left onboarding")
            }
            Err(e) => {
                tracing::error!(package = %id, error = %e, "cannot record the onboarding failure")
            }
        }
    }

    /// Uploads the content of a CREATED package (new, or back from a failed onboarding) and
    /// onboards it.
    pub async fn upload<S, E>(&self, r: PkgRef<'_>, mut body: S) -> Result<AppPkgInfo, PackageError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let row = self.row(r).await?;
        let id = row.id.clone();
        let now = server_kit::unix_millis_now();
        if !self
            .store
            .package_transition(&id, &["CREATED"], "UPLOADING", now)
            .await?
        {
            return Err(PackageError::NotAllowed(format!(
                "package {id} is {}: content can only be uploaded to a CREATED package",
                row.onboarding_state
            )));
        }
        let _alive = self.keep_alive(&id);
        tracing::info!(package = %id, "uploading package content");
        let limit = self.config.limits.max_package_bytes;
        let declared: Option<(HashAlgorithm, Checksum)> =
            serde_json::from_str::<CreateAppPkg>(&row.create_request)
                .ok()
                .and_then(|r| r.checksum)
                .and_then(|c| HashAlgorithm::parse(&c.algorithm).map(|a| (a, c)));
        let stored = async {
            let mut writer = self.blobs.writer(limit);
            // the blob address is the SHA-256; another declared algorithm is computed alongside
            let mut other = match declared.as_ref().map(|(a, _)| *a) {
                Some(a) if a != HashAlgorithm::Sha256 => Some(
                    a.digest()
                        .map_err(|e| PackageError::Storage(e.to_string()))?,
                ),
                _ => None,
            };
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        writer.abort().await;
                        return Err(PackageError::Invalid(format!("upload interrupted: {e}")));
                    }
                };
                let written = match other
                    .as_mut()
                    .map_or(Ok(()), |d| std::io::Write::write_all(d, &chunk))
                {
                    Ok(()) => writer.write(&chunk).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = written {
                    writer.abort().await;
                    return Err(if e.kind() == std::io::ErrorKind::FileTooLarge {
                        PackageError::TooLarge(format!("package exceeds {limit} bytes"))
                    } else {
                        PackageError::Storage(e.to_string())
                    });
                }
            }
            if writer.size() == 0 {
                writer.abort().await;
                // not a package, like any other content that is not one
                return Err(PackageError::Rejected(vec![PackageProblem::new(
                    "",
                    "the package content is empty".into(),
                )]));
            }
            let other = match other.map(app_package::digest::Digest::finish).transpose() {
                Ok(o) => o,
                Err(e) => {
                    writer.abort().await;
                    return Err(PackageError::Storage(e.to_string()));
                }
            };
            let started = writer.started();
            let (blob, _) = writer
                .commit()
                .await
                .map_err(|e| PackageError::Storage(e.to_string()))?;
            if let Err(e) = self.in_time(started) {
                self.discard([blob]).await;
                return Err(e);
            }
            Ok((other.unwrap_or_else(|| blob.sha256().to_owned()), blob))
        }
        .await;
        let (actual, blob) = match stored {
            Ok(s) => s,
            Err(e) => {
                self.fail(&id, &e).await;
                return Err(e);
            }
        };
        if let Some((a, c)) = declared.filter(|(_, c)| !c.hash.eq_ignore_ascii_case(&actual)) {
            let e = PackageError::Rejected(vec![PackageProblem::new(
                "",
                format!(
                    "content {} checksum is {actual}, the package resource declares {}",
                    a.name(),
                    c.hash
                ),
            )]);
            self.fail(&id, &e).await;
            self.discard([blob]).await;
            return Err(e);
        }
        if !self
            .store
            .package_content_stored(&id, blob.as_str(), server_kit::unix_millis_now())
            .await?
        {
            self.discard([blob]).await;
            return Err(PackageError::NotAllowed(format!(
                "package {id} changed during the upload"
            )));
        }
        self.process(&id, &blob).await
    }

    /// PROCESSING: validates the stored content and onboards the package, or fails it.
    async fn process(&self, id: &str, content: &BlobId) -> Result<AppPkgInfo, PackageError> {
        tracing::info!(package = %id, %content, "processing package");
        let started = std::time::Instant::now();
        let blobs = self.blobs.clone();
        let limits = self.config.limits;
        let require_signed = self.config.require_signed;
        let trust = self.trust.clone();
        let runtime = tokio::runtime::Handle::current();
        let blob = content.clone();
        let result = tokio::task::spawn_blocking(move || {
            let policy = Policy {
                limits,
                require_signed,
                trust: trust.as_deref(),
            };
            let reader = blobs.reader(&blob, &runtime).map_err(|e| {
                vec![PackageProblem::new(
                    "",
                    format!("cannot read the stored package: {e}"),
                )]
            })?;
            onboard::onboard(reader, &policy, &blobs, &runtime)
        })
        .await
        .map_err(|e| PackageError::Storage(format!("onboarding task failed: {e}")))?;
        let onboarded = match result {
            Ok(o) => o,
            Err(problems) => {
                let e = PackageError::Rejected(problems);
                self.fail(id, &e).await;
                self.discard([content.clone()]).await;
                return Err(e);
            }
        };
        let written = || {
            std::iter::once(content.clone())
                .chain(onboarded.files.iter().filter_map(StoredFile::blob_id))
        };
        if let Err(e) = self.in_time(started) {
            self.fail(id, &e).await;
            self.discard(written()).await;
            return Err(e);
        }
        let appd = &onboarded.appd;
        let details = Details {
            app_d_id: appd.app_d_id.clone(),
            app_name: appd.app_name.clone(),
            app_provider: appd.app_provider.clone(),
            app_software_version: appd.app_soft_version.clone(),
            app_d_version: appd.app_d_version.clone(),
            mec_info: appd.mec_version.clone(),
            checksum: Checksum {
                algorithm: "SHA-256".into(),
                hash: content.sha256().to_owned(),
            },
            software_images: onboarded.software_images.clone(),
            additional_artifacts: onboarded.additional_artifacts.clone(),
            signing_certificate: onboarded.signing_certificate.clone(),
            appd_path: onboarded.appd_path.clone(),
            appd_source: onboarded.appd_source.clone(),
            files: onboarded.files.clone(),
        };
        let now = server_kit::unix_millis_now();
        let notifications = self
            .notifications(
                AppPkgNotificationType::AppPackageOnBoarded,
                id,
                appd,
                OperationalState::Enabled,
                UsageState::NotInUse,
                now,
            )
            .await?;
        let stored = self
            .store
            .package_onboarded(
                id,
                &appd.app_d_id,
                &appd.app_d_version,
                &serde_json::to_string(&details).unwrap_or_default(),
                &serde_json::to_string(appd).unwrap_or_default(),
                &notifications,
                now,
            )
            .await;
        match stored {
            Ok(true) => {
                self.wake.notify_one();
                tracing::info!(package = %id, app_d_id = %appd.app_d_id, "package onboarded");
                self.get(PkgRef::Id(id)).await
            }
            Ok(false) => Err(PackageError::NotAllowed(format!(
                "package {id} left PROCESSING during onboarding"
            ))),
            Err(StoreError::Duplicate) => {
                let e = PackageError::NotAllowed(format!(
                    "an onboarded package already has appDId {} and appDVersion {}",
                    appd.app_d_id, appd.app_d_version
                ));
                self.fail(id, &e).await;
                self.discard(written()).await;
                Err(e)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Resumes the onboardings whose lease expired (their replica stopped or crashed; at
    /// start-up, this one's previous run): re-processes stored content, re-fetches or resets
    /// interrupted uploads. Of replicas recovering at once, one takes each.
    pub async fn recover(self: &Arc<Self>) -> Result<(), PackageError> {
        let now = server_kit::unix_millis_now();
        let lease = i64::try_from(self.onboarding_lease().as_millis()).unwrap_or(i64::MAX);
        let stale = self
            .store
            .package_take_stale(now.saturating_sub(lease), now)
            .await?;
        for row in stale {
            match (row.onboarding_state.as_str(), &row.content_hash) {
                ("PROCESSING", Some(content)) => {
                    tracing::info!(package = %row.id, "resuming interrupted processing");
                    let Some(content) = BlobId::parse(content) else {
                        tracing::error!(package = %row.id, %content, "the package's content is named unreadably; left PROCESSING");
                        continue;
                    };
                    let _alive = self.keep_alive(&row.id);
                    if let Err(e) = self.process(&row.id, &content).await {
                        tracing::warn!(package = %row.id, error = %e, "resumed onboarding failed");
                    }
                }
                _ => {
                    let now = server_kit::unix_millis_now();
                    self.store
                        .package_transition(&row.id, &["UPLOADING", "PROCESSING"], "CREATED", now)
                        .await?;
                    let path = serde_json::from_str::<CreateAppPkg>(&row.create_request)
                        .ok()
                        .and_then(|r| r.app_pkg_path)
                        .filter(|p| !p.is_empty());
                    match path {
                        Some(uri) => {
                            tracing::info!(package = %row.id, "re-fetching interrupted download");
                            let this = self.clone();
                            tokio::spawn(async move { this.fetch(&row.id, &uri).await });
                        }
                        None => {
                            tracing::info!(package = %row.id, "interrupted upload discarded; the package awaits content again")
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Every blob a package record names. A record that cannot be read is an error: its files
    /// must not look unreferenced.
    async fn referenced_blobs(&self) -> Result<std::collections::HashSet<BlobId>, PackageError> {
        let mut referenced = std::collections::HashSet::new();
        for (content, details) in self.store.referenced_blobs().await? {
            referenced.extend(blobs_of(content.as_deref(), details.as_deref())?);
        }
        Ok(referenced)
    }

    /// Removes stored files no package references that are older than `grace` (younger ones
    /// may belong to an upload still in progress, here or at another replica sharing the
    /// store); says what it removed and what it kept.
    pub async fn collect_garbage(
        &self,
        grace: std::time::Duration,
    ) -> Result<blobs::Swept, PackageError> {
        let referenced = self.referenced_blobs().await?;
        let before = std::time::SystemTime::now() - grace;
        self.blobs
            .collect_garbage(&referenced, before)
            .await
            .map_err(|e| PackageError::Storage(e.to_string()))
    }

    // === queries ===

    /// One package.
    pub async fn get(&self, r: PkgRef<'_>) -> Result<AppPkgInfo, PackageError> {
        Ok(self.info(&self.row(r).await?))
    }

    /// Every package.
    pub async fn list(&self) -> Result<Vec<AppPkgInfo>, PackageError> {
        Ok(self
            .store
            .package_list()
            .await?
            .iter()
            .map(|r| self.info(r))
            .collect())
    }

    /// The AppD of an onboarded package: (JSON, original text, its path).
    pub async fn appd(&self, r: PkgRef<'_>) -> Result<(serde_json::Value, String), PackageError> {
        let row = self.row(r).await?;
        let details: Option<Details> = row
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok());
        match (
            row.appd
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
            details,
        ) {
            (Some(appd), Some(d)) if row.onboarding_state == "ONBOARDED" => {
                Ok((appd, d.appd_source))
            }
            _ => Err(not_onboarded(&row)),
        }
    }

    /// The stored content of an onboarded package (read it from [`Packages::blobs`]).
    pub async fn content(&self, r: PkgRef<'_>) -> Result<BlobId, PackageError> {
        let row = self.row(r).await?;
        match (&row.content_hash, row.onboarding_state.as_str()) {
            (Some(content), "ONBOARDED") => BlobId::parse(content).ok_or_else(|| {
                PackageError::Storage(format!("package {} names its content unreadably", row.id))
            }),
            _ => Err(not_onboarded(&row)),
        }
    }

    /// The stored files of an onboarded package.
    pub async fn files(&self, r: PkgRef<'_>) -> Result<Vec<StoredFile>, PackageError> {
        let row = self.row(r).await?;
        if row.onboarding_state != "ONBOARDED" {
            return Err(not_onboarded(&row));
        }
        let details: Details = row
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .ok_or_else(|| {
                PackageError::Storage(format!("package {} has no readable record", row.id))
            })?;
        Ok(details.files)
    }

    /// Copies a stored `file` to `dest`, checking its content against its recorded sha256.
    pub async fn spool(&self, file: &StoredFile, dest: &Path) -> Result<(), PackageError> {
        use tokio::io::AsyncWriteExt;
        let storage =
            |e: std::io::Error| PackageError::Storage(format!("cannot copy {}: {e}", file.path));
        let blob = file
            .blob_id()
            .ok_or_else(|| PackageError::Storage(format!("{} is stored unreadably", file.path)))?;
        let mut stream = self
            .blobs
            .stream(&blob, 0..file.size)
            .await
            .map_err(storage)?;
        let mut out = tokio::fs::File::create(dest).await.map_err(storage)?;
        let mut hasher = openssl::sha::Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(storage)?;
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(storage)?;
        }
        out.flush().await.map_err(storage)?;
        if app_package::hex(&hasher.finish()) != file.sha256 {
            return Err(PackageError::Storage(format!(
                "{} does not match its recorded checksum",
                file.path
            )));
        }
        Ok(())
    }

    /// The packaged Helm chart (`.tgz`) of an onboarded package whose AppD names `mciop_id`.
    pub async fn helm_chart(&self, r: PkgRef<'_>, mciop_id: &str) -> Result<Vec<u8>, PackageError> {
        let content = self.content(r).await?;
        let limits = self.config.limits;
        let mciop_id = mciop_id.to_owned();
        let blobs = self.blobs.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let reader = blobs.reader(&content, &runtime).map_err(|e| {
                PackageError::Storage(format!("cannot read the stored package: {e}"))
            })?;
            let mut archive =
                archive::PackageArchive::open(reader, limits).map_err(PackageError::Rejected)?;
            chart::packaged_chart(&mut archive, &mciop_id)
                .map_err(|p| PackageError::Rejected(vec![p]))
        })
        .await
        .map_err(|e| PackageError::Storage(format!("chart packing stopped: {e}")))?
    }

    // === operations ===

    /// Enables or disables an onboarded package.
    pub async fn set_operational_state(
        &self,
        r: PkgRef<'_>,
        state: OperationalState,
    ) -> Result<(), PackageError> {
        let row = self.row(r).await?;
        if row.onboarding_state != "ONBOARDED" {
            return Err(not_onboarded(&row));
        }
        if row.operational_state == state_name(state) {
            // idempotent: the package is in the state asked for, nothing changes or is notified
            return Ok(());
        }
        let appd: api_specs::mm1::appd::AppD = row
            .appd
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok())
            .ok_or_else(|| {
                PackageError::Storage(format!("package {} has no readable AppD", row.id))
            })?;
        let kind = match state {
            OperationalState::Enabled => AppPkgNotificationType::AppPackageEnabled,
            OperationalState::Disabled => AppPkgNotificationType::AppPackageDisabled,
        };
        let now = server_kit::unix_millis_now();
        let usage = parse_state(&row.usage_state).unwrap_or(UsageState::NotInUse);
        let notifications = self
            .notifications(kind, &row.id, &appd, state, usage, now)
            .await?;
        if !self
            .store
            .package_set_operational(&row.id, &state_name(state), &notifications, now)
            .await?
        {
            return Err(PackageError::NotAllowed(format!(
                "package {} changed concurrently",
                row.id
            )));
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Deletes a package that is DISABLED and NOT_IN_USE.
    pub async fn delete(&self, r: PkgRef<'_>) -> Result<(), PackageError> {
        let row = self.row(r).await?;
        if row.operational_state != "DISABLED"
            || row.usage_state != "NOT_IN_USE"
            || matches!(row.onboarding_state.as_str(), "UPLOADING" | "PROCESSING")
        {
            return Err(PackageError::NotAllowed(format!(
                "package {} is {}/{}/{}: only a DISABLED, NOT_IN_USE package that is not being onboarded may be deleted",
                row.id, row.onboarding_state, row.operational_state, row.usage_state
            )));
        }
        let now = server_kit::unix_millis_now();
        let appd: Option<api_specs::mm1::appd::AppD> = row
            .appd
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok());
        let notifications = match &appd {
            Some(appd) => {
                self.notifications(
                    AppPkgNotificationType::AppPackageDeleted,
                    &row.id,
                    appd,
                    OperationalState::Disabled,
                    UsageState::NotInUse,
                    now,
                )
                .await?
            }
            None => Vec::new(),
        };
        let own = blobs_of(row.content_hash.as_deref(), row.details.as_deref())?;
        if !self.store.package_delete(&row.id, &notifications).await? {
            return Err(PackageError::NotAllowed(format!(
                "package {} changed concurrently",
                row.id
            )));
        }
        self.wake.notify_one();
        // its files go with it, but for those another package holds too
        self.discard(own).await;
        tracing::info!(package = %row.id, "package deleted");
        Ok(())
    }

    // === subscriptions ===

    /// Creates a subscription.
    pub async fn subscribe(
        &self,
        request: AppPkgSubscription,
    ) -> Result<AppPkgSubscriptionInfo, PackageError> {
        self.destinations
            .check_client_uri("callbackUri", &request.callback_uri)
            .map_err(PackageError::Invalid)?;
        request
            .app_pkg_filter
            .iter()
            .try_for_each(AppPkgFilter::validate)
            .map_err(PackageError::Invalid)?;
        let id = uuid::Uuid::new_v4().to_string();
        let info = AppPkgSubscriptionInfo {
            links: SelfOnlyLinks {
                self_: LinkType::new(format!(
                    "{}{APP_PKGM_BASE}/subscriptions/{id}",
                    self.api_root
                )),
            },
            id: id.clone(),
            subscription_type: request.subscription_type,
            callback_uri: request.callback_uri,
            app_pkg_filter: request.app_pkg_filter,
        };
        self.store
            .subscription_insert(
                Subscriptions::Packages,
                &id,
                &serde_json::to_string(&info).unwrap_or_default(),
                server_kit::unix_millis_now(),
            )
            .await?;
        Ok(info)
    }

    /// Every subscription.
    pub async fn subscriptions(&self) -> Result<Vec<AppPkgSubscriptionInfo>, PackageError> {
        Ok(self
            .store
            .subscription_list(Subscriptions::Packages)
            .await?
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }

    /// One subscription.
    pub async fn subscription(&self, id: &str) -> Result<AppPkgSubscriptionInfo, PackageError> {
        self.store
            .subscription_get(Subscriptions::Packages, id)
            .await?
            .and_then(|b| serde_json::from_str(&b).ok())
            .ok_or_else(|| PackageError::NotFound {
                kind: "subscription",
                id: id.to_owned(),
            })
    }

    /// Deletes a subscription.
    pub async fn unsubscribe(&self, id: &str) -> Result<(), PackageError> {
        if self
            .store
            .subscription_delete(Subscriptions::Packages, id)
            .await?
        {
            Ok(())
        } else {
            Err(PackageError::NotFound {
                kind: "subscription",
                id: id.to_owned(),
            })
        }
    }

    /// The notifications an event produces, one per matching subscription.
    async fn notifications(
        &self,
        kind: AppPkgNotificationType,
        package_id: &str,
        appd: &api_specs::mm1::appd::AppD,
        operational: OperationalState,
        usage: UsageState,
        now: i64,
    ) -> Result<Vec<NotificationRow>, PackageError> {
        let wanted = match kind {
            AppPkgNotificationType::AppPackageOnBoarded => {
                AppPkgSubscriptionType::AppPackageOnBoardingSubscription
            }
            AppPkgNotificationType::AppPackageEnabled
            | AppPkgNotificationType::AppPackageDisabled => {
                AppPkgSubscriptionType::AppPackageChangeSubscription
            }
            AppPkgNotificationType::AppPackageDeleted => {
                AppPkgSubscriptionType::AppPackageDeletionSubscription
            }
        };
        let matches = |f: &AppPkgFilter| {
            f.app_pkg_info_id.as_deref().is_none_or(|v| v == package_id)
                && f.app_d_id.as_deref().is_none_or(|v| v == appd.app_d_id)
                && f.app_provider
                    .as_deref()
                    .is_none_or(|v| v == appd.app_provider)
                && f.app_name.as_deref().is_none_or(|v| v == appd.app_name)
                && f.app_software_version
                    .as_deref()
                    .is_none_or(|v| v == appd.app_soft_version)
                && f.app_d_version
                    .as_deref()
                    .is_none_or(|v| v == appd.app_d_version)
                && f.operational_state.is_none_or(|v| v == operational)
                && f.usage_state.is_none_or(|v| v == usage)
        };
        Ok(self
            .subscriptions()
            .await?
            .into_iter()
            .filter(|s| s.subscription_type == wanted)
            .filter(|s| s.app_pkg_filter.is_empty() || s.app_pkg_filter.iter().any(matches))
            .map(|s| {
                let notification = AppPkgNotification {
                    id: uuid::Uuid::new_v4().to_string(),
                    notification_type: kind,
                    subscription_id: s.id.clone(),
                    time_stamp: TimeStamp::from_unix_millis(now),
                    app_pkg_id: package_id.to_owned(),
                    app_d_id: appd.app_d_id.clone(),
                    operational_state: operational,
                    links: AppPkgNotificationLinks {
                        subscription: s.links.self_.clone(),
                    },
                };
                NotificationRow {
                    id: notification.id.clone(),
                    subscription_id: s.id,
                    callback_uri: s.callback_uri,
                    body: serde_json::to_string(&notification).unwrap_or_default(),
                    created_at: now,
                }
            })
            .collect())
    }
}
