//! The sample application's settings: its Mp1 credential from the instance's Secret (see
//! mp1-client), and where it serves HTTP.

use std::net::SocketAddr;

use anyhow::Context;
use mp1_client::Settings;

/// Where the application serves HTTP (its API, status page and notification callbacks).
pub const LISTEN_ENV: &str = "SAMPLE_LISTEN";
/// The URL at which the MEP and users reach it; derived from the listener when unset.
pub const PUBLIC_URL_ENV: &str = "SAMPLE_PUBLIC_URL";

/// Everything the application reads at start-up.
#[derive(Debug)]
pub struct Config {
    /// Listen address (`SAMPLE_LISTEN`, default `0.0.0.0:8080`, the port its AppD's traffic
    /// rule steers to).
    pub listen: SocketAddr,
    /// Public base URL (`SAMPLE_PUBLIC_URL`); when unset, the local address on the route to
    /// the MEP and the bound port.
    pub public_url: Option<String>,
    /// The Mp1 client's settings.
    pub mp1: Settings,
}

impl Config {
    /// Reads the process environment (and the Secret's files).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(
            |name| std::env::var(name).ok(),
            Settings::from_env().context("reading the Mp1 settings")?,
        )
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>, mp1: Settings) -> anyhow::Result<Self> {
        let listen = match lookup(LISTEN_ENV).filter(|v| !v.trim().is_empty()) {
            Some(v) => v
                .trim()
                .parse()
                .with_context(|| format!("{LISTEN_ENV}={v:?} is not an address:port"))?,
            None => SocketAddr::from(([0, 0, 0, 0], 8080)),
        };
        let public_url = lookup(PUBLIC_URL_ENV)
            .map(|v| v.trim().trim_end_matches('/').to_owned())
            .filter(|v| !v.is_empty());
        Ok(Self {
            listen,
            public_url,
            mp1,
        })
    }
}

#[cfg(test)]
mod tests {
    use mp1_client::ClientSecret;

    use super::*;

    fn mp1() -> Settings {
        Settings::new("i1", "http://127.0.0.1:1", "c", ClientSecret::new("s")).unwrap()
    }

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_lookup(|_| None, mp1()).unwrap();
        assert_eq!(c.listen, SocketAddr::from(([0, 0, 0, 0], 8080)));
        assert_eq!(c.public_url, None);
        let c = Config::from_lookup(
            |k| match k {
                LISTEN_ENV => Some("127.0.0.1:9000".into()),
                PUBLIC_URL_ENV => Some("http://app.example:9000/".into()),
                _ => None,
            },
            mp1(),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.public_url.as_deref(), Some("http://app.example:9000"));
        let bad = Config::from_lookup(|k| (k == LISTEN_ENV).then(|| "nine".into()), mp1());
        assert!(bad.unwrap_err().to_string().contains(LISTEN_ENV));
    }
}
