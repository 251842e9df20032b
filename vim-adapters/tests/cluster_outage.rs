//! The Kubernetes adapter while its kube-apiserver goes away and comes back. A test binary of
//! its own: cargo runs test binaries one at a time, so no other test sees the outage.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use std::time::Duration;

use common::{SETTLE, assert_gone, settled, workload};
use vim_adapters::kubernetes::testing::TestEnv;
use vim_adapters::kubernetes::{Flavour, KubeVim};
use vim_adapters::{Vim, WorkloadPhase};

#[tokio::test]
async fn apiserver_stopped_mid_operation_then_restarted() {
    let Some(env) = TestEnv::get() else { return };
    let conn = env.connection(Flavour::Kubernetes);
    let ns = conn.namespace.clone();
    let vim = KubeVim::new(conn);
    // Without kwok the pods stay Pending, so the first workload cannot settle until the
    // cluster is whole again.
    env.component("stop", "kubernetes-kwok");
    let first = workload("outage-1");
    vim.apply(&first).await.unwrap();

    // The apiserver goes away while the adapter waits for the workload to settle.
    let waiting = {
        let name = first.name.clone();
        let vim = KubeVim::new(vim_connection(&env, &ns));
        tokio::spawn(async move { vim.settle(&name, SETTLE * 2).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.component("stop", "kubernetes-apiserver");
    let second = workload("outage-2");
    let err = vim.apply(&second).await.unwrap_err();
    assert!(
        err.retryable(),
        "an unreachable apiserver is retryable: {err:?}"
    );
    assert!(vim.status(&first.name).await.unwrap_err().retryable());
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.component("start", "kubernetes-apiserver");
    env.component("start", "kubernetes-kwok");

    // The waiter survives the outage; the refused apply succeeds when retried.
    let status = waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(status.phase, WorkloadPhase::Running);
    let deadline = tokio::time::Instant::now() + SETTLE;
    while let Err(e) = vim.apply(&second).await {
        assert!(
            e.retryable() && tokio::time::Instant::now() < deadline,
            "{e:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        settled(&vim, &second.name).await.phase,
        WorkloadPhase::Running
    );
    for w in [&first, &second] {
        vim.delete(&w.name).await.unwrap();
        assert_gone(&env, Flavour::Kubernetes, &ns, &w.name, "").await;
    }
}

fn vim_connection(env: &TestEnv, ns: &str) -> vim_adapters::kubernetes::ClusterConnection {
    let mut conn = env.connection(Flavour::Kubernetes);
    conn.namespace = ns.to_owned();
    conn
}
