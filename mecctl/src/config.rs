//! The config file: named contexts (a MEAO's URL, the OAuth client id, the CA that signs the
//! MEAO's certificate, where the client secret can be read) and the current one, like a
//! kubeconfig. Secrets are never stored here, only the path of a file that holds one.
//!
//! Where: `--config`, else `$MECCTL_CONFIG`, else `$XDG_CONFIG_HOME/mecctl/config.toml`, else
//! `~/.config/mecctl/config.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One MEAO as an operator reaches it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Context {
    /// Base URL, e.g. `https://meao.example:8080`.
    pub url: String,
    /// OAuth 2.0 client id (client credentials grant).
    pub client_id: String,
    /// PEM file of the CA that signs the MEAO's certificate (else the system's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A file holding the client secret, read whenever a new token is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

/// The config file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigFile {
    /// The context commands use unless `--context` names another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// The contexts by name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// The config file's path from the flag, the environment or the XDG default.
pub fn path(flag: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = flag {
        return Ok(p.to_owned());
    }
    base_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("mecctl").join("config.toml"))
}

/// `$VAR`, else `$HOME/<fallback>`.
pub fn base_dir(var: &str, fallback: &str) -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(fallback))
        .ok_or_else(|| Error::Usage(format!("neither {var} nor HOME is set")))
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(path.display())(e)),
        };
        toml::from_str(&text)
            .map_err(|e| Error::Usage(format!("{}: {}", path.display(), e.message())))
    }

    /// Writes the file (creating its directory).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(Error::io(dir.display()))?;
        }
        let text = toml::to_string(self).map_err(|e| Error::Local(Box::new(e)))?;
        std::fs::write(path, text).map_err(Error::io(path.display()))
    }
}

/// What the global flags and environment say about the MEAO to talk to.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--context` / `$MECCTL_CONTEXT`.
    pub context: Option<String>,
    /// `--server` / `$MECCTL_SERVER`.
    pub server: Option<String>,
    /// `--client` / `$MECCTL_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `--server-ca` / `$MECCTL_CA_FILE`.
    pub ca_file: Option<PathBuf>,
}

/// The context a command uses: the named or current one, with the overrides applied; a
/// context made of `--server` and `--client-id` alone needs no config file.
pub fn resolve(file: &ConfigFile, o: &Overrides) -> Result<Context, Error> {
    let name = o.context.as_ref().or(file.current_context.as_ref());
    let mut context = match name {
        Some(name) => file.contexts.get(name).cloned().ok_or_else(|| {
            Error::Usage(format!(
                "no context {name} in the config file (mecctl config get-contexts lists them)"
            ))
        })?,
        None => Context::default(),
    };
    if let Some(url) = &o.server {
        context.url.clone_from(url);
    }
    if let Some(id) = &o.client_id {
        context.client_id.clone_from(id);
    }
    if let Some(ca) = &o.ca_file {
        context.ca_file = Some(ca.clone());
    }
    if context.url.is_empty() || context.client_id.is_empty() {
        return Err(Error::Usage(
            "no MEAO configured: mecctl config set-context NAME --url URL --client-id ID (or --server and --client)".into(),
        ));
    }
    context.url = context.url.trim_end_matches('/').to_owned();
    Ok(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_round_trip_and_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/config.toml");
        let mut file = ConfigFile::load(&path).unwrap();
        assert_eq!(file, ConfigFile::default(), "a missing file is empty");
        file.contexts.insert(
            "lab".into(),
            Context {
                url: "https://meao.lab:8080/".into(),
                client_id: "oss".into(),
                ca_file: Some("/etc/ca.pem".into()),
                secret_file: None,
            },
        );
        file.current_context = Some("lab".into());
        file.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("current-context = \"lab\""), "{text}");
        assert!(text.contains("client-id = \"oss\""), "{text}");
        let file = ConfigFile::load(&path).unwrap();
        let c = resolve(&file, &Overrides::default()).unwrap();
        assert_eq!(c.url, "https://meao.lab:8080", "trailing slash trimmed");
        let c = resolve(
            &file,
            &Overrides {
                client_id: Some("noc".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!((c.client_id.as_str(), c.ca_file.is_some()), ("noc", true));
        let missing = Overrides {
            context: Some("prod".into()),
            ..Overrides::default()
        };
        assert!(matches!(resolve(&file, &missing), Err(Error::Usage(_))));
        assert!(matches!(
            resolve(&ConfigFile::default(), &Overrides::default()),
            Err(Error::Usage(_))
        ));
        let adhoc = Overrides {
            server: Some("http://127.0.0.1:8080".into()),
            client_id: Some("oss".into()),
            ..Overrides::default()
        };
        assert_eq!(
            resolve(&ConfigFile::default(), &adhoc).unwrap().url,
            "http://127.0.0.1:8080"
        );
        std::fs::write(&path, "current-context = 1\n").unwrap();
        assert!(matches!(ConfigFile::load(&path), Err(Error::Usage(_))));
    }
}
