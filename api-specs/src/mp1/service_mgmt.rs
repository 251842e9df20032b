//! Data types of the MEC service management API (`mec_service_mgmt/v1`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::{CategoryRef, LinkType, SelfLink, SerializerType, TimeStamp, TransportInfo};

/// Scope of locality of a service (`LocalityType`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
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
    #[schema(read_only)]
    pub ser_instance_id: Option<String>,
    /// Name of the service.
    #[schema(schema_with = crate::common::name_schema)]
    pub ser_name: String,
    /// Category of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ser_category: Option<CategoryRef>,
    /// Version of the service.
    #[schema(schema_with = crate::common::name_schema)]
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
    /// The URIs of its transport's endpoint (none when it has no such endpoint).
    pub fn endpoint_uris(&self) -> &[String] {
        self.transport_info
            .as_ref()
            .and_then(|t| t.endpoint.uris.as_deref())
            .unwrap_or_default()
    }

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

/// Service discovery filters: the query parameters of `GET /services` and
/// `GET /applications/{appInstanceId}/services`. `ser_instance_id`, `ser_name` and
/// `ser_category_id` are mutually exclusive; all filters present must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceQuery {
    /// Only these service instances.
    pub ser_instance_id: Option<Vec<String>>,
    /// Only these service names.
    pub ser_name: Option<Vec<String>>,
    /// Only this category id.
    pub ser_category_id: Option<String>,
    /// Only this scope of locality.
    pub scope_of_locality: Option<LocalityType>,
    /// Only services with this `consumedLocalOnly`.
    pub consumed_local_only: Option<bool>,
    /// Only services with this `isLocal`.
    pub is_local: Option<bool>,
}

impl ServiceQuery {
    /// The query parameters, a list as one parameter per value.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        for id in self.ser_instance_id.iter().flatten() {
            pairs.push(("ser_instance_id", id.clone()));
        }
        for name in self.ser_name.iter().flatten() {
            pairs.push(("ser_name", name.clone()));
        }
        if let Some(category) = &self.ser_category_id {
            pairs.push(("ser_category_id", category.clone()));
        }
        if let Some(scope) = self
            .scope_of_locality
            .and_then(|l| serde_json::to_value(l).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
        {
            pairs.push(("scope_of_locality", scope));
        }
        if let Some(c) = self.consumed_local_only {
            pairs.push(("consumed_local_only", c.to_string()));
        }
        if let Some(l) = self.is_local {
            pairs.push(("is_local", l.to_string()));
        }
        pairs
    }

    /// Parses query parameters: lists may repeat the parameter or separate values with commas;
    /// unknown parameters, bad values and more than one of the exclusive selectors are errors.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, String> {
        let mut q = Self::default();
        let list = |v: &str| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let boolean = |name: &str, value: &str| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("{name} shall be true or false")),
        };
        for (key, value) in pairs {
            match key.as_str() {
                "ser_instance_id" => q
                    .ser_instance_id
                    .get_or_insert_with(Vec::new)
                    .extend(list(&value)),
                "ser_name" => q.ser_name.get_or_insert_with(Vec::new).extend(list(&value)),
                "ser_category_id" => q.ser_category_id = Some(value),
                "scope_of_locality" => {
                    q.scope_of_locality = Some(
                        serde_json::from_value(serde_json::Value::String(value.clone()))
                            .map_err(|_| format!("unknown scope_of_locality {value}"))?,
                    );
                }
                "consumed_local_only" => q.consumed_local_only = Some(boolean(&key, &value)?),
                "is_local" => q.is_local = Some(boolean(&key, &value)?),
                other => return Err(format!("unknown query parameter {other}")),
            }
        }
        let selectors = [
            q.ser_instance_id.is_some(),
            q.ser_name.is_some(),
            q.ser_category_id.is_some(),
        ];
        if selectors.into_iter().filter(|s| *s).count() > 1 {
            return Err(
                "ser_instance_id, ser_name and ser_category_id are mutually exclusive".into(),
            );
        }
        Ok(q)
    }

    /// Whether `s` passes every filter (absent attributes take their ETSI defaults).
    pub fn matches(&self, s: &ServiceInfo) -> bool {
        let id = s.ser_instance_id.as_deref().unwrap_or_default();
        self.ser_instance_id
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|i| i == id))
            && self
                .ser_name
                .as_ref()
                .is_none_or(|names| names.contains(&s.ser_name))
            && self
                .ser_category_id
                .as_ref()
                .is_none_or(|c| s.ser_category.as_ref().is_some_and(|sc| &sc.id == c))
            && self
                .scope_of_locality
                .is_none_or(|l| s.scope_of_locality.unwrap_or(LocalityType::MecHost) == l)
            && self
                .consumed_local_only
                .is_none_or(|c| s.consumed_local_only.unwrap_or(true) == c)
            && self
                .is_local
                .is_none_or(|l| s.is_local.unwrap_or(true) == l)
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
    #[schema(schema_with = active_state)]
    pub state: ServiceState,
}

/// Which services a subscription reports on (`FilteringCriteria`); all attributes are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilteringCriteria {
    /// Service instance ids (exclusive with `serNames` and `serCategories`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_id_list_schema)]
    pub ser_instance_ids: Option<Vec<String>>,
    /// Service names (exclusive with the other selectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_name_list_schema)]
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
    #[schema(schema_with = ser_availability_type)]
    pub subscription_type: String,
    /// Where notifications are POSTed.
    #[schema(schema_with = crate::common::callback_uri_schema)]
    pub callback_reference: String,
    /// Link to this subscription (responses only).
    #[serde(rename = "_links", default, skip_serializing_if = "Option::is_none")]
    pub links: Option<SelfLink>,
    /// Which services to report on; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtering_criteria: Option<FilteringCriteria>,
}

impl SerAvailabilityNotificationSubscription {
    /// Its `subscriptionType`.
    pub const TYPE: &str = "SerAvailabilityNotificationSubscription";
}

fn ser_availability_type() -> utoipa::openapi::Object {
    crate::common::single_value_schema(SerAvailabilityNotificationSubscription::TYPE)
}

fn active_state() -> utoipa::openapi::Object {
    crate::common::single_value_schema("ACTIVE")
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

impl ServiceAvailabilityNotification {
    /// Its `notificationType`.
    pub const TYPE: &str = "SerAvailabilityNotification";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn query_lists_repeat_or_use_commas() {
        let q = ServiceQuery::from_pairs(pairs(&[
            ("ser_name", "a,b"),
            ("ser_name", "c"),
            ("is_local", "true"),
        ]))
        .unwrap();
        assert_eq!(q.ser_name, Some(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(q.is_local, Some(true));
    }

    #[test]
    fn query_rejects_unknown_exclusive_and_bad_values() {
        let parse = |p: &[(&str, &str)]| ServiceQuery::from_pairs(pairs(p));
        assert!(parse(&[("instance_id", "x")]).is_err());
        assert!(parse(&[("ser_name", "a"), ("ser_category_id", "c")]).is_err());
        assert!(parse(&[("is_local", "yes")]).is_err());
        assert!(parse(&[("scope_of_locality", "PLANET")]).is_err());
    }

    #[test]
    fn a_query_survives_its_parameters() {
        let q = ServiceQuery {
            ser_name: Some(vec!["a,b".into(), "c".into()]),
            scope_of_locality: Some(LocalityType::ZoneGroup),
            consumed_local_only: Some(false),
            is_local: Some(true),
            ..ServiceQuery::default()
        };
        let sent: Vec<(String, String)> = q
            .to_pairs()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert!(sent.contains(&("scope_of_locality".into(), "ZONE_GROUP".into())));
        let parsed = ServiceQuery::from_pairs(sent).unwrap();
        assert_eq!(
            parsed.ser_name,
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            (
                parsed.scope_of_locality,
                parsed.consumed_local_only,
                parsed.is_local
            ),
            (q.scope_of_locality, q.consumed_local_only, q.is_local)
        );
        let ids = ServiceQuery {
            ser_instance_id: Some(vec!["s1".into(), "s2".into()]),
            ser_category_id: None,
            ..ServiceQuery::default()
        };
        assert_eq!(
            ids.to_pairs(),
            [
                ("ser_instance_id", "s1".into()),
                ("ser_instance_id", "s2".into())
            ]
        );
    }
}
