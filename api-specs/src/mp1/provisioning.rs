//! The MEP's provisioning API (`mep_mgmt/v1`), how MEC management configures an application
//! instance at a platform. ETSI leaves this (Mm5) open; the MEAO-MEP gRPC link carries the same
//! JSON contract.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::TimeStamp;
use crate::mm1::appd::ServiceDescriptor;
use crate::mp1::app_support::{
    AppInfo, DestinationInterface, DnsRule, TrafficFilter, TrafficRule, TrafficRuleAction,
    TransportDependency,
};

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
    /// The transports it requires the platform to provide for the services it produces (its
    /// AppD's or its platform configuration's `transportDependencies`): the platform refuses
    /// the configuration (409) unless one of its transports has each one's type, protocol and
    /// version. Checked when provisioned; not kept, so not shown back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transport_dependencies: Vec<TransportDependency>,
    /// The OAuth 2.0 client (ETSI GS MEC 009 client credentials) the instance authenticates
    /// with at this platform, issued by MEC management; without it the instance has no Mp1
    /// credential of its own (unless one is configured at the platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2_client: Option<AppClient>,
    /// What the instance may change in its own rules through Mp1; derived from the rules
    /// provisioned here when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_rule_policy: Option<AppRulePolicy>,
}

/// The bounds of an application's own changes to its rules. ETSI GS MEC 011 lets an
/// application update its traffic and DNS rules; the operator decides how far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppRulePolicy {
    /// Domain names its DNS rules may answer: exact names, or `*.suffix` for every name below
    /// the suffix.
    #[serde(default)]
    pub dns_domains: Vec<String>,
    /// The envelope its traffic rules stay inside.
    #[serde(default)]
    pub traffic: TrafficRuleEnvelope,
}

/// What an application's traffic rule may match and do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficRuleEnvelope {
    /// Every filter of a rule lies within one of these: each attribute they set bounds the
    /// filter's (addresses and ports by containment, the others by value); an attribute they
    /// leave out is unbounded.
    #[serde(default)]
    pub traffic_filter: Vec<TrafficFilter>,
    /// Actions a rule may take.
    #[serde(default)]
    pub actions: Vec<TrafficRuleAction>,
    /// The highest priority a rule may take (0 is the highest, 255 the lowest).
    #[serde(default = "lowest_priority")]
    #[schema(maximum = 255)]
    pub highest_priority: u8,
    /// Interfaces a forwarding rule may send to.
    #[serde(default)]
    pub dst_interface: Vec<DestinationInterface>,
}

fn lowest_priority() -> u8 {
    u8::MAX
}

/// An application instance's OAuth 2.0 client at a platform. The platform knows only the
/// digests of its secrets; the secrets reach the workload, not the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppClient {
    /// The client id the instance presents at the token endpoint: 1 to 256 characters, no
    /// `:` (RFC 6749 Basic authentication) or control characters.
    #[schema(max_length = 256, pattern = r"^[^\x00-\x1F\x7F-\x9F:]+$")]
    pub client_id: String,
    /// The accepted secrets: the current one and, during a rotation, the previous one until
    /// its `notAfter` (one to [`MAX_CREDENTIALS`], with distinct ids).
    #[schema(min_items = 1, max_items = 4)]
    pub credentials: Vec<AppCredential>,
}

/// Credentials one client may hold at once (current, previous in its grace period, spare).
pub const MAX_CREDENTIALS: usize = 4;

/// Longest credential id.
pub const MAX_CREDENTIAL_ID: usize = 128;

/// What a secret digest looks like: 32 bytes in base64url without padding (43 characters, the
/// last of which carries 2 zero bits).
pub const SECRET_DIGEST_PATTERN: &str = "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$";

fn credential_id_schema() -> utoipa::openapi::Object {
    crate::common::text_schema(MAX_CREDENTIAL_ID)
}

fn secret_digest_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(SECRET_DIGEST_PATTERN))
        .write_only(Some(true))
        .build()
}

/// One accepted secret of an [`AppClient`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppCredential {
    /// Identifier of the credential (named in the tokens issued for it).
    #[schema(schema_with = credential_id_schema)]
    pub credential_id: String,
    /// SHA-256 of the secret, base64url without padding. Required when the configuration is
    /// provisioned (write-only: platforms never show it back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = secret_digest_schema, required = true)]
    pub secret_digest: Option<String>,
    /// The secret is accepted until then (the end of a rotation's grace period); for ever
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<TimeStamp>,
}
