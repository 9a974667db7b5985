//! The generated CRDs.
//!
//! Pure checks: the checked-in `crds/` file matches `connection-operator crd`; the schemas
//! are structural, every CEL rule sits on a node kube-apiserver can give a CEL type, and
//! every format is one it knows; the admission rules (schema constraints and CEL
//! `x-kubernetes-validations`, CEL evaluated by `kube-cel`) accept the documented manifests
//! and reject the invalid ones.
//!
//! Then the real kubectl against a Kubernetes API, each case written once and run on the
//! REAL control plane (kube-apiserver 1.37.2) and on the emulator (`mod real`, `mod
//! emulator`): the CRDs are accepted without warnings, every schema constraint and CEL rule
//! refuses its invalid manifest with the real server's message and admits the valid one,
//! the examples apply, printer columns, defaults, `kubectl explain`, and server-side apply of
//! status. The expected messages are the real server's: the emulator must match them.

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
    let validator =
        jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(&schema).expect("the CRD schema compiles");
    let mut errors: Vec<String> =
        validator.iter_errors(object).map(|e| format!("{}: {e}", e.instance_path())).collect();
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
    assert!(printed == checked_in, "{CRD_FILE} is stale: regenerate with `cargo run -- crd > {CRD_FILE}`");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&printed)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .collect();
    let names: Vec<&str> = docs.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "connections.connection-operator.dev",
            "providers.connection-operator.dev",
            "clusterproviders.connection-operator.dev"
        ]
    );
}

use serde::Deserialize;

#[test]
fn version_prints_the_package_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_connection-operator")).arg("version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("connection-operator {}\n", env!("CARGO_PKG_VERSION"))
    );
}

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
    let columns: Vec<_> =
        version.additional_printer_columns.as_ref().unwrap().iter().map(|c| c.name.to_uppercase()).collect();
    assert_eq!(columns, ["PROVIDER", "CONNECTION", "READY", "REASON", "LAST SYNC", "AGE"]);
}

/// Whether kube-apiserver can give `node` a CEL type (`SchemaDeclType` in
/// k8s.io/apiserver/pkg/cel/common/schemas.go is not nil): a CEL rule on a node without one
/// makes the whole CRD invalid ("failed to convert to declType for CEL validation rules").
fn has_cel_type(node: &Value) -> bool {
    if node.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        return true;
    }
    match node.get("type").and_then(Value::as_str) {
        Some("array") => node.get("items").is_some_and(has_cel_type),
        Some("object") => match node.get("additionalProperties") {
            Some(values) if values.is_object() => has_cel_type(values),
            _ => true,
        },
        Some("string" | "boolean" | "number" | "integer") => true,
        _ => false,
    }
}

/// Every schema node below `node`, with its path.
fn walk<'a>(path: String, node: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), node));
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(format!("{path}.{k}"), v, out);
        }
    }
    if let Some(items) = node.get("items") {
        walk(format!("{path}[]"), items, out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        walk(format!("{path}.*"), values, out);
    }
}

#[test]
fn every_cel_rule_has_a_cel_type_and_every_format_is_known() {
    // kube-apiserver's formats (apiextensions-apiserver pkg/apiserver/validation/formats.go):
    // integer int32/int64, number float/double, strings from its list; any other earns
    // `Warning: unrecognized format` at `kubectl apply`.
    let string_formats = ["date-time", "date", "duration", "byte", "password", "uri", "email", "hostname", "uuid"];
    let mut rules = 0;
    for plural in ["connections", "providers", "clusterproviders"] {
        let schema = crd_schema(plural);
        let mut nodes = Vec::new();
        walk(plural.to_string(), &schema, &mut nodes);
        for (path, node) in nodes {
            if node.get("x-kubernetes-validations").is_some() {
                rules += 1;
                assert!(has_cel_type(node), "{path}: a CEL rule on a node without a CEL type: {node}");
            }
            if let Some(format) = node.get("format").and_then(Value::as_str) {
                let known = match node["type"].as_str() {
                    Some("integer") => ["int32", "int64"].contains(&format),
                    Some("number") => ["float", "double"].contains(&format),
                    _ => string_formats.contains(&format),
                };
                assert!(known, "{path}: format {format:?} is unknown to Kubernetes");
            }
        }
    }
    assert!(rules >= 6, "the walk found the rules ({rules})");
    // Unsigned Rust integers keep their sign as a minimum.
    let provider = &crd_schema("providers")["properties"];
    for (node, minimum) in [
        (&provider["spec"]["properties"]["timeoutSeconds"], 1.0),
        (&provider["spec"]["properties"]["rateLimit"]["properties"]["burst"], 1.0),
        (&provider["status"]["properties"]["rateLimit"]["properties"]["limit"], 0.0),
        (&provider["status"]["properties"]["rateLimit"]["properties"]["remaining"], 0.0),
    ] {
        assert_eq!(node["minimum"].as_f64(), Some(minimum), "{node}");
    }
    // The rule that used to sit on Are.na metadata could not get a type: its values are untyped.
    let metadata = &crd_schema("connections")["properties"]["spec"]["properties"]["arena"]["properties"]["metadata"];
    assert!(!has_cel_type(metadata));
    assert!(metadata.get("x-kubernetes-validations").is_none());
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
        (with(json!({"arena": {"metadata": {"k": {"nested": 1}}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": {"k": {}}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": {"k": [1]}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": {"k": []}}})), "/spec/arena/metadata/k"),
        (with(json!({"arena": {"metadata": {"k": "x".repeat(2001)}}})), "/spec/arena/metadata/k"),
        (
            with(
                json!({"arena": {"metadata": (0..51).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}}),
            ),
            "/spec/arena/metadata",
        ),
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
    let nango_id = |id: &str| {
        connection(json!({"providerRef": {"name": "p"}, "connectionId": id, "nango": {"providerConfigKey": "k"}}))
    };
    let errors = cel_errors("connections", &nango_id("acme#1"), None);
    assert!(errors.iter().any(|e| e.contains("Nango connectionId may only hold")), "{errors:?}");
    let odd_but_valid = r#"a,.;:=+~[b]|@${c} "d" 'e' \f/g_h-1"#;
    assert_eq!(cel_errors("connections", &nango_id(odd_but_valid), None), Vec::<String>::new());
    let non_numeric =
        connection(json!({"providerRef": {"name": "p"}, "connectionId": "abc", "arena": {"metadata": {}}}));
    let errors = cel_errors("connections", &non_numeric, None);
    assert!(errors.iter().any(|e| e.contains("decimal integer")), "{errors:?}");
    // The Are.na key pattern is not the schema's: the controller and the chart's admission
    // policy check it (`api::validate`), since the API server cannot type the rule.
    let bad_key = with(json!({"arena": {"metadata": {"bad-key": "x"}}}));
    assert_eq!(cel_errors("connections", &bad_key, None), Vec::<String>::new());
    let spec: connection_operator::api::ConnectionSpec = serde_json::from_value(bad_key["spec"].clone()).unwrap();
    assert!(connection_operator::api::validate::validate_spec(&spec).is_err());
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
    for file in [
        "secrets.yaml",
        "shared-settings.yaml",
        "providers.yaml",
        "connections.yaml",
        "pull-request/acme-salesforce.yaml",
    ] {
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
                "providers" => {
                    drop(serde_json::from_value::<connection_operator::api::Provider>(object.clone()).unwrap())
                }
                _ => drop(serde_json::from_value::<connection_operator::api::ClusterProvider>(object.clone()).unwrap()),
            }
            *seen.entry(kind).or_default() += 1;
        }
    }
    assert_eq!(seen.get("Connection"), Some(&5), "one Connection per provider and the pull request's: {seen:?}");
    assert_eq!(seen.get("Secret"), Some(&5), "one per provider account and one of shared settings");
    assert_eq!(seen.get("ConfigMap"), Some(&1));
    assert_eq!(seen.get("Provider").copied().unwrap_or(0) + seen.get("ClusterProvider").copied().unwrap_or(0), 4);
}

// ---- kubectl against the real control plane and the emulator -----------------------------

use connection_testkit::{Cluster, Kubectl, TestNamespace};

const API_VERSION: &str = "connection-operator.dev/v1alpha1";
/// What the real server appends when a blocking schema error kept the CEL rules from running
/// (apiextensions `customresource/strategy.go`).
const NOT_CHECKED: &str = "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Write each case once; run it on the shared real control plane and on a fresh emulator.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod real {
            $( #[test] fn $case() { super::$case(connection_testkit::Cluster::real()) } )*
        }
        mod emulator {
            $( #[test] fn $case() { super::$case(connection_testkit::Cluster::emulator()) } )*
        }
    };
}

on_both_backends!(
    a_rule_without_a_cel_type_makes_the_crd_invalid,
    unrecognized_formats_are_warned_about_once,
    connection_rules_refuse_with_the_servers_message,
    provider_rules_refuse_with_the_servers_message,
    immutable_fields_refuse_apply_and_replace,
    examples_apply_with_defaults_and_printer_columns,
    kubectl_explain_shows_the_field_docs,
    status_conditions_merge_per_type_under_server_side_apply,
);

/// The CRDs installed and a namespace of the test's own.
fn with_crds(cluster: &Cluster, prefix: &str) -> TestNamespace {
    cluster.install_crds();
    cluster.namespace(prefix)
}

fn manifest(kind: &str, name: &str, spec: Value) -> String {
    json!({"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}).to_string()
}

/// The causes kubectl printed for a refused write: `The Kind "name" is invalid: <cause>` or
/// one `* <cause>` line each.
fn causes(stderr: &str) -> Vec<String> {
    let (_, rest) = stderr.split_once(" is invalid: ").unwrap_or_else(|| panic!("not an Invalid refusal: {stderr}"));
    let mut causes: Vec<String> = if rest.starts_with('\n') {
        rest.lines().filter_map(|l| l.strip_prefix("* ")).map(str::to_string).collect()
    } else {
        vec![rest.trim_end().to_string()]
    };
    causes.sort();
    causes
}

/// `kubectl <verb>` of `manifest` is refused with exactly the causes `expected`.
fn assert_refused(kubectl: &Kubectl, verb: &str, manifest: &str, expected: &[&str]) {
    let got = causes(&kubectl.refused(verb, manifest));
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "kubectl {verb} of {manifest}");
}

/// `kubectl apply` of `manifest` succeeds without a warning.
fn assert_admitted(kubectl: &Kubectl, manifest: &str) {
    let out = kubectl.run(&["apply", "-f", "-"], Some(manifest));
    assert!(out.ok, "refused: {manifest}\n{}", out.stderr);
    assert!(!out.stderr.contains("Warning"), "{manifest}: {}", out.stderr);
}

/// An API group of this test's own: CRDs are cluster-scoped and shared by every test.
fn unique_group() -> String {
    use rand::Rng;
    let suffix: String = {
        let mut rng = rand::rng();
        (0..8).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
    };
    format!("g{suffix}.probe.connection-operator.dev")
}

/// kube-apiserver compiles a CEL rule against the CEL type of its node; a map whose values
/// have no type has none, and the CRD is invalid. This was the Are.na key rule on
/// `spec.arena.metadata` (schemars puts `default: {}` there, so the server reports it while
/// checking the default); without a default the server says so at the rule.
fn a_rule_without_a_cel_type_makes_the_crd_invalid(cluster: Cluster) {
    let group = unique_group();
    let old_rule = json!([{
        "rule": "self.all(k, size(k) <= 40 && k.matches('^[A-Za-z0-9_]{1,40}$'))",
        "message": "Are.na metadata keys must match ^[A-Za-z0-9_]{1,40}$"
    }]);
    let crd = |with_default: bool| {
        let mut crd = serde_json::to_value(connection_operator::api::crds().remove(0)).unwrap();
        crd["metadata"]["name"] = json!(format!("connections.{group}"));
        crd["spec"]["group"] = json!(group);
        let metadata = crd
            .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/arena/properties/metadata")
            .unwrap();
        metadata["x-kubernetes-validations"] = old_rule.clone();
        if !with_default {
            metadata.as_object_mut().unwrap().remove("default");
        }
        crd.to_string()
    };
    let path = "spec.validation.openAPIV3Schema.properties[spec].properties[arena].properties[metadata]";
    assert_refused(
        &cluster.kubectl(),
        "apply",
        &crd(true),
        &[&format!(
            "{path}.default: Invalid value: \"object\": rule compiler initialization error: failed to convert to declType for CEL validation rules"
        )],
    );
    assert_refused(
        &cluster.kubectl(),
        "apply",
        &crd(false),
        &[&format!(
            "{path}.x-kubernetes-validations: Internal error: internal error: failed to construct type information for x-kubernetes-validations rules: unable to convert structural schema to CEL declarations"
        )],
    );
}

/// Formats Kubernetes does not know earn a warning when a CRD introduces them (schemars'
/// `uint32` did), and only then.
fn unrecognized_formats_are_warned_about_once(cluster: Cluster) {
    let group = unique_group();
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("things.{group}")},
        "spec": {"group": group, "scope": "Namespaced", "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {
                    "count": {"type": "integer", "format": "uint32", "minimum": 0},
                    "size": {"type": "integer", "format": "int64"},
                    "when": {"type": "string", "format": "date-time"},
                    "colour": {"type": "string", "format": "weird"}
                }}}
            }}}]}
    })
    .to_string();
    let kubectl = cluster.kubectl();
    let _cleanup = DeleteOnDrop { kubectl: kubectl.clone(), what: vec!["crd".into(), format!("things.{group}")] };
    let first = kubectl.run(&["apply", "-f", "-"], Some(&crd));
    assert!(first.ok, "{}", first.stderr);
    // In schema walk order, which follows Go map iteration on the server: sorted here.
    let mut warnings: Vec<&str> = first.stderr.lines().filter(|l| l.starts_with("Warning:")).collect();
    warnings.sort();
    assert_eq!(warnings, ["Warning: unrecognized format \"uint32\"", "Warning: unrecognized format \"weird\""]);
    let again = kubectl.run(&["apply", "-f", "-"], Some(&crd));
    assert!(again.ok && !again.stderr.contains("Warning"), "{}", again.stderr);
}

/// Deletes a cluster-scoped object when the test ends, passed or not.
struct DeleteOnDrop {
    kubectl: Kubectl,
    what: Vec<String>,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let mut args = vec!["delete", "--wait=false", "--ignore-not-found"];
        args.extend(self.what.iter().map(String::as_str));
        let _ = self.kubectl.run(&args, None);
    }
}

fn connection_rules_refuse_with_the_servers_message(cluster: Cluster) {
    let ns = with_crds(&cluster, "crd-connection-rules");
    let kubectl = ns.kubectl();
    let mut n = 0;
    let mut name = || {
        n += 1;
        format!("c{n}")
    };
    let spec = |extra: Value| {
        let mut spec = json!({"providerRef": {"name": "p"}, "connectionId": "1"});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        spec
    };
    let dg = |extra: Value| {
        let mut s = spec(json!({"datagrid": {"name": "x"}}));
        s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s
    };
    let one_block = "spec: Invalid value: exactly one provider block (nango, mielto, arena or datagrid) must be set";
    let long = |n: usize| "x".repeat(n);
    let fifty_one: serde_json::Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    let fifty: serde_json::Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!(i))).collect();

    let refused: Vec<(Value, Vec<String>)> = vec![
        // Exactly one provider block.
        (spec(json!({})), vec![one_block.into()]),
        (spec(json!({"datagrid": {"name": "x"}, "arena": {"metadata": {}}})), vec![one_block.into()]),
        // Required fields and their bounds.
        (json!({"providerRef": {"name": "p"}, "datagrid": {"name": "x"}}), vec!["spec.connectionId: Required value".into(), NOT_CHECKED.into()]),
        (json!({"connectionId": "1", "datagrid": {"name": "x"}}), vec!["spec.providerRef: Required value".into(), NOT_CHECKED.into()]),
        (dg(json!({"connectionId": ""})), vec!["spec.connectionId: Invalid value: \"\": spec.connectionId in body should be at least 1 chars long".into()]),
        (dg(json!({"connectionId": long(256)})), vec!["spec.connectionId: Too long: may not be more than 255 bytes".into(), NOT_CHECKED.into()]),
        (dg(json!({"providerRef": {"name": ""}})), vec!["spec.providerRef.name: Invalid value: \"\": spec.providerRef.name in body should be at least 1 chars long".into()]),
        (dg(json!({"providerRef": {"name": long(254)}})), vec!["spec.providerRef.name: Too long: may not be more than 253 bytes".into(), NOT_CHECKED.into()]),
        (dg(json!({"providerRef": {"name": "p", "kind": "Other"}})), vec!["spec.providerRef.kind: Unsupported value: \"Other\": supported values: \"Provider\", \"ClusterProvider\"".into(), NOT_CHECKED.into()]),
        // Policies, drift interval, suspend.
        (dg(json!({"managementPolicy": "Sometimes"})), vec!["spec.managementPolicy: Unsupported value: \"Sometimes\": supported values: \"Manage\", \"Observe\"".into(), NOT_CHECKED.into()]),
        (dg(json!({"deletionPolicy": "Purge"})), vec!["spec.deletionPolicy: Unsupported value: \"Purge\": supported values: \"Orphan\", \"Delete\"".into(), NOT_CHECKED.into()]),
        (dg(json!({"driftInterval": "29s"})), vec!["spec.driftInterval: Invalid value: \"29s\": driftInterval must be at least 30s".into()]),
        (dg(json!({"driftInterval": "5 minutes"})), vec![
            "spec.driftInterval: Invalid value: \"5 minutes\": spec.driftInterval in body should match '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$'".into(),
            "spec.driftInterval: Invalid value: \"string\": type conversion error from 'string' to 'google.protobuf.Duration' evaluating rule: driftInterval must be at least 30s".into(),
        ]),
        (dg(json!({"suspend": "yes"})), vec!["spec.suspend: Invalid value: \"string\": spec.suspend in body must be of type boolean: \"string\"".into(), NOT_CHECKED.into()]),
        // Nango.
        (json!({"providerRef": {"name": "p"}, "connectionId": "acme#1", "nango": {"providerConfigKey": "k"}}),
            vec!["spec.connectionId: Invalid value: a Nango connectionId may only hold letters, digits, spaces and ,.;:=+~[]|@${}\"'\\/_-".into()]),
        (spec(json!({"nango": {}})), vec!["spec.nango.providerConfigKey: Required value".into(), NOT_CHECKED.into()]),
        (spec(json!({"nango": {"providerConfigKey": "bad/key"}})),
            vec!["spec.nango.providerConfigKey: Invalid value: \"bad/key\": spec.nango.providerConfigKey in body should match '^[a-zA-Z0-9~:.@ _-]+$'".into()]),
        // The server stops at the first failing string check of a node: minLength, not pattern.
        (spec(json!({"nango": {"providerConfigKey": ""}})), vec![
            "spec.nango.providerConfigKey: Invalid value: \"\": spec.nango.providerConfigKey in body should be at least 1 chars long".into(),
        ]),
        (spec(json!({"nango": {"providerConfigKey": long(256)}})), vec!["spec.nango.providerConfigKey: Too long: may not be more than 255 bytes".into(), NOT_CHECKED.into()]),
        (dg(json!({"managementPolicy": "Observe", "suspend": 1})), vec!["spec.suspend: Invalid value: \"integer\": spec.suspend in body must be of type boolean: \"integer\"".into(), NOT_CHECKED.into()]),
        // Mielto.
        (spec(json!({"mielto": {"label": long(256)}})), vec!["spec.mielto.label: Too long: may not be more than 255 bytes".into(), NOT_CHECKED.into()]),
        (spec(json!({"mielto": {"status": "paused"}})), vec!["spec.mielto.status: Unsupported value: \"paused\": supported values: \"active\", \"inactive\", \"testing\", \"error\", \"expired\", \"null\"".into(), NOT_CHECKED.into()]),
        // Are.na: decimal id, scalar values, 2000 characters, 50 keys.
        (json!({"providerRef": {"name": "p"}, "connectionId": "abc", "arena": {"metadata": {}}}),
            vec!["spec.connectionId: Invalid value: an Are.na connectionId must be a decimal integer".into()]),
        (json!({"providerRef": {"name": "p"}, "connectionId": "1234567890123456789", "arena": {"metadata": {}}}),
            vec!["spec.connectionId: Invalid value: an Are.na connectionId must be a decimal integer".into()]),
        (spec(json!({"arena": {"metadata": {"k": {"a": 1}}}})), vec!["spec.arena.metadata.k: Too many: 1: must have at most 0 items".into(), NOT_CHECKED.into()]),
        (spec(json!({"arena": {"metadata": {"k": {}}}})), vec!["spec.arena.metadata.k: Invalid value: 0: spec.arena.metadata.k in body should have at least 1 properties".into()]),
        (spec(json!({"arena": {"metadata": {"k": [1]}}})), vec!["spec.arena.metadata.k: Too many: 1: must have at most 0 items".into(), NOT_CHECKED.into()]),
        (spec(json!({"arena": {"metadata": {"k": []}}})), vec!["spec.arena.metadata.k: Invalid value: 0: spec.arena.metadata.k in body should have at least 1 items".into()]),
        (spec(json!({"arena": {"metadata": {"k": long(2001)}}})), vec!["spec.arena.metadata.k: Too long: may not be more than 2000 bytes".into(), NOT_CHECKED.into()]),
        (spec(json!({"arena": {"metadata": fifty_one}})), vec!["spec.arena.metadata: Too many: 51: must have at most 50 items".into(), NOT_CHECKED.into()]),
        // Datagrid.
        (spec(json!({"datagrid": {}})), vec!["spec.datagrid.name: Required value".into(), NOT_CHECKED.into()]),
        (spec(json!({"datagrid": {"name": ""}})), vec!["spec.datagrid.name: Invalid value: \"\": spec.datagrid.name in body should be at least 1 chars long".into()]),
        (spec(json!({"datagrid": {"name": long(256)}})), vec!["spec.datagrid.name: Too long: may not be more than 255 bytes".into(), NOT_CHECKED.into()]),
    ];
    for (spec, expected) in refused {
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert_refused(&kubectl, "apply", &manifest("Connection", &name(), spec), &expected);
    }
    let no_spec = json!({"apiVersion": API_VERSION, "kind": "Connection", "metadata": {"name": name()}}).to_string();
    assert_refused(&kubectl, "apply", &no_spec, &["spec: Required value", NOT_CHECKED]);

    let admitted = [
        json!({"providerRef": {"name": "n"}, "connectionId": r#"a,.;:=+~[b]|@${c} "d" 'e' \f/g_h-1"#,
               "nango": {"providerConfigKey": "sales~force:1.a@b c_d-e", "metadata": {"deep": {"a": [1, {"b": null}]}}},
               "managementPolicy": "Observe", "deletionPolicy": "Delete", "driftInterval": "1h30m", "suspend": true}),
        json!({"providerRef": {"name": "m", "kind": "ClusterProvider"}, "connectionId": "c1",
               "mielto": {"label": long(255), "status": "expired", "config": {"n": {"deep": true}}}}),
        json!({"providerRef": {"name": long(253)}, "connectionId": "123456789012345678",
               "arena": {"metadata": {"s": long(2000), "n": 0.5, "i": -3, "b": false}}}),
        spec(json!({"arena": {"metadata": fifty}})),
        // Keys outside ^[A-Za-z0-9_]{1,40}$ pass the CRD: the controller (InvalidSpec) and the
        // chart's admission policy refuse them (tests/spec_rules.rs).
        spec(json!({"arena": {"metadata": {"bad-key": 1}}})),
        dg(json!({"connectionId": long(255), "driftInterval": "30s"})),
    ];
    for spec in admitted {
        assert_admitted(&kubectl, &manifest("Connection", &name(), spec));
    }
}

/// Provider and ClusterProvider share their rules; every case runs on both kinds.
fn provider_rules_refuse_with_the_servers_message(cluster: Cluster) {
    let ns = with_crds(&cluster, "crd-provider-rules");
    let kubectl = ns.kubectl();
    let mut n = 0;
    for kind in ["Provider", "ClusterProvider"] {
        let credentials = match kind {
            "Provider" => json!({"name": "s", "key": "token"}),
            _ => json!({"name": "s", "namespace": ns.name(), "key": "token"}),
        };
        let without = |object: &Value, key: &str| {
            let mut object = object.clone();
            object.as_object_mut().unwrap().remove(key);
            object
        };
        let with = |object: &Value, key: &str, value: &str| {
            let mut object = object.clone();
            object[key] = json!(value);
            object
        };
        let spec = |extra: Value| {
            let mut spec = json!({"type": "nango", "credentialsRef": credentials.clone()});
            spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            spec
        };
        // ClusterProviders are cluster-scoped: names of this test's own.
        let mut name = || {
            n += 1;
            format!("{}-{n}", ns.name())
        };
        let https = "spec.baseUrl: Invalid value: baseUrl must use https:// (plain http:// only for loopback hosts, or with insecure: true)";
        let refused: Vec<(Value, Vec<String>)> = vec![
            (spec(json!({"baseUrl": "http://nango.example"})), vec![https.into()]),
            (spec(json!({"baseUrl": "http://127.0.0.1.evil.com/"})), vec![https.into()]),
            (spec(json!({"baseUrl": "http://localhost.evil.com"})), vec![https.into()]),
            (spec(json!({"baseUrl": "ftp://x"})), vec![
                "spec.baseUrl: Invalid value: \"ftp://x\": spec.baseUrl in body should match '^https?://[^\\s]+$'".into(),
                https.into(),
            ]),
            (spec(json!({"baseUrl": format!("https://{}", "x".repeat(2041))})), vec!["spec.baseUrl: Too long: may not be more than 2048 bytes".into(), NOT_CHECKED.into()]),
            (spec(json!({"workspaceId": "w"})), vec!["spec.workspaceId: Invalid value: workspaceId applies only to type mielto".into()]),
            (spec(json!({"teamspaceId": "t"})), vec!["spec.teamspaceId: Invalid value: teamspaceId applies only to type datagrid".into()]),
            (spec(json!({"type": "mielto", "workspaceId": ""})), vec!["spec.workspaceId: Invalid value: \"\": spec.workspaceId in body should be at least 1 chars long".into()]),
            (spec(json!({"type": "datagrid", "teamspaceId": "x".repeat(256)})), vec!["spec.teamspaceId: Too long: may not be more than 255 bytes".into(), NOT_CHECKED.into()]),
            (spec(json!({"type": "github"})), vec!["spec.type: Unsupported value: \"github\": supported values: \"nango\", \"mielto\", \"arena\", \"datagrid\"".into(), NOT_CHECKED.into()]),
            (json!({"credentialsRef": credentials.clone()}), vec!["spec.type: Required value".into(), NOT_CHECKED.into()]),
            (json!({"type": "nango"}), vec!["spec.credentialsRef: Required value".into(), NOT_CHECKED.into()]),
            (spec(json!({"credentialsRef": without(&credentials, "key")})), vec!["spec.credentialsRef.key: Required value".into(), NOT_CHECKED.into()]),
            (spec(json!({"credentialsRef": with(&credentials, "name", "")})), vec!["spec.credentialsRef.name: Invalid value: \"\": spec.credentialsRef.name in body should be at least 1 chars long".into()]),
            (spec(json!({"credentialsRef": with(&credentials, "key", &"k".repeat(254))})), vec!["spec.credentialsRef.key: Too long: may not be more than 253 bytes".into(), NOT_CHECKED.into()]),
            (spec(json!({"credentialsRef": with(&credentials, "name", &"s".repeat(254))})), vec!["spec.credentialsRef.name: Too long: may not be more than 253 bytes".into(), NOT_CHECKED.into()]),
            (spec(json!({"credentialsRef": with(&credentials, "key", "")})), vec!["spec.credentialsRef.key: Invalid value: \"\": spec.credentialsRef.key in body should be at least 1 chars long".into()]),
            (spec(json!({"insecure": "yes"})), vec!["spec.insecure: Invalid value: \"string\": spec.insecure in body must be of type boolean: \"string\"".into(), NOT_CHECKED.into()]),
            (spec(json!({"type": "mielto", "workspaceId": "w".repeat(256)})), vec!["spec.workspaceId: Too long: may not be more than 255 bytes".into(), NOT_CHECKED.into()]),
            (spec(json!({"type": "datagrid", "teamspaceId": ""})), vec!["spec.teamspaceId: Invalid value: \"\": spec.teamspaceId in body should be at least 1 chars long".into()]),
            (spec(json!({"timeoutSeconds": "30"})), vec!["spec.timeoutSeconds: Invalid value: \"string\": spec.timeoutSeconds in body must be of type integer: \"string\"".into(), NOT_CHECKED.into()]),
            (spec(json!({"timeoutSeconds": 0})), vec!["spec.timeoutSeconds: Invalid value: 0: spec.timeoutSeconds in body should be greater than or equal to 1".into()]),
            (spec(json!({"timeoutSeconds": 301})), vec!["spec.timeoutSeconds: Invalid value: 301: spec.timeoutSeconds in body should be less than or equal to 300".into()]),
            (spec(json!({"rateLimit": {"requestsPerMinute": 0}})), vec!["spec.rateLimit.requestsPerMinute: Invalid value: 0: spec.rateLimit.requestsPerMinute in body should be greater than or equal to 1".into()]),
            (spec(json!({"rateLimit": {"requestsPerMinute": 100001}})), vec!["spec.rateLimit.requestsPerMinute: Invalid value: 100001: spec.rateLimit.requestsPerMinute in body should be less than or equal to 100000".into()]),
            (spec(json!({"rateLimit": {"requestsPerMinute": 1, "burst": 0}})), vec!["spec.rateLimit.burst: Invalid value: 0: spec.rateLimit.burst in body should be greater than or equal to 1".into()]),
            (spec(json!({"rateLimit": {"requestsPerMinute": 1, "burst": 10001}})), vec!["spec.rateLimit.burst: Invalid value: 10001: spec.rateLimit.burst in body should be less than or equal to 10000".into()]),
            (spec(json!({"rateLimit": {"burst": 1}})), vec!["spec.rateLimit.requestsPerMinute: Required value".into(), NOT_CHECKED.into()]),
        ];
        let mut refused = refused;
        if kind == "ClusterProvider" {
            refused.push((
                spec(json!({"credentialsRef": without(&credentials, "namespace")})),
                vec!["spec.credentialsRef.namespace: Required value".into(), NOT_CHECKED.into()],
            ));
            refused.push((
                spec(json!({"credentialsRef": with(&credentials, "namespace", "")})),
                vec!["spec.credentialsRef.namespace: Invalid value: \"\": spec.credentialsRef.namespace in body should be at least 1 chars long".into()],
            ));
            refused.push((
                spec(json!({"credentialsRef": with(&credentials, "namespace", &"x".repeat(64))})),
                vec![
                    "spec.credentialsRef.namespace: Too long: may not be more than 63 bytes".into(),
                    NOT_CHECKED.into(),
                ],
            ));
        }
        for (spec, expected) in refused {
            let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
            assert_refused(&kubectl, "apply", &manifest(kind, &name(), spec), &expected);
        }
        let no_spec = json!({"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name()}}).to_string();
        assert_refused(&kubectl, "apply", &no_spec, &["spec: Required value", NOT_CHECKED]);
        let admitted = [
            spec(json!({})),
            spec(json!({"baseUrl": "https://api.nango.dev"})),
            spec(json!({"baseUrl": "http://127.0.0.1:8090/nango"})),
            spec(json!({"baseUrl": "http://localhost:1/x"})),
            spec(json!({"baseUrl": "http://[::1]:8080"})),
            spec(json!({"baseUrl": "http://nango.internal", "insecure": true})),
            spec(json!({"type": "mielto", "workspaceId": "ws_acme"})),
            spec(json!({"type": "datagrid", "teamspaceId": "ts_acme", "timeoutSeconds": 300,
                        "rateLimit": {"requestsPerMinute": 100000, "burst": 10000}})),
        ];
        for spec in admitted {
            let name = name();
            let _cleanup = (kind == "ClusterProvider")
                .then(|| DeleteOnDrop { kubectl: kubectl.clone(), what: vec!["clusterprovider".into(), name.clone()] });
            assert_admitted(&kubectl, &manifest(kind, &name, spec));
        }
    }
}

/// `self == oldSelf` rules, through both update paths of kubectl: `apply` (a patch) and
/// `replace` (a PUT of the whole object).
fn immutable_fields_refuse_apply_and_replace(cluster: Cluster) {
    let ns = with_crds(&cluster, "crd-immutable");
    let kubectl = ns.kubectl();
    let conn = |spec: Value| manifest("Connection", "c", spec);
    assert_admitted(
        &kubectl,
        &conn(json!({"providerRef": {"name": "p"}, "connectionId": "c1", "datagrid": {"name": "x"}})),
    );
    assert_admitted(
        &kubectl,
        &conn(json!({"providerRef": {"name": "p"}, "connectionId": "c1", "datagrid": {"name": "renamed"}})),
    );
    for verb in ["apply", "replace"] {
        assert_refused(
            &kubectl,
            verb,
            &conn(json!({"providerRef": {"name": "p"}, "connectionId": "c2", "datagrid": {"name": "x"}})),
            &[
                "spec.connectionId: Invalid value: \"c2\": connectionId is immutable; create a new Connection for another upstream connection",
            ],
        );
        assert_refused(
            &kubectl,
            verb,
            &conn(json!({"providerRef": {"name": "q"}, "connectionId": "c1", "datagrid": {"name": "x"}})),
            &[
                "spec.providerRef: Invalid value: providerRef is immutable; create a new Connection to use another provider account",
            ],
        );
        assert_refused(
            &kubectl,
            verb,
            &conn(
                json!({"providerRef": {"name": "p", "kind": "ClusterProvider"}, "connectionId": "c1", "datagrid": {"name": "x"}}),
            ),
            &[
                "spec.providerRef: Invalid value: providerRef is immutable; create a new Connection to use another provider account",
            ],
        );
    }
    let cluster_provider = format!("{}-cp", ns.name());
    let _cleanup =
        DeleteOnDrop { kubectl: cluster.kubectl(), what: vec!["clusterprovider".into(), cluster_provider.clone()] };
    for (kind, name, credentials) in [
        ("Provider", "p".to_string(), json!({"name": "s", "key": "token"})),
        ("ClusterProvider", cluster_provider.clone(), json!({"name": "s", "namespace": ns.name(), "key": "token"})),
    ] {
        let provider = |type_: &str, timeout: u32| {
            manifest(
                kind,
                &name,
                json!({"type": type_, "credentialsRef": credentials.clone(), "timeoutSeconds": timeout}),
            )
        };
        assert_admitted(&kubectl, &provider("nango", 30));
        assert_admitted(&kubectl, &provider("nango", 60));
        for verb in ["apply", "replace"] {
            assert_refused(
                &kubectl,
                verb,
                &provider("arena", 60),
                &["spec.type: Invalid value: \"arena\": type is immutable"],
            );
        }
    }
}

/// The examples, in namespaces of the test's own (and a ClusterProvider name of its own):
/// they apply, the server fills in the defaults, and the printer columns show.
fn examples_apply_with_defaults_and_printer_columns(cluster: Cluster) {
    cluster.install_crds();
    let tenants = cluster.namespace("crd-tenants");
    let platform = cluster.namespace("crd-platform");
    let datagrid = format!("{}-datagrid", tenants.name());
    let _cleanup = DeleteOnDrop { kubectl: cluster.kubectl(), what: vec!["clusterprovider".into(), datagrid.clone()] };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for file in ["secrets.yaml", "shared-settings.yaml", "providers.yaml", "connections.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let mut object = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
            match object["metadata"]["namespace"].as_str() {
                Some("tenants") => object["metadata"]["namespace"] = json!(tenants.name()),
                Some("platform") => object["metadata"]["namespace"] = json!(platform.name()),
                _ => {}
            }
            if object["kind"] == "ClusterProvider" {
                object["metadata"]["name"] = json!(datagrid);
                object["spec"]["credentialsRef"]["namespace"] = json!(platform.name());
            }
            if object["spec"]["providerRef"]["kind"] == "ClusterProvider" {
                object["spec"]["providerRef"]["name"] = json!(datagrid);
            }
            docs.push(object.to_string());
        }
        assert_admitted(&cluster.kubectl(), &docs.join("\n---\n"));
    }
    let kubectl = tenants.kubectl();

    let table = kubectl.ok(&["get", "conn"]);
    let header: Vec<&str> =
        table.lines().next().unwrap().split("  ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(header, ["NAME", "PROVIDER", "CONNECTION", "READY", "REASON", "LAST SYNC", "AGE"], "{table}");
    let row = table.lines().find(|l| l.starts_with("acme-salesforce ")).unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..3], ["acme-salesforce", "nango", "acme-salesforce-1"], "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");
    let providers = kubectl.ok(&["get", "providers"]);
    let header: Vec<&str> = providers.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "READY", "REASON", "AGE"], "{providers}");
    assert!(providers.lines().any(|l| l.split_whitespace().take(2).eq(["arena", "arena"])), "{providers}");
    let wide = cluster.kubectl().ok(&["get", "clusterprovider", &datagrid]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "READY", "REASON", "AGE"], "{wide}");

    // Defaults are applied by the server.
    let get = |args: &[&str]| -> Value { serde_json::from_str(&kubectl.ok(args)).unwrap() };
    let drive = get(&["get", "conn", "acme-drive", "-o", "json"]);
    assert_eq!(drive["spec"]["managementPolicy"], "Manage");
    assert_eq!(drive["spec"]["deletionPolicy"], "Orphan");
    assert_eq!(drive["spec"]["providerRef"]["kind"], "ClusterProvider");
    let salesforce = get(&["get", "conn", "acme-salesforce", "-o", "json"]);
    assert_eq!(salesforce["spec"]["providerRef"]["kind"], "Provider");
    assert_eq!(salesforce["spec"]["suspend"], false);
    let mielto = get(&["get", "provider", "mielto", "-o", "json"]);
    assert_eq!(mielto["spec"]["timeoutSeconds"], 30);
    assert_eq!(mielto["spec"]["insecure"], false);
    let arena = get(&["get", "provider", "arena", "-o", "json"]);
    assert_eq!(arena["spec"]["rateLimit"], json!({"requestsPerMinute": 120, "burst": 5}));
    assert_admitted(
        &kubectl,
        &manifest(
            "Provider",
            "paced",
            json!({"type": "arena", "credentialsRef": {"name": "s", "key": "k"}, "rateLimit": {"requestsPerMinute": 5}}),
        ),
    );
    assert_eq!(get(&["get", "provider", "paced", "-o", "json"])["spec"]["rateLimit"]["burst"], 10);
    assert_admitted(
        &kubectl,
        &manifest(
            "Connection",
            "empty-arena",
            json!({"providerRef": {"name": "arena"}, "connectionId": "7", "arena": {}}),
        ),
    );
    assert_eq!(get(&["get", "conn", "empty-arena", "-o", "json"])["spec"]["arena"], json!({"metadata": {}}));

    // The category lists every kind.
    let names = kubectl.ok(&["get", "connection-operator", "-o", "name"]);
    assert!(names.contains(&format!("clusterprovider.connection-operator.dev/{datagrid}")), "{names}");
    assert!(names.contains("connection.connection-operator.dev/acme-drive"), "{names}");
    assert!(names.contains("provider.connection-operator.dev/nango"), "{names}");
}

fn kubectl_explain_shows_the_field_docs(cluster: Cluster) {
    cluster.install_crds();
    let kubectl = cluster.kubectl();
    let arena = kubectl.ok(&["explain", "connection.spec.arena.metadata"]);
    for words in ["^[A-Za-z0-9_]{1,40}$", "InvalidSpec", "admission policy", "2000 characters"] {
        assert!(arena.contains(words), "{words:?} missing from:\n{arena}");
    }
    let policy = kubectl.ok(&["explain", "connection.spec.managementPolicy"]);
    assert!(policy.contains("Observe"), "{policy}");
    let base_url = kubectl.ok(&["explain", "clusterprovider.spec.baseUrl"]);
    assert!(base_url.contains("loopback"), "{base_url}");
    // Shared settings and the Mielto API key scheme.
    let from = kubectl.ok(&["explain", "connection.spec.nango.metadataFrom"]);
    for words in ["envFrom", "inline wins", "ReferenceNotFound", "configMapRef", "secretRef"] {
        assert!(from.contains(words), "{words:?} missing from:\n{from}");
    }
    let config_from = kubectl.ok(&["explain", "connection.spec.mielto.configFrom.secretRef"]);
    assert!(config_from.contains("never shown") && config_from.contains("optional"), "{config_from}");
    let auth = kubectl.ok(&["explain", "provider.spec.auth"]);
    assert!(auth.contains("X-API-Key") && auth.contains("ApiKey"), "{auth}");
    let secret_keys = kubectl.ok(&["explain", "connection.status.secretKeys"]);
    assert!(secret_keys.contains("names only"), "{secret_keys}");
}

/// The status write path of the controller: server-side apply of the status subresource with
/// field manager `connection-operator`. Conditions are a list-map keyed by `type`, so another
/// manager's condition survives, and an unchanged apply is a no-op (no new resourceVersion,
/// hence no self-triggered reconcile).
fn status_conditions_merge_per_type_under_server_side_apply(cluster: Cluster) {
    use connection_operator::api::{Connection, ConnectionStatus, conditions};
    use kube::api::{Api, Patch, PatchParams};

    let ns = with_crds(&cluster, "crd-status");
    ns.kubectl().apply(&manifest(
        "Connection",
        "c",
        json!({"providerRef": {"name": "p"}, "connectionId": "c1", "datagrid": {"name": "x"}}),
    ));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let api: Api<Connection> = Api::namespaced(cluster.client().await, ns.name());

        let now = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let mut status =
            ConnectionStatus { observed_generation: Some(1), managed_keys: vec!["name".into()], ..Default::default() };
        status.conditions = vec![conditions::condition(&[], conditions::READY, true, "InSync", "", Some(1), now)];
        let ours = json!({"apiVersion": API_VERSION, "kind": "Connection", "status": status});
        let params = PatchParams::apply("connection-operator").force();
        let first = api.patch_status("c", &params, &Patch::Apply(&ours)).await.expect("status apply");

        let theirs = json!({"apiVersion": API_VERSION, "kind": "Connection", "status": {"conditions": [
            {"type": "Audited", "status": "True", "reason": "Checked", "message": "", "lastTransitionTime": "2023-11-14T22:13:20Z"}
        ]}});
        api.patch_status("c", &PatchParams::apply("auditor"), &Patch::Apply(&theirs)).await.expect("other manager");

        let status = api.get_status("c").await.unwrap().status.unwrap();
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types.len(), 2, "{types:?}");
        assert!(types.contains(&"Ready") && types.contains(&"Audited"), "{types:?}");
        assert_eq!(status.managed_keys, ["name"]);
        assert_eq!(conditions::find(&status.conditions, conditions::READY).unwrap().reason, "InSync");

        // The same apply again changes nothing.
        let before = api.get_status("c").await.unwrap().metadata.resource_version;
        api.patch_status("c", &params, &Patch::Apply(&ours)).await.unwrap();
        let after = api.get_status("c").await.unwrap().metadata.resource_version;
        assert_eq!(before, after, "an unchanged status apply must not write");
        assert_ne!(first.metadata.resource_version, None);
    });
}

/// Exactly what a user runs, `kubectl apply -f crds/` (client-side apply) from the
/// repository root, on a cluster without the CRDs: accepted, no warning; again: unchanged.
fn kubectl_apply_of_crds_dir(cluster: Cluster) {
    assert!(Path::new("crds").is_dir(), "tests run from the repository root");
    let kubectl = cluster.kubectl();
    for expected in ["created", "unchanged"] {
        let out = kubectl.run(&["apply", "-f", "crds/"], None);
        assert!(out.ok, "kubectl apply -f crds/ failed:\n{}", out.stderr);
        assert!(!out.stderr.contains("Warning"), "kubectl apply -f crds/ warned:\n{}", out.stderr);
        assert_eq!(out.stderr, "", "kubectl apply -f crds/ printed on stderr");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines,
            ["connections", "providers", "clusterproviders"].map(|p| format!(
                "customresourcedefinition.apiextensions.k8s.io/{p}.connection-operator.dev {expected}"
            )),
            "{}",
            out.stdout
        );
    }
    kubectl.ok(&["wait", "--for=condition=Established", "--timeout=120s", "crd", "--all"]);
}

/// On a dedicated control plane: the shared one already holds the CRDs, installed by
/// server-side apply, and kubectl's client-side apply would then warn about the missing
/// `last-applied-configuration` annotation, which is not what a user sees.
#[test]
fn real_kubectl_apply_of_the_crds_dir_on_a_fresh_cluster() {
    kubectl_apply_of_crds_dir(Cluster::real_dedicated());
}

#[test]
fn emulator_kubectl_apply_of_the_crds_dir_on_a_fresh_cluster() {
    kubectl_apply_of_crds_dir(Cluster::emulator());
}
