//! Credentials: where the client secret comes from and the cache of access tokens.
//!
//! A secret is read from `--secret-stdin` or `--secret-file` (login), `$MECCTL_CLIENT_SECRET`,
//! the context's `secret-file`, or a prompt when a terminal is attached; never from
//! the command line, so it stays out of shell history and process listings. Only tokens are
//! cached, with their expiry, in `$XDG_CACHE_HOME/mecctl/tokens.json` (mode 0600), keyed by
//! client id and MEAO URL; a token that expired is replaced by a new grant when a secret is at
//! hand.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Context, base_dir};
use crate::error::Error;

/// Environment variable holding the client secret.
pub const SECRET_ENV: &str = "MECCTL_CLIENT_SECRET";
/// A cached token is not used in its last seconds, so it does not expire in flight.
const EXPIRY_MARGIN_SECS: u64 = 30;

/// Where the secret comes from, besides the defaults.
#[derive(Debug, Clone, Default)]
pub enum SecretSource {
    /// The environment, the context's secret file, or a prompt.
    #[default]
    Default,
    /// The first line of standard input.
    Stdin,
    /// The first line of this file.
    File(PathBuf),
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

fn from_file(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path.display()))?;
    Ok(first_line(&text))
}

/// The client secret of `context`, or why there is none.
pub fn secret(context: &Context, source: &SecretSource) -> Result<String, Error> {
    let secret = match source {
        SecretSource::Stdin => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(Error::io("standard input"))?;
            first_line(&line)
        }
        SecretSource::File(path) => from_file(path)?,
        SecretSource::Default => match (std::env::var(SECRET_ENV), &context.secret_file) {
            (Ok(s), _) => s,
            (Err(_), Some(path)) => from_file(path)?,
            (Err(_), None) if std::io::stdin().is_terminal() => {
                rpassword::prompt_password(format!(
                    "client secret of {} at {}: ",
                    context.client_id, context.url
                ))
                .map_err(Error::io("the terminal"))?
            }
            (Err(_), None) => {
                return Err(Error::Auth(format!(
                    "no valid token for {} at {}: run mecctl login (the secret comes from a prompt, --secret-file, --secret-stdin, {SECRET_ENV} or the context's secret-file)",
                    context.client_id, context.url
                )));
            }
        },
    };
    if secret.is_empty() {
        return Err(Error::Auth("the client secret is empty".into()));
    }
    Ok(secret)
}

/// A cached access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cached {
    access_token: String,
    /// Unix seconds.
    expires_at: u64,
}

/// The token cache file.
#[derive(Debug, Clone)]
pub struct TokenCache {
    path: PathBuf,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn key(context: &Context) -> String {
    format!("{}@{}", context.client_id, context.url)
}

impl TokenCache {
    /// The cache under `$XDG_CACHE_HOME` (or `~/.cache`).
    pub fn default_location() -> Result<Self, Error> {
        Ok(Self::at(
            base_dir("XDG_CACHE_HOME", ".cache")?.join("mecctl/tokens.json"),
        ))
    }

    /// The cache in `path`.
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    fn read(&self) -> BTreeMap<String, Cached> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, all: &BTreeMap<String, Cached>) -> Result<(), Error> {
        let io = Error::io(self.path.display());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io(dir.display()))?;
        }
        let bytes = serde_json::to_vec_pretty(all).map_err(|e| Error::Local(Box::new(e)))?;
        let temp = self.path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options
            .open(&temp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
            .and_then(|()| std::fs::rename(&temp, &self.path));
        written.map_err(io)
    }

    /// The token of `context` if it is valid for a while yet.
    pub fn get(&self, context: &Context) -> Option<String> {
        self.read()
            .remove(&key(context))
            .filter(|c| c.expires_at > now_secs() + EXPIRY_MARGIN_SECS)
            .map(|c| c.access_token)
    }

    /// Remembers a token valid for `expires_in` seconds.
    pub fn put(&self, context: &Context, token: &str, expires_in: u64) -> Result<(), Error> {
        let mut all = self.read();
        let now = now_secs();
        all.retain(|_, c| c.expires_at > now);
        all.insert(
            key(context),
            Cached {
                access_token: token.to_owned(),
                expires_at: now + expires_in,
            },
        );
        self.write(&all)
    }

    /// Forgets the token of `context`; whether there was one.
    pub fn remove(&self, context: &Context) -> Result<bool, Error> {
        let mut all = self.read();
        let had = all.remove(&key(context)).is_some();
        if had {
            self.write(&all)?;
        }
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(client: &str) -> Context {
        Context {
            url: "http://127.0.0.1:8080".into(),
            client_id: client.into(),
            ..Context::default()
        }
    }

    #[test]
    fn tokens_are_cached_per_client_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::at(dir.path().join("c/tokens.json"));
        let (oss, noc) = (context("oss"), context("noc"));
        assert_eq!(cache.get(&oss), None);
        cache.put(&oss, "t1", 3600).unwrap();
        cache.put(&noc, "t2", 10).unwrap();
        assert_eq!(cache.get(&oss).as_deref(), Some("t1"));
        assert_eq!(cache.get(&noc), None, "expires within the margin");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("c/tokens.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(cache.remove(&oss).unwrap());
        assert!(!cache.remove(&oss).unwrap());
        assert_eq!(cache.get(&oss), None);
    }

    #[test]
    fn secrets_come_from_files_not_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        let mut c = context("oss");
        assert_eq!(
            secret(&c, &SecretSource::File(file.clone())).unwrap(),
            "s3cret"
        );
        c.secret_file = Some(file);
        assert_eq!(secret(&c, &SecretSource::Default).unwrap(), "s3cret");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        assert!(matches!(
            secret(&c, &SecretSource::File(dir.path().join("empty"))),
            Err(Error::Auth(_))
        ));
    }
}
