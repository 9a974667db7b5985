//! One release of the chart on the real control plane, installed with the real helm CLI
//! into a release namespace of its own labelled `pod-security.kubernetes.io/enforce=restricted`
//! (labelled before the install, so PodSecurity admission judges the very first Pod), and
//! read back with the real kubectl.
//!
//! Names are unique per test (release `co-<random>`), so the chart's cluster-scoped objects
//! (ClusterRoles and their bindings) never collide on the shared control plane; the release
//! is uninstalled when dropped.

use std::path::PathBuf;

use connection_testkit::{Cluster, Helm, Kubectl, TestNamespace};
use serde_json::Value;

pub fn chart_dir() -> PathBuf {
    connection_testkit::tools::workspace_root().join("charts/connection-operator")
}

pub struct Release<'c> {
    pub cluster: &'c Cluster,
    /// The Helm release name.
    pub name: String,
    /// `<release>-connection-operator`: the Deployment, ServiceAccount, ClusterRole, ... name.
    pub fullname: String,
    namespace: TestNamespace,
    helm: Helm,
}

impl<'c> Release<'c> {
    /// A restricted release namespace; nothing installed yet.
    pub fn new(cluster: &'c Cluster) -> Self {
        let namespace = cluster.namespace("co-release");
        cluster.kubectl().ok(&[
            "label",
            "namespace",
            namespace.name(),
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        ]);
        let suffix = namespace.name().rsplit('-').next().expect("a random suffix").to_string();
        let name = format!("co-{suffix}");
        let fullname = format!("{name}-connection-operator");
        Release { cluster, name, fullname, namespace, helm: cluster.helm() }
    }

    pub fn namespace(&self) -> &str {
        self.namespace.name()
    }

    /// The admin's kubectl.
    pub fn kubectl(&self) -> Kubectl {
        self.cluster.kubectl()
    }

    /// `helm <action> RELEASE CHART -n NS -f VALUES [extra]` (install or upgrade).
    pub fn helm_chart(&self, action: &str, values: &Value, extra: &[&str]) -> connection_testkit::Output {
        let file = self.helm.values_file(values);
        let chart = chart_dir();
        let mut args = vec![action, &self.name, chart.to_str().expect("UTF-8 path"), "--namespace", self.namespace()];
        let file = file.to_string_lossy().into_owned();
        args.extend_from_slice(&["-f", &file]);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", "json"]);
        self.helm.run(&args)
    }

    /// `helm install` with `values`; the release as helm printed it.
    #[track_caller]
    pub fn install(&self, values: &Value) -> Value {
        self.expect_json("install", values, &[])
    }

    /// `helm upgrade --reset-values` with `values`: the chart's defaults and `values`, nothing
    /// of the previous revision (without values, helm would reuse the release's); the
    /// release as helm printed it.
    #[track_caller]
    pub fn upgrade(&self, values: &Value) -> Value {
        self.expect_json("upgrade", values, &["--reset-values"])
    }

    #[track_caller]
    fn expect_json(&self, action: &str, values: &Value, extra: &[&str]) -> Value {
        let out = self.helm_chart(action, values, extra);
        assert!(out.ok, "helm {action} {values} failed:\n{}", out.stderr);
        let warnings = warnings(&out.stderr);
        assert!(warnings.is_empty(), "helm {action} {values}: the API server warned:\n{}", warnings.join("\n"));
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("helm {action} printed no JSON ({e}): {}", out.stdout))
    }

    #[track_caller]
    pub fn rollback(&self, revision: u32) {
        self.helm.ok(&["rollback", &self.name, &revision.to_string(), "--namespace", self.namespace()]);
    }

    /// `helm history`: every revision, oldest first.
    #[track_caller]
    pub fn history(&self) -> Vec<Value> {
        match self.helm.json(&["history", &self.name, "--namespace", self.namespace()]) {
            Value::Array(revisions) => revisions,
            other => panic!("helm history: {other}"),
        }
    }

    #[track_caller]
    pub fn uninstall(&self) {
        self.helm.ok(&["uninstall", &self.name, "--namespace", self.namespace()]);
    }

    /// `kubectl get ARGS -o json` as the admin.
    #[track_caller]
    pub fn get(&self, args: &[&str]) -> Value {
        get_json(&self.kubectl(), args)
    }

    /// The object `kind/name` in the release namespace.
    #[track_caller]
    pub fn get_here(&self, kind: &str, name: &str) -> Value {
        self.get(&[kind, name, "--namespace", self.namespace()])
    }

    /// Whether `kubectl get ARGS` finds the object.
    pub fn exists(&self, args: &[&str]) -> bool {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--ignore-not-found", "-o", "name"]);
        !self.kubectl().ok(&all).trim().is_empty()
    }

    /// The Deployment's container args.
    #[track_caller]
    pub fn deployment_args(&self) -> Vec<String> {
        let deploy = self.get_here("deployment", &self.fullname);
        deploy["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        // Best effort (the test may have uninstalled already): the cluster-scoped objects go
        // with the release, before the namespace is deleted.
        let _ = self.helm.run(&["uninstall", &self.name, "--namespace", self.namespace(), "--ignore-not-found"]);
    }
}

/// `kubectl get ARGS -o json`.
#[track_caller]
pub fn get_json(kubectl: &Kubectl, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = kubectl.ok(&all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl get {args:?} printed no JSON ({e}): {out}"))
}

/// The API server's warnings in a tool's stderr (deprecations, PodSecurity, unknown fields),
/// except the CRD schemas' `unrecognized format "uint32"`-style ones: those formats come from
/// the generated CRDs (crds/), are ignored by the server, and are the CRD tier's concern.
pub fn warnings(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("Warning:") && !l.contains("unrecognized format")).collect()
}
