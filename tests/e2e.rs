//! End-to-end tier (README.md, "How it is tested"): the REAL Kubernetes
//! control plane (kube-apiserver + etcd + kube-controller-manager, `connection_testkit`),
//! the provider sandboxes on loopback, the compiled `connection-operator` binary as a
//! separate process, and the real kubectl as the only way Connections are created or
//! changed. Includes the demo (`examples/demo.rs`) and the fault matrix. Every test works in
//! a namespace of its own on the run's shared control plane, with an operator watching only
//! that namespace (tests that need fixed names take a control plane of their own), and its
//! own sandboxes on free ports, so nextest may run them in parallel.
//!
//! The operator reaches the API server through a kube-proxy (`Cluster::instrumented`) that
//! journals its requests and injects the Kubernetes faults (failing requests, dropped and
//! expired watches); the real server provides the rest, including a genuine 410 from the
//! watch cache.
//!
//! Assertions are on final upstream state, conditions, and request counts from the provider
//! and Kubernetes journals, never on durations; waits poll with a generous bound
//! (`connection_testkit::wait::GENEROUS`).

mod e2e_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use connection_testkit::demo::{app, stack};
use e2e_support::*;
use serde_json::{Value, json};

fn runtime_test_name(n: usize) -> String {
    format!("{n:03}")
}

/// Journal entries of one Datagrid connection id: `/connections/{id}`.
fn for_id<'a>(journal: &'a [Value], id: &str) -> Vec<&'a Value> {
    let path = format!("/connections/{id}");
    journal.iter().filter(|e| e["path"] == path.as_str()).collect()
}

/// `n` Datagrid Connections `<prefix>-NNN` in `ns` → upstream `conn_<prefix>_NNN`, spec
/// name `<version>-NNN`.
fn datagrid_wave(ns: &str, prefix: &str, n: usize, version: &str) -> String {
    documents((0..n).map(|i| {
        let k = runtime_test_name(i);
        connection_yaml(
            ns,
            &format!("{prefix}-{k}"),
            "datagrid",
            &format!("conn_{prefix}_{k}"),
            &format!("{{name: {version}-{k}}}"),
            "",
        )
    }))
}

/// A stack with the Datagrid Provider (no sandbox rate limit, generous pacing) and `n`
/// Connections whose upstream already matches `v1`, all Ready; journals cleared.
async fn datagrid_world(prefix: &str, n: usize) -> World {
    datagrid_world_on(World::real(prefix).await, prefix, n, None).await
}

/// [`datagrid_world`] on a given world, the operator logging with `RUST_LOG=rust_log`.
async fn datagrid_world_on(mut world: World, prefix: &str, n: usize, rust_log: Option<&str>) -> World {
    let ns = world.ns.clone();
    world.stack.providers.rate_limit("datagrid", 0, 60.0).await;
    world.apply_provider(&ns, "datagrid", "rateLimit: {requestsPerMinute: 100000, burst: 1000}").await;
    for i in 0..n {
        let k = runtime_test_name(i);
        world.seed("datagrid", &format!("conn_{prefix}_{k}"), json!({"name": format!("v1-{k}")})).await;
    }
    world.start_operator_logging(rust_log);
    world.apply(&datagrid_wave(&ns, prefix, n, "v1")).await;
    world.wait_all_ready(&ns, n).await;
    world.stack.providers.clear_journal("datagrid").await;
    world
}

/// Every upstream of the wave carries `version`, and each id got exactly one successful
/// PATCH, with the new value (the operator writes the minimum and never a stale value).
async fn assert_wave_applied_once(world: &World, prefix: &str, n: usize, version: &str) {
    let journal = world.journal("datagrid").await;
    for i in 0..n {
        let k = runtime_test_name(i);
        let id = format!("conn_{prefix}_{k}");
        assert_eq!(world.upstream("datagrid", &id).await["name"], format!("{version}-{k}"), "{id} upstream");
        let entries = for_id(&journal, &id);
        let patches: Vec<&&Value> = entries.iter().filter(|e| e["method"] == "PATCH").collect();
        for p in &patches {
            assert_eq!(p["body"]["name"], format!("{version}-{k}"), "{id}: a PATCH carried a stale value: {p}");
        }
        let applied = patches.iter().filter(|e| e["status"] == 200).count();
        assert_eq!(applied, 1, "{id}: expected exactly one applied PATCH, journal: {entries:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The examples and the demo
// ---------------------------------------------------------------------------------------

/// `kubectl apply -f examples/` against the operator binary: every example Connection
/// becomes Ready, upstream carries the spec while keys nobody declared survive, the Observe
/// one is only read, and a `kubectl patch` reaches upstream with one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_become_ready_and_foreign_keys_survive() {
    let mut world = World::dedicated(&stack::EXAMPLE_NAMESPACES).await;
    world.stack.seed_example_upstreams().await;
    let applied = world.stack.apply_examples().await.expect("kubectl apply -f examples/");
    assert!(applied.contains("connection.connection-operator.dev/acme-salesforce created"), "{applied}");
    world.start_operator();
    let ready = world.wait_all_ready("tenants", 4).await;
    for conn in &ready {
        let (_, reason, _) = ready_of(conn);
        assert_eq!(reason, "InSync", "{}", kube::ResourceExt::name_any(conn));
    }

    let nango = world.upstream("nango", "acme-salesforce-1").await;
    assert_eq!(
        nango["metadata"],
        json!({"accountRegion": "eu", "webhookSubscriptionId": "whsub_123",
               "fieldMapping": {"company": "Account.Name", "owner": "Account.OwnerId"},
               "supportTier": "standard", "dataRetentionDays": "90", "webhookSigningKey": "replace-with-a-signing-key"}),
    );
    let mielto = world.upstream("mielto", "conn_acme_slack").await;
    assert_eq!(mielto["label"], "Acme Slack");
    assert_eq!(mielto["status"], "active");
    assert_eq!(
        mielto["config"],
        json!({"channel": "#acme-alerts", "digest": "daily", "installedBy": "U024BE7LH",
               "supportTier": "standard", "dataRetentionDays": "90"})
    );
    let arena = world.upstream("arena", "98765").await;
    assert_eq!(
        arena["metadata"],
        json!({"reviewed": true, "score": 0.95, "reviewer": "ops_team", "importedFrom": "csv"})
    );
    assert!(writes(&world.journal("arena").await).is_empty(), "Observe mode must never write");
    assert_eq!(world.upstream("datagrid", "conn_01HACME").await["name"], "Acme Drive");

    // A spec change through kubectl reaches upstream with exactly one write.
    world.stack.providers.clear_journal("datagrid").await;
    world
        .kubectl(&[
            "patch",
            "connection",
            "-n",
            "tenants",
            "acme-drive",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"datagrid":{"name":"Acme Drive (EU)"}}}"#,
        ])
        .await;
    world.wait_all_ready("tenants", 4).await;
    assert_eq!(world.upstream("datagrid", "conn_01HACME").await["name"], "Acme Drive (EU)");
    let journal = world.journal("datagrid").await;
    let written = writes(&journal);
    assert_eq!(written.len(), 1, "{journal:?}");
    assert_eq!(written[0]["body"], json!({"name": "Acme Drive (EU)"}));
}

fn ready_of(conn: &connection_operator::api::Connection) -> (String, String, String) {
    ready(conn).unwrap_or_else(|| panic!("{} has no Ready condition", kube::ResourceExt::name_any(conn)))
}

/// What the demo runs with in the tests: free ports, the operator binary under test, the
/// real kubectl, and `kube` (a cluster's kubeconfig, or the emulator).
fn demo_options(
    kube: stack::KubeTarget,
    workdir: &std::path::Path,
    operator_bin: std::path::PathBuf,
    timeout: Duration,
) -> app::DemoOptions {
    app::DemoOptions {
        providers_addr: "127.0.0.1:0".parse().unwrap(),
        kube,
        kubectl: Some(connection_testkit::tools::kubectl()),
        exit_when_ready: true,
        timeout,
        operator_bin: Some(operator_bin),
        workdir: workdir.to_path_buf(),
        repo_root: stack::repo_root(),
    }
}

/// `status.lastHandledReconcileAt` of every example Connection (the demo's per-run token).
async fn handled_tokens(client: &kube::Client) -> BTreeMap<String, Option<String>> {
    let api: kube::Api<connection_operator::api::Connection> = kube::Api::namespaced(client.clone(), "tenants");
    let list = api.list(&Default::default()).await.expect("list Connections");
    list.items
        .iter()
        .map(|c| (kube::ResourceExt::name_any(c), c.status.as_ref().and_then(|s| s.last_handled_reconcile_at.clone())))
        .collect()
}

/// The demo's own code path with `--kubeconfig` (what `cargo run --example demo --
/// --kubeconfig DIR/kubeconfig --exit-when-ready` runs) on a real control plane of its own:
/// it returns once every example Connection is Ready, and has stopped the operator. Run
/// again on the same cluster, where the Connections are still Ready from the first run, it
/// returns only once this run's operator has reconciled each of them (the status echoes the
/// run's `reconcile-requested-at`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_kubeconfig_exits_when_every_example_is_ready() {
    let cluster = connection_testkit::Cluster::real_dedicated();
    let kube = stack::KubeTarget::Cluster { kubeconfig: cluster.kubeconfig(), operator_kubeconfig: None };
    let client = cluster.client().await;
    let mut runs = Vec::new();
    for run in 1..=2 {
        let dir = tempfile::tempdir().expect("tempdir");
        let ended = app::run(demo_options(kube.clone(), dir.path(), operator(), GENEROUS), std::future::pending())
            .await
            .unwrap_or_else(|e| panic!("run {run}: the demo ends with every Connection Ready: {e}"));
        assert_eq!(ended, app::Ended::Ready);
        let log = std::fs::read_to_string(dir.path().join("operator-1.log")).expect("the operator log");
        for token in [
            "00000000-0000-4000-8000-000000000000",
            "replace-with-a-mielto-api-key",
            "replace-with-an-arena-token",
            "replace-with-a-signing-key",
        ] {
            assert!(!log.contains(token), "a credential leaked into the operator log");
        }
        assert_demo_planned_the_pull_request(dir.path());
        let tokens = handled_tokens(&client).await;
        assert_eq!(tokens.len(), 4, "{tokens:?}");
        let distinct: BTreeSet<&Option<String>> = tokens.values().collect();
        assert_eq!(distinct.len(), 1, "every example Connection handled this run's request: {tokens:?}");
        let token = tokens.values().next().cloned().flatten().expect("a handled reconcile request");
        assert!(token.starts_with("demo-"), "{token}");
        runs.push(token);
    }
    assert_ne!(runs[0], runs[1], "the second run must wait for its own reconciles, not the first run's status");
}

/// The demo's default (`cargo run --example demo -- --exit-when-ready`, the README's first
/// command on a fresh machine): the embedded emulator, no control plane needed. The only
/// test of this tier on the emulator: it tests the demo's default path, not Kubernetes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_the_embedded_emulator_exits_when_every_example_is_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kube = stack::KubeTarget::Emulator("127.0.0.1:0".parse().unwrap());
    let ended = app::run(demo_options(kube, dir.path(), operator(), GENEROUS), std::future::pending())
        .await
        .expect("the demo ends with every Connection Ready");
    assert_eq!(ended, app::Ended::Ready);
    assert_demo_planned_the_pull_request(dir.path());
}

/// What the demo's `connection-operator plan` of `examples/pull-request/` printed: before
/// applying, the two keys it changes (exit 2, checked by the demo itself); after, nothing to
/// do (exit 0). The Secret-sourced value is in neither.
fn assert_demo_planned_the_pull_request(workdir: &std::path::Path) {
    let before = std::fs::read_to_string(workdir.join(app::PLAN_BEFORE)).expect("the plan before applying");
    for line in [
        "    ~ accountRegion   \"eu\" -> \"us\"   [inline]",
        "    + crmSyncEnabled  true   [inline]",
        "    unchanged: dataRetentionDays, fieldMapping, supportTier, webhookSigningKey",
        "    left alone (not owned): webhookSubscriptionId",
        "Plan: 1 to change (1 upstream write), 0 unchanged, 0 errors.",
    ] {
        assert!(before.lines().any(|l| l == line), "no line {line:?} in:\n{before}");
    }
    let after = std::fs::read_to_string(workdir.join(app::PLAN_AFTER)).expect("the plan after applying");
    assert!(after.ends_with("Plan: 0 to change (0 upstream writes), 1 unchanged, 0 errors.\n"), "{after}");
    for text in [&before, &after] {
        assert!(!text.contains("replace-with-a-signing-key"), "the Secret value was printed:\n{text}");
    }
}

/// The demo fails (does not hang) when the Connections cannot become Ready: here the
/// operator never starts reconciling (a stand-in binary that only sleeps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_times_out_when_not_ready() {
    let cluster = connection_testkit::Cluster::real_dedicated();
    let dir = tempfile::tempdir().expect("tempdir");
    let sleeper = dir.path().join("sleeper.sh");
    std::fs::write(&sleeper, "#!/bin/sh\nexec sleep 600\n").expect("write");
    std::process::Command::new("chmod").arg("+x").arg(&sleeper).status().expect("chmod");
    let kube = stack::KubeTarget::Cluster { kubeconfig: cluster.kubeconfig(), operator_kubeconfig: None };
    match app::run(
        demo_options(kube, &dir.path().join("work"), sleeper, Duration::from_secs(3)),
        std::future::pending(),
    )
    .await
    {
        Err(app::DemoError::Timeout { pending, .. }) => {
            for name in ["acme-salesforce", "acme-slack", "acme-reading-list", "acme-drive"] {
                assert!(pending.contains(&format!("tenants/{name} (no status yet)")), "{pending}");
            }
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Fault matrix: the operator process and the Kubernetes API
// ---------------------------------------------------------------------------------------

/// SIGKILL in the middle of a wave of 200 changes, then a restart: every change reaches
/// upstream, and no id is written twice or with a stale value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_wave_of_200_changes_then_restart() {
    const N: usize = 200;
    let mut world = datagrid_world("wave", N).await;
    // Slow every write (1 s each, 16 at a time) so the kill lands mid-wave whatever the
    // machine's speed.
    world
        .stack
        .providers
        .faults("datagrid", json!({"method": "PATCH", "path": "/connections/*", "latencyMs": 1000, "count": 1000}))
        .await;
    // The wave is applied by kubectl while the operator already works on its first changes;
    // the kill comes as soon as 20 writes have been sent.
    let ns = world.ns.clone();
    let wave = datagrid_wave(&ns, "wave", N, "v2");
    let (applied, seen) = tokio::join!(world.apply(&wave), async {
        let seen = world
            .eventually("the wave to be under way", || async {
                let sent = world.journal("datagrid").await.iter().filter(|e| e["method"] == "PATCH").count();
                (sent >= 20).then_some(sent)
            })
            .await;
        world.stack.kill_operator().await.expect("SIGKILL");
        seen
    });
    assert_eq!(applied.matches("configured").count(), N, "{applied}");
    let at_kill = world.journal("datagrid").await.iter().filter(|e| e["method"] == "PATCH").count();
    assert!(at_kill < N, "the kill must land mid-wave: {at_kill} of {N} writes already sent (first seen {seen})");
    world.stack.providers.clear_faults("datagrid").await;

    world.start_operator();
    world.wait_all_ready(&ns, N).await;
    assert_wave_applied_once(&world, "wave", N, "v2").await;
}

/// The operator's logging in the watch tests: the controller logs the errors of its watch
/// streams (a 410 among them) at info, its other controller events at debug.
const WATCH_ERRORS_LOG: &str = "info,connection_operator::controller=debug";

/// Hold the operator's list and watch of Connections after ending every watch: `hold` is
/// the kube-proxy fault on their GETs (a status to fail every attempt, or a latency to keep
/// the resumed watches waiting). Returns once the operator's other watches have resumed and
/// `attempts` Connections watch requests have arrived, with the resourceVersions they resume
/// from.
async fn hold_connection_watches(world: &World, hold: Value, attempts: usize) -> BTreeSet<String> {
    let connections = world.connections_path();
    let mut fault = json!({"method": "GET", "path": connections});
    fault.as_object_mut().expect("an object").extend(hold.as_object().expect("an object").clone());
    world.kube.faults(&fault).await;
    world.kube.clear_journal().await;
    world.kube.drop_watches().await;
    let ns = &world.ns;
    // Every other watch the operator keeps (src/controller/triggers.rs): one that resumed
    // after the expiry is armed would take it instead of a Connections watch.
    let others = [
        format!("/apis/connection-operator.dev/v1alpha1/namespaces/{ns}/providers"),
        "/apis/connection-operator.dev/v1alpha1/clusterproviders".to_string(),
        format!("/api/v1/namespaces/{ns}/secrets"),
        format!("/api/v1/namespaces/{ns}/configmaps"),
    ];
    world
        .eventually("the other watches to resume and a Connections watch to fail", || async {
            let journal = world.kube.journal().await;
            let watches = |path: &str| -> Vec<String> {
                journal
                    .iter()
                    .filter(|e| e["path"] == path && e["query"].as_str().is_some_and(|q| q.contains("watch=true")))
                    .filter_map(|e| query_param(e["query"].as_str()?, "resourceVersion"))
                    .collect()
            };
            let resumed = others.iter().all(|p| !watches(p).is_empty());
            let held = watches(&connections);
            (resumed && held.len() >= attempts).then(|| held.into_iter().collect())
        })
        .await
}

/// A query parameter's value (kube-rs writes plain values, no escaping needed here).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

/// Release the hold: the operator's Connections watches resume from their old versions.
/// Returns when the faults are gone; the journal then holds only what came after.
async fn release_connection_watches(world: &World) {
    world.kube.clear_journal().await;
    world.kube.clear_faults().await;
}

/// After a 410 the operator relists: a LIST of the Connections collection follows the
/// release in the journal (a watch that resumed fine would need none).
async fn assert_relisted(world: &World) {
    let connections = world.connections_path();
    let journal = world.kube.journal().await;
    let lists = journal
        .iter()
        .filter(|e| {
            e["method"] == "GET"
                && e["path"] == connections.as_str()
                && !e["query"].as_str().unwrap_or("").contains("watch=true")
        })
        .count();
    assert!(lists >= 1, "no relist of Connections after the 410: {journal:#?}");
}

/// Every watch of the operator ends (the kube-proxy's `watches/drop`); its Connections
/// watches cannot resume for a while (503), and when they do, the first one meets an
/// in-stream 410 Expired (the proxy's one-shot `watches/expire`, armed once the other
/// watches have resumed, so that it is a Connections watch that takes it). Changes made
/// while the watch was down are still reconciled, each with one write, after a relist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_expired_watches_still_reconcile() {
    const N: usize = 5;
    let world = datagrid_world_on(World::real("watch").await, "watch", N, Some(WATCH_ERRORS_LOG)).await;
    let held = hold_connection_watches(&world, json!({"status": 503, "count": 1_000_000}), 1).await;
    world.kube.expire_watches().await;
    world.apply(&datagrid_wave(&world.ns, "watch", N, "v2")).await;
    release_connection_watches(&world).await;
    world.wait_all_ready(&world.ns, N).await;
    assert_wave_applied_once(&world, "watch", N, "v2").await;
    assert_relisted(&world).await;
    let log = world.operator_log();
    assert!(
        held.iter().any(|rv| log.contains(&format!("too old resource version: {rv}"))),
        "the operator never met the 410 for {held:?}:\n{}",
        world.operator_log_tail()
    );
}

/// 120 events on Connections: server-side apply of `filler-000..119` in `fillers`' namespace,
/// each with the annotation `churn: <round>` (created in the first round).
async fn churn(fillers: &kube::Api<connection_operator::api::Connection>, round: usize) {
    use futures::StreamExt as _;
    let params = kube::api::PatchParams::apply("e2e-churn").force();
    futures::stream::iter(0..120)
        .for_each_concurrent(16, |i| {
            let name = format!("filler-{i:03}");
            let object = json!({
                "apiVersion": "connection-operator.dev/v1alpha1",
                "kind": "Connection",
                "metadata": {"name": name, "annotations": {"churn": round.to_string()}},
                "spec": {"providerRef": {"name": "datagrid"}, "connectionId": format!("conn_filler_{i:03}"), "datagrid": {"name": "x"}},
            });
            let params = &params;
            async move {
                fillers.patch(&name, params, &kube::api::Patch::Apply(object)).await.expect("churn");
            }
        })
        .await;
}

/// How long kube-apiserver's watch cache keeps every event of a resource, however many
/// (`DefaultEventFreshDuration` in k8s.io/apiserver's cacher: the 1 min bookmark frequency
/// plus 15 s): within it the cache grows (up to 102,400 events) rather than forget a
/// version; past it, the oldest events are evicted once the cache (100 events at least) is
/// full.
const WATCH_CACHE_FRESH: Duration = Duration::from_secs(75);

/// How long the resumed watches wait in the kube-proxy in the watch-cache test: the fresh
/// window, then enough for rounds of churn to push their version out of the cache.
const WATCH_CACHE_HOLD: Duration = Duration::from_secs(120);

/// A genuine 410 from the real API server, on a control plane of this test's own: the
/// operator's Connections watches are ended and their resumed requests held in the
/// kube-proxy ([`WATCH_CACHE_HOLD`]) while the wave of changes is applied; meanwhile the
/// watch cache is made to forget their resourceVersion (wait out its fresh window, then
/// more Connection events than it holds, elsewhere in the cluster) until the API server
/// itself answers a watch from that version with `too old resource version` (checked with
/// kubectl). Released, the operator's watches meet that 410, relist, and reconcile every
/// change with one write.
///
/// Why the watch cache and not etcd compaction: with the watch cache on (the default, and
/// every real cluster), watches are served from the cache's event window and never reach
/// etcd, so compacting etcd (`POST /v3/kv/compaction` on etcd's gateway) changes nothing a
/// watch sees; only the window does. (Without the watch cache, `--watch-cache=false`, a
/// compacted version gives etcd3's "The resourceVersion for the provided watch is too
/// old.") What compaction does expire is a paginated LIST's `continue` token: see
/// `a_real_410_from_etcd_compaction_restarts_the_initial_list`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_410_from_the_watch_cache_relists_and_reconciles() {
    const N: usize = 5;
    let world = World::real_dedicated("cache410").await;
    let world = datagrid_world_on(world, "cache", N, Some(WATCH_ERRORS_LOG)).await;
    let ns = world.ns.clone();
    // Both Connection watchers' resumed watches wait in the proxy long enough for the cache
    // to forget their version (a 503 instead would leave the operator in kube-rs's retry
    // backoff, up to 30 s a step, after so long an outage).
    let hold = json!({"latencyMs": WATCH_CACHE_HOLD.as_millis() as u64, "count": 2});
    let held = hold_connection_watches(&world, hold, 2).await;
    world.apply(&datagrid_wave(&ns, "cache", N, "v2")).await;

    // Other Connections (in a namespace the operator does not watch) churn the cache once
    // its fresh window has passed. The churn is scenery, not a change under test: it goes
    // through kube-rs, 16 requests at a time (kubectl's client-side rate limit would make
    // each round of 120 writes take half a minute).
    let filler = world.cluster.namespace("filler");
    let fillers: kube::Api<connection_operator::api::Connection> =
        kube::Api::namespaced(world.client.clone(), filler.name());
    tokio::time::sleep(WATCH_CACHE_FRESH).await;
    let kubectl = world.cluster.kubectl();
    let mut round = 0;
    let expired = world
        .eventually("the API server to answer a watch from the held versions with 410", || {
            round += 1;
            let (kubectl, held, ns, fillers) = (kubectl.clone(), held.clone(), ns.clone(), fillers.clone());
            let round = round;
            async move {
                for rv in &held {
                    let url = format!(
                        "/apis/connection-operator.dev/v1alpha1/namespaces/{ns}/connections?watch=true&resourceVersion={rv}&timeoutSeconds=1"
                    );
                    let out = kubectl.run_async(&["get", "--raw", &url], None).await;
                    let first = out.stdout.lines().next().unwrap_or_default().to_string();
                    if first.contains(r#""code":410"#) {
                        return Some(first);
                    }
                }
                churn(&fillers, round).await;
                None
            }
        })
        .await;
    assert!(expired.contains("too old resource version"), "{expired}");
    eprintln!("the API server's answer: {expired}");

    // The held watches reach the API server when their hold ends, and meet the 410.
    world.wait_all_ready(&ns, N).await;
    assert_wave_applied_once(&world, "cache", N, "v2").await;
    assert_relisted(&world).await;
    let log = world.operator_log();
    assert!(
        held.iter().any(|rv| log.contains(&format!("too old resource version: {rv}"))),
        "the operator never met the real 410 for {held:?} (did the hold of {WATCH_CACHE_HOLD:?} end before the \
         API server forgot the version?):\n{}",
        world.operator_log_tail()
    );
}

/// A genuine 410 from etcd compaction, on a control plane of this test's own. The operator
/// starts with more Connections than one page of its initial LIST (kube-rs lists 500 at a
/// time), so each of its two Connection watchers asks for a second page with a `continue`
/// token pinned to the first page's revision. The kube-proxy holds each of those LISTs
/// [`COMPACTION_HOLD`]; once both second pages are on their way (so both first pages have
/// been answered), etcd's history is compacted past that revision the way kube-apiserver's
/// own compactor does (every `--etcd-compaction-interval`), and the test waits until the API
/// server answers a `continue` token of its own from before the compaction with 410 Expired
/// "The provided continue parameter is too old" (straight from etcd, once the watch cache
/// has dropped its older list snapshots). Released, the operator's second pages get the
/// same answer; it starts its list over and reconciles every Connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_410_from_etcd_compaction_restarts_the_initial_list() {
    /// One more than a page of kube-rs's watcher (`watcher::Config::page_size`, 500).
    const N: usize = 501;
    let mut world = World::real_dedicated("compact").await;
    let ns = world.ns.clone();
    world.stack.providers.rate_limit("datagrid", 0, 60.0).await;
    world.apply_provider(&ns, "datagrid", "rateLimit: {requestsPerMinute: 100000, burst: 1000}").await;
    for i in 0..N {
        let k = runtime_test_name(i);
        world.seed("datagrid", &format!("conn_compact_{k}"), json!({"name": format!("v1-{k}")})).await;
    }
    world.apply(&datagrid_wave(&ns, "compact", N, "v1")).await;

    // The first four GETs of the collection are the two watchers' first and second pages
    // (a second page is asked for only once its first page is answered).
    let connections = world.connections_path();
    let hold = COMPACTION_HOLD.as_millis() as u64;
    world.kube.faults(&json!({"method": "GET", "path": connections, "latencyMs": hold, "count": 4})).await;
    world.start_operator_logging(Some(WATCH_ERRORS_LOG));
    let second_pages = |journal: &[Value]| {
        journal
            .iter()
            .filter(|e| {
                e["path"] == connections.as_str() && e["query"].as_str().is_some_and(|q| q.contains("continue="))
            })
            .count()
    };
    world
        .eventually("both second pages of the initial lists to be on their way", || async {
            (second_pages(&world.kube.journal().await) >= 2).then_some(())
        })
        .await;
    let kubectl = world.cluster.kubectl();
    let first_page = format!("{connections}?limit=1");
    let page: Value = serde_json::from_str(&kubectl.run_async(&["get", "--raw", &first_page], None).await.stdout)
        .expect("a first page");
    let token = page["metadata"]["continue"].as_str().expect("a continue token").to_string();
    let etcd = world.cluster.control_plane().expect("a real control plane").etcd();
    let revision = etcd.bump().await;
    etcd.compact(revision).await;
    let second_page = format!("{connections}?limit=1&continue={token}");
    let expired = world
        .eventually("the API server to expire continue tokens from before the compaction", || async {
            let out = kubectl.run_async(&["get", "--raw", &second_page], None).await;
            (!out.ok && out.stderr.contains("continue parameter is too old")).then_some(out.stderr)
        })
        .await;
    eprintln!("the API server's answer: {}", expired.trim());

    world.wait_all_ready(&ns, N).await;
    let log = world.operator_log();
    assert!(
        log.contains("The provided continue parameter is too old"),
        "the operator never met the compaction's 410 (were its second pages released, after {COMPACTION_HOLD:?}, \
         before the API server noticed the compaction?):\n{}",
        world.operator_log_tail()
    );
    // It listed again from the start: more first pages than the two watchers' first lists.
    let journal = world.kube.journal().await;
    let first_pages = journal
        .iter()
        .filter(|e| {
            e["path"] == connections.as_str()
                && e["query"].as_str().is_some_and(|q| !q.contains("continue=") && !q.contains("watch=true"))
        })
        .count();
    assert!(first_pages > 2, "{first_pages} first pages: the list was not started over");
    // Upstream already matched: starting over cost reads, no writes.
    assert!(writes(&world.journal("datagrid").await).is_empty());
}

/// How long the kube-proxy holds each of the operator's initial LIST pages in the
/// compaction test: long enough for kube-apiserver to notice the compaction (its cacher
/// polls the compacted revision every 15 s) before the second pages reach it.
const COMPACTION_HOLD: Duration = Duration::from_secs(40);

/// 30% of Kubernetes API requests fail with 500 while the operator works through a wave of
/// changes: it does not crash, every change reaches upstream once, and status converges
/// once the API recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_failing_30_percent_then_converges() {
    const N: usize = 20;
    let world = datagrid_world("flaky", N).await;
    let ns = world.ns.clone();
    // Every request of the operator's fails at random from before the wave (kubectl goes to
    // the API server directly, so the wave itself gets through): its watches, status
    // writes, Events and Secret reads all meet the faults. (On the emulator kubectl shared
    // the faulty door, so the wave had to be applied first, and a fast operator could finish
    // it before the faults were on.) Upstream writes take a moment, so the wave lasts.
    world
        .stack
        .providers
        .faults("datagrid", json!({"method": "PATCH", "path": "/connections/*", "latencyMs": 300, "count": 1000}))
        .await;
    world.kube.faults(&json!({"path": "*", "status": 500, "probability": 0.3})).await;
    world.apply(&datagrid_wave(&ns, "flaky", N, "v2")).await;
    // The faults stay on until every change has reached upstream.
    world
        .eventually("every change to reach upstream under API faults", || async {
            let mut done = 0;
            for i in 0..N {
                let k = runtime_test_name(i);
                if world.stack.providers.upstream("datagrid", &format!("conn_flaky_{k}")).await["name"]
                    == format!("v2-{k}")
                {
                    done += 1;
                }
            }
            (done == N).then_some(())
        })
        .await;
    // The operator did meet the faults (the kube-proxy's 500 Status says "injected fault"),
    // and survived them.
    world
        .eventually("the operator to have met an injected 500", || async {
            let log = std::fs::read_to_string(world.stack.operator_log()?).ok()?;
            log.contains("injected fault").then_some(())
        })
        .await;
    let not_ready_under_faults = world.connections(&ns).await.iter().filter(|c| !is_ready_current(c)).count();
    world.assert_operator_alive();
    world.kube.clear_faults().await;
    world.wait_all_ready(&ns, N).await;
    assert_wave_applied_once(&world, "flaky", N, "v2").await;
    eprintln!("{not_ready_under_faults} of {N} Connections had not reported the change when the API recovered");
}

// ---------------------------------------------------------------------------------------
// Fault matrix: the provider
// ---------------------------------------------------------------------------------------

/// One Datagrid Connection whose first `count` upstream requests fail as `fault` says:
/// the Connection reports the failure, backs off (attempts spaced by at least the backoff
/// floor: 1 s doubling, docs/controller.md), then converges with one read and one
/// write. Returns the reasons seen while waiting.
async fn provider_fault_case(fault: Value, count: usize, provider_extra: &str) -> BTreeSet<String> {
    let mut world = World::real("fault").await;
    let ns = world.ns.clone();
    world.stack.providers.rate_limit("datagrid", 0, 60.0).await;
    world.apply_provider(&ns, "datagrid", provider_extra).await;
    world.seed("datagrid", "conn_fault", json!({"name": "before"})).await;
    world.stack.providers.faults("datagrid", fault).await;
    world.start_operator();
    // Created once the operator is ready, as a user's Connection would be: at start-up a
    // Connection the operator already caches can get a second reconcile right after the
    // first (the Provider's first listing maps to it), an upstream attempt outside the
    // backoff this test measures.
    world.wait_operator_ready().await;
    world.apply(&connection_yaml(&ns, "fault", "datagrid", "conn_fault", "{name: after}", "")).await;

    let mut reasons = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        world.assert_operator_alive();
        let conn = world.connection(&ns, "fault").await;
        if let Some((_, reason, _)) = ready(&conn) {
            reasons.insert(reason);
        }
        if is_ready_current(&conn) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not Ready; reasons seen {reasons:?}\n{}",
            world.operator_log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(world.upstream("datagrid", "conn_fault").await["name"], "after");

    let journal = world.journal("datagrid").await;
    // Faults apply to the first `count` requests; then one read and one write suffice.
    assert_eq!(journal.len(), count + 2, "requests beyond what the backoff allows: {journal:#?}");
    let tail: Vec<(&str, &Value)> =
        journal[count..].iter().map(|e| (e["method"].as_str().unwrap_or(""), &e["status"])).collect();
    assert_eq!(tail, vec![("GET", &json!(200)), ("PATCH", &json!(200))], "{journal:#?}");
    // Backoff: attempt k+1 comes at least 0.9 * 2^(k-1) s after attempt k (jitter only adds).
    let arrivals: Vec<f64> = journal[..=count].iter().map(|e| e["at"].as_f64().expect("at")).collect();
    for (k, pair) in arrivals.windows(2).enumerate() {
        let floor = 0.9 * f64::from(1u32 << k);
        assert!(
            pair[1] - pair[0] >= floor,
            "attempt {} came {:.3}s after the previous one (backoff floor {floor}s): {journal:#?}\n{}",
            k + 2,
            pair[1] - pair[0],
            world.operator_log_tail()
        );
    }
    reasons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_503_burst_backs_off_then_converges() {
    let reasons = provider_fault_case(json!({"path": "*", "status": 503, "count": 3}), 3, "").await;
    assert!(reasons.contains("UpstreamUnavailable"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_latency_past_client_timeout_backs_off_then_converges() {
    let reasons =
        provider_fault_case(json!({"path": "*", "latencyMs": 4000, "count": 2}), 2, "timeoutSeconds: 1").await;
    assert!(reasons.contains("UpstreamUnavailable"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_connection_resets_back_off_then_converge() {
    let reasons = provider_fault_case(json!({"path": "*", "reset": true, "count": 3}), 3, "").await;
    assert!(reasons.contains("UpstreamUnavailable"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_malformed_json_backs_off_then_converges() {
    let reasons = provider_fault_case(
        json!({"path": "*", "status": 200, "body": "{\"id\": \"conn_fault\", \"name\": ", "count": 3}),
        3,
        "",
    )
    .await;
    assert!(reasons.contains("UpstreamUnavailable"), "{reasons:?}");
}

/// Reconstruct the fixed windows of the Nango sandbox limiter (a window opens at the first
/// request and lasts `window` seconds; every request counts) from journal arrival times.
fn fixed_windows(arrivals: &[f64], window: f64) -> usize {
    let mut windows = 0;
    let mut start = f64::NEG_INFINITY;
    for &t in arrivals {
        if t >= start + window {
            windows += 1;
            start = t;
        }
    }
    windows
}

/// How far a Nango storm is, from its journal: requests, 429s, and the span from the first
/// request to the last (for failure messages).
fn nango_progress(journal: &[Value]) -> String {
    let arrivals: Vec<f64> = journal.iter().filter_map(|e| e["at"].as_f64()).collect();
    let span = match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) => last - first,
        _ => 0.0,
    };
    let limited = journal.iter().filter(|e| e["status"] == 429).count();
    let writes = journal.iter().filter(|e| e["method"] == "PATCH").count();
    format!("{} requests ({writes} PATCH, {limited} 429) over {span:.1}s", journal.len())
}

/// A 429 storm across 500 Connections of one Nango account whose real limit is far below
/// what the Provider declares (Nango's documented fixed 60 s window, docs/providers.md, Nango, with
/// a 350-request limit): the operator paces itself from the rate-limit headers instead of
/// hammering (at most one 429 per limiter window in total), Connections of other providers applied during the storm
/// converge while the Nango account is still blocked, and every Nango Connection converges
/// with exactly one write where one is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_storm_across_500_connections_of_one_account() {
    const N: usize = 500;
    /// Connections whose upstream differs and needs a write (the others only a read).
    const CHANGED: usize = 100;
    const LIMIT: u32 = 350;
    const WINDOW: f64 = 60.0;
    let world = World::real("storm").await;
    let ns = world.ns.clone();
    world.stack.providers.rate_limit("nango", LIMIT, WINDOW).await;
    world.stack.providers.rate_limit("datagrid", 0, 60.0).await;
    world.stack.providers.rate_limit("arena", 0, 60.0).await;
    // The Provider claims far more than the account allows, so only the upstream's
    // answers (headers and 429s) can slow the operator down.
    world.apply_provider(&ns, "nango", "rateLimit: {requestsPerMinute: 100000, burst: 1000}").await;
    world.apply_provider(&ns, "datagrid", "").await;
    world.apply_provider(&ns, "arena", "").await;
    for i in 0..N {
        let k = runtime_test_name(i);
        let tier = if i % (N / CHANGED) == 0 { "free" } else { "pro" };
        world
            .seed(
                "nango",
                &format!("storm-{k}"),
                json!({"provider_config_key": "salesforce", "metadata": {"tier": tier}}),
            )
            .await;
    }
    for i in 0..5 {
        world.seed("datagrid", &format!("conn_calm_{i}"), json!({"name": "old"})).await;
        world.seed("arena", &format!("{}", 1000 + i), json!({"metadata": {"seen": false}})).await;
    }
    let mut world = world;
    world.start_operator();
    world
        .apply(&documents((0..N).map(|i| {
            let k = runtime_test_name(i);
            connection_yaml(
                &ns,
                &format!("storm-{k}"),
                "nango",
                &format!("storm-{k}"),
                "{providerConfigKey: salesforce, metadata: {tier: pro}}",
                "",
            )
        })))
        .await;
    // The storm is on once the first window's budget is spent: from then on the account is
    // blocked (by the operator's own pacing or by a 429) until the window resets.
    world
        .eventually("the first window's budget to be spent", || async {
            let journal = world.journal("nango").await;
            (journal.len() >= LIMIT as usize || journal.iter().any(|e| e["status"] == 429)).then_some(())
        })
        .await;
    let at_budget = nango_progress(&world.journal("nango").await);

    // Other providers, applied in the middle of the storm, converge before it is over.
    world
        .apply(&documents((0..5).flat_map(|i| {
            [
                connection_yaml(
                    &ns,
                    &format!("calm-dg-{i}"),
                    "datagrid",
                    &format!("conn_calm_{i}"),
                    &format!("{{name: calm-{i}}}"),
                    "",
                ),
                connection_yaml(
                    &ns,
                    &format!("calm-arena-{i}"),
                    "arena",
                    &format!("{}", 1000 + i),
                    "{metadata: {seen: true}}",
                    "",
                ),
            ]
        })))
        .await;
    world
        .eventually("the other providers' Connections to be Ready", || async {
            let list = world.connections(&ns).await;
            let calm: Vec<_> = list.iter().filter(|c| kube::ResourceExt::name_any(*c).starts_with("calm-")).collect();
            (calm.len() == 10 && calm.iter().all(|c| is_ready_current(c))).then_some(())
        })
        .await;
    let at_calm = nango_progress(&world.journal("nango").await);
    eprintln!("Nango when the budget was spent: {at_budget}; when the others were Ready: {at_calm}");
    let storm_ready = world
        .connections(&ns)
        .await
        .iter()
        .filter(|c| kube::ResourceExt::name_any(*c).starts_with("storm-") && is_ready_current(c))
        .count();
    assert!(
        storm_ready < N,
        "the other providers converged only after the Nango storm ({storm_ready} of {N} Ready); Nango requests when \
         the budget was spent: {at_budget}; when the others were Ready: {at_calm}\n{}",
        world.operator_log_tail()
    );
    // Meanwhile the blocked Nango Connections say so.
    let limited = world
        .connections(&ns)
        .await
        .iter()
        .filter(|c| ready(c).is_some_and(|(_, reason, _)| reason == "RateLimited"))
        .count();
    assert!(limited > 0, "no Connection reports RateLimited during the storm");

    world.wait_all_ready(&ns, N + 10).await;
    for i in (0..N).step_by(25) {
        let k = runtime_test_name(i);
        assert_eq!(world.upstream("nango", &format!("storm-{k}")).await["metadata"], json!({"tier": "pro"}));
    }
    let journal = world.journal("nango").await;
    let arrivals: Vec<f64> = journal.iter().map(|e| e["at"].as_f64().expect("at")).collect();
    let windows = fixed_windows(&arrivals, WINDOW);
    let too_many = journal.iter().filter(|e| e["status"] == 429).count();
    let counts = by_status(&journal);
    assert!(windows >= 2, "the storm must have outlasted one limiter window: {counts:?}");
    let first = arrivals.first().copied().unwrap_or_default();
    let times: Vec<String> = journal
        .iter()
        .filter(|e| e["status"] == 429)
        .map(|e| format!("+{:.3}s", e["at"].as_f64().unwrap_or_default() - first))
        .collect();
    assert!(
        too_many <= windows,
        "{too_many} 429s over {windows} limiter windows (by status: {counts:?}; 429s at {times:?} after the first request)"
    );
    // Exactly one write per Connection that needed one: the storm cost no duplicate work.
    // (Identical PATCHes may share a request, naming several ids.)
    let mut written: Vec<String> = journal
        .iter()
        .filter(|e| e["method"] == "PATCH" && e["status"] == 200)
        .flat_map(|e| match &e["body"]["connection_id"] {
            Value::Array(ids) => ids.iter().map(|id| id.as_str().unwrap_or_default().to_string()).collect(),
            id => vec![id.as_str().unwrap_or_default().to_string()],
        })
        .collect();
    let requests = journal.iter().filter(|e| e["method"] == "PATCH" && e["status"] == 200).count();
    written.sort();
    let before = written.len();
    written.dedup();
    assert_eq!(before, written.len(), "a connection was written twice");
    assert_eq!(written.len(), CHANGED, "by status: {counts:?}");
    assert!(requests <= CHANGED, "{requests} PATCH requests for {CHANGED} changes");
}

/// The customer's application keeps writing keys no Connection declares (through Are.na's
/// own API) while the operator applies a wave of spec changes: none of its writes is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_writer_keys_survive_a_wave_of_changes() {
    const N: usize = 20;
    let mut world = World::real("ext").await;
    let ns = world.ns.clone();
    world.stack.providers.rate_limit("arena", 0, 60.0).await;
    world.apply_provider(&ns, "arena", "rateLimit: {requestsPerMinute: 100000, burst: 1000}").await;
    let id = |i: usize| format!("{}", 5000 + i);
    let wave = |version: &str| {
        documents((0..N).map(|i| {
            connection_yaml(
                &ns,
                &format!("ext-{i}"),
                "arena",
                &id(i),
                &format!("{{metadata: {{owned: {version}, n: {i}}}}}"),
                "",
            )
        }))
    };
    for i in 0..N {
        world.seed("arena", &id(i), json!({"metadata": {"owned": "v1", "n": i}})).await;
    }
    world.start_operator();
    world.apply(&wave("v1")).await;
    world.wait_all_ready(&ns, N).await;

    // The external writer: rounds of PUTs to every connection, each setting one of ten
    // foreign keys (Are.na allows 50 keys) to the round number, until the operator has
    // finished the wave, plus one more round. Its last value of each key must survive.
    let base = world.stack.base_url("arena");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut last_written: BTreeMap<(usize, String), u64> = BTreeMap::new();
            let mut round: u64 = 0;
            loop {
                let last = stop.load(std::sync::atomic::Ordering::SeqCst);
                for i in 0..N {
                    let key = format!("app_{}", round % 10);
                    let response = http
                        .put(format!("{base}/v3/connections/{}", 5000 + i))
                        .bearer_auth("customer-app-token")
                        .json(&json!({"metadata": {key.clone(): round}}))
                        .send()
                        .await
                        .expect("external write");
                    let status = response.status();
                    assert!(
                        status.is_success(),
                        "external write refused: {status}: {}",
                        response.text().await.unwrap_or_default()
                    );
                    last_written.insert((i, key), round);
                }
                round += 1;
                if last {
                    return (round, last_written);
                }
            }
        })
    };
    world.apply(&wave("v2")).await;
    world.wait_all_ready(&ns, N).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (rounds, last_written) = writer.await.expect("writer");
    assert!(rounds >= 2, "the writer must have overlapped the wave ({rounds} rounds)");
    for i in 0..N {
        let metadata = world.upstream("arena", &id(i)).await["metadata"].clone();
        assert_eq!(metadata["owned"], "v2", "{metadata}");
        for ((_, key), value) in last_written.range((i, String::new())..(i + 1, String::new())) {
            assert_eq!(
                metadata[key.as_str()],
                json!(value),
                "{}: the external write {key}={value} was lost: {metadata}",
                id(i)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fault matrix: two Connections, one upstream connection
// ---------------------------------------------------------------------------------------

/// Two Connections target the same Nango connection with an overlapping key: the older
/// keeps it; the newer reports Ready=False reason Conflict naming the older and writes none
/// of the contested keys. A third with disjoint keys coexists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_keys_conflict_newer_loses_disjoint_coexist() {
    let mut world = World::real("conflict").await;
    let ns = world.ns.clone();
    world.stack.providers.rate_limit("nango", 0, 60.0).await;
    world.apply_provider(&ns, "nango", "").await;
    world.seed("nango", "shared", json!({"provider_config_key": "salesforce", "metadata": {"app": "kept"}})).await;
    world.start_operator();
    let conn = |name: &str, metadata: &str| {
        connection_yaml(
            &ns,
            name,
            "nango",
            "shared",
            &format!("{{providerConfigKey: salesforce, metadata: {metadata}}}"),
            "",
        )
    };
    world.apply(&conn("older", "{region: eu, tier: gold}")).await;
    world.wait_all_ready(&ns, 1).await;

    world.apply(&conn("newer", "{region: us, owner: bob}")).await;
    world.apply(&conn("disjoint", "{color: red}")).await;
    let message = world
        .eventually("the newer Connection to report Conflict", || async {
            let newer = world.connection(&ns, "newer").await;
            match ready(&newer) {
                Some((status, reason, message)) if status == "False" && reason == "Conflict" => Some(message),
                _ => None,
            }
        })
        .await;
    assert!(message.contains("older"), "the Conflict message must name the other Connection: {message}");
    world
        .eventually("the disjoint Connection to be Ready", || async {
            is_ready_current(&world.connection(&ns, "disjoint").await).then_some(())
        })
        .await;
    assert!(is_ready_current(&world.connection(&ns, "older").await));

    let metadata = world.upstream("nango", "shared").await["metadata"].clone();
    assert_eq!(metadata["region"], "eu", "{metadata}");
    assert_eq!(metadata["tier"], "gold", "{metadata}");
    assert_eq!(metadata["color"], "red", "{metadata}");
    assert_eq!(metadata["app"], "kept", "{metadata}");
    for w in writes(&world.journal("nango").await) {
        assert_ne!(w["body"]["metadata"]["region"], "us", "the newer Connection wrote a contested key: {w}");
    }
}
