//! Applications' own Mp1 credentials: MEC management provisions an instance with an OAuth 2.0
//! client (only the digests of its secrets); the instance obtains tokens with its secret, acts
//! only on its own resources, and loses its tokens at once when the client is withdrawn or the
//! instance terminated. A rotated secret works until its grace period ends.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server_kit::auth::secret_digest_b64;

use super::common::{Ctx, Db, OPERATOR, app_config};
use server_kit::on_both_dbs;

on_both_dbs!(an_instance_authenticates_with_its_own_credential);
on_both_dbs!(a_rotated_secret_works_until_its_grace_period_ends);
on_both_dbs!(clients_are_checked_and_never_shown);

fn with_client(id: &str, credentials: Value) -> Value {
    let mut c = app_config(id);
    c["oauth2Client"] = json!({"clientId": format!("client-{id}"), "credentials": credentials});
    c
}

fn credential(id: &str, secret: &str) -> Value {
    json!({"credentialId": id, "secretDigest": secret_digest_b64(secret)})
}

async fn provision(ctx: &Ctx, id: &str, body: Value) -> StatusCode {
    let op = ctx.token(OPERATOR).await;
    let path = format!("/mep_mgmt/v1/app_instances/{id}");
    ctx.call(Method::PUT, &path, &op, Some(body)).await.status()
}

async fn token_status(ctx: &Ctx, client: &str, secret: &str) -> (StatusCode, Value) {
    let r = ctx
        .send(
            ctx.http
                .post(ctx.url("/oauth2/token"))
                .basic_auth(client, Some(secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

async fn an_instance_authenticates_with_its_own_credential(db: Db) {
    let mut ctx = Ctx::start(db).await;
    let created = provision(
        &ctx,
        "a1",
        with_client("a1", json!([credential("c1", "a1-secret")])),
    );
    assert_eq!(created.await, StatusCode::CREATED);
    ctx.provision("b1").await;

    let (status, body) = token_status(&ctx, "client-a1", "a1-secret").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let scopes: Vec<&str> = body["scope"].as_str().unwrap().split(' ').collect();
    assert_eq!(scopes, ["mec_app_support", "mec_service_mgmt"]);
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        token_status(&ctx, "client-a1", "wrong").await.0,
        StatusCode::UNAUTHORIZED
    );

    // its own resources: yes; another instance's: no, for reads and writes
    let own = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/a1/dns_rules",
            &token,
            None,
        )
        .await;
    assert_eq!(own.status(), StatusCode::OK);
    let ready = json!({"indication": "READY"});
    for (method, path, body) in [
        (
            Method::GET,
            "/mec_app_support/v1/applications/b1/dns_rules",
            None,
        ),
        (
            Method::POST,
            "/mec_app_support/v1/applications/b1/confirm_ready",
            Some(ready.clone()),
        ),
        (
            Method::GET,
            "/mec_service_mgmt/v1/applications/b1/services",
            None,
        ),
        (Method::GET, "/mep_mgmt/v1/app_instances", None),
    ] {
        let r = ctx.call(method.clone(), path, &token, body).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
    }
    let r = ctx
        .call(
            Method::POST,
            "/mec_app_support/v1/applications/a1/confirm_ready",
            &token,
            Some(ready),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // the credential survives a restart (digests are stored) ...
    ctx.restart().await;
    let (status, body) = token_status(&ctx, "client-a1", "a1-secret").await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().unwrap().to_owned();
    // ... and termination revokes it at once: the token issued before stops working
    let op = ctx.token(OPERATOR).await;
    let r = ctx
        .call(Method::DELETE, "/mep_mgmt/v1/app_instances/a1", &op, None)
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let after = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/a1/dns_rules",
            &token,
            None,
        )
        .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert!(
        after.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert_eq!(
        token_status(&ctx, "client-a1", "a1-secret").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn a_rotated_secret_works_until_its_grace_period_ends(db: Db) {
    let ctx = Ctx::start(db).await;
    let body = with_client("a1", json!([credential("c1", "old")]));
    assert_eq!(provision(&ctx, "a1", body).await, StatusCode::CREATED);
    let old_token = token_status(&ctx, "client-a1", "old").await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let grace_end = server_kit::unix_millis_now() / 1000 + 2;
    let mut old = credential("c1", "old");
    old["notAfter"] = json!({"seconds": grace_end, "nanoSeconds": 0});
    let body = with_client("a1", json!([credential("c2", "new"), old]));
    assert_eq!(provision(&ctx, "a1", body).await, StatusCode::OK);
    let path = "/mec_app_support/v1/applications/a1/dns_rules";
    assert_eq!(
        token_status(&ctx, "client-a1", "new").await.0,
        StatusCode::OK
    );
    assert_eq!(
        token_status(&ctx, "client-a1", "old").await.0,
        StatusCode::OK
    );
    let r = ctx.call(Method::GET, path, &old_token, None).await;
    assert_eq!(r.status(), StatusCode::OK, "still inside the grace period");
    // wait for the end of the grace period (bounded), then the old secret and its tokens stop
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server_kit::unix_millis_now() / 1000 < grace_end {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        token_status(&ctx, "client-a1", "old").await.0,
        StatusCode::UNAUTHORIZED
    );
    let r = ctx.call(Method::GET, path, &old_token, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        token_status(&ctx, "client-a1", "new").await.0,
        StatusCode::OK
    );
}

async fn clients_are_checked_and_never_shown(db: Db) {
    let ctx = Ctx::start(db).await;
    let body = with_client("a1", json!([credential("c1", "s")]));
    assert_eq!(provision(&ctx, "a1", body).await, StatusCode::CREATED);
    // the provisioning API never shows a digest back
    let op = ctx.token(OPERATOR).await;
    let shown: Value = ctx
        .call(Method::GET, "/mep_mgmt/v1/app_instances/a1", &op, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["oauth2Client"]["credentials"][0]["credentialId"],
        "c1"
    );
    assert!(!shown.to_string().contains(&secret_digest_b64("s")));
    // another instance may not take the client id, nor may a configured client's id be used
    let mut taken = with_client("b1", json!([credential("c1", "t")]));
    taken["oauth2Client"]["clientId"] = json!("client-a1");
    assert_eq!(provision(&ctx, "b1", taken).await, StatusCode::CONFLICT);
    let mut configured = with_client("b1", json!([credential("c1", "t")]));
    configured["oauth2Client"]["clientId"] = json!(OPERATOR.0);
    assert_eq!(
        provision(&ctx, "b1", configured).await,
        StatusCode::CONFLICT
    );
    for bad in [
        json!([]),
        json!([{"credentialId": "c1", "secretDigest": "not-a-digest"}]),
        json!([{"credentialId": "c1"}]),
        json!([credential("c1", "x"), credential("c1", "y")]),
    ] {
        let status = provision(&ctx, "b1", with_client("b1", bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // a configured client keeps working as before
    assert_eq!(
        token_status(&ctx, OPERATOR.0, OPERATOR.1).await.0,
        StatusCode::OK
    );
}
