//! Application lifecycle management (ETSI GS MEC 010-2 `app_lcm/v1`): instance identifiers,
//! and instantiate, operate and terminate as LCM operation occurrences, each run by a saga
//! ([`crate::saga`]) so that a crash resumes or unwinds it. An occurrence and its saga are
//! recorded in one transaction before any work starts; the occurrence state follows the saga:
//! RUNNING is PROCESSING, SUCCEEDED is COMPLETED, FAILED_TEMP and FAILED are themselves.
//!
//! An occurrence's saga runs in a span named after its `lcmOperation`, the child of the request
//! that started it (its trace context is stored with the occurrence), so a retried or resumed
//! operation joins the same trace; the saga's steps are that span's children.

pub mod credentials;
pub mod reconcile;
pub mod sagas;

use std::sync::Arc;
use std::time::Duration;

use api_specs::ProblemDetails;
use api_specs::common::{LinkType, TimeStamp};
use api_specs::mm1::app_lcm::{
    AppInstSubscriptionInfo, AppInstSubscriptionRequest, AppInstanceInfo, AppInstanceLinks,
    AppInstanceState, AppInstanceSubscriptionFilter, AppInstanceSubscriptionType, AppLcmOpOcc,
    AppLcmOpOccLinks, CreateAppInstanceRequest, InstantiateAppRequest, InstantiatedAppState,
    InstantiationState, LcmNotification, LcmNotificationLinks, LcmOperation, LcmOperationState,
    OperateAppRequest, OperationalState, TerminateAppRequest,
};
use api_specs::mm1::app_pkgm::{
    OnboardingState, OperationalState as PkgOperationalState, SelfOnlyLinks,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use server_kit::notify::NotificationRow;
use server_kit::telemetry::TraceContext;
use tracing::Instrument;

use self::sagas::LcmCtx;
use crate::inventory::Inventory;
use crate::package::{PackageError, Packages, PkgRef};
use crate::saga::{Executor, Fault, SagaError, SagaStatus};
use crate::store::{InstanceRow, OpOccRow, SagaRow, Store, StoreError, Subscriptions};

/// Base path of the LCM API.
pub const APP_LCM_BASE: &str = "/app_lcm/v1";

/// An LCM failure.
#[derive(Debug, thiserror::Error)]
pub enum LcmError {
    /// No such instance or occurrence.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Kind.
        kind: &'static str,
        /// Id.
        id: String,
    },
    /// The instance's or occurrence's current state does not allow the request: 403, as ETSI
    /// MEC 010-2 lists for "not allowed given the current status".
    #[error("{0}")]
    NotAllowed(String),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The package side refused.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The saga side failed.
    #[error(transparent)]
    Saga(#[from] SagaError),
    /// Persistence failed.
    #[error("store failure")]
    Store(#[from] StoreError),
}

/// `POST …/app_instances/{appInstanceId}/rotate_credentials`: a mecplane extension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateCredentialsRequest {
    /// Seconds the replaced secret keeps working (default 300).
    #[schema(maximum = 86400, minimum = 0)]
    pub grace_period: Option<u32>,
}

/// The longest grace period of a credential rotation (s): a day.
pub const MAX_GRACE_PERIOD: u32 = 86_400;

/// An instance's Mp1 client at its site's MEP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppCredentialsInfo {
    /// The instance.
    pub app_instance_id: String,
    /// Its site.
    pub site_id: String,
    /// The client id it presents at the MEP's token endpoint.
    pub client_id: String,
    /// The accepted credentials: the current one first.
    pub credentials: Vec<CredentialInfo>,
}

/// One accepted credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialInfo {
    /// Its identifier (the operation that issued it).
    pub credential_id: String,
    /// When it was issued (zero when unknown).
    pub issued_at: TimeStamp,
    /// End of its grace period, for a replaced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<TimeStamp>,
}

/// What an instance row's body holds besides its columns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceBody {
    request: CreateAppInstanceRequest,
    app_provider: String,
    app_name: String,
    app_soft_version: String,
    #[serde(rename = "appDVersion")]
    app_d_version: String,
}

/// Settings of [`Lcm`].
#[derive(Debug, Clone)]
pub struct LcmSettings {
    /// Absolute URL prefix of the APIs.
    pub api_root: String,
    /// Identifies this replica's saga leases.
    pub owner: String,
    /// How long a workload may take to become ready.
    pub ready_timeout: Duration,
    /// Saga lease length.
    pub lease: Duration,
    /// Crash drill.
    pub fault_drill: Option<Fault>,
    /// The link to the sites' MEPs and how long a step waits for a MEP's acknowledgement.
    pub mep_link: Option<(Arc<crate::mep_link::MepLink>, Duration)>,
    /// Derives the instances' Mp1 secrets.
    pub credentials: Arc<credentials::CredentialKey>,
    /// Pins and pushes the instances' images.
    pub images: Arc<crate::images::Images>,
    /// Where subscriptions may have notifications sent.
    pub destinations: server_kit::outbound::Destinations,
}

/// Application LCM.
pub struct Lcm {
    store: Store,
    packages: Arc<Packages>,
    executor: Arc<Executor<LcmCtx>>,
    api_root: String,
    wake: Arc<tokio::sync::Notify>,
    running: std::sync::Mutex<std::collections::HashSet<String>>,
    mep_link: Option<Arc<crate::mep_link::MepLink>>,
    destinations: server_kit::outbound::Destinations,
    ctx: Arc<LcmCtx>,
    owner: String,
}

/// Marks an occurrence as driven by this process while alive.
struct Driving<'a> {
    lcm: &'a Lcm,
    id: String,
}

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.lcm.running.lock() {
            running.remove(&self.id);
        }
    }
}

impl std::fmt::Debug for Lcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lcm").finish_non_exhaustive()
    }
}

fn state_of(status: SagaStatus) -> &'static str {
    match status {
        SagaStatus::Running => "PROCESSING",
        SagaStatus::Succeeded => "COMPLETED",
        SagaStatus::FailedTemp => "FAILED_TEMP",
        SagaStatus::Failed => "FAILED",
    }
}

fn parse<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(Value::String(name.to_owned())).ok()
}

/// The span an occurrence's saga runs in, in the trace of the request that started it.
fn op_span(op: &OpOccRow) -> tracing::Span {
    let span = tracing::info_span!(
        "LCM operation",
        otel.name = %op.operation,
        app_lcm_op_occ_id = %op.id,
        app_instance_id = %op.app_instance_id,
    );
    TraceContext::from_json(op.trace_context.as_deref()).adopt(&span);
    span
}

impl Lcm {
    /// LCM over the store, packages and inventory; `wake` is signalled when notifications are
    /// queued.
    pub fn new(
        store: Store,
        packages: Arc<Packages>,
        inventory: Arc<Inventory>,
        wake: Arc<tokio::sync::Notify>,
        settings: LcmSettings,
    ) -> Self {
        let mep_link = settings.mep_link.as_ref().map(|(link, _)| link.clone());
        let ctx = Arc::new(LcmCtx {
            store: store.clone(),
            packages: packages.clone(),
            inventory,
            ready_timeout: settings.ready_timeout,
            mep_link: settings.mep_link,
            credentials: settings.credentials,
            images: settings.images,
        });
        let executor = Arc::new(
            Executor::new(
                store.clone(),
                ctx.clone(),
                sagas::kinds(),
                settings.owner.clone(),
                settings.lease,
            )
            .with_fault(settings.fault_drill),
        );
        Self {
            store,
            packages,
            executor,
            api_root: settings.api_root,
            wake,
            running: std::sync::Mutex::new(std::collections::HashSet::new()),
            mep_link,
            destinations: settings.destinations,
            ctx,
            owner: settings.owner,
        }
    }

    /// The reconciliation of the sites' workloads with this LCM's instances; one replica holds
    /// a site for `lease` at a time.
    pub fn reconciler(
        &self,
        lease: Duration,
        metrics: &server_kit::admin::Metrics,
    ) -> reconcile::Reconciler {
        reconcile::Reconciler::new(self.ctx.clone(), self.owner.clone(), lease, metrics)
    }

    /// The link to the sites' MEPs, when configured.
    pub fn mep_link(&self) -> Option<Arc<crate::mep_link::MepLink>> {
        self.mep_link.clone()
    }

    fn base(&self) -> String {
        format!("{}{APP_LCM_BASE}", self.api_root)
    }

    fn instance_info(&self, row: &InstanceRow) -> Option<AppInstanceInfo> {
        let body: InstanceBody = serde_json::from_str(&row.body).ok()?;
        let href = format!("{}/app_instances/{}", self.base(), row.id);
        let instantiated = row.instantiation_state == "INSTANTIATED";
        Some(AppInstanceInfo {
            id: row.id.clone(),
            app_instance_name: body.request.app_instance_name,
            app_instance_description: body.request.app_instance_description,
            app_d_id: row.app_d_id.clone(),
            app_provider: body.app_provider,
            app_name: body.app_name,
            app_soft_version: body.app_soft_version,
            app_d_version: body.app_d_version,
            app_pkg_id: row.app_pkg_id.clone(),
            instantiation_state: if instantiated {
                InstantiationState::Instantiated
            } else {
                InstantiationState::NotInstantiated
            },
            instantiated_app_state: row
                .operational_state
                .as_deref()
                .and_then(parse::<OperationalState>)
                .filter(|_| instantiated)
                .map(|operational_state| InstantiatedAppState { operational_state }),
            links: AppInstanceLinks {
                instantiate: (!instantiated).then(|| LinkType::new(format!("{href}/instantiate"))),
                terminate: instantiated.then(|| LinkType::new(format!("{href}/terminate"))),
                operate: instantiated.then(|| LinkType::new(format!("{href}/operate"))),
                self_: LinkType::new(href),
            },
        })
    }

    fn op_occ_info(&self, row: &OpOccRow) -> AppLcmOpOcc {
        AppLcmOpOcc {
            id: row.id.clone(),
            operation_state: parse(&row.state).unwrap_or(LcmOperationState::Failed),
            state_entered_time: TimeStamp::from_unix_millis(row.state_entered),
            start_time: TimeStamp::from_unix_millis(row.start_time),
            lcm_operation: parse(&row.operation).unwrap_or(LcmOperation::Instantiate),
            operation_params: serde_json::from_str(&row.params).ok(),
            error: row
                .error
                .as_deref()
                .and_then(|e| serde_json::from_str(e).ok()),
            placement: row
                .placement
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
            steps: None,
            links: AppLcmOpOccLinks {
                self_: LinkType::new(format!("{}/app_lcm_op_occs/{}", self.base(), row.id)),
                app_instance: LinkType::new(format!(
                    "{}/app_instances/{}",
                    self.base(),
                    row.app_instance_id
                )),
            },
        }
    }

    async fn instance_row(&self, id: &str) -> Result<InstanceRow, LcmError> {
        self.store
            .instance_get(id)
            .await?
            .ok_or_else(|| LcmError::NotFound {
                kind: "application instance",
                id: id.to_owned(),
            })
    }

    // === instance identifiers ===

    /// Creates an instance identifier from an onboarded, enabled package.
    pub async fn create(
        &self,
        request: CreateAppInstanceRequest,
    ) -> Result<AppInstanceInfo, LcmError> {
        use api_specs::common::{
            MAX_DESCRIPTION, MAX_ID, MAX_NAME, check_optional_text, check_text,
        };
        check_text("appDId", &request.app_d_id, MAX_ID)
            .and_then(|()| {
                check_optional_text(
                    "appInstanceName",
                    request.app_instance_name.as_deref(),
                    MAX_NAME,
                )
            })
            .and_then(|()| {
                check_optional_text(
                    "appInstanceDescription",
                    request.app_instance_description.as_deref(),
                    MAX_DESCRIPTION,
                )
            })
            .map_err(LcmError::Invalid)?;
        let package = self.packages.get(PkgRef::AppDId(&request.app_d_id)).await?;
        if package.onboarding_state != OnboardingState::Onboarded
            || package.operational_state != PkgOperationalState::Enabled
        {
            return Err(LcmError::NotAllowed(format!(
                "package of appDId {} is not ONBOARDED and ENABLED",
                request.app_d_id
            )));
        }
        let body = InstanceBody {
            app_provider: package.app_provider.clone().unwrap_or_default(),
            app_name: package.app_name.clone(),
            app_soft_version: package.app_software_version.clone(),
            app_d_version: package.app_d_version.clone(),
            request,
        };
        let row = InstanceRow {
            id: uuid::Uuid::new_v4().to_string(),
            app_pkg_id: package.id.clone(),
            app_d_id: package.app_d_id.clone(),
            body: serde_json::to_string(&body).unwrap_or_default(),
            instantiation_state: "NOT_INSTANTIATED".into(),
            operational_state: None,
            site_id: None,
            created_at: server_kit::unix_millis_now(),
        };
        let body_view: InstanceBody =
            serde_json::from_str(&row.body).map_err(|e| LcmError::Invalid(e.to_string()))?;
        let notifications = self
            .notifications(
                AppInstanceSubscriptionType::AppIdentifierCreationSubscription,
                &row,
                &body_view,
                |_| true,
                |n| n,
            )
            .await?;
        self.store.instance_insert(&row, &notifications).await?;
        self.wake.notify_one();
        self.store.package_set_usage(&package.id, "IN_USE").await?;
        tracing::info!(instance = %row.id, app_d_id = %row.app_d_id, "application instance created");
        self.instance_info(&row)
            .ok_or_else(|| LcmError::NotAllowed("instance unreadable".into()))
    }

    /// One instance.
    pub async fn get(&self, id: &str) -> Result<AppInstanceInfo, LcmError> {
        let row = self.instance_row(id).await?;
        self.instance_info(&row)
            .ok_or_else(|| LcmError::NotAllowed(format!("instance {id} unreadable")))
    }

    /// Every instance.
    pub async fn list(&self) -> Result<Vec<AppInstanceInfo>, LcmError> {
        Ok(self
            .store
            .instance_list()
            .await?
            .iter()
            .filter_map(|r| self.instance_info(r))
            .collect())
    }

    /// Deletes a NOT_INSTANTIATED instance identifier.
    pub async fn delete(&self, id: &str) -> Result<(), LcmError> {
        let row = self.instance_row(id).await?;
        let body: InstanceBody =
            serde_json::from_str(&row.body).map_err(|e| LcmError::Invalid(e.to_string()))?;
        let notifications = self
            .notifications(
                AppInstanceSubscriptionType::AppIdentifierDeletionSubscription,
                &row,
                &body,
                |_| true,
                |n| n,
            )
            .await?;
        if !self.store.instance_delete(id, &notifications).await? {
            return Err(LcmError::NotAllowed(format!(
                "instance {id} is {} or has an operation in progress",
                row.instantiation_state
            )));
        }
        if !self.store.package_has_instances(&row.app_pkg_id).await? {
            self.store
                .package_set_usage(&row.app_pkg_id, "NOT_IN_USE")
                .await?;
        }
        Ok(())
    }

    // === operations ===

    async fn start(
        self: &Arc<Self>,
        instance: &InstanceRow,
        operation: LcmOperation,
        kind: &str,
        request: Value,
        mut params: Value,
    ) -> Result<String, LcmError> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = server_kit::unix_millis_now();
        params["appInstanceId"] = json!(instance.id);
        params["appDId"] = json!(instance.app_d_id);
        if let Some(site) = &instance.site_id {
            params["siteId"] = json!(site);
        }
        let op = OpOccRow {
            id: id.clone(),
            app_instance_id: instance.id.clone(),
            operation: serde_json::to_value(operation)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            state: "STARTING".into(),
            params: request.to_string(),
            error: None,
            placement: None,
            start_time: now,
            state_entered: now,
            trace_context: TraceContext::current().to_json(),
        };
        let saga = SagaRow {
            id: id.clone(),
            kind: kind.to_owned(),
            params: params.to_string(),
            outputs: "{}".into(),
            cursor: 0,
            direction: "FORWARD".into(),
            status: "RUNNING".into(),
            error: None,
        };
        let expected = (
            instance.instantiation_state.as_str(),
            instance.operational_state.as_deref(),
        );
        if !self.store.op_occ_start(&op, &saga, expected).await? {
            return Err(LcmError::NotAllowed(format!(
                "instance {} has an operation in progress or changed meanwhile",
                instance.id
            )));
        }
        tracing::info!(op_occ = %id, instance = %instance.id, ?operation, "LCM operation started");
        let this = self.clone();
        let op_id = id.clone();
        tokio::spawn(async move { this.drive(&op_id).await }.instrument(op_span(&op)));
        Ok(id)
    }

    /// Claims an occurrence for this process; `None` if it is already being driven here.
    fn driving(&self, id: &str) -> Option<Driving<'_>> {
        let mut running = self.running.lock().ok()?;
        running.insert(id.to_owned()).then(|| Driving {
            lcm: self,
            id: id.to_owned(),
        })
    }

    /// Runs an occurrence's saga and records the outcome on the occurrence.
    async fn drive(&self, id: &str) {
        let Some(_driving) = self.driving(id) else {
            return;
        };
        if let Err(e) = self
            .transition(id, LcmOperationState::Processing, None)
            .await
        {
            tracing::error!(op_occ = %id, error = %e, "cannot record PROCESSING");
            return;
        }
        self.conclude(id, self.executor.run(id).await).await;
    }

    /// Records what running an occurrence's saga came to. The executor's own failures leave
    /// the saga as it is, for the next recovery; a fault drill's simulated crash aborts the
    /// process, whichever path ran the saga.
    async fn conclude(&self, id: &str, outcome: Result<SagaStatus, SagaError>) {
        match outcome {
            Ok(status) => {
                tracing::info!(op_occ = %id, ?status, "LCM saga ended");
                self.settle(id, status).await;
            }
            Err(SagaError::Leased(_)) => {}
            Err(SagaError::Crashed) => {
                tracing::error!(op_occ = %id, "fault drill: the process aborts here, as in a crash");
                std::process::abort();
            }
            Err(e) => {
                tracing::error!(op_occ = %id, error = %e, "LCM operation stopped; it resumes at the next recovery")
            }
        }
    }

    /// What the operation's error says: a placement that chose no site is 409 (the request
    /// conflicts with the sites as they are: capacity, health, constraints; a retry may find
    /// one), any other failure 500.
    async fn failure(&self, id: &str, detail: String) -> ProblemDetails {
        let unplaced = self
            .store
            .op_occ_get(id)
            .await
            .ok()
            .flatten()
            .and_then(|row| row.placement)
            .and_then(|p| serde_json::from_str::<api_specs::inventory::PlacementDecision>(&p).ok())
            .is_some_and(|d| d.chosen.is_none());
        let (status, title) = if unplaced {
            (409, "No site can host the application")
        } else {
            (500, "LCM operation failed")
        };
        ProblemDetails {
            problem_type: None,
            title: Some(title.into()),
            status,
            detail,
            instance: Some(format!("{}/app_lcm_op_occs/{id}", self.base())),
        }
    }

    async fn settle(&self, id: &str, status: SagaStatus) {
        let detail = match status {
            SagaStatus::FailedTemp | SagaStatus::Failed => {
                self.executor.status(id).await.ok().and_then(|(_, e)| e)
            }
            _ => None,
        };
        let error = match detail {
            Some(detail) => {
                Some(serde_json::to_string(&self.failure(id, detail).await).unwrap_or_default())
            }
            None => None,
        };
        let state = parse(state_of(status)).unwrap_or(LcmOperationState::Failed);
        match self.transition(id, state, error.as_deref()).await {
            Ok(true) => {
                tracing::info!(op_occ = %id, state = state_of(status), "LCM operation ended")
            }
            Ok(false) => {
                tracing::debug!(op_occ = %id, state = state_of(status), "LCM operation's end already recorded")
            }
            Err(e) => tracing::error!(op_occ = %id, error = %e, "cannot record the outcome"),
        }
    }

    /// Instantiates an instance on the best site.
    pub async fn instantiate(
        self: &Arc<Self>,
        id: &str,
        request: InstantiateAppRequest,
    ) -> Result<String, LcmError> {
        if let Some(location) = &request.location_constraints {
            location.validate().map_err(LcmError::Invalid)?;
        }
        let instance = self.instance_row(id).await?;
        if instance.instantiation_state != "NOT_INSTANTIATED" {
            return Err(LcmError::NotAllowed(format!(
                "instance {id} is already INSTANTIATED"
            )));
        }
        let body: Option<InstanceBody> = serde_json::from_str(&instance.body).ok();
        let mut params = json!({"request": request});
        if let Some(mep) = body.and_then(|b| b.request.app_placement_info) {
            params["mepId"] = json!(mep.mep_id);
        }
        self.start(
            &instance,
            LcmOperation::Instantiate,
            sagas::INSTANTIATE,
            json!(request),
            params,
        )
        .await
    }

    /// Terminates an instance.
    pub async fn terminate(
        self: &Arc<Self>,
        id: &str,
        request: TerminateAppRequest,
    ) -> Result<String, LcmError> {
        let instance = self.instance_row(id).await?;
        if instance.instantiation_state != "INSTANTIATED" {
            return Err(LcmError::NotAllowed(format!(
                "instance {id} is NOT_INSTANTIATED"
            )));
        }
        self.start(
            &instance,
            LcmOperation::Terminate,
            sagas::TERMINATE,
            json!(request),
            json!({ "request": request }),
        )
        .await
    }

    /// Configures the site's MEP for an instance with the request's rules and requirements.
    pub async fn configure_platform(
        self: &Arc<Self>,
        id: &str,
        request: api_specs::mm1::appd::ConfigPlatformForAppRequest,
    ) -> Result<String, LcmError> {
        let mut problems = Vec::new();
        crate::package::appd::rule_problems(
            &request.app_traffic_rule,
            &request.app_dns_rule,
            &mut |at, detail| problems.push(format!("{at}: {detail}")),
        );
        if !problems.is_empty() {
            return Err(LcmError::Invalid(problems.join("; ")));
        }
        let instance = self.instance_row(id).await?;
        if instance.instantiation_state != "INSTANTIATED" {
            return Err(LcmError::NotAllowed(format!(
                "instance {id} is NOT_INSTANTIATED"
            )));
        }
        let params = json!({ "platformConfig": request });
        self.start(
            &instance,
            LcmOperation::ConfigurePlatformForApp,
            sagas::CONFIGURE_PLATFORM,
            json!(request),
            params,
        )
        .await
    }

    /// Rotates an instance's Mp1 credential: the MEP accepts a new secret, the workload gets it,
    /// and the old one keeps working for `grace_period_secs`.
    pub async fn rotate_credentials(
        self: &Arc<Self>,
        id: &str,
        request: RotateCredentialsRequest,
    ) -> Result<String, LcmError> {
        if request.grace_period.is_some_and(|g| g > MAX_GRACE_PERIOD) {
            return Err(LcmError::Invalid(format!(
                "gracePeriod shall be at most {MAX_GRACE_PERIOD} seconds"
            )));
        }
        let instance = self.instance_row(id).await?;
        if instance.instantiation_state != "INSTANTIATED" {
            return Err(LcmError::NotAllowed(format!(
                "instance {id} is NOT_INSTANTIATED"
            )));
        }
        let site = instance.site_id.clone().unwrap_or_default();
        if self.store.credential_get(id, &site).await?.is_none() {
            return Err(LcmError::NotAllowed(format!(
                "instance {id} has no Mp1 credential (its site has no MEP on the link)"
            )));
        }
        let now = server_kit::unix_millis_now();
        let grace = i64::from(request.grace_period.unwrap_or(300));
        let params = json!({
            "request": request,
            "startedAt": now,
            "notAfter": now + grace * 1000,
            "operationalState": instance.operational_state,
        });
        self.start(
            &instance,
            LcmOperation::RotateCredentials,
            sagas::ROTATE_CREDENTIALS,
            json!(request),
            params,
        )
        .await
    }

    /// An instance's Mp1 client at its site's MEP: its client id, token endpoint and the
    /// credentials accepted there (never a secret).
    pub async fn credentials(&self, id: &str) -> Result<AppCredentialsInfo, LcmError> {
        let instance = self.instance_row(id).await?;
        let site = instance.site_id.clone().unwrap_or_default();
        let row =
            self.store
                .credential_get(id, &site)
                .await?
                .ok_or_else(|| LcmError::NotFound {
                    kind: "Mp1 credential of application instance",
                    id: id.to_owned(),
                })?;
        let mut credentials = vec![CredentialInfo {
            credential_id: row.credential_id.clone(),
            issued_at: TimeStamp::from_unix_millis(row.issued_at),
            not_after: None,
        }];
        if let Some(previous) = &row.previous_credential_id {
            credentials.push(CredentialInfo {
                credential_id: previous.clone(),
                issued_at: TimeStamp::from_unix_millis(0),
                not_after: row.previous_not_after.map(TimeStamp::from_unix_millis),
            });
        }
        Ok(AppCredentialsInfo {
            app_instance_id: id.to_owned(),
            site_id: site,
            client_id: row.client_id,
            credentials,
        })
    }

    /// Starts or stops an instance.
    pub async fn operate(
        self: &Arc<Self>,
        id: &str,
        request: OperateAppRequest,
    ) -> Result<String, LcmError> {
        let instance = self.instance_row(id).await?;
        let current = instance.operational_state.clone().unwrap_or_default();
        let wanted = serde_json::to_value(request.change_state_to)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if instance.instantiation_state != "INSTANTIATED" {
            return Err(LcmError::NotAllowed(format!(
                "instance {id} is NOT_INSTANTIATED"
            )));
        }
        if current == wanted {
            return Err(LcmError::NotAllowed(format!(
                "instance {id} is already {wanted}"
            )));
        }
        let params = json!({"changeStateTo": wanted, "previousState": current, "request": request});
        self.start(
            &instance,
            LcmOperation::Operate,
            sagas::OPERATE,
            json!(request),
            params,
        )
        .await
    }

    /// Records an occurrence's new state with its notifications: to occurrence subscribers,
    /// and, when it completed, to instance state subscribers. Whether it moved: not when it
    /// was in that state already, or in a final one ([`Store::op_occ_set_state`]).
    async fn transition(
        &self,
        id: &str,
        state: LcmOperationState,
        error: Option<&str>,
    ) -> Result<bool, LcmError> {
        let op = self.op_occ_row(id).await?;
        let instance = self.instance_row(&op.app_instance_id).await?;
        let body: InstanceBody =
            serde_json::from_str(&instance.body).map_err(|e| LcmError::Invalid(e.to_string()))?;
        let operation: Option<LcmOperation> = parse(&op.operation);
        let op_href = format!("{}/app_lcm_op_occs/{id}", self.base());
        let mut notifications = self
            .notifications(
                AppInstanceSubscriptionType::AppLcmOpOccStateChangeSubscription,
                &instance,
                &body,
                |s| {
                    s.request
                        .app_lcm_op_occ_subscription_filter
                        .as_ref()
                        .is_none_or(|f| {
                            (f.operation_types.is_empty()
                                || operation.is_some_and(|o| f.operation_types.contains(&o)))
                                && (f.operation_states.is_empty()
                                    || f.operation_states.contains(&state))
                        })
                },
                |mut n| {
                    n.app_lcm_op_occ_id = Some(id.to_owned());
                    n.operation_type = operation;
                    n.operation_state = Some(state);
                    n.links.app_lcm_op_occ = Some(LinkType::new(op_href.clone()));
                    n
                },
            )
            .await?;
        if state == LcmOperationState::Completed {
            let instance_state = match (
                instance.instantiation_state.as_str(),
                instance.operational_state.as_deref(),
            ) {
                ("INSTANTIATED", Some("STOPPED")) => AppInstanceState::Stopped,
                ("INSTANTIATED", _) => AppInstanceState::Started,
                _ => AppInstanceState::NotInstantiated,
            };
            notifications.extend(
                self.notifications(
                    AppInstanceSubscriptionType::AppInstanceStateChangeSubscription,
                    &instance,
                    &body,
                    |s| {
                        s.request
                            .app_instance_state
                            .is_none_or(|w| w == instance_state)
                    },
                    |mut n| {
                        n.app_instance_state = Some(instance_state);
                        n.app_pkg_id = Some(instance.app_pkg_id.clone());
                        n.app_d_id = Some(instance.app_d_id.clone());
                        n
                    },
                )
                .await?,
            );
        }
        let state_name = serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let changed = self
            .store
            .op_occ_set_state(
                id,
                &state_name,
                error,
                &notifications,
                server_kit::unix_millis_now(),
            )
            .await?;
        if changed && !notifications.is_empty() {
            self.wake.notify_one();
        }
        Ok(changed)
    }

    /// Notifications of `kind` about `instance` for every matching subscription.
    async fn notifications(
        &self,
        kind: AppInstanceSubscriptionType,
        instance: &InstanceRow,
        body: &InstanceBody,
        wanted: impl Fn(&AppInstSubscriptionInfo) -> bool,
        complete: impl Fn(LcmNotification) -> LcmNotification,
    ) -> Result<Vec<NotificationRow>, LcmError> {
        let now = server_kit::unix_millis_now();
        let instance_href = format!("{}/app_instances/{}", self.base(), instance.id);
        let covers = |f: &AppInstanceSubscriptionFilter| match f.app_inst_selector_type {
            1 => f.app_instances.contains(&instance.id),
            2 => body
                .request
                .app_instance_name
                .as_ref()
                .is_some_and(|n| f.app_instances.contains(n)),
            3 => f.app_instances.contains(&instance.app_d_id),
            4 => f.app_instances.contains(&body.app_provider),
            _ => true,
        };
        Ok(self
            .subscriptions()
            .await?
            .into_iter()
            .filter(|s| s.request.subscription_type == kind)
            .filter(|s| {
                let filter = s.request.app_instance_subscription_filter.as_ref().or(s
                    .request
                    .app_lcm_op_occ_subscription_filter
                    .as_ref()
                    .and_then(|f| f.app_instance_subscription_filter.as_ref()));
                filter.is_none_or(covers)
            })
            .filter(|s| wanted(s))
            .map(|s| {
                let notification = complete(LcmNotification {
                    id: uuid::Uuid::new_v4().to_string(),
                    notification_type: kind,
                    subscription_id: s.id.clone(),
                    time_stamp: TimeStamp::from_unix_millis(now),
                    app_instance_id: instance.id.clone(),
                    app_instance_state: None,
                    app_pkg_id: None,
                    app_d_id: None,
                    app_lcm_op_occ_id: None,
                    operation_type: None,
                    operation_state: None,
                    links: LcmNotificationLinks {
                        subscription: s.links.self_.clone(),
                        app_instance: Some(LinkType::new(instance_href.clone())),
                        app_lcm_op_occ: None,
                    },
                });
                NotificationRow {
                    id: notification.id.clone(),
                    subscription_id: s.id.clone(),
                    callback_uri: s.request.callback_uri.clone(),
                    body: serde_json::to_string(&notification).unwrap_or_default(),
                    created_at: now,
                }
            })
            .collect())
    }

    // === subscriptions ===

    /// Creates a subscription.
    pub async fn subscribe(
        &self,
        request: AppInstSubscriptionRequest,
    ) -> Result<AppInstSubscriptionInfo, LcmError> {
        self.destinations
            .check_client_uri("callbackUri", &request.callback_uri)
            .map_err(LcmError::Invalid)?;
        let selectors = [
            request.app_instance_subscription_filter.as_ref(),
            request
                .app_lcm_op_occ_subscription_filter
                .as_ref()
                .and_then(|f| f.app_instance_subscription_filter.as_ref()),
        ];
        selectors
            .into_iter()
            .flatten()
            .try_for_each(AppInstanceSubscriptionFilter::validate)
            .map_err(LcmError::Invalid)?;
        let id = uuid::Uuid::new_v4().to_string();
        let info = AppInstSubscriptionInfo {
            links: SelfOnlyLinks {
                self_: LinkType::new(format!("{}/subscriptions/{id}", self.base())),
            },
            id: id.clone(),
            request,
        };
        self.store
            .subscription_insert(
                Subscriptions::Lcm,
                &id,
                &serde_json::to_string(&info).unwrap_or_default(),
                server_kit::unix_millis_now(),
            )
            .await?;
        Ok(info)
    }

    /// Every subscription.
    pub async fn subscriptions(&self) -> Result<Vec<AppInstSubscriptionInfo>, LcmError> {
        Ok(self
            .store
            .subscription_list(Subscriptions::Lcm)
            .await?
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }

    /// One subscription.
    pub async fn subscription(&self, id: &str) -> Result<AppInstSubscriptionInfo, LcmError> {
        self.store
            .subscription_get(Subscriptions::Lcm, id)
            .await?
            .and_then(|b| serde_json::from_str(&b).ok())
            .ok_or_else(|| LcmError::NotFound {
                kind: "subscription",
                id: id.to_owned(),
            })
    }

    /// Deletes a subscription.
    pub async fn unsubscribe(&self, id: &str) -> Result<(), LcmError> {
        if self
            .store
            .subscription_delete(Subscriptions::Lcm, id)
            .await?
        {
            Ok(())
        } else {
            Err(LcmError::NotFound {
                kind: "subscription",
                id: id.to_owned(),
            })
        }
    }

    /// URL prefix of the LCM API.
    pub fn base_url(&self) -> String {
        self.base()
    }

    /// Failover: re-places every STARTED instance of each site in `failed` on the next best
    /// site (an INSTANTIATE occurrence whose parameters name the failed site).
    pub async fn relocate_from(self: &Arc<Self>, failed: &[String]) -> Result<usize, LcmError> {
        let mut started = 0;
        for instance in self.store.instance_list().await? {
            let on_failed = instance
                .site_id
                .as_ref()
                .is_some_and(|s| failed.contains(s));
            if !on_failed || instance.operational_state.as_deref() != Some("STARTED") {
                continue;
            }
            let from = instance.site_id.clone().unwrap_or_default();
            let request = json!({"relocateFrom": from});
            let params = json!({"request": {}, "fromSite": from});
            let mut moved = instance.clone();
            moved.site_id = None;
            match self
                .start(
                    &moved,
                    LcmOperation::Instantiate,
                    sagas::RELOCATE,
                    request,
                    params,
                )
                .await
            {
                Ok(op) => {
                    tracing::warn!(instance = %instance.id, site = %from, op_occ = %op, "site failed: re-placing the instance");
                    started += 1;
                }
                Err(LcmError::NotAllowed(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(started)
    }

    // === occurrences ===

    /// One occurrence.
    pub async fn op_occ(&self, id: &str) -> Result<AppLcmOpOcc, LcmError> {
        let row = self.op_occ_row(id).await?;
        let mut info = self.op_occ_info(&row);
        info.steps = self.executor.steps(id).await?;
        Ok(info)
    }

    /// Every occurrence.
    pub async fn op_occs(&self) -> Result<Vec<AppLcmOpOcc>, LcmError> {
        Ok(self
            .store
            .op_occ_list()
            .await?
            .iter()
            .map(|r| self.op_occ_info(r))
            .collect())
    }

    async fn failed_temp(&self, id: &str) -> Result<(), LcmError> {
        let op = self.op_occ(id).await?;
        if op.operation_state != LcmOperationState::FailedTemp {
            return Err(LcmError::NotAllowed(format!(
                "occurrence {id} is {:?}, not FAILED_TEMP",
                op.operation_state
            )));
        }
        Ok(())
    }

    async fn op_occ_row(&self, id: &str) -> Result<OpOccRow, LcmError> {
        self.store
            .op_occ_get(id)
            .await?
            .ok_or_else(|| LcmError::NotFound {
                kind: "LCM operation occurrence",
                id: id.to_owned(),
            })
    }

    /// The span of an occurrence's saga (see [`op_span`]).
    async fn op_span(&self, id: &str) -> Result<tracing::Span, LcmError> {
        let op = self.op_occ_row(id).await?;
        Ok(op_span(&op))
    }

    /// Retries a FAILED_TEMP occurrence.
    pub async fn retry(self: &Arc<Self>, id: &str) -> Result<(), LcmError> {
        self.failed_temp(id).await?;
        if !self
            .transition(id, LcmOperationState::Processing, None)
            .await?
        {
            return Err(LcmError::NotAllowed(format!(
                "occurrence {id} is no longer FAILED_TEMP"
            )));
        }
        let span = self.op_span(id).await?;
        let this = self.clone();
        let id = id.to_owned();
        tokio::spawn(
            async move {
                let Some(_driving) = this.driving(&id) else {
                    return;
                };
                this.conclude(&id, this.executor.retry(&id).await).await;
            }
            .instrument(span),
        );
        Ok(())
    }

    /// Cancels a STARTING or PROCESSING occurrence: after the step under way, what it did is
    /// undone and it ends FAILED_TEMP (retry or fail it then).
    pub async fn cancel(&self, id: &str) -> Result<(), LcmError> {
        let op = self.op_occ(id).await?;
        let running = matches!(
            op.operation_state,
            LcmOperationState::Starting | LcmOperationState::Processing
        );
        if !running || !self.executor.cancel(id).await? {
            return Err(LcmError::NotAllowed(format!(
                "occurrence {id} is {:?}: only a STARTING or PROCESSING operation can be cancelled",
                op.operation_state
            )));
        }
        tracing::info!(op_occ = %id, "LCM operation cancellation requested");
        Ok(())
    }

    /// Marks a FAILED_TEMP occurrence FAILED (final).
    pub async fn fail(&self, id: &str) -> Result<AppLcmOpOcc, LcmError> {
        self.failed_temp(id).await?;
        self.executor.fail(id).await?;
        self.settle(id, SagaStatus::Failed).await;
        self.op_occ(id).await
    }

    /// Resumes operations whose executor died (after a restart, or another replica's crash)
    /// and brings every occurrence in line with its saga. Runs at start and periodically.
    pub async fn recover(&self) -> Result<(), LcmError> {
        for id in self.executor.claimable().await? {
            let Some(_driving) = self.driving(&id) else {
                continue;
            };
            tracing::info!(op_occ = %id, "resuming an LCM operation");
            let resume = async { self.conclude(&id, self.executor.run(&id).await).await };
            resume.instrument(self.op_span(&id).await?).await;
        }
        for op in self.store.op_occ_list().await? {
            if matches!(op.state.as_str(), "STARTING" | "PROCESSING") {
                let (status, _) = self.executor.status(&op.id).await?;
                if status != SagaStatus::Running {
                    self.settle(&op.id, status).await;
                }
            }
        }
        Ok(())
    }
}
