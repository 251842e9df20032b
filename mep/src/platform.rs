//! The MEC platform's domain: application instances, their traffic and DNS rules, the service
//! registry, subscriptions and the notifications they produce. Plain Rust, no HTTP.
//!
//! State lives in memory behind an `Arc` that readers clone (discovery is a read of a snapshot,
//! never a database round trip) and in the store, which is the truth across restarts. Writers
//! are serialized: each operation computes the next state and the [`Change`]s that persist it
//! (notifications included, in the same transaction), writes them, and only then publishes the
//! next state. A failed write leaves memory untouched.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

use api_specs::common::{LinkType, SelfLink, SubscriptionLink, TimeStamp, TransportInfo};
use api_specs::mm1::appd::ServiceDescriptor;
use api_specs::mp1::app_support::{
    AppInfo, AppTerminationNotification, AppTerminationNotificationLinks,
    AppTerminationNotificationSubscription, DnsRule, OperationActionType, RuleState, TrafficRule,
    TrafficRuleAction, validate_dns_target,
};
pub use api_specs::mp1::provisioning::AppInstanceConfig;
use api_specs::mp1::service_mgmt::{
    ChangeType, FilteringCriteria, LocalityType, NotificationLinks,
    SerAvailabilityNotificationSubscription, ServiceAvailabilityNotification, ServiceInfo,
    ServiceInfoLinks, ServiceLivenessInfo, ServiceReferences, ServiceState,
};
use serde::{Deserialize, Serialize};
use server_kit::notify::NotificationRow;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::store::{
    AppRow, Change, RuleRow, ServiceRow, Store, StoreError, SubscriptionRow, parse_body,
};

/// Subscription type of service availability subscriptions.
pub const SER_AVAILABILITY: &str = "SerAvailabilityNotificationSubscription";
/// Subscription type of application termination subscriptions.
pub const APP_TERMINATION: &str = "AppTerminationNotificationSubscription";

/// Base path of the service management API.
pub const SERVICE_MGMT_BASE: &str = "/mec_service_mgmt/v1";
/// Base path of the application support API.
pub const APP_SUPPORT_BASE: &str = "/mec_app_support/v1";

/// A domain failure.
#[derive(Debug, thiserror::Error)]
pub enum MepError {
    /// No such resource.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind of resource.
        kind: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The application may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// An `If-Match` precondition does not hold.
    #[error("entity tag {given} does not match the current {current}")]
    PreconditionFailed {
        /// The tag the client sent.
        given: String,
        /// The current tag.
        current: String,
    },
    /// Persistence failed.
    #[error("store failure")]
    Store(#[from] StoreError),
}

fn not_found(kind: &'static str, id: &str) -> MepError {
    MepError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

/// Readiness of an application instance at this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppInstanceState {
    /// Provisioned; has not confirmed readiness (its rules are not in effect).
    Instantiated,
    /// Confirmed ready; its active rules are in effect.
    Ready,
}

impl AppInstanceState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instantiated => "INSTANTIATED",
            Self::Ready => "READY",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "READY" {
            Self::Ready
        } else {
            Self::Instantiated
        }
    }
}

/// An operation waiting for the application's confirmation or its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingAction {
    /// STOPPING or TERMINATING.
    pub operation_action: OperationActionType,
    /// When it proceeds without confirmation (Unix ms).
    pub deadline: i64,
}

/// A value with its entity tag counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Tagged<T> {
    /// The value.
    pub value: T,
    /// Incremented on every change.
    pub etag: i64,
}

impl<T> Tagged<T> {
    /// The HTTP entity tag.
    pub fn etag_header(&self) -> String {
        format!("\"{}\"", self.etag)
    }

    fn check(&self, if_match: Option<&str>) -> Result<(), MepError> {
        match if_match.map(str::trim) {
            None | Some("*") => Ok(()),
            Some(given) if given.trim_start_matches("W/") == self.etag_header() => Ok(()),
            Some(given) => Err(MepError::PreconditionFailed {
                given: given.to_owned(),
                current: self.etag_header(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
struct AppInstance {
    info: AppInfo,
    produced: Vec<ServiceDescriptor>,
    state: AppInstanceState,
    pending: Option<PendingAction>,
}

#[derive(Debug, Clone)]
struct Service {
    app_instance_id: String,
    info: Tagged<ServiceInfo>,
    last_heartbeat: i64,
}

#[derive(Debug, Clone)]
enum Subscription {
    SerAvailability(SerAvailabilityNotificationSubscription),
    AppTermination(AppTerminationNotificationSubscription),
}

#[derive(Debug, Clone)]
struct SubscriptionEntry {
    app_instance_id: String,
    subscription: Subscription,
}

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

    fn self_href(&self) -> Option<&str> {
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

type RuleKey = (String, String);

#[derive(Debug, Clone, Default)]
struct State {
    /// `GET /services` without filters, serialized once per published state: discovery is the
    /// hot path and most calls are unfiltered.
    all_services_json: OnceLock<Bytes>,
    apps: BTreeMap<String, AppInstance>,
    services: BTreeMap<String, Service>,
    traffic_rules: BTreeMap<RuleKey, Tagged<TrafficRule>>,
    dns_rules: BTreeMap<RuleKey, Tagged<DnsRule>>,
    subscriptions: BTreeMap<String, SubscriptionEntry>,
    desired_versions: BTreeMap<String, u64>,
}

/// One DNS answer served for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The address.
    pub ip: IpAddr,
    /// TTL in seconds.
    pub ttl: u32,
}

/// Domains answered by the DNS server: the ACTIVE rules of READY instances, by lower-case name
/// without the trailing dot.
pub type DnsTable = RwLock<Arc<HashMap<String, Vec<DnsAnswer>>>>;

/// Settings of the platform domain.
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// Absolute URL prefix of this MEP's APIs, used in `_links` and `Location`.
    pub api_root: String,
    /// Platform-provided transports (`GET /transports`).
    pub transports: Vec<TransportInfo>,
    /// Shortest heartbeat interval the platform accepts (seconds).
    pub min_liveness_interval: u32,
    /// TTL of DNS answers for rules without one (seconds).
    pub default_dns_ttl: u32,
    /// Time sources.
    pub timing: crate::timing::TimingConfig,
}

/// Service discovery filters (the query parameters of `GET /services`).
#[derive(Debug, Clone, Default, PartialEq)]
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
    fn matches(&self, s: &ServiceInfo) -> bool {
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

/// The MEC platform.
pub struct Platform {
    store: Store,
    settings: PlatformSettings,
    state: RwLock<Arc<State>>,
    writer: tokio::sync::Mutex<()>,
    dns: Arc<DnsTable>,
    wake: Arc<Notify>,
    published: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

impl Platform {
    /// Loads the stored state; `wake` is signalled whenever notifications are queued.
    pub async fn load(
        store: Store,
        settings: PlatformSettings,
        wake: Arc<Notify>,
    ) -> Result<Self, MepError> {
        let snapshot = store.load().await?;
        let mut state = State::default();
        for a in snapshot.apps {
            let pending = match (a.pending_action.as_deref(), a.action_deadline) {
                (Some("STOPPING"), Some(deadline)) => Some(PendingAction {
                    operation_action: OperationActionType::Stopping,
                    deadline,
                }),
                (Some("TERMINATING"), Some(deadline)) => Some(PendingAction {
                    operation_action: OperationActionType::Terminating,
                    deadline,
                }),
                _ => None,
            };
            state.apps.insert(
                a.app_instance_id.clone(),
                AppInstance {
                    info: parse_body(&format!("app instance {}", a.app_instance_id), &a.app_info)?,
                    produced: match &a.services_produced {
                        Some(p) => parse_body(&format!("app instance {}", a.app_instance_id), p)?,
                        None => Vec::new(),
                    },
                    state: AppInstanceState::parse(&a.state),
                    pending,
                },
            );
        }
        for s in snapshot.services {
            let info = parse_body(&format!("service {}", s.ser_instance_id), &s.body)?;
            state.services.insert(
                s.ser_instance_id,
                Service {
                    app_instance_id: s.app_instance_id,
                    info: Tagged {
                        value: info,
                        etag: s.etag,
                    },
                    last_heartbeat: s.last_heartbeat,
                },
            );
        }
        for r in snapshot.traffic_rules {
            let value = parse_body(&format!("traffic rule {}", r.rule_id), &r.body)?;
            state.traffic_rules.insert(
                (r.app_instance_id, r.rule_id),
                Tagged {
                    value,
                    etag: r.etag,
                },
            );
        }
        for r in snapshot.dns_rules {
            let value = parse_body(&format!("DNS rule {}", r.rule_id), &r.body)?;
            state.dns_rules.insert(
                (r.app_instance_id, r.rule_id),
                Tagged {
                    value,
                    etag: r.etag,
                },
            );
        }
        for s in snapshot.subscriptions {
            let what = format!("subscription {}", s.subscription_id);
            let subscription = if s.subscription_type == APP_TERMINATION {
                Subscription::AppTermination(parse_body(&what, &s.body)?)
            } else {
                Subscription::SerAvailability(parse_body(&what, &s.body)?)
            };
            state.subscriptions.insert(
                s.subscription_id,
                SubscriptionEntry {
                    app_instance_id: s.app_instance_id,
                    subscription,
                },
            );
        }
        state.desired_versions = snapshot
            .desired_versions
            .into_iter()
            .map(|(id, v)| (id, u64::try_from(v).unwrap_or(0)))
            .collect();
        let platform = Self {
            store,
            settings,
            state: RwLock::new(Arc::new(state)),
            writer: tokio::sync::Mutex::new(()),
            dns: Arc::new(RwLock::new(Arc::new(HashMap::new()))),
            wake,
            published: tokio::sync::watch::channel(0).0,
        };
        platform.publish();
        Ok(platform)
    }

    /// The table the DNS server answers from.
    pub fn dns_table(&self) -> Arc<DnsTable> {
        self.dns.clone()
    }

    /// The settings.
    pub fn settings(&self) -> &PlatformSettings {
        &self.settings
    }

    /// The advertised time sources.
    pub fn timing(&self) -> &crate::timing::TimingConfig {
        &self.settings.timing
    }

    /// The store (for readiness checks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn snapshot(&self) -> Arc<State> {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Runs one write: `op` edits a copy of the state and returns the changes that persist it.
    async fn write<R>(
        &self,
        op: impl FnOnce(&mut State, i64) -> Result<(Vec<Change>, R), MepError>,
    ) -> Result<R, MepError> {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        next.all_services_json = OnceLock::new();
        let now = server_kit::unix_millis_now();
        let (changes, result) = op(&mut next, now)?;
        if changes.is_empty() {
            return Ok(result);
        }
        self.store.apply(&changes).await?;
        let notify = changes.iter().any(|c| matches!(c, Change::Enqueue(_)));
        match self.state.write() {
            Ok(mut s) => *s = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        self.publish();
        if notify {
            self.wake.notify_one();
        }
        Ok(result)
    }

    /// Makes a new state effective: rebuilds the DNS table and tells traffic steering.
    fn publish(&self) {
        self.rebuild_dns();
        self.published.send_modify(|generation| *generation += 1);
    }

    /// Changes whenever a new state is published (see [`Platform::steered_rules`]).
    pub fn published(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// The traffic rules to steer by: those of every READY instance, by instance.
    pub fn steered_rules(&self) -> BTreeMap<String, Vec<TrafficRule>> {
        let state = self.snapshot();
        let mut rules: BTreeMap<String, Vec<TrafficRule>> = BTreeMap::new();
        for ((app, _), rule) in &state.traffic_rules {
            if state
                .apps
                .get(app)
                .is_some_and(|a| a.state == AppInstanceState::Ready)
            {
                rules
                    .entry(app.clone())
                    .or_default()
                    .push(rule.value.clone());
            }
        }
        rules
    }

    fn rebuild_dns(&self) {
        let state = self.snapshot();
        let mut table: HashMap<String, Vec<DnsAnswer>> = HashMap::new();
        for ((app, _), rule) in &state.dns_rules {
            let ready = state
                .apps
                .get(app)
                .is_some_and(|a| a.state == AppInstanceState::Ready);
            if !ready || rule.value.state != RuleState::Active {
                continue;
            }
            let Ok(ip) = rule.value.ip_address.parse::<IpAddr>() else {
                continue;
            };
            table
                .entry(normalize_domain(&rule.value.domain_name))
                .or_default()
                .push(DnsAnswer {
                    ip,
                    ttl: rule.value.ttl.unwrap_or(self.settings.default_dns_ttl),
                });
        }
        match self.dns.write() {
            Ok(mut t) => *t = Arc::new(table),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(table),
        }
    }

    fn service_href(&self, app: &str, ser_instance_id: &str) -> String {
        format!(
            "{}{SERVICE_MGMT_BASE}/applications/{app}/services/{ser_instance_id}",
            self.settings.api_root
        )
    }

    // === application instances (MEC management) ===

    /// Creates or replaces an application instance's configuration; returns whether it is new.
    pub async fn app_instance_put(
        &self,
        app_instance_id: &str,
        config: AppInstanceConfig,
    ) -> Result<(AppInstanceRecord, bool), MepError> {
        let config = validated(app_instance_id, config)?;
        let id = app_instance_id.to_owned();
        let created = self
            .write(move |state, now| put_changes(state, &id, &config, now))
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
            Desired::Config(config) => {
                Desired::Config(Box::new(validated(app_instance_id, *config)?))
            }
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
                Desired::Config(config) => put_changes(state, &id, &config, now)?.0,
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
        for s in state.services.values() {
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

    // === services ===

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
            state.services.insert(ser_instance_id, service);
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

    /// Services matching `query`, optionally only those of one producer, as a JSON array.
    pub fn service_list_json(&self, producer: Option<&str>, query: &ServiceQuery) -> Bytes {
        let state = self.snapshot();
        let select = || -> Vec<&ServiceInfo> {
            state
                .services
                .values()
                .filter(|s| producer.is_none_or(|p| p == s.app_instance_id))
                .filter(|s| query.matches(&s.info.value))
                .map(|s| &s.info.value)
                .collect()
        };
        if producer.is_none() && *query == ServiceQuery::default() {
            return state
                .all_services_json
                .get_or_init(|| Bytes::from(serde_json::to_vec(&select()).unwrap_or_default()))
                .clone();
        }
        Bytes::from(serde_json::to_vec(&select()).unwrap_or_default())
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
            state.services.insert(sid, updated);
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
            let service = state
                .services
                .get(&sid)
                .filter(|s| s.app_instance_id == app)
                .ok_or_else(|| not_found("service", &sid))?
                .clone();
            state.services.remove(&sid);
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
                .get_mut(&sid)
                .filter(|s| s.app_instance_id == app)
                .ok_or_else(|| not_found("service", &sid))?;
            if service.info.value.liveness_interval.is_none() {
                return Err(not_found("liveness resource of service", &sid));
            }
            service.last_heartbeat = now;
            if service.info.value.state != ServiceState::Suspended {
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
            let service = service.clone();
            let mut changes = vec![Change::UpsertService(service_row(&sid, &service))];
            changes.extend(availability(
                state,
                &[(&service.info.value, ChangeType::StateChanged)],
                now,
            ));
            Ok((changes, ()))
        })
        .await
    }

    // === subscriptions ===

    /// Creates a service availability subscription.
    pub async fn ser_availability_subscribe(
        &self,
        app_instance_id: &str,
        mut sub: SerAvailabilityNotificationSubscription,
    ) -> Result<SerAvailabilityNotificationSubscription, MepError> {
        expect_type(&sub.subscription_type, SER_AVAILABILITY)?;
        validate_callback(&sub.callback_reference)?;
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
        validate_callback(&sub.callback_reference)?;
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

    // === traffic and DNS rules ===

    /// The traffic rules of an instance.
    pub fn traffic_rule_list(&self, app: &str) -> Result<Vec<TrafficRule>, MepError> {
        let state = self.snapshot();
        if !state.apps.contains_key(app) {
            return Err(not_found("application instance", app));
        }
        Ok(rules_of(&state.traffic_rules, app)
            .map(|r| r.value.clone())
            .collect())
    }

    /// One traffic rule.
    pub fn traffic_rule_get(&self, app: &str, id: &str) -> Result<Tagged<TrafficRule>, MepError> {
        self.snapshot()
            .traffic_rules
            .get(&(app.to_owned(), id.to_owned()))
            .cloned()
            .ok_or_else(|| not_found("traffic rule", id))
    }

    /// Updates a traffic rule (`PUT`), honouring `If-Match`.
    pub async fn traffic_rule_update(
        &self,
        app: &str,
        id: &str,
        rule: TrafficRule,
        if_match: Option<&str>,
    ) -> Result<Tagged<TrafficRule>, MepError> {
        if rule.traffic_rule_id != id {
            return Err(MepError::Invalid(
                "trafficRuleId differs from the path".into(),
            ));
        }
        validate_traffic_rule(&rule)?;
        let key = (app.to_owned(), id.to_owned());
        let if_match = if_match.map(str::to_owned);
        self.write(move |state, _| {
            let current = state
                .traffic_rules
                .get(&key)
                .ok_or_else(|| not_found("traffic rule", &key.1))?;
            current.check(if_match.as_deref())?;
            let next = Tagged {
                value: rule,
                etag: current.etag + 1,
            };
            let row = rule_row(&key, &next.value, next.etag);
            state.traffic_rules.insert(key, next.clone());
            Ok((vec![Change::UpsertTrafficRule(row)], next))
        })
        .await
    }

    /// The DNS rules of an instance.
    pub fn dns_rule_list(&self, app: &str) -> Result<Vec<DnsRule>, MepError> {
        let state = self.snapshot();
        if !state.apps.contains_key(app) {
            return Err(not_found("application instance", app));
        }
        Ok(rules_of(&state.dns_rules, app)
            .map(|r| r.value.clone())
            .collect())
    }

    /// One DNS rule.
    pub fn dns_rule_get(&self, app: &str, id: &str) -> Result<Tagged<DnsRule>, MepError> {
        self.snapshot()
            .dns_rules
            .get(&(app.to_owned(), id.to_owned()))
            .cloned()
            .ok_or_else(|| not_found("DNS rule", id))
    }

    /// Updates a DNS rule (`PUT`), honouring `If-Match`; the DNS server follows at once.
    pub async fn dns_rule_update(
        &self,
        app: &str,
        id: &str,
        rule: DnsRule,
        if_match: Option<&str>,
    ) -> Result<Tagged<DnsRule>, MepError> {
        if rule.dns_rule_id != id {
            return Err(MepError::Invalid("dnsRuleId differs from the path".into()));
        }
        validate_dns_rule(&rule)?;
        let key = (app.to_owned(), id.to_owned());
        let if_match = if_match.map(str::to_owned);
        self.write(move |state, _| {
            let current = state
                .dns_rules
                .get(&key)
                .ok_or_else(|| not_found("DNS rule", &key.1))?;
            current.check(if_match.as_deref())?;
            let next = Tagged {
                value: rule,
                etag: current.etag + 1,
            };
            let row = rule_row(&key, &next.value, next.etag);
            state.dns_rules.insert(key, next.clone());
            Ok((vec![Change::UpsertDnsRule(row)], next))
        })
        .await
    }

    // === housekeeping ===

    /// Suspends services whose heartbeats stopped (none for two intervals) and completes
    /// pending stops and terminations whose deadline passed.
    pub async fn sweep(&self) -> Result<(), MepError> {
        self.write(move |state, now| {
            let mut changes = Vec::new();
            let mut suspended = Vec::new();
            for (sid, service) in &mut state.services {
                let Some(interval) = service.info.value.liveness_interval else { continue };
                let late = now - service.last_heartbeat > 2 * 1000 * i64::from(interval.max(1));
                if late && service.info.value.state == ServiceState::Active {
                    service.info.value.state = ServiceState::Suspended;
                    service.info.etag += 1;
                    changes.push(Change::UpsertService(service_row(sid, service)));
                    suspended.push(service.info.value.clone());
                }
            }
            let refs: Vec<(&ServiceInfo, ChangeType)> =
                suspended.iter().map(|s| (s, ChangeType::StateChanged)).collect();
            changes.extend(availability(state, &refs, now,));
            let expired: Vec<(String, OperationActionType)> = state
                .apps
                .iter()
                .filter_map(|(id, a)| a.pending.filter(|p| p.deadline <= now).map(|p| (id.clone(), p.operation_action)))
                .collect();
            for (id, action) in expired {
                tracing::info!(app_instance_id = %id, action = action_name(action), "graceful period over without confirmation");
                changes.extend(finish_action(state, &id, action, now));
            }
            Ok((changes, ()))
        })
        .await
    }
}

fn action_name(action: OperationActionType) -> &'static str {
    match action {
        OperationActionType::Stopping => "STOPPING",
        OperationActionType::Terminating => "TERMINATING",
    }
}

/// Completes a stop (the instance is no longer ready) or a termination (it and everything it
/// owns are removed, its services reported REMOVED).
fn finish_action(
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
            let removed: Vec<Service> = state
                .services
                .values()
                .filter(|s| s.app_instance_id == id)
                .cloned()
                .collect();
            state.services.retain(|_, s| s.app_instance_id != id);
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

/// Notifications for service changes, one per matching availability subscription.
fn availability(state: &State, changed: &[(&ServiceInfo, ChangeType)], now: i64) -> Vec<Change> {
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
                notification_type: "SerAvailabilityNotification".into(),
                service_references: references,
                links: NotificationLinks {
                    subscription: LinkType::new(entry.self_href().unwrap_or_default()),
                },
            };
            Some(enqueue(entry, json(&notification), now))
        })
        .collect()
}

fn criteria_match(f: &FilteringCriteria, s: &ServiceInfo) -> bool {
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

fn enqueue(sub: &SubscriptionEntry, body: String, now: i64) -> Change {
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

fn app_row(id: &str, app: &AppInstance, now: i64) -> AppRow {
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
    }
}

fn service_row(id: &str, s: &Service) -> ServiceRow {
    ServiceRow {
        ser_instance_id: id.to_owned(),
        app_instance_id: s.app_instance_id.clone(),
        ser_name: s.info.value.ser_name.clone(),
        body: json(&s.info.value),
        etag: s.info.etag,
        last_heartbeat: s.last_heartbeat,
    }
}

fn rule_row<T: Serialize>(key: &RuleKey, value: &T, etag: i64) -> RuleRow {
    RuleRow {
        app_instance_id: key.0.clone(),
        rule_id: key.1.clone(),
        body: json(value),
        etag,
    }
}

fn rules_of<'a, T>(
    rules: &'a BTreeMap<RuleKey, Tagged<T>>,
    app: &'a str,
) -> impl Iterator<Item = &'a Tagged<T>> {
    rules
        .iter()
        .filter(move |((a, _), _)| a == app)
        .map(|(_, r)| r)
}

/// Replaces an instance's rules with `desired`: unchanged rules keep their tag, changed ones
/// get a new one, missing ones are deleted.
fn replace_rules<T: Clone + PartialEq + Serialize>(
    rules: &mut BTreeMap<RuleKey, Tagged<T>>,
    app: &str,
    desired: &[T],
    id_of: impl Fn(&T) -> &String,
    upsert: impl Fn(RuleRow) -> Change,
    delete: impl Fn(String, String) -> Change,
    changes: &mut Vec<Change>,
) {
    let stale: Vec<RuleKey> = rules
        .keys()
        .filter(|(a, id)| a == app && !desired.iter().any(|d| id_of(d) == id))
        .cloned()
        .collect();
    for key in stale {
        rules.remove(&key);
        changes.push(delete(key.0, key.1));
    }
    for rule in desired {
        let key = (app.to_owned(), id_of(rule).clone());
        let etag = match rules.get(&key) {
            Some(current) if &current.value == rule => continue,
            Some(current) => current.etag + 1,
            None => 1,
        };
        changes.push(upsert(rule_row(&key, rule, etag)));
        rules.insert(
            key,
            Tagged {
                value: rule.clone(),
                etag,
            },
        );
    }
}

fn unique<'a>(ids: impl Iterator<Item = &'a String>, what: &str) -> Result<(), MepError> {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(MepError::Invalid(format!("duplicate {what} {id}")));
        }
    }
    Ok(())
}

fn expect_type(given: &str, expected: &str) -> Result<(), MepError> {
    if given == expected {
        Ok(())
    } else {
        Err(MepError::Invalid(format!(
            "subscriptionType shall be {expected}"
        )))
    }
}

fn validate_callback(uri: &str) -> Result<(), MepError> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| MepError::Invalid(format!("callbackReference {uri} is not a URI")))?;
    match (parsed.scheme_str(), parsed.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(MepError::Invalid(
            "callbackReference shall be an absolute http(s) URI".into(),
        )),
    }
}

fn validate_filter(f: &FilteringCriteria) -> Result<(), MepError> {
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
    Ok(())
}

/// The checks of a provisioned configuration; fills in the instance id.
fn validated(
    app_instance_id: &str,
    mut config: AppInstanceConfig,
) -> Result<AppInstanceConfig, MepError> {
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
fn put_changes(
    state: &mut State,
    id: &str,
    config: &AppInstanceConfig,
    now: i64,
) -> Result<(Vec<Change>, bool), MepError> {
    let mut changes = Vec::new();
    let created = !state.apps.contains_key(id);
    let app = state
        .apps
        .entry(id.to_owned())
        .or_insert_with(|| AppInstance {
            info: config.app_info.clone(),
            produced: Vec::new(),
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
fn begin_changes(
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
            notification_type: "AppTerminationNotification".into(),
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

/// An instance may register a service it declares it produces (any, when it declares none).
fn may_produce(state: &State, app_instance_id: &str, ser_name: &str) -> Result<(), MepError> {
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

/// Lower-case domain without the trailing dot.
pub fn normalize_domain(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn validate_dns_rule(rule: &DnsRule) -> Result<(), MepError> {
    validate_dns_target(&rule.domain_name, rule.ip_address_type, &rule.ip_address)
        .map_err(MepError::Invalid)
}

fn validate_traffic_rule(rule: &TrafficRule) -> Result<(), MepError> {
    let id = &rule.traffic_rule_id;
    if rule.traffic_filter.is_empty() {
        return Err(MepError::Invalid(format!(
            "traffic rule {id}: trafficFilter needs at least one filter"
        )));
    }
    let needs_destination = !matches!(
        rule.action,
        TrafficRuleAction::Drop | TrafficRuleAction::Passthrough
    );
    if needs_destination && rule.dst_interface.is_none() {
        return Err(MepError::Invalid(format!(
            "traffic rule {id}: action needs a dstInterface"
        )));
    }
    for filter in &rule.traffic_filter {
        filter
            .validate()
            .map_err(|e| MepError::Invalid(format!("traffic rule {id}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_current_weak_and_star() {
        let t = Tagged { value: (), etag: 3 };
        assert!(t.check(None).is_ok() && t.check(Some("*")).is_ok());
        assert!(t.check(Some("\"3\"")).is_ok() && t.check(Some("W/\"3\"")).is_ok());
        assert!(matches!(
            t.check(Some("\"2\"")),
            Err(MepError::PreconditionFailed { .. })
        ));
    }
}
