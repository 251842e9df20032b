//! Service registration benchmark: one client registers services one after another over HTTP
//! (OAuth on) at a MEP on SQLite (or `MECPLANE_BENCH_DB_URL`), and the rate and latency are
//! printed as the registry grows, so a write that costs O(services) shows as a falling rate.
//!
//! `cargo run --release -p mep --example registry_bench -- [largest] [per_step]`
//! (defaults 10000 and 200): at 10, 100, 1,000 … up to `largest` registered services it times
//! `per_step` more registrations and prints registrations/s, p50 and p99.

use std::time::{Duration, Instant};

use mep::config::MepConfig;
use mep::server::Server;
use serde_json::{Value, json};
use server_kit::auth::{ClientConfig, Secret};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let largest: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let per_step: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let database_url = std::env::var("MECPLANE_BENCH_DB_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/mep.db?mode=rwc", dir.path().display()));
    let mut config = MepConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url,
        ..MepConfig::default()
    };
    config.telemetry.filter = "warn".into();
    config.dns.listen = None;
    config.auth.signing_key = Some(Secret::new("bench"));
    config.auth.clients = vec![ClientConfig {
        client_id: "op".into(),
        client_secret: Secret::new("op"),
        scopes: ["mep_mgmt", "mec_service_mgmt", "mec_app_support"]
            .map(str::to_owned)
            .to_vec(),
        app_instance_id: None,
    }];
    let server = Server::start(config).await?;
    let api = server.api_root.clone();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{api}/oauth2/token"))
        .basic_auth("op", Some("op"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    http.put(format!("{api}/mep_mgmt/v1/app_instances/bench"))
        .bearer_auth(&token)
        .json(&json!({"appInfo": {"appName": "bench"}}))
        .send()
        .await?
        .error_for_status()?;
    let register = |i: usize| {
        let request = http
            .post(format!("{api}/mec_service_mgmt/v1/applications/bench/services"))
            .bearer_auth(&token)
            .json(&json!({
                "serName": format!("svc-{i}"),
                "serCategory": {"href": "http://cat", "id": format!("cat-{}", i % 10), "name": "c", "version": "1"},
                "version": "1.0",
                "state": "ACTIVE",
                "serializer": "JSON",
                "transportId": "mep-rest-http"
            }));
        async move {
            let started = Instant::now();
            request.send().await?.error_for_status()?;
            Ok::<_, anyhow::Error>(started.elapsed())
        }
    };
    println!("== service registration, one client, {per_step} timed at each size");
    let mut registered = 0;
    let mut step = 10;
    while step <= largest {
        while registered < step {
            register(registered).await?;
            registered += 1;
        }
        let started = Instant::now();
        let mut latencies: Vec<Duration> = Vec::with_capacity(per_step);
        for _ in 0..per_step {
            latencies.push(register(registered).await?);
            registered += 1;
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "services={step:>6} regs_per_s={:>7.0} p50_ms={:.2} p99_ms={:.2}",
            per_step as f64 / elapsed.as_secs_f64(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
        );
        step *= 10;
    }
    server.shutdown().await;
    Ok(())
}
