//! The sample application's binary against a real MEP (in-process, SQLite), its instances
//! provisioned with their own OAuth 2.0 clients as MEC management does: it waits for what it
//! requires before it confirms ready, follows the required service as it comes and goes (its
//! service and traffic rule with it), ignores a termination notice the MEP does not confirm,
//! leaves when terminated, and on SIGTERM hands over to the process that replaces it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use api_specs::mp1::app_support::{OperationActionType, RuleState};
use api_specs::mp1::provisioning::AppInstanceConfig;
use api_specs::mp1::service_mgmt::{ServiceInfo, ServiceQuery, ServiceState};
use e2e::SampleApp;
use mep::platform::AppInstanceState;
use mp1_client::{ClientSecret, Mp1Client, Settings, api_specs};
use serde_json::{Value, json};
use server_kit::auth::secret_digest_b64;

struct Site {
    mep: mep::server::RunningServer,
    dir: tempfile::TempDir,
    secrets: tempfile::TempDir,
}

impl Site {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = mep::config::MepConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}/mep.db?mode=rwc", dir.path().display()),
            ..mep::config::MepConfig::default()
        };
        config.dns.listen = None;
        config.delivery.poll_interval_ms = 50;
        // the applications (their callback listeners) run on loopback
        config.outbound.allow = vec!["127.0.0.0/8".into()];
        config.delivery.initial_backoff_ms = 100;
        let mep = mep::server::Server::start(config).await.unwrap();
        Self {
            mep,
            dir,
            secrets: tempfile::tempdir().unwrap(),
        }
    }

    /// Provisions instance `id` with `required` services and its own client.
    async fn provision(&self, id: &str, required: &[&str]) {
        let required: Vec<Value> = required
            .iter()
            .map(|s| json!({"serName": s, "version": "1.0"}))
            .collect();
        let config: AppInstanceConfig = serde_json::from_value(json!({
            "appInfo": {"appName": "sample-app", "appServiceRequired": required},
            "appServiceProduced": [{"serName": "sample-status", "version": "1.0"},
                                   {"serName": "video-detections", "version": "1.0"}],
            "appTrafficRule": [{
                "trafficRuleId": "sample-http", "filterType": "FLOW", "priority": 10,
                "trafficFilter": [{"dstAddress": ["198.51.100.20/32"], "dstPort": ["8080"], "protocol": ["TCP"]}],
                "action": "FORWARD_DECAPSULATED",
                "dstInterface": {"interfaceType": "IP", "dstIpAddress": "10.100.0.20"},
                "state": "ACTIVE"
            }],
            "oauth2Client": {"clientId": format!("client-{id}"), "credentials": [
                {"credentialId": "c1", "secretDigest": secret_digest_b64(&format!("secret-{id}"))}
            ]}
        }))
        .unwrap();
        self.mep
            .platform
            .app_instance_put(id, config)
            .await
            .unwrap();
    }

    /// What instance `id`'s Secret holds.
    fn secret(&self, id: &str) -> BTreeMap<String, String> {
        [
            ("MEC_APP_INSTANCE_ID", id.to_owned()),
            ("MEC_MEP_URL", self.mep.api_root.clone()),
            ("MEC_CLIENT_ID", format!("client-{id}")),
            ("MEC_CLIENT_SECRET", format!("secret-{id}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn run(&self, id: &str) -> SampleApp {
        SampleApp::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_sample-app")),
            &self.secret(id),
            self.secrets.path(),
            self.dir.path(),
        )
    }

    async fn client(&self, id: &str) -> Mp1Client {
        let settings = Settings::new(
            id,
            &self.mep.api_root,
            format!("client-{id}"),
            ClientSecret::new(format!("secret-{id}")),
        )
        .unwrap();
        Mp1Client::connect(settings).await.unwrap()
    }

    fn state(&self, id: &str) -> Option<AppInstanceState> {
        self.mep.platform.app_instance_get(id).ok().map(|r| r.state)
    }

    fn rule_state(&self, id: &str) -> RuleState {
        self.mep
            .platform
            .traffic_rule_get(id, "sample-http")
            .unwrap()
            .value
            .state
    }

    /// Instance `id`'s `sample-status` services.
    fn services(&self, id: &str) -> Vec<ServiceInfo> {
        let query = ServiceQuery {
            ser_name: Some(vec!["sample-status".into()]),
            ..ServiceQuery::default()
        };
        serde_json::from_slice(&self.mep.platform.service_list_json(Some(id), &query)).unwrap()
    }

    /// Stops or terminates instance `id` gracefully; `app` confirms and exits by itself.
    async fn end(&self, id: &str, action: OperationActionType, app: &mut SampleApp) {
        self.mep
            .platform
            .app_instance_begin(id, action, 30)
            .await
            .unwrap();
        let exit = app.wait_exit().await;
        assert!(exit.success(), "{exit}: {}", app.log());
    }

    fn termination_callbacks(&self, id: &str) -> Vec<String> {
        let links = self
            .mep
            .platform
            .subscription_links(id, "AppTerminationNotificationSubscription")
            .unwrap();
        links
            .iter()
            .map(|l| {
                let sub = l.href.rsplit('/').next().unwrap();
                self.mep
                    .platform
                    .app_termination_subscription(id, sub)
                    .unwrap()
                    .callback_reference
            })
            .collect()
    }
}

fn detections() -> ServiceInfo {
    serde_json::from_value(json!({
        "serName": "video-detections", "version": "1.0", "state": "ACTIVE", "serializer": "JSON",
        "transportInfo": {"id": "rest", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP",
            "version": "2.0", "endpoint": {"uris": ["http://10.100.0.10/detections"]}, "security": {}}
    }))
    .unwrap()
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_application_waits_for_what_it_requires_and_leaves_when_terminated() {
    let site = Site::start().await;
    site.provision("s1", &["video-detections"]).await;
    site.provision("v1", &[]).await;
    let mut app = site.run("s1");

    // up, registered, but waiting: its service and rule inactive, not ready at the MEP
    let status = app
        .wait_status("its service", |s| s["service"]["state"] == "INACTIVE")
        .await;
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(site.state("s1"), Some(AppInstanceState::Instantiated));
    assert_eq!(site.rule_state("s1"), RuleState::Inactive);
    let registered = site.services("s1");
    assert_eq!(registered.len(), 1);
    assert_eq!(
        registered[0].endpoint_uris(),
        [format!("{}/status", app.url)]
    );
    let greeting = reqwest::get(&app.url).await.unwrap().text().await.unwrap();
    assert_eq!(greeting, "s1 is waiting for video-detections.\n");

    // the required service appears: it is told, confirms ready, activates its service and rule
    let provider = site.client("v1").await;
    let detection = provider.register_service(&detections()).await.unwrap();
    let status = app.wait_status("ready", |s| s["ready"] == true).await;
    assert_eq!(site.state("s1"), Some(AppInstanceState::Ready));
    assert_eq!(status["service"]["state"], "ACTIVE");
    let known = &status["required"]["video-detections"];
    let id = detection.value.ser_instance_id.clone().unwrap();
    assert_eq!(
        known[&id],
        json!({"state": "ACTIVE", "uris": ["http://10.100.0.10/detections"]})
    );
    assert_eq!(site.rule_state("s1"), RuleState::Active);
    assert_eq!(site.services("s1")[0].state, ServiceState::Active);

    // it goes away: the application stops offering its service and steering traffic to itself
    provider.deregister_service(&id).await.unwrap();
    app.wait_status("service inactive again", |s| {
        s["service"]["state"] == "INACTIVE"
    })
    .await;
    eventually("rule inactive", || {
        site.rule_state("s1") == RuleState::Inactive
    })
    .await;
    assert_eq!(site.services("s1")[0].state, ServiceState::Inactive);
    provider.register_service(&detections()).await.unwrap();
    app.wait_status("active again", |s| s["service"]["state"] == "ACTIVE")
        .await;

    // a termination notice the MEP did not send is ignored
    let callbacks = site.termination_callbacks("s1");
    assert_eq!(callbacks.len(), 1);
    let spoofed = json!({"notificationType": "AppTerminationNotification",
        "operationAction": "TERMINATING", "maxGracefulTimeout": 5,
        "_links": {"subscription": {"href": "http://attacker/s"}}});
    let before = app.status().await.unwrap()["notifications"]
        .as_u64()
        .unwrap();
    let r = reqwest::Client::new()
        .post(&callbacks[0])
        .json(&spoofed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    app.wait_status("the notice handled", |s| {
        s["notifications"].as_u64() > Some(before)
    })
    .await;
    assert!(app.running(), "{}", app.log());
    assert!(
        app.log().contains("the MEP does not confirm"),
        "{}",
        app.log()
    );

    // MEC management terminates the instance gracefully: it confirms and exits; all is gone
    site.end("s1", OperationActionType::Terminating, &mut app)
        .await;
    assert_eq!(site.state("s1"), None);
    assert!(site.services("s1").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_process_hands_over_and_the_instance_lives_on() {
    let site = Site::start().await;
    site.provision("s1", &[]).await;
    let mut first = site.run("s1");
    first.wait_status("ready", |s| s["ready"] == true).await;
    assert_eq!(site.state("s1"), Some(AppInstanceState::Ready));
    assert_eq!(site.termination_callbacks("s1").len(), 1);

    // a pod roll: the new process starts first and takes the registration over
    let mut second = site.run("s1");
    second.wait_status("ready", |s| s["ready"] == true).await;
    assert_eq!(site.termination_callbacks("s1").len(), 2);
    let services = site.services("s1");
    assert_eq!(
        services.len(),
        1,
        "one registration of the instance's service"
    );
    assert!(services[0].endpoint_uris()[0].starts_with(&second.url));

    // the old one is stopped: it withdraws its own subscription, the instance stays
    first.sigterm();
    let exit = first.wait_exit().await;
    assert!(exit.success(), "{exit}: {}", first.log());
    let callbacks = site.termination_callbacks("s1");
    assert_eq!(callbacks.len(), 1);
    assert!(callbacks[0].starts_with(&second.url), "{callbacks:?}");
    assert_eq!(site.state("s1"), Some(AppInstanceState::Ready));
    assert_eq!(site.services("s1").len(), 1);

    // a graceful stop reaches the process that runs now
    site.end("s1", OperationActionType::Stopping, &mut second)
        .await;
    assert_eq!(site.state("s1"), Some(AppInstanceState::Instantiated));
    assert!(
        site.termination_callbacks("s1").is_empty(),
        "withdrawn on stop"
    );
}

#[tokio::test]
async fn without_its_settings_it_says_which_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = SampleApp::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_sample-app")),
        &BTreeMap::new(),
        dir.path(),
        dir.path(),
    );
    let exit = app.wait_exit().await;
    assert!(!exit.success());
    assert!(app.log().contains("MEC_APP_INSTANCE_ID"), "{}", app.log());
}
