//! The MEAO instantiating example packages onto real clusters (tests/k8s-env): the video
//! analytics application on a plain Kubernetes site, the IoT gateway on a KubeEdge site and,
//! through its Helm chart, on a K3s site; then terminating them all, leaving nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use e2e::{create_instance, meao_config, onboard_example, run_op, token};
use serde_json::{Value, json};
use vim_adapters::kubernetes::Flavour;
use vim_adapters::kubernetes::testing::TestEnv;
use vim_adapters::workload_name;

const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";
const IOT: &str = "iot-gateway-fieldbus-0.3";

/// Waits until nothing of the instance is left on the cluster.
async fn gone(env: &TestEnv, flavour: Flavour, ns: &str, id: &str) {
    let selector = format!("app.kubernetes.io/instance={}", workload_name(id));
    let mut kinds = "deployments,replicasets,pods,services,configmaps".to_owned();
    if flavour == Flavour::K3s {
        kinds.push_str(",helmcharts");
    }
    for _ in 0..240 {
        let left = env.kubectl(
            flavour,
            &["get", &kinds, "-n", ns, "-l", &selector, "-o", "name"],
        );
        if left.trim().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("instance {id} left objects on the {flavour:?} cluster");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_packages_run_on_real_clusters() {
    let Some(env) = TestEnv::get() else { return };
    let dir = tempfile::tempdir().unwrap();
    let k8s = env.connection(Flavour::Kubernetes);
    let edge = env.connection(Flavour::KubeEdge);
    let k3s = env.connection(Flavour::K3s);
    let (k8s_ns, edge_ns, k3s_ns) = (
        k8s.namespace.clone(),
        edge.namespace.clone(),
        k3s.namespace.clone(),
    );

    let mut config = meao_config(dir.path());
    config.reconcile_interval_secs = 1;
    config.sites = vec![
        serde_json::from_value(json!({
            "id": "k8s-1", "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris",
            "services": ["RNIS"], "vim": {"kind": "kubernetes", "kubeconfig": k8s.kubeconfig, "namespace": k8s_ns}
        }))
        .unwrap(),
        serde_json::from_value(json!({
            "id": "edge-1", "location": {"latitude": 48.80, "longitude": 2.30}, "zone": "paris",
            "vim": {"kind": "kubernetes", "kubeconfig": edge.kubeconfig, "namespace": edge_ns}
        }))
        .unwrap(),
        serde_json::from_value(json!({
            "id": "k3s-1", "location": {"latitude": 48.90, "longitude": 2.40}, "zone": "paris",
            "vim": {"kind": "kubernetes", "kubeconfig": k3s.kubeconfig, "namespace": k3s_ns}
        }))
        .unwrap(),
    ];
    let meao = meao::server::Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let m = meao.api_root.clone();
    let oss = token(&http, &m, "oss", "oss-secret").await;
    onboard_example(&http, &m, &oss, "video-analytics").await;
    onboard_example(&http, &m, &oss, "iot-gateway").await;

    // The inventory reads the clusters: flavour and free capacity.
    let site: Value = http
        .get(format!("{m}/inventory/v1/sites/edge-1"))
        .bearer_auth(&oss)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(site["healthy"], true, "{site:#}");
    assert_eq!(
        site["freeCapacity"]["labels"]["mecplane.io/flavour"],
        "kubeedge"
    );

    // A cluster added through the API comes with its kubeconfig's content, which is never shown.
    let content = env.kubeconfig_content(Flavour::Kubernetes);
    let r = http
        .put(format!("{m}/inventory/v1/sites/api-1"))
        .bearer_auth(&oss)
        .json(&json!({
            "id": "api-1", "location": {"latitude": 48.0, "longitude": 2.0}, "zone": "paris",
            "vim": {"kind": "kubernetes", "kubeconfigContent": content, "namespace": k8s_ns}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let shown = http
        .get(format!("{m}/inventory/v1/sites/api-1"))
        .bearer_auth(&oss)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !shown.contains("kubeconfigContent") && !shown.contains("token"),
        "{shown}"
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["healthy"], true, "{shown:#}");
    assert_eq!(
        shown["freeCapacity"]["labels"]["mecplane.io/flavour"],
        "kubernetes"
    );
    let r = http
        .delete(format!("{m}/inventory/v1/sites/api-1"))
        .bearer_auth(&oss)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let mut ids = Vec::new();
    for (appd, host) in [(VA, "k8s-1"), (IOT, "edge-1"), (IOT, "k3s-1")] {
        let id = create_instance(&http, &m, &oss, appd).await;
        // On K3s the chart is installed by the helm-controller (here: its stand-in).
        let installer = (host == "k3s-1").then(|| {
            let (env, ns, name) = (env.clone(), k3s_ns.clone(), workload_name(&id));
            tokio::task::spawn_blocking(move || {
                while !env.helm_controller_standin(&ns, &name) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        });
        let op = run_op(
            &http,
            &m,
            &oss,
            &id,
            "instantiate",
            json!({"selectedMECHostInfo": [{"hostId": host}]}),
        )
        .await;
        assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
        if let Some(installer) = installer {
            installer.await.unwrap();
        }
        ids.push(id);
    }

    // The video analytics application runs on the Kubernetes site with its service ports.
    let va = workload_name(&ids[0]);
    let phases = env.kubectl(
        Flavour::Kubernetes,
        &[
            "get",
            "pods",
            "-n",
            &k8s_ns,
            "-l",
            &format!("app.kubernetes.io/instance={va}"),
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
    );
    assert_eq!(phases, "Running");
    let ports = env.kubectl(
        Flavour::Kubernetes,
        &[
            "get",
            "service",
            &va,
            "-n",
            &k8s_ns,
            "-o",
            "jsonpath={.spec.ports[*].port}",
        ],
    );
    assert_eq!(ports, "554 8554");
    let image = env.kubectl(Flavour::Kubernetes, &["get", "deployment", &va, "-n", &k8s_ns, "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].resources.limits.cpu}"]);
    assert_eq!(
        image,
        "registry.acme.example/vision/video-analytics:2.3.0 4"
    );

    // Drift is repaired: an image changed by hand is set back, a deleted Deployment comes back.
    let image_of = || {
        env.kubectl(
            Flavour::Kubernetes,
            &[
                "get",
                "deployment",
                &va,
                "-n",
                &k8s_ns,
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
                "--ignore-not-found",
            ],
        )
    };
    env.kubectl(
        Flavour::Kubernetes,
        &["patch", "deployment", &va, "-n", &k8s_ns, "--type=json", "-p",
          r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"evil.example/miner:1"}]"#],
    );
    assert_eq!(image_of(), "evil.example/miner:1");
    let expected = "registry.acme.example/vision/video-analytics:2.3.0";
    let settled = async |what: &str| {
        for _ in 0..120 {
            if image_of() == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{what}: the Deployment was not repaired");
    };
    settled("image changed by hand").await;
    env.kubectl(
        Flavour::Kubernetes,
        &["delete", "deployment", &va, "-n", &k8s_ns, "--wait=true"],
    );
    settled("Deployment deleted by hand").await;

    // The IoT gateway runs on an edge node, its included image named for the site registry.
    let iot = workload_name(&ids[1]);
    let pod = env.kubectl(
        Flavour::KubeEdge,
        &[
            "get",
            "pods",
            "-n",
            &edge_ns,
            "-l",
            &format!("app.kubernetes.io/instance={iot}"),
            "-o",
            "jsonpath={.items[*].spec.nodeName} {.items[*].spec.containers[0].image}",
        ],
    );
    assert!(
        pod.starts_with("edge-node-") && pod.ends_with(" fieldbus/iot-agent:0.3.0"),
        "{pod}"
    );

    // On K3s a HelmChart carries the chart the MEAO packed from the package; its release runs.
    let release = workload_name(&ids[2]);
    let chart = env.kubectl(
        Flavour::K3s,
        &[
            "get",
            "helmchart",
            &release,
            "-n",
            &k3s_ns,
            "-o",
            "jsonpath={.spec.targetNamespace}",
        ],
    );
    assert_eq!(chart, k3s_ns);
    let deployment = env.kubectl(
        Flavour::K3s,
        &[
            "get",
            "deployments",
            "-n",
            &k3s_ns,
            "-l",
            &format!("app.kubernetes.io/instance={release}"),
            "-o",
            "jsonpath={.items[*].metadata.name} {.items[*].status.readyReplicas}",
        ],
    );
    assert_eq!(deployment, format!("{release}-iot-gateway 1"));

    // Graceful and forceful termination leave nothing behind.
    let graceful = json!({"terminationType": "GRACEFUL", "gracefulTerminationTimeout": 30});
    let forceful = json!({"terminationType": "FORCEFUL"});
    for (id, how) in ids.iter().zip([graceful, forceful.clone(), forceful]) {
        let op = run_op(&http, &m, &oss, id, "terminate", how).await;
        assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    }
    gone(&env, Flavour::Kubernetes, &k8s_ns, &ids[0]).await;
    gone(&env, Flavour::K3s, &k3s_ns, &ids[2]).await;
    gone(&env, Flavour::KubeEdge, &edge_ns, &ids[1]).await;
}
