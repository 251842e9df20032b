//! The HTTP edge against hostile clients, over real sockets: slow headers and stalled TLS
//! handshakes are cut, connections beyond the cap wait, the token endpoint throttles guessing
//! and a request without a token gets a challenge without an error code (RFC 6750).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use server_kit::auth::{AuthConfig, Authority, ClientConfig, Secret, token_endpoint};
use server_kit::serve::{PeerAddr, ServeLimits, TlsConfig, serve, tls_acceptor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(app: Router, limits: ServeLimits, tls: Option<TlsConfig>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = tls.map(|t| tls_acceptor(&t).unwrap());
    tokio::spawn(serve(
        listener,
        app,
        tls,
        limits,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    addr
}

fn hello() -> Router {
    Router::new().route(
        "/",
        get(|axum::Extension(peer): axum::Extension<PeerAddr>| async move { peer.0.to_string() }),
    )
}

/// Reads until the peer closes or `wait` passes; whether it closed, and what came.
async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (false, got),
        }
    }
}

#[tokio::test]
async fn slow_headers_are_cut() {
    let limits = ServeLimits {
        header_read_timeout_secs: 1,
        ..ServeLimits::default()
    };
    let addr = start(hello(), limits, None).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (closed, _) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a client that never finishes its headers keeps its connection"
    );
}

#[tokio::test]
async fn stalled_tls_handshakes_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let pki = server_kit::testing::TestPki::new(dir.path(), "edge CA");
    let (cert_file, key_file) = pki.issue("localhost");
    let tls = TlsConfig {
        cert_file,
        key_file,
        client_ca_file: None,
    };
    let limits = ServeLimits {
        tls_handshake_timeout_secs: 1,
        ..ServeLimits::default()
    };
    let addr = start(hello(), limits, Some(tls)).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (closed, _) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a client that never starts its handshake keeps its connection"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let limits = ServeLimits {
        max_connections: 1,
        ..ServeLimits::default()
    };
    let addr = start(hello(), limits, None).await;
    let idle = TcpStream::connect(addr).await.unwrap();
    // give the server time to accept the first connection into the only slot
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, early) = read_until_closed(&mut waiting, Duration::from_millis(500)).await;
    assert!(early.is_empty(), "served beyond the connection cap");
    drop(idle);
    let (closed, answer) = read_until_closed(&mut waiting, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed && answer.starts_with("HTTP/1.1 200"), "{answer}");
    // the handler saw the client's own address
    let local = waiting.local_addr().unwrap().to_string();
    assert!(answer.ends_with(&local), "{answer}");
}

#[tokio::test]
async fn guessing_secrets_is_throttled() {
    let config = AuthConfig {
        signing_key: Some(Secret::new("k")),
        clients: vec![ClientConfig {
            client_id: "oss".into(),
            client_secret: Secret::new("right"),
            scopes: vec!["app_lcm".into()],
            app_instance_id: None,
        }],
        max_failures_per_client: 5,
        ..AuthConfig::default()
    };
    let authority = Arc::new(Authority::new(&config, None).unwrap());
    let app = Router::new().route("/token", post(token_endpoint).with_state(authority));
    let addr = start(app, ServeLimits::default(), None).await;
    let http = reqwest::Client::new();
    let attempt = |secret: &'static str| {
        http.post(format!("http://{addr}/token"))
            .basic_auth("oss", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong").await.unwrap().status(), 401);
    }
    let throttled = attempt("right").await.unwrap();
    assert_eq!(throttled.status(), 429);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn a_request_without_a_token_is_challenged_without_an_error_code() {
    use axum::response::IntoResponse;
    use server_kit::problem::ApiError;
    let missing = ApiError::MissingToken("missing bearer token".into()).into_response();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"mecplane\""
    );
    let invalid = ApiError::Unauthorized("expired".into()).into_response();
    assert_eq!(
        invalid.headers()["www-authenticate"],
        "Bearer realm=\"mecplane\", error=\"invalid_token\""
    );
}

#[tokio::test]
async fn connections_still_open_after_the_grace_period_are_closed() {
    // a response that never ends, as a MEP's link stream
    let endless = Router::new().route(
        "/",
        get(|| async {
            axum::body::Body::from_stream(futures::stream::pending::<
                Result<axum::body::Bytes, std::io::Error>,
            >())
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        endless,
        None,
        ServeLimits::default(),
        async {
            let _ = stopped.await;
        },
        Duration::from_millis(300),
    ));
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (closed, head) = read_until_closed(&mut client, Duration::from_millis(500)).await;
    assert!(
        !closed && head.starts_with(b"HTTP/1.1 200"),
        "the stream is open"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve returns once the grace period is over")
        .unwrap();
    let (closed, _) = read_until_closed(&mut client, Duration::from_secs(1)).await;
    assert!(closed, "a connection outlived the server");
}
