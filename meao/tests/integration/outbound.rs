//! The MEAO does not fetch packages from, follow redirects to, or send notifications to
//! addresses a client should not make it reach (loopback, private, link-local, ...), unless the
//! operator allows them; a refused or failed fetch tells the client what kind of failure it
//! was, never what answered.

use reqwest::Method;
use serde_json::{Value, json};

use super::common::{Ctx, Db, test_config};

/// A MEAO whose outbound policy allows only 127.0.0.2 (the tests' "public" package server).
async fn start() -> Ctx {
    let dir = tempfile::tempdir().unwrap();
    let url = server_kit::testing::fresh_database(Db::Sqlite, "meao", dir.path()).await;
    let mut config = test_config(url, dir.path());
    config.outbound.allow = vec!["127.0.0.2/32".into()];
    Ctx::start_with(config, dir).await
}

/// Serves `app` on `ip`; returns its origin.
async fn serve(ip: &str, app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    origin
}

async fn create(ctx: &Ctx, path: &str) -> reqwest::Response {
    let body = json!({"appPkgName": "cdn", "appPkgVersion": "5", "appPkgPath": path});
    ctx.call(Method::POST, "/app_packages", Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_and_callbacks_stay_where_the_policy_allows() {
    let ctx = start().await;
    let secret = "internal-secret-banner";
    let internal = serve(
        "127.0.0.1",
        axum::Router::new().fallback(move || async move { secret }),
    )
    .await;
    // an address literal the policy refuses: 400 at once
    for refused in [
        format!("{internal}/pkg.zip"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]/pkg.zip".to_owned(),
    ] {
        let r = create(&ctx, &refused).await;
        assert_eq!(r.status(), 400, "{refused}");
        let p: Value = r.json().await.unwrap();
        assert!(
            p["detail"].as_str().unwrap().contains("outbound policy"),
            "{p}"
        );
    }
    // a name resolving to a refused address: the fetch is refused, and says only that
    let port = internal.rsplit(':').next().unwrap();
    let r = create(&ctx, &format!("http://localhost:{port}/pkg.zip")).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = ctx.wait_failed(&id).await;
    let detail = p["onboardingFailureDetails"]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("not allowed (outbound policy)"), "{detail}");
    assert!(
        !detail.contains(secret) && !detail.contains(port),
        "{detail}"
    );

    // an allowed server redirecting to a refused one: the redirect is not followed
    let target = format!("{internal}/pkg.zip");
    let redirector = serve(
        "127.0.0.2",
        axum::Router::new().fallback(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    )
    .await;
    let r = create(&ctx, &format!("{redirector}/pkg.zip")).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = ctx.wait_failed(&id).await;
    let detail = p["onboardingFailureDetails"]["detail"].as_str().unwrap();
    assert!(detail.contains("not allowed (outbound policy)"), "{detail}");
    assert!(!detail.contains(secret), "{detail}");
    // an allowed server that fails tells its status, nothing of its body
    let failing = serve(
        "127.0.0.2",
        axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::FORBIDDEN,
                "welcome to corp-nas v2.1",
            )
        }),
    )
    .await;
    let id = create(&ctx, &format!("{failing}/pkg.zip"))
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = ctx.wait_failed(&id).await["onboardingFailureDetails"]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains("HTTP 403") && !detail.contains("corp-nas"),
        "{detail}"
    );

    // subscriptions: the same policy for callbacks
    for (path, body) in [
        (
            "/subscriptions",
            json!({"callbackUri": format!("{internal}/cb"), "subscriptionType": "AppPackageOnBoardingSubscription"}),
        ),
        (
            "/subscriptions",
            json!({"callbackUri": "http://10.0.0.1/cb", "subscriptionType": "AppPackageOnBoardingSubscription"}),
        ),
    ] {
        let r = ctx.call(Method::POST, path, Some(body)).await;
        assert_eq!(r.status(), 400);
    }
    let lcm = ctx.send(ctx.http
        .post(format!("{}/app_lcm/v1/subscriptions", ctx.base))
        .bearer_auth(&ctx.token)
        .json(&json!({"callbackUri": "http://192.168.1.1/cb", "subscriptionType": "AppInstanceStateChangeSubscription"}))
        ).await;
    assert_eq!(lcm.status(), 400);
}
