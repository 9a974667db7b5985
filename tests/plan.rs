//! `connection-operator plan` as its own process against the REAL control plane (a namespace
//! per test) and the provider emulators: the exact keys of a changed manifest and exit 2,
//! exit 0 once applied, the CRD's own message and exit 1 for an invalid one, Secret-sourced
//! values never printed, a clear error for each kind of bad input while the rest is still
//! planned, the Conflict rule across two Providers of one account, and the kubectl plugin
//! (`kubectl connection plan`, found on PATH as `kubectl-connection`). No provider journal
//! records a write during any `plan`.

mod cli_support;

use cli_support::{Env, Run, yaml_stream};
use connection_testkit::operator_env::TOKEN;
use connection_testkit::providers::{PROVIDERS, writes};
use serde_json::{Value, json};

const SECRET_VALUE: &str = "sk-live-4f1c9a7e2b-do-not-print";

fn parse(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("plan -o json printed no JSON ({e}):\n{}\n{}", run.stdout, run.stderr))
}

/// The connection entry of a JSON report named `name`.
fn entry<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

async fn assert_no_upstream_write(env: &Env) {
    for p in PROVIDERS {
        let journal = env.providers.journal(p).await;
        assert!(writes(&journal).is_empty(), "plan wrote to {p}: {journal:?}");
    }
}

fn assert_secret_absent(run: &Run) {
    assert!(
        !run.stdout.contains(SECRET_VALUE) && !run.stderr.contains(SECRET_VALUE),
        "a Secret value was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_the_exact_keys_exits_2_then_0_once_applied_and_1_when_invalid() {
    let env = Env::start("plan-keys").await;
    env.providers
        .seed(
            "nango",
            "acme",
            json!({"provider_config_key": "salesforce", "metadata": {"region": "us", "webhook": "w1"}}),
        )
        .await;
    env.config_map("defaults", json!({"supportTier": "gold"})).await;
    env.secret("acme-keys", json!({"apiKey": SECRET_VALUE})).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = |metadata: Value| {
        json!({"providerRef": {"name": "nango"}, "connectionId": "acme",
               "nango": {"providerConfigKey": "salesforce", "metadata": metadata,
                         "metadataFrom": [{"configMapRef": {"name": "defaults"}}, {"secretRef": {"name": "acme-keys"}}]}})
    };
    let changed = Env::manifest_file(
        dir.path(),
        "acme.yaml",
        &[env.connection("acme", spec(json!({"region": "eu", "tier": 2})))],
    );

    // A changed manifest: exactly these keys, old and new values, and exit 2.
    let run = env.run(&["plan", "-f", &changed, "-o", "json"], None).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_secret_absent(&run);
    let report = parse(&run);
    let acme = entry(&report, "acme");
    assert_eq!(acme["verdict"], "change", "{acme:#}");
    assert_eq!(
        acme["changes"],
        json!([
            {"key": "apiKey", "action": "add", "old": null, "new": "(secret)", "from": "Secret/acme-keys"},
            {"key": "region", "action": "change", "old": "us", "new": "eu", "from": "inline"},
            {"key": "supportTier", "action": "add", "old": null, "new": "gold", "from": "ConfigMap/defaults"},
            {"key": "tier", "action": "add", "old": null, "new": 2, "from": "inline"},
        ])
    );
    assert_eq!(acme["foreign"], json!(["webhook"]));
    assert_eq!(
        acme["requests"],
        json!(["GET /connections/acme?provider_config_key=salesforce", "PATCH /connections/metadata"])
    );
    assert_eq!(acme["provider"], format!("Provider {}/nango (nango)", env.ns()));
    assert_eq!(report["exitCode"], 2);
    // The same plan as text and as Markdown, the Secret value hidden in both.
    let text = env.run(&["plan", "-f", &changed], None).await;
    assert_eq!(text.code, 2);
    assert_secret_absent(&text);
    assert!(text.stdout.contains("~ region       \"us\" -> \"eu\"   [inline]"), "{}", text.stdout);
    assert!(text.stdout.contains("+ apiKey       (secret)   [Secret/acme-keys]"), "{}", text.stdout);
    assert!(text.stdout.contains("Plan: 1 to change (1 upstream write), 0 unchanged, 0 errors."), "{}", text.stdout);
    let markdown = env.run(&["plan", "-f", &changed, "--output", "markdown"], None).await;
    assert_eq!(markdown.code, 2);
    assert_secret_absent(&markdown);
    assert!(
        markdown.stdout.contains("| + | <code>apiKey</code> | _(absent)_ | <code>(secret)</code> | Secret/acme-keys |"),
        "{}",
        markdown.stdout
    );
    // Planning read upstream (one GET per run) and wrote nothing, upstream or to Kubernetes.
    let journal = env.providers.journal("nango").await;
    assert_eq!(journal.len(), 3, "{journal:?}");
    assert_no_upstream_write(&env).await;
    assert!(env.get("acme").await.is_none(), "the dry run created nothing");

    // Applied, the operator does what the plan said; the same manifest then plans to nothing.
    env.start_operator();
    let applied = env.kubectl().run_async(&["apply", "-f", &changed], None).await;
    assert!(applied.ok, "{}", applied.stderr);
    let acme_live = env.ready_reason("acme", "InSync").await;
    assert_eq!(
        env.providers.upstream("nango", "acme").await["metadata"],
        json!({"region": "eu", "tier": 2, "supportTier": "gold", "apiKey": SECRET_VALUE, "webhook": "w1"})
    );
    assert_eq!(acme_live.status.as_ref().unwrap().secret_keys, ["apiKey"]);
    env.stop_operator();
    env.providers.clear_journal("nango").await;
    let run = env.run(&["plan", "-f", &changed, "-o", "json"], None).await;
    assert_eq!(run.code, 0, "{run:?}");
    let report = parse(&run);
    assert_eq!(entry(&report, "acme")["verdict"], "noChange");
    assert_eq!(entry(&report, "acme")["unchanged"], json!(["apiKey", "region", "supportTier", "tier"]));
    assert_eq!(entry(&report, "acme")["changes"], json!([]));

    // Dropping an owned key removes it (a Nango replace); the shared ConfigMap changed in the
    // same input is planned from the input, not the cluster.
    let input = yaml_stream(&[
        env.connection("acme", spec(json!({"region": "eu"}))),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "defaults", "namespace": env.ns()}, "data": {"supportTier": "platinum"}}),
    ]);
    let run = env.run(&["plan", "-f", "-", "-o", "json"], Some(&input)).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_secret_absent(&run);
    let report = parse(&run);
    let acme = entry(&report, "acme");
    assert_eq!(
        acme["changes"],
        json!([
            {"key": "supportTier", "action": "change", "old": "gold", "new": "platinum", "from": "ConfigMap/defaults"},
            {"key": "tier", "action": "remove", "old": 2, "new": null, "from": null},
        ])
    );
    assert_eq!(acme["requests"][1], "POST /connections/metadata");
    assert_eq!(report["fromInput"], json!([format!("ConfigMap {}/defaults", env.ns())]));
    // The old value of a Secret-sourced key is hidden too once it is no longer declared (the
    // status remembers which keys came from a Secret).
    let without_secret = json!({"providerRef": {"name": "nango"}, "connectionId": "acme",
        "nango": {"providerConfigKey": "salesforce", "metadata": {"region": "eu", "tier": 2}, "metadataFrom": [{"configMapRef": {"name": "defaults"}}]}});
    let run = env
        .run(&["plan", "-f", "-", "-o", "json"], Some(&yaml_stream(&[env.connection("acme", without_secret)])))
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_secret_absent(&run);
    assert_eq!(
        entry(&parse(&run), "acme")["changes"],
        json!([{"key": "apiKey", "action": "remove", "old": "(secret)", "new": null, "from": null}])
    );

    // Invalid manifests: the CRD's own message, exit 1, nothing planned upstream.
    env.providers.clear_journal("nango").await;
    let mut too_fast = spec(json!({"region": "eu"}));
    too_fast["driftInterval"] = json!("5s");
    let moved = json!({"providerRef": {"name": "nango"}, "connectionId": "acme-2", "nango": {"providerConfigKey": "salesforce"}});
    // The same ConfigMap twice: the one loop shared settings can express, refused by a CRD rule.
    let twice = json!({"providerRef": {"name": "nango"}, "connectionId": "acme-3",
        "nango": {"providerConfigKey": "salesforce", "metadataFrom": [{"configMapRef": {"name": "defaults"}}, {"configMapRef": {"name": "defaults", "optional": true}}]}});
    let input = yaml_stream(&[
        env.connection("fast", too_fast),
        env.connection("acme", moved),
        env.connection("twice", twice.clone()),
    ]);
    let run = env.run(&["plan", "-f", "-"], Some(&input)).await;
    assert_eq!(run.code, 1, "{run:?}");
    // What kubectl apply would be told, word for word.
    let refused =
        env.kubectl().run_async(&["apply", "-f", "-"], Some(&yaml_stream(&[env.connection("twice", twice)]))).await;
    assert!(!refused.ok, "kubectl apply accepted the same ConfigMap twice");
    let refused = refused.stderr;
    let crd_message =
        "spec.nango.metadataFrom: Invalid value: each ConfigMap and each Secret may be referenced only once";
    assert!(refused.contains(crd_message), "{refused}");
    assert!(run.stdout.contains(crd_message), "{}", run.stdout);
    assert!(
        run.stdout.contains("spec.driftInterval: Invalid value: \"5s\": driftInterval must be at least 30s"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("connectionId is immutable; create a new Connection for another upstream connection"),
        "{}",
        run.stdout
    );
    assert!(env.providers.journal("nango").await.is_empty(), "an invalid manifest is not planned upstream");
    assert_no_upstream_write(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_the_rest_is_still_planned() {
    let env = Env::start("plan-bad-input").await;
    env.providers.seed("datagrid", "dg-1", json!({"name": "Old"})).await;
    env.providers.seed("arena", "4242", json!({"metadata": {}})).await;
    // A Provider nobody answers at, and one whose Secret lacks the key it names.
    env.provider("down", "arena", json!({"baseUrl": "http://127.0.0.1:9/arena"})).await;
    env.provider("nokey", "arena", json!({"credentialsRef": {"name": "arena-credentials", "key": "missing"}})).await;
    let ok = env.connection(
        "good",
        json!({"providerRef": {"name": "datagrid"}, "connectionId": "dg-1", "datagrid": {"name": "New"}}),
    );
    let arena = |provider: &str, extra: Value| {
        let mut block = json!({"metadata": {"k": 1}});
        block.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        json!({"providerRef": {"name": provider}, "connectionId": "4242", "arena": block})
    };
    let input = yaml_stream(&[
        ok,
        env.connection("no-provider", arena("nope", json!({}))),
        env.connection("unreachable", arena("down", json!({}))),
        env.connection("loop", arena("arena", json!({"metadataFrom": [{"secretRef": {"name": "arena-credentials"}}]}))),
        env.connection("no-key", arena("nokey", json!({}))),
        env.connection("no-configmap", arena("arena", json!({"metadataFrom": [{"configMapRef": {"name": "absent"}}]}))),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": env.ns()}, "spec": {}}),
        json!({"apiVersion": "connection-operator.dev/v1beta1", "kind": "Connection", "metadata": {"name": "future", "namespace": env.ns()}, "spec": {}}),
    ]);
    let run = env.run(&["plan", "-f", "-", "-o", "json"], Some(&input)).await;
    assert_eq!(run.code, 1, "{run:?}");
    let report = parse(&run);
    let ns = env.ns();
    // Nothing is lost: the good Connection is planned in full.
    let good = entry(&report, "good");
    assert_eq!(good["verdict"], "change");
    assert_eq!(
        good["changes"],
        json!([{"key": "name", "action": "change", "old": "Old", "new": "New", "from": "inline"}])
    );
    let error = |name: &str| {
        (
            entry(&report, name)["reason"].as_str().unwrap().to_string(),
            entry(&report, name)["message"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(error("no-provider"), ("ProviderNotFound".into(), format!("Provider {ns}/nope not found")));
    assert_eq!(
        error("unreachable"),
        ("UpstreamUnavailable".into(), "the provider is unavailable: cannot connect to the provider".into())
    );
    assert_eq!(
        error("loop"),
        (
            "InvalidSpec".into(),
            format!(
                "metadataFrom names Secret {ns}/arena-credentials, which holds the API token of Provider {ns}/arena; the token is never sent as metadata"
            )
        )
    );
    assert_eq!(
        error("no-key"),
        ("ProviderNotReady".into(), format!("Secret {ns}/arena-credentials has no key missing"))
    );
    assert_eq!(
        error("no-configmap"),
        ("ReferenceNotFound".into(), format!("ConfigMap {ns}/absent not found (metadataFrom[0])"))
    );
    assert_eq!(report["skipped"], json!([format!("<stdin>#7: Deployment {ns}/web (not a Connection)")]));
    assert_eq!(
        report["errors"],
        json!([format!(
            "<stdin>#8: Connection {ns}/future has apiVersion connection-operator.dev/v1beta1; connection-operator serves connection-operator.dev/v1alpha1"
        )])
    );
    assert!(!run.stdout.contains(TOKEN), "the token was printed");
    assert_no_upstream_write(&env).await;

    // Input that holds no Connection, that is not YAML, or that does not exist.
    let run = env.run(&["plan", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")).await;
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("! error: the input holds no Connection"), "{run:?}");
    let run = env.run(&["plan", "-f", "-"], Some("kind: [unclosed\n")).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("error: <stdin>#1: not YAML or JSON"), "{run:?}");
    let run = env.run(&["plan", "-f", "/no/such/manifest.yaml"], None).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("error: /no/such/manifest.yaml: No such file or directory"), "{run:?}");
    let run = env.run(&["plan", "-f", "-"], Some("just: a map\n")).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not a Kubernetes object"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reports_a_conflict_through_another_provider_of_the_same_account() {
    let env = Env::start("plan-conflict").await;
    env.providers.seed("mielto", "shared", json!({"label": "L", "config": {}})).await;
    // A second Provider of the Mielto account: another Secret holding the same token, the
    // API key sent as X-API-Key.
    env.secret("team-b-key", json!({"apiKey": TOKEN})).await;
    env.provider(
        "mielto-b",
        "mielto",
        json!({"credentialsRef": {"name": "team-b-key", "key": "apiKey"}, "auth": "ApiKey"}),
    )
    .await;
    env.apply(
        "first",
        json!({"providerRef": {"name": "mielto"}, "connectionId": "shared", "mielto": {"config": {"channel": "#a"}}}),
    )
    .await;
    let second = |config: Value| {
        env.connection(
            "second",
            json!({"providerRef": {"name": "mielto-b"}, "connectionId": "shared", "mielto": {"config": config}}),
        )
    };
    let run = env
        .run(
            &["plan", "-f", "-", "-o", "json"],
            Some(&yaml_stream(&[second(json!({"channel": "#b", "digest": "daily"}))])),
        )
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    let report = parse(&run);
    assert_eq!(entry(&report, "second")["reason"], "Conflict");
    assert_eq!(
        entry(&report, "second")["message"],
        format!("key(s) config.channel already owned by Connection {}/first", env.ns())
    );
    // Disjoint keys coexist: a plan, and a read sent with the X-API-Key scheme the sandbox accepted.
    let run =
        env.run(&["plan", "-f", "-", "-o", "json"], Some(&yaml_stream(&[second(json!({"digest": "daily"}))]))).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        entry(&parse(&run), "second")["changes"],
        json!([{"key": "config.digest", "action": "add", "old": null, "new": "daily", "from": "inline"}])
    );
    assert_no_upstream_write(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_connection_plan_runs_the_plugin_found_on_path() {
    let env = Env::start("plan-plugin").await;
    env.providers.seed("arena", "777", json!({"metadata": {"reviewed": false}})).await;
    let manifest = yaml_stream(&[env.connection(
        "reading-list",
        json!({"providerRef": {"name": "arena"}, "connectionId": "777", "arena": {"metadata": {"reviewed": true}}}),
    )]);
    // kubectl finds plugins as `kubectl-<name>` on PATH: a symlink to the binary.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_connection-operator"), bin.path().join("kubectl-connection"))
        .unwrap();
    let kubectl = connection_testkit::tools::kubectl();
    let kubectl = kubectl.to_str().unwrap();
    let kubeconfig = env.cluster.kubeconfig();
    let run = cli_support::run_binary(
        kubectl,
        &["connection", "plan", "-f", "-"],
        Some(&manifest),
        &kubeconfig,
        Some(bin.path()),
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    let direct = env.run(&["plan", "-f", "-"], Some(&manifest)).await;
    assert_eq!(run.stdout, direct.stdout, "the plugin prints what the binary prints");
    assert!(run.stdout.contains("~ reviewed  false -> true   [inline]"), "{}", run.stdout);
    let listed = cli_support::run_binary(kubectl, &["plugin", "list"], None, &kubeconfig, Some(bin.path())).await;
    assert!(listed.stdout.contains("kubectl-connection"), "{listed:?}");
    let help =
        cli_support::run_binary(kubectl, &["connection", "plan", "--help"], None, &kubeconfig, Some(bin.path())).await;
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("Usage: kubectl connection plan"), "{}", help.stdout);
    assert_no_upstream_write(&env).await;
}
