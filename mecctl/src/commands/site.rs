//! `mecctl site`: the edge sites with their health, free capacity and MEP link, and per
//! application instance what the site's MEP holds (`inventory/v1/sites/{siteId}/mep`).

use std::collections::BTreeMap;

use api_specs::inventory::{SiteInfo, SiteMep};
use api_specs::mm1::app_lcm::AppInstanceInfo;
use futures::StreamExt as _;
use serde_json::Value;

use super::{Ctx, app};
use crate::cli::SiteCommand;
use crate::client::{INVENTORY, segment};
use crate::error::Error;
use crate::output::{
    Format, Kind, Table, age, or_dash, print_list, print_one, print_value, watch_list,
};

/// A site as the inventory API shows it; its VIM connection is the MEAO's business.
type Site = SiteInfo<Value>;

/// Sites as a table, with the MEP link of each.
pub struct SiteKind {
    meps: BTreeMap<String, Option<SiteMep>>,
}

/// The MEP link of a site: `none` for a site without a MEP, else whether its MEP is
/// connected and how many instances the MEAO configures there.
fn mep_state(site: &Site, mep: Option<&SiteMep>) -> String {
    match mep {
        Some(m) if m.connected || site.spec.mep_url.is_some() || !m.app_instances.is_empty() => {
            let state = if m.connected {
                "connected"
            } else {
                "disconnected"
            };
            let apps = m.app_instances.iter().filter(|i| !i.removal).count();
            format!(
                "{state}, {apps} instance{}",
                if apps == 1 { "" } else { "s" }
            )
        }
        _ => "none".into(),
    }
}

impl Kind for SiteKind {
    type Item = Site;
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "ZONE",
        "HEALTHY",
        "FREE-CPU",
        "FREE-MEMORY",
        "FREE-GPUS",
        "MEP",
    ];

    fn id(s: &Site) -> String {
        s.spec.id.clone()
    }

    fn row(&self, s: &Site) -> Vec<String> {
        let free = s.free_capacity.as_ref();
        vec![
            s.spec.id.clone(),
            or_dash(Some(&s.spec.name)),
            s.spec.zone.clone(),
            if s.healthy { "yes" } else { "no" }.into(),
            free.map_or("-".into(), |c| {
                format!("{:.1}", c.cpu_millis as f64 / 1000.0)
            }),
            free.map_or("-".into(), |c| {
                format!("{:.1} GiB", c.memory_mib as f64 / 1024.0)
            }),
            free.map_or("-".into(), |c| c.gpus.to_string()),
            mep_state(s, self.meps.get(&s.spec.id).and_then(Option::as_ref)),
        ]
    }
}

fn site_path(id: &str) -> String {
    format!("{INVENTORY}/sites/{}", segment(id))
}

/// The site's MEP, or none when the MEAO has no MEP link for it.
async fn mep(ctx: &Ctx, id: &str) -> Result<Option<(SiteMep, Value)>, Error> {
    match ctx.client.get_as(&format!("{}/mep", site_path(id))).await {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn list(ctx: &Ctx) -> Result<(SiteKind, Vec<Value>), Error> {
    let path = format!("{INVENTORY}/sites");
    let (sites, values): (Vec<Site>, Vec<Value>) =
        ctx.client.list(&path).await?.into_iter().unzip();
    let meps: Vec<(String, Option<SiteMep>)> = futures::stream::iter(&sites)
        .map(|s| async move {
            let m = mep(ctx, &s.spec.id).await?;
            Ok::<_, Error>((s.spec.id.clone(), m.map(|(m, _)| m)))
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok((
        SiteKind {
            meps: meps.into_iter().collect(),
        },
        values,
    ))
}

/// What `site get` shows below the row: the site's details and what its MEP holds.
fn details(site: &Site, mep: Option<&SiteMep>, instances: &[AppInstanceInfo]) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<15}{v}\n"));
    let spec = &site.spec;
    line(
        "location:",
        format!("{}, {}", spec.location.latitude, spec.location.longitude),
    );
    line("services:", or_dash(Some(&spec.services.join(", "))));
    if let Some(c) = &site.free_capacity {
        line("architectures:", c.architectures.join(", "));
    }
    line("mep url:", or_dash(spec.mep_url.as_deref()));
    line(
        "refreshed:",
        format!(
            "{} ago",
            age(u64::try_from(site.refreshed_at / 1000).unwrap_or(0))
        ),
    );
    if let Some(e) = &site.last_error {
        line("last error:", e.clone());
    }
    let Some(mep) = mep else {
        return out;
    };
    out.push_str(&format!("\nmep link: {}\n", mep_state(site, Some(mep))));
    if mep.app_instances.is_empty() {
        return out;
    }
    let names: BTreeMap<&str, &str> = instances
        .iter()
        .filter_map(|i| Some((i.id.as_str(), i.app_instance_name.as_deref()?)))
        .collect();
    let mut table = Table::new(&[
        "INSTANCE",
        "CONFIG",
        "ACKED",
        "READINESS",
        "SERVICES",
        "TRAFFIC",
        "DNS",
        "STEERING",
        "REFUSED",
    ]);
    for i in &mep.app_instances {
        let status = i.status.as_ref();
        table.push(vec![
            names
                .get(i.app_instance_id.as_str())
                .map_or(i.app_instance_id.clone(), |n| (*n).to_owned()),
            format!(
                "v{}{}",
                i.version,
                if i.removal { " (removal)" } else { "" }
            ),
            format!("v{}", i.acked_version),
            status.map_or("-".into(), |s| s.readiness.clone()),
            status.map_or("-".into(), |s| or_dash(Some(&s.services.join(",")))),
            status.map_or("-".into(), |s| {
                format!("{}/{}", s.active_traffic_rules, s.traffic_rules)
            }),
            status.map_or("-".into(), |s| {
                format!("{}/{}", s.active_dns_rules, s.dns_rules)
            }),
            status.map_or("-".into(), |s| or_dash(s.steering.as_deref())),
            i.refused
                .as_ref()
                .map_or("-".into(), |r| format!("v{}: {}", r.version, r.error)),
        ]);
    }
    out.push_str(&table.render(true));
    out
}

/// Runs a `site` command.
pub async fn run(ctx: &Ctx, command: SiteCommand) -> Result<(), Error> {
    match command {
        SiteCommand::Ls { watch } => {
            if watch {
                return watch_list(ctx.format, ctx.interval, || list(ctx)).await;
            }
            let (kind, values) = list(ctx).await?;
            print_list(&kind, ctx.format, &values)
        }
        SiteCommand::Get { site, watch } => {
            let one = || async {
                let (s, value): (Site, Value) = ctx.client.get_as(&site_path(&site)).await?;
                let m = mep(ctx, &s.spec.id).await?;
                let kind = SiteKind {
                    meps: [(s.spec.id.clone(), m.as_ref().map(|(m, _)| m.clone()))].into(),
                };
                Ok::<_, Error>((kind, s, value, m))
            };
            if watch {
                return watch_list(ctx.format, ctx.interval, || async {
                    let (kind, _, value, _) = one().await?;
                    Ok((kind, vec![value]))
                })
                .await;
            }
            let (kind, s, mut value, m) = one().await?;
            match ctx.format {
                Format::Table => {
                    let instances = app::list(ctx).await?;
                    let mep = m.as_ref().map(|(m, _)| m);
                    print_one(&kind, ctx.format, &value, &details(&s, mep, &instances))
                }
                Format::Id => print_one(&kind, ctx.format, &value, ""),
                format => {
                    // the site with what its MEP holds under `mep`
                    if let (Value::Object(map), Some((_, mep))) = (&mut value, m) {
                        map.insert("mep".into(), mep);
                    }
                    print_value(format, &value)
                }
            }
        }
    }
}
