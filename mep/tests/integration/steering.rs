//! Traffic steering through an inline Linux gateway (UPGW) in a network namespace: the rules of
//! an instance are installed when it becomes READY and removed with it.

use reqwest::Method;
use serde_json::json;
use server_kit::testing::{EVENTUALLY, eventually};
use upf_rules::testing::netns_capable;

use super::common::{APP1, Ctx, Db, OPERATOR, test_config};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

fn sh(script: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["-euc", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the gateway's nft table and ip rules do (or do not) steer instance i1.
async fn steered(ns: &str, expected: bool) {
    let what = format!(
        "the gateway {}steering i1",
        if expected { "" } else { "not " }
    );
    eventually(&what, EVENTUALLY, async || {
        let table = sh(&format!("ip netns exec {ns} nft list ruleset"));
        let rules = sh(&format!("ip -n {ns} rule show"));
        if (table.contains("i1/tr1") && rules.contains("fwmark")) == expected {
            Ok(())
        } else {
            Err(format!("{table}\n{rules}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_instances_are_steered_by_the_gateway() {
    if !netns_capable() {
        return;
    }
    let ns = Netns(format!("mepgw{}", std::process::id()));
    sh(&format!(
        "ip netns add {0}; ip -n {0} link add acc0 type veth peer name acc1; ip -n {0} link add edge0 type veth peer name edge1; ip -n {0} link set acc1 up; ip -n {0} link set edge1 up; \
         ip -n {0} addr add 10.10.0.1/24 dev edge0; ip -n {0} link set acc0 up; ip -n {0} link set edge0 up",
        ns.0
    ));
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(Db::Sqlite, "mep", dir.path()).await;
    let mut config = test_config(url);
    config.upgw = Some(mep::steering::UpgwSettings {
        netns: Some(ns.0.clone()),
        access_interface: "acc0".into(),
        edge_interface: "edge0".into(),
        first_table: 1000,
        first_rule_priority: 1000,
    });
    let ctx = Ctx::start_with(config, dir).await;
    ctx.provision("i1").await;
    steered(&ns.0, false).await;

    let app = ctx.token(APP1).await;
    let r = ctx
        .call(
            Method::POST,
            "/mec_app_support/v1/applications/i1/confirm_ready",
            &app,
            Some(json!({"indication": "READY"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    steered(&ns.0, true).await;
    let table = sh(&format!(
        "ip netns exec {} nft list table ip mecplane",
        ns.0
    ));
    assert!(
        table.contains("ip daddr 10.20.0.0/16") && table.contains("tcp dport 443"),
        "{table}"
    );
    let route = sh(&format!("ip -n {} route show table 1000", ns.0));
    assert!(route.contains("default via 10.10.0.7 dev edge0"), "{route}");

    let op = ctx.token(OPERATOR).await;
    let r = ctx
        .call(Method::DELETE, "/mep_mgmt/v1/app_instances/i1", &op, None)
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    steered(&ns.0, false).await;
}
