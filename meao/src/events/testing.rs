//! A Kafka-protocol broker and a consumer for tests (feature `test-support`): nisshi started
//! from `MECPLANE_NISSHI`, and a consumer that gathers the event topics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;

/// The nisshi binary (`MECPLANE_NISSHI`); `None` (skip) when unset, except under CI=true.
pub fn nisshi() -> Option<PathBuf> {
    match std::env::var_os("MECPLANE_NISSHI").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but MECPLANE_NISSHI is not set: the Kafka tests cannot run"
            );
            eprintln!("MECPLANE_NISSHI not set: skipping a Kafka test");
            None
        }
    }
}

/// A running nisshi broker (killed when dropped).
pub struct Broker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker on 127.0.0.1:`port` with in-memory storage.
    pub fn start(binary: &PathBuf, port: u16) -> Self {
        // nisshi reads ./.env: start it in a scratch directory
        let dir = tempfile::tempdir().unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .current_dir(dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://nisshi/"])
            .stdout(std::fs::File::create(dir.path().join("nisshi.log")).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self { child, _dir: dir }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Consumes the event topics until `done` holds for what arrived (by topic, then key), or 60 s.
pub async fn consume(
    brokers: &str,
    prefix: &str,
    done: impl Fn(&BTreeMap<String, BTreeMap<String, Vec<Value>>>) -> bool,
) -> BTreeMap<String, BTreeMap<String, Vec<Value>>> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{prefix}-test"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "1000")
        // topics appear as the publisher first writes to them
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let topics: Vec<String> = ["app-packages", "app-instances", "lcm-op-occs", "sites"]
        .iter()
        .map(|t| format!("{prefix}.{t}"))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).unwrap();
    let mut seen: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
    // at least once: a consumer rebalance may deliver again; CloudEvent ids tell
    let mut ids = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(&seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "events missing; got {seen:#?}");
        let Ok(Ok(m)) = tokio::time::timeout(left, consumer.recv()).await else {
            continue;
        };
        let headers = m.headers().unwrap();
        let content_type = headers.iter().find(|h| h.key == "content-type").unwrap();
        assert_eq!(
            content_type.value,
            Some(&b"application/cloudevents+json"[..])
        );
        let event: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        if !ids.insert(event["id"].as_str().unwrap().to_owned()) {
            continue;
        }
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        assert_eq!(event["subject"], key.as_str(), "keyed by the resource id");
        seen.entry(m.topic().rsplit('.').next().unwrap().to_owned())
            .or_default()
            .entry(key)
            .or_default()
            .push(event);
    }
    seen
}
