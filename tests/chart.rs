//! The Helm chart (`charts/connection-operator`) on the real control plane with the real
//! helm CLI, and the Argo CD health check (`docs/argocd-health.lua`).
//!
//! - `helm lint --strict` passes; values.schema.json and the template guards reject bad
//!   values (`helm template`, no cluster).
//! - `helm template | kubectl apply --dry-run=server`: the real API server validates every
//!   rendered object, cluster-wide and for one watched namespace.
//! - install / upgrade / rollback / uninstall with helm into a namespace labelled
//!   `pod-security.kubernetes.io/enforce=restricted`: the replicaset controller's Pod is
//!   admitted by PodSecurity (nothing runs it: there is no kubelet), and a deliberately
//!   weakened pod spec is refused.
//! - RBAC, judged by the real authorizer: a TokenRequest token of the chart's ServiceAccount
//!   runs the operator (`controller::run`, recording every API call and the server's answer)
//!   until all four providers' Connections are in sync, with no 401 or 403, and every verb
//!   the chart grants is one the operator used; taking any single verb away makes one of the
//!   operator's calls (replayed through the libraries the operator uses) fail with 403; the
//!   operator binary, run as the ServiceAccount with a verb taken away, reports the 403.
//! - The Lua health check runs in a Lua 5.1 interpreter (Argo CD uses gopher-lua, Lua 5.1)
//!   against sample statuses.

#[path = "helm/operator_calls.rs"]
mod operator_calls;
#[path = "helm/operator_process.rs"]
mod operator_process;
#[path = "helm/release.rs"]
mod release;
#[path = "helm/tenancy.rs"]
mod tenancy;

use std::path::Path;
use std::sync::Arc;

use connection_testkit::providers::Providers;
use connection_testkit::wait::{eventually, eventually_blocking};
use connection_testkit::{Cluster, Helm};
use serde_json::{Value, json};

use operator_calls::{Scope, await_authorizer, grants, release_roles};
use operator_process::OperatorProcess;
use release::{Release, chart_dir};
use tenancy::Tenancy;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> String {
    chart_dir().to_string_lossy().into_owned()
}

const CRDS: [&str; 3] = [
    "connections.connection-operator.dev",
    "providers.connection-operator.dev",
    "clusterproviders.connection-operator.dev",
];

// ---------------------------------------------------------------------------------------
// Lint, schema, CRDs: no cluster.

/// Values that switch on every optional part of the chart.
fn everything_on() -> Value {
    json!({"replicas": 2, "leaderElection": {"enabled": true}, "sharding": {"replicas": 2, "standbys": 1},
           "operator": {"watchNamespaces": ["tenants"], "logFormat": "text"},
           "rbac": {"secretNamespaces": ["platform"]},
           "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}}}})
}

#[test]
fn chart_lints_strictly() {
    let helm = Helm::offline();
    for values in [json!({}), everything_on()] {
        let file = helm.values_file(&values);
        let out = helm.ok(&["lint", "--strict", &chart(), "-f", &file.to_string_lossy()]);
        assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{values}: {out}");
        assert!(!out.contains("[WARNING]") && !out.contains("[ERROR]"), "{values}: {out}");
    }
    // The lint checks the values against the schema. (It does not catch a template's
    // `fail`: Helm's lint mode only logs it, so the guards are tested with `helm template`.)
    let file = helm.values_file(&json!({"replica": 1}));
    let out = helm.run(&["lint", "--strict", &chart(), "-f", &file.to_string_lossy()]);
    assert!(
        !out.ok && out.stdout.contains("[ERROR] values.yaml: - at '': additional properties 'replica' not allowed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn values_schema_and_template_guards_reject_bad_values() {
    let helm = Helm::offline();
    let template = |values: &Value| {
        let file = helm.values_file(values);
        helm.run(&["template", "co", &chart(), "--namespace", "connection-operator", "-f", &file.to_string_lossy()])
    };
    for (values, expected) in [
        (json!({"replicas": 2}), "at '/leaderElection/enabled': value must be true"),
        (json!({"operator": {"logFormat": "xml"}}), "at '/operator/logFormat': value must be one of 'json', 'text'"),
        (json!({"operator": {"concurrency": 0}}), "at '/operator/concurrency': minimum: got 0, want 1"),
        (
            json!({"operator": {"watchNamespaces": ["a", "b"]}}),
            "at '/operator/watchNamespaces': maxItems: got 2, want 1",
        ),
        (json!({"operator": {"watchNamespaces": ["Not_A_Namespace"]}}), "at '/operator/watchNamespaces/0'"),
        (json!({"replica": 1}), "additional properties 'replica' not allowed"),
        (json!({"leaderElection": {"enabled": "yes"}}), "at '/leaderElection/enabled': got string, want boolean"),
        (json!({"sharding": {"replicas": 0}}), "at '/sharding/replicas': minimum: got 0, want 1"),
        (json!({"sharding": {"standbys": -1}}), "at '/sharding/standbys': minimum: got -1, want 0"),
    ] {
        let out = template(&values);
        assert!(!out.ok, "{values} must be rejected: {}", out.stdout);
        assert!(out.stderr.contains("values don't meet the specifications of the schema"), "{values}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{values}: expected {expected:?} in {}", out.stderr);
    }
    let out = template(&json!({"metrics": {"service": {"enabled": false}, "serviceMonitor": {"enabled": true}}}));
    assert!(
        !out.ok && out.stderr.contains("metrics.serviceMonitor.enabled requires metrics.service.enabled"),
        "{}",
        out.stderr
    );
    // The good values render.
    for values in [json!({}), everything_on()] {
        let out = template(&values);
        assert!(out.ok, "{values}: {}", out.stderr);
    }
}

/// The objects `helm template` renders with `values`, by kind.
fn rendered(values: &Value) -> Vec<Value> {
    let helm = Helm::offline();
    let file = helm.values_file(values);
    let out =
        helm.ok(&["template", "co", &chart(), "--namespace", "connection-operator", "-f", &file.to_string_lossy()]);
    out.split("\n---")
        .filter_map(|doc| serde_yaml::from_str::<Value>(doc).ok())
        .filter(|doc| doc.get("kind").is_some())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn sharding_renders_a_pod_per_shard_plus_standbys_and_nothing_when_off() {
    // One shard is no sharding: the rendering is the default one, whatever the standbys.
    let default = rendered(&json!({}));
    assert_eq!(rendered(&json!({"sharding": {"replicas": 1, "standbys": 3}})), default);
    let deployment = of_kind(&default, "Deployment")[0];
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].as_array().expect("args").clone();
    assert!(!args.iter().any(|a| a.as_str().is_some_and(|a| a.starts_with("--shards"))), "{args:?}");

    let sharded = rendered(&json!({"sharding": {"replicas": 3, "standbys": 2}}));
    let deployment = of_kind(&sharded, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 5, "three shards and two standbys");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].as_array().expect("args").clone();
    assert!(args.contains(&json!("--shards=3")), "{args:?}");
    // The shard Leases need the Lease Role, without --leader-election.
    assert!(!args.contains(&json!("--leader-election")), "{args:?}");
    let lease_roles: Vec<&Value> = of_kind(&sharded, "Role")
        .into_iter()
        .filter(|r| {
            r["rules"].as_array().is_some_and(|rules| rules.iter().any(|rule| rule["resources"] == json!(["leases"])))
        })
        .collect();
    assert_eq!(lease_roles.len(), 1, "{sharded:?}");
    assert!(of_kind(&default, "Role").iter().all(|r| !r.to_string().contains("leases")), "no Lease Role when off");
    // The `replicas` guard is about a single leader; shards have their own Leases.
    let with_replicas = rendered(&json!({"replicas": 1, "sharding": {"replicas": 2, "standbys": 0}}));
    assert_eq!(of_kind(&with_replicas, "Deployment")[0]["spec"]["replicas"], 2);
}

/// The chart's shard-label policy for release `release` with `shards`, bound to `namespace`.
fn shard_label_policy(cluster: &Cluster, release: &str, shards: u32, namespace: &str) -> String {
    let helm = cluster.helm();
    let values =
        helm.values_file(&json!({"sharding": {"replicas": shards}, "operator": {"watchNamespaces": [namespace]}}));
    let rendered = helm.ok(&[
        "template",
        release,
        &chart(),
        "--kube-version",
        &cluster.kubectl().server_version(),
        "-f",
        &values.to_string_lossy(),
    ]);
    // `--show-only` fails on a template that renders nothing, so pick its documents.
    rendered
        .split("\n---\n")
        .filter(|doc| doc.contains("templates/shard-label-policy.yaml"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Deletes the policy when the test ends, however it ends: it is cluster-scoped.
struct PolicyGuard<'a>(&'a Cluster, String);

impl Drop for PolicyGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl().run(&["delete", "--ignore-not-found", "-f", "-"], Some(&self.1));
    }
}

/// On the shared control plane, bound to the test's namespace: with sharding on, a Provider's
/// shard label must name a shard at `kubectl apply`; a label already stored is let through
/// when the shard count goes down.
#[test]
fn shard_label_policy_refuses_a_label_naming_no_shard() {
    let cluster = Cluster::real();
    cluster.install_crds();
    let ns = cluster.namespace("shardvap");
    let kubectl = ns.kubectl();
    let release = ns.name().to_string();
    let provider = |name: &str, label: Option<&str>| {
        let labels = label.map(|l| json!({"connection-operator.dev/shard": l})).unwrap_or(json!({}));
        json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Provider",
               "metadata": {"name": name, "labels": labels},
               "spec": {"type": "datagrid", "credentialsRef": {"name": "s", "key": "token"}}})
        .to_string()
    };
    let apply = |name: &str, label: Option<&str>| kubectl.run(&["apply", "-f", "-"], Some(&provider(name, label)));
    assert_eq!(shard_label_policy(&cluster, &release, 1, ns.name()), "", "nothing without sharding");

    // Three shards first: a Provider on shard 2.
    let three = shard_label_policy(&cluster, &release, 3, ns.name());
    let _guard = PolicyGuard(&cluster, three.clone());
    cluster.kubectl().apply(&three);
    let probe = provider("probe", Some("3"));
    eventually_blocking("the shard-label policy to be enforced", || {
        let out = kubectl.run(&["apply", "--dry-run=server", "-f", "-"], Some(&probe));
        (!out.ok && out.stderr.contains("ValidatingAdmissionPolicy")).then_some(())
    });
    let out = apply("legacy", Some("2"));
    assert!(out.ok, "{}", out.stderr);

    // Two shards: 2 names no shard any more.
    let two = shard_label_policy(&cluster, &release, 2, ns.name());
    cluster.kubectl().apply(&two);
    eventually_blocking("the two-shard policy to be enforced", || {
        let out = kubectl.run(&["apply", "--dry-run=server", "-f", "-"], Some(&provider("probe", Some("2"))));
        (!out.ok && out.stderr.contains("0 to 1")).then_some(())
    });
    for (label, shown) in [("2", "\"2\""), ("x", "\"x\""), ("07", "\"07\""), ("", "\"\"")] {
        let out = apply("bad", Some(label));
        assert!(!out.ok, "{label:?} must be refused");
        assert!(
            out.stderr.contains(&format!("label connection-operator.dev/shard must name a shard, 0 to 1: {shown}")),
            "{label:?}: {}",
            out.stderr
        );
    }
    for (name, label) in [("zero", Some("0")), ("one", Some("1")), ("unlabelled", None)] {
        let out = apply(name, label);
        assert!(out.ok, "{name}: {}", out.stderr);
    }
    // The stored label stays acceptable while unchanged; changing it to a bad one is refused.
    kubectl.ok(&["label", "provider", "legacy", "touched=yes"]);
    let out = kubectl.run(&["label", "--overwrite", "provider", "legacy", "connection-operator.dev/shard=5"], None);
    assert!(!out.ok && out.stderr.contains("0 to 1: \"5\""), "{}", out.stderr);
}

#[test]
fn chart_crds_are_the_top_level_crds() {
    let names = |dir: &Path| {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).expect("crds directory").map(|e| e.expect("entry").file_name()).collect();
        names.sort();
        names
    };
    let top = names(&root().join("crds"));
    assert_eq!(top, names(&chart_dir().join("crds")), "the chart's crds/ must hold the same files as crds/");
    for name in top {
        let a = std::fs::read(root().join("crds").join(&name)).expect("read");
        let b = std::fs::read(chart_dir().join("crds").join(&name)).expect("read");
        assert!(a == b, "charts/connection-operator/crds/{} differs from crds/: copy it over", name.to_string_lossy());
    }
}

// ---------------------------------------------------------------------------------------
// The real API server judges what the chart renders.

/// The ServiceMonitor kind, so the chart's ServiceMonitor can be dry-run (see the file).
fn install_servicemonitor_crd(cluster: &Cluster) {
    let _guard = cluster.control_plane().map(|plane| plane.lock("servicemonitor-crd"));
    let crd = root().join("tests/helm/servicemonitor-crd.yaml");
    let kubectl = cluster.kubectl();
    kubectl.ok(&["apply", "--server-side", "--field-manager=chart-tests", "-f", &crd.to_string_lossy()]);
    kubectl.ok(&["wait", "--for=condition=Established", "--timeout=120s", "crd/servicemonitors.monitoring.coreos.com"]);
}

#[test]
fn the_real_api_server_accepts_every_rendered_object() {
    let cluster = Cluster::real();
    cluster.install_crds();
    install_servicemonitor_crd(&cluster);
    let release = Release::new(&cluster);
    let tenancy = Tenancy::new(&cluster);
    let kubectl = cluster.kubectl();
    let helm = cluster.helm();
    let monitor = json!({"enabled": true, "labels": {"release": "prometheus"}});
    let cluster_wide =
        json!({"replicas": 2, "leaderElection": {"enabled": true}, "metrics": {"serviceMonitor": monitor}});
    let mut one_namespace = operator_calls::values(Scope::OneNamespace, &tenancy, true);
    one_namespace["metrics"] = json!({"serviceMonitor": monitor});
    // Both renderings hold every kind: Roles for the Lease (and, for one namespace, the
    // watched namespaces), ClusterRoles for everything (or the ClusterProviders).
    let kinds = [
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    // Rendered for the cluster's release, as Argo CD does (`helm template` alone assumes its
    // own default release, and the chart renders release-dependent CEL).
    let kube_version = kubectl.server_version();
    for values in [cluster_wide, one_namespace] {
        let file = helm.values_file(&values);
        let rendered = helm.ok(&[
            "template",
            &release.name,
            &chart(),
            "--namespace",
            release.namespace(),
            "--include-crds",
            "--kube-version",
            &kube_version,
            "-f",
            &file.to_string_lossy(),
        ]);
        let documents = rendered.split("\n---").filter(|d| d.contains("kind:")).count();
        for kind in &kinds {
            assert!(rendered.contains(&format!("\nkind: {kind}\n")), "{values}: no {kind} rendered");
        }
        let out = kubectl.run(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
        assert!(out.ok, "the API server refused the chart rendered with {values}:\n{}", out.stderr);
        let accepted = out.stdout.lines().filter(|l| l.ends_with("(server dry run)")).count();
        assert_eq!(accepted, documents, "{values}: every object is accepted:\n{}", out.stdout);
        // No warning about any object: the Deployment's pod template meets the restricted
        // profile of its namespace (PodSecurity checks workload templates too, as warnings),
        // and nothing is deprecated. (Client-side apply of CRDs that exist already warns about
        // their missing last-applied annotation: not the chart's concern.)
        let warnings: Vec<&str> =
            release::warnings(&out.stderr).into_iter().filter(|w| !w.contains("last-applied-configuration")).collect();
        assert!(warnings.is_empty(), "{values}: {}", warnings.join("\n"));
    }
    // The same dry run tells a weakened pod template apart (a warning on the Deployment;
    // the Pods themselves are refused, see below).
    let file = helm.values_file(&weakened());
    let rendered = helm.ok(&[
        "template",
        &release.name,
        &chart(),
        "--namespace",
        release.namespace(),
        "--kube-version",
        &kube_version,
        "-f",
        &file.to_string_lossy(),
    ]);
    let out = kubectl.run(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("would violate PodSecurity \"restricted:latest\""), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// Install, upgrade, rollback, uninstall; PodSecurity.

/// The container and pod hardening the chart promises, in a Deployment's pod template or a Pod.
#[track_caller]
fn assert_hardened(pod: &Value, service_account: &str) {
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{pod}");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{pod}");
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{pod}");
    assert_eq!(pod["serviceAccountName"], service_account);
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

/// Every rule of an RBAC object: no wildcards, Secrets and ConfigMaps read-only.
#[track_caller]
fn assert_least_privilege(role: &Value) {
    for rule in role["rules"].as_array().expect("rules") {
        for field in ["apiGroups", "resources", "verbs"] {
            let items = rule[field].as_array().expect(field);
            assert!(
                !items.is_empty() && items.iter().all(|v| !v.as_str().unwrap_or("*").contains('*')),
                "wildcard in {rule}"
            );
        }
        if rule["resources"].as_array().unwrap().iter().any(|r| r == "secrets" || r == "configmaps") {
            let verbs = rule["verbs"].as_array().unwrap();
            assert!(
                verbs.iter().all(|v| ["get", "list", "watch"].contains(&v.as_str().unwrap_or_default())),
                "Secrets and ConfigMaps must be read-only: {rule}"
            );
        }
    }
}

/// The release's Pods (as the replicaset controller created them, i.e. as admitted).
fn pods(release: &Release) -> Vec<Value> {
    let selector = format!("app.kubernetes.io/instance={}", release.name);
    let list = release.get(&["pods", "--namespace", release.namespace(), "-l", &selector]);
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The ReplicaSet of the Deployment's current spec, once the deployment controller has seen
/// that spec (right after a helm upgrade or rollback it may still be working on the last).
fn current_replica_set(release: &Release) -> Option<Value> {
    let deploy = release.get_here("deployment", &release.fullname);
    if deploy["status"]["observedGeneration"] != deploy["metadata"]["generation"] {
        return None;
    }
    let revision = deploy["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str()?.to_string();
    let selector = format!("app.kubernetes.io/instance={}", release.name);
    let list = release.get(&["replicasets", "--namespace", release.namespace(), "-l", &selector]);
    list["items"]
        .as_array()?
        .iter()
        .find(|rs| {
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == revision.as_str()
                && rs["spec"]["template"]["spec"] == deploy["spec"]["template"]["spec"]
        })
        .cloned()
}

/// Wait until PodSecurity admitted at least one Pod of the Deployment's current ReplicaSet
/// (a rolling update never completes here: no Pod ever becomes available, so the counts of
/// old and new Pods are the deployment controller's business); those Pods.
fn admitted_pods(release: &Release) -> Vec<Value> {
    eventually_blocking(&format!("an admitted Pod of the current ReplicaSet of {}", release.fullname), || {
        let rs = current_replica_set(release)?;
        let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str()?.to_string();
        let pods: Vec<Value> = pods(release)
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
            .collect();
        (!pods.is_empty()).then_some(pods)
    })
}

/// Values that weaken the pod: an unconfined AppArmor profile (through the chart's
/// `podAnnotations`), which the restricted profile (and already the baseline) forbids.
fn weakened() -> Value {
    json!({"podAnnotations": {"container.apparmor.security.beta.kubernetes.io/operator": "unconfined"}})
}

#[test]
fn chart_installs_upgrades_rolls_back_and_uninstalls_in_a_restricted_namespace() {
    // A control plane of its own: no CRDs until Helm installs them from the chart's crds/.
    let cluster = Cluster::real_dedicated();
    let release = Release::new(&cluster);
    for crd in CRDS {
        assert!(!release.exists(&["crd", crd]), "{crd} before the install");
    }
    let ns = release.namespace().to_string();
    let full = release.fullname.clone();

    let installed = release.install(&json!({}));
    assert_eq!(installed["version"], 1, "{installed}");
    assert_eq!(installed["info"]["status"], "deployed", "{installed}");
    assert!(
        installed["info"]["notes"].as_str().unwrap_or_default().contains("Watching: all namespaces"),
        "{installed}"
    );
    for crd in CRDS {
        let crd = release.get(&["crd", crd]);
        let established = crd["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        assert!(established, "{crd}");
    }

    // The standard labels on every object.
    let metrics_service = format!("{full}-metrics");
    let objects = [
        vec!["deployment", &full, "--namespace", &ns],
        vec!["serviceaccount", &full, "--namespace", &ns],
        vec!["service", &metrics_service, "--namespace", &ns],
        vec!["poddisruptionbudget", &full, "--namespace", &ns],
        vec!["clusterrole", &full],
        vec!["clusterrolebinding", &full],
    ];
    for args in &objects {
        let obj = release.get(args);
        let labels = &obj["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], "connection-operator", "{args:?}: {labels}");
        assert_eq!(labels["app.kubernetes.io/instance"], release.name.as_str(), "{args:?}");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{args:?}");
        assert_eq!(labels["app.kubernetes.io/version"], "0.1.0", "{args:?}");
        assert_eq!(labels["app.kubernetes.io/part-of"], "connection-operator", "{args:?}");
    }

    let deploy = release.get_here("deployment", &full);
    assert_hardened(&deploy["spec"]["template"]["spec"], &full);
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(
        release.deployment_args(),
        ["run", "--metrics-addr=0.0.0.0:8080", "--concurrency=16", "--log-format=json"]
    );
    let svc = release.get_here("service", &metrics_service);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(svc["spec"]["selector"], deploy["spec"]["selector"]["matchLabels"]);
    let pdb = release.get_here("poddisruptionbudget", &full);
    assert_eq!(pdb["spec"]["selector"], deploy["spec"]["selector"]);
    assert_least_privilege(&release.get(&["clusterrole", &full]));
    let binding = release.get(&["clusterrolebinding", &full]);
    assert_eq!(binding["subjects"], json!([{"kind": "ServiceAccount", "name": full, "namespace": ns}]));
    // No Lease RBAC without leader election.
    assert!(!release.exists(&["role", &format!("{full}-leader-election"), "--namespace", &ns]));

    // The replicaset controller's Pod was admitted by the restricted namespace, hardened as
    // the template says. (It stays Pending: nothing schedules it.)
    let pods = admitted_pods(&release);
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_hardened(&pods[0]["spec"], &full);
    assert_eq!(pods[0]["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");

    // Upgrade: two replicas with leader election, text logs, lower concurrency.
    let values = json!({"replicas": 2, "leaderElection": {"enabled": true}, "operator": {"concurrency": 4, "logFormat": "text"}});
    let upgraded = release.upgrade(&values);
    assert_eq!(upgraded["version"], 2, "{upgraded}");
    let deploy = release.get_here("deployment", &full);
    assert_hardened(&deploy["spec"]["template"]["spec"], &full);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        release.deployment_args(),
        ["run", "--metrics-addr=0.0.0.0:8080", "--concurrency=4", "--log-format=text", "--leader-election"]
    );
    let lease_role = release.get_here("role", &format!("{full}-leader-election"));
    assert_eq!(
        lease_role["rules"],
        json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "patch"]}])
    );
    release.get_here("rolebinding", &format!("{full}-leader-election"));
    let pods = admitted_pods(&release);
    assert!(
        pods[0]["spec"]["containers"][0]["args"].as_array().unwrap().contains(&json!("--leader-election")),
        "{pods:?}"
    );

    // Rollback to the first revision: its objects come back, the Lease RBAC goes.
    release.rollback(1);
    let history = release.history();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!(history[2]["status"], "deployed");
    assert_eq!(history[2]["description"], "Rollback to 1");
    assert_eq!(release.get_here("deployment", &full)["spec"]["replicas"], 1);
    assert_eq!(
        release.deployment_args(),
        ["run", "--metrics-addr=0.0.0.0:8080", "--concurrency=16", "--log-format=json"]
    );
    assert!(!release.exists(&["role", &format!("{full}-leader-election"), "--namespace", &ns]));
    assert!(!release.exists(&["rolebinding", &format!("{full}-leader-election"), "--namespace", &ns]));
    let pods = admitted_pods(&release);
    assert!(
        !pods[0]["spec"]["containers"][0]["args"].as_array().unwrap().contains(&json!("--leader-election")),
        "{pods:?}"
    );

    release.uninstall();
    for args in &objects {
        assert!(!release.exists(args), "{args:?} survived the uninstall");
    }
    let secrets = release.get(&["secrets", "--namespace", &ns, "-l", "owner=helm"]);
    assert_eq!(secrets["items"], json!([]), "the release's history is gone: {secrets}");
    // The garbage collector takes the ReplicaSets and Pods the Deployment owned.
    eventually_blocking("the ReplicaSets and Pods collected", || {
        let selector = format!("app.kubernetes.io/instance={}", release.name);
        let left = release.get(&["replicasets,pods", "--namespace", &ns, "-l", &selector]);
        left["items"].as_array().is_some_and(|i| i.is_empty()).then_some(())
    });
    // Helm never deletes what it installed from crds/ (it would delete every Connection).
    for crd in CRDS {
        assert!(release.exists(&["crd", crd]), "{crd} was deleted by the uninstall");
    }
}

#[test]
fn pod_security_refuses_the_pods_of_a_weakened_pod_spec() {
    let cluster = Cluster::real();
    cluster.install_crds();
    let release = Release::new(&cluster);
    // The Deployment itself is accepted (enforce applies to Pods); the API server warns.
    let out = release.helm_chart("install", &weakened(), &[]);
    assert!(out.ok, "{}", out.stderr);
    // (helm logs the warning with its quotes escaped.)
    assert!(
        out.stderr.contains("would violate PodSecurity") && out.stderr.contains("restricted:latest"),
        "{}",
        out.stderr
    );
    // The replicaset controller's Pod is refused.
    let failure = eventually_blocking("the ReplicaSet to report FailedCreate", || {
        let rs = current_replica_set(&release)?;
        rs["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure" && c["reason"] == "FailedCreate")
            .cloned()
    });
    let message = failure["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("is forbidden: violates PodSecurity \"restricted:latest\": forbidden AppArmor profile"),
        "{failure}"
    );
    assert!(pods(&release).is_empty(), "no Pod may have been admitted: {:?}", pods(&release));

    // The chart's own pod spec, in the same namespace, is admitted.
    release.upgrade(&json!({}));
    let admitted = admitted_pods(&release);
    assert!(
        admitted[0]["metadata"]["annotations"]["container.apparmor.security.beta.kubernetes.io/operator"].is_null(),
        "{}",
        admitted[0]
    );
}

#[test]
fn watching_one_namespace_grants_roles_there_and_clusterproviders_only_cluster_wide() {
    let cluster = Cluster::real();
    cluster.install_crds();
    let tenancy = Tenancy::new(&cluster);
    let release = Release::new(&cluster);
    let full = release.fullname.clone();
    let installed = release.install(&operator_calls::values(Scope::OneNamespace, &tenancy, false));
    let notes = installed["info"]["notes"].as_str().unwrap_or_default();
    assert!(notes.contains(&format!("Watching: namespace {}.", tenancy.tenants())), "{installed}");
    assert!(release.deployment_args().contains(&format!("--namespace={}", tenancy.tenants())));
    assert!(!release.exists(&["clusterrole", &full]));
    let cluster_role = release.get(&["clusterrole", &format!("{full}-clusterproviders")]);
    let resources: Vec<&Value> =
        cluster_role["rules"].as_array().unwrap().iter().flat_map(|r| r["resources"].as_array().unwrap()).collect();
    assert_eq!(resources, [&json!("clusterproviders"), &json!("clusterproviders/status")]);
    let role = release.get(&["role", &full, "--namespace", tenancy.tenants()]);
    assert_least_privilege(&role);
    assert_eq!(
        release.get(&["rolebinding", &full, "--namespace", tenancy.tenants()])["roleRef"]["name"],
        full.as_str()
    );
    let secrets = release.get(&["role", &format!("{full}-secrets"), "--namespace", tenancy.platform()]);
    assert_eq!(secrets["rules"], json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]));
    assert!(!release.exists(&["role", &full, "--namespace", tenancy.platform()]));
    let pods = admitted_pods(&release);
    assert_hardened(&pods[0]["spec"], &full);
}

// ---------------------------------------------------------------------------------------
// The operator itself, authenticated as the chart's ServiceAccount.

/// Wait until the real authorizer grants the ServiceAccount every verb of the release's
/// roles (RBAC sees new Roles through an informer, a moment after Helm created them).
async fn await_release_rbac(release: &Release<'_>, tenancy: &Tenancy, scope: Scope, user: &str) {
    let admin = release.cluster.client().await;
    for role in release_roles(release, scope, tenancy) {
        await_authorizer(&admin, user, &grants(&role), role["metadata"]["namespace"].as_str(), true).await;
    }
}

/// Install the chart for `scope`, start the provider emulators with one upstream connection
/// per provider, and run `controller::run` with a TokenRequest token of the chart's
/// ServiceAccount: every Connection (three through namespaced Providers, one through a
/// ClusterProvider whose Secret lives elsewhere, one with deletionPolicy Delete that is then
/// deleted) reaches its end state, and the API server refused none of the operator's calls.
/// Cluster-wide, the operator also runs with leader election (`run_when_leading`, as
/// `--leader-election` does), so the Lease Role is exercised too.
async fn operator_runs_without_a_denial(cluster: &Cluster, scope: Scope) {
    use connection_operator::admin::Readiness;
    use connection_operator::controller::{self, LeaseSettings, RunConfig};
    use connection_operator::metrics::Metrics;
    let tenancy = Tenancy::new(cluster);
    let release = Release::new(cluster);
    let leader_election = scope == Scope::AllNamespaces;
    release.install(&operator_calls::values(scope, &tenancy, leader_election));
    let tenants = tenancy.tenants().to_string();

    let providers = Providers::start().await;
    for (p, id, state) in [
        ("nango", "acme", json!({"provider_config_key": "salesforce", "metadata": {"theirs": "webhook-1"}})),
        ("mielto", "acme", json!({"label": "Old", "status": "inactive", "config": {"theirs": 7}})),
        ("arena", "4242", json!({"metadata": {"theirs": true}})),
        ("datagrid", "acme", json!({"name": "Old name"})),
    ] {
        providers.seed(p, id, state).await;
    }
    for p in ["nango", "mielto", "arena"] {
        tenancy.secret(&tenants, &format!("{p}-credentials"), "tok-chart-rbac");
        tenancy.provider(p, &providers.base_url(p));
    }
    tenancy.secret(tenancy.platform(), "datagrid-credentials", "tok-chart-rbac");
    tenancy.datagrid_cluster_provider(&providers.base_url("datagrid"));
    tenancy.connection("n", json!({"providerRef": {"name": "nango"}, "connectionId": "acme", "nango": {"providerConfigKey": "salesforce", "metadata": {"region": "eu"}}}));
    tenancy.connection("m", json!({"providerRef": {"name": "mielto"}, "connectionId": "acme", "mielto": {"label": "Acme", "status": "active", "config": {"channel": "#a"}}, "deletionPolicy": "Delete"}));
    // Shared settings from a ConfigMap (its metadata watch and its read).
    tenancy.config_map(&tenants, "arena-defaults", json!({"tier": "gold"}));
    tenancy.connection(
        "a",
        json!({"providerRef": {"name": "arena"}, "connectionId": "4242",
               "arena": {"metadata": {"reviewed": true}, "metadataFrom": [{"configMapRef": {"name": "arena-defaults"}}]}}),
    );
    tenancy.connection("d", json!({"providerRef": {"kind": "ClusterProvider", "name": tenancy.cluster_provider}, "connectionId": "acme", "datagrid": {"name": "Acme Drive"}}));

    let account = cluster.service_account(release.namespace(), &release.fullname);
    await_release_rbac(&release, &tenancy, scope, &account.user).await;
    let (client, calls) = account.recorded_client().await;
    let config = RunConfig {
        namespace: (scope == Scope::OneNamespace).then(|| tenants.clone()),
        concurrency: 4,
        ..RunConfig::default()
    };
    let (metrics, readiness) = (Arc::new(Metrics::new()), Readiness::default());
    let operator = if leader_election {
        let lease = LeaseSettings::new(release.namespace(), "connection-operator-0");
        tokio::spawn(async move {
            if let Err(e) =
                controller::run_when_leading(client, config, lease, metrics, readiness, std::future::pending()).await
            {
                panic!("leader election failed: {e}");
            }
        })
    } else {
        tokio::spawn(controller::run(client, config, metrics, readiness, std::future::pending()))
    };

    for name in ["n", "m", "a", "d"] {
        eventually(&format!("Connection {name} Ready=True InSync"), || async { tenancy.in_sync(name).then_some(()) })
            .await;
    }
    let upstream = providers.upstream("nango", "acme").await;
    assert_eq!(upstream["metadata"], json!({"theirs": "webhook-1", "region": "eu"}));
    let arena = providers.upstream("arena", "4242").await;
    assert_eq!(
        arena["metadata"],
        json!({"theirs": true, "reviewed": true, "tier": "gold"}),
        "the ConfigMap's key reached Are.na"
    );
    let m = tenancy.get_connection("m");
    assert_eq!(
        m["metadata"]["finalizers"],
        json!(["connection-operator.dev/cleanup"]),
        "the operator added its finalizer"
    );
    // Deleting with deletionPolicy Delete: cleanup upstream, then the finalizer is released.
    tenancy.kubectl().ok(&["delete", "connection", "m", "--namespace", &tenants, "--wait=false"]);
    eventually("Connection m deleted", || async {
        let out = tenancy
            .kubectl()
            .run_async(&["get", "connection", "m", "--namespace", &tenants, "--ignore-not-found", "-o", "name"], None)
            .await;
        (out.ok && out.stdout.trim().is_empty()).then_some(())
    })
    .await;
    let mielto = providers.upstream("mielto", "acme").await;
    assert_eq!(mielto["config"], json!({"theirs": 7}), "the owned key was removed upstream");
    if leader_election {
        let lease = release.get_here("lease", operator_calls::LEASE);
        assert_eq!(lease["spec"]["holderIdentity"], "connection-operator-0", "{lease}");
    }
    assert!(!operator.is_finished(), "the operator stopped early");
    operator.abort();
    let _ = operator.await;

    // What the API server answered the operator: never 401 or 403.
    let recorded = calls.calls();
    assert!(recorded.len() >= 20, "the operator's calls were recorded: {recorded:?}");
    let denied: Vec<String> = recorded.iter().filter(|c| c.denied()).map(ToString::to_string).collect();
    assert!(denied.is_empty(), "the API server refused the operator:\n{}", denied.join("\n"));
    // Events were published by the ServiceAccount.
    let events = release.get(&["events.v1.events.k8s.io", "--namespace", &tenants]);
    let items = events["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items.iter().any(|e| e["reportingController"] == "connection-operator" && e["reason"] == "InSync"),
        "no InSync Event: {events}"
    );

    // And the other way round: the operator used every (verb, group, resource) the chart
    // grants, except the Event patch, which kube-runtime's Recorder sends only when the same
    // Event repeats within minutes, and the Provider/ClusterProvider get, which the controller
    // sends only when a Connection is reconciled before its Provider reached the watch cache
    // (both checked by the verb-by-verb tests).
    let used: Vec<(String, String, String)> = recorded
        .iter()
        .filter(|c| c.code.is_some())
        .map(|c| (c.verb.clone(), c.group.clone(), c.resource.clone()))
        .collect();
    for role in release_roles(&release, scope, &tenancy) {
        for grant in grants(&role) {
            if (grant.0 == "patch" && grant.2 == "events")
                || (grant.0 == "get" && (grant.2 == "providers" || grant.2 == "clusterproviders"))
            {
                continue;
            }
            assert!(
                used.contains(&grant),
                "the chart grants {grant:?} in {}, which the operator never used: {used:?}",
                role["metadata"]["name"]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_as_the_chart_service_account_reconciles_cluster_wide_without_a_denial() {
    // A cluster-wide operator would reconcile other tests' Connections on a shared control
    // plane; Helm installs the CRDs here.
    let cluster = Cluster::real_dedicated();
    operator_runs_without_a_denial(&cluster, Scope::AllNamespaces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_as_the_chart_service_account_reconciles_one_namespace_without_a_denial() {
    let cluster = Cluster::real();
    cluster.install_crds();
    operator_runs_without_a_denial(&cluster, Scope::OneNamespace).await;
}

/// Install the chart for `scope` (with leader election) and replay the operator's calls as
/// the ServiceAccount: all succeed; then take each verb away in turn.
async fn chart_rbac_grants_exactly_the_operator_calls(scope: Scope) {
    let cluster = Cluster::real();
    cluster.install_crds();
    let tenancy = Tenancy::new(&cluster);
    let release = Release::new(&cluster);
    release.install(&operator_calls::values(scope, &tenancy, true));
    operator_calls::seed(&tenancy);
    let account = cluster.service_account(release.namespace(), &release.fullname);
    await_release_rbac(&release, &tenancy, scope, &account.user).await;
    let client = account.client().await;
    let lease_namespace = Some(release.namespace());

    let failures = operator_calls::replay(&client, scope, &tenancy, lease_namespace).await;
    assert!(failures.is_empty(), "the chart's ServiceAccount got errors:\n{}", operator_calls::describe(&failures));
    match scope {
        Scope::AllNamespaces => {
            // Without leader election there is no Lease RBAC, and the Lease calls are forbidden.
            release.upgrade(&operator_calls::values(scope, &tenancy, false));
            let admin = cluster.client().await;
            let lease_verbs: Vec<_> = ["get", "create", "patch"]
                .iter()
                .map(|v| (v.to_string(), "coordination.k8s.io".to_string(), "leases".to_string()))
                .collect();
            await_authorizer(&admin, &account.user, &lease_verbs, lease_namespace, false).await;
            let failures = operator_calls::replay(&client, scope, &tenancy, lease_namespace).await;
            assert_eq!(operator_calls::calls(&failures), ["acquire lease"], "{}", operator_calls::describe(&failures));
            assert!(failures[0].forbidden, "{}", operator_calls::describe(&failures));
            let failures = operator_calls::replay(&client, scope, &tenancy, None).await;
            assert!(failures.is_empty(), "{}", operator_calls::describe(&failures));
            release.upgrade(&operator_calls::values(scope, &tenancy, true));
            await_release_rbac(&release, &tenancy, scope, &account.user).await;
        }
        Scope::OneNamespace => {
            // Cluster-wide calls are exactly what this mode does not grant.
            let failures = operator_calls::replay(&client, Scope::AllNamespaces, &tenancy, None).await;
            assert!(failures.iter().all(|f| f.forbidden), "{}", operator_calls::describe(&failures));
            assert_eq!(
                operator_calls::calls(&failures),
                [
                    "list connections",
                    "watch connections",
                    "list providers",
                    "watch providers",
                    "list secret metadata",
                    "watch secret metadata",
                    "list configmap metadata",
                    "watch configmap metadata"
                ]
            );
        }
    }
    operator_calls::assert_every_verb_is_needed(&release, &tenancy, &client, &account.user, scope).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_exactly_the_operator_calls_cluster_wide() {
    // Only calls are replayed (no operator reconciles anything): the shared control plane
    // is fine, with the release's cluster-scoped names unique.
    chart_rbac_grants_exactly_the_operator_calls(Scope::AllNamespaces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_exactly_the_operator_calls_in_one_namespace() {
    chart_rbac_grants_exactly_the_operator_calls(Scope::OneNamespace).await;
}

/// The Role in the watched namespace without `verb` on `resource` (as rendered otherwise).
fn without(role: &Value, resource: &str, verb: &str) -> Value {
    let mut reduced = role.clone();
    for rule in reduced["rules"].as_array_mut().expect("rules") {
        if rule["resources"].as_array().unwrap().iter().any(|r| r == resource) {
            let verbs: Vec<Value> = rule["verbs"].as_array().unwrap().iter().filter(|v| *v != verb).cloned().collect();
            rule["verbs"] = json!(verbs);
        }
    }
    reduced["rules"] = json!(
        reduced["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["verbs"].as_array().unwrap().is_empty())
            .cloned()
            .collect::<Vec<_>>()
    );
    reduced
}

/// The operator binary, started as the chart's pod would start it (the Deployment's args,
/// the ServiceAccount's token), with one verb taken from the chart's Role: it reports the
/// real authorizer's 403 where an operator's user looks (the Connection's Ready condition
/// and an Event; its log and metrics), and recovers once the verb is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reports_the_403_of_a_verb_the_chart_did_not_grant() {
    let cluster = Cluster::real();
    cluster.install_crds();
    let tenancy = Tenancy::new(&cluster);
    let release = Release::new(&cluster);
    release.install(&operator_calls::values(Scope::OneNamespace, &tenancy, false));
    let tenants = tenancy.tenants().to_string();
    let providers = Providers::start().await;
    providers.seed("nango", "acme", json!({"provider_config_key": "salesforce", "metadata": {}})).await;
    const TOKEN: &str = "tok-chart-never-logged";
    tenancy.secret(&tenants, "nango-credentials", TOKEN);
    tenancy.provider("nango", &providers.base_url("nango"));
    tenancy.connection("n", json!({"providerRef": {"name": "nango"}, "connectionId": "acme", "nango": {"providerConfigKey": "salesforce", "metadata": {"region": "eu"}}}));

    let account = cluster.service_account(release.namespace(), &release.fullname);
    await_release_rbac(&release, &tenancy, Scope::OneNamespace, &account.user).await;
    let admin = cluster.client().await;
    let role = release.get(&["role", &release.fullname, "--namespace", &tenants]);
    let grant =
        |verb: &str, group: &str, resource: &str| vec![(verb.to_string(), group.to_string(), resource.to_string())];

    // 1. No `get` on Secrets: the credentials cannot be read.
    operator_calls::replace_role(&admin, &without(&role, "secrets", "get")).await;
    await_authorizer(&admin, &account.user, &grant("get", "", "secrets"), Some(&tenants), false).await;
    let mut operator = OperatorProcess::start(account.kubeconfig(), &release.deployment_args());
    let expected = format!("Secret {tenants}/nango-credentials cannot be read (forbidden)");
    let ready = eventually("Connection n to report the forbidden Secret", || async {
        tenancy.ready("n").filter(|r| r["reason"] == "ProviderNotReady")
    })
    .await;
    assert_eq!(ready["status"], "False", "{ready}");
    assert!(ready["message"].as_str().unwrap_or_default().contains(&expected), "{ready}");
    let event = eventually("a Warning Event about it", || async {
        let events = release.get(&["events.v1.events.k8s.io", "--namespace", &tenants]);
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["reason"] == "ProviderNotReady" && e["regarding"]["name"] == "n")
            .cloned()
    })
    .await;
    assert_eq!(event["type"], "Warning", "{event}");
    assert!(event["note"].as_str().unwrap_or_default().contains(&expected), "{event}");

    // 2. `get` back, no `patch` on connections/status: the status cannot be written, which
    // the operator logs (with the API server's own words) and counts.
    operator_calls::replace_role(&admin, &without(&role, "connections/status", "patch")).await;
    await_authorizer(&admin, &account.user, &grant("get", "", "secrets"), Some(&tenants), true).await;
    await_authorizer(
        &admin,
        &account.user,
        &grant("patch", "connection-operator.dev", "connections/status"),
        Some(&tenants),
        false,
    )
    .await;
    // A Secret change makes the Connection reconcile at once (the rotation watch).
    tenancy.kubectl().ok(&["annotate", "secret", "nango-credentials", "--namespace", &tenants, "rotated=1"]);
    let forbidden = format!(
        "cannot patch resource \\\"connections/status\\\" in API group \\\"connection-operator.dev\\\" in the namespace \\\"{tenants}\\\""
    );
    let logged = eventually("the operator to log the forbidden status patch", || async {
        operator.log().into_iter().find(|l| l.contains("reconcile failed") && l.contains(&forbidden))
    })
    .await;
    let record: Value = serde_json::from_str(&logged).expect("a JSON log line");
    assert_eq!(record["level"], "WARN", "{record}");
    assert_eq!(record["connection"], format!("{tenants}/n"), "{record}");
    assert!(record["error"].as_str().unwrap_or_default().contains(&format!("User \"{}\"", account.user)), "{record}");
    let admin_url = operator.admin_url().expect("the operator logged its metrics address");
    let metrics =
        reqwest::get(format!("{admin_url}/metrics")).await.expect("metrics").text().await.expect("metrics text");
    assert!(
        operator_process::counter(&metrics, "connection_operator_reconcile_total{result=\"error\"}") >= 1.0,
        "{metrics}"
    );
    // The status still says what the operator could write last.
    assert_eq!(tenancy.ready("n").expect("Ready")["reason"], "ProviderNotReady");

    // 3. The chart's Role back: the next retry succeeds.
    operator_calls::replace_role(&admin, &role).await;
    await_authorizer(
        &admin,
        &account.user,
        &grant("patch", "connection-operator.dev", "connections/status"),
        Some(&tenants),
        true,
    )
    .await;
    eventually("Connection n in sync once the verb is back", || async { tenancy.in_sync("n").then_some(()) }).await;
    assert!(operator.running(), "the operator kept running through the 403s");
    let log = operator.log();
    assert!(log.iter().all(|l| !l.contains(TOKEN) && !l.contains(account.token())), "a credential reached the log");
}

// ---------------------------------------------------------------------------------------
// The emulator's RBAC enforcement (still used by the sandbox's own tiers), measured against
// the real authorizer.

/// The API server's answer to one call: `{"code": 200}`, or the Status it refused with.
fn answer<T>(result: Result<T, kube::Error>) -> Value {
    match result {
        Ok(_) => json!({"code": 200}),
        Err(kube::Error::Api(status)) => {
            json!({"code": status.code, "reason": status.reason, "message": status.message, "details": status.details})
        }
        Err(other) => json!({"error": other.to_string()}),
    }
}

/// A fixed scenario of a ServiceAccount `op` in `ops` and a Role in `t`, on `cluster`; every
/// answer, named. The token comes from TokenRequest on the real server, from the emulator's
/// admin API (with its RBAC enforcement switched on) on the emulator.
async fn authorizer_answers(cluster: &Cluster, ops: &str, t: &str) -> Vec<(&'static str, Value)> {
    use kube::api::{Api, ListParams};
    use kube::core::DynamicObject;

    let kubectl = cluster.kubectl();
    kubectl.ok(&["create", "serviceaccount", "op", "--namespace", ops]);
    let (client, _account) = match cluster.emulator_sandbox() {
        None => {
            let account = cluster.service_account(ops, "op");
            (account.client().await, Some(account))
        }
        Some(sandbox) => {
            let http = reqwest::Client::new();
            let on = http
                .put(format!("{}/_sandbox/rbac", sandbox.url()))
                .json(&json!({"enforce": true}))
                .send()
                .await
                .expect("enforce RBAC");
            assert!(on.status().is_success());
            let minted: Value = http
                .post(format!("{}/_sandbox/tokens", sandbox.url()))
                .json(&json!({"serviceAccount": format!("{ops}/op")}))
                .send()
                .await
                .expect("mint a token")
                .json()
                .await
                .expect("minted JSON");
            let kubeconfig = kube::config::Kubeconfig::from_yaml(minted["kubeconfig"].as_str().expect("kubeconfig"))
                .expect("minted kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
            (kube::Client::try_from(config).expect("client"), None)
        }
    };
    let ar = operator_calls::api_resource("Connection", "connections");
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let in_t: Api<DynamicObject> = Api::namespaced_with(client.clone(), t, &ar);
    let in_ops: Api<DynamicObject> = Api::namespaced_with(client.clone(), ops, &ar);
    let secrets_in_t: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), t);
    let lp = ListParams::default();
    let mut answers = vec![("no binding: list connections everywhere", answer(all.list(&lp).await))];

    kubectl.apply(&format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: conn-reader, namespace: {t}}}
rules:
- {{apiGroups: [connection-operator.dev], resources: [connections], verbs: [list, get]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: conn-reader, namespace: {t}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: conn-reader}}
subjects: [{{kind: ServiceAccount, name: op, namespace: {ops}}}]
"#
    ));
    // The real authorizer sees the new Role a moment later.
    eventually("the Role to take effect", || async { in_t.list(&lp).await.ok().map(drop) }).await;
    answers.push(("Role in t: list connections in t", answer(in_t.list(&lp).await)));
    answers.push(("Role in t: list connections everywhere", answer(all.list(&lp).await)));
    answers.push(("Role in t: list connections in ops", answer(in_ops.list(&lp).await)));
    answers.push(("Role in t: get a Secret in t", answer(secrets_in_t.get("x").await)));
    answers.push(("Role in t: delete a connection in t", answer(in_t.delete("x", &Default::default()).await)));

    // Deleting the ServiceAccount invalidates its token.
    kubectl.ok(&["delete", "serviceaccount", "op", "--namespace", ops]);
    let refused = eventually("the token to stop authenticating", || async {
        let answer = answer(in_t.list(&lp).await);
        (answer["code"] == 401).then_some(answer)
    })
    .await;
    answers.push(("ServiceAccount deleted: list connections in t", refused));
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_authorizes_service_account_tokens_like_the_real_api_server() {
    let real = Cluster::real();
    real.install_crds();
    let (ops, t) = (real.namespace("ops"), real.namespace("t"));
    let expected = authorizer_answers(&real, ops.name(), t.name()).await;
    let user = format!("system:serviceaccount:{}:op", ops.name());
    // What the real server says, so that the comparison below compares something.
    assert_eq!(expected[0].1["code"], 403, "{expected:?}");
    assert_eq!(
        expected[0].1["message"],
        format!(
            "connections.connection-operator.dev is forbidden: User \"{user}\" cannot list resource \"connections\" in API group \"connection-operator.dev\" at the cluster scope"
        )
    );
    assert_eq!(expected[1].1, json!({"code": 200}));
    assert_eq!(expected[5].1["code"], 403, "{expected:?}");

    let emulator = Cluster::emulator();
    emulator.install_crds();
    for ns in [ops.name(), t.name()] {
        emulator.kubectl().ok(&["create", "namespace", ns]);
    }
    let actual = authorizer_answers(&emulator, ops.name(), t.name()).await;
    for ((what, real), (_, emulated)) in expected.iter().zip(&actual) {
        assert_eq!(emulated, real, "{what}: the emulator answers {emulated}, the real API server {real}");
    }
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

    let in_sync =
        connection(2, json!({"observedGeneration": 2, "conditions": [ready("True", "InSync", "in sync", 2)]}));
    assert_eq!(health(&in_sync), ("Healthy".into(), "in sync".into()));

    let stale = connection(3, json!({"observedGeneration": 2, "conditions": [ready("True", "InSync", "in sync", 2)]}));
    assert_eq!(health(&stale), ("Progressing".into(), "Waiting for the operator to observe generation 3".into()));
    let stale_condition =
        connection(3, json!({"observedGeneration": 3, "conditions": [ready("True", "InSync", "in sync", 2)]}));
    assert_eq!(health(&stale_condition).0, "Progressing");
    let no_ready = connection(1, json!({"observedGeneration": 1, "conditions": []}));
    assert_eq!(health(&no_ready).0, "Progressing");

    let limited = connection(
        1,
        json!({"observedGeneration": 1, "conditions": [
            ready("False", "RateLimited", "rate limited", 1),
            {"type": "RateLimited", "status": "True", "reason": "RetryAfter", "message": "rate limited, retrying at 2026-01-01T00:01:00Z", "observedGeneration": 1}
        ]}),
    );
    assert_eq!(health(&limited), ("Progressing".into(), "rate limited, retrying at 2026-01-01T00:01:00Z".into()));
    // Rate limited while otherwise failing transiently: still progressing.
    let limited_retry = connection(
        1,
        json!({"observedGeneration": 1, "conditions": [
            ready("False", "UpstreamUnavailable", "503", 1),
            {"type": "RateLimited", "status": "True", "reason": "RetryAfter", "message": "retrying", "observedGeneration": 1}
        ]}),
    );
    assert_eq!(health(&limited_retry).0, "Progressing");

    let suspended = connection(
        1,
        json!({"observedGeneration": 1, "conditions": [ready("False", "Suspended", "suspended by spec.suspend", 1)]}),
    );
    assert_eq!(health(&suspended), ("Suspended".into(), "suspended by spec.suspend".into()));

    for reason in [
        "InvalidSpec",
        "Unauthorized",
        "UpstreamNotFound",
        "ProviderNotFound",
        "ProviderMismatch",
        "ReferenceNotFound",
        "DriftDetected",
    ] {
        let failed = connection(
            1,
            json!({"observedGeneration": 1, "conditions": [ready("False", reason, "the provider said no", 1)]}),
        );
        assert_eq!(health(&failed), ("Degraded".into(), format!("{reason}: the provider said no")), "{reason}");
    }
    for reason in ["UpstreamUnavailable", "ProviderNotReady", "Deleting"] {
        let transient =
            connection(1, json!({"observedGeneration": 1, "conditions": [ready("False", reason, "retrying", 1)]}));
        assert_eq!(health(&transient), ("Progressing".into(), "retrying".into()), "{reason}");
    }
    let unknown =
        connection(1, json!({"observedGeneration": 1, "conditions": [ready("Unknown", "Reconciling", "", 1)]}));
    assert_eq!(health(&unknown), ("Progressing".into(), "Reconciling".into()));
}

#[test]
fn install_doc_embeds_the_health_check_verbatim() {
    let script = std::fs::read_to_string(root().join("docs/argocd-health.lua")).expect("script");
    let doc = std::fs::read_to_string(root().join("docs/install.md")).expect("docs/install.md");
    let indented: String =
        script.lines().map(|l| if l.is_empty() { "\n".to_string() } else { format!("    {l}\n") }).collect();
    assert!(
        doc.contains(&indented),
        "docs/install.md must embed docs/argocd-health.lua (indented 4 spaces) in its argocd-cm example"
    );
}
