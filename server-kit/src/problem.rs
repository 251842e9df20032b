//! The API edge error: one enum, one mapping to RFC 7807 `application/problem+json`.
//!
//! Handlers return `Result<_, ApiError>`; extractor rejections (bad JSON, unknown fields, wrong
//! content type, body too large, bad query or path) convert into `ApiError` so every failure a
//! client sees has the same shape. Internal details are logged, never sent.

use api_specs::ProblemDetails;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error as the API client sees it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad parameters or body.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials at all (RFC 6750 section 3.1: the challenge names no error).
    #[error("{0}")]
    MissingToken(String),
    /// Invalid or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The resource's current state does not allow the operation (403, typed
    /// [`api_specs::problem::NOT_ALLOWED_IN_STATE`]).
    #[error("{0}")]
    NotAllowed(String),
    /// No such resource.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind of resource, e.g. "service".
        kind: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The URI maps to no resource.
    #[error("no resource at this URI")]
    NoRoute,
    /// The resource does not support the method.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// Conflict with the current state of the resource.
    #[error("{0}")]
    Conflict(String),
    /// No acceptable representation (`Accept`).
    #[error("{0}")]
    NotAcceptable(String),
    /// The `Range` cannot be served.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// An `If-Match` precondition failed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The request body is too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request URI is too long.
    #[error("request URI too long")]
    UriTooLong,
    /// The request body has an unsupported media type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency is unavailable; the client may retry.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// A server-side failure; the message is logged, not sent.
    #[error("internal server error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MissingToken(_) | Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::NotAllowed(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A `NotFound` for a resource kind and id.
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }

    /// The RFC 7807 body of this error.
    pub fn problem(&self) -> ProblemDetails {
        let status = self.status();
        ProblemDetails {
            problem_type: matches!(self, Self::NotAllowed(_))
                .then(|| api_specs::problem::NOT_ALLOWED_IN_STATE.to_owned()),
            title: status.canonical_reason().map(str::to_owned),
            status: status.as_u16(),
            detail: self.to_string(),
            instance: None,
        }
    }
}

/// Renders a problem body with the right content type.
fn problem_response(status: StatusCode, problem: &ProblemDetails) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = problem_response(self.status(), &self.problem());
        let challenge = match self {
            Self::MissingToken(_) => Some("Bearer realm=\"mecplane\""),
            Self::Unauthorized(_) => Some("Bearer realm=\"mecplane\", error=\"invalid_token\""),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// The response to `method` `path` as sent: an [`ApiError`] answer gets `instance` (the
/// request path) and is logged once, server-side errors with their internal message.
pub fn render_problem(mut response: Response, method: &Method, path: &str) -> Response {
    let Some(error) = response.extensions_mut().remove::<ApiError>() else {
        return response;
    };
    match &error {
        ApiError::Internal(internal) => {
            tracing::error!(%method, %path, error = %internal, "request failed");
        }
        other if other.status().is_server_error() => {
            tracing::warn!(%method, %path, error = %other, "request failed");
        }
        other => tracing::debug!(%method, %path, error = %other, "request rejected"),
    }
    let mut problem = error.problem();
    problem.instance = Some(path.to_owned());
    let mut rendered = problem_response(error.status(), &problem);
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

/// An error with its sources, for logs (`outer: inner: root`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// What a URI cannot hold as it is: controls, space, non-ASCII (always encoded) and the
/// characters RFC 3986 leaves out.
const NOT_IN_URI: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A `Location` header for `href`, percent-encoded where an identifier in it holds what a URI
/// cannot (a header value is bytes: raw UTF-8 there reads as Latin-1 to many clients).
pub fn location(href: &str) -> (header::HeaderName, HeaderValue) {
    let encoded = percent_encoding::utf8_percent_encode(href, NOT_IN_URI).to_string();
    (
        header::LOCATION,
        HeaderValue::from_str(&encoded).unwrap_or(HeaderValue::from_static("/")),
    )
}

/// Adds the OAuth 2.0 client credentials security scheme (`oauth2`, token endpoint
/// `/oauth2/token`) with `scopes` to an OpenAPI document.
pub fn add_oauth2_scheme(openapi: &mut utoipa::openapi::OpenApi, scopes: &[(&str, &str)]) {
    use utoipa::openapi::security::{ClientCredentials, Flow, OAuth2, Scopes, SecurityScheme};
    let flow = ClientCredentials::new("/oauth2/token", Scopes::from_iter(scopes.iter().copied()));
    openapi
        .components
        .get_or_insert_default()
        .add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::ClientCredentials(flow)])),
        );
}

/// Makes schemas that extend a strict one (`allOf` of a `$ref` to an object without
/// additional properties, and an object: what `#[serde(flatten)]` of a `deny_unknown_fields`
/// type generates) one object with both property sets, so a real response can validate.
/// Call it once every schema is in.
pub fn inline_strict_bases(openapi: &mut utoipa::openapi::OpenApi) {
    use serde_json::Value;
    let Ok(mut doc) = serde_json::to_value(&*openapi) else {
        return;
    };
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let originals = schemas.clone();
    for schema in schemas.values_mut() {
        let Some([base, extra]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        else {
            continue;
        };
        let Some(base) = base["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .and_then(|name| originals.get(name))
            .filter(|b| b["additionalProperties"] == Value::Bool(false))
        else {
            continue;
        };
        let mut merged = base.clone();
        if let (Some(props), Some(more)) = (
            merged["properties"].as_object_mut(),
            extra["properties"].as_object(),
        ) {
            props.extend(more.clone());
        }
        let mut required: Vec<Value> = base["required"].as_array().cloned().unwrap_or_default();
        required.extend(extra["required"].as_array().cloned().unwrap_or_default());
        merged["required"] = Value::Array(required);
        if let Some(description) = extra.get("description").or(schema.get("description")) {
            merged["description"] = description.clone();
        }
        *schema = merged;
    }
    if let Ok(fixed) = serde_json::from_value(doc) {
        *openapi = fixed;
    }
}

/// States the range of every `u32` in `openapi`: utoipa documents one as `format: int32,
/// minimum: 0`, whose format caps it at 2^31 - 1 while the servers take up to 2^32 - 1 (a
/// client held to the document would be refused nothing it may send, and the fuzzer's
/// "invalid" values above 2^31 - 1 were accepted). Such an integer without a maximum becomes
/// `format: int64, maximum: 4294967295`, which the request validator then enforces. utoipa
/// spells `u8` and `u16` alike, so fields of those types state their own maximum.
pub fn document_unsigned_integers(openapi: &mut utoipa::openapi::OpenApi) {
    use serde_json::Value;
    fn widen(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let integer = |t: &Value| t == "integer";
                let typed = match map.get("type") {
                    Some(Value::Array(types)) => types.iter().any(integer),
                    Some(t) => integer(t),
                    None => false,
                };
                if typed
                    && map.get("format") == Some(&Value::from("int32"))
                    && map.get("minimum") == Some(&Value::from(0))
                    && !map.contains_key("maximum")
                {
                    map.insert("format".into(), "int64".into());
                    map.insert("maximum".into(), u32::MAX.into());
                }
                map.values_mut().for_each(widen);
            }
            Value::Array(items) => items.iter_mut().for_each(widen),
            _ => {}
        }
    }
    let Ok(mut doc) = serde_json::to_value(&*openapi) else {
        return;
    };
    widen(&mut doc);
    if let Ok(fixed) = serde_json::from_value(doc) {
        *openapi = fixed;
    }
}

/// Documents in `openapi` the errors the edge gives every operation, as it gives them: each
/// error response is `application/problem+json` (not `application/json`), and an operation
/// lists 400 when it takes parameters or a body, 415 when it takes a body, 404 when its path
/// has parameters, 406 when it is a GET, 401 and 403 when it is secured. Every path parameter
/// is documented as [`ApiPath`] accepts it ([`path_parameter_schema`]), every request body as
/// required. Call it once every path is in.
pub fn document_problems(openapi: &mut utoipa::openapi::OpenApi) {
    use serde_json::{Value, json};
    let Ok(mut doc) = serde_json::to_value(&*openapi) else {
        return;
    };
    let problem = |description: &str| json!({"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let body = op.contains_key("requestBody");
            // every body an operation documents is one it needs (utoipa leaves `required`
            // out where the body has no schema type, as for a package upload)
            if let Some(request_body) = op.get_mut("requestBody").and_then(Value::as_object_mut) {
                request_body.entry("required").or_insert(Value::Bool(true));
            }
            let params = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty());
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            for parameter in op
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
            {
                parameter["schema"] = path_parameter_schema();
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                let error = status.starts_with('4') || status.starts_with('5');
                if let Some(content) = response
                    .get_mut("content")
                    .and_then(Value::as_object_mut)
                    .filter(|_| error)
                    && let Some(json) = content.remove("application/json")
                {
                    content.insert(PROBLEM_JSON.into(), json);
                }
            }
            let edge = [
                (
                    body || params,
                    "400",
                    "the parameters or the body are invalid",
                ),
                (body, "415", "the body's media type is not accepted"),
                (path.contains('{'), "404", "no such resource"),
                (
                    method == "get",
                    "406",
                    "the Accept header excludes every representation",
                ),
                (secured, "401", "no valid bearer token"),
                (secured, "403", "the token does not grant this API's scope"),
            ];
            for (applies, status, description) in edge {
                if applies && !responses.contains_key(status) {
                    responses.insert(status.into(), problem(description));
                }
            }
        }
    }
    if let Ok(documented) = serde_json::from_value(doc) {
        *openapi = documented;
    }
}

/// Fallback for URIs that match no route.
pub async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// Fallback for methods a resource does not support.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            JsonRejection::JsonDataError(e) => Self::BadRequest(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::BadRequest(e.body_text()),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("request body exceeds the size limit".into())
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

/// JSON body extractor and response whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query-string extractor keeping repeated keys, whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejections are [`ApiError`]s; every parameter (an identifier) is
/// 1 to [`MAX_PATH_PARAM`] characters.
#[derive(Debug, Clone, Default)]
pub struct ApiPath<T>(pub T);

/// Longest identifier accepted in a path.
pub const MAX_PATH_PARAM: usize = api_specs::common::MAX_ID;

/// The JSON Schema of a path parameter as [`ApiPath`] accepts it
/// ([`api_specs::common::check_text`] with [`MAX_PATH_PARAM`]).
pub fn path_parameter_schema() -> serde_json::Value {
    serde_json::to_value(api_specs::common::text_schema(MAX_PATH_PARAM)).unwrap_or_default()
}

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        for (name, value) in &raw {
            api_specs::common::check_text(name, value, MAX_PATH_PARAM)
                .map_err(ApiError::BadRequest)?;
        }
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_message() {
        let problem = ApiError::Internal("db password wrong".into()).problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("password"));
    }

    #[test]
    fn path_parameters_are_documented_as_accepted() {
        let schema = jsonschema::validator_for(&path_parameter_schema()).unwrap();
        let long = "x".repeat(MAX_PATH_PARAM + 1);
        let longest = "é".repeat(MAX_PATH_PARAM);
        for value in [
            "paris-1", "a b", "é", " x ", &longest, "", " ", "\u{3000}", "a\u{1}", "\u{85}x",
            "x\u{9f}", "\t", &long,
        ] {
            let accepted = api_specs::common::check_text("id", value, MAX_PATH_PARAM).is_ok();
            assert_eq!(schema.is_valid(&value.into()), accepted, "{value:?}");
        }
    }

    #[test]
    fn unsigned_integers_are_documented_with_their_range() {
        #[derive(utoipa::ToSchema)]
        #[allow(dead_code)]
        struct Counts {
            wide: u32,
            optional: Option<u32>,
            #[schema(maximum = 999)]
            bounded: u32,
            signed: i32,
        }
        #[derive(utoipa::OpenApi)]
        #[openapi(components(schemas(Counts)))]
        struct Doc;
        let mut doc = <Doc as utoipa::OpenApi>::openapi();
        document_unsigned_integers(&mut doc);
        let doc = serde_json::to_value(doc).unwrap();
        let props = &doc["components"]["schemas"]["Counts"]["properties"];
        assert_eq!(props["wide"]["format"], "int64");
        assert_eq!(props["wide"]["maximum"], u32::MAX);
        assert_eq!(props["optional"]["maximum"], u32::MAX);
        assert_eq!(props["bounded"]["maximum"], 999);
        assert_eq!(props["bounded"]["format"], "int32");
        assert!(props["signed"].get("maximum").is_none());
    }

    #[test]
    fn locations_are_uris() {
        let (_, value) = location("http://h/a/é x|1%41");
        assert_eq!(value, "http://h/a/%C3%A9%20x%7C1%41");
    }

    #[test]
    fn not_found_names_kind_and_id() {
        let problem = ApiError::not_found("service", "s1").problem();
        assert_eq!(problem.status, 404);
        assert_eq!(problem.detail, "service s1 not found");
    }
}
