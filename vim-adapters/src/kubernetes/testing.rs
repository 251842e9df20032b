//! The real test clusters started by `tests/k8s-env/up.sh` (feature `test-support`).
//!
//! `MECPLANE_K8S_ENV` names the state directory up.sh wrote. Without it the cluster tests
//! skip, except under `CI=true`, where its absence fails them.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{ClusterConnection, Flavour};

/// A running environment of test clusters.
#[derive(Debug, Clone)]
pub struct TestEnv {
    dir: PathBuf,
    vars: BTreeMap<String, String>,
}

impl TestEnv {
    /// The environment from `MECPLANE_K8S_ENV`; `None` (tests skip) when unset outside CI.
    pub fn get() -> Option<Self> {
        let Some(dir) = std::env::var_os("MECPLANE_K8S_ENV").filter(|d| !d.is_empty()) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but MECPLANE_K8S_ENV is not set: the cluster tests cannot run"
            );
            eprintln!("MECPLANE_K8S_ENV not set: skipping a cluster test");
            return None;
        };
        let dir = PathBuf::from(dir);
        let text = std::fs::read_to_string(dir.join("env")).unwrap_or_default();
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Self { dir, vars })
    }

    fn flavour_name(flavour: Flavour) -> &'static str {
        match flavour {
            Flavour::Kubernetes => "kubernetes",
            Flavour::K3s => "k3s",
            Flavour::KubeEdge => "kubeedge",
        }
    }

    /// The kubeconfig of the cluster of `flavour`.
    pub fn kubeconfig(&self, flavour: Flavour) -> PathBuf {
        let key = format!("KUBECONFIG_{}", Self::flavour_name(flavour).to_uppercase());
        PathBuf::from(&self.vars[&key])
    }

    /// The kubeconfig of the cluster of `flavour` as a client of the inventory API gives it:
    /// its CA certificate inline.
    pub fn kubeconfig_content(&self, flavour: Flavour) -> String {
        let text = std::fs::read_to_string(self.kubeconfig(flavour)).unwrap();
        let (head, rest) = text.split_once("certificate-authority: \"").unwrap();
        let (ca, tail) = rest.split_once('"').unwrap();
        let ca = base64::engine::general_purpose::STANDARD.encode(std::fs::read(ca).unwrap());
        format!("{head}certificate-authority-data: \"{ca}\"{tail}")
    }

    /// A connection to the cluster of `flavour` in a fresh namespace (flavour detected).
    pub fn connection(&self, flavour: Flavour) -> ClusterConnection {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        ClusterConnection {
            kubeconfig: Some(self.kubeconfig(flavour)),
            kubeconfig_content: None,
            context: None,
            namespace: format!(
                "t-{}-{:x}-{}",
                std::process::id(),
                nanos,
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            flavour: None,
        }
    }

    /// A tool built with the environment (`kubectl`, `helm`).
    pub fn tool(&self, name: &str) -> PathBuf {
        PathBuf::from(&self.vars["K8S_ENV_BIN"]).join(name)
    }

    /// Runs kubectl against the cluster of `flavour`; returns stdout, panics on failure.
    pub fn kubectl(&self, flavour: Flavour, args: &[&str]) -> String {
        let out = Command::new(self.tool("kubectl"))
            .arg(format!(
                "--kubeconfig={}",
                self.kubeconfig(flavour).display()
            ))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops (`"stop"`) or starts (`"start"`) a component such as `kubernetes-apiserver`.
    pub fn component(&self, action: &str, name: &str) {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/k8s-env/component.sh");
        let status = Command::new(script)
            .args([self.dir.as_os_str(), action.as_ref(), name.as_ref()])
            .status()
            .unwrap();
        assert!(status.success(), "component.sh {action} {name}");
    }

    /// What K3s's helm-controller does with a HelmChart, done with the real helm CLI: installs
    /// the chart content with its values and `set` overrides into the target namespace.
    /// Returns whether the HelmChart exists.
    pub fn helm_controller_standin(&self, ns: &str, name: &str) -> bool {
        let out = Command::new(self.tool("kubectl"))
            .arg(format!(
                "--kubeconfig={}",
                self.kubeconfig(Flavour::K3s).display()
            ))
            .args(["get", "helmchart", name, "-n", ns, "-o", "json"])
            .output()
            .unwrap();
        if !out.status.success() {
            return false;
        }
        let chart: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let dir = tempfile_dir();
        let tgz = base64::engine::general_purpose::STANDARD
            .decode(chart["spec"]["chartContent"].as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join("chart.tgz"), tgz).unwrap();
        std::fs::write(
            dir.join("values.yaml"),
            chart["spec"]["valuesContent"].as_str().unwrap(),
        )
        .unwrap();
        // valuesSecrets: each named key of each Secret is one more values file
        let mut values_files = vec!["values.yaml".to_owned()];
        for (i, source) in chart["spec"]["valuesSecrets"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let out = Command::new(self.tool("kubectl"))
                .arg(format!(
                    "--kubeconfig={}",
                    self.kubeconfig(Flavour::K3s).display()
                ))
                .args([
                    "get",
                    "secret",
                    source["name"].as_str().unwrap(),
                    "-n",
                    ns,
                    "-o",
                    "json",
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "valuesSecrets names a missing Secret");
            let secret: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            for key in source["keys"].as_array().unwrap() {
                let file = format!("secret-values-{i}-{}", key.as_str().unwrap());
                let content = base64::engine::general_purpose::STANDARD
                    .decode(secret["data"][key.as_str().unwrap()].as_str().unwrap())
                    .unwrap();
                std::fs::write(dir.join(&file), content).unwrap();
                values_files.push(file);
            }
        }
        let replicas = chart["spec"]["set"]["replicaCount"].to_string();
        let rendered = Command::new(self.tool("helm"))
            .current_dir(&dir)
            .args(["template", name, "chart.tgz", "--namespace", ns])
            .args(values_files.iter().flat_map(|f| ["-f", f.as_str()]))
            .args(["--set", &format!("replicaCount={replicas}")])
            .output()
            .unwrap();
        assert!(
            rendered.status.success(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        let mut apply = Command::new(self.tool("kubectl"))
            .arg(format!(
                "--kubeconfig={}",
                self.kubeconfig(Flavour::K3s).display()
            ))
            .args(["apply", "-n", ns, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        apply
            .stdin
            .take()
            .unwrap()
            .write_all(&rendered.stdout)
            .unwrap();
        assert!(apply.wait().unwrap().success());
        let _ = std::fs::remove_dir_all(&dir);
        true
    }
}

/// A fresh scratch directory.
fn tempfile_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mecplane-helm-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
