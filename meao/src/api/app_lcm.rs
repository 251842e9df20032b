//! `app_lcm/v1`: application instances and LCM operation occurrences.

use std::sync::Arc;

use api_specs::ProblemDetails;
use api_specs::common::LinkType;
use api_specs::mm1::app_lcm::{
    AppInstSubscriptionInfo, AppInstSubscriptionRequest, AppInstanceInfo,
    AppInstanceSubscriptionLink, AppInstanceSubscriptionLinkList,
    AppInstanceSubscriptionLinkListLinks, AppInstanceSubscriptionType, AppLcmOpOcc, CancelMode,
    CreateAppInstanceRequest, InstantiateAppRequest, OperateAppRequest, TerminateAppRequest,
};
use api_specs::mm1::appd::ConfigPlatformForAppRequest;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use server_kit::problem::{ApiError, ApiJson, ApiPath, ApiQuery};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ListQuery, location};
use crate::lcm::{AppCredentialsInfo, Lcm, LcmError, RotateCredentialsRequest};

impl From<LcmError> for ApiError {
    fn from(e: LcmError) -> Self {
        match e {
            LcmError::NotFound { kind, id } => ApiError::NotFound { kind, id },
            LcmError::NotAllowed(m) => ApiError::NotAllowed(m),
            LcmError::Invalid(m) => ApiError::BadRequest(m),
            LcmError::Package(e) => e.into(),
            LcmError::Saga(e) => ApiError::Internal(super::error_chain(&e)),
            LcmError::Store(e) => ApiError::Internal(super::error_chain(&e)),
        }
    }
}

pub(super) fn routes() -> OpenApiRouter<Arc<Lcm>> {
    OpenApiRouter::new()
        .routes(routes!(instances_get, instances_post))
        .routes(routes!(instance_get, instance_delete))
        .routes(routes!(instantiate))
        .routes(routes!(terminate))
        .routes(routes!(operate))
        .routes(routes!(configure_platform_for_app))
        .routes(routes!(rotate_credentials))
        .routes(routes!(credentials_get))
        .routes(routes!(op_occs_get))
        .routes(routes!(op_occ_get))
        .routes(routes!(op_occ_retry))
        .routes(routes!(op_occ_fail))
        .routes(routes!(op_occ_cancel))
        .routes(routes!(subscriptions_get, subscriptions_post))
        .routes(routes!(subscription_get, subscription_delete))
}

/// Subscription list query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SubscriptionQuery {
    /// Only subscriptions of this type.
    subscriptiontype: Option<AppInstanceSubscriptionType>,
}

/// LCM subscriptions.
#[utoipa::path(get, path = "/subscriptions", tag = "app-lcm", params(SubscriptionQuery),
    responses((status = 200, body = AppInstanceSubscriptionLinkList), (status = 400, body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn subscriptions_get(
    State(l): State<Arc<Lcm>>,
    ApiQuery(q): ApiQuery<SubscriptionQuery>,
) -> Result<ApiJson<AppInstanceSubscriptionLinkList>, ApiError> {
    let subscriptions = l
        .subscriptions()
        .await?
        .into_iter()
        .filter(|s| {
            q.subscriptiontype
                .is_none_or(|t| t == s.request.subscription_type)
        })
        .map(|s| AppInstanceSubscriptionLink {
            href: s.links.self_.href,
            subscription_type: s.request.subscription_type,
        })
        .collect();
    Ok(ApiJson(AppInstanceSubscriptionLinkList {
        links: AppInstanceSubscriptionLinkListLinks {
            self_: LinkType::new(format!("{}/subscriptions", l.base_url())),
            subscriptions,
        },
    }))
}

/// Subscribe to LCM notifications (instance state, occurrence state, identifier creation or
/// deletion).
#[utoipa::path(post, path = "/subscriptions", tag = "app-lcm", request_body = AppInstSubscriptionRequest,
    responses((status = 201, body = AppInstSubscriptionInfo, headers(("Location" = String))), (status = 400, body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn subscriptions_post(
    State(l): State<Arc<Lcm>>,
    ApiJson(r): ApiJson<AppInstSubscriptionRequest>,
) -> Result<Response, ApiError> {
    let info = l.subscribe(r).await?;
    let href = info.links.self_.href.clone();
    Ok((StatusCode::CREATED, [location(&href)], ApiJson(info)).into_response())
}

/// One LCM subscription.
#[utoipa::path(get, path = "/subscriptions/{subscriptionId}", tag = "app-lcm", params(("subscriptionId" = String, Path)),
    responses((status = 200, body = AppInstSubscriptionInfo), (status = 404, body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn subscription_get(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppInstSubscriptionInfo>, ApiError> {
    Ok(ApiJson(l.subscription(&id).await?))
}

/// Delete an LCM subscription.
#[utoipa::path(delete, path = "/subscriptions/{subscriptionId}", tag = "app-lcm", params(("subscriptionId" = String, Path)),
    responses((status = 204), (status = 404, body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn subscription_delete(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    l.unsubscribe(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Attributes `filter` may name on instances.
const INSTANCE_ATTRIBUTES: &[&str] = &[
    "id",
    "appInstanceName",
    "appInstanceDescription",
    "appDId",
    "appProvider",
    "appName",
    "appSoftVersion",
    "appDVersion",
    "appPkgId",
    "instantiationState",
    "instantiatedAppState",
];
/// Attributes `filter` may name on occurrences.
const OP_OCC_ATTRIBUTES: &[&str] = &[
    "id",
    "operationState",
    "lcmOperation",
    "startTime",
    "stateEnteredTime",
    "placement",
    "error",
];

/// Application instances (attribute filter and selectors).
#[utoipa::path(get, path = "/app_instances", tag = "app-lcm", params(ListQuery),
    responses((status = 200, body = [AppInstanceInfo]), (status = 400, body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn instances_get(
    State(l): State<Arc<Lcm>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    q.apply(
        l.list().await?,
        INSTANCE_ATTRIBUTES,
        &["instantiatedAppState"],
    )
}

/// Create an application instance identifier (NOT_INSTANTIATED).
#[utoipa::path(post, path = "/app_instances", tag = "app-lcm", request_body = CreateAppInstanceRequest,
    responses((status = 201, body = AppInstanceInfo, headers(("Location" = String))), (status = 400, body = ProblemDetails),
        (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn instances_post(
    State(l): State<Arc<Lcm>>,
    ApiJson(r): ApiJson<CreateAppInstanceRequest>,
) -> Result<Response, ApiError> {
    let info = l.create(r).await?;
    let href = info.links.self_.href.clone();
    Ok((StatusCode::CREATED, [location(&href)], ApiJson(info)).into_response())
}

/// One application instance.
#[utoipa::path(get, path = "/app_instances/{appInstanceId}", tag = "app-lcm", params(("appInstanceId" = String, Path)),
    responses((status = 200, body = AppInstanceInfo), (status = 404, body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn instance_get(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppInstanceInfo>, ApiError> {
    Ok(ApiJson(l.get(&id).await?))
}

/// Delete a NOT_INSTANTIATED instance identifier.
#[utoipa::path(delete, path = "/app_instances/{appInstanceId}", tag = "app-lcm", params(("appInstanceId" = String, Path)),
    responses((status = 204), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn instance_delete(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    l.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 202 with the occurrence's URI, relative as the ETSI examples show.
fn accepted(op_occ: &str) -> Response {
    let href = format!("{}/app_lcm_op_occs/{op_occ}", crate::lcm::APP_LCM_BASE);
    (StatusCode::ACCEPTED, [location(&href)]).into_response()
}

/// Instantiate: placement, workload, readiness (an LCM operation occurrence). Without
/// `selectedMECHostInfo` (a mecplane extension: ETSI requires it) the placement engine
/// chooses among all sites.
#[utoipa::path(post, path = "/app_instances/{appInstanceId}/instantiate", tag = "app-lcm", params(("appInstanceId" = String, Path)),
    request_body = InstantiateAppRequest,
    responses((status = 202, headers(("Location" = String))), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn instantiate(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<InstantiateAppRequest>,
) -> Result<Response, ApiError> {
    let op = l.instantiate(&id, r).await?;
    Ok(accepted(&op))
}

/// Terminate.
#[utoipa::path(post, path = "/app_instances/{appInstanceId}/terminate", tag = "app-lcm", params(("appInstanceId" = String, Path)),
    request_body = TerminateAppRequest,
    responses((status = 202, headers(("Location" = String))), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn terminate(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<TerminateAppRequest>,
) -> Result<Response, ApiError> {
    let op = l.terminate(&id, r).await?;
    Ok(accepted(&op))
}

/// Start or stop.
#[utoipa::path(post, path = "/app_instances/{appInstanceId}/operate", tag = "app-lcm", params(("appInstanceId" = String, Path)),
    request_body = OperateAppRequest,
    responses((status = 202, headers(("Location" = String))), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn operate(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<OperateAppRequest>,
) -> Result<Response, ApiError> {
    let op = l.operate(&id, r).await?;
    Ok(accepted(&op))
}

/// Rotate the instance's Mp1 credential (a mecplane extension): its MEP accepts a new secret,
/// the workload's Secret gets it, and the replaced one keeps working for the grace period.
#[utoipa::path(post, path = "/app_instances/{appInstanceId}/rotate_credentials", tag = "app-lcm",
    params(("appInstanceId" = String, Path)), request_body = RotateCredentialsRequest,
    responses((status = 202, headers(("Location" = String))), (status = 400, body = ProblemDetails),
        (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn rotate_credentials(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<RotateCredentialsRequest>,
) -> Result<Response, ApiError> {
    let op = l.rotate_credentials(&id, r).await?;
    Ok(accepted(&op))
}

/// The instance's Mp1 client at its site's MEP (a mecplane extension): client id and the
/// accepted credentials, never a secret.
#[utoipa::path(get, path = "/app_instances/{appInstanceId}/credentials", tag = "app-lcm",
    params(("appInstanceId" = String, Path)),
    responses((status = 200, body = AppCredentialsInfo), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn credentials_get(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppCredentialsInfo>, ApiError> {
    Ok(ApiJson(l.credentials(&id).await?))
}

/// Configure the instance's MEP with these rules and requirements (replacing its AppD's).
#[utoipa::path(post, path = "/app_instances/{appInstanceId}/configure_platform_for_app", tag = "app-lcm",
    params(("appInstanceId" = String, Path)), request_body = ConfigPlatformForAppRequest,
    responses((status = 202, headers(("Location" = String))), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_lcm"])))]
async fn configure_platform_for_app(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(r): ApiJson<ConfigPlatformForAppRequest>,
) -> Result<Response, ApiError> {
    let op = l.configure_platform(&id, r).await?;
    Ok(accepted(&op))
}

/// LCM operation occurrences (attribute filter and selectors).
#[utoipa::path(get, path = "/app_lcm_op_occs", tag = "app-lcm", params(ListQuery),
    responses((status = 200, body = [AppLcmOpOcc]), (status = 400, body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn op_occs_get(
    State(l): State<Arc<Lcm>>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    q.apply(
        l.op_occs().await?,
        OP_OCC_ATTRIBUTES,
        &["operationParams", "placement"],
    )
}

/// One occurrence, with its placement decision.
#[utoipa::path(get, path = "/app_lcm_op_occs/{appLcmOpOccId}", tag = "app-lcm", params(("appLcmOpOccId" = String, Path)),
    responses((status = 200, body = AppLcmOpOcc), (status = 404, body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn op_occ_get(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppLcmOpOcc>, ApiError> {
    Ok(ApiJson(l.op_occ(&id).await?))
}

/// Retry a FAILED_TEMP occurrence.
#[utoipa::path(post, path = "/app_lcm_op_occs/{appLcmOpOccId}/retry", tag = "app-lcm", params(("appLcmOpOccId" = String, Path)),
    responses((status = 202), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn op_occ_retry(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    l.retry(&id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Cancel a running occurrence: it is rolled back after the step under way and ends
/// FAILED_TEMP. GRACEFUL and FORCEFUL behave alike (steps are never interrupted midway).
#[utoipa::path(post, path = "/app_lcm_op_occs/{appLcmOpOccId}/cancel", tag = "app-lcm", params(("appLcmOpOccId" = String, Path)),
    request_body = CancelMode,
    responses((status = 202), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn op_occ_cancel(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
    ApiJson(_mode): ApiJson<CancelMode>,
) -> Result<StatusCode, ApiError> {
    l.cancel(&id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Give up on a FAILED_TEMP occurrence (FAILED).
#[utoipa::path(post, path = "/app_lcm_op_occs/{appLcmOpOccId}/fail", tag = "app-lcm", params(("appLcmOpOccId" = String, Path)),
    responses((status = 200, body = AppLcmOpOcc), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)), security(("oauth2" = ["app_lcm"])))]
async fn op_occ_fail(
    State(l): State<Arc<Lcm>>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppLcmOpOcc>, ApiError> {
    Ok(ApiJson(l.fail(&id).await?))
}
