//! Kill the real MEAO process at every step boundary of the instantiate and terminate sagas
//! (a fault drill aborts it, as `kill -9` would), restart it, and check the operation completes
//! with the site holding exactly what an uninterrupted run leaves.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::common::example;

const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";

struct Meao {
    child: Child,
    base: String,
    http: reqwest::Client,
    token: String,
}

fn write_config(dir: &Path, drill: Option<(&str, usize, bool)>) -> std::path::PathBuf {
    let mut toml = format!(
        r#"listen = "127.0.0.1:0"
database_url = "sqlite://{dir}/meao.db?mode=rwc"
data_dir = "{dir}/data"
workload_ready_timeout_secs = 1
saga_lease_secs = 2
saga_recovery_interval_secs = 1
[telemetry]
filter = "info"
json = true
[auth]
signing_key = "crash-test"
[[auth.clients]]
client_id = "oss"
client_secret = "oss-secret"
scopes = ["app_pkgm", "app_lcm", "mecplane_inventory"]
[[sites]]
id = "paris-1"
location = {{ latitude = 48.86, longitude = 2.35 }}
zone = "paris"
services = ["RNIS"]
vim = {{ kind = "simulated", cpuMillis = 16000, memoryMib = 32768, stateFile = "{dir}/paris-1.json" }}
"#,
        dir = dir.display()
    );
    if let Some((kind, step, after_record)) = drill {
        toml.push_str(&format!("[fault_drill]\nkind = \"{kind}\"\nstep = {step}\nundo = false\nafter_record = {after_record}\n"));
    }
    let path = dir.join("meao.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Starts the binary on port 0 and learns its address from its JSON start-up log line (a port
/// picked beforehand could be taken by a parallel test's server).
async fn start(dir: &Path, drill: Option<(&str, usize, bool)>) -> Meao {
    let config = write_config(dir, drill);
    let log = dir.join(format!(
        "meao-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let child = Command::new(env!("CARGO_BIN_EXE_meao"))
        .arg("--config")
        .arg(&config)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut meao = Meao {
        child,
        base: String::new(),
        http: reqwest::Client::new(),
        token: String::new(),
    };
    for _ in 0..1200 {
        let started = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                (v["fields"]["message"] == "MEAO started")
                    .then(|| v["fields"]["local_addr"].as_str().map(str::to_owned))?
            });
        if let Some(addr) = started {
            meao.base = format!("http://{addr}");
            let r: Value = meao
                .http
                .post(format!("{}/oauth2/token", meao.base))
                .basic_auth("oss", Some("oss-secret"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            meao.token = r["access_token"].as_str().unwrap().to_owned();
            return meao;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("meao did not start");
}

impl Meao {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap()
    }

    async fn op_state(&self, op: &str) -> String {
        let v: Value = self
            .call(reqwest::Method::GET, op, None)
            .await
            .json()
            .await
            .unwrap();
        v["operationState"].as_str().unwrap_or_default().to_owned()
    }

    async fn wait_op(&self, op: &str, want: &str) {
        for _ in 0..1200 {
            if self.op_state(op).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{op} never reached {want}: {}", self.op_state(op).await);
    }

    /// Waits for the drill to abort the process.
    async fn aborted(mut self, what: &str) {
        for _ in 0..1200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(!status.success(), "the drill aborts the process");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the fault drill did not abort the process at {what}");
    }

    fn kill(self) {}
}

impl Drop for Meao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workloads(dir: &Path) -> Vec<Value> {
    std::fs::read(dir.join("paris-1.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
        .unwrap_or_default()
}

async fn crash_and_recover(kind: &str, step: usize, after_record: bool) {
    let dir = tempfile::tempdir().unwrap();
    // set up without a drill: a package, an instance (instantiated, for terminate)
    let meao = start(dir.path(), None).await;
    let id = meao
        .call(
            reqwest::Method::POST,
            "/app_pkgm/v1/app_packages",
            Some(json!({"appPkgName": "va", "appPkgVersion": "1"})),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = meao
        .http
        .put(format!(
            "{}/app_pkgm/v1/app_packages/{id}/package_content",
            meao.base
        ))
        .bearer_auth(&meao.token)
        .header("content-type", "application/zip")
        .body(example("video-analytics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let instance = meao
        .call(
            reqwest::Method::POST,
            "/app_lcm/v1/app_instances",
            Some(json!({"appDId": VA})),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    if kind == "app-terminate" {
        let r = meao
            .call(
                reqwest::Method::POST,
                &format!("/app_lcm/v1/app_instances/{instance}/instantiate"),
                Some(json!({})),
            )
            .await;
        let op = r.headers()["location"].to_str().unwrap().to_owned();
        meao.wait_op(&op, "COMPLETED").await;
    }
    meao.kill();

    // the drilled run dies at the boundary
    let meao = start(dir.path(), Some((kind, step, after_record))).await;
    let task = if kind == "app-terminate" {
        "terminate"
    } else {
        "instantiate"
    };
    let body = if kind == "app-terminate" {
        json!({"terminationType": "GRACEFUL", "gracefulTerminationTimeout": 2})
    } else {
        json!({})
    };
    let r = meao
        .call(
            reqwest::Method::POST,
            &format!("/app_lcm/v1/app_instances/{instance}/{task}"),
            Some(body),
        )
        .await;
    assert_eq!(
        r.status(),
        202,
        "{kind} {step} {after_record}: {}\n{}",
        r.text().await.unwrap_or_default(),
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>()
    );
    let op = r.headers()["location"].to_str().unwrap().to_owned();
    meao.aborted(&format!("{kind} {step} {after_record}")).await;

    // a clean restart finishes the job
    let meao = start(dir.path(), None).await;
    meao.wait_op(&op, "COMPLETED").await;
    let state: Value = meao
        .call(
            reqwest::Method::GET,
            &format!("/app_lcm/v1/app_instances/{instance}"),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let left = workloads(dir.path());
    if kind == "app-terminate" {
        assert_eq!(
            state["instantiationState"], "NOT_INSTANTIATED",
            "{kind} {step} {after_record}"
        );
        assert!(left.is_empty(), "{kind} {step} {after_record}: {left:?}");
    } else {
        assert_eq!(
            state["instantiationState"], "INSTANTIATED",
            "{kind} {step} {after_record}"
        );
        assert_eq!(
            left.len(),
            1,
            "{kind} {step} {after_record}: exactly one workload"
        );
    }
    meao.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_every_step_boundary_the_operation_completes_after_restart() {
    for (kind, steps) in [("app-instantiate", 5), ("app-terminate", 4)] {
        for step in 0..steps {
            for after_record in [false, true] {
                crash_and_recover(kind, step, after_record).await;
            }
        }
    }
}
