//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors
//! (`=`, `==`, `!=` on a fixed set of fields per kind), parsed and matched like
//! `k8s.io/apimachinery/pkg/labels` and `.../fields`.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelOp {
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    reqs: Vec<(String, LabelOp)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(String);

/// Split at commas that are not inside a `( ... )` value set.
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth = depth.saturating_sub(1);
                cur.push(c)
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn parse_set(s: &str) -> Result<Vec<String>, SelectorError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("found '{s}', expected: '('")))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

fn check_key(key: &str) -> Result<(), SelectorError> {
    let ok =
        !key.is_empty() && key.len() <= 317 && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok { Ok(()) } else { Err(SelectorError(format!("invalid label key \"{key}\""))) }
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { reqs });
        }
        for part in split_top_level(s) {
            let p = part.trim();
            if p.is_empty() {
                return Err(SelectorError("found '', expected: identifier".into()));
            }
            let req = if let Some(key) = p.strip_prefix('!') {
                (key.trim().to_string(), LabelOp::DoesNotExist)
            } else if let Some((k, v)) = p.split_once("!=") {
                (k.trim().to_string(), LabelOp::NotEquals(v.trim().to_string()))
            } else if let Some((k, v)) = p.split_once("==") {
                (k.trim().to_string(), LabelOp::Equals(v.trim().to_string()))
            } else if let Some((k, v)) = p.split_once('=') {
                (k.trim().to_string(), LabelOp::Equals(v.trim().to_string()))
            } else if let Some((k, set)) = p.split_once(" notin ") {
                (k.trim().to_string(), LabelOp::NotIn(parse_set(set)?))
            } else if let Some((k, set)) = p.split_once(" in ") {
                (k.trim().to_string(), LabelOp::In(parse_set(set)?))
            } else if p.contains(' ') || p.contains('(') {
                // apimachinery's lexer reads the key, then reports the next token.
                let is_ident = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
                let rest = p.trim_start_matches(is_ident).trim_start();
                let found = if rest.starts_with('(') {
                    "("
                } else {
                    &rest[..rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len())]
                };
                return Err(SelectorError(format!("found '{found}', expected: in, notin, =, ==, !=, gt, lt")));
            } else {
                (p.to_string(), LabelOp::Exists)
            };
            check_key(&req.0)?;
            reqs.push(req);
        }
        Ok(Self { reqs })
    }

    /// `labels` is the object's `metadata.labels` (null when absent).
    pub fn matches(&self, labels: &Value) -> bool {
        self.reqs.iter().all(|(key, op)| {
            let v = labels.get(key).and_then(Value::as_str);
            match op {
                LabelOp::Equals(x) => v == Some(x.as_str()),
                // As in apimachinery, `!=` also matches objects without the label.
                LabelOp::NotEquals(x) => v != Some(x.as_str()),
                LabelOp::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                LabelOp::NotIn(set) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                LabelOp::Exists => v.is_some(),
                LabelOp::DoesNotExist => v.is_none(),
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldSelectorError {
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Syntax(String, String),
    /// Kinds with a field label conversion of their own (Namespace, Secret, Service, Event,
    /// custom resources) refuse other fields with this message.
    #[error("field label not supported: {0}")]
    Unsupported(String),
    /// Kinds without one go through apimachinery's `DefaultMetaV1FieldSelectorConversion`.
    #[error("\"{0}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")]
    NotMetadata(String),
}

/// Which field label conversion a kind has (how it answers an unknown field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldLabels {
    /// Only `metadata.name` and `metadata.namespace`, apimachinery's default conversion.
    MetadataOnly,
    /// A conversion of the kind's own, accepting `metadata.name`, `metadata.namespace`
    /// (unless `cluster_scoped`) and the kind's fields.
    Own { cluster_scoped: bool },
}

impl FieldSelector {
    /// Parse and check every field against what `labels` accepts plus `allowed`.
    pub fn parse(s: &str, allowed: &[String], labels: FieldLabels) -> Result<Self, FieldSelectorError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { terms });
        }
        for part in s.split(',') {
            let (field, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(FieldSelectorError::Syntax(s.to_string(), part.to_string()));
            };
            let field = field.trim();
            let known = match labels {
                FieldLabels::MetadataOnly => field == "metadata.name" || field == "metadata.namespace",
                FieldLabels::Own { cluster_scoped } => {
                    field == "metadata.name"
                        || (!cluster_scoped && field == "metadata.namespace")
                        || allowed.iter().any(|a| a == field)
                }
            };
            if !known {
                return Err(match labels {
                    FieldLabels::MetadataOnly => FieldSelectorError::NotMetadata(field.to_string()),
                    FieldLabels::Own { .. } => FieldSelectorError::Unsupported(field.to_string()),
                });
            }
            terms.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self { terms })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(field, eq, want)| {
            let mut cur = obj;
            for seg in field.split('.') {
                cur = &cur[seg];
            }
            let have = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                // `source` on core events is selected by its component.
                Value::Object(m) if field == "source" => {
                    m.get("component").and_then(Value::as_str).unwrap_or("").to_string()
                }
                other => other.to_string(),
            };
            (have == *want) == *eq
        })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_operators() {
        let labels = json!({"app": "web", "tier": "fe"});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("missing!=x"));
        assert!(m("app in (web, api),tier notin (be)"));
        assert!(!m("app notin (web)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(LabelSelector::parse("").unwrap().matches(&Value::Null));
        assert!(!LabelSelector::parse("app").unwrap().matches(&Value::Null));
    }

    #[test]
    fn malformed_label_selectors_are_rejected() {
        assert_eq!(
            LabelSelector::parse("a b").unwrap_err().to_string(),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a,,b").is_err());
        assert!(LabelSelector::parse("bad key").is_err());
    }

    #[test]
    fn field_selectors_check_supported_fields() {
        let obj = json!({"metadata": {"name": "a", "namespace": "n"}, "type": "Opaque"});
        let own = FieldLabels::Own { cluster_scoped: false };
        let s = FieldSelector::parse("metadata.name=a,type!=x", &["type".into()], own).unwrap();
        assert!(s.matches(&obj));
        assert_eq!(
            FieldSelector::parse("spec.x=1", &[], own).unwrap_err().to_string(),
            "field label not supported: spec.x"
        );
        assert_eq!(
            FieldSelector::parse("metadata.namespace=n", &[], FieldLabels::Own { cluster_scoped: true })
                .unwrap_err()
                .to_string(),
            "field label not supported: metadata.namespace"
        );
        assert_eq!(
            FieldSelector::parse("spec.x=1", &[], FieldLabels::MetadataOnly).unwrap_err().to_string(),
            "\"spec.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
    }
}
