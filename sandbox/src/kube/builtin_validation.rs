//! The validation kube-apiserver 1.37 applies to the built-in kinds the emulator serves,
//! beyond metadata (k8s.io/kubernetes `pkg/apis/*/validation`), for the rules clients meet
//! in practice: ConfigMap and Secret keys, a Secret's type-specific keys, a Lease's
//! durations, a PodDisruptionBudget's exclusive bounds, a Service's port names and
//! duplicates, a RoleBinding's immutable roleRef, and a Deployment's selector, template and
//! containers (not the whole pod-spec validation: see docs/sandbox.md).
//!
//! Values are rendered as apimachinery 1.37 renders them (`field.Error.ErrorBody`):
//! `json.Marshal` of the internal Go value, so structs without JSON tags show their Go field
//! names (`{"APIGroup":...,"Kind":...,"Name":...}`) and maps their keys sorted.

use serde_json::{Map, Value};

use super::field_error::FieldError;

/// The validation errors of `obj` (with `old` on an update) of built-in `group`/`kind`.
pub fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    match (group, kind) {
        ("", "ConfigMap") => config_map(obj),
        ("", "Secret") => secret(obj),
        ("", "Service") => service(obj),
        ("coordination.k8s.io", "Lease") => lease(obj),
        ("policy", "PodDisruptionBudget") => pdb(obj),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => role_binding(obj, old),
        ("apps", "Deployment") => deployment(obj, old),
        _ => Vec::new(),
    }
}

/// Go's `json.Marshal` of an unstructured value: map keys sorted, no spaces, `<`, `>` and `&`
/// escaped.
pub fn go_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_json(&Value::String((*k).clone())), go_json(&m[k.as_str()])))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(go_json).collect::<Vec<_>>().join(",")),
        Value::String(_) => v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026"),
        _ => v.to_string(),
    }
}

/// `json.Marshal` of a Go struct without JSON tags: its fields in declaration order, named
/// as in Go.
fn go_struct(fields: &[(&str, String)]) -> String {
    let items: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", items.join(","))
}

/// A field that is absent renders as `null` (a nil pointer).
fn or_null(v: &Value) -> String {
    if v.is_null() { "null".into() } else { go_json(v) }
}

fn invalid_json(field: impl Into<String>, rendered: &str, detail: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid",
        field: field.into(),
        message: format!("Invalid value: {rendered}: {detail}"),
    }
}

/// apimachinery `IsConfigMapKey` (ConfigMap and Secret keys).
fn config_key_errors(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if key.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
        out.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    if key == "." {
        out.push("must not be '.'".to_string());
    } else if key == ".." {
        out.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        out.push("must not start with '..'".to_string());
    }
    out
}

fn key_errors(bag: &str, map: &Value, out: &mut Vec<FieldError>) {
    if let Some(m) = map.as_object() {
        for key in m.keys() {
            for msg in config_key_errors(key) {
                out.push(FieldError::invalid(format!("{bag}[{key}]"), &Value::String(key.clone()), &msg));
            }
        }
    }
}

fn config_map(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    key_errors("data", &obj["data"], &mut errs);
    if let (Some(data), Some(binary)) = (obj["data"].as_object(), obj["binaryData"].as_object()) {
        for key in data.keys().filter(|k| binary.contains_key(*k)) {
            errs.push(FieldError::invalid(
                format!("data[{key}]"),
                &Value::String(key.clone()),
                "duplicate of key present in binaryData",
            ));
        }
    }
    key_errors("binaryData", &obj["binaryData"], &mut errs);
    errs
}

fn secret(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    key_errors("data", &obj["data"], &mut errs);
    let data = obj["data"].as_object().cloned().unwrap_or_default();
    let has = |k: &str| data.contains_key(k);
    let required = |k: &str| FieldError::required(format!("data[{k}]"), "");
    match obj["type"].as_str().unwrap_or("") {
        "kubernetes.io/service-account-token"
            if obj["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                .as_str()
                .is_none_or(str::is_empty) =>
        {
            errs.push(FieldError::required("metadata.annotations[kubernetes.io/service-account.name]", ""));
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => errs.push(required(".dockercfg")),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => errs.push(required(".dockerconfigjson")),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required("username"));
            errs.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").and_then(Value::as_str).is_none_or(str::is_empty) => {
            errs.push(required("ssh-privatekey"));
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(required(k));
                }
            }
        }
        _ => {}
    }
    errs
}

fn lease(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(d) = obj["spec"]["leaseDurationSeconds"].as_i64().filter(|d| *d <= 0) {
        errs.push(FieldError::invalid("spec.leaseDurationSeconds", &Value::from(d), "must be greater than 0"));
    }
    if let Some(t) = obj["spec"]["leaseTransitions"].as_i64().filter(|t| *t < 0) {
        errs.push(FieldError::invalid("spec.leaseTransitions", &Value::from(t), "must be greater than or equal to 0"));
    }
    errs
}

fn pdb(obj: &Value) -> Vec<FieldError> {
    let spec = &obj["spec"];
    if spec["minAvailable"].is_null() || spec["maxUnavailable"].is_null() {
        return Vec::new();
    }
    let rendered = go_struct(&[
        ("MinAvailable", or_null(&spec["minAvailable"])),
        ("Selector", or_null(&spec["selector"])),
        ("MaxUnavailable", or_null(&spec["maxUnavailable"])),
        ("UnhealthyPodEvictionPolicy", or_null(&spec["unhealthyPodEvictionPolicy"])),
    ]);
    vec![invalid_json("spec", &rendered, "minAvailable and maxUnavailable cannot be both set")]
}

fn service(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ports = obj["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if ports.len() > 1 {
        for (i, p) in ports.iter().enumerate() {
            if p["name"].as_str().is_none_or(str::is_empty) {
                errs.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
            }
        }
    }
    // Two ports may not share port and protocol; the duplicate is reported as the key it
    // was found by, an internal ServicePort with only those two fields set.
    let mut seen: Vec<(i64, String)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let key = (p["port"].as_i64().unwrap_or(0), p["protocol"].as_str().unwrap_or("TCP").to_string());
        if seen.contains(&key) {
            let rendered = go_struct(&[
                ("Name", "\"\"".into()),
                ("Protocol", go_json(&Value::String(key.1.clone()))),
                ("AppProtocol", "null".into()),
                ("Port", key.0.to_string()),
                ("TargetPort", "0".into()),
                ("NodePort", "0".into()),
            ]);
            errs.push(FieldError {
                reason: "FieldValueDuplicate",
                field: format!("spec.ports[{i}]"),
                message: format!("Duplicate value: {rendered}"),
            });
        } else {
            seen.push(key);
        }
    }
    errs
}

fn role_binding(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let Some(old) = old else { return Vec::new() };
    let field = |r: &Value, f: &str| r[f].as_str().unwrap_or("").to_string();
    let (new_ref, old_ref) = (&obj["roleRef"], &old["roleRef"]);
    if ["apiGroup", "kind", "name"].iter().all(|f| field(new_ref, f) == field(old_ref, f)) {
        return Vec::new();
    }
    let rendered = go_struct(&[
        ("APIGroup", go_json(&Value::String(field(new_ref, "apiGroup")))),
        ("Kind", go_json(&Value::String(field(new_ref, "kind")))),
        ("Name", go_json(&Value::String(field(new_ref, "name")))),
    ]);
    vec![invalid_json("roleRef", &rendered, "field is immutable")]
}

/// Whether `labels` satisfy a LabelSelector (`matchLabels` and `matchExpressions`).
fn selector_matches(selector: &Map<String, Value>, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let labels_ok = match_labels.is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let expressions = selector.get("matchExpressions").and_then(Value::as_array).cloned().unwrap_or_default();
    let expressions_ok = expressions.iter().all(|e| {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> =
            e["values"].as_array().map(|vs| vs.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        match e["operator"].as_str().unwrap_or("") {
            "In" => label(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

fn nonnegative(field: &str, v: &Value, errs: &mut Vec<FieldError>) {
    if let Some(n) = v.as_i64().filter(|n| *n < 0) {
        errs.push(FieldError::invalid(field, &Value::from(n), "must be greater than or equal to 0"));
    }
}

fn deployment(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &obj["spec"];
    nonnegative("spec.replicas", &spec["replicas"], &mut errs);
    let selector = spec["selector"].as_object();
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(s) => {
            let empty = s.get("matchLabels").and_then(Value::as_object).is_none_or(Map::is_empty)
                && s.get("matchExpressions").and_then(Value::as_array).is_none_or(Vec::is_empty);
            if empty {
                errs.push(invalid_json(
                    "spec.selector",
                    &go_json(&spec["selector"]),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    let template = &spec["template"];
    // A missing selector selects nothing, so it never matches the template.
    let matches = selector.is_some_and(|s| selector_matches(s, &template["metadata"]["labels"]));
    let selector_is_empty = selector.is_some_and(|s| {
        s.get("matchLabels").and_then(Value::as_object).is_none_or(Map::is_empty)
            && s.get("matchExpressions").and_then(Value::as_array).is_none_or(Vec::is_empty)
    });
    if !selector_is_empty && !matches {
        errs.push(invalid_json(
            "spec.template.metadata.labels",
            &or_null(&template["metadata"]["labels"]),
            "`selector` does not match template `labels`",
        ));
    }
    let containers = template["spec"]["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        errs.push(FieldError::required("spec.template.spec.containers", ""));
    }
    for (i, c) in containers.iter().enumerate() {
        if c["name"].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(format!("spec.template.spec.containers[{i}].name"), ""));
        }
        if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            errs.push(FieldError::required(format!("spec.template.spec.containers[{i}].image"), ""));
        }
    }
    if let Some(policy) = template["spec"]["restartPolicy"].as_str().filter(|p| *p != "Always") {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            &Value::String(policy.into()),
            &[Value::String("Always".into())],
        ));
    }
    nonnegative("spec.minReadySeconds", &spec["minReadySeconds"], &mut errs);
    nonnegative("spec.revisionHistoryLimit", &spec["revisionHistoryLimit"], &mut errs);
    if let Some(deadline) = spec["progressDeadlineSeconds"].as_i64() {
        nonnegative("spec.progressDeadlineSeconds", &spec["progressDeadlineSeconds"], &mut errs);
        if deadline <= spec["minReadySeconds"].as_i64().unwrap_or(0) {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                &Value::from(deadline),
                "must be greater than minReadySeconds",
            ));
        }
    }
    if let Some(old) = old
        && old["spec"]["selector"] != spec["selector"]
    {
        errs.push(invalid_json("spec.selector", &or_null(&spec["selector"]), "field is immutable"));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn deployment_errors_read_like_kube_apiservers() {
        // The answers of kube-apiserver 1.37.2 to the same objects.
        let bad = json!({"spec": {"template": {"spec": {"containers": [{"name": "c"}], "restartPolicy": "Always"}}}});
        assert_eq!(
            messages(&validate("apps", "Deployment", &bad, None)),
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: null: `selector` does not match template `labels`",
                "spec.template.spec.containers[0].image: Required value",
            ]
        );
        let old = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let mut dropped = old.clone();
        dropped["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            messages(&validate("apps", "Deployment", &dropped, Some(&old))),
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: {\"a\":\"b\"}: `selector` does not match template `labels`",
                "spec.selector: Invalid value: null: field is immutable",
            ]
        );
        assert!(validate("apps", "Deployment", &old, Some(&old)).is_empty());
    }

    #[test]
    fn internal_structs_render_with_go_field_names() {
        let pdb_obj = json!({"spec": {"minAvailable": 1, "maxUnavailable": 1}});
        assert_eq!(
            messages(&validate("policy", "PodDisruptionBudget", &pdb_obj, None)),
            [
                "spec: Invalid value: {\"MinAvailable\":1,\"Selector\":null,\"MaxUnavailable\":1,\"UnhealthyPodEvictionPolicy\":null}: minAvailable and maxUnavailable cannot be both set"
            ]
        );
        let old = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}});
        let new = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "other"}});
        assert_eq!(
            messages(&validate("rbac.authorization.k8s.io", "RoleBinding", &new, Some(&old))),
            [
                "roleRef: Invalid value: {\"APIGroup\":\"rbac.authorization.k8s.io\",\"Kind\":\"Role\",\"Name\":\"other\"}: field is immutable"
            ]
        );
        let svc = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "TCP"}]}});
        assert_eq!(
            messages(&validate("", "Service", &svc, None)),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value",
                "spec.ports[1]: Duplicate value: {\"Name\":\"\",\"Protocol\":\"TCP\",\"AppProtocol\":null,\"Port\":80,\"TargetPort\":0,\"NodePort\":0}",
            ]
        );
    }

    #[test]
    fn keys_and_secret_types() {
        let cm = json!({"data": {"bad key!": "v", "ok": "v"}});
        assert_eq!(
            messages(&validate("", "ConfigMap", &cm, None)),
            [
                "data[bad key!]: Invalid value: \"bad key!\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
            ]
        );
        let tls = json!({"type": "kubernetes.io/tls", "data": {}});
        assert_eq!(
            messages(&validate("", "Secret", &tls, None)),
            ["data[tls.crt]: Required value", "data[tls.key]: Required value"]
        );
        let lease_obj = json!({"spec": {"leaseDurationSeconds": -1}});
        assert_eq!(
            messages(&validate("coordination.k8s.io", "Lease", &lease_obj, None)),
            ["spec.leaseDurationSeconds: Invalid value: -1: must be greater than 0"]
        );
        assert_eq!(go_json(&json!({"b": 1, "a": "<x>"})), "{\"a\":\"\\u003cx\\u003e\",\"b\":1}");
    }
}
