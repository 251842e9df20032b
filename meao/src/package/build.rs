//! Builds a package archive from a directory: fills the manifest with the SHA-256 digest of
//! every file and, given a key and certificate, signs it with CMS (NFV-SOL 004 option 1). Used
//! by `meao package` for operators and by the tests for the example packages.

use std::io::Write;
use std::path::{Path, PathBuf};

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use zip::write::SimpleFileOptions;

use super::archive::hex;

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Reading the directory failed.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory has no manifest to fill.
    #[error(
        "the package directory needs TOSCA-Metadata/TOSCA.meta naming an ETSI-Entry-Manifest, or one root .mf file"
    )]
    NoManifest,
    /// Signing failed.
    #[error("cannot sign the manifest")]
    Sign(#[source] openssl::error::ErrorStack),
    /// Writing the archive failed.
    #[error("cannot write the archive")]
    Zip(#[source] zip::result::ZipError),
}

/// A signer: certificate and private key.
pub struct Signer<'a> {
    /// The signing certificate.
    pub cert: &'a X509,
    /// Its private key.
    pub key: &'a PKey<Private>,
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), BuildError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Read { path, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(read_err(dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, std::fs::read(&path).map_err(read_err(&path))?));
        }
    }
    Ok(())
}

/// Builds the zip of `dir`.
pub fn build(dir: &Path, signer: Option<Signer<'_>>) -> Result<Vec<u8>, BuildError> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    let meta = files
        .iter()
        .position(|(n, _)| n == "TOSCA-Metadata/TOSCA.meta");
    let manifest_name = match meta {
        Some(i) => String::from_utf8_lossy(&files[i].1).lines().find_map(|l| {
            l.strip_prefix("ETSI-Entry-Manifest:")
                .map(|v| v.trim().to_owned())
        }),
        None => files
            .iter()
            .find(|(n, _)| !n.contains('/') && n.ends_with(".mf"))
            .map(|(n, _)| n.clone()),
    }
    .ok_or(BuildError::NoManifest)?;
    if let Some(signer) = &signer {
        let cert = signer.cert.to_pem().map_err(BuildError::Sign)?;
        let cert_name = match meta {
            Some(i) => {
                let text = String::from_utf8_lossy(&files[i].1).into_owned();
                match text
                    .lines()
                    .find_map(|l| l.strip_prefix("ETSI-Entry-Certificate:"))
                {
                    Some(existing) => existing.trim().to_owned(),
                    None => {
                        let name = "Files/Certificates/signing.cert".to_owned();
                        files[i].1 =
                            format!("{}\nETSI-Entry-Certificate: {name}\n", text.trim_end())
                                .into_bytes();
                        name
                    }
                }
            }
            None => format!("{}.cert", manifest_name.trim_end_matches(".mf")),
        };
        files.retain(|(n, _)| *n != cert_name);
        files.push((cert_name, cert));
    }
    let manifest_index = files
        .iter()
        .position(|(n, _)| *n == manifest_name)
        .ok_or(BuildError::NoManifest)?;
    let (_, header) = files.remove(manifest_index);
    let mut manifest = String::from_utf8_lossy(&header).trim_end().to_owned();
    manifest.push('\n');
    for (name, content) in &files {
        manifest.push_str(&format!(
            "\nSource: {name}\nAlgorithm: SHA-256\nHash: {}\n",
            hex(&openssl::sha::sha256(content))
        ));
    }
    if let Some(signer) = signer {
        let cms = CmsContentInfo::sign(
            Some(signer.cert),
            Some(signer.key),
            None,
            Some(manifest.as_bytes()),
            CMSOptions::DETACHED | CMSOptions::BINARY,
        )
        .map_err(BuildError::Sign)?;
        let pem = cms.to_pem().map_err(BuildError::Sign)?;
        manifest.push_str(&String::from_utf8_lossy(&pem));
    }
    files.push((manifest_name, manifest.into_bytes()));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in &files {
        zip.start_file(name.as_str(), options)
            .map_err(BuildError::Zip)?;
        zip.write_all(content)
            .map_err(|e| BuildError::Zip(e.into()))?;
    }
    Ok(zip.finish().map_err(BuildError::Zip)?.into_inner())
}
