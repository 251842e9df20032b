//! The simulated VIM: a site with a fixed amount of CPU, memory and GPUs, workloads that take a
//! configurable time to become ready, and failures that tests inject per operation. With a
//! state file its workloads outlive the process, as a real cluster outlives the MEAO.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::{Capacity, Vim, VimError, Workload, WorkloadPhase, WorkloadStatus};

/// Operations a failure can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// [`Vim::capacity`].
    Capacity,
    /// [`Vim::apply`].
    Apply,
    /// [`Vim::status`].
    Status,
    /// [`Vim::scale`].
    Scale,
    /// [`Vim::delete`].
    Delete,
}

#[derive(Debug)]
struct Deployed {
    workload: Workload,
    replicas: u32,
    since: Instant,
}

#[derive(Debug, Default)]
struct State {
    offline: bool,
    workloads: BTreeMap<String, Deployed>,
    failures: BTreeMap<Operation, VecDeque<VimError>>,
    calls: BTreeMap<Operation, u64>,
}

/// A simulated site.
#[derive(Debug)]
pub struct SimulatedVim {
    total: Capacity,
    startup: Duration,
    state: Mutex<State>,
    state_file: Option<std::path::PathBuf>,
}

/// What the state file holds: each workload and its replicas.
type Persisted = Vec<(Workload, u32)>;

impl SimulatedVim {
    /// A site with `total` resources whose workloads become ready after `startup`.
    pub fn new(total: Capacity, startup: Duration) -> Self {
        Self {
            total,
            startup,
            state: Mutex::new(State::default()),
            state_file: None,
        }
    }

    /// A site whose workloads are kept in `path` (loaded now, as already running; written
    /// after every change).
    pub fn with_state_file(
        total: Capacity,
        startup: Duration,
        path: std::path::PathBuf,
    ) -> Result<Self, VimError> {
        let unavailable =
            |e: &dyn std::fmt::Display| VimError::Unavailable(format!("{}: {e}", path.display()));
        let mut state = State::default();
        if path.exists() {
            let text = std::fs::read(&path).map_err(|e| unavailable(&e))?;
            let persisted: Persisted =
                serde_json::from_slice(&text).map_err(|e| unavailable(&e))?;
            let since = Instant::now()
                .checked_sub(startup)
                .unwrap_or_else(Instant::now);
            for (workload, replicas) in persisted {
                state.workloads.insert(
                    workload.name.clone(),
                    Deployed {
                        workload,
                        replicas,
                        since,
                    },
                );
            }
        }
        Ok(Self {
            total,
            startup,
            state: Mutex::new(state),
            state_file: Some(path),
        })
    }

    fn persist(&self, state: &State) -> Result<(), VimError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let persisted: Persisted = state
            .workloads
            .values()
            .map(|d| (d.workload.clone(), d.replicas))
            .collect();
        let err =
            |e: &dyn std::fmt::Display| VimError::Unavailable(format!("{}: {e}", path.display()));
        let temp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(&persisted).map_err(|e| err(&e))?;
        std::fs::write(&temp, bytes).map_err(|e| err(&e))?;
        std::fs::rename(&temp, path).map_err(|e| err(&e))
    }

    /// Makes the next call of `operation` fail with `error` (queued; one per call).
    pub fn inject(&self, operation: Operation, error: VimError) {
        if let Ok(mut s) = self.state.lock() {
            s.failures.entry(operation).or_default().push_back(error);
        }
    }

    /// Simulates an outage: while offline every operation fails as unreachable.
    pub fn set_offline(&self, offline: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.offline = offline;
        }
    }

    /// How many times `operation` was called.
    pub fn calls(&self, operation: Operation) -> u64 {
        self.state
            .lock()
            .map(|s| s.calls.get(&operation).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn enter(&self, operation: Operation) -> Result<std::sync::MutexGuard<'_, State>, VimError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| VimError::Unavailable("simulator state poisoned".into()))?;
        *state.calls.entry(operation).or_default() += 1;
        if state.offline {
            return Err(VimError::Unavailable("the site is unreachable".into()));
        }
        if let Some(error) = state
            .failures
            .get_mut(&operation)
            .and_then(VecDeque::pop_front)
        {
            return Err(error);
        }
        Ok(state)
    }

    fn free(&self, state: &State, except: Option<&str>) -> Capacity {
        let mut free = self.total.clone();
        for (name, d) in &state.workloads {
            if Some(name.as_str()) == except {
                continue;
            }
            let (cpu, mem) = d.workload.requests();
            let n = u64::from(d.replicas);
            free.cpu_millis = free.cpu_millis.saturating_sub(cpu * n);
            free.memory_mib = free.memory_mib.saturating_sub(mem * n);
            free.gpus = free.gpus.saturating_sub(d.workload.gpus * d.replicas);
        }
        free
    }

    fn fits(&self, state: &State, workload: &Workload, replicas: u32) -> Result<(), VimError> {
        if let Some(arch) = workload
            .architecture
            .as_ref()
            .filter(|arch| !self.total.architectures.contains(arch))
        {
            return Err(VimError::Rejected(format!("no {arch} nodes on this site")));
        }
        let free = self.free(state, Some(&workload.name));
        let (cpu, mem) = workload.requests();
        let n = u64::from(replicas);
        if cpu * n > free.cpu_millis
            || mem * n > free.memory_mib
            || workload.gpus * replicas > free.gpus
        {
            return Err(VimError::InsufficientCapacity(format!(
                "{} needs {}m CPU, {} MiB, {} GPU; free {}m, {} MiB, {} GPU",
                workload.name,
                cpu * n,
                mem * n,
                workload.gpus * replicas,
                free.cpu_millis,
                free.memory_mib,
                free.gpus
            )));
        }
        Ok(())
    }
}

impl Vim for SimulatedVim {
    fn capacity(&self) -> BoxFuture<'_, Result<Capacity, VimError>> {
        Box::pin(async move {
            let state = self.enter(Operation::Capacity)?;
            Ok(self.free(&state, None))
        })
    }

    fn apply<'a>(&'a self, workload: &'a Workload) -> BoxFuture<'a, Result<(), VimError>> {
        Box::pin(async move {
            let mut state = self.enter(Operation::Apply)?;
            if workload.containers.is_empty() {
                return Err(VimError::Rejected(
                    "a workload needs at least one container".into(),
                ));
            }
            self.fits(&state, workload, workload.replicas)?;
            let unchanged = state
                .workloads
                .get(&workload.name)
                .is_some_and(|d| d.workload == *workload && d.replicas == workload.replicas);
            if !unchanged {
                state.workloads.insert(
                    workload.name.clone(),
                    Deployed {
                        workload: workload.clone(),
                        replicas: workload.replicas,
                        since: Instant::now(),
                    },
                );
                self.persist(&state)?;
            }
            Ok(())
        })
    }

    fn status<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadStatus>, VimError>> {
        Box::pin(async move {
            let state = self.enter(Operation::Status)?;
            Ok(state.workloads.get(name).map(|d| {
                let ready = d.since.elapsed() >= self.startup;
                let phase = match (d.replicas, ready) {
                    (0, _) => WorkloadPhase::Stopped,
                    (_, true) => WorkloadPhase::Running,
                    (_, false) => WorkloadPhase::Starting,
                };
                WorkloadStatus {
                    ready_replicas: if ready { d.replicas } else { 0 },
                    desired_replicas: d.replicas,
                    phase,
                }
            }))
        })
    }

    fn scale<'a>(&'a self, name: &'a str, replicas: u32) -> BoxFuture<'a, Result<(), VimError>> {
        Box::pin(async move {
            let mut state = self.enter(Operation::Scale)?;
            let workload = state
                .workloads
                .get(name)
                .map(|d| d.workload.clone())
                .ok_or_else(|| VimError::NotFound(name.to_owned()))?;
            self.fits(&state, &workload, replicas)?;
            if let Some(d) = state
                .workloads
                .get_mut(name)
                .filter(|d| d.replicas != replicas)
            {
                d.replicas = replicas;
                d.since = Instant::now();
                self.persist(&state)?;
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), VimError>> {
        Box::pin(async move {
            let mut state = self.enter(Operation::Delete)?;
            if state.workloads.remove(name).is_some() {
                self.persist(&state)?;
            }
            Ok(())
        })
    }

    fn list_owned(&self) -> BoxFuture<'_, Result<Vec<String>, VimError>> {
        Box::pin(async move {
            let state = self
                .state
                .lock()
                .map_err(|_| VimError::Unavailable("simulator state poisoned".into()))?;
            Ok(state.workloads.keys().cloned().collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Container, workload_name};

    fn site() -> SimulatedVim {
        SimulatedVim::new(
            Capacity {
                cpu_millis: 4000,
                memory_mib: 8192,
                gpus: 1,
                architectures: vec!["x86_64".into()],
                labels: BTreeMap::new(),
            },
            Duration::from_millis(50),
        )
    }

    fn workload(id: &str, cpu: u64, gpus: u32) -> Workload {
        Workload {
            name: workload_name(id),
            app_instance_id: id.into(),
            containers: vec![Container {
                name: "c".into(),
                image: "img:1".into(),
                cpu_millis: cpu,
                memory_mib: 1024,
                ..Container::default()
            }],
            gpus,
            architecture: Some("x86_64".into()),
            replicas: 1,
            config: BTreeMap::new(),
            ..Workload::default()
        }
    }

    #[tokio::test]
    async fn lifecycle_capacity_and_idempotence() {
        let vim = site();
        let w = workload("a", 3000, 1);
        vim.apply(&w).await.unwrap();
        vim.apply(&w).await.unwrap();
        assert_eq!(
            vim.capacity().await.unwrap().cpu_millis,
            1000,
            "applied twice, counted once"
        );
        assert_eq!(
            vim.status(&w.name).await.unwrap().unwrap().phase,
            WorkloadPhase::Starting
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            vim.status(&w.name).await.unwrap().unwrap().phase,
            WorkloadPhase::Running
        );
        let err = vim.apply(&workload("b", 2000, 0)).await.unwrap_err();
        assert!(matches!(err, VimError::InsufficientCapacity(_)) && err.retryable());
        vim.scale(&w.name, 0).await.unwrap();
        assert_eq!(
            vim.status(&w.name).await.unwrap().unwrap().phase,
            WorkloadPhase::Stopped
        );
        assert_eq!(
            vim.capacity().await.unwrap().gpus,
            1,
            "stopped workloads free their resources"
        );
        vim.apply(&workload("b", 2000, 0)).await.unwrap();
        vim.delete(&w.name).await.unwrap();
        vim.delete(&w.name).await.unwrap();
        assert_eq!(vim.list_owned().await.unwrap(), vec![workload_name("b")]);
        assert!(vim.status(&w.name).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn state_file_outlives_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("site.json");
        let total = site().total;
        let first =
            SimulatedVim::with_state_file(total.clone(), Duration::from_secs(60), file.clone())
                .unwrap();
        first.apply(&workload("a", 1000, 0)).await.unwrap();
        first.apply(&workload("b", 1000, 0)).await.unwrap();
        drop(first);
        let reloaded =
            SimulatedVim::with_state_file(total.clone(), Duration::from_secs(60), file.clone())
                .unwrap();
        assert_eq!(
            reloaded.list_owned().await.unwrap().len(),
            2,
            "applies are persisted"
        );
        reloaded.scale(&workload_name("a"), 0).await.unwrap();
        reloaded.delete(&workload_name("b")).await.unwrap();
        drop(reloaded);
        let stopped =
            SimulatedVim::with_state_file(total.clone(), Duration::from_secs(60), file.clone())
                .unwrap();
        assert_eq!(
            stopped
                .status(&workload_name("a"))
                .await
                .unwrap()
                .unwrap()
                .phase,
            WorkloadPhase::Stopped,
            "scales are persisted"
        );
        stopped.scale(&workload_name("a"), 1).await.unwrap();
        drop(stopped);
        let second = SimulatedVim::with_state_file(total, Duration::from_secs(60), file).unwrap();
        assert_eq!(second.list_owned().await.unwrap(), vec![workload_name("a")]);
        assert_eq!(
            second
                .status(&workload_name("a"))
                .await
                .unwrap()
                .unwrap()
                .phase,
            WorkloadPhase::Running
        );
        assert_eq!(second.capacity().await.unwrap().cpu_millis, 3000);
    }

    #[tokio::test]
    async fn injected_failures_and_architecture() {
        let vim = site();
        vim.inject(
            Operation::Apply,
            VimError::Unavailable("apiserver down".into()),
        );
        let w = workload("a", 100, 0);
        assert!(vim.apply(&w).await.unwrap_err().retryable());
        vim.apply(&w).await.unwrap();
        assert_eq!(vim.calls(Operation::Apply), 2);
        let mut arm = workload("arm", 100, 0);
        arm.architecture = Some("aarch64".into());
        assert!(!vim.apply(&arm).await.unwrap_err().retryable());
    }
}
