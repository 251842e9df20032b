//! VIM adapters: one [`Vim`] trait over the clusters of the edge sites, implemented by
//! [`kubernetes::KubeVim`] for Kubernetes, K3s and KubeEdge clusters and by [`sim::SimulatedVim`], a
//! VIM with a capacity model, start-up delays and injectable failures for tests, benchmarks and
//! the embedded demo.
//!
//! Workloads have deterministic names derived from the application instance, so an apply that
//! runs twice updates instead of duplicating, and every error says whether retrying can help
//! ([`VimError::retryable`]) so the LCM can choose FAILED_TEMP over FAILED.

pub mod kubernetes;
pub mod sim;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use api_specs::inventory::Capacity;

/// One container of a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Requested CPU (millicores).
    pub cpu_millis: u64,
    /// Requested memory (MiB).
    pub memory_mib: u64,
    /// CPU limit (millicores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit_millis: Option<u64>,
    /// Memory limit (MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mib: Option<u64>,
}

/// Transport protocol of a [`Port`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A port the workload serves (exposed by a Service on Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port number.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A device the workload binds to (a KubeEdge Device of this model on the workload's node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRequest {
    /// Device name, unique within the workload.
    pub name: String,
    /// Device model.
    pub model: String,
    /// Protocol the device speaks (e.g. `modbus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// What to run for one application instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// Deterministic name (see [`workload_name`]).
    pub name: String,
    /// The application instance it belongs to.
    pub app_instance_id: String,
    /// Containers.
    pub containers: Vec<Container>,
    /// GPUs needed per replica.
    pub gpus: u32,
    /// Required CPU architecture.
    pub architecture: Option<String>,
    /// Replicas when started.
    pub replicas: u32,
    /// Configuration handed to the workload.
    pub config: BTreeMap<String, String>,
    /// Confidential configuration (its Mp1 credential): a Kubernetes Secret, given to every
    /// container as environment and as files under [`SECRETS_DIR`] (names lower-cased); Helm
    /// charts get it as values under `mecplane.secrets`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Ports it serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Whether it keeps state per replica (a StatefulSet on Kubernetes).
    #[serde(default)]
    pub stateful: bool,
    /// A packaged Helm chart (`.tgz`, base64) that K3s installs instead of raw manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_chart: Option<String>,
    /// Devices to bind (KubeEdge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRequest>,
}

impl Workload {
    /// CPU (millicores) and memory (MiB) one replica requests.
    pub fn requests(&self) -> (u64, u64) {
        self.containers
            .iter()
            .fold((0, 0), |(c, m), x| (c + x.cpu_millis, m + x.memory_mib))
    }
}

/// Where a workload's [`Workload::secrets`] are mounted as files.
pub use api_specs::mp1::workload::SECRETS_DIR;

/// The deterministic workload name of an application instance: a DNS-1123 label.
pub fn workload_name(app_instance_id: &str) -> String {
    let cleaned: String = app_instance_id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut name = format!("mec-{}", cleaned.trim_matches('-'));
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// Where a workload is in its life.
///
/// [`Starting`](WorkloadPhase::Starting) covers every transition (starting, scaling, stopping);
/// the other phases are settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadPhase {
    /// Replicas not yet at the desired count (starting, scaling or stopping).
    Starting,
    /// Every replica is ready.
    Running,
    /// Scaled to zero.
    Stopped,
    /// Cannot run; the reason says why.
    Failed(String),
}

/// Observed state of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// Phase.
    pub phase: WorkloadPhase,
    /// Ready replicas.
    pub ready_replicas: u32,
    /// Desired replicas.
    pub desired_replicas: u32,
}

impl WorkloadStatus {
    /// Whether the workload reached a phase it stays in by itself.
    pub fn settled(&self) -> bool {
        self.phase != WorkloadPhase::Starting
    }
}

/// A VIM failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VimError {
    /// The VIM cannot be reached or answered 5xx.
    #[error("VIM unavailable: {0}")]
    Unavailable(String),
    /// A concurrent change won; the operation may be repeated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The site lacks the resources.
    #[error("insufficient capacity: {0}")]
    InsufficientCapacity(String),
    /// The VIM refused the request as invalid.
    #[error("rejected: {0}")]
    Rejected(String),
    /// No such workload.
    #[error("workload {0} not found")]
    NotFound(String),
}

impl VimError {
    /// Whether retrying the same operation later can succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Conflict(_) | Self::InsufficientCapacity(_)
        )
    }
}

/// A virtualised infrastructure manager of one edge site. Every operation is idempotent.
pub trait Vim: Send + Sync {
    /// Free resources of the site.
    fn capacity(&self) -> BoxFuture<'_, Result<Capacity, VimError>>;
    /// Creates or updates a workload (started with `replicas`).
    fn apply<'a>(&'a self, workload: &'a Workload) -> BoxFuture<'a, Result<(), VimError>>;
    /// The status of a workload, `None` if it does not exist.
    fn status<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadStatus>, VimError>>;
    /// Starts (`replicas` > 0) or stops (0) a workload.
    fn scale<'a>(&'a self, name: &'a str, replicas: u32) -> BoxFuture<'a, Result<(), VimError>>;
    /// Deletes a workload and everything it owns; deleting nothing succeeds.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), VimError>>;
    /// Names of every workload this platform owns on the site.
    fn list_owned(&self) -> BoxFuture<'_, Result<Vec<String>, VimError>>;
    /// Waits up to `timeout` for the workload to settle (running, stopped, failed or gone) and
    /// returns the last status observed. The default polls [`Vim::status`]; adapters with a
    /// change feed override it.
    fn settle<'a>(
        &'a self,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<WorkloadStatus>, VimError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let status = self.status(name).await?;
                if status.as_ref().is_none_or(WorkloadStatus::settled)
                    || tokio::time::Instant::now() >= deadline
                {
                    return Ok(status);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

/// A site's VIM whose every call runs in a client span (`VIM apply`, `VIM settle`, …) with
/// the site and the workload as fields: the VIM calls of a traced LCM operation.
pub struct Traced {
    site: String,
    inner: Arc<dyn Vim>,
}

impl Traced {
    /// `inner`, the VIM of `site`, traced.
    pub fn new(site: &str, inner: Arc<dyn Vim>) -> Self {
        Self {
            site: site.to_owned(),
            inner,
        }
    }

    fn span(&self, call: &str, workload: &str) -> tracing::Span {
        tracing::info_span!(
            "VIM call",
            otel.name = %format!("VIM {call}"),
            otel.kind = "client",
            site_id = %self.site,
            workload = %workload,
        )
    }
}

impl Vim for Traced {
    fn capacity(&self) -> BoxFuture<'_, Result<Capacity, VimError>> {
        Box::pin(self.inner.capacity().instrument(self.span("capacity", "")))
    }

    fn apply<'a>(&'a self, workload: &'a Workload) -> BoxFuture<'a, Result<(), VimError>> {
        let span = self.span("apply", &workload.name);
        Box::pin(self.inner.apply(workload).instrument(span))
    }

    fn status<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadStatus>, VimError>> {
        Box::pin(
            self.inner
                .status(name)
                .instrument(self.span("status", name)),
        )
    }

    fn scale<'a>(&'a self, name: &'a str, replicas: u32) -> BoxFuture<'a, Result<(), VimError>> {
        let span = self.span("scale", name);
        Box::pin(self.inner.scale(name, replicas).instrument(span))
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), VimError>> {
        Box::pin(
            self.inner
                .delete(name)
                .instrument(self.span("delete", name)),
        )
    }

    fn list_owned(&self) -> BoxFuture<'_, Result<Vec<String>, VimError>> {
        Box::pin(self.inner.list_owned().instrument(self.span("list", "")))
    }

    fn settle<'a>(
        &'a self,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<WorkloadStatus>, VimError>> {
        let span = self.span("settle", name);
        Box::pin(self.inner.settle(name, timeout).instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_dns_labels() {
        assert_eq!(workload_name("7F3C2A1E_x"), "mec-7f3c2a1e-x");
        let long = workload_name(&"a".repeat(100));
        assert!(long.len() <= 63 && long.starts_with("mec-"));
        assert_eq!(workload_name("abc"), workload_name("abc"));
    }

    #[test]
    fn retryable_errors() {
        assert!(VimError::Unavailable("x".into()).retryable());
        assert!(!VimError::Rejected("x".into()).retryable());
    }
}
