//! Placement: filter, then score, over every site; pure and deterministic.
//!
//! Filters remove a site for a reason that is recorded (unhealthy, not enough CPU, memory or
//! GPUs, wrong architecture, a required MEC service missing, too far for the latency bound, an
//! anti-affinity conflict, outside the allowed zones). The remaining sites are scored on
//! headroom after placement (prefer balanced utilisation), latency margin, spread of the same
//! application, and affinity; ties go to the smaller site id. The [`PlacementDecision`] keeps
//! the ranked candidates and every rejected site grouped by reason, so an operator sees why.

use serde::{Deserialize, Serialize};
use vim_adapters::Capacity;

pub use api_specs::inventory::{Candidate, GeoPoint, PlacementDecision};

/// What placement knows of a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteView {
    /// Site id.
    pub id: String,
    /// Whether the site is healthy.
    pub healthy: bool,
    /// Location.
    pub location: GeoPoint,
    /// Zone.
    pub zone: String,
    /// Round-trip latency from a user at the site to its MEC host (ms).
    pub access_latency_ms: f64,
    /// Free resources.
    pub free: Capacity,
    /// Total resources (for utilisation).
    pub total: Capacity,
    /// MEC services available at the site (by name).
    pub services: Vec<String>,
    /// AppD ids of the instances already on the site (for spread and affinity).
    pub app_d_ids: Vec<String>,
}

/// What an instance needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementRequest {
    /// The application (for spread).
    #[serde(rename = "appDId")]
    pub app_d_id: String,
    /// CPU (millicores).
    pub cpu_millis: u64,
    /// Memory (MiB).
    pub memory_mib: u64,
    /// GPUs.
    pub gpus: u32,
    /// CPU architecture.
    pub architecture: Option<String>,
    /// MEC services that must be available.
    pub required_services: Vec<String>,
    /// Latency bound (ms) from `user_location`.
    pub max_latency_ms: Option<u32>,
    /// Where the users are.
    pub user_location: Option<GeoPoint>,
    /// Only these zones, when not empty.
    pub zones: Vec<String>,
    /// Prefer sites running these applications.
    pub affinity: Vec<String>,
    /// Never share a site with these applications.
    pub anti_affinity: Vec<String>,
    /// Only these sites, when not empty (e.g. `selectedMECHostInfo`).
    pub candidate_sites: Vec<String>,
}

/// How many ranked candidates a decision keeps.
pub const MAX_RANKED: usize = 5;
/// Latency added per kilometre between users and a site (ms, round trip over fibre).
const MS_PER_KM: f64 = 0.01;

/// Estimated round-trip latency from `user` to `site`.
pub fn latency_ms(site: &SiteView, user: &GeoPoint) -> f64 {
    site.access_latency_ms + site.location.distance_km(user) * MS_PER_KM
}

/// Why `site` cannot take the request, if it cannot.
fn reject(req: &PlacementRequest, site: &SiteView) -> Option<String> {
    if !req.candidate_sites.is_empty() && !req.candidate_sites.contains(&site.id) {
        return Some("not a selected MEC host".into());
    }
    if !site.healthy {
        return Some("site unhealthy".into());
    }
    if !req.zones.is_empty() && !req.zones.contains(&site.zone) {
        return Some("outside the allowed zones".into());
    }
    if let Some(arch) = req
        .architecture
        .as_ref()
        .filter(|arch| !site.free.architectures.contains(arch))
    {
        return Some(format!("no {arch} nodes"));
    }
    if site.free.cpu_millis < req.cpu_millis {
        return Some("not enough CPU".into());
    }
    if site.free.memory_mib < req.memory_mib {
        return Some("not enough memory".into());
    }
    if site.free.gpus < req.gpus {
        return Some("not enough GPUs".into());
    }
    if let Some(missing) = req
        .required_services
        .iter()
        .find(|s| !site.services.contains(s))
    {
        return Some(format!("required service {missing} not available"));
    }
    if let Some(conflict) = req
        .anti_affinity
        .iter()
        .find(|a| site.app_d_ids.contains(a))
    {
        return Some(format!("anti-affinity with {conflict}"));
    }
    if let (Some(bound), Some(user)) = (req.max_latency_ms, &req.user_location)
        && latency_ms(site, user) > f64::from(bound)
    {
        return Some(format!("latency above {bound} ms"));
    }
    None
}

fn score(req: &PlacementRequest, site: &SiteView) -> (f64, Option<f64>) {
    let headroom = |free: u64, need: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            (free.saturating_sub(need)) as f64 / total as f64
        }
    };
    let cpu = headroom(site.free.cpu_millis, req.cpu_millis, site.total.cpu_millis);
    let mem = headroom(site.free.memory_mib, req.memory_mib, site.total.memory_mib);
    let mut score = 40.0 * cpu.min(mem) + 10.0 * (cpu + mem) / 2.0;
    let latency = req.user_location.as_ref().map(|u| latency_ms(site, u));
    if let (Some(l), Some(bound)) = (latency, req.max_latency_ms) {
        score += 30.0 * (1.0 - l / f64::from(bound.max(1))).max(0.0);
    } else if let Some(l) = latency {
        score += 30.0 / (1.0 + l / 10.0);
    }
    let same = site
        .app_d_ids
        .iter()
        .filter(|a| **a == req.app_d_id)
        .count() as f64;
    score += 15.0 / (1.0 + same);
    if req.affinity.iter().any(|a| site.app_d_ids.contains(a)) {
        score += 20.0;
    }
    (score, latency)
}

/// Places `req` on the best of `sites`.
pub fn place(req: &PlacementRequest, sites: &[SiteView]) -> PlacementDecision {
    let mut decision = PlacementDecision::default();
    let mut candidates: Vec<Candidate> = Vec::new();
    for site in sites {
        match reject(req, site) {
            Some(reason) => decision
                .rejected
                .entry(reason)
                .or_default()
                .push(site.id.clone()),
            None => {
                let (score, latency_ms) = score(req, site);
                candidates.push(Candidate {
                    site_id: site.id.clone(),
                    score,
                    latency_ms,
                });
            }
        }
    }
    let better = |a: &Candidate, b: &Candidate| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.site_id.cmp(&b.site_id))
    };
    if candidates.len() > MAX_RANKED {
        candidates.select_nth_unstable_by(MAX_RANKED - 1, better);
        candidates.truncate(MAX_RANKED);
    }
    candidates.sort_by(better);
    decision.chosen = candidates.first().map(|c| c.site_id.clone());
    decision.ranked = candidates;
    decision
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn site(id: &str, lat: f64, cpu: u64) -> SiteView {
        let cap = Capacity {
            cpu_millis: cpu,
            memory_mib: 16384,
            gpus: 0,
            architectures: vec!["x86_64".into()],
            labels: BTreeMap::new(),
        };
        SiteView {
            id: id.into(),
            healthy: true,
            location: GeoPoint {
                latitude: lat,
                longitude: 0.0,
            },
            zone: "z1".into(),
            access_latency_ms: 2.0,
            total: Capacity {
                cpu_millis: 8000,
                ..cap.clone()
            },
            free: cap,
            services: vec!["RNIS".into()],
            app_d_ids: vec![],
        }
    }

    fn req() -> PlacementRequest {
        PlacementRequest {
            app_d_id: "va".into(),
            cpu_millis: 2000,
            memory_mib: 2048,
            ..PlacementRequest::default()
        }
    }

    #[test]
    fn filters_record_every_reason() {
        let mut sick = site("sick", 0.0, 8000);
        sick.healthy = false;
        let small = site("small", 0.0, 1000);
        let mut no_rnis = site("no-rnis", 0.0, 8000);
        no_rnis.services.clear();
        let mut busy = site("busy", 0.0, 8000);
        busy.app_d_ids.push("competitor".into());
        let far = site("far", 40.0, 8000);
        let ok = site("ok", 0.1, 8000);
        let r = PlacementRequest {
            required_services: vec!["RNIS".into()],
            anti_affinity: vec!["competitor".into()],
            max_latency_ms: Some(10),
            user_location: Some(GeoPoint {
                latitude: 0.0,
                longitude: 0.0,
            }),
            ..req()
        };
        let d = place(&r, &[sick, small, no_rnis, busy, far, ok]);
        assert_eq!(d.chosen.as_deref(), Some("ok"));
        assert_eq!(d.rejected["site unhealthy"], vec!["sick"]);
        assert_eq!(d.rejected["not enough CPU"], vec!["small"]);
        assert_eq!(
            d.rejected["required service RNIS not available"],
            vec!["no-rnis"]
        );
        assert_eq!(d.rejected["anti-affinity with competitor"], vec!["busy"]);
        assert_eq!(d.rejected["latency above 10 ms"], vec!["far"]);
    }

    #[test]
    fn scores_prefer_headroom_proximity_spread_and_affinity() {
        let d = place(
            &req(),
            &[site("tight", 0.0, 2500), site("roomy", 0.0, 8000)],
        );
        assert_eq!(d.chosen.as_deref(), Some("roomy"));
        let near = PlacementRequest {
            user_location: Some(GeoPoint {
                latitude: 0.0,
                longitude: 0.0,
            }),
            ..req()
        };
        let d = place(&near, &[site("far", 10.0, 8000), site("near", 0.0, 8000)]);
        assert_eq!(d.chosen.as_deref(), Some("near"));
        let mut crowded = site("crowded", 0.0, 8000);
        crowded.app_d_ids = vec!["va".into(), "va".into()];
        assert_eq!(
            place(&req(), &[crowded.clone(), site("empty", 0.0, 8000)])
                .chosen
                .as_deref(),
            Some("empty")
        );
        let mut friend = site("friend", 0.0, 8000);
        friend.app_d_ids = vec!["db".into()];
        let with_db = PlacementRequest {
            affinity: vec!["db".into()],
            ..req()
        };
        assert_eq!(
            place(&with_db, &[site("alone", 0.0, 8000), friend])
                .chosen
                .as_deref(),
            Some("friend")
        );
        assert!(place(&req(), &[site("a", 0.0, 100)]).chosen.is_none());
    }

    #[test]
    fn ties_are_deterministic_and_ranking_is_bounded() {
        let sites: Vec<SiteView> = (0..20)
            .map(|i| site(&format!("s{i:02}"), 0.0, 8000))
            .collect();
        let d = place(&req(), &sites);
        assert_eq!(d.chosen.as_deref(), Some("s00"));
        assert_eq!(d.ranked.len(), MAX_RANKED);
        assert_eq!(place(&req(), &sites), d);
    }
}
