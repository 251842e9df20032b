//! The command line (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  any other error (the MEAO unreachable or failing, I/O, an unexpected answer)
  2  usage: a bad command line, or a request the MEAO found invalid (400)
  3  auth: missing or refused credentials (401, 403 for permissions, the token endpoint's refusal)
  4  not found (404)
  5  conflict: the resource's state forbids the request (403 not-allowed-in-current-state, or
     409), e.g. the AppD version is onboarded
  6  failed: an LCM operation ended FAILED or FAILED_TEMP, or onboarding failed
  7  timeout: --wait gave up after --timeout";

/// The operator's command line for the mecplane MEAO (ETSI MEC 010-2 Mm1 and the site
/// inventory), over its REST APIs only, so it works as well against a remote MEAO.
#[derive(Debug, Parser)]
#[command(name = "mecctl", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Config file [default: $XDG_CONFIG_HOME/mecctl/config.toml].
    #[arg(long, global = true, env = "MECCTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Context to use instead of the current one.
    #[arg(long, global = true, env = "MECCTL_CONTEXT")]
    pub context: Option<String>,
    /// MEAO URL, overriding the context's.
    #[arg(long, global = true, env = "MECCTL_SERVER")]
    pub server: Option<String>,
    /// OAuth client id, overriding the context's.
    #[arg(long = "client", global = true, env = "MECCTL_CLIENT_ID")]
    pub client_id: Option<String>,
    /// PEM file of the CA of the MEAO's certificate, overriding the context's.
    #[arg(long = "server-ca", global = true, env = "MECCTL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// Print every request and the whole error body.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Longest wait of --wait (seconds).
    #[arg(long, global = true, default_value_t = 600)]
    pub timeout: u64,
    /// Polling interval of --wait and --watch (milliseconds).
    #[arg(long, global = true, default_value_t = 1000, hide = true)]
    pub interval_ms: u64,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Contexts: which MEAO, as which client.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Get a token with the client secret and cache it.
    Login(Login),
    /// Forget the cached token.
    Logout,
    /// Application packages (app_pkgm/v1).
    #[command(subcommand, alias = "pkg")]
    Package(PackageCommand),
    /// Application instances (app_lcm/v1).
    #[command(subcommand)]
    App(AppCommand),
    /// LCM operation occurrences (app_lcm/v1).
    #[command(subcommand)]
    Op(OpCommand),
    /// Edge sites and their MEPs (inventory/v1).
    #[command(subcommand)]
    Site(SiteCommand),
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create or change a context (and make it current when it is the first).
    SetContext {
        /// Its name.
        name: String,
        /// MEAO URL.
        #[arg(long)]
        url: Option<String>,
        /// OAuth client id.
        #[arg(long = "client-id")]
        client: Option<String>,
        /// PEM file of the CA of the MEAO's certificate.
        #[arg(long = "ca-file")]
        ca: Option<PathBuf>,
        /// File holding the client secret, read when a token is needed.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Make a context current.
    UseContext {
        /// Its name.
        name: String,
    },
    /// List the contexts.
    GetContexts,
    /// Print the current context's name.
    CurrentContext,
    /// Delete a context.
    DeleteContext {
        /// Its name.
        name: String,
    },
}

/// `login`.
#[derive(Debug, Args)]
pub struct Login {
    /// Read the client secret from this file.
    #[arg(long, conflicts_with = "secret_stdin")]
    pub secret_file: Option<PathBuf>,
    /// Read the client secret from standard input.
    #[arg(long)]
    pub secret_stdin: bool,
}

/// `package` subcommands. A package is named by its id, its AppD id or its application name.
#[derive(Debug, Subcommand)]
pub enum PackageCommand {
    /// Onboard a package from a directory (built like `meao package`) or a zip.
    Push {
        /// The package directory or zip.
        path: PathBuf,
        /// Package name [default: the manifest's app_product_name].
        #[arg(long)]
        name: Option<String>,
        /// Package version [default: the manifest's app_package_version].
        #[arg(long = "pkg-version")]
        version: Option<String>,
        /// PEM certificate to sign the manifest with (directories only).
        #[arg(long, requires = "sign_key")]
        sign_cert: Option<PathBuf>,
        /// PEM private key of the signing certificate.
        #[arg(long, requires = "sign_cert")]
        sign_key: Option<PathBuf>,
        /// Wait until the package is ONBOARDED (or failed).
        #[arg(long)]
        wait: bool,
    },
    /// List packages.
    Ls {
        /// Follow changes.
        #[arg(long, short)]
        watch: bool,
    },
    /// Show a package.
    Get {
        /// The package.
        package: String,
        /// Follow changes.
        #[arg(long, short)]
        watch: bool,
    },
    /// Print a package's AppD (as written; JSON or YAML with -o).
    Appd {
        /// The package.
        package: String,
    },
    /// Allow new instances of a package.
    Enable {
        /// The package.
        package: String,
    },
    /// Refuse new instances of a package.
    Disable {
        /// The package.
        package: String,
    },
    /// Delete a DISABLED package no instance uses.
    Rm {
        /// The package.
        package: String,
    },
}

/// Where an instance shall run.
#[derive(Debug, Clone, Args)]
pub struct Placement {
    /// Near these users: LATITUDE,LONGITUDE.
    #[arg(
        long,
        value_name = "LAT,LON",
        allow_hyphen_values = true,
        conflicts_with = "country"
    )]
    pub near: Option<String>,
    /// Only on this site (repeatable: placement chooses among them).
    #[arg(long = "site", value_name = "SITE")]
    pub sites: Vec<String>,
    /// In this country (ISO 3166-1 alpha-2 code).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
}

/// `app` subcommands. An instance is named by its id or its (unique) name.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an instance identifier of an onboarded package.
    Create {
        /// The package (id, AppD id or application name).
        package: String,
        /// The instance's name.
        #[arg(long)]
        name: Option<String>,
        /// The instance's description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Instantiate an instance.
    Instantiate {
        /// The instance.
        app: String,
        /// Where.
        #[command(flatten)]
        placement: Placement,
        /// Wait for the operation to end; print the placement decision.
        #[arg(long)]
        wait: bool,
    },
    /// Create and instantiate in one step.
    Deploy {
        /// The package (id, AppD id or application name).
        package: String,
        /// The instance's name.
        #[arg(long)]
        name: Option<String>,
        /// The instance's description.
        #[arg(long)]
        description: Option<String>,
        /// Where.
        #[command(flatten)]
        placement: Placement,
        /// Wait for the operation to end; print the placement decision.
        #[arg(long)]
        wait: bool,
    },
    /// List instances.
    Ls {
        /// Follow changes.
        #[arg(long, short)]
        watch: bool,
    },
    /// Show an instance and its operations.
    Get {
        /// The instance.
        app: String,
        /// Follow changes.
        #[arg(long, short)]
        watch: bool,
    },
    /// Stop an instance.
    Stop {
        /// The instance.
        app: String,
        /// Stop gracefully, giving it this many seconds.
        #[arg(long, value_name = "SECS")]
        graceful: Option<u32>,
        /// Wait for the operation to end.
        #[arg(long)]
        wait: bool,
    },
    /// Start a stopped instance.
    Start {
        /// The instance.
        app: String,
        /// Wait for the operation to end.
        #[arg(long)]
        wait: bool,
    },
    /// Terminate an instance.
    Terminate {
        /// The instance.
        app: String,
        /// Terminate gracefully, giving it this many seconds.
        #[arg(long, value_name = "SECS")]
        graceful: Option<u32>,
        /// Wait for the operation to end.
        #[arg(long)]
        wait: bool,
    },
    /// Delete a NOT_INSTANTIATED instance identifier.
    Rm {
        /// The instance.
        app: String,
    },
}

/// `op` subcommands.
#[derive(Debug, Subcommand)]
pub enum OpCommand {
    /// List operation occurrences, newest first.
    Ls {
        /// Only those of this instance (id or name).
        #[arg(long)]
        instance: Option<String>,
        /// Only those in this state (e.g. FAILED_TEMP).
        #[arg(long)]
        state: Option<String>,
        /// Follow changes.
        #[arg(long, short)]
        watch: bool,
    },
    /// Show an operation occurrence with its placement decision and error.
    Get {
        /// The occurrence.
        id: String,
        /// Follow changes.
        #[arg(long, short)]
        watch: bool,
    },
    /// Follow an occurrence's state until it ends.
    Watch {
        /// The occurrence.
        id: String,
    },
    /// Retry a FAILED_TEMP occurrence.
    Retry {
        /// The occurrence.
        id: String,
        /// Wait for the operation to end.
        #[arg(long)]
        wait: bool,
    },
    /// Give up on a FAILED_TEMP occurrence (FAILED).
    Fail {
        /// The occurrence.
        id: String,
    },
    /// Cancel a running occurrence (it is rolled back and ends FAILED_TEMP).
    Cancel {
        /// The occurrence.
        id: String,
        /// Cancel FORCEFUL rather than GRACEFUL.
        #[arg(long)]
        forceful: bool,
        /// Wait for the operation to end.
        #[arg(long)]
        wait: bool,
    },
}

/// `site` subcommands.
#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// List sites with their health, free capacity and MEP link.
    Ls {
        /// Follow changes.
        #[arg(long, short)]
        watch: bool,
    },
    /// Show a site and, per application instance, its MEP's state.
    Get {
        /// The site.
        site: String,
        /// Follow changes.
        #[arg(long, short)]
        watch: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "mecctl",
            "app",
            "deploy",
            "video-analytics",
            "--name",
            "va",
            "--near",
            "-33.9,18.4",
            "--site",
            "a",
            "--site",
            "b",
            "--wait",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.output, Format::Json);
        let Command::App(AppCommand::Deploy {
            placement, wait, ..
        }) = cli.command
        else {
            panic!("{:?}", cli.command)
        };
        assert!(wait);
        assert_eq!(placement.near.as_deref(), Some("-33.9,18.4"));
        assert_eq!(placement.sites, ["a", "b"]);
        assert!(
            Cli::try_parse_from([
                "mecctl",
                "app",
                "instantiate",
                "x",
                "--near",
                "1,2",
                "--country",
                "FR"
            ])
            .is_err(),
            "--near and --country both set the location"
        );
    }
}
