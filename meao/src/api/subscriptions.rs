//! `app_pkgm/v1/subscriptions`: package subscriptions.

use api_specs::ProblemDetails;
use api_specs::common::LinkType;
use api_specs::mm1::app_pkgm::{
    AppPkgSubscription, AppPkgSubscriptionInfo, AppPkgSubscriptionLink, AppPkgSubscriptionLinkList,
    AppPkgSubscriptionLinkListLinks,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use server_kit::problem::{ApiError, ApiJson, ApiPath};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, location};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subscriptions_get, subscriptions_post))
        .routes(routes!(subscription_get, subscription_delete))
}

/// The package subscriptions.
#[utoipa::path(get, path = "/subscriptions", tag = "app-pkgm",
    responses((status = 200, body = AppPkgSubscriptionLinkList)), security(("oauth2" = ["app_pkgm"])))]
async fn subscriptions_get(
    State(s): State<AppState>,
) -> Result<ApiJson<AppPkgSubscriptionLinkList>, ApiError> {
    let subscriptions = s
        .subscriptions()
        .await?
        .into_iter()
        .map(|i| AppPkgSubscriptionLink {
            href: i.links.self_.href,
            subscription_type: i.subscription_type,
        })
        .collect();
    let href = format!("{}/subscriptions", s.base_url());
    Ok(ApiJson(AppPkgSubscriptionLinkList {
        links: AppPkgSubscriptionLinkListLinks {
            self_: LinkType::new(href),
            subscriptions,
        },
    }))
}

/// Subscribe to package notifications.
#[utoipa::path(post, path = "/subscriptions", tag = "app-pkgm", request_body = AppPkgSubscription,
    responses((status = 201, body = AppPkgSubscriptionInfo, headers(("Location" = String))), (status = 400, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn subscriptions_post(
    State(s): State<AppState>,
    ApiJson(r): ApiJson<AppPkgSubscription>,
) -> Result<impl IntoResponse, ApiError> {
    let info = s.subscribe(r).await?;
    let href = info.links.self_.href.clone();
    Ok((StatusCode::CREATED, [location(&href)], ApiJson(info)))
}

/// One package subscription.
#[utoipa::path(get, path = "/subscriptions/{subscriptionId}", tag = "app-pkgm", params(("subscriptionId" = String, Path)),
    responses((status = 200, body = AppPkgSubscriptionInfo), (status = 404, body = ProblemDetails)), security(("oauth2" = ["app_pkgm"])))]
async fn subscription_get(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppPkgSubscriptionInfo>, ApiError> {
    Ok(ApiJson(s.subscription(&id).await?))
}

/// Delete a package subscription.
#[utoipa::path(delete, path = "/subscriptions/{subscriptionId}", tag = "app-pkgm", params(("subscriptionId" = String, Path)),
    responses((status = 204), (status = 404, body = ProblemDetails)), security(("oauth2" = ["app_pkgm"])))]
async fn subscription_delete(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    s.unsubscribe(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
