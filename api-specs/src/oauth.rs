//! The OAuth 2.0 token endpoint's messages (RFC 6749 sections 5.1 and 5.2), how ETSI GS MEC 009
//! clients obtain the bearer tokens every MEC API wants.

use serde::{Deserialize, Serialize};

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always "Bearer".
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Granted scopes, space separated.
    pub scope: String,
}

/// A refused token request (RFC 6749 section 5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenError {
    /// The error code: `invalid_request`, `invalid_client`, `unsupported_grant_type`,
    /// `invalid_scope`, `server_error`, ...
    pub error: String,
    /// Human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}
