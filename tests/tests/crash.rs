//! The crash drill, with a linked MEP, on SQLite and PostgreSQL: the real MEAO process is
//! aborted at every step boundary of the LCM sagas (instantiate, terminate, operate,
//! credential rotation, and the relocation a site failure starts) (the `fault_drill` setting
//! aborts it there, as `kill -9` would), before and after the step's progress is recorded,
//! going forward and undoing (after a cancellation, or after a step the drill fails), restarted,
//! and must end the operation as an uninterrupted run ends it: the site
//! holding the workload or nothing, the MEP holding the instance's configuration or nothing, and
//! exactly one valid Mp1 secret — the workload's — while every other secret the workload ever
//! held is refused by the MEP.
//!
//! The MEAO runs as `target/<profile>/meao`, which `cargo test --workspace` builds with the
//! `fault-drill` feature for the MEAO's own tests; a binary without it never aborts, and the
//! drill says so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use api_specs::mp1::workload;
use e2e::{Service, link_configs, meao_toml_sections, onboard_example, wait_op};
use futures::StreamExt;
use meao::events::testing::free_port;
use serde_json::{Value, json};
use server_kit::testing::{Db, EVENTUALLY, TestPki, eventually, fresh_database, pg_admin_url};

/// The site with the MEP, where instances are placed.
const SITE: &str = "paris-1";
/// The site without a MEP that a failed-over instance moves to.
const SPARE: &str = "lyon-1";
const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";
const INSTANTIATE: &str = "app-instantiate";
const TERMINATE: &str = "app-terminate";
const OPERATE: &str = "app-operate";
const ROTATE: &str = "app-rotate-credentials";
const RELOCATE: &str = "app-relocate";
/// How long a simulated workload takes to become ready in the undo drills: the window in which
/// an instantiation waits at `await-ready`, where they cancel it (elsewhere it is ready at once).
const STARTUP_MS: u64 = 5000;

/// Where the drilled process aborts.
#[derive(Debug, Clone, Copy)]
struct Fault {
    kind: &'static str,
    step: usize,
    undo: bool,
    after_record: bool,
    /// The forward step the drill fails, to undo from there (none: an undo drill cancels).
    fail_at: Option<usize>,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let way = if self.undo { "undo" } else { "forward" };
        let when = if self.after_record { "after" } else { "before" };
        write!(
            f,
            "{} {way} step {} ({when} recording)",
            self.kind, self.step
        )?;
        match self.fail_at {
            Some(at) => write!(f, " after step {at} failed"),
            None => Ok(()),
        }
    }
}

/// One drill's world: a MEP linked to the MEAO processes started on it, a site with a state
/// file, the MEAO's database, and every Mp1 secret the site's workload has held.
struct Bench {
    dir: tempfile::TempDir,
    database_url: String,
    link_port: u16,
    pki: TestPki,
    mep: mep::server::RunningServer,
    http: reqwest::Client,
    secrets: BTreeSet<String>,
    startup_ms: u64,
}

/// A MEAO process and its OSS client's token.
struct Meao {
    service: Service,
    token: String,
}

impl Bench {
    async fn new(db: Db, startup_ms: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path(), "drill CA");
        let link_port = free_port();
        let (_, mep_link) = link_configs(&pki, SITE, link_port);
        let mut config = mep::config::MepConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: fresh_database(Db::Sqlite, "mep", dir.path()).await,
            meao: Some(mep_link),
            ..mep::config::MepConfig::default()
        };
        config.dns.listen = Some("127.0.0.1:0".parse().unwrap());
        let mep = mep::server::Server::start(config).await.unwrap();
        Self {
            database_url: fresh_database(db, "meao", dir.path()).await,
            dir,
            link_port,
            pki,
            mep,
            http: reqwest::Client::new(),
            secrets: BTreeSet::new(),
            startup_ms,
        }
    }

    fn state_file(&self, site: &str) -> PathBuf {
        self.dir.path().join(format!("{site}.json"))
    }

    /// The MEAO's configuration: the drill armed (or not), `SITE` offline (and failover on)
    /// or not, the reconciler on or off.
    fn config(&self, fault: Option<Fault>, site_down: bool, reconcile: bool) -> PathBuf {
        let dir = self.dir.path().display();
        let (meao_link, _) = link_configs(&self.pki, SITE, self.link_port);
        let mut toml = format!(
            r#"listen = "127.0.0.1:0"
database_url = "{db}"
data_dir = "{dir}/data"
workload_ready_timeout_secs = 10
saga_lease_secs = 1
saga_recovery_interval_secs = 1
site_refresh_secs = 1
failover_after_secs = {failover}
reconcile_interval_secs = {reconcile}
[telemetry]
filter = "info"
json = true
{sections}[[sites]]
id = "{SITE}"
location = {{ latitude = 48.86, longitude = 2.35 }}
zone = "paris"
services = ["RNIS"]
mepUrl = "{mep}"
vim = {{ kind = "simulated", cpuMillis = 16000, memoryMib = 32768, startupMs = {startup}, offline = {site_down}, stateFile = "{state}" }}
[[sites]]
id = "{SPARE}"
location = {{ latitude = 45.76, longitude = 4.86 }}
zone = "lyon"
services = ["RNIS"]
vim = {{ kind = "simulated", cpuMillis = 16000, memoryMib = 32768, startupMs = {startup}, stateFile = "{spare}" }}
"#,
            db = self.database_url,
            sections = meao_toml_sections(&meao_link),
            mep = self.mep.api_root,
            state = self.state_file(SITE).display(),
            spare = self.state_file(SPARE).display(),
            failover = if site_down { 0 } else { 3600 },
            reconcile = u8::from(reconcile),
            startup = self.startup_ms,
        );
        if let Some(f) = fault {
            toml.push_str(&format!(
                "[fault_drill]\nkind = \"{}\"\nstep = {}\nundo = {}\nafter_record = {}\n",
                f.kind, f.step, f.undo, f.after_record
            ));
            if let Some(at) = f.fail_at {
                toml.push_str(&format!("fail_at = {at}\n"));
            }
        }
        let path = self.dir.path().join("meao.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }

    /// Starts the MEAO binary.
    async fn service(&self, fault: Option<Fault>, site_down: bool, reconcile: bool) -> Service {
        let config = self.config(fault, site_down, reconcile);
        Service::start("meao", &config, self.dir.path()).await
    }

    /// Starts the MEAO binary and gets its OSS client a token.
    async fn start(&self, fault: Option<Fault>, site_down: bool, reconcile: bool) -> Meao {
        let service = self.service(fault, site_down, reconcile).await;
        let token = e2e::token(&self.http, &service.base, "oss", "oss-secret").await;
        Meao { service, token }
    }

    /// A site's workloads (as its state file holds them) with their replicas; every Mp1 secret
    /// among them joins the secrets seen.
    fn workloads(&mut self, site: &str) -> Vec<(Value, u64)> {
        let held: Vec<(Value, u64)> = std::fs::read(self.state_file(site))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for (w, _) in &held {
            if let Some(s) = w["secrets"][workload::CLIENT_SECRET].as_str() {
                self.secrets.insert(s.to_owned());
            }
        }
        held
    }

    /// The status of a token request at the MEP with `secret` as the instance's client.
    async fn token_status(&self, instance: &str, secret: &str) -> u16 {
        self.http
            .post(format!("{}/oauth2/token", self.mep.api_root))
            .basic_auth(instance, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The MEP's view of the instance: its traffic rules as the app reads them with its own
    /// token, or `None` when the MEP does not know the instance.
    async fn mep_rules(&self, instance: &str, token: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!(
                "{}/mec_app_support/v1/applications/{instance}/traffic_rules",
                self.mep.api_root
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status() == 200).then_some(r.json().await.unwrap())
    }

    /// Checks `site` and the MEP as an uninterrupted run leaves them: `replicas` of the
    /// instance's one workload (or no workload), the MEP serving its configuration to exactly
    /// the workload's secret (none at the site without a MEP), every other secret seen refused.
    async fn check(&mut self, instance: &str, site: &str, replicas: Option<u64>, what: &str) {
        let held = self.workloads(site);
        let current = match replicas {
            None => {
                assert!(held.is_empty(), "{what}: the site still holds {held:?}");
                None
            }
            Some(n) => {
                assert_eq!(held.len(), 1, "{what}: exactly one workload: {held:?}");
                let (w, r) = &held[0];
                assert_eq!(*r, n, "{what}: replicas");
                assert_eq!(w["appInstanceId"], instance, "{what}");
                let secret = w["secrets"][workload::CLIENT_SECRET].as_str();
                assert_eq!(
                    secret.is_some(),
                    site == SITE,
                    "{what}: an Mp1 secret exactly where there is a MEP: {w}"
                );
                secret.map(str::to_owned)
            }
        };
        for secret in &self.secrets {
            let status = self.token_status(instance, secret).await;
            let want = if Some(secret) == current.as_ref() {
                200
            } else {
                401
            };
            assert_eq!(
                status,
                want,
                "{what}: the MEP answers a token request with the {} secret with {status}",
                if want == 200 { "workload's" } else { "an old" }
            );
        }
        if let Some(secret) = current {
            let token = e2e::token(&self.http, &self.mep.api_root, instance, &secret).await;
            let rules = eventually(
                &format!("{what}: the MEP's rules"),
                EVENTUALLY,
                async || {
                    self.mep_rules(instance, &token)
                        .await
                        .ok_or("unknown instance")
                },
            )
            .await;
            assert!(
                rules.as_array().is_some_and(|r| !r.is_empty()),
                "{what}: the MEP holds the instance's traffic rules: {rules}"
            );
        }
    }
}

impl Meao {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{path}", self.service.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Starts an LCM task; the occurrence's location.
    async fn task(&self, instance: &str, task: &str, body: Value, what: &str) -> String {
        let r = self
            .post(
                &format!("/app_lcm/v1/app_instances/{instance}/{task}"),
                body,
            )
            .await;
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        assert_eq!(status, 202, "{what}: {}", r.text().await.unwrap());
        location.unwrap()
    }

    /// The location of the occurrence that relocates the instance (the one besides `set_up`).
    async fn relocation(&self, set_up: &str) -> String {
        let url = format!("{}/app_lcm/v1/app_lcm_op_occs", self.service.base);
        eventually("the relocation's occurrence", EVENTUALLY, async || {
            let all = e2e::get_json(&reqwest::Client::new(), &url, &self.token).await;
            all.as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["id"].as_str())
                .find(|id| !set_up.ends_with(id))
                .map(|id| format!("/app_lcm/v1/app_lcm_op_occs/{id}"))
                .ok_or(all)
        })
        .await
    }

    async fn finished(&self, op: &str) -> Value {
        wait_op(&reqwest::Client::new(), &self.service.base, &self.token, op).await
    }
}

/// Waits for the drill to abort the process.
async fn aborted(mut service: Service, what: &str) {
    match service.exited().await {
        Some(status) => assert!(!status.success(), "{what}: the drill aborts the process"),
        None => panic!(
            "{what}: the fault drill did not abort the process (a meao built without the \
             fault-drill feature never does): {}",
            service.logs()
        ),
    }
}

/// An instantiation on `SITE`.
fn pinned() -> Value {
    json!({"selectedMECHostInfo": [{"hostId": {"siteId": SITE}}]})
}

/// The request that starts the drilled operation.
fn task_of(kind: &str) -> (&'static str, Value) {
    match kind {
        INSTANTIATE => ("instantiate", pinned()),
        TERMINATE => (
            "terminate",
            json!({"terminationType": "GRACEFUL", "gracefulTerminationTimeout": 2}),
        ),
        OPERATE => ("operate", json!({"changeStateTo": "STOPPED"})),
        ROTATE => ("rotate_credentials", json!({"gracePeriod": 1})),
        other => panic!("no drill for {other}"),
    }
}

async fn drill(db: Db, fault: Fault) {
    let what = format!("{fault} on {db:?}");
    let cancelled = fault.undo && fault.fail_at.is_none();
    let mut bench = Bench::new(db, if cancelled { STARTUP_MS } else { 0 }).await;
    let relocation = fault.kind == RELOCATE;

    // set-up without a drill: the package, the instance (instantiated on SITE unless that is
    // drilled)
    let meao = bench.start(None, false, false).await;
    let base = meao.service.base.clone();
    onboard_example(&bench.http, &base, &meao.token, "video-analytics").await;
    let instance = e2e::create_instance(&bench.http, &base, &meao.token, VA).await;
    let mut set_up = None;
    if fault.kind != INSTANTIATE {
        let op = meao.task(&instance, "instantiate", pinned(), &what).await;
        assert_eq!(meao.finished(&op).await["operationState"], "COMPLETED");
        bench.check(&instance, SITE, Some(1), &what).await;
        set_up = Some(op);
    }
    drop(meao);

    // the drilled run dies at the boundary; a relocation starts by itself once SITE is down
    // (so soon that the process may be gone before a client could get a token)
    let op = if relocation {
        let service = bench.service(Some(fault), true, false).await;
        aborted(service, &what).await;
        None
    } else {
        let meao = bench.start(Some(fault), false, false).await;
        let (task, body) = task_of(fault.kind);
        let op = meao.task(&instance, task, body, &what).await;
        if cancelled {
            // cancel the instantiation while it waits for the workload: everything is undone
            for _ in 0..200 {
                if !bench.workloads(SITE).is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let r = meao
                .post(&format!("{op}/cancel"), json!({"cancelMode": "GRACEFUL"}))
                .await;
            assert_eq!(
                r.status(),
                202,
                "{what}: cancel: {}",
                r.text().await.unwrap()
            );
        }
        aborted(meao.service, &what).await;
        Some(op)
    };
    bench.workloads(SITE);

    // a clean restart finishes the job
    let meao = bench.start(None, relocation, false).await;
    let op = match op {
        Some(op) => op,
        None => meao.relocation(set_up.as_deref().unwrap_or_default()).await,
    };
    let done = meao.finished(&op).await;
    let instance_info: Value = e2e::get_json(
        &bench.http,
        &format!("{}/app_lcm/v1/app_instances/{instance}", meao.service.base),
        &meao.token,
    )
    .await;
    let (state, instantiation, replicas) = match (fault.kind, fault.undo) {
        (INSTANTIATE, true) => ("FAILED_TEMP", "NOT_INSTANTIATED", None),
        // undone: as before the operation, the instance at SITE, started
        (OPERATE | ROTATE | RELOCATE, true) => ("FAILED_TEMP", "INSTANTIATED", Some(1)),
        (INSTANTIATE | ROTATE, false) => ("COMPLETED", "INSTANTIATED", Some(1)),
        (OPERATE, false) => ("COMPLETED", "INSTANTIATED", Some(0)),
        (TERMINATE, false) => ("COMPLETED", "NOT_INSTANTIATED", None),
        (RELOCATE, false) => ("COMPLETED", "INSTANTIATED", None),
        other => panic!("no expectation for {other:?}"),
    };
    assert_eq!(done["operationState"], state, "{what}: {done}");
    assert_eq!(
        instance_info["instantiationState"], instantiation,
        "{what}: {instance_info}"
    );
    if fault.kind == ROTATE {
        // the rotated-out secret is accepted for its grace period only
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    if relocation && fault.undo {
        // undone: nothing at the spare site (the secrets are checked at SITE below)
        let left = bench.workloads(SPARE);
        assert!(
            left.is_empty(),
            "{what}: the spare site still holds {left:?}"
        );
    } else if relocation {
        // the instance runs at the spare site, and once SITE is back its reconciler removes
        // the copy the failed site still held
        bench.check(&instance, SPARE, Some(1), &what).await;
        drop(meao);
        let _meao = bench.start(None, false, true).await;
        eventually(
            &format!("{what}: {SITE} cleaned up"),
            EVENTUALLY,
            async || {
                let left = bench.workloads(SITE);
                if left.is_empty() { Ok(()) } else { Err(left) }
            },
        )
        .await;
    }
    bench.check(&instance, SITE, replicas, &what).await;
}

/// Drills run at once per saga kind: each waits mostly (for a process to start, a lease to
/// expire), so a few side by side keep the suite short without loading the machine.
const AT_ONCE: usize = 3;

/// Every boundary of `kind`'s first `steps` steps, forward (or undoing), before and after
/// recording, each in a world of its own.
async fn every_boundary(
    db: Db,
    kind: &'static str,
    steps: usize,
    undo: bool,
    fail_at: Option<usize>,
) {
    if db == Db::Postgres && pg_admin_url().is_none() {
        return;
    }
    let faults = (0..steps).flat_map(|step| {
        [false, true].map(|after_record| Fault {
            kind,
            step,
            undo,
            after_record,
            fail_at,
        })
    });
    futures::stream::iter(faults)
        .map(|fault| drill(db, fault))
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<()>>()
        .await;
}

macro_rules! drills {
    ($($name:ident: $kind:expr, $steps:expr, $undo:expr, $fail_at:expr;)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                every_boundary(Db::Sqlite, $kind, $steps, $undo, $fail_at).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                every_boundary(Db::Postgres, $kind, $steps, $undo, $fail_at).await
            }
        }
    )*};
}

drills! {
    // place, pin-images, issue-credential, apply, await-ready, configure-platform, commit
    instantiate: INSTANTIATE, 7, false, None;
    // cancelled at await-ready: undo await-ready, apply, issue-credential, pin-images, place
    instantiate_undo: INSTANTIATE, 5, true, None;
    // commit failed: undo every step from commit back to place
    instantiate_failed: INSTANTIATE, 7, true, Some(6);
    // release-platform, drain, remove, commit (no step undoes)
    terminate: TERMINATE, 4, false, None;
    // scale, commit
    operate: OPERATE, 2, false, None;
    // commit failed: undo commit, scale
    operate_undo: OPERATE, 2, true, Some(1);
    // place, pin-images, issue-credential, apply, await-ready, configure-platform, commit,
    // release-old
    relocate: RELOCATE, 8, false, None;
    // release-old failed: undo every step back to place, the instance stays at its site
    relocate_undo: RELOCATE, 8, true, Some(7);
    // announce, apply-secret, commit
    rotate_credentials: ROTATE, 3, false, None;
    // commit failed: undo commit, apply-secret, announce
    rotate_credentials_undo: ROTATE, 3, true, Some(2);
}
