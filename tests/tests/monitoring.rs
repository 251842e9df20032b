//! Every metric the alerting rules and the Grafana dashboard of `deploy/monitoring/` use exists
//! on the real services' /metrics: a MEAO (with the MEP link and Kafka configured) and a MEP
//! (linked, with a UPF configured) are started and scraped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;

use e2e::{link_configs, meao_config};
use meao::events::testing::free_port;
use server_kit::testing::TestPki;

fn monitoring(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/monitoring")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The metric families a text names (`meao_…`, `mep_…`), without the sample suffixes.
fn families(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices(['m']) {
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &text[i..];
        if !boundary || !(rest.starts_with("meao_") || rest.starts_with("mep_")) {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.ends_with('_') {
            continue; // a prefix named in prose
        }
        let base = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        out.insert(base.to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_use_only_metrics_the_services_expose() {
    let dir = tempfile::tempdir().unwrap();
    let (meao_link, mep_link) =
        link_configs(&TestPki::new(dir.path(), "link CA"), "paris-1", free_port());
    let mut config = meao_config(dir.path());
    config.mep_link = Some(meao_link);
    config.sites =
        vec![serde_json::from_value(serde_json::json!({
        "id": "paris-1", "location": {"latitude": 48.86, "longitude": 2.35}, "zone": "paris",
        "vim": {"kind": "simulated", "cpuMillis": 1000, "memoryMib": 1024}
    }))
    .unwrap()];
    config.site_refresh_secs = 1;
    // a broker nobody runs: the publisher's metrics exist all the same
    config.kafka = Some(meao::events::KafkaConfig {
        brokers: format!("127.0.0.1:{}", free_port()),
        topic_prefix: "monitoring".into(),
        properties: Default::default(),
        poll_interval_ms: 1000,
        retention_hours: 1,
    });
    let meao = meao::server::Server::start(config).await.unwrap();
    let mut mep_config = mep::config::MepConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}/mep.db?mode=rwc", dir.path().display()),
        meao: Some(mep_link),
        ..mep::config::MepConfig::default()
    };
    mep_config.dns.listen = None;
    mep_config.upf = Some(mep::steering::UpfConfig {
        pfcp_address: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        local: "127.0.0.1:0".parse().unwrap(),
        network_instance: "mec".into(),
        t1_ms: 300,
        n1: 1,
        heartbeat_secs: 1,
    });
    let mep = mep::server::Server::start(mep_config).await.unwrap();

    // the gauges read from the store are there once the first update ran
    let scrape = |root: String| async move {
        reqwest::get(format!("{root}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let (meao_root, mep_root) = (meao.api_root.clone(), mep.api_root.clone());
    let exposed = server_kit::testing::eventually(
        "the state gauges",
        server_kit::testing::EVENTUALLY,
        async || {
            let text = scrape(meao_root.clone()).await + &scrape(mep_root.clone()).await;
            if text.contains("meao_site_healthy{site=\"paris-1\"} 1") {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;
    let exposed: BTreeSet<String> = exposed
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();

    let used: BTreeSet<String> = families(&monitoring("alerts.yaml"))
        .union(&families(&monitoring("grafana-dashboard.json")))
        .cloned()
        .collect();
    for alerted in [
        "meao_site_healthy",
        "mep_meao_link_connected",
        "meao_lcm_op_occs_failed_temp",
        "meao_events_oldest_pending_age_seconds",
        "mep_upf_associated",
    ] {
        assert!(used.contains(alerted), "{alerted} is watched");
    }
    let missing: Vec<_> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "not on /metrics: {missing:?}; exposed: {exposed:?}"
    );

    mep.shutdown().await;
    meao.shutdown().await;
}
