//! Attribute-based filtering and attribute selectors of ETSI GS MEC 009 (clauses 6.18, 6.19,
//! the NFV-SOL 013 syntax): `filter=(eq,onboardingState,ONBOARDED);(neq,appName,x)`,
//! `all_fields`, `fields`, `exclude_fields`, `exclude_default`. Works on the JSON
//! representation, so every list endpoint shares it.

use serde_json::Value;

use crate::problem::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    In,
    Nin,
    Gt,
    Gte,
    Lt,
    Lte,
    Cont,
    Ncont,
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    op: Op,
    path: Vec<String>,
    values: Vec<String>,
}

/// A parsed `filter` expression: terms ANDed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    terms: Vec<Term>,
}

impl Filter {
    /// Parses `filter`; attribute paths must start with one of `attributes`.
    pub fn parse(expr: &str, attributes: &[&str]) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::BadRequest(format!("invalid filter: {m}"));
        let mut terms = Vec::new();
        for raw in expr.split(';').filter(|t| !t.trim().is_empty()) {
            let inner = raw
                .trim()
                .strip_prefix('(')
                .and_then(|t| t.strip_suffix(')'))
                .ok_or_else(|| bad(format!("{raw} is not (op,attribute,value)")))?;
            let mut parts = inner.split(',');
            let op = match parts.next().unwrap_or_default() {
                "eq" => Op::Eq,
                "neq" => Op::Neq,
                "in" => Op::In,
                "nin" => Op::Nin,
                "gt" => Op::Gt,
                "gte" => Op::Gte,
                "lt" => Op::Lt,
                "lte" => Op::Lte,
                "cont" => Op::Cont,
                "ncont" => Op::Ncont,
                other => return Err(bad(format!("unknown operator {other}"))),
            };
            let attribute = parts.next().unwrap_or_default();
            let path: Vec<String> = attribute.split('/').map(str::to_owned).collect();
            if !attributes.contains(&path[0].as_str()) {
                return Err(bad(format!("unknown attribute {attribute}")));
            }
            let values: Vec<String> = parts.map(|v| v.trim_matches('\'').to_owned()).collect();
            if values.is_empty()
                || (values.len() > 1 && !matches!(op, Op::In | Op::Nin | Op::Cont | Op::Ncont))
            {
                return Err(bad(format!("wrong number of values in {raw}")));
            }
            terms.push(Term { op, path, values });
        }
        Ok(Self { terms })
    }

    /// Whether `value` passes every term.
    pub fn matches(&self, value: &Value) -> bool {
        self.terms.iter().all(|t| {
            let mut found = Vec::new();
            collect(value, &t.path, &mut found);
            let any = |pred: &dyn Fn(&Value, &str) -> bool| {
                found.iter().any(|f| t.values.iter().any(|v| pred(f, v)))
            };
            match t.op {
                Op::Eq | Op::In => any(&|f, v| scalar_eq(f, v)),
                Op::Neq | Op::Nin => !any(&|f, v| scalar_eq(f, v)),
                Op::Cont => any(&|f, v| f.as_str().is_some_and(|s| s.contains(v))),
                Op::Ncont => !any(&|f, v| f.as_str().is_some_and(|s| s.contains(v))),
                Op::Gt => any(&|f, v| compare(f, v).is_some_and(|o| o.is_gt())),
                Op::Gte => any(&|f, v| compare(f, v).is_some_and(|o| o.is_ge())),
                Op::Lt => any(&|f, v| compare(f, v).is_some_and(|o| o.is_lt())),
                Op::Lte => any(&|f, v| compare(f, v).is_some_and(|o| o.is_le())),
            }
        })
    }
}

fn collect<'a>(value: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    match (value, path.split_first()) {
        (Value::Array(items), _) => items.iter().for_each(|i| collect(i, path, out)),
        (_, None) => out.push(value),
        (Value::Object(map), Some((head, rest))) => {
            if let Some(next) = map.get(head) {
                collect(next, rest, out);
            }
        }
        _ => {}
    }
}

fn scalar_eq(field: &Value, value: &str) -> bool {
    match field {
        Value::String(s) => s == value,
        Value::Number(n) => value.parse::<f64>().ok() == n.as_f64(),
        Value::Bool(b) => value.parse::<bool>().ok() == Some(*b),
        _ => false,
    }
}

fn compare(field: &Value, value: &str) -> Option<std::cmp::Ordering> {
    match field {
        Value::Number(n) => n.as_f64()?.partial_cmp(&value.parse::<f64>().ok()?),
        Value::String(s) => Some(s.as_str().cmp(value)),
        _ => None,
    }
}

/// Which attributes a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every attribute (the default here, and `all_fields`).
    All,
    /// Without the complex attributes excluded by default, except those named.
    ExcludeDefault {
        /// Default-excluded attributes to keep.
        keep: Vec<String>,
    },
    /// Without the named attributes.
    Exclude(Vec<String>),
}

impl Selector {
    /// Builds the selector from the query parameters `all_fields`, `fields`, `exclude_fields`
    /// and `exclude_default`, rejecting contradictory combinations.
    pub fn from_query(
        all_fields: bool,
        fields: Option<&str>,
        exclude_fields: Option<&str>,
        exclude_default: bool,
    ) -> Result<Self, ApiError> {
        let list = |s: &str| {
            s.split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        match (all_fields, fields, exclude_fields, exclude_default) {
            (true, None, None, false) | (false, None, None, false) => Ok(Self::All),
            (false, fields, None, _) => Ok(Self::ExcludeDefault {
                keep: fields.map(list).unwrap_or_default(),
            }),
            (false, None, Some(ex), false) => Ok(Self::Exclude(list(ex))),
            _ => Err(ApiError::BadRequest(
                "all_fields, fields, exclude_fields and exclude_default are mutually exclusive \
                 (fields may accompany exclude_default)"
                    .into(),
            )),
        }
    }

    /// Applies the selector to a representation; `defaults_excluded` lists the attributes
    /// `exclude_default` drops.
    pub fn apply(&self, mut value: Value, defaults_excluded: &[&str]) -> Value {
        let Value::Object(map) = &mut value else {
            return value;
        };
        match self {
            Self::All => {}
            Self::ExcludeDefault { keep } => {
                for name in defaults_excluded {
                    if !keep.iter().any(|k| k == name) {
                        map.remove(*name);
                    }
                }
            }
            Self::Exclude(names) => {
                for name in names {
                    remove_path(map, name);
                }
            }
        }
        value
    }
}

fn remove_path(map: &mut serde_json::Map<String, Value>, path: &str) {
    match path.split_once('/') {
        None => {
            map.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = map.get_mut(head) {
                remove_path(inner, rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ATTRS: &[&str] = &[
        "appName",
        "onboardingState",
        "checksum",
        "softwareImages",
        "size",
    ];

    #[test]
    fn filters_match_scalars_nested_paths_and_arrays() {
        let pkg = json!({"appName": "va", "onboardingState": "ONBOARDED", "size": 5,
            "checksum": {"algorithm": "SHA-256"}, "softwareImages": [{"name": "a"}, {"name": "b"}]});
        let ok = |f: &str| Filter::parse(f, ATTRS).unwrap().matches(&pkg);
        assert!(ok("(eq,appName,va)"));
        assert!(ok("(eq,onboardingState,ONBOARDED);(neq,appName,x)"));
        assert!(ok("(in,appName,x,va)") && !ok("(nin,appName,x,va)"));
        assert!(ok("(eq,checksum/algorithm,SHA-256)"));
        assert!(ok("(eq,softwareImages/name,b)") && !ok("(eq,softwareImages/name,c)"));
        assert!(ok("(gt,size,4)") && !ok("(lt,size,5)") && ok("(lte,size,5)"));
        assert!(ok("(cont,appName,v)") && ok("(ncont,appName,z)"));
    }

    #[test]
    fn bad_filters_are_rejected() {
        for f in [
            "eq,appName,va",
            "(like,appName,va)",
            "(eq,colour,red)",
            "(eq,appName)",
            "(eq,appName,a,b)",
        ] {
            assert!(Filter::parse(f, ATTRS).is_err(), "{f}");
        }
    }

    #[test]
    fn selectors() {
        let pkg = json!({"appName": "va", "checksum": {"algorithm": "SHA-256", "hash": "x"}, "softwareImages": []});
        let ex = Selector::from_query(false, None, None, true).unwrap();
        assert_eq!(
            ex.apply(pkg.clone(), &["checksum", "softwareImages"]),
            json!({"appName": "va"})
        );
        let keep = Selector::from_query(false, Some("checksum"), None, true).unwrap();
        assert!(
            keep.apply(pkg.clone(), &["checksum", "softwareImages"])
                .get("checksum")
                .is_some()
        );
        let drop = Selector::from_query(false, None, Some("checksum/hash"), false).unwrap();
        assert_eq!(
            drop.apply(pkg, &[])["checksum"],
            json!({"algorithm": "SHA-256"})
        );
        assert!(Selector::from_query(true, Some("a"), None, false).is_err());
        assert!(Selector::from_query(false, Some("a"), Some("b"), false).is_err());
    }
}
