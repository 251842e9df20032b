//! MEAO integration tests: the real server on a loopback port over SQLite or PostgreSQL, real
//! HTTP clients, real packages (the shipped examples) and hostile ones built on the fly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
mod integration {
    pub mod common;
    mod events;
    mod hostile;
    mod inventory;
    mod lcm;
    mod lifecycle;
    mod onboarding;
    mod openapi;
    mod outbound;
    mod portal;
    mod shared_storage;
}
