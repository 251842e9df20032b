//! Image tarballs shipped in packages (`Artifacts/images/`): an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/<algorithm>/<hex>`) or a docker-archive (`manifest.json`, a config and
//! layer tars, as `docker save` writes it). Opening one indexes the tar and reads what is to be
//! pushed: the blobs (left in the file, streamed on upload) and the manifests, children first.
//! A docker-archive gets an OCI image manifest written for it.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ImageError;
use super::reference::digest;

/// Largest manifest or index read or accepted.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Most tar entries an image archive may hold.
const MAX_ENTRIES: usize = 100_000;
/// Most manifests (an index and its images) per archive.
const MAX_MANIFESTS: usize = 64;
/// Deepest nesting of indexes.
const MAX_DEPTH: usize = 4;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A blob of the image, where it lies in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Its digest.
    pub digest: String,
    offset: u64,
    /// Its size.
    pub size: u64,
}

/// A manifest or index to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// An opened image archive.
#[derive(Debug)]
pub struct ImageArchive {
    path: PathBuf,
    blobs: Vec<Blob>,
    manifests: Vec<Manifest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
}

/// An image manifest or an index, as far as pushing needs it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parsed {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    layers: Vec<String>,
}

/// The OCI image manifest written for a docker-archive.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OciManifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

fn invalid(what: impl std::fmt::Display) -> ImageError {
    ImageError::Invalid(format!("image archive: {what}"))
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", app_package::hex(&openssl::sha::sha256(bytes)))
}

/// The tar's regular files: path (without `./`) → (offset, size).
fn index(file: &mut std::fs::File) -> Result<HashMap<String, (u64, u64)>, ImageError> {
    let mut entries = HashMap::new();
    let mut tar = tar::Archive::new(&mut *file);
    for entry in tar.entries_with_seek().map_err(invalid)? {
        let entry = entry.map_err(invalid)?;
        if entries.len() >= MAX_ENTRIES {
            return Err(invalid(format!("more than {MAX_ENTRIES} entries")));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map_err(invalid)?;
        let path = path.to_string_lossy();
        let path = path.trim_start_matches("./").to_owned();
        entries.insert(path, (entry.raw_file_position(), entry.size()));
    }
    Ok(entries)
}

struct Reader<'a> {
    file: &'a mut std::fs::File,
    entries: HashMap<String, (u64, u64)>,
}

impl Reader<'_> {
    fn read(&mut self, path: &str, limit: usize) -> Result<Vec<u8>, ImageError> {
        let &(offset, size) = self
            .entries
            .get(path)
            .ok_or_else(|| invalid(format!("no {path}")))?;
        if size > limit as u64 {
            return Err(invalid(format!("{path} is larger than {limit} bytes")));
        }
        self.file.seek(SeekFrom::Start(offset)).map_err(invalid)?;
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut *self.file)
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(invalid)?;
        Ok(bytes)
    }

    /// The digest of an entry's content, and its first bytes.
    fn digest(&mut self, path: &str) -> Result<(Blob, [u8; 2]), ImageError> {
        let &(offset, size) = self
            .entries
            .get(path)
            .ok_or_else(|| invalid(format!("no {path}")))?;
        self.file.seek(SeekFrom::Start(offset)).map_err(invalid)?;
        let mut hasher = openssl::sha::Sha256::new();
        let mut reader = (&mut *self.file).take(size);
        let mut buf = vec![0u8; 64 * 1024];
        let mut magic = [0u8; 2];
        let mut seen = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(invalid)?;
            if n == 0 {
                break;
            }
            if seen == 0 && n >= 2 {
                magic.copy_from_slice(&buf[..2]);
            }
            seen += n as u64;
            hasher.update(&buf[..n]);
        }
        let digest = format!("sha256:{}", app_package::hex(&hasher.finish()));
        Ok((
            Blob {
                digest,
                offset,
                size,
            },
            magic,
        ))
    }

    /// The entry of a layout blob.
    fn blob_path(d: &Descriptor) -> Result<String, ImageError> {
        if !digest(&d.digest) {
            return Err(invalid(format!("descriptor digest {:?}", d.digest)));
        }
        Ok(format!("blobs/{}", d.digest.replacen(':', "/", 1)))
    }

    fn layout_blob(&self, d: &Descriptor) -> Result<Blob, ImageError> {
        let path = Self::blob_path(d)?;
        let &(offset, size) = self
            .entries
            .get(&path)
            .ok_or_else(|| invalid(format!("blob {} is not in the archive", d.digest)))?;
        if size != d.size {
            return Err(invalid(format!(
                "blob {} is {size} bytes, its descriptor says {}",
                d.digest, d.size
            )));
        }
        Ok(Blob {
            digest: d.digest.clone(),
            offset,
            size,
        })
    }

    /// Collects the manifest `d` names and everything below it, children first.
    fn visit(
        &mut self,
        d: &Descriptor,
        depth: usize,
        out: &mut ImageArchive,
    ) -> Result<(), ImageError> {
        if depth > MAX_DEPTH || out.manifests.len() >= MAX_MANIFESTS {
            return Err(invalid("too many or too deeply nested manifests"));
        }
        let bytes = self.read(&Self::blob_path(d)?, MAX_MANIFEST_BYTES)?;
        if sha256_digest(&bytes) != d.digest {
            return Err(invalid(format!(
                "manifest {} does not match its digest",
                d.digest
            )));
        }
        let parsed: Parsed = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("manifest {}: {e}", d.digest)))?;
        let media_type = parsed
            .media_type
            .clone()
            .unwrap_or_else(|| d.media_type.clone());
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                for child in &parsed.manifests {
                    self.visit(child, depth + 1, out)?;
                }
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let config = parsed
                    .config
                    .as_ref()
                    .ok_or_else(|| invalid(format!("manifest {} has no config", d.digest)))?;
                for blob in std::iter::once(config).chain(&parsed.layers) {
                    let blob = self.layout_blob(blob)?;
                    if !out.blobs.contains(&blob) {
                        out.blobs.push(blob);
                    }
                }
            }
            other => {
                return Err(invalid(format!(
                    "manifest {} has media type {other:?}",
                    d.digest
                )));
            }
        }
        out.manifests.push(Manifest {
            digest: d.digest.clone(),
            media_type,
            bytes,
        });
        Ok(())
    }
}

impl ImageArchive {
    /// Opens and checks the archive at `path`; blocks.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let mut file = std::fs::File::open(path)?;
        let entries = index(&mut file)?;
        let mut reader = Reader {
            file: &mut file,
            entries,
        };
        let mut out = Self {
            path: path.to_owned(),
            blobs: Vec::new(),
            manifests: Vec::new(),
        };
        if reader.entries.contains_key("oci-layout") && reader.entries.contains_key("index.json") {
            let index = reader.read("index.json", MAX_MANIFEST_BYTES)?;
            let parsed: Parsed =
                serde_json::from_slice(&index).map_err(|e| invalid(format!("index.json: {e}")))?;
            match parsed.manifests.as_slice() {
                [] => return Err(invalid("index.json lists no manifest")),
                [one] => reader.visit(one, 0, &mut out)?,
                many => {
                    // several images: the layout's index is pushed as the image's index
                    for d in many {
                        reader.visit(d, 1, &mut out)?;
                    }
                    out.manifests.push(Manifest {
                        digest: sha256_digest(&index),
                        media_type: OCI_INDEX.into(),
                        bytes: index,
                    });
                }
            }
        } else if reader.entries.contains_key("manifest.json") {
            let text = reader.read("manifest.json", MAX_MANIFEST_BYTES)?;
            let entries: Vec<DockerEntry> = serde_json::from_slice(&text)
                .map_err(|e| invalid(format!("manifest.json: {e}")))?;
            let [entry] = entries.as_slice() else {
                return Err(invalid(format!(
                    "manifest.json lists {} images; one is pushed per archive",
                    entries.len()
                )));
            };
            let (config, _) = reader.digest(&entry.config)?;
            let mut layers = Vec::new();
            for layer in &entry.layers {
                let (blob, magic) = reader.digest(layer)?;
                let media_type = if magic == [0x1f, 0x8b] {
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                } else {
                    "application/vnd.oci.image.layer.v1.tar"
                };
                layers.push(Descriptor {
                    media_type: media_type.into(),
                    digest: blob.digest.clone(),
                    size: blob.size,
                });
                if !out.blobs.contains(&blob) {
                    out.blobs.push(blob);
                }
            }
            let manifest = OciManifest {
                schema_version: 2,
                media_type: OCI_MANIFEST,
                config: Descriptor {
                    media_type: "application/vnd.oci.image.config.v1+json".into(),
                    digest: config.digest.clone(),
                    size: config.size,
                },
                layers,
            };
            out.blobs.insert(0, config);
            let bytes = serde_json::to_vec(&manifest).map_err(invalid)?;
            out.manifests.push(Manifest {
                digest: sha256_digest(&bytes),
                media_type: OCI_MANIFEST.into(),
                bytes,
            });
        } else {
            return Err(invalid(
                "neither an OCI image layout (oci-layout, index.json) nor a docker-archive (manifest.json)",
            ));
        }
        Ok(out)
    }

    /// The blobs to push.
    pub fn blobs(&self) -> &[Blob] {
        &self.blobs
    }

    /// The manifests to push, children first: the last is the image's.
    pub fn manifests(&self) -> &[Manifest] {
        &self.manifests
    }

    /// An upload body streaming `blob` from the archive.
    pub fn body(&self, blob: &Blob) -> Result<reqwest::Body, ImageError> {
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(blob.offset))?;
        let file = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), blob.size);
        Ok(reqwest::Body::wrap_stream(
            tokio_util::io::ReaderStream::new(file),
        ))
    }
}

/// Image archives for tests: a one-layer image whose layer holds `content`, as an OCI layout or
/// a docker-archive.
#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    #![allow(clippy::expect_used)]
    /// A tar of `(path, bytes)` entries.
    pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            out.append_data(&mut header, path, *bytes)
                .expect("tar in memory");
        }
        out.into_inner().expect("tar in memory")
    }

    fn hex_digest(bytes: &[u8]) -> String {
        app_package::hex(&openssl::sha::sha256(bytes))
    }

    /// An OCI image layout of one image whose layer holds `/content` = `content`.
    pub fn oci_layout(content: &str) -> Vec<u8> {
        let layer = tar(&[("content", content.as_bytes())]);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex_digest(&layer))]},
            "config": {"Cmd": ["/content"]}
        }))
        .expect("json");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": format!("sha256:{}", hex_digest(&config)), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": format!("sha256:{}", hex_digest(&layer)), "size": layer.len()}]
        }))
        .expect("json");
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": format!("sha256:{}", hex_digest(&manifest)), "size": manifest.len()}]
        }))
        .expect("json");
        let paths = [&layer, &config, &manifest].map(|b| format!("blobs/sha256/{}", hex_digest(b)));
        tar(&[
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", &index),
            (&paths[0], &layer),
            (&paths[1], &config),
            (&paths[2], &manifest),
        ])
    }

    /// A docker-archive of one image whose layer holds `/content` = `content`.
    pub fn docker_archive(content: &str) -> Vec<u8> {
        let layer = tar(&[("content", content.as_bytes())]);
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}"#;
        tar(&[
            (
                "manifest.json",
                br#"[{"Config":"config.json","RepoTags":["app:1"],"Layers":["l1/layer.tar"]}]"#,
            ),
            ("config.json", config),
            ("l1/layer.tar", &layer),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn open(bytes: &[u8]) -> Result<ImageArchive, ImageError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        std::fs::write(&path, bytes).unwrap();
        ImageArchive::open(&path)
    }

    #[test]
    fn oci_layouts_and_docker_archives_open() {
        let oci = open(&oci_layout("one")).unwrap();
        assert_eq!(oci.blobs().len(), 2);
        assert_eq!(oci.manifests().len(), 1);
        assert_eq!(
            oci.manifests()[0].digest,
            sha256_digest(&oci.manifests()[0].bytes)
        );
        let docker = open(&docker_archive("one")).unwrap();
        assert_eq!(docker.blobs().len(), 2);
        let m: serde_json::Value = serde_json::from_slice(&docker.manifests()[0].bytes).unwrap();
        assert_eq!(
            m["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar"
        );
        assert_eq!(m["config"]["digest"], docker.blobs()[0].digest);
        // the same archive, the same manifest digest: pushes are repeatable
        assert_eq!(
            open(&docker_archive("one")).unwrap().manifests(),
            docker.manifests()
        );
    }

    #[test]
    fn broken_archives_are_refused() {
        let refused = |bytes: &[u8], what: &str| {
            let e = open(bytes).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        };
        refused(&tar(&[("hello.txt", b"hi")]), "neither an OCI image layout");
        refused(
            b"not a tar at all, just text that is long enough",
            "image archive",
        );
        refused(
            &tar(&[
                ("oci-layout", b"{}"),
                ("index.json", br#"{"manifests":[]}"#),
            ]),
            "lists no manifest",
        );
        let d = format!("sha256:{}", "0".repeat(64));
        refused(
            &tar(&[
                ("oci-layout", b"{}"),
                (
                    "index.json",
                    format!(r#"{{"manifests":[{{"digest":"{d}","size":2}}]}}"#).as_bytes(),
                ),
            ]),
            "no blobs/sha256/",
        );
        refused(
            &tar(&[
                (
                    "manifest.json",
                    br#"[{"Config":"c.json","Layers":["missing.tar"]}]"#,
                ),
                ("c.json", b"{}"),
            ]),
            "no missing.tar",
        );
    }
}
