//! Structured logs with `tracing`, optionally exported as OpenTelemetry traces over OTLP, and
//! the W3C trace context that carries one operation's trace across processes.
//!
//! Spans are plain `tracing` spans; the special fields `otel.name`, `otel.kind` and
//! `otel.status_code` set the exported span's name, kind and status. A [`TraceContext`] is the
//! `traceparent`/`tracestate` pair of a span: it travels in HTTP headers ([`http_span`] takes
//! it from requests, notification delivery puts it on callbacks), in MEP link messages and in
//! stored rows, so that work resumed later or elsewhere joins the trace that asked for it.

use std::collections::HashMap;

use axum::extract::{MatchedPath, Request};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Log and trace settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `tracing` filter directives, e.g. `info,mep=debug` (`RUST_LOG` wins when set).
    pub filter: String,
    /// Log as JSON lines instead of text.
    pub json: bool,
    /// OTLP/gRPC collector endpoint, e.g. `http://127.0.0.1:4317`; no export when absent.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            json: false,
            otlp_endpoint: None,
        }
    }
}

/// Flushes exported spans when dropped at the end of `main`.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter")]
    Otlp(#[source] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("cannot install the tracing subscriber")]
    Init(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber for `service`; call once from `main`.
pub fn init(
    service: &'static str,
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    let (subscriber, guard) = build(service, config)?;
    subscriber.try_init().map_err(TelemetryError::Init)?;
    Ok(guard)
}

fn build(
    service: &'static str,
    config: &TelemetryConfig,
) -> Result<
    (
        impl tracing::Subscriber + Send + Sync + 'static,
        TelemetryGuard,
    ),
    TelemetryError,
> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let fmt = if config.json {
        tracing_subscriber::fmt::layer().json().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let mut guard = TelemetryGuard::default();
    let otel = match &config.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(TelemetryError::Otlp)?;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(service)
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
            guard.provider = Some(provider);
            Some(layer)
        }
        None => None,
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel);
    Ok((subscriber, guard))
}

/// The W3C trace context of a span (`traceparent` and, when set, `tracestate`); empty when the
/// span is not exported (no OTLP endpoint, or filtered out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext(HashMap<String, String>);

impl TraceContext {
    /// The context of the current span.
    pub fn current() -> Self {
        Self::of(&tracing::Span::current())
    }

    /// The context of `span`.
    pub fn of(span: &tracing::Span) -> Self {
        let mut fields = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut fields);
        Self(fields)
    }

    /// A context received as fields (a MEP link message's `trace_context`).
    pub fn from_fields(fields: HashMap<String, String>) -> Self {
        Self(fields)
    }

    /// The context as fields, to send.
    pub fn into_fields(self) -> HashMap<String, String> {
        self.0
    }

    /// The context of an HTTP request's `traceparent` and `tracestate` headers.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let propagator = TraceContextPropagator::new();
        Self(
            propagator
                .fields()
                .filter_map(|name| {
                    let value = headers.get(name)?.to_str().ok()?;
                    Some((name.to_owned(), value.to_owned()))
                })
                .collect(),
        )
    }

    /// The headers that carry the context on an HTTP request.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The stored form (a JSON object), `None` when empty.
    pub fn to_json(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| serde_json::to_string(&self.0).unwrap_or_default())
    }

    /// A context from its stored form; empty when absent or unreadable.
    pub fn from_json(json: Option<&str>) -> Self {
        Self(
            json.and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default(),
        )
    }

    /// Makes `span`, just created, a child of this context; nothing when it is empty.
    pub fn adopt(&self, span: &tracing::Span) {
        if !self.0.is_empty() {
            let _ = span.set_parent(TraceContextPropagator::new().extract(&self.0));
        }
    }
}

/// The server span of `request`, named `METHOD route` (the OpenTelemetry HTTP conventions)
/// and the child of the caller's `traceparent` when it sends one; `None` for the operational
/// endpoints (`/healthz`, `/readyz`, `/metrics`), which are not traced. Nothing is formatted
/// when the span is disabled.
pub fn http_span(request: &Request) -> Option<tracing::Span> {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if route.is_some_and(|r| crate::admin::PATHS.contains(&r)) {
        return None;
    }
    let method = request.method();
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %SpanName(method.as_str(), route),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if !span.is_disabled() {
        TraceContext::from_headers(request.headers()).adopt(&span);
    }
    Some(span)
}

/// Records the status of the response to the request of `span` ([`http_span`]).
pub fn record_http_status(span: &tracing::Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// `METHOD route`, or the method alone for an unmatched request.
struct SpanName<'a>(&'a str, Option<&'a str>);

impl std::fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => f.write_str(self.0),
        }
    }
}
