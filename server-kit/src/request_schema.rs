//! Request bodies held to the OpenAPI document the service serves: before a handler sees a
//! JSON body, the body is validated against the schema its operation documents (types,
//! required members, bounds, lengths, patterns, enumerations, formats), so that what the
//! document refuses is refused (400, every problem with its JSON pointer) and a handler's
//! deserializer never has to be the only gate (serde takes a JSON array for a struct, and any
//! integer that fits the Rust type).
//!
//! Patterns run on the linear-time `regex` engine: a hostile body cannot make a pattern
//! backtrack. The schemas are compiled as JSON Schema draft 7 (rewritten from the draft
//! 2020-12 that OpenAPI 3.1 documents use where the two spell a keyword differently): the
//! validator crate checks every schema against its draft's meta-schema with a validator it
//! builds once and keeps, and draft 7's is 3 MB smaller than 2020-12's, most of an idle
//! service's heap. Bodies that are not JSON, or not valid JSON, go on to the handler, which
//! answers them as before (415, or the syntax error).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::problem::ApiError;

/// How many problems one answer lists.
const MAX_PROBLEMS: usize = 8;
/// Longest description of one problem (the validator's messages quote the value).
const MAX_PROBLEM_CHARS: usize = 240;

/// The validators of every JSON request body an OpenAPI document describes, by method and
/// route (`/app_lcm/v1/app_instances/{appInstanceId}/instantiate`, as axum matches it). Each is
/// compiled when its operation is first called: a compiled validator holds its own copy of the
/// document's components and of every pattern, which for all operations at once was most of
/// an idle MEP's heap.
#[derive(Clone, Default)]
pub struct RequestSchemas {
    by_route: Arc<HashMap<String, HashMap<Method, Operation>>>,
    components: Arc<Value>,
}

/// One operation's body schema and, once called, its validator.
struct Operation {
    root: Value,
    validator: OnceLock<Option<jsonschema::Validator>>,
}

impl std::fmt::Debug for RequestSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSchemas")
            .field(
                "operations",
                &self.by_route.values().map(HashMap::len).sum::<usize>(),
            )
            .finish()
    }
}

/// A schema of the document that cannot be compiled (a defect of the document).
#[derive(Debug, thiserror::Error)]
#[error("the request schema of {method} {path} does not compile: {reason}")]
pub struct SchemaError {
    method: String,
    path: String,
    reason: String,
}

impl RequestSchemas {
    /// The validators of `openapi`'s `application/json` request bodies; each schema is
    /// compiled once here to check it (one at a time, then dropped) and again on first use.
    pub fn of(openapi: &utoipa::openapi::OpenApi) -> Result<Self, SchemaError> {
        let doc = serde_json::to_value(openapi).unwrap_or_default();
        let mut components = doc.get("components").cloned().unwrap_or(Value::Null);
        as_draft7(&mut components);
        let mut by_route: HashMap<String, HashMap<Method, Operation>> = HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                let Some(schema) =
                    operation.pointer("/requestBody/content/application~1json/schema")
                else {
                    continue;
                };
                let mut root = schema.clone();
                as_draft7(&mut root);
                compile(&root, &components).map_err(|reason| SchemaError {
                    method: method.to_string(),
                    path: path.clone(),
                    reason,
                })?;
                by_route.entry(path.clone()).or_default().insert(
                    method,
                    Operation {
                        root,
                        validator: OnceLock::new(),
                    },
                );
            }
        }
        Ok(Self {
            by_route: Arc::new(by_route),
            components: Arc::new(components),
        })
    }

    /// What is wrong with `body` as the request body of `method` `route`; empty when it
    /// conforms or the operation documents no JSON body. When all that is wrong is that no
    /// alternative of a `oneOf`/`anyOf` matches, the validator cannot say which alternative
    /// was meant: that is left to the handler, whose own checks name the attribute (and which
    /// refuses what no alternative describes).
    pub fn problems(&self, method: &Method, route: &str, body: &Value) -> Vec<String> {
        use jsonschema::error::ValidationErrorKind as Kind;
        let Some(operation) = self.by_route.get(route).and_then(|m| m.get(method)) else {
            return Vec::new();
        };
        // compiled at start-up once already, so it compiles
        let compiled = operation
            .validator
            .get_or_init(|| compile(&operation.root, &self.components).ok());
        let Some(validator) = compiled else {
            return Vec::new();
        };
        let errors: Vec<_> = validator.iter_errors(body).take(MAX_PROBLEMS).collect();
        if errors.iter().all(|e| {
            matches!(
                e.kind,
                Kind::OneOfNotValid | Kind::OneOfMultipleValid | Kind::AnyOf
            )
        }) {
            return Vec::new();
        }
        errors
            .into_iter()
            .map(|e| {
                let at = e.instance_path.to_string();
                let mut message = e.to_string();
                if message.chars().count() > MAX_PROBLEM_CHARS {
                    message = message.chars().take(MAX_PROBLEM_CHARS).collect::<String>() + "…";
                }
                format!("{}: {message}", if at.is_empty() { "/" } else { &at })
            })
            .collect()
    }
}

/// The validator of an operation's body schema `root`, whose references name `components`.
fn compile(root: &Value, components: &Value) -> Result<jsonschema::Validator, String> {
    let mut root = root.clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), components.clone());
    }
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(&root)
        .map_err(|e| e.to_string())
}

/// `X` when `schema` is `oneOf: [{type: null}, X]` (in either order): utoipa's `Option<X>`.
pub fn optional_of(schema: &serde_json::Map<String, Value>) -> Option<Value> {
    match schema.get("oneOf")?.as_array()?.as_slice() {
        [a, b] if a.get("type") == Some(&Value::from("null")) => Some(b.clone()),
        [a, b] if b.get("type") == Some(&Value::from("null")) => Some(a.clone()),
        _ => None,
    }
}

/// Rewrites a schema of the document for draft 7 validation, with two rewrites:
/// - `oneOf: [{type: null}, X]` (how utoipa spells an `Option<X>` of an object) becomes
///   `if: {type: null}, else: X`. The same values are valid, but a value that is not null is
///   held to `X` itself, so its problems are told at their own paths instead of as one
///   "matches no alternative" (which [`RequestSchemas::problems`] leaves to the handler).
/// - Draft 2020-12's tuple `prefixItems: [A, B], items: X` becomes draft 7's
///   `items: [A, B], additionalItems: X`.
fn as_draft7(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(inner) = optional_of(map) {
                map.remove("oneOf");
                map.insert("if".into(), serde_json::json!({"type": "null"}));
                map.insert("else".into(), inner);
            }
            if let Some(prefix) = map.remove("prefixItems") {
                if let Some(rest) = map.remove("items") {
                    map.insert("additionalItems".into(), rest);
                }
                map.insert("items".into(), prefix);
            }
            map.values_mut().for_each(as_draft7);
        }
        Value::Array(items) => items.iter_mut().for_each(as_draft7),
        _ => {}
    }
}

/// Route middleware (`Router::route_layer`, so that the matched route is known): refuses a
/// JSON request body that does not conform to its operation's documented schema.
pub async fn check_request_body(
    State(schemas): State<RequestSchemas>,
    request: Request,
    next: Next,
) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or_default().trim();
            let essence = essence.to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let Some(route) = route.filter(|_| json) else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let (parts, body) = request.into_parts();
    // read as the handler's extractor would: within the service's body limit
    let bytes = match Bytes::from_request(Request::from_parts(parts.clone(), body), &()).await {
        Ok(bytes) => bytes,
        Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::PayloadTooLarge("request body exceeds the size limit".into())
                .into_response();
        }
        Err(rejection) => return ApiError::BadRequest(rejection.body_text()).into_response(),
    };
    if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
        let problems = schemas.problems(&method, &route, &value);
        if !problems.is_empty() {
            return ApiError::BadRequest(format!(
                "the request body does not conform to the API's schema: {}",
                problems.join("; ")
            ))
            .into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    #[derive(serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Filter {
        #[schema(maximum = 4)]
        kind: u8,
        #[schema(min_length = 1, pattern = "^[a-z]+$")]
        name: Option<String>,
    }

    #[utoipa::path(post, path = "/filters", request_body = Filter, responses((status = 201)))]
    #[allow(dead_code)]
    fn create() {}

    #[derive(OpenApi)]
    #[openapi(paths(create))]
    struct Doc;

    #[test]
    fn bodies_are_held_to_the_documented_schema() {
        let schemas = RequestSchemas::of(&Doc::openapi()).unwrap();
        let problems = |body: Value| schemas.problems(&Method::POST, "/filters", &body);
        assert!(problems(serde_json::json!({"kind": 4, "name": "abc"})).is_empty());
        assert!(problems(serde_json::json!({"kind": 0})).is_empty());
        // what serde alone would take: an array for the object, a u8 above the bound
        assert_eq!(problems(serde_json::json!([4, null])).len(), 1);
        let above = problems(serde_json::json!({"kind": 200}));
        assert!(above[0].starts_with("/kind: "), "{above:?}");
        let several = problems(serde_json::json!({"kind": 9, "name": "", "x": 1}));
        assert_eq!(several.len(), 4, "{several:?}");
        // another operation, or none documented: nothing to say
        assert!(
            schemas
                .problems(&Method::PUT, "/filters", &serde_json::json!([]))
                .is_empty()
        );
    }

    /// The validators of a document with one operation, `method` `path`, whose JSON body is
    /// `schema`, beside `components`.
    fn schemas_of(path: &str, method: &str, schema: Value, components: Value) -> RequestSchemas {
        let doc: utoipa::openapi::OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {path: {method: {
                "requestBody": {"content": {"application/json": {"schema": schema}}},
                "responses": {"204": {"description": "done"}},
            }}},
            "components": components,
        }))
        .unwrap();
        RequestSchemas::of(&doc).unwrap()
    }

    #[test]
    fn which_alternative_was_meant_is_left_to_the_handler() {
        let schemas = schemas_of(
            "/x",
            "put",
            serde_json::json!({
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "maximum": 1},
                    "v": {"oneOf": [{"type": "string"}, {"type": "object", "required": ["id"]}]},
                    "o": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/O"}]},
                },
            }),
            serde_json::json!({"schemas": {"O": {"type": "object", "required": ["id"]}}}),
        );
        let problems = |body: Value| schemas.problems(&Method::PUT, "/x", &body);
        assert!(problems(serde_json::json!({"v": {"name": "a"}})).is_empty());
        // an optional object (utoipa's oneOf of null and the object) is one alternative only
        assert!(problems(serde_json::json!({"o": null})).is_empty());
        assert!(problems(serde_json::json!({"o": {"id": 1}})).is_empty());
        let array = problems(serde_json::json!({"o": [null, null]}));
        assert_eq!(array.len(), 1, "{array:?}");
        assert!(array[0].starts_with("/o: "), "{array:?}");
        // with another problem, both are told
        assert_eq!(problems(serde_json::json!({"n": 2, "v": {}})).len(), 2);
    }

    #[test]
    fn tuples_keep_their_item_schemas_and_length() {
        let schemas = schemas_of(
            "/p",
            "post",
            serde_json::json!({
                "type": "array",
                "prefixItems": [
                    {"type": "number", "maximum": 180},
                    {"type": "number", "maximum": 90},
                ],
                "items": false,
                "minItems": 2,
            }),
            Value::Null,
        );
        let problems = |body: Value| schemas.problems(&Method::POST, "/p", &body);
        assert!(problems(serde_json::json!([10.5, 20])).is_empty());
        let lat = problems(serde_json::json!([10, 91]));
        assert_eq!(lat.len(), 1, "{lat:?}");
        assert!(lat[0].starts_with("/1: "), "{lat:?}");
        assert_eq!(problems(serde_json::json!([1, 2, 3])).len(), 1);
        assert_eq!(problems(serde_json::json!([1])).len(), 1);
    }

    #[test]
    fn a_long_value_is_not_echoed_whole() {
        let schemas = RequestSchemas::of(&Doc::openapi()).unwrap();
        let long = "A".repeat(100_000);
        let problems = schemas.problems(
            &Method::POST,
            "/filters",
            &serde_json::json!({"kind": 1, "name": long}),
        );
        assert!(
            problems[0].chars().count() < MAX_PROBLEM_CHARS + 20,
            "{problems:?}"
        );
    }
}
