//! What an application instance's workload receives from MEC management to use Mp1 as itself:
//! the names of its settings. Each is an environment variable of every container and a file of
//! the same name, lower-cased, under [`SECRETS_DIR`] (a Kubernetes Secret; the files follow a
//! rotation, the environment is fixed when the container starts).

/// The application instance the workload is (`appInstanceId` in Mp1 paths).
pub const APP_INSTANCE_ID: &str = "MEC_APP_INSTANCE_ID";
/// The AppD the instance was created from (environment only).
pub const APP_D_ID: &str = "MEC_APP_D_ID";
/// The API root of the site's MEP, e.g. `https://mep.site.example`.
pub const MEP_URL: &str = "MEC_MEP_URL";
/// The OAuth 2.0 token endpoint of the MEP (ETSI GS MEC 009 client credentials).
pub const TOKEN_ENDPOINT: &str = "MEC_TOKEN_ENDPOINT";
/// The instance's OAuth 2.0 client id.
pub const CLIENT_ID: &str = "MEC_CLIENT_ID";
/// The instance's OAuth 2.0 client secret.
pub const CLIENT_SECRET: &str = "MEC_CLIENT_SECRET";
/// Identifier of the current secret (it changes with every rotation).
pub const CREDENTIAL_ID: &str = "MEC_CREDENTIAL_ID";

/// Where the settings are mounted as files.
pub const SECRETS_DIR: &str = "/var/run/secrets/mec";
