//! The per-site MEC platform (MEP): ETSI GS MEC 011 v3.1.1 Mp1 APIs for applications.
//!
//! - [`platform`]: the domain: application instances, rules, service registry, subscriptions.
//! - [`api`]: the HTTP edge (Mp1 and the provisioning API MEC management uses).
//! - [`store`]: sqlx persistence (SQLite default, PostgreSQL) and the notification outbox.
//! - [`dns`]: the DNS server answering DNS rules.
//! - [`link`]: the gRPC link to the MEAO (desired configuration down, status up).
//! - [`server`]: start-up, background tasks and shutdown.
//!
//! The MEP never links the MEAO; they share only `api-specs`.

pub mod api;
pub mod config;
pub mod dns;
pub mod link;
pub mod platform;
pub mod server;
pub mod steering;
pub mod store;
pub mod timing;
