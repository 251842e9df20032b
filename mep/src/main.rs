//! `mep`: runs one MEC platform, or checks that a running one answers.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mep::config::MepConfig;
use mep::server::Server;

/// The mecplane MEC platform (ETSI MEC 011 Mp1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file; environment `MEP__SECTION__KEY` overrides it.
    #[arg(long, short, env = "MEP_CONFIG")]
    config: Option<PathBuf>,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    openapi: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that a running MEP answers its health endpoint (the image's health check).
    Healthcheck {
        /// The endpoint.
        #[arg(default_value = "http://127.0.0.1:8081/healthz")]
        url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.openapi {
        println!("{}", mep::api::openapi().to_pretty_json()?);
        return Ok(());
    }
    if let Some(Command::Healthcheck { url }) = &args.command {
        server_kit::admin::probe(url).await?;
        return Ok(());
    }
    let config = MepConfig::load(args.config.as_deref())?;
    let _telemetry = server_kit::telemetry::init("mep", &config.telemetry)?;
    let server = Server::start(config).await.context("MEP failed to start")?;
    server_kit::serve::shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}
