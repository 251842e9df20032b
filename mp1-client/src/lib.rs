//! A client of the Mp1 APIs (ETSI GS MEC 011 v3.1.1) for MEC applications: what an
//! application links to use its MEC platform (MEP) as itself.
//!
//! An instance deployed by MEC management finds its settings in its environment (or the files
//! of its Kubernetes Secret): [`Settings::from_env`]. [`Mp1Client::connect`] obtains an OAuth
//! 2.0 access token with the instance's own client credential, waiting while the MEP does
//! not know it yet; the token is renewed before it expires, and once more when the MEP
//! refuses it. The calls cover `mec_app_support/v1` (readiness, termination, registrations,
//! rules, timing) and `mec_service_mgmt/v1` (services, liveness, subscriptions, transports),
//! typed on [`api_specs`]. With the `listener` feature, [`listener::CallbackListener`]
//! receives the notifications. Errors are [`Error`]s; the MEP's problem details are kept.
//!
//! ```no_run
//! # async fn run() -> Result<(), mp1_client::Error> {
//! let mep = mp1_client::Mp1Client::connect(mp1_client::Settings::from_env()?).await?;
//! mep.confirm_ready().await?;
//! let rules = mep.dns_rules().await?;
//! # Ok(()) }
//! ```

mod app_support;
mod client;
mod error;
#[cfg(feature = "listener")]
pub mod listener;
mod service_mgmt;
mod settings;
mod token;

pub use api_specs;
pub use api_specs::mp1::service_mgmt::ServiceQuery;
pub use client::{Mp1Client, Tagged};
pub use error::Error;
pub use service_mgmt::Heartbeats;
pub use settings::{CA_FILE_ENV, ClientSecret, SECRETS_DIR_ENV, Settings};

/// The README's example, compiled.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
