//! Operational endpoints outside the ETSI APIs: `/healthz` (the process runs), `/readyz` (its
//! dependencies answer) and `/metrics` (Prometheus text format), plus the HTTP metrics
//! and [`probe`], the services' own health check client.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the HTTP metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

/// The metrics registry of a service and its HTTP metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram>,
}

impl Metrics {
    /// A registry with the HTTP metrics, names prefixed with `prefix` (e.g. `mep`).
    pub fn new(prefix: &str) -> Arc<Self> {
        let mut registry = Registry::with_prefix(prefix);
        let requests = Family::<HttpLabels, Counter>::default();
        let latency = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        Arc::new(Self {
            registry: Mutex::new(registry),
            requests,
            latency,
        })
    }

    /// Registers a further metric.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(name, help, metric);
        }
    }

    /// A new metric, registered under `name`; the caller keeps a handle that updates it.
    pub fn registered<M>(&self, name: &str, help: &str) -> M
    where
        M: prometheus_client::registry::Metric + Clone + Default,
    {
        let metric = M::default();
        self.register(name, help, metric.clone());
        metric
    }

    /// Counts a request of `method` to `route` (`None`: no route matched) answered with
    /// `status`, and records its latency.
    pub fn observe_http(
        &self,
        method: &Method,
        route: Option<&MatchedPath>,
        status: StatusCode,
        latency: Duration,
    ) {
        let labels = HttpLabels {
            method: method.as_str().to_owned(),
            route: route.map_or("unmatched", MatchedPath::as_str).to_owned(),
            status: status.as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}

/// A readiness probe: resolves to an error message when a dependency is down.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: ReadinessCheck,
}

const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const METRICS: &str = "/metrics";

/// The paths of the operational endpoints.
pub const PATHS: [&str; 3] = [HEALTHZ, READYZ, METRICS];

/// The router with `/healthz`, `/readyz` and `/metrics` (no authentication).
pub fn router(metrics: Arc<Metrics>, ready: ReadinessCheck) -> Router {
    Router::new()
        .route(HEALTHZ, get(|| async { "ok" }))
        .route(READYZ, get(readyz))
        .route(METRICS, get(metrics_handler))
        .with_state(AdminState { metrics, ready })
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match (state.ready)().await {
        Ok(()) => "ready".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")).into_response(),
    }
}

async fn metrics_handler(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Why a [`probe`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer (refused, timed out, not HTTP).
    #[error("{url}: {}", crate::problem::error_chain(.source))]
    Request {
        /// The URL probed.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// An answer that is not a success.
    #[error("{url} answered {status}")]
    Status {
        /// The URL probed.
        url: String,
        /// Its status.
        status: StatusCode,
    },
}

/// `GET url` (e.g. `http://127.0.0.1:8080/healthz`) answers 2xx within 5 s: the container
/// health check of the service binaries, whose images carry no shell or HTTP client.
pub async fn probe(url: &str) -> Result<(), ProbeError> {
    let request = |source| ProbeError::Request {
        url: url.to_owned(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(request)?;
    let status = client.get(url).send().await.map_err(request)?.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(ProbeError::Status {
            url: url.to_owned(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_wants_a_success_answer() {
        let ready: ReadinessCheck = Arc::new(|| Box::pin(async { Err("database down".into()) }));
        let app = router(Metrics::new("test"), ready);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        probe(&format!("http://{addr}/healthz")).await.unwrap();
        let failed = probe(&format!("http://{addr}/readyz")).await.unwrap_err();
        assert!(
            matches!(failed, ProbeError::Status { status, .. } if status == 503),
            "{failed}"
        );
        server.abort();
        let _ = server.await;
        let refused = probe(&format!("http://{addr}/healthz")).await;
        assert!(
            matches!(refused, Err(ProbeError::Request { .. })),
            "{refused:?}"
        );
    }
}
