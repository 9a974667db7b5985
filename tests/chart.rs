//! The Helm chart (`charts/connection-operator`), the emulator's RBAC enforcement it is proved
//! against, and the Argo CD health check (`docs/argocd-health.lua`).
//!
//! - The real Helm library (helm-sdkpy in `.tools/venv`, driven by `tests/helm/chart_drive.py`)
//!   lints the chart and installs, upgrades and uninstalls it into the Kubernetes emulator;
//!   the real kubectl reads the objects back.
//! - values.schema.json (and the template guard) reject bad values.
//! - With RBAC enforced, a token of the chart's ServiceAccount makes every Kubernetes call the
//!   operator makes (through kube-rs, kube-runtime's event Recorder and kube-lease-manager, the
//!   libraries the operator uses) without a 403; removing any single verb of any rule makes
//!   one of those calls fail with 403.
//! - The Lua health check runs in a Lua 5.1 interpreter (Argo CD uses gopher-lua, Lua 5.1)
//!   against sample statuses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use connection_sandbox::kube::KubeSandbox;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Config};
use serde_json::{Value, json};

const KUBECTL: &str = "/usr/bin/kubectl";
const RELEASE: &str = "co";
const RELEASE_NS: &str = "connection-operator";
const FULLNAME: &str = "co-connection-operator";
/// Where the examples' Providers, Secrets and Connections live.
const TENANTS: &str = "tenants";
/// Where the ClusterProvider's Secret lives (examples/providers.yaml).
const PLATFORM: &str = "platform";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    root().join("charts/connection-operator")
}

/// The test tools installed by `scripts/bootstrap` (`.tools/` at the workspace root, or
/// `$CONNECTION_OPERATOR_TOOLS`).
fn tools_dir() -> PathBuf {
    let dir = std::env::var_os("CONNECTION_OPERATOR_TOOLS").map(PathBuf::from).unwrap_or_else(|| root().join(".tools"));
    assert!(dir.is_dir(), "test tools not found at {}: run scripts/bootstrap first", dir.display());
    dir
}

/// One emulator with its admin kubeconfig and a scratch directory (Helm's HOME).
struct Cluster {
    sandbox: KubeSandbox,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sandbox = KubeSandbox::start(addr, &dir.path().join("kubeconfig")).expect("start the Kubernetes emulator");
        Self { sandbox, dir }
    }

    fn kubeconfig(&self) -> &Path {
        self.sandbox.kubeconfig()
    }

    /// Run kubectl as the admin.
    fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let Some(text) = stdin {
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write kubectl stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("kubectl output")
    }

    #[track_caller]
    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[track_caller]
    fn get_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&full)).expect("kubectl printed JSON")
    }

    /// `kubectl get` of a single object that must not exist.
    #[track_caller]
    fn assert_absent(&self, args: &[&str]) {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        let out = self.kubectl(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("NotFound"), "{args:?} should be absent: {stderr}");
    }

    /// One Helm action through the driver; Ok(result JSON) or Err(Helm's error).
    fn helm(&self, action: &str, values: Option<Value>) -> Result<Value, String> {
        let mut cmd = Command::new(tools_dir().join("venv/bin/python"));
        cmd.arg(root().join("tests/helm/chart_drive.py")).arg(self.kubeconfig()).args([RELEASE_NS, action, RELEASE]);
        if action != "uninstall" {
            cmd.arg(chart_dir());
            if let Some(v) = values {
                cmd.arg(v.to_string());
            }
        }
        // Helm keeps caches and config under HOME: keep them out of the real one.
        cmd.env("HOME", self.dir.path()).env_remove("KUBECONFIG");
        let out = cmd.output().expect("run the Helm driver");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            Ok(serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("helm {action} printed no JSON ({e}): {stdout}")))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    #[track_caller]
    fn helm_ok(&self, action: &str, values: Option<Value>) -> Value {
        self.helm(action, values).unwrap_or_else(|e| panic!("helm {action} failed: {e}"))
    }

    fn namespace(&self, ns: &str) {
        self.kubectl_ok(&["create", "namespace", ns]);
    }
}

// ---------------------------------------------------------------------------------------
// Lint, CRDs, install / upgrade / uninstall, hardening, schema.

#[test]
fn chart_lints_without_errors() {
    let out = Command::new(tools_dir().join("venv/bin/python"))
        .arg(root().join("tests/helm/chart_drive.py"))
        .args(["lint"])
        .arg(chart_dir())
        .env("HOME", tempfile::tempdir().expect("tempdir").path())
        .output()
        .expect("run the Helm driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "helm lint reported errors: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_str(stdout.trim()).expect("lint JSON");
    assert_eq!(result["TotalChartsLinted"], 1, "{result}");
    assert!(result["Errors"].is_null(), "{result}");
}

#[test]
fn chart_crds_are_the_top_level_crds() {
    let top = std::fs::read_dir(root().join("crds")).expect("crds/").map(|e| e.expect("entry").file_name()).collect::<Vec<_>>();
    let chart = std::fs::read_dir(chart_dir().join("crds")).expect("chart crds/").map(|e| e.expect("entry").file_name()).collect::<Vec<_>>();
    let (mut top, mut chart) = (top, chart);
    top.sort();
    chart.sort();
    assert_eq!(top, chart, "the chart's crds/ must hold the same files as crds/");
    for name in top {
        let a = std::fs::read(root().join("crds").join(&name)).expect("read");
        let b = std::fs::read(chart_dir().join("crds").join(&name)).expect("read");
        assert!(a == b, "charts/connection-operator/crds/{} differs from crds/: copy it over", name.to_string_lossy());
    }
}

/// The container and pod hardening the chart promises, read back from the server.
#[track_caller]
fn assert_hardened(deploy: &Value) {
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{pod}");
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{pod}");
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{sc}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
    assert_eq!(sc["privileged"], false, "{sc}");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{sc}");
    assert!(sc["capabilities"]["add"].is_null(), "{sc}");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{sc}");
    assert_eq!(c["ports"], json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{c}");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{c}");
    }
    assert!(c["resources"]["requests"]["cpu"].is_string() && c["resources"]["limits"]["memory"].is_string(), "{c}");
}

fn args_of(deploy: &Value) -> Vec<String> {
    deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every rule of the chart's RBAC objects: no wildcards, Secrets read-only.
#[track_caller]
fn assert_least_privilege(role: &Value) {
    for rule in role["rules"].as_array().expect("rules") {
        for field in ["apiGroups", "resources", "verbs"] {
            let items = rule[field].as_array().expect(field);
            assert!(!items.is_empty() && items.iter().all(|v| v != "*" && !v.as_str().unwrap_or("*").contains('*')), "wildcard in {rule}");
        }
        if rule["resources"].as_array().unwrap().iter().any(|r| r == "secrets") {
            let verbs = rule["verbs"].as_array().unwrap();
            assert!(verbs.iter().all(|v| ["get", "list", "watch"].contains(&v.as_str().unwrap_or_default())), "Secrets must be read-only: {rule}");
        }
    }
}

#[test]
fn chart_installs_upgrades_and_uninstalls_with_hardened_objects() {
    let cluster = Cluster::start();
    cluster.namespace(RELEASE_NS);

    let installed = cluster.helm_ok("install", None);
    assert_eq!(installed["version"], 1, "{installed}");
    assert_eq!(installed["info"]["status"], "deployed", "{installed}");
    assert!(installed["info"]["notes"].as_str().unwrap_or_default().contains("Watching: all namespaces"), "{installed}");

    // The standard labels on every object.
    for args in [
        vec!["deployment", FULLNAME, "-n", RELEASE_NS],
        vec!["serviceaccount", FULLNAME, "-n", RELEASE_NS],
        vec!["service", &format!("{FULLNAME}-metrics"), "-n", RELEASE_NS],
        vec!["poddisruptionbudget", FULLNAME, "-n", RELEASE_NS],
        vec!["clusterrole", FULLNAME],
        vec!["clusterrolebinding", FULLNAME],
    ] {
        let obj = cluster.get_json(&args);
        let labels = &obj["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "connection-operator", "{args:?}: {labels}");
        assert_eq!(labels["app.kubernetes.io/instance"], RELEASE, "{args:?}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{args:?}");
        assert_eq!(labels["app.kubernetes.io/version"], "0.1.0", "{args:?}");
        assert_eq!(labels["app.kubernetes.io/part-of"], "connection-operator", "{args:?}");
    }

    let deploy = cluster.get_json(&["deployment", FULLNAME, "-n", RELEASE_NS]);
    assert_hardened(&deploy);
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(args_of(&deploy), ["run", "--metrics-addr=0.0.0.0:8080", "--concurrency=16", "--log-format=json"]);
    let svc = cluster.get_json(&["service", &format!("{FULLNAME}-metrics"), "-n", RELEASE_NS]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(svc["spec"]["selector"], deploy["spec"]["selector"]["matchLabels"]);
    let pdb = cluster.get_json(&["poddisruptionbudget", FULLNAME, "-n", RELEASE_NS]);
    assert_eq!(pdb["spec"]["selector"], deploy["spec"]["selector"]);
    let role = cluster.get_json(&["clusterrole", FULLNAME]);
    assert_least_privilege(&role);
    let binding = cluster.get_json(&["clusterrolebinding", FULLNAME]);
    assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NS}]));
    // No Lease RBAC without leader election; no ServiceMonitor unless asked for.
    cluster.assert_absent(&["role", &format!("{FULLNAME}-leader-election"), "-n", RELEASE_NS]);
    for crd in ["connections", "providers", "clusterproviders"] {
        cluster.get_json(&["crd", &format!("{crd}.connection-operator.dev")]);
    }

    // Upgrade: two replicas with leader election, text logs, lower concurrency.
    let values = json!({"replicas": 2, "leaderElection": {"enabled": true}, "operator": {"concurrency": 4, "logFormat": "text"}});
    let upgraded = cluster.helm_ok("upgrade", Some(values));
    assert_eq!(upgraded["version"], 2, "{upgraded}");
    let deploy = cluster.get_json(&["deployment", FULLNAME, "-n", RELEASE_NS]);
    assert_hardened(&deploy);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(args_of(&deploy), ["run", "--metrics-addr=0.0.0.0:8080", "--concurrency=4", "--log-format=text", "--leader-election"]);
    let lease_role = cluster.get_json(&["role", &format!("{FULLNAME}-leader-election"), "-n", RELEASE_NS]);
    assert_eq!(lease_role["rules"], json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]}]));
    cluster.get_json(&["rolebinding", &format!("{FULLNAME}-leader-election"), "-n", RELEASE_NS]);

    // Back to one replica without leader election: the Lease RBAC goes away. (Explicit
    // values: an upgrade with none reuses the release's.)
    cluster.helm_ok("upgrade", Some(json!({"replicas": 1, "leaderElection": {"enabled": false}})));
    cluster.assert_absent(&["role", &format!("{FULLNAME}-leader-election"), "-n", RELEASE_NS]);

    cluster.helm_ok("uninstall", None);
    cluster.assert_absent(&["deployment", FULLNAME, "-n", RELEASE_NS]);
    cluster.assert_absent(&["serviceaccount", FULLNAME, "-n", RELEASE_NS]);
    cluster.assert_absent(&["service", &format!("{FULLNAME}-metrics"), "-n", RELEASE_NS]);
    cluster.assert_absent(&["poddisruptionbudget", FULLNAME, "-n", RELEASE_NS]);
    cluster.assert_absent(&["clusterrole", FULLNAME]);
    cluster.assert_absent(&["clusterrolebinding", FULLNAME]);
    // Helm never deletes what it installed from crds/ (it would delete every Connection).
    cluster.get_json(&["crd", "connections.connection-operator.dev"]);
}

#[test]
fn watching_one_namespace_grants_roles_there_and_clusterproviders_only_cluster_wide() {
    let cluster = Cluster::start();
    for ns in [RELEASE_NS, TENANTS, PLATFORM] {
        cluster.namespace(ns);
    }
    let values = json!({"operator": {"watchNamespaces": [TENANTS]}, "rbac": {"secretNamespaces": [PLATFORM]}});
    let installed = cluster.helm_ok("install", Some(values));
    assert!(installed["info"]["notes"].as_str().unwrap_or_default().contains("Watching: namespace tenants"), "{installed}");
    let deploy = cluster.get_json(&["deployment", FULLNAME, "-n", RELEASE_NS]);
    assert!(args_of(&deploy).contains(&format!("--namespace={TENANTS}")), "{deploy}");
    cluster.assert_absent(&["clusterrole", FULLNAME]);
    let cluster_role = cluster.get_json(&["clusterrole", &format!("{FULLNAME}-clusterproviders")]);
    let resources: Vec<&Value> = cluster_role["rules"].as_array().unwrap().iter().flat_map(|r| r["resources"].as_array().unwrap()).collect();
    assert_eq!(resources, [&json!("clusterproviders"), &json!("clusterproviders/status")]);
    let role = cluster.get_json(&["role", FULLNAME, "-n", TENANTS]);
    assert_least_privilege(&role);
    assert_eq!(cluster.get_json(&["rolebinding", FULLNAME, "-n", TENANTS])["roleRef"]["name"], FULLNAME);
    let secrets = cluster.get_json(&["role", &format!("{FULLNAME}-secrets"), "-n", PLATFORM]);
    assert_eq!(secrets["rules"], json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]));
    cluster.assert_absent(&["role", FULLNAME, "-n", PLATFORM]);
}

#[test]
fn values_schema_rejects_bad_values() {
    let cluster = Cluster::start();
    cluster.namespace(RELEASE_NS);
    for (values, expected) in [
        (json!({"replicas": 2}), "at '/leaderElection/enabled': value must be true"),
        (json!({"operator": {"logFormat": "xml"}}), "at '/operator/logFormat': value must be one of 'json', 'text'"),
        (json!({"operator": {"concurrency": 0}}), "/operator/concurrency"),
        (json!({"operator": {"watchNamespaces": ["a", "b"]}}), "/operator/watchNamespaces"),
        (json!({"operator": {"watchNamespaces": ["Not_A_Namespace"]}}), "/operator/watchNamespaces/0"),
        (json!({"replica": 1}), "additional properties 'replica' not allowed"),
        (json!({"leaderElection": {"enabled": "yes"}}), "/leaderElection/enabled"),
    ] {
        let err = cluster.helm("install", Some(values.clone())).expect_err(&format!("{values} must be rejected"));
        assert!(err.contains("values don't meet the specifications of the schema"), "{values}: {err}");
        assert!(err.contains(expected), "{values}: expected {expected:?} in {err}");
    }
    // Nothing was installed by the rejected attempts.
    cluster.assert_absent(&["deployment", FULLNAME, "-n", RELEASE_NS]);
    let secrets = cluster.get_json(&["secrets", "-n", RELEASE_NS, "-l", "owner=helm"]);
    assert_eq!(secrets["items"], json!([]), "{secrets}");
    // The good values install.
    cluster.helm_ok("install", Some(json!({"replicas": 2, "leaderElection": {"enabled": true}})));
}

// ---------------------------------------------------------------------------------------
// RBAC enforcement in the emulator, over HTTP.

async fn admin(cluster: &Cluster, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{}/_sandbox/{path}", cluster.sandbox.url()))
        .json(&body)
        .send()
        .await
        .expect("admin request");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("admin JSON"))
}

/// Turn enforcement on and mint a token (and kubeconfig) for `ns/name`.
async fn enforce_and_mint(cluster: &Cluster, ns: &str, name: &str) -> (String, String) {
    let (code, body) = admin(cluster, reqwest::Method::PUT, "rbac", json!({"enforce": true})).await;
    assert_eq!((code, &body), (200, &json!({"enforce": true})));
    let (code, body) = admin(cluster, reqwest::Method::POST, "tokens", json!({"serviceAccount": format!("{ns}/{name}")})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["user"], format!("system:serviceaccount:{ns}:{name}"));
    (body["token"].as_str().expect("token").to_string(), body["kubeconfig"].as_str().expect("kubeconfig").to_string())
}

async fn get_with(cluster: &Cluster, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{}{path}", cluster.sandbox.url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_enforcement_authorizes_service_account_tokens_like_kube_apiserver() {
    let cluster = Cluster::start();
    cluster.kubectl_ok(&["apply", "-f", root().join("crds/connection-operator.dev.yaml").to_str().unwrap()]);
    cluster.namespace("ops");
    cluster.namespace("t");
    let conns = "/apis/connection-operator.dev/v1alpha1/connections";

    // Off by default: any token, or none, is served.
    assert_eq!(get_with(&cluster, None, conns).await.0, 200);
    let (token, kubeconfig) = enforce_and_mint(&cluster, "ops", "op").await;
    assert_eq!(get_with(&cluster, None, conns).await.0, 200, "no credentials: the insecure port's full access");
    let (code, status) = admin(&cluster, reqwest::Method::POST, "tokens", json!({"serviceAccount": "op"})).await;
    assert_eq!(code, 400, "{status}");

    // Authentication: an unknown token, or a token whose ServiceAccount does not exist (yet),
    // is 401. No token at all is the insecure port's full access (kubectl and Helm send none
    // over plain HTTP).
    let unauthorized = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
    assert_eq!(get_with(&cluster, None, conns).await.0, 200);
    assert_eq!(get_with(&cluster, Some("sandbox-not-a-token"), conns).await, (401, unauthorized.clone()));
    assert_eq!(get_with(&cluster, Some(&token), conns).await, (401, unauthorized));
    cluster.kubectl_ok(&["create", "serviceaccount", "op", "-n", "ops"]);

    // Authenticated, no binding: 403 worded as kube-apiserver words it.
    let (code, status) = get_with(&cluster, Some(&token), conns).await;
    assert_eq!(code, 403);
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "connections.connection-operator.dev is forbidden: User \"system:serviceaccount:ops:op\" cannot list resource \"connections\" in API group \"connection-operator.dev\" at the cluster scope",
               "reason": "Forbidden", "details": {"group": "connection-operator.dev", "kind": "connections"}, "code": 403})
    );
    // The admin token is always allowed.
    assert_eq!(get_with(&cluster, Some(cluster.sandbox.token()), conns).await.0, 200);

    // A Role in "t" lets the SA list and patch Connections there, nothing else.
    let role = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: conn-reader, namespace: t}
rules:
- {apiGroups: [connection-operator.dev], resources: [connections], verbs: [list, get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: conn-reader, namespace: t}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: conn-reader}
subjects: [{kind: ServiceAccount, name: op, namespace: ops}]
"#;
    let out = cluster.kubectl_stdin(&["apply", "-f", "-"], Some(role));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get_with(&cluster, Some(&token), "/apis/connection-operator.dev/v1alpha1/namespaces/t/connections").await.0, 200);
    assert_eq!(get_with(&cluster, Some(&token), conns).await.0, 403, "a Role grants nothing at the cluster scope");
    let (code, status) = get_with(&cluster, Some(&token), "/apis/connection-operator.dev/v1alpha1/namespaces/ops/connections").await;
    assert_eq!(code, 403);
    assert!(status["message"].as_str().unwrap().ends_with("in the namespace \"ops\""), "{status}");
    let (code, status) = get_with(&cluster, Some(&token), "/api/v1/namespaces/t/secrets/x").await;
    assert_eq!(code, 403);
    assert_eq!(
        status["message"],
        "secrets \"x\" is forbidden: User \"system:serviceaccount:ops:op\" cannot get resource \"secrets\" in API group \"\" in the namespace \"t\""
    );
    assert_eq!(status["details"], json!({"name": "x", "kind": "secrets"}));

    // The minted kubeconfig works for kube-rs clients (which send the token over HTTP).
    let kc = Kubeconfig::from_yaml(&kubeconfig).expect("minted kubeconfig parses");
    let client = Client::try_from(Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config")).expect("client");
    let ar = api_resource("Connection", "connections");
    Api::<DynamicObject>::namespaced_with(client.clone(), "t", &ar).list(&ListParams::default()).await.expect("allowed in t");
    let denied = Api::<DynamicObject>::namespaced_with(client.clone(), "t", &ar).delete("x", &Default::default()).await.expect_err("delete is not granted");
    assert!(denied.to_string().contains("cannot delete resource \"connections\" in API group \"connection-operator.dev\" in the namespace \"t\""), "{denied}");

    // Every denial is on record, in order.
    let (_, snapshot) = admin(&cluster, reqwest::Method::GET, "rbac", Value::Null).await;
    let denials = snapshot["denials"].as_array().expect("denials");
    assert_eq!(
        denials[0],
        json!({"user": "system:serviceaccount:ops:op", "verb": "list", "group": "connection-operator.dev", "resource": "connections", "namespace": null, "name": null})
    );
    assert_eq!(denials.last().expect("a denial")["verb"], "delete");
    assert_eq!(
        snapshot["allowed"],
        json!([{"user": "system:serviceaccount:ops:op", "verb": "list", "group": "connection-operator.dev", "resource": "connections"}])
    );

    // Deleting the ServiceAccount invalidates its token.
    cluster.kubectl_ok(&["delete", "serviceaccount", "op", "-n", "ops"]);
    assert_eq!(get_with(&cluster, Some(&token), "/apis/connection-operator.dev/v1alpha1/namespaces/t/connections").await.0, 401);
    // Enforcement off again: everything is served.
    admin(&cluster, reqwest::Method::PUT, "rbac", json!({"enforce": false})).await;
    assert_eq!(get_with(&cluster, Some("sandbox-not-a-token"), conns).await.0, 200);
}

// ---------------------------------------------------------------------------------------
// The chart's RBAC against the operator's Kubernetes calls.

/// How the operator runs: cluster-wide or in one namespace.
#[derive(Clone, Copy)]
enum Scope {
    AllNamespaces,
    Namespace(&'static str),
}

fn api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("connection-operator.dev", "v1alpha1", kind), plural)
}

/// A call that failed: whether the API server said 403, and what it said.
#[derive(Debug)]
struct Failure {
    call: String,
    forbidden: bool,
    message: String,
}

fn failure(call: &str, e: &kube::Error) -> Failure {
    let forbidden = matches!(e, kube::Error::Api(s) if s.code == 403);
    Failure { call: call.to_string(), forbidden, message: e.to_string() }
}

/// Every Kubernetes call the operator makes, made as `client` through the libraries the
/// operator uses. Returns the calls that failed.
async fn operator_calls(client: &Client, scope: Scope, leader_election: bool) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut check = |call: &str, r: Result<(), kube::Error>| {
        if let Err(e) = r {
            failures.push(failure(call, &e));
        }
    };
    let conn_ar = api_resource("Connection", "connections");
    let prov_ar = api_resource("Provider", "providers");
    let cp_ar = api_resource("ClusterProvider", "clusterproviders");
    let (conns_watch, provs_watch, secrets_watch): (Api<DynamicObject>, Api<DynamicObject>, Api<Secret>) = match scope {
        Scope::AllNamespaces => (Api::all_with(client.clone(), &conn_ar), Api::all_with(client.clone(), &prov_ar), Api::all(client.clone())),
        Scope::Namespace(ns) => (
            Api::namespaced_with(client.clone(), ns, &conn_ar),
            Api::namespaced_with(client.clone(), ns, &prov_ar),
            Api::namespaced(client.clone(), ns),
        ),
    };
    let conns: Api<DynamicObject> = Api::namespaced_with(client.clone(), TENANTS, &conn_ar);
    let provs: Api<DynamicObject> = Api::namespaced_with(client.clone(), TENANTS, &prov_ar);
    let cps: Api<DynamicObject> = Api::all_with(client.clone(), &cp_ar);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), TENANTS);
    let platform_secrets: Api<Secret> = Api::namespaced(client.clone(), PLATFORM);
    let wp = WatchParams::default().timeout(1);
    let lp = ListParams::default();
    let ssa = PatchParams::apply("connection-operator").force();

    // The controller's watches (kube-runtime watcher: list, then watch) and the metadata-only
    // Secret watch.
    check("list connections", conns_watch.list(&lp).await.map(drop));
    check("watch connections", conns_watch.watch(&wp, "0").await.map(drop));
    check("list providers", provs_watch.list(&lp).await.map(drop));
    check("watch providers", provs_watch.watch(&wp, "0").await.map(drop));
    check("list clusterproviders", cps.list(&lp).await.map(drop));
    check("watch clusterproviders", cps.watch(&wp, "0").await.map(drop));
    check("list secret metadata", secrets_watch.list_metadata(&lp).await.map(drop));
    check("watch secret metadata", secrets_watch.watch_metadata(&wp, "0").await.map(drop));
    // Reconcile: dereference the provider and read its credentials.
    check("get provider", provs.get("nango").await.map(drop));
    check("get clusterprovider", cps.get("datagrid").await.map(drop));
    check("get secret", secrets.get("nango-credentials").await.map(drop));
    check("get clusterprovider secret", platform_secrets.get("datagrid-credentials").await.map(drop));
    // Finalizer (deletionPolicy Delete) by merge patch, and status by server-side apply.
    let finalizer = json!({"metadata": {"finalizers": ["connection-operator.dev/cleanup"]}});
    check("patch connection finalizer", conns.patch("acme-slack", &PatchParams::default(), &Patch::Merge(&finalizer)).await.map(drop));
    let status = |kind: &str| json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": kind, "status": {"observedGeneration": 1}});
    check("apply connection status", conns.patch_status("acme-salesforce", &ssa, &Patch::Apply(status("Connection"))).await.map(drop));
    check("apply provider status", provs.patch_status("nango", &ssa, &Patch::Apply(status("Provider"))).await.map(drop));
    check("apply clusterprovider status", cps.patch_status("datagrid", &ssa, &Patch::Apply(status("ClusterProvider"))).await.map(drop));
    // Events through kube-runtime's Recorder: the first is created, a repeat is patched.
    let recorder = Recorder::new(client.clone(), Reporter { controller: "connection-operator".into(), instance: None });
    let reference = ObjectReference {
        api_version: Some("connection-operator.dev/v1alpha1".into()),
        kind: Some("Connection".into()),
        name: Some("acme-salesforce".into()),
        namespace: Some(TENANTS.into()),
        ..Default::default()
    };
    let event = Event { type_: EventType::Normal, reason: "Synced".into(), note: Some("in sync".into()), action: "Reconcile".into(), secondary: None };
    check("create event", recorder.publish(&event, &reference).await);
    check("patch event", recorder.publish(&event, &reference).await);
    // Leader election through kube-lease-manager: build (get, create) and acquire (patch).
    if leader_election {
        let acquired = async {
            let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "connection-operator")
                .with_namespace(RELEASE_NS)
                .with_duration(15)
                .with_grace(5)
                .build()
                .await?;
            let leading = manager.changed().await?;
            manager.release().await?;
            Ok::<bool, kube_lease_manager::LeaseManagerError>(leading)
        };
        let call = "acquire lease";
        match tokio::time::timeout(Duration::from_secs(60), acquired).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => failures.push(Failure { call: call.into(), forbidden: false, message: "not leading".into() }),
            Ok(Err(kube_lease_manager::LeaseManagerError::KubeError(e))) => failures.push(failure(call, &e)),
            Ok(Err(e)) => failures.push(Failure { call: call.into(), forbidden: false, message: e.to_string() }),
            Err(_) => failures.push(Failure { call: call.into(), forbidden: false, message: "timed out".into() }),
        }
    }
    failures
}

/// Apply the examples (namespace tenants, Secrets, Providers, a ClusterProvider, Connections)
/// as the admin.
fn seed_examples(cluster: &Cluster) {
    for file in ["secrets.yaml", "providers.yaml", "connections.yaml"] {
        cluster.kubectl_ok(&["apply", "-f", root().join("examples").join(file).to_str().unwrap()]);
    }
    // The ClusterProvider's Secret (examples/providers.yaml points at platform/datagrid-credentials).
    let out = cluster.kubectl(&["get", "secret", "datagrid-credentials", "-n", PLATFORM]);
    if !out.status.success() {
        cluster.kubectl_ok(&["create", "secret", "generic", "datagrid-credentials", "-n", PLATFORM, "--from-literal=token=dg-test"]);
    }
}

async fn service_account_client(cluster: &Cluster) -> Client {
    let (_, kubeconfig) = enforce_and_mint(cluster, RELEASE_NS, FULLNAME).await;
    let kc = Kubeconfig::from_yaml(&kubeconfig).expect("minted kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kube config");
    Client::try_from(config).expect("kube client")
}

fn describe(failures: &[Failure]) -> String {
    failures.iter().map(|f| format!("{}: {}", f.call, f.message)).collect::<Vec<_>>().join("\n")
}

fn calls(failures: &[Failure]) -> Vec<&str> {
    failures.iter().map(|f| f.call.as_str()).collect()
}

/// The role objects of the release, as (kubectl args, object).
fn release_roles(cluster: &Cluster, scope: Scope) -> Vec<(Vec<String>, Value)> {
    let mut targets: Vec<Vec<String>> = Vec::new();
    // The Lease Role exists only with leader election.
    let lease_role = format!("{FULLNAME}-leader-election");
    let found = cluster.kubectl(&["get", "role", &lease_role, "-n", RELEASE_NS, "--ignore-not-found", "-o", "name"]);
    if !found.stdout.is_empty() {
        targets.push(vec!["role".into(), lease_role, "-n".into(), RELEASE_NS.into()]);
    }
    match scope {
        Scope::AllNamespaces => targets.push(vec!["clusterrole".into(), FULLNAME.into()]),
        Scope::Namespace(ns) => {
            targets.push(vec!["clusterrole".into(), format!("{FULLNAME}-clusterproviders")]);
            targets.push(vec!["role".into(), FULLNAME.into(), "-n".into(), ns.into()]);
            targets.push(vec!["role".into(), format!("{FULLNAME}-secrets"), "-n".into(), PLATFORM.into()]);
        }
    }
    targets
        .into_iter()
        .map(|t| {
            let args: Vec<&str> = t.iter().map(String::as_str).collect();
            let obj = cluster.get_json(&args);
            (t, obj)
        })
        .collect()
}

/// A kube-rs client with the admin's kubeconfig (fast enough to rewrite roles in a loop).
async fn admin_client(cluster: &Cluster) -> Client {
    let kc = Kubeconfig::read_from(cluster.kubeconfig()).expect("admin kubeconfig");
    Client::try_from(Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config")).expect("client")
}

/// Replace a Role or ClusterRole (given as JSON, without resourceVersion) as the admin.
async fn replace_role(admin: &Client, role: &Value) {
    let kind = role["kind"].as_str().expect("kind");
    let gvk = GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
    let name = role["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match role["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(admin.clone(), ns, &ApiResource::from_gvk_with_plural(&gvk, "roles")),
        None => Api::all_with(admin.clone(), &ApiResource::from_gvk_with_plural(&gvk, "clusterroles")),
    };
    let obj: DynamicObject = serde_json::from_value(role.clone()).expect("role decodes");
    api.replace(name, &Default::default(), &obj).await.unwrap_or_else(|e| panic!("replace {name}: {e}"));
}

/// Without one verb of one rule, some operator call must fail with 403.
async fn assert_every_verb_is_needed(cluster: &Cluster, client: &Client, scope: Scope) {
    let admin = admin_client(cluster).await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(admin.clone(), RELEASE_NS);
    for (_, mut role) in release_roles(cluster, scope) {
        // Replaced unconditionally: the role changes on every round.
        role["metadata"].as_object_mut().expect("metadata").remove("resourceVersion");
        let rules = role["rules"].as_array().expect("rules").clone();
        for (i, rule) in rules.iter().enumerate() {
            for verb in rule["verbs"].as_array().expect("verbs") {
                let mut reduced = role.clone();
                let remaining: Vec<&Value> = rule["verbs"].as_array().unwrap().iter().filter(|v| *v != verb).collect();
                let mut new_rules = rules.clone();
                if remaining.is_empty() {
                    new_rules.remove(i);
                } else {
                    new_rules[i]["verbs"] = json!(remaining);
                }
                reduced["rules"] = json!(new_rules);
                replace_role(&admin, &reduced).await;
                // A first start: the operator creates its Lease when there is none.
                if let Err(e) = leases.delete("connection-operator", &Default::default()).await {
                    assert!(matches!(&e, kube::Error::Api(s) if s.code == 404), "delete the Lease: {e}");
                }
                let failures = operator_calls(client, scope, true).await;
                let what = format!("{verb} on {} in {}", rule["resources"], role["metadata"]["name"]);
                assert!(!failures.is_empty(), "the operator needs {what}, yet every call succeeded without it");
                assert!(failures.iter().all(|f| f.forbidden), "only 403s expected without {what}:\n{}", describe(&failures));
                // Put the role back as the chart rendered it.
                replace_role(&admin, &role).await;
            }
        }
    }
    let failures = operator_calls(client, scope, true).await;
    assert!(failures.is_empty(), "after restoring the chart's RBAC:\n{}", describe(&failures));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_exactly_the_operator_calls_cluster_wide() {
    let cluster = Cluster::start();
    cluster.namespace(RELEASE_NS);
    cluster.helm_ok("install", Some(json!({"leaderElection": {"enabled": true}})));
    for ns in [TENANTS, PLATFORM] {
        cluster.namespace(ns);
    }
    seed_examples(&cluster);
    let client = service_account_client(&cluster).await;

    let failures = operator_calls(&client, Scope::AllNamespaces, true).await;
    assert!(failures.is_empty(), "the chart's ServiceAccount got errors:\n{}", describe(&failures));
    // Without leader election there is no Lease RBAC, and the Lease calls are forbidden.
    cluster.helm_ok("upgrade", Some(json!({"leaderElection": {"enabled": false}})));
    let failures = operator_calls(&client, Scope::AllNamespaces, true).await;
    assert_eq!(calls(&failures), ["acquire lease"], "{}", describe(&failures));
    assert!(failures[0].forbidden, "{}", describe(&failures));
    let failures = operator_calls(&client, Scope::AllNamespaces, false).await;
    assert!(failures.is_empty(), "{}", describe(&failures));

    cluster.helm_ok("upgrade", Some(json!({"leaderElection": {"enabled": true}})));
    assert_every_verb_is_needed(&cluster, &client, Scope::AllNamespaces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_exactly_the_operator_calls_in_one_namespace() {
    let cluster = Cluster::start();
    for ns in [RELEASE_NS, TENANTS, PLATFORM] {
        cluster.namespace(ns);
    }
    let values = json!({"leaderElection": {"enabled": true}, "operator": {"watchNamespaces": [TENANTS]}, "rbac": {"secretNamespaces": [PLATFORM]}});
    cluster.helm_ok("install", Some(values));
    seed_examples(&cluster);
    let client = service_account_client(&cluster).await;
    let scope = Scope::Namespace(TENANTS);
    let failures = operator_calls(&client, scope, true).await;
    assert!(failures.is_empty(), "the chart's ServiceAccount got errors:\n{}", describe(&failures));
    // Cluster-wide calls are exactly what this mode does not grant.
    let failures = operator_calls(&client, Scope::AllNamespaces, false).await;
    assert!(failures.iter().all(|f| f.forbidden), "{}", describe(&failures));
    assert_eq!(calls(&failures), ["list connections", "watch connections", "list providers", "watch providers", "list secret metadata", "watch secret metadata"]);
    assert_every_verb_is_needed(&cluster, &client, scope).await;
}

// ---------------------------------------------------------------------------------------
// Argo CD health check.

fn json_to_lua(lua: &mlua::Lua, v: &Value) -> mlua::Result<mlua::Value> {
    Ok(match v {
        Value::Null => mlua::Value::Nil,
        Value::Bool(b) => mlua::Value::Boolean(*b),
        // gopher-lua (Argo CD) has only float numbers, like Lua 5.1.
        Value::Number(n) => mlua::Value::Number(n.as_f64().unwrap_or_default()),
        Value::String(s) => mlua::Value::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.set(i + 1, json_to_lua(lua, item)?)?;
            }
            mlua::Value::Table(t)
        }
        Value::Object(map) => {
            let t = lua.create_table()?;
            for (k, item) in map {
                t.set(k.as_str(), json_to_lua(lua, item)?)?;
            }
            mlua::Value::Table(t)
        }
    })
}

/// Evaluate the health check on `obj`: (status, message).
fn health(obj: &Value) -> (String, String) {
    let script = std::fs::read_to_string(root().join("docs/argocd-health.lua")).expect("docs/argocd-health.lua");
    let lua = mlua::Lua::new();
    lua.globals().set("obj", json_to_lua(&lua, obj).expect("convert")).expect("set obj");
    let hs: mlua::Table = lua.load(&script).set_name("argocd-health.lua").eval().expect("the health check runs");
    (hs.get::<String>("status").expect("status"), hs.get::<String>("message").expect("message"))
}

fn connection(generation: u64, status: Value) -> Value {
    json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection",
           "metadata": {"name": "c", "namespace": "t", "generation": generation}, "spec": {}, "status": status})
}

fn ready(status: &str, reason: &str, message: &str, generation: u64) -> Value {
    json!({"type": "Ready", "status": status, "reason": reason, "message": message, "observedGeneration": generation,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

#[test]
fn argocd_health_check_maps_connection_status() {
    let mut no_status = connection(1, Value::Null);
    no_status.as_object_mut().unwrap().remove("status");
    assert_eq!(health(&no_status).0, "Progressing");

    let in_sync = connection(2, json!({"observedGeneration": 2, "conditions": [ready("True", "InSync", "in sync", 2)]}));
    assert_eq!(health(&in_sync), ("Healthy".into(), "in sync".into()));

    let stale = connection(3, json!({"observedGeneration": 2, "conditions": [ready("True", "InSync", "in sync", 2)]}));
    assert_eq!(health(&stale), ("Progressing".into(), "Waiting for the operator to observe generation 3".into()));
    let stale_condition = connection(3, json!({"observedGeneration": 3, "conditions": [ready("True", "InSync", "in sync", 2)]}));
    assert_eq!(health(&stale_condition).0, "Progressing");
    let no_ready = connection(1, json!({"observedGeneration": 1, "conditions": []}));
    assert_eq!(health(&no_ready).0, "Progressing");

    let limited = connection(1, json!({"observedGeneration": 1, "conditions": [
        ready("False", "RateLimited", "rate limited", 1),
        {"type": "RateLimited", "status": "True", "reason": "RetryAfter", "message": "rate limited, retrying at 2026-01-01T00:01:00Z", "observedGeneration": 1}
    ]}));
    assert_eq!(health(&limited), ("Progressing".into(), "rate limited, retrying at 2026-01-01T00:01:00Z".into()));
    // Rate limited while otherwise failing transiently: still progressing.
    let limited_retry = connection(1, json!({"observedGeneration": 1, "conditions": [
        ready("False", "UpstreamUnavailable", "503", 1),
        {"type": "RateLimited", "status": "True", "reason": "RetryAfter", "message": "retrying", "observedGeneration": 1}
    ]}));
    assert_eq!(health(&limited_retry).0, "Progressing");

    let suspended = connection(1, json!({"observedGeneration": 1, "conditions": [ready("False", "Suspended", "suspended by spec.suspend", 1)]}));
    assert_eq!(health(&suspended), ("Suspended".into(), "suspended by spec.suspend".into()));

    for reason in ["InvalidSpec", "Unauthorized", "UpstreamNotFound", "ProviderNotFound", "ProviderMismatch", "DriftDetected"] {
        let failed = connection(1, json!({"observedGeneration": 1, "conditions": [ready("False", reason, "the provider said no", 1)]}));
        assert_eq!(health(&failed), ("Degraded".into(), format!("{reason}: the provider said no")), "{reason}");
    }
    for reason in ["UpstreamUnavailable", "ProviderNotReady", "Deleting"] {
        let transient = connection(1, json!({"observedGeneration": 1, "conditions": [ready("False", reason, "retrying", 1)]}));
        assert_eq!(health(&transient), ("Progressing".into(), "retrying".into()), "{reason}");
    }
    let unknown = connection(1, json!({"observedGeneration": 1, "conditions": [ready("Unknown", "Reconciling", "", 1)]}));
    assert_eq!(health(&unknown), ("Progressing".into(), "Reconciling".into()));
}

#[test]
fn install_doc_embeds_the_health_check_verbatim() {
    let script = std::fs::read_to_string(root().join("docs/argocd-health.lua")).expect("script");
    let doc = std::fs::read_to_string(root().join("docs/install.md")).expect("docs/install.md");
    let indented: String = script.lines().map(|l| if l.is_empty() { "\n".to_string() } else { format!("    {l}\n") }).collect();
    assert!(doc.contains(&indented), "docs/install.md must embed docs/argocd-health.lua (indented 4 spaces) in its argocd-cm example");
}

// ---------------------------------------------------------------------------------------
// The operator itself, authenticated as the chart's ServiceAccount.

/// Create `obj` (JSON) as the admin.
fn create_as_admin(cluster: &Cluster, obj: Value) {
    let out = cluster.kubectl_stdin(&["create", "-f", "-"], Some(&obj.to_string()));
    assert!(out.status.success(), "create {obj}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Install the chart for `scope`, start the provider emulators with one upstream connection
/// per provider, and run `controller::run` with the ServiceAccount's token: every Connection
/// (three through namespaced Providers, one through a ClusterProvider whose Secret lives
/// elsewhere, one with deletionPolicy Delete that is then deleted) reaches its end state and
/// the emulator refused nothing. Cluster-wide, the operator also runs with leader election
/// (`run_when_leading`, as `--leader-election` does), so the Lease Role is exercised too.
async fn operator_runs_without_a_denial(scope: Scope) {
    use connection_operator::admin::Readiness;
    use connection_operator::controller::{self, LeaseSettings, RunConfig};
    use connection_operator::metrics::Metrics;
    use connection_sandbox::providers::ProviderSandbox;

    let cluster = Cluster::start();
    for ns in [RELEASE_NS, TENANTS, PLATFORM] {
        cluster.namespace(ns);
    }
    let (values, namespace) = match scope {
        Scope::AllNamespaces => (json!({"leaderElection": {"enabled": true}}), None),
        Scope::Namespace(ns) => (json!({"operator": {"watchNamespaces": [ns]}, "rbac": {"secretNamespaces": [PLATFORM]}}), Some(ns.to_string())),
    };
    cluster.helm_ok("install", Some(values));

    let providers = ProviderSandbox::start("127.0.0.1:0".parse().unwrap()).await.expect("provider emulators");
    let http = reqwest::Client::new();
    for (p, id, state) in [
        ("nango", "acme", json!({"provider_config_key": "salesforce", "metadata": {"theirs": "webhook-1"}})),
        ("mielto", "acme", json!({"label": "Old", "status": "inactive", "config": {"theirs": 7}})),
        ("arena", "4242", json!({"metadata": {"theirs": true}})),
        ("datagrid", "acme", json!({"name": "Old name"})),
    ] {
        let r = http.put(format!("{}/_sandbox/connections/{id}", providers.base_url(p))).json(&state).send().await.expect("seed");
        assert!(r.status().is_success(), "seed {p}: {}", r.status());
    }
    for (ns, name) in [(TENANTS, "nango-credentials"), (TENANTS, "mielto-credentials"), (TENANTS, "arena-credentials"), (PLATFORM, "datagrid-credentials")] {
        create_as_admin(&cluster, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": {"token": "tok-chart-rbac"}}));
    }
    for p in ["nango", "mielto", "arena"] {
        create_as_admin(&cluster, json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Provider", "metadata": {"name": p, "namespace": TENANTS},
            "spec": {"type": p, "baseUrl": providers.base_url(p), "credentialsRef": {"name": format!("{p}-credentials"), "key": "token"}, "timeoutSeconds": 5}}));
    }
    create_as_admin(&cluster, json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "ClusterProvider", "metadata": {"name": "datagrid"},
        "spec": {"type": "datagrid", "baseUrl": providers.base_url("datagrid"), "credentialsRef": {"name": "datagrid-credentials", "namespace": PLATFORM, "key": "token"}, "timeoutSeconds": 5}}));
    let connection = |name: &str, spec: Value| json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection", "metadata": {"name": name, "namespace": TENANTS}, "spec": spec});
    create_as_admin(&cluster, connection("n", json!({"providerRef": {"name": "nango"}, "connectionId": "acme", "nango": {"providerConfigKey": "salesforce", "metadata": {"region": "eu"}}})));
    create_as_admin(&cluster, connection("m", json!({"providerRef": {"name": "mielto"}, "connectionId": "acme", "mielto": {"label": "Acme", "status": "active", "config": {"channel": "#a"}}, "deletionPolicy": "Delete"})));
    create_as_admin(&cluster, connection("a", json!({"providerRef": {"name": "arena"}, "connectionId": "4242", "arena": {"metadata": {"reviewed": true}}})));
    create_as_admin(&cluster, connection("d", json!({"providerRef": {"kind": "ClusterProvider", "name": "datagrid"}, "connectionId": "acme", "datagrid": {"name": "Acme Drive"}})));

    let client = service_account_client(&cluster).await;
    let config = RunConfig { namespace, concurrency: 4, ..RunConfig::default() };
    let (metrics, readiness) = (Arc::new(Metrics::new()), Readiness::default());
    let operator = match scope {
        Scope::AllNamespaces => {
            let lease = LeaseSettings::new(RELEASE_NS, "connection-operator-0");
            tokio::spawn(async move {
                if let Err(e) = controller::run_when_leading(client, config, lease, metrics, readiness, std::future::pending()).await {
                    panic!("leader election failed: {e}");
                }
            })
        }
        Scope::Namespace(_) => tokio::spawn(controller::run(client, config, metrics, readiness, std::future::pending())),
    };

    let in_sync = |name: &str| {
        let c = cluster.get_json(&["connection", name, "-n", TENANTS]);
        let ready = c["status"]["conditions"].as_array().into_iter().flatten().find(|x| x["type"] == "Ready").cloned();
        ready.is_some_and(|r| r["status"] == "True" && r["reason"] == "InSync" && r["observedGeneration"] == c["metadata"]["generation"])
    };
    for name in ["n", "m", "a", "d"] {
        poll(&format!("Connection {name} Ready=True InSync"), || in_sync(name)).await;
    }
    let upstream: Value = http.get(format!("{}/_sandbox/connections/acme", providers.base_url("nango"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(upstream["metadata"], json!({"theirs": "webhook-1", "region": "eu"}));
    let m = cluster.get_json(&["connection", "m", "-n", TENANTS]);
    assert_eq!(m["metadata"]["finalizers"], json!(["connection-operator.dev/cleanup"]), "the operator added its finalizer");
    // Deleting with deletionPolicy Delete: cleanup upstream, then the finalizer is released.
    cluster.kubectl_ok(&["delete", "connection", "m", "-n", TENANTS, "--wait=false"]);
    poll("Connection m deleted", || !cluster.kubectl(&["get", "connection", "m", "-n", TENANTS]).status.success()).await;
    let mielto: Value = http.get(format!("{}/_sandbox/connections/acme", providers.base_url("mielto"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(mielto["config"], json!({"theirs": 7}), "the owned key was removed upstream");
    // Events were published by the ServiceAccount.
    let events = cluster.get_json(&["events.v1.events.k8s.io", "-n", TENANTS]);
    assert!(events["items"].as_array().is_some_and(|e| !e.is_empty()), "no Events: {events}");

    if let Scope::AllNamespaces = scope {
        let lease = cluster.get_json(&["lease", "connection-operator", "-n", RELEASE_NS]);
        assert_eq!(lease["spec"]["holderIdentity"], "connection-operator-0", "{lease}");
    }
    assert!(!operator.is_finished(), "the operator stopped early");
    operator.abort();
    let (_, snapshot) = admin(&cluster, reqwest::Method::GET, "rbac", Value::Null).await;
    assert_eq!(snapshot["enforce"], true);
    assert_eq!(snapshot["denials"], json!([]), "the operator was refused something");

    // And the other way round: the operator used every (verb, resource) the chart grants,
    // except the Event patch, which kube-runtime's Recorder sends only when the same Event
    // repeats within minutes, and the Provider/ClusterProvider get, which the controller
    // sends only when a Connection is reconciled before its Provider reached the watch
    // cache (both checked by the verb-by-verb tests).
    let used: Vec<(String, String, String)> = snapshot["allowed"]
        .as_array()
        .expect("allowed")
        .iter()
        .map(|a| (a["verb"].as_str().unwrap().to_string(), a["group"].as_str().unwrap().to_string(), a["resource"].as_str().unwrap().to_string()))
        .collect();
    for (_, role) in release_roles(&cluster, scope) {
        for rule in role["rules"].as_array().expect("rules") {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        let grant = (verb.as_str().unwrap().to_string(), group.as_str().unwrap().to_string(), resource.as_str().unwrap().to_string());
                        if (grant.0 == "patch" && grant.2 == "events")
                            || (grant.0 == "get" && (grant.2 == "providers" || grant.2 == "clusterproviders"))
                        {
                            continue;
                        }
                        assert!(used.contains(&grant), "the chart grants {grant:?} in {}, which the operator never used: {used:?}", role["metadata"]["name"]);
                    }
                }
            }
        }
    }
}

/// Poll `probe` every 200 ms for at most a generous minute and a half.
async fn poll(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !probe() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_as_the_chart_service_account_reconciles_cluster_wide_without_a_denial() {
    operator_runs_without_a_denial(Scope::AllNamespaces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_as_the_chart_service_account_reconciles_one_namespace_without_a_denial() {
    operator_runs_without_a_denial(Scope::Namespace(TENANTS)).await;
}
