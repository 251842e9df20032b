//! Data types of the MEC service management API (`mec_service_mgmt/v1`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::{CategoryRef, LinkType, SelfLink, SerializerType, TimeStamp, TransportInfo};

/// Scope of locality of a service (`LocalityType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LocalityType {
    /// The whole MEC system.
    MecSystem,
    /// One MEC host.
    MecHost,
    /// One NFVI point of presence.
    NfviPop,
    /// A zone.
    Zone,
    /// A group of zones.
    ZoneGroup,
    /// One NFVI node.
    NfviNode,
}

/// State of a MEC service instance (`ServiceState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceState {
    /// The service is available.
    Active,
    /// The service is not available.
    Inactive,
    /// The service is suspended (e.g. its heartbeats stopped).
    Suspended,
}

/// Links of a service instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceInfoLinks {
    /// Link to this service instance.
    #[serde(rename = "self")]
    pub self_: LinkType,
    /// Where the platform expects heartbeats, when it requires them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<LinkType>,
}

/// A MEC service instance (`ServiceInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceInfo {
    /// Identifier assigned by the platform; absent in registration requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_instance_id: Option<String>,
    /// Name of the service.
    pub ser_name: String,
    /// Category of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_category: Option<CategoryRef>,
    /// Version of the service.
    pub version: String,
    /// State of the service.
    pub state: ServiceState,
    /// A platform-provided transport, by id (requests only; responses carry `transportInfo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_id: Option<String>,
    /// The transport the service uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_info: Option<TransportInfo>,
    /// Serialization format of the service.
    pub serializer: SerializerType,
    /// Scope of locality; MEC_HOST when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_of_locality: Option<LocalityType>,
    /// Only consumable within its locality; true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_local_only: Option<bool>,
    /// Located in the consumer's locality; true when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_local: Option<bool>,
    /// Seconds between heartbeats, when the platform requires them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_interval: Option<u32>,
    /// Links; absent in requests, present in responses.
    #[serde(rename = "_links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<ServiceInfoLinks>,
}

impl ServiceInfo {
    /// Checks the names a client gives: `serName`, `version` and the category's.
    pub fn validate_names(&self) -> Result<(), String> {
        use crate::common::{MAX_ID, MAX_NAME, check_optional_text, check_text};
        check_text("serName", &self.ser_name, MAX_NAME)?;
        check_text("version", &self.version, MAX_NAME)?;
        if let Some(c) = &self.ser_category {
            check_text("serCategory.id", &c.id, MAX_ID)?;
            check_text("serCategory.name", &c.name, MAX_NAME)?;
            check_optional_text("serCategory.version", Some(&c.version), MAX_NAME)?;
        }
        Ok(())
    }
}

/// Liveness of a service instance (`ServiceLivenessInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceLivenessInfo {
    /// Liveness state.
    pub state: ServiceState,
    /// When the last heartbeat arrived.
    pub time_stamp: TimeStamp,
    /// Seconds between heartbeats that the platform determined.
    pub interval: u32,
}

/// A heartbeat (`ServiceLivenessUpdate`); `state` shall be ACTIVE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceLivenessUpdate {
    /// Shall be ACTIVE.
    pub state: ServiceState,
}

/// Which services a subscription reports on (`FilteringCriteria`); all attributes are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilteringCriteria {
    /// Service instance ids (exclusive with `serNames` and `serCategories`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_instance_ids: Option<Vec<String>>,
    /// Service names (exclusive with the other selectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_names: Option<Vec<String>>,
    /// Service categories (exclusive with the other selectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_categories: Option<Vec<CategoryRef>>,
    /// States after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<Vec<ServiceState>>,
    /// Only services local (or not) to this platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_local: Option<bool>,
}

/// Subscription to service availability (`SerAvailabilityNotificationSubscription`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SerAvailabilityNotificationSubscription {
    /// Shall be "SerAvailabilityNotificationSubscription".
    pub subscription_type: String,
    /// Where notifications are POSTed.
    pub callback_reference: String,
    /// Link to this subscription (responses only).
    #[serde(rename = "_links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<SelfLink>,
    /// Which services to report on; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtering_criteria: Option<FilteringCriteria>,
}

/// Kind of change of a service (`ServiceReferences.changeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeType {
    /// The service was newly added.
    Added,
    /// The service was removed.
    Removed,
    /// Only the state changed.
    StateChanged,
    /// Other attributes changed.
    AttributesChanged,
}

/// One changed service in a notification (`ServiceReferences`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceReferences {
    /// Link to the service; absent when it was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkType>,
    /// Name of the service.
    pub ser_name: String,
    /// Identifier of the service.
    pub ser_instance_id: String,
    /// State after the change.
    pub state: ServiceState,
    /// Kind of change.
    pub change_type: ChangeType,
}

/// Links of a notification: the subscription it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationLinks {
    /// The related subscription.
    pub subscription: LinkType,
}

/// A service availability notification (`ServiceAvailabilityNotification`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAvailabilityNotification {
    /// "SerAvailabilityNotification".
    pub notification_type: String,
    /// The changed services.
    pub service_references: Vec<ServiceReferences>,
    /// Link to the subscription.
    #[serde(rename = "_links")]
    pub links: NotificationLinks,
}
