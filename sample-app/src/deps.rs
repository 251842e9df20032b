//! The services the instance requires (its AppD's `appServiceRequired`, as the MEP tells it)
//! and which of their instances are available, kept up to date from discovery and
//! availability notifications.

use std::collections::BTreeMap;

use mp1_client::api_specs::mp1::service_mgmt::{
    ChangeType, ServiceAvailabilityNotification, ServiceInfo, ServiceState,
};
use serde::Serialize;

/// One instance of a required service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    /// Its state.
    pub state: ServiceState,
    /// Where it is served, when known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
}

/// The required services by name, each with its known instances by `serInstanceId`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Dependencies(BTreeMap<String, BTreeMap<String, Provider>>);

impl Dependencies {
    /// Dependencies on the services named `names`, none known yet.
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self(names.into_iter().map(|n| (n, BTreeMap::new())).collect())
    }

    /// The required services' names.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Records a discovered service (ignored when not required).
    pub fn discovered(&mut self, service: &ServiceInfo) {
        let (Some(providers), Some(id)) = (
            self.0.get_mut(&service.ser_name),
            service.ser_instance_id.clone(),
        ) else {
            return;
        };
        providers.insert(
            id,
            Provider {
                state: service.state,
                uris: service.endpoint_uris().to_vec(),
            },
        );
    }

    /// Applies a notification; returns the instances added or changed (whose details are
    /// worth looking up).
    pub fn notified(&mut self, notification: &ServiceAvailabilityNotification) -> Vec<String> {
        let mut changed = Vec::new();
        for r in &notification.service_references {
            let Some(providers) = self.0.get_mut(&r.ser_name) else {
                continue;
            };
            match r.change_type {
                ChangeType::Removed => {
                    providers.remove(&r.ser_instance_id);
                }
                ChangeType::Added | ChangeType::AttributesChanged | ChangeType::StateChanged => {
                    let provider = providers
                        .entry(r.ser_instance_id.clone())
                        .or_insert(Provider {
                            state: r.state,
                            uris: Vec::new(),
                        });
                    provider.state = r.state;
                    if r.change_type != ChangeType::StateChanged {
                        changed.push(r.ser_instance_id.clone());
                    }
                }
            }
        }
        changed
    }

    /// Whether every required service has an ACTIVE instance.
    pub fn met(&self) -> bool {
        self.0
            .values()
            .all(|providers| providers.values().any(|p| p.state == ServiceState::Active))
    }

    /// The required services without an ACTIVE instance.
    pub fn missing(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, providers)| !providers.values().any(|p| p.state == ServiceState::Active))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn notification(refs: serde_json::Value) -> ServiceAvailabilityNotification {
        serde_json::from_value(json!({
            "notificationType": "SerAvailabilityNotification",
            "serviceReferences": refs,
            "_links": {"subscription": {"href": "http://mep/s/1"}}
        }))
        .unwrap()
    }

    fn reference(name: &str, id: &str, state: &str, change: &str) -> serde_json::Value {
        json!({"serName": name, "serInstanceId": id, "state": state, "changeType": change})
    }

    #[test]
    fn met_when_every_required_service_has_an_active_instance() {
        let mut deps = Dependencies::new(["a".to_owned(), "b".to_owned()]);
        assert!(!deps.met());
        assert_eq!(deps.missing(), ["a", "b"]);
        let changed = deps.notified(&notification(json!([
            reference("a", "a1", "ACTIVE", "ADDED"),
            reference("other", "o1", "ACTIVE", "ADDED"),
        ])));
        assert_eq!(changed, ["a1"], "only required services are tracked");
        assert_eq!(deps.missing(), ["b"]);
        deps.notified(&notification(json!([reference(
            "b", "b1", "INACTIVE", "ADDED"
        )])));
        assert!(!deps.met(), "an INACTIVE instance does not count");
        let changed = deps.notified(&notification(json!([reference(
            "b",
            "b1",
            "ACTIVE",
            "STATE_CHANGED"
        )])));
        assert!(changed.is_empty() && deps.met());
        deps.notified(&notification(json!([reference(
            "a", "a1", "ACTIVE", "REMOVED"
        )])));
        assert_eq!(deps.missing(), ["a"]);
        assert!(Dependencies::new([]).met(), "nothing required: met");
    }

    #[test]
    fn discovery_records_where_a_provider_is() {
        let mut deps = Dependencies::new(["a".to_owned()]);
        let service: ServiceInfo = serde_json::from_value(json!({
            "serInstanceId": "a1", "serName": "a", "version": "1", "state": "SUSPENDED",
            "serializer": "JSON", "transportInfo": {"id": "t", "name": "REST", "type": "REST_HTTP",
            "protocol": "HTTP", "version": "1.1", "endpoint": {"uris": ["http://10.0.0.1/a"]},
            "security": {}}
        }))
        .unwrap();
        deps.discovered(&service);
        assert_eq!(
            serde_json::to_value(&deps).unwrap(),
            json!({"a": {"a1": {"state": "SUSPENDED", "uris": ["http://10.0.0.1/a"]}}})
        );
        assert!(!deps.met());
    }
}
