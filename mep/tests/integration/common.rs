//! The test context: a MEP started on port 0 over SQLite or PostgreSQL, OAuth clients, and a
//! callback server recording notifications.

use mep::config::MepConfig;
use mep::server::{RunningServer, Server};
use serde_json::{Value, json};
use server_kit::auth::{ClientConfig, Secret};

pub use server_kit::testing::{Callback, Db};
use server_kit::testing::{Contracts, ResponseContract};

/// What every response the helpers receive is checked against: the checked-in document, and
/// ETSI MEC 011's application support and service management documents.
static CONTRACTS: std::sync::LazyLock<Contracts> = std::sync::LazyLock::new(|| {
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    Contracts(vec![
        ResponseContract::own(&repo.join("api-specs/openapi/mep.json")),
        ResponseContract::etsi(&repo.join("api-specs/etsi/MecAppSupportApi.yaml")),
        ResponseContract::etsi(&repo.join("api-specs/etsi/MecServiceMgmtApi.yaml")),
    ])
});

/// A running MEP and what tests need around it.
pub struct Ctx {
    pub server: Option<RunningServer>,
    pub config: MepConfig,
    pub http: reqwest::Client,
    pub base: String,
    pub _dir: tempfile::TempDir,
}

pub const OPERATOR: (&str, &str) = ("operator", "op-secret");
pub const APP1: (&str, &str) = ("app1", "app1-secret");
pub const APP2: (&str, &str) = ("app2", "app2-secret");

fn client(id: &str, secret: &str, scopes: &[&str], app: Option<&str>) -> ClientConfig {
    ClientConfig {
        client_id: id.into(),
        client_secret: Secret::new(secret),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        app_instance_id: app.map(str::to_owned),
    }
}

/// The test configuration: loopback port 0, fast delivery retries, 1 s liveness minimum.
pub fn test_config(database_url: String) -> MepConfig {
    let mut c = MepConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url,
        min_liveness_interval_secs: 1,
        max_body_bytes: 64 * 1024,
        ..MepConfig::default()
    };
    c.dns.listen = Some("127.0.0.1:0".parse().expect("addr"));
    c.delivery.poll_interval_ms = 50;
    // the tests' callback servers listen on loopback
    c.outbound.allow = vec!["127.0.0.0/8".into()];
    c.delivery.initial_backoff_ms = 100;
    c.delivery.max_backoff_ms = 400;
    c.delivery.max_attempts = 6;
    c.delivery.timeout_ms = 2000;
    c.auth.signing_key = Some(Secret::new("test-key"));
    let all = ["mep_mgmt", "mec_service_mgmt", "mec_app_support"];
    let app = ["mec_service_mgmt", "mec_app_support"];
    c.auth.clients = vec![
        client(OPERATOR.0, OPERATOR.1, &all, None),
        client(APP1.0, APP1.1, &app, Some("i1")),
        client(APP2.0, APP2.1, &app, Some("i2")),
        client(
            "discovery-only",
            "d-secret",
            &["mec_service_mgmt"],
            Some("i1"),
        ),
    ];
    c
}

impl Ctx {
    pub async fn start(db: Db) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = server_kit::testing::fresh_database(db, "mep", dir.path()).await;
        Self::start_with(test_config(url), dir).await
    }

    pub async fn start_with(config: MepConfig, dir: tempfile::TempDir) -> Self {
        let server = Server::start(config.clone()).await.expect("MEP starts");
        let base = server.api_root.clone();
        Self {
            server: Some(server),
            config,
            http: reqwest::Client::new(),
            base,
            _dir: dir,
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    /// Stops the MEP and starts it again on the same database (new port).
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let server = Server::start(self.config.clone())
            .await
            .expect("MEP restarts");
        self.base = server.api_root.clone();
        self.server = Some(server);
    }

    pub async fn token(&self, client: (&str, &str)) -> String {
        token(&self.http, &self.base, client).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with a bearer token and an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r).await
    }

    /// Sends `request`; fails the test if the response breaks the API's documents.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = request.build().expect("a request");
        let method = request.method().to_string();
        let response = self.http.execute(request).await.expect("request");
        CONTRACTS.checked(&method, response).await
    }

    /// Provisions app instance `id` with one DNS rule and one traffic rule, as the operator.
    pub async fn provision(&self, id: &str) -> Value {
        let op = self.token(OPERATOR).await;
        let r = self
            .call(
                reqwest::Method::PUT,
                &format!("/mep_mgmt/v1/app_instances/{id}"),
                &op,
                Some(app_config(id)),
            )
            .await;
        assert_eq!(r.status(), 201, "provision {id}");
        r.json().await.expect("json")
    }
}

/// An app instance configuration with a DNS rule `{id}.mec.example` and a traffic rule.
pub fn app_config(id: &str) -> Value {
    json!({
        "appInfo": {"appName": format!("app-{id}"), "appProvider": "ACME", "isInsByMec": true},
        "appTrafficRule": [{
            "trafficRuleId": "tr1", "filterType": "FLOW", "priority": 1,
            "trafficFilter": [{"dstAddress": ["10.20.0.0/16"], "dstPort": ["443"], "protocol": ["TCP"]}],
            "action": "FORWARD_DECAPSULATED",
            "dstInterface": {"interfaceType": "IP", "dstIpAddress": "10.10.0.7"},
            "state": "ACTIVE"
        }],
        "appDNSRule": [{
            "dnsRuleId": "dns1", "domainName": format!("{id}.mec.example"), "ipAddressType": "IP_V4",
            "ipAddress": "10.10.0.7", "ttl": 30, "state": "ACTIVE"
        }]
    })
}

/// A service registration body.
pub fn service(name: &str) -> Value {
    json!({"serName": name, "version": "1.0", "state": "ACTIVE", "serializer": "JSON",
           "transportId": "mep-rest-http", "serCategory": {"href": "http://cat/1", "id": "cat-video", "name": "video", "version": "1"}})
}

/// A bearer token for `client` from the MEP at `base`.
pub async fn token(http: &reqwest::Client, base: &str, (id, secret): (&str, &str)) -> String {
    let r: Value = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    r["access_token"].as_str().expect("access_token").to_owned()
}
