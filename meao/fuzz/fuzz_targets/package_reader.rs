//! Fuzzes the whole onboarding pipeline on arbitrary package bytes: archive checks, metadata,
//! manifest, AppD parsing and validation. It must never panic, hang or store anything for
//! input it rejects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meao::package::archive::ArchiveLimits;
use meao::package::blobs::BlobStore;
use meao::package::onboard::{Policy, onboard};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("package.zip");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(blobs) = BlobStore::open(&dir.path().join("blobs")) else { return };
    let limits = ArchiveLimits {
        max_package_bytes: 1 << 20,
        max_entries: 64,
        max_uncompressed_bytes: 4 << 20,
        max_compression_ratio: 100,
        max_descriptor_bytes: 64 << 10,
    };
    let policy = Policy { limits, require_signed: false, trust: None };
    let _ = onboard(&path, &policy, &blobs);
});
