//! The test context: a MEAO on port 0, an OSS client, package helpers.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use meao::config::MeaoConfig;
use meao::server::{RunningServer, Server};
use reqwest::Method;
use serde_json::{Value, json};
use server_kit::auth::{ClientConfig, Secret};
pub use server_kit::testing::{Callback, Db};
use server_kit::testing::{Contracts, EVENTUALLY, ResponseContract, eventually};

/// What every response the helpers receive is checked against: the checked-in document, and
/// ETSI MEC 010-2's package management and lifecycle documents.
static CONTRACTS: std::sync::LazyLock<Contracts> = std::sync::LazyLock::new(|| {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    Contracts(vec![
        ResponseContract::own(&repo.join("api-specs/openapi/meao.json")),
        ResponseContract::etsi(&repo.join("api-specs/etsi/MEC01002_AppPkgMgmt.yaml")),
        // a mecplane extension, documented in meao.json: without selectedMECHostInfo the
        // placement engine chooses the host
        ResponseContract::etsi(&repo.join("api-specs/etsi/MEC01002_AppLcm.yaml"))
            .except("\"selectedMECHostInfo\" is a required property"),
    ])
});

pub struct Ctx {
    pub server: Option<RunningServer>,
    pub config: MeaoConfig,
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub _dir: tempfile::TempDir,
}

pub fn test_config(database_url: String, data_dir: &Path) -> MeaoConfig {
    let mut c = MeaoConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url,
        data_dir: data_dir.join("data"),
        ..MeaoConfig::default()
    };
    c.auth.signing_key = Some(Secret::new("meao-test"));
    c.auth.clients = vec![ClientConfig {
        client_id: "oss".into(),
        client_secret: Secret::new("oss-secret"),
        scopes: vec![
            "app_pkgm".into(),
            "app_lcm".into(),
            "mecplane_inventory".into(),
        ],
        app_instance_id: None,
    }];
    c.delivery.poll_interval_ms = 50;
    // callbacks and package servers of the tests listen on loopback
    c.outbound.allow = vec!["127.0.0.0/8".into()];
    // the test packages name registries that do not exist (tests/images.rs pins by digest)
    c.images.pin_digests = false;
    c.delivery.initial_backoff_ms = 100;
    c.packages.limits.max_entries = 50;
    c.packages.limits.max_descriptor_bytes = 64 * 1024;
    c.packages.limits.max_package_bytes = 4 << 20;
    c
}

/// Asserts that `r` refuses a request the resource's state does not allow: 403 (as ETSI MEC
/// 010-2 lists it), typed not-allowed-in-current-state.
pub async fn assert_not_allowed(r: reqwest::Response, why: &str) {
    assert_eq!(r.status(), 403, "{why}");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(
        problem["type"],
        api_specs::problem::NOT_ALLOWED_IN_STATE,
        "{why}: {problem}"
    );
}

pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/packages")
}

/// One of the shipped example packages, built.
pub fn example(name: &str) -> Vec<u8> {
    app_package::build::build(&examples().join(name), None).unwrap()
}

/// Where a test MEAO keeps package files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The local directory under `data_dir` (the embedded default).
    Local,
    /// A fresh prefix of the S3 test server's bucket (`MECPLANE_TEST_S3`).
    S3,
}

/// Generates `mod name { sqlite, postgres, s3 }` tests for each async fn taking a [`Db`] and a
/// [`Storage`]: both databases with the local directory, and SQLite with the S3 test server
/// (skipped without one, a failure under `CI=true`).
macro_rules! on_dbs_and_s3 {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::super::common::Storage;
            use server_kit::testing::Db;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name(Db::Sqlite, Storage::Local).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if server_kit::testing::pg_admin_url().is_some() {
                    super::$name(Db::Postgres, Storage::Local).await
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                if meao::package::blobs::testing::s3_server().is_some() {
                    super::$name(Db::Sqlite, Storage::S3).await
                }
            }
        }
    )*};
}
pub(crate) use on_dbs_and_s3;

/// Sets `config` to keep package files in `storage` (S3 credentials in a file of `dir`).
pub fn store_in(config: &mut MeaoConfig, storage: Storage, dir: &Path) {
    if storage == Storage::S3 {
        config.package_storage =
            meao::package::blobs::testing::s3_config(dir).expect("the S3 test server");
    }
}

impl Ctx {
    pub async fn start(db: Db) -> Self {
        Self::start_stored(db, Storage::Local).await
    }

    /// A MEAO on `db` keeping package files in `storage`.
    pub async fn start_stored(db: Db, storage: Storage) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = server_kit::testing::fresh_database(db, "meao", dir.path()).await;
        let mut config = test_config(url, dir.path());
        store_in(&mut config, storage, dir.path());
        Self::start_with(config, dir).await
    }

    pub async fn start_with(config: MeaoConfig, dir: tempfile::TempDir) -> Self {
        let server = Server::start(config.clone()).await.expect("MEAO starts");
        let base = server.api_root.clone();
        let mut ctx = Self {
            server: Some(server),
            config,
            http: reqwest::Client::new(),
            base,
            token: String::new(),
            _dir: dir,
        };
        ctx.token = ctx.fetch_token().await;
        ctx
    }

    async fn fetch_token(&self) -> String {
        let r: Value = self
            .http
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth("oss", Some("oss-secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().unwrap().to_owned()
    }

    /// Stops the MEAO and starts it again on the same database and data directory.
    pub async fn restart(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let server = Server::start(self.config.clone())
            .await
            .expect("MEAO restarts");
        self.base = server.api_root.clone();
        self.server = Some(server);
        self.token = self.fetch_token().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/app_pkgm/v1{path}", self.base)
    }

    /// `DELETE /inventory/v1/sites/{id}`.
    pub async fn delete_site(&self, id: &str) -> reqwest::Response {
        self.send(
            self.http
                .delete(format!("{}/inventory/v1/sites/{id}", self.base))
                .bearer_auth(&self.token),
        )
        .await
    }

    /// Sends `request`; fails the test if the response breaks the API's documents.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = request.build().expect("a request");
        let method = request.method().to_string();
        let response = self.http.execute(request).await.expect("a response");
        CONTRACTS.checked(&method, response).await
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r).await
    }

    pub async fn json(&self, path: &str) -> Value {
        let r = self.call(Method::GET, path, None).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.unwrap()
    }

    /// Creates a package resource and returns its id.
    pub async fn create(&self, name: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/app_packages",
                Some(json!({"appPkgName": name, "appPkgVersion": "1.0"})),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Uploads raw zip content.
    pub async fn upload(&self, id: &str, content: Vec<u8>) -> reqwest::Response {
        self.send(
            self.http
                .put(self.url(&format!("/app_packages/{id}/package_content")))
                .bearer_auth(&self.token)
                .header("content-type", "application/zip")
                .body(content),
        )
        .await
    }

    /// Creates and uploads; returns (id, upload status).
    pub async fn onboard(&self, name: &str, content: Vec<u8>) -> (String, u16) {
        let id = self.create(name).await;
        let status = self.upload(&id, content).await.status().as_u16();
        (id, status)
    }

    /// Files in the blob store (what a sweep with a grace longer than any test sees and keeps).
    pub async fn blob_count(&self) -> usize {
        let swept = self
            .server
            .as_ref()
            .unwrap()
            .packages
            .collect_garbage(std::time::Duration::from_secs(86_400))
            .await
            .unwrap();
        assert_eq!(swept.removed, 0);
        swept.kept_young + swept.referenced
    }

    /// Waits until the package reaches `state`.
    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        let what = format!("package {id} {state}");
        eventually(&what, EVENTUALLY, async || {
            let p = self.json(&format!("/app_packages/{id}")).await;
            if p["onboardingState"] == state {
                Ok(p)
            } else {
                Err(p)
            }
        })
        .await
    }

    /// Waits until the package's onboarding failed (its failure details are present).
    pub async fn wait_failed(&self, id: &str) -> Value {
        let what = format!("package {id} failed");
        eventually(&what, EVENTUALLY, async || {
            let p = self.json(&format!("/app_packages/{id}")).await;
            if p["onboardingFailureDetails"].is_object() {
                Ok(p)
            } else {
                Err(p)
            }
        })
        .await
    }
}

/// Rewrites one entry of a zip (or adds it).
pub fn rewrite(zip: &[u8], name: &str, content: &[u8]) -> Vec<u8> {
    let mut reader = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    let mut replaced = false;
    for i in 0..reader.len() {
        let mut f = reader.by_index(i).unwrap();
        let entry = f.name().unwrap().to_string();
        out.start_file(entry.as_str(), opts).unwrap();
        if entry == name {
            out.write_all(content).unwrap();
            replaced = true;
        } else {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).unwrap();
            out.write_all(&buf).unwrap();
        }
    }
    if !replaced {
        out.start_file(name, opts).unwrap();
        out.write_all(content).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// A package directory copied from an example, for tests that change files before building.
pub fn example_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&examples().join(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
