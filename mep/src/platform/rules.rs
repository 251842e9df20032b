//! Traffic and DNS rules of application instances: reads, updates by the applications, the
//! table the DNS server answers from and the rules traffic steering installs.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use api_specs::mp1::app_support::{
    DnsRule, RuleState, TrafficRule, TrafficRuleAction, validate_dns_target,
};
use serde::Serialize;

use crate::store::{Change, RuleRow};

use api_specs::common::{MAX_ID, check_text};

use super::policy::{DomainGrant, TrafficUpdates, domain_grant, domain_of, outside_envelope};
use super::{AppInstanceState, MepError, Platform, RuleKey, State, Tagged, json, not_found};

/// One DNS answer served for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The address.
    pub ip: IpAddr,
    /// TTL in seconds.
    pub ttl: u32,
}

/// Domains answered by the DNS server: the ACTIVE rules of READY instances, by lower-case name
/// without the trailing dot.
pub type DnsTable = RwLock<Arc<HashMap<String, Vec<DnsAnswer>>>>;

impl Platform {
    /// The traffic rules to steer by: those of every READY instance, by instance.
    pub fn steered_rules(&self) -> BTreeMap<String, Vec<TrafficRule>> {
        let state = self.snapshot();
        let mut rules: BTreeMap<String, Vec<TrafficRule>> = BTreeMap::new();
        for ((app, _), rule) in &state.traffic_rules {
            if state
                .apps
                .get(app)
                .is_some_and(|a| a.state == AppInstanceState::Ready)
            {
                rules
                    .entry(app.clone())
                    .or_default()
                    .push(rule.value.clone());
            }
        }
        rules
    }

    pub(super) fn rebuild_dns(&self) {
        let state = self.snapshot();
        let mut table: HashMap<String, Vec<DnsAnswer>> = HashMap::new();
        for ((app, _), rule) in &state.dns_rules {
            let ready = state
                .apps
                .get(app)
                .is_some_and(|a| a.state == AppInstanceState::Ready);
            if !ready || rule.value.state != RuleState::Active {
                continue;
            }
            let Ok(ip) = rule.value.ip_address.parse::<IpAddr>() else {
                continue;
            };
            table
                .entry(normalize_domain(&rule.value.domain_name))
                .or_default()
                .push(DnsAnswer {
                    ip,
                    ttl: rule.value.ttl.unwrap_or(self.settings.default_dns_ttl),
                });
        }
        match self.dns.write() {
            Ok(mut t) => *t = Arc::new(table),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(table),
        }
    }
}

impl Platform {
    /// The traffic rules of an instance.
    pub fn traffic_rule_list(&self, app: &str) -> Result<Vec<TrafficRule>, MepError> {
        let state = self.snapshot();
        if !state.apps.contains_key(app) {
            return Err(not_found("application instance", app));
        }
        Ok(rules_of(&state.traffic_rules, app)
            .map(|r| r.value.clone())
            .collect())
    }

    /// One traffic rule.
    pub fn traffic_rule_get(&self, app: &str, id: &str) -> Result<Tagged<TrafficRule>, MepError> {
        self.snapshot()
            .traffic_rules
            .get(&(app.to_owned(), id.to_owned()))
            .cloned()
            .ok_or_else(|| not_found("traffic rule", id))
    }

    /// Updates a traffic rule (`PUT`), honouring `If-Match`.
    pub async fn traffic_rule_update(
        &self,
        app: &str,
        id: &str,
        rule: TrafficRule,
        if_match: Option<&str>,
    ) -> Result<Tagged<TrafficRule>, MepError> {
        if rule.traffic_rule_id != id {
            return Err(MepError::Invalid(
                "trafficRuleId differs from the path".into(),
            ));
        }
        validate_traffic_rule(&rule)?;
        let key = (app.to_owned(), id.to_owned());
        let if_match = if_match.map(str::to_owned);
        let bounded = self.settings.app_rules.traffic_updates == TrafficUpdates::Envelope;
        self.write(move |state, _| {
            let current = state
                .traffic_rules
                .get(&key)
                .ok_or_else(|| not_found("traffic rule", &key.1))?;
            current.check(if_match.as_deref())?;
            let envelope = state.apps.get(app).map(|a| &a.policy.traffic);
            if let Some(why) = envelope
                .filter(|_| bounded)
                .and_then(|e| outside_envelope(e, &rule))
            {
                return Err(MepError::Forbidden(format!(
                    "traffic rule {id}: {why}: outside what application instance {app} was granted"
                )));
            }
            let next = Tagged {
                value: rule,
                etag: current.etag + 1,
            };
            let row = rule_row(&key, &next.value, next.etag);
            state.traffic_rules.insert(key, next.clone());
            Ok((vec![Change::UpsertTrafficRule(row)], next))
        })
        .await
    }

    /// The DNS rules of an instance.
    pub fn dns_rule_list(&self, app: &str) -> Result<Vec<DnsRule>, MepError> {
        let state = self.snapshot();
        if !state.apps.contains_key(app) {
            return Err(not_found("application instance", app));
        }
        Ok(rules_of(&state.dns_rules, app)
            .map(|r| r.value.clone())
            .collect())
    }

    /// One DNS rule.
    pub fn dns_rule_get(&self, app: &str, id: &str) -> Result<Tagged<DnsRule>, MepError> {
        self.snapshot()
            .dns_rules
            .get(&(app.to_owned(), id.to_owned()))
            .cloned()
            .ok_or_else(|| not_found("DNS rule", id))
    }

    /// Updates a DNS rule (`PUT`), honouring `If-Match`; the DNS server follows at once.
    pub async fn dns_rule_update(
        &self,
        app: &str,
        id: &str,
        rule: DnsRule,
        if_match: Option<&str>,
    ) -> Result<Tagged<DnsRule>, MepError> {
        if rule.dns_rule_id != id {
            return Err(MepError::Invalid("dnsRuleId differs from the path".into()));
        }
        validate_dns_rule(&rule)?;
        let key = (app.to_owned(), id.to_owned());
        let if_match = if_match.map(str::to_owned);
        let domain = domain_of(&rule);
        let suffixes = self.domain_suffixes();
        self.write(move |state, _| {
            let current = state
                .dns_rules
                .get(&key)
                .ok_or_else(|| not_found("DNS rule", &key.1))?;
            current.check(if_match.as_deref())?;
            let grant = state.apps.get(app).map_or(DomainGrant::None, |a| {
                domain_grant(&a.policy, suffixes, &domain)
            });
            if grant == DomainGrant::None {
                return Err(MepError::Forbidden(format!(
                    "{} is not a name application instance {app} was granted",
                    rule.domain_name
                )));
            }
            // a name given by MEC management to several instances is theirs to share; any
            // other name answered for one instance is never taken by another
            if let Some(holder) = state.dns_rules.iter().find_map(|((other, _), r)| {
                let shared = grant == DomainGrant::Named
                    && state.apps.get(other).is_some_and(|o| {
                        domain_grant(&o.policy, &[], &domain) == DomainGrant::Named
                    });
                (other != app && domain_of(&r.value) == domain && !shared).then_some(other)
            }) {
                return Err(MepError::Conflict(format!(
                    "{} is answered for application instance {holder}",
                    rule.domain_name
                )));
            }
            if grant == DomainGrant::Suffix
                && let Some((holder, _)) = state.apps.iter().find(|(other, o)| {
                    *other != app && domain_grant(&o.policy, &[], &domain) == DomainGrant::Named
                })
            {
                return Err(MepError::Conflict(format!(
                    "{} is granted to application instance {holder}",
                    rule.domain_name
                )));
            }
            let next = Tagged {
                value: rule,
                etag: current.etag + 1,
            };
            let row = rule_row(&key, &next.value, next.etag);
            state.dns_rules.insert(key, next.clone());
            Ok((vec![Change::UpsertDnsRule(row)], next))
        })
        .await
    }
}

impl Platform {
    /// Suffixes below which any application may answer names.
    pub(super) fn domain_suffixes(&self) -> &[String] {
        &self.settings.app_rules.dns_domain_suffixes
    }
}

/// Another instance than `id` answering `domain` through a name it took below a suffix (not
/// one MEC management gave it), if any: provisioning that name elsewhere would take it away.
pub(super) fn taken_elsewhere<'a>(
    state: &'a State,
    id: &str,
    domain: &str,
    suffixes: &[String],
) -> Option<&'a str> {
    state.dns_rules.iter().find_map(|((other, _), r)| {
        let took = other != id
            && domain_of(&r.value) == domain
            && state
                .apps
                .get(other)
                .is_some_and(|o| domain_grant(&o.policy, suffixes, domain) != DomainGrant::Named);
        took.then_some(other.as_str())
    })
}

pub(super) fn rule_row<T: Serialize>(key: &RuleKey, value: &T, etag: i64) -> RuleRow {
    RuleRow {
        app_instance_id: key.0.clone(),
        rule_id: key.1.clone(),
        body: json(value),
        etag,
    }
}

pub(super) fn rules_of<'a, T>(
    rules: &'a BTreeMap<RuleKey, Tagged<T>>,
    app: &'a str,
) -> impl Iterator<Item = &'a Tagged<T>> {
    rules
        .iter()
        .filter(move |((a, _), _)| a == app)
        .map(|(_, r)| r)
}

/// Replaces an instance's rules with `desired`: unchanged rules keep their tag, changed ones
/// get a new one, missing ones are deleted.
pub(super) fn replace_rules<T: Clone + PartialEq + Serialize>(
    rules: &mut BTreeMap<RuleKey, Tagged<T>>,
    app: &str,
    desired: &[T],
    id_of: impl Fn(&T) -> &String,
    upsert: impl Fn(RuleRow) -> Change,
    delete: impl Fn(String, String) -> Change,
    changes: &mut Vec<Change>,
) {
    let stale: Vec<RuleKey> = rules
        .keys()
        .filter(|(a, id)| a == app && !desired.iter().any(|d| id_of(d) == id))
        .cloned()
        .collect();
    for key in stale {
        rules.remove(&key);
        changes.push(delete(key.0, key.1));
    }
    for rule in desired {
        let key = (app.to_owned(), id_of(rule).clone());
        let etag = match rules.get(&key) {
            Some(current) if &current.value == rule => continue,
            Some(current) => current.etag + 1,
            None => 1,
        };
        changes.push(upsert(rule_row(&key, rule, etag)));
        rules.insert(
            key,
            Tagged {
                value: rule.clone(),
                etag,
            },
        );
    }
}

pub(super) fn unique<'a>(
    ids: impl Iterator<Item = &'a String>,
    what: &str,
) -> Result<(), MepError> {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(MepError::Invalid(format!("duplicate {what} {id}")));
        }
    }
    Ok(())
}

/// Lower-case domain without the trailing dot.
pub fn normalize_domain(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn validate_dns_rule(rule: &DnsRule) -> Result<(), MepError> {
    check_text("dnsRuleId", &rule.dns_rule_id, MAX_ID).map_err(MepError::Invalid)?;
    validate_dns_target(&rule.domain_name, rule.ip_address_type, &rule.ip_address)
        .map_err(MepError::Invalid)
}

pub(super) fn validate_traffic_rule(rule: &TrafficRule) -> Result<(), MepError> {
    let id = &rule.traffic_rule_id;
    check_text("trafficRuleId", id, MAX_ID).map_err(MepError::Invalid)?;
    if rule.traffic_filter.is_empty() {
        return Err(MepError::Invalid(format!(
            "traffic rule {id}: trafficFilter needs at least one filter"
        )));
    }
    let needs_destination = !matches!(
        rule.action,
        TrafficRuleAction::Drop | TrafficRuleAction::Passthrough
    );
    if needs_destination && rule.dst_interface.is_none() {
        return Err(MepError::Invalid(format!(
            "traffic rule {id}: action needs a dstInterface"
        )));
    }
    for filter in &rule.traffic_filter {
        filter
            .validate()
            .map_err(|e| MepError::Invalid(format!("traffic rule {id}: {e}")))?;
    }
    Ok(())
}
