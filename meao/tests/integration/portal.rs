//! The operator portal's sign-in and sessions at the HTTP edge: cookies, CSRF, roles at the
//! endpoints, throttling, security headers. The pages themselves are tested in a browser against
//! the demo's MEAO and MEP (`tests/tests/portal.rs`).

use std::path::Path;

use meao::config::MeaoConfig;
use meao::portal::session::Role;
use meao::portal::{PortalUser, hash_password};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use super::common::{Ctx, example, test_config};

const USERS: [(&str, Role); 3] = [
    ("admin", Role::Admin),
    ("operator", Role::Operator),
    ("viewer", Role::Viewer),
];

fn password(user: &str) -> String {
    format!("{user}-test-password")
}

fn portal_config(dir: &Path) -> MeaoConfig {
    // sessions live in the process: the SQLite variant is enough
    let url = format!("sqlite://{}/portal.db?mode=rwc", dir.display());
    let mut config = test_config(url, dir);
    config.portal.users = USERS
        .iter()
        .map(|(name, role)| PortalUser {
            name: (*name).into(),
            role: *role,
            password_hash: hash_password(&password(name)).unwrap(),
        })
        .collect();
    config.portal.max_failures_per_user = 3;
    let site = |id: &str, latitude: f64, longitude: f64, arch: &str| {
        serde_json::from_value(json!({
            "id": id, "location": {"latitude": latitude, "longitude": longitude}, "zone": id,
            "services": ["RNIS"], "vim": {"kind": "simulated", "cpuMillis": 16000,
            "memoryMib": 32768, "architectures": [arch], "startupMs": 300}
        }))
        .unwrap()
    };
    config.sites = vec![
        site("paris-1", 48.88, 2.36, "x86_64"),
        site("lyon-1", 45.76, 4.86, "x86_64"),
        site("marseille-1", 43.30, 5.37, "aarch64"),
    ];
    config.workload_ready_timeout_secs = 10;
    config
}

async fn start() -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let config = portal_config(dir.path());
    Ctx::start_with(config, dir).await
}

/// Signs in; the session cookie and the session as answered.
async fn sign_in(ctx: &Ctx, user: &str, pw: &str) -> (StatusCode, Option<String>, Value) {
    let r = ctx
        .send(
            ctx.http
                .post(format!("{}/portal/session", ctx.base))
                .json(&json!({"user": user, "password": pw})),
        )
        .await;
    let status = r.status();
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cookie, r.json().await.unwrap_or(Value::Null))
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_session_cookie_and_sign_out_ends_it() {
    let ctx = start().await;
    let (status, cookie, session) = sign_in(&ctx, "operator", &password("operator")).await;
    assert_eq!(status, 200, "{session}");
    let cookie = cookie.unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert_eq!(session["role"], "operator");
    assert_eq!(session["mayOperate"], true);
    assert_eq!(session["mayAdminister"], false);
    let csrf = session["csrfToken"].as_str().unwrap().to_owned();
    let pair = cookie_pair(&cookie);
    let packages = format!("{}/app_pkgm/v1/app_packages", ctx.base);

    // the session reads the APIs and, with its CSRF token, changes them
    let call = |method: Method, url: &str, csrf: Option<&str>| {
        let mut r = ctx.http.request(method, url).header(header::COOKIE, &pair);
        if let Some(csrf) = csrf {
            r = r.header("x-csrf-token", csrf);
        }
        async move {
            r.json(&json!({"appPkgName": "p", "appPkgVersion": "1"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(call(Method::GET, &packages, None).await, 200);
    assert_eq!(
        call(Method::POST, &packages, None).await,
        403,
        "without the CSRF header"
    );
    assert_eq!(
        call(Method::POST, &packages, Some("forged")).await,
        403,
        "another token"
    );
    assert_eq!(call(Method::POST, &packages, Some(&csrf)).await, 201);

    // sign-out needs the CSRF token too, then the cookie is worthless
    let session_url = format!("{}/portal/session", ctx.base);
    assert_eq!(call(Method::DELETE, &session_url, None).await, 403);
    let r = ctx
        .send(
            ctx.http
                .delete(&session_url)
                .header(header::COOKIE, &pair)
                .header("x-csrf-token", &csrf),
        )
        .await;
    assert_eq!(r.status(), 204);
    let cleared = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    for url in [&packages, &session_url] {
        let r = ctx
            .send(ctx.http.get(url).header(header::COOKIE, &pair))
            .await;
        assert_eq!(r.status(), 401, "{url} after sign-out");
    }
}

#[tokio::test]
async fn a_viewer_changes_nothing_an_operator_not_the_inventory() {
    let ctx = start().await;
    let (id, _) = ctx.onboard("va", example("video-analytics")).await;
    ctx.wait_state(&id, "ONBOARDED").await;
    let mut sessions = Vec::new();
    for user in ["viewer", "operator", "admin"] {
        let (status, cookie, session) = sign_in(&ctx, user, &password(user)).await;
        assert_eq!(status, 200);
        sessions.push((
            user,
            cookie_pair(&cookie.unwrap()),
            session["csrfToken"].as_str().unwrap().to_owned(),
        ));
    }
    let site = json!({"id": "nice-1", "location": {"latitude": 43.7, "longitude": 7.27}, "zone": "z",
        "vim": {"kind": "simulated", "cpuMillis": 1000, "memoryMib": 1024}});
    let appd = json!({"appDId": "7f3c2a1e-5b7d-4e2a-9c11-0a1b2c3d4e51"});
    for (user, cookie, csrf) in &sessions {
        let send = |method: Method, path: &str, body: Value| {
            ctx.http
                .request(method, format!("{}{path}", ctx.base))
                .header(header::COOKIE, cookie)
                .header("x-csrf-token", csrf)
                .json(&body)
                .send()
        };
        let status = |r: reqwest::Response| r.status().as_u16();
        let changes = [
            (
                Method::POST,
                "/app_lcm/v1/app_instances".into(),
                appd.clone(),
            ),
            (
                Method::PATCH,
                format!("/app_pkgm/v1/app_packages/{id}"),
                json!({"operationalState": "DISABLED"}),
            ),
            (
                Method::PUT,
                "/inventory/v1/sites/nice-1".into(),
                site.clone(),
            ),
        ];
        let allowed: &[bool] = match *user {
            "viewer" => &[false, false, false],
            "operator" => &[true, true, false],
            _ => &[true, true, true],
        };
        for ((method, path, body), allowed) in changes.into_iter().zip(allowed) {
            let got = status(send(method.clone(), &path, body).await.unwrap());
            if *allowed {
                assert!((200..300).contains(&got), "{user} {method} {path}: {got}");
            } else {
                assert_eq!(got, 403, "{user} {method} {path}");
            }
        }
        // enabled again for the next user, through the API
        let r = ctx
            .call(
                Method::PATCH,
                &format!("/app_packages/{id}"),
                Some(json!({"operationalState": "ENABLED"})),
            )
            .await;
        assert!(r.status() == 200 || r.status() == 409, "{}", r.status());
        // every role reads, and previews placement (a query)
        assert_eq!(
            status(
                send(Method::GET, "/inventory/v1/sites", Value::Null)
                    .await
                    .unwrap()
            ),
            200
        );
        assert_eq!(
            status(
                send(Method::POST, "/inventory/v1/placement", appd.clone())
                    .await
                    .unwrap()
            ),
            200
        );
    }
}

#[tokio::test]
async fn sign_in_refuses_wrong_passwords_unknown_users_foreign_origins_and_throttles() {
    let ctx = start().await;
    let (status, cookie, body) = sign_in(&ctx, "operator", "wrong").await;
    assert_eq!((status, cookie), (StatusCode::UNAUTHORIZED, None));
    assert_eq!(body["detail"], "wrong user name or password");
    let (status, _, unknown) = sign_in(&ctx, "nobody", "wrong").await;
    assert_eq!(status, 401);
    assert_eq!(
        unknown["detail"], body["detail"],
        "an unknown user looks the same"
    );
    // a form post from another site: not JSON, and not from here
    let r = ctx
        .send(
            ctx.http
                .post(format!("{}/portal/session", ctx.base))
                .form(&[("user", "operator"), ("password", &password("operator"))]),
        )
        .await;
    assert_eq!(r.status(), 415);
    let r = ctx
        .send(
            ctx.http
                .post(format!("{}/portal/session", ctx.base))
                .header(header::ORIGIN, "http://evil.example")
                .json(&json!({"user": "operator", "password": password("operator")})),
        )
        .await;
    assert_eq!(r.status(), 403);
    // the third failure of a user blocks it for the rest of the minute, the right password too
    sign_in(&ctx, "operator", "wrong").await;
    let (status, _, _) = sign_in(&ctx, "operator", "wrong").await;
    assert_eq!(status, 401);
    let r = ctx
        .send(
            ctx.http
                .post(format!("{}/portal/session", ctx.base))
                .json(&json!({"user": "operator", "password": password("operator")})),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
    let (status, _, _) = sign_in(&ctx, "viewer", &password("viewer")).await;
    assert_eq!(status, 200, "other users are not blocked");
}

#[tokio::test]
async fn portal_pages_carry_a_strict_content_security_policy() {
    let ctx = start().await;
    for (path, kind) in [
        ("/portal/", "text/html"),
        ("/portal/portal.js", "text/javascript"),
        ("/portal/portal.css", "text/css"),
    ] {
        let r = ctx.send(ctx.http.get(format!("{}{path}", ctx.base))).await;
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with(kind));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
    }
    let html = ctx
        .send(ctx.http.get(format!("{}/portal/", ctx.base)))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
    let r = ctx
        .send(ctx.http.get(format!("{}/portal/nothing.js", ctx.base)))
        .await;
    assert_eq!(r.status(), 404);
}
