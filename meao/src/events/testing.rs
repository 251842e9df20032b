//! Apache Kafka and a consumer for tests (feature `test-support`): a single-node KRaft broker
//! run with Java from the jars `tests/kafka/fetch.sh` puts in `MECPLANE_KAFKA`, which can crash
//! and come back on its log, and a consumer that gathers the event topics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use serde_json::Value;

/// The directory of the Kafka broker's jars (`MECPLANE_KAFKA`); `None` (skip) when unset, except
/// under CI=true.
pub fn kafka() -> Option<PathBuf> {
    match std::env::var_os("MECPLANE_KAFKA").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but MECPLANE_KAFKA is not set: the Kafka tests cannot run"
            );
            eprintln!("MECPLANE_KAFKA not set: skipping a Kafka test");
            None
        }
    }
}

/// A single-node Apache Kafka (broker and KRaft controller in one process) on loopback, its
/// log in a temporary directory; killed when dropped.
pub struct Broker {
    jars: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// How long a broker may take to listen: a JVM starting on a loaded machine.
const START: Duration = Duration::from_secs(120);

impl Broker {
    /// Formats a fresh log directory and starts the broker on 127.0.0.1:`port`; returns once
    /// it listens.
    pub async fn start(jars: &Path, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let controller = free_port();
        let logs = dir.path().join("log");
        std::fs::write(
            dir.path().join("server.properties"),
            format!(
                "process.roles=broker,controller\n\
                 node.id=1\n\
                 controller.quorum.voters=1@127.0.0.1:{controller}\n\
                 listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
                 controller.listener.names=CONTROLLER\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
                 log.dirs={}\n\
                 num.partitions=1\n\
                 offsets.topic.replication.factor=1\n\
                 offsets.topic.num.partitions=1\n\
                 transaction.state.log.replication.factor=1\n\
                 transaction.state.log.min.isr=1\n\
                 share.coordinator.state.topic.replication.factor=1\n\
                 share.coordinator.state.topic.min.isr=1\n\
                 group.initial.rebalance.delay.ms=0\n\
                 auto.create.topics.enable=true\n",
                logs.display()
            ),
        )
        .unwrap();
        let mut broker = Self {
            jars: jars.to_owned(),
            port,
            dir,
            child: None,
        };
        // a cluster id is 16 random bytes, base64url without padding; one starting with '-'
        // would read as an option (1 in 64 runs failed so), so its first six bits are fixed
        let mut raw = *uuid::Uuid::new_v4().as_bytes();
        raw[0] &= 0x03;
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut format = broker.java("kafka.tools.StorageTool");
        format
            .args(["format", "--cluster-id", &id, "--config"])
            .arg(broker.dir.path().join("server.properties"));
        let format = tokio::task::spawn_blocking(move || format.output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            format.status.success(),
            "kafka-storage format: {}{}",
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );
        broker.restart().await;
        broker
    }

    /// `host:port` to bootstrap from.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn java(&self, main: &str) -> Command {
        let mut java = Command::new("java");
        java.args(["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC"])
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .arg("-cp")
            .arg(self.jars.join("*"))
            .arg(main)
            .current_dir(self.dir.path());
        java
    }

    /// Kills the broker as a crash would (SIGKILL); its log stays for [`Broker::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the broker on its log directory; returns once it listens.
    pub async fn restart(&mut self) {
        self.kill();
        let log = self.dir.path().join("kafka.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = self
            .java("kafka.Kafka")
            .arg("server.properties")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let child = self.child.insert(child);
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            let exited = child.try_wait().unwrap();
            if exited.is_some() || started.elapsed() > START {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                panic!(
                    "Kafka did not start on port {} ({exited:?} after {:?}):\n{}",
                    self.port,
                    started.elapsed(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

pub use server_kit::testing::free_port;

/// Consumes the event topics until `done` holds for what arrived (by topic, then key), or
/// 120 s; each event once (at least once delivery: repeats are told by their CloudEvent id).
pub async fn consume(
    brokers: &str,
    prefix: &str,
    done: impl Fn(&BTreeMap<String, BTreeMap<String, Vec<Value>>>) -> bool,
) -> Consumed {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{prefix}-test"))
        .set("auto.offset.reset", "earliest")
        // the least Apache Kafka accepts by default (group.min.session.timeout.ms)
        .set("session.timeout.ms", "6000")
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
    let mut ids = std::collections::HashSet::new();
    let mut duplicates = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
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
            duplicates += 1;
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
    Consumed {
        events: seen,
        duplicates,
    }
}

/// What [`consume`] read.
#[derive(Debug)]
pub struct Consumed {
    /// The events by topic (its last dot-separated part) and key, each event once.
    pub events: BTreeMap<String, BTreeMap<String, Vec<Value>>>,
    /// How many records repeated an event already read.
    pub duplicates: usize,
}
