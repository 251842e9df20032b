//! An application the MEAO deploys uses its MEP as itself, with its own credential and nothing
//! else: the sample package is instantiated on the plain Kubernetes test cluster (tests/k8s-env)
//! whose site's MEP is linked to the MEAO; the test reads the instance's Secret from the
//! kube-apiserver and runs the sample application as a local process with exactly its values
//! (kwok runs no containers: the test plays the pod). Its token works; it waits for the
//! service it requires, which a second instance (video analytics, played by the test with
//! mp1-client and its own Secret) registers; it is told, confirms ready, and only then is its
//! DNS rule answered; each instance discovers the other's service and can write none of the
//! other's resources; after a rotation the new secret works (a new process takes over, as a
//! rolled pod would) and the old one stops at the end of the grace period; after termination
//! its credential is refused at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use api_specs::mp1::service_mgmt::{ServiceInfo, ServiceQuery};
use e2e::{
    SampleApp, create_instance, link_configs, meao_config, onboard_example, resolve, start_meao,
};
use meao::events::testing::free_port;
use mp1_client::{Error, Mp1Client, Settings};
use reqwest::{Method, StatusCode};
use serde_json::json;
use server_kit::testing::{Db, TestPki, fresh_database};
use vim_adapters::kubernetes::Flavour;
use vim_adapters::kubernetes::testing::TestEnv;
use vim_adapters::workload_name;

const SITE: &str = "k8s-1";
const SAMPLE: &str = "5b0e7c3d-2a91-4f6e-8d4c-9a1b3e5f7c20";
const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";

/// The instance's Secret as the kube-apiserver holds it, once it exists (30 s at most).
async fn read_secret(env: &TestEnv, ns: &str, instance: &str) -> BTreeMap<String, String> {
    let name = workload_name(instance);
    let listed = || {
        env.kubectl(
            Flavour::Kubernetes,
            &["get", "secrets", "-n", ns, "-o", "name"],
        )
    };
    for _ in 0..300 {
        if listed().lines().any(|l| l == format!("secret/{name}")) {
            let template =
                r#"{{range $k, $v := .data}}{{$k}}={{$v | base64decode}}{{"\n"}}{{end}}"#;
            let data = env.kubectl(
                Flavour::Kubernetes,
                &[
                    "get",
                    "secret",
                    &name,
                    "-n",
                    ns,
                    "-o",
                    &format!("go-template={template}"),
                ],
            );
            return data
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no Secret {name} in {ns}");
}

/// The Secret's values as the kubelet mounts them: one file a key, named lower-case.
fn mount(secret: &BTreeMap<String, String>, dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (k, v) in secret {
        std::fs::write(dir.join(k.to_ascii_lowercase()), v).unwrap();
    }
}

fn settings(secret: &BTreeMap<String, String>) -> Settings {
    Settings::from_lookup(|k| secret.get(k).cloned(), None).unwrap()
}

/// The status of a token request with the Secret's client credentials.
async fn token_status(secret: &BTreeMap<String, String>) -> u16 {
    match Mp1Client::new(settings(secret))
        .unwrap()
        .access_token()
        .await
    {
        Ok(_) => 200,
        Err(e) => e.status().unwrap_or_default(),
    }
}

/// The status of a read of instance `app`'s DNS rules with `token` (no renewal on a 401).
async fn read_status(http: &reqwest::Client, mep: &str, app: &str, token: &str) -> StatusCode {
    let url = format!("{mep}/mec_app_support/v1/applications/{app}/dns_rules");
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Every write of the caller (`token`, instance `own`) on instance `victim`'s resources (well
/// formed, so only authorization can refuse them): the status each got.
async fn writes_on(
    http: &reqwest::Client,
    mep: &mep::server::RunningServer,
    token: &str,
    own: &str,
    victim: &str,
    victim_service: &str,
) -> Vec<(String, u16)> {
    let held = mep.platform.app_instance_get(victim).unwrap().config;
    let (traffic, dns) = (&held.app_traffic_rule[0], &held.app_dns_rule[0]);
    let service = json!({"serName": "sample-status", "version": "1.0", "state": "ACTIVE",
        "serializer": "JSON", "transportId": "mep-rest-http"});
    let subscription = json!({"subscriptionType": "SerAvailabilityNotificationSubscription",
        "callbackReference": "http://127.0.0.1:9/cb"});
    let termination = json!({"subscriptionType": "AppTerminationNotificationSubscription",
        "callbackReference": "http://127.0.0.1:9/cb", "appInstanceId": victim});
    let svc = "/mec_service_mgmt/v1/applications";
    let sup = "/mec_app_support/v1/applications";
    let writes = [
        (
            Method::POST,
            format!("{svc}/{victim}/services"),
            Some(service.clone()),
        ),
        (
            Method::PUT,
            format!("{svc}/{victim}/services/{victim_service}"),
            Some(service.clone()),
        ),
        (
            Method::DELETE,
            format!("{svc}/{victim}/services/{victim_service}"),
            None,
        ),
        (
            Method::PATCH,
            format!("{svc}/{victim}/services/{victim_service}/liveness"),
            Some(json!({"state": "ACTIVE"})),
        ),
        (
            Method::POST,
            format!("{svc}/{victim}/subscriptions"),
            Some(subscription),
        ),
        (
            Method::POST,
            format!("{sup}/{victim}/confirm_ready"),
            Some(json!({"indication": "READY"})),
        ),
        (
            Method::POST,
            format!("{sup}/{victim}/confirm_termination"),
            Some(json!({"operationAction": "TERMINATING"})),
        ),
        (
            Method::POST,
            format!("{sup}/{victim}/subscriptions"),
            Some(termination),
        ),
        (
            Method::PUT,
            format!("{sup}/{victim}/traffic_rules/{}", traffic.traffic_rule_id),
            Some(json!(traffic)),
        ),
        (
            Method::PUT,
            format!("{sup}/{victim}/dns_rules/{}", dns.dns_rule_id),
            Some(json!(dns)),
        ),
        (
            Method::PUT,
            format!("/mec_app_support/v1/registrations/{victim}"),
            Some(json!({"appName": "x"})),
        ),
        (
            Method::DELETE,
            format!("/mec_app_support/v1/registrations/{victim}"),
            None,
        ),
        (
            Method::PUT,
            format!("/mep_mgmt/v1/app_instances/{victim}"),
            Some(json!({"appInfo": {"appName": "x"}})),
        ),
        (
            Method::DELETE,
            format!("/mep_mgmt/v1/app_instances/{victim}"),
            None,
        ),
        (
            Method::PUT,
            format!("{svc}/{own}/services/{victim_service}"),
            Some(service),
        ),
        (
            Method::DELETE,
            format!("{svc}/{own}/services/{victim_service}"),
            None,
        ),
    ];
    let mut got = Vec::new();
    for (method, path, body) in writes {
        let mut r = http
            .request(method.clone(), format!("{}{path}", mep.api_root))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let status = r.send().await.unwrap().status().as_u16();
        got.push((format!("{method} {path}"), status));
    }
    got
}

/// Another instance's paths are 403; its service under the caller's own path is not found.
fn expected_refusals(own: &str, got: &[(String, u16)]) {
    for (write, status) in got {
        let under_own = write.contains(&format!("/applications/{own}/"));
        let want = if under_own { 404 } else { 403 };
        assert_eq!(*status, want, "{write}");
    }
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_application_uses_its_mep_as_itself() {
    let Some(env) = TestEnv::get() else { return };
    let binary = SampleApp::binary();
    let dir = tempfile::tempdir().unwrap();
    let k8s = env.connection(Flavour::Kubernetes);
    let ns = k8s.namespace.clone();
    let (meao_link, mep_link) =
        link_configs(&TestPki::new(dir.path(), "link CA"), SITE, free_port());

    // the site's MEP, linked to the MEAO; its URL is what instances get as MEC_MEP_URL. It
    // starts only once the first application runs, so that one has to wait for it.
    let mep_url = format!("http://127.0.0.1:{}", free_port());
    let mut mep_config = mep::config::MepConfig {
        listen: mep_url.trim_start_matches("http://").parse().unwrap(),
        database_url: fresh_database(Db::Sqlite, "mep", dir.path()).await,
        meao: Some(mep_link),
        ..mep::config::MepConfig::default()
    };
    mep_config.dns.listen = Some("127.0.0.1:0".parse().unwrap());
    mep_config.delivery.poll_interval_ms = 50;
    // the applications (their callback listeners) run on loopback
    mep_config.outbound.allow = vec!["127.0.0.0/8".into()];
    mep_config.delivery.initial_backoff_ms = 100;

    let mut config = meao_config(dir.path());
    config.mep_link = Some(meao_link);
    config.sites = vec![
        serde_json::from_value(json!({
            "id": SITE, "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris",
            "services": ["RNIS", "video-detections"], "mepUrl": mep_url,
            "vim": {"kind": "kubernetes", "kubeconfig": k8s.kubeconfig, "namespace": ns}
        }))
        .unwrap(),
    ];
    let (meao, http, m, oss) = start_meao(config).await;
    onboard_example(&http, &m, &oss, "sample-app").await;
    onboard_example(&http, &m, &oss, "video-analytics").await;
    let on_site = json!({"selectedMECHostInfo": [{"hostId": SITE}]});

    // A: the sample application. Its pod starts as soon as its Secret is there, before its
    // MEP learns of its client (here: before its MEP even runs): it waits for its credential.
    let a = create_instance(&http, &m, &oss, SAMPLE).await;
    let instantiating = tokio::spawn({
        let (http, m, oss, a, body) = (
            http.clone(),
            m.clone(),
            oss.clone(),
            a.clone(),
            on_site.clone(),
        );
        async move { e2e::run_op(&http, &m, &oss, &a, "instantiate", body).await }
    });
    let secret_a = read_secret(&env, &ns, &a).await;
    assert_eq!(secret_a["MEC_APP_INSTANCE_ID"], a);
    assert_eq!(secret_a["MEC_MEP_URL"], mep_url);
    mount(&secret_a, &dir.path().join("secrets-a"));
    let mut app_a = SampleApp::start(
        &binary,
        &secret_a,
        &dir.path().join("secrets-a"),
        dir.path(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(app_a.running(), "{}", app_a.log());
    assert!(
        app_a.status().await.is_none(),
        "serves before it authenticated"
    );
    let mep = mep::server::Server::start(mep_config).await.unwrap();
    assert_eq!(mep.api_root, mep_url);
    let dns = mep.dns_addr.unwrap();
    let op = instantiating.await.unwrap();
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");

    // its token works, and is its own: bound to A
    let as_a = Mp1Client::connect(settings(&secret_a)).await.unwrap();
    let rules = as_a.dns_rules().await.unwrap();
    assert_eq!(rules[0].domain_name, "sample.mec.example");
    let status = app_a
        .wait_status("A registered, waiting", |s| {
            s["service"]["state"] == "INACTIVE"
        })
        .await;
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(status["appInstanceId"], a.as_str());
    // not ready: its DNS rule is not answered
    assert!(resolve(dns, "sample.mec.example.").await.is_err());

    // B: a video analytics instance, played by the test with its own Secret
    let b = create_instance(&http, &m, &oss, VA).await;
    let op = e2e::run_op(&http, &m, &oss, &b, "instantiate", on_site.clone()).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    let secret_b = read_secret(&env, &ns, &b).await;
    assert_ne!(secret_b["MEC_CLIENT_SECRET"], secret_a["MEC_CLIENT_SECRET"]);
    let as_b = Mp1Client::connect(settings(&secret_b)).await.unwrap();
    as_b.confirm_ready().await.unwrap();
    let detections: ServiceInfo = serde_json::from_value(json!({
        "serName": "video-detections", "version": "1.0", "state": "ACTIVE", "serializer": "JSON",
        "transportInfo": {"id": "va-rest", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP",
            "version": "2.0", "endpoint": {"uris": ["http://10.100.0.10/detections"]}, "security": {}}
    }))
    .unwrap();
    let b_service = as_b.register_service(&detections).await.unwrap();
    let b_service_id = b_service.value.ser_instance_id.clone().unwrap();

    // A is told, confirms ready: now its DNS rule is answered
    let status = app_a.wait_status("A ready", |s| s["ready"] == true).await;
    assert_eq!(
        status["required"]["video-detections"][&b_service_id]["state"],
        "ACTIVE"
    );
    assert!(status["notifications"].as_u64() >= Some(1));
    assert_eq!(
        resolve(dns, "sample.mec.example.").await,
        Ok(vec!["10.100.0.20".to_owned()])
    );

    // each discovers the other's service
    let by_name = |name: &str| ServiceQuery {
        ser_name: Some(vec![name.to_owned()]),
        ..ServiceQuery::default()
    };
    let found = as_b.services(&by_name("sample-status")).await.unwrap();
    assert_eq!(found.len(), 1);
    let a_service_id = found[0].ser_instance_id.clone().unwrap();
    assert_eq!(found[0].endpoint_uris(), [format!("{}/status", app_a.url)]);
    assert_eq!(
        as_a.services(&by_name("video-detections")).await.unwrap(),
        vec![b_service.value.clone()]
    );

    // and can write none of the other's resources
    let a_token = as_a.access_token().await.unwrap();
    let b_token = as_b.access_token().await.unwrap();
    let got = writes_on(&http, &mep, &a_token, &a, &b, &b_service_id).await;
    expected_refusals(&a, &got);
    let got = writes_on(&http, &mep, &b_token, &b, &a, &a_service_id).await;
    expected_refusals(&b, &got);
    assert_eq!(
        as_b.service(&b_service_id).await.unwrap().value,
        b_service.value,
        "B's service untouched"
    );
    assert_eq!(
        as_a.dns_rules().await.unwrap(),
        rules,
        "A's rules untouched"
    );
    assert_eq!(
        mep.platform
            .app_instance_get(&b)
            .unwrap()
            .config
            .app_dns_rule[0]
            .domain_name,
        "detections.va.mec.example"
    );

    // rotation: the MEP accepts both secrets until the end of the grace period; the Secret
    // gets the new one and the pod rolls (a new process takes over, the old one is stopped)
    let old_token = as_a.access_token().await.unwrap();
    let op = e2e::run_op(
        &http,
        &m,
        &oss,
        &a,
        "rotate_credentials",
        json!({"gracePeriod": 15}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    let rotated = read_secret(&env, &ns, &a).await;
    assert_ne!(rotated["MEC_CLIENT_SECRET"], secret_a["MEC_CLIENT_SECRET"]);
    assert_ne!(rotated["MEC_CREDENTIAL_ID"], secret_a["MEC_CREDENTIAL_ID"]);
    assert_eq!(rotated["MEC_CLIENT_ID"], secret_a["MEC_CLIENT_ID"]);
    let credentials = e2e::get_json(
        &http,
        &format!("{m}/app_lcm/v1/app_instances/{a}/credentials"),
        &oss,
    )
    .await;
    let not_after = credentials["credentials"][1]["notAfter"]["seconds"]
        .as_i64()
        .unwrap();
    assert_eq!(
        credentials["credentials"][0]["credentialId"],
        rotated["MEC_CREDENTIAL_ID"].as_str()
    );
    // inside the grace period both work
    let now = || server_kit::unix_millis_now() / 1000;
    assert!(
        now() < not_after,
        "the rotation took the whole grace period"
    );
    assert_eq!(token_status(&secret_a).await, 200);
    assert_eq!(
        read_status(&http, &mep.api_root, &a, &old_token).await,
        StatusCode::OK
    );
    let as_a2 = Mp1Client::connect(settings(&rotated)).await.unwrap();
    as_a2.dns_rules().await.unwrap();
    mount(&rotated, &dir.path().join("secrets-a2"));
    let mut app_a2 = SampleApp::start(
        &binary,
        &rotated,
        &dir.path().join("secrets-a2"),
        dir.path(),
    );
    app_a2
        .wait_status("A's new process ready", |s| {
            s["ready"] == true && s["service"]["state"] == "ACTIVE"
        })
        .await;
    app_a.sigterm();
    assert!(app_a.wait_exit().await.success(), "{}", app_a.log());
    wait_until("the grace period ends", async || now() > not_after).await;
    assert_eq!(token_status(&secret_a).await, 401);
    assert_eq!(
        read_status(&http, &mep.api_root, &a, &old_token).await,
        StatusCode::UNAUTHORIZED,
        "tokens of the old secret end with it"
    );
    assert_eq!(token_status(&rotated).await, 200);
    let services = as_a2.own_services(&by_name("sample-status")).await.unwrap();
    assert_eq!(services.len(), 1);
    assert!(services[0].endpoint_uris()[0].starts_with(&app_a2.url));

    // termination: the application is told, confirms and exits; its credential ends at once
    let new_token = as_a2.access_token().await.unwrap();
    let terminating = tokio::spawn({
        let (http, m, oss, a) = (http.clone(), m.clone(), oss.clone(), a.clone());
        async move {
            e2e::run_op(
                &http,
                &m,
                &oss,
                &a,
                "terminate",
                json!({"terminationType": "GRACEFUL", "gracefulTerminationTimeout": 30}),
            )
            .await
        }
    });
    let exit = app_a2.wait_exit().await;
    assert!(exit.success(), "{exit}: {}", app_a2.log());
    assert!(
        app_a2.log().contains("confirmed termination"),
        "{}",
        app_a2.log()
    );
    assert_eq!(
        read_status(&http, &mep.api_root, &a, &new_token).await,
        StatusCode::UNAUTHORIZED,
        "revoked with the confirmation"
    );
    let op = terminating.await.unwrap();
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    assert_eq!(token_status(&rotated).await, 401);
    let refused = as_a2.dns_rules().await.unwrap_err();
    assert!(
        matches!(&refused, Error::TokenRefused { status: 401, .. }),
        "{refused}"
    );
    assert!(resolve(dns, "sample.mec.example.").await.is_err());

    // B goes too (its service's removal reaches nobody now)
    let op = e2e::run_op(
        &http,
        &m,
        &oss,
        &b,
        "terminate",
        json!({"terminationType": "FORCEFUL"}),
    )
    .await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    assert_eq!(token_status(&secret_b).await, 401);
    mep.shutdown().await;
    meao.shutdown().await;
}
