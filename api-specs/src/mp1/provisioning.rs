//! The MEP's provisioning API (`mep_mgmt/v1`), how MEC management configures an application
//! instance at a platform. ETSI leaves this (Mm5) open; the MEAO-MEP gRPC link carries the same
//! JSON contract.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::TimeStamp;
use crate::mm1::appd::ServiceDescriptor;
use crate::mp1::app_support::{AppInfo, DnsRule, TrafficRule};

/// The desired configuration of one application instance at a platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppInstanceConfig {
    /// The application as MEC management knows it.
    pub app_info: AppInfo,
    /// Its traffic rules.
    #[serde(rename = "appTrafficRule", default)]
    pub app_traffic_rule: Vec<TrafficRule>,
    /// Its DNS rules.
    #[serde(rename = "appDNSRule", default)]
    pub app_dns_rule: Vec<DnsRule>,
    /// The services it produces (its AppD's `appServiceProduced`): when any are declared, it
    /// may register only these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_service_produced: Vec<ServiceDescriptor>,
    /// The OAuth 2.0 client (ETSI GS MEC 009 client credentials) the instance authenticates
    /// with at this platform, issued by MEC management; without it the instance has no Mp1
    /// credential of its own (unless one is configured at the platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client: Option<AppClient>,
}

/// An application instance's OAuth 2.0 client at a platform. The platform knows only the
/// digests of its secrets; the secrets reach the workload, not the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppClient {
    /// The client id the instance presents at the token endpoint.
    pub client_id: String,
    /// The accepted secrets: the current one and, during a rotation, the previous one until
    /// its `notAfter`.
    pub credentials: Vec<AppCredential>,
}

/// One accepted secret of an [`AppClient`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppCredential {
    /// Identifier of the credential (named in the tokens issued for it).
    pub credential_id: String,
    /// SHA-256 of the secret, base64url without padding. Present when the configuration is
    /// provisioned; platforms never show it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_digest: Option<String>,
    /// The secret is accepted until then (the end of a rotation's grace period); for ever
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<TimeStamp>,
}
