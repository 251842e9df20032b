//! Receiving the MEP's notifications (feature `listener`): an axum router to merge into the
//! application's HTTP server, at an unguessable path, and a queue of typed notifications.
//!
//! The MEP does not authenticate its callbacks, so the path carries 122 random bits: only
//! the MEP (told in the subscriptions) knows where to post. A termination notice should
//! still be confirmed at the MEP before acting on it ([`crate::Mp1Client::confirm_termination`]
//! answers 409 when no termination is pending).

use std::net::IpAddr;

use api_specs::mp1::app_support::AppTerminationNotification;
use api_specs::mp1::service_mgmt::ServiceAvailabilityNotification;
use axum::http::StatusCode;
use tokio::sync::mpsc;

use crate::Error;

/// Notifications waiting to be taken before the listener answers 503 (the MEP retries).
const QUEUE: usize = 256;

/// A notification from the MEP.
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// A service the subscription selects was added, removed or changed.
    ServiceAvailability(ServiceAvailabilityNotification),
    /// The instance is being stopped or terminated.
    AppTermination(AppTerminationNotification),
}

/// Where the MEP posts notifications, and what it posted.
#[derive(Debug)]
pub struct CallbackListener {
    path: String,
    url: String,
    tx: mpsc::Sender<Notification>,
    rx: mpsc::Receiver<Notification>,
}

impl CallbackListener {
    /// A listener whose router is served at `public_base_url`, the scheme, host and port at
    /// which the MEP reaches this process (e.g. `http://10.1.2.3:8080`).
    pub fn new(public_base_url: &str) -> Result<Self, Error> {
        let base = reqwest::Url::parse(public_base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| Error::Setting {
                name: "callback URL",
                reason: format!("{public_base_url:?} is not an absolute http(s) URL"),
            })?;
        let path = format!("/mp1/notifications/{}", uuid::Uuid::new_v4().simple());
        let url = format!("{}{path}", base.as_str().trim_end_matches('/'));
        let (tx, rx) = mpsc::channel(QUEUE);
        Ok(Self { path, url, tx, rx })
    }

    /// The `callbackReference` to subscribe with.
    pub fn callback_url(&self) -> &str {
        &self.url
    }

    /// The route receiving the notifications, to merge into the application's router.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let tx = self.tx.clone();
        let receive = move |body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let notification = match parse(&body) {
                    Ok(n) => n,
                    Err(why) => {
                        tracing::warn!(%why, "refused a notification");
                        return StatusCode::BAD_REQUEST;
                    }
                };
                match tx.try_send(notification) {
                    Ok(()) => StatusCode::NO_CONTENT,
                    Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
        };
        axum::Router::new().route(&self.path, axum::routing::post(receive))
    }

    /// The next notification, in the order they arrived.
    pub async fn next(&mut self) -> Notification {
        match self.rx.recv().await {
            Some(n) => n,
            // the listener holds a sender itself: the queue never closes while it lives
            None => std::future::pending().await,
        }
    }
}

fn parse(body: &[u8]) -> Result<Notification, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let kind = value["notificationType"].as_str().unwrap_or_default();
    match kind {
        ServiceAvailabilityNotification::TYPE => serde_json::from_value(value)
            .map(Notification::ServiceAvailability)
            .map_err(|e| e.to_string()),
        AppTerminationNotification::TYPE => serde_json::from_value(value)
            .map(Notification::AppTermination)
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown notificationType {other:?}")),
    }
}

/// The local address this host uses to reach the MEP at `mep_url`: where the MEP can usually
/// reach it back (a pod's IP address in a cluster, loopback when the MEP is local).
pub async fn local_address_towards(mep_url: &str) -> std::io::Result<IpAddr> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, mep_url.to_owned());
    let url = reqwest::Url::parse(mep_url).map_err(|_| invalid())?;
    let host = url.host_str().ok_or_else(invalid)?;
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let peer = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(invalid)?;
    let unspecified: IpAddr = if peer.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    };
    // connecting a UDP socket sends nothing; it only picks the route and so the address
    let socket = tokio::net::UdpSocket::bind((unspecified, 0)).await?;
    socket.connect(peer).await?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;

    /// POSTs `body` to `path` of `app`; the answer's status.
    async fn post(app: &axum::Router, path: &str, body: serde_json::Value) -> StatusCode {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    }

    fn availability() -> serde_json::Value {
        json!({"notificationType": "SerAvailabilityNotification",
               "serviceReferences": [{"serName": "s", "serInstanceId": "x", "state": "ACTIVE",
                                      "changeType": "ADDED"}],
               "_links": {"subscription": {"href": "http://mep/mec_service_mgmt/v1/applications/a/subscriptions/1"}}})
    }

    #[tokio::test]
    async fn notifications_arrive_typed_at_the_secret_path_only() {
        let mut listener = CallbackListener::new("http://10.0.0.5:8080/").unwrap();
        let url = listener.callback_url().to_owned();
        assert!(url.starts_with("http://10.0.0.5:8080/mp1/notifications/"));
        let path = url.trim_start_matches("http://10.0.0.5:8080").to_owned();
        let app: axum::Router = listener.router();

        assert_eq!(
            post(&app, &path, availability()).await,
            StatusCode::NO_CONTENT
        );
        let Notification::ServiceAvailability(n) = listener.next().await else {
            panic!("wrong kind")
        };
        assert_eq!(n.service_references[0].ser_name, "s");

        let termination = json!({"notificationType": "AppTerminationNotification",
            "operationAction": "TERMINATING", "maxGracefulTimeout": 10,
            "_links": {"subscription": {"href": "http://mep/x"}}});
        assert_eq!(post(&app, &path, termination).await, StatusCode::NO_CONTENT);
        assert!(matches!(
            listener.next().await,
            Notification::AppTermination(n) if n.max_graceful_timeout == 10
        ));

        // elsewhere, or not a notification: refused, nothing queued
        assert_eq!(
            post(&app, "/mp1/notifications/guess", availability()).await,
            StatusCode::NOT_FOUND
        );
        for bad in [
            json!({"notificationType": "Other"}),
            json!({"notificationType": "AppTerminationNotification"}),
        ] {
            assert_eq!(post(&app, &path, bad).await, StatusCode::BAD_REQUEST);
        }
        assert!(listener.rx.try_recv().is_err());
        // two listeners never share a path
        assert_ne!(
            CallbackListener::new("http://h").unwrap().path,
            listener.path
        );
        assert!(CallbackListener::new("mep").is_err());
    }

    #[tokio::test]
    async fn a_full_queue_asks_the_mep_to_retry() {
        let listener = CallbackListener::new("http://127.0.0.1:1").unwrap();
        let path = listener.path.clone();
        let app: axum::Router = listener.router();
        for _ in 0..QUEUE {
            assert_eq!(
                post(&app, &path, availability()).await,
                StatusCode::NO_CONTENT
            );
        }
        assert_eq!(
            post(&app, &path, availability()).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn the_address_towards_a_local_mep_is_loopback() {
        let ip = local_address_towards("http://127.0.0.1:9").await.unwrap();
        assert!(ip.is_loopback(), "{ip}");
        assert!(local_address_towards("not a url").await.is_err());
    }
}
