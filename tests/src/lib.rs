//! End-to-end suites that start real mecplane processes (MEAO, MEPs, brokers, clusters), and
//! the client steps they share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{Value, json};

/// The demo's MEAO and paris-1's MEP from `deploy/examples/` (its sites, OAuth clients and
/// portal users), on loopback ports of their own with SQLite and files under `dir`, linked over
/// mutual TLS; `adjust` changes the MEAO's configuration before it starts. Returns once
/// paris-1's MEP is connected.
pub async fn demo(
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut meao::config::MeaoConfig),
) -> (meao::server::RunningServer, mep::server::RunningServer) {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let pki = server_kit::testing::TestPki::new(dir, "demo CA");
    let port = server_kit::testing::free_port();
    let (meao_link, mep_link) = link_configs(&pki, "paris-1", port);
    let mut mep = mep::config::MepConfig::load(Some(&examples.join("mep.toml"))).unwrap();
    mep.listen = "127.0.0.1:0".parse().unwrap();
    mep.database_url = format!("sqlite://{}/mep.db?mode=rwc", dir.display());
    mep.dns.listen = Some("127.0.0.1:0".parse().unwrap());
    mep.meao = Some(mep_link);
    let mep = mep::server::Server::start(mep).await.unwrap();
    let mut meao = meao::config::MeaoConfig::load(Some(&examples.join("meao.toml"))).unwrap();
    meao.listen = "127.0.0.1:0".parse().unwrap();
    meao.database_url = format!("sqlite://{}/meao.db?mode=rwc", dir.display());
    meao.data_dir = dir.join("data");
    meao.mep_link = Some(meao_link);
    for site in &mut meao.sites {
        if let meao::inventory::VimConnection::Simulated(meao::inventory::SimulatedCluster {
            state_file,
            ..
        }) = &mut site.vim
        {
            *state_file = Some(dir.join(format!("{}.json", site.id)));
        }
        if site.mep_url.is_some() {
            site.mep_url = Some(mep.api_root.clone());
        }
    }
    adjust(&mut meao);
    let meao = meao::server::Server::start(meao).await.unwrap();
    let link = meao.lcm.mep_link().unwrap();
    for _ in 0..300 {
        if link.connected("paris-1") {
            return (meao, mep);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("paris-1's MEP did not connect");
}

/// A MEAO configuration for tests: loopback port 0, SQLite and data under `dir`, and the OSS
/// client `oss`/`oss-secret` with the package, LCM and inventory scopes.
pub fn meao_config(dir: &std::path::Path) -> meao::config::MeaoConfig {
    let mut config = meao::config::MeaoConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: format!("sqlite://{}/meao.db?mode=rwc", dir.display()),
        data_dir: dir.join("data"),
        ..meao::config::MeaoConfig::default()
    };
    config.auth.signing_key = Some(server_kit::auth::Secret::new("meao-key"));
    config.outbound.allow = vec!["127.0.0.0/8".into()];
    // the example packages name registries the test machines cannot reach
    config.images.pin_digests = false;
    config.auth.clients = vec![server_kit::auth::ClientConfig {
        client_id: "oss".into(),
        client_secret: server_kit::auth::Secret::new("oss-secret"),
        scopes: vec![
            "app_pkgm".into(),
            "app_lcm".into(),
            "mecplane_inventory".into(),
        ],
        app_instance_id: None,
    }];
    config
}

/// The two ends of a MEAO-MEP link over mutual TLS, certificates from `pki`: the MEAO's
/// listener on loopback `port` and site `site`'s MEP.
pub fn link_configs(
    pki: &server_kit::testing::TestPki,
    site: &str,
    port: u16,
) -> (meao::mep_link::MepLinkConfig, mep::link::MeaoLinkConfig) {
    let (cert_file, key_file) = pki.issue("meao");
    let meao = meao::mep_link::MepLinkConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        tls: server_kit::serve::TlsConfig {
            cert_file,
            key_file,
            client_ca_file: Some(pki.ca_file()),
        },
        resend_secs: 1,
        ack_timeout_secs: 30,
    };
    let (cert_file, key_file) = pki.issue(site);
    let mep = mep::link::MeaoLinkConfig {
        url: format!("https://127.0.0.1:{port}"),
        mep_id: site.into(),
        tls: server_kit::grpc::ClientTlsConfig {
            cert_file,
            key_file,
            ca_file: pki.ca_file(),
        },
        max_backoff_ms: 200,
        keep_alive_secs: 10,
    };
    (meao, mep)
}

/// A MEP configuration for an in-process MEP on loopback port 0 with its store at
/// `database_url`, linked to the MEAO by `link`, without a DNS server.
pub fn linked_mep_config(
    database_url: String,
    link: mep::link::MeaoLinkConfig,
) -> mep::config::MepConfig {
    mep::config::MepConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url,
        meao: Some(link),
        dns: mep::config::DnsConfig {
            listen: None,
            ..Default::default()
        },
        ..mep::config::MepConfig::default()
    }
}

/// The `[auth]` (the OSS client `oss`/`oss-secret`, as in [`meao_config`]), `[outbound]`
/// (loopback) and `[mep_link]` sections of a MEAO's TOML configuration file, for tests that run
/// the binary; the link as [`link_configs`] made it.
pub fn meao_toml_sections(link: &meao::mep_link::MepLinkConfig) -> String {
    let ca = link
        .tls
        .client_ca_file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    format!(
        r#"{oss}[mep_link]
listen = "{listen}"
tls = {{ cert_file = "{cert}", key_file = "{key}", client_ca_file = "{ca}" }}
resend_secs = {resend}
ack_timeout_secs = {ack}
"#,
        listen = link.listen,
        cert = link.tls.cert_file.display(),
        key = link.tls.key_file.display(),
        resend = link.resend_secs,
        ack = link.ack_timeout_secs,
        oss = OSS_TOML_SECTIONS,
    )
}

/// The MEAO configuration sections of the suites' OSS client (`oss`, secret `oss-secret`,
/// every Mm1 scope), of callbacks to loopback and of images deployed as written (the example
/// packages name registries the test machines cannot reach).
pub const OSS_TOML_SECTIONS: &str = r#"[auth]
signing_key = "meao-key"
[[auth.clients]]
client_id = "oss"
client_secret = "oss-secret"
scopes = ["app_pkgm", "app_lcm", "mecplane_inventory"]
[outbound]
allow = ["127.0.0.0/8"]
[images]
pin_digests = false
"#;

/// Starts a MEAO in this process with `config` (from [`meao_config`]); returns it, an HTTP
/// client, its API root and the OSS client's token.
pub async fn start_meao(
    config: meao::config::MeaoConfig,
) -> (meao::server::RunningServer, reqwest::Client, String, String) {
    let meao = meao::server::Server::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let m = meao.api_root.clone();
    let oss = token(&http, &m, "oss", "oss-secret").await;
    (meao, http, m, oss)
}

/// An OAuth 2.0 access token (client credentials) from the server at `base`.
pub async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let r: Value = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_owned()
}

/// GETs `url` with a bearer token; the JSON body.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    r.json().await.unwrap()
}

/// Polls an LCM operation occurrence until it leaves STARTING/PROCESSING.
pub async fn wait_op(http: &reqwest::Client, meao: &str, token: &str, location: &str) -> Value {
    for _ in 0..1200 {
        let op = get_json(http, &format!("{meao}{location}"), token).await;
        if !matches!(
            op["operationState"].as_str(),
            Some("STARTING" | "PROCESSING")
        ) {
            return op;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{location} did not finish");
}

/// The directory of the example package `deploy/examples/packages/<name>`.
pub fn example_dir(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples/packages")
        .join(name)
}

/// Builds the example package `deploy/examples/packages/<name>` and onboards it.
pub async fn onboard_example(http: &reqwest::Client, meao: &str, token: &str, name: &str) {
    onboard_dir(http, meao, token, name, &example_dir(name)).await;
}

/// Builds the package in `dir` and onboards it as `name`.
pub async fn onboard_dir(
    http: &reqwest::Client,
    meao: &str,
    token: &str,
    name: &str,
    dir: &std::path::Path,
) {
    let zip = app_package::build::build(dir, None).unwrap();
    let pkg: Value = http
        .post(format!("{meao}/app_pkgm/v1/app_packages"))
        .bearer_auth(token)
        .json(&json!({"appPkgName": name, "appPkgVersion": "1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .put(format!(
            "{meao}/app_pkgm/v1/app_packages/{}/package_content",
            pkg["id"].as_str().unwrap()
        ))
        .bearer_auth(token)
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(
        status,
        202,
        "onboarding {name}: {}",
        r.text().await.unwrap()
    );
}

/// Creates an application instance of `app_d_id`; returns its id.
pub async fn create_instance(
    http: &reqwest::Client,
    meao: &str,
    token: &str,
    app_d_id: &str,
) -> String {
    let instance: Value = http
        .post(format!("{meao}/app_lcm/v1/app_instances"))
        .bearer_auth(token)
        .json(&json!({"appDId": app_d_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    instance["id"].as_str().unwrap().to_owned()
}

/// Runs an LCM task (`instantiate`, `terminate`, …) of an instance to its end.
pub async fn run_op(
    http: &reqwest::Client,
    meao: &str,
    token: &str,
    id: &str,
    task: &str,
    body: Value,
) -> Value {
    let r = http
        .post(format!("{meao}/app_lcm/v1/app_instances/{id}/{task}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{task}: {}", r.text().await.unwrap());
    wait_op(http, meao, token, r.headers()["location"].to_str().unwrap()).await
}

/// One DNS query over UDP; the A records, or the response code when there are none.
pub async fn resolve(
    dns: std::net::SocketAddr,
    name: &str,
) -> Result<Vec<String>, hickory_proto::op::ResponseCode> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut query = Message::new();
    query
        .set_id(7)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    socket.send_to(&query.to_vec().unwrap(), dns).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = Message::from_vec(&buf[..n]).unwrap();
    let ips: Vec<String> = answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    if ips.is_empty() {
        Err(answer.response_code())
    } else {
        Ok(ips)
    }
}

/// A binary of this build (`meao`, `sample-app`, …: next to the test binary's `deps/`), which
/// `cargo test --workspace` builds for its own package's tests.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join(name);
    assert!(
        binary.is_file(),
        "{} is missing: build it (cargo build -p {name}, or cargo test --workspace)",
        binary.display()
    );
    binary
}

/// A service binary of this build (`meao`, `mep`) running as a process with a TOML
/// configuration file, logging JSON lines (`[telemetry] json = true`) to a file; killed when
/// dropped.
pub struct Service {
    child: std::process::Child,
    log: std::path::PathBuf,
    /// Its API root (`http://…`), learnt from its start-up log line.
    pub base: String,
}

impl Service {
    /// Starts `binary` with `config` (listening on port 0 is fine: the address comes from its
    /// `… started` log line) and waits until it serves; its log goes to a new file in `dir`.
    pub async fn start(binary: &str, config: &std::path::Path, dir: &std::path::Path) -> Self {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let log = dir.join(format!("{binary}-{stamp}.log"));
        // stderr too: a start-up error is printed there, not logged
        let file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(workspace_binary(binary))
            .arg("--config")
            .arg(config)
            .stderr(file.try_clone().unwrap())
            .stdout(file)
            .spawn()
            .unwrap();
        let mut service = Self {
            child,
            log,
            base: String::new(),
        };
        for _ in 0..1200 {
            let started = service.logs().lines().find_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                let message = v["fields"]["message"].as_str()?;
                message
                    .ends_with(" started")
                    .then(|| v["fields"]["local_addr"].as_str().map(str::to_owned))?
            });
            if let Some(addr) = started {
                service.base = format!("http://{addr}");
                return service;
            }
            if let Some(status) = service.child.try_wait().unwrap() {
                panic!("{binary} exited with {status}: {}", service.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{binary} did not start: {}", service.logs());
    }

    /// What it has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most a minute) for the process to end by itself; its exit status.
    pub async fn exited(&mut self) -> Option<std::process::ExitStatus> {
        for _ in 0..1200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sample application (`sample-app`) running as a local process, the way its pod runs it:
/// with exactly the settings its instance's Secret holds. Killed when dropped.
pub struct SampleApp {
    child: std::process::Child,
    /// Its HTTP root (status page, greeting).
    pub url: String,
    log: std::path::PathBuf,
    http: reqwest::Client,
}

impl SampleApp {
    /// The `sample-app` binary of this build, which `cargo test --workspace` builds with the
    /// sample application's own tests.
    pub fn binary() -> std::path::PathBuf {
        workspace_binary("sample-app")
    }

    /// Starts `binary` with `settings` as its environment and nothing else but the port it
    /// listens on (loopback), its log filter and `secrets_dir` (the Secret's files, as the
    /// kubelet mounts them; an empty directory when `None`). Its log goes to `log_dir`.
    pub fn start(
        binary: &std::path::Path,
        settings: &std::collections::BTreeMap<String, String>,
        secrets_dir: &std::path::Path,
        log_dir: &std::path::Path,
    ) -> Self {
        let port = server_kit::testing::free_port();
        let log = log_dir.join(format!("sample-app-{port}.log"));
        let child = std::process::Command::new(binary)
            .env_clear()
            .envs(settings)
            .env("SAMPLE_LISTEN", format!("127.0.0.1:{port}"))
            .env("MEC_SECRETS_DIR", secrets_dir)
            .env("RUST_LOG", "info,sample_app=debug,mp1_client=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its `/status`, once it serves it.
    pub async fn status(&self) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/status", self.url))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Waits (30 s at most) until its status satisfies `done`; the status then.
    pub async fn wait_status(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..300 {
            if let Some(status) = self.status().await.filter(|s| done(s)) {
                return status;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!(
                    "sample-app exited ({exit}) waiting for {what}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("sample-app: timed out waiting for {what}:\n{}", self.log());
    }

    /// Sends SIGTERM, as the kubelet does to a pod's containers.
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits (30 s at most) for it to exit by itself; its exit status.
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..300 {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("sample-app did not exit:\n{}", self.log());
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for SampleApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay to one or more upstream ports (a load balancer: each connection goes to the
/// next upstream that accepts it, round robin), whose connections can all be cut at once and
/// which can refuse new ones.
pub struct Relay {
    /// The port it listens on (loopback).
    pub port: u16,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying to `upstreams` (loopback ports).
    pub async fn start(upstreams: Vec<u16>) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            std::sync::Arc::default();
        let blocked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (held, refusing) = (connections.clone(), blocked.clone());
        let upstreams = std::sync::Arc::new(upstreams);
        let accept = tokio::spawn(async move {
            let mut next = 0usize;
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                if refusing.load(Ordering::SeqCst) {
                    continue;
                }
                next = next.wrapping_add(1);
                let (first, upstreams) = (next, upstreams.clone());
                let relay = tokio::spawn(async move {
                    for i in 0..upstreams.len() {
                        let upstream = upstreams[(first + i) % upstreams.len()];
                        if let Ok(mut up) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                            return;
                        }
                    }
                });
                let mut held = held.lock().unwrap();
                held.retain(|c| !c.is_finished());
                held.push(relay);
            }
        });
        Self {
            port,
            connections,
            blocked,
            accept,
        }
    }

    /// Cuts every connection and refuses new ones until [`Relay::unblock`].
    pub fn block(&self) {
        self.blocked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
    }

    /// Accepts new connections again.
    pub fn unblock(&self) {
        self.blocked
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drops every open connection (both sockets close mid-stream); how many were open.
    pub fn cut(&self) -> usize {
        let open: Vec<_> = self.connections.lock().unwrap().drain(..).collect();
        let live = open.iter().filter(|c| !c.is_finished()).count();
        open.iter().for_each(tokio::task::JoinHandle::abort);
        live
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// xorshift64*: reproducible randomness from a printed seed.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the clock; the seed is printed, to replay a run.
    pub fn from_clock() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("seed {seed}");
        Self(seed)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
