//! The MEAO configuration: embedded defaults (SQLite and blobs under `./data`), a TOML file and
//! `MEAO__SECTION__KEY` environment overrides.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use server_kit::auth::AuthConfig;
use server_kit::config::LoadError;
use server_kit::notify::DeliveryConfig;
use server_kit::serve::{ServeLimits, TlsConfig};
use server_kit::telemetry::TelemetryConfig;

use crate::inventory::SiteSpec;
use crate::package::PackageConfig;

/// Everything the MEAO reads at start-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeaoConfig {
    /// HTTP(S) listen address of the Mm1 APIs.
    pub listen: SocketAddr,
    /// Absolute URL clients use (for `_links`, `Location`); derived from the bound address
    /// when absent.
    pub public_url: Option<String>,
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    pub database_url: String,
    /// Where the embedded defaults keep their files (the SQLite database of the default
    /// `database_url`, and package files when `package_storage` is local without a path).
    pub data_dir: PathBuf,
    /// Where package contents and the files found in them are stored: a local directory, or
    /// an S3-compatible bucket the replicas share.
    pub package_storage: crate::package::blobs::StorageConfig,
    /// TLS of the API listener; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// OAuth 2.0 clients and tokens.
    pub auth: AuthConfig,
    /// The operator portal's users and sessions.
    pub portal: crate::portal::PortalConfig,
    /// How images are pinned and pushed.
    pub images: crate::images::ImagesConfig,
    /// Package onboarding policy and limits.
    pub packages: PackageConfig,
    /// Edge sites to register at start (more can be added through the inventory API).
    pub sites: Vec<SiteSpec>,
    /// How often site capacity and health are refreshed from the VIMs (seconds).
    pub site_refresh_secs: u64,
    /// How long a workload may take to become ready before instantiation pauses (seconds).
    pub workload_ready_timeout_secs: u64,
    /// Lease of an executing LCM operation (seconds): renewed while it runs; another replica
    /// (or this one after a restart) takes over once it expires.
    pub saga_lease_secs: u64,
    /// How often to look for LCM operations whose executor died (seconds).
    pub saga_recovery_interval_secs: u64,
    /// Re-place the instances of a site that stayed unhealthy this long (seconds); never when
    /// absent.
    pub failover_after_secs: Option<u64>,
    /// How often each site's workloads are reconciled with its instances (seconds): gone or
    /// changed ones re-applied, stray ones removed; never when 0.
    pub reconcile_interval_secs: u64,
    /// The MEAO's OAuth client at the MEPs; sites' MEPs are not configured when absent.
    pub mep_link: Option<crate::mep_link::MepLinkConfig>,
    /// Crash drill: abort the process at this saga step boundary (tests of crash recovery only;
    /// the key exists only in builds with the `fault-drill` feature).
    #[cfg(feature = "fault-drill")]
    pub fault_drill: Option<crate::saga::Fault>,
    /// Key the applications' Mp1 client secrets are derived from; generated once and kept in
    /// the database (shared by the replicas) when absent.
    pub mp1_credentials_key: Option<server_kit::auth::Secret>,
    /// Kafka: every state change is published as a CloudEvent when present.
    pub kafka: Option<crate::events::KafkaConfig>,
    /// Notification delivery.
    pub delivery: DeliveryConfig,
    /// Where the service connects on a client's behalf (callbacks, package fetches): not to
    /// loopback, private or other special-purpose addresses unless allowed here.
    pub outbound: server_kit::outbound::OutboundPolicy,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Largest accepted JSON request body (bytes); package uploads have their own limit.
    pub max_body_bytes: usize,
    /// Seconds open connections get to finish at shutdown.
    pub shutdown_grace_secs: u64,
    /// Bounds of the listeners: connections, TLS handshake and header read timeouts.
    pub http: ServeLimits,
}

impl Default for MeaoConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            database_url: "sqlite://data/meao.db?mode=rwc".into(),
            data_dir: PathBuf::from("data"),
            package_storage: crate::package::blobs::StorageConfig::default(),
            tls: None,
            auth: AuthConfig::default(),
            portal: crate::portal::PortalConfig::default(),
            images: crate::images::ImagesConfig::default(),
            packages: PackageConfig::default(),
            sites: Vec::new(),
            site_refresh_secs: 15,
            workload_ready_timeout_secs: 30,
            saga_lease_secs: 30,
            saga_recovery_interval_secs: 10,
            failover_after_secs: None,
            reconcile_interval_secs: 30,
            mep_link: None,
            #[cfg(feature = "fault-drill")]
            fault_drill: None,
            mp1_credentials_key: None,
            kafka: None,
            delivery: DeliveryConfig::default(),
            outbound: server_kit::outbound::OutboundPolicy::default(),
            telemetry: TelemetryConfig::default(),
            max_body_bytes: 1 << 20,
            shutdown_grace_secs: 10,
            http: ServeLimits::default(),
        }
    }
}

impl MeaoConfig {
    /// Loads the configuration from defaults, `path` and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, LoadError> {
        server_kit::config::load(path, "MEAO")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_configs_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("meao"))
            {
                MeaoConfig::load(Some(&path))
                    .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no meao example config in {}", dir.display());
    }
}
