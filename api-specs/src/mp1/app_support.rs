//! Data types of the MEC application support API (`mec_app_support/v1`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::{
    CategoryRef, EndPointInfo, LinkType, SecurityInfo, SelfLink, SerializerType, TimeStamp,
    TransportType,
};

/// State of a traffic or DNS rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuleState {
    /// The rule is applied.
    Active,
    /// The rule is not applied.
    Inactive,
}

/// How a traffic filter matches (`TrafficRule.filterType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterType {
    /// Upstream packets match; downstream packets of the flow are handled in the same context.
    Flow,
    /// Each packet is matched on its own.
    Packet,
}

/// What the data plane does with a matching packet (`TrafficRule.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficRuleAction {
    /// Discard the packet.
    Drop,
    /// Strip the tunnel and forward to the destination interface.
    ForwardDecapsulated,
    /// Forward keeping or adding the tunnel header.
    ForwardEncapsulated,
    /// Let the packet continue on its normal path.
    Passthrough,
    /// Forward the packet and a decapsulated copy.
    DuplicateDecapsulated,
    /// Forward the packet and an encapsulated copy.
    DuplicateEncapsulated,
}

/// Packet filter of a traffic rule (`TrafficFilter`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficFilter {
    /// Source addresses or prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::filter_addresses_schema)]
    pub src_address: Option<Vec<String>>,
    /// Destination addresses or prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::filter_addresses_schema)]
    pub dst_address: Option<Vec<String>>,
    /// Source ports or port ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::filter_ports_schema)]
    pub src_port: Option<Vec<String>>,
    /// Destination ports or port ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::filter_ports_schema)]
    pub dst_port: Option<Vec<String>>,
    /// Protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Vec<String>>,
    /// Tags (v2.1.1 called this `token`, accepted as an alias).
    #[serde(default, alias = "token", skip_serializing_if = "Option::is_none")]
    pub tag: Option<Vec<String>>,
    /// Application-layer URI labels (ETSI GS MEC 010-2 `TrafficFilter.uri`; carried to the
    /// platform as a mecplane extension of MEC 011's): a UPF detects them as an application
    /// (PFCP Application ID with one PFD per URL); the UPGW, which filters layers 3 and 4,
    /// refuses the rule with that reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::filter_uris_schema)]
    pub uri: Option<Vec<String>>,
    /// Network-layer packet labels (ETSI GS MEC 010-2 `TrafficFilter.packetLabel`, "as defined
    /// by the owner of the MEC platform"; a mecplane extension of MEC 011's): mecplane's are
    /// IPv6 flow labels, 0 to 1048575 in decimal or `0x` and up to five hex digits, so a filter
    /// with labels matches IPv6 packets only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::filter_packet_labels_schema)]
    pub packet_label: Option<Vec<String>>,
    /// Outer (GTP-U) source addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_tunnel_address: Option<Vec<String>>,
    /// Outer (GTP-U) destination addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tgt_tunnel_address: Option<Vec<String>>,
    /// Outer source ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_tunnel_port: Option<Vec<String>>,
    /// Outer destination ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_tunnel_port: Option<Vec<String>>,
    /// QoS class identifier (3GPP TS 23.203: 0 to 255).
    #[serde(rename = "qCI", default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 255)]
    pub q_ci: Option<u32>,
    /// DiffServ code point (IPv4, 6 bits).
    #[serde(rename = "dSCP", default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 63)]
    pub d_scp: Option<u32>,
    /// Traffic class (IPv6, 8 bits).
    #[serde(rename = "tC", default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 255)]
    pub t_c: Option<u32>,
}

/// Kind of destination interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InterfaceType {
    /// A tunnel (see `tunnelInfo`).
    Tunnel,
    /// A MAC address.
    Mac,
    /// An IP address.
    Ip,
}

/// Kind of tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TunnelType {
    /// GTP-U.
    GtpU,
    /// GRE.
    Gre,
}

/// Tunnel of a destination interface (`TunnelInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelInfo {
    /// Tunnel type.
    pub tunnel_type: TunnelType,
    /// Destination address of the tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_dst_address: Option<String>,
    /// Source address of the tunnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_src_address: Option<String>,
}

/// Where matching traffic goes (`DestinationInterface`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationInterface {
    /// Interface type.
    pub interface_type: InterfaceType,
    /// Tunnel, for TUNNEL interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_info: Option<TunnelInfo>,
    /// Source MAC address, for MAC interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_mac_address: Option<String>,
    /// Destination MAC address, for MAC interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_mac_address: Option<String>,
    /// Destination IP address, for IP interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ip_address: Option<String>,
}

/// A traffic rule of an application instance (`TrafficRule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficRule {
    /// Identifier of the rule.
    #[schema(schema_with = crate::common::id_schema)]
    pub traffic_rule_id: String,
    /// Filter type.
    pub filter_type: FilterType,
    /// Priority, 0 (highest) to 255 (lowest).
    #[schema(maximum = 255)]
    pub priority: u8,
    /// Filters (at least one); a packet matching any of them matches the rule.
    #[schema(min_items = 1)]
    pub traffic_filter: Vec<TrafficFilter>,
    /// Action on matching packets.
    pub action: TrafficRuleAction,
    /// Destination interface, for forwarding actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_interface: Option<DestinationInterface>,
    /// Whether the rule is applied.
    pub state: RuleState,
}

/// Address family of a DNS rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IpAddressType {
    /// IPv6 (answered as AAAA).
    #[serde(rename = "IP_V6")]
    IpV6,
    /// IPv4 (answered as A).
    #[serde(rename = "IP_V4")]
    IpV4,
}

/// A DNS rule of an application instance (`DnsRule`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsRule {
    /// Identifier of the rule.
    #[schema(schema_with = crate::common::id_schema)]
    pub dns_rule_id: String,
    /// FQDN resolved by the rule.
    #[schema(schema_with = crate::common::fqdn_schema)]
    pub domain_name: String,
    /// Address family.
    pub ip_address_type: IpAddressType,
    /// Address the FQDN resolves to (of the family `ipAddressType` names).
    #[schema(schema_with = crate::common::ip_address_schema)]
    pub ip_address: String,
    /// Time to live in seconds; the rule does not expire when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// Whether the rule is answered.
    pub state: RuleState,
}

/// Kind of NTP server address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NtpServerAddrType {
    /// An IP address.
    IpAddress,
    /// A DNS name.
    DnsName,
}

/// NTP authentication option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthenticationOption {
    /// No authentication.
    None,
    /// Symmetric key.
    SymmetricKey,
    /// Autokey.
    AutoKey,
}

/// An NTP server the platform offers (`NtpServers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NtpServers {
    /// Address type.
    pub ntp_server_addr_type: NtpServerAddrType,
    /// Address.
    pub ntp_server_addr: String,
    /// Minimum poll interval, as a power of two seconds (3..17).
    pub min_polling_interval: u32,
    /// Maximum poll interval, as a power of two seconds (3..17).
    pub max_polling_interval: u32,
    /// Local priority.
    pub local_priority: u32,
    /// Authentication option.
    pub authentication_option: AuthenticationOption,
    /// Authentication key number.
    pub authentication_key_num: u32,
}

/// A PTP master the platform offers (`PtpMasters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PtpMasters {
    /// IP address of the master.
    pub ptp_master_ip_address: String,
    /// Local priority.
    pub ptp_master_local_priority: u32,
    /// Maximum rate of Delay_Req messages.
    pub delay_req_max_rate: u32,
}

/// Timing capabilities of the platform (`TimingCaps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimingCaps {
    /// When the capabilities were read.
    pub time_stamp: TimeStamp,
    /// Available NTP servers.
    pub ntp_servers: Vec<NtpServers>,
    /// Available PTP masters.
    pub ptp_masters: Vec<PtpMasters>,
}

/// Whether the platform clock is locked to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeSourceStatus {
    /// Locked to a UTC source.
    Traceable,
    /// Not locked to a UTC source.
    Nontraceable,
}

/// The platform time (`CurrentTime`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CurrentTime {
    /// Seconds since the Unix epoch.
    pub seconds: u32,
    /// Nanoseconds part.
    pub nano_seconds: u32,
    /// Time source status.
    pub time_source_status: TimeSourceStatus,
}

/// An application's readiness indication (`AppReadyConfirmation`); `indication` is "READY".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppReadyConfirmation {
    /// Shall be "READY".
    #[schema(schema_with = ready_indication)]
    pub indication: String,
}

/// What is being done to an application instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationActionType {
    /// The instance is being stopped.
    Stopping,
    /// The instance is being terminated.
    Terminating,
}

/// An application's answer to a termination notification (`AppTerminationConfirmation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppTerminationConfirmation {
    /// Shall match the notification's operation.
    pub operation_action: OperationActionType,
}

/// Subscription to termination of an application instance
/// (`AppTerminationNotificationSubscription`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppTerminationNotificationSubscription {
    /// Shall be "AppTerminationNotificationSubscription".
    #[schema(schema_with = app_termination_type)]
    pub subscription_type: String,
    /// Where notifications are POSTed.
    #[schema(schema_with = crate::common::callback_uri_schema)]
    pub callback_reference: String,
    /// Link to this subscription (responses only).
    #[serde(rename = "_links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<SelfLink>,
    /// The application instance whose termination is reported.
    pub app_instance_id: String,
}

impl AppTerminationNotificationSubscription {
    /// Its `subscriptionType`.
    pub const TYPE: &str = "AppTerminationNotificationSubscription";
}

fn app_termination_type() -> utoipa::openapi::Object {
    crate::common::single_value_schema(AppTerminationNotificationSubscription::TYPE)
}

fn ready_indication() -> utoipa::openapi::Object {
    crate::common::single_value_schema("READY")
}

/// Links of a termination notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppTerminationNotificationLinks {
    /// The related subscription.
    pub subscription: LinkType,
    /// Where to confirm termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_termination: Option<LinkType>,
}

/// Notice that an application instance is being stopped or terminated
/// (`AppTerminationNotification`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppTerminationNotification {
    /// "AppTerminationNotification".
    pub notification_type: String,
    /// The operation under way.
    pub operation_action: OperationActionType,
    /// Seconds the application has to confirm.
    pub max_graceful_timeout: u32,
    /// Links.
    #[serde(rename = "_links")]
    pub links: AppTerminationNotificationLinks,
}

impl AppTerminationNotification {
    /// Its `notificationType`.
    pub const TYPE: &str = "AppTerminationNotification";
}

/// A transport an application needs (`TransportDescriptor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportDescriptor {
    /// Name of the transport.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Type of the transport.
    #[serde(rename = "type")]
    pub transport_type: TransportType,
    /// Protocol name.
    pub protocol: String,
    /// Protocol version.
    pub version: String,
    /// Security of the transport.
    pub security: SecurityInfo,
    /// Implementation-specific details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub impl_specific_info: Option<serde_json::Value>,
}

/// A transport and serializer binding (`TransportDependency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportDependency {
    /// The transport.
    pub transport: TransportDescriptor,
    /// Supported serializers.
    pub serializers: Vec<SerializerType>,
    /// Labels grouping bindings.
    pub labels: Vec<String>,
}

/// A service an application requires or may use (`ServiceDependency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceDependency {
    /// Name of the service.
    pub ser_name: String,
    /// Category of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_category: Option<CategoryRef>,
    /// Version of the service.
    pub version: String,
    /// Transport dependencies; REST + JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_transport_dependencies: Option<Vec<TransportDependency>>,
    /// Requested permissions (format left open by ETSI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub requested_permissions: Option<serde_json::Value>,
}

/// A platform feature an application requires or may use (`FeatureDependency`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureDependency {
    /// Name of the feature.
    pub feature_name: String,
    /// Version of the feature.
    pub version: String,
}

/// An application instance as the platform knows it (`AppInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppInfo {
    /// Name of the application.
    #[schema(schema_with = crate::common::name_schema)]
    pub app_name: String,
    /// Provider of the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_name_schema)]
    pub app_provider: Option<String>,
    /// Category of the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_category: Option<CategoryRef>,
    /// AppD identifier, when instantiated by MEC management.
    #[serde(rename = "appDId", default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_id_schema)]
    pub app_d_id: Option<String>,
    /// Application instance identifier, when instantiated by MEC management.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_id_schema)]
    pub app_instance_id: Option<String>,
    /// Endpoint of the application server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndPointInfo>,
    /// Services the application requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_service_required: Option<Vec<ServiceDependency>>,
    /// Services the application may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_service_optional: Option<Vec<ServiceDependency>>,
    /// Features the application requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_feature_required: Option<Vec<FeatureDependency>>,
    /// Features the application may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_feature_optional: Option<Vec<FeatureDependency>>,
    /// Whether MEC management instantiated the application; false when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_ins_by_mec: Option<bool>,
    /// The application's EAS profile (ETSI TS 129 558), as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub app_profile: Option<serde_json::Map<String, serde_json::Value>>,
}

// === validation shared by every service that accepts rules ===

impl AppInfo {
    /// Checks the names and identifiers a client gives.
    pub fn validate_names(&self) -> Result<(), String> {
        use crate::common::{MAX_ID, MAX_NAME, check_optional_text, check_text};
        check_text("appName", &self.app_name, MAX_NAME)?;
        check_optional_text("appProvider", self.app_provider.as_deref(), MAX_NAME)?;
        check_optional_text("appDId", self.app_d_id.as_deref(), MAX_ID)?;
        check_optional_text("appInstanceId", self.app_instance_id.as_deref(), MAX_ID)?;
        if let Some(c) = &self.app_category {
            check_text("appCategory.id", &c.id, MAX_ID)?;
            check_text("appCategory.name", &c.name, MAX_NAME)?;
        }
        Ok(())
    }
}

impl TrafficFilter {
    /// Checks addresses (IP, CIDR prefix or `a-b` range), ports (port or `a-b` range), packet
    /// labels (IPv6 flow labels), URIs (text) and the ranges of `qCI` (0-255), `dSCP` (0-63)
    /// and `tC` (0-255).
    pub fn validate(&self) -> Result<(), String> {
        for (field, value, max) in [
            ("qCI", self.q_ci, 255),
            ("dSCP", self.d_scp, 63),
            ("tC", self.t_c, 255),
        ] {
            if value.is_some_and(|v| v > max) {
                return Err(format!("{field} shall be 0 to {max}"));
            }
        }
        for address in self.src_address.iter().chain(&self.dst_address).flatten() {
            if !crate::common::is_filter_address(address) {
                return Err(format!("{address} is not an IP address, prefix or range"));
            }
        }
        for label in self.packet_label.iter().flatten() {
            if crate::common::flow_label(label).is_none() {
                return Err(format!(
                    "packetLabel {label} is not an IPv6 flow label (0 to 1048575, or 0x and 1 to 5 hex digits)"
                ));
            }
        }
        for uri in self.uri.iter().flatten() {
            crate::common::check_text("uri", uri, crate::common::MAX_URI)?;
        }
        for port in self.src_port.iter().chain(&self.dst_port).flatten() {
            if !crate::common::is_filter_port(port) {
                return Err(format!("{port} is not a port or port range"));
            }
            if let Some((first, last)) = port.split_once('-')
                && first.parse::<u16>().ok() > last.parse::<u16>().ok()
            {
                return Err(format!(
                    "port range {port} is reversed: its first port is the lower"
                ));
            }
        }
        Ok(())
    }
}

/// Checks a DNS rule's domain and that its address parses and matches its type.
pub fn validate_dns_target(
    domain_name: &str,
    ip_address_type: IpAddressType,
    ip_address: &str,
) -> Result<(), String> {
    let domain = domain_name.trim_end_matches('.');
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(valid_label) {
        return Err(format!("domainName {domain_name} is not a valid FQDN"));
    }
    let ip = crate::common::check_ip_address(ip_address)
        .ok_or_else(|| format!("ipAddress {ip_address} is not an IP address"))?;
    match (ip_address_type, ip) {
        (IpAddressType::IpV4, std::net::IpAddr::V4(_))
        | (IpAddressType::IpV6, std::net::IpAddr::V6(_)) => Ok(()),
        _ => Err(format!(
            "ipAddress {ip_address} does not match ipAddressType"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ports() {
        let filter = |address: &str, port: &str| TrafficFilter {
            dst_address: Some(vec![address.into()]),
            dst_port: Some(vec![port.into()]),
            ..TrafficFilter::default()
        };
        for ok in [
            "10.0.0.1",
            "10.0.0.0/8",
            "2001:db8::/32",
            "10.0.0.1-10.0.0.9",
            "::ffff:10.0.0.1",
        ] {
            assert!(filter(ok, "80").validate().is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.0/33",
            "host",
            "10.0.0.1-x",
            "",
            "10.0.0.1-::1",
            " 10.0.0.1",
        ] {
            assert!(filter(bad, "80").validate().is_err(), "{bad}");
        }
        assert!(filter("10.0.0.1", "1000-2000").validate().is_ok());
        for bad in ["2000-1000", "70000", "http", " 80"] {
            assert!(filter("10.0.0.1", bad).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_targets() {
        assert!(validate_dns_target("a.example.", IpAddressType::IpV4, "10.0.0.1").is_ok());
        assert!(validate_dns_target("bad name", IpAddressType::IpV4, "10.0.0.1").is_err());
        assert!(validate_dns_target("a.example", IpAddressType::IpV6, "10.0.0.1").is_err());
    }
}
