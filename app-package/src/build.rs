//! Builds a package archive from a directory: fills the manifest with the SHA-256 digest of
//! every file and, given a key and certificate, signs it with CMS (NFV-SOL 004 option 1). Used
//! by `meao package` and `mecctl package push` for operators and by the tests for the example
//! packages.

use std::io::Write;
use std::path::{Path, PathBuf};

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use zip::write::SimpleFileOptions;

use crate::sha256_hex;

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
    /// A signing certificate or key is not PEM.
    #[error("{path} is not a PEM certificate or private key")]
    Pem {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: openssl::error::ErrorStack,
    },
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

/// A signing certificate and its key, read from PEM files.
pub struct SigningKey {
    cert: X509,
    key: PKey<Private>,
}

impl SigningKey {
    /// Reads the certificate and key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, BuildError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| BuildError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let pem = |path: &Path| {
            let path = path.to_owned();
            move |source| BuildError::Pem { path, source }
        };
        Ok(Self {
            cert: X509::from_pem(&read(cert)?).map_err(pem(cert))?,
            key: PKey::private_key_from_pem(&read(key)?).map_err(pem(key))?,
        })
    }

    /// The signer to build with.
    pub fn signer(&self) -> Signer<'_> {
        Signer {
            cert: &self.cert,
            key: &self.key,
        }
    }
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
            sha256_hex(content)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::io::Read;

    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use server_kit::testing::certificate;

    use super::*;
    use crate::manifest::{locate, parse_manifest};

    fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        (0..z.len())
            .map(|i| {
                let mut f = z.by_index(i).unwrap();
                let mut content = Vec::new();
                f.read_to_end(&mut content).unwrap();
                (f.name().unwrap().into_owned(), content)
            })
            .collect()
    }

    /// The manifest of the built zip lists every other file with its true digest.
    fn check_digests(files: &[(String, Vec<u8>)]) -> crate::manifest::Manifest {
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let text = |name: &str| {
            let (_, c) = files.iter().find(|(n, _)| n == name).unwrap();
            String::from_utf8(c.clone()).unwrap()
        };
        let layout = locate(&names, &mut |n| Ok(text(n))).unwrap();
        let manifest_name = layout.manifest.unwrap();
        let manifest = parse_manifest(&manifest_name, &text(&manifest_name)).unwrap();
        let mut listed: Vec<&str> = manifest.entries.iter().map(|e| e.source.as_str()).collect();
        listed.sort_unstable();
        let mut others: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| *n != manifest_name)
            .collect();
        others.sort_unstable();
        assert_eq!(listed, others);
        for entry in &manifest.entries {
            let (_, content) = files.iter().find(|(n, _)| *n == entry.source).unwrap();
            assert_eq!(entry.hash, sha256_hex(content), "{entry:?}");
        }
        manifest
    }

    #[test]
    fn builds_each_example_with_true_digests() {
        let examples =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/packages");
        for name in ["video-analytics", "cdn-cache", "iot-gateway"] {
            let zip = build(&examples.join(name), None).unwrap();
            let manifest = check_digests(&entries(&zip));
            assert!(manifest.signature.is_none(), "{name}");
        }
    }

    #[test]
    fn a_signed_package_verifies_against_its_signers_ca() {
        let examples =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/packages");
        let (ca, ca_key) = certificate("package CA", None, true);
        let (cert, key) = certificate("ACME release signing", Some((&ca, &ca_key)), false);
        for name in ["video-analytics", "cdn-cache"] {
            let zip = build(
                &examples.join(name),
                Some(Signer {
                    cert: &cert,
                    key: &key,
                }),
            )
            .unwrap();
            let files = entries(&zip);
            let manifest = check_digests(&files);
            let mut cms = CmsContentInfo::from_pem(manifest.signature.unwrap().as_bytes()).unwrap();
            let mut trust = X509StoreBuilder::new().unwrap();
            trust.add_cert(ca.clone()).unwrap();
            let trust = trust.build();
            cms.verify(
                Some(&Stack::new().unwrap()),
                Some(&trust),
                Some(manifest.signed_text.as_bytes()),
                None,
                CMSOptions::BINARY,
            )
            .unwrap();
            assert!(
                files.iter().any(|(n, c)| n.ends_with(".cert")
                    && X509::from_pem(c).unwrap().to_der().unwrap() == cert.to_der().unwrap()),
                "{name}: the certificate travels in the package"
            );
        }
    }

    #[test]
    fn a_directory_without_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("appd.yaml"), "appDId: x\n").unwrap();
        assert!(matches!(
            build(dir.path(), None),
            Err(BuildError::NoManifest)
        ));
        assert!(matches!(
            build(&dir.path().join("missing"), None),
            Err(BuildError::Read { .. })
        ));
    }
}
