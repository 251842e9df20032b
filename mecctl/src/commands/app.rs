//! `mecctl app`: application instances and their LCM tasks.

use std::collections::BTreeMap;

use api_specs::mm1::app_lcm::{
    AppInstanceInfo, AppLcmOpOcc, CreateAppInstanceRequest, InstantiateAppRequest, LcmOperation,
    LcmOperationState, LocationConstraints, MecHostInformation, OperateAppRequest,
    OperationalState, TerminateAppRequest, TerminationType,
};
use reqwest::Method;
use serde_json::Value;

use super::op::{self, OpKind, accepted, instance_id};
use super::{Ctx, package};
use crate::cli::{AppCommand, Placement};
use crate::client::{APP_LCM, Answer, segment, typed};
use crate::error::Error;
use crate::output::{Kind, Table, enum_name, or_dash, print_list, print_one, watch_list};

/// Instances as a table, with the site each runs on.
pub struct AppKind {
    sites: BTreeMap<String, String>,
}

impl Kind for AppKind {
    type Item = AppInstanceInfo;
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "APP",
        "VERSION",
        "INSTANTIATION",
        "STATE",
        "SITE",
    ];

    fn id(i: &AppInstanceInfo) -> String {
        i.id.clone()
    }

    fn row(&self, i: &AppInstanceInfo) -> Vec<String> {
        vec![
            i.id.clone(),
            or_dash(i.app_instance_name.as_deref()),
            i.app_name.clone(),
            i.app_soft_version.clone(),
            enum_name(&i.instantiation_state),
            i.instantiated_app_state
                .as_ref()
                .map_or("-".into(), |s| enum_name(&s.operational_state)),
            self.sites.get(&i.id).cloned().unwrap_or_else(|| "-".into()),
        ]
    }
}

/// Where each instantiated instance runs: the site its latest completed instantiation chose.
fn sites_of(instances: &[AppInstanceInfo], ops: &[AppLcmOpOcc]) -> BTreeMap<String, String> {
    let mut latest: BTreeMap<String, (u32, u32, String)> = BTreeMap::new();
    for op in ops {
        let chosen = op
            .placement
            .as_ref()
            .and_then(|p| p.get("chosen"))
            .and_then(Value::as_str);
        let (Some(site), LcmOperation::Instantiate, LcmOperationState::Completed) =
            (chosen, op.lcm_operation, op.operation_state)
        else {
            continue;
        };
        let at = (op.start_time.seconds, op.start_time.nano_seconds);
        let entry = latest
            .entry(instance_id(op))
            .or_insert((0, 0, String::new()));
        if at >= (entry.0, entry.1) {
            *entry = (at.0, at.1, site.to_owned());
        }
    }
    instances
        .iter()
        .filter(|i| i.instantiated_app_state.is_some())
        .filter_map(|i| Some((i.id.clone(), latest.remove(&i.id)?.2)))
        .collect()
}

fn instance_path(id: &str) -> String {
    format!("{APP_LCM}/app_instances/{}", segment(id))
}

/// Every instance.
pub async fn list(ctx: &Ctx) -> Result<Vec<AppInstanceInfo>, Error> {
    Ok(list_values(ctx)
        .await?
        .into_iter()
        .map(|(i, _)| i)
        .collect())
}

async fn list_values(ctx: &Ctx) -> Result<Vec<(AppInstanceInfo, Value)>, Error> {
    ctx.client.list(&format!("{APP_LCM}/app_instances")).await
}

async fn ops(ctx: &Ctx) -> Result<Vec<AppLcmOpOcc>, Error> {
    Ok(op::all(ctx).await?.into_iter().map(|(o, _)| o).collect())
}

/// The instance `reference` names: its id or its name.
pub fn find<'a>(
    instances: &'a [AppInstanceInfo],
    reference: &str,
) -> Result<&'a AppInstanceInfo, Error> {
    if let Some(i) = instances.iter().find(|i| i.id == reference) {
        return Ok(i);
    }
    let named: Vec<&AppInstanceInfo> = instances
        .iter()
        .filter(|i| i.app_instance_name.as_deref() == Some(reference))
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::NotFound(format!(
            "no application instance {reference}"
        ))),
        many => Err(Error::Usage(format!(
            "{} instances are named {reference}: use an id ({})",
            many.len(),
            many.iter()
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The instance `reference` names, read from the MEAO.
async fn resolve(ctx: &Ctx, reference: &str) -> Result<AppInstanceInfo, Error> {
    match ctx.client.get_as(&instance_path(reference)).await {
        Ok((i, _)) => Ok(i),
        Err(e) if e.is_not_found() => find(&list(ctx).await?, reference).cloned(),
        Err(e) => Err(e),
    }
}

/// The instantiation request for `placement`.
fn instantiate_request(p: &Placement) -> Result<Value, Error> {
    let mut location = LocationConstraints::default();
    if let Some(near) = p.near.as_deref() {
        let parsed = near.split_once(',').and_then(|(lat, lon)| {
            Some((
                lat.trim().parse::<f64>().ok()?,
                lon.trim().parse::<f64>().ok()?,
            ))
        });
        let Some((latitude, longitude)) = parsed else {
            return Err(Error::Usage(format!(
                "--near {near}: expected LATITUDE,LONGITUDE, e.g. 48.85,2.35"
            )));
        };
        (location.latitude, location.longitude) = (Some(latitude), Some(longitude));
    }
    if let Some(cc) = &p.country {
        if cc.len() != 2 || !cc.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(Error::Usage(format!(
                "--country {cc}: expected an ISO 3166-1 alpha-2 code, e.g. FR"
            )));
        }
        location.country_code = Some(cc.to_ascii_uppercase());
    }
    let request = InstantiateAppRequest {
        selected_mec_host_info: p
            .sites
            .iter()
            .map(|s| MecHostInformation {
                host_name: None,
                host_id: s.clone(),
            })
            .collect(),
        location_constraints: (location != LocationConstraints::default()).then_some(location),
        ..InstantiateAppRequest::default()
    };
    serde_json::to_value(request).map_err(|e| Error::Local(Box::new(e)))
}

/// The id of the occurrence a task's 202 answer points to.
fn op_of(answer: &Answer, task: &str) -> Result<String, Error> {
    answer.location_id().ok_or_else(|| Error::Unexpected {
        request: task.into(),
        detail: "no Location of the operation occurrence".into(),
    })
}

/// Runs the LCM task `task` of `instance` (`verb` is what the operator asked for).
async fn task(
    ctx: &Ctx,
    instance: &AppInstanceInfo,
    task: &str,
    verb: &str,
    body: Value,
    wait: bool,
) -> Result<(), Error> {
    let path = format!("{}/{task}", instance_path(&instance.id));
    let answer = ctx.client.call(Method::POST, &path, body).await?;
    let op = op_of(&answer, &path)?;
    let label = instance
        .app_instance_name
        .as_deref()
        .unwrap_or(&instance.id);
    accepted(ctx, &format!("{verb} {label}"), &op, wait).await
}

async fn create(
    ctx: &Ctx,
    package: &str,
    name: Option<String>,
    description: Option<String>,
) -> Result<(AppInstanceInfo, Value), Error> {
    let pkg = package::resolve(ctx, package).await?;
    if pkg.app_d_id.is_empty() {
        return Err(Error::Usage(format!("package {package} is not onboarded")));
    }
    let request = CreateAppInstanceRequest {
        app_d_id: pkg.app_d_id,
        app_instance_name: name,
        app_instance_description: description,
        app_placement_info: None,
    };
    let body = serde_json::to_value(request).map_err(|e| Error::Local(Box::new(e)))?;
    let path = format!("{APP_LCM}/app_instances");
    let answer = ctx.client.call(Method::POST, &path, body).await?;
    Ok((typed(&path, &answer.body)?, answer.body))
}

fn graceful(secs: Option<u32>) -> (TerminationType, Option<u32>) {
    match secs {
        Some(s) => (TerminationType::Graceful, Some(s)),
        None => (TerminationType::Forceful, None),
    }
}

fn json<T: serde::Serialize>(value: T) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Local(Box::new(e)))
}

/// What `app get` shows below the row: the instance's operations.
fn details(instance: &AppInstanceInfo, ops: &[AppLcmOpOcc], kind: &OpKind) -> String {
    let mut mine: Vec<&AppLcmOpOcc> = ops
        .iter()
        .filter(|o| instance_id(o) == instance.id)
        .collect();
    mine.sort_by_key(|o| std::cmp::Reverse((o.start_time.seconds, o.start_time.nano_seconds)));
    if mine.is_empty() {
        return String::new();
    }
    let mut table = Table::new(OpKind::HEADERS);
    for o in mine {
        table.push(kind.row(o));
    }
    format!("operations:\n{}", table.render(true))
}

/// Runs an `app` command.
pub async fn run(ctx: &Ctx, command: AppCommand) -> Result<(), Error> {
    match command {
        AppCommand::Create {
            package,
            name,
            description,
        } => {
            let (_, value) = create(ctx, &package, name, description).await?;
            print_one(
                &AppKind {
                    sites: BTreeMap::new(),
                },
                ctx.format,
                &value,
                "",
            )
        }
        AppCommand::Instantiate {
            app,
            placement,
            wait,
        } => {
            let body = instantiate_request(&placement)?;
            let instance = resolve(ctx, &app).await?;
            task(ctx, &instance, "instantiate", "instantiate", body, wait).await
        }
        AppCommand::Deploy {
            package,
            name,
            description,
            placement,
            wait,
        } => {
            let body = instantiate_request(&placement)?;
            let (instance, _) = create(ctx, &package, name, description).await?;
            eprintln!(
                "created {} ({})",
                instance.app_instance_name.as_deref().unwrap_or("instance"),
                instance.id
            );
            task(ctx, &instance, "instantiate", "instantiate", body, wait).await
        }
        AppCommand::Ls { watch } => {
            let fetch = || async {
                let instances = list_values(ctx).await?;
                let typed: Vec<AppInstanceInfo> =
                    instances.iter().map(|(i, _)| i.clone()).collect();
                let sites = sites_of(&typed, &ops(ctx).await?);
                Ok((
                    AppKind { sites },
                    instances.into_iter().map(|(_, v)| v).collect(),
                ))
            };
            if watch {
                return watch_list(ctx.format, ctx.interval, fetch).await;
            }
            let (kind, values) = fetch().await?;
            print_list(&kind, ctx.format, &values)
        }
        AppCommand::Get { app, watch } => {
            let id = resolve(ctx, &app).await?.id;
            let fetch = || async {
                let (instance, value): (AppInstanceInfo, Value) =
                    ctx.client.get_as(&instance_path(&id)).await?;
                let ops = ops(ctx).await?;
                let sites = sites_of(std::slice::from_ref(&instance), &ops);
                let instances = list(ctx).await?;
                Ok::<_, Error>((
                    AppKind { sites },
                    instance,
                    value,
                    ops,
                    OpKind::new(&instances),
                ))
            };
            if watch {
                return watch_list(ctx.format, ctx.interval, || async {
                    let (kind, _, value, _, _) = fetch().await?;
                    Ok((kind, vec![value]))
                })
                .await;
            }
            let (kind, instance, value, ops, op_kind) = fetch().await?;
            print_one(
                &kind,
                ctx.format,
                &value,
                &details(&instance, &ops, &op_kind),
            )
        }
        AppCommand::Stop {
            app,
            graceful: secs,
            wait,
        } => {
            let instance = resolve(ctx, &app).await?;
            let (stop_type, timeout) = graceful(secs);
            let body = json(OperateAppRequest {
                change_state_to: OperationalState::Stopped,
                stop_type: Some(stop_type),
                graceful_stop_timeout: timeout,
            })?;
            task(ctx, &instance, "operate", "stop", body, wait).await
        }
        AppCommand::Start { app, wait } => {
            let instance = resolve(ctx, &app).await?;
            let body = json(OperateAppRequest {
                change_state_to: OperationalState::Started,
                stop_type: None,
                graceful_stop_timeout: None,
            })?;
            task(ctx, &instance, "operate", "start", body, wait).await
        }
        AppCommand::Terminate {
            app,
            graceful: secs,
            wait,
        } => {
            let instance = resolve(ctx, &app).await?;
            let (termination_type, timeout) = graceful(secs);
            let body = json(TerminateAppRequest {
                termination_type,
                graceful_termination_timeout: timeout,
            })?;
            task(ctx, &instance, "terminate", "terminate", body, wait).await
        }
        AppCommand::Rm { app } => {
            let instance = resolve(ctx, &app).await?;
            ctx.client
                .send(
                    Method::DELETE,
                    &instance_path(&instance.id),
                    crate::client::Body::Empty,
                    "application/json",
                )
                .await?;
            outln!(
                "deleted {}",
                instance
                    .app_instance_name
                    .as_deref()
                    .unwrap_or(&instance.id)
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(near: Option<&str>, sites: &[&str], country: Option<&str>) -> Placement {
        Placement {
            near: near.map(str::to_owned),
            sites: sites.iter().map(|s| (*s).to_owned()).collect(),
            country: country.map(str::to_owned),
        }
    }

    #[test]
    fn placement_flags_become_the_etsi_request() {
        assert_eq!(
            instantiate_request(&placement(Some("48.85, 2.35"), &["paris-1"], None)).unwrap(),
            serde_json::json!({
                "selectedMECHostInfo": [{"hostId": "paris-1"}],
                "locationConstraints": {"latitude": 48.85, "longitude": 2.35}
            })
        );
        assert_eq!(
            instantiate_request(&placement(None, &[], Some("fr"))).unwrap(),
            serde_json::json!({"locationConstraints": {"countryCode": "FR"}})
        );
        assert_eq!(
            instantiate_request(&placement(None, &[], None)).unwrap(),
            serde_json::json!({})
        );
        for bad in [
            placement(Some("48.85"), &[], None),
            placement(None, &[], Some("FRA")),
        ] {
            assert!(matches!(instantiate_request(&bad), Err(Error::Usage(_))));
        }
    }
}
