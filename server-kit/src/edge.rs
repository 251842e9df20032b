//! The HTTP edge of both services, in one middleware around every route: the request's server
//! span, its metrics, the rendering of its error as RFC 7807 ProblemDetails and content
//! negotiation of its answer. One layer instead of four, each of which cloned its inner
//! service and boxed its future on every request, took a quarter of the MEP's throughput on
//! its discovery API.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::admin::Metrics;
use crate::{accept, problem, telemetry};

/// Middleware (`Router::layer(from_fn_with_state(metrics, edge))`): runs the request in its
/// server span ([`telemetry::http_span`]); a successful GET or HEAD whose media type the
/// client's `Accept` excludes is answered 406 ([`accept::acceptable`]); an error answer gets its
/// `instance` and is logged ([`problem::render_problem`]); then the request is counted and timed
/// by method, route and status ([`Metrics::observe_http`]) and the status recorded on the span.
pub async fn edge(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let uri = request.uri().clone();
    let accept = matches!(method, Method::GET | Method::HEAD)
        .then(|| request.headers().get(header::ACCEPT).cloned());
    let span = telemetry::http_span(&request);
    let finish = |response: Response| {
        let response = match accept {
            Some(accept) => accept::acceptable(accept.as_ref(), response),
            None => response,
        };
        problem::render_problem(response, &method, uri.path())
    };
    let response = match &span {
        Some(span) => {
            let response = next.run(request).instrument(span.clone()).await;
            let response = span.in_scope(|| finish(response));
            telemetry::record_http_status(span, response.status());
            response
        }
        None => finish(next.run(request).await),
    };
    metrics.observe_http(&method, route.as_ref(), response.status(), start.elapsed());
    response
}
