//! Image references as packages write them: `[registry[:port]/]repository[:tag][@digest]`.

use std::fmt;

/// The registry Docker Hub's short names refer to, and where its API answers.
const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host and optional port, as written (`docker.io` when absent).
    pub registry: String,
    /// Repository path in the registry (`library/` added for Docker Hub's short names).
    pub repository: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest (`sha256:…`), if any.
    pub digest: Option<String>,
}

/// A repository path component: lower-case letters and digits separated by `.`, `_`, `__` or
/// dashes, as the OCI distribution specification allows.
fn component(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Whether `s` is a tag: up to 128 word characters, `.` and `-`, not starting with either.
fn tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !s.starts_with(['.', '-'])
}

/// Whether `s` is a digest this platform pins: `sha256:` and 64 lower-case hex digits (or
/// `sha512:` and 128).
pub fn digest(s: &str) -> bool {
    let hex = |h: &str, n: usize| {
        h.len() == n
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match s.split_once(':') {
        Some(("sha256", h)) => hex(h, 64),
        Some(("sha512", h)) => hex(h, 128),
        _ => false,
    }
}

/// Whether `s` is a registry host: a DNS name or IPv4 address with an optional port.
fn host(s: &str) -> bool {
    let (name, port) = match s.split_once(':') {
        Some((name, port)) if !port.is_empty() => (name, port),
        Some(_) => return false,
        None => (s, ""),
    };
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        && (port.is_empty() || !port.starts_with('0') && port.parse::<u16>().is_ok())
}

/// Whether `s` names a registry and optional repository prefix (`host[:port][/path]`), as a
/// site's `imageRegistry` does: its first component a host with a `.` or `:` or `localhost`.
pub fn registry_prefix(s: &str) -> bool {
    let (first, path) = s.split_once('/').unwrap_or((s, ""));
    (first.contains(['.', ':']) || first == "localhost")
        && host(first)
        && s.len() <= 255
        && (path.is_empty() || path.split('/').all(component))
}

impl ImageRef {
    /// Parses `s`; `None` when it is not a reference.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 512 {
            return None;
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_owned())),
            None => (s, None),
        };
        if digest.as_deref().is_some_and(|d| !self::digest(d)) {
            return None;
        }
        // a tag follows the last ':' after the last '/'
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_owned()),
            ),
            None => (rest, None),
        };
        if tag.as_deref().is_some_and(|t| !self::tag(t)) {
            return None;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_owned(), path.to_owned())
            }
            _ if name.contains('/') => (DOCKER_HUB.to_owned(), name.to_owned()),
            _ => (DOCKER_HUB.to_owned(), format!("library/{name}")),
        };
        (host(&registry) && repository.len() <= 255 && repository.split('/').all(component))
            .then_some(Self {
                registry,
                repository,
                tag,
                digest,
            })
    }

    /// The tag or digest the registry's manifest endpoint is asked for (`latest` when neither).
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_the_distribution_spec_names_them() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse("registry.acme.example:5000/vision/va:2.3.0").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("registry.acme.example:5000", "vision/va", Some("2.3.0"))
        );
        assert_eq!(r.reference(), "2.3.0");
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        assert_eq!(r.reference(), "latest");
        let r = ImageRef::parse(&format!("localhost/a/b:1@{d}")).unwrap();
        assert_eq!(r.reference(), d);
        assert_eq!(r.to_string(), format!("localhost/a/b:1@{d}"));
        assert_eq!(
            ImageRef::parse("bitnami/redis:7").unwrap().repository,
            "bitnami/redis"
        );
        for bad in [
            "",
            "Upper/case",
            "a/b:",
            "a/b@sha256:short",
            "a//b",
            "host:99999/a",
            "a/b:-x",
            "a/-b",
        ] {
            assert!(ImageRef::parse(bad).is_none(), "{bad}");
        }
        for ok in [
            "registry.site1.example:5000",
            "10.0.0.5:5000/mec",
            "localhost/a/b",
        ] {
            assert!(registry_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "mec",
            "mec/apps",
            "reg.example/Apps",
            "reg.example//a",
            "reg.example:0",
            "reg.example:05000",
            "reg.example:",
        ] {
            assert!(!registry_prefix(bad), "{bad}");
        }
    }
}
