//! Data types of the site inventory API (`inventory/v1`), a mecplane API beside Mm1: the edge
//! sites (MEC hosts) with their health and free capacity, placement decisions, and each site's
//! MEP as the MEAO-MEP link sees it.
//!
//! How the MEAO reaches a site's VIM is the MEAO's business (the kinds of VIM differ per
//! deployment), so a site is generic over its VIM connection: the MEAO reads and writes its own
//! typed connection, a client may read it as plain JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::meplink::InstanceStatus;

/// Where a site or a user is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeoPoint {
    /// Latitude (degrees).
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub latitude: f64,
    /// Longitude (degrees).
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub longitude: f64,
}

impl GeoPoint {
    /// Great-circle distance in kilometres.
    pub fn distance_km(&self, other: &GeoPoint) -> f64 {
        let (a, b) = (self.latitude.to_radians(), other.latitude.to_radians());
        great_circle_km(a, a.cos(), b, b.cos(), other.longitude - self.longitude)
    }
}

/// The haversine distance (km, on a sphere of 6,371 km) between latitudes `a` and `b`
/// (radians, given with their cosines, so a caller measuring from one point to many computes
/// its cosine once) that are `dlon` degrees of longitude apart.
pub fn great_circle_km(a: f64, cos_a: f64, b: f64, cos_b: f64, dlon: f64) -> f64 {
    let dlat = b - a;
    let dlon = dlon.to_radians();
    let h = (dlat / 2.0).sin().powi(2) + cos_a * cos_b * (dlon / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// Free resources of a site, as its VIM reports them (allocatable minus requested).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// Free CPU (millicores).
    pub cpu_millis: u64,
    /// Free memory (MiB).
    pub memory_mib: u64,
    /// Free GPUs.
    pub gpus: u32,
    /// CPU architectures of the site's nodes (e.g. `x86_64`, `aarch64`).
    pub architectures: Vec<String>,
    /// Labels of the site (from its nodes or configuration).
    pub labels: BTreeMap<String, String>,
}

/// A site as the operator describes it (`vim`: how the MEAO reaches the site's VIM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SiteSpec<V> {
    /// Site id (the MEC host id).
    pub id: String,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// Location of the site.
    pub location: GeoPoint,
    /// ISO 3166-1 alpha-2 code of the site's country (for `locationConstraints.countryCode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country_code: Option<String>,
    /// The site's civic address (for `locationConstraints.civicAddressElement`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 32)]
    pub civic_address: Vec<crate::location::CivicAddressElement>,
    /// Zone.
    pub zone: String,
    /// Tracking areas served.
    #[serde(default)]
    pub tracking_areas: Vec<String>,
    /// Round-trip latency from a user at the site to its MEC host (ms).
    #[serde(default = "default_access_latency")]
    pub access_latency_ms: f64,
    /// MEC services the site's MEP offers.
    #[serde(default)]
    pub services: Vec<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// URL of the site's MEP; its rules are not configured when absent.
    #[serde(default)]
    pub mep_url: Option<String>,
    /// The registry the site's nodes pull from (`host[:port][/prefix]`): images shipped in
    /// packages are pushed there before their workloads are applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 253,
        pattern = "^(localhost(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?|[A-Za-z0-9-]*\\.[A-Za-z0-9.-]*(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?|[A-Za-z0-9.-]+:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$"
    )]
    pub image_registry: Option<String>,
    /// Whether placement may choose the site (the default). Out of service (`false`), e.g.
    /// for maintenance, nothing new is placed there; what runs there stays.
    #[serde(default = "in_service")]
    pub in_service: bool,
    /// VIM connection.
    pub vim: V,
}

fn default_access_latency() -> f64 {
    2.0
}

fn in_service() -> bool {
    true
}

/// A site with what the MEAO observed of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteInfo<V> {
    /// The description.
    #[serde(flatten)]
    #[schema(schema_with = site_spec_ref)]
    pub spec: SiteSpec<V>,
    /// Whether its VIM answered at the last refresh.
    pub healthy: bool,
    /// Free resources at the last refresh.
    #[schema(value_type = Option<Object>)]
    pub free_capacity: Option<Capacity>,
    /// Why the last refresh failed.
    pub last_error: Option<String>,
    /// Last refresh (Unix ms).
    pub refreshed_at: i64,
}

/// The schema of a site's description, whatever the VIM connection's type (`SiteSpec`).
fn site_spec_ref() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("SiteSpec")
}

/// Where an onboarded application would be placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementQuery {
    /// The AppD of an onboarded package.
    #[serde(rename = "appDId")]
    pub app_d_id: String,
    /// Where the users are.
    #[serde(default)]
    pub user_location: Option<GeoPoint>,
    /// Where the instance may run, as an instantiation's `locationConstraints` says (its
    /// users' position, when given, stands for `userLocation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::location::optional_location_constraints_schema)]
    pub location_constraints: Option<crate::location::LocationConstraints>,
    /// Only these zones.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Only these sites.
    #[serde(default)]
    pub candidate_sites: Vec<String>,
    /// Prefer sites running these applications (AppD ids).
    #[serde(default)]
    pub affinity: Vec<String>,
    /// Never share a site with these applications (AppD ids).
    #[serde(default)]
    pub anti_affinity: Vec<String>,
}

/// A ranked placement candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Site id.
    #[schema(value_type = String)]
    pub site_id: Arc<str>,
    /// Score, higher is better.
    pub score: f64,
    /// Estimated latency to the users (ms), when a location was given.
    pub latency_ms: Option<f64>,
}

/// The outcome of placement: the answer of `POST /placement` and the `placement` of an
/// instantiation's LCM operation occurrence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDecision {
    /// The chosen site.
    #[schema(value_type = Option<String>)]
    pub chosen: Option<Arc<str>>,
    /// The best candidates, best first.
    pub ranked: Vec<Candidate>,
    /// Rejected sites, grouped by reason (site ids shared with the placement engine's view of
    /// the sites, as a decision names most of them).
    #[schema(value_type = std::collections::BTreeMap<String, Vec<String>>)]
    pub rejected: BTreeMap<String, Vec<Arc<str>>>,
    /// Attributes of the instantiation request accepted but not applied, each with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_applied: Vec<String>,
}

/// A workload left on a site that was deleted by force while it hosted the instance: the
/// reconciliation of a site of that id removes it once the site answers again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteCleanup {
    /// The deleted site.
    pub site_id: String,
    /// The instance the workload belonged to (now NOT_INSTANTIATED).
    pub app_instance_id: String,
    /// The workload's name at the site.
    pub workload_name: String,
    /// When the site was deleted (Unix ms).
    pub recorded_at: i64,
}

/// A site's MEP as the MEP link sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteMep {
    /// Whether the MEP's stream is held by this MEAO replica.
    pub connected: bool,
    /// The application instances the MEAO configures there.
    pub app_instances: Vec<MepAppInstance>,
}

/// One application instance at a site's MEP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MepAppInstance {
    /// The instance.
    pub app_instance_id: String,
    /// Version of its desired configuration.
    pub version: i64,
    /// Whether that configuration is its removal.
    pub removal: bool,
    /// The newest version the MEP acknowledged.
    pub acked_version: i64,
    /// The newest version the MEP refused, with its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    /// The status the MEP last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MepInstanceStatus>,
    /// When it reported it (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_at: Option<i64>,
}

/// A configuration version a MEP refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Refusal {
    /// The version.
    pub version: i64,
    /// The MEP's reason.
    pub error: String,
}

/// The status a MEP last reported for an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MepInstanceStatus {
    /// INSTANTIATED, READY or ABSENT.
    pub readiness: String,
    /// serName of each service the application registered.
    pub services: Vec<String>,
    /// Traffic rules of the instance.
    pub traffic_rules: u32,
    /// Those in effect.
    pub active_traffic_rules: u32,
    /// DNS rules of the instance.
    pub dns_rules: u32,
    /// Those in effect.
    pub active_dns_rules: u32,
    /// INSTALLED or FAILED: <reason> at the site's UPF or UPGW; absent when nothing is steered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steering: Option<String>,
}

impl From<InstanceStatus> for MepInstanceStatus {
    fn from(s: InstanceStatus) -> Self {
        Self {
            readiness: s.readiness,
            services: s.services,
            traffic_rules: s.traffic_rules,
            active_traffic_rules: s.active_traffic_rules,
            dns_rules: s.dns_rules,
            active_dns_rules: s.active_dns_rules,
            steering: (!s.steering.is_empty()).then_some(s.steering),
        }
    }
}
