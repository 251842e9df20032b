//! The commands: each parses its arguments into api-specs requests, calls the MEAO and prints.

mod app;
mod contexts;
mod op;
mod package;
mod site;

use std::time::Duration;

use clap::CommandFactory;

use crate::auth::{SecretSource, TokenCache};
use crate::cli::{Cli, Command, Global};
use crate::client::Client;
use crate::config::{self, ConfigFile, Overrides};
use crate::error::Error;
use crate::output::Format;

/// What every command that talks to the MEAO needs.
pub struct Ctx {
    /// The MEAO.
    pub client: Client,
    /// How to print.
    pub format: Format,
    /// Longest `--wait`.
    pub timeout: Duration,
    /// Polling interval of waits and watches.
    pub interval: Duration,
}

impl Ctx {
    fn new(global: &Global, secret: SecretSource) -> Result<Self, Error> {
        let file = ConfigFile::load(&config::path(global.config.as_deref())?)?;
        let context = config::resolve(
            &file,
            &Overrides {
                context: global.context.clone(),
                server: global.server.clone(),
                client_id: global.client_id.clone(),
                ca_file: global.ca_file.clone(),
            },
        )?;
        Ok(Self {
            client: Client::new(
                context,
                secret,
                TokenCache::default_location()?,
                global.verbose,
            )?,
            format: global.output,
            timeout: Duration::from_secs(global.timeout),
            interval: Duration::from_millis(global.interval_ms.max(50)),
        })
    }
}

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let global = &cli.global;
    match cli.command {
        Command::Config(c) => contexts::run(global, c),
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mecctl", &mut script);
            crate::output::write_out(&String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::Login(login) => {
            let source = match (login.secret_file, login.secret_stdin) {
                (Some(path), _) => SecretSource::File(path),
                (None, true) => SecretSource::Stdin,
                (None, false) => SecretSource::Default,
            };
            let ctx = Ctx::new(global, source)?;
            let lifetime = ctx.client.login().await?;
            let c = ctx.client.context();
            outln!(
                "logged in to {} as {} (token valid for {lifetime} s)",
                c.url,
                c.client_id
            );
            Ok(())
        }
        Command::Logout => {
            let ctx = Ctx::new(global, SecretSource::Default)?;
            let c = ctx.client.context();
            if ctx.client.logout()? {
                outln!("logged out of {} as {}", c.url, c.client_id);
            }
            Ok(())
        }
        Command::Package(c) => package::run(&Ctx::new(global, SecretSource::Default)?, c).await,
        Command::App(c) => app::run(&Ctx::new(global, SecretSource::Default)?, c).await,
        Command::Op(c) => op::run(&Ctx::new(global, SecretSource::Default)?, c).await,
        Command::Site(c) => site::run(&Ctx::new(global, SecretSource::Default)?, c).await,
    }
}
