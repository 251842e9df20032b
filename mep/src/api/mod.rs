//! The HTTP edge of the MEP: Mp1 (`mec_service_mgmt/v1`, `mec_app_support/v1`), the
//! management API MEC management uses to provision app instances (`mep_mgmt/v1`), the token
//! endpoint and the admin endpoints. Handlers parse, authorize, call one platform function and
//! convert its result; errors become RFC 7807 problems in one place ([`From<MepError>`]).

mod app_support;
mod mgmt;
mod service_mgmt;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use server_kit::admin::{self, Metrics, ReadinessCheck};
use server_kit::auth::{Authority, RequireScope, require_scope, token_endpoint};
use server_kit::problem::{ApiError, error_chain, location, method_not_allowed, no_route};
use server_kit::request_schema::{RequestSchemas, SchemaError, check_request_body};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::platform::{APP_SUPPORT_BASE, MepError, Platform, SERVICE_MGMT_BASE, Tagged};

/// Scope of the service management API.
pub const SCOPE_SERVICE_MGMT: &str = "mec_service_mgmt";
/// Scope of the application support API.
pub const SCOPE_APP_SUPPORT: &str = "mec_app_support";
/// Scope of the management API.
pub const SCOPE_MGMT: &str = "mep_mgmt";
/// Base path of the management API.
pub const MGMT_BASE: &str = "/mep_mgmt/v1";

type AppState = Arc<Platform>;

impl From<MepError> for ApiError {
    fn from(e: MepError) -> Self {
        match e {
            MepError::NotFound { kind, id } => ApiError::NotFound { kind, id },
            MepError::Invalid(m) => ApiError::BadRequest(m),
            MepError::Conflict(m) => ApiError::Conflict(m),
            MepError::Forbidden(m) => ApiError::Forbidden(m),
            e @ MepError::PreconditionFailed { .. } => ApiError::PreconditionFailed(e.to_string()),
            MepError::Store(e) => ApiError::Internal(error_chain(&e)),
        }
    }
}

/// The `If-Match` header, if any.
fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

/// `ETag` header for a tagged value.
fn etag<T>(tagged: &Tagged<T>) -> [(HeaderName, HeaderValue); 1] {
    let value =
        HeaderValue::from_str(&tagged.etag_header()).unwrap_or(HeaderValue::from_static("\"0\""));
    [(header::ETAG, value)]
}

/// The OpenAPI document of the MEP (security and tags; paths come from the routers).
#[derive(OpenApi)]
#[openapi(
    info(title = "mecplane MEP: ETSI MEC 011 Mp1 and provisioning APIs", version = "3.1.1"),
    modifiers(&OAuth),
    components(schemas(
        api_specs::mp1::service_mgmt::ServiceAvailabilityNotification,
        api_specs::mp1::app_support::AppTerminationNotification,
    )),
    tags(
        (name = "services", description = "MEC service management (ETSI GS MEC 011 clause 8)"),
        (name = "transports", description = "Platform transports"),
        (name = "appRegistrations", description = "Applications registering themselves (ETSI GS MEC 011 clause 7.2.14)"),
        (name = "appSubscriptions", description = "Subscriptions of application instances"),
        (name = "appConfirmations", description = "Application readiness and termination"),
        (name = "trafficRules", description = "Traffic rules of application instances"),
        (name = "dnsRules", description = "DNS rules of application instances"),
        (name = "timing", description = "Platform time"),
        (name = "provisioning", description = "MEC management: application instances at this platform"),
    )
)]
pub struct ApiDoc;

struct OAuth;

impl utoipa::Modify for OAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        server_kit::problem::add_oauth2_scheme(
            openapi,
            &[
                (SCOPE_SERVICE_MGMT, "MEC service management API"),
                (SCOPE_APP_SUPPORT, "MEC application support API"),
                (SCOPE_MGMT, "Provisioning of application instances"),
            ],
        );
    }
}

/// The OpenAPI document of every API the MEP serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = parts().1;
    server_kit::problem::document_problems(&mut api);
    server_kit::problem::inline_strict_bases(&mut api);
    server_kit::problem::document_unsigned_integers(&mut api);
    api
}

fn parts() -> (
    Router<AppState>,
    utoipa::openapi::OpenApi,
    Router<AppState>,
    Router<AppState>,
) {
    let (svc, svc_api) = OpenApiRouter::new()
        .merge(service_mgmt::routes())
        .split_for_parts();
    let (sup, sup_api) = OpenApiRouter::new()
        .merge(app_support::routes())
        .split_for_parts();
    let (mgmt, mgmt_api) = OpenApiRouter::new().merge(mgmt::routes()).split_for_parts();
    let api = ApiDoc::openapi()
        .nest(SERVICE_MGMT_BASE, svc_api)
        .nest(APP_SUPPORT_BASE, sup_api)
        .nest(MGMT_BASE, mgmt_api);
    (svc, api, sup, mgmt)
}

/// Limits of the HTTP edge.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest accepted request body (bytes).
    pub max_body_bytes: usize,
}

/// The full router: APIs behind their scopes, the token endpoint and the admin endpoints.
pub fn router(
    platform: AppState,
    authority: Arc<Authority>,
    metrics: Arc<Metrics>,
    ready: ReadinessCheck,
    limits: HttpLimits,
) -> Result<Router, SchemaError> {
    let (svc, _, sup, mgmt) = parts();
    // JSON bodies are held to the served document once the client is authorized
    let checked = {
        let schemas = RequestSchemas::of(&openapi())?;
        move || from_fn_with_state(schemas.clone(), check_request_body)
    };
    let scope = |scope| {
        from_fn_with_state(
            RequireScope {
                authority: authority.clone(),
                scope,
            },
            require_scope,
        )
    };
    let apis = Router::new()
        .nest(
            SERVICE_MGMT_BASE,
            svc.route_layer(checked()).layer(scope(SCOPE_SERVICE_MGMT)),
        )
        .nest(
            APP_SUPPORT_BASE,
            sup.route_layer(checked()).layer(scope(SCOPE_APP_SUPPORT)),
        )
        .nest(
            MGMT_BASE,
            mgmt.route_layer(checked()).layer(scope(SCOPE_MGMT)),
        )
        .with_state(platform)
        .route("/oauth2/token", post(token_endpoint).with_state(authority));
    Ok(apis
        .merge(admin::router(metrics.clone(), ready))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(from_fn_with_state(metrics, server_kit::edge::edge)))
}
