//! The saga failure tests (omicron's three, plus crashes at every step boundary, leases and
//! operator actions), on a real SQLite store and the simulated VIM.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::json;
use vim_adapters::sim::SimulatedVim;
use vim_adapters::{Capacity, Container, Vim, Workload, workload_name};

use api_specs::mm1::app_lcm::OpOccStepState;

use super::*;

/// The test context: a site, a reservation ledger, and knobs that make steps fail or repeat.
struct World {
    vim: SimulatedVim,
    reservations: Mutex<BTreeSet<String>>,
    fail_at: Mutex<Option<(&'static str, StepError)>>,
    twice: bool,
}

impl World {
    fn new(twice: bool) -> Self {
        Self {
            vim: SimulatedVim::new(
                Capacity {
                    cpu_millis: 4000,
                    memory_mib: 8192,
                    gpus: 0,
                    architectures: vec!["x86_64".into()],
                    labels: BTreeMap::new(),
                },
                Duration::ZERO,
            ),
            reservations: Mutex::new(BTreeSet::new()),
            fail_at: Mutex::new(None),
            twice,
        }
    }

    fn injected(&self, step: &'static str) -> Result<(), StepError> {
        let mut f = self.fail_at.lock().unwrap();
        match f.as_ref() {
            Some((s, _)) if *s == step => Err(f.take().unwrap().1),
            _ => Ok(()),
        }
    }
}

fn workload(ctx: &StepContext<'_>) -> Workload {
    let id = ctx.params["instance"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Workload {
        name: workload_name(&id),
        app_instance_id: id,
        containers: vec![Container {
            name: "app".into(),
            image: "app:1".into(),
            cpu_millis: 1000,
            memory_mib: 512,
            ..Container::default()
        }],
        gpus: 0,
        architecture: None,
        replicas: 1,
        config: BTreeMap::new(),
        ..Workload::default()
    }
}

fn reserve<'a>(w: &'a World, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        w.injected("reserve")?;
        let id = ctx.params["instance"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for _ in 0..if w.twice { 2 } else { 1 } {
            w.reservations.lock().unwrap().insert(id.clone());
        }
        Ok(json!({"reserved": id}))
    })
}

fn unreserve<'a>(w: &'a World, ctx: StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let id = ctx.params["instance"].as_str().unwrap_or_default();
        for _ in 0..if w.twice { 2 } else { 1 } {
            w.reservations.lock().unwrap().remove(id);
        }
        Ok(())
    })
}

fn apply<'a>(w: &'a World, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        w.injected("apply")?;
        let workload = workload(&ctx);
        for _ in 0..if w.twice { 2 } else { 1 } {
            w.vim.apply(&workload).await?;
        }
        Ok(json!({"workload": workload.name}))
    })
}

fn delete<'a>(w: &'a World, ctx: StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let name = workload(&ctx).name;
        for _ in 0..if w.twice { 2 } else { 1 } {
            w.vim.delete(&name).await?;
        }
        Ok(())
    })
}

fn verify<'a>(w: &'a World, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        w.injected("verify")?;
        let name = ctx.outputs["apply"]["workload"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match w.vim.status(&name).await? {
            Some(s) => Ok(json!({"phase": format!("{:?}", s.phase)})),
            None => Err(StepError::Permanent(format!("{name} vanished"))),
        }
    })
}

fn nothing<'a>(_: &'a World, _: StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async { Ok(()) })
}

const STEPS: usize = 3;

fn kind() -> SagaKind<World> {
    SagaKind {
        name: "deploy",
        steps: vec![
            Step {
                name: "reserve",
                forward: reserve,
                undo: unreserve,
            },
            Step {
                name: "apply",
                forward: apply,
                undo: delete,
            },
            Step {
                name: "verify",
                forward: verify,
                undo: nothing,
            },
        ],
    }
}

use server_kit::testing::{Db, fresh_database, pg_admin_url};

/// SQLite, and PostgreSQL when it is configured (required under `CI=true`).
fn dbs() -> Vec<Db> {
    let mut dbs = vec![Db::Sqlite];
    if pg_admin_url().is_some() {
        dbs.push(Db::Postgres);
    }
    dbs
}

async fn store_on(db: Db) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&fresh_database(db, "saga", dir.path()).await)
        .await
        .unwrap();
    (store, dir)
}

async fn store() -> (Store, tempfile::TempDir) {
    store_on(Db::Sqlite).await
}

fn executor(store: &Store, world: &Arc<World>, owner: &str, lease_ms: u64) -> Executor<World> {
    Executor::new(
        store.clone(),
        world.clone(),
        vec![kind()],
        owner.into(),
        Duration::from_millis(lease_ms),
    )
}

async fn nothing_left(world: &World) {
    assert!(
        world.vim.list_owned().await.unwrap().is_empty(),
        "workloads left behind"
    );
    assert!(
        world.reservations.lock().unwrap().is_empty(),
        "reservations left behind"
    );
}

async fn exactly_one(world: &World) {
    assert_eq!(
        world.vim.list_owned().await.unwrap(),
        vec![workload_name("i1")]
    );
    assert_eq!(world.reservations.lock().unwrap().len(), 1);
    assert_eq!(
        world.vim.capacity().await.unwrap().cpu_millis,
        3000,
        "applied once in effect"
    );
}

/// The next apply at the simulated VIM fails as an unreachable apiserver does (retryable).
fn apply_fails_once(world: &World) {
    world.vim.inject(
        vim_adapters::sim::Operation::Apply,
        vim_adapters::VimError::Unavailable("apiserver down".into()),
    );
}

#[tokio::test]
async fn actions_succeed_idempotently() {
    let (store, _dir) = store().await;
    let world = Arc::new(World::new(true));
    let ex = executor(&store, &world, "a", 10_000);
    ex.create("deploy", "s1", json!({"instance": "i1"}))
        .await
        .unwrap();
    assert_eq!(ex.run("s1").await.unwrap(), SagaStatus::Succeeded);
    exactly_one(&world).await;
}

#[tokio::test]
async fn action_failure_can_unwind() {
    for twice in [false, true] {
        for failing in ["reserve", "apply", "verify"] {
            let (store, _dir) = store().await;
            let world = Arc::new(World::new(twice));
            *world.fail_at.lock().unwrap() = Some((failing, StepError::Permanent("boom".into())));
            let ex = executor(&store, &world, "a", 10_000);
            ex.create("deploy", "s1", json!({"instance": "i1"}))
                .await
                .unwrap();
            assert_eq!(
                ex.run("s1").await.unwrap(),
                SagaStatus::FailedTemp,
                "{failing}"
            );
            let (_, error) = ex.status("s1").await.unwrap();
            assert!(error.unwrap().starts_with(failing));
            nothing_left(&world).await;
            // retry starts over and succeeds now the fault is gone
            assert_eq!(ex.retry("s1").await.unwrap(), SagaStatus::Succeeded);
            exactly_one(&world).await;
        }
    }
}

#[tokio::test]
async fn retryable_failures_pause_then_retry_rollback_or_fail() {
    let (store, _dir) = store().await;
    let world = Arc::new(World::new(false));
    let ex = executor(&store, &world, "a", 10_000);
    apply_fails_once(&world);
    ex.create("deploy", "s1", json!({"instance": "i1"}))
        .await
        .unwrap();
    assert_eq!(ex.run("s1").await.unwrap(), SagaStatus::FailedTemp);
    assert_eq!(
        world.reservations.lock().unwrap().len(),
        1,
        "paused where it failed, nothing undone"
    );
    assert_eq!(ex.retry("s1").await.unwrap(), SagaStatus::Succeeded);
    exactly_one(&world).await;
    assert!(matches!(
        ex.retry("s1").await,
        Err(SagaError::WrongState { .. })
    ));

    apply_fails_once(&world);
    ex.create("deploy", "s2", json!({"instance": "i2"}))
        .await
        .unwrap();
    assert_eq!(ex.run("s2").await.unwrap(), SagaStatus::FailedTemp);
    assert_eq!(ex.rollback("s2").await.unwrap(), SagaStatus::FailedTemp);
    assert_eq!(
        world.reservations.lock().unwrap().len(),
        1,
        "s2 rolled back, s1 untouched"
    );
    ex.fail("s2").await.unwrap();
    assert_eq!(ex.status("s2").await.unwrap().0, SagaStatus::Failed);
    assert!(matches!(
        ex.retry("s2").await,
        Err(SagaError::WrongState { .. })
    ));
}

/// A crash at every boundary of every step (before and after its progress is recorded, going
/// forward and while undoing): another executor takes over once the lease expires and the end
/// state is exactly what an uninterrupted run gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_step_boundary_then_recover() {
    for db in dbs() {
        for undo in [false, true] {
            for step in 0..STEPS {
                for after_record in [false, true] {
                    let (store, _dir) = store_on(db).await;
                    let world = Arc::new(World::new(false));
                    // a 1 ms lease: the dead executor's lease has expired by the time the next
                    // looks; undoing, the drill fails the last step (verify)
                    let crashing = executor(&store, &world, "a", 1).with_fault(Some(Fault {
                        kind: "deploy".into(),
                        step,
                        undo,
                        after_record,
                        fail_at: undo.then_some(STEPS - 1),
                    }));
                    crashing
                        .create("deploy", "s1", json!({"instance": "i1"}))
                        .await
                        .unwrap();
                    let first = crashing.run("s1").await;
                    assert!(
                        matches!(first, Err(SagaError::Crashed)),
                        "step {step} undo {undo} after {after_record}: {first:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let successor = executor(&store, &world, "b", 60_000);
                    let finished_before_crash = !undo && after_record && step == STEPS - 1;
                    assert_eq!(
                        successor.recover().await.unwrap(),
                        usize::from(!finished_before_crash)
                    );
                    let (status, _) = successor.status("s1").await.unwrap();
                    if undo {
                        assert_eq!(status, SagaStatus::FailedTemp);
                        nothing_left(&world).await;
                    } else {
                        assert_eq!(status, SagaStatus::Succeeded);
                        exactly_one(&world).await;
                    }
                }
            }
        }
    }
}

/// Creates saga `id` for `instance` and runs it with an executor `owner` that crashes right
/// after recording its first step; the saga stays RUNNING under that owner's lease.
async fn crash_after_the_first_step(
    store: &Store,
    world: &Arc<World>,
    (owner, lease_ms): (&str, u64),
    id: &str,
    instance: &str,
) {
    let crashing = executor(store, world, owner, lease_ms).with_fault(Some(Fault {
        kind: "deploy".into(),
        step: 0,
        undo: false,
        after_record: true,
        fail_at: None,
    }));
    crashing
        .create("deploy", id, json!({ "instance": instance }))
        .await
        .unwrap();
    assert!(matches!(crashing.run(id).await, Err(SagaError::Crashed)));
}

#[tokio::test]
async fn a_live_lease_keeps_other_executors_out() {
    for db in dbs() {
        let (store, _dir) = store_on(db).await;
        let world = Arc::new(World::new(false));
        crash_after_the_first_step(&store, &world, ("a", 60_000), "s1", "i1").await;
        let other = executor(&store, &world, "b", 60_000);
        assert!(matches!(other.run("s1").await, Err(SagaError::Leased(_))));
        assert_eq!(
            other.recover().await.unwrap(),
            0,
            "nothing to recover while the lease lives"
        );
        // the owner itself may continue
        let owner = executor(&store, &world, "a", 60_000);
        assert_eq!(owner.run("s1").await.unwrap(), SagaStatus::Succeeded);
        exactly_one(&world).await;
    }
}

#[tokio::test]
async fn unknown_kinds_and_sagas() {
    let (store, _dir) = store().await;
    let world = Arc::new(World::new(false));
    let ex = executor(&store, &world, "a", 1000);
    assert!(matches!(
        ex.create("nope", "x", json!({})).await,
        Err(SagaError::UnknownKind(_))
    ));
    assert!(matches!(
        ex.run("missing").await,
        Err(SagaError::NotFound(_))
    ));
}

/// The steps of saga `id`: name, state, error.
async fn steps_of(ex: &Executor<World>, id: &str) -> Vec<(String, OpOccStepState, Option<String>)> {
    ex.steps(id)
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.state, s.error))
        .collect()
}

#[tokio::test]
async fn each_step_shows_how_far_it_got_and_the_failed_one_its_error() {
    use OpOccStepState::{Completed, Failed, NotStarted, Processing, RolledBack};
    let step =
        |name: &str, state, error: Option<&str>| (name.to_owned(), state, error.map(str::to_owned));
    let (store, _dir) = store().await;
    let world = Arc::new(World::new(false));
    let ex = executor(&store, &world, "a", 10_000);
    assert_eq!(ex.steps("none").await.unwrap(), None);

    // paused where a retryable failure stopped it, then done
    apply_fails_once(&world);
    ex.create("deploy", "s1", json!({"instance": "i1"}))
        .await
        .unwrap();
    assert_eq!(
        steps_of(&ex, "s1").await,
        [
            step("reserve", Processing, None),
            step("apply", NotStarted, None),
            step("verify", NotStarted, None)
        ]
    );
    assert_eq!(ex.run("s1").await.unwrap(), SagaStatus::FailedTemp);
    let (_, error) = ex.status("s1").await.unwrap();
    let reason = error.unwrap().strip_prefix("apply: ").unwrap().to_owned();
    assert_eq!(
        steps_of(&ex, "s1").await,
        [
            step("reserve", Completed, None),
            step("apply", Failed, Some(&reason)),
            step("verify", NotStarted, None)
        ]
    );
    assert_eq!(ex.retry("s1").await.unwrap(), SagaStatus::Succeeded);
    assert!(
        steps_of(&ex, "s1")
            .await
            .iter()
            .all(|(_, state, error)| *state == Completed && error.is_none())
    );

    // a permanent failure undoes what ran before it
    *world.fail_at.lock().unwrap() = Some(("verify", StepError::Permanent("boom".into())));
    ex.create("deploy", "s2", json!({"instance": "i2"}))
        .await
        .unwrap();
    assert_eq!(ex.run("s2").await.unwrap(), SagaStatus::FailedTemp);
    assert_eq!(
        steps_of(&ex, "s2").await,
        [
            step("reserve", RolledBack, None),
            step("apply", RolledBack, None),
            step("verify", Failed, Some("boom"))
        ]
    );

    // interrupted after a step was recorded: the next one is under way
    crash_after_the_first_step(&store, &world, ("b", 10_000), "s3", "i3").await;
    assert_eq!(
        steps_of(&ex, "s3").await,
        [
            step("reserve", Completed, None),
            step("apply", Processing, None),
            step("verify", NotStarted, None)
        ]
    );
}
