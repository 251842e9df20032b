//! Typed configuration: defaults, then a TOML file, then environment overrides
//! (`PREFIX__SECTION__KEY=value`). Unknown keys are errors, not silently ignored.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration{}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
pub struct LoadError {
    /// The file, when one was given.
    pub path: Option<PathBuf>,
    /// What was wrong.
    #[source]
    pub source: Box<figment::Error>,
}

/// Loads `T` from its defaults, an optional TOML file and `{env_prefix}__*` variables.
pub fn load<T>(path: Option<&Path>, env_prefix: &str) -> Result<T, LoadError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = path {
        if !path.exists() {
            return Err(LoadError {
                path: Some(path.to_owned()),
                source: Box::new(figment::Error::from("file does not exist".to_owned())),
            });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment
        .merge(Env::prefixed(&format!("{env_prefix}__")).split("__"))
        .extract()
        .map_err(|e| LoadError {
            path: path.map(Path::to_owned),
            source: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        listen: String,
        inner: Inner,
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        port: u16,
    }

    #[test]
    fn file_then_env_override_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"a\"\n[inner]\nport = 1\n").unwrap();
        let c: Sample = load(Some(&file), "SKTEST_NONE").unwrap();
        assert_eq!((c.listen.as_str(), c.inner.port), ("a", 1));

        std::fs::write(&file, "listn = \"a\"\n").unwrap();
        let err = load::<Sample>(Some(&file), "SKTEST_NONE").unwrap_err();
        assert!(format!("{}", err.source).contains("listn"), "{err:?}");

        assert!(load::<Sample>(Some(&dir.path().join("missing.toml")), "X").is_err());
    }
}
