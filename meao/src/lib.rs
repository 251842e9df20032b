//! The MEC orchestrator (MEAO): ETSI GS MEC 010-2 v3.1.1 Mm1 for OSS/BSS and the portal.
//!
//! - [`package`]: package onboarding (safe archive reading, AppD validation, signatures,
//!   content-addressed storage), package lifecycle, subscriptions and notifications.
//! - [`lcm`]: application instances and their LCM operations, run as sagas.
//! - [`mep_link`]: the gRPC link the sites' MEPs dial: desired instance configuration down,
//!   acknowledgements and status up.
//! - [`inventory`]: the edge sites, their VIMs, health and free capacity.
//! - [`api`]: the HTTP edge (`app_pkgm/v1`, `inventory/v1`).
//! - [`portal`]: the operator portal (`/portal/`): embedded assets, users, sessions, CSRF.
//! - [`store`]: sqlx persistence (SQLite default, PostgreSQL).
//! - [`placement`]: choosing a site for an instance (filter, score, explain).
//! - [`saga`]: durable multi-step operations with undo, leases and recovery.
//! - [`server`]: start-up, recovery, background tasks and shutdown.
//!
//! The gRPC MEP link and the Kubernetes VIMs are not built yet. The MEAO
//! never links the MEP; they share only `api-specs`.

pub mod api;
pub mod config;
pub mod events;
pub mod gauges;
pub mod images;
pub mod inventory;
pub mod lcm;
pub mod mep_link;
pub mod package;
pub mod placement;
pub mod portal;
pub mod saga;
pub mod server;
pub mod store;
