//! Data types of the application package management API (`app_pkgm/v1`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ProblemDetails;
use crate::common::{LinkType, TimeStamp};

/// A checksum (`Checksum`): algorithm name (e.g. SHA-256) and lower-case hex hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checksum {
    /// Hash algorithm: SHA-224, SHA-256, SHA-384, SHA-512 or SHA3-224 to SHA3-512 (in any
    /// case, the hyphen optional).
    #[schema(pattern = r"^[Ss][Hh][Aa]([-_]?3)?[-_]?(224|256|384|512)$")]
    pub algorithm: String,
    /// Hex-encoded hash (as many digits as the algorithm's digest has).
    #[schema(pattern = r"^[0-9A-Fa-f]{56,128}$")]
    pub hash: String,
}

/// The schema of `appPkgPath`: a URI the MEAO may fetch from ([`crate::common::callback_uri_schema`]),
/// empty, or null.
fn app_pkg_path_schema() -> utoipa::openapi::Object {
    let mut schema = crate::common::callback_uri_schema();
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::schema::Type::String,
        utoipa::openapi::schema::Type::Null,
    ]);
    schema.pattern = Some(format!("^$|{}", crate::common::CALLBACK_URI_PATTERN));
    schema.format = None;
    schema
}

/// The schema of a package's [`Checksum`] as shown: as the request's, but with an empty hash
/// while a package created without a checksum has no content.
fn package_checksum_schema() -> utoipa::openapi::Schema {
    let mut schema =
        serde_json::to_value(<Checksum as utoipa::PartialSchema>::schema()).unwrap_or_default();
    if let Some(hash) = schema.pointer_mut("/properties/hash/pattern") {
        *hash = serde_json::json!(format!("^$|{}", hash.as_str().unwrap_or_default()));
    }
    crate::common::schema_of(schema)
}

/// Request to create a package resource (`CreateAppPkg`).
///
/// `appPkgPath` and `checksum` are required by the OAS for fetch-from-URI onboarding; mecplane
/// also accepts them absent, for packages uploaded later with `PUT .../package_content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAppPkg {
    /// Name of the package.
    #[schema(schema_with = crate::common::name_schema)]
    pub app_pkg_name: String,
    /// Version of the package.
    #[schema(schema_with = crate::common::name_schema)]
    pub app_pkg_version: String,
    /// Provider of the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_provider: Option<String>,
    /// Checksum the content must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// Where the MEAO fetches the package from (empty or absent: the content is uploaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = app_pkg_path_schema)]
    pub app_pkg_path: Option<String>,
    /// Free-form data kept with the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub user_defined_data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Onboarding state of a package. ETSI defines no failed state: a failed onboarding returns the
/// package to CREATED with `onboardingFailureDetails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnboardingState {
    /// Resource created, no content yet.
    Created,
    /// Content being uploaded or fetched.
    Uploading,
    /// Content being validated.
    Processing,
    /// Onboarded.
    Onboarded,
}

/// Operational state of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationalState {
    /// New instances may be created from the package.
    Enabled,
    /// No new instances may be created.
    Disabled,
}

/// Usage state of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UsageState {
    /// Instances exist.
    InUse,
    /// No instances exist.
    NotInUse,
}

/// A software image of a package (`AppPkgSWImageInfo`, shaped like NFV-SOL 005's
/// VnfPackageSoftwareImageInfo since ETSI left it for further study).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPkgSWImageInfo {
    /// The `swImageDescriptor` id in the AppD.
    pub id: String,
    /// Image name.
    pub name: String,
    /// Image provider.
    pub provider: String,
    /// Image version.
    pub version: String,
    /// Checksum of the image.
    pub checksum: Checksum,
    /// Container format, e.g. DOCKER.
    pub container_format: String,
    /// Disk format, e.g. RAW or QCOW2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<String>,
    /// Minimum disk (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_disk: Option<u64>,
    /// Minimum RAM (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ram: Option<u64>,
    /// Size (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Path inside the package (included images) or the image reference (external images).
    pub image_path: String,
}

/// An additional artifact of a package (`AppPkgArtifactInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPkgArtifactInfo {
    /// Path inside the package.
    pub artifact_path: String,
    /// Checksum of the artifact.
    pub checksum: Checksum,
}

/// Links of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPkgInfoLinks {
    /// This package.
    #[serde(rename = "self")]
    pub self_: LinkType,
    /// Its AppD.
    #[serde(rename = "appD")]
    pub app_d: LinkType,
    /// Its content.
    pub app_pkg_content: LinkType,
}

/// An application package (`AppPkgInfo`). Attributes known only once the AppD is read are
/// empty strings until then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPkgInfo {
    /// Package identifier.
    pub id: String,
    /// AppD identifier.
    #[serde(rename = "appDId")]
    pub app_d_id: String,
    /// Provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_provider: Option<String>,
    /// Application name.
    pub app_name: String,
    /// Application software version.
    pub app_software_version: String,
    /// AppD version.
    #[serde(rename = "appDVersion")]
    pub app_d_version: String,
    /// Checksum of the package content: its SHA-256 once onboarded; before, the one given at
    /// creation, or an empty hash.
    #[schema(schema_with = package_checksum_schema)]
    pub checksum: Checksum,
    /// Certificate that signed the package (PEM), if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificate: Option<String>,
    /// Software images.
    pub software_images: Vec<AppPkgSWImageInfo>,
    /// Other artifacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_artifacts: Vec<AppPkgArtifactInfo>,
    /// Onboarding state.
    pub onboarding_state: OnboardingState,
    /// Operational state.
    pub operational_state: OperationalState,
    /// Usage state.
    pub usage_state: UsageState,
    /// MEC versions the AppD is compatible with.
    pub mec_info: Vec<String>,
    /// Free-form data given at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub user_defined_data: Option<serde_json::Map<String, serde_json::Value>>,
    /// Why onboarding failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onboarding_failure_details: Option<ProblemDetails>,
    /// Links.
    #[serde(rename = "_links")]
    pub links: AppPkgInfoLinks,
}

/// Enable or disable a package (`AppPkgInfoModifications`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPkgInfoModifications {
    /// The new operational state.
    pub operational_state: OperationalState,
}

/// Kinds of package subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AppPkgSubscriptionType {
    /// Onboarding of packages.
    AppPackageOnBoardingSubscription,
    /// Enabling and disabling of packages.
    AppPackageChangeSubscription,
    /// Deletion of packages.
    AppPackageDeletionSubscription,
}

/// Which packages a subscription reports on (`AppPkgFilter`); all attributes are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPkgFilter {
    /// Package id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_id_schema)]
    pub app_pkg_info_id: Option<String>,
    /// AppD id.
    #[serde(rename = "appDId", default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_id_schema)]
    pub app_d_id: Option<String>,
    /// Provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_name_schema)]
    pub app_provider: Option<String>,
    /// Application name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_name_schema)]
    pub app_name: Option<String>,
    /// Software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::common::optional_name_schema)]
    pub app_software_version: Option<String>,
    /// AppD version.
    #[serde(
        rename = "appDVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = crate::common::optional_name_schema)]
    pub app_d_version: Option<String>,
    /// Operational state (change subscriptions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operational_state: Option<OperationalState>,
    /// Usage state (change subscriptions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_state: Option<UsageState>,
}

impl AppPkgFilter {
    /// Checks the filter's identifiers and names as [`crate::common::check_text`] does.
    pub fn validate(&self) -> Result<(), String> {
        use crate::common::{MAX_ID, MAX_NAME, check_optional_text};
        check_optional_text("appPkgInfoId", self.app_pkg_info_id.as_deref(), MAX_ID)?;
        check_optional_text("appDId", self.app_d_id.as_deref(), MAX_ID)?;
        check_optional_text("appProvider", self.app_provider.as_deref(), MAX_NAME)?;
        check_optional_text("appName", self.app_name.as_deref(), MAX_NAME)?;
        check_optional_text(
            "appSoftwareVersion",
            self.app_software_version.as_deref(),
            MAX_NAME,
        )?;
        check_optional_text("appDVersion", self.app_d_version.as_deref(), MAX_NAME)
    }
}

/// A package subscription request (`AppPkgSubscription`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPkgSubscription {
    /// Where notifications are POSTed.
    #[schema(schema_with = crate::common::callback_uri_schema)]
    pub callback_uri: String,
    /// Kind of subscription.
    pub subscription_type: AppPkgSubscriptionType,
    /// Which packages; all when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_pkg_filter: Vec<AppPkgFilter>,
}

/// A `_links` object with only `self`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SelfOnlyLinks {
    /// This resource.
    #[serde(rename = "self")]
    pub self_: LinkType,
}

/// A package subscription (`AppPkgSubscriptionInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPkgSubscriptionInfo {
    /// Subscription id.
    pub id: String,
    /// Kind of subscription.
    pub subscription_type: AppPkgSubscriptionType,
    /// Where notifications are POSTed.
    #[schema(schema_with = crate::common::callback_uri_schema)]
    pub callback_uri: String,
    /// Package filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_pkg_filter: Vec<AppPkgFilter>,
    /// Links.
    #[serde(rename = "_links")]
    pub links: SelfOnlyLinks,
}

/// One entry of a package subscription link list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPkgSubscriptionLink {
    /// URI of the subscription.
    pub href: String,
    /// Kind of subscription.
    pub subscription_type: AppPkgSubscriptionType,
}

/// Links of a package subscription list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppPkgSubscriptionLinkListLinks {
    /// This list.
    #[serde(rename = "self")]
    pub self_: LinkType,
    /// The subscriptions.
    pub subscriptions: Vec<AppPkgSubscriptionLink>,
}

/// The package subscriptions (`AppPkgSubscriptionLinkList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppPkgSubscriptionLinkList {
    /// Links.
    #[serde(rename = "_links")]
    pub links: AppPkgSubscriptionLinkListLinks,
}

/// Kinds of package notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AppPkgNotificationType {
    /// A package was onboarded.
    AppPackageOnBoarded,
    /// A package was enabled.
    AppPackageEnabled,
    /// A package was disabled.
    AppPackageDisabled,
    /// A package was deleted.
    AppPackageDeleted,
}

/// Links of a package notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppPkgNotificationLinks {
    /// The subscription.
    pub subscription: LinkType,
}

/// A package notification (`AppPkgNotification`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPkgNotification {
    /// Notification id.
    pub id: String,
    /// Kind of notification.
    pub notification_type: AppPkgNotificationType,
    /// The subscription.
    pub subscription_id: String,
    /// When it happened.
    pub time_stamp: TimeStamp,
    /// The package.
    pub app_pkg_id: String,
    /// Its AppD.
    #[serde(rename = "appDId")]
    pub app_d_id: String,
    /// Its operational state.
    pub operational_state: OperationalState,
    /// Links.
    #[serde(rename = "_links")]
    pub links: AppPkgNotificationLinks,
}
