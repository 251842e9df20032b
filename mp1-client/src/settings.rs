//! Where the client finds its MEP and its credential: the settings MEC management gives every
//! instance it deploys (a Kubernetes Secret, as environment variables and as files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use api_specs::mp1::workload;

use crate::Error;

/// Environment variable naming the directory the settings' files are read from
/// ([`workload::SECRETS_DIR`] when unset).
pub const SECRETS_DIR_ENV: &str = "MEC_SECRETS_DIR";
/// Environment variable naming a PEM file of the CA certificates the MEP's certificate is
/// checked against, besides the system's (not set by the platform; for private PKIs).
pub const CA_FILE_ENV: &str = "MEC_CA_FILE";

/// A client secret: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the token request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(redacted)")
    }
}

/// What a [`crate::Mp1Client`] needs: who the application instance is, where its MEP is, and
/// its OAuth 2.0 client (ETSI GS MEC 009 client credentials).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The application instance (`MEC_APP_INSTANCE_ID`).
    pub app_instance_id: String,
    /// The MEP's API root without a trailing slash (`MEC_MEP_URL`).
    pub mep_url: String,
    /// The token endpoint (`MEC_TOKEN_ENDPOINT`; `{mep_url}/oauth2/token` when unset).
    pub token_endpoint: String,
    /// The OAuth 2.0 client id (`MEC_CLIENT_ID`).
    pub client_id: String,
    /// The OAuth 2.0 client secret (`MEC_CLIENT_SECRET`).
    pub client_secret: ClientSecret,
    /// Identifier of the secret, when known (`MEC_CREDENTIAL_ID`).
    pub credential_id: Option<String>,
    /// A file holding the current secret, re-read when the MEP refuses the one in use (a
    /// rotated Secret mounted as a volume is updated in place).
    pub secret_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) for the MEP's TLS certificate (`MEC_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// How long [`crate::Mp1Client::connect`] waits for the MEP to accept the credential.
    pub startup_timeout: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
}

impl Settings {
    /// Settings for a client configured by hand (not deployed by MEC management).
    pub fn new(
        app_instance_id: impl Into<String>,
        mep_url: &str,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Result<Self, Error> {
        let mep_url = absolute_url(workload::MEP_URL, mep_url)?;
        Ok(Self {
            app_instance_id: app_instance_id.into(),
            token_endpoint: format!("{mep_url}/oauth2/token"),
            mep_url,
            client_id: client_id.into(),
            client_secret,
            credential_id: None,
            secret_file: None,
            ca_file: None,
            startup_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
        })
    }

    /// The settings of this process: each from its environment variable or, when that is
    /// unset, from the file of the same name lower-cased in `MEC_SECRETS_DIR`
    /// (`/var/run/secrets/mec` by default).
    pub fn from_env() -> Result<Self, Error> {
        let dir = std::env::var_os(SECRETS_DIR_ENV)
            .map_or_else(|| PathBuf::from(workload::SECRETS_DIR), PathBuf::from);
        Self::from_lookup(|name| std::env::var(name).ok(), Some(&dir))
    }

    /// The settings from `lookup` (an environment), falling back to files in `dir`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        dir: Option<&Path>,
    ) -> Result<Self, Error> {
        let file = |name: &str| dir.map(|d| d.join(name.to_ascii_lowercase()));
        let read = |name: &'static str| -> Result<Option<String>, Error> {
            if let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) {
                return Ok(Some(value.trim().to_owned()));
            }
            let Some(path) = file(name) else {
                return Ok(None);
            };
            match std::fs::read_to_string(&path) {
                Ok(value) if !value.trim().is_empty() => Ok(Some(value.trim().to_owned())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::Setting {
                    name,
                    reason: format!("cannot read {}: {e}", path.display()),
                }),
            }
        };
        let required = |name: &'static str| {
            read(name)?.ok_or_else(|| Error::Setting {
                name,
                reason: "not set (neither in the environment nor as a file)".into(),
            })
        };
        let app_instance_id = required(workload::APP_INSTANCE_ID)?;
        let mep_url = required(workload::MEP_URL)?;
        let client_id = required(workload::CLIENT_ID)?;
        let secret = required(workload::CLIENT_SECRET)?;
        let mut settings = Self::new(
            app_instance_id,
            &mep_url,
            client_id,
            ClientSecret::new(secret),
        )?;
        if let Some(endpoint) = read(workload::TOKEN_ENDPOINT)? {
            settings.token_endpoint = absolute_url(workload::TOKEN_ENDPOINT, &endpoint)?;
        }
        settings.credential_id = read(workload::CREDENTIAL_ID)?;
        settings.secret_file = file(workload::CLIENT_SECRET).filter(|p| p.is_file());
        settings.ca_file = lookup(CA_FILE_ENV)
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from);
        Ok(settings)
    }

    /// The secret in [`Settings::secret_file`], when it holds one other than `current`.
    pub(crate) fn newer_secret(&self, current: &ClientSecret) -> Option<ClientSecret> {
        let path = self.secret_file.as_ref()?;
        let secret = std::fs::read_to_string(path).ok()?;
        let secret = secret.trim();
        (!secret.is_empty() && secret != current.expose()).then(|| ClientSecret::new(secret))
    }
}

/// An absolute http(s) URL without a trailing slash.
fn absolute_url(name: &'static str, value: &str) -> Result<String, Error> {
    let invalid = |reason: &str| Error::Setting {
        name,
        reason: format!("{value:?} {reason}"),
    };
    let url = reqwest::Url::parse(value).map_err(|_| invalid("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("is not an absolute http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("shall have no query or fragment"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const COMPLETE: [(&str, &str); 4] = [
        ("MEC_APP_INSTANCE_ID", "i1"),
        ("MEC_MEP_URL", "https://mep.example/"),
        ("MEC_CLIENT_ID", "c1"),
        ("MEC_CLIENT_SECRET", "s1"),
    ];

    #[test]
    fn settings_come_from_the_environment() {
        let vars = env(&COMPLETE);
        let s = Settings::from_lookup(|k| vars.get(k).cloned(), None).unwrap();
        assert_eq!(s.app_instance_id, "i1");
        assert_eq!(s.mep_url, "https://mep.example", "trailing slash dropped");
        assert_eq!(s.token_endpoint, "https://mep.example/oauth2/token");
        assert_eq!(s.client_secret.expose(), "s1");
        assert_eq!((s.credential_id, s.secret_file), (None, None));
        assert!(!format!("{:?}", s.client_secret).contains("s1"));
    }

    #[test]
    fn files_stand_in_for_unset_variables() {
        let dir = tempfile::tempdir().unwrap();
        for (name, value) in [
            ("mec_client_secret", "from-file\n"),
            ("mec_token_endpoint", "https://auth.example/token"),
            ("mec_credential_id", "op-1"),
        ] {
            std::fs::write(dir.path().join(name), value).unwrap();
        }
        let vars = env(&COMPLETE[..3]);
        let s = Settings::from_lookup(|k| vars.get(k).cloned(), Some(dir.path())).unwrap();
        assert_eq!(s.client_secret.expose(), "from-file");
        assert_eq!(s.token_endpoint, "https://auth.example/token");
        assert_eq!(s.credential_id.as_deref(), Some("op-1"));
        assert_eq!(s.secret_file, Some(dir.path().join("mec_client_secret")));
        // the environment wins over a file; a rotated file is offered as a newer secret
        let vars = env(&COMPLETE);
        let s = Settings::from_lookup(|k| vars.get(k).cloned(), Some(dir.path())).unwrap();
        assert_eq!(s.client_secret.expose(), "s1");
        assert_eq!(
            s.newer_secret(&s.client_secret)
                .map(|n| n.expose().to_owned()),
            Some("from-file".to_owned())
        );
        assert_eq!(s.newer_secret(&ClientSecret::new("from-file")), None);
    }

    #[test]
    fn missing_and_malformed_settings_are_named() {
        let vars = env(&COMPLETE[1..]);
        let e = Settings::from_lookup(|k| vars.get(k).cloned(), None).unwrap_err();
        assert!(
            matches!(&e, Error::Setting { name, .. } if *name == "MEC_APP_INSTANCE_ID"),
            "{e}"
        );
        for bad in [
            "mep.example",
            "ftp://mep.example",
            "https://mep.example/?x=1",
            "http://",
        ] {
            let mut vars = env(&COMPLETE);
            vars.insert("MEC_MEP_URL".into(), bad.into());
            let e = Settings::from_lookup(|k| vars.get(k).cloned(), None).unwrap_err();
            assert!(e.to_string().contains("MEC_MEP_URL"), "{bad}: {e}");
        }
    }
}
