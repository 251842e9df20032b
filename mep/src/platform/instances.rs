//! Application instances as MEC management provisions them (over `mep_mgmt` or the MEAO link):
//! configuration, readiness, graceful stop and termination.

use std::collections::BTreeMap;

use api_specs::common::{LinkType, TransportInfo};
use api_specs::mp1::app_support::{
    AppTerminationNotification, AppTerminationNotificationLinks, OperationActionType, RuleState,
};
use api_specs::mp1::service_mgmt::{ChangeType, ServiceInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use api_specs::mp1::provisioning::AppRulePolicy;

use crate::store::{AppRow, Change};

use super::{
    APP_SUPPORT_BASE, AppInstance, AppInstanceConfig, AppInstanceState, MepError, PendingAction,
    Platform, State, Subscription, SubscriptionEntry, json, not_found,
};

use super::credentials::{redacted, validate_client};
use super::policy::{domain_of, resolve};
use super::rules::taken_elsewhere;
use super::rules::{replace_rules, rules_of, unique, validate_dns_rule, validate_traffic_rule};
use super::subscriptions::{availability, enqueue};

/// An application instance as this platform holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInstanceRecord {
    /// Identifier.
    pub app_instance_id: String,
    /// Readiness.
    pub state: AppInstanceState,
    /// Operation awaiting confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_action: Option<PendingAction>,
    /// The provisioned configuration.
    #[serde(flatten)]
    pub config: AppInstanceConfig,
}

/// A desired configuration of an instance from the MEAO.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// Create or replace the instance's configuration.
    Config(Box<AppInstanceConfig>),
    /// Terminate the instance; its termination subscribers get `graceful_timeout` seconds.
    Removal {
        /// Seconds to wait for `confirm_termination`.
        graceful_timeout: u32,
    },
}

/// What the platform knows of one instance: readiness, registered services, rules in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceReport {
    /// The instance.
    pub app_instance_id: String,
    /// Its readiness.
    pub state: AppInstanceState,
    /// serName of each service it registered.
    pub services: Vec<String>,
    /// Its traffic rules.
    pub traffic_rules: u32,
    /// Those in effect (ACTIVE, instance READY).
    pub active_traffic_rules: u32,
    /// Its DNS rules.
    pub dns_rules: u32,
    /// Those in effect (ACTIVE, instance READY).
    pub active_dns_rules: u32,
}

/// Whether an operation finished at once or waits for the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Done.
    Done,
    /// Waiting for confirmation until the deadline.
    Pending,
}

impl Platform {
    /// Creates or replaces an application instance's configuration; returns whether it is new.
    pub async fn app_instance_put(
        &self,
        app_instance_id: &str,
        config: AppInstanceConfig,
    ) -> Result<(AppInstanceRecord, bool), MepError> {
        let config = validated(app_instance_id, config, &self.settings.transports)?;
        let id = app_instance_id.to_owned();
        let created = self
            .write(|state, now| {
                put_changes(
                    state,
                    &id,
                    &config,
                    self.reserved_client_ids(),
                    self.domain_suffixes(),
                    now,
                )
            })
            .await?;
        Ok((self.record_of(app_instance_id)?, created))
    }

    /// Applies version `version` of an instance's desired configuration from the MEAO unless
    /// this platform holds that version or a newer one already (a resend changes nothing);
    /// returns the version it holds. The configuration and its version are stored together.
    pub async fn apply_desired(
        &self,
        app_instance_id: &str,
        version: u64,
        desired: Desired,
    ) -> Result<u64, MepError> {
        let desired = match desired {
            Desired::Config(config) => Desired::Config(Box::new(validated(
                app_instance_id,
                *config,
                &self.settings.transports,
            )?)),
            removal @ Desired::Removal { .. } => removal,
        };
        let stored = i64::try_from(version)
            .map_err(|_| MepError::Invalid(format!("version {version} is out of range")))?;
        let id = app_instance_id.to_owned();
        let root = self.settings.api_root.clone();
        self.write(move |state, now| {
            if let Some(&held) = state.desired_versions.get(&id).filter(|v| **v >= version) {
                return Ok((Vec::new(), held));
            }
            let mut changes = match desired {
                Desired::Config(config) => {
                    put_changes(
                        state,
                        &id,
                        &config,
                        self.reserved_client_ids(),
                        self.domain_suffixes(),
                        now,
                    )?
                    .0
                }
                Desired::Removal { graceful_timeout } => {
                    let gone = state.apps.get(&id).is_none_or(|a| {
                        a.pending
                            .is_some_and(|p| p.operation_action == OperationActionType::Terminating)
                    });
                    if gone {
                        Vec::new()
                    } else {
                        let terminating = OperationActionType::Terminating;
                        begin_changes(state, &id, terminating, graceful_timeout, &root, now)?.0
                    }
                }
            };
            changes.push(Change::DesiredVersion {
                app_instance_id: id.clone(),
                version: stored,
            });
            state.desired_versions.insert(id, version);
            Ok((changes, version))
        })
        .await
    }

    /// The versions of desired configurations received from the MEAO, by instance.
    pub fn desired_versions(&self) -> BTreeMap<String, u64> {
        self.snapshot().desired_versions.clone()
    }

    /// The version of an instance's desired configuration held here (0: none).
    pub fn desired_version(&self, app_instance_id: &str) -> u64 {
        let state = self.snapshot();
        state
            .desired_versions
            .get(app_instance_id)
            .copied()
            .unwrap_or(0)
    }

    /// What this platform knows of each instance, for the MEAO (one pass over the state: it is
    /// recomputed whenever a new state is published while the link is up).
    pub fn instance_reports(&self) -> Vec<InstanceReport> {
        let state = self.snapshot();
        let mut reports: BTreeMap<&str, InstanceReport> = state
            .apps
            .iter()
            .map(|(id, app)| {
                let report = InstanceReport {
                    app_instance_id: id.clone(),
                    state: app.state,
                    services: Vec::new(),
                    traffic_rules: 0,
                    active_traffic_rules: 0,
                    dns_rules: 0,
                    active_dns_rules: 0,
                };
                (id.as_str(), report)
            })
            .collect();
        for (_, s) in state.services.iter() {
            if let Some(r) = reports.get_mut(s.app_instance_id.as_str()) {
                r.services.push(s.info.value.ser_name.clone());
            }
        }
        // a rule is in effect when ACTIVE and its instance READY
        let in_effect = |r: &InstanceReport, rule: RuleState| {
            u32::from(r.state == AppInstanceState::Ready && rule == RuleState::Active)
        };
        for ((app, _), rule) in &state.traffic_rules {
            if let Some(r) = reports.get_mut(app.as_str()) {
                r.traffic_rules += 1;
                r.active_traffic_rules += in_effect(r, rule.value.state);
            }
        }
        for ((app, _), rule) in &state.dns_rules {
            if let Some(r) = reports.get_mut(app.as_str()) {
                r.dns_rules += 1;
                r.active_dns_rules += in_effect(r, rule.value.state);
            }
        }
        reports.into_values().collect()
    }

    fn record_of(&self, app_instance_id: &str) -> Result<AppInstanceRecord, MepError> {
        let state = self.snapshot();
        let app = state
            .apps
            .get(app_instance_id)
            .ok_or_else(|| not_found("application instance", app_instance_id))?;
        Ok(AppInstanceRecord {
            app_instance_id: app_instance_id.to_owned(),
            state: app.state,
            pending_action: app.pending,
            config: AppInstanceConfig {
                app_info: app.info.clone(),
                app_traffic_rule: rules_of(&state.traffic_rules, app_instance_id)
                    .map(|r| r.value.clone())
                    .collect(),
                app_dns_rule: rules_of(&state.dns_rules, app_instance_id)
                    .map(|r| r.value.clone())
                    .collect(),
                app_service_produced: app.produced.clone(),
                // checked when provisioned, not kept
                transport_dependencies: Vec::new(),
                oauth2_client: app.client.as_ref().map(redacted),
                app_rule_policy: Some(app.policy.clone()),
            },
        })
    }

    /// One application instance.
    pub fn app_instance_get(&self, app_instance_id: &str) -> Result<AppInstanceRecord, MepError> {
        self.record_of(app_instance_id)
    }

    /// Every application instance.
    pub fn app_instance_list(&self) -> Vec<AppInstanceRecord> {
        let ids: Vec<String> = self.snapshot().apps.keys().cloned().collect();
        ids.iter()
            .filter_map(|id| self.record_of(id).ok())
            .collect()
    }

    /// Starts stopping or terminating an instance: its termination subscribers are notified and
    /// have `graceful_timeout_secs` to confirm. Without subscribers or timeout it happens now.
    pub async fn app_instance_begin(
        &self,
        app_instance_id: &str,
        action: OperationActionType,
        graceful_timeout_secs: u32,
    ) -> Result<Progress, MepError> {
        let id = app_instance_id.to_owned();
        let root = self.settings.api_root.clone();
        self.write(move |state, now| {
            begin_changes(state, &id, action, graceful_timeout_secs, &root, now)
        })
        .await
    }

    /// `confirm_ready`: the instance's active rules come into effect.
    pub async fn confirm_ready(
        &self,
        app_instance_id: &str,
        indication: &str,
    ) -> Result<(), MepError> {
        if indication != "READY" {
            return Err(MepError::Invalid(format!(
                "indication shall be READY, not {indication}"
            )));
        }
        let id = app_instance_id.to_owned();
        self.write(move |state, now| {
            let app = state
                .apps
                .get_mut(&id)
                .ok_or_else(|| not_found("application instance", &id))?;
            if let Some(p) = app.pending {
                return Err(MepError::Conflict(format!(
                    "application instance {id} is {}",
                    action_name(p.operation_action)
                )));
            }
            if app.state == AppInstanceState::Ready {
                return Ok((Vec::new(), ()));
            }
            app.state = AppInstanceState::Ready;
            Ok((vec![Change::UpsertApp(app_row(&id, app, now))], ()))
        })
        .await
    }

    /// `confirm_termination`: the application is ready to be stopped or terminated.
    pub async fn confirm_termination(
        &self,
        app_instance_id: &str,
        action: OperationActionType,
    ) -> Result<(), MepError> {
        let id = app_instance_id.to_owned();
        self.write(move |state, now| {
            let app = state
                .apps
                .get(&id)
                .ok_or_else(|| not_found("application instance", &id))?;
            match app.pending {
                Some(p) if p.operation_action == action => {
                    Ok((finish_action(state, &id, action, now), ()))
                }
                Some(p) => Err(MepError::Conflict(format!(
                    "operationAction {} does not match the pending {}",
                    action_name(action),
                    action_name(p.operation_action)
                ))),
                None => Err(MepError::Conflict(format!(
                    "no stop or termination of application instance {id} is pending"
                ))),
            }
        })
        .await
    }
}

pub(super) fn action_name(action: OperationActionType) -> &'static str {
    match action {
        OperationActionType::Stopping => "STOPPING",
        OperationActionType::Terminating => "TERMINATING",
    }
}

/// Completes a stop (the instance is no longer ready) or a termination (it and everything it
/// owns are removed, its services reported REMOVED).
pub(super) fn finish_action(
    state: &mut State,
    id: &str,
    action: OperationActionType,
    now: i64,
) -> Vec<Change> {
    match action {
        OperationActionType::Stopping => match state.apps.get_mut(id) {
            Some(app) => {
                app.pending = None;
                app.state = AppInstanceState::Instantiated;
                vec![Change::UpsertApp(app_row(id, app, now))]
            }
            None => Vec::new(),
        },
        OperationActionType::Terminating => {
            state.apps.remove(id);
            state.traffic_rules.retain(|(app, _), _| app != id);
            state.dns_rules.retain(|(app, _), _| app != id);
            state.subscriptions.retain(|_, s| s.app_instance_id != id);
            let removed = state.services.remove_producer(id);
            let refs: Vec<(&ServiceInfo, ChangeType)> = removed
                .iter()
                .map(|s| (&s.info.value, ChangeType::Removed))
                .collect();
            let mut changes = vec![Change::DeleteApp(id.to_owned())];
            changes.extend(availability(state, &refs, now));
            changes
        }
    }
}

pub(super) fn app_row(id: &str, app: &AppInstance, now: i64) -> AppRow {
    AppRow {
        app_instance_id: id.to_owned(),
        app_info: json(&app.info),
        state: app.state.as_str().to_owned(),
        pending_action: app
            .pending
            .map(|p| action_name(p.operation_action).to_owned()),
        action_deadline: app.pending.map(|p| p.deadline),
        updated_at: now,
        services_produced: (!app.produced.is_empty()).then(|| json(&app.produced)),
        oauth2_client: app.client.as_ref().map(json),
        rule_policy: Some(json(&app.policy)),
    }
}

/// The checks of a provisioned configuration (against the platform's `transports` too); fills
/// in the instance id.
pub(super) fn validated(
    app_instance_id: &str,
    mut config: AppInstanceConfig,
    transports: &[TransportInfo],
) -> Result<AppInstanceConfig, MepError> {
    for needed in &config.transport_dependencies {
        let t = &needed.transport;
        if !transports.iter().any(|p| {
            p.transport_type == t.transport_type
                && p.protocol == t.protocol
                && p.version == t.version
        }) {
            let kind = serde_json::to_value(t.transport_type).unwrap_or_default();
            return Err(MepError::Conflict(format!(
                "transportDependencies: this platform provides no {} transport {} {} ({})",
                kind.as_str().unwrap_or_default(),
                t.protocol,
                t.version,
                t.name
            )));
        }
    }
    if let Some(id) = config
        .app_info
        .app_instance_id
        .as_ref()
        .filter(|id| *id != app_instance_id)
    {
        return Err(MepError::Invalid(format!(
            "appInfo.appInstanceId {id} differs from the path {app_instance_id}"
        )));
    }
    config.app_info.app_instance_id = Some(app_instance_id.to_owned());
    config
        .app_info
        .validate_names()
        .map_err(MepError::Invalid)?;
    // provisioned by MEC management: instantiated by it, as far as the application is concerned
    config.app_info.is_ins_by_mec = Some(true);
    if let Some(endpoint) = &config.app_info.endpoint {
        endpoint.validate().map_err(MepError::Invalid)?;
    }
    for rule in &config.app_traffic_rule {
        validate_traffic_rule(rule)?;
    }
    for rule in &config.app_dns_rule {
        validate_dns_rule(rule)?;
    }
    unique(
        config.app_traffic_rule.iter().map(|r| &r.traffic_rule_id),
        "trafficRuleId",
    )?;
    unique(
        config.app_dns_rule.iter().map(|r| &r.dns_rule_id),
        "dnsRuleId",
    )?;
    Ok(config)
}

/// The changes that create or replace instance `id`'s configuration; whether it is new.
pub(super) fn put_changes(
    state: &mut State,
    id: &str,
    config: &AppInstanceConfig,
    reserved_client_ids: &[String],
    suffixes: &[String],
    now: i64,
) -> Result<(Vec<Change>, bool), MepError> {
    if let Some(client) = &config.oauth2_client {
        validate_client(state, reserved_client_ids, id, client)?;
    }
    let policy = resolve(config);
    for rule in &config.app_dns_rule {
        if let Some(holder) = taken_elsewhere(state, id, &domain_of(rule), suffixes) {
            return Err(MepError::Conflict(format!(
                "{} is answered for application instance {holder}, which took it below a granted suffix",
                rule.domain_name
            )));
        }
    }
    let mut changes = Vec::new();
    let created = !state.apps.contains_key(id);
    let app = state
        .apps
        .entry(id.to_owned())
        .or_insert_with(|| AppInstance {
            info: config.app_info.clone(),
            produced: Vec::new(),
            client: None,
            policy: AppRulePolicy::default(),
            state: AppInstanceState::Instantiated,
            pending: None,
        });
    if app
        .pending
        .is_some_and(|p| p.operation_action == OperationActionType::Terminating)
    {
        return Err(MepError::Conflict(format!(
            "application instance {id} is terminating"
        )));
    }
    app.info = config.app_info.clone();
    app.produced = config.app_service_produced.clone();
    app.client = config.oauth2_client.clone();
    app.policy = policy;
    changes.push(Change::UpsertApp(app_row(id, app, now)));
    replace_rules(
        &mut state.traffic_rules,
        id,
        &config.app_traffic_rule,
        |r| &r.traffic_rule_id,
        Change::UpsertTrafficRule,
        |app_instance_id, rule_id| Change::DeleteTrafficRule {
            app_instance_id,
            rule_id,
        },
        &mut changes,
    );
    replace_rules(
        &mut state.dns_rules,
        id,
        &config.app_dns_rule,
        |r| &r.dns_rule_id,
        Change::UpsertDnsRule,
        |app_instance_id, rule_id| Change::DeleteDnsRule {
            app_instance_id,
            rule_id,
        },
        &mut changes,
    );
    Ok((changes, created))
}

/// The changes that start stopping or terminating instance `id` (see
/// [`Platform::app_instance_begin`]).
pub(super) fn begin_changes(
    state: &mut State,
    id: &str,
    action: OperationActionType,
    graceful_timeout_secs: u32,
    root: &str,
    now: i64,
) -> Result<(Vec<Change>, Progress), MepError> {
    let app = state
        .apps
        .get(id)
        .ok_or_else(|| not_found("application instance", id))?;
    if app
        .pending
        .is_some_and(|p| p.operation_action == OperationActionType::Terminating)
    {
        return Err(MepError::Conflict(format!(
            "application instance {id} is terminating"
        )));
    }
    let subscribers: Vec<SubscriptionEntry> = state
        .subscriptions
        .values()
        .filter(|s| {
            s.app_instance_id == id && matches!(s.subscription, Subscription::AppTermination(_))
        })
        .cloned()
        .collect();
    if subscribers.is_empty() || graceful_timeout_secs == 0 {
        let changes = finish_action(state, id, action, now);
        return Ok((changes, Progress::Done));
    }
    let mut changes = Vec::new();
    let app = state
        .apps
        .get_mut(id)
        .ok_or_else(|| not_found("application instance", id))?;
    app.pending = Some(PendingAction {
        operation_action: action,
        deadline: now + i64::from(graceful_timeout_secs) * 1000,
    });
    changes.push(Change::UpsertApp(app_row(id, app, now)));
    for sub in subscribers {
        let notification = AppTerminationNotification {
            notification_type: AppTerminationNotification::TYPE.into(),
            operation_action: action,
            max_graceful_timeout: graceful_timeout_secs,
            links: AppTerminationNotificationLinks {
                subscription: LinkType::new(sub.self_href().unwrap_or_default()),
                confirm_termination: Some(LinkType::new(format!(
                    "{root}{APP_SUPPORT_BASE}/applications/{id}/confirm_termination"
                ))),
            },
        };
        changes.push(enqueue(&sub, json(&notification), now));
    }
    Ok((changes, Progress::Pending))
}

/// Completes the pending stops and terminations whose graceful period passed unconfirmed.
pub(super) fn expire_pending(state: &mut State, now: i64) -> Vec<Change> {
    let expired: Vec<(String, OperationActionType)> = state
        .apps
        .iter()
        .filter_map(|(id, a)| {
            a.pending
                .filter(|p| p.deadline <= now)
                .map(|p| (id.clone(), p.operation_action))
        })
        .collect();
    let mut changes = Vec::new();
    for (id, action) in expired {
        tracing::info!(app_instance_id = %id, action = action_name(action), "graceful period over without confirmation");
        changes.extend(finish_action(state, &id, action, now));
    }
    changes
}
