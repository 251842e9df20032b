//! The MEC platform's domain: application instances, their traffic and DNS rules, the service
//! registry, subscriptions and the notifications they produce. Plain Rust, no HTTP.
//!
//! State lives in memory behind an `Arc` that readers clone (discovery is a read of a snapshot,
//! never a database round trip) and in the store, which is the truth across restarts. Writers
//! are serialized: each operation computes the next state and the [`Change`]s that persist it
//! (notifications included, in the same transaction), writes them, and only then publishes the
//! next state. A failed write leaves memory untouched.
//!
//! One module per part of the domain: [`instances`] (provisioning, readiness, stop and
//! termination), [`registrations`] (applications registering themselves), [`credentials`]
//! (the instances' own OAuth 2.0 clients), [`registry`]
//! (services), [`subscriptions`] (and their notifications), [`rules`] (traffic and DNS rules,
//! the DNS table).

mod credentials;
mod instances;
mod policy;
mod registrations;
mod registry;
mod rules;
mod services;
mod subscriptions;

use instances::expire_pending;
use registry::suspend_silent;

pub use credentials::APP_CLIENT_SCOPES;
pub use instances::{AppInstanceRecord, Desired, InstanceReport, Progress};
pub use policy::{AppRulesConfig, TrafficUpdates};
pub use registry::ServiceQuery;
pub use rules::{DnsAnswer, DnsTable, normalize_domain};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use api_specs::common::TransportInfo;
use api_specs::mm1::appd::ServiceDescriptor;
use api_specs::mp1::app_support::{
    AppInfo, AppTerminationNotificationSubscription, DnsRule, OperationActionType, TrafficRule,
};
pub use api_specs::mp1::provisioning::AppInstanceConfig;
use api_specs::mp1::provisioning::{AppClient, AppRulePolicy};
use api_specs::mp1::service_mgmt::{SerAvailabilityNotificationSubscription, ServiceInfo};
use serde::{Deserialize, Serialize};
use server_kit::auth::RegisteredClients;
use server_kit::telemetry::TraceContext;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::store::{Change, Store, StoreError, parse_body};

/// Subscription type of service availability subscriptions.
pub const SER_AVAILABILITY: &str = SerAvailabilityNotificationSubscription::TYPE;
/// Subscription type of application termination subscriptions.
pub const APP_TERMINATION: &str = AppTerminationNotificationSubscription::TYPE;

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
    client: Option<AppClient>,
    policy: AppRulePolicy,
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

type RuleKey = (String, String);

#[derive(Debug, Clone, Default)]
struct State {
    /// Discovery answers of this state, serialized once: discovery is the hot path and its
    /// queries repeat. A copy of the state (the next one) starts with none.
    answers: services::Answers,
    apps: BTreeMap<String, AppInstance>,
    services: services::Services,
    traffic_rules: BTreeMap<RuleKey, Tagged<TrafficRule>>,
    dns_rules: BTreeMap<RuleKey, Tagged<DnsRule>>,
    subscriptions: BTreeMap<String, SubscriptionEntry>,
    desired_versions: BTreeMap<String, u64>,
}

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
    /// Ids of the OAuth 2.0 clients configured at the platform, which no instance's client may
    /// take.
    pub configured_client_ids: Vec<String>,
    /// Whether applications MEC management did not instantiate may register themselves.
    pub allow_self_registration: bool,
    /// Bounds of applications' own rule changes.
    pub app_rules: AppRulesConfig,
    /// Where subscriptions may have the platform send notifications.
    pub destinations: server_kit::outbound::Destinations,
}

/// The MEC platform.
pub struct Platform {
    store: Store,
    settings: PlatformSettings,
    state: RwLock<Arc<State>>,
    writer: tokio::sync::Mutex<()>,
    dns: Arc<DnsTable>,
    clients: Arc<RegisteredClients>,
    wake: Arc<Notify>,
    published: tokio::sync::watch::Sender<u64>,
    published_by: std::sync::Mutex<TraceContext>,
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
    /// Loads the stored state; `wake` is signalled whenever notifications are queued, `clients`
    /// is the token authority's table of the instances' own clients, kept current here.
    pub async fn load(
        store: Store,
        settings: PlatformSettings,
        wake: Arc<Notify>,
        clients: Arc<RegisteredClients>,
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
                    client: match &a.oauth2_client {
                        Some(c) => {
                            Some(parse_body(&format!("client of {}", a.app_instance_id), c)?)
                        }
                        None => None,
                    },
                    policy: match &a.rule_policy {
                        Some(p) => parse_body(&format!("rule policy of {}", a.app_instance_id), p)?,
                        None => AppRulePolicy::default(),
                    },
                    state: AppInstanceState::parse(&a.state),
                    pending,
                },
            );
        }
        for s in snapshot.services {
            let info = parse_body(&format!("service {}", s.ser_instance_id), &s.body)?;
            state.services.insert(
                &s.ser_instance_id,
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
            clients,
            wake,
            published: tokio::sync::watch::channel(0).0,
            published_by: std::sync::Mutex::new(TraceContext::default()),
        };
        platform.publish(Published::ALL);
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
    /// The copy shares the services with the current state (persistent maps), so it costs the
    /// same however many are registered.
    async fn write<R>(
        &self,
        op: impl FnOnce(&mut State, i64) -> Result<(Vec<Change>, R), MepError>,
    ) -> Result<R, MepError> {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
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
        self.publish(Published::of(&changes));
        if notify {
            self.wake.notify_one();
        }
        Ok(result)
    }

    /// Makes a new state effective in what `scope` says changed: the app clients' table, the
    /// DNS table, and what traffic steering and the MEAO link are told. Each is O(instances)
    /// or O(services) to rebuild, so a heartbeat or a subscription rebuilds none of them.
    fn publish(&self, scope: Published) {
        if scope.clients {
            self.rebuild_clients(&self.snapshot());
        }
        if scope.dns {
            self.rebuild_dns();
        }
        if scope.instances {
            if let Ok(mut by) = self.published_by.lock() {
                *by = TraceContext::current();
            }
            self.published.send_modify(|generation| *generation += 1);
        }
    }

    /// Changes whenever a new state is published (see [`Platform::steered_rules`]).
    pub fn published(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// The trace context of the request or MEAO message that published the current state:
    /// traffic steering installs what changed in its trace.
    pub fn published_by(&self) -> TraceContext {
        self.published_by
            .lock()
            .map(|by| by.clone())
            .unwrap_or_default()
    }

    /// Suspends services whose heartbeats stopped (none for two intervals) and completes
    /// pending stops and terminations whose deadline passed.
    pub async fn sweep(&self) -> Result<(), MepError> {
        self.write(move |state, now| {
            let mut changes = suspend_silent(state, now);
            changes.extend(expire_pending(state, now));
            Ok((changes, ()))
        })
        .await
    }
}

/// What a write changed, of what [`Platform::publish`] derives from the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Published {
    /// The app instances' OAuth clients (instances added, changed or removed).
    clients: bool,
    /// What the DNS server answers (instances or DNS rules).
    dns: bool,
    /// What traffic steering installs and the MEAO link reports (instances, their services
    /// and rules).
    instances: bool,
}

impl Published {
    /// Everything: the state as loaded at start-up.
    const ALL: Self = Self {
        clients: true,
        dns: true,
        instances: true,
    };

    /// What `changes` change.
    fn of(changes: &[Change]) -> Self {
        let mut scope = Self::default();
        for change in changes {
            match change {
                Change::UpsertApp(_) | Change::DeleteApp(_) => return Self::ALL,
                Change::UpsertDnsRule(_) | Change::DeleteDnsRule { .. } => {
                    scope.dns = true;
                    scope.instances = true;
                }
                Change::UpsertService(_)
                | Change::DeleteService(_)
                | Change::UpsertTrafficRule(_)
                | Change::DeleteTrafficRule { .. } => scope.instances = true,
                Change::Heartbeat { .. }
                | Change::InsertSubscription(_)
                | Change::DeleteSubscription(_)
                | Change::Enqueue(_)
                | Change::DesiredVersion { .. } => {}
            }
        }
        scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_publishes_only_what_it_changed() {
        let heartbeat = Change::Heartbeat {
            ser_instance_id: "s".into(),
            at: 1,
        };
        let dns = Change::DeleteDnsRule {
            app_instance_id: "a".into(),
            rule_id: "r".into(),
        };
        let service = Change::DeleteService("s".into());
        assert_eq!(
            Published::of(std::slice::from_ref(&heartbeat)),
            Published::default()
        );
        assert_eq!(
            Published::of(&[heartbeat.clone(), service]),
            Published {
                clients: false,
                dns: false,
                instances: true
            }
        );
        assert_eq!(
            Published::of(&[heartbeat.clone(), dns]),
            Published {
                clients: false,
                dns: true,
                instances: true
            }
        );
        assert_eq!(
            Published::of(&[heartbeat, Change::DeleteApp("a".into())]),
            Published::ALL
        );
    }

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
