//! `mecctl`: the operator's command line for the mecplane MEAO, a client of its REST APIs
//! (`app_pkgm/v1`, `app_lcm/v1`, `inventory/v1`, `/oauth2/token`) and nothing else, so it works
//! against a remote MEAO as well as the embedded demo.

#[macro_use]
mod output;
mod auth;
mod cli;
mod client;
mod commands;
mod config;
mod error;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let verbose = cli.global.verbose;
    match commands::run(cli).await {
        Ok(()) => ExitCode::from(error::exit::OK),
        Err(e) => {
            eprintln!("error: {}", error::chain(&e));
            if let (true, error::Error::Api(failure)) = (verbose, &e) {
                eprintln!(
                    "{} answered {}:\n{}",
                    failure.request, failure.status, failure.body
                );
            }
            ExitCode::from(e.exit_code())
        }
    }
}
