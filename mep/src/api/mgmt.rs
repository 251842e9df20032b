//! `mep_mgmt/v1`: how MEC management (the MEAO, or an operator) provisions application
//! instances at this platform: their AppInfo, traffic rules and DNS rules, and their stop or
//! termination with a graceful period. Not an ETSI API; Mm5 is left open by ETSI.

use api_specs::ProblemDetails;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use server_kit::problem::{ApiError, ApiJson, ApiPath, ApiQuery};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, MGMT_BASE, location};
use crate::platform::{AppInstanceConfig, AppInstanceRecord, Progress};
use api_specs::mp1::app_support::OperationActionType;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(app_instances_get))
        .routes(routes!(
            app_instance_get,
            app_instance_put,
            app_instance_delete
        ))
        .routes(routes!(app_instance_stop))
}

/// How long the application has to confirm a stop or termination.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Graceful {
    /// Seconds to wait for `confirm_termination`; 0 or absent acts at once.
    #[param(value_type = Option<u64>, maximum = 4294967295.0)]
    graceful_timeout: Option<u32>,
}

/// Every application instance provisioned here.
#[utoipa::path(get, path = "/app_instances", tag = "provisioning",
    responses((status = 200, body = [AppInstanceRecord])), security(("oauth2" = ["mep_mgmt"])))]
async fn app_instances_get(State(mep): State<AppState>) -> ApiJson<Vec<AppInstanceRecord>> {
    ApiJson(mep.app_instance_list())
}

/// One application instance.
#[utoipa::path(get, path = "/app_instances/{appInstanceId}", tag = "provisioning",
    params(("appInstanceId" = String, Path)),
    responses((status = 200, body = AppInstanceRecord), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mep_mgmt"])))]
async fn app_instance_get(
    State(mep): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppInstanceRecord>, ApiError> {
    Ok(ApiJson(mep.app_instance_get(&id)?))
}

/// Provision (201) or reconfigure (200) an application instance.
#[utoipa::path(put, path = "/app_instances/{appInstanceId}", tag = "provisioning",
    params(("appInstanceId" = String, Path)), request_body = AppInstanceConfig,
    responses((status = 200, body = AppInstanceRecord), (status = 201, body = AppInstanceRecord),
        (status = 400, body = ProblemDetails), (status = 409, body = ProblemDetails)),
    security(("oauth2" = ["mep_mgmt"])))]
async fn app_instance_put(
    State(mep): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(config): ApiJson<AppInstanceConfig>,
) -> Result<Response, ApiError> {
    let (record, created) = mep.app_instance_put(&id, config).await?;
    if created {
        let href = format!("{}{MGMT_BASE}/app_instances/{id}", mep.settings().api_root);
        Ok((StatusCode::CREATED, [location(&href)], ApiJson(record)).into_response())
    } else {
        Ok(ApiJson(record).into_response())
    }
}

fn progress_status(progress: Progress) -> StatusCode {
    match progress {
        Progress::Done => StatusCode::NO_CONTENT,
        Progress::Pending => StatusCode::ACCEPTED,
    }
}

/// Terminate an application instance: 204 when done, 202 while its termination subscribers
/// have the graceful period to confirm.
#[utoipa::path(delete, path = "/app_instances/{appInstanceId}", tag = "provisioning",
    params(("appInstanceId" = String, Path), Graceful),
    responses((status = 202), (status = 204), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)),
    security(("oauth2" = ["mep_mgmt"])))]
async fn app_instance_delete(
    State(mep): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(g): ApiQuery<Graceful>,
) -> Result<StatusCode, ApiError> {
    let progress = mep
        .app_instance_begin(
            &id,
            OperationActionType::Terminating,
            g.graceful_timeout.unwrap_or(0),
        )
        .await?;
    Ok(progress_status(progress))
}

/// Stop an application instance (it must confirm readiness again afterwards).
#[utoipa::path(post, path = "/app_instances/{appInstanceId}/stop", tag = "provisioning",
    params(("appInstanceId" = String, Path), Graceful),
    responses((status = 202), (status = 204), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)),
    security(("oauth2" = ["mep_mgmt"])))]
async fn app_instance_stop(
    State(mep): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(g): ApiQuery<Graceful>,
) -> Result<StatusCode, ApiError> {
    let progress = mep
        .app_instance_begin(
            &id,
            OperationActionType::Stopping,
            g.graceful_timeout.unwrap_or(0),
        )
        .await?;
    Ok(progress_status(progress))
}
