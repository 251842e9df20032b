//! MEP integration tests: the real server on loopback ports, a real SQLite file or a fresh
//! PostgreSQL database, real HTTP clients, callback servers and a DNS resolver.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
mod integration {
    mod app_support;
    pub mod common;
    mod crash;
    mod credentials;
    mod desired;
    mod edge;
    mod isolation;
    mod notifications;
    mod openapi;
    mod registrations;
    mod services;
    mod steering;
}
