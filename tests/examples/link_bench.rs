//! Throughput and latency of the MEAO-MEP link on loopback, SQLite on both sides:
//! `cargo run --release -p e2e --example link_bench [instances] [updates]`.
//!
//! Prints the round trip of one update (desire, send, MEP stores and applies, ACK stored), the
//! rate of updates pipelined over many instances until all are acknowledged, and how long a MEP
//! that restarts takes to resync when every instance changed meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use api_specs::mp1::provisioning::AppInstanceConfig;
use e2e::{link_configs, meao_config};
use meao::mep_link::{Desired, MepLink};
use serde_json::json;
use server_kit::testing::TestPki;

const SITE: &str = "bench-1";

fn config(k: usize, n: usize) -> AppInstanceConfig {
    serde_json::from_value(json!({
        "appInfo": {"appName": format!("app{k}")},
        "appDNSRule": [{"dnsRuleId": "main", "domainName": format!("app{k}.bench.test"),
            "ipAddressType": "IP_V4", "ipAddress": format!("10.{}.{}.{}", k % 256, n / 256 % 256, n % 256),
            "state": "ACTIVE"}],
        "appTrafficRule": [{"trafficRuleId": "tr", "filterType": "FLOW", "priority": 1,
            "trafficFilter": [{"dstAddress": ["203.0.113.0/24"], "dstPort": [format!("{}", 1000 + n % 60000)], "protocol": ["TCP"]}],
            "action": "FORWARD_DECAPSULATED", "dstInterface": {"interfaceType": "IP", "dstIpAddress": "10.0.0.1"},
            "state": "ACTIVE"}]
    }))
    .unwrap()
}

async fn all_acked(link: &MepLink) {
    loop {
        let mep = link.site_mep(SITE).await.unwrap();
        if mep
            .app_instances
            .iter()
            .all(|i| i.acked_version >= i.version)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn desire(link: &MepLink, k: usize, n: usize) -> i64 {
    let id = format!("app-{k}");
    link.desire(SITE, &id, Desired::Config(&config(k, n)))
        .await
        .unwrap()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let instances: usize = args.next().map_or(100, |a| a.parse().unwrap());
    let updates: usize = args.next().map_or(5000, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let port = server_kit::testing::free_port();
    let (meao_link, mep_link) = link_configs(&TestPki::new(dir.path(), "bench CA"), SITE, port);
    let mut config = meao_config(dir.path());
    config.mep_link = Some(meao_link);
    config.sites = vec![serde_json::from_value(json!({
        "id": SITE, "location": {"latitude": 0.0, "longitude": 0.0}, "zone": "bench",
        "mepUrl": "https://bench-1.example", "vim": {"kind": "simulated", "cpuMillis": 1000, "memoryMib": 1024}
    }))
    .unwrap()];
    let meao = meao::server::Server::start(config).await.unwrap();
    let link = meao.lcm.mep_link().unwrap();
    let mep_config = e2e::linked_mep_config(
        format!("sqlite://{}/mep.db?mode=rwc", dir.path().display()),
        mep_link,
    );
    let mep = mep::server::Server::start(mep_config.clone())
        .await
        .unwrap();
    while !link.connected(SITE) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // one update at a time: the full round trip
    let mut rtts = Vec::new();
    for n in 0..200 {
        let started = Instant::now();
        let version = desire(&link, 0, n).await;
        link.await_ack(SITE, "app-0", version, Duration::from_secs(10))
            .await
            .unwrap();
        rtts.push(started.elapsed());
    }
    rtts.sort();
    println!(
        "round trip of one update: p50 {:?}, p99 {:?}",
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 99 / 100]
    );

    // many instances, pipelined
    let started = Instant::now();
    for n in 0..updates {
        desire(&link, n % instances, n + 1000).await;
    }
    let recorded = started.elapsed();
    all_acked(&link).await;
    let done = started.elapsed();
    println!(
        "{updates} updates over {instances} instances: recorded at {:.0}/s, all acknowledged after {done:?} ({:.0} updates/s end to end)",
        updates as f64 / recorded.as_secs_f64(),
        updates as f64 / done.as_secs_f64()
    );

    // the MEP restarts while every instance changes: resync on reconnection
    mep.shutdown().await;
    for k in 0..instances {
        desire(&link, k, updates + 2000 + k).await;
    }
    let started = Instant::now();
    let mep = mep::server::Server::start(mep_config).await.unwrap();
    all_acked(&link).await;
    println!(
        "resync of {instances} changed instances after a MEP restart: {:?} (start-up included)",
        started.elapsed()
    );
    mep.shutdown().await;
    meao.shutdown().await;
}
