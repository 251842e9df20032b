//! What can go wrong talking to the MEP.

use std::time::Duration;

use api_specs::ProblemDetails;

/// A failed Mp1 call, token request or configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or malformed.
    #[error("setting {name}: {reason}")]
    Setting {
        /// The environment variable (or file) concerned.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The MEP could not be reached, or the connection broke (DNS, TCP, TLS, timeout).
    #[error("cannot reach {url}")]
    Transport {
        /// The URL requested.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint refused the credential (RFC 6749 section 5.2); `invalid_client`
    /// means the MEP does not know the client or the secret (yet, or any more).
    #[error("the token endpoint answered {status} {error}: {}", description.as_deref().unwrap_or("no description"))]
    TokenRefused {
        /// HTTP status.
        status: u16,
        /// The OAuth 2.0 error code.
        error: String,
        /// Its description.
        description: Option<String>,
    },
    /// Too many failed token requests: the MEP refuses more for a while.
    #[error("token requests are throttled for {retry_after:?}")]
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
    /// The MEP answered with an error (RFC 7807 problem details).
    #[error("{method} {url} answered {status}: {}", problem.detail)]
    Api {
        /// The request method.
        method: reqwest::Method,
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// The problem the MEP reported (synthesized when the body was not one).
        problem: Box<ProblemDetails>,
    },
    /// A response body was not what the API defines.
    #[error("unexpected response body from {url}")]
    Decode {
        /// The URL requested.
        url: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The MEP did not accept the credential before the start-up timeout.
    #[error("the MEP did not accept the credential within {waited:?}")]
    Startup {
        /// How long the client tried.
        waited: Duration,
        /// The last failure.
        #[source]
        last: Box<Error>,
    },
    /// A link the MEP returned points elsewhere: the access token is not sent there.
    #[error("{href} is not under the MEP's API root {mep_url}")]
    ForeignLink {
        /// The link.
        href: String,
        /// The MEP's API root.
        mep_url: String,
    },
}

impl Error {
    /// The HTTP status of an answer from the MEP or its token endpoint.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::TokenRefused { status, .. } => Some(*status),
            Self::Throttled { .. } => Some(429),
            Self::Transport { source, .. } => source.status().map(|s| s.as_u16()),
            Self::Startup { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The problem details of an API error.
    pub fn problem(&self) -> Option<&ProblemDetails> {
        match self {
            Self::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: the MEP was unreachable, overloaded,
    /// throttling or failing (5xx); client errors (4xx) stay what they are.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Throttled { .. } => true,
            Self::Api { status, .. } | Self::TokenRefused { status, .. } => {
                *status >= 500 || *status == 408
            }
            _ => false,
        }
    }

    /// Whether this is the token endpoint not knowing the client or secret: expected while
    /// a new instance's MEP has not yet been told of its credential.
    pub fn is_unknown_client(&self) -> bool {
        matches!(self, Self::TokenRefused { error, .. } if error == "invalid_client")
    }
}
