//! Placement: filter, then score, then explain; pure and deterministic.
//!
//! Filters remove a site for a reason that is recorded (out of service, unhealthy, not enough
//! CPU, memory or GPUs, wrong architecture, a required MEC service missing, too far for the latency bound, an
//! anti-affinity conflict, outside the allowed zones, or outside the requested country, civic
//! address or area of `locationConstraints`). The remaining sites are scored on
//! headroom after placement (prefer balanced utilisation), latency margin, spread of the same
//! application, and affinity; ties go to the smaller site id. The [`PlacementDecision`] keeps the ranked
//! candidates and every rejected site grouped by reason, so an operator sees why.
//!
//! One placement visits every site once and allocates nothing per site: the request is
//! prepared first (`Prepared`: the users' location in the form distances need, the selected
//! hosts as a set); a site's `Rejection` borrows what it names from the request and becomes
//! text once per reason; site ids are shared (`Arc<str>`), not copied. The haversine latency
//! is the costly part, so cheap polynomial bounds of it decide the latency filter first and
//! the exact value is computed only near the bound, or for a candidate whose best possible
//! score could still rank it ([`MAX_RANKED`] kept); the decision is the one the exact
//! latency of every site gives (a test checks it).
//!
//! A new filter is a `Rejection` variant with its explanation and one check in
//! `Prepared::filter`, in the order explanations should take (before the latency check,
//! the costliest).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use api_specs::inventory::great_circle_km;
use serde::{Deserialize, Serialize};
use vim_adapters::Capacity;

pub use api_specs::inventory::{Candidate, GeoPoint, PlacementDecision};
use api_specs::location::{CivicAddressElement, LocationConstraints, Mismatch};

/// Mean Earth radius (km), as [`GeoPoint::distance_km`] takes it.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// What placement knows of a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteView {
    /// Site id (shared with the decision, which names most sites).
    pub id: Arc<str>,
    /// Whether the site is healthy.
    pub healthy: bool,
    /// Whether the operator keeps the site in service.
    pub in_service: bool,
    /// Location.
    pub location: GeoPoint,
    /// Country (ISO 3166-1 alpha-2).
    pub country_code: Option<String>,
    /// Civic address.
    pub civic_address: Vec<CivicAddressElement>,
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
    /// How many instances of each AppD (by id) the site already holds (for spread and
    /// affinity).
    pub app_instances: BTreeMap<String, usize>,
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
    /// Only sites in this country, with this civic address or inside this area.
    pub location: Option<LocationConstraints>,
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

/// Why a site cannot take a request: one variant per filter, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection<'r> {
    NotSelected,
    OutOfService,
    Unhealthy,
    OutsideZones,
    Location(Mismatch),
    NoArchitecture(&'r str),
    NotEnoughCpu,
    NotEnoughMemory,
    NotEnoughGpus,
    MissingService(&'r str),
    AntiAffinity(&'r str),
    LatencyAbove(u32),
}

impl fmt::Display for Rejection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSelected => f.write_str("not a selected MEC host"),
            Self::OutOfService => f.write_str("out of service"),
            Self::Unhealthy => f.write_str("site unhealthy"),
            Self::OutsideZones => f.write_str("outside the allowed zones"),
            Self::Location(Mismatch::Country) => f.write_str("outside the requested country"),
            Self::Location(Mismatch::CivicAddress) => {
                f.write_str("civic address without the requested elements")
            }
            Self::Location(Mismatch::Area) => f.write_str("outside the requested area"),
            Self::NoArchitecture(arch) => write!(f, "no {arch} nodes"),
            Self::NotEnoughCpu => f.write_str("not enough CPU"),
            Self::NotEnoughMemory => f.write_str("not enough memory"),
            Self::NotEnoughGpus => f.write_str("not enough GPUs"),
            Self::MissingService(s) => write!(f, "required service {s} not available"),
            Self::AntiAffinity(app) => write!(f, "anti-affinity with {app}"),
            Self::LatencyAbove(bound) => write!(f, "latency above {bound} ms"),
        }
    }
}

/// The users' location, in the form distances from it need.
struct Users {
    at: GeoPoint,
    latitude: f64,
    cos_latitude: f64,
}

impl Users {
    fn new(at: GeoPoint) -> Self {
        let latitude = at.latitude.to_radians();
        Self {
            at,
            latitude,
            cos_latitude: latitude.cos(),
        }
    }

    /// [`latency_ms`] from the users to `site`, the same value to the last bit.
    fn latency_ms(&self, site: &SiteView) -> f64 {
        let a = site.location.latitude.to_radians();
        let km = great_circle_km(
            a,
            a.cos(),
            self.latitude,
            self.cos_latitude,
            self.at.longitude - site.location.longitude,
        );
        site.access_latency_ms + km * MS_PER_KM
    }

    /// Bounds (floor, ceiling) of [`Self::latency_ms`] from polynomials alone, a little wider
    /// than rounding could make them; `None` for coordinates out of range or an access
    /// latency that is not a number, which get the exact value only.
    ///
    /// The haversine `h = sin²(Δφ/2) + cos φ₁ cos φ₂ sin²(Δλ/2)` of the site is bounded with
    /// `t - t³/6 ≤ sin t ≤ t` (`0 ≤ t ≤ π/2`) and the alternating Taylor series of cos; the
    /// distance `2R asin √h` with `x ≤ asin x ≤ x/√(1-x²)`.
    fn latency_bounds_ms(&self, site: &SiteView) -> Option<(f64, f64)> {
        let GeoPoint {
            latitude,
            longitude,
        } = site.location;
        let in_range = latitude.abs() <= 90.0
            && longitude.abs() <= 180.0
            && self.at.latitude.abs() <= 90.0
            && self.at.longitude.abs() <= 180.0
            && site.access_latency_ms.is_finite();
        if !in_range {
            return None;
        }
        let phi = latitude.to_radians();
        let t_lat = (self.latitude - phi).abs() / 2.0;
        let dlon = (self.at.longitude - longitude).abs().to_radians();
        let t_lon = dlon.min(2.0 * std::f64::consts::PI - dlon) / 2.0;
        let sin_lo = |t: f64| (t - t * t * t / 6.0).max(0.0);
        // cos φ = 1 - φ²/2! + φ⁴/4! - …: cut after a subtracted term it is a floor, after an
        // added one a ceiling
        let p2 = phi * phi;
        let c8 = 1.0 - p2 / 2.0 * (1.0 - p2 / 12.0 * (1.0 - p2 / 30.0 * (1.0 - p2 / 56.0)));
        let cos_lo = (c8 - p2.powi(5) / 3_628_800.0).max(0.0);
        let cos_hi = c8.min(1.0);
        let cos_users = self.cos_latitude.max(0.0);
        let h_lo = sin_lo(t_lat).powi(2) + cos_users * cos_lo * sin_lo(t_lon).powi(2);
        let h_hi = t_lat * t_lat + cos_users * cos_hi * t_lon * t_lon;
        let km_lo = 2.0 * EARTH_RADIUS_KM * h_lo.sqrt();
        // far sites get no ceiling: the inequality loosens towards x = 1
        let km_hi = if h_hi < 0.25 {
            2.0 * EARTH_RADIUS_KM * (h_hi / (1.0 - h_hi)).sqrt()
        } else {
            f64::INFINITY
        };
        let floor = (km_lo * (1.0 - 1e-9) - 1e-9).max(0.0);
        let ceiling = km_hi * (1.0 + 1e-9) + 1e-9;
        Some((
            site.access_latency_ms + floor * MS_PER_KM,
            site.access_latency_ms + ceiling * MS_PER_KM,
        ))
    }
}

/// What the filters learnt of a site's latency to the users.
#[derive(Debug, Clone, Copy)]
enum Latency {
    /// The users have no location.
    Unknown,
    /// Computed.
    Exact(f64),
    /// Not computed yet; at least this much.
    AtLeast(f64),
}

/// A request prepared once for all sites.
struct Prepared<'r> {
    req: &'r PlacementRequest,
    selected: Option<HashSet<&'r str>>,
    users: Option<Users>,
    /// Whether latency bounds may stand in for the exact latency (off only in tests that
    /// check they change nothing).
    bounded: bool,
}

impl<'r> Prepared<'r> {
    fn new(req: &'r PlacementRequest) -> Self {
        Self {
            req,
            selected: (!req.candidate_sites.is_empty())
                .then(|| req.candidate_sites.iter().map(String::as_str).collect()),
            users: req.user_location.map(Users::new),
            bounded: true,
        }
    }

    /// The first filter `site` fails, or what is known of its latency to the users, for
    /// scoring.
    fn filter(&self, site: &SiteView) -> Result<Latency, Rejection<'r>> {
        let req = self.req;
        if self
            .selected
            .as_ref()
            .is_some_and(|s| !s.contains(&*site.id))
        {
            return Err(Rejection::NotSelected);
        }
        if !site.in_service {
            return Err(Rejection::OutOfService);
        }
        if !site.healthy {
            return Err(Rejection::Unhealthy);
        }
        if !req.zones.is_empty() && !req.zones.contains(&site.zone) {
            return Err(Rejection::OutsideZones);
        }
        if let Some(location) = &req.location {
            location
                .admits(
                    site.country_code.as_deref(),
                    &site.civic_address,
                    &site.location,
                )
                .map_err(Rejection::Location)?;
        }
        if let Some(arch) = req
            .architecture
            .as_ref()
            .filter(|arch| !site.free.architectures.contains(arch))
        {
            return Err(Rejection::NoArchitecture(arch));
        }
        if site.free.cpu_millis < req.cpu_millis {
            return Err(Rejection::NotEnoughCpu);
        }
        if site.free.memory_mib < req.memory_mib {
            return Err(Rejection::NotEnoughMemory);
        }
        if site.free.gpus < req.gpus {
            return Err(Rejection::NotEnoughGpus);
        }
        if let Some(missing) = req
            .required_services
            .iter()
            .find(|s| !site.services.contains(s))
        {
            return Err(Rejection::MissingService(missing));
        }
        if let Some(conflict) = req
            .anti_affinity
            .iter()
            .find(|a| site.app_instances.contains_key(*a))
        {
            return Err(Rejection::AntiAffinity(conflict));
        }
        let Some(users) = &self.users else {
            return Ok(Latency::Unknown);
        };
        let bounds = users.latency_bounds_ms(site).filter(|_| self.bounded);
        if let Some(bound) = req.max_latency_ms {
            let bound_ms = f64::from(bound);
            match bounds {
                Some((floor, _)) if floor > bound_ms => return Err(Rejection::LatencyAbove(bound)),
                Some((floor, ceiling)) if ceiling <= bound_ms => {
                    return Ok(Latency::AtLeast(floor));
                }
                _ => {}
            }
            let latency = users.latency_ms(site);
            if latency > bound_ms {
                return Err(Rejection::LatencyAbove(bound));
            }
            return Ok(Latency::Exact(latency));
        }
        Ok(match bounds {
            Some((floor, _)) => Latency::AtLeast(floor),
            None => Latency::Exact(users.latency_ms(site)),
        })
    }

    /// The exact latency of a site the filters passed with `latency`.
    fn exact(&self, site: &SiteView, latency: Latency) -> Option<f64> {
        match (latency, &self.users) {
            (Latency::Exact(l), _) => Some(l),
            (Latency::AtLeast(_), Some(users)) => Some(users.latency_ms(site)),
            (Latency::AtLeast(_) | Latency::Unknown, _) => None,
        }
    }
}

/// A scored candidate.
type Scored<'s> = (f64, Option<f64>, &'s SiteView);

/// Higher scores first, then smaller site ids.
fn better(a: &Scored<'_>, b: &Scored<'_>) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then_with(|| a.2.id.cmp(&b.2.id))
}

/// The best [`MAX_RANKED`] candidates so far, best first.
#[derive(Default)]
struct Ranking<'s> {
    best: Vec<Scored<'s>>,
}

impl<'s> Ranking<'s> {
    /// Whether a candidate whose score is at most `score` could still enter.
    fn admits(&self, score: f64) -> bool {
        self.best.len() < MAX_RANKED
            || self
                .best
                .last()
                .is_some_and(|worst| score.total_cmp(&worst.0).is_ge())
    }

    fn offer(&mut self, candidate: Scored<'s>) {
        let at = self
            .best
            .iter()
            .position(|c| better(&candidate, c).is_lt())
            .unwrap_or(self.best.len());
        if at < MAX_RANKED {
            self.best.insert(at, candidate);
            self.best.truncate(MAX_RANKED);
        }
    }
}

fn score(req: &PlacementRequest, site: &SiteView, latency: Option<f64>) -> f64 {
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
    if let (Some(l), Some(bound)) = (latency, req.max_latency_ms) {
        score += 30.0 * (1.0 - l / f64::from(bound.max(1))).max(0.0);
    } else if let Some(l) = latency {
        score += 30.0 / (1.0 + l / 10.0);
    }
    let same = site.app_instances.get(&req.app_d_id).copied().unwrap_or(0) as f64;
    score += 15.0 / (1.0 + same);
    if req
        .affinity
        .iter()
        .any(|a| site.app_instances.contains_key(a))
    {
        score += 20.0;
    }
    score
}

/// Places `req` on the best of `sites`.
pub fn place(req: &PlacementRequest, sites: &[SiteView]) -> PlacementDecision {
    decide(&Prepared::new(req), sites)
}

/// Filters, scores and explains: a candidate's exact latency is computed only when the score
/// its latency floor allows could still rank it.
fn decide(prepared: &Prepared<'_>, sites: &[SiteView]) -> PlacementDecision {
    let req = prepared.req;
    // (reason, sites) in the order reasons first occur; a handful of distinct reasons
    let mut rejected: Vec<(Rejection<'_>, Vec<Arc<str>>)> = Vec::new();
    let mut ranking = Ranking::default();
    for site in sites {
        match prepared.filter(site) {
            Ok(Latency::AtLeast(floor)) => {
                if ranking.admits(score(req, site, Some(floor))) {
                    let latency = prepared.exact(site, Latency::AtLeast(floor));
                    ranking.offer((score(req, site, latency), latency, site));
                }
            }
            Ok(known) => {
                let latency = prepared.exact(site, known);
                ranking.offer((score(req, site, latency), latency, site));
            }
            Err(reason) => {
                let id = site.id.clone();
                match rejected.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, ids)) => ids.push(id),
                    None => rejected.push((reason, vec![id])),
                }
            }
        }
    }
    let ranked: Vec<Candidate> = ranking
        .best
        .into_iter()
        .map(|(score, latency_ms, site)| Candidate {
            site_id: site.id.clone(),
            score,
            latency_ms,
        })
        .collect();
    let mut decision = PlacementDecision {
        chosen: ranked.first().map(|c| c.site_id.clone()),
        ranked,
        rejected: BTreeMap::new(),
        not_applied: Vec::new(),
    };
    for (reason, ids) in rejected {
        decision
            .rejected
            .entry(reason.to_string())
            .or_default()
            .extend(ids);
    }
    decision
}

#[cfg(test)]
mod tests {
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
            in_service: true,
            location: GeoPoint {
                latitude: lat,
                longitude: 0.0,
            },
            country_code: Some("FR".into()),
            civic_address: vec![],
            zone: "z1".into(),
            access_latency_ms: 2.0,
            total: Capacity {
                cpu_millis: 8000,
                ..cap.clone()
            },
            free: cap,
            services: vec!["RNIS".into()],
            app_instances: BTreeMap::new(),
        }
    }

    fn ids<'d>(d: &'d PlacementDecision, reason: &str) -> Vec<&'d str> {
        d.rejected[reason].iter().map(|id| &**id).collect()
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
        let mut resting = site("resting", 0.1, 8000);
        resting.in_service = false;
        let small = site("small", 0.0, 1000);
        let mut no_rnis = site("no-rnis", 0.0, 8000);
        no_rnis.services.clear();
        let mut busy = site("busy", 0.0, 8000);
        busy.app_instances.insert("competitor".into(), 1);
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
        let d = place(&r, &[sick, resting, small, no_rnis, busy, far, ok]);
        assert_eq!(d.chosen.as_deref(), Some("ok"));
        assert_eq!(ids(&d, "site unhealthy"), ["sick"]);
        assert_eq!(ids(&d, "out of service"), ["resting"]);
        assert_eq!(ids(&d, "not enough CPU"), ["small"]);
        assert_eq!(ids(&d, "required service RNIS not available"), ["no-rnis"]);
        assert_eq!(ids(&d, "anti-affinity with competitor"), ["busy"]);
        assert_eq!(ids(&d, "latency above 10 ms"), ["far"]);

        let mut arm = site("arm", 0.0, 8000);
        arm.free.architectures = vec!["aarch64".into()];
        let mut east = site("east", 0.0, 8000);
        east.zone = "z2".into();
        let mut low_mem = site("low-mem", 0.0, 8000);
        low_mem.free.memory_mib = 1024;
        let r = PlacementRequest {
            architecture: Some("x86_64".into()),
            zones: vec!["z1".into()],
            gpus: 1,
            candidate_sites: vec!["arm".into(), "east".into(), "low-mem".into(), "ok".into()],
            ..req()
        };
        let d = place(
            &r,
            &[
                arm,
                east,
                low_mem,
                site("ok", 0.0, 8000),
                site("other", 0.0, 8000),
            ],
        );
        assert_eq!(d.chosen, None);
        assert_eq!(ids(&d, "not a selected MEC host"), ["other"]);
        assert_eq!(ids(&d, "outside the allowed zones"), ["east"]);
        assert_eq!(ids(&d, "no x86_64 nodes"), ["arm"]);
        assert_eq!(ids(&d, "not enough memory"), ["low-mem"]);
        assert_eq!(ids(&d, "not enough GPUs"), ["ok"]);
        assert_eq!(d.rejected.len(), 5, "{:?}", d.rejected);
    }

    #[test]
    fn a_site_just_inside_the_latency_bound_is_kept_and_one_just_outside_is_not() {
        // 2 ms at the site and 10 ms of fibre: 800 km along the meridian
        let user = GeoPoint {
            latitude: 10.0,
            longitude: 5.0,
        };
        let per_degree = 2.0 * std::f64::consts::PI * EARTH_RADIUS_KM / 360.0;
        let at = |id: &str, km: f64| {
            let mut s = site(id, 10.0 + km / per_degree, 8000);
            s.location.longitude = 5.0;
            s
        };
        let r = PlacementRequest {
            max_latency_ms: Some(10),
            user_location: Some(user),
            ..req()
        };
        let inside = at("inside", 799.999);
        let outside = at("outside", 800.001);
        assert!(latency_ms(&inside, &user) <= 10.0 && latency_ms(&outside, &user) > 10.0);
        let d = place(&r, &[inside, outside]);
        assert_eq!(d.chosen.as_deref(), Some("inside"));
        assert_eq!(ids(&d, "latency above 10 ms"), ["outside"]);
        let latency = d.ranked[0].latency_ms.unwrap();
        assert_eq!(latency, latency_ms(&at("inside", 799.999), &user));
    }

    /// xorshift numbers in [0, 1).
    fn numbers(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 1_000_000) as f64 / 1_000_000.0
        }
    }

    #[test]
    fn latency_bounds_hold_the_exact_latency() {
        let mut next = numbers(0x9E37_79B9_7F4A_7C15);
        let (mut tight, mut eligible, mut ceilings) = (0usize, 0usize, 0usize);
        for i in 0..200_000 {
            // every second pair within a few hundred km, where the bounds matter
            let near = i % 2 == 0;
            let users = Users::new(GeoPoint {
                latitude: next() * 180.0 - 90.0,
                longitude: next() * 360.0 - 180.0,
            });
            let spread = if near { 6.0 } else { 360.0 };
            let mut s = site("s", 0.0, 8000);
            s.location = GeoPoint {
                latitude: (users.at.latitude + (next() - 0.5) * spread / 2.0).clamp(-90.0, 90.0),
                longitude: (users.at.longitude + (next() - 0.5) * spread).clamp(-180.0, 180.0),
            };
            s.access_latency_ms = next() * 5.0;
            let exact = users.latency_ms(&s);
            assert_eq!(
                exact,
                latency_ms(&s, &users.at),
                "the same value as latency_ms"
            );
            let (floor, ceiling) = users.latency_bounds_ms(&s).unwrap();
            assert!(
                floor <= exact && exact <= ceiling,
                "{s:?} from {:?}",
                users.at
            );
            ceilings += usize::from(ceiling.is_finite());
            // within a few hundred km the bounds are within 0.5 % of the fibre latency
            if near && s.location.latitude.abs() <= 70.0 && users.at.latitude.abs() <= 70.0 {
                let fibre = exact - s.access_latency_ms;
                eligible += 1;
                tight += usize::from(ceiling - floor <= 0.005 * fibre + 1e-6);
            }
        }
        assert!(ceilings > 100_000, "{ceilings} ceilings");
        assert!(eligible > 50_000);
        assert_eq!(tight, eligible, "tight bounds near the users");
        let mut off = site("off", 95.0, 8000);
        assert!(Users::new(off.location).latency_bounds_ms(&off).is_none());
        off.location.latitude = 0.0;
        off.access_latency_ms = f64::NAN;
        assert!(Users::new(off.location).latency_bounds_ms(&off).is_none());
    }

    #[test]
    fn bounds_change_no_decision() {
        let mut next = numbers(0x2545_F491_4F6C_DD1D);
        for round in 0..200 {
            let fleet: Vec<SiteView> = (0..300)
                .map(|i| {
                    let mut s = site(&format!("s{i:03}"), 40.0 + next() * 20.0, 0);
                    s.location.longitude = -5.0 + next() * 30.0;
                    s.access_latency_ms = 1.0 + next() * 4.0;
                    s.free.cpu_millis = (next() * 8000.0) as u64;
                    if i % 3 > 0 {
                        s.app_instances.insert("va".into(), i % 3);
                    }
                    s
                })
                .collect();
            let r = PlacementRequest {
                user_location: Some(GeoPoint {
                    latitude: 40.0 + next() * 20.0,
                    longitude: -5.0 + next() * 30.0,
                }),
                max_latency_ms: (round % 3 != 0).then(|| 3 + (next() * 12.0) as u32),
                ..req()
            };
            let exact = Prepared {
                bounded: false,
                ..Prepared::new(&r)
            };
            assert_eq!(place(&r, &fleet), decide(&exact, &fleet), "round {round}");
        }
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
        crowded.app_instances.insert("va".into(), 2);
        assert_eq!(
            place(&req(), &[crowded.clone(), site("empty", 0.0, 8000)])
                .chosen
                .as_deref(),
            Some("empty")
        );
        let mut friend = site("friend", 0.0, 8000);
        friend.app_instances.insert("db".into(), 1);
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
