//! `app_pkgm/v1` packages: `/app_packages/{appPkgId}/...` (by package id) and
//! `/onboarded_app_packages/{appDId}/...` (by AppD id) over one package manager.

use api_specs::ProblemDetails;
use api_specs::mm1::app_pkgm::{AppPkgInfo, AppPkgInfoModifications, CreateAppPkg};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use server_kit::accept::negotiate;
use server_kit::problem::{ApiError, ApiJson, ApiPath, ApiQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, ListQuery, location};
use crate::package::PkgRef;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(content_get, content_put))
        .routes(routes!(onboarded_content_get, onboarded_content_put))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .routes(routes!(packages_get, packages_post))
        .routes(routes!(onboarded_get, onboarded_post))
        .routes(routes!(package_get, package_patch, package_delete))
        .routes(routes!(
            onboarded_package_get,
            onboarded_package_patch,
            onboarded_package_delete
        ))
        .routes(routes!(appd_get))
        .routes(routes!(onboarded_appd_get))
        .merge(uploads)
}

/// Attributes `filter` may name.
const FILTER_ATTRIBUTES: &[&str] = &[
    "id",
    "appDId",
    "appProvider",
    "appName",
    "appSoftwareVersion",
    "appDVersion",
    "checksum",
    "signingCertificate",
    "softwareImages",
    "additionalArtifacts",
    "onboardingState",
    "operationalState",
    "usageState",
    "mecInfo",
    "userDefinedData",
];
/// Attributes `exclude_default` drops (ETSI GS MEC 010-2 clause 7.3.1.3.2).
const EXCLUDED_BY_DEFAULT: &[&str] = &[
    "softwareImages",
    "additionalArtifacts",
    "userDefinedData",
    "checksum",
];

async fn list(state: &AppState, q: ListQuery) -> Result<Response, ApiError> {
    q.apply(state.list().await?, FILTER_ATTRIBUTES, EXCLUDED_BY_DEFAULT)
}

async fn create(state: &AppState, request: CreateAppPkg) -> Result<Response, ApiError> {
    let info = state.create(request).await?;
    let href = info.links.self_.href.clone();
    Ok((StatusCode::CREATED, [location(&href)], ApiJson(info)).into_response())
}

/// Packages.
#[utoipa::path(get, path = "/app_packages", tag = "app-pkgm", params(ListQuery),
    responses((status = 200, body = [AppPkgInfo]), (status = 400, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn packages_get(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    list(&s, q).await
}

/// Create a package resource; with `appPkgPath` its content is fetched and onboarded.
#[utoipa::path(post, path = "/app_packages", tag = "app-pkgm", request_body = CreateAppPkg,
    responses((status = 201, body = AppPkgInfo, headers(("Location" = String))), (status = 400, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn packages_post(
    State(s): State<AppState>,
    ApiJson(r): ApiJson<CreateAppPkg>,
) -> Result<Response, ApiError> {
    create(&s, r).await
}

/// Onboarded packages.
#[utoipa::path(get, path = "/onboarded_app_packages", tag = "app-pkgm", params(ListQuery),
    responses((status = 200, body = [AppPkgInfo]), (status = 400, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn onboarded_get(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    list(&s, q).await
}

/// Create a package resource (same as `POST /app_packages`).
#[utoipa::path(post, path = "/onboarded_app_packages", tag = "app-pkgm", request_body = CreateAppPkg,
    responses((status = 201, body = AppPkgInfo, headers(("Location" = String))), (status = 400, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn onboarded_post(
    State(s): State<AppState>,
    ApiJson(r): ApiJson<CreateAppPkg>,
) -> Result<Response, ApiError> {
    create(&s, r).await
}

async fn patch(
    state: &AppState,
    r: PkgRef<'_>,
    m: AppPkgInfoModifications,
) -> Result<ApiJson<AppPkgInfoModifications>, ApiError> {
    state.set_operational_state(r, m.operational_state).await?;
    Ok(ApiJson(m))
}

/// One package.
#[utoipa::path(get, path = "/app_packages/{appPkgId}", tag = "app-pkgm", params(("appPkgId" = String, Path)),
    responses((status = 200, body = AppPkgInfo), (status = 404, body = ProblemDetails)), security(("oauth2" = ["app_pkgm"])))]
async fn package_get(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppPkgInfo>, ApiError> {
    Ok(ApiJson(s.get(PkgRef::Id(&id)).await?))
}

/// Enable or disable a package.
#[utoipa::path(patch, path = "/app_packages/{appPkgId}", tag = "app-pkgm", params(("appPkgId" = String, Path)),
    request_body = AppPkgInfoModifications,
    responses((status = 200, body = AppPkgInfoModifications), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn package_patch(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(m): ApiJson<AppPkgInfoModifications>,
) -> Result<ApiJson<AppPkgInfoModifications>, ApiError> {
    patch(&s, PkgRef::Id(&id), m).await
}

/// Delete a DISABLED, NOT_IN_USE package.
#[utoipa::path(delete, path = "/app_packages/{appPkgId}", tag = "app-pkgm", params(("appPkgId" = String, Path)),
    responses((status = 204), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn package_delete(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    s.delete(PkgRef::Id(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One onboarded package by AppD id.
#[utoipa::path(get, path = "/onboarded_app_packages/{appDId}", tag = "app-pkgm", params(("appDId" = String, Path)),
    responses((status = 200, body = AppPkgInfo), (status = 404, body = ProblemDetails)), security(("oauth2" = ["app_pkgm"])))]
async fn onboarded_package_get(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AppPkgInfo>, ApiError> {
    Ok(ApiJson(s.get(PkgRef::AppDId(&id)).await?))
}

/// Enable or disable an onboarded package by AppD id.
#[utoipa::path(patch, path = "/onboarded_app_packages/{appDId}", tag = "app-pkgm", params(("appDId" = String, Path)),
    request_body = AppPkgInfoModifications,
    responses((status = 200, body = AppPkgInfoModifications), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn onboarded_package_patch(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(m): ApiJson<AppPkgInfoModifications>,
) -> Result<ApiJson<AppPkgInfoModifications>, ApiError> {
    patch(&s, PkgRef::AppDId(&id), m).await
}

/// Delete an onboarded package by AppD id.
#[utoipa::path(delete, path = "/onboarded_app_packages/{appDId}", tag = "app-pkgm", params(("appDId" = String, Path)),
    responses((status = 204), (status = 404, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn onboarded_package_delete(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    s.delete(PkgRef::AppDId(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The AppD as JSON (`Accept: application/json`, the default) or as written (`text/plain`).
async fn appd(state: &AppState, r: PkgRef<'_>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let representation = negotiate(headers, &["application/json", "text/plain"])?;
    let (json, source) = state.appd(r).await?;
    if representation == "application/json" {
        Ok(axum::Json(json).into_response())
    } else {
        Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            source,
        )
            .into_response())
    }
}

/// The AppD of a package.
#[utoipa::path(get, path = "/app_packages/{appPkgId}/appd", tag = "app-pkgm", params(("appPkgId" = String, Path)),
    responses((status = 200, description = "the AppD as JSON, or as written (YAML) for `Accept: text/plain`",
            content((api_specs::mm1::appd::AppD = "application/json"), (String = "text/plain"))),
        (status = 404, body = ProblemDetails),
        (status = 406, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn appd_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    appd(&s, PkgRef::Id(&id), &headers).await
}

/// The AppD of an onboarded package by AppD id.
#[utoipa::path(get, path = "/onboarded_app_packages/{appDId}/appd", tag = "app-pkgm", params(("appDId" = String, Path)),
    responses((status = 200, description = "the AppD as JSON, or as written (YAML) for `Accept: text/plain`",
            content((api_specs::mm1::appd::AppD = "application/json"), (String = "text/plain"))),
        (status = 404, body = ProblemDetails),
        (status = 406, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn onboarded_appd_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    appd(&s, PkgRef::AppDId(&id), &headers).await
}

/// Parses a single `bytes=a-b` range against `len`.
fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (len.checked_sub(n.min(len))?, len.checked_sub(1)?)
        }
        (s, "") => (s.parse().ok()?, len.checked_sub(1)?),
        (s, e) => (
            s.parse().ok()?,
            e.parse::<u64>().ok()?.min(len.saturating_sub(1)),
        ),
    };
    (start <= end && end < len).then_some((start, end))
}

async fn content(
    state: &AppState,
    r: PkgRef<'_>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    negotiate(headers, &["application/zip"])?;
    let blob = state.content(r).await?;
    let blobs = state.blobs();
    let len = blobs
        .size(&blob)
        .await
        .map_err(|e| ApiError::Internal(format!("package content {blob}: {e}")))?;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(r) => match parse_range(r, len) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => {
                let mut resp =
                    ApiError::RangeNotSatisfiable(format!("cannot serve {r} of {len} bytes"))
                        .into_response();
                if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{len}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let stream = blobs
        .stream(&blob, start..start + count)
        .await
        .map_err(|e| ApiError::Internal(format!("package content {blob}: {e}")))?;
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/zip"),
    );
    h.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&count.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = header::HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// Uploads the package: a raw zip body, or the `file` part of a multipart/form-data body.
async fn upload(state: &AppState, r: PkgRef<'_>, request: Request) -> Result<StatusCode, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?
        {
            if field.name() == Some("file") || field.file_name().is_some() {
                state
                    .upload(r, field.map(|c| c.map_err(|e| e.body_text())))
                    .await?;
                return Ok(StatusCode::ACCEPTED);
            }
        }
        return Err(ApiError::BadRequest(
            "the multipart body has no file part".into(),
        ));
    }
    if !matches!(
        content_type.split(';').next().map(str::trim),
        Some("application/zip" | "application/octet-stream")
    ) {
        return Err(ApiError::UnsupportedMediaType(
            "send the package as application/zip, application/octet-stream or multipart/form-data"
                .into(),
        ));
    }
    state
        .upload(r, request.into_body().into_data_stream())
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The package content (`Range` supported).
#[utoipa::path(get, path = "/app_packages/{appPkgId}/package_content", tag = "app-pkgm", params(("appPkgId" = String, Path)),
    responses((status = 200, description = "the package", content_type = "application/zip"),
        (status = 206, description = "part of the package", content_type = "application/zip"),
        (status = 404, body = ProblemDetails), (status = 406, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails),
        (status = 416, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn content_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    content(&s, PkgRef::Id(&id), &headers).await
}

/// Upload the package content; it is validated and onboarded before the answer.
#[utoipa::path(put, path = "/app_packages/{appPkgId}/package_content", tag = "app-pkgm", params(("appPkgId" = String, Path)),
    request_body(content_type = "application/zip", description = "the package (or multipart/form-data with a file part)"),
    responses((status = 202, description = "onboarded"), (status = 400, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails),
        (status = 413, body = ProblemDetails), (status = 415, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn content_put(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    upload(&s, PkgRef::Id(&id), request).await
}

/// The package content by AppD id.
#[utoipa::path(get, path = "/onboarded_app_packages/{appDId}/package_content", tag = "app-pkgm", params(("appDId" = String, Path)),
    responses((status = 200, description = "the package", content_type = "application/zip"),
        (status = 206, description = "part of the package", content_type = "application/zip"),
        (status = 404, body = ProblemDetails), (status = 406, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails),
        (status = 416, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn onboarded_content_get(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    content(&s, PkgRef::AppDId(&id), &headers).await
}

/// Upload the package content, addressing the package by id.
#[utoipa::path(put, path = "/onboarded_app_packages/{appDId}/package_content", tag = "app-pkgm", params(("appDId" = String, Path)),
    request_body(content_type = "application/zip", description = "the package (or multipart/form-data with a file part)"),
    responses((status = 202, description = "onboarded"), (status = 400, body = ProblemDetails), (status = 403, description = "not allowed in the current state (type urn:mecplane:problem:not-allowed-in-current-state), or the token lacks the scope", body = ProblemDetails),
        (status = 413, body = ProblemDetails), (status = 415, body = ProblemDetails)),
    security(("oauth2" = ["app_pkgm"])))]
async fn onboarded_content_put(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    upload(&s, PkgRef::AppDId(&id), request).await
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
