//! Telemetry start-up with the OTLP exporter configured (its own process: the subscriber is
//! global). No collector listens; the exporter must still build, spans must still be logged,
//! and shutdown must not hang.

#![allow(clippy::unwrap_used, missing_docs)]

use server_kit::telemetry::{TelemetryConfig, init};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_starts_and_shuts_down_without_a_collector() {
    let config = TelemetryConfig {
        filter: "info".into(),
        json: true,
        otlp_endpoint: Some("http://127.0.0.1:1".into()),
    };
    let guard = init("telemetry-test", &config).unwrap();
    tracing::info_span!("request", route = "/x").in_scope(|| tracing::info!("inside a span"));
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
    assert!(
        init("again", &TelemetryConfig::default()).is_err(),
        "a second global subscriber is refused"
    );
}
