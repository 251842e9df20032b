//! Test support shared by the services' integration suites (feature `test-support`): a fresh
//! database per test on SQLite or a real PostgreSQL, a macro running a test on both, a
//! callback server recording notifications, validation against the ETSI OpenAPI schemas,
//! and [`eventually`] for asserting on what other tasks and processes make true.
#![allow(
    clippy::panic,
    reason = "test support fails the calling test by panicking"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::mpsc;

/// How long [`eventually`] waits unless told otherwise: generous for a loaded CI machine, and
/// still a bound.
pub const EVENTUALLY: Duration = Duration::from_secs(60);

/// Polls `probe` every 50 ms until it returns `Ok`, for at most `timeout`: what another task or
/// process makes true (a record written, a message delivered) is asserted once it holds, never
/// after a fixed sleep. The value, or a failed test naming `what` with the last `Err` (what was
/// seen instead).
pub async fn eventually<T, E: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}; last seen {seen:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// An SQLite file in the test's temporary directory.
    Sqlite,
    /// A fresh database on the PostgreSQL at `MECPLANE_TEST_PG_URL`.
    Postgres,
}

/// Generates `mod name { sqlite, postgres }` tests for each async fn taking a [`Db`].
#[macro_export]
macro_rules! on_both_dbs {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name($crate::testing::Db::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::testing::pg_admin_url().is_some() {
                    super::$name($crate::testing::Db::Postgres).await
                }
            }
        }
    )*};
}

/// A free TCP port on loopback that stays free across restarts of what listens on it: taken
/// below the kernel's ephemeral range (`ip_local_port_range`), where the ports the system hands
/// out to outgoing connections and to binds on port 0 never land, so a process restarted on
/// it does not find it taken (or a client connected to itself on it) meanwhile; and below the
/// test clusters' ports (`tests/k8s-env`, 26400 and up), which stop and start again too. A
/// port is handed out once per process: another test's probe would find it free while the
/// process it was meant for is down between restarts, and take it.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.clamp(10_001, 26_000));
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    for _ in 0..1000 {
        // xorshift: distinct tests (and processes) start at distinct ports
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = low + (seed % u64::from(high - low)) as u16;
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            return port;
        }
    }
    panic!("no free port below the ephemeral range {ephemeral_low}")
}

/// The PostgreSQL admin URL; under `CI=true` its absence fails the test instead of skipping.
pub fn pg_admin_url() -> Option<String> {
    match std::env::var("MECPLANE_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but MECPLANE_TEST_PG_URL is not set: PostgreSQL tests cannot run")
        }
        _ => {
            eprintln!("MECPLANE_TEST_PG_URL not set: skipping the PostgreSQL variant");
            None
        }
    }
}

/// A URL of a fresh, empty database named after `prefix`.
pub async fn fresh_database(db: Db, prefix: &str, dir: &std::path::Path) -> String {
    match db {
        Db::Sqlite => format!("sqlite://{}/{prefix}.db?mode=rwc", dir.display()),
        Db::Postgres => {
            let Some(admin) = pg_admin_url() else {
                panic!("PostgreSQL requested without MECPLANE_TEST_PG_URL")
            };
            sqlx::any::install_default_drivers();
            let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
            let mut conn = match <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await {
                Ok(c) => c,
                Err(e) => panic!("cannot connect to {admin}: {e}"),
            };
            if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
            {
                panic!("cannot create database {name}: {e}");
            }
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            format!("{base}/{name}")
        }
    }
}

type CallbackState = (
    mpsc::UnboundedSender<(Value, HeaderMap)>,
    Arc<Mutex<u32>>,
    u32,
);

/// An HTTP server recording the JSON bodies (and headers) POSTed to `/notify`; the first
/// `fail_first` requests are answered 503.
pub struct Callback {
    /// The URL to subscribe with.
    pub url: String,
    rx: mpsc::UnboundedReceiver<(Value, HeaderMap)>,
    /// Requests received so far.
    pub attempts: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Callback {
    /// Starts on a free loopback port.
    pub async fn start(fail_first: u32) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), fail_first).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr, fail_first: u32) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let attempts = Arc::new(Mutex::new(0u32));
        let app = axum::Router::new()
            .route(
                "/notify",
                post(
                    |State((tx, attempts, fail)): State<CallbackState>,
                     headers: HeaderMap,
                     body: axum::Json<Value>| async move {
                        let n = match attempts.lock() {
                            Ok(mut a) => {
                                *a += 1;
                                *a
                            }
                            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR,
                        };
                        if n <= fail {
                            return StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let _ = tx.send((body.0, headers));
                        StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state((tx, attempts.clone(), fail_first));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => panic!("cannot bind the callback server on {addr}: {e}"),
        };
        let url = match listener.local_addr() {
            Ok(a) => format!("http://{a}/notify"),
            Err(e) => panic!("callback server address: {e}"),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            rx,
            attempts,
            task,
        }
    }

    /// The next notification, failing the test after 10 s.
    pub async fn next(&mut self) -> Value {
        self.next_with_headers().await.0
    }

    /// The next notification and the headers of its request, failing the test after 10 s.
    pub async fn next_with_headers(&mut self) -> (Value, HeaderMap) {
        match tokio::time::timeout(Duration::from_secs(10), self.rx.recv()).await {
            Ok(Some(v)) => v,
            _ => panic!("no notification within 10 s"),
        }
    }

    /// The next notification if one arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        let received = tokio::time::timeout(wait, self.rx.recv()).await;
        received.ok().flatten().map(|(v, _)| v)
    }

    /// Fails the test if a notification arrives within `wait`.
    pub async fn none_within(&mut self, wait: Duration) {
        if let Some(v) = self.next_within(wait).await {
            panic!("unexpected notification {v}");
        }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `instance` is valid against the schema at `pointer` (a JSON pointer) in the OpenAPI
/// document `doc`, e.g. `/components/schemas/CreateAppPkg` or an operation's
/// `/paths/~1a~1{id}/get/parameters/0/schema`; its `$ref`s resolve in `doc`.
pub fn documented_valid(doc: &Value, pointer: &str, instance: &Value) -> bool {
    let Some(mut root) = doc.pointer(pointer).cloned() else {
        panic!("{pointer} is not in the document");
    };
    root["components"] = doc["components"].clone();
    match jsonschema::validator_for(&root) {
        Ok(v) => v.is_valid(instance),
        Err(e) => panic!("the schema at {pointer} does not compile: {e}"),
    }
}

/// Fails the test unless every error response of the OpenAPI document `doc` is documented as
/// `application/problem+json` (how the edge serves it), and some are.
pub fn assert_errors_documented_as_problems(doc: &Value) {
    let mut problems = 0;
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        r["content"].get("application/json").is_none(),
                        "{method} {path} {status} is documented as application/json"
                    );
                    problems +=
                        usize::from(r["content"].get(crate::problem::PROBLEM_JSON).is_some());
                }
            }
        }
    }
    assert!(
        problems > 0,
        "no error documented as application/problem+json"
    );
}

/// An ETSI OpenAPI document prepared for validating responses: the generator artefacts listed
/// in `api-specs/etsi/SOURCES.md` are neutralised, nothing else. ETSI's generator writes each
/// enumeration as a one-value enum (`[SEE_DESCRIPTION]`, or one of the values) and lists the
/// values in the description: such an enum becomes the values its description defines (at
/// least two), a one-value enum whose description defines none stays as it is, and an
/// enumeration the description leaves open ("e.g. TUNNEL, MAC, IP, etc.") is dropped.
/// `OAuth2Info.grantTypes` typed as a string becomes the list its description defines.
pub struct EtsiSchemas {
    doc: Value,
}

/// The values an ETSI description defines: lines that start with a value (`VALUE`, `VALUE:`,
/// `VALUE -`, `VALUE,` or `VALUE.`), a list after a colon (`state: ACTIVE, INACTIVE`), or two
/// values joined by "or" (`per FLOW or PACKET`). None when the list is open ("etc.").
fn described_values(description: &str) -> Option<Vec<String>> {
    fn value(word: &str) -> Option<&str> {
        let word = word.trim().trim_end_matches(['.', ',']);
        (word.len() > 1
            && word.starts_with(|c: char| c.is_ascii_uppercase())
            && word
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
        .then_some(word)
    }
    if description.contains("etc.") {
        return None;
    }
    let mut values: Vec<String> = Vec::new();
    let mut add = |v: &str| {
        if !values.iter().any(|x| x == v) {
            values.push(v.to_owned());
        }
    };
    for line in description.lines() {
        let head = line.split([':', ' ']).next().unwrap_or_default();
        if let Some(v) = value(head).filter(|_| {
            let rest = line.trim()[head.len()..].trim_start();
            rest.is_empty() || rest.starts_with([':', '-', ',', '.'])
        }) {
            add(v);
        }
        if let Some((_, list)) = line.split_once(": ") {
            let items: Vec<&str> = list.split(',').map(str::trim).collect();
            if items.len() > 1 && items.iter().all(|i| value(i).is_some()) {
                items.iter().filter_map(|i| value(i)).for_each(&mut add);
            }
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(3).filter(|w| w[1] == "or") {
            if let (Some(a), Some(b)) = (value(w[0]), value(w[2])) {
                add(a);
                add(b);
            }
        }
    }
    Some(values)
}

fn neutralise_artefacts(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(single) = map
                .get("enum")
                .and_then(Value::as_array)
                .filter(|e| e.len() == 1)
                .map(|e| e[0].clone())
            {
                let description = map.get("description").and_then(Value::as_str);
                match description.map(described_values) {
                    // an open list
                    Some(None) => {
                        map.remove("enum");
                    }
                    Some(Some(values)) if values.len() > 1 => {
                        map.insert("enum".into(), serde_json::json!(values));
                    }
                    _ if single == "SEE_DESCRIPTION" => {
                        map.remove("enum");
                    }
                    // a real one-value enum
                    _ => {}
                }
            }
            if let Some(grant) = map.get_mut("grantTypes").filter(|g| g["type"] == "string") {
                *grant = serde_json::json!({"type": "array", "items": {"type": "string"}});
            }
            map.values_mut().for_each(neutralise_artefacts);
        }
        Value::Array(items) => items.iter_mut().for_each(neutralise_artefacts),
        _ => {}
    }
}

impl EtsiSchemas {
    /// Loads a YAML OpenAPI document.
    pub fn load(path: &std::path::Path) -> Self {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        };
        let mut doc: Value = match serde_yaml::from_str(&text) {
            Ok(d) => d,
            Err(e) => panic!("{} is not YAML: {e}", path.display()),
        };
        neutralise_artefacts(&mut doc);
        Self { doc }
    }

    /// The prepared document.
    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// The validation errors of `instance` against `components/schemas/{schema}`.
    pub fn errors(&self, schema: &str, instance: &Value) -> Vec<String> {
        let mut root = self.doc.clone();
        root["$ref"] = Value::String(format!("#/components/schemas/{schema}"));
        match jsonschema::validator_for(&root) {
            Ok(v) => v
                .iter_errors(instance)
                .map(|e| format!("{e} at {}", e.instance_path))
                .collect(),
            Err(e) => vec![format!("schema {schema} does not compile: {e}")],
        }
    }

    /// Fails the test unless `instance` validates against `schema`.
    pub fn check(&self, schema: &str, instance: &Value) {
        let errors = self.errors(schema, instance);
        assert!(
            errors.is_empty(),
            "{schema} does not validate: {errors:?}\n{instance:#}"
        );
    }
}

type KeyPair = (
    openssl::x509::X509,
    openssl::pkey::PKey<openssl::pkey::Private>,
);

type Issuer<'a> = Option<(
    &'a openssl::x509::X509,
    &'a openssl::pkey::PKey<openssl::pkey::Private>,
)>;

/// What a test certificate is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Ca,
    Signing,
    Tls,
}

/// A certificate for `cn` (RSA 2048, valid two days), a CA when `ca` (else a signing
/// certificate), self-signed unless `issuer` signs it.
pub fn certificate(cn: &str, issuer: Issuer<'_>, ca: bool) -> KeyPair {
    let purpose = if ca { Purpose::Ca } else { Purpose::Signing };
    build_certificate(cn, issuer, purpose).unwrap_or_else(|e| panic!("test certificate: {e}"))
}

fn build_certificate(
    cn: &str,
    issuer: Issuer<'_>,
    purpose: Purpose,
) -> Result<KeyPair, openssl::error::ErrorStack> {
    use openssl::x509::extension::{
        BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    };
    let name = |cn: &str| {
        let mut n = openssl::x509::X509NameBuilder::new()?;
        n.append_entry_by_text("CN", cn)?;
        Ok::<_, openssl::error::ErrorStack>(n.build())
    };
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048)?)?;
    let mut b = openssl::x509::X509::builder()?;
    let mut serial = [0u8; 4];
    openssl::rand::rand_bytes(&mut serial)?;
    let serial = openssl::bn::BigNum::from_u32(u32::from_le_bytes(serial) >> 1)?;
    b.set_version(2)?;
    let (serial, subject) = (serial.to_asn1_integer()?, name(cn)?);
    b.set_serial_number(&serial)?;
    b.set_subject_name(&subject)?;
    b.set_issuer_name(issuer.map_or(&*subject, |(c, _)| c.subject_name()))?;
    b.set_pubkey(&key)?;
    let (from, until) = (
        openssl::asn1::Asn1Time::days_from_now(0)?,
        openssl::asn1::Asn1Time::days_from_now(2)?,
    );
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    match purpose {
        Purpose::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build()?)?;
        }
        Purpose::Signing => {
            b.append_extension(KeyUsage::new().digital_signature().build()?)?;
        }
        Purpose::Tls => {
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))?;
            b.append_extension(
                KeyUsage::new()
                    .digital_signature()
                    .key_encipherment()
                    .build()?,
            )?;
            b.append_extension(
                ExtendedKeyUsage::new()
                    .server_auth()
                    .client_auth()
                    .build()?,
            )?;
            b.append_extension(san)?;
        }
    }
    b.sign(
        issuer.map_or(&key, |(_, k)| k),
        openssl::hash::MessageDigest::sha256(),
    )?;
    Ok((b.build(), key))
}

/// A test CA writing PEM files into a directory: `ca.pem`, and `<name>.pem`/`<name>.key` for
/// each certificate it issues.
pub struct TestPki {
    dir: std::path::PathBuf,
    ca: openssl::x509::X509,
    key: openssl::pkey::PKey<openssl::pkey::Private>,
}

impl TestPki {
    /// A new CA named `name`, its certificate written to `dir/ca.pem`.
    pub fn new(dir: &std::path::Path, name: &str) -> Self {
        let (ca, key) = certificate(name, None, true);
        let pem = ca.to_pem().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("ca.pem"), pem).unwrap_or_else(|e| panic!("{e}"));
        Self {
            dir: dir.to_owned(),
            ca,
            key,
        }
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a TLS server and client certificate for `cn` (alternative names `localhost` and
    /// 127.0.0.1); returns its certificate and key files.
    pub fn issue(&self, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = build_certificate(cn, Some((&self.ca, &self.key)), Purpose::Tls)
            .unwrap_or_else(|e| panic!("test certificate: {e}"));
        let (cert_file, key_file) = (
            self.dir.join(format!("{cn}.pem")),
            self.dir.join(format!("{cn}.key")),
        );
        let write = |path: &std::path::Path, pem: Result<Vec<u8>, _>| {
            std::fs::write(
                path,
                pem.unwrap_or_else(|e: openssl::error::ErrorStack| panic!("{e}")),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        write(&cert_file, cert.to_pem());
        write(&key_file, key.private_key_to_pem_pkcs8());
        (cert_file, key_file)
    }
}

/// The responses an OpenAPI document promises, to check every response a test receives against
/// (method, path, status, content type and body): the service's own checked-in document, whose
/// every status must be documented, or an ETSI document, whose schemas are checked where ETSI
/// defines the operation and the status.
pub struct ResponseContract {
    name: String,
    doc: Value,
    /// The path the document's `paths` are relative to (its first server's).
    base: String,
    /// Whether a status the document does not list is an error (the service's own document).
    own: bool,
    /// Errors tolerated: a part of their message.
    exceptions: Vec<&'static str>,
    validators: Mutex<std::collections::HashMap<String, Arc<jsonschema::Validator>>>,
}

impl ResponseContract {
    /// The service's own document (JSON): every response's status and body as it says.
    pub fn own(path: &std::path::Path) -> Self {
        let doc = match std::fs::read_to_string(path).map(|t| serde_json::from_str(&t)) {
            Ok(Ok(doc)) => doc,
            other => panic!("{} is not a JSON document: {other:?}", path.display()),
        };
        Self::new(path, doc, true)
    }

    /// An ETSI document (YAML, prepared as [`EtsiSchemas`] prepares it): the bodies of the
    /// operations and statuses it defines.
    pub fn etsi(path: &std::path::Path) -> Self {
        Self::new(path, EtsiSchemas::load(path).doc, false)
    }

    /// Tolerates the errors that contain `message`: a deviation the service's own document
    /// states as an extension (the caller says which), never a silent one.
    pub fn except(mut self, message: &'static str) -> Self {
        self.exceptions.push(message);
        self
    }

    fn new(path: &std::path::Path, mut doc: Value, own: bool) -> Self {
        responses_only(&mut doc);
        let base = doc
            .pointer("/servers/0/url")
            .and_then(Value::as_str)
            .and_then(|u| u.split_once("://").map(|(_, rest)| rest).or(Some(u)))
            .and_then(|rest| {
                rest.find('/')
                    .map(|i| rest[i..].trim_end_matches('/').to_owned())
            })
            .unwrap_or_default();
        Self {
            name: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into()),
            doc,
            base,
            own,
            exceptions: Vec::new(),
            validators: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// The document's path template that `path` (without query) matches, if any.
    fn template(&self, path: &str) -> Option<String> {
        let relative = path.strip_prefix(self.base.as_str())?;
        let segments: Vec<&str> = relative.split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        // a literal segment beats a parameter: the template with the most literal matches
        paths
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                (parts.len() == segments.len()).then_some(())?;
                let mut literal = 0;
                for (t, s) in parts.iter().zip(&segments) {
                    if t.starts_with('{') && t.ends_with('}') && !s.is_empty() {
                        continue;
                    }
                    (t == s).then_some(())?;
                    literal += 1;
                }
                Some((literal, template.clone()))
            })
            .max()
            .map(|(_, t)| t)
    }

    /// What is wrong with a response: `method` and `path` of the request (path without query),
    /// the response's status, content type and body.
    pub fn errors(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let at = format!("{} {method} {path} {status}", self.name);
        let Some(template) = self.template(path) else {
            // an API's path the document does not list (the admin and portal paths are not APIs)
            let api = |p: &str| p.split('/').take(3).collect::<Vec<_>>().join("/");
            let documented_api = self.doc["paths"]
                .as_object()
                .is_some_and(|paths| paths.keys().any(|t| api(t) == api(path)));
            // (an unknown path of a documented API is answered 404 or 405, as it should be)
            return if self.own && documented_api && ![404, 405].contains(&status) {
                vec![format!("{at}: the path is not documented")]
            } else {
                Vec::new()
            };
        };
        let escaped = template.replace('~', "~0").replace('/', "~1");
        let operation = format!("/paths/{escaped}/{}", method.to_ascii_lowercase());
        if self.doc.pointer(&operation).is_none() {
            return if self.own && status != 405 {
                vec![format!("{at}: the operation is not documented")]
            } else {
                Vec::new()
            };
        }
        let responses = format!("{operation}/responses");
        let response = [
            status.to_string(),
            format!("{}XX", status / 100),
            "default".into(),
        ]
        .into_iter()
        .map(|s| format!("{responses}/{s}"))
        .find(|p| self.doc.pointer(p).is_some());
        let Some(response) = response else {
            return if self.own {
                vec![format!("{at}: the status is not documented")]
            } else {
                Vec::new()
            };
        };
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        let content = format!("{response}/content");
        let Some(documented) = self.doc.pointer(&content).and_then(Value::as_object) else {
            return if self.own && !body.is_empty() {
                vec![format!(
                    "{at}: a body ({media}) where the document has none"
                )]
            } else {
                Vec::new()
            };
        };
        let Some(entry) = documented.get(media) else {
            return if self.own && !(body.is_empty() && status == 204) {
                vec![format!(
                    "{at}: content type {media:?}, documented: {:?}",
                    documented.keys().collect::<Vec<_>>()
                )]
            } else {
                Vec::new()
            };
        };
        if entry.get("schema").is_none() || !media.ends_with("json") {
            return Vec::new();
        }
        let instance: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return vec![format!("{at}: the body is not JSON: {e}")],
        };
        let pointer = format!("{content}/{}/schema", media.replace('/', "~1"));
        match self.validator(&pointer) {
            Ok(v) => v
                .iter_errors(&instance)
                .map(|e| format!("{e} at {}", e.instance_path))
                .filter(|e| !self.exceptions.iter().any(|m| e.contains(m)))
                .take(8)
                .map(|e| format!("{at}: {e}"))
                .collect(),
            Err(e) => vec![format!("{at}: {e}")],
        }
    }

    fn validator(&self, pointer: &str) -> Result<Arc<jsonschema::Validator>, String> {
        let mut cache = self.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(pointer) {
            return Ok(v.clone());
        }
        let mut root = self.doc.pointer(pointer).cloned().unwrap_or_default();
        if let Value::Object(map) = &mut root {
            map.insert("components".into(), self.doc["components"].clone());
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .map_err(|e| format!("the schema at {pointer} does not compile: {e}"))?;
        let validator = Arc::new(validator);
        cache.insert(pointer.to_owned(), validator.clone());
        Ok(validator)
    }
}

/// A document as its responses are to be read (OpenAPI 3.1 4.8.24.4): a required property that
/// is `writeOnly` is required in requests only.
fn responses_only(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let write_only: Vec<String> = map
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(_, p)| p["writeOnly"] == true)
                .map(|(name, _)| name.clone())
                .collect();
            if let Some(Value::Array(required)) = map.get_mut("required") {
                required.retain(|r| {
                    !r.as_str()
                        .is_some_and(|r| write_only.iter().any(|w| w == r))
                });
            }
            map.values_mut().for_each(responses_only);
        }
        Value::Array(items) => items.iter_mut().for_each(responses_only),
        _ => {}
    }
}

/// Several [`ResponseContract`]s that every response of a test suite's helpers is checked
/// against.
pub struct Contracts(pub Vec<ResponseContract>);

impl Contracts {
    /// Fails the test if the response breaks a contract; the response, buffered, otherwise.
    pub async fn checked(&self, method: &str, response: reqwest::Response) -> reqwest::Response {
        let status = response.status();
        let headers = response.headers().clone();
        let path = response.url().path().to_owned();
        // an attribute selector (ETSI GS MEC 009 6.18) asks for a partial representation: the
        // attributes it removes are absent, required or not
        let partial = response
            .url()
            .query_pairs()
            .any(|(k, _)| ["fields", "exclude_fields", "exclude_default"].contains(&k.as_ref()));
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => panic!("the response body: {e}"),
        };
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let errors: Vec<String> = self
            .0
            .iter()
            .flat_map(|c| c.errors(method, &path, status.as_u16(), content_type, &body))
            .filter(|e| !(partial && e.contains("is a required property")))
            .collect();
        assert!(
            errors.is_empty(),
            "the response breaks its documents:\n{}\n{}",
            errors.join("\n"),
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        );
        let mut rebuilt = http::Response::new(body);
        *rebuilt.status_mut() = status;
        *rebuilt.headers_mut() = headers;
        reqwest::Response::from(rebuilt)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_port_never_hands_out_a_port_twice() {
        // 500 draws from some 16,000 ports collide by chance (birthday bound) unless the ports
        // handed out are remembered; none of them is bound meanwhile
        let ports: Vec<u16> = (0..500).map(|_| super::free_port()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
