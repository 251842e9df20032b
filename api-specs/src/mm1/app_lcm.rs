//! Data types of the application lifecycle management API (`app_lcm/v1`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ProblemDetails;
use crate::common::{LinkType, TimeStamp};
use crate::mm1::appd::{OsContainerDescriptor, VirtualComputeDescriptor};

/// A MEC platform (`MepInformation`), used to pin an instance to a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MepInformation {
    /// Identifier of the MEC platform (the site id).
    pub mep_id: String,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mep_name: Option<String>,
}

/// Request to create an application instance identifier (`CreateAppInstanceRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAppInstanceRequest {
    /// The AppD of an onboarded, enabled package.
    #[serde(rename = "appDId")]
    #[schema(schema_with = crate::common::id_schema)]
    pub app_d_id: String,
    /// Name of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_name_schema)]
    pub app_instance_name: Option<String>,
    /// Description of the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = optional_description_schema)]
    pub app_instance_description: Option<String>,
    /// Where the instance shall run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_placement_info: Option<MepInformation>,
}

fn optional_description_schema() -> utoipa::openapi::Object {
    crate::common::optional_text_schema(crate::common::MAX_DESCRIPTION)
}

/// A MEC host chosen by the requester (`MECHostInformation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MecHostInformation {
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// Host (site) identifier. The specification types it as a deployment-specific object:
    /// `{"siteId": "…"}` (or `{"id": "…"}`) names the site, and the site id alone is accepted
    /// as a string.
    #[serde(deserialize_with = "host_id")]
    #[schema(schema_with = host_id_schema)]
    pub host_id: String,
}

/// The schema of what [`host_id`] accepts: the site id as a string, or an object with the
/// site id as `siteId` or `id` (both strings when present; other members allowed).
fn host_id_schema() -> utoipa::openapi::Schema {
    let id = serde_json::to_value(crate::common::id_schema()).unwrap_or_default();
    let object = |required: &str| {
        serde_json::json!({
            "type": "object",
            "properties": {"siteId": id, "id": id},
            "required": [required],
        })
    };
    crate::common::schema_of(serde_json::json!({
        "description": "Host (site) identifier: `{\"siteId\": \"…\"}` (or `{\"id\": \"…\"}`), \
            or the site id as a string.",
        "anyOf": [id, object("siteId"), object("id")],
    }))
}

fn host_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Object(serde_json::Map<String, serde_json::Value>),
    }
    let o = match Form::deserialize(d)? {
        Form::Text(id) => return Ok(id),
        Form::Object(o) => o,
    };
    let member = |key: &str| match o.get(key) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(D::Error::custom(format!("hostId.{key} shall be a string"))),
    };
    let (site_id, id) = (member("siteId")?, member("id")?);
    site_id
        .or(id)
        .cloned()
        .ok_or_else(|| D::Error::custom("hostId: an object naming the site in siteId (or id)"))
}

pub use crate::location::LocationConstraints;

/// Request to instantiate (`InstantiateAppRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstantiateAppRequest {
    /// Candidate MEC hosts; placement chooses among them. ETSI MEC 010-2 requires at least one;
    /// as a mecplane extension it may be absent or empty, and the placement engine then chooses
    /// among all sites (the operation occurrence's `placement` says which and why).
    #[serde(
        rename = "selectedMECHostInfo",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub selected_mec_host_info: Vec<MecHostInformation>,
    /// Where the users are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::location::optional_location_constraints_schema)]
    pub location_constraints: Option<LocationConstraints>,
    /// Prefer sites running these applications (AppD ids; mecplane extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affinity: Vec<String>,
    /// Never share a site with these applications (AppD ids; mecplane extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anti_affinity: Vec<String>,
    /// Replaces the AppD's compute descriptor for this instance (placement and workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_compute_descriptor: Option<VirtualComputeDescriptor>,
    /// Replaces the AppD's container descriptors for this instance (placement and workload).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os_container_descriptor: Vec<OsContainerDescriptor>,
    /// Storage for the instance (`VirtualStorageDescriptor`); accepted, not applied: storage
    /// comes from the site's VIM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub virtual_storage_descriptor: Vec<serde_json::Value>,
    /// VIM connections (`VimConnectionInfoMap`); accepted, not applied: the MEAO reaches each
    /// site's VIM as its inventory says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub vim_connection_info: Vec<serde_json::Value>,
    /// Coordinates of application terminals (`AppTermCandsForCoord`); accepted, not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub app_term_cands_for_coord: Option<serde_json::Value>,
}

impl InstantiateAppRequest {
    /// The attributes given that this MEAO accepts but does not apply, each with why.
    pub fn not_applied(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.virtual_storage_descriptor.is_empty() {
            out.push("virtualStorageDescriptor: storage comes from the site's VIM".to_owned());
        }
        if !self.vim_connection_info.is_empty() {
            out.push("vimConnectionInfo: sites' VIMs are reached as the inventory says".to_owned());
        }
        if self.app_term_cands_for_coord.is_some() {
            out.push("appTermCandsForCoord: no terminal coordination on this MEAO".to_owned());
        }
        out
    }
}

/// Forceful or graceful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TerminationType {
    /// At once.
    Forceful,
    /// After the application is taken out of service.
    Graceful,
}

/// Request to terminate (`TerminateAppRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TerminateAppRequest {
    /// Forceful or graceful.
    pub termination_type: TerminationType,
    /// Seconds to wait in graceful termination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub graceful_termination_timeout: Option<u32>,
}

/// Operational state of an instantiated application (documented as
/// `AppInstanceOperationalState`, apart from the package's `OperationalState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = AppInstanceOperationalState)]
pub enum OperationalState {
    /// Running.
    Started,
    /// Stopped.
    Stopped,
}

/// Request to start or stop (`OperateAppRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperateAppRequest {
    /// The desired state.
    pub change_state_to: OperationalState,
    /// Forceful or graceful stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_type: Option<TerminationType>,
    /// Seconds to wait in a graceful stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>, maximum = 4294967295.0)]
    pub graceful_stop_timeout: Option<u32>,
}

/// Instantiation state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstantiationState {
    /// Not instantiated.
    NotInstantiated,
    /// Instantiated.
    Instantiated,
}

/// The state of an instantiated application (`InstantiatedAppState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstantiatedAppState {
    /// Started or stopped.
    pub operational_state: OperationalState,
}

/// Links of an application instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppInstanceLinks {
    /// This instance.
    #[serde(rename = "self")]
    pub self_: LinkType,
    /// Instantiate task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instantiate: Option<LinkType>,
    /// Terminate task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<LinkType>,
    /// Operate task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operate: Option<LinkType>,
}

/// An application instance (`AppInstanceInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInstanceInfo {
    /// Identifier.
    pub id: String,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_description: Option<String>,
    /// AppD id.
    #[serde(rename = "appDId")]
    pub app_d_id: String,
    /// Provider.
    pub app_provider: String,
    /// Application name.
    pub app_name: String,
    /// Software version.
    pub app_soft_version: String,
    /// AppD version.
    #[serde(rename = "appDVersion")]
    pub app_d_version: String,
    /// Package id.
    pub app_pkg_id: String,
    /// Instantiation state.
    pub instantiation_state: InstantiationState,
    /// Present when INSTANTIATED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instantiated_app_state: Option<InstantiatedAppState>,
    /// Links.
    #[serde(rename = "_links")]
    pub links: AppInstanceLinks,
}

/// State of an LCM operation occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LcmOperationState {
    /// Accepted, not yet executing.
    Starting,
    /// Executing.
    Processing,
    /// Done.
    Completed,
    /// Failed and final.
    Failed,
    /// Failed; retry or fail.
    FailedTemp,
}

/// Kind of LCM operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LcmOperation {
    /// Instantiate.
    Instantiate,
    /// Start or stop.
    Operate,
    /// Terminate.
    Terminate,
    /// `configure_platform_for_app` (the v3.1.1 enum lists only the three above; mecplane
    /// reports this task as its own operation).
    ConfigurePlatformForApp,
    /// Rotation of the instance's Mp1 credential (a mecplane operation, not in ETSI's enum).
    RotateCredentials,
}

/// Links of an operation occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppLcmOpOccLinks {
    /// This occurrence.
    #[serde(rename = "self")]
    pub self_: LinkType,
    /// The instance.
    pub app_instance: LinkType,
}

/// An LCM operation occurrence (`AppLcmOpOcc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppLcmOpOcc {
    /// Identifier.
    pub id: String,
    /// State.
    pub operation_state: LcmOperationState,
    /// When the state was entered.
    pub state_entered_time: TimeStamp,
    /// When the operation started.
    pub start_time: TimeStamp,
    /// Kind of operation.
    pub lcm_operation: LcmOperation,
    /// The request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub operation_params: Option<serde_json::Value>,
    /// Why the operation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProblemDetails>,
    /// The placement decision (instantiation): chosen site, ranked candidates, rejected sites by
    /// reason (mecplane extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub placement: Option<serde_json::Value>,
    /// The operation's steps in order, each with how far it got and its error (mecplane
    /// extension; in the answer for one occurrence, not in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<OpOccStep>>,
    /// Links.
    #[serde(rename = "_links")]
    pub links: AppLcmOpOccLinks,
}

/// How far a step of an operation got (mecplane extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OpOccStepState {
    /// Not run (yet).
    NotStarted,
    /// Running now.
    Processing,
    /// Done.
    Completed,
    /// Failed: the operation waits (FAILED_TEMP) or gave up (FAILED) here.
    Failed,
    /// Being undone.
    RollingBack,
    /// Undone.
    RolledBack,
}

/// One step of an operation (mecplane extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpOccStep {
    /// The step's name, e.g. `place`, `apply`, `await-ready`.
    pub name: String,
    /// How far it got.
    pub state: OpOccStepState,
    /// Why it (or its undo) failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Kinds of LCM subscription (`AppInstanceSubscriptionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AppInstanceSubscriptionType {
    /// Instance state changes (`AppInstNotification`).
    AppInstanceStateChangeSubscription,
    /// Operation occurrence state changes (`AppLcmOpOccNotification`).
    AppLcmOpOccStateChangeSubscription,
    /// Instance identifier creation.
    AppIdentifierCreationSubscription,
    /// Instance identifier deletion.
    AppIdentifierDeletionSubscription,
}

/// The state reported in instance notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppInstanceState {
    /// Not instantiated.
    NotInstantiated,
    /// Instantiated and started.
    Started,
    /// Instantiated and stopped.
    Stopped,
}

/// Which instances a subscription covers (`AppInstanceSubscriptionFilter`):
/// `appInstSelectorType` 0 = all, 1 = by instance id, 2 = by instance name, 3 = by AppD id,
/// 4 = by provider, matched against `appInstances`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppInstanceSubscriptionFilter {
    /// Selector type.
    #[serde(default)]
    #[schema(maximum = 4)]
    pub app_inst_selector_type: u8,
    /// Values the selector matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(schema_with = crate::common::id_list_schema)]
    pub app_instances: Vec<String>,
}

impl AppInstanceSubscriptionFilter {
    /// Checks the selector type and, as [`crate::common::check_text`] does, its values.
    pub fn validate(&self) -> Result<(), String> {
        if self.app_inst_selector_type > 4 {
            return Err("appInstSelectorType shall be 0 to 4".into());
        }
        crate::common::check_text_list(
            "appInstances",
            Some(&self.app_instances),
            crate::common::MAX_ID,
        )
    }
}

/// Which operation occurrences a subscription covers (`AppLcmOpOccSubscriptionFilter`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppLcmOpOccSubscriptionFilter {
    /// Instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_subscription_filter: Option<AppInstanceSubscriptionFilter>,
    /// Operation types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operation_types: Vec<LcmOperation>,
    /// Operation states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operation_states: Vec<LcmOperationState>,
}

/// A subscription request of any of the four kinds (`AppInstSubscriptionRequest`,
/// `AppLcmOpOccSubscriptionRequest`, `AppInstIdCreationSubscriptionRequest`,
/// `AppInstIdDeletionSubscriptionRequest`); each kind uses the attributes it defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppInstSubscriptionRequest {
    /// Kind of subscription.
    pub subscription_type: AppInstanceSubscriptionType,
    /// Where notifications are POSTed.
    #[schema(schema_with = crate::common::callback_uri_schema)]
    pub callback_uri: String,
    /// Only this instance state (state change subscriptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_state: Option<AppInstanceState>,
    /// Instances covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_subscription_filter: Option<AppInstanceSubscriptionFilter>,
    /// Occurrences covered (operation occurrence subscriptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_lcm_op_occ_subscription_filter: Option<AppLcmOpOccSubscriptionFilter>,
}

/// A subscription (`AppInstSubscriptionInfo` and its three siblings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInstSubscriptionInfo {
    /// Identifier.
    pub id: String,
    /// The request's attributes.
    #[serde(flatten)]
    pub request: AppInstSubscriptionRequest,
    /// Links.
    #[serde(rename = "_links")]
    pub links: crate::mm1::app_pkgm::SelfOnlyLinks,
}

/// One entry of the LCM subscription list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppInstanceSubscriptionLink {
    /// URI of the subscription.
    pub href: String,
    /// Kind.
    pub subscription_type: AppInstanceSubscriptionType,
}

/// Links of the LCM subscription list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppInstanceSubscriptionLinkListLinks {
    /// This list.
    #[serde(rename = "self")]
    pub self_: LinkType,
    /// The subscriptions.
    pub subscriptions: Vec<AppInstanceSubscriptionLink>,
}

/// The LCM subscriptions (`AppInstanceSubscriptionLinkList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppInstanceSubscriptionLinkList {
    /// Links.
    #[serde(rename = "_links")]
    pub links: AppInstanceSubscriptionLinkListLinks,
}

/// Links of LCM notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LcmNotificationLinks {
    /// The subscription.
    pub subscription: LinkType,
    /// The instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance: Option<LinkType>,
    /// The occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_lcm_op_occ: Option<LinkType>,
}

/// An LCM notification: `AppInstNotification`, `AppLcmOpOccNotification`,
/// `AppInstanceIdentifierCreationNotification` or `AppInstanceIdentifierDeletionNotification`,
/// told apart by `notificationType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LcmNotification {
    /// Identifier.
    pub id: String,
    /// The subscription type it answers.
    pub notification_type: AppInstanceSubscriptionType,
    /// The subscription.
    pub subscription_id: String,
    /// When.
    pub time_stamp: TimeStamp,
    /// The instance.
    pub app_instance_id: String,
    /// Instance state (instance state changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_instance_state: Option<AppInstanceState>,
    /// Package (instance state changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_pkg_id: Option<String>,
    /// AppD (instance state changes).
    #[serde(rename = "appDId", default, skip_serializing_if = "Option::is_none")]
    pub app_d_id: Option<String>,
    /// Occurrence (occurrence changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_lcm_op_occ_id: Option<String>,
    /// Operation type (occurrence changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_type: Option<LcmOperation>,
    /// Operation state (occurrence changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<LcmOperationState>,
    /// Links.
    #[serde(rename = "_links")]
    pub links: LcmNotificationLinks,
}

/// How to cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelModeType {
    /// Let resource operations under way finish.
    Graceful,
    /// Stop at once.
    Forceful,
}

/// Body of a cancel request (`CancelMode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelMode {
    /// The mode.
    #[serde(alias = "CancelMode")]
    pub cancel_mode: CancelModeType,
}
