//! The MEP configuration: embedded defaults (SQLite in `./data`, loopback listeners), a TOML file
//! and `MEP__SECTION__KEY` environment overrides.

use std::net::SocketAddr;
use std::path::Path;

use api_specs::common::TransportInfo;
use serde::{Deserialize, Serialize};
use server_kit::auth::AuthConfig;
use server_kit::config::LoadError;
use server_kit::notify::DeliveryConfig;
use server_kit::serve::{ServeLimits, TlsConfig};
use server_kit::telemetry::TelemetryConfig;

use crate::timing::TimingConfig;

/// Everything the MEP reads at start-up.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MepConfig {
    /// HTTP(S) listen address of the APIs.
    pub listen: SocketAddr,
    /// Absolute URL clients use to reach the APIs (for `_links` and `Location`); derived from
    /// the bound address when absent.
    pub public_url: Option<String>,
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    pub database_url: String,
    /// TLS of the API listener; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// OAuth 2.0 clients and tokens.
    pub auth: AuthConfig,
    /// The DNS server.
    pub dns: DnsConfig,
    /// Notification delivery.
    pub delivery: DeliveryConfig,
    /// Where the service connects on a client's behalf (callbacks, package fetches): not to
    /// loopback, private or other special-purpose addresses unless allowed here.
    pub outbound: server_kit::outbound::OutboundPolicy,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Time sources advertised to applications.
    pub timing: TimingConfig,
    /// Platform transports; a REST transport at `public_url` when empty.
    pub transports: Vec<TransportInfo>,
    /// Shortest accepted heartbeat interval (seconds).
    pub min_liveness_interval_secs: u32,
    /// Largest accepted request body (bytes).
    pub max_body_bytes: usize,
    /// Whether applications MEC management did not instantiate may register themselves
    /// (`mec_app_support/v1/registrations`) with a client configured here.
    pub allow_self_registration: bool,
    /// Bounds of applications' own changes to their traffic and DNS rules.
    pub app_rules: crate::platform::AppRulesConfig,
    /// Seconds open connections get to finish at shutdown.
    pub shutdown_grace_secs: u64,
    /// Bounds of the listeners: connections, TLS handshake and header read timeouts.
    pub http: ServeLimits,
    /// The UPF traffic rules are steered with (PFCP over N4); rules are not enforced when
    /// absent.
    pub upf: Option<crate::steering::UpfConfig>,
    /// The inline Linux gateway traffic rules are steered with at a site without a UPF.
    pub upgw: Option<crate::steering::UpgwSettings>,
    /// The MEAO this platform takes its instances' configuration from; provisioned only over
    /// `mep_mgmt` when absent.
    pub meao: Option<crate::link::MeaoLinkConfig>,
}

/// DNS server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// UDP listen address; no DNS server when absent.
    pub listen: Option<SocketAddr>,
    /// Resolver for names no rule answers; NXDOMAIN when absent.
    pub upstream: Option<SocketAddr>,
    /// TTL for rules without one (seconds).
    pub default_ttl: u32,
    /// Queries forwarded to the upstream resolver at once; more are answered SERVFAIL at
    /// once (a stub then asks its next server instead of retransmitting into the overload).
    pub max_forwarded: usize,
    /// Largest answer sent over UDP, offered to EDNS clients (at least 512, the size for
    /// clients without EDNS); longer answers are truncated and flagged TC.
    pub max_udp_payload: u16,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 5353))),
            upstream: None,
            default_ttl: 60,
            max_forwarded: 256,
            max_udp_payload: 1232,
        }
    }
}

impl Default for MepConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            public_url: None,
            database_url: "sqlite://data/mep.db?mode=rwc".into(),
            tls: None,
            auth: AuthConfig::default(),
            dns: DnsConfig::default(),
            delivery: DeliveryConfig::default(),
            outbound: server_kit::outbound::OutboundPolicy::default(),
            telemetry: TelemetryConfig::default(),
            timing: TimingConfig::default(),
            transports: Vec::new(),
            min_liveness_interval_secs: 5,
            max_body_bytes: 1 << 20,
            allow_self_registration: false,
            app_rules: crate::platform::AppRulesConfig::default(),
            shutdown_grace_secs: 10,
            http: ServeLimits::default(),
            upf: None,
            upgw: None,
            meao: None,
        }
    }
}

impl MepConfig {
    /// Loads the configuration from defaults, `path` and the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, LoadError> {
        server_kit::config::load(path, "MEP")
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
                .is_some_and(|n| n.to_string_lossy().starts_with("mep"))
            {
                MepConfig::load(Some(&path))
                    .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no mep example config in {}", dir.display());
    }
}
