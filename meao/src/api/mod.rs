//! The HTTP edge of the MEAO: Mm1 `app_pkgm/v1` and `app_lcm/v1`, the site inventory, the
//! token endpoint and the admin endpoints. Handlers parse, authorize (one scope per API), call
//! the domain and convert; errors become RFC 7807 problems through `From` impls.

mod app_lcm;
mod app_packages;
mod sites;
mod subscriptions;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use server_kit::admin::{self, Metrics, ReadinessCheck};
use server_kit::auth::{Authority, token_endpoint};
use server_kit::problem::{ApiError, error_chain, location, method_not_allowed, no_route};
use server_kit::request_schema::{RequestSchemas, SchemaError, check_request_body};
use server_kit::selectors::{Filter, Selector};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::inventory::Inventory;
use crate::lcm::{APP_LCM_BASE, Lcm};
use crate::package::{APP_PKGM_BASE, PackageError, Packages};
use crate::portal::{Edge, Portal};

/// Scope of the package management API.
pub const SCOPE_APP_PKGM: &str = "app_pkgm";
/// Scope of the LCM API.
pub const SCOPE_APP_LCM: &str = "app_lcm";
/// Scope of the site inventory API.
pub const SCOPE_INVENTORY: &str = "mecplane_inventory";

type AppState = Arc<Packages>;

impl From<PackageError> for ApiError {
    fn from(e: PackageError) -> Self {
        match e {
            PackageError::NotFound { kind, id } => ApiError::NotFound { kind, id },
            PackageError::Invalid(m) => ApiError::BadRequest(m),
            e @ PackageError::Rejected(_) => ApiError::BadRequest(e.to_string()),
            PackageError::NotAllowed(m) => ApiError::NotAllowed(m),
            PackageError::TooLarge(m) => ApiError::PayloadTooLarge(m),
            PackageError::Store(e) => ApiError::Internal(error_chain(&e)),
            PackageError::Storage(m) => ApiError::Internal(m),
        }
    }
}

/// Attribute-based filter and selectors of list resources (ETSI GS MEC 009 clauses 6.18 and
/// 6.19).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// e.g. `(eq,onboardingState,ONBOARDED);(eq,appProvider,ACME)`.
    filter: Option<String>,
    /// Include every attribute.
    all_fields: Option<String>,
    /// Default-excluded attributes to include.
    fields: Option<String>,
    /// Attributes to exclude.
    exclude_fields: Option<String>,
    /// Exclude the default-excluded attributes.
    exclude_default: Option<String>,
}

impl ListQuery {
    /// Filters `items` and trims each to the selected attributes.
    fn apply<T: serde::Serialize>(
        &self,
        items: Vec<T>,
        attributes: &[&str],
        excluded_by_default: &[&str],
    ) -> Result<axum::response::Response, ApiError> {
        use axum::response::IntoResponse;
        let filter = self
            .filter
            .as_deref()
            .map(|f| Filter::parse(f, attributes))
            .transpose()?
            .unwrap_or_default();
        let selector = Selector::from_query(
            self.all_fields.is_some(),
            self.fields.as_deref(),
            self.exclude_fields.as_deref(),
            self.exclude_default.is_some(),
        )?;
        let selected: Vec<serde_json::Value> = items
            .into_iter()
            .filter_map(|i| serde_json::to_value(i).ok())
            .filter(|v| filter.matches(v))
            .map(|v| selector.apply(v, excluded_by_default))
            .collect();
        Ok(axum::Json(selected).into_response())
    }
}

/// The OpenAPI document of the MEAO.
#[derive(OpenApi)]
#[openapi(
    info(title = "mecplane MEAO: ETSI MEC 010-2 Mm1 APIs", version = "3.1.1"),
    modifiers(&OAuth),
    components(schemas(
        api_specs::mm1::app_pkgm::AppPkgNotification,
        api_specs::mm1::app_lcm::LcmNotification,
        // a site's VIM connection, generic in api-specs' SiteSpec
        crate::inventory::VimConnection,
        // referred to by the location constraints' schema with the latitude-longitude rule
        api_specs::location::LocationConstraints,
    )),
    tags(
        (name = "app-pkgm", description = "Application package management (ETSI GS MEC 010-2 clause 6)"),
        (name = "app-lcm", description = "Application lifecycle management (ETSI GS MEC 010-2 clause 7)"),
        (name = "inventory", description = "Edge sites (MEC hosts) and placement queries (mecplane)"),
    )
)]
pub struct ApiDoc;

struct OAuth;

impl utoipa::Modify for OAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        server_kit::problem::add_oauth2_scheme(
            openapi,
            &[
                (SCOPE_APP_PKGM, "Application package management"),
                (SCOPE_APP_LCM, "Application lifecycle management"),
                (SCOPE_INVENTORY, "Site inventory"),
            ],
        );
    }
}

type Parts = (
    Router<AppState>,
    Router<Arc<Lcm>>,
    Router<sites::Sites>,
    utoipa::openapi::OpenApi,
);

fn parts() -> Parts {
    let (pkgm, pkgm_api) = OpenApiRouter::new()
        .merge(app_packages::routes())
        .merge(subscriptions::routes())
        .split_for_parts();
    let (lcm, lcm_api) = app_lcm::routes().split_for_parts();
    let (inventory, inventory_api) = sites::routes().split_for_parts();
    let api = ApiDoc::openapi()
        .nest(APP_PKGM_BASE, pkgm_api)
        .nest(APP_LCM_BASE, lcm_api)
        .nest(sites::INVENTORY_BASE, inventory_api);
    (pkgm, lcm, inventory, api)
}

/// The OpenAPI document of every API the MEAO serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = parts().3;
    server_kit::problem::document_problems(&mut api);
    server_kit::problem::inline_strict_bases(&mut api);
    server_kit::problem::document_unsigned_integers(&mut api);
    api
}

/// The full router: the APIs (a bearer token or a portal session), the portal, the token
/// endpoint and the admin endpoints.
#[allow(clippy::too_many_arguments)]
pub fn router(
    packages: AppState,
    inventory: Arc<Inventory>,
    lcm: Arc<Lcm>,
    authority: Arc<Authority>,
    portal: Arc<Portal>,
    metrics: Arc<Metrics>,
    ready: ReadinessCheck,
    max_body_bytes: usize,
) -> Result<Router, SchemaError> {
    let (pkgm, lcm_routes, sites, _) = parts();
    // JSON bodies are held to the served document once the client is authorized
    let checked = {
        let schemas = RequestSchemas::of(&openapi())?;
        move || from_fn_with_state(schemas.clone(), check_request_body)
    };
    let scope = |scope| {
        from_fn_with_state(
            Edge {
                authority: authority.clone(),
                portal: portal.clone(),
                scope,
            },
            crate::portal::authorize,
        )
    };
    let sites = sites
        .route_layer(checked())
        .layer(scope(SCOPE_INVENTORY))
        .with_state(sites::Sites {
            inventory,
            packages: packages.clone(),
            mep_link: lcm.mep_link(),
        });
    Ok(Router::new()
        .nest(
            APP_PKGM_BASE,
            pkgm.route_layer(checked()).layer(scope(SCOPE_APP_PKGM)),
        )
        .with_state(packages)
        .nest(sites::INVENTORY_BASE, sites)
        .nest(
            APP_LCM_BASE,
            lcm_routes
                .route_layer(checked())
                .layer(scope(SCOPE_APP_LCM))
                .with_state(lcm),
        )
        .route("/oauth2/token", post(token_endpoint).with_state(authority))
        .merge(crate::portal::router(portal))
        .merge(admin::router(metrics.clone(), ready))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(from_fn_with_state(metrics, server_kit::edge::edge)))
}
