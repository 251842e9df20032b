//! An acknowledged write survives the MEP process being killed: the real `mep` binary registers
//! services, is sent SIGKILL (no shutdown, nothing flushed on the way out) and started again on
//! the same database, where every service it answered 201 for is registered.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use server_kit::on_both_dbs;

use super::common::{Db, service, token};

on_both_dbs!(acknowledged_registrations_survive_kill_9);

/// The `mep` binary, killed (SIGKILL) when dropped.
struct Mep(Child);

impl Drop for Mep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `mep` binary on `config`, answering on `base` once it is up.
async fn start(config: &std::path::Path, base: &str, http: &reqwest::Client) -> Mep {
    let mep = Mep(Command::new(env!("CARGO_BIN_EXE_mep"))
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mep starts"));
    for _ in 0..200 {
        if http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return mep;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mep did not answer on {base}");
}

async fn acknowledged_registrations_survive_kill_9(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(db, "mep", dir.path()).await;
    let port = server_kit::testing::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("mep.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"{url}\"\n[telemetry]\nfilter = \"warn\"\n[dns]\nlisten = \"127.0.0.1:0\"\n\
             [auth]\nsigning_key = \"crash\"\n[[auth.clients]]\nclient_id = \"op\"\n\
             client_secret = \"op\"\nscopes = [\"mep_mgmt\", \"mec_service_mgmt\"]\n"
        ),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let mep = start(&config, &base, &http).await;
    let token = token(&http, &base, ("op", "op")).await;
    let r = http
        .put(format!("{base}/mep_mgmt/v1/app_instances/crash"))
        .bearer_auth(&token)
        .json(&json!({"appInfo": {"appName": "crash"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let r = http
            .post(format!(
                "{base}/mec_service_mgmt/v1/applications/crash/services"
            ))
            .bearer_auth(&token)
            .json(&service(&format!("svc-{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        acknowledged.push(body["serInstanceId"].as_str().unwrap().to_owned());
    }
    // SIGKILL right after the last acknowledgement
    drop(mep);

    let _mep = start(&config, &base, &http).await;
    let listed: Value = http
        .get(format!("{base}/mec_service_mgmt/v1/services"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut listed: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["serInstanceId"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    acknowledged.sort();
    assert_eq!(listed, acknowledged);
}
