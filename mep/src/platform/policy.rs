//! What an application may change in its own rules (issue: MEC 011 lets it update its traffic
//! and DNS rules, and an unbounded update steers or drops every flow of the site, or answers
//! another application's names). Each instance holds an [`AppRulePolicy`] from MEC management,
//! by default derived from the rules it was provisioned with; Mp1 updates inside it are applied,
//! updates outside it are refused with the reason. Traffic updates are unbounded only where the
//! platform is configured so ([`TrafficUpdates::Permissive`]).

use std::net::IpAddr;

use api_specs::mp1::app_support::{DnsRule, TrafficFilter, TrafficRule};
use api_specs::mp1::provisioning::{AppInstanceConfig, AppRulePolicy, TrafficRuleEnvelope};
use serde::{Deserialize, Serialize};

use super::normalize_domain;

/// The platform's bounds of applications' own rule changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppRulesConfig {
    /// How far applications may change their traffic rules.
    pub traffic_updates: TrafficUpdates,
    /// Suffixes below which any application may answer names with its DNS rules (first come,
    /// first served), beside what MEC management grants each instance.
    pub dns_domain_suffixes: Vec<String>,
}

/// How far applications may change their traffic rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficUpdates {
    /// Inside the instance's envelope (the default).
    #[default]
    Envelope,
    /// Any valid rule: an explicit choice for labs, never a default.
    Permissive,
}

/// The policy of a provisioned configuration: the one MEC management gave, else one derived
/// from the provisioned rules (their domain names; their filters, actions, highest priority
/// and destinations).
pub fn resolve(config: &AppInstanceConfig) -> AppRulePolicy {
    if let Some(policy) = &config.app_rule_policy {
        return policy.clone();
    }
    let rules = &config.app_traffic_rule;
    let mut actions = Vec::new();
    let mut dst_interface = Vec::new();
    for rule in rules {
        if !actions.contains(&rule.action) {
            actions.push(rule.action);
        }
        if let Some(d) = rule
            .dst_interface
            .as_ref()
            .filter(|d| !dst_interface.contains(*d))
        {
            dst_interface.push(d.clone());
        }
    }
    AppRulePolicy {
        dns_domains: config
            .app_dns_rule
            .iter()
            .map(|r| normalize_domain(&r.domain_name))
            .collect(),
        traffic: TrafficRuleEnvelope {
            traffic_filter: rules
                .iter()
                .flat_map(|r| r.traffic_filter.iter().cloned())
                .collect(),
            actions,
            highest_priority: rules.iter().map(|r| r.priority).min().unwrap_or(u8::MAX),
            dst_interface,
        },
    }
}

/// Why `rule` is outside `envelope`, if it is.
pub fn outside_envelope(envelope: &TrafficRuleEnvelope, rule: &TrafficRule) -> Option<String> {
    if !envelope.actions.contains(&rule.action) {
        return Some(format!("action {:?} is not granted", rule.action));
    }
    if rule.priority < envelope.highest_priority {
        return Some(format!(
            "priority {} is above the highest granted ({}; 0 is the highest)",
            rule.priority, envelope.highest_priority
        ));
    }
    if let Some(d) = &rule.dst_interface
        && !envelope.dst_interface.contains(d)
    {
        return Some("dstInterface is not one the rule may forward to".into());
    }
    rule.traffic_filter
        .iter()
        .position(|f| !envelope.traffic_filter.iter().any(|e| covers(e, f)))
        .map(|i| format!("trafficFilter[{i}] reaches beyond the granted filters"))
}

/// Whether every packet `filter` matches is matched by `bound`.
fn covers(bound: &TrafficFilter, filter: &TrafficFilter) -> bool {
    let addresses = |b: &Option<Vec<String>>, f: &Option<Vec<String>>| {
        within(b, f, |b, f| {
            address_range(b)
                .zip(address_range(f))
                .is_some_and(|(b, f)| b.contains(&f))
        })
    };
    let ports = |b: &Option<Vec<String>>, f: &Option<Vec<String>>| {
        within(b, f, |b, f| {
            port_range(b)
                .zip(port_range(f))
                .is_some_and(|(b, f)| b.0 <= f.0 && f.1 <= b.1)
        })
    };
    let equal = |b: &Option<Vec<String>>, f: &Option<Vec<String>>| {
        within(b, f, |b, f| b.eq_ignore_ascii_case(f))
    };
    let number = |b: Option<u32>, f: Option<u32>| b.is_none() || b == f;
    addresses(&bound.src_address, &filter.src_address)
        && addresses(&bound.dst_address, &filter.dst_address)
        && ports(&bound.src_port, &filter.src_port)
        && ports(&bound.dst_port, &filter.dst_port)
        && equal(&bound.protocol, &filter.protocol)
        && equal(&bound.tag, &filter.tag)
        && addresses(&bound.src_tunnel_address, &filter.src_tunnel_address)
        && addresses(&bound.tgt_tunnel_address, &filter.tgt_tunnel_address)
        && ports(&bound.src_tunnel_port, &filter.src_tunnel_port)
        && ports(&bound.dst_tunnel_port, &filter.dst_tunnel_port)
        && number(bound.q_ci, filter.q_ci)
        && number(bound.d_scp, filter.d_scp)
        && number(bound.t_c, filter.t_c)
}

/// An unbounded attribute admits anything; a bounded one admits a set attribute each of whose
/// values lies in one of the bound's (leaving the attribute out would match everything).
fn within(
    bound: &Option<Vec<String>>,
    given: &Option<Vec<String>>,
    inside: impl Fn(&str, &str) -> bool,
) -> bool {
    match (bound, given) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(bound), Some(given)) => {
            !given.is_empty() && given.iter().all(|g| bound.iter().any(|b| inside(b, g)))
        }
    }
}

/// An address, prefix or `a-b` range as an inclusive range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddressRange {
    v6: bool,
    first: u128,
    last: u128,
}

impl AddressRange {
    fn contains(&self, other: &Self) -> bool {
        self.v6 == other.v6 && self.first <= other.first && other.last <= self.last
    }
}

fn numeric(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

fn address_range(s: &str) -> Option<AddressRange> {
    if let Some((ip, len)) = s.split_once('/') {
        let (v6, value) = numeric(ip.trim().parse().ok()?);
        let bits = if v6 { 128 } else { 32 };
        let len: u32 = len.trim().parse().ok().filter(|l| *l <= bits)?;
        let host = if len == bits {
            0
        } else {
            (1u128 << (bits - len)) - 1
        };
        let first = value & !host;
        return Some(AddressRange {
            v6,
            first,
            last: first | host,
        });
    }
    if let Some((a, b)) = s.split_once('-') {
        let ((v6, first), (v6b, last)) = (
            numeric(a.trim().parse().ok()?),
            numeric(b.trim().parse().ok()?),
        );
        return (v6 == v6b && first <= last).then_some(AddressRange { v6, first, last });
    }
    let (v6, value) = numeric(s.trim().parse().ok()?);
    Some(AddressRange {
        v6,
        first: value,
        last: value,
    })
}

fn port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => s.trim().parse().ok().map(|p| (p, p)),
    }
}

/// How a domain name is granted to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainGrant {
    /// MEC management gave it this name (exactly).
    Named,
    /// It is below a suffix MEC management or the platform grants (first come, first served).
    Suffix,
    /// Not granted.
    None,
}

/// How `domain` (normalized) is granted by `policy` and the platform-wide `suffixes`.
pub fn domain_grant(policy: &AppRulePolicy, suffixes: &[String], domain: &str) -> DomainGrant {
    let below = |suffix: &str| {
        let suffix = normalize_domain(suffix.trim_start_matches("*."));
        domain.len() > suffix.len() + 1
            && domain.ends_with(&suffix)
            && domain.as_bytes()[domain.len() - suffix.len() - 1] == b'.'
    };
    if policy
        .dns_domains
        .iter()
        .any(|d| !d.starts_with("*.") && normalize_domain(d) == domain)
    {
        DomainGrant::Named
    } else if policy
        .dns_domains
        .iter()
        .filter(|d| d.starts_with("*."))
        .chain(suffixes)
        .any(|s| below(s))
    {
        DomainGrant::Suffix
    } else {
        DomainGrant::None
    }
}

/// The normalized name of a DNS rule.
pub fn domain_of(rule: &DnsRule) -> String {
    normalize_domain(&rule.domain_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_specs::mp1::app_support::{
        DestinationInterface, FilterType, InterfaceType, RuleState, TrafficRuleAction,
    };

    fn filter(dst: &[&str], port: Option<&[&str]>) -> TrafficFilter {
        TrafficFilter {
            dst_address: Some(dst.iter().map(|s| (*s).to_owned()).collect()),
            dst_port: port.map(|p| p.iter().map(|s| (*s).to_owned()).collect()),
            protocol: Some(vec!["TCP".into()]),
            ..TrafficFilter::default()
        }
    }

    fn rule(f: TrafficFilter, priority: u8, action: TrafficRuleAction, to: &str) -> TrafficRule {
        TrafficRule {
            traffic_rule_id: "r".into(),
            filter_type: FilterType::Flow,
            priority,
            traffic_filter: vec![f],
            action,
            dst_interface: Some(DestinationInterface {
                interface_type: InterfaceType::Ip,
                tunnel_info: None,
                src_mac_address: None,
                dst_mac_address: None,
                dst_ip_address: Some(to.into()),
            }),
            state: RuleState::Active,
        }
    }

    fn envelope() -> TrafficRuleEnvelope {
        let provisioned = AppInstanceConfig {
            app_info: serde_json::from_value(serde_json::json!({"appName": "a"})).unwrap(),
            app_traffic_rule: vec![rule(
                filter(&["10.20.0.0/16"], Some(&["443", "8000-8100"])),
                10,
                TrafficRuleAction::ForwardDecapsulated,
                "10.10.0.7",
            )],
            app_dns_rule: vec![],
            app_service_produced: vec![],
            transport_dependencies: vec![],
            oauth2_client: None,
            app_rule_policy: None,
        };
        resolve(&provisioned).traffic
    }

    #[test]
    fn updates_inside_the_provisioned_rules_pass() {
        let e = envelope();
        let narrower = filter(&["10.20.5.0/24", "10.20.9.9"], Some(&["8010-8020"]));
        let ok = rule(
            narrower,
            50,
            TrafficRuleAction::ForwardDecapsulated,
            "10.10.0.7",
        );
        assert_eq!(outside_envelope(&e, &ok), None);
        let mut inactive = ok.clone();
        inactive.state = RuleState::Inactive;
        assert_eq!(outside_envelope(&e, &inactive), None);
    }

    #[test]
    fn widening_is_refused_with_the_reason() {
        let e = envelope();
        let base = filter(&["10.20.0.0/16"], Some(&["443"]));
        let fwd = TrafficRuleAction::ForwardDecapsulated;
        let cases = [
            (
                rule(filter(&["0.0.0.0/0"], Some(&["443"])), 10, fwd, "10.10.0.7"),
                "trafficFilter[0]",
            ),
            (
                rule(filter(&["10.20.0.0/16"], None), 10, fwd, "10.10.0.7"),
                "trafficFilter[0]",
            ),
            (
                rule(
                    filter(&["10.20.0.0/16"], Some(&["1-65535"])),
                    10,
                    fwd,
                    "10.10.0.7",
                ),
                "trafficFilter[0]",
            ),
            (
                rule(
                    filter(&["2001:db8::/32"], Some(&["443"])),
                    10,
                    fwd,
                    "10.10.0.7",
                ),
                "trafficFilter[0]",
            ),
            (rule(base.clone(), 0, fwd, "10.10.0.7"), "priority"),
            (
                rule(base.clone(), 10, TrafficRuleAction::Drop, "10.10.0.7"),
                "action",
            ),
            (rule(base.clone(), 10, fwd, "6.6.6.6"), "dstInterface"),
        ];
        for (r, why) in cases {
            let reason = outside_envelope(&e, &r).unwrap_or_default();
            assert!(reason.contains(why), "{why}: {reason}");
        }
        let mut no_protocol = base;
        no_protocol.protocol = None;
        assert!(outside_envelope(&e, &rule(no_protocol, 10, fwd, "10.10.0.7")).is_some());
    }

    #[test]
    fn ranges_parse() {
        let r = address_range("10.0.0.0/8").unwrap();
        assert_eq!((r.first, r.last), (0x0a00_0000, 0x0aff_ffff));
        assert!(
            address_range("10.0.0.0/0")
                .unwrap()
                .contains(&address_range("1.2.3.4").unwrap())
        );
        assert!(address_range("10.0.0.9-10.0.0.1").is_none());
        assert_eq!(port_range("80-90"), Some((80, 90)));
    }

    #[test]
    fn domains_are_granted_by_name_or_below_a_suffix() {
        let p = AppRulePolicy {
            dns_domains: vec!["va.mec.example".into(), "*.cdn.mec.example".into()],
            ..AppRulePolicy::default()
        };
        let suffixes = ["apps.mec.example".to_owned()];
        assert_eq!(
            domain_grant(&p, &suffixes, "va.mec.example"),
            DomainGrant::Named
        );
        assert_eq!(
            domain_grant(&p, &suffixes, "x.cdn.mec.example"),
            DomainGrant::Suffix
        );
        assert_eq!(
            domain_grant(&p, &suffixes, "a.apps.mec.example"),
            DomainGrant::Suffix
        );
        assert_eq!(
            domain_grant(&p, &suffixes, "cdn.mec.example"),
            DomainGrant::None
        );
        assert_eq!(
            domain_grant(&p, &suffixes, "xcdn.mec.example"),
            DomainGrant::None
        );
        assert_eq!(
            domain_grant(&p, &suffixes, "app-b.mec.example"),
            DomainGrant::None
        );
    }
}
