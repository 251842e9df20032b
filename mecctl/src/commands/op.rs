//! `mecctl op`: LCM operation occurrences, following them to their end, and the placement
//! decision an instantiation records.

use std::collections::BTreeMap;
use std::time::Instant;

use api_specs::inventory::PlacementDecision;
use api_specs::mm1::app_lcm::{
    AppInstanceInfo, AppLcmOpOcc, CancelMode, CancelModeType, LcmOperationState,
};
use reqwest::Method;
use serde_json::Value;

use super::Ctx;
use super::app;
use crate::cli::OpCommand;
use crate::client::{APP_LCM, segment, typed};
use crate::error::{Error, onboarding_problems};
use crate::output::{
    Format, Kind, Table, age, enum_name, print_list, print_one, print_value, watch_list,
};

/// Operation occurrences as a table; instances by name where they have one.
pub struct OpKind {
    names: BTreeMap<String, String>,
}

impl OpKind {
    /// With the names of `instances`.
    pub fn new(instances: &[AppInstanceInfo]) -> Self {
        Self {
            names: instances
                .iter()
                .filter_map(|i| Some((i.id.clone(), i.app_instance_name.clone()?)))
                .collect(),
        }
    }

    fn instance(&self, op: &AppLcmOpOcc) -> String {
        let id = instance_id(op);
        self.names.get(&id).cloned().unwrap_or(id)
    }
}

/// The id of the instance an occurrence belongs to (from its link).
pub fn instance_id(op: &AppLcmOpOcc) -> String {
    op.links
        .app_instance
        .href
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn chosen(op: &AppLcmOpOcc) -> Option<String> {
    placement(op).and_then(|p| p.chosen).map(|c| c.to_string())
}

fn placement(op: &AppLcmOpOcc) -> Option<PlacementDecision> {
    op.placement
        .as_ref()
        .and_then(|p| serde_json::from_value(p.clone()).ok())
}

fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    }
}

impl Kind for OpKind {
    type Item = AppLcmOpOcc;
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "OPERATION",
        "STATE",
        "INSTANCE",
        "SITE",
        "AGE",
        "ERROR",
    ];

    fn id(op: &AppLcmOpOcc) -> String {
        op.id.clone()
    }

    fn row(&self, op: &AppLcmOpOcc) -> Vec<String> {
        vec![
            op.id.clone(),
            enum_name(&op.lcm_operation),
            enum_name(&op.operation_state),
            self.instance(op),
            chosen(op).unwrap_or_else(|| "-".into()),
            age(u64::from(op.start_time.seconds)),
            op.error
                .as_ref()
                .map_or("-".into(), |e| short(&e.detail, 60)),
        ]
    }
}

/// Path of an occurrence.
pub fn op_path(id: &str) -> String {
    format!("{APP_LCM}/app_lcm_op_occs/{}", segment(id))
}

/// Whether an occurrence still runs (a wait goes on).
fn running(state: LcmOperationState) -> bool {
    matches!(
        state,
        LcmOperationState::Starting | LcmOperationState::Processing
    )
}

/// Polls an occurrence until it stops running; `on_change` sees each new state.
async fn follow(
    ctx: &Ctx,
    id: &str,
    mut on_change: impl FnMut(&AppLcmOpOcc),
) -> Result<(AppLcmOpOcc, Value), Error> {
    let deadline = Instant::now() + ctx.timeout;
    let mut last = None;
    loop {
        let (op, value): (AppLcmOpOcc, Value) = ctx.client.get_as(&op_path(id)).await?;
        if last != Some(op.operation_state) {
            on_change(&op);
            last = Some(op.operation_state);
        }
        if !running(op.operation_state) {
            return Ok((op, value));
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "operation {id} is still {} after {} s",
                enum_name(&op.operation_state),
                ctx.timeout.as_secs()
            )));
        }
        tokio::time::sleep(ctx.interval).await;
    }
}

/// The placement decision, readable: chosen site, ranking, rejected sites by reason.
pub fn placement_text(decision: &PlacementDecision) -> String {
    let mut out = format!(
        "placement: {}\n",
        decision.chosen.as_deref().unwrap_or("no site can take it")
    );
    if !decision.ranked.is_empty() {
        let mut table = Table::new(&["  RANK", "SITE", "SCORE", "LATENCY"]);
        for (rank, c) in decision.ranked.iter().enumerate() {
            table.push(vec![
                format!("  {}", rank + 1),
                c.site_id.to_string(),
                format!("{:.3}", c.score),
                c.latency_ms.map_or("-".into(), |l| format!("{l:.1} ms")),
            ]);
        }
        out.push_str(&table.render(true));
    }
    if !decision.rejected.is_empty() {
        out.push_str("  rejected:\n");
        for (reason, sites) in &decision.rejected {
            out.push_str(&format!("    {reason}: {}\n", sites.join(", ")));
        }
    }
    out
}

/// What `op get` shows below the row: parameters' placement, the error.
fn details(op: &AppLcmOpOcc) -> String {
    let mut out = String::new();
    if let Some(p) = placement(op) {
        out.push_str(&placement_text(&p));
    }
    if let Some(e) = &op.error {
        out.push_str("error:\n");
        for line in onboarding_problems(e) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// Waits for the occurrence (printing its states on stderr), prints its outcome (`what` names
/// the task), and fails unless it COMPLETED.
pub async fn wait_and_report(ctx: &Ctx, what: &str, id: &str) -> Result<(), Error> {
    let mut first = true;
    let (op, value) = follow(ctx, id, |op| {
        let state = enum_name(&op.operation_state);
        if std::mem::take(&mut first) {
            eprintln!("{what}: operation {} {state}", op.id);
        } else {
            eprintln!("{what}: {state}");
        }
    })
    .await?;
    report(ctx, what, &op, &value)
}

/// Prints an ended occurrence; an error unless it COMPLETED.
fn report(ctx: &Ctx, what: &str, op: &AppLcmOpOcc, value: &Value) -> Result<(), Error> {
    match ctx.format {
        Format::Table => out!(
            "{what}: {}\n{}",
            enum_name(&op.operation_state),
            details(op)
        ),
        Format::Id => outln!("{}", op.id),
        format => print_value(format, value)?,
    }
    if op.operation_state == LcmOperationState::Completed {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "operation {} ended {}{}",
            op.id,
            enum_name(&op.operation_state),
            if op.operation_state == LcmOperationState::FailedTemp {
                format!(": mecctl op retry {} (or fail, or cancel)", op.id)
            } else {
                String::new()
            }
        )))
    }
}

/// What a task's 202 answer says: the occurrence id; waits for it when asked.
pub async fn accepted(ctx: &Ctx, what: &str, op: &str, wait: bool) -> Result<(), Error> {
    if wait {
        return wait_and_report(ctx, what, op).await;
    }
    match ctx.format {
        Format::Table => outln!("{what}: operation {op}"),
        Format::Id => outln!("{op}"),
        format => print_value(format, &ctx.client.get(&op_path(op)).await?)?,
    }
    Ok(())
}

async fn list(
    ctx: &Ctx,
    instance: Option<&str>,
    state: Option<LcmOperationState>,
) -> Result<(OpKind, Vec<Value>), Error> {
    let instances = app::list(ctx).await?;
    let instance = match instance {
        Some(i) => Some(app::find(&instances, i)?.id.clone()),
        None => None,
    };
    let mut ops = all(ctx).await?;
    ops.retain(|(op, _)| {
        instance.as_ref().is_none_or(|i| instance_id(op) == *i)
            && state.is_none_or(|s| op.operation_state == s)
    });
    ops.sort_by_key(|(op, _)| {
        std::cmp::Reverse((op.start_time.seconds, op.start_time.nano_seconds))
    });
    Ok((
        OpKind::new(&instances),
        ops.into_iter().map(|(_, v)| v).collect(),
    ))
}

/// Every occurrence, with every attribute (placement included).
pub async fn all(ctx: &Ctx) -> Result<Vec<(AppLcmOpOcc, Value)>, Error> {
    ctx.client
        .list(&format!("{APP_LCM}/app_lcm_op_occs?all_fields"))
        .await
}

/// Parses a state name as the MEAO writes it.
fn parse_state(s: &str) -> Result<LcmOperationState, Error> {
    serde_json::from_value(Value::String(s.to_ascii_uppercase())).map_err(|_| {
        Error::Usage(format!(
            "no operation state {s}: STARTING, PROCESSING, COMPLETED, FAILED or FAILED_TEMP"
        ))
    })
}

/// Runs an `op` command.
pub async fn run(ctx: &Ctx, command: OpCommand) -> Result<(), Error> {
    match command {
        OpCommand::Ls {
            instance,
            state,
            watch,
        } => {
            let state = state.as_deref().map(parse_state).transpose()?;
            if watch {
                return watch_list(ctx.format, ctx.interval, || {
                    list(ctx, instance.as_deref(), state)
                })
                .await;
            }
            let (kind, ops) = list(ctx, instance.as_deref(), state).await?;
            print_list(&kind, ctx.format, &ops)
        }
        OpCommand::Get { id, watch } => {
            let one = || async {
                let (op, value): (AppLcmOpOcc, Value) = ctx.client.get_as(&op_path(&id)).await?;
                let instances = app::list(ctx).await?;
                Ok::<_, Error>((OpKind::new(&instances), op, value))
            };
            if watch {
                return watch_list(ctx.format, ctx.interval, || async {
                    let (kind, _, value) = one().await?;
                    Ok((kind, vec![value]))
                })
                .await;
            }
            let (kind, op, value) = one().await?;
            print_one(&kind, ctx.format, &value, &details(&op))
        }
        OpCommand::Watch { id } => {
            let instances = app::list(ctx).await?;
            let kind = OpKind::new(&instances);
            let mut table = Table::new(OpKind::HEADERS);
            let mut first = true;
            let (op, value) = follow(ctx, &id, |op| {
                if ctx.format == Format::Table {
                    table.push(kind.row(op));
                    out!("{}", table.render(first));
                    table = Table::new(OpKind::HEADERS);
                    first = false;
                }
            })
            .await?;
            report(ctx, &format!("operation {id}"), &op, &value)
        }
        OpCommand::Retry { id, wait } => {
            ctx.client
                .call(
                    Method::POST,
                    &format!("{}/retry", op_path(&id)),
                    Value::Null,
                )
                .await?;
            accepted(ctx, &format!("retry of {id}"), &id, wait).await
        }
        OpCommand::Fail { id } => {
            let answer = ctx
                .client
                .call(Method::POST, &format!("{}/fail", op_path(&id)), Value::Null)
                .await?;
            let op: AppLcmOpOcc = typed(&op_path(&id), &answer.body)?;
            match ctx.format {
                Format::Table => {
                    outln!("operation {} is {}", op.id, enum_name(&op.operation_state))
                }
                Format::Id => outln!("{}", op.id),
                format => print_value(format, &answer.body)?,
            }
            Ok(())
        }
        OpCommand::Cancel { id, forceful, wait } => {
            let mode = CancelMode {
                cancel_mode: if forceful {
                    CancelModeType::Forceful
                } else {
                    CancelModeType::Graceful
                },
            };
            let body = serde_json::to_value(mode).map_err(|e| Error::Local(Box::new(e)))?;
            ctx.client
                .call(Method::POST, &format!("{}/cancel", op_path(&id)), body)
                .await?;
            accepted(ctx, &format!("cancel of {id}"), &id, wait).await
        }
    }
}
