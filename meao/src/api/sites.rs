//! `inventory/v1`: the edge sites (MEC hosts) and placement queries. Not an ETSI API.

use std::sync::Arc;

use api_specs::ProblemDetails;
use api_specs::mm1::appd::AppD;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use server_kit::problem::{ApiError, ApiJson, ApiPath, ApiQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::location;
use crate::inventory::{Inventory, InventoryError, PlacementQuery, SiteInfo, SiteOrigin, SiteSpec};
use api_specs::inventory::{SiteCleanup, SiteMep};

use crate::mep_link::{LinkError, MepLink};
use crate::package::{Packages, PkgRef};

/// Base path of the inventory API.
pub const INVENTORY_BASE: &str = "/inventory/v1";

/// State of the inventory routes.
#[derive(Clone)]
pub(super) struct Sites {
    pub(super) inventory: Arc<Inventory>,
    pub(super) packages: Arc<Packages>,
    pub(super) mep_link: Option<Arc<MepLink>>,
}

impl From<InventoryError> for ApiError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::NotFound(id) => ApiError::not_found("site", id),
            InventoryError::Invalid(m) => ApiError::BadRequest(m),
            InventoryError::InUse(m) => ApiError::Conflict(m),
            InventoryError::Store(e) => ApiError::Internal(super::error_chain(&e)),
        }
    }
}

pub(super) fn routes() -> OpenApiRouter<Sites> {
    OpenApiRouter::new()
        .routes(routes!(sites_get))
        .routes(routes!(site_get, site_put, site_delete))
        .routes(routes!(site_mep_get))
        .routes(routes!(site_cleanups_get))
        .routes(routes!(placement_post))
}

/// Every site with its health and free capacity.
#[utoipa::path(get, path = "/sites", tag = "inventory",
    responses((status = 200, body = [SiteInfo])), security(("oauth2" = ["mecplane_inventory"])))]
async fn sites_get(State(s): State<Sites>) -> Result<ApiJson<Vec<SiteInfo>>, ApiError> {
    Ok(ApiJson(s.inventory.list().await?))
}

/// One site.
#[utoipa::path(get, path = "/sites/{siteId}", tag = "inventory", params(("siteId" = String, Path)),
    responses((status = 200, body = SiteInfo), (status = 404, body = ProblemDetails)), security(("oauth2" = ["mecplane_inventory"])))]
async fn site_get(
    State(s): State<Sites>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<SiteInfo>, ApiError> {
    Ok(ApiJson(s.inventory.get(&id).await?))
}

/// Add (201) or replace (200) a site; its VIM is queried at once.
#[utoipa::path(put, path = "/sites/{siteId}", tag = "inventory", params(("siteId" = String, Path)), request_body = SiteSpec,
    responses((status = 200, body = SiteInfo), (status = 201, body = SiteInfo), (status = 400, body = ProblemDetails)),
    security(("oauth2" = ["mecplane_inventory"])))]
async fn site_put(
    State(s): State<Sites>,
    ApiPath(id): ApiPath<String>,
    ApiJson(spec): ApiJson<SiteSpec>,
) -> Result<Response, ApiError> {
    if spec.id != id {
        return Err(ApiError::BadRequest(
            "the body's id differs from the path".into(),
        ));
    }
    let created = s.inventory.put(spec, SiteOrigin::Api).await?;
    let info = s.inventory.get(&id).await?;
    if created {
        Ok((
            StatusCode::CREATED,
            [location(&format!("{INVENTORY_BASE}/sites/{id}"))],
            ApiJson(info),
        )
            .into_response())
    } else {
        Ok(ApiJson(info).into_response())
    }
}

/// Query of a site's deletion.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SiteDeleteQuery {
    /// Delete the site although application instances are placed on it: they become
    /// NOT_INSTANTIATED and their workloads are listed in `site_cleanups` until a site of that
    /// id answers again and its reconciliation removes them.
    #[serde(default)]
    force: bool,
}

/// Remove a site.
#[utoipa::path(delete, path = "/sites/{siteId}", tag = "inventory", params(("siteId" = String, Path), SiteDeleteQuery),
    responses((status = 204), (status = 404, body = ProblemDetails),
        (status = 409, description = "Application instances are placed on the site (without force), or some have an operation in progress", body = ProblemDetails)),
    security(("oauth2" = ["mecplane_inventory"])))]
async fn site_delete(
    State(s): State<Sites>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<SiteDeleteQuery>,
) -> Result<StatusCode, ApiError> {
    s.inventory.delete(&id, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Workloads left on sites deleted by force, waiting for clean-up.
#[utoipa::path(get, path = "/site_cleanups", tag = "inventory",
    responses((status = 200, body = [SiteCleanup])), security(("oauth2" = ["mecplane_inventory"])))]
async fn site_cleanups_get(State(s): State<Sites>) -> Result<ApiJson<Vec<SiteCleanup>>, ApiError> {
    Ok(ApiJson(s.inventory.cleanups().await?))
}

/// The site's MEP as the MEP link sees it: connected or not, and for every application instance
/// the desired configuration's version, what the MEP acknowledged or refused, and the status
/// it last reported (readiness, registered services, rules in effect).
#[utoipa::path(get, path = "/sites/{siteId}/mep", tag = "inventory", params(("siteId" = String, Path)),
    responses((status = 200, body = SiteMep), (status = 404, body = ProblemDetails)), security(("oauth2" = ["mecplane_inventory"])))]
async fn site_mep_get(
    State(s): State<Sites>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<SiteMep>, ApiError> {
    s.inventory.get(&id).await?;
    let Some(link) = &s.mep_link else {
        return Err(ApiError::not_found("MEP link of site", id));
    };
    let mep = link
        .site_mep(&id)
        .await
        .map_err(|e: LinkError| ApiError::Internal(server_kit::problem::error_chain(&e)))?;
    Ok(ApiJson(mep))
}

/// Where an onboarded application would be placed now, and why every other site was not chosen.
#[utoipa::path(post, path = "/placement", tag = "inventory", request_body = PlacementQuery,
    responses((status = 200, description = "the placement decision", body = api_specs::inventory::PlacementDecision), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)),
    security(("oauth2" = ["mecplane_inventory"])))]
async fn placement_post(
    State(s): State<Sites>,
    ApiJson(query): ApiJson<PlacementQuery>,
) -> Result<Response, ApiError> {
    if let Some(location) = &query.location_constraints {
        location.validate().map_err(ApiError::BadRequest)?;
    }
    let (appd, _) = s.packages.appd(PkgRef::AppDId(&query.app_d_id)).await?;
    let appd: AppD = serde_json::from_value(appd)
        .map_err(|e| ApiError::Internal(format!("stored AppD unreadable: {e}")))?;
    let decision = s.inventory.place_appd(&appd, &query).await?;
    Ok(axum::Json(decision).into_response())
}
