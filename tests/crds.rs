//! The generated CRDs: the checked-in `crds/` file matches `connection-operator crd`, the
//! schemas are structural (kube-apiserver rejects them otherwise), and the admission rules
//! (schema constraints and CEL `x-kubernetes-validations`) accept the documented manifests
//! and reject the invalid ones with clear messages. CEL is evaluated by `kube-cel`, the same
//! engine the Kubernetes emulator uses.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

const CRD_FILE: &str = "crds/connection-operator.dev.yaml";

fn crd_schema(plural: &str) -> Value {
    let crd = connection_operator::api::crds()
        .into_iter()
        .find(|c| c.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("no CRD {plural}"));
    let version = &crd.spec.versions[0];
    let schema = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema");
    serde_json::to_value(schema).unwrap()
}

/// Admission failures for `object` (optionally as an update of `old`): OpenAPI value
/// validations (checked by the `jsonschema` crate; OpenAPI v3.0 schemas are draft-4 based)
/// followed by the CEL rules (checked by `kube-cel`).
fn cel_errors(plural: &str, object: &Value, old: Option<&Value>) -> Vec<String> {
    let schema = crd_schema(plural);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .expect("the CRD schema compiles");
    let mut errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if let Err(cel) = kube_cel::validate(&schema, object, old) {
        errors.extend(cel.iter().map(|e| e.to_string()));
    }
    errors
}

fn connection(spec: Value) -> Value {
    json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection",
           "metadata": {"name": "c", "namespace": "t"}, "spec": spec})
}

fn provider(spec: Value) -> Value {
    json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Provider",
           "metadata": {"name": "p", "namespace": "t"}, "spec": spec})
}

#[test]
fn checked_in_crds_match_the_crd_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_connection-operator"))
        .arg("crd")
        .output()
        .expect("run connection-operator crd");
    assert!(output.status.success(), "crd command failed: {}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    let checked_in = std::fs::read_to_string(root.join(CRD_FILE)).unwrap_or_default();
    assert!(
        printed == checked_in,
        "{CRD_FILE} is stale: regenerate with `cargo run -- crd > {CRD_FILE}`"
    );
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&printed)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .collect();
    let names: Vec<&str> = docs.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["connections.connection-operator.dev", "providers.connection-operator.dev", "clusterproviders.connection-operator.dev"]
    );
}

use serde::Deserialize;

/// Kubernetes "structural schema" rules: every node states a `type` unless it preserves
/// unknown fields or is int-or-string, and `anyOf`/`oneOf`/`allOf`/`not` carry no `type`.
fn assert_structural(path: &str, node: &Value) {
    let obj = node.as_object().unwrap_or_else(|| panic!("{path}: schema is not an object"));
    let free = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        || obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    assert!(free || obj.get("type").is_some_and(Value::is_string), "{path}: no single type: {node}");
    for key in ["anyOf", "oneOf", "allOf", "not"] {
        assert!(!obj.contains_key(key), "{path}: {key} is not allowed here");
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            assert_structural(&format!("{path}.{k}"), v);
        }
    }
    if let Some(items) = obj.get("items") {
        assert_structural(&format!("{path}[]"), items);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        assert_structural(&format!("{path}.*"), extra);
    }
}

#[test]
fn schemas_are_structural_with_conditions_as_list_map() {
    for plural in ["connections", "providers", "clusterproviders"] {
        let schema = crd_schema(plural);
        assert_structural(plural, &schema);
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{plural}");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]), "{plural}");
    }
    let crd = connection_operator::api::crds().remove(0);
    assert_eq!(crd.spec.names.short_names, Some(vec!["conn".to_string()]));
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    let columns: Vec<_> = version.additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.to_uppercase()).collect();
    assert_eq!(columns, ["PROVIDER", "CONNECTION", "READY", "REASON", "LAST SYNC", "AGE"]);
}

#[test]
fn documented_connections_are_admitted() {
    let specs = [
        json!({"providerRef": {"name": "nango"}, "connectionId": "acme-salesforce-1",
               "nango": {"providerConfigKey": "salesforce", "metadata": {"accountRegion": "eu", "fieldMapping": {"a": [1, {"b": null}]}}},
               "managementPolicy": "Manage", "deletionPolicy": "Orphan", "driftInterval": "10m", "suspend": false}),
        json!({"providerRef": {"name": "m", "kind": "ClusterProvider"}, "connectionId": "c1",
               "mielto": {"label": "Acme", "status": "active", "config": {"channel": "#x", "n": {"deep": true}}}}),
        json!({"providerRef": {"name": "a"}, "connectionId": "98765",
               "arena": {"metadata": {"reviewed": true, "score": 0.95, "count": 3, "status": "ok"}}}),
        json!({"providerRef": {"name": "d"}, "connectionId": "conn_1", "datagrid": {"name": "Acme Drive"},
               "driftInterval": "30s"}),
    ];
    for spec in specs {
        assert_eq!(cel_errors("connections", &connection(spec.clone()), None), Vec::<String>::new(), "{spec}");
    }
}

#[test]
fn invalid_connections_are_rejected_with_clear_messages() {
    let base = || json!({"providerRef": {"name": "p"}, "connectionId": "1"});
    let with = |extra: Value| {
        let mut spec = base();
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        connection(spec)
    };
    let cases = [
        (with(json!({})), "exactly one provider block"),
        (with(json!({"datagrid": {"name": "x"}, "arena": {"metadata": {}}})), "exactly one provider block"),
        (with(json!({"arena": {"metadata": {"bad-key": "x"}}})), "keys must match"),
        (with(json!({"arena": {"metadata": {"k": {"nested": 1}}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": {"k": {}}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": {"k": [1]}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": {"k": []}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": {"k": "x".repeat(2001)}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": (0..51).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}})), "/spec/arena/metadata"),
        (with(json!({"mielto": {"label": "x".repeat(256)}})), "/spec/mielto/label"),
        (with(json!({"mielto": {"status": "paused"}})), "/spec/mielto/status"),
        (with(json!({"nango": {"providerConfigKey": "bad/key"}})), "/spec/nango/providerConfigKey"),
        (with(json!({"datagrid": {"name": "x"}, "managementPolicy": "Sometimes"})), "/spec/managementPolicy"),
        (with(json!({"datagrid": {"name": "x"}, "deletionPolicy": "Purge"})), "/spec/deletionPolicy"),
        (with(json!({"datagrid": {"name": "x"}, "driftInterval": "10s"})), "at least 30s"),
    ];
    for (object, expected) in cases {
        let errors = cel_errors("connections", &object, None);
        assert!(errors.iter().any(|e| e.contains(expected)), "{object}: expected {expected:?}, got {errors:?}");
    }
    let non_numeric = connection(json!({"providerRef": {"name": "p"}, "connectionId": "abc", "arena": {"metadata": {}}}));
    let errors = cel_errors("connections", &non_numeric, None);
    assert!(errors.iter().any(|e| e.contains("decimal integer")), "{errors:?}");
}

#[test]
fn connection_id_and_provider_ref_are_immutable() {
    let old = connection(json!({"providerRef": {"name": "p"}, "connectionId": "1", "datagrid": {"name": "x"}}));
    let renamed = connection(json!({"providerRef": {"name": "p"}, "connectionId": "1", "datagrid": {"name": "y"}}));
    assert_eq!(cel_errors("connections", &renamed, Some(&old)), Vec::<String>::new());
    let moved = connection(json!({"providerRef": {"name": "p"}, "connectionId": "2", "datagrid": {"name": "x"}}));
    let errors = cel_errors("connections", &moved, Some(&old));
    assert!(errors.iter().any(|e| e.contains("connectionId is immutable")), "{errors:?}");
    let other = connection(json!({"providerRef": {"name": "q"}, "connectionId": "1", "datagrid": {"name": "x"}}));
    let errors = cel_errors("connections", &other, Some(&old));
    assert!(errors.iter().any(|e| e.contains("providerRef is immutable")), "{errors:?}");
}

#[test]
fn provider_rules() {
    let spec = |extra: Value| {
        let mut s = json!({"type": "nango", "credentialsRef": {"name": "s", "key": "token"}});
        s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        provider(s)
    };
    for ok in [
        json!({}),
        json!({"baseUrl": "https://api.nango.dev"}),
        json!({"baseUrl": "http://127.0.0.1:8090/nango"}),
        json!({"baseUrl": "http://localhost:1/x"}),
        json!({"baseUrl": "http://nango.internal", "insecure": true}),
    ] {
        assert_eq!(cel_errors("providers", &spec(ok.clone()), None), Vec::<String>::new(), "{ok}");
    }
    for (bad, expected) in [
        (json!({"baseUrl": "http://nango.internal"}), "baseUrl must use https"),
        (json!({"baseUrl": "http://127.0.0.1.evil.com/"}), "baseUrl must use https"),
        (json!({"teamspaceId": "t"}), "teamspaceId applies only"),
        (json!({"workspaceId": "w"}), "workspaceId applies only"),
    ] {
        let errors = cel_errors("providers", &spec(bad.clone()), None);
        assert!(errors.iter().any(|e| e.contains(expected)), "{bad}: {errors:?}");
    }
    let retyped = provider(json!({"type": "arena", "credentialsRef": {"name": "s", "key": "token"}}));
    let errors = cel_errors("providers", &retyped, Some(&spec(json!({}))));
    assert!(errors.iter().any(|e| e.contains("type is immutable")), "{errors:?}");
}

#[test]
fn examples_are_admitted_and_deserialize() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for file in ["secrets.yaml", "providers.yaml", "connections.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
            let kind = object["kind"].as_str().unwrap().to_string();
            let plural = match kind.as_str() {
                "Connection" => "connections",
                "Provider" => "providers",
                "ClusterProvider" => "clusterproviders",
                _ => {
                    *seen.entry(kind).or_default() += 1;
                    continue;
                }
            };
            assert_eq!(cel_errors(plural, &object, None), Vec::<String>::new(), "{file}: {object}");
            match plural {
                "connections" => {
                    let c: connection_operator::api::Connection = serde_json::from_value(object.clone()).unwrap();
                    assert!(c.spec.block().is_some(), "{file}: one provider block");
                }
                "providers" => drop(serde_json::from_value::<connection_operator::api::Provider>(object.clone()).unwrap()),
                _ => drop(serde_json::from_value::<connection_operator::api::ClusterProvider>(object.clone()).unwrap()),
            }
            *seen.entry(kind).or_default() += 1;
        }
    }
    assert_eq!(seen.get("Connection"), Some(&4), "one Connection per provider: {seen:?}");
    assert_eq!(seen.get("Secret"), Some(&4));
    assert_eq!(seen.get("Provider").copied().unwrap_or(0) + seen.get("ClusterProvider").copied().unwrap_or(0), 4);
}
