//! The orchestrator's own cost of an instantiation:
//! `cargo run --release -p e2e --example lcm_bench [sequential] [concurrent] [in_flight]`.
//!
//! A MEAO and a MEP linked over mutual TLS in this process, SQLite on both (or the MEAO on
//! `MECPLANE_BENCH_DB_URL`, a PostgreSQL database of its own), one simulated site whose
//! workloads are ready at once (0 ms start-up): so what an instantiation costs is the MEAO's
//! work (the request, the saga's steps and their commits, placement, the MEP's ACK), not a
//! cluster's. Prints `sequential` instantiations one at a time (default 50) and `concurrent`
//! ones (default 500) with `in_flight` (default 50) at once: latency from the request to the
//! occurrence's COMPLETED as the client saw it (polling every millisecond one at a time, every
//! 50 ms when concurrent: 50 clients polling every 5 ms sent 10,000 requests/s, a third of the
//! machine) and as the occurrence records it, the rate, and where the time goes: each saga step's median and the
//! executor's own bookkeeping (claims, reads and commits between the steps).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{link_configs, meao_config, onboard_example, start_meao};
use serde_json::{Value, json};
use server_kit::testing::TestPki;
use tracing_subscriber::layer::SubscriberExt;

const SITE: &str = "bench-1";
/// How often each concurrent client polls its occurrence.
const CONCURRENT_POLL: Duration = Duration::from_millis(50);
const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";

/// Wall time of every closed span, by name (`otel.name` where the span sets one).
#[derive(Default, Clone)]
struct SpanTimes(Arc<Mutex<HashMap<String, Vec<Duration>>>>);

struct Opened {
    name: String,
    at: Instant,
}

struct NameOf(Option<String>);

impl tracing::field::Visit for NameOf {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "otel.name" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "otel.name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanTimes
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut name = NameOf(None);
        attrs.record(&mut name);
        let name = name.0.unwrap_or_else(|| attrs.metadata().name().to_owned());
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Opened {
                name,
                at: Instant::now(),
            });
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let extensions = span.extensions();
        let Some(opened) = extensions.get::<Opened>() else {
            return;
        };
        self.0
            .lock()
            .unwrap()
            .entry(opened.name.clone())
            .or_default()
            .push(opened.at.elapsed());
    }
}

impl SpanTimes {
    fn take(&self) -> HashMap<String, Vec<Duration>> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn millis(t: &Value) -> i64 {
    t["seconds"].as_i64().unwrap() * 1000 + t["nanoSeconds"].as_i64().unwrap() / 1_000_000
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn create(&self) -> String {
        e2e::create_instance(&self.http, &self.base, &self.token, VA).await
    }

    /// Instantiates `id` and polls its occurrence every `poll` until it ends; the time the
    /// client saw and the occurrence as it ended.
    async fn instantiate(&self, id: &str, poll: Duration) -> (Duration, Value) {
        let started = Instant::now();
        let r = self
            .http
            .post(format!(
                "{}/app_lcm/v1/app_instances/{id}/instantiate",
                self.base
            ))
            .bearer_auth(&self.token)
            .json(&json!({"selectedMECHostInfo": [{"hostId": {"siteId": SITE}}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let occ = format!("{}{}", self.base, r.headers()["location"].to_str().unwrap());
        loop {
            let r = self
                .http
                .get(&occ)
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            let op: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{occ}: {text}"));
            assert_eq!(status, 200, "{op}");
            match op["operationState"].as_str() {
                Some("STARTING" | "PROCESSING") => tokio::time::sleep(poll).await,
                Some("COMPLETED") => return (started.elapsed(), op),
                _ => panic!("{id}: {text}"),
            }
        }
    }
}

fn report_latency(what: &str, mut seen: Vec<Duration>, recorded: &[Value]) {
    seen.sort();
    let mut server: Vec<Duration> = recorded
        .iter()
        .map(|op| {
            let ms = millis(&op["stateEnteredTime"]) - millis(&op["startTime"]);
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        })
        .collect();
    server.sort();
    println!(
        "{what}: request to COMPLETED p50 {:.2} ms, p99 {:.2} ms as the client saw it; \
         p50 {} ms, p99 {} ms as the occurrences record it (start to state entered)",
        quantile(&seen, 0.5).as_secs_f64() * 1e3,
        quantile(&seen, 0.99).as_secs_f64() * 1e3,
        quantile(&server, 0.5).as_millis(),
        quantile(&server, 0.99).as_millis(),
    );
}

/// Prints each span's median and mean per operation, and the saga executor's own time: the
/// operation's span (`INSTANTIATE`) less its steps' (`app-instantiate …`).
fn report_spans(spans: HashMap<String, Vec<Duration>>, ops: usize) {
    let per_op = |times: &[Duration]| times.iter().sum::<Duration>() / u32::try_from(ops).unwrap();
    let mut rows: Vec<(String, Vec<Duration>)> = spans
        .into_iter()
        .filter(|(name, _)| !name.starts_with("GET ") && !name.starts_with("POST "))
        .collect();
    rows.sort_by_key(|(_, t)| std::cmp::Reverse(per_op(t)));
    println!("  where the time goes (spans: median, and mean per instantiation):");
    let (mut operation, mut steps) = (Duration::ZERO, Duration::ZERO);
    for (name, mut times) in rows {
        times.sort();
        let mean = per_op(&times);
        if name == "INSTANTIATE" {
            operation = mean;
        } else if name.starts_with("app-instantiate ") {
            steps += mean;
        }
        println!(
            "    {name:<64} p50 {:>7.3} ms  mean {:>7.3} ms",
            quantile(&times, 0.5).as_secs_f64() * 1e3,
            mean.as_secs_f64() * 1e3
        );
    }
    println!(
        "    {:<64} {:>23.3} ms",
        "the saga executor between the steps (claims, reads, commits)",
        operation.saturating_sub(steps).as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let sequential: usize = args.next().map_or(50, |a| a.parse().unwrap());
    let concurrent: usize = args.next().map_or(500, |a| a.parse().unwrap());
    let in_flight: usize = args.next().map_or(50, |a| a.parse().unwrap());
    let spans = SpanTimes::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(spans.clone()),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let port = server_kit::testing::free_port();
    let (mut meao_link, mep_link) = link_configs(&TestPki::new(dir.path(), "bench CA"), SITE, port);
    // unacknowledged configurations are resent at the default interval, not the tests' 1 s
    meao_link.resend_secs = 5;
    let mut config = meao_config(dir.path());
    if let Ok(url) = std::env::var("MECPLANE_BENCH_DB_URL") {
        config.database_url = url;
    }
    let database = if config.database_url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    config.mep_link = Some(meao_link);
    config.sites = vec![
        serde_json::from_value(json!({
            "id": SITE, "location": {"latitude": 0.0, "longitude": 0.0}, "zone": "bench",
            "mepUrl": "https://bench-1.example", "services": ["RNIS"],
            "vim": {"kind": "simulated", "cpuMillis": 100_000_000, "memoryMib": 100_000_000, "startupMs": 0}
        }))
        .unwrap(),
    ];
    let (meao, http, base, token) = start_meao(config).await;
    let link = meao.lcm.mep_link().unwrap();
    let mep = mep::server::Server::start(e2e::linked_mep_config(
        format!("sqlite://{}/mep.db?mode=rwc", dir.path().display()),
        mep_link,
    ))
    .await
    .unwrap();
    while !link.connected(SITE) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    onboard_example(&http, &base, &token, "video-analytics").await;
    let client = Arc::new(Client { http, base, token });
    println!(
        "MEAO on {database}, a linked MEP on SQLite, a simulated site with 0 ms start-up; \
         video-analytics (two traffic rules and a DNS rule for the MEP)"
    );

    // warm-up: connections, statements, caches
    for _ in 0..5 {
        let id = client.create().await;
        client.instantiate(&id, Duration::from_millis(1)).await;
    }
    spans.take();

    let mut seen = Vec::new();
    let mut recorded = Vec::new();
    let started = Instant::now();
    for _ in 0..sequential {
        let id = client.create().await;
        let (t, op) = client.instantiate(&id, Duration::from_millis(1)).await;
        seen.push(t);
        recorded.push(op);
    }
    let elapsed = started.elapsed();
    report_latency(&format!("{sequential} sequential"), seen, &recorded);
    report_spans(spans.take(), sequential);
    println!(
        "  {:.0} instantiations/s one at a time (creation included)",
        sequential as f64 / elapsed.as_secs_f64()
    );

    let mut ids = Vec::new();
    for _ in 0..concurrent {
        ids.push(client.create().await);
    }
    spans.take();
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (client, ids, next) = (client.clone(), ids.clone(), next.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(k) else { return done };
                    done.push(client.instantiate(id, CONCURRENT_POLL).await);
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut recorded = Vec::new();
    for w in workers {
        for (t, op) in w.await.unwrap() {
            seen.push(t);
            recorded.push(op);
        }
    }
    let elapsed = started.elapsed();
    let first = recorded
        .iter()
        .map(|op| millis(&op["startTime"]))
        .min()
        .unwrap();
    let last = recorded
        .iter()
        .map(|op| millis(&op["stateEnteredTime"]))
        .max()
        .unwrap();
    report_latency(
        &format!("{concurrent} with {in_flight} in flight"),
        seen,
        &recorded,
    );
    report_spans(spans.take(), concurrent);
    println!(
        "  {:.0} instantiations/s as the client saw them ({elapsed:?}), {:.0}/s from the first \
         start to the last COMPLETED the occurrences record",
        concurrent as f64 / elapsed.as_secs_f64(),
        concurrent as f64 * 1000.0 / (last - first).max(1) as f64
    );

    mep.shutdown().await;
    meao.shutdown().await;
}
