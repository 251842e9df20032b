//! The client against a real MEP (started in-process on loopback, SQLite): instances
//! provisioned with their own OAuth 2.0 client as MEC management does, and the client acting
//! as them over HTTP, plain and TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use mep::platform::AppInstanceState;
use mp1_client::api_specs::common::SubscriptionLinkList;
use mp1_client::api_specs::mp1::app_support::{OperationActionType, RuleState};
use mp1_client::api_specs::mp1::service_mgmt::{
    ChangeType, FilteringCriteria, ServiceInfo, ServiceState,
};
use mp1_client::listener::{CallbackListener, Notification};
use mp1_client::{ClientSecret, Error, Mp1Client, ServiceQuery, Settings};
use serde_json::{Value, json};
use server_kit::auth::{ClientConfig, Secret, secret_digest_b64};

const OPERATOR: (&str, &str) = ("operator", "op-secret");

/// A MEP on loopback with an operator client, 1 s minimum liveness and fast deliveries.
struct Mep {
    server: Option<mep::server::RunningServer>,
    config: mep::config::MepConfig,
    http: reqwest::Client,
    /// The CA of its TLS certificate, if any.
    ca: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Mep {
    async fn start(tweak: impl FnOnce(&mut mep::config::MepConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = mep::config::MepConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}/mep.db?mode=rwc", dir.path().display()),
            min_liveness_interval_secs: 1,
            ..mep::config::MepConfig::default()
        };
        config.dns.listen = Some("127.0.0.1:0".parse().unwrap());
        config.delivery.poll_interval_ms = 50;
        // the applications (their callback listeners) run on loopback
        config.outbound.allow = vec!["127.0.0.0/8".into()];
        config.delivery.initial_backoff_ms = 100;
        config.delivery.max_backoff_ms = 400;
        config.auth.signing_key = Some(Secret::new("test-key"));
        config.auth.clients = vec![ClientConfig {
            client_id: OPERATOR.0.into(),
            client_secret: Secret::new(OPERATOR.1),
            scopes: vec![
                "mep_mgmt".into(),
                "mec_service_mgmt".into(),
                "mec_app_support".into(),
            ],
            app_instance_id: None,
        }];
        tweak(&mut config);
        let server = mep::server::Server::start(config.clone()).await.unwrap();
        Self {
            server: Some(server),
            config,
            http: reqwest::Client::new(),
            ca: None,
            _dir: dir,
        }
    }

    fn server(&self) -> &mep::server::RunningServer {
        self.server.as_ref().unwrap()
    }

    fn url(&self) -> String {
        self.server().api_root.clone()
    }

    async fn restart(&mut self) {
        self.server.take().unwrap().shutdown().await;
        self.server = Some(
            mep::server::Server::start(self.config.clone())
                .await
                .unwrap(),
        );
    }

    /// A call of MEC management (the operator client, bound to no instance); its status.
    async fn operator(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
        let settings = Settings::new("-", &self.url(), OPERATOR.0, ClientSecret::new(OPERATOR.1));
        let mut settings = settings.unwrap();
        settings.ca_file = self.ca.clone();
        let operator = Mp1Client::new(settings).unwrap();
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(operator.access_token().await.unwrap());
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.unwrap().status().as_u16()
    }

    /// Provisions instance `id` as MEC management does: its rules, its required services, and
    /// its own client `client-{id}` whose secret is `secret-{id}`.
    async fn provision(&self, id: &str) {
        let config = json!({
            "appInfo": {"appName": format!("app-{id}"), "appProvider": "ACME",
                        "appServiceRequired": [{"serName": "beta", "version": "1.0"}]},
            "appTrafficRule": [{
                "trafficRuleId": "tr1", "filterType": "FLOW", "priority": 5,
                "trafficFilter": [{"dstAddress": ["203.0.113.0/24"], "dstPort": ["80"], "protocol": ["TCP"]}],
                "action": "FORWARD_DECAPSULATED",
                "dstInterface": {"interfaceType": "IP", "dstIpAddress": "10.10.0.7"},
                "state": "ACTIVE"
            }],
            "appDNSRule": [{
                "dnsRuleId": "dns1", "domainName": format!("{id}.mec.example"), "ipAddressType": "IP_V4",
                "ipAddress": "10.10.0.7", "ttl": 30, "state": "ACTIVE"
            }],
            "oauth2Client": {"clientId": format!("client-{id}"), "credentials": [
                {"credentialId": "c1", "secretDigest": secret_digest_b64(&format!("secret-{id}"))}
            ]}
        });
        let status = self
            .operator(
                reqwest::Method::PUT,
                &format!("/mep_mgmt/v1/app_instances/{id}"),
                Some(config),
            )
            .await;
        assert!(status == 200 || status == 201, "provision {id}: {status}");
    }

    /// The settings instance `id` receives (its Secret's values).
    fn settings(&self, id: &str) -> Settings {
        let values = [
            ("MEC_APP_INSTANCE_ID", id.to_owned()),
            ("MEC_MEP_URL", self.url()),
            ("MEC_CLIENT_ID", format!("client-{id}")),
            ("MEC_CLIENT_SECRET", format!("secret-{id}")),
            ("MEC_CREDENTIAL_ID", "c1".to_owned()),
        ];
        let mut s = Settings::from_lookup(
            |k| values.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()),
            None,
        )
        .unwrap();
        s.startup_timeout = Duration::from_secs(20);
        s
    }

    async fn client(&self, id: &str) -> Mp1Client {
        self.provision(id).await;
        Mp1Client::connect(self.settings(id)).await.unwrap()
    }
}

fn service(name: &str, interval: Option<u32>) -> ServiceInfo {
    serde_json::from_value(json!({
        "serName": name, "version": "1.0", "state": "ACTIVE", "serializer": "JSON",
        "transportInfo": {"id": "rest", "name": "REST", "type": "REST_HTTP", "protocol": "HTTP",
            "version": "1.1", "endpoint": {"uris": [format!("http://10.0.0.9/{name}")]}, "security": {}},
        "serCategory": {"href": "http://cat/1", "id": "cat-1", "name": "cat", "version": "1"},
        "livenessInterval": interval
    }))
    .unwrap()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_waits_for_its_credential_then_uses_mp1_as_itself() {
    let mep = Mep::start(|_| {}).await;
    // the workload starts before MEC management told the MEP of its client
    let connecting = tokio::spawn(Mp1Client::connect(mep.settings("i1")));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !connecting.is_finished(),
        "connected before the MEP knew the client"
    );
    mep.provision("i1").await;
    let app = connecting.await.unwrap().unwrap();
    assert_eq!(app.app_instance_id(), "i1");

    let info = app.app_info().await.unwrap();
    assert_eq!(info.is_ins_by_mec, Some(true));
    assert_eq!(info.app_service_required.unwrap()[0].ser_name, "beta");

    // ready when it says so (twice is once)
    let state = || mep.server().platform.app_instance_get("i1").unwrap().state;
    assert_eq!(state(), AppInstanceState::Instantiated);
    app.confirm_ready().await.unwrap();
    app.confirm_ready().await.unwrap();
    assert_eq!(state(), AppInstanceState::Ready);

    // rules: read, and a state change made conditional on the entity tag
    let rules = app.dns_rules().await.unwrap();
    assert_eq!(rules[0].domain_name, "i1.mec.example");
    assert_eq!(app.dns_rule("dns1").await.unwrap().value, rules[0]);
    let traffic = app.traffic_rule("tr1").await.unwrap();
    assert_eq!(
        app.traffic_rules().await.unwrap(),
        vec![traffic.value.clone()]
    );
    let mut inactive = traffic.value.clone();
    inactive.state = RuleState::Inactive;
    let updated = app
        .update_traffic_rule(&inactive, traffic.etag.as_deref())
        .await
        .unwrap();
    assert_eq!(updated.value.state, RuleState::Inactive);
    assert_ne!(updated.etag, traffic.etag);
    let stale = app
        .update_traffic_rule(&traffic.value, traffic.etag.as_deref())
        .await
        .unwrap_err();
    assert_eq!(stale.status(), Some(412), "{stale}");
    assert_eq!(stale.problem().unwrap().status, 412);
    let missing = app.dns_rule("nope").await.unwrap_err();
    assert!(
        matches!(&missing, Error::Api { status: 404, .. }),
        "{missing}"
    );
    assert!(!missing.is_retryable());

    assert!(app.current_time().await.unwrap().seconds > 0);
    app.timing_caps().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_gives_up_after_the_start_up_timeout() {
    let mep = Mep::start(|_| {}).await;
    mep.provision("i1").await;
    let mut settings = mep.settings("i1");
    settings.client_secret = ClientSecret::new("wrong");
    settings.startup_timeout = Duration::from_secs(2);
    let e = Mp1Client::connect(settings).await.unwrap_err();
    let Error::Startup { last, .. } = &e else {
        panic!("{e}")
    };
    assert!(last.is_unknown_client(), "{last}");
    assert_eq!(e.status(), Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_registered_discovered_updated_and_kept_alive() {
    let mep = Mep::start(|_| {}).await;
    let (a, b) = (mep.client("a1").await, mep.client("b1").await);

    let created = a
        .register_service(&service("alpha", Some(1)))
        .await
        .unwrap();
    let id = created.value.ser_instance_id.clone().unwrap();
    let heartbeats = a.spawn_heartbeats(&created.value).unwrap();
    assert!(a.spawn_heartbeats(&service("x", None)).is_none());

    // discovery by another instance, with the MEC 011 filters
    let by_name = ServiceQuery {
        ser_name: Some(vec!["alpha".into()]),
        ..ServiceQuery::default()
    };
    assert_eq!(
        b.services(&by_name).await.unwrap(),
        vec![created.value.clone()]
    );
    for (query, found) in [
        (
            ServiceQuery {
                ser_category_id: Some("cat-1".into()),
                is_local: Some(true),
                ..ServiceQuery::default()
            },
            1,
        ),
        (
            ServiceQuery {
                ser_instance_id: Some(vec![id.clone(), "other".into()]),
                ..ServiceQuery::default()
            },
            1,
        ),
        (
            ServiceQuery {
                ser_name: Some(vec!["beta".into()]),
                ..ServiceQuery::default()
            },
            0,
        ),
        (
            ServiceQuery {
                consumed_local_only: Some(false),
                ..ServiceQuery::default()
            },
            0,
        ),
    ] {
        assert_eq!(b.services(&query).await.unwrap().len(), found, "{query:?}");
    }
    assert_eq!(b.service(&id).await.unwrap().value, created.value);
    assert!(
        b.own_services(&ServiceQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!a.transports().await.unwrap().is_empty());
    let bad = ServiceQuery {
        ser_name: Some(vec!["alpha".into()]),
        ser_category_id: Some("cat-1".into()),
        ..ServiceQuery::default()
    };
    assert_eq!(b.services(&bad).await.unwrap_err().status(), Some(400));

    // heartbeats keep it ACTIVE past two intervals; without them it is SUSPENDED
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(a.liveness(&id).await.unwrap().state, ServiceState::Active);
    drop(heartbeats);
    eventually("suspended without heartbeats", async || {
        a.liveness(&id).await.unwrap().state == ServiceState::Suspended
    })
    .await;
    a.heartbeat(&id).await.unwrap();
    assert_eq!(a.liveness(&id).await.unwrap().state, ServiceState::Active);

    // updates: conditional, and a replaced process takes the registration over
    let current = a.own_service(&id).await.unwrap();
    let mut inactive = service("alpha", Some(1));
    inactive.state = ServiceState::Inactive;
    let updated = a
        .update_service(&id, &inactive, current.etag.as_deref())
        .await
        .unwrap();
    assert_eq!(updated.value.state, ServiceState::Inactive);
    let stale = a
        .update_service(&id, &inactive, current.etag.as_deref())
        .await;
    assert_eq!(stale.unwrap_err().status(), Some(412));
    let taken_over = a.ensure_service(&service("alpha", Some(1))).await.unwrap();
    assert_eq!(
        taken_over.value.ser_instance_id.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(taken_over.value.state, ServiceState::Active);
    assert_eq!(a.own_services(&by_name).await.unwrap().len(), 1);
    let fresh = a.ensure_service(&service("gamma", None)).await.unwrap();
    assert_ne!(fresh.value.ser_instance_id.as_deref(), Some(id.as_str()));

    // b may not touch a's service: it is not among b's
    let foreign = b.update_service(&id, &inactive, None).await.unwrap_err();
    assert_eq!(foreign.status(), Some(404));
    assert_eq!(
        b.deregister_service(&id).await.unwrap_err().status(),
        Some(404)
    );

    a.deregister_service(&id).await.unwrap();
    assert!(b.services(&by_name).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_listener_and_termination_revokes_the_credential() {
    let mep = Mep::start(|_| {}).await;
    let (a, b) = (mep.client("a1").await, mep.client("b1").await);
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", socket.local_addr().unwrap());
    let mut listener = CallbackListener::new(&base).unwrap();
    let app: axum::Router = listener.router();
    tokio::spawn(async move { axum::serve(socket, app).await });

    let filter = FilteringCriteria {
        ser_names: Some(vec!["beta".into()]),
        ..FilteringCriteria::default()
    };
    let availability = a
        .subscribe_availability(listener.callback_url(), Some(filter))
        .await
        .unwrap();
    let all = a
        .subscribe_availability(listener.callback_url(), None)
        .await
        .unwrap();
    let termination = a
        .subscribe_termination(listener.callback_url())
        .await
        .unwrap();
    let count = |list: Result<SubscriptionLinkList, Error>| list.unwrap().links.subscriptions.len();
    assert_eq!(count(a.availability_subscriptions().await), 2);
    a.unsubscribe(&all.links.unwrap().self_.href).await.unwrap();
    assert_eq!(count(a.availability_subscriptions().await), 1);
    assert_eq!(count(a.termination_subscriptions().await), 1);

    // b registers what a requires: a is told
    b.register_service(&service("beta", None)).await.unwrap();
    let Notification::ServiceAvailability(n) = listener.next().await else {
        panic!("expected an availability notification")
    };
    assert_eq!(n.service_references[0].ser_name, "beta");
    assert_eq!(n.service_references[0].change_type, ChangeType::Added);
    assert_eq!(
        n.links.subscription.href,
        availability.links.unwrap().self_.href
    );

    // MEC management terminates a gracefully: a is told, confirms, and its credential ends
    a.confirm_termination(OperationActionType::Terminating)
        .await
        .expect_err("nothing pending yet");
    let status = mep
        .operator(
            reqwest::Method::DELETE,
            "/mep_mgmt/v1/app_instances/a1?graceful_timeout=30",
            None,
        )
        .await;
    assert_eq!(status, 202);
    let Notification::AppTermination(n) = listener.next().await else {
        panic!("expected a termination notification")
    };
    assert_eq!(n.operation_action, OperationActionType::Terminating);
    assert_eq!(
        n.links.subscription.href,
        termination.links.unwrap().self_.href
    );
    a.confirm_termination(n.operation_action).await.unwrap();
    let refused = a.dns_rules().await.unwrap_err();
    assert!(refused.is_unknown_client(), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_restarted_mep_are_replaced_transparently() {
    let port = server_kit::testing::free_port();
    let mut mep = Mep::start(|c| {
        c.listen = ([127, 0, 0, 1], port).into();
        c.auth.signing_key = None; // a new key per process: old tokens die with it
    })
    .await;
    let a = mep.client("a1").await;
    let before = a.access_token().await.unwrap();
    a.dns_rules().await.unwrap();
    mep.restart().await;
    let rules = a.dns_rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_ne!(a.access_token().await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = server_kit::testing::TestPki::new(pki_dir.path(), "site CA");
    let (cert_file, key_file) = pki.issue("localhost");
    let mep = Mep::start(|c| {
        c.tls = Some(server_kit::serve::TlsConfig {
            cert_file,
            key_file,
            client_ca_file: None,
        });
    })
    .await;
    assert!(mep.url().starts_with("https://"), "{}", mep.url());
    // provisioning over TLS needs the CA too
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(pki.ca_file()).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let mep = Mep {
        http,
        ca: Some(pki.ca_file()),
        ..mep
    };
    mep.provision("a1").await;

    let mut settings = mep.settings("a1");
    settings.startup_timeout = Duration::from_secs(1);
    let untrusted = Mp1Client::connect(settings.clone()).await.unwrap_err();
    assert!(
        matches!(&untrusted, Error::Startup { last, .. } if matches!(**last, Error::Transport { .. })),
        "{untrusted}"
    );
    settings.ca_file = Some(pki.ca_file());
    let a = Mp1Client::connect(settings).await.unwrap();
    a.confirm_ready().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_registers_itself_where_the_platform_allows_it() {
    let mep = Mep::start(|c| {
        c.allow_self_registration = true;
        c.auth.clients.push(ClientConfig {
            client_id: "walk-in".into(),
            client_secret: Secret::new("walk-in-secret"),
            scopes: vec!["mec_app_support".into(), "mec_service_mgmt".into()],
            app_instance_id: Some("w1".into()),
        });
    })
    .await;
    let settings = Settings::new(
        "w1",
        &mep.url(),
        "walk-in",
        ClientSecret::new("walk-in-secret"),
    )
    .unwrap();
    let app = Mp1Client::connect(settings).await.unwrap();
    assert_eq!(app.app_info().await.unwrap_err().status(), Some(404));
    let info = serde_json::from_value(json!({"appName": "walk-in", "appProvider": "ACME",
        "endpoint": {"uris": ["http://10.0.0.5:8080/api"]}}))
    .unwrap();
    let registered = app.register(&info).await.unwrap();
    assert_eq!(registered.app_instance_id.as_deref(), Some("w1"));
    assert_eq!(registered.is_ins_by_mec, Some(false));
    let mut renamed = registered.clone();
    renamed.app_name = "walk-in-2".into();
    app.update_registration(&renamed).await.unwrap();
    assert_eq!(app.app_info().await.unwrap().app_name, "walk-in-2");
    app.register_service(&service("delta", None)).await.unwrap();
    app.deregister().await.unwrap();
    assert_eq!(app.app_info().await.unwrap_err().status(), Some(404));
}
