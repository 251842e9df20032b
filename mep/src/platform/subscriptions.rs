//! Subscriptions of application instances and the notifications they produce.

use api_specs::common::{LinkType, SelfLink, SubscriptionLink};
use api_specs::mp1::app_support::AppTerminationNotificationSubscription;
use api_specs::mp1::service_mgmt::{
    ChangeType, FilteringCriteria, NotificationLinks, SerAvailabilityNotificationSubscription,
    ServiceAvailabilityNotification, ServiceInfo, ServiceReferences,
};
use server_kit::notify::NotificationRow;

use crate::store::{Change, SubscriptionRow};

use super::{
    APP_SUPPORT_BASE, APP_TERMINATION, MepError, Platform, SER_AVAILABILITY, SERVICE_MGMT_BASE,
    State, Subscription, SubscriptionEntry, json, new_id, not_found,
};

impl SubscriptionEntry {
    fn type_name(&self) -> &'static str {
        match self.subscription {
            Subscription::SerAvailability(_) => SER_AVAILABILITY,
            Subscription::AppTermination(_) => APP_TERMINATION,
        }
    }

    fn callback(&self) -> &str {
        match &self.subscription {
            Subscription::SerAvailability(s) => &s.callback_reference,
            Subscription::AppTermination(s) => &s.callback_reference,
        }
    }

    pub(super) fn self_href(&self) -> Option<&str> {
        match &self.subscription {
            Subscription::SerAvailability(s) => s.links.as_ref(),
            Subscription::AppTermination(s) => s.links.as_ref(),
        }
        .map(|l| l.self_.href.as_str())
    }

    fn body(&self) -> String {
        match &self.subscription {
            Subscription::SerAvailability(s) => serde_json::to_string(s),
            Subscription::AppTermination(s) => serde_json::to_string(s),
        }
        .unwrap_or_default()
    }
}

impl Platform {
    /// Creates a service availability subscription.
    pub async fn ser_availability_subscribe(
        &self,
        app_instance_id: &str,
        mut sub: SerAvailabilityNotificationSubscription,
    ) -> Result<SerAvailabilityNotificationSubscription, MepError> {
        expect_type(&sub.subscription_type, SER_AVAILABILITY)?;
        self.settings
            .destinations
            .check_client_uri("callbackReference", &sub.callback_reference)
            .map_err(MepError::Invalid)?;
        if let Some(f) = &sub.filtering_criteria {
            validate_filter(f)?;
        }
        let id = new_id();
        sub.links = Some(SelfLink {
            self_: LinkType::new(format!(
                "{}{SERVICE_MGMT_BASE}/applications/{app_instance_id}/subscriptions/{id}",
                self.settings.api_root
            )),
        });
        let created = sub.clone();
        self.subscribe(app_instance_id, id, Subscription::SerAvailability(sub))
            .await?;
        Ok(created)
    }

    /// Creates an application termination subscription.
    pub async fn app_termination_subscribe(
        &self,
        app_instance_id: &str,
        mut sub: AppTerminationNotificationSubscription,
    ) -> Result<AppTerminationNotificationSubscription, MepError> {
        expect_type(&sub.subscription_type, APP_TERMINATION)?;
        self.settings
            .destinations
            .check_client_uri("callbackReference", &sub.callback_reference)
            .map_err(MepError::Invalid)?;
        if sub.app_instance_id != app_instance_id {
            return Err(MepError::Invalid(
                "appInstanceId differs from the path".into(),
            ));
        }
        let id = new_id();
        sub.links = Some(SelfLink {
            self_: LinkType::new(format!(
                "{}{APP_SUPPORT_BASE}/applications/{app_instance_id}/subscriptions/{id}",
                self.settings.api_root
            )),
        });
        let created = sub.clone();
        self.subscribe(app_instance_id, id, Subscription::AppTermination(sub))
            .await?;
        Ok(created)
    }

    async fn subscribe(
        &self,
        app_instance_id: &str,
        id: String,
        subscription: Subscription,
    ) -> Result<(), MepError> {
        let app = app_instance_id.to_owned();
        self.write(move |state, _| {
            if !state.apps.contains_key(&app) {
                return Err(not_found("application instance", &app));
            }
            let entry = SubscriptionEntry {
                app_instance_id: app.clone(),
                subscription,
            };
            let row = SubscriptionRow {
                subscription_id: id.clone(),
                app_instance_id: app,
                subscription_type: entry.type_name().to_owned(),
                body: entry.body(),
            };
            state.subscriptions.insert(id, entry);
            Ok((vec![Change::InsertSubscription(row)], ()))
        })
        .await
    }

    /// Links to the subscriptions of one type held by an instance.
    pub fn subscription_links(
        &self,
        app_instance_id: &str,
        subscription_type: &str,
    ) -> Result<Vec<SubscriptionLink>, MepError> {
        let state = self.snapshot();
        if !state.apps.contains_key(app_instance_id) {
            return Err(not_found("application instance", app_instance_id));
        }
        Ok(state
            .subscriptions
            .values()
            .filter(|s| s.app_instance_id == app_instance_id && s.type_name() == subscription_type)
            .map(|s| SubscriptionLink {
                href: s.self_href().unwrap_or_default().to_owned(),
                subscription_type: subscription_type.to_owned(),
            })
            .collect())
    }

    fn subscription_entry(
        &self,
        app: &str,
        id: &str,
        subscription_type: &str,
    ) -> Result<SubscriptionEntry, MepError> {
        self.snapshot()
            .subscriptions
            .get(id)
            .filter(|s| s.app_instance_id == app && s.type_name() == subscription_type)
            .cloned()
            .ok_or_else(|| not_found("subscription", id))
    }

    /// One service availability subscription.
    pub fn ser_availability_subscription(
        &self,
        app: &str,
        id: &str,
    ) -> Result<SerAvailabilityNotificationSubscription, MepError> {
        match self
            .subscription_entry(app, id, SER_AVAILABILITY)?
            .subscription
        {
            Subscription::SerAvailability(s) => Ok(s),
            Subscription::AppTermination(_) => Err(not_found("subscription", id)),
        }
    }

    /// One application termination subscription.
    pub fn app_termination_subscription(
        &self,
        app: &str,
        id: &str,
    ) -> Result<AppTerminationNotificationSubscription, MepError> {
        match self
            .subscription_entry(app, id, APP_TERMINATION)?
            .subscription
        {
            Subscription::AppTermination(s) => Ok(s),
            Subscription::SerAvailability(_) => Err(not_found("subscription", id)),
        }
    }

    /// Deletes a subscription of the given type.
    pub async fn subscription_delete(
        &self,
        app: &str,
        id: &str,
        subscription_type: &str,
    ) -> Result<(), MepError> {
        self.subscription_entry(app, id, subscription_type)?;
        let id = id.to_owned();
        self.write(move |state, _| {
            state.subscriptions.remove(&id);
            Ok((vec![Change::DeleteSubscription(id)], ()))
        })
        .await
    }
}

/// Notifications for service changes, one per matching availability subscription.
pub(super) fn availability(
    state: &State,
    changed: &[(&ServiceInfo, ChangeType)],
    now: i64,
) -> Vec<Change> {
    if changed.is_empty() {
        return Vec::new();
    }
    state
        .subscriptions
        .values()
        .filter_map(|entry| {
            let Subscription::SerAvailability(sub) = &entry.subscription else {
                return None;
            };
            let references: Vec<ServiceReferences> = changed
                .iter()
                .filter(|(s, _)| {
                    sub.filtering_criteria
                        .as_ref()
                        .is_none_or(|f| criteria_match(f, s))
                })
                .map(|(s, change)| ServiceReferences {
                    link: (*change != ChangeType::Removed)
                        .then(|| s.links.as_ref().map(|l| l.self_.clone()))
                        .flatten(),
                    ser_name: s.ser_name.clone(),
                    ser_instance_id: s.ser_instance_id.clone().unwrap_or_default(),
                    state: s.state,
                    change_type: *change,
                })
                .collect();
            if references.is_empty() {
                return None;
            }
            let notification = ServiceAvailabilityNotification {
                notification_type: ServiceAvailabilityNotification::TYPE.into(),
                service_references: references,
                links: NotificationLinks {
                    subscription: LinkType::new(entry.self_href().unwrap_or_default()),
                },
            };
            Some(enqueue(entry, json(&notification), now))
        })
        .collect()
}

pub(super) fn criteria_match(f: &FilteringCriteria, s: &ServiceInfo) -> bool {
    let id = s.ser_instance_id.as_deref().unwrap_or_default();
    f.ser_instance_ids
        .as_ref()
        .is_none_or(|ids| ids.iter().any(|i| i == id))
        && f.ser_names.as_ref().is_none_or(|n| n.contains(&s.ser_name))
        && f.ser_categories.as_ref().is_none_or(|cs| {
            s.ser_category
                .as_ref()
                .is_some_and(|c| cs.iter().any(|x| x.id == c.id))
        })
        && f.states.as_ref().is_none_or(|st| st.contains(&s.state))
        && f.is_local.is_none_or(|l| s.is_local.unwrap_or(true) == l)
}

pub(super) fn enqueue(sub: &SubscriptionEntry, body: String, now: i64) -> Change {
    let subscription_id = sub
        .self_href()
        .and_then(|h| h.rsplit('/').next())
        .unwrap_or_default()
        .to_owned();
    Change::Enqueue(NotificationRow {
        id: new_id(),
        subscription_id,
        callback_uri: sub.callback().to_owned(),
        body,
        created_at: now,
    })
}

pub(super) fn expect_type(given: &str, expected: &str) -> Result<(), MepError> {
    if given == expected {
        Ok(())
    } else {
        Err(MepError::Invalid(format!(
            "subscriptionType shall be {expected}"
        )))
    }
}

pub(super) fn validate_filter(f: &FilteringCriteria) -> Result<(), MepError> {
    let selectors = [
        f.ser_instance_ids.is_some(),
        f.ser_names.is_some(),
        f.ser_categories.is_some(),
    ]
    .into_iter()
    .filter(|s| *s)
    .count();
    if selectors > 1 {
        return Err(MepError::Invalid(
            "serInstanceIds, serNames and serCategories are mutually exclusive".into(),
        ));
    }
    use api_specs::common::{MAX_ID, MAX_NAME, check_text_list};
    check_text_list("serInstanceIds", f.ser_instance_ids.as_deref(), MAX_ID)
        .and_then(|()| check_text_list("serNames", f.ser_names.as_deref(), MAX_NAME))
        .map_err(MepError::Invalid)
}
