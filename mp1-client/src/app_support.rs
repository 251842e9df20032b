//! `mec_app_support/v1` (ETSI GS MEC 011 clause 7): readiness and termination, the instance's
//! registration (AppInfo), termination subscriptions, traffic and DNS rules, platform time.

use api_specs::common::SubscriptionLinkList;
use api_specs::mp1::app_support::{
    AppInfo, AppReadyConfirmation, AppTerminationConfirmation,
    AppTerminationNotificationSubscription, CurrentTime, DnsRule, OperationActionType, TimingCaps,
    TrafficRule,
};
use reqwest::Method;

use crate::client::{APP_SUPPORT, segment};
use crate::{Error, Mp1Client, Tagged};

impl Mp1Client {
    /// Tells the MEP the instance is up and running (`confirm_ready`): its traffic and DNS
    /// rules come into effect. Confirming again changes nothing.
    pub async fn confirm_ready(&self) -> Result<(), Error> {
        let body = AppReadyConfirmation {
            indication: "READY".into(),
        };
        let url = self.own(APP_SUPPORT, "/confirm_ready");
        self.execute(Method::POST, &url, Some(&body)).await
    }

    /// Answers a termination notification (`confirm_termination`): the instance is ready to
    /// be stopped or terminated. 409 when no such operation is pending (a notification not
    /// from the MEP, or one already completed).
    pub async fn confirm_termination(&self, action: OperationActionType) -> Result<(), Error> {
        let body = AppTerminationConfirmation {
            operation_action: action,
        };
        let url = self.own(APP_SUPPORT, "/confirm_termination");
        self.execute(Method::POST, &url, Some(&body)).await
    }

    /// The instance as the platform knows it (`GET registrations/{appInstanceId}`): for an
    /// instance MEC management deployed, what its AppD declares (required services,
    /// features; `isInsByMec` true).
    pub async fn app_info(&self) -> Result<AppInfo, Error> {
        Ok(self.get(&self.registration(), &[]).await?.value)
    }

    /// Registers an application MEC management did not instantiate (where the platform
    /// allows it): the client's binding decides the instance; the MEP's AppInfo is returned.
    pub async fn register(&self, info: &AppInfo) -> Result<AppInfo, Error> {
        let url = self.url(APP_SUPPORT, "/registrations");
        Ok(self.send(Method::POST, &url, info, None).await?.value)
    }

    /// Updates a self-registered instance's AppInfo.
    pub async fn update_registration(&self, info: &AppInfo) -> Result<(), Error> {
        self.execute(Method::PUT, &self.registration(), Some(info))
            .await
    }

    /// Deregisters a self-registered instance; its services, rules and subscriptions go too.
    pub async fn deregister(&self) -> Result<(), Error> {
        self.execute::<()>(Method::DELETE, &self.registration(), None)
            .await
    }

    fn registration(&self) -> String {
        self.url(
            APP_SUPPORT,
            &format!("/registrations/{}", segment(self.app_instance_id())),
        )
    }

    /// Subscribes to the instance's own stop and termination: the MEP POSTs an
    /// [`api_specs::mp1::app_support::AppTerminationNotification`] to `callback_url`. The
    /// answer's `_links.self` names the subscription (for [`Mp1Client::unsubscribe`]).
    pub async fn subscribe_termination(
        &self,
        callback_url: &str,
    ) -> Result<AppTerminationNotificationSubscription, Error> {
        let body = AppTerminationNotificationSubscription {
            subscription_type: AppTerminationNotificationSubscription::TYPE.into(),
            callback_reference: callback_url.to_owned(),
            links: None,
            app_instance_id: self.app_instance_id().to_owned(),
        };
        let url = self.own(APP_SUPPORT, "/subscriptions");
        Ok(self.send(Method::POST, &url, &body, None).await?.value)
    }

    /// The instance's termination subscriptions.
    pub async fn termination_subscriptions(&self) -> Result<SubscriptionLinkList, Error> {
        let url = self.own(APP_SUPPORT, "/subscriptions");
        Ok(self.get(&url, &[]).await?.value)
    }

    /// Deletes a subscription (of either API) by its `_links.self`.
    pub async fn unsubscribe(&self, href: &str) -> Result<(), Error> {
        let url = self.link(href)?;
        self.execute::<()>(Method::DELETE, &url, None).await
    }

    /// The instance's traffic rules.
    pub async fn traffic_rules(&self) -> Result<Vec<TrafficRule>, Error> {
        let url = self.own(APP_SUPPORT, "/traffic_rules");
        Ok(self.get(&url, &[]).await?.value)
    }

    /// One traffic rule with its entity tag.
    pub async fn traffic_rule(&self, id: &str) -> Result<Tagged<TrafficRule>, Error> {
        let url = self.own(APP_SUPPORT, &format!("/traffic_rules/{}", segment(id)));
        self.get(&url, &[]).await
    }

    /// Updates a traffic rule (typically its `state`); with `if_match`, only if it did not
    /// change since (412 otherwise). The MEP bounds what an instance may change.
    pub async fn update_traffic_rule(
        &self,
        rule: &TrafficRule,
        if_match: Option<&str>,
    ) -> Result<Tagged<TrafficRule>, Error> {
        let path = format!("/traffic_rules/{}", segment(&rule.traffic_rule_id));
        let url = self.own(APP_SUPPORT, &path);
        self.send(Method::PUT, &url, rule, if_match).await
    }

    /// The instance's DNS rules.
    pub async fn dns_rules(&self) -> Result<Vec<DnsRule>, Error> {
        let url = self.own(APP_SUPPORT, "/dns_rules");
        Ok(self.get(&url, &[]).await?.value)
    }

    /// One DNS rule with its entity tag.
    pub async fn dns_rule(&self, id: &str) -> Result<Tagged<DnsRule>, Error> {
        let url = self.own(APP_SUPPORT, &format!("/dns_rules/{}", segment(id)));
        self.get(&url, &[]).await
    }

    /// Updates a DNS rule (typically its `state`); `if_match` as for traffic rules.
    pub async fn update_dns_rule(
        &self,
        rule: &DnsRule,
        if_match: Option<&str>,
    ) -> Result<Tagged<DnsRule>, Error> {
        let path = format!("/dns_rules/{}", segment(&rule.dns_rule_id));
        let url = self.own(APP_SUPPORT, &path);
        self.send(Method::PUT, &url, rule, if_match).await
    }

    /// The platform's time.
    pub async fn current_time(&self) -> Result<CurrentTime, Error> {
        let url = self.url(APP_SUPPORT, "/timing/current_time");
        Ok(self.get(&url, &[]).await?.value)
    }

    /// The platform's timing capabilities (NTP servers, PTP masters).
    pub async fn timing_caps(&self) -> Result<TimingCaps, Error> {
        let url = self.url(APP_SUPPORT, "/timing/timing_caps");
        Ok(self.get(&url, &[]).await?.value)
    }
}
