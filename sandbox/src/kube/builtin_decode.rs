//! Decoding of built-in kinds the way kube-apiserver's typed decoder treats them: a field of
//! the wrong type fails the request (400 `... cannot be handled as a Deployment: ...`), and
//! fields the kind does not declare are dropped, reported as `Warning`s, or refused under
//! `fieldValidation=Strict` (400 `strict decoding error: unknown field "spec.replicass"`).
//! The k8s-openapi (v1_33) types are the schema: an object is decoded into its type and
//! encoded back; whatever the round trip lost was unknown. The stored object keeps the
//! client's own encoding minus the unknown fields.

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::api_error::ApiError;
use super::crd::FieldValidation;
use super::resources::ResourceType;

fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The object after a typed round trip, or None for kinds without a typed decoder.
fn typed_round_trip(group: &str, kind: &str, obj: &Value) -> Option<Result<Value, String>> {
    Some(match (group, kind) {
        ("", "Namespace") => round_trip::<api::core::v1::Namespace>(obj),
        ("", "Secret") => round_trip::<api::core::v1::Secret>(obj),
        ("", "ConfigMap") => round_trip::<api::core::v1::ConfigMap>(obj),
        ("", "ServiceAccount") => round_trip::<api::core::v1::ServiceAccount>(obj),
        ("", "Service") => round_trip::<api::core::v1::Service>(obj),
        ("", "Event") => round_trip::<api::core::v1::Event>(obj),
        ("events.k8s.io", "Event") => round_trip::<api::events::v1::Event>(obj),
        ("coordination.k8s.io", "Lease") => round_trip::<api::coordination::v1::Lease>(obj),
        ("apps", "Deployment") => round_trip::<api::apps::v1::Deployment>(obj),
        ("rbac.authorization.k8s.io", "Role") => round_trip::<api::rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => round_trip::<api::rbac::v1::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => round_trip::<api::rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => round_trip::<api::rbac::v1::ClusterRoleBinding>(obj),
        ("policy", "PodDisruptionBudget") => round_trip::<api::policy::v1::PodDisruptionBudget>(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            round_trip::<apiextensions::CustomResourceDefinition>(obj)
        }
        _ => return None,
    })
}

/// Paths (`spec.template.spec.containers[0].imagee`) present in `original` but lost in
/// `decoded`. Null values are not fields the decoder keeps anyway and are not reported.
fn lost_paths(original: &Value, decoded: &Value, prefix: &str, out: &mut Vec<String>) {
    match (original, decoded) {
        (Value::Object(o), Value::Object(d)) => {
            for (k, v) in o {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match d.get(k) {
                    Some(dv) => lost_paths(v, dv, &path, out),
                    None if !v.is_null() => out.push(path),
                    None => {}
                }
            }
        }
        (Value::Array(o), Value::Array(d)) if o.len() == d.len() => {
            for (i, (ov, dv)) in o.iter().zip(d).enumerate() {
                lost_paths(ov, dv, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn remove_path(obj: &mut Value, path: &str) {
    // Split `a.b[2].c` into steps.
    let mut steps: Vec<Result<String, usize>> = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            steps.push(Ok(rest[..i].to_string()));
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse() {
                    steps.push(Err(n));
                }
                rest = &rest[end + 1..];
            }
        } else {
            steps.push(Ok(rest.to_string()));
        }
    }
    let Some((last, parents)) = steps.split_last() else { return };
    let mut cur = obj;
    for s in parents {
        let next = match s {
            Ok(k) => cur.get_mut(k.as_str()),
            Err(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let (Ok(k), Some(m)) = (last, cur.as_object_mut()) {
        m.remove(k);
    }
}

/// Why `obj` cannot be decoded into `rt`'s type (a field of the wrong type), if it cannot.
pub fn type_error(rt: &ResourceType, obj: &Value) -> Option<String> {
    typed_round_trip(&rt.group, &rt.kind, obj)?.err()
}

/// Decode `obj` (in the view of `rt`); returns the `Warning`s to send.
pub fn decode(rt: &ResourceType, obj: &mut Value, validation: FieldValidation) -> Result<Vec<String>, ApiError> {
    let Some(result) = typed_round_trip(&rt.group, &rt.kind, obj) else { return Ok(Vec::new()) };
    let cannot = |detail: String| {
        ApiError::BadRequest(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {detail}",
            kind = rt.kind,
            v = rt.version
        ))
    };
    let decoded = result.map_err(cannot)?;
    let mut unknown = Vec::new();
    lost_paths(obj, &decoded, "", &mut unknown);
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let listed: Vec<String> = unknown.iter().map(|p| format!("unknown field {p:?}")).collect();
    match validation {
        FieldValidation::Strict => Err(cannot(format!("strict decoding error: {}", listed.join(", ")))),
        FieldValidation::Warn | FieldValidation::Ignore => {
            for p in &unknown {
                remove_path(obj, p);
            }
            Ok(if validation == FieldValidation::Warn { listed } else { Vec::new() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::resources::Registry;
    use serde_json::json;

    fn deployments() -> std::sync::Arc<ResourceType> {
        Registry::default().find("apps", "v1", "deployments").unwrap()
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i", "imagee": "typo"}]}}},
            "extra": true})
    }

    #[test]
    fn unknown_fields_are_warned_and_pruned() {
        let mut d = deployment();
        let warnings = decode(&deployments(), &mut d, FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            vec!["unknown field \"spec.template.spec.containers[0].imagee\"", "unknown field \"extra\""]
        );
        assert!(d.get("extra").is_none());
        assert!(d["spec"]["template"]["spec"]["containers"][0].get("imagee").is_none());
        assert_eq!(d["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn strict_refuses_unknown_fields_and_types_are_checked() {
        let err = decode(&deployments(), &mut deployment(), FieldValidation::Strict).unwrap_err();
        assert_eq!(err.code(), 400);
        assert!(err.to_string().starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.template.spec.containers[0].imagee\", unknown field \"extra\""), "{err}");
        let mut bad = json!({"metadata": {"name": "d"}, "spec": {"replicas": "two"}});
        assert_eq!(decode(&deployments(), &mut bad, FieldValidation::Ignore).unwrap_err().code(), 400);
        let mut clean = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}});
        assert!(decode(&deployments(), &mut clean, FieldValidation::Strict).unwrap().is_empty());
    }
}
