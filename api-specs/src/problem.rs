//! RFC 7807 problem details, the error body of every ETSI MEC API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The `type` of a 403 that refuses an operation the resource's current state does not allow
/// (ETSI MEC 010-2's "operation is not allowed given the current status of the resource"), as
/// distinct from a 403 for missing permissions.
pub const NOT_ALLOWED_IN_STATE: &str = "urn:mecplane:problem:not-allowed-in-current-state";

/// RFC 7807 / ETSI GS MEC 009 error body, sent as `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProblemDetails {
    /// URI reference identifying the problem type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
    /// Short, human-readable summary of the problem type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The HTTP status code of this occurrence.
    #[schema(minimum = 100, maximum = 599)]
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// URI reference of the specific occurrence (the request path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}
