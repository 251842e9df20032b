//! What the application serves: a greeting, its status (the service it registers at the MEP
//! points here) and a health check.

use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use mp1_client::api_specs::mp1::service_mgmt::ServiceState;
use serde::Serialize;

use crate::deps::Dependencies;

/// What the application knows of itself and its platform.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The application instance.
    pub app_instance_id: String,
    /// Whether it confirmed readiness to the MEP.
    pub ready: bool,
    /// The service it registered and its state there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<RegisteredService>,
    /// The services it requires and their known instances.
    pub required: Dependencies,
    /// Notifications from the MEP it has handled (logged and acted on).
    pub notifications: u64,
}

/// The registration of the application's own service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredService {
    /// Its identifier at the MEP.
    pub ser_instance_id: String,
    /// The state registered.
    pub state: ServiceState,
}

/// The status, shared by the application and its HTTP handlers.
pub type Shared = Arc<RwLock<Status>>;

/// A copy of the status.
pub fn snapshot(status: &Shared) -> Status {
    match status.read() {
        Ok(s) => s.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Changes the status.
pub fn update(status: &Shared, change: impl FnOnce(&mut Status)) {
    match status.write() {
        Ok(mut s) => change(&mut s),
        Err(poisoned) => change(&mut poisoned.into_inner()),
    }
}

/// `GET /`, `GET /status`, `GET /healthz`.
pub fn router(status: Shared) -> axum::Router {
    axum::Router::new()
        .route("/", get(greeting))
        .route("/status", get(status_json))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(status)
}

async fn greeting(State(status): State<Shared>) -> String {
    let s = snapshot(&status);
    if s.ready {
        format!("Hello from {} at the edge.\n", s.app_instance_id)
    } else {
        format!(
            "{} is waiting for {}.\n",
            s.app_instance_id,
            s.required.missing().join(", ")
        )
    }
}

async fn status_json(State(status): State<Shared>) -> Json<Status> {
    Json(snapshot(&status))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(app: &axum::Router, path: &str) -> String {
        let r = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_pages_show_the_status() {
        let status: Shared = Arc::new(RwLock::new(Status {
            app_instance_id: "i1".into(),
            ready: false,
            service: None,
            required: Dependencies::new(["video-detections".to_owned()]),
            notifications: 0,
        }));
        let app = router(status.clone());
        assert_eq!(
            get(&app, "/").await,
            "i1 is waiting for video-detections.\n"
        );
        update(&status, |s| {
            s.ready = true;
            s.service = Some(RegisteredService {
                ser_instance_id: "s1".into(),
                state: ServiceState::Active,
            });
        });
        assert_eq!(get(&app, "/").await, "Hello from i1 at the edge.\n");
        let json: serde_json::Value = serde_json::from_str(&get(&app, "/status").await).unwrap();
        assert_eq!(json["service"]["state"], "ACTIVE");
        assert_eq!(json["required"]["video-detections"], serde_json::json!({}));
        assert_eq!(get(&app, "/healthz").await, "ok");
    }
}
