//! `mec_service_mgmt/v1`: service registry and discovery, transports, availability
//! subscriptions and service liveness (ETSI GS MEC 011 v3.1.1 clause 8).

use api_specs::ProblemDetails;
use api_specs::common::{LinkType, SubscriptionLinkList, SubscriptionLinkListLinks, TransportInfo};
use api_specs::mp1::service_mgmt::{
    LocalityType, SerAvailabilityNotificationSubscription, ServiceInfo, ServiceLivenessInfo,
    ServiceLivenessUpdate,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use server_kit::auth::Caller;
use server_kit::problem::{ApiError, ApiJson, ApiPath, ApiQuery};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, etag, if_match, location};
use crate::platform::{SER_AVAILABILITY, SERVICE_MGMT_BASE, ServiceQuery};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(services_get))
        .routes(routes!(service_get))
        .routes(routes!(transports_get))
        .routes(routes!(app_services_get, app_services_post))
        .routes(routes!(
            app_service_get,
            app_service_put,
            app_service_delete
        ))
        .routes(routes!(liveness_get, liveness_patch))
        .routes(routes!(subscriptions_get, subscriptions_post))
        .routes(routes!(subscription_get, subscription_delete))
}

/// Longest accepted query string; longer gets 414 as ETSI specifies.
const MAX_QUERY_LEN: usize = 4096;

/// Discovery filters. `ser_instance_id`, `ser_name` and `ser_category_id` are mutually
/// exclusive; lists may repeat the parameter or separate values with commas.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the query; parse_query reads repeated keys itself"
)]
struct ServiceFilter {
    /// Service instance identifiers.
    ser_instance_id: Option<Vec<String>>,
    /// Service names.
    ser_name: Option<Vec<String>>,
    /// A service category identifier.
    ser_category_id: Option<String>,
    /// A scope of locality.
    #[param(inline)]
    scope_of_locality: Option<LocalityType>,
    /// Only services consumable locally only (or not).
    consumed_local_only: Option<bool>,
    /// Only local (or remote) services.
    is_local: Option<bool>,
}

/// Parses the discovery query; unknown parameters are errors (ETSI tests SAQ_001_BR).
fn parse_query(pairs: Vec<(String, String)>) -> Result<ServiceQuery, ApiError> {
    ServiceQuery::from_pairs(pairs).map_err(ApiError::BadRequest)
}

fn check_query_len(uri: &axum::http::Uri) -> Result<(), ApiError> {
    if uri.query().is_some_and(|q| q.len() > MAX_QUERY_LEN) {
        return Err(ApiError::UriTooLong);
    }
    Ok(())
}

/// Discover the services available on this platform.
#[utoipa::path(get, path = "/services", tag = "services", params(ServiceFilter),
    responses((status = 200, body = [ServiceInfo]), (status = 400, body = ProblemDetails),
        (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails), (status = 414, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn services_get(
    State(mep): State<AppState>,
    uri: axum::http::Uri,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_query_len(&uri)?;
    let query = parse_query(pairs)?;
    Ok(json_array(mep.service_list_json(None, &query)))
}

/// A pre-serialized JSON body.
fn json_array(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// One service available on this platform.
#[utoipa::path(get, path = "/services/{serviceId}", tag = "services",
    params(("serviceId" = String, Path, description = "Service instance identifier")),
    responses((status = 200, body = ServiceInfo), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn service_get(
    State(mep): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let service = mep.service_get(None, &id)?;
    Ok((etag(&service), ApiJson(service.value)))
}

/// Transports the platform provides for services.
#[utoipa::path(get, path = "/transports", tag = "transports",
    responses((status = 200, body = [TransportInfo])), security(("oauth2" = ["mec_service_mgmt"])))]
async fn transports_get(State(mep): State<AppState>) -> ApiJson<Vec<TransportInfo>> {
    ApiJson(mep.settings().transports.clone())
}

/// Services produced by an application instance.
#[utoipa::path(get, path = "/applications/{appInstanceId}/services", tag = "services",
    params(("appInstanceId" = String, Path, description = "Application instance identifier"), ServiceFilter),
    responses((status = 200, body = [ServiceInfo]), (status = 400, body = ProblemDetails),
        (status = 403, body = ProblemDetails), (status = 414, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn app_services_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    uri: axum::http::Uri,
    ApiPath(app): ApiPath<String>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    caller.authorize_app(&app)?;
    check_query_len(&uri)?;
    let query = parse_query(pairs)?;
    mep.app_instance_get(&app)?;
    Ok(json_array(mep.service_list_json(Some(&app), &query)))
}

/// Register a service produced by an application instance.
#[utoipa::path(post, path = "/applications/{appInstanceId}/services", tag = "services",
    params(("appInstanceId" = String, Path, description = "Application instance identifier")),
    request_body = ServiceInfo,
    responses((status = 201, body = ServiceInfo, headers(("Location" = String))), (status = 400, body = ProblemDetails),
        (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn app_services_post(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(info): ApiJson<ServiceInfo>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let created = mep.service_create(&app, info).await?;
    let href = created
        .value
        .links
        .as_ref()
        .map(|l| l.self_.href.clone())
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        [location(&href)],
        etag(&created),
        ApiJson(created.value),
    ))
}

/// One service produced by an application instance.
#[utoipa::path(get, path = "/applications/{appInstanceId}/services/{serviceId}", tag = "services",
    params(("appInstanceId" = String, Path), ("serviceId" = String, Path)),
    responses((status = 200, body = ServiceInfo), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn app_service_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let service = mep.service_get(Some(&app), &id)?;
    Ok((etag(&service), ApiJson(service.value)))
}

/// Update a service; `If-Match` makes it conditional.
#[utoipa::path(put, path = "/applications/{appInstanceId}/services/{serviceId}", tag = "services",
    params(("appInstanceId" = String, Path), ("serviceId" = String, Path)),
    request_body = ServiceInfo,
    responses((status = 200, body = ServiceInfo), (status = 400, body = ProblemDetails), (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails), (status = 412, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn app_service_put(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    ApiPath((app, id)): ApiPath<(String, String)>,
    ApiJson(info): ApiJson<ServiceInfo>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let updated = mep
        .service_update(&app, &id, info, if_match(&headers))
        .await?;
    Ok((etag(&updated), ApiJson(updated.value)))
}

/// Deregister a service.
#[utoipa::path(delete, path = "/applications/{appInstanceId}/services/{serviceId}", tag = "services",
    params(("appInstanceId" = String, Path), ("serviceId" = String, Path)),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn app_service_delete(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_app(&app)?;
    mep.service_delete(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Liveness of a service (the URI the platform gives in `_links.liveness`).
#[utoipa::path(get, path = "/applications/{appInstanceId}/services/{serviceId}/liveness", tag = "services",
    params(("appInstanceId" = String, Path), ("serviceId" = String, Path)),
    responses((status = 200, body = ServiceLivenessInfo), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn liveness_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<ApiJson<ServiceLivenessInfo>, ApiError> {
    caller.authorize_app(&app)?;
    Ok(ApiJson(mep.liveness_get(&app, &id)?))
}

/// A heartbeat of a service.
#[utoipa::path(patch, path = "/applications/{appInstanceId}/services/{serviceId}/liveness", tag = "services",
    params(("appInstanceId" = String, Path), ("serviceId" = String, Path)),
    request_body = ServiceLivenessUpdate,
    responses((status = 204), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn liveness_patch(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
    ApiJson(update): ApiJson<ServiceLivenessUpdate>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_app(&app)?;
    mep.liveness_heartbeat(&app, &id, update.state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Service availability subscriptions of an application instance.
#[utoipa::path(get, path = "/applications/{appInstanceId}/subscriptions", tag = "appSubscriptions",
    params(("appInstanceId" = String, Path)),
    responses((status = 200, body = SubscriptionLinkList), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn subscriptions_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
) -> Result<ApiJson<SubscriptionLinkList>, ApiError> {
    caller.authorize_app(&app)?;
    let subscriptions = mep.subscription_links(&app, SER_AVAILABILITY)?;
    Ok(ApiJson(SubscriptionLinkList {
        links: SubscriptionLinkListLinks {
            self_: LinkType::new(format!(
                "{}{SERVICE_MGMT_BASE}/applications/{app}/subscriptions",
                mep.settings().api_root
            )),
            subscriptions,
        },
    }))
}

/// Subscribe to service availability.
#[utoipa::path(post, path = "/applications/{appInstanceId}/subscriptions", tag = "appSubscriptions",
    params(("appInstanceId" = String, Path)),
    request_body = SerAvailabilityNotificationSubscription,
    responses((status = 201, body = SerAvailabilityNotificationSubscription, headers(("Location" = String))),
        (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn subscriptions_post(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(sub): ApiJson<SerAvailabilityNotificationSubscription>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let created = mep.ser_availability_subscribe(&app, sub).await?;
    let href = created
        .links
        .as_ref()
        .map(|l| l.self_.href.clone())
        .unwrap_or_default();
    Ok((StatusCode::CREATED, [location(&href)], ApiJson(created)))
}

/// One service availability subscription.
#[utoipa::path(get, path = "/applications/{appInstanceId}/subscriptions/{subscriptionId}", tag = "appSubscriptions",
    params(("appInstanceId" = String, Path), ("subscriptionId" = String, Path)),
    responses((status = 200, body = SerAvailabilityNotificationSubscription), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn subscription_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<ApiJson<SerAvailabilityNotificationSubscription>, ApiError> {
    caller.authorize_app(&app)?;
    Ok(ApiJson(mep.ser_availability_subscription(&app, &id)?))
}

/// Delete a service availability subscription.
#[utoipa::path(delete, path = "/applications/{appInstanceId}/subscriptions/{subscriptionId}", tag = "appSubscriptions",
    params(("appInstanceId" = String, Path), ("subscriptionId" = String, Path)),
    responses((status = 204), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_service_mgmt"])))]
async fn subscription_delete(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_app(&app)?;
    mep.subscription_delete(&app, &id, SER_AVAILABILITY).await?;
    Ok(StatusCode::NO_CONTENT)
}
