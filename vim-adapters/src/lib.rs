//! VIM adapters: one [`Vim`] trait over the clusters of the edge sites (Kubernetes, K3s and
//! KubeEdge adapters are still to come) and [`sim::SimulatedVim`], a VIM with a capacity model,
//! start-up delays and injectable failures for tests, benchmarks and the embedded demo.
//!
//! Workloads have deterministic names derived from the application instance, so an apply that
//! runs twice updates instead of duplicating, and every error says whether retrying can help
//! ([`VimError::retryable`]) so the LCM can choose FAILED_TEMP over FAILED.

pub mod sim;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// Free resources of a site, as the VIM reports them (allocatable minus requested).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// Free CPU (millicores).
    pub cpu_millis: u64,
    /// Free memory (MiB).
    pub memory_mib: u64,
    /// Free GPUs.
    pub gpus: u32,
    /// CPU architectures of the site's nodes (e.g. `x86_64`, `aarch64`).
    pub architectures: Vec<String>,
    /// Labels of the site (from its nodes or configuration).
    pub labels: BTreeMap<String, String>,
}

/// One container of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// What to run for one application instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Workload {
    /// CPU (millicores) and memory (MiB) one replica requests.
    pub fn requests(&self) -> (u64, u64) {
        self.containers
            .iter()
            .fold((0, 0), |(c, m), x| (c + x.cpu_millis, m + x.memory_mib))
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkloadPhase {
    /// Accepted, replicas not yet ready.
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
