//! Three MEAO replicas on one PostgreSQL behind a load balancer (the test's own round-robin TCP
//! relay), deploying to a real kube-apiserver (kwok nodes), while replicas are killed with
//! SIGKILL and restarted at random: 200 LCM operations on 20 instances from four clients. Every
//! accepted operation ends COMPLETED, or FAILED_TEMP/FAILED with its reason; no instance ever
//! shows two operations in flight; each operation reaches its end once, its events and its
//! instance's reach Kafka with no gap in their per-resource sequence, and the subscriber is
//! notified of each end. The test prints a report of the counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::{Relay, Rng, Service, onboard_example};
use meao::events::testing::{Broker, consume, free_port, kafka};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server_kit::testing::{Callback, Db, fresh_database, pg_admin_url};
use vim_adapters::kubernetes::Flavour;
use vim_adapters::kubernetes::testing::TestEnv;

const REPLICAS: usize = 3;
const INSTANCES: usize = 20;
/// Operations per instance: 200 in all.
const ROUNDS: usize = 10;
const CLIENTS: usize = 4;
/// The sample application: small enough for 20 instances on the test cluster.
const SAMPLE: &str = "5b0e7c3d-2a91-4f6e-8d4c-9a1b3e5f7c20";
const OPS: &str = "/app_lcm/v1/app_lcm_op_occs";
/// Operation states an operation is in flight in (FAILED_TEMP waits for retry or fail).
const IN_FLIGHT: [&str; 4] = ["STARTING", "PROCESSING", "FAILED_TEMP", "ROLLING_BACK"];

/// An OSS client through the balancer: every request on a new connection, so requests spread
/// over the replicas and one killed under a request loses only that one.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let token = e2e::token(&http, base, "oss", "oss-secret").await;
        Self {
            http,
            base: base.to_owned(),
            token,
        }
    }

    /// Status, `Location` and body; `None` when the connection failed (its replica died).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(StatusCode, Option<String>, Value)> {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.ok()?;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.ok()?;
        Some((
            status,
            location,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        ))
    }

    /// GET until a replica answers it with 200.
    async fn get(&self, path: &str) -> Value {
        for _ in 0..1200 {
            match self.send(Method::GET, path, None).await {
                Some((StatusCode::OK, _, body)) => return body,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("GET {path}: no replica answered for two minutes")
    }

    /// The instance's operations.
    async fn ops_of(&self, instance: &str) -> Vec<Value> {
        let all = self.get(OPS).await;
        all.as_array()
            .into_iter()
            .flatten()
            .filter(|o| instance_of(o) == instance)
            .cloned()
            .collect()
    }
}

/// The instance an operation occurrence is of (its `appInstance` link's last segment).
fn instance_of(op: &Value) -> &str {
    op["_links"]["appInstance"]["href"]
        .as_str()
        .and_then(|h| h.rsplit('/').next())
        .unwrap_or_default()
}

/// What the clients did.
#[derive(Default)]
struct Tally {
    accepted: Vec<String>,
    lost_answers: usize,
    retries: usize,
    failed_by_client: usize,
}

/// The instance's state: (instantiationState, operationalState).
async fn state(client: &Client, instance: &str) -> (String, String) {
    let info = client
        .get(&format!("/app_lcm/v1/app_instances/{instance}"))
        .await;
    (
        info["instantiationState"].as_str().unwrap_or("").to_owned(),
        info["instantiatedAppState"]["operationalState"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

/// The next task for an instance in `state`: instantiate, stop, start, terminate, round after
/// round.
fn next_task(state: &(String, String), round: usize) -> (&'static str, Value) {
    match (state.0.as_str(), state.1.as_str()) {
        ("NOT_INSTANTIATED", _) => ("instantiate", json!({})),
        (_, "STOPPED") => ("operate", json!({"changeStateTo": "STARTED"})),
        _ if round % 4 == 3 => ("terminate", json!({"terminationType": "FORCEFUL"})),
        _ => ("operate", json!({"changeStateTo": "STOPPED"})),
    }
}

/// Polls an accepted operation to its end; a FAILED_TEMP one is retried (three times), then
/// failed.
async fn finish(client: &Client, location: &str, tally: &tokio::sync::Mutex<Tally>) {
    let mut retries = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            Instant::now() < deadline,
            "{location} did not end in three minutes"
        );
        let op = client.get(location).await;
        match op["operationState"].as_str() {
            Some("COMPLETED" | "FAILED") => return,
            Some("FAILED_TEMP") => {
                let (task, counter) = if retries < 3 {
                    ("retry", true)
                } else {
                    ("fail", false)
                };
                if let Some((status, _, _)) = client
                    .send(Method::POST, &format!("{location}/{task}"), None)
                    .await
                    && status.is_success()
                {
                    let mut tally = tally.lock().await;
                    if counter {
                        retries += 1;
                        tally.retries += 1;
                    } else {
                        tally.failed_by_client += 1;
                    }
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no operation of the instance is in flight: one whose answer was lost may be
/// under way, or wait in FAILED_TEMP (then it is finished as the client's own are).
async fn quiet(client: &Client, instance: &str, tally: &tokio::sync::Mutex<Tally>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let ops = client.ops_of(instance).await;
        let state = |o: &Value| o["operationState"].as_str().unwrap_or("").to_owned();
        if let Some(waiting) = ops.iter().find(|o| state(o) == "FAILED_TEMP") {
            let id = waiting["id"].as_str().unwrap();
            finish(client, &format!("{OPS}/{id}"), tally).await;
        } else if !ops.iter().any(|o| IN_FLIGHT.contains(&state(o).as_str())) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{instance}: an operation stayed in flight for three minutes")
}

/// One instance's rounds of operations.
async fn drive(client: Client, instance: String, tally: Arc<tokio::sync::Mutex<Tally>>) {
    for round in 0..ROUNDS {
        loop {
            let before = state(&client, &instance).await;
            let (task, body) = next_task(&before, round);
            let path = format!("/app_lcm/v1/app_instances/{instance}/{task}");
            match client.send(Method::POST, &path, Some(&body)).await {
                Some((StatusCode::ACCEPTED, Some(location), _)) => {
                    tally.lock().await.accepted.push(location.clone());
                    finish(&client, &location, &tally).await;
                    break;
                }
                Some((status, _, body))
                    if status != StatusCode::CONFLICT && !status.is_server_error() =>
                {
                    panic!("{task} {instance}: {status} {body}")
                }
                // no answer, a replica dying under the request, or an operation under way (one
                // whose answer was lost): once it is over, the state tells whether it ran
                _ => {
                    quiet(&client, &instance, &tally).await;
                    if state(&client, &instance).await != before {
                        tally.lock().await.lost_answers += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Each replica's configuration file: its own port, everything else shared (the URL clients
/// use is the balancer's, the site the cluster's namespace `k8s`).
fn configs(
    k8s: &vim_adapters::kubernetes::ClusterConnection,
    dir: &Path,
    ports: &[u16],
    public_url: &str,
    database_url: &str,
    brokers: &str,
    prefix: &str,
) -> Vec<PathBuf> {
    ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let toml = format!(
                r#"listen = "127.0.0.1:{port}"
public_url = "{public_url}"
database_url = "{database_url}"
data_dir = "{data}"
workload_ready_timeout_secs = 60
saga_lease_secs = 2
saga_recovery_interval_secs = 1
site_refresh_secs = 2
reconcile_interval_secs = 2
[telemetry]
filter = "info"
json = true
{oss}[kafka]
brokers = "{brokers}"
topic_prefix = "{prefix}"
poll_interval_ms = 50
[[sites]]
id = "k8s-1"
location = {{ latitude = 48.86, longitude = 2.35 }}
zone = "paris"
services = ["RNIS", "video-detections"]
vim = {{ kind = "kubernetes", kubeconfig = "{kubeconfig}", namespace = "{namespace}" }}
"#,
                oss = e2e::OSS_TOML_SECTIONS,
                data = dir.join("data").display(),
                kubeconfig = k8s.kubeconfig.as_ref().unwrap().display(),
                namespace = k8s.namespace,
            );
            let path = dir.join(format!("meao-{i}.toml"));
            std::fs::write(&path, toml).unwrap();
            path
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_behind_a_balancer_survive_sigkill() {
    let (Some(env), Some(jars), Some(_)) = (TestEnv::get(), kafka(), pg_admin_url()) else {
        return;
    };
    let k8s = env.connection(Flavour::Kubernetes);
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(Db::Postgres, "meao", dir.path()).await;
    let broker = Broker::start(&jars, free_port()).await;
    let prefix = format!("replicas{}", std::process::id());
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let balancer = Relay::start(ports.clone()).await;
    let base = format!("http://127.0.0.1:{}", balancer.port);
    let configs = configs(
        &k8s,
        dir.path(),
        &ports,
        &base,
        &database_url,
        &broker.brokers(),
        &prefix,
    );
    let mut replicas = Vec::new();
    for config in &configs {
        replicas.push(Some(Service::start("meao", config, dir.path()).await));
    }
    let replicas = Arc::new(tokio::sync::Mutex::new(replicas));
    let started = Instant::now();

    // set-up, before the chaos: the package, a subscriber to every operation's end, instances
    let admin = Client::new(&base).await;
    onboard_example(&admin.http, &base, &admin.token, "sample-app").await;
    let mut callback = Callback::start(0).await;
    let subscription = json!({
        "subscriptionType": "AppLcmOpOccStateChangeSubscription",
        "callbackUri": callback.url,
        "appLcmOpOccSubscriptionFilter": {"operationStates": ["COMPLETED", "FAILED", "FAILED_TEMP"]},
    });
    let (status, _, body) = admin
        .send(
            Method::POST,
            "/app_lcm/v1/subscriptions",
            Some(&subscription),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(e2e::create_instance(&admin.http, &base, &admin.token, SAMPLE).await);
    }

    // the chaos: a random replica killed (SIGKILL) and restarted on its port after a while,
    // one at a time
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let chaos = {
        let (stop, kills, replicas, configs) = (
            stop.clone(),
            kills.clone(),
            replicas.clone(),
            configs.clone(),
        );
        let dir = dir.path().to_owned();
        tokio::spawn(async move {
            let mut rng = Rng::from_clock();
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(400 + rng.below(1100))).await;
                let victim = rng.below(REPLICAS as u64) as usize;
                let mut slots = replicas.lock().await;
                drop(slots[victim].take());
                kills.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100 + rng.below(900))).await;
                slots[victim] = Some(Service::start("meao", &configs[victim], &dir).await);
            }
        })
    };
    // a watcher: no listing ever shows an instance with two operations in flight
    let most_in_flight = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, most, watch) = (stop.clone(), most_in_flight.clone(), admin.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some((StatusCode::OK, _, all)) = watch.send(Method::GET, OPS, None).await {
                    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
                    for op in all.as_array().into_iter().flatten() {
                        if IN_FLIGHT.contains(&op["operationState"].as_str().unwrap_or("")) {
                            *per_instance.entry(instance_of(op).to_owned()).or_default() += 1;
                        }
                    }
                    let worst = per_instance.values().copied().max().unwrap_or(0);
                    most.fetch_max(worst, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let tally = Arc::new(tokio::sync::Mutex::new(Tally::default()));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Client::new(&base).await);
    }
    let drivers: Vec<_> = instances
        .iter()
        .enumerate()
        .map(|(i, instance)| {
            tokio::spawn(drive(
                clients[i % CLIENTS].clone(),
                instance.clone(),
                tally.clone(),
            ))
        })
        .collect();
    for driver in drivers {
        driver.await.unwrap();
    }
    let load_time = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    chaos.await.unwrap();
    watcher.await.unwrap();

    // every operation (those whose answer was lost too) ended, with a reason when not done
    let ops = admin.get(OPS).await;
    let ops = ops.as_array().unwrap();
    let tally = tally.lock().await;
    let ids: BTreeSet<&str> = ops.iter().map(|o| o["id"].as_str().unwrap()).collect();
    for location in &tally.accepted {
        let id = location.rsplit('/').next().unwrap();
        assert!(ids.contains(id), "accepted {location} is not listed");
    }
    let mut ends: BTreeMap<&str, usize> = BTreeMap::new();
    for op in ops {
        let state = op["operationState"].as_str().unwrap();
        assert!(
            matches!(state, "COMPLETED" | "FAILED" | "FAILED_TEMP"),
            "an operation did not end: {op}"
        );
        if state != "COMPLETED" {
            let reason = op["error"]["detail"].as_str().unwrap_or("");
            assert!(!reason.is_empty(), "{state} without a reason: {op}");
        }
        *ends.entry(state).or_default() += 1;
    }
    let most = most_in_flight.load(Ordering::SeqCst);
    assert!(most <= 1, "an instance showed {most} operations in flight");

    // Kafka: each operation's events up to its end, once, with no gap in its sequence
    let finals: BTreeMap<String, String> = ops
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_owned(),
                o["operationState"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // (a gap that stays makes the consumer wait for the missing events until it gives up)
    let gapless = |seen: &BTreeMap<String, BTreeMap<String, Vec<Value>>>| {
        ["lcm-op-occs", "app-instances"].iter().all(|topic| {
            seen.get(*topic).into_iter().flatten().all(|(_, list)| {
                let mut sequence: Vec<u64> = list
                    .iter()
                    .map(|e| e["sequence"].as_str().unwrap().parse().unwrap())
                    .collect();
                sequence.sort_unstable();
                sequence == (1..=list.len() as u64).collect::<Vec<_>>()
            })
        })
    };
    let consumed = consume(&broker.brokers(), &prefix, |seen| {
        let Some(by_op) = seen.get("lcm-op-occs") else {
            return false;
        };
        gapless(seen)
            && finals.iter().all(|(id, end)| {
                by_op.get(id).is_some_and(|events| {
                    events
                        .iter()
                        .any(|e| e["data"]["operationState"].as_str() == Some(end))
                })
            })
    })
    .await;
    assert!(gapless(&consumed.events));
    let events: usize = consumed
        .events
        .values()
        .flat_map(|k| k.values())
        .map(Vec::len)
        .sum();
    for (id, end) in &finals {
        let events = &consumed.events["lcm-op-occs"][id];
        if end != "FAILED_TEMP" {
            let ended = events
                .iter()
                .filter(|e| e["data"]["operationState"].as_str() == Some(end))
                .count();
            assert_eq!(ended, 1, "{id} ended {ended} times: {events:#?}");
        }
    }

    // the subscriber: each operation's end notified (at least once)
    let mut notified: BTreeMap<(String, String), usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let missing = |notified: &BTreeMap<(String, String), usize>| {
        finals
            .iter()
            .filter(|(id, end)| !notified.contains_key(&((*id).clone(), (*end).clone())))
            .count()
    };
    while missing(&notified) > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{} operations' ends not notified",
            missing(&notified)
        );
        // (a killed replica's claimed deliveries wait for its claim to expire)
        let Some(n) = callback.next_within(left).await else {
            continue;
        };
        let key = (
            n["appLcmOpOccId"].as_str().unwrap_or("").to_owned(),
            n["operationState"].as_str().unwrap_or("").to_owned(),
        );
        *notified.entry(key).or_default() += 1;
    }
    let repeats: usize = notified.values().map(|n| n - 1).sum();
    // what the replicas' logs (every process's, killed ones' too) say they took over
    let resumed: usize = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .map(|log| log.matches("resuming an LCM operation").count())
        .sum();

    println!(
        "{REPLICAS} replicas behind a balancer, {} SIGKILLs (each replica restarted): {} \
         operations accepted by {CLIENTS} clients on {INSTANCES} instances in {load_time:.1?} \
         (+{} whose answer was lost, found in the list; {resumed} resumed after their \
         replica's death), {} in all: {} COMPLETED, {} FAILED_TEMP, \
         {} FAILED ({} failed by the clients after 3 retries; {} retries); at most {most} in flight \
         per instance; {events} events on Kafka ({} repeated deliveries), no gap; {} ends notified \
         ({repeats} repeated)",
        kills.load(Ordering::SeqCst),
        tally.accepted.len(),
        tally.lost_answers,
        ops.len(),
        ends.get("COMPLETED").unwrap_or(&0),
        ends.get("FAILED_TEMP").unwrap_or(&0),
        ends.get("FAILED").unwrap_or(&0),
        tally.failed_by_client,
        tally.retries,
        consumed.duplicates,
        notified.len(),
    );
    assert!(kills.load(Ordering::SeqCst) > 0, "no replica was killed");
    // the replicas gone (their reconciliation with them), the cluster as it was
    replicas.lock().await.clear();
    env.kubectl(
        Flavour::Kubernetes,
        &["delete", "namespace", &k8s.namespace, "--wait=false"],
    );
    assert!(
        tally.accepted.len() + tally.lost_answers >= INSTANCES * ROUNDS,
        "fewer operations than planned"
    );
}
