//! MEC 011 v3 registrations (`mec_app_support/v1/registrations`, clause 7.2.14): an application
//! that MEC management did not instantiate registers itself (where the operator allows it) and
//! keeps its AppInfo up to date; a provisioned one reads its AppInfo there. The registration is
//! the application instance: deregistering removes it and everything it owns.

use api_specs::mp1::app_support::{AppInfo, OperationActionType};
use api_specs::mp1::provisioning::AppRulePolicy;

use crate::store::Change;

use super::instances::{app_row, finish_action};
use super::{AppInstance, AppInstanceState, MepError, Platform, new_id, not_found};

/// Why an application may not change a registration MEC management made.
fn provisioned(id: &str) -> MepError {
    MepError::Forbidden(format!(
        "application instance {id} was instantiated by MEC management; its AppInfo is provisioned"
    ))
}

/// The checks of a self-registration: an application name, the endpoint ETSI requires when
/// MEC management did not instantiate the application, and no claim that it did.
fn validate(info: &AppInfo) -> Result<(), MepError> {
    info.validate_names().map_err(MepError::Invalid)?;
    if info.is_ins_by_mec == Some(true) {
        return Err(MepError::Invalid(
            "isInsByMec: an application registering itself was not instantiated by MEC management"
                .into(),
        ));
    }
    let endpoint = info.endpoint.as_ref().ok_or_else(|| {
        MepError::Invalid("endpoint shall be present when isInsByMec is FALSE".into())
    })?;
    endpoint.validate().map_err(MepError::Invalid)
}

impl Platform {
    /// `POST /registrations`: registers an application instance; `bound` is the instance the
    /// caller's client is bound to (it may register only that one).
    pub async fn registration_create(
        &self,
        bound: Option<&str>,
        mut info: AppInfo,
    ) -> Result<AppInfo, MepError> {
        if !self.settings.allow_self_registration {
            return Err(MepError::Forbidden(
                "this platform does not let applications register themselves".into(),
            ));
        }
        validate(&info)?;
        let id = match (bound, info.app_instance_id.as_deref()) {
            (Some(own), Some(given)) if own != given => {
                return Err(MepError::Forbidden(format!(
                    "the client may only register application instance {own}"
                )));
            }
            (Some(own), _) => own.to_owned(),
            (None, Some(given)) => given.to_owned(),
            (None, None) => new_id(),
        };
        info.app_instance_id = Some(id.clone());
        info.is_ins_by_mec = Some(false);
        self.write(|state, now| {
            if state.apps.contains_key(&id) {
                return Err(MepError::Conflict(format!(
                    "application instance {id} is registered already"
                )));
            }
            let app = AppInstance {
                info: info.clone(),
                produced: Vec::new(),
                client: None,
                policy: AppRulePolicy::default(),
                state: AppInstanceState::Instantiated,
                pending: None,
            };
            let change = Change::UpsertApp(app_row(&id, &app, now));
            state.apps.insert(id.clone(), app);
            Ok((vec![change], info))
        })
        .await
    }

    /// `GET /registrations/{appInstanceId}`: the instance's AppInfo.
    pub fn registration_get(&self, app_instance_id: &str) -> Result<AppInfo, MepError> {
        self.snapshot()
            .apps
            .get(app_instance_id)
            .map(|a| a.info.clone())
            .ok_or_else(|| not_found("registration", app_instance_id))
    }

    /// `PUT /registrations/{appInstanceId}`: replaces a self-registered instance's AppInfo.
    pub async fn registration_update(
        &self,
        app_instance_id: &str,
        mut info: AppInfo,
    ) -> Result<(), MepError> {
        validate(&info)?;
        if info
            .app_instance_id
            .as_deref()
            .is_some_and(|given| given != app_instance_id)
        {
            return Err(MepError::Invalid(
                "appInstanceId differs from the path".into(),
            ));
        }
        info.app_instance_id = Some(app_instance_id.to_owned());
        info.is_ins_by_mec = Some(false);
        self.write(|state, now| {
            let app = state
                .apps
                .get_mut(app_instance_id)
                .ok_or_else(|| not_found("registration", app_instance_id))?;
            if app.info.is_ins_by_mec == Some(true) {
                return Err(provisioned(app_instance_id));
            }
            app.info = info;
            Ok((
                vec![Change::UpsertApp(app_row(app_instance_id, app, now))],
                (),
            ))
        })
        .await
    }

    /// `DELETE /registrations/{appInstanceId}`: deregisters a self-registered instance, with
    /// its services, rules and subscriptions.
    pub async fn registration_delete(&self, app_instance_id: &str) -> Result<(), MepError> {
        self.write(|state, now| {
            let app = state
                .apps
                .get(app_instance_id)
                .ok_or_else(|| not_found("registration", app_instance_id))?;
            if app.info.is_ins_by_mec == Some(true) {
                return Err(provisioned(app_instance_id));
            }
            let terminating = OperationActionType::Terminating;
            Ok((finish_action(state, app_instance_id, terminating, now), ()))
        })
        .await
    }
}
