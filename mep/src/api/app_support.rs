//! `mec_app_support/v1`: readiness and termination confirmations, traffic and DNS rules,
//! termination subscriptions and platform timing (ETSI GS MEC 011 v3.1.1 clause 7).

use api_specs::ProblemDetails;
use api_specs::common::{LinkType, SubscriptionLinkList, SubscriptionLinkListLinks, TimeStamp};
use api_specs::mp1::app_support::{
    AppInfo, AppReadyConfirmation, AppTerminationConfirmation,
    AppTerminationNotificationSubscription, CurrentTime, DnsRule, TimingCaps, TrafficRule,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use server_kit::auth::Caller;
use server_kit::problem::{ApiError, ApiJson, ApiPath};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, etag, if_match, location};
use crate::platform::{APP_SUPPORT_BASE, APP_TERMINATION};
use crate::timing;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(registrations_post))
        .routes(routes!(
            registration_get,
            registration_put,
            registration_delete
        ))
        .routes(routes!(confirm_ready))
        .routes(routes!(confirm_termination))
        .routes(routes!(subscriptions_get, subscriptions_post))
        .routes(routes!(subscription_get, subscription_delete))
        .routes(routes!(traffic_rules_get))
        .routes(routes!(traffic_rule_get, traffic_rule_put))
        .routes(routes!(dns_rules_get))
        .routes(routes!(dns_rule_get, dns_rule_put))
        .routes(routes!(timing_caps))
        .routes(routes!(current_time))
}

/// Register an application instance at the platform (one MEC management did not instantiate,
/// where the platform allows it); the caller's client decides which instance it may register.
#[utoipa::path(post, path = "/registrations", tag = "appRegistrations", request_body = AppInfo,
    responses((status = 201, body = AppInfo, headers(("Location" = String))), (status = 400, body = ProblemDetails),
        (status = 401, body = ProblemDetails), (status = 403, body = ProblemDetails), (status = 409, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn registrations_post(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiJson(info): ApiJson<AppInfo>,
) -> Result<impl IntoResponse, ApiError> {
    let created = mep
        .registration_create(caller.app_instance_id.as_deref(), info)
        .await?;
    let id = created.app_instance_id.clone().unwrap_or_default();
    let href = format!(
        "{}{APP_SUPPORT_BASE}/registrations/{id}",
        mep.settings().api_root
    );
    Ok((StatusCode::CREATED, [location(&href)], ApiJson(created)))
}

/// The AppInfo of a registered (or provisioned) application instance.
#[utoipa::path(get, path = "/registrations/{appInstanceId}", tag = "appRegistrations",
    params(("appInstanceId" = String, Path)),
    responses((status = 200, body = AppInfo), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn registration_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
) -> Result<ApiJson<AppInfo>, ApiError> {
    caller.authorize_app(&app)?;
    Ok(ApiJson(mep.registration_get(&app)?))
}

/// Update a self-registered application instance's AppInfo.
#[utoipa::path(put, path = "/registrations/{appInstanceId}", tag = "appRegistrations",
    params(("appInstanceId" = String, Path)), request_body = AppInfo,
    responses((status = 204), (status = 400, body = ProblemDetails), (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn registration_put(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(info): ApiJson<AppInfo>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_app(&app)?;
    mep.registration_update(&app, info).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deregister a self-registered application instance (its services, rules and subscriptions
/// go with it).
#[utoipa::path(delete, path = "/registrations/{appInstanceId}", tag = "appRegistrations",
    params(("appInstanceId" = String, Path)),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn registration_delete(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_app(&app)?;
    mep.registration_delete(&app).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The application instance is up and running.
#[utoipa::path(post, path = "/applications/{appInstanceId}/confirm_ready", tag = "appConfirmations",
    params(("appInstanceId" = String, Path)), request_body = AppReadyConfirmation,
    responses((status = 204), (status = 400, body = ProblemDetails), (status = 403, body = ProblemDetails),
        (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn confirm_ready(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(body): ApiJson<AppReadyConfirmation>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_app(&app)?;
    mep.confirm_ready(&app, &body.indication).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The application instance is ready to be stopped or terminated.
#[utoipa::path(post, path = "/applications/{appInstanceId}/confirm_termination", tag = "appConfirmations",
    params(("appInstanceId" = String, Path)), request_body = AppTerminationConfirmation,
    responses((status = 204), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn confirm_termination(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(body): ApiJson<AppTerminationConfirmation>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_app(&app)?;
    mep.confirm_termination(&app, body.operation_action).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Termination subscriptions of an application instance.
#[utoipa::path(get, path = "/applications/{appInstanceId}/subscriptions", tag = "appSubscriptions",
    params(("appInstanceId" = String, Path)),
    responses((status = 200, body = SubscriptionLinkList), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn subscriptions_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
) -> Result<ApiJson<SubscriptionLinkList>, ApiError> {
    caller.authorize_app(&app)?;
    let subscriptions = mep.subscription_links(&app, APP_TERMINATION)?;
    Ok(ApiJson(SubscriptionLinkList {
        links: SubscriptionLinkListLinks {
            self_: LinkType::new(format!(
                "{}{APP_SUPPORT_BASE}/applications/{app}/subscriptions",
                mep.settings().api_root
            )),
            subscriptions,
        },
    }))
}

/// Subscribe to the termination of an application instance.
#[utoipa::path(post, path = "/applications/{appInstanceId}/subscriptions", tag = "appSubscriptions",
    params(("appInstanceId" = String, Path)), request_body = AppTerminationNotificationSubscription,
    responses((status = 201, body = AppTerminationNotificationSubscription, headers(("Location" = String))),
        (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn subscriptions_post(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
    ApiJson(sub): ApiJson<AppTerminationNotificationSubscription>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let created = mep.app_termination_subscribe(&app, sub).await?;
    let href = created
        .links
        .as_ref()
        .map(|l| l.self_.href.clone())
        .unwrap_or_default();
    Ok((StatusCode::CREATED, [location(&href)], ApiJson(created)))
}

/// One termination subscription.
#[utoipa::path(get, path = "/applications/{appInstanceId}/subscriptions/{subscriptionId}", tag = "appSubscriptions",
    params(("appInstanceId" = String, Path), ("subscriptionId" = String, Path)),
    responses((status = 200, body = AppTerminationNotificationSubscription), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn subscription_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<ApiJson<AppTerminationNotificationSubscription>, ApiError> {
    caller.authorize_app(&app)?;
    Ok(ApiJson(mep.app_termination_subscription(&app, &id)?))
}

/// Delete a termination subscription.
#[utoipa::path(delete, path = "/applications/{appInstanceId}/subscriptions/{subscriptionId}", tag = "appSubscriptions",
    params(("appInstanceId" = String, Path), ("subscriptionId" = String, Path)),
    responses((status = 204), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn subscription_delete(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.authorize_app(&app)?;
    mep.subscription_delete(&app, &id, APP_TERMINATION).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Traffic rules of an application instance.
#[utoipa::path(get, path = "/applications/{appInstanceId}/traffic_rules", tag = "trafficRules",
    params(("appInstanceId" = String, Path)),
    responses((status = 200, body = [TrafficRule]), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn traffic_rules_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
) -> Result<ApiJson<Vec<TrafficRule>>, ApiError> {
    caller.authorize_app(&app)?;
    Ok(ApiJson(mep.traffic_rule_list(&app)?))
}

/// One traffic rule.
#[utoipa::path(get, path = "/applications/{appInstanceId}/traffic_rules/{trafficRuleId}", tag = "trafficRules",
    params(("appInstanceId" = String, Path), ("trafficRuleId" = String, Path)),
    responses((status = 200, body = TrafficRule), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn traffic_rule_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let rule = mep.traffic_rule_get(&app, &id)?;
    Ok((etag(&rule), ApiJson(rule.value)))
}

/// Update a traffic rule (typically its state); `If-Match` makes it conditional.
#[utoipa::path(put, path = "/applications/{appInstanceId}/traffic_rules/{trafficRuleId}", tag = "trafficRules",
    params(("appInstanceId" = String, Path), ("trafficRuleId" = String, Path)), request_body = TrafficRule,
    responses((status = 200, body = TrafficRule), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails),
        (status = 412, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn traffic_rule_put(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    ApiPath((app, id)): ApiPath<(String, String)>,
    ApiJson(rule): ApiJson<TrafficRule>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let rule = mep
        .traffic_rule_update(&app, &id, rule, if_match(&headers))
        .await?;
    Ok((etag(&rule), ApiJson(rule.value)))
}

/// DNS rules of an application instance.
#[utoipa::path(get, path = "/applications/{appInstanceId}/dns_rules", tag = "dnsRules",
    params(("appInstanceId" = String, Path)),
    responses((status = 200, body = [DnsRule]), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn dns_rules_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath(app): ApiPath<String>,
) -> Result<ApiJson<Vec<DnsRule>>, ApiError> {
    caller.authorize_app(&app)?;
    Ok(ApiJson(mep.dns_rule_list(&app)?))
}

/// One DNS rule.
#[utoipa::path(get, path = "/applications/{appInstanceId}/dns_rules/{dnsRuleId}", tag = "dnsRules",
    params(("appInstanceId" = String, Path), ("dnsRuleId" = String, Path)),
    responses((status = 200, body = DnsRule), (status = 404, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn dns_rule_get(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let rule = mep.dns_rule_get(&app, &id)?;
    Ok((etag(&rule), ApiJson(rule.value)))
}

/// Update a DNS rule (typically its state); `If-Match` makes it conditional.
#[utoipa::path(put, path = "/applications/{appInstanceId}/dns_rules/{dnsRuleId}", tag = "dnsRules",
    params(("appInstanceId" = String, Path), ("dnsRuleId" = String, Path)), request_body = DnsRule,
    responses((status = 200, body = DnsRule), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails),
        (status = 409, description = "The domain name is answered for another application instance", body = ProblemDetails),
        (status = 412, body = ProblemDetails)),
    security(("oauth2" = ["mec_app_support"])))]
async fn dns_rule_put(
    State(mep): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    ApiPath((app, id)): ApiPath<(String, String)>,
    ApiJson(rule): ApiJson<DnsRule>,
) -> Result<impl IntoResponse, ApiError> {
    caller.authorize_app(&app)?;
    let rule = mep
        .dns_rule_update(&app, &id, rule, if_match(&headers))
        .await?;
    Ok((etag(&rule), ApiJson(rule.value)))
}

/// Timing capabilities of the platform.
#[utoipa::path(get, path = "/timing/timing_caps", tag = "timing",
    responses((status = 200, body = TimingCaps)), security(("oauth2" = ["mec_app_support"])))]
async fn timing_caps(State(mep): State<AppState>) -> ApiJson<TimingCaps> {
    let now = TimeStamp::from_unix_millis(server_kit::unix_millis_now());
    ApiJson(timing::caps(mep.timing(), now))
}

/// The platform time.
#[utoipa::path(get, path = "/timing/current_time", tag = "timing",
    responses((status = 200, body = CurrentTime)), security(("oauth2" = ["mec_app_support"])))]
async fn current_time(State(mep): State<AppState>) -> ApiJson<CurrentTime> {
    ApiJson(timing::current_time(mep.timing()))
}
