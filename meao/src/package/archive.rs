//! Safe reading of package archives (zip / CSAR).
//!
//! Every entry is checked before anything is extracted: its name must be a relative path that
//! stays inside the package (no `..`, no absolute paths, no backslashes, no NUL), it must not be
//! a symlink or encrypted, names must be unique, and the entry count, the declared sizes and the
//! compression ratios must stay within [`ArchiveLimits`]. Reads are capped again by the bytes
//! actually produced, so a header that lies about sizes cannot inflate past the limits.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};

use openssl::sha::Sha256;
use serde::{Deserialize, Serialize};

use app_package::hex;

use super::PackageProblem;
use super::blobs::ReadSeek;

/// Limits on package archives.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveLimits {
    /// Largest package file (bytes).
    pub max_package_bytes: u64,
    /// Most entries in a package.
    pub max_entries: usize,
    /// Largest total uncompressed size (bytes).
    pub max_uncompressed_bytes: u64,
    /// Largest compression ratio, of the whole archive (its total uncompressed size over the
    /// package's size) and of any entry bigger than 64 KiB.
    pub max_compression_ratio: u64,
    /// Largest descriptor, manifest or metadata file (bytes).
    pub max_descriptor_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_package_bytes: 1 << 30,
            max_entries: 10_000,
            max_uncompressed_bytes: 2 << 30,
            max_compression_ratio: 100,
            max_descriptor_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    index: usize,
    size: u64,
}

/// An opened, checked package archive.
pub struct PackageArchive {
    zip: zip::ZipArchive<Box<dyn ReadSeek>>,
    entries: BTreeMap<String, Entry>,
    limits: ArchiveLimits,
}

impl std::fmt::Debug for PackageArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageArchive")
            .field("entries", &self.entries.len())
            .finish()
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains('\0')
        && !name.contains(':')
        && name.split('/').all(|seg| seg != ".." && seg != ".")
}

impl PackageArchive {
    /// Opens the package `file` and checks every entry; reports every offending entry at once.
    pub fn open(
        mut file: Box<dyn ReadSeek>,
        limits: ArchiveLimits,
    ) -> Result<Self, Vec<PackageProblem>> {
        let problem = |path: &str, detail: String| vec![PackageProblem::new(path, detail)];
        let len = file
            .seek(SeekFrom::End(0))
            .and_then(|len| file.seek(SeekFrom::Start(0)).map(|_| len))
            .map_err(|e| problem("", format!("cannot read the package: {e}")))?;
        if len > limits.max_package_bytes {
            return Err(problem(
                "",
                format!(
                    "package is {len} bytes, more than the limit {}",
                    limits.max_package_bytes
                ),
            ));
        }
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|e| problem("", format!("not a valid zip archive: {e}")))?;
        if zip.len() > limits.max_entries {
            return Err(problem(
                "",
                format!(
                    "package has {} entries, more than the limit {}",
                    zip.len(),
                    limits.max_entries
                ),
            ));
        }
        let mut problems = Vec::new();
        let mut entries = BTreeMap::new();
        let mut total: u64 = 0;
        for index in 0..zip.len() {
            let entry = match zip.by_index_raw(index) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(PackageProblem::new(
                        "",
                        format!("entry {index} is unreadable: {e}"),
                    ));
                    continue;
                }
            };
            let name = match entry.name() {
                Ok(n) => n.into_owned(),
                Err(e) => {
                    problems.push(PackageProblem::new(
                        "",
                        format!("entry {index} has an unreadable name: {e}"),
                    ));
                    continue;
                }
            };
            if !safe_name(&name) {
                problems.push(PackageProblem::new(
                    &name,
                    "entry path escapes the package or is not a plain relative path".into(),
                ));
                continue;
            }
            if entry.unix_mode().is_some_and(|m| m & S_IFMT == S_IFLNK) {
                problems.push(PackageProblem::new(
                    &name,
                    "symbolic links are not allowed in packages".into(),
                ));
                continue;
            }
            if entry.encrypted() {
                problems.push(PackageProblem::new(
                    &name,
                    "encrypted entries are not allowed".into(),
                ));
                continue;
            }
            if entry.is_dir() {
                continue;
            }
            let (size, compressed) = (entry.size(), entry.compressed_size());
            if size > (64 << 10) && size / compressed.max(1) > limits.max_compression_ratio {
                problems.push(PackageProblem::new(
                    &name,
                    format!(
                        "compression ratio {} exceeds the limit {} (zip bomb?)",
                        size / compressed.max(1),
                        limits.max_compression_ratio
                    ),
                ));
                continue;
            }
            total = total.saturating_add(size);
            if entries
                .insert(name.clone(), Entry { index, size })
                .is_some()
            {
                problems.push(PackageProblem::new(&name, "duplicate entry name".into()));
            }
        }
        // many small entries each under the entry check add up: bound the archive as a whole
        let ratio = total / len.max(1);
        if total > (1 << 20) && ratio > limits.max_compression_ratio {
            problems.push(PackageProblem::new(
                "",
                format!(
                    "the package expands {ratio} times ({total} bytes from {len}), more than the \
                     limit {} (zip bomb?)",
                    limits.max_compression_ratio
                ),
            ));
        }
        if total > limits.max_uncompressed_bytes {
            problems.push(PackageProblem::new(
                "",
                format!(
                    "uncompressed size {total} exceeds the limit {}",
                    limits.max_uncompressed_bytes
                ),
            ));
        }
        if problems.is_empty() {
            Ok(Self {
                zip,
                entries,
                limits,
            })
        } else {
            Err(problems)
        }
    }

    /// The file entries (directories excluded), sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether the package holds a file at `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Copies an entry to `out`, never more than its declared size; returns (sha256 hex, size).
    pub fn copy_to(
        &mut self,
        name: &str,
        out: &mut dyn Write,
    ) -> Result<(String, u64), PackageProblem> {
        let entry = *self
            .entries
            .get(name)
            .ok_or_else(|| PackageProblem::new(name, "no such file in the package".into()))?;
        let file = self
            .zip
            .by_index(entry.index)
            .map_err(|e| PackageProblem::new(name, format!("cannot read entry: {e}")))?;
        let mut limited = file.take(entry.size.saturating_add(1));
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut written: u64 = 0;
        loop {
            let n = limited
                .read(&mut buf)
                .map_err(|e| PackageProblem::new(name, format!("corrupt entry: {e}")))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > entry.size {
                return Err(PackageProblem::new(
                    name,
                    "entry inflates beyond its declared size".into(),
                ));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| PackageProblem::new(name, format!("cannot store entry: {e}")))?;
        }
        Ok((hex(&hasher.finish()), written))
    }

    /// Reads a small text entry (descriptor, manifest, metadata) under the descriptor limit.
    pub fn read_text(&mut self, name: &str) -> Result<String, PackageProblem> {
        let size = self.entries.get(name).map(|e| e.size).unwrap_or(0);
        if size > self.limits.max_descriptor_bytes {
            return Err(PackageProblem::new(
                name,
                format!(
                    "file is {size} bytes, more than the descriptor limit {}",
                    self.limits.max_descriptor_bytes
                ),
            ));
        }
        let mut bytes = Vec::new();
        self.copy_to(name, &mut bytes)?;
        String::from_utf8(bytes)
            .map_err(|_| PackageProblem::new(name, "file is not UTF-8 text".into()))
    }

    /// The sha256 and size of an entry, without keeping its bytes.
    pub fn digest(&mut self, name: &str) -> Result<(String, u64), PackageProblem> {
        self.copy_to(name, &mut std::io::sink())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\b",
            "c:/x",
            "./a",
            "",
        ] {
            assert!(!safe_name(bad), "{bad}");
        }
        for ok in ["a", "Definitions/appd.yaml", "a/b/c.txt"] {
            assert!(safe_name(ok), "{ok}");
        }
    }
}
