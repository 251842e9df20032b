//! Container images of application instances, deployed by digest: at instantiation a tag a
//! package names is resolved at its registry (OCI distribution API) and the digest pinned, and
//! an image shipped in the package (`Artifacts/images/`, an OCI layout or docker-archive) is
//! pushed to the site's registry and named by the digest the push produced. A pinned digest
//! stays with the instance: a tag that moves later changes no running instance.

mod layout;
mod reference;
mod registry;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use server_kit::outbound::Destinations;

pub use layout::ImageArchive;
#[cfg(any(test, feature = "test-support"))]
pub use layout::testing;
pub use reference::{ImageRef, registry_prefix};
pub use registry::{Registries, RegistryConfig};

/// How images are handled (`[images]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Resolve tags to digests at instantiation and deploy by digest (the default); when off,
    /// referenced images are deployed as written, for labs without a reachable registry.
    pub pin_digests: bool,
    /// Registries reached with their own URL, credentials or CAs; others are reached over
    /// HTTPS through the outbound policy.
    pub registries: Vec<RegistryConfig>,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            pin_digests: true,
            registries: Vec::new(),
        }
    }
}

/// Why an image could not be pinned or pushed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An invalid reference, archive or configuration: retrying does not help.
    #[error("{0}")]
    Invalid(String),
    /// The registry refused the request.
    #[error("registry {host}: {what}")]
    Refused {
        /// Registry.
        host: String,
        /// What it refused.
        what: String,
    },
    /// The registry could not be reached or failed.
    #[error("registry {host} unavailable: {what}")]
    Unavailable {
        /// Registry.
        host: String,
        /// What failed.
        what: String,
    },
    /// Local spooling failed.
    #[error("image spool: {0}")]
    Io(#[from] std::io::Error),
}

impl ImageError {
    /// Whether a later attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Io(_))
    }
}

/// Pins and pushes images.
#[derive(Debug)]
pub struct Images {
    pin_digests: bool,
    registries: Registries,
    spool: PathBuf,
}

impl Images {
    /// Images as `config` says, registries not configured reached through `destinations`,
    /// archives spooled under `spool`.
    pub fn new(
        config: &ImagesConfig,
        destinations: &Destinations,
        spool: PathBuf,
    ) -> Result<Self, ImageError> {
        Ok(Self {
            pin_digests: config.pin_digests,
            registries: Registries::new(&config.registries, destinations)?,
            spool,
        })
    }

    /// Whether tags are resolved to digests.
    pub fn pins_digests(&self) -> bool {
        self.pin_digests
    }

    /// Where image archives are spooled before a push.
    pub fn spool_dir(&self) -> &Path {
        &self.spool
    }

    /// `reference` with the digest its tag names now appended (as written when it carries a
    /// digest already or digests are not pinned).
    pub async fn pin(&self, reference: &str) -> Result<String, ImageError> {
        if !self.pin_digests {
            return Ok(reference.to_owned());
        }
        let image = ImageRef::parse(reference).ok_or_else(|| {
            ImageError::Invalid(format!("{reference:?} is not an image reference"))
        })?;
        if image.digest.is_some() {
            return Ok(reference.to_owned());
        }
        let digest = self.registries.resolve(&image).await?;
        tracing::info!(image = %reference, %digest, "image tag resolved");
        Ok(format!("{reference}@{digest}"))
    }

    /// Pushes the image archive at `path` to `registry` (`host[:port][/prefix]`) as
    /// `name:version`; returns its reference by digest.
    pub async fn push(
        &self,
        path: &Path,
        registry: &str,
        name: &str,
        version: &str,
    ) -> Result<String, ImageError> {
        let written = format!("{}/{name}:{version}", registry.trim_end_matches('/'));
        let target = ImageRef::parse(&written)
            .filter(|_| reference::registry_prefix(registry))
            .ok_or_else(|| {
                ImageError::Invalid(format!(
                    "{written:?} (site registry, image name and version) is not an image reference"
                ))
            })?;
        let path = path.to_owned();
        let archive = tokio::task::spawn_blocking(move || ImageArchive::open(&path))
            .await
            .map_err(|e| ImageError::Io(std::io::Error::other(e)))??;
        let digest = self.registries.push(&target, &archive).await?;
        tracing::info!(image = %written, %digest, blobs = archive.blobs().len(), "image pushed");
        Ok(format!("{written}@{digest}"))
    }
}
