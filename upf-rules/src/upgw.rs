//! The UPGW backend: for sites without a 3GPP UPF, an inline Linux gateway between the radio
//! side (the access interface) and the core splits traffic by the MEC traffic rules, with
//! nftables and policy routing, optionally inside a network namespace.
//!
//! All rules of all instances go, highest priority first, into the prerouting chain of tables
//! `ip mecplane` and `ip6 mecplane` (per the addresses they match), each ending its evaluation: DROP drops; PASSTHROUGH accepts (normal
//! routing); FORWARD_DECAPSULATED marks the packet, and an `ip rule` sends marked packets to a
//! routing table whose default route leads to the application (its `dstIPAddress`) over the
//! edge interface; FORWARD_ENCAPSULATED does the same through a GRE tunnel to the rule's tunnel
//! end; DUPLICATE_* send a copy (`dup`) to the application or tunnel end and let the original
//! pass. INACTIVE rules are left out. The tables are replaced atomically on every change.

use std::collections::BTreeMap;
use std::net::IpAddr;

use api_specs::mp1::app_support::{
    RuleState, TrafficFilter, TrafficRule, TrafficRuleAction, TunnelType,
};

use crate::compile::{CompileError, address, invalid, packet_labels, ports, protocol, tunnel_info};

/// First firewall mark of steered packets.
const MARK_BASE: u32 = 0x4d45_0000;
/// Prefix of the GRE tunnels the gateway creates.
const TUNNEL_PREFIX: &str = "mecgre";

/// Where the gateway runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgwConfig {
    /// Network namespace of the gateway; the current one when absent.
    pub netns: Option<String>,
    /// Interface towards the radio side (user traffic arrives here).
    pub access_interface: String,
    /// Interface towards the edge applications.
    pub edge_interface: String,
    /// First routing table (one per steering rule).
    pub first_table: u32,
    /// First `ip rule` priority (one per steering rule).
    pub first_rule_priority: u32,
}

/// A UPGW failure.
#[derive(Debug, thiserror::Error)]
pub enum UpgwError {
    /// A rule cannot run on the gateway.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// A command failed.
    #[error("{command}: {detail}")]
    Command {
        /// The command.
        command: String,
        /// Its error output.
        detail: String,
    },
}

/// A route of marked packets: mark, table, `ip rule` priority and the route's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteeringRoute {
    /// Firewall mark.
    pub mark: u32,
    /// Routing table.
    pub table: u32,
    /// `ip rule` priority.
    pub priority: u32,
    /// Next hop on the edge interface, or a GRE tunnel (remote, local).
    pub via: Via,
}

/// Where a steering route leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The application's address on the edge interface (the interface itself when absent).
    Edge(Option<IpAddr>),
    /// A GRE tunnel (name, remote, local).
    Gre(String, IpAddr, Option<IpAddr>),
}

/// What the gateway is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The nftables script (atomic replacement of tables `ip mecplane` and `ip6 mecplane`).
    pub nft: String,
    /// Policy routes of the steering rules.
    pub routes: Vec<SteeringRoute>,
}

fn quoted(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("\"{clean}\"")
}

/// The nft matches of one filter: (IPv6?, match), one per address family it applies to.
fn matches(rule: &TrafficRule, f: &TrafficFilter) -> Result<Vec<(bool, String)>, CompileError> {
    if f.tag.is_some()
        || f.src_tunnel_address.is_some()
        || f.tgt_tunnel_address.is_some()
        || f.src_tunnel_port.is_some()
        || f.dst_tunnel_port.is_some()
        || f.q_ci.is_some()
    {
        return Err(invalid(
            rule,
            "tag, tunnel and QCI filters need a UPF, not the UPGW",
        ));
    }
    if f.uri.as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(invalid(
            rule,
            "uri filters need a UPF's application detection, not the UPGW (layers 3 and 4)",
        ));
    }
    let labels: Vec<String> = packet_labels(rule, f)?.iter().map(u32::to_string).collect();
    let split = |v: &Option<Vec<String>>| -> Result<(Vec<String>, Vec<String>), CompileError> {
        let all: Vec<String> = v
            .iter()
            .flatten()
            .map(|a| address(rule, a))
            .collect::<Result<_, _>>()?;
        Ok(all.into_iter().partition(|a| !a.contains(':')))
    };
    let (src4, src6) = split(&f.src_address)?;
    let (dst4, dst6) = split(&f.dst_address)?;
    let protocols: Vec<String> = f
        .protocol
        .iter()
        .flatten()
        .map(|p| protocol(rule, p))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| p != "ip")
        .collect();
    let (sport, dport) = (
        ports(rule, f.src_port.as_ref())?,
        ports(rule, f.dst_port.as_ref())?,
    );
    let mut l4 = Vec::new();
    if !protocols.is_empty() {
        l4.push(format!("meta l4proto {{ {} }}", protocols.join(", ")));
    } else if !sport.is_empty() || !dport.is_empty() {
        l4.push("meta l4proto { 6, 17, 132 }".into());
    }
    if !sport.is_empty() {
        l4.push(format!("th sport {{ {} }}", sport.replace(',', ", ")));
    }
    if !dport.is_empty() {
        l4.push(format!("th dport {{ {} }}", dport.replace(',', ", ")));
    }
    let set = |v: &[String]| format!("{{ {} }}", v.join(", "));
    let mut out = Vec::new();
    for (family, src, dst) in [("ip", &src4, &dst4), ("ip6", &src6, &dst6)] {
        let other_has =
            |mine: &Vec<String>, theirs: &Vec<String>| mine.is_empty() && !theirs.is_empty();
        let (osrc, odst) = if family == "ip" {
            (&src6, &dst6)
        } else {
            (&src4, &dst4)
        };
        // A side given only in the other family rules this family out; packet labels (IPv6
        // flow labels, refused with IPv4 addresses) rule IPv4 out.
        if other_has(src, osrc) || other_has(dst, odst) || (family == "ip" && !labels.is_empty()) {
            continue;
        }
        let mut m = Vec::new();
        if !src.is_empty() {
            m.push(format!("{family} saddr {}", set(src)));
        }
        if !dst.is_empty() {
            m.push(format!("{family} daddr {}", set(dst)));
        }
        match (family, f.d_scp, f.t_c) {
            (_, Some(d), _) if d < 64 => m.push(format!("{family} dscp {d}")),
            (_, Some(d), _) => return Err(invalid(rule, format!("DSCP {d} out of range"))),
            ("ip6", None, Some(t)) if t < 256 => m.push(format!("ip6 dscp {}", t >> 2)),
            (_, None, Some(t)) if t >= 256 => {
                return Err(invalid(rule, format!("traffic class {t} out of range")));
            }
            _ => {}
        }
        if family == "ip6" && !labels.is_empty() {
            m.push(format!("ip6 flowlabel {}", set(&labels)));
        }
        m.extend(l4.iter().cloned());
        out.push((family == "ip6", m.join(" ")));
    }
    Ok(out)
}

fn edge_address(rule: &TrafficRule) -> Result<Option<IpAddr>, CompileError> {
    rule.dst_interface
        .as_ref()
        .and_then(|d| d.dst_ip_address.as_deref())
        .map(|a| {
            a.parse()
                .map_err(|_| invalid(rule, format!("dstIPAddress {a} is not an IP address")))
        })
        .transpose()
}

/// The GRE tunnel (name, remote, local) of an encapsulating rule.
fn gre(rule: &TrafficRule, index: usize) -> Result<(String, IpAddr, Option<IpAddr>), CompileError> {
    let info = tunnel_info(rule)?;
    if info.tunnel_type != TunnelType::Gre {
        return Err(invalid(
            rule,
            "GTP-U tunnels need a UPF; the UPGW supports GRE",
        ));
    }
    let parse = |a: Option<&str>, what: &str| -> Result<Option<IpAddr>, CompileError> {
        a.map(|a| {
            a.parse()
                .map_err(|_| invalid(rule, format!("{what} {a} is not an IP address")))
        })
        .transpose()
    };
    let remote = parse(info.tunnel_dst_address.as_deref(), "tunnelDstAddress")?
        .ok_or_else(|| invalid(rule, "tunnelInfo needs tunnelDstAddress"))?;
    let local = parse(info.tunnel_src_address.as_deref(), "tunnelSrcAddress")?;
    Ok((format!("{TUNNEL_PREFIX}{index}"), remote, local))
}

/// Compiles the rules of every instance (by instance id) for the gateway.
pub fn compile(
    config: &UpgwConfig,
    rules: &BTreeMap<String, Vec<TrafficRule>>,
) -> Result<Ruleset, CompileError> {
    let mut active: Vec<(&String, &TrafficRule)> = rules
        .iter()
        .flat_map(|(app, rules)| rules.iter().map(move |r| (app, r)))
        .filter(|(_, r)| r.state == RuleState::Active)
        .collect();
    // Highest priority (0) first; ties in a stable order.
    active.sort_by_key(|(_, r)| r.priority);
    let mut lines: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut routes = Vec::new();
    for (app, rule) in active {
        let comment = format!(
            "comment {}",
            quoted(&format!("{app}/{}", rule.traffic_rule_id))
        );
        let index = routes.len();
        let steer = |via: Via| SteeringRoute {
            mark: MARK_BASE + index as u32,
            table: config.first_table + index as u32,
            priority: config.first_rule_priority + index as u32,
            via,
        };
        let (verdict, route) = match rule.action {
            TrafficRuleAction::Drop => ("drop".to_owned(), None),
            TrafficRuleAction::Passthrough => ("accept".to_owned(), None),
            TrafficRuleAction::ForwardDecapsulated => {
                let r = steer(Via::Edge(edge_address(rule)?));
                (format!("meta mark set {:#x} accept", r.mark), Some(r))
            }
            TrafficRuleAction::ForwardEncapsulated => {
                let (name, remote, local) = gre(rule, index)?;
                let r = steer(Via::Gre(name, remote, local));
                (format!("meta mark set {:#x} accept", r.mark), Some(r))
            }
            TrafficRuleAction::DuplicateDecapsulated => {
                let to = edge_address(rule)?.ok_or_else(|| {
                    invalid(
                        rule,
                        "duplicating on the UPGW needs dstInterface.dstIPAddress",
                    )
                })?;
                (
                    format!(
                        "dup to {to} device {} accept",
                        quoted(&config.edge_interface)
                    ),
                    None,
                )
            }
            TrafficRuleAction::DuplicateEncapsulated => {
                let (name, remote, local) = gre(rule, index)?;
                let r = steer(Via::Gre(name.clone(), remote, local));
                (
                    format!("dup to {remote} device {} accept", quoted(&name)),
                    Some(r),
                )
            }
        };
        let filters: &[TrafficFilter] = if rule.traffic_filter.is_empty() {
            &[TrafficFilter::default()]
        } else {
            &rule.traffic_filter
        };
        for f in filters {
            for (v6, m) in matches(rule, f)? {
                // a copy goes to an address of the packet's family
                if verdict.starts_with("dup to ") && verdict.contains(':') != v6 {
                    continue;
                }
                lines[usize::from(v6)].push(format!(
                    "\t\tiifname {} {m} {verdict} {comment}",
                    quoted(&config.access_interface)
                ));
            }
        }
        routes.extend(route);
    }
    let nft = ["ip", "ip6"]
        .iter()
        .zip(&lines)
        .map(|(family, lines)| {
            format!(
                "table {family} mecplane\ndelete table {family} mecplane\ntable {family} mecplane {{\n\tchain steer {{\n\t\ttype filter hook prerouting priority mangle; policy accept;\n{}\n\t}}\n}}\n",
                lines.join("\n")
            )
        })
        .collect();
    Ok(Ruleset { nft, routes })
}

impl UpgwConfig {
    fn command(&self, program: &str) -> tokio::process::Command {
        match &self.netns {
            Some(ns) => {
                let mut c = tokio::process::Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => tokio::process::Command::new(program),
        }
    }

    async fn run(
        &self,
        program: &str,
        args: &[String],
        stdin: Option<&str>,
    ) -> Result<String, UpgwError> {
        use tokio::io::AsyncWriteExt;
        let mut command = self.command(program);
        command
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let failed = |detail: String| UpgwError::Command {
            command: format!("{program} {}", args.join(" ")),
            detail,
        };
        let mut child = command.spawn().map_err(|e| failed(e.to_string()))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !out.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn ip(&self, args: &[&str]) -> Result<String, UpgwError> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        self.run("ip", &args, None).await
    }

    /// Configures the gateway with `ruleset`, replacing what an earlier call configured.
    pub async fn apply(&self, ruleset: &Ruleset) -> Result<(), UpgwError> {
        self.run("nft", &["-f".into(), "-".into()], Some(&ruleset.nft))
            .await?;
        // Remove the previous policy rules with the routes of their tables, and the tunnels.
        let rules: Vec<serde_json::Value> =
            serde_json::from_str(&self.ip(&["-j", "rule", "show"]).await?).unwrap_or_default();
        let ours = self.first_rule_priority..self.first_rule_priority.saturating_add(4096);
        for rule in &rules {
            let Some(priority) = rule["priority"].as_u64() else {
                continue;
            };
            if !u32::try_from(priority).is_ok_and(|p| ours.contains(&p)) {
                continue;
            }
            self.ip(&["rule", "del", "priority", &priority.to_string()])
                .await?;
            if let Some(table) = rule["table"].as_str() {
                // fails only when the table is already gone, which is the goal
                let _ = self.ip(&["route", "flush", "table", table]).await;
            }
        }
        let links: Vec<serde_json::Value> =
            serde_json::from_str(&self.ip(&["-j", "link", "show"]).await?).unwrap_or_default();
        for link in links.iter().filter_map(|l| l["ifname"].as_str()) {
            if link.starts_with(TUNNEL_PREFIX) {
                self.ip(&["link", "del", link]).await?;
            }
        }
        for r in &ruleset.routes {
            let table = r.table.to_string();
            match &r.via {
                Via::Edge(Some(hop)) => {
                    let hop = hop.to_string();
                    self.ip(&[
                        "route",
                        "replace",
                        "default",
                        "via",
                        &hop,
                        "dev",
                        &self.edge_interface,
                        "table",
                        &table,
                    ])
                    .await?;
                }
                Via::Edge(None) => {
                    self.ip(&[
                        "route",
                        "replace",
                        "default",
                        "dev",
                        &self.edge_interface,
                        "table",
                        &table,
                    ])
                    .await?;
                }
                Via::Gre(name, remote, local) => {
                    let remote = remote.to_string();
                    let mut args = vec![
                        "link",
                        "add",
                        name.as_str(),
                        "type",
                        "gre",
                        "remote",
                        &remote,
                    ];
                    let local = local.map(|l| l.to_string());
                    if let Some(local) = &local {
                        args.extend(["local", local.as_str()]);
                    }
                    args.extend(["ttl", "64"]);
                    self.ip(&args).await?;
                    self.ip(&["link", "set", name, "up"]).await?;
                    self.ip(&["route", "replace", "default", "dev", name, "table", &table])
                        .await?;
                }
            }
            self.ip(&[
                "rule",
                "add",
                "fwmark",
                &format!("{:#x}", r.mark),
                "table",
                &table,
                "priority",
                &r.priority.to_string(),
            ])
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use api_specs::mp1::app_support::{
        DestinationInterface, FilterType, InterfaceType, TunnelInfo,
    };

    use super::*;

    fn config() -> UpgwConfig {
        UpgwConfig {
            netns: None,
            access_interface: "acc0".into(),
            edge_interface: "edge0".into(),
            first_table: 100,
            first_rule_priority: 500,
        }
    }

    fn rule(action: TrafficRuleAction, priority: u8, dst: &str) -> TrafficRule {
        TrafficRule {
            traffic_rule_id: format!("r{priority}"),
            filter_type: FilterType::Packet,
            priority,
            traffic_filter: vec![TrafficFilter {
                dst_address: Some(vec![dst.into()]),
                ..TrafficFilter::default()
            }],
            action,
            dst_interface: Some(DestinationInterface {
                interface_type: InterfaceType::Tunnel,
                tunnel_info: Some(TunnelInfo {
                    tunnel_type: TunnelType::Gre,
                    tunnel_dst_address: Some("192.0.2.9".into()),
                    tunnel_src_address: Some("192.0.2.1".into()),
                }),
                src_mac_address: None,
                dst_mac_address: None,
                dst_ip_address: None,
            }),
            state: RuleState::Active,
        }
    }

    #[test]
    fn rules_are_ordered_by_priority_and_split_by_family() {
        let rules = BTreeMap::from([(
            "a".to_owned(),
            vec![
                rule(TrafficRuleAction::Passthrough, 1, "2001:db8::/32"),
                rule(TrafficRuleAction::Drop, 3, "198.51.100.0/24"),
                rule(TrafficRuleAction::ForwardEncapsulated, 5, "203.0.113.0/24"),
            ],
        )]);
        let set = compile(&config(), &rules).unwrap();
        let v4 = set.nft.find("table ip mecplane {").unwrap();
        let v6 = set.nft.find("table ip6 mecplane {").unwrap();
        let (ip, ip6) = (&set.nft[v4..v6], &set.nft[v6..]);
        assert!(
            ip.find("drop").unwrap() < ip.find("meta mark set").unwrap(),
            "{ip}"
        );
        assert!(ip6.contains("ip6 daddr { 2001:db8::/32 } accept"), "{ip6}");
        assert!(!ip.contains("2001:db8"), "{ip}");
        assert_eq!(
            set.routes,
            [SteeringRoute {
                mark: MARK_BASE,
                table: 100,
                priority: 500,
                via: Via::Gre(
                    "mecgre0".into(),
                    "192.0.2.9".parse().unwrap(),
                    Some("192.0.2.1".parse().unwrap())
                ),
            }]
        );
    }

    #[test]
    fn packet_labels_match_ipv6_flow_labels() {
        let mut labelled = rule(TrafficRuleAction::Drop, 5, "2001:db8::/32");
        labelled.traffic_filter[0].packet_label = Some(vec!["0x10".into(), "17".into()]);
        let found = matches(&labelled, &labelled.traffic_filter[0]).unwrap();
        assert_eq!(found.len(), 1, "IPv6 only: {found:?}");
        assert!(
            found[0].0 && found[0].1.contains("ip6 flowlabel { 16, 17 }"),
            "{found:?}"
        );
        let mut v4 = rule(TrafficRuleAction::Drop, 5, "10.0.0.0/8");
        v4.traffic_filter[0].packet_label = Some(vec!["16".into()]);
        let refused = matches(&v4, &v4.traffic_filter[0]).unwrap_err();
        assert!(
            refused.to_string().contains("IPv4"),
            "as the UPF refuses it"
        );
        labelled.traffic_filter[0].uri = Some(vec!["/x".into()]);
        let refused = matches(&labelled, &labelled.traffic_filter[0]).unwrap_err();
        assert!(refused.to_string().contains("application detection"));
    }

    #[test]
    fn what_needs_a_upf_is_refused() {
        let mut gtp = rule(TrafficRuleAction::ForwardEncapsulated, 5, "203.0.113.0/24");
        if let Some(t) = gtp
            .dst_interface
            .as_mut()
            .and_then(|d| d.tunnel_info.as_mut())
        {
            t.tunnel_type = TunnelType::GtpU;
        }
        let err = compile(&config(), &BTreeMap::from([("a".to_owned(), vec![gtp])])).unwrap_err();
        assert!(err.to_string().contains("GTP-U"), "{err}");
        let mut qci = rule(TrafficRuleAction::Drop, 5, "203.0.113.0/24");
        qci.traffic_filter[0].q_ci = Some(5);
        assert!(compile(&config(), &BTreeMap::from([("a".to_owned(), vec![qci])])).is_err());
        let dup = rule(
            TrafficRuleAction::DuplicateDecapsulated,
            5,
            "203.0.113.0/24",
        );
        assert!(compile(&config(), &BTreeMap::from([("a".to_owned(), vec![dup])])).is_err());
    }
}
