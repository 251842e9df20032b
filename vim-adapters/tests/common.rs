//! Shared helpers of the cluster tests.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use vim_adapters::kubernetes::Flavour;
use vim_adapters::kubernetes::testing::TestEnv;
use vim_adapters::{Container, Port, Protocol, Vim, Workload, WorkloadStatus, workload_name};

/// How long a workload may take to settle on the test clusters.
pub const SETTLE: Duration = Duration::from_secs(60);

/// A two-replica workload serving TCP 8080.
pub fn workload(id: &str) -> Workload {
    Workload {
        name: workload_name(id),
        app_instance_id: id.into(),
        containers: vec![Container {
            name: "app".into(),
            image: "registry.example/acme/app:1.0".into(),
            cpu_millis: 250,
            memory_mib: 128,
            cpu_limit_millis: Some(500),
            memory_limit_mib: Some(256),
        }],
        replicas: 2,
        config: BTreeMap::from([("appDId".to_owned(), "d-1".to_owned())]),
        ports: vec![Port {
            port: 8080,
            protocol: Protocol::Tcp,
        }],
        ..Workload::default()
    }
}

/// The settled status of a workload (panics if it is gone).
pub async fn settled(vim: &dyn Vim, name: &str) -> WorkloadStatus {
    vim.settle(name, SETTLE).await.unwrap().unwrap()
}

/// Waits until nothing labelled as the workload's is left in `namespace`, including pods.
pub async fn assert_gone(
    env: &TestEnv,
    flavour: Flavour,
    namespace: &str,
    name: &str,
    extra: &str,
) {
    let kinds =
        format!("deployments,replicasets,statefulsets,pods,services,configmaps,secrets{extra}");
    let selector = format!("app.kubernetes.io/instance={name}");
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let left = env.kubectl(
            flavour,
            &[
                "get", &kinds, "-n", namespace, "-l", &selector, "-o", "name",
            ],
        );
        if left.trim().is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind: {left}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A jsonpath query of the workload's pods (space separated).
pub fn pods(env: &TestEnv, flavour: Flavour, namespace: &str, name: &str, path: &str) -> String {
    env.kubectl(
        flavour,
        &[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            &format!("app.kubernetes.io/instance={name}"),
            "-o",
            &format!("jsonpath={{.items[*]{path}}}"),
        ],
    )
}

/// Waits until a jsonpath query of the workload's pods reads `want`: pods of a scaled-down
/// workload are listed while they terminate, until kwok removes them.
pub async fn assert_pods(
    env: &TestEnv,
    flavour: Flavour,
    namespace: &str,
    name: &str,
    path: &str,
    want: &str,
) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let got = pods(env, flavour, namespace, name, path);
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pods {path}: {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
