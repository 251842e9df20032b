//! Images by digest, against a real registry (the CNCF distribution registry built from Go
//! modules; `MECPLANE_REGISTRY` names its binary) and the plain Kubernetes test cluster
//! (tests/k8s-env). A package names one image by a tag in a registry and ships another as a
//! docker-archive in `Artifacts/images/`. Instantiated on a site with an `imageRegistry`, the
//! shipped image is pushed there and the tag resolved: the Deployment names both by digest,
//! and the registry holds what the Deployment names. Then the tag moves: the running
//! instance keeps its digest, also when its Deployment is deleted by hand and repaired, while a
//! new instance gets the new one. A tag the registry does not have fails the instantiation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use e2e::{create_instance, example_dir, meao_config, onboard_dir, run_op, start_meao};
use meao::events::testing::free_port;
use meao::images::{ImageArchive, ImageRef, Registries, RegistryConfig, testing};
use serde_json::{Value, json};
use server_kit::outbound::{Destinations, OutboundPolicy};
use vim_adapters::kubernetes::Flavour;
use vim_adapters::kubernetes::testing::TestEnv;
use vim_adapters::workload_name;

const SAMPLE: &str = "5b0e7c3d-2a91-4f6e-8d4c-9a1b3e5f7c20";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A distribution registry on a loopback port, its storage in a directory of its own.
struct Registry {
    child: std::process::Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts the registry `MECPLANE_REGISTRY` names; `None` (the test skips) when unset
    /// outside CI.
    async fn start() -> Option<Self> {
        let Ok(binary) = std::env::var("MECPLANE_REGISTRY") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but MECPLANE_REGISTRY is not set: the image tests cannot run"
            );
            eprintln!("skipped: MECPLANE_REGISTRY is not set (scripts/test.sh builds it)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let mut child = std::process::Command::new(binary)
            .args(["serve", config.to_str().unwrap()])
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let host = format!("127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("http://{host}/v2/"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return Some(Self {
                    child,
                    host,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the registry did not start: {}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    fn config(&self) -> RegistryConfig {
        RegistryConfig {
            host: self.host.clone(),
            url: Some(format!("http://{}", self.host)),
            username: None,
            password: None,
            ca_file: None,
        }
    }

    /// Pushes a one-layer image holding `content` as `repository:tag`, with the MEAO's own
    /// client (the registry checks every digest); returns the digest it answers for the tag.
    async fn push(&self, repository: &str, tag: &str, content: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        std::fs::write(&path, testing::oci_layout(content)).unwrap();
        let archive = ImageArchive::open(&path).unwrap();
        let client = Registries::new(
            &[self.config()],
            &Destinations::new(&OutboundPolicy::default()).unwrap(),
        )
        .unwrap();
        let target = ImageRef::parse(&format!("{}/{repository}:{tag}", self.host)).unwrap();
        let pushed = client.push(&target, &archive).await.unwrap();
        assert_eq!(self.manifest(repository, tag).await.0, pushed);
        pushed
    }

    /// The digest and manifest the registry answers for `repository:reference`, read with a
    /// plain HTTP client.
    async fn manifest(&self, repository: &str, reference: &str) -> (String, Value) {
        let r = reqwest::Client::new()
            .get(format!(
                "http://{}/v2/{repository}/manifests/{reference}",
                self.host
            ))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{repository}:{reference}");
        let digest = r.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_owned();
        (digest, r.json().await.unwrap())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sample package, its first image named by `tag_ref` and a second one shipped in the
/// package as a docker-archive (`mecplane/agent` 0.2.0) run by a second container.
fn package(tag_ref: &str, app_d_id: &str) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let src = example_dir("sample-app");
    for sub in ["TOSCA-Metadata", "Definitions"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    for file in [
        "TOSCA-Metadata/TOSCA.meta",
        "Definitions/appd.yaml",
        "sample-app.mf",
    ] {
        std::fs::copy(src.join(file), dir.path().join(file)).unwrap();
    }
    let agent = testing::docker_archive("agent 0.2.0");
    std::fs::create_dir_all(dir.path().join("Artifacts/images")).unwrap();
    std::fs::write(dir.path().join("Artifacts/images/agent.tar"), &agent).unwrap();
    let appd_path = dir.path().join("Definitions/appd.yaml");
    let mut appd: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&appd_path).unwrap()).unwrap();
    appd["appDId"] = json!(app_d_id);
    appd["swImageDescriptor"][0]["swImage"] = json!(tag_ref);
    let hash: String = openssl::sha::sha256(&agent)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    appd["swImageDescriptor"].as_array_mut().unwrap().push(json!({
        "id": "agent", "name": "mecplane/agent", "version": "0.2.0", "containerFormat": "DOCKER",
        "checksum": {"algorithm": "SHA-256", "hash": hash}, "swImage": "Artifacts/images/agent.tar"
    }));
    let mut second = appd["osContainerDescriptor"][0].clone();
    second["osContainerDescId"] = json!("agent");
    second["name"] = json!("agent");
    second["swImageDesc"] = json!("agent");
    appd["osContainerDescriptor"]
        .as_array_mut()
        .unwrap()
        .push(second);
    std::fs::write(&appd_path, serde_yaml::to_string(&appd).unwrap()).unwrap();
    (dir, agent)
}

/// The images of an instance's Deployment, by container; empty while it does not exist.
fn images(env: &TestEnv, ns: &str, instance: &str) -> Vec<String> {
    env.kubectl(
        Flavour::Kubernetes,
        &[
            "get",
            "deployment",
            &workload_name(instance),
            "-n",
            ns,
            "--ignore-not-found",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].image}",
        ],
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_deployed_by_digest() {
    let Some(env) = TestEnv::get() else { return };
    let Some(registry) = Registry::start().await else {
        return;
    };
    let host = registry.host.clone();
    let vendor_v1 = registry
        .push("vendor/app", "1.0", "vendor 1.0, first build")
        .await;

    let dir = tempfile::tempdir().unwrap();
    let k8s = env.connection(Flavour::Kubernetes);
    let ns = k8s.namespace.clone();
    let mut config = meao_config(dir.path());
    config.reconcile_interval_secs = 1;
    config.images.pin_digests = true;
    config.images.registries = vec![registry.config()];
    config.sites = vec![
        serde_json::from_value(json!({
            "id": "k8s-1", "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris",
            "imageRegistry": format!("{host}/site1"), "services": ["video-detections"],
            "vim": {"kind": "kubernetes", "kubeconfig": k8s.kubeconfig, "namespace": ns}
        }))
        .unwrap(),
    ];
    let (_meao, http, m, oss) = start_meao(config).await;
    let (pkg, _) = package(&format!("{host}/vendor/app:1.0"), SAMPLE);
    onboard_dir(&http, &m, &oss, "sample-app-images", pkg.path()).await;

    // Instantiated: the shipped image is pushed to the site's registry, the tag resolved.
    let first = create_instance(&http, &m, &oss, SAMPLE).await;
    let body = json!({"selectedMECHostInfo": [{"hostId": "k8s-1"}]});
    let op = run_op(&http, &m, &oss, &first, "instantiate", body.clone()).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    let (agent_digest, agent_manifest) = registry.manifest("site1/mecplane/agent", "0.2.0").await;
    let expected = vec![
        format!("{host}/vendor/app:1.0@{vendor_v1}"),
        format!("{host}/site1/mecplane/agent:0.2.0@{agent_digest}"),
    ];
    assert_eq!(images(&env, &ns, &first), expected);
    // what the registry holds under that digest is the shipped image: its layer, byte for byte
    assert_eq!(
        registry
            .manifest("site1/mecplane/agent", &agent_digest)
            .await
            .0,
        agent_digest
    );
    let layer = agent_manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = http
        .get(format!(
            "http://{host}/v2/site1/mecplane/agent/blobs/{layer}"
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        blob.as_ref(),
        testing::tar(&[("content", b"agent 0.2.0")]).as_slice()
    );

    // The tag moves. The running instance keeps its digest, also when repaired.
    let vendor_v2 = registry
        .push("vendor/app", "1.0", "vendor 1.0, rebuilt")
        .await;
    assert_ne!(vendor_v1, vendor_v2);
    env.kubectl(
        Flavour::Kubernetes,
        &["delete", "deployment", &workload_name(&first), "-n", &ns],
    );
    let mut repaired = Vec::new();
    for _ in 0..240 {
        repaired = images(&env, &ns, &first);
        if !repaired.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(repaired, expected, "the repaired Deployment");

    // A new instance is pinned to where the tag points now.
    let second = create_instance(&http, &m, &oss, SAMPLE).await;
    let op = run_op(&http, &m, &oss, &second, "instantiate", body.clone()).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    assert_eq!(
        images(&env, &ns, &second)[0],
        format!("{host}/vendor/app:1.0@{vendor_v2}")
    );

    // A tag the registry does not have: the instantiation is rolled back (FAILED_TEMP, for
    // the operator to retry or fail) and says why.
    let (missing, _) = package(&format!("{host}/vendor/app:9.9"), "images-missing-tag");
    onboard_dir(&http, &m, &oss, "missing-tag", missing.path()).await;
    let third = create_instance(&http, &m, &oss, "images-missing-tag").await;
    let op = run_op(&http, &m, &oss, &third, "instantiate", body).await;
    assert_eq!(op["operationState"], "FAILED_TEMP", "{op:#}");
    let detail = op["error"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("vendor/app:9.9"), "{op:#}");
    assert!(images(&env, &ns, &third).is_empty());

    for id in [&first, &second] {
        let forceful = json!({"terminationType": "FORCEFUL"});
        let op = run_op(&http, &m, &oss, id, "terminate", forceful).await;
        assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    }
}
