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
                "providers" => {
                    drop(serde_json::from_value::<connection_operator::api::Provider>(object.clone()).unwrap())
                }
                _ => drop(serde_json::from_value::<connection_operator::api::ClusterProvider>(object.clone()).unwrap()),
            }
            *seen.entry(kind).or_default() += 1;
        }
    }
    assert_eq!(seen.get("Connection"), Some(&4), "one Connection per provider: {seen:?}");
    assert_eq!(seen.get("Secret"), Some(&4));
    assert_eq!(seen.get("Provider").copied().unwrap_or(0) + seen.get("ClusterProvider").copied().unwrap_or(0), 4);
}

// ---- the CRDs in the Kubernetes API emulator, driven by the real kubectl ----------------

struct Cluster {
    _sandbox: connection_sandbox::kube::KubeSandbox,
    _dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let sandbox = connection_sandbox::kube::KubeSandbox::start("127.0.0.1:0".parse().unwrap(), &kubeconfig)
            .expect("start the kube emulator");
        Cluster { _sandbox: sandbox, _dir: dir, kubeconfig }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write as _;
        let mut child = Command::new("/usr/bin/kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(pipe);
        let out = child.wait_with_output().unwrap();
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(out.ok, "kubectl {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Apply a manifest that must be refused; returns kubectl's error text.
    fn refused(&self, manifest: &str) -> String {
        self.refused_by("apply", manifest)
    }

    /// `kubectl <verb> -f -` of a manifest that must be refused.
    fn refused_by(&self, verb: &str, manifest: &str) -> String {
        let out = self.kubectl(&[verb, "-f", "-"], Some(manifest));
        assert!(!out.ok, "accepted: {manifest}\n{}", out.stdout);
        out.stderr
    }

    /// Install the CRDs and wait (polling, generous bound) until they are served.
    fn with_crds() -> Self {
        let cluster = Cluster::start();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        cluster.ok(&["apply", "-f", root.join(CRD_FILE).to_str().unwrap()], None);
        for _ in 0..200 {
            if ["connections", "providers", "clusterproviders"]
                .iter()
                .all(|r| cluster.kubectl(&["get", r, "-A"], None).ok)
            {
                return cluster;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the CRDs were never served");
    }
}

#[test]
fn kubectl_applies_the_crds_and_the_examples() {
    let cluster = Cluster::with_crds();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    cluster.ok(&["create", "namespace", "tenants"], None);
    cluster.ok(&["create", "namespace", "platform"], None);
    for file in ["secrets.yaml", "providers.yaml", "connections.yaml"] {
        cluster.ok(&["apply", "-f", root.join(file).to_str().unwrap()], None);
    }
    let table = cluster.ok(&["get", "conn", "-n", "tenants"], None);
    let header: Vec<&str> =
        table.lines().next().unwrap().split("  ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(header, ["NAME", "PROVIDER", "CONNECTION", "READY", "REASON", "LAST SYNC", "AGE"], "{table}");
    assert!(table.contains("acme-salesforce") && table.contains("acme-salesforce-1"), "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");
    // Defaults are applied by the server.
    let json: Value =
        serde_json::from_str(&cluster.ok(&["get", "conn", "acme-drive", "-n", "tenants", "-o", "json"], None)).unwrap();
    assert_eq!(json["spec"]["managementPolicy"], "Manage");
    assert_eq!(json["spec"]["deletionPolicy"], "Orphan");
    assert_eq!(json["spec"]["providerRef"]["kind"], "ClusterProvider");
    let names = cluster.ok(&["get", "connection-operator", "-A", "-o", "name"], None);
    assert!(names.contains("clusterprovider.connection-operator.dev/datagrid"), "{names}");
    assert!(names.contains("connection.connection-operator.dev/acme-drive"), "{names}");
}

#[test]
fn kubectl_apply_rejects_invalid_connections_with_clear_messages() {
    let cluster = Cluster::with_crds();
    cluster.ok(&["create", "namespace", "t"], None);
    let conn = |spec: &str| {
        format!(
            "apiVersion: connection-operator.dev/v1alpha1\nkind: Connection\nmetadata: {{name: c, namespace: t}}\nspec: {spec}\n"
        )
    };

    let two = cluster
        .refused(&conn("{providerRef: {name: p}, connectionId: '1', datagrid: {name: x}, arena: {metadata: {}}}"));
    assert!(two.contains("exactly one provider block"), "{two}");
    let key = cluster.refused(&conn("{providerRef: {name: p}, connectionId: '1', arena: {metadata: {bad-key: 1}}}"));
    assert!(key.contains("Are.na metadata keys must match"), "{key}");
    let nested = cluster.refused(&conn("{providerRef: {name: p}, connectionId: '1', arena: {metadata: {k: {a: 1}}}}"));
    assert!(nested.contains("spec.arena.metadata.k"), "{nested}");
    let id = cluster.refused(&conn("{providerRef: {name: p}, connectionId: abc, arena: {metadata: {}}}"));
    assert!(id.contains("decimal integer"), "{id}");
    let status = cluster.refused(&conn("{providerRef: {name: p}, connectionId: c, mielto: {status: paused}}"));
    assert!(status.contains("spec.mielto.status"), "{status}");
    let drift =
        cluster.refused(&conn("{providerRef: {name: p}, connectionId: c, datagrid: {name: x}, driftInterval: 5s}"));
    assert!(drift.contains("driftInterval must be at least 30s"), "{drift}");

    // Immutable fields, checked on update: `kubectl apply` (a merge patch for custom
    // resources) and `kubectl replace` (a PUT of the whole object) both hit the rules.
    cluster.ok(&["apply", "-f", "-"], Some(&conn("{providerRef: {name: p}, connectionId: c1, datagrid: {name: x}}")));
    cluster.ok(
        &["apply", "-f", "-"],
        Some(&conn("{providerRef: {name: p}, connectionId: c1, datagrid: {name: renamed}}")),
    );
    for verb in ["apply", "replace"] {
        let moved = cluster.refused_by(verb, &conn("{providerRef: {name: p}, connectionId: c2, datagrid: {name: x}}"));
        assert!(moved.contains("connectionId is immutable"), "{verb}: {moved}");
        let other = cluster.refused_by(verb, &conn("{providerRef: {name: q}, connectionId: c1, datagrid: {name: x}}"));
        assert!(other.contains("providerRef is immutable"), "{verb}: {other}");
    }

    let provider = |spec: &str| {
        format!(
            "apiVersion: connection-operator.dev/v1alpha1\nkind: Provider\nmetadata: {{name: p, namespace: t}}\nspec: {spec}\n"
        )
    };
    let http = cluster
        .refused(&provider("{type: nango, baseUrl: 'http://nango.example', credentialsRef: {name: s, key: token}}"));
    assert!(http.contains("baseUrl must use https://"), "{http}");
    cluster.ok(
        &["apply", "-f", "-"],
        Some(&provider("{type: nango, baseUrl: 'http://127.0.0.1:8090/nango', credentialsRef: {name: s, key: token}}")),
    );
    let retyped = cluster.refused(&provider("{type: arena, credentialsRef: {name: s, key: token}}"));
    assert!(retyped.contains("type is immutable"), "{retyped}");
}

#[test]
fn kubectl_explain_shows_the_field_docs() {
    let cluster = Cluster::with_crds();
    let out = cluster.kubectl(&["explain", "connection.spec.arena"], None);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("Are.na connection metadata"), "{}", out.stdout);
    let out = cluster.ok(&["explain", "connection.spec.managementPolicy"], None);
    assert!(out.contains("Observe"), "{out}");
}

/// The status write path the controller will use: server-side apply of the status
/// subresource with field manager `connection-operator`, through kube-rs. Conditions are a
/// list-map keyed by `type`, so another manager's condition survives, and an unchanged apply
/// is a no-op (no new resourceVersion, hence no self-triggered reconcile).
#[test]
fn status_conditions_merge_per_type_under_server_side_apply() {
    use connection_operator::api::{Connection, ConnectionStatus, conditions};
    use kube::api::{Api, Patch, PatchParams};

    let cluster = Cluster::with_crds();
    cluster.ok(&["create", "namespace", "t"], None);
    cluster.ok(
        &["apply", "-f", "-"],
        Some("apiVersion: connection-operator.dev/v1alpha1\nkind: Connection\nmetadata: {name: c, namespace: t}\nspec: {providerRef: {name: p}, connectionId: c1, datagrid: {name: x}}\n"),
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<Connection> = Api::namespaced(client, "t");

        let now = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let mut status = ConnectionStatus { observed_generation: Some(1), managed_keys: vec!["name".into()], ..Default::default() };
        conditions::set_condition(&mut status.conditions, conditions::READY, true, conditions::Reason::InSync, "", Some(1), now);
        let ours = json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection", "status": status});
        let params = PatchParams::apply("connection-operator").force();
        let first = api.patch_status("c", &params, &Patch::Apply(&ours)).await.expect("status apply");

        let theirs = json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection", "status": {"conditions": [
            {"type": "Audited", "status": "True", "reason": "Checked", "message": "", "lastTransitionTime": "2023-11-14T22:13:20Z"}
        ]}});
        api.patch_status("c", &PatchParams::apply("auditor"), &Patch::Apply(&theirs)).await.expect("other manager");

        let got = api.get_status("c").await.unwrap();
        let status = got.status.unwrap();
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
