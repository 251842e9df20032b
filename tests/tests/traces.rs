//! One trace per operation across both services, as a real OpenTelemetry Collector receives
//! it: the MEAO and the site's MEP run as the processes they are in production (service names
//! `meao` and `mep`) and export over OTLP to a collector built from Go modules
//! (`tests/otelcol/build.sh`, `MECPLANE_OTELCOL`), whose file exporter the test reads. The
//! services keep running while the test waits for the spans: every span must end when its work
//! does, not when its process stops.
//!
//! - An instantiate requested with the caller's `traceparent`: its HTTP request, the LCM
//!   operation, the saga steps, the VIM call, the desired configuration sent over the MEP link
//!   (to a MEP that connects only after the step desired it, so the message arrives as a
//!   resend), the MEP's apply and ACK and the ACK's receipt, and the POST of the operation's
//!   notification (whose `traceparent` names it) are one trace with the right parents.
//! - The application's readiness at the MEP installs its rules at the UPF (a PFCP peer on
//!   scapy's codec) in the trace of that request; a `configure_platform_for_app` carries its
//!   rule change from the MEAO's request to the PFCP Session Modification in one trace.
//!
//! Under `CI=true` a missing collector (or scapy) fails the test; otherwise it is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use e2e::{
    Service, create_instance, get_json, link_configs, meao_toml_sections, onboard_example, token,
    wait_op,
};
use meao::events::testing::free_port;
use serde_json::{Value, json};
use server_kit::testing::{Callback, EVENTUALLY, TestPki, eventually};
use upf_rules::testing::UpfPeer;

const VA: &str = "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51";

/// The collector binary (`MECPLANE_OTELCOL`); `None` (skip) when unset, except under CI=true.
fn collector_binary() -> Option<PathBuf> {
    match std::env::var_os("MECPLANE_OTELCOL").filter(|p| !p.is_empty()) {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but MECPLANE_OTELCOL is not set: the trace test cannot run"
            );
            eprintln!("MECPLANE_OTELCOL not set (tests/otelcol/build.sh): skipping the trace test");
            None
        }
    }
}

/// A collector receiving OTLP/gRPC on a loopback port and writing what it receives to a file
/// (OTLP JSON, one export per line); killed when dropped.
struct Collector {
    child: Child,
    endpoint: String,
    output: PathBuf,
}

impl Collector {
    async fn start(binary: &Path, dir: &Path) -> Self {
        let port = free_port();
        let output = dir.join("spans.jsonl");
        let config = dir.join("otelcol.yaml");
        std::fs::write(
            &config,
            format!(
                "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{port}\n\
                 exporters:\n  file:\n    path: {}\n    flush_interval: 100ms\n\
                 service:\n  telemetry:\n    metrics:\n      level: none\n    logs:\n      level: warn\n\
                 \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n",
                output.display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg(format!("--config=file:{}", config.display()))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut collector = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            output,
        };
        eventually("the collector listening", EVENTUALLY, async || {
            if let Some(status) = collector.child.try_wait().unwrap() {
                panic!("the collector exited ({status}); its error is above");
            }
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(drop)
        })
        .await;
        collector
    }

    /// Every span written so far.
    fn spans(&self) -> Vec<Span> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        let mut spans = Vec::new();
        // the last line may be half written
        for export in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                let service = attribute(&resource["resource"]["attributes"], "service.name");
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for s in scope["spans"].as_array().into_iter().flatten() {
                        spans.push(Span {
                            service: service.clone(),
                            trace: s["traceId"].as_str().unwrap_or_default().to_owned(),
                            id: s["spanId"].as_str().unwrap_or_default().to_owned(),
                            parent: s["parentSpanId"].as_str().unwrap_or_default().to_owned(),
                            name: s["name"].as_str().unwrap_or_default().to_owned(),
                            kind: s["kind"].as_i64().unwrap_or_default(),
                            attributes: s["attributes"].clone(),
                        });
                    }
                }
            }
        }
        spans
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The string value of attribute `key` in an OTLP attribute list.
fn attribute(attributes: &Value, key: &str) -> String {
    attributes
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["stringValue"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// One span as the collector wrote it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i64,
    attributes: Value,
}

const SERVER: i64 = 2;
const CLIENT: i64 = 3;
const PRODUCER: i64 = 4;
const CONSUMER: i64 = 5;

/// Finds, in trace `trace`, a span for each `(service, name, parent)` of `tree` whose parent is
/// the span found for entry `parent` (`None`: the caller's span `root`); the spans found, or
/// what is missing.
fn tree(
    spans: &[Span],
    trace: &str,
    root: &str,
    tree: &[(&str, &str, Option<usize>)],
) -> Result<Vec<Span>, String> {
    let mut found: Vec<Span> = Vec::new();
    for (service, name, parent) in tree {
        let parent_id = match parent {
            None => root.to_owned(),
            Some(i) => found[*i].id.clone(),
        };
        let span = spans.iter().find(|s| {
            s.trace == trace && s.service == *service && s.name == *name && s.parent == parent_id
        });
        match span {
            Some(s) => found.push(s.clone()),
            None => {
                let seen: Vec<String> = spans
                    .iter()
                    .filter(|s| s.trace == trace)
                    .map(|s| format!("{} {:?} {}<-{}", s.service, s.name, s.id, s.parent))
                    .collect();
                return Err(format!(
                    "no {service} span {name:?} under {parent_id} in trace {trace}; its spans: {seen:#?}"
                ));
            }
        }
    }
    Ok(found)
}

/// The W3C trace context of one of the test's own (never exported) client spans: trace id
/// and span id.
fn caller(n: u8) -> (String, String) {
    (
        format!("{:032x}", 0x4bf9_2f35_77b3_4da6_u128 << 64 | u128::from(n)),
        format!("{:016x}", 0x00f0_67aa_0ba9_0200_u64 | u64::from(n)),
    )
}

/// The `[telemetry]` section of a service exporting to the collector at `endpoint`.
fn telemetry(endpoint: &str) -> String {
    format!("[telemetry]\nfilter = \"info\"\njson = true\notlp_endpoint = \"{endpoint}\"\n")
}

/// POSTs `body` to `url` as the caller of trace `(trace, span)`; the response.
async fn post_traced(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    (trace, span): &(String, String),
    body: Value,
) -> reqwest::Response {
    http.post(url)
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace}-{span}-01"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_is_one_trace_across_the_meao_and_the_mep() {
    let Some(binary) = collector_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(&binary, dir.path()).await;
    let upf = upf_rules::testing::python().map(|py| UpfPeer::start(&py, dir.path()));

    let link_port = free_port();
    let (meao_link, mep_link) =
        link_configs(&TestPki::new(dir.path(), "link CA"), "paris-1", link_port);
    // the site's MEP, started only after the MEAO desired the instance's configuration
    let mep_port = free_port();
    let mut mep_config = format!(
        r#"listen = "127.0.0.1:{mep_port}"
database_url = "sqlite://{dir}/mep.db?mode=rwc"
{telemetry}[dns]
listen = "127.0.0.1:0"
[auth]
signing_key = "mep-key"
[[auth.clients]]
client_id = "operator"
client_secret = "operator-secret"
scopes = ["mec_app_support"]
[meao]
url = "{url}"
mep_id = "paris-1"
max_backoff_ms = 200
keep_alive_secs = 10
tls = {{ cert_file = "{cert}", key_file = "{key}", ca_file = "{ca}" }}
"#,
        dir = dir.path().display(),
        telemetry = telemetry(&collector.endpoint),
        url = mep_link.url,
        cert = mep_link.tls.cert_file.display(),
        key = mep_link.tls.key_file.display(),
        ca = mep_link.tls.ca_file.display(),
    );
    if let Some(peer) = &upf {
        mep_config.push_str(&format!(
            "[upf]\npfcp_address = \"{}\"\nlocal = \"127.0.0.1:0\"\nnetwork_instance = \"mec.paris\"\nt1_ms = 300\nn1 = 3\nheartbeat_secs = 1\n",
            peer.addr
        ));
    }
    let mep_toml = dir.path().join("mep.toml");
    std::fs::write(&mep_toml, mep_config).unwrap();
    let meao_toml = dir.path().join("meao.toml");
    std::fs::write(
        &meao_toml,
        format!(
            r#"listen = "127.0.0.1:0"
database_url = "sqlite://{dir}/meao.db?mode=rwc"
data_dir = "{dir}/data"
{telemetry}{sections}[[sites]]
id = "paris-1"
location = {{ latitude = 48.86, longitude = 2.35 }}
zone = "paris"
services = ["RNIS"]
mepUrl = "http://127.0.0.1:{mep_port}"
vim = {{ kind = "simulated", cpuMillis = 16000, memoryMib = 32768 }}
"#,
            dir = dir.path().display(),
            telemetry = telemetry(&collector.endpoint),
            sections = meao_toml_sections(&meao_link),
        ),
    )
    .unwrap();

    let meao = Service::start("meao", &meao_toml, dir.path()).await;
    let http = reqwest::Client::new();
    let m = meao.base.clone();
    let oss = token(&http, &m, "oss", "oss-secret").await;
    let mut occurrences = Callback::start(0).await;
    let r = http
        .post(format!("{m}/app_lcm/v1/subscriptions"))
        .bearer_auth(&oss)
        .json(&json!({"subscriptionType": "AppLcmOpOccStateChangeSubscription", "callbackUri": occurrences.url,
            "appLcmOpOccSubscriptionFilter": {"operationStates": ["COMPLETED"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    onboard_example(&http, &m, &oss, "video-analytics").await;
    let id = create_instance(&http, &m, &oss, VA).await;

    // instantiate, as the caller of trace t1; the MEP is not there yet
    let t1 = caller(1);
    let url = format!("{m}/app_lcm/v1/app_instances/{id}/instantiate");
    let r = post_traced(&http, &url, &oss, &t1, json!({})).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let site = format!("{m}/inventory/v1/sites/paris-1/mep");
    eventually(
        "the configuration desired, unsent",
        EVENTUALLY,
        async || {
            let mep = get_json(&http, &site, &oss).await;
            match mep["appInstances"][0]["version"].as_i64() {
                Some(v) if v >= 1 && mep["connected"] == false => Ok(()),
                _ => Err(mep),
            }
        },
    )
    .await;
    let mep = Service::start("mep", &mep_toml, dir.path()).await;
    let op = wait_op(&http, &m, &oss, &location).await;
    assert_eq!(op["operationState"], "COMPLETED", "{op:#}");
    let (notification, headers) = occurrences.next_with_headers().await;
    assert_eq!(notification["appLcmOpOccId"], op["id"]);
    let traceparent = headers["traceparent"].to_str().unwrap().to_owned();

    // the application is ready, as the caller of trace t2: its rules go to the UPF
    let p = mep.base.clone();
    let operator = token(&http, &p, "operator", "operator-secret").await;
    let t2 = caller(2);
    let url = format!("{p}/mec_app_support/v1/applications/{id}/confirm_ready");
    let r = post_traced(&http, &url, &operator, &t2, json!({"indication": "READY"})).await;
    assert_eq!(r.status(), 204);

    // new rules, as the caller of trace t3
    let t3 = caller(3);
    let url = format!("{m}/app_lcm/v1/app_instances/{id}/configure_platform_for_app");
    let body = json!({
        "appTrafficRule": [{"trafficRuleId": "camera-rtsp", "filterType": "FLOW", "priority": 5,
            "trafficFilter": [{"dstAddress": ["203.0.113.0/24"], "dstPort": ["9554"], "protocol": ["TCP"]}],
            "action": "FORWARD_DECAPSULATED", "dstInterface": {"interfaceType": "IP", "dstIPAddress": "10.100.0.11"}}]
    });
    let r = post_traced(&http, &url, &oss, &t3, body).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let configured = wait_op(&http, &m, &oss, &location).await;
    assert_eq!(configured["operationState"], "COMPLETED", "{configured:#}");
    if let Some(upf) = &upf {
        eventually("the UPF's modified session", EVENTUALLY, async || {
            let flows = json!(upf.sessions()).to_string();
            if flows.contains("9554") {
                Ok(())
            } else {
                Err(flows)
            }
        })
        .await;
    }

    let instantiate = [
        (
            "meao",
            "POST /app_lcm/v1/app_instances/{appInstanceId}/instantiate",
            None,
        ),
        ("meao", "INSTANTIATE", Some(0)),
        ("meao", "app-instantiate apply", Some(1)),
        ("meao", "VIM apply", Some(2)),
        ("meao", "app-instantiate configure-platform", Some(1)),
        ("meao", "send DesiredConfig", Some(4)),
        ("mep", "apply DesiredConfig", Some(5)),
        ("mep", "send Ack", Some(6)),
        ("meao", "receive Ack", Some(7)),
        ("meao", "POST", Some(1)),
    ];
    let mut configure = vec![
        (
            "meao",
            "POST /app_lcm/v1/app_instances/{appInstanceId}/configure_platform_for_app",
            None,
        ),
        ("meao", "CONFIGURE_PLATFORM_FOR_APP", Some(0)),
        ("meao", "app-configure-platform configure-platform", Some(1)),
        ("meao", "send DesiredConfig", Some(2)),
        ("mep", "apply DesiredConfig", Some(3)),
        ("mep", "send Ack", Some(4)),
        ("meao", "receive Ack", Some(5)),
    ];
    let mut ready = vec![];
    if upf.is_some() {
        configure.push(("mep", "install traffic rules", Some(4)));
        configure.push(("mep", "PFCP SessionModificationRequest", Some(7)));
        ready = vec![
            (
                "mep",
                "POST /mec_app_support/v1/applications/{appInstanceId}/confirm_ready",
                None,
            ),
            ("mep", "install traffic rules", Some(0)),
            ("mep", "PFCP SessionEstablishmentRequest", Some(1)),
        ];
    }
    // with both services still running: every span of the three operations has ended
    let (spans, ready, _) = eventually("the three traces", EVENTUALLY, async || {
        let all = collector.spans();
        Ok::<_, String>((
            tree(&all, &t1.0, &t1.1, &instantiate)?,
            tree(&all, &t2.0, &t2.1, &ready)?,
            tree(&all, &t3.0, &t3.1, &configure)?,
        ))
    })
    .await;
    let kinds: Vec<i64> = spans.iter().map(|s| s.kind).collect();
    assert_eq!(
        (kinds[0], kinds[5], kinds[6], kinds[7], kinds[8], kinds[9]),
        (SERVER, PRODUCER, CONSUMER, PRODUCER, CONSUMER, CLIENT)
    );
    let op_attributes = &spans[1].attributes;
    assert_eq!(
        attribute(op_attributes, "app_lcm_op_occ_id"),
        op["id"].as_str().unwrap()
    );
    assert_eq!(attribute(op_attributes, "app_instance_id"), id);
    assert_eq!(attribute(&spans[3].attributes, "site_id"), "paris-1");
    assert_eq!(attribute(&spans[5].attributes, "site_id"), "paris-1");
    // the notification's POST carries the trace, its span the parent
    assert_eq!(traceparent, format!("00-{}-{}-01", t1.0, spans[9].id));
    if let [http, install, pfcp] = &ready[..] {
        assert_eq!((http.kind, pfcp.kind), (SERVER, CLIENT));
        assert_eq!(attribute(&install.attributes, "app_instance_id"), id);
    }
}
