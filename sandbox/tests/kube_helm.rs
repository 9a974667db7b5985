//! Helm tier: the real helm CLI (4.3.2, `.tools/bin/helm`) installs, upgrades, rolls back
//! and uninstalls the test chart (`fixtures/chart`: Deployment, ServiceAccount,
//! Role/RoleBinding, ClusterRole/ClusterRoleBinding, Service, ConfigMaps, a CRD in `crds/`
//! and a custom resource of it), client-side and with server-side apply, on the real control
//! plane and on the emulator (`real::*`, `emulator::*`); kubectl then checks what Helm left
//! on the server. Each case has a namespace and a release name of its own (the chart's
//! ClusterRole is named after the release).

#[macro_use]
#[path = "kube_support/mod.rs"]
mod kube_support;

use std::process::Command;

use kube_support::{Backend, Kube, TestNamespace, fixture};
use serde_json::Value;

/// How Helm writes objects: client-side (create, then three-way strategic/merge patches) or
/// server-side apply (field manager "helm").
#[derive(Clone, Copy, PartialEq, Debug)]
enum ApplyMethod {
    ClientSide,
    ServerSide,
}

/// One case: the backend, its namespace (dropped first) and the release name.
struct Chart {
    ns: TestNamespace,
    release: String,
    kube: Kube,
}

impl Chart {
    fn start(backend: Backend, method: ApplyMethod) -> Self {
        let kube = Kube::start(backend);
        let ns = kube.namespace("helm");
        // `<ns>` is unique: the release (and its ClusterRole) is too.
        let release = format!("demo-{}", ns.name().rsplit('-').next().unwrap_or("x"));
        let release = if method == ApplyMethod::ServerSide { format!("{release}-ssa") } else { release };
        Self { ns, release, kube }
    }

    fn ns(&self) -> &str {
        self.ns.name()
    }

    /// Run `helm ARGS --namespace NS --kubeconfig K` with Helm's state in the scratch
    /// directory; its stdout. Panics with Helm's output when it fails.
    #[track_caller]
    fn helm(&self, args: &[&str]) -> String {
        let scratch = self.kube.scratch();
        let out = Command::new(connection_testkit::tools::helm())
            .args(args)
            .arg("--namespace")
            .arg(self.ns())
            .arg("--kubeconfig")
            .arg(self.kube.kubeconfig())
            .env_remove("KUBECONFIG")
            .env("HOME", scratch)
            .env("HELM_CACHE_HOME", scratch.join("helm/cache"))
            .env("HELM_CONFIG_HOME", scratch.join("helm/config"))
            .env("HELM_DATA_HOME", scratch.join("helm/data"))
            .output()
            .expect("run helm");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "helm {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}", out.status);
        stdout
    }

    /// `helm ARGS -o json`, parsed.
    #[track_caller]
    fn helm_json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        let stdout = self.helm(&full);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("helm {args:?} printed no JSON ({e}): {stdout}"))
    }

    fn get_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        self.kube.kubectl(&full).json()
    }

    /// Helm's release Secrets of the release, as (name, status label), sorted by name.
    fn release_secrets(&self) -> Vec<(String, String)> {
        let list = self.get_json(&["secrets", "-n", self.ns(), "-l", &format!("owner=helm,name={}", self.release)]);
        let mut v: Vec<(String, String)> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|s| {
                (
                    s["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                    s["metadata"]["labels"]["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn secret_name(&self, revision: u32) -> String {
        format!("sh.helm.release.v1.{}.v{revision}", self.release)
    }

    /// The `operation` of the managedFields entry that owns the release ConfigMap's
    /// `data.greeting` (Helm's own entry, manager "helm").
    fn greeting_owner(&self) -> (String, String) {
        let cm = self
            .kube
            .kubectl(&[
                "get",
                "configmap",
                &format!("{}-config", self.release),
                "-n",
                self.ns(),
                "-o",
                "json",
                "--show-managed-fields",
            ])
            .json();
        let owners: Vec<&Value> = cm["metadata"]["managedFields"]
            .as_array()
            .map(|mf| mf.iter().filter(|m| m["fieldsV1"]["f:data"]["f:greeting"].is_object()).collect())
            .unwrap_or_default();
        assert_eq!(owners.len(), 1, "exactly one manager must own data.greeting: {cm}");
        (
            owners[0]["manager"].as_str().unwrap_or_default().to_string(),
            owners[0]["operation"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// What revision 1's values (the chart's defaults) put on the server.
    fn assert_default_values(&self) {
        let (ns, release) = (self.ns(), self.release.as_str());
        let cm = self.get_json(&["configmap", &format!("{release}-config"), "-n", ns]);
        assert_eq!(cm["data"]["greeting"], "hello");
        let deploy = self.get_json(&["deployment", release, "-n", ns]);
        assert_eq!(deploy["spec"]["replicas"], 1);
        assert_eq!(deploy["spec"]["template"]["spec"]["containers"][0]["name"], "app");
        assert_eq!(env_names(&deploy), ["DEBUG", "GREETING"], "{deploy}");
        self.get_json(&["configmap", &format!("{release}-optional"), "-n", ns]);
        assert_eq!(self.get_json(&["gadget", release, "-n", ns])["spec"]["size"], "small");
    }
}

/// Names of the first container's env variables, in order.
fn env_names(deploy: &Value) -> Vec<String> {
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .map(|env| env.iter().filter_map(|e| e["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn helm_installs_upgrades_rolls_back_and_uninstalls_the_test_chart(backend: Backend) {
    exercise_chart(backend, ApplyMethod::ClientSide);
}

fn helm_server_side_apply_installs_upgrades_rolls_back_and_uninstalls_the_test_chart(backend: Backend) {
    exercise_chart(backend, ApplyMethod::ServerSide);
}

fn exercise_chart(backend: Backend, method: ApplyMethod) {
    let c = Chart::start(backend, method);
    let (ns, release) = (c.ns(), c.release.as_str());
    let chart = fixture("chart");
    let chart = chart.to_str().expect("utf-8 path");
    let server_side = match method {
        ApplyMethod::ServerSide => "--server-side=true",
        ApplyMethod::ClientSide => "--server-side=false",
    };

    // Install: every object of the chart, plus the CRD from crds/ and a release Secret. On
    // the shared control plane the chart's CRD is cluster-wide: concurrent installs of it
    // are serialized.
    let installed = {
        let _guard = c.kube.cluster().control_plane().map(|plane| plane.lock("helm-gadgets-crd"));
        c.helm_json(&["install", release, chart, server_side])
    };
    assert_eq!(installed["version"], 1, "{installed}");
    for kind in ["deployment", "serviceaccount", "service", "role", "rolebinding", "gadget"] {
        let obj = c.get_json(&[kind, release, "-n", ns]);
        assert_eq!(obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm", "{kind}: {obj}");
        assert_eq!(obj["metadata"]["annotations"]["meta.helm.sh/release-name"], release, "{kind}: {obj}");
    }
    for kind in ["clusterrole", "clusterrolebinding"] {
        let obj = c.get_json(&[kind, &format!("{release}-gadgets")]);
        assert_eq!(obj["metadata"]["annotations"]["meta.helm.sh/release-namespace"], ns, "{kind}: {obj}");
    }
    c.assert_default_values();
    let svc = c.get_json(&["service", release, "-n", ns]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    let crd = c.get_json(&["crd", "gadgets.example.com"]);
    assert_eq!(crd["spec"]["names"]["kind"], "Gadget");
    assert_eq!(c.release_secrets(), [(c.secret_name(1), "deployed".to_string())]);
    let status = c.helm_json(&["status", release]);
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    // Client-side Helm creates and patches (operation Update); server-side Helm applies.
    let operation = if method == ApplyMethod::ServerSide { "Apply" } else { "Update" };
    assert_eq!(c.greeting_owner(), ("helm".to_string(), operation.to_string()));

    // Upgrade with changed values: the objects change, revision 2 is deployed and revision 1
    // is kept as superseded. The upgrade also turns off the optional ConfigMap (Helm deletes
    // it) and the DEBUG variable (a list item Helm's patch or apply must remove). The upgrade
    // keeps the release's apply method ("auto").
    let upgraded = c.helm_json(&[
        "upgrade",
        release,
        chart,
        "--set",
        "greeting=bonjour,replicas=3,gadgetSize=large,optional=false,debug=false",
    ]);
    assert_eq!(upgraded["version"], 2, "{upgraded}");
    let cm = c.get_json(&["configmap", &format!("{release}-config"), "-n", ns]);
    assert_eq!(cm["data"]["greeting"], "bonjour");
    let deploy = c.get_json(&["deployment", release, "-n", ns]);
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(env_names(&deploy), ["GREETING"], "{deploy}");
    let optional = c.kube.kubectl(&["get", "configmap", &format!("{release}-optional"), "-n", ns]);
    assert!(optional.fails().contains("not found"), "{optional:?}");
    assert_eq!(c.get_json(&["gadget", release, "-n", ns])["spec"]["size"], "large");
    assert_eq!(
        c.release_secrets(),
        [(c.secret_name(1), "superseded".to_string()), (c.secret_name(2), "deployed".to_string())]
    );
    assert_eq!(c.greeting_owner(), ("helm".to_string(), operation.to_string()));
    let history = c.helm_json(&["history", release]);
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");

    // Rollback to revision 1: a new revision 3 with revision 1's manifests, so the optional
    // ConfigMap and the DEBUG variable come back and the values are the defaults again.
    let rolled = c.helm(&["rollback", release, "1"]);
    assert!(rolled.contains("Rollback was a success"), "{rolled}");
    c.assert_default_values();
    assert_eq!(
        c.release_secrets(),
        [
            (c.secret_name(1), "superseded".to_string()),
            (c.secret_name(2), "superseded".to_string()),
            (c.secret_name(3), "deployed".to_string()),
        ]
    );
    let history = c.helm_json(&["history", release]);
    let revisions: Vec<(i64, &str)> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|r| (r["revision"].as_i64().unwrap_or(0), r["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(revisions, [(1, "superseded"), (2, "superseded"), (3, "deployed")], "{history}");
    assert!(history[2]["description"].as_str().is_some_and(|d| d.contains("Rollback to 1")), "{history}");

    // Uninstall: the chart's objects and the release Secrets are gone; the CRD stays (Helm
    // never deletes what it installed from crds/).
    c.helm(&["uninstall", release, "--wait"]);
    for kind in ["deployment", "serviceaccount", "service", "role", "rolebinding", "configmap"] {
        let list = c.get_json(&[kind, "-n", ns, "-l", &format!("app.kubernetes.io/instance={release}")]);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{kind} left behind: {list}");
    }
    let gone = c.kube.kubectl(&["get", "clusterrole", &format!("{release}-gadgets")]);
    assert!(gone.fails().contains("not found"), "{gone:?}");
    assert!(c.release_secrets().is_empty(), "release secrets left behind");
    c.get_json(&["crd", "gadgets.example.com"]);
}

tests_on_both_backends!(
    helm_installs_upgrades_rolls_back_and_uninstalls_the_test_chart,
    helm_server_side_apply_installs_upgrades_rolls_back_and_uninstalls_the_test_chart,
);
