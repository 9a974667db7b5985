//! ObjectMeta rules shared by every kind (apimachinery `ValidateObjectMeta`,
//! `ValidateObjectMetaUpdate` and the generic registry's create/update preparation).

use rand::Rng;
use serde_json::{Map, Value, json};

use super::field_error::FieldError;
use super::resources::NameRule;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Problems with `name` under `rule`, as the messages kube-apiserver prints.
pub fn name_errors(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::DnsSubdomain => {
            let mut out = Vec::new();
            if name.len() > 253 {
                out.push("must be no more than 253 characters".to_string());
            }
            if !is_dns_subdomain(name) {
                out.push(DNS1123_SUBDOMAIN_MSG.to_string());
            }
            out
        }
        NameRule::DnsLabel => {
            let mut out = Vec::new();
            if name.len() > 63 {
                out.push("must be no more than 63 characters".to_string());
            }
            if !is_dns_label(name) {
                out.push(DNS1123_LABEL_MSG.to_string());
            }
            out
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                vec![format!("may not be '{name}'")]
            } else if let Some(c) = ['/', '%'].into_iter().find(|c| name.contains(*c)) {
                vec![format!("may not contain '{c}'")]
            } else {
                Vec::new()
            }
        }
    }
}

/// Validate the metadata every create must satisfy: a valid name (or generateName) and
/// valid label values.
pub fn validate_create_meta(obj: &Value, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        for msg in name_errors(rule, name) {
            errs.push(FieldError::invalid("metadata.name", &json!(name), &msg));
        }
    }
    errs.extend(validate_labels(&obj["metadata"]["labels"]));
    errs.extend(validate_annotations(&obj["metadata"]["annotations"]));
    errs
}

const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

const LABEL_KEY_FORMAT_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// apimachinery 1.37 `content.IsLabelKey` (`IsQualifiedName`): an optional DNS-subdomain
/// prefix and `/`, then a name of at most 63 bytes. Used for label and annotation keys.
fn qualified_name_errors(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return vec![format!(
                "a valid label key {LABEL_KEY_FORMAT_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    let mut out = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            out.push("prefix part must be non-empty".to_string());
        } else {
            if p.len() > 253 {
                out.push("prefix part must be no more than 253 bytes".to_string());
            }
            if !is_dns_subdomain(p) {
                out.push(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
            }
        }
    }
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            out.push("name part must be no more than 63 bytes".to_string());
        }
        let b = name.as_bytes();
        let ok = b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric();
        if !ok {
            out.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    out
}

/// Annotation keys are qualified names (case-insensitively); keys and values together may
/// not exceed 256 KiB (`TotalAnnotationSizeLimitB`).
pub fn validate_annotations(annotations: &Value) -> Vec<FieldError> {
    let Some(map) = annotations.as_object() else { return Vec::new() };
    let mut errs: Vec<FieldError> = map
        .keys()
        .flat_map(|k| {
            qualified_name_errors(&k.to_lowercase())
                .into_iter()
                .map(move |m| FieldError::invalid("metadata.annotations", &json!(k), &m))
        })
        .collect();
    let size: usize = map.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
    if size > 256 * 1024 {
        errs.push(FieldError {
            reason: "FieldValueTooLong",
            field: "metadata.annotations".into(),
            message: "Too long: may not be more than 262144 bytes".into(),
        });
    }
    errs
}

/// Label keys are qualified names; values at most 63 bytes, alphanumerics with `-_.`
/// inside (apimachinery `IsValidLabelValue`).
pub fn validate_labels(labels: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = labels.as_object() else { return errs };
    for (k, v) in map {
        for m in qualified_name_errors(k) {
            errs.push(FieldError::invalid("metadata.labels", &json!(k), &m));
        }
        let Some(s) = v.as_str() else {
            errs.push(FieldError::type_invalid(format!("metadata.labels.{k}"), v, "must be a string"));
            continue;
        };
        let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let ok_ends = s.is_empty()
            || (s.as_bytes()[0].is_ascii_alphanumeric() && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric());
        if s.len() > 63 {
            errs.push(FieldError::invalid("metadata.labels".to_string(), v, "must be no more than 63 bytes"));
        }
        if !ok_chars || !ok_ends {
            errs.push(FieldError::invalid(
                "metadata.labels",
                v,
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ));
        }
    }
    errs
}

/// `generateName` + 5 random characters from the alphabet apimachinery uses
/// (`utilrand.String`: no vowels, no easily confused characters).
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    // The prefix is truncated so the name stays within 63 characters (maxGeneratedNameLength).
    let keep = prefix.len().min(58);
    format!("{}{suffix}", &prefix[..keep])
}

/// RFC 3339 with second precision, as metav1.Time serialises.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj["metadata"][field].as_str()
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata was just made an object")
}

/// The object without `metadata` and `status`: what `metadata.generation` tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// Whether a write changed something outside metadata and status (so generation bumps).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    spec_part(old) != spec_part(new)
}

/// Finalizers of an object (empty when absent).
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// An empty `finalizers` (or `labels`/`annotations`/`ownerReferences`) list is dropped, as
/// the Go types omit empty slices and maps when serialising.
pub fn drop_empty_meta(obj: &mut Value) {
    let meta = meta_mut(obj);
    for key in ["finalizers", "labels", "annotations", "ownerReferences", "managedFields"] {
        let empty = match meta.get(key) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_errors(NameRule::DnsSubdomain, "a.b-c").is_empty());
        assert!(!name_errors(NameRule::DnsSubdomain, "Foo").is_empty());
        assert!(!name_errors(NameRule::DnsLabel, "a.b").is_empty());
        assert!(name_errors(NameRule::PathSegment, "system:controller:x").is_empty());
        assert!(!name_errors(NameRule::PathSegment, "a/b").is_empty());
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
    }

    #[test]
    fn generation_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"y": 1}});
        let b = json!({"metadata": {}, "spec": {"x": 1}, "status": {"y": 2}});
        assert!(!spec_changed(&a, &b));
        assert!(spec_changed(&a, &json!({"spec": {"x": 2}})));
    }

    #[test]
    fn bad_label_values_are_invalid() {
        assert!(validate_labels(&json!({"a": "ok-1"})).is_empty());
        assert_eq!(validate_labels(&json!({"a": "-bad"})).len(), 1);
    }

    #[test]
    fn keys_are_qualified_names() {
        assert!(validate_labels(&json!({"app.kubernetes.io/name": "x", "a_b.c": ""})).is_empty());
        assert_eq!(validate_labels(&json!({"bad key": "x"})).len(), 1);
        assert_eq!(validate_labels(&json!({"Bad.Prefix/x": "x"})).len(), 1);
        assert_eq!(validate_annotations(&json!({"/x": "anything"})).len(), 1);
        assert!(validate_annotations(&json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"})).is_empty());
    }
}
