//! Durable multi-step operations (sagas), linear: ordered, idempotent steps, each with an
//! undo. Omicron's steno DAGs are more than LCM needs; a step log in the database is enough.
//!
//! A saga row is written before the first step runs and advanced after every step, holding
//! the step outputs, a cursor and a direction. Work is claimed with a lease: only the lease
//! owner may advance a saga, so two MEAO replicas on one database never run the same step, and
//! a saga whose owner died is taken over once its lease expires ([`Executor::recover`]).
//! Because progress is recorded after a step, a crash re-runs that step, which is why steps
//! must be idempotent (deterministic names, apply-style writes, deletes that accept "gone").
//!
//! Failures: a retryable error pauses the saga in FAILED_TEMP at the failing step (retry
//! resumes there); a permanent error undoes every step run so far, including the failing one,
//! then pauses in FAILED_TEMP (retry starts over). An operator may also roll back or fail a
//! paused saga (FAILED is final).
//!
//! Every step and undo runs in its own span (`<kind> <step>`, `<kind> undo <step>`), a child
//! of the span the saga is run in; a failed one has an error status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tracing::Instrument;

use api_specs::mm1::app_lcm::{OpOccStep, OpOccStepState};

use crate::store::{SagaRow, Store, StoreError};

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Retrying later may succeed (VIM unreachable, conflict, capacity).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot succeed.
    #[error("{0}")]
    Permanent(String),
}

impl From<vim_adapters::VimError> for StepError {
    fn from(e: vim_adapters::VimError) -> Self {
        if e.retryable() {
            Self::Retryable(e.to_string())
        } else {
            Self::Permanent(e.to_string())
        }
    }
}

/// What a step sees: the saga's id and parameters, and the outputs of the steps before it.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The saga id.
    pub saga_id: &'a str,
    /// The parameters the saga was created with.
    pub params: &'a Value,
    /// Outputs of completed steps, by step name.
    pub outputs: &'a serde_json::Map<String, Value>,
}

/// A forward action: returns the step's output.
pub type Forward<C> = for<'a> fn(&'a C, StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>>;
/// An undo action.
pub type Undo<C> = for<'a> fn(&'a C, StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>>;

/// One step.
pub struct Step<C> {
    /// Name (the key of its output).
    pub name: &'static str,
    /// The action.
    pub forward: Forward<C>,
    /// Its compensation.
    pub undo: Undo<C>,
}

/// A kind of saga: its name and ordered steps.
pub struct SagaKind<C> {
    /// Name, stored with each saga.
    pub name: &'static str,
    /// Steps in order.
    pub steps: Vec<Step<C>>,
}

/// Status of a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStatus {
    /// Being executed (or waiting for an executor).
    Running,
    /// Every step done.
    Succeeded,
    /// Paused after a failure; retry, rollback or fail.
    FailedTemp,
    /// Given up (final).
    Failed,
}

impl SagaStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::FailedTemp => "FAILED_TEMP",
            Self::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "SUCCEEDED" => Self::Succeeded,
            "FAILED_TEMP" => Self::FailedTemp,
            "FAILED" => Self::Failed,
            _ => Self::Running,
        }
    }
}

const FORWARD: &str = "FORWARD";
const BACKWARD: &str = "BACKWARD";

/// Where a simulated crash happens (tests and fault drills): around the `step`-th action of
/// the given direction of sagas of kind `kind`, before or after its progress is recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Fault {
    /// Saga kind.
    pub kind: String,
    /// Index of the step.
    pub step: usize,
    /// Undo (true) or forward (false).
    pub undo: bool,
    /// After recording progress (true) or before (false).
    pub after_record: bool,
    /// The forward step of this index fails permanently instead of running, as a refusal
    /// would: the saga turns to undoing what it did, so a drill reaches any saga's undo path.
    #[serde(default)]
    pub fail_at: Option<usize>,
}

/// An executor failure (not a step failure, which the saga records).
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    /// No such saga.
    #[error("saga {0} not found")]
    NotFound(String),
    /// The saga's kind is unknown to this executor.
    #[error("unknown saga kind {0}")]
    UnknownKind(String),
    /// The saga is not in a state that allows the request.
    #[error("saga {id} is {status:?}")]
    WrongState {
        /// Saga id.
        id: String,
        /// Its status.
        status: SagaStatus,
    },
    /// Another executor holds the saga's lease.
    #[error("saga {0} is held by another executor")]
    Leased(String),
    /// A simulated crash stopped the executor.
    #[error("simulated crash")]
    Crashed,
    /// Persistence failed.
    #[error("store failure")]
    Store(#[from] StoreError),
}

/// Runs sagas of the registered kinds against a context `C` (the VIMs, the store, ...).
pub struct Executor<C> {
    store: Store,
    ctx: Arc<C>,
    kinds: BTreeMap<&'static str, Arc<SagaKind<C>>>,
    owner: String,
    lease: Duration,
    fault: Option<Fault>,
}

impl<C> std::fmt::Debug for Executor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

fn lease_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs one step's action in its span, marked failed when it fails.
async fn traced<T>(
    saga_id: &str,
    name: String,
    action: impl std::future::Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    let span = tracing::info_span!(
        "saga step",
        otel.name = %name,
        saga_id = %saga_id,
        otel.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    let outcome = action.instrument(span.clone()).await;
    if let Err(e) = &outcome {
        span.record("otel.status_code", "ERROR");
        span.record("error", e.to_string());
    }
    outcome
}

impl<C: Send + Sync + 'static> Executor<C> {
    /// An executor identified by `owner` (unique per process), leasing sagas for `lease`.
    pub fn new(
        store: Store,
        ctx: Arc<C>,
        kinds: Vec<SagaKind<C>>,
        owner: String,
        lease: Duration,
    ) -> Self {
        Self {
            store,
            ctx,
            kinds: kinds.into_iter().map(|k| (k.name, Arc::new(k))).collect(),
            owner,
            lease,
            fault: None,
        }
    }

    /// Arms a simulated crash.
    pub fn with_fault(mut self, fault: Option<Fault>) -> Self {
        self.fault = fault;
        self
    }

    /// Records a new saga (RUNNING, nothing done) before any work starts.
    pub async fn create(&self, kind: &str, id: &str, params: Value) -> Result<(), SagaError> {
        if !self.kinds.contains_key(kind) {
            return Err(SagaError::UnknownKind(kind.to_owned()));
        }
        let row = SagaRow {
            id: id.to_owned(),
            kind: kind.to_owned(),
            params: params.to_string(),
            outputs: "{}".into(),
            cursor: 0,
            direction: FORWARD.into(),
            status: SagaStatus::Running.as_str().into(),
            error: None,
        };
        self.store
            .saga_insert(&row, server_kit::unix_millis_now())
            .await?;
        Ok(())
    }

    /// The status and last error of a saga.
    pub async fn status(&self, id: &str) -> Result<(SagaStatus, Option<String>), SagaError> {
        let row = self
            .store
            .saga_get(id)
            .await?
            .ok_or_else(|| SagaError::NotFound(id.to_owned()))?;
        Ok((SagaStatus::parse(&row.status), row.error))
    }

    fn crash(
        &self,
        kind: &str,
        step: usize,
        undo: bool,
        after_record: bool,
    ) -> Result<(), SagaError> {
        match &self.fault {
            Some(f)
                if f.kind == kind
                    && f.step == step
                    && f.undo == undo
                    && f.after_record == after_record =>
            {
                Err(SagaError::Crashed)
            }
            _ => Ok(()),
        }
    }

    fn fails(&self, kind: &str, step: usize) -> bool {
        self.fault
            .as_ref()
            .is_some_and(|f| f.kind == kind && f.fail_at == Some(step))
    }

    /// Runs `step` while renewing the saga's lease every third of its length; gives up the step
    /// (and reports the saga leased) if the lease is lost to another executor.
    async fn leased<T>(
        &self,
        id: &str,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, SagaError> {
        let renew = async {
            loop {
                tokio::time::sleep(self.lease / 3).await;
                let now = server_kit::unix_millis_now();
                match self
                    .store
                    .saga_claim(
                        id,
                        &self.owner,
                        now,
                        now.saturating_add(lease_ms(self.lease)),
                    )
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(saga = %id, error = %e, "lease renewal failed"),
                }
            }
        };
        tokio::select! {
            out = step => Ok(out),
            () = renew => Err(SagaError::Leased(id.to_owned())),
        }
    }

    /// Ids of RUNNING sagas whose lease expired (their executor died or lost them).
    pub async fn claimable(&self) -> Result<Vec<String>, SagaError> {
        Ok(self
            .store
            .saga_list_claimable(server_kit::unix_millis_now())
            .await?)
    }

    /// Takes (or renews) the saga's lease for this executor and reads it; None if another
    /// executor holds it or it no longer runs.
    async fn claim(&self, id: &str) -> Result<Option<SagaRow>, SagaError> {
        let now = server_kit::unix_millis_now();
        let until = now.saturating_add(lease_ms(self.lease));
        if !self.store.saga_claim(id, &self.owner, now, until).await? {
            return Ok(None);
        }
        self.store
            .saga_get(id)
            .await?
            .map(Some)
            .ok_or_else(|| SagaError::NotFound(id.to_owned()))
    }

    /// The status of a saga this executor could not claim: leased while another runs it.
    async fn ended(&self, id: &str) -> Result<SagaStatus, SagaError> {
        let row = self
            .store
            .saga_get(id)
            .await?
            .ok_or_else(|| SagaError::NotFound(id.to_owned()))?;
        match SagaStatus::parse(&row.status) {
            SagaStatus::Running => Err(SagaError::Leased(id.to_owned())),
            done => Ok(done),
        }
    }

    /// Runs a saga until it succeeds, pauses or fails; returns its status.
    pub async fn run(&self, id: &str) -> Result<SagaStatus, SagaError> {
        // the row as this executor last committed it, while it holds the lease: the next step
        // starts from it without claiming and reading again (a cancel meanwhile fails the
        // next commit, which reloads)
        let mut committed: Option<SagaRow> = None;
        loop {
            let mut row = match committed.take() {
                Some(row) => row,
                None => match self.claim(id).await? {
                    Some(row) => row,
                    None => return self.ended(id).await,
                },
            };
            let kind = self
                .kinds
                .get(row.kind.as_str())
                .cloned()
                .ok_or_else(|| SagaError::UnknownKind(row.kind.clone()))?;
            let params: Value = serde_json::from_str(&row.params).unwrap_or(Value::Null);
            let mut outputs: serde_json::Map<String, Value> =
                serde_json::from_str(&row.outputs).unwrap_or_default();
            let cursor = usize::try_from(row.cursor).unwrap_or(0);
            let loaded_direction = row.direction.clone();
            let undo = row.direction == BACKWARD;
            let step_index;
            if !undo {
                step_index = cursor;
                match kind.steps.get(cursor) {
                    None => row.status = SagaStatus::Succeeded.as_str().into(),
                    Some(step) => {
                        let ctx = StepContext {
                            saga_id: id,
                            params: &params,
                            outputs: &outputs,
                        };
                        let outcome = if self.fails(kind.name, cursor) {
                            Err(StepError::Permanent("fault drill: the step failed".into()))
                        } else {
                            let name = format!("{} {}", kind.name, step.name);
                            let forward = traced(id, name, (step.forward)(&self.ctx, ctx));
                            self.leased(id, forward).await?
                        };
                        match outcome {
                            Ok(out) => {
                                outputs.insert(step.name.to_owned(), out);
                                row.cursor += 1;
                                if row.cursor as usize == kind.steps.len() {
                                    row.status = SagaStatus::Succeeded.as_str().into();
                                }
                            }
                            Err(StepError::Retryable(e)) => {
                                tracing::warn!(saga = %id, step = step.name, error = %e, "step failed; saga paused");
                                row.status = SagaStatus::FailedTemp.as_str().into();
                                row.error = Some(format!("{}: {e}", step.name));
                            }
                            Err(StepError::Permanent(e)) => {
                                tracing::warn!(saga = %id, step = step.name, error = %e, "step failed; undoing");
                                row.direction = BACKWARD.into();
                                row.cursor += 1;
                                row.error = Some(format!("{}: {e}", step.name));
                            }
                        }
                    }
                }
            } else if cursor == 0 {
                step_index = 0;
                row.direction = FORWARD.into();
                row.status = SagaStatus::FailedTemp.as_str().into();
            } else {
                step_index = cursor - 1;
                let ctx = StepContext {
                    saga_id: id,
                    params: &params,
                    outputs: &outputs,
                };
                let undone = match kind.steps.get(step_index) {
                    Some(step) => {
                        let name = format!("{} undo {}", kind.name, step.name);
                        let undo = traced(id, name, (step.undo)(&self.ctx, ctx));
                        self.leased(id, undo).await?.map(|()| step.name)
                    }
                    None => Ok(""),
                };
                match undone {
                    Ok(name) => {
                        outputs.remove(name);
                        row.cursor -= 1;
                    }
                    Err(e) => {
                        let name = kind.steps.get(step_index).map_or("", |s| s.name);
                        tracing::error!(saga = %id, step = name, error = %e, "undo failed; saga paused");
                        row.status = SagaStatus::FailedTemp.as_str().into();
                        row.error = Some(format!("undo of {name}: {e}"));
                    }
                }
            }
            self.crash(kind.name, step_index, undo, false)?;
            row.outputs = Value::Object(outputs).to_string();
            let now = server_kit::unix_millis_now();
            let until = now.saturating_add(lease_ms(self.lease));
            if !self
                .store
                .saga_advance(&row, &loaded_direction, &self.owner, until, now)
                .await?
            {
                // cancelled meanwhile (claim again, reload and undo) or the lease was lost
                continue;
            }
            self.crash(kind.name, step_index, undo, true)?;
            let status = SagaStatus::parse(&row.status);
            if status != SagaStatus::Running {
                return Ok(status);
            }
            committed = Some(row);
        }
    }

    /// Resumes every RUNNING saga whose lease expired (after a restart or an executor's death).
    pub async fn recover(&self) -> Result<usize, SagaError> {
        let ids = self.claimable().await?;
        for id in &ids {
            match self.run(id).await {
                Ok(status) => tracing::info!(saga = %id, ?status, "recovered saga"),
                Err(SagaError::Leased(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ids.len())
    }

    async fn resolve(
        &self,
        id: &str,
        status: SagaStatus,
        direction: Option<&str>,
    ) -> Result<(), SagaError> {
        let row = self
            .store
            .saga_get(id)
            .await?
            .ok_or_else(|| SagaError::NotFound(id.to_owned()))?;
        // rolling back from a forward pause also undoes the step that failed (undo is idempotent)
        let extra = i64::from(direction == Some(BACKWARD) && row.direction == FORWARD);
        let direction = direction.unwrap_or(&row.direction);
        if !self
            .store
            .saga_resolve(
                id,
                status.as_str(),
                direction,
                extra,
                server_kit::unix_millis_now(),
            )
            .await?
        {
            return Err(SagaError::WrongState {
                id: id.to_owned(),
                status: SagaStatus::parse(&row.status),
            });
        }
        Ok(())
    }

    /// Retries a FAILED_TEMP saga from where it stopped.
    pub async fn retry(&self, id: &str) -> Result<SagaStatus, SagaError> {
        self.resolve(id, SagaStatus::Running, None).await?;
        self.run(id).await
    }

    /// Undoes what a FAILED_TEMP saga did.
    pub async fn rollback(&self, id: &str) -> Result<SagaStatus, SagaError> {
        self.resolve(id, SagaStatus::Running, Some(BACKWARD))
            .await?;
        self.run(id).await
    }

    /// Cancels a running saga: after the step under way it undoes everything (including that
    /// step) and pauses in FAILED_TEMP. False if it is not running forward.
    pub async fn cancel(&self, id: &str) -> Result<bool, SagaError> {
        Ok(self
            .store
            .saga_cancel(id, server_kit::unix_millis_now())
            .await?)
    }

    /// Gives up on a FAILED_TEMP saga (final).
    pub async fn fail(&self, id: &str) -> Result<(), SagaError> {
        self.resolve(id, SagaStatus::Failed, None).await
    }

    /// How far each step of saga `id` got, with the error of the one that failed; `None` when
    /// there is no such saga (or it is of a kind this executor does not run).
    pub async fn steps(&self, id: &str) -> Result<Option<Vec<OpOccStep>>, SagaError> {
        let Some(row) = self.store.saga_get(id).await? else {
            return Ok(None);
        };
        Ok(self.kinds.get(row.kind.as_str()).map(|kind| {
            let names: Vec<&str> = kind.steps.iter().map(|s| s.name).collect();
            progress(&names, &row)
        }))
    }
}

/// How far each of the steps `names` got, from the saga's row: the cursor and direction say
/// which are done, under way or undone; the error names the step that failed (`<step>: …`) or
/// whose undo failed (`undo of <step>: …`). A step never run, or undone after a cancel (which
/// names no step), shows as not started.
fn progress(names: &[&str], row: &SagaRow) -> Vec<OpOccStep> {
    use OpOccStepState::{Completed, Failed, NotStarted, Processing, RolledBack, RollingBack};
    let cursor = usize::try_from(row.cursor).unwrap_or(0).min(names.len());
    let status = SagaStatus::parse(&row.status);
    let backward = row.direction == BACKWARD;
    let error = row.error.as_deref().unwrap_or_default();
    let named = |prefix: &str| {
        names.iter().position(|name| {
            error
                .strip_prefix(prefix)
                .and_then(|e| e.strip_prefix(name))
                .is_some_and(|e| e.starts_with(": "))
        })
    };
    let (failed, undo_failed) = (named(""), named("undo of "));
    let message = error.split_once(": ").map(|(_, m)| m.to_owned());
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let state = if status == SagaStatus::Succeeded {
                Completed
            } else if backward {
                if i + 1 < cursor {
                    Completed
                } else if i + 1 == cursor {
                    if status == SagaStatus::Running {
                        RollingBack
                    } else {
                        Failed
                    }
                } else if failed == Some(i) {
                    Failed
                } else if failed.is_some_and(|f| i < f) {
                    RolledBack
                } else {
                    NotStarted
                }
            } else if i < cursor {
                Completed
            } else if status == SagaStatus::Running {
                if i == cursor { Processing } else { NotStarted }
            } else if failed == Some(i) {
                Failed
            } else if cursor == 0 && failed.is_some_and(|f| i < f) {
                // a rollback ended: what ran before the failed step is undone
                RolledBack
            } else {
                NotStarted
            };
            let error = match state {
                Failed | RollingBack if undo_failed == Some(i) => {
                    message.as_ref().map(|m| format!("undo failed: {m}"))
                }
                Failed | RollingBack if failed == Some(i) => message.clone(),
                _ => None,
            };
            OpOccStep {
                name: (*name).to_owned(),
                state,
                error,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
