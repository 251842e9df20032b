//! The MEC application package format (ETSI GS MEC 010-2 clause 6.2.1, laid out as an NFV-SOL
//! 004 CSAR): where the AppD, manifest and certificate are, the manifest's metadata and
//! per-file digests, and building a package zip from a directory with the digests filled in
//! and, optionally, a CMS signature.
//!
//! Both ends use it: the MEAO when it onboards a package, the operator's tools (`meao package`,
//! `mecctl package push`) when they build one. It knows nothing of HTTP, storage or the AppD's
//! contents.

pub mod build;
pub mod digest;
pub mod manifest;

use std::io::Read;

use serde::{Deserialize, Serialize};

/// One problem found in a package, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageProblem {
    /// File in the package, with a JSON pointer into it for descriptor problems.
    pub path: String,
    /// What is wrong.
    pub detail: String,
}

impl PackageProblem {
    /// A problem at `path`.
    pub fn new(path: &str, detail: String) -> Self {
        Self {
            path: path.to_owned(),
            detail,
        }
    }
}

impl std::fmt::Display for PackageProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.detail)
        } else {
            write!(f, "{}: {}", self.path, self.detail)
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `content` in lowercase hex, as a package's `checksum` carries it.
pub fn sha256_hex(content: &[u8]) -> String {
    hex(&openssl::sha::sha256(content))
}

/// What a package says about itself in its manifest's `metadata:` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageMetadata {
    /// `app_product_name`.
    pub name: Option<String>,
    /// `app_package_version`.
    pub version: Option<String>,
    /// `app_provider_id`.
    pub provider: Option<String>,
}

/// Why a package's metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not a readable zip.
    #[error("not a readable zip archive")]
    Zip(#[source] zip::result::ZipError),
    /// The package's layout or manifest is broken.
    #[error("{0}")]
    Layout(PackageProblem),
}

/// Largest manifest or TOSCA.meta read for metadata (bytes).
const MAX_METADATA_BYTES: u64 = 1 << 20;

/// Reads the manifest metadata of the package zip `content`; empty when it has no manifest.
pub fn metadata(content: &[u8]) -> Result<PackageMetadata, ReadError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(content)).map_err(ReadError::Zip)?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(std::borrow::Cow::into_owned))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut read = |name: &str| -> Result<String, PackageProblem> {
        let entry = zip
            .by_name(name)
            .map_err(|e| PackageProblem::new(name, format!("cannot read entry: {e}")))?;
        let mut text = String::new();
        entry
            .take(MAX_METADATA_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| PackageProblem::new(name, format!("not UTF-8 text: {e}")))?;
        Ok(text)
    };
    let layout = manifest::locate(&names, &mut read).map_err(ReadError::Layout)?;
    let Some(path) = layout.manifest else {
        return Ok(PackageMetadata::default());
    };
    let text = read(&path).map_err(ReadError::Layout)?;
    let parsed = manifest::parse_manifest(&path, &text).map_err(|problems| {
        ReadError::Layout(
            problems
                .into_iter()
                .next()
                .unwrap_or_else(|| PackageProblem::new(&path, "unreadable manifest".into())),
        )
    })?;
    let field = |key: &str| {
        parsed
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    Ok(PackageMetadata {
        name: field("app_product_name"),
        version: field("app_package_version"),
        provider: field("app_provider_id"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn example(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/examples/packages")
            .join(name)
    }

    #[test]
    fn metadata_of_built_examples() {
        let zip = build::build(&example("video-analytics"), None).unwrap();
        assert_eq!(
            metadata(&zip).unwrap(),
            PackageMetadata {
                name: Some("video-analytics".into()),
                version: Some("2.3.0".into()),
                provider: Some("ACME Vision".into()),
            }
        );
        let zip = build::build(&example("cdn-cache"), None).unwrap();
        let m = metadata(&zip).unwrap();
        assert_eq!(
            (m.name.as_deref(), m.version.as_deref()),
            (Some("cdn-cache"), Some("5.1.2"))
        );
    }

    #[test]
    fn metadata_of_broken_input() {
        assert!(matches!(metadata(b"not a zip"), Err(ReadError::Zip(_))));
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.start_file("readme.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        let zip = z.finish().unwrap().into_inner();
        assert!(matches!(metadata(&zip), Err(ReadError::Layout(_))));
    }
}
