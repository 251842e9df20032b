//! The registered services and the indexes discovery reads.
//!
//! Persistent maps (`imbl`): copying the registry for the next state shares every node, and a
//! write copies only the nodes on its paths, so a registration costs O(log n) at 10 as at
//! 10,000 services. Each MEC 011 discovery filter has an index of (value, service id) pairs;
//! a query ranges over the index of its most selective filter and checks the others on those
//! candidates only.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use api_specs::mp1::service_mgmt::{LocalityType, ServiceInfo, ServiceQuery};
use bytes::Bytes;
use imbl::{OrdMap, OrdSet};

use super::Service;

/// A service instance id, shared by the registry and its indexes.
type Id = Arc<str>;

/// An index: (attribute value, service id), ordered so the ids of one value are a range.
type Index<T> = OrdSet<(T, Id)>;

/// The services of one state with their indexes.
#[derive(Debug, Clone, Default)]
pub(super) struct Services {
    by_id: OrdMap<Id, Arc<Service>>,
    by_name: Index<Arc<str>>,
    by_category: Index<Arc<str>>,
    by_producer: Index<Arc<str>>,
    by_scope: Index<LocalityType>,
    by_consumed_local_only: Index<bool>,
    by_is_local: Index<bool>,
}

/// The indexed attributes of a service (absent ones take their ETSI defaults, as
/// [`ServiceQuery::matches`] reads them).
struct Keys {
    name: Arc<str>,
    category: Option<Arc<str>>,
    producer: Arc<str>,
    scope: LocalityType,
    consumed_local_only: bool,
    is_local: bool,
}

impl Keys {
    fn of(s: &Service) -> Self {
        let info = &s.info.value;
        Self {
            name: info.ser_name.as_str().into(),
            category: info.ser_category.as_ref().map(|c| c.id.as_str().into()),
            producer: s.app_instance_id.as_str().into(),
            scope: info.scope_of_locality.unwrap_or(LocalityType::MecHost),
            consumed_local_only: info.consumed_local_only.unwrap_or(true),
            is_local: info.is_local.unwrap_or(true),
        }
    }
}

/// The ids of `value` in `index`, in id order.
fn ids_of<T: Ord + Clone>(index: &Index<T>, value: T) -> impl Iterator<Item = &Id> {
    index
        .range((value.clone(), Id::from(""))..)
        .take_while(move |(v, _)| *v == value)
        .map(|(_, id)| id)
}

impl Services {
    /// One service.
    pub(super) fn get(&self, id: &str) -> Option<&Service> {
        self.by_id.get(id).map(Arc::as_ref)
    }

    /// Every service, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Service)> {
        self.by_id.iter().map(|(id, s)| (id.as_ref(), s.as_ref()))
    }

    /// Removes the services `app_instance_id` produces and returns them, in id order.
    pub(super) fn remove_producer(&mut self, app_instance_id: &str) -> Vec<Arc<Service>> {
        let ids: Vec<Id> = ids_of(&self.by_producer, Arc::from(app_instance_id))
            .cloned()
            .collect();
        ids.iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Adds or replaces the service `id`.
    pub(super) fn insert(&mut self, id: &str, service: Service) {
        let id = Id::from(id);
        self.unindex(&id);
        let keys = Keys::of(&service);
        self.by_name.insert((keys.name, id.clone()));
        if let Some(category) = keys.category {
            self.by_category.insert((category, id.clone()));
        }
        self.by_producer.insert((keys.producer, id.clone()));
        self.by_scope.insert((keys.scope, id.clone()));
        self.by_consumed_local_only
            .insert((keys.consumed_local_only, id.clone()));
        self.by_is_local.insert((keys.is_local, id.clone()));
        self.by_id.insert(id, Arc::new(service));
    }

    /// Removes the service `id`.
    pub(super) fn remove(&mut self, id: &str) -> Option<Arc<Service>> {
        let id = Id::from(id);
        self.unindex(&id);
        self.by_id.remove(&id)
    }

    fn unindex(&mut self, id: &Id) {
        let Some(old) = self.by_id.get(id) else {
            return;
        };
        let keys = Keys::of(old);
        self.by_name.remove(&(keys.name, id.clone()));
        if let Some(category) = keys.category {
            self.by_category.remove(&(category, id.clone()));
        }
        self.by_producer.remove(&(keys.producer, id.clone()));
        self.by_scope.remove(&(keys.scope, id.clone()));
        self.by_consumed_local_only
            .remove(&(keys.consumed_local_only, id.clone()));
        self.by_is_local.remove(&(keys.is_local, id.clone()));
    }

    /// The services matching `query` (and produced by `producer`, when given), in id order:
    /// candidates from the index of the most selective filter, the other filters checked on
    /// them.
    pub(super) fn select(&self, producer: Option<&str>, query: &ServiceQuery) -> Vec<&ServiceInfo> {
        let mut ids: Vec<&Id> = if let Some(wanted) = &query.ser_instance_id {
            wanted
                .iter()
                .filter_map(|id| self.by_id.get_key_value(id.as_str()).map(|(id, _)| id))
                .collect()
        } else if let Some(names) = &query.ser_name {
            names
                .iter()
                .flat_map(|n| ids_of(&self.by_name, Arc::from(n.as_str())))
                .collect()
        } else if let Some(category) = &query.ser_category_id {
            ids_of(&self.by_category, Arc::from(category.as_str())).collect()
        } else if let Some(producer) = producer {
            ids_of(&self.by_producer, Arc::from(producer)).collect()
        } else if let Some(scope) = query.scope_of_locality {
            ids_of(&self.by_scope, scope).collect()
        } else if let Some(c) = query.consumed_local_only {
            ids_of(&self.by_consumed_local_only, c).collect()
        } else if let Some(l) = query.is_local {
            ids_of(&self.by_is_local, l).collect()
        } else {
            self.by_id.keys().collect()
        };
        // lists of ids or names may repeat or interleave: answer each service once, in id order
        if query.ser_instance_id.is_some() || query.ser_name.as_ref().is_some_and(|n| n.len() > 1) {
            ids.sort_unstable();
            ids.dedup();
        }
        ids.into_iter()
            .filter_map(|id| self.by_id.get(id))
            .filter(|s| producer.is_none_or(|p| p == s.app_instance_id))
            .map(|s| &s.info.value)
            .filter(|info| query.matches(info))
            .collect()
    }
}

/// Most filtered answers kept per state: queries are the clients' to choose, memory is not.
const MAX_FILTERED_ANSWERS: usize = 1024;

/// The serialized discovery answers of one state. A copy (the next state) starts with none,
/// so every write invalidates them all.
#[derive(Debug, Default)]
pub(super) struct Answers {
    unfiltered: OnceLock<Bytes>,
    filtered: RwLock<HashMap<(Option<String>, ServiceQuery), Bytes>>,
}

impl Clone for Answers {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Answers {
    /// The answer to `query` (of `producer`'s services, when given): the one made before in
    /// this state, or `make`'s.
    pub(super) fn get_or_make(
        &self,
        producer: Option<&str>,
        query: &ServiceQuery,
        make: impl FnOnce() -> Bytes,
    ) -> Bytes {
        if producer.is_none() && *query == ServiceQuery::default() {
            return self.unfiltered.get_or_init(make).clone();
        }
        let key = (producer.map(str::to_owned), query.clone());
        if let Some(answer) = self.filtered.read().ok().and_then(|a| a.get(&key).cloned()) {
            return answer;
        }
        let answer = make();
        if let Ok(mut answers) = self.filtered.write()
            && answers.len() < MAX_FILTERED_ANSWERS
        {
            answers.insert(key, answer.clone());
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Tagged;
    use api_specs::common::CategoryRef;

    fn service(i: usize) -> (String, Service) {
        let id = format!("id-{:03}", (i * 37) % 200);
        let info: ServiceInfo = serde_json::from_value(serde_json::json!({
            "serInstanceId": id,
            "serName": format!("svc-{}", i % 50),
            "version": "1",
            "state": "ACTIVE",
            "serializer": "JSON",
        }))
        .unwrap();
        let info = ServiceInfo {
            ser_category: (!i.is_multiple_of(3)).then(|| CategoryRef {
                href: "http://c".into(),
                id: format!("cat-{}", i % 4),
                name: "c".into(),
                version: "1".into(),
            }),
            scope_of_locality: [None, Some(LocalityType::Zone), Some(LocalityType::MecHost)][i % 3],
            consumed_local_only: [None, Some(false), Some(true)][i % 3],
            is_local: i.is_multiple_of(5).then_some(false),
            ..info
        };
        let service = Service {
            app_instance_id: format!("app-{}", i % 7),
            info: Tagged {
                value: info,
                etag: 1,
            },
            last_heartbeat: 0,
        };
        (id, service)
    }

    fn queries() -> Vec<ServiceQuery> {
        let q = ServiceQuery::default;
        let mut all = vec![
            q(),
            ServiceQuery {
                ser_instance_id: Some(vec![
                    "id-010".into(),
                    "id-003".into(),
                    "id-010".into(),
                    "none".into(),
                ]),
                ..q()
            },
            ServiceQuery {
                ser_name: Some(vec!["svc-7".into()]),
                ..q()
            },
            ServiceQuery {
                ser_name: Some(vec!["svc-9".into(), "svc-2".into(), "svc-9".into()]),
                is_local: Some(false),
                ..q()
            },
            ServiceQuery {
                ser_category_id: Some("cat-1".into()),
                scope_of_locality: Some(LocalityType::Zone),
                ..q()
            },
            ServiceQuery {
                ser_category_id: Some("cat-none".into()),
                ..q()
            },
        ];
        for scope in [
            LocalityType::MecHost,
            LocalityType::Zone,
            LocalityType::NfviNode,
        ] {
            all.push(ServiceQuery {
                scope_of_locality: Some(scope),
                ..q()
            });
        }
        for b in [true, false] {
            all.push(ServiceQuery {
                consumed_local_only: Some(b),
                ..q()
            });
            all.push(ServiceQuery {
                is_local: Some(b),
                consumed_local_only: Some(!b),
                ..q()
            });
        }
        all
    }

    /// What a scan of every service answers.
    fn scan<'a>(
        all: &'a std::collections::BTreeMap<String, Service>,
        producer: Option<&str>,
        query: &ServiceQuery,
    ) -> Vec<&'a ServiceInfo> {
        all.values()
            .filter(|s| producer.is_none_or(|p| p == s.app_instance_id))
            .map(|s| &s.info.value)
            .filter(|s| query.matches(s))
            .collect()
    }

    #[test]
    fn indexed_selection_answers_what_a_scan_does() {
        let mut services = Services::default();
        let mut all = std::collections::BTreeMap::new();
        // later services replace earlier ones with the same id: the indexes must forget them
        for i in 0..400 {
            let (id, s) = service(i);
            services.insert(&id, s.clone());
            all.insert(id, s);
        }
        for i in (0..400).step_by(9) {
            let id = format!("id-{i:03}");
            assert_eq!(services.remove(&id).is_some(), all.remove(&id).is_some());
        }
        assert_eq!(services.iter().count(), all.len());
        let mut nonempty = 0;
        for query in queries() {
            for producer in [None, Some("app-3"), Some("app-none")] {
                let expected = scan(&all, producer, &query);
                nonempty += usize::from(!expected.is_empty());
                assert_eq!(
                    services.select(producer, &query),
                    expected,
                    "{producer:?} {query:?}"
                );
            }
        }
        assert!(nonempty >= 15, "the queries select something: {nonempty}");
        let expected: Vec<_> = scan(&all, Some("app-3"), &ServiceQuery::default())
            .into_iter()
            .cloned()
            .collect();
        let removed: Vec<_> = services
            .remove_producer("app-3")
            .iter()
            .map(|s| s.info.value.clone())
            .collect();
        assert_eq!(removed, expected);
        assert!(
            services
                .select(Some("app-3"), &ServiceQuery::default())
                .is_empty()
        );
        assert_eq!(services.iter().count(), all.len() - expected.len());
    }

    #[test]
    fn a_copy_is_unchanged_by_writes_to_the_original() {
        let mut services = Services::default();
        let (id, s) = service(1);
        services.insert(&id, s);
        let copy = services.clone();
        let (_, mut renamed) = service(1);
        renamed.info.value.ser_name = "renamed".into();
        services.insert(&id, renamed);
        let by_name = |s: &Services, n: &str| {
            s.select(
                None,
                &ServiceQuery {
                    ser_name: Some(vec![n.into()]),
                    ..ServiceQuery::default()
                },
            )
            .len()
        };
        assert_eq!(
            (by_name(&services, "renamed"), by_name(&services, "svc-1")),
            (1, 0)
        );
        assert_eq!((by_name(&copy, "renamed"), by_name(&copy, "svc-1")), (0, 1));
    }
}
