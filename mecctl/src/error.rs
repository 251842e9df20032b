//! Errors and the exit codes they map to. The codes are part of mecctl's interface: scripts
//! branch on them, so they never change meaning.

use api_specs::ProblemDetails;

/// Exit codes (documented in `mecctl --help` and the README).
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// Anything not listed below: the MEAO unreachable or failing, I/O, an unexpected answer.
    pub const ERROR: u8 = 1;
    /// A bad command line, or a request the MEAO found invalid (400).
    pub const USAGE: u8 = 2;
    /// Missing or refused credentials (401, 403 for permissions, the token endpoint's refusal).
    pub const AUTH: u8 = 3;
    /// No such resource (404).
    pub const NOT_FOUND: u8 = 4;
    /// The resource's state forbids the request (403 typed not-allowed-in-current-state, as
    /// ETSI MEC 010-2 answers it, or 409).
    pub const CONFLICT: u8 = 5;
    /// An LCM operation ended FAILED or FAILED_TEMP, or onboarding failed.
    pub const FAILED: u8 = 6;
    /// `--wait` gave up after `--timeout`.
    pub const TIMEOUT: u8 = 7;
}

/// Whether `problem` refuses a request the resource's state does not allow: a 403 typed
/// not-allowed-in-current-state (how the MEAO answers, as ETSI MEC 010-2 lists 403 for it) or
/// a 409.
pub fn state_refusal(problem: &ProblemDetails) -> bool {
    problem.status == 409
        || (problem.status == 403
            && problem.problem_type.as_deref() == Some(api_specs::problem::NOT_ALLOWED_IN_STATE))
}

/// An error answer of the MEAO.
#[derive(Debug)]
pub struct ApiFailure {
    /// The request, e.g. `GET /app_lcm/v1/app_instances/x`.
    pub request: String,
    /// The HTTP status.
    pub status: u16,
    /// The problem (made from the status when the body is not a problem).
    pub problem: ProblemDetails,
    /// The body as received.
    pub body: String,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or local configuration is wrong.
    #[error("{0}")]
    Usage(String),
    /// No usable credentials.
    #[error("{0}")]
    Auth(String),
    /// The MEAO answered with an error.
    #[error("{}", problem_message(&.0.problem))]
    Api(Box<ApiFailure>),
    /// What the command names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (e.g. the same AppD version is onboarded).
    #[error("{0}")]
    Conflict(String),
    /// An operation or onboarding ended failed; what failed was already printed.
    #[error("{0}")]
    Failed(String),
    /// A wait ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// The MEAO could not be reached.
    #[error("cannot reach the MEAO at {url}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The MEAO's answer is not what its API defines.
    #[error("unexpected answer to {request}: {detail}")]
    Unexpected {
        /// The request.
        request: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A local file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Something else local failed (e.g. building a package).
    #[error("{0}")]
    Local(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The exit code the error ends mecctl with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => exit::USAGE,
            Self::Auth(_) => exit::AUTH,
            Self::Api(failure) => match failure.status {
                400 | 413 | 422 => exit::USAGE,
                _ if state_refusal(&failure.problem) => exit::CONFLICT,
                401 | 403 => exit::AUTH,
                404 => exit::NOT_FOUND,
                409 => exit::CONFLICT,
                _ => exit::ERROR,
            },
            Self::NotFound(_) => exit::NOT_FOUND,
            Self::Conflict(_) => exit::CONFLICT,
            Self::Failed(_) => exit::FAILED,
            Self::Timeout(_) => exit::TIMEOUT,
            Self::Unreachable { .. }
            | Self::Unexpected { .. }
            | Self::Io { .. }
            | Self::Local(_) => exit::ERROR,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_string();
        move |source| Self::Io { path, source }
    }

    /// Whether this says that something does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Api(failure) => failure.status == 404,
            Self::NotFound(_) => true,
            _ => false,
        }
    }
}

/// `title: detail`, or the one that is there.
fn problem_message(p: &ProblemDetails) -> String {
    match p.title.as_deref().filter(|t| !t.is_empty()) {
        Some(title) if !p.detail.is_empty() && p.detail != title => {
            format!("{title}: {}", p.detail)
        }
        Some(title) => title.to_owned(),
        None => p.detail.clone(),
    }
}

/// The error and its causes, one line: `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Every problem a failed onboarding names, one per line, each with its path in the package.
///
/// The MEAO reports them in the problem's `detail` (`package rejected: path: detail; …`).
pub fn onboarding_problems(p: &ProblemDetails) -> Vec<String> {
    match p.detail.strip_prefix("package rejected: ") {
        Some(list) => list.split("; ").map(str::to_owned).collect(),
        None => vec![problem_message(p)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(title: Option<&str>, detail: &str) -> ProblemDetails {
        ProblemDetails {
            problem_type: None,
            title: title.map(str::to_owned),
            status: 400,
            detail: detail.into(),
            instance: None,
        }
    }

    #[test]
    fn statuses_map_to_stable_exit_codes() {
        let api = |status| {
            Error::Api(Box::new(ApiFailure {
                request: "GET /x".into(),
                status,
                problem: problem(None, "x"),
                body: String::new(),
            }))
        };
        let codes: Vec<u8> = [400, 401, 403, 404, 409, 500, 503]
            .into_iter()
            .map(|s| api(s).exit_code())
            .collect();
        assert_eq!(codes, [2, 3, 3, 4, 5, 1, 1]);
        assert_eq!(Error::Failed("x".into()).exit_code(), 6);
        assert_eq!(Error::Timeout("x".into()).exit_code(), 7);
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Auth("x".into()).exit_code(), 3);
    }

    #[test]
    fn problems_read_as_short_messages() {
        assert_eq!(
            problem_message(&problem(Some("Conflict"), "package p is ONBOARDED")),
            "Conflict: package p is ONBOARDED"
        );
        assert_eq!(problem_message(&problem(None, "gone")), "gone");
        assert_eq!(
            onboarding_problems(&problem(
                Some("Onboarding failed"),
                "package rejected: a.yaml#/appName: missing; m.mf: digest mismatch"
            )),
            ["a.yaml#/appName: missing", "m.mf: digest mismatch"]
        );
    }
}
