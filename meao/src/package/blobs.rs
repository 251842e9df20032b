//! Content-addressed storage of package files: `<root>/sha256/<hex>`. A blob is written to a
//! temporary file, synced, then renamed into place, so a crash never leaves a partial blob
//! under a content address. A deleted package's blobs go with its record; a periodic sweep
//! removes temporaries and unreferenced blobs older than a grace period, so it never touches
//! what an upload (of this or another replica sharing the store) is still writing.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use openssl::sha::Sha256;

use app_package::hex;

/// The blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// A blob being written.
pub struct BlobWriter {
    file: File,
    temp: PathBuf,
    hasher: Sha256,
    size: u64,
    limit: u64,
    store: BlobStore,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("temp", &self.temp)
            .field("size", &self.size)
            .finish()
    }
}

impl BlobStore {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("sha256"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Starts a blob of at most `limit` bytes.
    pub fn writer(&self, limit: u64) -> std::io::Result<BlobWriter> {
        let temp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        Ok(BlobWriter {
            file: File::create(&temp)?,
            temp,
            hasher: Sha256::new(),
            size: 0,
            limit,
            store: self.clone(),
        })
    }

    /// The file of a blob.
    pub fn path(&self, hash: &str) -> PathBuf {
        self.root.join("sha256").join(hash)
    }

    /// Removes temporaries and blobs not in `referenced` last modified before `before`;
    /// returns how many were removed.
    pub fn collect_garbage(
        &self,
        referenced: &HashSet<String>,
        before: std::time::SystemTime,
    ) -> std::io::Result<usize> {
        let old = |entry: &std::fs::DirEntry| {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < before)
        };
        let mut removed = 0;
        for entry in std::fs::read_dir(self.root.join("tmp"))? {
            let entry = entry?;
            if old(&entry) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        for entry in std::fs::read_dir(self.root.join("sha256"))? {
            let entry = entry?;
            if !referenced.contains(entry.file_name().to_string_lossy().as_ref()) && old(&entry) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes these blobs (already gone is fine); returns how many were there.
    pub fn remove<'a>(
        &self,
        hashes: impl IntoIterator<Item = &'a String>,
    ) -> std::io::Result<usize> {
        let mut removed = 0;
        for hash in hashes {
            match std::fs::remove_file(self.path(hash)) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

/// Error when a blob exceeds its limit.
pub fn too_large() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        "blob exceeds its size limit",
    )
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size + buf.len() as u64 > self.limit {
            return Err(too_large());
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs and moves the blob to its content address; returns (sha256 hex, size).
    pub fn commit(self) -> std::io::Result<(String, u64)> {
        self.file.sync_all()?;
        let hash = hex(&self.hasher.finish());
        let target = self.store.path(&hash);
        if target.exists() {
            std::fs::remove_file(&self.temp)?;
        } else {
            std::fs::rename(&self.temp, &target)?;
        }
        Ok((hash, self.size))
    }

    /// Drops the partial blob.
    pub fn abort(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_addressed_limited_and_collected() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.writer(10).unwrap();
        w.write_all(b"hello").unwrap();
        let (hash, size) = w.commit().unwrap();
        assert_eq!(size, 5);
        assert_eq!(
            hash,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(std::fs::read(store.path(&hash)).unwrap(), b"hello");
        let mut big = store.writer(3).unwrap();
        assert!(big.write_all(b"hello").is_err());
        big.abort();
        let _orphan = store.writer(10).unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        // what is younger than the grace period (an upload still writing) stays
        assert_eq!(store.collect_garbage(&HashSet::new(), past).unwrap(), 0);
        assert_eq!(
            store
                .collect_garbage(&HashSet::from([hash.clone()]), future)
                .unwrap(),
            1
        );
        assert!(store.path(&hash).exists());
        assert_eq!(store.collect_garbage(&HashSet::new(), future).unwrap(), 1);
        assert_eq!(store.remove([&hash]).unwrap(), 0, "already collected");
    }
}
