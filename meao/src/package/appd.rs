//! Reading and validating an AppD: YAML or JSON, checked against the JSON schema of the
//! [`AppD`] type (every structural problem at once, each with its JSON pointer), then against
//! the rules a schema cannot express (unique ids, references, addresses).

use std::collections::HashSet;
use std::sync::OnceLock;

use api_specs::mm1::appd::{AppD, DnsRuleDescriptor, TrafficRuleDescriptor};
use api_specs::mp1::app_support::validate_dns_target;
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::PackageProblem;

/// The JSON-schema validator of the AppD, built once from the type's utoipa schema.
fn validator() -> Option<&'static jsonschema::Validator> {
    static VALIDATOR: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
            <AppD as utoipa::ToSchema>::schemas(&mut schemas);
            schemas.push(("AppD".into(), <AppD as utoipa::PartialSchema>::schema()));
            let components: serde_json::Map<String, Value> = schemas
                .into_iter()
                .filter_map(|(name, schema)| serde_json::to_value(schema).ok().map(|s| (name, s)))
                .collect();
            let mut components = Value::Object(components);
            unwrap_optional(&mut components);
            let root = serde_json::json!({
                "$ref": "#/components/schemas/AppD",
                "components": {"schemas": components},
            });
            jsonschema::validator_for(&root).ok()
        })
        .as_ref()
}

/// Replaces `oneOf: [{type: null}, X]` (how utoipa spells `Option<X>`) by `X`, so a problem
/// inside an optional object is reported at its own path rather than as "matches no
/// alternative" at the object. An explicit `null` for an optional attribute is then refused,
/// which a descriptor has no reason to write.
fn unwrap_optional(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(inner) = server_kit::request_schema::optional_of(map) {
                map.remove("oneOf");
                if let Value::Object(inner) = inner {
                    map.extend(inner);
                }
            }
            map.values_mut().for_each(unwrap_optional);
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_optional),
        _ => {}
    }
}

/// Deepest nesting accepted in a descriptor (flow collections, or block indentation levels).
pub const MAX_NESTING: usize = 64;
/// Widest block indentation accepted (columns), which bounds block nesting too.
const MAX_INDENT: usize = 512;

/// Refuses YAML or JSON text nested deeper than `max` flow levels (`[`/`{` outside quoted
/// scalars and comments) or indented wider than [`MAX_INDENT`] (with compact `- ` entries
/// counted as indentation) — in one pass, before any parser sees it: parsers spend time
/// quadratic in the nesting depth, and a few kilobytes of brackets held a core for minutes.
pub fn check_nesting(text: &str, max: usize) -> Result<(), String> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut quote, mut escaped) = (None::<u8>, false);
    let (mut comment, mut line_start, mut indent) = (false, true, 0usize);
    let mut previous = b'\n';
    for &b in text.as_bytes() {
        if b == b'\n' {
            (comment, line_start, indent) = (false, true, 0);
            previous = b;
            continue;
        }
        if comment {
            continue;
        }
        if line_start {
            match b {
                b' ' | b'-' | b'?' | b'\t' => {
                    indent += 1;
                    if indent > MAX_INDENT {
                        return Err(format!("indented deeper than {MAX_INDENT} columns"));
                    }
                    previous = b;
                    continue;
                }
                _ => line_start = false,
            }
        }
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if q == b'"' && b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                // a quote opens a quoted scalar only where a scalar starts (not in "it's")
                b'"' | b'\''
                    if previous.is_ascii_whitespace()
                        || matches!(previous, b'[' | b'{' | b',' | b':' | b'-' | b'?') =>
                {
                    quote = Some(b)
                }
                b'#' if previous.is_ascii_whitespace() => comment = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                    if deepest > max {
                        return Err(format!("nested deeper than {max} levels"));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        previous = b;
    }
    Ok(())
}

/// Parses the descriptor text: JSON for `.json` files, YAML otherwise, after bounding its
/// nesting.
pub fn parse(path: &str, text: &str) -> Result<Value, PackageProblem> {
    check_nesting(text, MAX_NESTING).map_err(|e| PackageProblem::new(path, e))?;
    if path.ends_with(".json") {
        serde_json::from_str(text)
            .map_err(|e| PackageProblem::new(path, format!("invalid JSON: {e}")))
    } else {
        serde_yaml::from_str(text)
            .map_err(|e| PackageProblem::new(path, format!("invalid YAML: {e}")))
    }
}

/// Validates a parsed AppD; returns it typed, or every problem found.
pub fn validate(path: &str, value: &Value) -> Result<AppD, Vec<PackageProblem>> {
    let Some(validator) = validator() else {
        return Err(vec![PackageProblem::new(
            path,
            "the AppD schema is unavailable".into(),
        )]);
    };
    let structural: Vec<PackageProblem> = validator
        .iter_errors(value)
        .map(|e| PackageProblem::new(&format!("{path}#{}", e.instance_path), e.to_string()))
        .collect();
    if !structural.is_empty() {
        return Err(structural);
    }
    let appd: AppD = serde_json::from_value(value.clone()).map_err(|e| {
        vec![PackageProblem::new(
            path,
            format!("AppD does not match the MEC 010-2 model: {e}"),
        )]
    })?;
    let problems = semantic(path, &appd);
    if problems.is_empty() {
        Ok(appd)
    } else {
        Err(problems)
    }
}

fn duplicates<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut seen = HashSet::new();
    ids.filter(|id| !seen.insert(*id)).collect()
}

/// What is wrong with traffic and DNS rules (of an AppD, or of a request that configures the
/// platform for an instance), each problem with its JSON pointer.
pub fn rule_problems(
    traffic: &[TrafficRuleDescriptor],
    dns: &[DnsRuleDescriptor],
    problem: &mut impl FnMut(String, String),
) {
    for id in duplicates(traffic.iter().map(|r| &r.traffic_rule_id)) {
        problem(
            "/appTrafficRule".into(),
            format!("duplicate trafficRuleId {id}"),
        );
    }
    use api_specs::common::{MAX_ID, check_text};
    for (i, rule) in traffic.iter().enumerate() {
        if let Err(e) = check_text("trafficRuleId", &rule.traffic_rule_id, MAX_ID) {
            problem(format!("/appTrafficRule/{i}/trafficRuleId"), e);
        }
        if rule.traffic_filter.is_empty() {
            problem(
                format!("/appTrafficRule/{i}/trafficFilter"),
                "at least one filter is required".into(),
            );
        }
        for (j, filter) in rule.traffic_filter.iter().enumerate() {
            if let Err(e) = filter.validate() {
                problem(format!("/appTrafficRule/{i}/trafficFilter/{j}"), e);
            }
        }
    }
    for id in duplicates(dns.iter().map(|r| &r.dns_rule_id)) {
        problem("/appDNSRule".into(), format!("duplicate dnsRuleId {id}"));
    }
    for (i, rule) in dns.iter().enumerate() {
        if let Err(e) = check_text("dnsRuleId", &rule.dns_rule_id, MAX_ID) {
            problem(format!("/appDNSRule/{i}/dnsRuleId"), e);
        }
        if let Err(e) =
            validate_dns_target(&rule.domain_name, rule.ip_address_type, &rule.ip_address)
        {
            problem(format!("/appDNSRule/{i}"), e);
        }
    }
}

/// Rules beyond the schema.
fn semantic(path: &str, appd: &AppD) -> Vec<PackageProblem> {
    let mut problems = Vec::new();
    let mut problem = |at: String, detail: String| {
        problems.push(PackageProblem::new(&format!("{path}#{at}"), detail))
    };
    for (field, value) in [
        ("appDId", &appd.app_d_id),
        ("appName", &appd.app_name),
        ("appProvider", &appd.app_provider),
        ("appSoftVersion", &appd.app_soft_version),
        ("appDVersion", &appd.app_d_version),
    ] {
        if value.trim().is_empty() {
            problem(format!("/{field}"), format!("{field} shall not be empty"));
        }
    }
    if appd.mec_version.is_empty() {
        problem(
            "/mecVersion".into(),
            "at least one MEC version is required".into(),
        );
    }
    if appd.sw_image_descriptor.is_empty() {
        problem(
            "/swImageDescriptor".into(),
            "at least one software image is required".into(),
        );
    }
    if appd.virtual_compute_descriptor.is_none() && appd.os_container_descriptor.is_empty() {
        problem(
            "".into(),
            "either virtualComputeDescriptor or osContainerDescriptor is required".into(),
        );
    }
    for id in duplicates(appd.sw_image_descriptor.iter().map(|i| &i.id)) {
        problem(
            "/swImageDescriptor".into(),
            format!("duplicate swImageDescriptor id {id}"),
        );
    }
    let images: HashSet<&String> = appd.sw_image_descriptor.iter().map(|i| &i.id).collect();
    for (i, c) in appd.os_container_descriptor.iter().enumerate() {
        if !images.contains(&c.sw_image_desc) {
            problem(
                format!("/osContainerDescriptor/{i}/swImageDesc"),
                format!("no swImageDescriptor with id {}", c.sw_image_desc),
            );
        }
    }
    for id in duplicates(
        appd.os_container_descriptor
            .iter()
            .map(|c| &c.os_container_desc_id),
    ) {
        problem(
            "/osContainerDescriptor".into(),
            format!("duplicate osContainerDescId {id}"),
        );
    }
    rule_problems(&appd.app_traffic_rule, &appd.app_dns_rule, &mut problem);
    if appd
        .app_latency
        .as_ref()
        .is_some_and(|l| l.max_latency == 0)
    {
        problem(
            "/appLatency/maxLatency".into(),
            "maxLatency shall be positive".into(),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let bomb = format!(
            "appName: x\nbad: {}{}\n",
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        let problem = parse("Definitions/appd.yaml", &bomb).unwrap_err();
        assert!(problem.to_string().contains("nested deeper"), "{problem}");
        let json = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse("d.json", &json).is_err());
        let compact = format!("a:\n{}x\n", "- ".repeat(1000));
        assert!(check_nesting(&compact, MAX_NESTING).is_err());
        let indented: String = (0..600)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(check_nesting(&indented, MAX_NESTING).is_err());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(100);
        for ok in [
            format!("a: '{deep}'\n"),
            format!("a: \"{deep}\"\n"),
            format!("a: 1 # {deep}\n"),
            "a: it's [1, [2]]\nb: {c: [d]}\n".to_owned(),
            format!("{{\"a\": \"{deep}\\\"\", \"b\": [[1]]}}"),
        ] {
            assert!(check_nesting(&ok, MAX_NESTING).is_ok(), "{ok}");
        }
        // an apostrophe inside a word opens no string that could hide brackets
        let hidden = format!("a: it's {}{}", "[".repeat(100), "]".repeat(100));
        assert!(check_nesting(&hidden, MAX_NESTING).is_err());
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/examples/packages/video-analytics/Definitions/appd.yaml");
        let appd = std::fs::read_to_string(examples).unwrap();
        assert!(check_nesting(&appd, MAX_NESTING).is_ok());
    }
}
