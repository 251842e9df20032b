//! The application descriptor (`AppD`, ETSI GS MEC 010-2 v3.1.1 clause 6.2.1.2), as packages
//! carry it. Unknown attributes are rejected so typos surface at onboarding.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::{CategoryRef, SerializerType};
use crate::mm1::app_pkgm::Checksum;
use crate::mp1::app_support::TransportDescriptor;
use crate::mp1::app_support::{
    FeatureDependency, FilterType, ServiceDependency, TrafficFilter, TrafficRuleAction,
    TransportDependency, TunnelType,
};

/// A software image the application needs (`SwImageDescriptor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwImageDescriptor {
    /// Identifier, referenced by `osContainerDescriptor`.
    pub id: String,
    /// Image name.
    pub name: String,
    /// Image version.
    pub version: String,
    /// Checksum; required for images included in the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// Container format, e.g. DOCKER, OCI, BARE.
    pub container_format: String,
    /// Disk format, e.g. RAW, QCOW2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<String>,
    /// Minimum disk (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_disk: Option<u64>,
    /// Minimum RAM (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ram: Option<u64>,
    /// Size (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Path of the image inside the package, or an image reference (`registry/name:tag`).
    pub sw_image: String,
    /// Operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system: Option<String>,
    /// Supported virtualisation environments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_virtualisation_environment: Vec<String>,
}

/// Virtual CPU requirements (`VirtualCpuData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualCpuData {
    /// CPU architecture, e.g. x86_64 or aarch64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_architecture: Option<String>,
    /// Number of virtual CPUs.
    pub num_virtual_cpu: u32,
    /// Minimum clock (MHz).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_cpu_clock: Option<f64>,
}

/// Virtual memory requirements (`VirtualMemoryData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualMemoryData {
    /// Memory in MB.
    pub virtual_mem_size: f64,
    /// Whether NUMA is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_enabled: Option<bool>,
}

/// An additional capability such as a GPU (`RequestedAdditionalCapabilityData`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestedAdditionalCapabilityData {
    /// Capability name, e.g. `nvidia.com/gpu`.
    pub requested_additional_capability_name: String,
    /// Whether the capability is mandatory.
    pub support_mandatory: bool,
    /// Minimum version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requested_additional_capability_version: Option<String>,
    /// Performance parameters, e.g. `{"count": "1"}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub target_performance_parameters: serde_json::Value,
}

/// Compute requirements (`VirtualComputeDescriptor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualComputeDescriptor {
    /// Identifier.
    pub virtual_compute_desc_id: String,
    /// Memory.
    pub virtual_memory: VirtualMemoryData,
    /// CPU.
    pub virtual_cpu: VirtualCpuData,
    /// Additional capabilities (GPUs, accelerators).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_additional_capabilities: Vec<RequestedAdditionalCapabilityData>,
}

/// A container of a cloud-native application (`OsContainerDescriptor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OsContainerDescriptor {
    /// Identifier.
    pub os_container_desc_id: String,
    /// Container name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Requested CPU (millicores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_cpu_resources: Option<u32>,
    /// Requested memory (MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_memory_resources: Option<f64>,
    /// CPU limit (millicores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_resource_limit: Option<u32>,
    /// Memory limit (MB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_resource_limit: Option<f64>,
    /// The `swImageDescriptor` id of its image.
    pub sw_image_desc: String,
}

/// A service the application produces (`ServiceDescriptor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceDescriptor {
    /// Service name.
    pub ser_name: String,
    /// Category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_category: Option<CategoryRef>,
    /// Version.
    pub version: String,
    /// Supported transports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transports_supported: Vec<TransportsSupported>,
}

/// A transport and its serializers (`TransportsSupported`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportsSupported {
    /// The transport.
    pub transport: TransportDescriptor,
    /// Serializers.
    pub serializers: Vec<SerializerType>,
}

/// Tunnel of an interface descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelDescriptor {
    /// Tunnel type.
    pub tunnel_type: TunnelType,
    /// Destination address.
    pub tunnel_dst_address: String,
    /// Source address.
    pub tunnel_src_address: String,
}

/// Kind of interface in an AppD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InterfaceDescriptorType {
    /// A tunnel.
    Tunnel,
    /// A MAC address.
    Mac,
    /// An IP address.
    Ip,
}

/// Destination of steered traffic in an AppD (`InterfaceDescriptor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterfaceDescriptor {
    /// Interface type.
    pub interface_type: InterfaceDescriptorType,
    /// Tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_info: Option<TunnelDescriptor>,
    /// Source MAC address.
    #[serde(
        rename = "srcMACAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub src_mac_address: Option<String>,
    /// Destination MAC address.
    #[serde(
        rename = "dstMACAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dst_mac_address: Option<String>,
    /// Destination IP address.
    #[serde(
        rename = "dstIPAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dst_ip_address: Option<String>,
}

/// A traffic rule template (`TrafficRuleDescriptor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficRuleDescriptor {
    /// Identifier.
    #[schema(schema_with = crate::common::id_schema)]
    pub traffic_rule_id: String,
    /// Filter type.
    pub filter_type: FilterType,
    /// Priority, 0 (highest) to 255.
    #[schema(maximum = 255)]
    pub priority: u8,
    /// Filters (at least one).
    #[schema(min_items = 1)]
    pub traffic_filter: Vec<TrafficFilter>,
    /// Action.
    pub action: TrafficRuleAction,
    /// Destination interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_interface: Option<InterfaceDescriptor>,
}

/// A DNS rule template (`DNSRuleDescriptor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsRuleDescriptor {
    /// Identifier.
    #[schema(schema_with = crate::common::id_schema)]
    pub dns_rule_id: String,
    /// FQDN.
    #[schema(schema_with = crate::common::fqdn_schema)]
    pub domain_name: String,
    /// Address family.
    pub ip_address_type: crate::mp1::app_support::IpAddressType,
    /// Address (of the family `ipAddressType` names).
    #[schema(schema_with = crate::common::ip_address_schema)]
    pub ip_address: String,
    /// TTL (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

/// Latency requirement (`LatencyDescriptor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyDescriptor {
    /// Maximum latency (ms).
    pub max_latency: u32,
}

/// Graceful termination settings (`TerminateAppInstanceOpConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TerminateAppInstanceOpConfig {
    /// Minimum graceful termination timeout (s).
    pub min_graceful_termination_timeout: f64,
    /// Recommended maximum (s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recommended_graceful_termination_timeout: Option<f64>,
}

/// Graceful stop settings (`ChangeAppInstanceStateOpConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeAppInstanceStateOpConfig {
    /// Minimum graceful stop timeout (s).
    pub min_graceful_stop_timeout: f64,
    /// Recommended maximum (s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recommended_graceful_stop_timeout: Option<f64>,
}

/// User context transfer support (`UserContextTransferCapability`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserContextTransferCapability {
    /// Whether the application is stateful.
    pub stateful_application: bool,
    /// Whether it supports user context transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_context_transfer_support: Option<bool>,
}

/// An external connection point (`AppExternalCpd`), kept as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppExternalCpd {
    /// Identifier of the connection point.
    pub cpd_id: String,
    /// Layer protocols, e.g. IPV4.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_protocol: Vec<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The application descriptor (`AppD`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppD {
    /// Identifier of this AppD.
    #[serde(rename = "appDId")]
    pub app_d_id: String,
    /// Application name.
    pub app_name: String,
    /// Provider.
    pub app_provider: String,
    /// Software version.
    pub app_soft_version: String,
    /// AppD version.
    #[serde(rename = "appDVersion")]
    pub app_d_version: String,
    /// Compatible MEC system versions.
    pub mec_version: Vec<String>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_info_name: Option<String>,
    /// Description.
    pub app_description: String,
    /// Compute requirements (virtual machine or whole-application view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_compute_descriptor: Option<VirtualComputeDescriptor>,
    /// Containers (cloud-native applications).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os_container_descriptor: Vec<OsContainerDescriptor>,
    /// Software images.
    pub sw_image_descriptor: Vec<SwImageDescriptor>,
    /// External connection points.
    pub app_ext_cpd: Vec<AppExternalCpd>,
    /// Services required to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_service_required: Vec<ServiceDependency>,
    /// Services used when available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_service_optional: Vec<ServiceDependency>,
    /// Services produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_service_produced: Vec<ServiceDescriptor>,
    /// Features required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_feature_required: Vec<FeatureDependency>,
    /// Features used when available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_feature_optional: Vec<FeatureDependency>,
    /// Transports the application offers to service consumers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transport_dependencies: Vec<TransportDependency>,
    /// Traffic rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_traffic_rule: Vec<TrafficRuleDescriptor>,
    /// DNS rules.
    #[serde(rename = "appDNSRule", default, skip_serializing_if = "Vec::is_empty")]
    pub app_dns_rule: Vec<DnsRuleDescriptor>,
    /// Latency requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_latency: Option<LatencyDescriptor>,
    /// Graceful termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate_app_instance_op_config: Option<TerminateAppInstanceOpConfig>,
    /// Graceful stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_app_instance_state_op_config: Option<ChangeAppInstanceStateOpConfig>,
    /// User context transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_context_transfer_capability: Option<UserContextTransferCapability>,
    /// Identifier of the MCIOP (e.g. the Helm chart artifact path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mciop_id: Option<String>,
}

impl TrafficRuleDescriptor {
    /// The Mp1 traffic rule this descriptor provisions, in `state`.
    pub fn to_rule(
        &self,
        state: crate::mp1::app_support::RuleState,
    ) -> crate::mp1::app_support::TrafficRule {
        use crate::mp1::app_support::{DestinationInterface, InterfaceType, TunnelInfo};
        crate::mp1::app_support::TrafficRule {
            traffic_rule_id: self.traffic_rule_id.clone(),
            filter_type: self.filter_type,
            priority: self.priority,
            traffic_filter: self.traffic_filter.clone(),
            action: self.action,
            dst_interface: self.dst_interface.as_ref().map(|i| DestinationInterface {
                interface_type: match i.interface_type {
                    InterfaceDescriptorType::Tunnel => InterfaceType::Tunnel,
                    InterfaceDescriptorType::Mac => InterfaceType::Mac,
                    InterfaceDescriptorType::Ip => InterfaceType::Ip,
                },
                tunnel_info: i.tunnel_info.as_ref().map(|t| TunnelInfo {
                    tunnel_type: t.tunnel_type,
                    tunnel_dst_address: Some(t.tunnel_dst_address.clone()),
                    tunnel_src_address: Some(t.tunnel_src_address.clone()),
                }),
                src_mac_address: i.src_mac_address.clone(),
                dst_mac_address: i.dst_mac_address.clone(),
                dst_ip_address: i.dst_ip_address.clone(),
            }),
            state,
        }
    }
}

impl DnsRuleDescriptor {
    /// The Mp1 DNS rule this descriptor provisions, in `state`.
    pub fn to_rule(
        &self,
        state: crate::mp1::app_support::RuleState,
    ) -> crate::mp1::app_support::DnsRule {
        crate::mp1::app_support::DnsRule {
            dns_rule_id: self.dns_rule_id.clone(),
            domain_name: self.domain_name.clone(),
            ip_address_type: self.ip_address_type,
            ip_address: self.ip_address.clone(),
            ttl: self.ttl,
            state,
        }
    }
}

/// Request to configure the platform for an application (`ConfigPlatformForAppRequest`): the
/// rules and requirements the MEP applies for the instance, replacing those of its AppD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigPlatformForAppRequest {
    /// Services required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_service_required: Vec<ServiceDependency>,
    /// Services used when available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_service_optional: Vec<ServiceDependency>,
    /// Services produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_service_produced: Vec<ServiceDescriptor>,
    /// Features required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_feature_required: Vec<FeatureDependency>,
    /// Features used when available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_feature_optional: Vec<FeatureDependency>,
    /// Transports the platform shall provide for the services the application produces: the
    /// site's MEP refuses the configuration unless it provides each (type, protocol, version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transport_dependencies: Vec<TransportDependency>,
    /// Traffic rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_traffic_rule: Vec<TrafficRuleDescriptor>,
    /// DNS rules.
    #[serde(rename = "appDNSRule", default, skip_serializing_if = "Vec::is_empty")]
    pub app_dns_rule: Vec<DnsRuleDescriptor>,
    /// Latency requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_latency: Option<LatencyDescriptor>,
}
