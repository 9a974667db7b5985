//! `scripts/control-plane` brings up a real control plane that does what the other tiers
//! rely on: the pinned release answers, RBAC judges ServiceAccount tokens from the
//! TokenRequest API, PodSecurity admission enforces namespace labels, namespaces finish
//! terminating and owner references are collected (kube-controller-manager), and `down`
//! leaves nothing running.

use std::process::Command;

use connection_testkit::tools;
use connection_testkit::wait::eventually_blocking;
use connection_testkit::{Cluster, ControlPlane};

fn pinned_kubernetes_version() -> String {
    let pins = std::fs::read_to_string(tools::workspace_root().join("toolchain/versions.env")).unwrap();
    let pinned = pins.lines().find_map(|l| l.strip_prefix("KUBERNETES_VERSION=")).unwrap().to_string();
    // scripts/test-kubernetes runs the tiers against another release.
    std::env::var("CONNECTION_OPERATOR_KUBERNETES_VERSION").unwrap_or(pinned)
}

#[test]
fn the_server_and_kubectl_report_the_pinned_release() {
    let cluster = Cluster::real();
    let version: serde_json::Value =
        serde_json::from_str(&cluster.kubectl().ok(&["version", "-o", "json"])).expect("kubectl version -o json");
    let expected = pinned_kubernetes_version();
    assert_eq!(version["serverVersion"]["gitVersion"], expected.as_str(), "{version}");
    assert_eq!(version["clientVersion"]["gitVersion"], expected.as_str(), "{version}");
    let apiserver = Command::new(tools::tool("kube-apiserver")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&apiserver.stdout).trim(), format!("Kubernetes {expected}"));
}

#[test]
fn service_account_tokens_are_judged_by_rbac() {
    let cluster = Cluster::real();
    let ns = cluster.namespace("rbac");
    let kubectl = ns.kubectl();
    kubectl.ok(&["create", "serviceaccount", "reader"]);
    let token = kubectl.ok(&["create", "token", "reader", "--duration=10m"]).trim().to_string();
    assert!(token.split('.').count() == 3, "a JWT: {token}");
    let as_reader = |args: &[&str]| {
        let mut all = vec!["--token", token.as_str(), "--kubeconfig", "/dev/null"];
        let server = cluster.kubectl().ok(&["config", "view", "--raw", "-o", "jsonpath={.clusters[0].cluster.server}"]);
        let ca = cluster.control_plane().unwrap().ca_cert();
        let ca = ca.to_string_lossy().into_owned();
        let out = Command::new(tools::kubectl())
            .args(["--server", &server, "--certificate-authority", &ca])
            .args({
                all.extend_from_slice(args);
                all
            })
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = as_reader(&["get", "configmaps", "-n", ns.name()]);
    assert!(!ok, "an unbound ServiceAccount must be refused");
    assert!(err.contains(&format!("system:serviceaccount:{}:reader", ns.name())) && err.contains("forbidden"), "{err}");
    kubectl.ok(&["create", "role", "read-cm", "--verb=list", "--resource=configmaps"]);
    kubectl.ok(&[
        "create",
        "rolebinding",
        "read-cm",
        "--role=read-cm",
        &format!("--serviceaccount={}:reader", ns.name()),
    ]);
    eventually_blocking("the RoleBinding to take effect", || {
        as_reader(&["get", "configmaps", "-n", ns.name()]).0.then_some(())
    });
    let (ok, err) = as_reader(&["get", "secrets", "-n", ns.name()]);
    assert!(!ok && err.contains("forbidden"), "only the granted verb and resource: {err}");
}

#[test]
fn pod_security_admission_enforces_the_restricted_level() {
    let cluster = Cluster::real();
    let ns = cluster.namespace("psa");
    let kubectl = ns.kubectl();
    kubectl.ok(&["label", "namespace", ns.name(), "pod-security.kubernetes.io/enforce=restricted"]);
    let pod = |security: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: example.invalid/x:1\n{security}"
        )
    };
    let refused = kubectl.refused("create", &pod(""));
    assert!(refused.contains("violates PodSecurity \"restricted:"), "{refused}");
    kubectl.ok_with(
        &["create", "-f", "-"],
        Some(&pod("    securityContext: {allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}\n")),
    );
}

#[test]
fn namespaces_terminate_and_owner_references_are_collected() {
    let cluster = Cluster::real();
    let kubectl = cluster.kubectl();
    let ns = cluster.namespace("gc");
    let k = ns.kubectl();
    k.ok(&["create", "configmap", "owner"]);
    let uid = k.ok(&["get", "configmap", "owner", "-o", "jsonpath={.metadata.uid}"]);
    k.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\n  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}]\n"
    ));
    k.ok(&["delete", "configmap", "owner"]);
    eventually_blocking("the garbage collector to delete the dependent", || {
        (!k.run(&["get", "configmap", "owned"], None).ok).then_some(())
    });
    let name = ns.name().to_string();
    drop(ns);
    eventually_blocking("the namespace to finish terminating", || {
        (!kubectl.run(&["get", "namespace", &name], None).ok).then_some(())
    });
}

#[test]
fn down_stops_every_process() {
    let plane = ControlPlane::dedicated();
    let pids: Vec<u32> = std::fs::read_to_string(plane.path("pids"))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(pids.len() >= 4, "etcd, kube-apiserver, kube-controller-manager and the watchdog: {pids:?}");
    let alive = |pid: &u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    assert!(pids.iter().all(alive));
    let out = Command::new(tools::control_plane_script()).arg("down").arg(plane.dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<&u32> = pids.iter().filter(|p| alive(p) && !is_zombie(**p)).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true)
}
