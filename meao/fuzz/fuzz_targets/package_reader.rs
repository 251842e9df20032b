//! Fuzzes the whole onboarding pipeline on arbitrary package bytes: archive checks, metadata,
//! manifest, AppD parsing and validation. It must never panic, hang or store anything for
//! input it rejects.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meao::package::archive::ArchiveLimits;
use meao::package::blobs::BlobStore;
use meao::package::onboard::{Policy, onboard};

/// The runtime the blob store's writes run on (onboarding itself blocks, as in a blocking task).
static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().ok()
    });
    let Some(runtime) = runtime else { return };
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(blobs) = BlobStore::local(&dir.path().join("blobs")) else { return };
    let limits = ArchiveLimits {
        max_package_bytes: 1 << 20,
        max_entries: 64,
        max_uncompressed_bytes: 4 << 20,
        max_compression_ratio: 100,
        max_descriptor_bytes: 64 << 10,
    };
    let policy = Policy { limits, require_signed: false, trust: None };
    let package = Box::new(std::io::Cursor::new(data.to_vec()));
    let _ = onboard(package, &policy, &blobs, runtime.handle());
});
