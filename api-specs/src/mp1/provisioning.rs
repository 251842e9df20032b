//! The MEP's provisioning API (`mep_mgmt/v1`), how MEC management configures an application
//! instance at a platform. ETSI leaves this (Mm5) open; mecplane uses this JSON contract until
//! the MEAO-MEP gRPC link carries it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
}
