//! `mec_service_mgmt/v1` (ETSI GS MEC 011 clause 8): registering, updating, discovering and
//! deregistering services, liveness heartbeats, availability subscriptions, transports.

use std::time::Duration;

use api_specs::common::{SubscriptionLinkList, TransportInfo};
use api_specs::mp1::service_mgmt::{
    FilteringCriteria, SerAvailabilityNotificationSubscription, ServiceInfo, ServiceLivenessInfo,
    ServiceLivenessUpdate, ServiceQuery, ServiceState,
};
use reqwest::Method;

use crate::client::{SERVICE_MGMT, segment};
use crate::{Error, Mp1Client, Tagged};

impl Mp1Client {
    /// Discovers the services available at the platform that match `query` (all with the
    /// default query).
    pub async fn services(&self, query: &ServiceQuery) -> Result<Vec<ServiceInfo>, Error> {
        let url = self.url(SERVICE_MGMT, "/services");
        Ok(self.get(&url, &query.to_pairs()).await?.value)
    }

    /// One service available at the platform.
    pub async fn service(&self, ser_instance_id: &str) -> Result<Tagged<ServiceInfo>, Error> {
        let url = self.url(
            SERVICE_MGMT,
            &format!("/services/{}", segment(ser_instance_id)),
        );
        self.get(&url, &[]).await
    }

    /// The transports the platform offers for services (usable as `transportId`).
    pub async fn transports(&self) -> Result<Vec<TransportInfo>, Error> {
        let url = self.url(SERVICE_MGMT, "/transports");
        Ok(self.get(&url, &[]).await?.value)
    }

    /// The services this instance registered that match `query`.
    pub async fn own_services(&self, query: &ServiceQuery) -> Result<Vec<ServiceInfo>, Error> {
        let url = self.own(SERVICE_MGMT, "/services");
        Ok(self.get(&url, &query.to_pairs()).await?.value)
    }

    /// Registers a service this instance produces (`serInstanceId` absent: the MEP assigns
    /// it). A deployed instance may register only what its AppD's `appServiceProduced` names.
    pub async fn register_service(&self, info: &ServiceInfo) -> Result<Tagged<ServiceInfo>, Error> {
        let url = self.own(SERVICE_MGMT, "/services");
        self.send(Method::POST, &url, info, None).await
    }

    /// Registers `info`, or updates this instance's registration of the same `serName` when
    /// it has one (a restarted or replaced process of the instance takes its service over).
    pub async fn ensure_service(&self, info: &ServiceInfo) -> Result<Tagged<ServiceInfo>, Error> {
        let query = ServiceQuery {
            ser_name: Some(vec![info.ser_name.clone()]),
            ..ServiceQuery::default()
        };
        let existing = self.own_services(&query).await?;
        match existing.iter().find_map(|s| s.ser_instance_id.as_deref()) {
            Some(id) => {
                let current = self.own_service(id).await?;
                self.update_service(id, info, current.etag.as_deref()).await
            }
            None => self.register_service(info).await,
        }
    }

    /// One service this instance registered, with its entity tag.
    pub async fn own_service(&self, ser_instance_id: &str) -> Result<Tagged<ServiceInfo>, Error> {
        self.get(&self.own_service_url(ser_instance_id, ""), &[])
            .await
    }

    /// Updates a service this instance registered; with `if_match`, only if it did not change
    /// since (412 otherwise). Subscribers are told of the change.
    pub async fn update_service(
        &self,
        ser_instance_id: &str,
        info: &ServiceInfo,
        if_match: Option<&str>,
    ) -> Result<Tagged<ServiceInfo>, Error> {
        let url = self.own_service_url(ser_instance_id, "");
        self.send(Method::PUT, &url, info, if_match).await
    }

    /// Deregisters a service this instance registered.
    pub async fn deregister_service(&self, ser_instance_id: &str) -> Result<(), Error> {
        let url = self.own_service_url(ser_instance_id, "");
        self.execute::<()>(Method::DELETE, &url, None).await
    }

    /// The liveness the MEP records for a service registered with a `livenessInterval`.
    pub async fn liveness(&self, ser_instance_id: &str) -> Result<ServiceLivenessInfo, Error> {
        let url = self.own_service_url(ser_instance_id, "/liveness");
        Ok(self.get(&url, &[]).await?.value)
    }

    /// One heartbeat of a service registered with a `livenessInterval` (a SUSPENDED service
    /// becomes ACTIVE again).
    pub async fn heartbeat(&self, ser_instance_id: &str) -> Result<(), Error> {
        let url = self.own_service_url(ser_instance_id, "/liveness");
        let body = ServiceLivenessUpdate {
            state: ServiceState::Active,
        };
        self.execute(Method::PATCH, &url, Some(&body)).await
    }

    /// Sends a heartbeat for `service` every `livenessInterval` (as the MEP granted it) until
    /// the returned handle is dropped or the service is gone; `None` when the service needs
    /// none.
    pub fn spawn_heartbeats(&self, service: &ServiceInfo) -> Option<Heartbeats> {
        let interval = Duration::from_secs(u64::from(service.liveness_interval?.max(1)));
        let id = service.ser_instance_id.clone()?;
        let client = self.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match client.heartbeat(&id).await {
                    Ok(()) => {}
                    Err(e) if e.status() == Some(404) => {
                        tracing::info!(ser_instance_id = %id, "service gone; heartbeats stop");
                        return;
                    }
                    Err(e) => tracing::warn!(ser_instance_id = %id, error = %e, "heartbeat failed"),
                }
            }
        });
        Some(Heartbeats(task))
    }

    fn own_service_url(&self, ser_instance_id: &str, rest: &str) -> String {
        self.own(
            SERVICE_MGMT,
            &format!("/services/{}{rest}", segment(ser_instance_id)),
        )
    }

    /// Subscribes to the availability of the services `filter` selects (all when `None`):
    /// the MEP POSTs a
    /// [`api_specs::mp1::service_mgmt::ServiceAvailabilityNotification`] to `callback_url`
    /// whenever one is added, removed or changes. `_links.self` names the subscription.
    pub async fn subscribe_availability(
        &self,
        callback_url: &str,
        filter: Option<FilteringCriteria>,
    ) -> Result<SerAvailabilityNotificationSubscription, Error> {
        let body = SerAvailabilityNotificationSubscription {
            subscription_type: SerAvailabilityNotificationSubscription::TYPE.into(),
            callback_reference: callback_url.to_owned(),
            links: None,
            filtering_criteria: filter,
        };
        let url = self.own(SERVICE_MGMT, "/subscriptions");
        Ok(self.send(Method::POST, &url, &body, None).await?.value)
    }

    /// The instance's service availability subscriptions.
    pub async fn availability_subscriptions(&self) -> Result<SubscriptionLinkList, Error> {
        let url = self.own(SERVICE_MGMT, "/subscriptions");
        Ok(self.get(&url, &[]).await?.value)
    }
}

/// Heartbeats of one service, sent until this is dropped.
#[derive(Debug)]
pub struct Heartbeats(tokio::task::JoinHandle<()>);

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.0.abort();
    }
}
