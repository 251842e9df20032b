//! Placement benchmark: one placement over 10,000 simulated sites, repeated; prints p50, p99
//! and the mean, how many sites each reason rejected, and a digest (FNV-1a) of the decision's
//! JSON, so two builds can be checked to explain the same decision.
//! Run with `cargo run --release -p meao --example placement_bench [sites] [runs]`.

use std::collections::BTreeMap;
use std::time::Instant;

use meao::placement::{GeoPoint, PlacementRequest, SiteView, place};
use vim_adapters::Capacity;

fn main() {
    let mut args = std::env::args().skip(1);
    let sites: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let runs: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000)
        .max(1);
    // a deterministic pseudo-random fleet spread over Europe
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f64 / 10_000.0
    };
    let fleet: Vec<SiteView> = (0..sites)
        .map(|i| {
            let cap = |cpu: u64| Capacity {
                cpu_millis: cpu,
                memory_mib: cpu * 4,
                gpus: if i % 7 == 0 { 2 } else { 0 },
                architectures: vec![if i % 5 == 0 { "aarch64" } else { "x86_64" }.into()],
                labels: BTreeMap::new(),
            };
            SiteView {
                id: format!("site-{i:05}").into(),
                healthy: i % 50 != 0,
                in_service: true,
                location: GeoPoint {
                    latitude: 36.0 + next() * 24.0,
                    longitude: -9.0 + next() * 33.0,
                },
                country_code: Some(if i % 2 == 0 { "FR" } else { "DE" }.into()),
                civic_address: vec![],
                zone: format!("zone-{}", i % 40),
                access_latency_ms: 1.0 + next() * 3.0,
                free: cap((next() * 32_000.0) as u64),
                total: cap(32_000),
                services: if i % 3 == 0 {
                    vec!["RNIS".into(), "LocationService".into()]
                } else {
                    vec!["RNIS".into()]
                },
                app_instances: (0..(i % 4)).map(|k| (format!("app-{k}"), 1)).collect(),
            }
        })
        .collect();
    let request = PlacementRequest {
        app_d_id: "app-1".into(),
        cpu_millis: 4000,
        memory_mib: 8192,
        gpus: 0,
        architecture: Some("x86_64".into()),
        required_services: vec!["RNIS".into()],
        max_latency_ms: Some(12),
        user_location: Some(GeoPoint {
            latitude: 48.85,
            longitude: 2.35,
        }),
        anti_affinity: vec!["app-3".into()],
        ..PlacementRequest::default()
    };
    let mut times = Vec::with_capacity(runs);
    let mut decision = None;
    for _ in 0..runs {
        let start = Instant::now();
        let d = place(&request, &fleet);
        times.push(start.elapsed());
        decision = Some(d);
    }
    let decision = decision.unwrap_or_default();
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let mean = times.iter().sum::<std::time::Duration>() / times.len() as u32;
    println!(
        "placement over {sites} sites, {runs} runs: p50 {:?}, p99 {:?}, mean {mean:?}; chosen {:?}",
        pct(0.50),
        pct(0.99),
        decision.chosen,
    );
    let json = serde_json::to_string(&decision).unwrap_or_default();
    let digest = json.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let reasons: Vec<String> = decision
        .rejected
        .iter()
        .map(|(why, sites)| format!("{why}: {}", sites.len()))
        .collect();
    println!(
        "rejected: {}; decision digest {digest:016x}",
        reasons.join(", ")
    );
}
