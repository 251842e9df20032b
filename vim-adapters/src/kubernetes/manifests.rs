//! The objects a workload becomes on a cluster, built without talking to it: an anchor
//! ConfigMap (the workload's configuration, owner of everything else), a Deployment or
//! StatefulSet (or, on K3s with a chart, a HelmChart), a Service for its ports and, on
//! KubeEdge, a Device per requested device. Every object carries the ownership labels.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::Flavour;
use crate::{Protocol, SECRETS_DIR, Workload};

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "mecplane";
/// `app.kubernetes.io/managed-by` value of the objects the platform owns.
pub const MANAGED_BY: &str = "mecplane";
/// Label with the workload name (the Helm release name too).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Label marking what the platform owns.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Annotation with the full application instance id (labels cannot hold every id).
pub const APP_INSTANCE_ANNOTATION: &str = "mec.etsi.org/app-instance-id";
/// Annotation of the anchor ConfigMap naming the kind that runs the workload.
pub const KIND_ANNOTATION: &str = "mecplane.io/workload-kind";
/// Annotation of the anchor ConfigMap naming the node the workload is pinned to.
pub const NODE_ANNOTATION: &str = "mecplane.io/node";
/// Label and taint key of KubeEdge edge nodes.
pub const EDGE_NODE_LABEL: &str = "node-role.kubernetes.io/edge";
/// Annotation of the pod template with a digest of the workload's secrets: a changed secret
/// (a rotated credential) rolls the pods.
pub const SECRETS_ANNOTATION: &str = "mecplane.io/secrets-digest";
/// Key of the Secret that holds the chart values of a HelmChart workload's secrets.
pub const SECRET_VALUES_KEY: &str = "mecplane-values.yaml";
/// Extended resource name of GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Node label set by GPU feature discovery on nodes with GPUs.
pub const GPU_NODE_LABEL: &str = "nvidia.com/gpu.present";

/// What runs the workload's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// helm.cattle.io/v1 HelmChart (K3s), whose release creates the pods.
    HelmChart,
}

impl WorkloadKind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::HelmChart => "HelmChart",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(kind: &str) -> Option<Self> {
        [Self::Deployment, Self::StatefulSet, Self::HelmChart]
            .into_iter()
            .find(|k| k.as_str() == kind)
    }

    /// The kind a workload runs as on a cluster of `flavour`.
    pub fn of(workload: &Workload, flavour: Flavour) -> Self {
        if flavour == Flavour::K3s && workload.helm_chart.is_some() {
            Self::HelmChart
        } else if workload.stateful {
            Self::StatefulSet
        } else {
            Self::Deployment
        }
    }
}

/// Kubernetes architecture name of a CPU architecture as AppDs and sites name it.
pub fn kube_arch(architecture: &str) -> &str {
    match architecture {
        "x86_64" | "x86-64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        other => other,
    }
}

/// CPU architecture (as sites report it) of a Kubernetes architecture name.
pub fn site_arch(kube_arch: &str) -> &str {
    match kube_arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    }
}

/// Inputs of [`build`] beyond the workload.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Namespace of every object.
    pub namespace: &'a str,
    /// Cluster flavour.
    pub flavour: Flavour,
    /// Node the pods are pinned to (KubeEdge with devices).
    pub node: Option<&'a str>,
}

/// The anchor ConfigMap: the workload's configuration, its kind and node.
pub fn anchor(workload: &Workload, target: &Target<'_>) -> Value {
    let mut annotations = json!({
        APP_INSTANCE_ANNOTATION: workload.app_instance_id,
        KIND_ANNOTATION: WorkloadKind::of(workload, target.flavour).as_str(),
    });
    if let Some(node) = target.node {
        annotations[NODE_ANNOTATION] = json!(node);
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(workload, target, annotations),
        "data": workload.config,
    })
}

/// Everything but the anchor, each owned by the anchor (`anchor_uid`).
pub fn dependents(workload: &Workload, target: &Target<'_>, anchor_uid: &str) -> Vec<Value> {
    let owner = json!([{
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": workload.name,
        "uid": anchor_uid,
        "blockOwnerDeletion": true,
    }]);
    let mut objects = Vec::new();
    let kind = WorkloadKind::of(workload, target.flavour);
    // the Secret first: the pods that reference it come next
    if !workload.secrets.is_empty() {
        objects.push(secret(workload, target, kind));
    }
    match kind {
        WorkloadKind::HelmChart => objects.push(helm_chart(workload, target)),
        kind => {
            objects.push(pod_controller(workload, target, kind));
            if !workload.ports.is_empty() {
                objects.push(service(workload, target));
            }
        }
    }
    if target.flavour == Flavour::KubeEdge {
        objects.extend(devices(workload, target));
    }
    for object in &mut objects {
        object["metadata"]["ownerReferences"] = owner.clone();
    }
    objects
}

fn labels(workload: &Workload) -> Value {
    json!({
        "app.kubernetes.io/name": workload.name,
        INSTANCE_LABEL: workload.name,
        "app.kubernetes.io/component": "mec-app",
        "app.kubernetes.io/part-of": "mecplane",
        MANAGED_BY_LABEL: MANAGED_BY,
    })
}

fn metadata(workload: &Workload, target: &Target<'_>, annotations: Value) -> Value {
    json!({
        "name": workload.name,
        "namespace": target.namespace,
        "labels": labels(workload),
        "annotations": annotations,
    })
}

fn owned_metadata(workload: &Workload, target: &Target<'_>, name: &str) -> Value {
    let mut meta = metadata(
        workload,
        target,
        json!({APP_INSTANCE_ANNOTATION: workload.app_instance_id}),
    );
    meta["name"] = json!(name);
    meta
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn port_name(port: &crate::Port) -> String {
    format!(
        "{}-{}",
        protocol(port.protocol).to_ascii_lowercase(),
        port.port
    )
}

fn pod_controller(workload: &Workload, target: &Target<'_>, kind: WorkloadKind) -> Value {
    let containers: Vec<Value> = workload
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut limits = serde_json::Map::new();
            if let Some(cpu) = c.cpu_limit_millis {
                limits.insert("cpu".into(), json!(format!("{cpu}m")));
            }
            if let Some(mem) = c.memory_limit_mib {
                limits.insert("memory".into(), json!(format!("{mem}Mi")));
            }
            if workload.gpus > 0 && i == 0 {
                limits.insert(GPU_RESOURCE.into(), json!(workload.gpus.to_string()));
            }
            let ports: Vec<Value> = if i == 0 {
                workload
                    .ports
                    .iter()
                    .map(|p| {
                        json!({
                            "name": port_name(p),
                            "containerPort": p.port,
                            "protocol": protocol(p.protocol),
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let mut env_from = vec![json!({"configMapRef": {"name": workload.name}})];
            let mut mounts = Vec::new();
            if !workload.secrets.is_empty() {
                env_from.push(json!({"secretRef": {"name": workload.name}}));
                mounts.push(json!({"name": "mec-secrets", "mountPath": SECRETS_DIR, "readOnly": true}));
            }
            json!({
                "name": c.name,
                "image": c.image,
                "envFrom": env_from,
                "volumeMounts": mounts,
                "ports": ports,
                "resources": {
                    "requests": {"cpu": format!("{}m", c.cpu_millis), "memory": format!("{}Mi", c.memory_mib)},
                    "limits": limits,
                },
            })
        })
        .collect();
    let mut node_selector = BTreeMap::new();
    if let Some(arch) = &workload.architecture {
        node_selector.insert("kubernetes.io/arch", kube_arch(arch).to_owned());
    }
    if workload.gpus > 0 {
        node_selector.insert(GPU_NODE_LABEL, "true".to_owned());
    }
    let mut tolerations = Vec::new();
    if target.flavour == Flavour::KubeEdge {
        node_selector.insert(EDGE_NODE_LABEL, String::new());
        tolerations.push(json!({"key": EDGE_NODE_LABEL, "operator": "Exists"}));
    }
    if let Some(node) = target.node {
        node_selector.insert("kubernetes.io/hostname", node.to_owned());
    }
    let selector = json!({INSTANCE_LABEL: workload.name});
    let mut pod_annotations = json!({APP_INSTANCE_ANNOTATION: workload.app_instance_id});
    let mut volumes = Vec::new();
    if !workload.secrets.is_empty() {
        pod_annotations[SECRETS_ANNOTATION] = json!(secrets_digest(workload));
        let items: Vec<Value> = workload
            .secrets
            .keys()
            .map(|k| json!({"key": k, "path": k.to_ascii_lowercase()}))
            .collect();
        volumes.push(json!({
            "name": "mec-secrets",
            "secret": {"secretName": workload.name, "items": items, "defaultMode": 0o400},
        }));
    }
    let mut spec = json!({
        "replicas": workload.replicas,
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": labels(workload),
                "annotations": pod_annotations,
            },
            "spec": {
                "containers": containers,
                "volumes": volumes,
                "nodeSelector": node_selector,
                "tolerations": tolerations,
                "enableServiceLinks": false,
            },
        },
    });
    if kind == WorkloadKind::StatefulSet {
        spec["serviceName"] = json!(workload.name);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": kind.as_str(),
        "metadata": owned_metadata(workload, target, &workload.name),
        "spec": spec,
    })
}

/// A short digest of the workload's secret values.
fn secrets_digest(workload: &Workload) -> String {
    let joined = serde_json::to_vec(&workload.secrets).unwrap_or_default();
    openssl::hash::hash(openssl::hash::MessageDigest::sha256(), &joined)
        .map(|d| d.iter().take(8).map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

/// The workload's secrets as a Secret; for a chart, also as a values file under
/// `mecplane.secrets` that the HelmChart names in `valuesSecrets`.
fn secret(workload: &Workload, target: &Target<'_>, kind: WorkloadKind) -> Value {
    let mut data: serde_json::Map<String, Value> = workload
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), json!(STANDARD.encode(v))))
        .collect();
    if kind == WorkloadKind::HelmChart {
        let values = json!({"mecplane": {"secrets": workload.secrets}});
        let yaml = serde_yaml::to_string(&values).unwrap_or_default();
        data.insert(SECRET_VALUES_KEY.into(), json!(STANDARD.encode(yaml)));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": owned_metadata(workload, target, &workload.name),
        "type": "Opaque",
        "data": data,
    })
}

fn service(workload: &Workload, target: &Target<'_>) -> Value {
    let ports: Vec<Value> = workload
        .ports
        .iter()
        .map(|p| {
            json!({
                "name": port_name(p),
                "port": p.port,
                "targetPort": p.port,
                "protocol": protocol(p.protocol),
            })
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owned_metadata(workload, target, &workload.name),
        "spec": {
            "selector": {INSTANCE_LABEL: workload.name},
            "ports": ports,
        },
    })
}

/// Helm values every chart gets: the replica count, the first container's image and resources,
/// and the platform's configuration under `mecplane` (its secrets come through
/// `valuesSecrets`, never in the HelmChart itself).
fn helm_values(workload: &Workload) -> Value {
    let mut values = json!({
        "replicaCount": workload.replicas,
        "mecplane": {"appInstanceId": workload.app_instance_id, "config": workload.config},
    });
    if let Some(c) = workload.containers.first() {
        let (repository, tag) = split_image(&c.image);
        values["image"] = json!({"repository": repository, "tag": tag});
        values["resources"] = json!({
            "requests": {"cpu": format!("{}m", c.cpu_millis), "memory": format!("{}Mi", c.memory_mib)},
        });
    }
    values
}

/// Splits an image reference into repository and tag (`latest` when untagged).
fn split_image(image: &str) -> (&str, &str) {
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(i) => (&image[..name_start + i], &image[name_start + i + 1..]),
        None => (image, "latest"),
    }
}

fn helm_chart(workload: &Workload, target: &Target<'_>) -> Value {
    let values = serde_yaml::to_string(&helm_values(workload)).unwrap_or_default();
    let value_secrets: Vec<Value> = if workload.secrets.is_empty() {
        Vec::new()
    } else {
        vec![json!({"name": workload.name, "keys": [SECRET_VALUES_KEY]})]
    };
    json!({
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": owned_metadata(workload, target, &workload.name),
        "spec": {
            "chartContent": workload.helm_chart,
            "targetNamespace": target.namespace,
            "valuesContent": values,
            "valuesSecrets": value_secrets,
            "set": {"replicaCount": workload.replicas},
        },
    })
}

fn devices(workload: &Workload, target: &Target<'_>) -> Vec<Value> {
    workload
        .devices
        .iter()
        .map(|d| {
            let name = format!("{}-{}", workload.name, d.name);
            let mut spec = json!({
                "deviceModelRef": {"name": d.model},
                "nodeName": target.node,
            });
            if let Some(p) = &d.protocol {
                spec["protocol"] = json!({"protocolName": p});
            }
            json!({
                "apiVersion": "devices.kubeedge.io/v1beta1",
                "kind": "Device",
                "metadata": owned_metadata(workload, target, &name),
                "spec": spec,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::core::v1::{ConfigMap, Service};

    use super::*;
    use crate::{Container, DeviceRequest, Port};

    fn workload() -> Workload {
        Workload {
            name: "mec-abc".into(),
            app_instance_id: "ABC".into(),
            containers: vec![Container {
                name: "app".into(),
                image: "registry.example:5000/acme/video:1.2".into(),
                cpu_millis: 500,
                memory_mib: 256,
                cpu_limit_millis: Some(1000),
                memory_limit_mib: None,
            }],
            gpus: 1,
            architecture: Some("aarch64".into()),
            replicas: 1,
            config: [("appDId".to_owned(), "d1".to_owned())].into(),
            secrets: BTreeMap::new(),
            ports: vec![Port {
                port: 1883,
                protocol: Protocol::Tcp,
            }],
            stateful: false,
            helm_chart: None,
            devices: vec![DeviceRequest {
                name: "sensor".into(),
                model: "thermo".into(),
                protocol: Some("modbus".into()),
            }],
        }
    }

    fn target(flavour: Flavour) -> Target<'static> {
        Target {
            namespace: "mec",
            flavour,
            node: (flavour == Flavour::KubeEdge).then_some("edge-0"),
        }
    }

    #[test]
    fn kubernetes_objects_parse_as_their_types() {
        let w = workload();
        let t = target(Flavour::Kubernetes);
        let cm: ConfigMap = serde_json::from_value(anchor(&w, &t)).unwrap();
        assert_eq!(cm.data.unwrap()["appDId"], "d1");
        let objects = dependents(&w, &t, "uid-1");
        assert_eq!(objects.len(), 2, "deployment and service, no devices");
        let d: Deployment = serde_json::from_value(objects[0].clone()).unwrap();
        assert_eq!(d.metadata.owner_references.unwrap()[0].uid, "uid-1");
        let pod = d.spec.template.spec.unwrap();
        let sel = pod.node_selector.unwrap();
        assert_eq!(sel["kubernetes.io/arch"], "arm64");
        assert_eq!(sel[GPU_NODE_LABEL], "true");
        let res = pod.containers[0].resources.clone().unwrap();
        assert_eq!(res.requests.unwrap()["cpu"].0, "500m");
        let limits = res.limits.unwrap();
        assert_eq!(limits["cpu"].0, "1000m");
        assert_eq!(limits[GPU_RESOURCE].0, "1");
        let s: Service = serde_json::from_value(objects[1].clone()).unwrap();
        assert_eq!(s.spec.unwrap().ports.unwrap()[0].port, 1883);
    }

    #[test]
    fn secrets_reach_every_container_as_environment_and_files() {
        let mut w = workload();
        w.secrets = [("MEC_CLIENT_SECRET".to_owned(), "s3cr3t".to_owned())].into();
        let t = target(Flavour::Kubernetes);
        let objects = dependents(&w, &t, "uid-1");
        assert_eq!(objects.len(), 3, "secret, deployment, service");
        let secret: k8s_openapi::api::core::v1::Secret =
            serde_json::from_value(objects[0].clone()).unwrap();
        assert_eq!(secret.data.unwrap()["MEC_CLIENT_SECRET"].0, b"s3cr3t");
        assert_eq!(secret.metadata.owner_references.unwrap()[0].uid, "uid-1");
        assert!(
            !anchor(&w, &t).to_string().contains("s3cr3t"),
            "the ConfigMap never holds a secret"
        );
        let d: Deployment = serde_json::from_value(objects[1].clone()).unwrap();
        let template = d.spec.template;
        let digest = template.metadata.unwrap().annotations.unwrap()[SECRETS_ANNOTATION].clone();
        let pod = template.spec.unwrap();
        let c = &pod.containers[0];
        let env_from = c.env_from.as_ref().unwrap();
        assert_eq!(env_from[1].secret_ref.as_ref().unwrap().name, "mec-abc");
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, SECRETS_DIR);
        let volume = &pod.volumes.unwrap()[0];
        let items = volume.secret.as_ref().unwrap().items.clone().unwrap();
        assert_eq!(items[0].path, "mec_client_secret");
        // another secret value rolls the pods
        w.secrets
            .insert("MEC_CLIENT_SECRET".into(), "rotated".into());
        let rolled = dependents(&w, &t, "uid-1");
        assert_ne!(
            rolled[1]["spec"]["template"]["metadata"]["annotations"][SECRETS_ANNOTATION],
            json!(digest)
        );
    }

    #[test]
    fn stateful_workloads_become_statefulsets() {
        let mut w = workload();
        w.stateful = true;
        let objects = dependents(&w, &target(Flavour::Kubernetes), "u");
        let s: StatefulSet = serde_json::from_value(objects[0].clone()).unwrap();
        assert_eq!(s.spec.service_name.as_deref(), Some("mec-abc"));
    }

    #[test]
    fn kubeedge_pins_tolerates_and_binds_devices() {
        let w = workload();
        let objects = dependents(&w, &target(Flavour::KubeEdge), "u");
        let d: Deployment = serde_json::from_value(objects[0].clone()).unwrap();
        let pod = d.spec.template.spec.unwrap();
        assert_eq!(pod.node_selector.as_ref().unwrap()[EDGE_NODE_LABEL], "");
        assert_eq!(
            pod.node_selector.unwrap()["kubernetes.io/hostname"],
            "edge-0"
        );
        assert_eq!(
            pod.tolerations.unwrap()[0].key.as_deref(),
            Some(EDGE_NODE_LABEL)
        );
        let device = &objects[2];
        assert_eq!(device["kind"], "Device");
        assert_eq!(device["metadata"]["name"], "mec-abc-sensor");
        assert_eq!(device["spec"]["deviceModelRef"]["name"], "thermo");
        assert_eq!(device["spec"]["nodeName"], "edge-0");
    }

    #[test]
    fn k3s_installs_charts_through_helmchart() {
        let mut w = workload();
        w.helm_chart = Some("H4sI".into());
        let t = target(Flavour::K3s);
        assert_eq!(
            anchor(&w, &t)["metadata"]["annotations"][KIND_ANNOTATION],
            "HelmChart"
        );
        let objects = dependents(&w, &t, "u");
        assert_eq!(objects.len(), 1);
        let chart = &objects[0];
        assert_eq!(chart["spec"]["chartContent"], "H4sI");
        assert_eq!(chart["spec"]["valuesSecrets"], json!([]));
        let mut secret_w = w.clone();
        secret_w.secrets = [("MEC_CLIENT_ID".to_owned(), "c".to_owned())].into();
        let with_secret = dependents(&secret_w, &t, "u");
        let values_file = STANDARD
            .decode(with_secret[0]["data"][SECRET_VALUES_KEY].as_str().unwrap())
            .unwrap();
        let values_file: Value = serde_yaml::from_slice(&values_file).unwrap();
        assert_eq!(values_file["mecplane"]["secrets"]["MEC_CLIENT_ID"], "c");
        assert_eq!(
            with_secret[1]["spec"]["valuesSecrets"][0],
            json!({"name": "mec-abc", "keys": [SECRET_VALUES_KEY]})
        );
        assert!(!with_secret[1].to_string().contains("MEC_CLIENT_ID"));
        let values: Value =
            serde_yaml::from_str(chart["spec"]["valuesContent"].as_str().unwrap()).unwrap();
        assert_eq!(
            values["image"]["repository"],
            "registry.example:5000/acme/video"
        );
        assert_eq!(values["image"]["tag"], "1.2");
        assert_eq!(values["replicaCount"], 1);
        // Without a chart K3s runs raw manifests like any cluster.
        w.helm_chart = None;
        assert_eq!(dependents(&w, &t, "u")[0]["kind"], "Deployment");
    }

    #[test]
    fn images_split_at_the_tag_not_the_registry_port() {
        assert_eq!(split_image("a/b:1"), ("a/b", "1"));
        assert_eq!(split_image("reg:5000/b"), ("reg:5000/b", "latest"));
        assert_eq!(split_image("nginx"), ("nginx", "latest"));
    }
}
