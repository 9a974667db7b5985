//! Helm tier: the real Helm library (helm-sdkpy, in `.tools/venv` from `scripts/bootstrap`)
//! installs, upgrades and uninstalls the test chart (`fixtures/chart`: Deployment,
//! ServiceAccount, Role/RoleBinding, ClusterRole/ClusterRoleBinding, Service, ConfigMap, a
//! CRD in `crds/` and a custom resource of it) into the Kubernetes emulator, driven by
//! `tests/helm/helm_drive.py`; kubectl then checks what Helm left on the server. Running the
//! Python driver from a Rust test keeps every tier under the one README test command.

#[path = "kube_support/mod.rs"]
mod kube_support;

use std::{path::Path, process::Command};

use kube_support::{Emulator, fixture, tools_dir};
use serde_json::Value;

const NS: &str = "helm-test";
const RELEASE: &str = "demo";

/// How Helm writes objects: client-side (create, then three-way strategic/merge patches) or
/// server-side apply (Helm 4, field manager "helm").
#[derive(Clone, Copy, PartialEq)]
enum ApplyMethod {
    ClientSide,
    ServerSide,
}

/// Run one Helm action through the Python driver; returns its JSON result.
#[track_caller]
fn helm(emu: &Emulator, method: ApplyMethod, action: &str, values: Option<&str>) -> Value {
    let python = tools_dir().join("venv/bin/python");
    assert!(python.is_file(), "{} missing: run scripts/bootstrap first", python.display());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helm/helm_drive.py");
    let chart = fixture("chart");
    let mut cmd = Command::new(python);
    cmd.arg(script);
    if method == ApplyMethod::ServerSide {
        cmd.arg("--server-side");
    }
    cmd.arg(emu.kubeconfig()).args([NS, action, RELEASE]).arg(chart);
    if let Some(v) = values {
        cmd.arg(v);
    }
    // Helm keeps its caches and config under HOME; keep them out of the real one.
    cmd.env("HOME", emu.scratch()).env_remove("KUBECONFIG");
    let out = cmd.output().expect("run the Helm driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "helm {action} failed ({}):\nstdout: {stdout}\nstderr: {stderr}", out.status);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("helm {action} printed no JSON ({e}): {stdout}\nstderr: {stderr}"))
}

fn get_json(emu: &Emulator, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    emu.kubectl(&full).json()
}

/// Names of the first container's env variables, in order.
fn env_names(deploy: &Value) -> Vec<String> {
    deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .map(|env| env.iter().filter_map(|e| e["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Helm's release Secrets of RELEASE, as (name, status label), sorted by name.
fn release_secrets(emu: &Emulator) -> Vec<(String, String)> {
    let list = get_json(emu, &["secrets", "-n", NS, "-l", &format!("owner=helm,name={RELEASE}")]);
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

/// The `operation` of the managedFields entry that owns the release ConfigMap's
/// `data.greeting` (Helm's own entry; the SDK names the manager after the process).
fn greeting_owner_operation(emu: &Emulator) -> String {
    let cm = emu
        .kubectl(&["get", "configmap", &format!("{RELEASE}-config"), "-n", NS, "-o", "json", "--show-managed-fields"])
        .json();
    let owners: Vec<&Value> = cm["metadata"]["managedFields"]
        .as_array()
        .map(|mf| mf.iter().filter(|m| m["fieldsV1"]["f:data"]["f:greeting"].is_object()).collect())
        .unwrap_or_default();
    assert_eq!(owners.len(), 1, "exactly one manager must own data.greeting: {cm}");
    owners[0]["operation"].as_str().unwrap_or_default().to_string()
}

#[test]
fn helm_installs_upgrades_and_uninstalls_the_test_chart() {
    exercise_chart(ApplyMethod::ClientSide);
}

#[test]
fn helm_server_side_apply_installs_upgrades_and_uninstalls_the_test_chart() {
    exercise_chart(ApplyMethod::ServerSide);
}

fn exercise_chart(method: ApplyMethod) {
    let emu = Emulator::start();
    emu.namespace(NS);

    // Install: every object of the chart, plus the CRD from crds/ and a release Secret.
    let installed = helm(&emu, method, "install", None);
    assert_eq!(installed["version"], 1, "{installed}");
    for kind in ["deployment", "serviceaccount", "service", "role", "rolebinding", "gadget"] {
        let obj = get_json(&emu, &[kind, RELEASE, "-n", NS]);
        assert_eq!(obj["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm", "{kind}: {obj}");
        assert_eq!(obj["metadata"]["annotations"]["meta.helm.sh/release-name"], RELEASE, "{kind}: {obj}");
    }
    for kind in ["clusterrole", "clusterrolebinding"] {
        let obj = get_json(&emu, &[kind, &format!("{RELEASE}-gadgets")]);
        assert_eq!(obj["metadata"]["annotations"]["meta.helm.sh/release-namespace"], NS, "{kind}: {obj}");
    }
    let cm = get_json(&emu, &["configmap", &format!("{RELEASE}-config"), "-n", NS]);
    assert_eq!(cm["data"]["greeting"], "hello");
    let deploy = get_json(&emu, &["deployment", RELEASE, "-n", NS]);
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(deploy["spec"]["template"]["spec"]["containers"][0]["name"], "app");
    assert_eq!(env_names(&deploy), ["DEBUG", "GREETING"]);
    get_json(&emu, &["configmap", &format!("{RELEASE}-optional"), "-n", NS]);
    let svc = get_json(&emu, &["service", RELEASE, "-n", NS]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    let crd = get_json(&emu, &["crd", "gadgets.example.com"]);
    assert_eq!(crd["spec"]["names"]["kind"], "Gadget");
    let gadget = get_json(&emu, &["gadget", RELEASE, "-n", NS]);
    assert_eq!(gadget["spec"]["size"], "small");
    assert_eq!(release_secrets(&emu), [(format!("sh.helm.release.v1.{RELEASE}.v1"), "deployed".to_string())]);
    let status = helm(&emu, method, "status", None);
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    // Client-side Helm creates and patches (operation Update); server-side Helm applies.
    let operation = if method == ApplyMethod::ServerSide { "Apply" } else { "Update" };
    assert_eq!(greeting_owner_operation(&emu), operation);

    // Upgrade with changed values: the objects change, revision 2 is deployed and revision 1
    // is kept as superseded.
    // The upgrade also turns off the optional ConfigMap (Helm deletes it) and the DEBUG
    // variable (a list item Helm's patch or apply must remove).
    let upgraded = helm(
        &emu,
        method,
        "upgrade",
        Some(r#"{"greeting": "bonjour", "replicas": 3, "gadgetSize": "large", "optional": false, "debug": false}"#),
    );
    assert_eq!(upgraded["version"], 2, "{upgraded}");
    let cm = get_json(&emu, &["configmap", &format!("{RELEASE}-config"), "-n", NS]);
    assert_eq!(cm["data"]["greeting"], "bonjour");
    let deploy = get_json(&emu, &["deployment", RELEASE, "-n", NS]);
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(env_names(&deploy), ["GREETING"], "{deploy}");
    let optional = emu.kubectl(&["get", "configmap", &format!("{RELEASE}-optional"), "-n", NS]);
    assert!(optional.fails().contains("not found"), "{optional:?}");
    assert_eq!(get_json(&emu, &["gadget", RELEASE, "-n", NS])["spec"]["size"], "large");
    assert_eq!(
        release_secrets(&emu),
        [
            (format!("sh.helm.release.v1.{RELEASE}.v1"), "superseded".to_string()),
            (format!("sh.helm.release.v1.{RELEASE}.v2"), "deployed".to_string()),
        ]
    );
    assert_eq!(greeting_owner_operation(&emu), operation);
    let history = helm(&emu, method, "history", None);
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");

    // Uninstall: the chart's objects and the release Secrets are gone; the CRD stays (Helm
    // never deletes what it installed from crds/).
    helm(&emu, method, "uninstall", None);
    for kind in ["deployment", "serviceaccount", "service", "role", "rolebinding", "configmap"] {
        let list = get_json(&emu, &[kind, "-n", NS, "-l", &format!("app.kubernetes.io/instance={RELEASE}")]);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{kind} left behind: {list}");
    }
    let gone = emu.kubectl(&["get", "clusterrole", &format!("{RELEASE}-gadgets")]);
    assert!(gone.fails().contains("not found"), "{gone:?}");
    assert!(release_secrets(&emu).is_empty(), "release secrets left behind");
    get_json(&emu, &["crd", "gadgets.example.com"]);
}
