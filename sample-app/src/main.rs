//! The mecplane sample MEC application: the Mp1 life of an edge application, built on
//! mp1-client. It authenticates at its site's MEP with the credential MEC management gave
//! its instance, registers the service its AppD declares (`sample-status`, its status
//! page), confirms ready once the services it requires are available (it is told by
//! availability notifications), serves HTTP, and on the MEP's termination notice confirms
//! termination and exits. See [`app`] for the whole sequence and [`config`] for its settings.

mod app;
mod config;
mod deps;
mod http;

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let outcome = match config::Config::from_env() {
        Ok(config) => app::run(config).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(exit) => {
            tracing::info!(?exit, "sample application ends");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sample application failed");
            ExitCode::FAILURE
        }
    }
}
