//! The LCM sagas, one linear step list each: instantiate (place, pin the images, issue the Mp1
//! credential, apply, await ready, configure the MEP, commit), terminate (release at the MEP, drain,
//! remove, commit), operate (scale, commit), relocate and rotation of the Mp1 credential.
//! Steps are idempotent: workload names derive from the instance id, credential ids from the
//! operation, applies replace, deletes accept "already gone".

use std::sync::Arc;
use std::time::Duration;

use api_specs::mm1::app_lcm::InstantiateAppRequest;
use api_specs::mm1::appd::AppD;
use base64::Engine;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vim_adapters::{
    Container, DeviceRequest, Port, Protocol, Traced, Vim, Workload, WorkloadPhase, workload_name,
};

use crate::images::{ImageError, Images};
use crate::inventory::{Inventory, PlacementQuery, request_for};
use crate::lcm::credentials::CredentialKey;
use crate::mep_link::{Desired, LinkError, MepLink};
use crate::package::{Packages, PkgRef};
use crate::saga::{SagaKind, Step, StepContext, StepError};
use crate::store::{CredentialRow, InstanceDoc, Store};
use api_specs::mm1::appd::ConfigPlatformForAppRequest;
use api_specs::mp1::app_support::{AppInfo, RuleState};
use api_specs::mp1::provisioning::AppInstanceConfig;
use api_specs::mp1::workload;

/// What the LCM steps act on.
pub struct LcmCtx {
    /// The store.
    pub store: Store,
    /// Packages (for AppDs).
    pub packages: Arc<Packages>,
    /// Sites and their VIMs.
    pub inventory: Arc<Inventory>,
    /// How long a workload may take to become ready.
    pub ready_timeout: Duration,
    /// The link to the sites' MEPs and how long a step waits for a MEP's acknowledgement.
    pub mep_link: Option<(Arc<MepLink>, Duration)>,
    /// Derives the instances' Mp1 secrets.
    pub credentials: Arc<CredentialKey>,
    /// Pins and pushes the instances' images.
    pub images: Arc<Images>,
}

fn retryable(e: impl std::fmt::Display) -> StepError {
    StepError::Retryable(e.to_string())
}

fn param<'a>(ctx: &'a StepContext<'_>, key: &str) -> &'a str {
    ctx.params[key].as_str().unwrap_or_default()
}

async fn appd(c: &LcmCtx, app_d_id: &str) -> Result<AppD, StepError> {
    let (value, _) = c
        .packages
        .appd(PkgRef::AppDId(app_d_id))
        .await
        .map_err(|e| StepError::Permanent(e.to_string()))?;
    serde_json::from_value(value)
        .map_err(|e| StepError::Permanent(format!("stored AppD unreadable: {e}")))
}

/// Descriptors an instantiation request puts in place of the AppD's.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    virtual_compute_descriptor: Option<api_specs::mm1::appd::VirtualComputeDescriptor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    os_container_descriptor: Vec<api_specs::mm1::appd::OsContainerDescriptor>,
}

impl Overrides {
    fn of(request: &InstantiateAppRequest) -> Option<Self> {
        let o = Self {
            virtual_compute_descriptor: request.virtual_compute_descriptor.clone(),
            os_container_descriptor: request.os_container_descriptor.clone(),
        };
        (o.virtual_compute_descriptor.is_some() || !o.os_container_descriptor.is_empty())
            .then_some(o)
    }

    fn apply(self, appd: &mut AppD) {
        if let Some(compute) = self.virtual_compute_descriptor {
            appd.virtual_compute_descriptor = Some(compute);
        }
        if !self.os_container_descriptor.is_empty() {
            appd.os_container_descriptor = self.os_container_descriptor;
        }
    }
}

/// The AppD as `instance` runs it: with the descriptors its instantiation put in place.
async fn instance_appd(c: &LcmCtx, instance: &str, app_d_id: &str) -> Result<AppD, StepError> {
    let mut appd = appd(c, app_d_id).await?;
    let stored = c
        .store
        .instance_doc(instance, InstanceDoc::Overrides)
        .await
        .map_err(retryable)?;
    if let Some(json) = stored {
        let overrides: Overrides = serde_json::from_str(&json).map_err(|e| {
            StepError::Permanent(format!("stored instantiation overrides unreadable: {e}"))
        })?;
        overrides.apply(&mut appd);
    }
    Ok(appd)
}

/// Refreshes the site's free capacity after a change, so the next placement sees it; a failed
/// refresh is left to the periodic one.
async fn refreshed(c: &LcmCtx, site: &str) {
    if let Err(e) = c.inventory.refresh_one(site).await {
        tracing::warn!(%site, error = %e, "capacity refresh after a change failed");
    }
}

/// The site's VIM, its calls traced.
fn vim(c: &LcmCtx, site: &str) -> Result<Traced, StepError> {
    c.inventory
        .vim(site)
        .map(|vim| Traced::new(site, vim))
        .ok_or_else(|| StepError::Permanent(format!("site {site} is no longer in the inventory")))
}

/// The workload of an instance: one container per OS container descriptor (or one sized by the
/// compute descriptor) with its requests and limits, images from the software image
/// descriptors, the ports its traffic rules steer to it, a StatefulSet for a stateful
/// application, and the devices it requests as additional capabilities named `device:<model>`.
/// Its configuration names the instance and AppD (`MEC_APP_INSTANCE_ID`, `MEC_APP_D_ID`); the
/// apply step adds the site's MEP (`MEC_MEP_URL`). An image in `pinned` (by software image
/// descriptor id) is deployed by that reference.
pub fn workload_for(instance_id: &str, appd: &AppD, pinned: &PinnedImages) -> Workload {
    let image_of = |id: &str| {
        appd.sw_image_descriptor
            .iter()
            .find(|i| i.id == id)
            .or(appd.sw_image_descriptor.first())
            .map(|i| pinned.get(&i.id).cloned().unwrap_or_else(|| image_ref(i)))
            .unwrap_or_default()
    };
    let request = request_for(
        appd,
        &PlacementQuery {
            app_d_id: appd.app_d_id.clone(),
            user_location: None,
            location_constraints: None,
            zones: vec![],
            candidate_sites: vec![],
            affinity: vec![],
            anti_affinity: vec![],
        },
    );
    let containers = if appd.os_container_descriptor.is_empty() {
        vec![Container {
            name: "app".into(),
            image: image_of(""),
            cpu_millis: request.cpu_millis,
            memory_mib: request.memory_mib,
            ..Container::default()
        }]
    } else {
        appd.os_container_descriptor
            .iter()
            .map(|c| Container {
                name: c.name.clone(),
                image: image_of(&c.sw_image_desc),
                cpu_millis: u64::from(c.requested_cpu_resources.unwrap_or(100)),
                memory_mib: c.requested_memory_resources.unwrap_or(128.0).max(0.0) as u64,
                cpu_limit_millis: c.cpu_resource_limit.map(u64::from),
                memory_limit_mib: c.memory_resource_limit.map(|m| m.max(0.0) as u64),
            })
            .collect()
    };
    Workload {
        name: workload_name(instance_id),
        app_instance_id: instance_id.to_owned(),
        containers,
        gpus: request.gpus,
        architecture: request.architecture,
        replicas: 1,
        config: [
            (workload::APP_INSTANCE_ID.to_owned(), instance_id.to_owned()),
            (workload::APP_D_ID.to_owned(), appd.app_d_id.clone()),
        ]
        .into_iter()
        .collect(),
        secrets: Default::default(),
        ports: ports_of(appd),
        stateful: appd
            .user_context_transfer_capability
            .as_ref()
            .is_some_and(|u| u.stateful_application),
        helm_chart: None,
        devices: devices_of(appd),
    }
}

/// The image reference of a software image: a registry reference as given, an image included
/// in the package by the name and version the site's registry holds it under.
fn image_ref(image: &api_specs::mm1::appd::SwImageDescriptor) -> String {
    let reference = image.sw_image.rsplit('/').next().unwrap_or_default();
    if reference.contains(':') || reference.contains('@') {
        image.sw_image.clone()
    } else {
        format!("{}:{}", image.name, image.version)
    }
}

/// The ports the AppD's traffic rules steer to the application (TCP, UDP or SCTP).
fn ports_of(appd: &AppD) -> Vec<Port> {
    let mut ports = std::collections::BTreeSet::new();
    for filter in appd.app_traffic_rule.iter().flat_map(|r| &r.traffic_filter) {
        let protocols: Vec<Protocol> = match &filter.protocol {
            Some(p) => p
                .iter()
                .filter_map(|p| match p.to_ascii_uppercase().as_str() {
                    "TCP" => Some(Protocol::Tcp),
                    "UDP" => Some(Protocol::Udp),
                    "SCTP" => Some(Protocol::Sctp),
                    _ => None,
                })
                .collect(),
            None => vec![Protocol::Tcp],
        };
        for port in filter.dst_port.iter().flatten() {
            if let Ok(port) = port.parse::<u16>() {
                ports.extend(protocols.iter().map(|&protocol| Port { port, protocol }));
            }
        }
    }
    ports.into_iter().collect()
}

/// Devices requested as mandatory additional capabilities named `device:<model>`; the
/// capability's `targetPerformanceParameters` may name the device (`name`) and its protocol.
fn devices_of(appd: &AppD) -> Vec<DeviceRequest> {
    let Some(compute) = &appd.virtual_compute_descriptor else {
        return Vec::new();
    };
    compute
        .request_additional_capabilities
        .iter()
        .filter_map(|c| {
            let model = c
                .requested_additional_capability_name
                .strip_prefix("device:")?;
            let params = &c.target_performance_parameters;
            Some(DeviceRequest {
                name: params["name"].as_str().unwrap_or(model).to_owned(),
                model: model.to_owned(),
                protocol: params["protocol"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

// === instantiate ===

fn place<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let request: InstantiateAppRequest =
            serde_json::from_value(ctx.params["request"].clone()).unwrap_or_default();
        let instance = param(&ctx, "appInstanceId");
        // a relocation deploys the instance as it was instantiated; an instantiation records
        // what its request puts in place of the AppD's descriptors
        if ctx.params.get("fromSite").is_none() {
            let overrides =
                Overrides::of(&request).map(|o| serde_json::to_string(&o).unwrap_or_default());
            c.store
                .instance_set_doc(instance, InstanceDoc::Overrides, overrides.as_deref())
                .await
                .map_err(retryable)?;
            // a new instantiation pins its images afresh
            c.store
                .instance_set_doc(instance, InstanceDoc::PinnedImages, None)
                .await
                .map_err(retryable)?;
        }
        let appd = instance_appd(c, instance, param(&ctx, "appDId")).await?;
        let mut candidates: Vec<String> = request
            .selected_mec_host_info
            .iter()
            .map(|h| h.host_id.clone())
            .collect();
        if let Some(pinned) = ctx.params["mepId"].as_str() {
            candidates.push(pinned.to_owned());
        }
        let query = PlacementQuery {
            app_d_id: appd.app_d_id.clone(),
            user_location: None,
            location_constraints: request.location_constraints.clone(),
            zones: vec![],
            candidate_sites: candidates,
            affinity: request.affinity.clone(),
            anti_affinity: request.anti_affinity.clone(),
        };
        let mut decision = c
            .inventory
            .place_appd(&appd, &query)
            .await
            .map_err(retryable)?;
        decision.not_applied = request.not_applied();
        let recorded = serde_json::to_string(&decision).unwrap_or_default();
        c.store
            .op_occ_set_placement(ctx.saga_id, &recorded)
            .await
            .map_err(retryable)?;
        match decision.chosen {
            Some(site) => Ok(json!({"siteId": site})),
            None => Err(StepError::Retryable(format!(
                "no site can host the application: {}",
                decision
                    .rejected
                    .iter()
                    .map(|(why, sites)| format!("{why}: {}", sites.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    })
}

fn no_undo<'a>(_: &'a LcmCtx, _: StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async { Ok(()) })
}

fn site<'a>(ctx: &'a StepContext<'_>) -> &'a str {
    ctx.outputs
        .get("place")
        .and_then(|p| p["siteId"].as_str())
        .or_else(|| ctx.params["siteId"].as_str())
        .unwrap_or_default()
}

fn apply<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let credential = credential(c, &ctx).await?;
        let name = deploy(c, &ctx, credential.as_ref(), 1).await?;
        Ok(json!({"workload": name}))
    })
}

/// Applies the instance's workload at the step's site with `replicas` (see [`deploy_at`]) and
/// refreshes the site's capacity.
async fn deploy(
    c: &LcmCtx,
    ctx: &StepContext<'_>,
    credential: Option<&CredentialRow>,
    replicas: u32,
) -> Result<String, StepError> {
    let (instance, app_d_id) = (param(ctx, "appInstanceId"), param(ctx, "appDId"));
    let name = deploy_at(c, instance, app_d_id, site(ctx), credential, replicas).await?;
    refreshed(c, site(ctx)).await;
    Ok(name)
}

/// Applies an instance's workload at `site` with `replicas`: from its AppD (and Helm chart),
/// configured with the site's MEP and, when it has one, `credential` in its secrets.
pub(super) async fn deploy_at(
    c: &LcmCtx,
    instance: &str,
    app_d_id: &str,
    site: &str,
    credential: Option<&CredentialRow>,
    replicas: u32,
) -> Result<String, StepError> {
    let appd = instance_appd(c, instance, app_d_id).await?;
    let pinned = pinned_images(c, instance).await?;
    let mut workload = workload_for(instance, &appd, &pinned);
    workload.replicas = replicas;
    if let Some(mciop) = &appd.mciop_id {
        let chart = c
            .packages
            .helm_chart(PkgRef::AppDId(&appd.app_d_id), mciop)
            .await
            .map_err(|e| StepError::Permanent(e.to_string()))?;
        workload.helm_chart = Some(base64::engine::general_purpose::STANDARD.encode(chart));
    }
    if let Some(url) = c.inventory.mep_url(site).await.map_err(retryable)? {
        if let Some(row) = credential {
            workload.secrets = c.credentials.workload_secrets(row, &url);
        }
        workload.config.insert(workload::MEP_URL.into(), url);
    }
    vim(c, site)?.apply(&workload).await?;
    Ok(workload.name)
}

// === images ===

/// An instance's images pinned by digest: software image descriptor id to reference.
pub type PinnedImages = std::collections::BTreeMap<String, String>;

async fn pinned_images(c: &LcmCtx, instance: &str) -> Result<PinnedImages, StepError> {
    match c
        .store
        .instance_doc(instance, InstanceDoc::PinnedImages)
        .await
        .map_err(retryable)?
    {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| StepError::Permanent(format!("stored pinned images unreadable: {e}"))),
        None => Ok(PinnedImages::new()),
    }
}

fn image_failure(e: ImageError) -> StepError {
    if e.retryable() {
        StepError::Retryable(e.to_string())
    } else {
        StepError::Permanent(e.to_string())
    }
}

/// Pins the instance's images for the step's site: a referenced image's tag resolved to its
/// digest (once: a relocation keeps the digest its instantiation pinned), an image shipped in
/// the package pushed to the site's registry. Recorded with the instance before any workload
/// names them.
fn pin_images<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let (instance, app_d_id) = (param(&ctx, "appInstanceId"), param(&ctx, "appDId"));
        let appd = instance_appd(c, instance, app_d_id).await?;
        let mut pinned = pinned_images(c, instance).await?;
        let registry = c
            .inventory
            .get(site(&ctx))
            .await
            .map_err(retryable)?
            .spec
            .image_registry;
        let files = c
            .packages
            .files(PkgRef::AppDId(app_d_id))
            .await
            .map_err(|e| StepError::Permanent(e.to_string()))?;
        for image in &appd.sw_image_descriptor {
            let shipped = files.iter().find(|f| f.path == image.sw_image);
            match (shipped, &registry) {
                (Some(file), Some(registry)) => {
                    let dir = c.images.spool_dir();
                    tokio::fs::create_dir_all(dir).await.map_err(retryable)?;
                    let spooled = tempfile_in(dir).map_err(retryable)?;
                    c.packages
                        .spool(file, spooled.path())
                        .await
                        .map_err(|e| StepError::Permanent(e.to_string()))?;
                    let reference = c
                        .images
                        .push(spooled.path(), registry, &image.name, &image.version)
                        .await
                        .map_err(image_failure)?;
                    pinned.insert(image.id.clone(), reference);
                }
                (Some(_), None) if c.images.pins_digests() => {
                    return Err(StepError::Permanent(format!(
                        "site {} has no imageRegistry to push the package's image {} to",
                        site(&ctx),
                        image.id
                    )));
                }
                // the site is expected to hold it already, by name and version
                (Some(_), None) => {
                    pinned.remove(&image.id);
                }
                (None, _) if pinned.contains_key(&image.id) => {}
                (None, _) => {
                    let reference = c.images.pin(&image.sw_image).await.map_err(image_failure)?;
                    if reference != image.sw_image {
                        pinned.insert(image.id.clone(), reference);
                    }
                }
            }
        }
        let recorded = serde_json::to_string(&pinned).unwrap_or_default();
        c.store
            .instance_set_doc(instance, InstanceDoc::PinnedImages, Some(&recorded))
            .await
            .map_err(retryable)?;
        Ok(json!({ "images": pinned }))
    })
}

/// A spool file under `dir`, removed when dropped.
fn tempfile_in(dir: &std::path::Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix("image-")
        .suffix(".tar")
        .tempfile_in(dir)
}

// === Mp1 credentials ===

/// The instance's Mp1 credential at the step's site, if it has one.
async fn credential(c: &LcmCtx, ctx: &StepContext<'_>) -> Result<Option<CredentialRow>, StepError> {
    c.store
        .credential_get(param(ctx, "appInstanceId"), site(ctx))
        .await
        .map_err(retryable)
}

/// Issues the instance an Mp1 credential at the chosen site's MEP (when the site has one on the
/// link): the operation's id is the credential's id, so a re-run issues the same one.
fn issue_credential<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        if link_of(c, site(&ctx)).await?.is_none() {
            return Ok(json!({"issued": false}));
        }
        if credential(c, &ctx)
            .await?
            .is_none_or(|row| row.credential_id != ctx.saga_id)
        {
            let instance = param(&ctx, "appInstanceId");
            let row = CredentialRow {
                app_instance_id: instance.to_owned(),
                site_id: site(&ctx).to_owned(),
                client_id: instance.to_owned(),
                credential_id: ctx.saga_id.to_owned(),
                issued_at: server_kit::unix_millis_now(),
                previous_credential_id: None,
                previous_not_after: None,
            };
            c.store.credential_put(&row).await.map_err(retryable)?;
        }
        Ok(json!({"issued": true, "credentialId": ctx.saga_id}))
    })
}

/// Forgets the credential this operation issued (the MEP drops it with the instance).
fn forget_credential<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        if credential(c, &ctx)
            .await?
            .is_some_and(|row| row.credential_id == ctx.saga_id)
        {
            c.store
                .credential_delete(param(&ctx, "appInstanceId"), Some(site(&ctx)))
                .await
                .map_err(retryable)?;
        }
        Ok(())
    })
}

fn remove<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let site = site(&ctx);
        if site.is_empty() {
            return Ok(());
        }
        vim(c, site)?
            .delete(&workload_name(param(&ctx, "appInstanceId")))
            .await?;
        refreshed(c, site).await;
        Ok(())
    })
}

fn await_ready<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let vim = vim(c, site(&ctx))?;
        let name = workload_name(param(&ctx, "appInstanceId"));
        match vim.settle(&name, c.ready_timeout).await? {
            Some(s) if s.phase == WorkloadPhase::Running => {
                Ok(json!({"readyReplicas": s.ready_replicas}))
            }
            Some(vim_adapters::WorkloadStatus {
                phase: WorkloadPhase::Failed(why),
                ..
            }) => Err(StepError::Permanent(why)),
            None => Err(StepError::Retryable(format!("workload {name} disappeared"))),
            Some(_) => Err(StepError::Retryable(format!(
                "workload {name} not ready within {:?}",
                c.ready_timeout
            ))),
        }
    })
}

fn commit_instantiated<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        c.store
            .instance_set_state(
                param(&ctx, "appInstanceId"),
                "INSTANTIATED",
                Some("STARTED"),
                Some(site(&ctx)),
            )
            .await
            .map_err(retryable)?;
        Ok(Value::Null)
    })
}

fn commit_not_instantiated<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        c.store
            .instance_set_state(param(&ctx, "appInstanceId"), "NOT_INSTANTIATED", None, None)
            .await
            .map_err(retryable)
    })
}

// === platform configuration (the site's MEP) ===

/// What the MEP is told about an instance: its AppD's (or the request's) rules and needs.
pub fn platform_config(
    appd: &AppD,
    instance: &str,
    request: Option<&ConfigPlatformForAppRequest>,
) -> AppInstanceConfig {
    let traffic = request.map_or(&appd.app_traffic_rule, |r| &r.app_traffic_rule);
    let dns = request.map_or(&appd.app_dns_rule, |r| &r.app_dns_rule);
    let required = request.map_or(&appd.app_service_required, |r| &r.app_service_required);
    let optional = request.map_or(&appd.app_service_optional, |r| &r.app_service_optional);
    let produced = request.map_or(&appd.app_service_produced, |r| &r.app_service_produced);
    let features = request.map_or(&appd.app_feature_required, |r| &r.app_feature_required);
    let features_optional = request.map_or(&appd.app_feature_optional, |r| &r.app_feature_optional);
    let transports = request.map_or(&appd.transport_dependencies, |r| &r.transport_dependencies);
    fn some<T: Clone>(v: &[T]) -> Option<Vec<T>> {
        (!v.is_empty()).then(|| v.to_vec())
    }
    AppInstanceConfig {
        app_info: AppInfo {
            app_name: appd.app_name.clone(),
            app_provider: Some(appd.app_provider.clone()),
            app_category: None,
            app_d_id: Some(appd.app_d_id.clone()),
            app_instance_id: Some(instance.to_owned()),
            endpoint: None,
            app_service_required: some(required),
            app_service_optional: some(optional),
            app_feature_required: some(features),
            app_feature_optional: some(features_optional),
            is_ins_by_mec: Some(true),
            app_profile: None,
        },
        app_traffic_rule: traffic
            .iter()
            .map(|r| r.to_rule(RuleState::Active))
            .collect(),
        app_dns_rule: dns.iter().map(|r| r.to_rule(RuleState::Active)).collect(),
        app_service_produced: produced.clone(),
        transport_dependencies: transports.clone(),
        oauth2_client: None,
        app_rule_policy: None,
    }
}

/// The MEP link and its acknowledgement timeout, when the site has a MEP and the MEAO a link.
async fn link_of<'a>(
    c: &'a LcmCtx,
    site: &str,
) -> Result<Option<(&'a MepLink, Duration)>, StepError> {
    let Some((link, timeout)) = &c.mep_link else {
        return Ok(None);
    };
    let has_mep = c
        .inventory
        .mep_url(site)
        .await
        .map_err(retryable)?
        .is_some();
    Ok(has_mep.then_some((link.as_ref(), *timeout)))
}

/// Makes the instance at the site's MEP what `desired` says and waits for the MEP's
/// acknowledgement; `false` when the site has no MEP or the MEAO no MEP link.
async fn converge(
    c: &LcmCtx,
    ctx: &StepContext<'_>,
    desired: Desired<'_>,
) -> Result<bool, StepError> {
    let site = site(ctx);
    let Some((link, timeout)) = link_of(c, site).await? else {
        return Ok(false);
    };
    let instance = param(ctx, "appInstanceId");
    let link_error = |e: LinkError| match e {
        LinkError::Refused { .. } => StepError::Permanent(e.to_string()),
        LinkError::Store(_) | LinkError::Timeout { .. } => retryable(e),
    };
    let version = link
        .desire(site, instance, desired)
        .await
        .map_err(link_error)?;
    link.await_ack(site, instance, version, timeout)
        .await
        .map_err(link_error)?;
    Ok(true)
}

fn configure_platform<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let appd = appd(c, param(&ctx, "appDId")).await?;
        let request: Option<ConfigPlatformForAppRequest> =
            serde_json::from_value(ctx.params["platformConfig"].clone()).ok();
        let instance = param(&ctx, "appInstanceId");
        let mut config = platform_config(&appd, instance, request.as_ref());
        config.oauth2_client = credential(c, &ctx)
            .await?
            .map(|row| c.credentials.app_client(&row));
        let configured = converge(c, &ctx, Desired::Config(&config)).await?;
        Ok(json!({"configured": configured}))
    })
}

fn unconfigure_platform<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        converge(
            c,
            &ctx,
            Desired::Removal {
                graceful_timeout: 0,
            },
        )
        .await?;
        Ok(())
    })
}

/// Termination at the MEP: the application's termination subscribers are notified and, for a
/// graceful termination, get its timeout to confirm.
fn release_platform<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let request = &ctx.params["request"];
        let graceful = if request["terminationType"] == "GRACEFUL" {
            request["gracefulTerminationTimeout"].as_u64().unwrap_or(30)
        } else {
            0
        };
        let graceful_timeout = u32::try_from(graceful).unwrap_or(u32::MAX);
        let released = converge(c, &ctx, Desired::Removal { graceful_timeout }).await?;
        Ok(json!({"released": released}))
    })
}

// === terminate ===

/// Graceful termination: stop the workload and give it `gracefulTerminationTimeout` seconds
/// (default 30) to wind down before it is removed. Forceful termination skips this.
fn drain<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let request = &ctx.params["request"];
        if request["terminationType"] != "GRACEFUL" {
            return Ok(json!({"drained": false}));
        }
        let timeout = request["gracefulTerminationTimeout"].as_u64().unwrap_or(30);
        let drained = stop_gracefully(c, &ctx, Duration::from_secs(timeout)).await?;
        Ok(json!({"drained": drained}))
    })
}

/// Scales the workload to zero and waits up to `timeout` for it to report stopped; returns
/// whether it did (the caller proceeds either way, as a forceful stop would).
async fn stop_gracefully(
    c: &LcmCtx,
    ctx: &StepContext<'_>,
    timeout: Duration,
) -> Result<bool, StepError> {
    let vim = vim(c, site(ctx))?;
    let name = workload_name(param(ctx, "appInstanceId"));
    match vim.scale(&name, 0).await {
        Ok(()) | Err(vim_adapters::VimError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(match vim.settle(&name, timeout).await? {
        None => true,
        Some(s) => s.phase == WorkloadPhase::Stopped,
    })
}

fn terminate_workload<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        remove(c, ctx).await?;
        Ok(Value::Null)
    })
}

fn commit_terminated<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        commit_not_instantiated(c, ctx).await?;
        // released at the MEP by the first step: the credential is revoked there
        c.store
            .credential_delete(param(&ctx, "appInstanceId"), None)
            .await
            .map_err(retryable)?;
        Ok(Value::Null)
    })
}

// === operate ===

fn replicas(state: &str) -> u32 {
    u32::from(state == "STARTED")
}

fn scale<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let request = &ctx.params["request"];
        let target = replicas(param(&ctx, "changeStateTo"));
        if target == 0 && request["stopType"] == "GRACEFUL" {
            let timeout = request["gracefulStopTimeout"].as_u64().unwrap_or(30);
            let stopped = stop_gracefully(c, &ctx, Duration::from_secs(timeout)).await?;
            refreshed(c, site(&ctx)).await;
            return Ok(json!({"gracefullyStopped": stopped}));
        }
        vim(c, site(&ctx))?
            .scale(&workload_name(param(&ctx, "appInstanceId")), target)
            .await?;
        refreshed(c, site(&ctx)).await;
        Ok(Value::Null)
    })
}

fn unscale<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        vim(c, site(&ctx))?
            .scale(
                &workload_name(param(&ctx, "appInstanceId")),
                replicas(param(&ctx, "previousState")),
            )
            .await?;
        Ok(())
    })
}

fn commit_operated<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        c.store
            .instance_set_state(
                param(&ctx, "appInstanceId"),
                "INSTANTIATED",
                Some(param(&ctx, "changeStateTo")),
                Some(site(&ctx)),
            )
            .await
            .map_err(retryable)?;
        Ok(Value::Null)
    })
}

fn restore_operated<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        c.store
            .instance_set_state(
                param(&ctx, "appInstanceId"),
                "INSTANTIATED",
                Some(param(&ctx, "previousState")),
                Some(site(&ctx)),
            )
            .await
            .map_err(retryable)
    })
}

// === relocate (failover) ===

fn restore_site<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        c.store
            .instance_set_state(
                param(&ctx, "appInstanceId"),
                "INSTANTIATED",
                Some("STARTED"),
                Some(param(&ctx, "fromSite")),
            )
            .await
            .map_err(retryable)
    })
}

/// Best effort: the failed site may never answer again; what it still runs is removed when
/// it does (the workload name is deterministic) or by an operator. Its MEP is told to remove
/// the instance without waiting: the link delivers the removal whenever the MEP reconnects, so
/// the site stops steering traffic and answering DNS for an instance that moved.
fn release_old<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let from = param(&ctx, "fromSite");
        let instance = param(&ctx, "appInstanceId");
        let mut mep_removal = Value::Null;
        if let Some((link, _)) = link_of(c, from).await? {
            let removal = Desired::Removal {
                graceful_timeout: 0,
            };
            let version = link
                .desire(from, instance, removal)
                .await
                .map_err(retryable)?;
            mep_removal = json!(version);
        }
        c.store
            .credential_delete(instance, Some(from))
            .await
            .map_err(retryable)?;
        let released = match vim(c, from) {
            Ok(vim) => vim.delete(&workload_name(instance)).await.is_ok(),
            Err(_) => false,
        };
        if !released {
            tracing::warn!(site = %from, %instance, "could not remove the workload from the failed site");
        }
        Ok(json!({"released": released, "mepRemovalVersion": mep_removal}))
    })
}

// === rotation of the Mp1 credential ===

/// The instance's stored credential at its site and the one this rotation makes of it: this
/// operation's credential current, the stored one accepted until `notAfter` (fixed when the
/// rotation started). Once committed, both are the rotated one.
async fn rotation(
    c: &LcmCtx,
    ctx: &StepContext<'_>,
) -> Result<(CredentialRow, CredentialRow), StepError> {
    let stored = credential(c, ctx).await?.ok_or_else(|| {
        StepError::Permanent(format!(
            "application instance {} has no Mp1 credential at site {}",
            param(ctx, "appInstanceId"),
            site(ctx)
        ))
    })?;
    if stored.credential_id == ctx.saga_id {
        return Ok((stored.clone(), stored));
    }
    let rotated = CredentialRow {
        credential_id: ctx.saga_id.to_owned(),
        issued_at: ctx.params["startedAt"].as_i64().unwrap_or_default(),
        previous_credential_id: Some(stored.credential_id.clone()),
        previous_not_after: ctx.params["notAfter"].as_i64(),
        ..stored.clone()
    };
    Ok((stored, rotated))
}

/// The instance's current configuration at its MEP with `row` as its client, acknowledged.
async fn configure_client(
    c: &LcmCtx,
    ctx: &StepContext<'_>,
    row: &CredentialRow,
) -> Result<(), StepError> {
    let (site, instance) = (site(ctx), param(ctx, "appInstanceId"));
    let current = c
        .store
        .mep_config_get(site, instance)
        .await
        .map_err(retryable)?
        .and_then(|r| r.config)
        .ok_or_else(|| {
            StepError::Permanent(format!(
                "site {site}'s MEP holds no configuration of {instance}"
            ))
        })?;
    let mut config: AppInstanceConfig = serde_json::from_str(&current)
        .map_err(|e| StepError::Permanent(format!("stored MEP configuration unreadable: {e}")))?;
    config.oauth2_client = Some(c.credentials.app_client(row));
    converge(c, ctx, Desired::Config(&config)).await?;
    Ok(())
}

/// The MEP accepts the new secret beside the old one.
fn announce_rotation<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let (_, rotated) = rotation(c, &ctx).await?;
        configure_client(c, &ctx, &rotated).await?;
        Ok(json!({"credentialId": rotated.credential_id}))
    })
}

fn withdraw_rotation<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let (stored, _) = rotation(c, &ctx).await?;
        configure_client(c, &ctx, &stored).await
    })
}

fn operated_replicas(ctx: &StepContext<'_>) -> u32 {
    replicas(param(ctx, "operationalState"))
}

/// The workload gets the new secret (its pods roll to pick it up).
fn apply_rotated<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let (_, rotated) = rotation(c, &ctx).await?;
        deploy(c, &ctx, Some(&rotated), operated_replicas(&ctx)).await?;
        Ok(Value::Null)
    })
}

fn restore_secret<'a>(c: &'a LcmCtx, ctx: StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
    Box::pin(async move {
        let (stored, _) = rotation(c, &ctx).await?;
        deploy(c, &ctx, Some(&stored), operated_replicas(&ctx)).await?;
        Ok(())
    })
}

fn commit_rotation<'a>(
    c: &'a LcmCtx,
    ctx: StepContext<'a>,
) -> BoxFuture<'a, Result<Value, StepError>> {
    Box::pin(async move {
        let (_, rotated) = rotation(c, &ctx).await?;
        c.store.credential_put(&rotated).await.map_err(retryable)?;
        Ok(json!({"previousNotAfter": rotated.previous_not_after}))
    })
}

/// Saga kind names.
pub const ROTATE_CREDENTIALS: &str = "app-rotate-credentials";
/// Saga kind names.
pub const CONFIGURE_PLATFORM: &str = "app-configure-platform";
/// Saga kind names.
pub const RELOCATE: &str = "app-relocate";
/// Saga kind names.
pub const INSTANTIATE: &str = "app-instantiate";
/// Saga kind names.
pub const TERMINATE: &str = "app-terminate";
/// Saga kind names.
pub const OPERATE: &str = "app-operate";

/// The steps that put an instance on a site: place, pin the images, issue the credential, apply,
/// await ready, configure the MEP.
fn deploy_steps() -> Vec<Step<LcmCtx>> {
    vec![
        Step {
            name: "place",
            forward: place,
            undo: no_undo,
        },
        Step {
            name: "pin-images",
            forward: pin_images,
            undo: no_undo,
        },
        Step {
            name: "issue-credential",
            forward: issue_credential,
            undo: forget_credential,
        },
        Step {
            name: "apply",
            forward: apply,
            undo: remove,
        },
        Step {
            name: "await-ready",
            forward: await_ready,
            undo: no_undo,
        },
        Step {
            name: "configure-platform",
            forward: configure_platform,
            undo: unconfigure_platform,
        },
    ]
}

/// Every LCM saga.
pub fn kinds() -> Vec<SagaKind<LcmCtx>> {
    let mut instantiate = deploy_steps();
    instantiate.push(Step {
        name: "commit",
        forward: commit_instantiated,
        undo: commit_not_instantiated,
    });
    let mut relocate = deploy_steps();
    relocate.push(Step {
        name: "commit",
        forward: commit_instantiated,
        undo: restore_site,
    });
    relocate.push(Step {
        name: "release-old",
        forward: release_old,
        undo: no_undo,
    });
    vec![
        SagaKind {
            name: INSTANTIATE,
            steps: instantiate,
        },
        SagaKind {
            name: CONFIGURE_PLATFORM,
            steps: vec![Step {
                name: "configure-platform",
                forward: configure_platform,
                undo: no_undo,
            }],
        },
        SagaKind {
            name: RELOCATE,
            steps: relocate,
        },
        SagaKind {
            name: TERMINATE,
            steps: vec![
                Step {
                    name: "release-platform",
                    forward: release_platform,
                    undo: no_undo,
                },
                Step {
                    name: "drain",
                    forward: drain,
                    undo: no_undo,
                },
                Step {
                    name: "remove",
                    forward: terminate_workload,
                    undo: no_undo,
                },
                Step {
                    name: "commit",
                    forward: commit_terminated,
                    undo: no_undo,
                },
            ],
        },
        SagaKind {
            name: ROTATE_CREDENTIALS,
            steps: vec![
                Step {
                    name: "announce",
                    forward: announce_rotation,
                    undo: withdraw_rotation,
                },
                Step {
                    name: "apply-secret",
                    forward: apply_rotated,
                    undo: restore_secret,
                },
                Step {
                    name: "commit",
                    forward: commit_rotation,
                    undo: no_undo,
                },
            ],
        },
        SagaKind {
            name: OPERATE,
            steps: vec![
                Step {
                    name: "scale",
                    forward: scale,
                    undo: unscale,
                },
                Step {
                    name: "commit",
                    forward: commit_operated,
                    undo: restore_operated,
                },
            ],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(path: &str) -> AppD {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/examples/packages")
                .join(path),
        )
        .unwrap();
        serde_yaml::from_str(&text).unwrap()
    }

    #[test]
    fn workloads_follow_the_appd() {
        let va = workload_for(
            "I-1",
            &example("video-analytics/Definitions/appd.yaml"),
            &PinnedImages::new(),
        );
        assert_eq!(va.name, "mec-i-1");
        let c = &va.containers[0];
        assert_eq!(
            c.image,
            "registry.acme.example/vision/video-analytics:2.3.0"
        );
        assert_eq!((c.cpu_millis, c.memory_mib), (3000, 6144));
        assert_eq!(
            (c.cpu_limit_millis, c.memory_limit_mib),
            (Some(4000), Some(8192))
        );
        let ports: Vec<u16> = va.ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, [554, 8554]);
        assert!(va.ports.iter().all(|p| p.protocol == Protocol::Tcp));
        assert_eq!(va.config["MEC_APP_INSTANCE_ID"], "I-1");
        assert!(!va.stateful && va.devices.is_empty());
        // a pinned image is deployed by its digest
        let digest = format!("sha256:{}", "5".repeat(64));
        let pinned = PinnedImages::from([(
            "va-image".to_owned(),
            format!("registry.acme.example/vision/video-analytics:2.3.0@{digest}"),
        )]);
        let appd = example("video-analytics/Definitions/appd.yaml");
        assert_eq!(appd.sw_image_descriptor[0].id, "va-image");
        let pinned = workload_for("I-1", &appd, &pinned);
        assert!(pinned.containers[0].image.ends_with(&digest), "{pinned:?}");

        let iot = workload_for(
            "I-2",
            &example("iot-gateway/Definitions/iot-gateway.json"),
            &PinnedImages::new(),
        );
        assert_eq!(
            iot.containers[0].image, "fieldbus/iot-agent:0.3.0",
            "an included image"
        );
    }

    #[test]
    fn stateful_apps_and_devices() {
        let mut appd = example("iot-gateway/Definitions/iot-gateway.json");
        appd.user_context_transfer_capability =
            Some(api_specs::mm1::appd::UserContextTransferCapability {
                stateful_application: true,
                user_context_transfer_support: None,
            });
        appd.virtual_compute_descriptor = Some(
            serde_json::from_value(json!({
                "virtualComputeDescId": "c",
                "virtualCpu": {"numVirtualCpu": 1},
                "virtualMemory": {"virtualMemSize": 512},
                "requestAdditionalCapabilities": [
                    {"requestedAdditionalCapabilityName": "device:modbus-meter", "supportMandatory": true,
                     "targetPerformanceParameters": {"name": "meter", "protocol": "modbus"}},
                    {"requestedAdditionalCapabilityName": "nvidia.com/gpu", "supportMandatory": false,
                     "targetPerformanceParameters": {}}
                ]
            }))
            .unwrap(),
        );
        let w = workload_for("I-3", &appd, &PinnedImages::new());
        assert!(w.stateful);
        assert_eq!(
            w.devices,
            [DeviceRequest {
                name: "meter".into(),
                model: "modbus-meter".into(),
                protocol: Some("modbus".into()),
            }]
        );
    }
}
