//! Storage of package files (the uploaded content and the files onboarding found in it), on a
//! local directory (the embedded default) or in S3-compatible object storage shared by the
//! replicas, both through `object_store`.
//!
//! Every blob is written once, under a key of its own (`blobs/<uuid>`), and named by a
//! [`BlobId`] that also carries its SHA-256 (`<sha256>.<uuid>`); blobs of earlier versions
//! stay under their content address (`sha256/<sha256>`, named by the hash alone). A package
//! record only ever names blobs its own upload wrote, so a blob no record names once it is
//! older than the clean-up's grace period will never be named again: the sweep removes exactly
//! those, and never what an upload (of this or another replica) is still writing, provided an
//! upload records its blobs within the grace period (an onboarding that takes longer fails
//! instead, see [`BlobWriter::started`]).

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt};
use openssl::sha::Sha256;
use serde::{Deserialize, Serialize};
use server_kit::auth::Secret;
use tokio::io::AsyncWriteExt;

use app_package::hex;

/// Where package files are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A directory of this replica (`path`, by default `<data_dir>/blobs`).
    #[default]
    Local,
    /// An S3-compatible bucket the replicas share.
    S3,
}

/// `[package_storage]`: the store of package files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `local` or `s3`.
    pub kind: StorageKind,
    /// Local: the directory (default `<data_dir>/blobs`).
    pub path: Option<PathBuf>,
    /// S3: the bucket.
    pub bucket: Option<String>,
    /// S3: the endpoint URL of an S3-compatible server (`https://…`; `http://` is allowed for
    /// a server on loopback or a private network); AWS's regional endpoint when absent.
    pub endpoint: Option<String>,
    /// S3: the region.
    pub region: String,
    /// S3: path-style requests (`endpoint/bucket/key`, what most S3-compatible servers
    /// expect); virtual-hosted style (`bucket.endpoint/key`) when false.
    pub path_style: bool,
    /// S3: a key prefix inside the bucket (`""`: the whole bucket is the MEAO's).
    pub prefix: String,
    /// S3: a TOML file with `access_key_id`, `secret_access_key` and optionally
    /// `session_token`; the `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN` environment variables when absent. Never logged.
    pub credentials_file: Option<PathBuf>,
    /// S3: PEM file of CAs trusted for the endpoint besides the system's.
    pub ca_file: Option<PathBuf>,
    /// S3: timeout of one request (seconds).
    pub timeout_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Local,
            path: None,
            bucket: None,
            endpoint: None,
            region: "us-east-1".into(),
            path_style: true,
            prefix: String::new(),
            credentials_file: None,
            ca_file: None,
            timeout_secs: 300,
        }
    }
}

/// S3 credentials, from a file or the environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    access_key_id: Secret,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl Credentials {
    fn load(file: Option<&Path>) -> Result<Self, String> {
        if let Some(file) = file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("credentials_file {}: {e}", file.display()))?;
            // the parse error may quote the file: say where, not what
            return toml::from_str(&text).map_err(|_| {
                format!(
                    "credentials_file {} is not TOML with access_key_id and secret_access_key",
                    file.display()
                )
            });
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Ok(Self {
                access_key_id: Secret::new(id),
                secret_access_key: Secret::new(secret),
                session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
            }),
            _ => Err(
                "S3 package storage needs credentials: credentials_file, or \
                      AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                    .into(),
            ),
        }
    }
}

/// The name of a stored blob: `<sha256>.<uuid>` (key `blobs/<uuid>`), or a bare `<sha256>`
/// for a blob of an earlier version under its content address (key `sha256/<sha256>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobId(String);

impl BlobId {
    /// Reads a blob name as stored in a package record.
    pub fn parse(s: &str) -> Option<Self> {
        let hex64 = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        let ok = match s.split_once('.') {
            None => hex64(s),
            Some((hash, id)) => {
                hex64(hash) && id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
            }
        };
        ok.then(|| Self(s.to_owned()))
    }

    /// The SHA-256 of the blob's content (hex).
    pub fn sha256(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(h, _)| h)
    }

    /// The blob's key in the store.
    fn key(&self) -> Key {
        match self.0.split_once('.') {
            Some((_, id)) => Key::from_iter(["blobs", id]),
            None => Key::from_iter(["sha256", &self.0]),
        }
    }

    /// The name, as a package record keeps it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A blob read as a file: what the zip reader needs.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// The blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store, whose blobs are read as files.
    local: Option<Arc<LocalFileSystem>>,
    /// Where the store is, for messages.
    describe: String,
}

/// What the sweep found and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Blobs no record names, older than the grace period: removed.
    pub removed: usize,
    /// Blobs no record names that are younger (an upload may be writing them): kept.
    pub kept_young: usize,
    /// Blobs a record names: kept.
    pub referenced: usize,
}

/// Bytes buffered before an upload goes multipart (and the size of each part).
const PART_BYTES: usize = 8 << 20;
/// Bytes fetched per request when a blob of an object store is read as a file.
const READ_AHEAD: u64 = 1 << 20;

impl BlobStore {
    /// Opens (creating a local directory) the store `config` names; `data_dir` holds the
    /// default local directory.
    pub fn open(config: &StorageConfig, data_dir: &Path) -> Result<Self, String> {
        match config.kind {
            StorageKind::Local => {
                let root = config
                    .path
                    .clone()
                    .unwrap_or_else(|| data_dir.join("blobs"));
                Self::local(&root).map_err(|e| format!("{}: {e}", root.display()))
            }
            StorageKind::S3 => Self::s3(config),
        }
    }

    /// The store on a local directory (created if missing).
    pub fn local(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let fs = Arc::new(LocalFileSystem::new_with_prefix(root).map_err(std::io::Error::from)?);
        Ok(Self {
            store: fs.clone(),
            local: Some(fs),
            describe: format!("directory {}", root.display()),
        })
    }

    fn s3(config: &StorageConfig) -> Result<Self, String> {
        let bucket = config
            .bucket
            .as_deref()
            .filter(|b| !b.is_empty())
            .ok_or("S3 package storage needs a bucket")?;
        let credentials = Credentials::load(config.credentials_file.as_deref())?;
        let mut options =
            ClientOptions::new().with_timeout(Duration::from_secs(config.timeout_secs.max(1)));
        if let Some(file) = &config.ca_file {
            let pem =
                std::fs::read(file).map_err(|e| format!("ca_file {}: {e}", file.display()))?;
            for certificate in object_store::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca_file {}: {e}", file.display()))?
            {
                options = options.with_root_certificate(certificate);
            }
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_access_key_id(credentials.access_key_id.expose())
            .with_secret_access_key(credentials.secret_access_key.expose());
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token.expose());
        }
        if let Some(endpoint) = &config.endpoint {
            options = options.with_allow_http(endpoint.starts_with("http://"));
            builder = builder.with_endpoint(endpoint);
        }
        let s3 = builder
            .with_client_options(options)
            .build()
            .map_err(|e| format!("S3 package storage: {e}"))?;
        let describe = format!(
            "bucket {bucket} at {}",
            config.endpoint.as_deref().unwrap_or("AWS")
        );
        let store: Arc<dyn ObjectStore> = if config.prefix.trim_matches('/').is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, config.prefix.trim_matches('/')))
        };
        Ok(Self {
            store,
            local: None,
            describe,
        })
    }

    /// Where the store is (a directory or a bucket; never a credential).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Starts a blob of at most `limit` bytes.
    pub fn writer(&self, limit: u64) -> BlobWriter {
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        let key = Key::from_iter(["blobs", uuid.as_str()]);
        BlobWriter {
            out: BufWriter::with_capacity(self.store.clone(), key, PART_BYTES)
                .with_max_concurrency(2),
            uuid,
            hasher: Sha256::new(),
            size: 0,
            limit,
            started: Instant::now(),
        }
    }

    /// The size of a blob.
    pub async fn size(&self, id: &BlobId) -> std::io::Result<u64> {
        Ok(self.store.head(&id.key()).await?.size)
    }

    /// The bytes `range` of a blob, as they arrive.
    pub async fn stream(
        &self,
        id: &BlobId,
        range: Range<u64>,
    ) -> std::io::Result<BoxStream<'static, std::io::Result<Bytes>>> {
        if range.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let options = object_store::GetOptions {
            range: Some(range.into()),
            ..Default::default()
        };
        let result = self.store.get_opts(&id.key(), options).await?;
        Ok(result.into_stream().map_err(std::io::Error::from).boxed())
    }

    /// Opens a blob for reading as a file; blocks (call from a blocking task), `runtime`
    /// serving the reads of an object store.
    pub fn reader(
        &self,
        id: &BlobId,
        runtime: &tokio::runtime::Handle,
    ) -> std::io::Result<Box<dyn ReadSeek>> {
        if let Some(fs) = &self.local {
            let path = fs.path_to_filesystem(&id.key())?;
            return Ok(Box::new(std::io::BufReader::new(std::fs::File::open(
                path,
            )?)));
        }
        let key = id.key();
        let size = runtime.block_on(self.store.head(&key))?.size;
        Ok(Box::new(RangeReader {
            store: self.store.clone(),
            key,
            runtime: runtime.clone(),
            size,
            pos: 0,
            buf: Bytes::new(),
            buf_start: 0,
        }))
    }

    /// Removes the blobs no record names (`referenced`) last modified before `before`, and
    /// the temporaries of earlier versions (`tmp/`) as old.
    pub async fn collect_garbage(
        &self,
        referenced: &HashSet<BlobId>,
        before: SystemTime,
    ) -> std::io::Result<Swept> {
        let named: HashSet<Key> = referenced.iter().map(BlobId::key).collect();
        let mut listing = self.store.list(None);
        let mut old = Vec::new();
        let mut swept = Swept::default();
        while let Some(meta) = listing.try_next().await? {
            let ours = ["blobs", "sha256", "tmp"]
                .iter()
                .any(|dir| meta.location.prefix_matches(&Key::from(*dir)));
            if !ours {
                continue;
            }
            if named.contains(&meta.location) {
                swept.referenced += 1;
                continue;
            }
            if SystemTime::from(meta.last_modified) < before {
                old.push(meta.location);
            } else {
                swept.kept_young += 1;
            }
        }
        for key in old {
            match self.store.delete(&key).await {
                Ok(()) => swept.removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(swept)
    }

    /// Removes these blobs (already gone is fine); returns how many were there.
    pub async fn remove<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a BlobId>,
    ) -> std::io::Result<usize> {
        let mut removed = 0;
        for id in ids {
            // S3 answers a DELETE of a missing key as one of a present key
            let key = id.key();
            match self.store.head(&key).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            match self.store.delete(&key).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
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

/// A blob being written: buffered up to one part, then uploaded part by part (S3 multipart
/// upload) while it is hashed; nothing is visible under its key before [`BlobWriter::commit`].
pub struct BlobWriter {
    out: BufWriter,
    uuid: String,
    hasher: Sha256,
    size: u64,
    limit: u64,
    started: Instant,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("uuid", &self.uuid)
            .field("size", &self.size)
            .finish()
    }
}

impl BlobWriter {
    /// Appends `buf`.
    pub async fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.size + buf.len() as u64 > self.limit {
            return Err(too_large());
        }
        self.out.write_all(buf).await?;
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// When the blob was started: it must be named by a record within the clean-up's grace
    /// period from then.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Completes the blob; returns its name and size.
    pub async fn commit(mut self) -> std::io::Result<(BlobId, u64)> {
        if let Err(e) = self.out.shutdown().await {
            let _ = self.out.abort().await;
            return Err(e);
        }
        let hash = hex(&self.hasher.finish());
        Ok((BlobId(format!("{hash}.{}", self.uuid)), self.size))
    }

    /// Drops the partial blob.
    pub async fn abort(mut self) {
        let _ = self.out.abort().await;
    }

    /// The writer as a blocking [`std::io::Write`] (for a blocking task), its writes run on
    /// `runtime`.
    pub fn blocking(self, runtime: tokio::runtime::Handle) -> BlockingBlobWriter {
        BlockingBlobWriter {
            inner: self,
            runtime,
        }
    }
}

/// A [`BlobWriter`] for blocking code.
#[derive(Debug)]
pub struct BlockingBlobWriter {
    inner: BlobWriter,
    runtime: tokio::runtime::Handle,
}

impl std::io::Write for BlockingBlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.runtime.block_on(self.inner.write(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlockingBlobWriter {
    /// [`BlobWriter::commit`].
    pub fn commit(self) -> std::io::Result<(BlobId, u64)> {
        self.runtime.block_on(self.inner.commit())
    }

    /// [`BlobWriter::abort`].
    pub fn abort(self) {
        self.runtime.block_on(self.inner.abort());
    }
}

/// A blob of an object store read as a file: ranged GETs of [`READ_AHEAD`] bytes, so a zip's
/// central directory and then its entries are read without fetching the whole blob.
struct RangeReader {
    store: Arc<dyn ObjectStore>,
    key: Key,
    runtime: tokio::runtime::Handle,
    size: u64,
    pos: u64,
    buf: Bytes,
    buf_start: u64,
}

impl Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let buffered = self.buf_start..self.buf_start + self.buf.len() as u64;
        if !buffered.contains(&self.pos) {
            let end = (self.pos + READ_AHEAD.max(out.len() as u64)).min(self.size);
            self.buf = self
                .runtime
                .block_on(self.store.get_range(&self.key, self.pos..end))?;
            self.buf_start = self.pos;
            if self.buf.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the object store returned no bytes",
                ));
            }
        }
        // pos is inside the buffer, so the offset fits in usize
        let offset = usize::try_from(self.pos - self.buf_start).unwrap_or(usize::MAX);
        let available = self.buf.get(offset..).unwrap_or_default();
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

/// The S3 test server for tests (feature `test-support`).
#[cfg(feature = "test-support")]
pub mod testing {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;

    use super::{StorageConfig, StorageKind};

    /// The S3 test server (`MECPLANE_TEST_S3`); `None` (said skipped) without one, a failure
    /// under `CI=true`.
    pub fn s3_server() -> Option<String> {
        let spec = std::env::var("MECPLANE_TEST_S3")
            .ok()
            .filter(|s| !s.is_empty());
        if spec.is_none() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "MECPLANE_TEST_S3 is not set under CI=true: the S3 store is not tested"
            );
            eprintln!("skipped: MECPLANE_TEST_S3 is not set (no S3 test server)");
        }
        spec
    }

    /// The configuration of the S3 test server `MECPLANE_TEST_S3` names (`ENDPOINT BUCKET
    /// ACCESS_KEY SECRET_KEY`, as `scripts/s3-start.sh` exports it) under a fresh prefix, its
    /// credentials in a file of `dir`; `None` (said skipped) without one, a failure under
    /// `CI=true`.
    pub fn s3_config(dir: &Path) -> Option<StorageConfig> {
        let spec = s3_server()?;
        let [endpoint, bucket, access, secret] = spec.split(' ').collect::<Vec<_>>()[..] else {
            panic!("MECPLANE_TEST_S3 is not ENDPOINT BUCKET ACCESS_KEY SECRET_KEY");
        };
        let credentials = dir.join("s3-credentials.toml");
        std::fs::write(
            &credentials,
            format!("access_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n"),
        )
        .unwrap();
        Some(StorageConfig {
            kind: StorageKind::S3,
            endpoint: Some(endpoint.into()),
            bucket: Some(bucket.into()),
            prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
            credentials_file: Some(credentials),
            ..StorageConfig::default()
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Writes `content` as a blob.
    async fn put(store: &BlobStore, content: &[u8]) -> BlobId {
        let mut w = store.writer(u64::MAX);
        w.write(content).await.unwrap();
        w.commit().await.unwrap().0
    }

    async fn written_read_limited_and_collected(store: BlobStore) {
        let hello = put(&store, b"hello").await;
        assert_eq!(
            hello.sha256(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(BlobId::parse(hello.as_str()), Some(hello.clone()));
        // the same content again is another blob: each upload owns what it wrote
        let again = put(&store, b"hello").await;
        assert_ne!(hello, again);
        assert_eq!(store.size(&hello).await.unwrap(), 5);
        let part: Vec<Bytes> = store
            .stream(&hello, 1..4)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(part.concat(), b"ell");

        // a blob bigger than one part and than the read-ahead, read as a file from a blocking task
        let big: Vec<u8> = (0..PART_BYTES as u64 + 3 * READ_AHEAD + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let big_id = put(&store, &big).await;
        let (s, id, expected) = (store.clone(), big_id.clone(), big.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut r = s.reader(&id, &runtime).unwrap();
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            assert!(all == expected, "read back as written");
            r.seek(SeekFrom::End(-10)).unwrap();
            let mut tail = [0u8; 10];
            r.read_exact(&mut tail).unwrap();
            assert_eq!(tail, expected[expected.len() - 10..]);
            // a blocking writer of a blocking task
            let mut w = s.writer(u64::MAX).blocking(runtime.clone());
            w.write_all(b"from a blocking task").unwrap();
            let (blocking, size) = w.commit().unwrap();
            assert_eq!(size, 20);
            blocking
        })
        .await
        .unwrap();

        let mut limited = store.writer(3);
        assert_eq!(
            limited.write(b"hello").await.unwrap_err().kind(),
            std::io::ErrorKind::FileTooLarge
        );
        limited.abort().await;
        // an aborted or unfinished blob is never visible
        let mut unfinished = store.writer(u64::MAX);
        unfinished.write(b"half").await.unwrap();

        let past = SystemTime::now() - Duration::from_secs(3600);
        let future = SystemTime::now() + Duration::from_secs(3600);
        let keep = HashSet::from([hello.clone(), big_id.clone()]);
        // what is younger than the grace period (an upload may be writing it) stays
        let young = store.collect_garbage(&HashSet::new(), past).await.unwrap();
        assert_eq!(
            young,
            Swept {
                removed: 0,
                kept_young: 4,
                referenced: 0
            }
        );
        // once older, what no record names goes, what one names stays
        let swept = store.collect_garbage(&keep, future).await.unwrap();
        assert_eq!(
            swept,
            Swept {
                removed: 2,
                kept_young: 0,
                referenced: 2
            }
        );
        assert_eq!(store.size(&hello).await.unwrap(), 5);
        assert_eq!(store.size(&big_id).await.unwrap(), big.len() as u64);
        assert!(store.size(&again).await.is_err(), "collected");
        assert_eq!(
            store.remove([&again]).await.unwrap(),
            0,
            "already collected"
        );
        assert_eq!(store.remove([&hello]).await.unwrap(), 1);
        assert!(store.size(&hello).await.is_err());
        unfinished.abort().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::local(dir.path()).unwrap();
        // a blob an earlier version stored under its content address, and one of its
        // temporaries, are read and swept like the others
        let hash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        std::fs::create_dir_all(dir.path().join("sha256")).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("sha256").join(hash), b"hello").unwrap();
        std::fs::write(dir.path().join("tmp/partial"), b"hel").unwrap();
        let legacy = BlobId::parse(hash).unwrap();
        assert_eq!(store.size(&legacy).await.unwrap(), 5);
        let future = SystemTime::now() + Duration::from_secs(3600);
        let swept = store
            .collect_garbage(&HashSet::from([legacy.clone()]), future)
            .await
            .unwrap();
        assert_eq!(swept.removed, 1, "the old temporary");
        assert_eq!(store.size(&legacy).await.unwrap(), 5);
        assert_eq!(store.remove([&legacy]).await.unwrap(), 1);
        written_read_limited_and_collected(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let Some(config) = super::testing::s3_config(dir.path()) else {
            return;
        };
        let store = BlobStore::open(&config, dir.path()).unwrap();
        assert!(
            store
                .describe()
                .starts_with("bucket mecplane-test at http://127.0.0.1:")
        );
        written_read_limited_and_collected(store).await;
    }

    #[test]
    fn blob_names() {
        let hash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let new = format!("{hash}.{}", uuid::Uuid::nil().simple());
        assert_eq!(BlobId::parse(&new).unwrap().sha256(), hash);
        assert_eq!(
            BlobId::parse(&new).unwrap().key().as_ref(),
            "blobs/00000000000000000000000000000000"
        );
        assert_eq!(
            BlobId::parse(hash).unwrap().key().as_ref(),
            format!("sha256/{hash}")
        );
        for bad in [
            "",
            "../etc",
            &hash[1..],
            &format!("{hash}.x"),
            &format!("{hash}/.."),
        ] {
            assert_eq!(BlobId::parse(bad), None, "{bad}");
        }
    }
}
