//! `meao`: runs the MEC orchestrator, builds a package from a directory, or checks that a
//! running MEAO answers.

use std::path::PathBuf;

use anyhow::Context;
use app_package::build::{SigningKey, build};
use clap::{Parser, Subcommand};
use meao::config::MeaoConfig;
use meao::server::Server;

/// The mecplane MEC orchestrator (ETSI MEC 010-2 Mm1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML configuration file; environment `MEAO__SECTION__KEY` overrides it.
    #[arg(long, short, env = "MEAO_CONFIG")]
    config: Option<PathBuf>,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    openapi: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a package (zip with a filled-in manifest) from a directory.
    Package {
        /// The package directory (TOSCA-Metadata/TOSCA.meta or a root .mf manifest).
        dir: PathBuf,
        /// Output file.
        #[arg(long, short)]
        output: PathBuf,
        /// PEM certificate to sign the manifest with.
        #[arg(long, requires = "sign_key")]
        sign_cert: Option<PathBuf>,
        /// PEM private key of the signing certificate.
        #[arg(long, requires = "sign_cert")]
        sign_key: Option<PathBuf>,
    },
    /// Print the argon2id hash of a portal user's password (read from stdin, first line) for
    /// `[portal] users`.
    HashPassword,
    /// Check that a running MEAO answers its health endpoint (the image's health check).
    Healthcheck {
        /// The endpoint.
        #[arg(default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.openapi {
        println!("{}", meao::api::openapi().to_pretty_json()?);
        return Ok(());
    }
    if let Some(Command::Healthcheck { url }) = &args.command {
        server_kit::admin::probe(url).await?;
        return Ok(());
    }
    if let Some(Command::HashPassword) = &args.command {
        let mut password = String::new();
        std::io::stdin()
            .read_line(&mut password)
            .context("reading the password from stdin")?;
        let password = password.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!password.is_empty(), "no password on stdin");
        println!("{}", meao::portal::hash_password(password)?);
        return Ok(());
    }
    if let Some(Command::Package {
        dir,
        output,
        sign_cert,
        sign_key,
    }) = args.command
    {
        let key = match (sign_cert, sign_key) {
            (Some(cert), Some(key)) => Some(SigningKey::from_pem_files(&cert, &key)?),
            _ => None,
        };
        let zip = build(&dir, key.as_ref().map(SigningKey::signer))?;
        std::fs::write(&output, zip).with_context(|| output.display().to_string())?;
        println!("{}", output.display());
        return Ok(());
    }
    let config = MeaoConfig::load(args.config.as_deref())?;
    let _telemetry = server_kit::telemetry::init("meao", &config.telemetry)?;
    let server = Server::start(config)
        .await
        .context("MEAO failed to start")?;
    server_kit::serve::shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}
