//! The operator portal in a real browser: Debian's chromium driven by playwright-core
//! (`tests/portal/portal.test.mjs`) against the demo's own configuration (its portal users and
//! passwords, its sites, paris-1's MEP linked over mutual TLS), as an operator who has never
//! seen the API would use it after `scripts/run-demo.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use e2e::{get_json, token};
use serde_json::json;

/// Chromium, node and playwright-core; `None` (the test is skipped) when one is missing,
/// except under CI=true.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("MECPLANE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("portal");
    let playwright = tests.join("node_modules/playwright-core");
    let node = std::process::Command::new("node").arg("--version").output();
    let missing = [
        (!chromium.exists()).then_some("chromium (apt-get install chromium)"),
        node.is_err().then_some("node"),
        (!playwright.exists())
            .then_some("playwright-core (npm ci in tests/portal; scripts/install-deps.sh does)"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if missing.is_empty() {
        return Some((chromium, tests));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the browser tests cannot run: missing {missing:?}"
    );
    eprintln!("skipping the portal's browser test: missing {missing:?}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_onboards_deploys_watches_and_removes_in_the_portal() {
    let Some((chromium, tests)) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // the example package is signed by its provider, whose CA the MEAO trusts
    let (ca, ca_key) = server_kit::testing::certificate("ACME Vision CA", None, true);
    let (cert, key) =
        server_kit::testing::certificate("ACME Vision releases", Some((&ca, &ca_key)), false);
    let trusted = dir.path().join("package-ca.pem");
    std::fs::write(&trusted, ca.to_pem().unwrap()).unwrap();
    let (meao, mep) = e2e::demo(dir.path(), |config| {
        config.packages.trust_anchors = vec![trusted.clone()];
    })
    .await;
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/packages");
    let good = dir.path().join("video-analytics.zip");
    let signer = app_package::build::Signer {
        cert: &cert,
        key: &key,
    };
    let zip = app_package::build::build(&examples.join("video-analytics"), Some(signer)).unwrap();
    std::fs::write(&good, zip).unwrap();
    // the README's broken package: two mistakes in the AppD, every problem shown with its path
    let broken_dir = dir.path().join("cdn-cache");
    std::fs::create_dir_all(&broken_dir).unwrap();
    for entry in std::fs::read_dir(examples.join("cdn-cache")).unwrap() {
        let entry = entry.unwrap();
        assert!(entry.path().is_file(), "the cdn-cache example is flat");
        std::fs::copy(entry.path(), broken_dir.join(entry.file_name())).unwrap();
    }
    let appd = broken_dir.join("cdn-cache.yaml");
    let text: String = std::fs::read_to_string(&appd)
        .unwrap()
        .replace("action: FORWARD_DECAPSULATED", "action: FORWARD")
        .lines()
        .filter(|l| !l.starts_with("appDVersion"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&appd, text).unwrap();
    let broken = dir.path().join("cdn-cache.zip");
    std::fs::write(
        &broken,
        app_package::build::build(&broken_dir, None).unwrap(),
    )
    .unwrap();
    // a cluster nothing listens for, whose kubeconfig an admin uploads through the site form
    let kubeconfig = dir.path().join("edge-k8s.kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: edge\n\
         clusters: [{name: edge, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         contexts: [{name: edge, context: {cluster: edge, user: edge}}]\n\
         users: [{name: edge, user: {token: not-a-real-token}}]\n",
    )
    .unwrap();
    // another client of the REST API, whose changes the portal shows as they happen
    let api_token = token(&reqwest::Client::new(), &meao.api_root, "oss", "oss-secret").await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    let mut child = tokio::process::Command::new("node")
        .arg(tests.join("portal.test.mjs"))
        .env("PORTAL_URL", format!("{}/portal/", meao.api_root))
        .env("CHROMIUM", &chromium)
        .env("GOOD_PACKAGE", &good)
        .env("BROKEN_PACKAGE", &broken)
        .env("SCREENSHOTS", &shots)
        .env("API_TOKEN", &api_token)
        .env("KUBECONFIG_FILE", &kubeconfig)
        // the demo's passwords, as the README gives them
        .env("OPERATOR_PASSWORD", "operator-demo")
        .env("VIEWER_PASSWORD", "viewer-demo")
        .env("ADMIN_PASSWORD", "admin-demo")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(300), child.wait())
        .await
        .expect("the browser test ends within 5 minutes")
        .unwrap();
    eprintln!("screenshots in {}", shots.display());
    assert!(status.success(), "the browser test failed: {status}");

    // what the browser did, as the API sees it: the instance is gone from the MEAO and from
    // paris-1's MEP, the example package stays, the broken one is deleted, no forged one
    let http = reqwest::Client::new();
    let base = &meao.api_root;
    let token = token(&http, base, "oss", "oss-secret").await;
    let instances = get_json(&http, &format!("{base}/app_lcm/v1/app_instances"), &token).await;
    assert_eq!(instances, json!([]));
    let packages = get_json(&http, &format!("{base}/app_pkgm/v1/app_packages"), &token).await;
    let names: Vec<&str> = packages
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["appName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["video-analytics"]);
    let site = get_json(
        &http,
        &format!("{base}/inventory/v1/sites/paris-1/mep"),
        &token,
    )
    .await;
    let live: Vec<_> = site["appInstances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["removal"] != true)
        .collect();
    assert!(live.is_empty(), "{site}");
    meao.shutdown().await;
    mep.shutdown().await;
}
