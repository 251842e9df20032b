//! The HTTP edge: authentication and scopes, RFC 7807 errors for bad input, limits, TLS and the
//! operational endpoints.

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509NameBuilder};
use reqwest::Method;
use serde_json::{Value, json};

use super::common::{APP1, Ctx, Db, OPERATOR, test_config};
use server_kit::on_both_dbs;

on_both_dbs!(
    auth_and_scopes,
    bad_input_gets_problem_details,
    names_and_ids_are_bounded
);

async fn assert_problem(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], status);
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    p
}

/// Empty and absurdly long names and identifiers get a clear 400 (the issue sent an empty
/// serName, a 5,000-character app instance id and a 900 KB appName).
async fn names_and_ids_are_bounded(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let (op, app) = (ctx.token(OPERATOR).await, ctx.token(APP1).await);
    let mut empty = super::common::service("x");
    empty["serName"] = json!("  ");
    let r = ctx
        .call(
            reqwest::Method::POST,
            "/mec_service_mgmt/v1/applications/i1/services",
            &app,
            Some(empty),
        )
        .await;
    let p = assert_problem(r, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("serName"), "{p}");
    let long_id = "x".repeat(5000);
    let r = ctx
        .call(
            reqwest::Method::PUT,
            &format!("/mep_mgmt/v1/app_instances/{long_id}"),
            &op,
            Some(super::common::app_config("x")),
        )
        .await;
    assert_problem(r, 400).await;
    let mut huge = super::common::app_config("i9");
    huge["appInfo"]["appName"] = json!("n".repeat(20_000));
    let r = ctx
        .call(
            reqwest::Method::PUT,
            "/mep_mgmt/v1/app_instances/i9",
            &op,
            Some(huge),
        )
        .await;
    let p = assert_problem(r, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("appName"), "{p}");
    let mut control = super::common::app_config("i9");
    control["appInfo"]["appName"] = json!("evil\u{7}name");
    let r = ctx
        .call(
            reqwest::Method::PUT,
            "/mep_mgmt/v1/app_instances/i9",
            &op,
            Some(control),
        )
        .await;
    assert_problem(r, 400).await;
}

async fn auth_and_scopes(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let r = ctx
        .send(ctx.http.get(ctx.url("/mec_service_mgmt/v1/services")))
        .await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_problem(r, 401).await;
    let r = ctx
        .send(
            ctx.http
                .get(ctx.url("/mec_service_mgmt/v1/services"))
                .bearer_auth("a.b.c"),
        )
        .await;
    assert_problem(r, 401).await;

    let token = |id: &str, secret: &str, extra: &[(&str, &str)]| {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let req = ctx
            .http
            .post(ctx.url("/oauth2/token"))
            .basic_auth(id, Some(secret))
            .form(&form);
        async move { req.send().await.unwrap() }
    };
    let r = token("app1", "wrong", &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = token("app1", "app1-secret", &[("scope", "mep_mgmt")]).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_scope");
    let r = ctx
        .send(
            ctx.http
                .post(ctx.url("/oauth2/token"))
                .basic_auth("app1", Some("app1-secret"))
                .form(&[("grant_type", "password")]),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // credentials in the form body work too, and a narrower scope is honoured
    let r = ctx
        .send(ctx.http.post(ctx.url("/oauth2/token")).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app1"),
            ("client_secret", "app1-secret"),
            ("scope", "mec_service_mgmt"),
        ]))
        .await;
    let narrow: Value = r.json().await.unwrap();
    assert_eq!(narrow["scope"], "mec_service_mgmt");
    let narrow = narrow["access_token"].as_str().unwrap().to_owned();
    let r = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i1/traffic_rules",
            &narrow,
            None,
        )
        .await;
    assert_problem(r, 403).await;
    let r = ctx
        .call(Method::GET, "/mec_service_mgmt/v1/services", &narrow, None)
        .await;
    assert_eq!(r.status(), 200);

    let app = ctx.token(APP1).await;
    let r = ctx
        .call(Method::GET, "/mep_mgmt/v1/app_instances", &app, None)
        .await;
    assert_problem(r, 403).await;
    let r = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i9/traffic_rules",
            &app,
            None,
        )
        .await;
    assert_problem(r, 403).await;
}

async fn bad_input_gets_problem_details(db: Db) {
    let ctx = Ctx::start(db).await;
    ctx.provision("i1").await;
    let app = ctx.token(APP1).await;
    let path = ctx.url("/mec_service_mgmt/v1/applications/i1/services");
    let send = |body: Vec<u8>, content_type: &str| {
        let req = ctx
            .http
            .post(&path)
            .bearer_auth(&app)
            .header("content-type", content_type)
            .body(body);
        async move { req.send().await.unwrap() }
    };
    assert_problem(send(b"{not json".to_vec(), "application/json").await, 400).await;
    // a JSON resource asked for as anything else: 406, not the JSON anyway
    let get = |accept: &'static str| {
        let req = ctx
            .http
            .get(&path)
            .bearer_auth(&app)
            .header("accept", accept);
        async move { req.send().await.unwrap() }
    };
    assert_problem(get("application/xml").await, 406).await;
    assert_problem(get("application/json;q=0, */*").await, 406).await;
    assert_eq!(get("text/html, */*;q=0.8").await.status(), 200);
    let p = assert_problem(send(br#"{"serName":"x","version":"1","state":"ACTIVE","serializer":"JSON","transportId":"mep-rest-http","colour":"red"}"#.to_vec(), "application/json").await, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("colour"));
    assert_problem(
        send(
            br#"{"serName":"x","version":"1","state":"ASLEEP","serializer":"JSON"}"#.to_vec(),
            "application/json",
        )
        .await,
        400,
    )
    .await;
    assert_problem(
        send(
            br#"{"serName":"x","version":"1","state":"ACTIVE","serializer":"JSON"}"#.to_vec(),
            "application/json",
        )
        .await,
        400,
    )
    .await;
    assert_problem(send(br#"{"serName":"x","version":"1","state":"ACTIVE","serializer":"JSON","transportId":"nope"}"#.to_vec(), "application/json").await, 400).await;
    assert_problem(send(br#"{"serInstanceId":"mine","serName":"x","version":"1","state":"ACTIVE","serializer":"JSON","transportId":"mep-rest-http"}"#.to_vec(), "application/json").await, 400).await;
    assert_problem(send(b"{}".to_vec(), "text/plain").await, 415).await;
    let huge = format!(r#"{{"serName":"{}"}}"#, "x".repeat(100 * 1024));
    assert_problem(send(huge.into_bytes(), "application/json").await, 413).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_problem(send(deep.into_bytes(), "application/json").await, 400).await;
    let p = assert_problem(
        ctx.call(Method::GET, "/mec_service_mgmt/v1/nothing/here", &app, None)
            .await,
        404,
    )
    .await;
    assert_eq!(p["instance"], "/mec_service_mgmt/v1/nothing/here");
    assert_problem(
        ctx.call(Method::PATCH, "/mec_service_mgmt/v1/services", &app, None)
            .await,
        405,
    )
    .await;
    assert_problem(
        ctx.call(
            Method::PUT,
            "/mec_app_support/v1/timing/current_time",
            &app,
            None,
        )
        .await,
        405,
    )
    .await;
    // the server still answers after all of it
    assert_eq!(
        ctx.call(Method::GET, "/mec_service_mgmt/v1/services", &app, None)
            .await
            .status(),
        200
    );
    // provisioning validates too
    let op = ctx.token(super::common::OPERATOR).await;
    let mut bad = super::common::app_config("i3");
    bad["appDNSRule"][0]["ipAddress"] = json!("999.1.1.1");
    assert_problem(
        ctx.call(Method::PUT, "/mep_mgmt/v1/app_instances/i3", &op, Some(bad))
            .await,
        400,
    )
    .await;
    let mut dup = super::common::app_config("i3");
    dup["appDNSRule"] = json!([dup["appDNSRule"][0], dup["appDNSRule"][0]]);
    assert_problem(
        ctx.call(Method::PUT, "/mep_mgmt/v1/app_instances/i3", &op, Some(dup))
            .await,
        400,
    )
    .await;
    assert_eq!(
        ctx.call(Method::GET, "/mep_mgmt/v1/app_instances/i3", &op, None)
            .await
            .status(),
        404,
        "nothing half-written"
    );
}

fn self_signed() -> (Vec<u8>, Vec<u8>) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "localhost").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&cert.x509v3_context(None, None))
        .unwrap();
    cert.append_extension(san).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    (
        cert.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_and_operational_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let mut config = test_config(format!("sqlite://{}/mep.db?mode=rwc", dir.path().display()));
    config.tls = Some(server_kit::serve::TlsConfig {
        cert_file: dir.path().join("cert.pem"),
        key_file: dir.path().join("key.pem"),
        client_ca_file: None,
    });
    let ctx = Ctx::start_with(config, dir).await;
    assert!(ctx.base.starts_with("https://"));
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .build()
        .unwrap();
    for (path, expect) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let r = https.get(ctx.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), expect);
    }
    let token: Value = https
        .post(ctx.url("/oauth2/token"))
        .basic_auth(APP1.0, Some(APP1.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let transports: Value = https
        .get(ctx.url("/mec_service_mgmt/v1/transports"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        transports[0]["security"]["oAuth2Info"]["grantTypes"][0],
        "OAUTH2_CLIENT_CREDENTIALS"
    );
    assert!(
        transports[0]["security"]["oAuth2Info"]["tokenEndpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let metrics = https
        .get(ctx.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("mep_http_requests_total"));
    let plain = ctx.url("/healthz").replace("https://", "http://");
    assert!(
        reqwest::get(plain)
            .await
            .map(|r| r.status() != 200)
            .unwrap_or(true),
        "plain HTTP must not be served"
    );
    let untrusted = reqwest::get(ctx.url("/healthz")).await;
    assert!(
        untrusted.is_err(),
        "a client without the CA must fail the handshake"
    );
}

/// A tiny deterministic generator (xorshift) for hostile bodies.
fn garbage(seed: &mut u64, len: usize) -> Vec<u8> {
    let alphabet = br#"{}[]":,0123456789abcdefnulltrue \"\\-eE.ACTIVEserNameREADY"#;
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            alphabet[(*seed % alphabet.len() as u64) as usize]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_never_break_the_server() {
    let ctx = Ctx::start(Db::Sqlite).await;
    ctx.provision("i1").await;
    let op = ctx.token(super::common::OPERATOR).await;
    let targets = [
        (
            Method::POST,
            "/mec_service_mgmt/v1/applications/i1/services",
        ),
        (
            Method::PUT,
            "/mec_service_mgmt/v1/applications/i1/services/x",
        ),
        (
            Method::POST,
            "/mec_service_mgmt/v1/applications/i1/subscriptions",
        ),
        (
            Method::POST,
            "/mec_app_support/v1/applications/i1/confirm_ready",
        ),
        (
            Method::POST,
            "/mec_app_support/v1/applications/i1/confirm_termination",
        ),
        (
            Method::POST,
            "/mec_app_support/v1/applications/i1/subscriptions",
        ),
        (
            Method::PUT,
            "/mec_app_support/v1/applications/i1/traffic_rules/tr1",
        ),
        (
            Method::PUT,
            "/mec_app_support/v1/applications/i1/dns_rules/dns1",
        ),
        (Method::PUT, "/mep_mgmt/v1/app_instances/i1"),
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..40 {
        for (method, path) in &targets {
            let body = garbage(&mut seed, 1 + round * 7);
            let r = ctx
                .send(
                    ctx.http
                        .request(method.clone(), ctx.url(path))
                        .bearer_auth(&op)
                        .header("content-type", "application/json")
                        .body(body),
                )
                .await;
            assert!(
                r.status().is_client_error(),
                "{method} {path}: {}",
                r.status()
            );
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
    }
    // garbage DNS datagrams do not stop the DNS server
    let dns = ctx.server().dns_addr.unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for len in [0usize, 1, 12, 100, 512] {
        socket.send_to(&garbage(&mut seed, len), dns).await.unwrap();
    }
    let mut query = hickory_proto::op::Message::new();
    query.set_id(42).add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("i1.mec.example.").unwrap(),
        hickory_proto::rr::RecordType::A,
    ));
    socket.send_to(&query.to_vec().unwrap(), dns).await.unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.recv_from(&mut buf),
    )
    .await
    .expect("the DNS server still answers")
    .unwrap();
    assert_eq!(
        hickory_proto::op::Message::from_vec(&buf[..n])
            .unwrap()
            .id(),
        42
    );
    let r = ctx
        .call(Method::GET, "/mep_mgmt/v1/app_instances/i1", &op, None)
        .await;
    assert_eq!(r.status(), 200);
    let rules: Value = ctx
        .call(
            Method::GET,
            "/mec_app_support/v1/applications/i1/dns_rules",
            &op,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rules[0]["ipAddress"], "10.10.0.7",
        "nothing was changed by garbage"
    );
}
