//! Server plumbing shared by the MEAO and the MEP, written once.
//!
//! - [`problem`]: the one error type at the API edge and its RFC 7807 rendering, plus the JSON,
//!   query and path extractors whose rejections render the same way; [`accept`]: content
//!   negotiation (406 when the client's `Accept` excludes what a resource offers);
//!   [`request_schema`]: JSON request bodies held to the served OpenAPI document.
//! - [`auth`]: OAuth 2.0 client credentials (ETSI GS MEC 009): a token endpoint issuing signed
//!   bearer tokens, per-API scopes, and binding of app clients to their app instance.
//! - [`serve`]: the HTTP(S) accept loop with TLS via openssl and graceful shutdown.
//! - [`config`]: typed configuration from a TOML file plus environment overrides.
//! - [`telemetry`], [`admin`]: tracing, Prometheus metrics, health and readiness endpoints;
//!   [`edge`]: the one middleware around every route (span, metrics, problems, negotiation).
//! - [`outbound`]: where a service may connect on a client's behalf (SSRF bounds).
//! - [`notify`]: at-least-once delivery of notifications to subscriber callbacks from an
//!   outbox table; [`db`]: the sqlx pool over SQLite or PostgreSQL.
//!
//! Nothing here knows about a VIM, a service's tables or a particular ETSI API.

pub mod accept;
pub mod admin;
pub mod auth;
pub mod config;
pub mod db;
pub mod edge;
pub mod grpc;
pub mod notify;
pub mod outbound;
pub mod problem;
pub mod request_schema;
pub mod runtime;
pub mod selectors;
pub mod serve;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;

/// Milliseconds since the Unix epoch, the time unit stored by both services.
pub fn unix_millis_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
