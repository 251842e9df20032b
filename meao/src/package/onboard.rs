//! The onboarding pipeline: a stored package file in, a validated AppD and its stored artifacts
//! out. Everything is checked before any artifact is stored; a problem anywhere rejects the
//! whole package with every problem found.

use api_specs::mm1::app_pkgm::{AppPkgArtifactInfo, AppPkgSWImageInfo, Checksum};
use api_specs::mm1::appd::AppD;
use openssl::x509::store::X509Store;
use serde::{Deserialize, Serialize};

use app_package::digest::{HashAlgorithm, algorithm_names};
use app_package::manifest::{Manifest, locate, parse_manifest};

use super::archive::{ArchiveLimits, PackageArchive};
use super::blobs::{BlobId, BlobStore, ReadSeek};
use super::{PackageProblem, appd, signature};

/// Onboarding policy.
pub struct Policy<'a> {
    /// Archive limits.
    pub limits: ArchiveLimits,
    /// Whether unsigned packages are refused.
    pub require_signed: bool,
    /// Trusted CAs for package signatures.
    pub trust: Option<&'a X509Store>,
}

/// A package file stored under its content address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFile {
    /// Path in the package.
    pub path: String,
    /// sha256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The stored blob ([`BlobId`]); absent for files stored by an earlier version, under
    /// their content address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
}

impl StoredFile {
    /// The blob holding the file, if its record names one.
    pub fn blob_id(&self) -> Option<BlobId> {
        BlobId::parse(self.blob.as_deref().unwrap_or(&self.sha256))
    }
}

/// What onboarding produced.
#[derive(Debug, Clone)]
pub struct Onboarded {
    /// The validated AppD.
    pub appd: AppD,
    /// The AppD as written in the package.
    pub appd_source: String,
    /// Path of the AppD in the package.
    pub appd_path: String,
    /// Software images.
    pub software_images: Vec<AppPkgSWImageInfo>,
    /// Other artifacts.
    pub additional_artifacts: Vec<AppPkgArtifactInfo>,
    /// Every file, stored.
    pub files: Vec<StoredFile>,
    /// The signing certificate (PEM), when signed.
    pub signing_certificate: Option<String>,
}

fn sha256_checksum(hash: String) -> Checksum {
    Checksum {
        algorithm: "SHA-256".into(),
        hash,
    }
}

/// Computes a digest of an entry with the algorithm a manifest or AppD names.
fn digest_with(
    archive: &mut PackageArchive,
    path: &str,
    algorithm: &str,
) -> Result<String, PackageProblem> {
    let Some(algorithm) = HashAlgorithm::parse(algorithm) else {
        return Err(PackageProblem::new(
            path,
            format!(
                "unsupported hash algorithm {algorithm} (supported: {})",
                algorithm_names()
            ),
        ));
    };
    if algorithm == HashAlgorithm::Sha256 {
        return archive.digest(path).map(|(h, _)| h);
    }
    let failed =
        |e: openssl::error::ErrorStack| PackageProblem::new(path, format!("cannot hash: {e}"));
    let mut digest = algorithm.digest().map_err(failed)?;
    archive.copy_to(path, &mut digest)?;
    digest.finish().map_err(failed)
}

/// Whether an image reference looks like `[registry[:port]/]name[:tag][@digest]`.
fn image_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./-_:@".contains(&b))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Validates the package `content` and stores its files in `blobs`; blocks (call from a
/// blocking task), the store's writes running on `runtime`.
pub fn onboard(
    content: Box<dyn ReadSeek>,
    policy: &Policy<'_>,
    blobs: &BlobStore,
    runtime: &tokio::runtime::Handle,
) -> Result<Onboarded, Vec<PackageProblem>> {
    let mut archive = PackageArchive::open(content, policy.limits)?;
    let names: Vec<String> = archive.names().map(str::to_owned).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let layout = locate(&name_refs, &mut |p| archive.read_text(p)).map_err(|p| vec![p])?;
    let mut problems = Vec::new();

    // manifest, signature and digests
    let certificate = match &layout.certificate {
        Some(path) => Some(archive.read_text(path).map_err(|p| vec![p])?),
        None => None,
    };
    let manifest: Option<Manifest> = match &layout.manifest {
        Some(path) => {
            let text = archive.read_text(path).map_err(|p| vec![p])?;
            Some(parse_manifest(path, &text)?)
        }
        None => None,
    };
    let signed = manifest.as_ref().is_some_and(|m| m.signature.is_some());
    if let (Some(m), Some(sig)) = (
        &manifest,
        manifest.as_ref().and_then(|m| m.signature.as_ref()),
    ) {
        let path = layout.manifest.clone().unwrap_or_default();
        match policy.trust {
            None => problems.push(PackageProblem::new(
                &path,
                "package is signed but no trust anchors are configured".into(),
            )),
            Some(trust) => {
                if let Err(e) =
                    signature::verify(m.signed_text.as_bytes(), sig, certificate.as_deref(), trust)
                {
                    problems.push(PackageProblem::new(&path, e));
                }
            }
        }
    } else if policy.require_signed {
        problems.push(PackageProblem::new(
            layout.manifest.as_deref().unwrap_or(""),
            "packages must be signed: the manifest carries no CMS signature".into(),
        ));
    }
    if let Some(m) = &manifest {
        let listed: std::collections::HashSet<&str> =
            m.entries.iter().map(|e| e.source.as_str()).collect();
        for entry in &m.entries {
            if !archive.contains(&entry.source) {
                problems.push(PackageProblem::new(
                    &entry.source,
                    "listed in the manifest but not in the package".into(),
                ));
                continue;
            }
            match digest_with(&mut archive, &entry.source, &entry.algorithm) {
                Ok(actual) if actual == entry.hash => {}
                Ok(actual) => problems.push(PackageProblem::new(
                    &entry.source,
                    format!(
                        "digest mismatch: manifest says {}, content is {actual}",
                        entry.hash
                    ),
                )),
                Err(p) => problems.push(p),
            }
        }
        if signed {
            let own = [
                layout.manifest.as_deref(),
                layout.certificate.as_deref(),
                Some("TOSCA-Metadata/TOSCA.meta"),
            ];
            for name in &names {
                if !listed.contains(name.as_str()) && !own.contains(&Some(name.as_str())) {
                    problems.push(PackageProblem::new(
                        name,
                        "not covered by the signed manifest".into(),
                    ));
                }
            }
        }
    }

    // the AppD
    let appd_source = archive.read_text(&layout.descriptor).map_err(|p| vec![p])?;
    let appd = match appd::parse(&layout.descriptor, &appd_source) {
        Ok(value) => match appd::validate(&layout.descriptor, &value) {
            Ok(appd) => Some(appd),
            Err(mut ps) => {
                problems.append(&mut ps);
                None
            }
        },
        Err(p) => {
            problems.push(p);
            None
        }
    };
    let Some(appd) = appd else {
        return Err(problems);
    };

    // images and other artifacts
    let mut software_images = Vec::new();
    let mut image_paths = std::collections::HashSet::new();
    for (i, image) in appd.sw_image_descriptor.iter().enumerate() {
        let at = format!("{}#/swImageDescriptor/{i}", layout.descriptor);
        let included = archive.contains(&image.sw_image);
        let checksum = if included {
            image_paths.insert(image.sw_image.clone());
            let Some(declared) = &image.checksum else {
                problems.push(PackageProblem::new(
                    &at,
                    "an image included in the package needs a checksum".into(),
                ));
                continue;
            };
            match digest_with(&mut archive, &image.sw_image, &declared.algorithm) {
                Ok(actual) if actual == declared.hash.to_ascii_lowercase() => declared.clone(),
                Ok(actual) => {
                    problems.push(PackageProblem::new(
                        &at,
                        format!(
                            "image digest mismatch: AppD says {}, content is {actual}",
                            declared.hash
                        ),
                    ));
                    continue;
                }
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            }
        } else if image_reference(&image.sw_image) {
            let pinned = image
                .sw_image
                .rsplit_once('@')
                .and_then(|(_, d)| d.split_once(':'))
                .and_then(|(a, d)| {
                    HashAlgorithm::parse(a).map(|a| Checksum {
                        algorithm: a.name().into(),
                        hash: d.to_ascii_lowercase(),
                    })
                });
            match image.checksum.clone().or(pinned) {
                Some(c) => c,
                None => {
                    problems.push(PackageProblem::new(
                        &at,
                        "an image reference needs a checksum or a digest (@sha256:…)".into(),
                    ));
                    continue;
                }
            }
        } else {
            problems.push(PackageProblem::new(
                &at,
                format!(
                    "swImage {} is neither a file in the package nor an image reference",
                    image.sw_image
                ),
            ));
            continue;
        };
        software_images.push(AppPkgSWImageInfo {
            id: image.id.clone(),
            name: image.name.clone(),
            provider: appd.app_provider.clone(),
            version: image.version.clone(),
            checksum,
            container_format: image.container_format.clone(),
            disk_format: image.disk_format.clone(),
            min_disk: image.min_disk,
            min_ram: image.min_ram,
            size: image.size,
            image_path: image.sw_image.clone(),
        });
    }
    if let Some(mciop) = appd.mciop_id.as_ref().filter(|m| !archive.contains(m)) {
        problems.push(PackageProblem::new(
            &format!("{}#/mciopId", layout.descriptor),
            format!("mciopId {mciop} is not a file in the package"),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // everything checked: store the files (their entries' sizes are bounded by the limits)
    let mut files = Vec::new();
    for name in &names {
        let mut writer = blobs.writer(u64::MAX).blocking(runtime.clone());
        if let Err(p) = archive.copy_to(name, &mut writer) {
            writer.abort();
            return Err(vec![p]);
        }
        let (blob, size) = writer
            .commit()
            .map_err(|e| vec![PackageProblem::new(name, format!("cannot store: {e}"))])?;
        files.push(StoredFile {
            path: name.clone(),
            sha256: blob.sha256().to_owned(),
            size,
            blob: Some(blob.as_str().to_owned()),
        });
    }
    let metadata = [
        Some(layout.descriptor.as_str()),
        layout.manifest.as_deref(),
        layout.certificate.as_deref(),
        Some("TOSCA-Metadata/TOSCA.meta"),
    ];
    let additional_artifacts = files
        .iter()
        .filter(|f| !metadata.contains(&Some(f.path.as_str())) && !image_paths.contains(&f.path))
        .map(|f| AppPkgArtifactInfo {
            artifact_path: f.path.clone(),
            checksum: sha256_checksum(f.sha256.clone()),
        })
        .collect();
    Ok(Onboarded {
        appd,
        appd_source,
        appd_path: layout.descriptor,
        software_images,
        additional_artifacts,
        files,
        signing_certificate: if signed { certificate } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "nginx",
            "registry.example:5000/va/detector:1.2",
            "a/b@sha256:00ff",
        ] {
            assert!(image_reference(ok), "{ok}");
        }
        for bad in ["", "has space", "/abs", "-x", "a;rm -rf"] {
            assert!(!image_reference(bad), "{bad}");
        }
    }
}
