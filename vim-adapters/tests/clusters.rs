//! The Kubernetes adapter against real kube-apiservers (tests/k8s-env): a plain Kubernetes,
//! a K3s-looking and a KubeEdge-looking cluster, pods run by kwok.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

mod common;

use std::process::Command;

use base64::Engine;
use common::{assert_gone, assert_pods, pods, settled, workload};
use vim_adapters::kubernetes::testing::TestEnv;
use vim_adapters::kubernetes::{Flavour, KubeVim};
use vim_adapters::{DeviceRequest, Vim, VimError, WorkloadPhase};

#[tokio::test]
async fn kubernetes_run_stop_start_and_terminate() {
    let Some(env) = TestEnv::get() else { return };
    let conn = env.connection(Flavour::Kubernetes);
    let ns = conn.namespace.clone();
    let vim = KubeVim::new(conn);
    assert_eq!(vim.flavour().await.unwrap(), Flavour::Kubernetes);
    let before = vim.capacity().await.unwrap();
    assert_eq!(before.architectures, vec!["x86_64".to_owned()]);
    assert_eq!(before.gpus, 2);

    let w = workload("lifecycle-1");
    vim.apply(&w).await.unwrap();
    vim.apply(&w).await.unwrap(); // idempotent
    let status = settled(&vim, &w.name).await;
    assert_eq!(status.phase, WorkloadPhase::Running);
    assert_eq!((status.ready_replicas, status.desired_replicas), (2, 2));
    assert_eq!(
        pods(&env, Flavour::Kubernetes, &ns, &w.name, ".status.phase"),
        "Running Running"
    );
    let svc = env.kubectl(
        Flavour::Kubernetes,
        &[
            "get",
            "service",
            &w.name,
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.ports[0].port}",
        ],
    );
    assert_eq!(svc, "8080");
    let owner = env.kubectl(
        Flavour::Kubernetes,
        &[
            "get",
            "deployment",
            &w.name,
            "-n",
            &ns,
            "-o",
            "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.managedFields[0].manager}",
        ],
    );
    assert_eq!(owner, "ConfigMap/mecplane");
    let after = vim.capacity().await.unwrap();
    assert!(
        before.cpu_millis - after.cpu_millis >= 500,
        "two replicas request 500m: {before:?} → {after:?}"
    );
    assert!(vim.list_owned().await.unwrap().contains(&w.name));

    vim.scale(&w.name, 0).await.unwrap();
    assert_eq!(settled(&vim, &w.name).await.phase, WorkloadPhase::Stopped);
    assert_pods(
        &env,
        Flavour::Kubernetes,
        &ns,
        &w.name,
        ".metadata.name",
        "",
    )
    .await;
    vim.scale(&w.name, 2).await.unwrap();
    assert_eq!(settled(&vim, &w.name).await.phase, WorkloadPhase::Running);

    vim.delete(&w.name).await.unwrap();
    assert_eq!(vim.status(&w.name).await.unwrap(), None);
    assert_gone(&env, Flavour::Kubernetes, &ns, &w.name, "").await;
    vim.delete(&w.name).await.unwrap(); // deleting nothing succeeds
    assert!(matches!(
        vim.scale(&w.name, 1).await,
        Err(VimError::NotFound(_))
    ));
}

#[tokio::test]
async fn kubernetes_gpu_and_stateful_workloads() {
    let Some(env) = TestEnv::get() else { return };
    let conn = env.connection(Flavour::Kubernetes);
    let ns = conn.namespace.clone();
    let vim = KubeVim::new(conn);

    let mut gpu = workload("gpu-1");
    gpu.gpus = 1;
    gpu.replicas = 1;
    gpu.architecture = Some("x86_64".into());
    vim.apply(&gpu).await.unwrap();
    assert_eq!(settled(&vim, &gpu.name).await.phase, WorkloadPhase::Running);
    assert_eq!(
        pods(&env, Flavour::Kubernetes, &ns, &gpu.name, ".spec.nodeName"),
        "gpu-worker-0"
    );

    let mut db = workload("stateful-1");
    db.stateful = true;
    vim.apply(&db).await.unwrap();
    assert_eq!(settled(&vim, &db.name).await.phase, WorkloadPhase::Running);
    let pods_of_set = pods(&env, Flavour::Kubernetes, &ns, &db.name, ".metadata.name");
    assert_eq!(pods_of_set, format!("{0}-0 {0}-1", db.name));
    vim.scale(&db.name, 0).await.unwrap();
    assert_eq!(settled(&vim, &db.name).await.phase, WorkloadPhase::Stopped);

    for w in [&gpu, &db] {
        vim.delete(&w.name).await.unwrap();
        assert_gone(&env, Flavour::Kubernetes, &ns, &w.name, "").await;
    }
}

#[tokio::test]
async fn kubernetes_refusals_fail_with_the_reason() {
    let Some(env) = TestEnv::get() else { return };
    let conn = env.connection(Flavour::Kubernetes);
    let ns = conn.namespace.clone();
    let vim = KubeVim::new(conn);
    env.kubectl(Flavour::Kubernetes, &["create", "namespace", &ns]);
    env.kubectl(
        Flavour::Kubernetes,
        &["create", "quota", "no-pods", "-n", &ns, "--hard=pods=0"],
    );
    let w = workload("quota-1");
    vim.apply(&w).await.unwrap();
    match settled(&vim, &w.name).await.phase {
        WorkloadPhase::Failed(why) => assert!(why.contains("exceeded quota"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let mut bad = workload("invalid-1");
    bad.containers[0].image = String::new();
    let err = vim.apply(&bad).await.unwrap_err();
    assert!(
        matches!(err, VimError::Rejected(_)) && !err.retryable(),
        "{err:?}"
    );
    vim.delete(&w.name).await.unwrap();
    vim.delete(&bad.name).await.unwrap();
    assert_gone(&env, Flavour::Kubernetes, &ns, &w.name, "").await;
}

fn packaged_example_chart(env: &TestEnv) -> String {
    let dir = tempfile::tempdir().unwrap();
    let chart = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/examples/packages/iot-gateway/Artifacts/charts/iot-gateway"
    );
    let out = Command::new(env.tool("helm"))
        .args(["package", chart, "-d"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tgz = std::fs::read(dir.path().join("iot-gateway-0.3.0.tgz")).unwrap();
    base64::engine::general_purpose::STANDARD.encode(tgz)
}

#[tokio::test]
async fn k3s_installs_charts_through_helmchart_objects() {
    let Some(env) = TestEnv::get() else { return };
    let conn = env.connection(Flavour::K3s);
    let ns = conn.namespace.clone();
    let vim = KubeVim::new(conn);
    assert_eq!(vim.flavour().await.unwrap(), Flavour::K3s);
    let capacity = vim.capacity().await.unwrap();
    assert_eq!(
        capacity.architectures,
        vec!["aarch64".to_owned(), "x86_64".to_owned()]
    );

    let mut w = workload("chart-1");
    w.helm_chart = Some(packaged_example_chart(&env));
    vim.apply(&w).await.unwrap();
    let chart = env.kubectl(
        Flavour::K3s,
        &[
            "get",
            "helmchart",
            &w.name,
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.targetNamespace} {.spec.set.replicaCount}",
        ],
    );
    assert_eq!(chart, format!("{ns} 2"));
    let raw = env.kubectl(
        Flavour::K3s,
        &["get", "deployments", "-n", &ns, "-o", "name"],
    );
    assert_eq!(raw, "", "no raw manifests on K3s for a chart");
    assert_eq!(
        vim.status(&w.name).await.unwrap().unwrap().phase,
        WorkloadPhase::Starting
    );

    env.helm_controller_standin(&ns, &w.name);
    let status = settled(&vim, &w.name).await;
    assert_eq!(
        (status.phase, status.ready_replicas),
        (WorkloadPhase::Running, 2)
    );
    let image = pods(
        &env,
        Flavour::K3s,
        &ns,
        &w.name,
        ".spec.containers[0].image",
    );
    assert_eq!(
        image,
        "registry.example/acme/app:1.0 registry.example/acme/app:1.0"
    );

    vim.scale(&w.name, 0).await.unwrap();
    env.helm_controller_standin(&ns, &w.name);
    assert_eq!(settled(&vim, &w.name).await.phase, WorkloadPhase::Stopped);

    vim.delete(&w.name).await.unwrap();
    assert_gone(&env, Flavour::K3s, &ns, &w.name, ",helmcharts").await;

    // Without a chart, K3s runs raw manifests.
    let plain = workload("plain-1");
    vim.apply(&plain).await.unwrap();
    assert_eq!(
        settled(&vim, &plain.name).await.phase,
        WorkloadPhase::Running
    );
    vim.delete(&plain.name).await.unwrap();
    assert_gone(&env, Flavour::K3s, &ns, &plain.name, ",helmcharts").await;
}

#[tokio::test]
async fn kubeedge_pins_to_edge_nodes_and_binds_devices() {
    let Some(env) = TestEnv::get() else { return };
    let conn = env.connection(Flavour::KubeEdge);
    let ns = conn.namespace.clone();
    let vim = KubeVim::new(conn);
    assert_eq!(vim.flavour().await.unwrap(), Flavour::KubeEdge);
    let capacity = vim.capacity().await.unwrap();
    assert_eq!(capacity.cpu_millis, 6000, "edge nodes only: {capacity:?}");

    let mut w = workload("device-1");
    w.replicas = 1;
    w.architecture = Some("x86_64".into());
    w.devices = vec![DeviceRequest {
        name: "thermometer".into(),
        model: "temperature-model".into(),
        protocol: Some("modbus".into()),
    }];
    let err = vim.apply(&w).await.unwrap_err();
    assert!(
        matches!(err, VimError::Rejected(_)),
        "unknown model: {err:?}"
    );
    let model = format!(
        "apiVersion: devices.kubeedge.io/v1beta1\nkind: DeviceModel\nmetadata: {{name: temperature-model, namespace: {ns}}}\nspec: {{protocol: modbus, properties: [{{name: temperature, type: INT, accessMode: ReadOnly}}]}}\n"
    );
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), model).unwrap();
    env.kubectl(
        Flavour::KubeEdge,
        &["apply", "-f", path.path().to_str().unwrap()],
    );

    vim.apply(&w).await.unwrap();
    assert_eq!(settled(&vim, &w.name).await.phase, WorkloadPhase::Running);
    assert_eq!(
        pods(&env, Flavour::KubeEdge, &ns, &w.name, ".spec.nodeName"),
        "edge-node-1"
    );
    let device = env.kubectl(
        Flavour::KubeEdge,
        &[
            "get",
            "device",
            &format!("{}-thermometer", w.name),
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.nodeName} {.spec.deviceModelRef.name} {.spec.protocol.protocolName}",
        ],
    );
    assert_eq!(device, "edge-node-1 temperature-model modbus");
    vim.scale(&w.name, 0).await.unwrap();
    assert_eq!(settled(&vim, &w.name).await.phase, WorkloadPhase::Stopped);
    vim.apply(&w).await.unwrap(); // re-applied: stays on the node its device is bound to
    assert_eq!(settled(&vim, &w.name).await.phase, WorkloadPhase::Running);
    assert_pods(
        &env,
        Flavour::KubeEdge,
        &ns,
        &w.name,
        ".spec.nodeName",
        "edge-node-1",
    )
    .await;

    let mut free = workload("edge-1");
    free.replicas = 3;
    vim.apply(&free).await.unwrap();
    assert_eq!(
        settled(&vim, &free.name).await.phase,
        WorkloadPhase::Running
    );
    let nodes = pods(&env, Flavour::KubeEdge, &ns, &free.name, ".spec.nodeName");
    assert!(
        nodes.split(' ').all(|n| n.starts_with("edge-node-")),
        "{nodes}"
    );

    for w in [&w, &free] {
        vim.delete(&w.name).await.unwrap();
        assert_gone(&env, Flavour::KubeEdge, &ns, &w.name, ",devices").await;
    }
}
