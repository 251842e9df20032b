//! Where a service connects on a client's behalf: package fetches from `appPkgPath` and
//! notifications to subscription callbacks. A client must not make the service reach what only
//! the service can reach (SSRF): by default loopback, private, link-local, shared, multicast and
//! other special-purpose addresses are refused, for IP literals and for every address a name
//! resolves to (the connection uses only the checked addresses, so a name cannot re-resolve to
//! a refused one), after every redirect too. Operators allow their own ranges explicitly.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The outbound policy of a service (`[outbound]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundPolicy {
    /// Allow every special-purpose address too (loopback, private, ...): for labs and tests.
    pub allow_private: bool,
    /// Prefixes (`10.1.0.0/16`, `::1/128`) allowed although special-purpose.
    pub allow: Vec<String>,
    /// Prefixes always refused.
    pub deny: Vec<String>,
    /// Redirects followed at most.
    pub max_redirects: usize,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            allow: Vec::new(),
            deny: Vec::new(),
            max_redirects: 5,
        }
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// Not an absolute http(s) URI.
    #[error("not an absolute http or https URI")]
    NotHttp,
    /// The policy refuses the destination.
    #[error("the destination is not allowed (outbound policy)")]
    Refused,
    /// A chain of redirects longer than the policy follows.
    #[error("too many redirects")]
    TooManyRedirects,
    /// A prefix in the policy does not parse.
    #[error("outbound policy: {0} is not an address prefix")]
    BadPrefix(String),
}

/// A parsed prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix {
    v6: bool,
    bits: u128,
    len: u32,
}

impl Prefix {
    fn parse(s: &str) -> Option<Self> {
        let (ip, len) = s.split_once('/').unwrap_or((s, ""));
        let (v6, bits) = numeric(ip.trim().parse().ok()?);
        let max = if v6 { 128 } else { 32 };
        let len = if len.is_empty() {
            max
        } else {
            len.trim().parse().ok()?
        };
        (len <= max).then_some(Self { v6, bits, len })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (v6, bits) = numeric(ip);
        let width = if v6 { 128 } else { 32 };
        if v6 != self.v6 {
            return false;
        }
        if self.len == 0 {
            return true;
        }
        let shift = width - self.len;
        (bits >> shift) == (self.bits >> shift)
    }
}

fn numeric(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

/// Special-purpose ranges (RFC 6890 and successors): nothing a client should make a server
/// reach.
const SPECIAL: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// The checked policy.
#[derive(Debug, Clone)]
pub struct Destinations {
    allow_private: bool,
    allow: Vec<Prefix>,
    deny: Vec<Prefix>,
    special: Vec<Prefix>,
    max_redirects: usize,
}

impl Destinations {
    /// Parses `policy`.
    pub fn new(policy: &OutboundPolicy) -> Result<Self, OutboundError> {
        let parse = |list: &[String]| {
            list.iter()
                .map(|p| Prefix::parse(p).ok_or_else(|| OutboundError::BadPrefix(p.clone())))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow_private: policy.allow_private,
            allow: parse(&policy.allow)?,
            deny: parse(&policy.deny)?,
            special: SPECIAL.iter().filter_map(|p| Prefix::parse(p)).collect(),
            max_redirects: policy.max_redirects,
        })
    }

    /// Whether the service may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        // an IPv4-mapped IPv6 address is the IPv4 address
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.deny.iter().any(|p| p.contains(ip)) {
            return false;
        }
        self.allow_private
            || self.allow.iter().any(|p| p.contains(ip))
            || !self.special.iter().any(|p| p.contains(ip))
    }

    /// Checks a URI a client gave: absolute http(s), and its host permitted when it is an
    /// address (names are checked when resolved).
    pub fn check_uri(&self, uri: &str) -> Result<(), OutboundError> {
        let parsed: http::Uri = uri.parse().map_err(|_| OutboundError::NotHttp)?;
        let host = match (parsed.scheme_str(), parsed.host()) {
            (Some("http" | "https"), Some(host)) => host,
            _ => return Err(OutboundError::NotHttp),
        };
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) if !self.permits(ip) => Err(OutboundError::Refused),
            _ => Ok(()),
        }
    }

    /// Checks a URI a client gives the service to call (`field` names it in the message): as
    /// documented ([`api_specs::common::check_callback_uri`]: at most 2048 characters, absolute
    /// http(s), ...), and not an address the policy refuses.
    pub fn check_client_uri(&self, field: &str, uri: &str) -> Result<(), String> {
        api_specs::common::check_callback_uri(field, uri)?;
        self.check_uri(uri).map_err(|e| match e {
            OutboundError::Refused => {
                format!("{field} names a destination the outbound policy does not allow")
            }
            _ => format!("{field} shall be an absolute http or https URI"),
        })
    }

    /// An HTTP client held to this policy: names resolve to permitted addresses only, IP
    /// literals and redirects are checked, at most `max_redirects` redirects are followed.
    pub fn client(&self, builder: reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
        let redirects = self.clone();
        builder
            .dns_resolver(Arc::new(self.clone()))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > redirects.max_redirects {
                    attempt.error(OutboundError::TooManyRedirects)
                } else if redirects.check_uri(attempt.url().as_str()).is_err() {
                    attempt.error(OutboundError::Refused)
                } else {
                    attempt.follow()
                }
            }))
            .build()
    }

    /// `error` as a client may be told of it: whether the policy refused the destination, or
    /// only the kind of failure, never what answered.
    pub fn describe(error: &reqwest::Error) -> &'static str {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            match e.downcast_ref::<OutboundError>() {
                Some(OutboundError::TooManyRedirects) => return "too many redirects",
                Some(_) => return "the destination is not allowed (outbound policy)",
                None => {}
            }
            source = e.source();
        }
        if error.is_timeout() {
            "the destination did not answer in time"
        } else if error.is_connect() {
            "the destination could not be reached"
        } else {
            "the transfer failed"
        }
    }
}

impl reqwest::dns::Resolve for Destinations {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if resolved.is_empty() {
                return Err(
                    Box::new(OutboundError::Refused) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn callback_uris_are_checked_as_documented() {
        let documented = serde_json::to_value(api_specs::common::callback_uri_schema()).unwrap();
        let schema = jsonschema::options()
            .should_validate_formats(false)
            .build(&documented)
            .unwrap();
        let d = Destinations::new(&OutboundPolicy {
            allow: vec!["0.0.0.0/0".into(), "::/0".into()],
            ..OutboundPolicy::default()
        })
        .unwrap();
        let long = format!("https://a.example/{}", "x".repeat(2048));
        for (uri, accepted) in [
            ("https://a.example/cb", true),
            ("HTTP://a.example:8080", true),
            ("https://a.example/cb?x=1&y=%20z", true),
            ("http://[fd00::1]:9000/cb", true),
            ("http://10.0.0.1/n/%C3%A9", true),
            ("https://rf.64w8.test*", false),
            ("https://user:pw@a.example/cb", false),
            ("https://a.example/cb#part", false),
            ("https://a.example:65536/cb", false),
            ("https://a.example/c b", false),
            ("ftp://a.example/cb", false),
            ("/cb", false),
            ("", false),
            (&long, false),
        ] {
            assert_eq!(
                d.check_client_uri("callbackUri", uri).is_ok(),
                accepted,
                "{uri}"
            );
            assert_eq!(schema.is_valid(&uri.into()), accepted, "documented: {uri}");
        }
    }

    #[test]
    fn special_addresses_are_refused_by_default() {
        let d = Destinations::new(&OutboundPolicy::default()).unwrap();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!d.permits(ip(refused)), "{refused}");
        }
        for allowed in ["8.8.8.8", "2a00:1450::1", "93.184.216.34"] {
            assert!(d.permits(ip(allowed)), "{allowed}");
        }
        assert_eq!(
            d.check_uri("http://127.0.0.1:8080/x"),
            Err(OutboundError::Refused)
        );
        assert_eq!(d.check_uri("http://[::1]/x"), Err(OutboundError::Refused));
        assert_eq!(
            d.check_uri("ftp://example.com/x"),
            Err(OutboundError::NotHttp)
        );
        assert_eq!(d.check_uri("http://example.com/x"), Ok(()));
    }

    #[test]
    fn operators_allow_and_deny_ranges() {
        let d = Destinations::new(&OutboundPolicy {
            allow: vec!["10.1.0.0/16".into()],
            deny: vec!["8.8.8.0/24".into()],
            ..OutboundPolicy::default()
        })
        .unwrap();
        assert!(d.permits(ip("10.1.2.3")) && !d.permits(ip("10.2.0.1")));
        assert!(!d.permits(ip("8.8.8.8")));
        let lab = Destinations::new(&OutboundPolicy {
            allow_private: true,
            deny: vec!["169.254.169.254".into()],
            ..OutboundPolicy::default()
        })
        .unwrap();
        assert!(lab.permits(ip("127.0.0.1")) && !lab.permits(ip("169.254.169.254")));
        assert!(
            Destinations::new(&OutboundPolicy {
                allow: vec!["nonsense".into()],
                ..OutboundPolicy::default()
            })
            .is_err()
        );
    }
}
