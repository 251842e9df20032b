//! The service registry: registration, discovery, updates and liveness of MEC services.

use bytes::Bytes;

use api_specs::common::{LinkType, TimeStamp};
pub use api_specs::mp1::service_mgmt::ServiceQuery;
use api_specs::mp1::service_mgmt::{
    ChangeType, ServiceInfo, ServiceInfoLinks, ServiceLivenessInfo, ServiceState,
};

use crate::store::{Change, ServiceRow};

use super::{
    MepError, Platform, SERVICE_MGMT_BASE, Service, State, Tagged, json, new_id, not_found,
};

use super::subscriptions::availability;

impl Platform {
    fn service_href(&self, app: &str, ser_instance_id: &str) -> String {
        format!(
            "{}{SERVICE_MGMT_BASE}/applications/{app}/services/{ser_instance_id}",
            self.settings.api_root
        )
    }

    /// Registers a service produced by `app_instance_id`.
    pub async fn service_create(
        &self,
        app_instance_id: &str,
        mut info: ServiceInfo,
    ) -> Result<Tagged<ServiceInfo>, MepError> {
        if info.ser_instance_id.is_some() {
            return Err(MepError::Invalid(
                "serInstanceId is assigned by the platform and shall be absent".into(),
            ));
        }
        info.validate_names().map_err(MepError::Invalid)?;
        self.resolve_transport(&mut info)?;
        let ser_instance_id = new_id();
        info.ser_instance_id = Some(ser_instance_id.clone());
        info.liveness_interval = info
            .liveness_interval
            .map(|i| i.max(self.settings.min_liveness_interval));
        let href = self.service_href(app_instance_id, &ser_instance_id);
        info.links = Some(ServiceInfoLinks {
            liveness: info
                .liveness_interval
                .map(|_| LinkType::new(format!("{href}/liveness"))),
            self_: LinkType::new(href),
        });
        let app = app_instance_id.to_owned();
        self.write(move |state, now| {
            may_produce(state, &app, &info.ser_name)?;
            let service = Service {
                app_instance_id: app.clone(),
                info: Tagged {
                    value: info,
                    etag: 1,
                },
                last_heartbeat: now,
            };
            let mut changes = vec![Change::UpsertService(service_row(
                &ser_instance_id,
                &service,
            ))];
            changes.extend(availability(
                state,
                &[(&service.info.value, ChangeType::Added)],
                now,
            ));
            let created = service.info.clone();
            state.services.insert(&ser_instance_id, service);
            Ok((changes, created))
        })
        .await
    }

    fn resolve_transport(&self, info: &mut ServiceInfo) -> Result<(), MepError> {
        match (info.transport_id.take(), &info.transport_info) {
            (Some(_), Some(_)) => Err(MepError::Invalid(
                "transportId and transportInfo are mutually exclusive".into(),
            )),
            (Some(id), None) => {
                let transport = self
                    .settings
                    .transports
                    .iter()
                    .find(|t| t.id == id)
                    .ok_or_else(|| MepError::Invalid(format!("unknown transportId {id}")))?;
                info.transport_info = Some(transport.clone());
                Ok(())
            }
            (None, Some(t)) => t.endpoint.validate().map_err(MepError::Invalid),
            (None, None) => Err(MepError::Invalid(
                "one of transportId or transportInfo shall be present".into(),
            )),
        }
    }

    /// Services matching `query`, optionally only those of one producer, as a JSON array:
    /// selected from the registry's indexes and serialized once per published state.
    pub fn service_list_json(&self, producer: Option<&str>, query: &ServiceQuery) -> Bytes {
        let state = self.snapshot();
        state.answers.get_or_make(producer, query, || {
            let selected = state.services.select(producer, query);
            Bytes::from(serde_json::to_vec(&selected).unwrap_or_default())
        })
    }

    /// One service, optionally checking it belongs to `producer`.
    pub fn service_get(
        &self,
        producer: Option<&str>,
        ser_instance_id: &str,
    ) -> Result<Tagged<ServiceInfo>, MepError> {
        self.snapshot()
            .services
            .get(ser_instance_id)
            .filter(|s| producer.is_none_or(|p| p == s.app_instance_id))
            .map(|s| s.info.clone())
            .ok_or_else(|| not_found("service", ser_instance_id))
    }

    /// Updates a service (`PUT`), honouring `If-Match`.
    pub async fn service_update(
        &self,
        app_instance_id: &str,
        ser_instance_id: &str,
        mut info: ServiceInfo,
        if_match: Option<&str>,
    ) -> Result<Tagged<ServiceInfo>, MepError> {
        if info
            .ser_instance_id
            .as_deref()
            .is_some_and(|id| id != ser_instance_id)
        {
            return Err(MepError::Invalid(
                "serInstanceId differs from the path".into(),
            ));
        }
        info.validate_names().map_err(MepError::Invalid)?;
        self.resolve_transport(&mut info)?;
        let (app, sid) = (app_instance_id.to_owned(), ser_instance_id.to_owned());
        let if_match = if_match.map(str::to_owned);
        let min_interval = self.settings.min_liveness_interval;
        self.write(move |state, now| {
            let service = state
                .services
                .get(&sid)
                .filter(|s| s.app_instance_id == app)
                .ok_or_else(|| not_found("service", &sid))?;
            service.info.check(if_match.as_deref())?;
            let old = service.info.value.clone();
            may_produce(state, &app, &info.ser_name)?;
            info.ser_instance_id = Some(sid.clone());
            info.liveness_interval = info.liveness_interval.map(|i| i.max(min_interval));
            let href = old
                .links
                .as_ref()
                .map(|l| l.self_.href.clone())
                .unwrap_or_default();
            info.links = Some(ServiceInfoLinks {
                liveness: info
                    .liveness_interval
                    .map(|_| LinkType::new(format!("{href}/liveness"))),
                self_: LinkType::new(href),
            });
            let mut state_only = old.clone();
            state_only.state = info.state;
            let change = if state_only == info {
                ChangeType::StateChanged
            } else {
                ChangeType::AttributesChanged
            };
            let updated = Service {
                app_instance_id: app.clone(),
                info: Tagged {
                    value: info,
                    etag: service.info.etag + 1,
                },
                last_heartbeat: now,
            };
            let mut changes = vec![Change::UpsertService(service_row(&sid, &updated))];
            if old != updated.info.value {
                changes.extend(availability(state, &[(&updated.info.value, change)], now));
            }
            let result = updated.info.clone();
            state.services.insert(&sid, updated);
            Ok((changes, result))
        })
        .await
    }

    /// Deregisters a service.
    pub async fn service_delete(
        &self,
        app_instance_id: &str,
        ser_instance_id: &str,
    ) -> Result<(), MepError> {
        let (app, sid) = (app_instance_id.to_owned(), ser_instance_id.to_owned());
        self.write(move |state, now| {
            if state
                .services
                .get(&sid)
                .is_none_or(|s| s.app_instance_id != app)
            {
                return Err(not_found("service", &sid));
            }
            let service = state
                .services
                .remove(&sid)
                .ok_or_else(|| not_found("service", &sid))?;
            let mut changes = vec![Change::DeleteService(sid)];
            changes.extend(availability(
                state,
                &[(&service.info.value, ChangeType::Removed)],
                now,
            ));
            Ok((changes, ()))
        })
        .await
    }

    /// Liveness of a service that sends heartbeats.
    pub fn liveness_get(
        &self,
        app_instance_id: &str,
        ser_instance_id: &str,
    ) -> Result<ServiceLivenessInfo, MepError> {
        let state = self.snapshot();
        let service = state
            .services
            .get(ser_instance_id)
            .filter(|s| s.app_instance_id == app_instance_id)
            .ok_or_else(|| not_found("service", ser_instance_id))?;
        let interval = service
            .info
            .value
            .liveness_interval
            .ok_or_else(|| not_found("liveness resource of service", ser_instance_id))?;
        Ok(ServiceLivenessInfo {
            state: service.info.value.state,
            time_stamp: TimeStamp::from_unix_millis(service.last_heartbeat),
            interval,
        })
    }

    /// A heartbeat; a SUSPENDED service becomes ACTIVE again.
    pub async fn liveness_heartbeat(
        &self,
        app_instance_id: &str,
        ser_instance_id: &str,
        reported: ServiceState,
    ) -> Result<(), MepError> {
        if reported != ServiceState::Active {
            return Err(MepError::Invalid(
                "a heartbeat shall set state ACTIVE".into(),
            ));
        }
        let (app, sid) = (app_instance_id.to_owned(), ser_instance_id.to_owned());
        self.write(move |state, now| {
            let service = state
                .services
                .get(&sid)
                .filter(|s| s.app_instance_id == app)
                .ok_or_else(|| not_found("service", &sid))?;
            if service.info.value.liveness_interval.is_none() {
                return Err(not_found("liveness resource of service", &sid));
            }
            let mut service = service.clone();
            service.last_heartbeat = now;
            if service.info.value.state != ServiceState::Suspended {
                state.services.insert(&sid, service);
                return Ok((
                    vec![Change::Heartbeat {
                        ser_instance_id: sid,
                        at: now,
                    }],
                    (),
                ));
            }
            service.info.value.state = ServiceState::Active;
            service.info.etag += 1;
            let mut changes = vec![Change::UpsertService(service_row(&sid, &service))];
            changes.extend(availability(
                state,
                &[(&service.info.value, ChangeType::StateChanged)],
                now,
            ));
            state.services.insert(&sid, service);
            Ok((changes, ()))
        })
        .await
    }
}

pub(super) fn service_row(id: &str, s: &Service) -> ServiceRow {
    ServiceRow {
        ser_instance_id: id.to_owned(),
        app_instance_id: s.app_instance_id.clone(),
        ser_name: s.info.value.ser_name.clone(),
        body: json(&s.info.value),
        etag: s.info.etag,
        last_heartbeat: s.last_heartbeat,
    }
}

/// An instance may register a service it declares it produces (any, when it declares none).
pub(super) fn may_produce(
    state: &State,
    app_instance_id: &str,
    ser_name: &str,
) -> Result<(), MepError> {
    let app = state
        .apps
        .get(app_instance_id)
        .ok_or_else(|| not_found("application instance", app_instance_id))?;
    if app.produced.is_empty() || app.produced.iter().any(|p| p.ser_name == ser_name) {
        Ok(())
    } else {
        Err(MepError::Forbidden(format!(
            "application instance {app_instance_id} does not produce service {ser_name} (appServiceProduced)"
        )))
    }
}

/// Suspends the services whose heartbeats stopped (none for two intervals) and reports them.
pub(super) fn suspend_silent(state: &mut State, now: i64) -> Vec<Change> {
    let silent: Vec<(String, Service)> = state
        .services
        .iter()
        .filter(|(_, s)| {
            s.info.value.liveness_interval.is_some_and(|interval| {
                now - s.last_heartbeat > 2 * 1000 * i64::from(interval.max(1))
            }) && s.info.value.state == ServiceState::Active
        })
        .map(|(sid, s)| (sid.to_owned(), s.clone()))
        .collect();
    let mut changes = Vec::new();
    let mut suspended = Vec::new();
    for (sid, mut service) in silent {
        service.info.value.state = ServiceState::Suspended;
        service.info.etag += 1;
        changes.push(Change::UpsertService(service_row(&sid, &service)));
        suspended.push(service.info.value.clone());
        state.services.insert(&sid, service);
    }
    let refs: Vec<(&ServiceInfo, ChangeType)> = suspended
        .iter()
        .map(|s| (s, ChangeType::StateChanged))
        .collect();
    changes.extend(availability(state, &refs, now));
    changes
}
