//! The Connection rule the CRD schema cannot hold: Are.na metadata keys must match
//! `^[A-Za-z0-9_]{1,40}$` (kube-apiserver cannot give a CEL rule on a map of untyped values a
//! type, so the CRD carries no rule for it; see `src/api/validate.rs`).
//!
//! - The controller: a Connection that breaks the rule is `Ready=False` reason `InvalidSpec`
//!   with a message naming the offending keys, and the provider sees no request at all (the
//!   Are.na sandbox journal stays empty), also when a reconcile is requested; once the spec
//!   is fixed it syncs. Run against the real control plane and against the emulator, with
//!   the operator watching the test's namespace only.
//! - The chart's ValidatingAdmissionPolicy, on a control plane of its own (a policy binds
//!   cluster-wide): `kubectl apply` is refused with the controller's very message, a valid
//!   manifest passes, keys already stored are let through on update, and with
//!   `operator.watchNamespaces` the binding covers those namespaces only.

use connection_operator::api::validate::validate_spec;
use connection_operator::api::{Connection, ConnectionSpec};
use connection_operator::controller::RECONCILE_REQUESTED_AT;
use connection_testkit::operator_env::{Env, fast_timing};
use connection_testkit::wait::{eventually, eventually_blocking};
use connection_testkit::{Backend, Cluster, Kubectl, Output, TestNamespace};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const API_VERSION: &str = "connection-operator.dev/v1alpha1";
const KEY_RULE: &str = "Are.na metadata keys must match ^[A-Za-z0-9_]{1,40}$";

fn arena_spec(metadata: Value) -> Value {
    json!({"providerRef": {"name": "arena"}, "connectionId": "4242", "arena": {"metadata": metadata}})
}

fn connection(name: &str, spec: Value) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "Connection", "metadata": {"name": name}, "spec": spec})
}

/// The controller's message for `spec` (`api::validate`), which the policy must repeat.
fn controller_message(spec: &Value) -> String {
    let spec: ConnectionSpec = serde_json::from_value(spec.clone()).expect("a Connection spec");
    validate_spec(&spec).expect_err("the spec breaks the key rule").to_string()
}

// ---- the controller ------------------------------------------------------------------------

#[test]
fn real_invalid_arena_keys_are_invalid_spec_without_upstream_requests() {
    invalid_arena_keys_are_invalid_spec_without_upstream_requests(Backend::Real);
}

#[test]
fn emulator_invalid_arena_keys_are_invalid_spec_without_upstream_requests() {
    invalid_arena_keys_are_invalid_spec_without_upstream_requests(Backend::Emulator);
}

/// The Connection once its Ready condition has `reason` for its current generation (and
/// `check` holds), waiting with the generous bound.
async fn ready(api: &Api<Connection>, name: &str, reason: &str, check: impl Fn(&Connection) -> bool) -> Connection {
    eventually(&format!("{name} Ready reason {reason}"), || async {
        let c = api.get_opt(name).await.ok()??;
        let status = c.status.as_ref()?;
        let condition = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (condition.reason == reason && condition.observed_generation == c.metadata.generation && check(&c)).then_some(c)
    })
    .await
}

fn condition<'a>(c: &'a Connection, type_: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    c.status.as_ref().and_then(|s| s.conditions.iter().find(|x| x.type_ == type_)).expect("condition")
}

fn invalid_arena_keys_are_invalid_spec_without_upstream_requests(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        // A terminal failure is never retried by the clock during the test (fast_timing).
        let env = Env::start_inner(backend, Some(fast_timing()), 4).await;
        env.seed("arena", "4242", json!({"metadata": {"theirs": true}})).await;
        let api = env.connections();
        let params = PatchParams::apply("spec-rules-test").force();

        // Bad keys: InvalidSpec naming them, and not one request to Are.na.
        let bad = arena_spec(json!({"x y": true, "ok": 2, "bad-key": 1}));
        api.patch("c", &params, &Patch::Apply(connection("c", bad.clone()))).await.unwrap();
        let c = ready(&api, "c", "InvalidSpec", |_| true).await;
        let message = format!(r#"{KEY_RULE}: "bad-key", "x y""#);
        assert_eq!(message, controller_message(&bad));
        let ready_condition = condition(&c, "Ready");
        assert_eq!((ready_condition.status.as_str(), ready_condition.message.as_str()), ("False", message.as_str()));
        let synced = condition(&c, "Synced");
        assert_eq!((synced.status.as_str(), synced.message.as_str()), ("False", message.as_str()));
        assert_eq!(env.journal("arena").await, Vec::<Value>::new());

        // A requested reconcile runs (its annotation is echoed) and still sends nothing.
        let annotate = json!({"metadata": {"annotations": {RECONCILE_REQUESTED_AT: "now-1"}}});
        api.patch("c", &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();
        ready(&api, "c", "InvalidSpec", |c| {
            c.status.as_ref().and_then(|s| s.last_handled_reconcile_at.as_deref()) == Some("now-1")
        })
        .await;
        assert_eq!(env.journal("arena").await, Vec::<Value>::new());
        // Terminal: handled as a result, not as an error retried with backoff.
        let exposed = env.metrics.encode();
        assert!(exposed.contains(r#"connection_operator_reconcile_total{result="InvalidSpec"}"#), "{exposed}");
        assert!(!exposed.contains(r#"result="error""#), "{exposed}");

        // Fixed: the Connection syncs, and Are.na holds the keys next to its own.
        let fixed = arena_spec(json!({"ok": 2, "good_key": "v"}));
        api.patch("c", &params, &Patch::Apply(connection("c", fixed))).await.unwrap();
        let c = ready(&api, "c", "InSync", |_| true).await;
        assert_eq!(condition(&c, "Ready").status, "True");
        let upstream = env.upstream("arena", "4242").await;
        assert_eq!(upstream["metadata"], json!({"theirs": true, "ok": 2, "good_key": "v"}), "{upstream}");
        let requests = env.journal("arena").await;
        assert!(requests.iter().any(|r| r["method"] == "PUT"), "{requests:?}");
    });
}

// ---- the chart's ValidatingAdmissionPolicy -------------------------------------------------

/// `helm template RELEASE charts/connection-operator --show-only <the policy>` with `values`.
fn render_policy(cluster: &Cluster, release: &str, set: &[&str]) -> String {
    let chart = connection_testkit::tools::workspace_root().join("charts/connection-operator");
    let mut command = std::process::Command::new(connection_testkit::tools::helm());
    command
        .arg("template")
        .arg(release)
        .arg(&chart)
        .args(["--kube-version", &cluster.kubectl().server_version()])
        .args(["--show-only", "templates/validating-admission-policy.yaml"]);
    for value in set {
        command.args(["--set", value]);
    }
    let out = command.output().expect("run helm");
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `kubectl apply --dry-run=server` of a bad Connection in `ns` until the policy (loaded by
/// the API server from its own watch) refuses it.
fn wait_until_enforced(ns: &TestNamespace) {
    wait_for_policy(ns, true);
}

/// The API server learns of policies through an informer, so a deleted policy keeps
/// denying for a moment: wait until a probe in `ns` is admitted again.
fn wait_until_not_enforced(ns: &TestNamespace) {
    wait_for_policy(ns, false);
}

fn wait_for_policy(ns: &TestNamespace, enforced: bool) {
    let probe = connection("probe", arena_spec(json!({"probe-key": 1}))).to_string();
    let what =
        if enforced { "the admission policy to be enforced" } else { "the deleted admission policy to stop denying" };
    eventually_blocking(what, || {
        let out = ns.kubectl().run(&["apply", "--dry-run=server", "-f", "-"], Some(&probe));
        let denied = !out.ok && out.stderr.contains("ValidatingAdmissionPolicy");
        (denied == enforced).then_some(())
    });
}

/// The refusal kubectl prints for a Connection denied by release `release`'s policy.
fn denied(release: &str, name: &str, message: &str) -> String {
    let policy = format!("{release}-connection-operator-connections");
    format!(
        "The connections \"{name}\" is invalid: : ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: {message}\n"
    )
}

/// Before Kubernetes 1.35 the chart's policy cannot sort (CEL's list `sort()` is not in
/// its admission environment yet), so it names the offending keys in the server's map order.
/// `message` with its key list sorted, for comparing on such a server.
fn keys_sorted(message: &str) -> String {
    message
        .lines()
        .map(|line| match line.split_once("}$: ") {
            Some((rule, keys)) => {
                let mut keys: Vec<&str> = keys.split(", ").collect();
                keys.sort();
                format!("{rule}}}$: {}", keys.join(", "))
            }
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the server's CEL sorts (Kubernetes 1.35 and later).
fn policy_sorts(cluster: &Cluster) -> bool {
    let version = cluster.kubectl().server_version();
    let minor: u32 = version.split('.').nth(1).and_then(|m| m.parse().ok()).expect("v1.MINOR.PATCH");
    minor >= 35
}

fn apply(kubectl: &Kubectl, name: &str, spec: Value) -> Output {
    kubectl.run(&["apply", "-f", "-"], Some(&connection(name, spec).to_string()))
}

/// On a control plane of its own: a policy binding applies to the whole cluster.
#[test]
fn real_admission_policy_refuses_bad_keys_at_kubectl_apply() {
    let cluster = Cluster::real_dedicated();
    cluster.install_crds();
    let ns = cluster.namespace("vap");
    let kubectl = ns.kubectl();

    // Stored before the policy exists (the CRD admits any key).
    let legacy = apply(&kubectl, "legacy", arena_spec(json!({"old-key": 1})));
    assert!(legacy.ok, "{}", legacy.stderr);

    let release = "vap";
    cluster.kubectl().apply(&render_policy(&cluster, release, &[]));
    wait_until_enforced(&ns);

    // Refused at `kubectl apply` with the controller's message, offending keys only.
    let sorts = policy_sorts(&cluster);
    let same = |a: &str, b: &str| if sorts { a == b } else { keys_sorted(a) == keys_sorted(b) };
    let bad = arena_spec(json!({"x y": true, "ok": 2, "bad-key": 1}));
    let out = apply(&kubectl, "bad", bad.clone());
    assert!(!out.ok);
    assert!(same(&out.stderr, &denied(release, "bad", &controller_message(&bad))), "{}", out.stderr);
    let expected = r#"denied request: Are.na metadata keys must match ^[A-Za-z0-9_]{1,40}$: "bad-key", "x y""#;
    assert!(keys_sorted(&out.stderr).contains(expected), "{}", out.stderr);
    if sorts {
        assert!(out.stderr.contains(expected), "{}", out.stderr);
    }
    // Long keys are cut the same way by the policy's CEL and the controller's Rust.
    let long = arena_spec(json!({ "k".repeat(41): 1, "é".repeat(60): "v", "fine": 3 }));
    let out = apply(&kubectl, "long", long.clone());
    assert!(same(&out.stderr, &denied(release, "long", &controller_message(&long))), "{}", out.stderr);

    // Valid manifests pass: scalar values of every kind (the policy's CEL reads the untyped
    // map dynamically), an empty map, other providers.
    for (name, spec) in [
        ("good", arena_spec(json!({"good_key": 1, "n": 0.5, "s": "text", "b": false, "K9": "x".repeat(40)}))),
        ("empty", arena_spec(json!({}))),
        ("other", json!({"providerRef": {"name": "d"}, "connectionId": "c", "datagrid": {"name": "bad-key"}})),
    ] {
        let out = apply(&kubectl, name, spec);
        assert!(out.ok && out.stderr.is_empty(), "{name}: {}", out.stderr);
    }

    // Keys already stored are let through (the operator can still update the object, e.g.
    // drop its finalizer); a new bad key is refused, named alone.
    kubectl.ok(&["label", "connection", "legacy", "touched=yes"]);
    kubectl.ok(&[
        "patch",
        "connection",
        "legacy",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    kubectl.ok(&["patch", "connection", "legacy", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    let more = arena_spec(json!({"old-key": 1, "new-key": 2}));
    let out = apply(&kubectl, "legacy", more);
    assert_eq!(out.stderr, denied(release, "legacy", &format!(r#"{KEY_RULE}: "new-key""#)));

    // Bound to the watched namespaces when the operator watches some.
    cluster.kubectl().ok_with(&["delete", "-f", "-"], Some(&render_policy(&cluster, release, &[])));
    wait_until_not_enforced(&ns);
    let watched = cluster.namespace("vap-watched");
    let elsewhere = cluster.namespace("vap-elsewhere");
    let scoped = render_policy(&cluster, "scoped", &[&format!("operator.watchNamespaces={{{}}}", watched.name())]);
    cluster.kubectl().apply(&scoped);
    wait_until_enforced(&watched);
    let out = apply(&watched.kubectl(), "bad", bad.clone());
    assert!(same(&out.stderr, &denied("scoped", "bad", &controller_message(&bad))), "{}", out.stderr);
    let out = apply(&elsewhere.kubectl(), "bad", bad);
    assert!(out.ok, "another release's namespace is not this policy's: {}", out.stderr);

    // Off by a value.
    assert_eq!(render_policy_or_empty("off", &["admissionPolicy.enabled=false"]), "");
}

/// Like [`render_policy`], but an empty answer when the template renders nothing.
fn render_policy_or_empty(release: &str, set: &[&str]) -> String {
    let chart = connection_testkit::tools::workspace_root().join("charts/connection-operator");
    let mut command = std::process::Command::new(connection_testkit::tools::helm());
    command.arg("template").arg(release).arg(&chart);
    for value in set {
        command.args(["--set", value]);
    }
    let out = command.output().expect("run helm");
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout).unwrap();
    rendered
        .split("\n---\n")
        .filter(|doc| doc.contains("templates/validating-admission-policy.yaml"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}
