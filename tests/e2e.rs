//! End-to-end tier (DESIGN.md "Testing tiers" 4; issue 5): the Kubernetes API emulator and
//! the provider sandboxes on loopback, the compiled `connection-operator` binary as a
//! separate process, and the real kubectl as the only way Connections are created or
//! changed. Includes the demo (`examples/demo.rs`) and the fault matrix. Every test starts
//! its own stack on free ports, so nextest may run them in parallel.
//!
//! Assertions are on final upstream state, conditions, and request counts from the provider
//! journals (`GET <base>/_sandbox/requests`), never on durations; waits poll with a generous
//! bound (`e2e_support::GENEROUS`).

#[path = "../examples/demo/app.rs"]
mod app;
mod e2e_support;
#[path = "../examples/demo/stack.rs"]
mod stack;
#[path = "../examples/demo/table.rs"]
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e_support::*;
use serde_json::{Value, json};

const NS: &str = "e2e";

fn runtime_test_name(n: usize) -> String {
    format!("{n:03}")
}

/// Journal entries of one Datagrid connection id: `/connections/{id}`.
fn for_id<'a>(journal: &'a [Value], id: &str) -> Vec<&'a Value> {
    let path = format!("/connections/{id}");
    journal.iter().filter(|e| e["path"] == path.as_str()).collect()
}

/// `n` Datagrid Connections `<prefix>-NNN` → upstream `conn_<prefix>_NNN`, spec name
/// `<version>-NNN`.
fn datagrid_wave(prefix: &str, n: usize, version: &str) -> String {
    documents((0..n).map(|i| {
        let k = runtime_test_name(i);
        connection_yaml(NS, &format!("{prefix}-{k}"), "datagrid", &format!("conn_{prefix}_{k}"), &format!("{{name: {version}-{k}}}"), "")
    }))
}

/// A stack with the Datagrid Provider (no sandbox rate limit, generous pacing) and `n`
/// Connections whose upstream already matches `v1`, all Ready; journals cleared.
async fn datagrid_world(prefix: &str, n: usize) -> World {
    let mut world = World::start(&[NS]).await;
    world.stack.provider_rate_limit("datagrid", 0, 60.0).await.expect("disable the sandbox limit");
    world.apply_provider(NS, "datagrid", "rateLimit: {requestsPerMinute: 100000, burst: 1000}").await;
    for i in 0..n {
        let k = runtime_test_name(i);
        world.seed("datagrid", &format!("conn_{prefix}_{k}"), json!({"name": format!("v1-{k}")})).await;
    }
    world.start_operator();
    world.apply(&datagrid_wave(prefix, n, "v1")).await;
    world.wait_all_ready(NS, n).await;
    world.stack.clear_journal("datagrid").await.expect("clear journal");
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
    let mut world = World::start(&stack::EXAMPLE_NAMESPACES).await;
    world.stack.seed_example_upstreams().await.expect("seed");
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
               "fieldMapping": {"company": "Account.Name", "owner": "Account.OwnerId"}}),
    );
    let mielto = world.upstream("mielto", "conn_acme_slack").await;
    assert_eq!(mielto["label"], "Acme Slack");
    assert_eq!(mielto["status"], "active");
    assert_eq!(mielto["config"], json!({"channel": "#acme-alerts", "digest": "daily", "installedBy": "U024BE7LH"}));
    let arena = world.upstream("arena", "98765").await;
    assert_eq!(arena["metadata"], json!({"reviewed": true, "score": 0.95, "reviewer": "ops_team", "importedFrom": "csv"}));
    assert!(writes(&world.journal("arena").await).is_empty(), "Observe mode must never write");
    assert_eq!(world.upstream("datagrid", "conn_01HACME").await["name"], "Acme Drive");

    // A spec change through kubectl reaches upstream with exactly one write.
    world.stack.clear_journal("datagrid").await.expect("clear");
    world.kubectl(&["patch", "connection", "-n", "tenants", "acme-drive", "--type", "merge", "-p", r#"{"spec":{"datagrid":{"name":"Acme Drive (EU)"}}}"#]).await;
    world.wait_all_ready("tenants", 4).await;
    assert_eq!(world.upstream("datagrid", "conn_01HACME").await["name"], "Acme Drive (EU)");
    let journal = world.journal("datagrid").await;
    let written: Vec<&Value> = writes(&journal);
    assert_eq!(written.len(), 1, "{journal:?}");
    assert_eq!(written[0]["body"], json!({"name": "Acme Drive (EU)"}));
}

fn ready_of(conn: &connection_operator::api::Connection) -> (String, String, String) {
    ready(conn).unwrap_or_else(|| panic!("{} has no Ready condition", kube::ResourceExt::name_any(conn)))
}

/// The demo's own code path (what `cargo run --example demo -- --exit-when-ready` runs),
/// with the operator binary under test and free ports: it returns once every example
/// Connection is Ready, and has stopped the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exits_when_every_example_is_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = app::DemoOptions {
        providers_addr: "127.0.0.1:0".parse().unwrap(),
        kube_addr: "127.0.0.1:0".parse().unwrap(),
        exit_when_ready: true,
        timeout: GENEROUS,
        operator_bin: Some(operator()),
        workdir: dir.path().to_path_buf(),
        repo_root: stack::repo_root(),
    };
    let ended = app::run(options, std::future::pending()).await.expect("the demo ends with every Connection Ready");
    assert_eq!(ended, app::Ended::Ready);
    let log = std::fs::read_to_string(dir.path().join("operator-1.log")).expect("the operator log");
    for token in ["00000000-0000-4000-8000-000000000000", "replace-with-a-mielto-api-key", "replace-with-an-arena-token"] {
        assert!(!log.contains(token), "a credential leaked into the operator log");
    }
}

/// The demo fails (does not hang) when the Connections cannot become Ready: here the
/// operator never starts reconciling (a stand-in binary that only sleeps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_times_out_when_not_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sleeper = dir.path().join("sleeper.sh");
    std::fs::write(&sleeper, "#!/bin/sh\nexec sleep 600\n").expect("write");
    std::process::Command::new("chmod").arg("+x").arg(&sleeper).status().expect("chmod");
    let options = app::DemoOptions {
        providers_addr: "127.0.0.1:0".parse().unwrap(),
        kube_addr: "127.0.0.1:0".parse().unwrap(),
        exit_when_ready: true,
        timeout: Duration::from_secs(3),
        operator_bin: Some(sleeper),
        workdir: dir.path().join("work"),
        repo_root: stack::repo_root(),
    };
    match app::run(options, std::future::pending()).await {
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
    world.stack.provider_faults("datagrid", &json!({"method": "PATCH", "path": "/connections/*", "latencyMs": 1000, "count": 1000})).await.unwrap();
    // The wave is applied by kubectl while the operator already works on its first changes;
    // the kill comes as soon as 20 writes have been sent.
    let wave = datagrid_wave("wave", N, "v2");
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
    world.stack.clear_provider_faults("datagrid").await.unwrap();

    world.start_operator();
    world.wait_all_ready(NS, N).await;
    assert_wave_applied_once(&world, "wave", N, "v2").await;
}

/// The emulator ends every watch and answers the resumed ones with 410 Expired; changes
/// made while the operator's watch is down are still reconciled, each with one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_expired_watches_still_reconcile() {
    const N: usize = 5;
    let world = datagrid_world("watch", N).await;
    // Hold the operator's re-list/re-watch of Connections (its cluster-wide path) for a few
    // seconds, so the changes below land while it has no watch.
    world
        .stack
        .kube_admin(reqwest::Method::PUT, "/_sandbox/faults", Some(&json!({"method": "GET", "path": "/apis/connection-operator.dev/v1alpha1/connections", "latencyMs": 3000, "count": 3})))
        .await
        .expect("kube latency fault");
    world.stack.kube_admin(reqwest::Method::POST, "/_sandbox/watches/expire", None).await.expect("expire");
    world.stack.kube_admin(reqwest::Method::POST, "/_sandbox/watches/drop", None).await.expect("drop");
    world.apply(&datagrid_wave("watch", N, "v2")).await;
    world.wait_all_ready(NS, N).await;
    assert_wave_applied_once(&world, "watch", N, "v2").await;
}

/// 30% of Kubernetes API requests fail with 500 while the operator works through a wave of
/// changes: it does not crash, every change reaches upstream once, and status converges
/// once the API recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_api_failing_30_percent_then_converges() {
    const N: usize = 20;
    let world = datagrid_world("flaky", N).await;
    // Upstream writes take a moment, so the operator is still mid-wave (and all its status
    // writes are still to come) when the API starts failing.
    world.stack.provider_faults("datagrid", &json!({"method": "PATCH", "path": "/connections/*", "latencyMs": 300, "count": 1000})).await.unwrap();
    world.apply(&datagrid_wave("flaky", N, "v2")).await;
    // Every path, so watches, status writes, Events and Secret reads all fail at random.
    // (kubectl itself, with its dozens of discovery and OpenAPI requests per apply, could
    // not get a change through 30% failures, so the change is applied just before.)
    world
        .stack
        .kube_admin(reqwest::Method::PUT, "/_sandbox/faults", Some(&json!({"path": "*", "status": 500, "probability": 0.3})))
        .await
        .expect("kube fault");
    // The faults stay on until every change has reached upstream.
    world
        .eventually("every change to reach upstream under API faults", || async {
            let mut done = 0;
            for i in 0..N {
                let k = runtime_test_name(i);
                if world.stack.upstream("datagrid", &format!("conn_flaky_{k}")).await.ok()?["name"] == format!("v2-{k}") {
                    done += 1;
                }
            }
            (done == N).then_some(())
        })
        .await;
    // The operator did meet the faults (the emulator's 500 Status says "injected fault"),
    // and survived them.
    world
        .eventually("the operator to have met an injected 500", || async {
            let log = std::fs::read_to_string(world.stack.operator_log()?).ok()?;
            log.contains("injected fault").then_some(())
        })
        .await;
    let not_ready_under_faults = world.connections_retrying(NS).await.iter().filter(|c| !is_ready_current(c)).count();
    world.assert_operator_alive();
    world.stack.kube_admin(reqwest::Method::DELETE, "/_sandbox/faults", None).await.expect("clear kube faults");
    world.wait_all_ready(NS, N).await;
    assert_wave_applied_once(&world, "flaky", N, "v2").await;
    eprintln!("{not_ready_under_faults} of {N} Connections had not reported the change when the API recovered");
}

// ---------------------------------------------------------------------------------------
// Fault matrix: the provider
// ---------------------------------------------------------------------------------------

/// One Datagrid Connection whose first `count` upstream requests fail as `fault` says:
/// the Connection reports the failure, backs off (attempts spaced by at least the backoff
/// floor: 1 s doubling, DESIGN.md "Error policy"), then converges with one read and one
/// write. Returns the reasons seen while waiting.
async fn provider_fault_case(fault: Value, count: usize, provider_extra: &str) -> BTreeSet<String> {
    let mut world = World::start(&[NS]).await;
    world.stack.provider_rate_limit("datagrid", 0, 60.0).await.unwrap();
    world.apply_provider(NS, "datagrid", provider_extra).await;
    world.seed("datagrid", "conn_fault", json!({"name": "before"})).await;
    world.stack.provider_faults("datagrid", &fault).await.unwrap();
    world.start_operator();
    world.apply(&connection_yaml(NS, "fault", "datagrid", "conn_fault", "{name: after}", "")).await;

    let mut reasons = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        world.assert_operator_alive();
        let conn = world.connection(NS, "fault").await;
        if let Some((_, reason, _)) = ready(&conn) {
            reasons.insert(reason);
        }
        if is_ready_current(&conn) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not Ready; reasons seen {reasons:?}\n{}", world.operator_log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(world.upstream("datagrid", "conn_fault").await["name"], "after");

    let journal = world.journal("datagrid").await;
    // Faults apply to the first `count` requests; then one read and one write suffice.
    assert_eq!(journal.len(), count + 2, "requests beyond what the backoff allows: {journal:#?}");
    let tail: Vec<(&str, &Value)> = journal[count..].iter().map(|e| (e["method"].as_str().unwrap_or(""), &e["status"])).collect();
    assert_eq!(tail, vec![("GET", &json!(200)), ("PATCH", &json!(200))], "{journal:#?}");
    // Backoff: attempt k+1 comes at least 0.9 * 2^(k-1) s after attempt k (jitter only adds).
    let arrivals: Vec<f64> = journal[..=count].iter().map(|e| e["at"].as_f64().expect("at")).collect();
    for (k, pair) in arrivals.windows(2).enumerate() {
        let floor = 0.9 * f64::from(1u32 << k);
        assert!(pair[1] - pair[0] >= floor, "attempt {} came {:.3}s after the previous one (backoff floor {floor}s): {journal:#?}", k + 2, pair[1] - pair[0]);
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
    let reasons = provider_fault_case(json!({"path": "*", "latencyMs": 4000, "count": 2}), 2, "timeoutSeconds: 1").await;
    assert!(reasons.contains("UpstreamUnavailable"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_connection_resets_back_off_then_converge() {
    let reasons = provider_fault_case(json!({"path": "*", "reset": true, "count": 3}), 3, "").await;
    assert!(reasons.contains("UpstreamUnavailable"), "{reasons:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_malformed_json_backs_off_then_converges() {
    let reasons = provider_fault_case(json!({"path": "*", "status": 200, "body": "{\"id\": \"conn_fault\", \"name\": ", "count": 3}), 3, "").await;
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

/// A 429 storm across 500 Connections of one Nango account whose real limit is far below
/// what the Provider declares (Nango's documented fixed 60 s window, REFERENCE.md §1, with
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
    let world = World::start(&[NS]).await;
    world.stack.provider_rate_limit("nango", LIMIT, WINDOW).await.unwrap();
    world.stack.provider_rate_limit("datagrid", 0, 60.0).await.unwrap();
    world.stack.provider_rate_limit("arena", 0, 60.0).await.unwrap();
    // The Provider claims far more than the account allows, so only the upstream's
    // answers (headers and 429s) can slow the operator down.
    world.apply_provider(NS, "nango", "rateLimit: {requestsPerMinute: 100000, burst: 1000}").await;
    world.apply_provider(NS, "datagrid", "").await;
    world.apply_provider(NS, "arena", "").await;
    for i in 0..N {
        let k = runtime_test_name(i);
        let tier = if i % (N / CHANGED) == 0 { "free" } else { "pro" };
        world.seed("nango", &format!("storm-{k}"), json!({"provider_config_key": "salesforce", "metadata": {"tier": tier}})).await;
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
            connection_yaml(NS, &format!("storm-{k}"), "nango", &format!("storm-{k}"), "{providerConfigKey: salesforce, metadata: {tier: pro}}", "")
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

    // Other providers, applied in the middle of the storm, converge before it is over.
    world
        .apply(&documents((0..5).flat_map(|i| {
            [
                connection_yaml(NS, &format!("calm-dg-{i}"), "datagrid", &format!("conn_calm_{i}"), &format!("{{name: calm-{i}}}"), ""),
                connection_yaml(NS, &format!("calm-arena-{i}"), "arena", &format!("{}", 1000 + i), "{metadata: {seen: true}}", ""),
            ]
        })))
        .await;
    world
        .eventually("the other providers' Connections to be Ready", || async {
            let list = world.connections(NS).await;
            let calm: Vec<_> = list.iter().filter(|c| kube::ResourceExt::name_any(*c).starts_with("calm-")).collect();
            (calm.len() == 10 && calm.iter().all(|c| is_ready_current(c))).then_some(())
        })
        .await;
    let storm_ready = world.connections(NS).await.iter().filter(|c| kube::ResourceExt::name_any(*c).starts_with("storm-") && is_ready_current(c)).count();
    assert!(storm_ready < N, "the other providers converged only after the Nango storm ({storm_ready} of {N} Ready)");
    // Meanwhile the blocked Nango Connections say so.
    let limited = world.connections(NS).await.iter().filter(|c| ready(c).is_some_and(|(_, reason, _)| reason == "RateLimited")).count();
    assert!(limited > 0, "no Connection reports RateLimited during the storm");

    world.wait_all_ready(NS, N + 10).await;
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
    let times: Vec<String> = journal.iter().filter(|e| e["status"] == 429).map(|e| format!("+{:.3}s", e["at"].as_f64().unwrap_or_default() - first)).collect();
    assert!(too_many <= windows, "{too_many} 429s over {windows} limiter windows (by status: {counts:?}; 429s at {times:?} after the first request)");
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
    let mut world = World::start(&[NS]).await;
    world.stack.provider_rate_limit("arena", 0, 60.0).await.unwrap();
    world.apply_provider(NS, "arena", "rateLimit: {requestsPerMinute: 100000, burst: 1000}").await;
    let id = |i: usize| format!("{}", 5000 + i);
    let wave = |version: &str| {
        documents((0..N).map(|i| connection_yaml(NS, &format!("ext-{i}"), "arena", &id(i), &format!("{{metadata: {{owned: {version}, n: {i}}}}}"), "")))
    };
    for i in 0..N {
        world.seed("arena", &id(i), json!({"metadata": {"owned": "v1", "n": i}})).await;
    }
    world.start_operator();
    world.apply(&wave("v1")).await;
    world.wait_all_ready(NS, N).await;

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
                    assert!(status.is_success(), "external write refused: {status}: {}", response.text().await.unwrap_or_default());
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
    world.wait_all_ready(NS, N).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (rounds, last_written) = writer.await.expect("writer");
    assert!(rounds >= 2, "the writer must have overlapped the wave ({rounds} rounds)");
    for i in 0..N {
        let metadata = world.upstream("arena", &id(i)).await["metadata"].clone();
        assert_eq!(metadata["owned"], "v2", "{metadata}");
        for ((_, key), value) in last_written.range((i, String::new())..(i + 1, String::new())) {
            assert_eq!(metadata[key.as_str()], json!(value), "{}: the external write {key}={value} was lost: {metadata}", id(i));
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
    let mut world = World::start(&[NS]).await;
    world.stack.provider_rate_limit("nango", 0, 60.0).await.unwrap();
    world.apply_provider(NS, "nango", "").await;
    world.seed("nango", "shared", json!({"provider_config_key": "salesforce", "metadata": {"app": "kept"}})).await;
    world.start_operator();
    let conn = |name: &str, metadata: &str| connection_yaml(NS, name, "nango", "shared", &format!("{{providerConfigKey: salesforce, metadata: {metadata}}}"), "");
    world.apply(&conn("older", "{region: eu, tier: gold}")).await;
    world.wait_all_ready(NS, 1).await;

    world.apply(&conn("newer", "{region: us, owner: bob}")).await;
    world.apply(&conn("disjoint", "{color: red}")).await;
    let message = world
        .eventually("the newer Connection to report Conflict", || async {
            let newer = world.connection(NS, "newer").await;
            match ready(&newer) {
                Some((status, reason, message)) if status == "False" && reason == "Conflict" => Some(message),
                _ => None,
            }
        })
        .await;
    assert!(message.contains("older"), "the Conflict message must name the other Connection: {message}");
    world
        .eventually("the disjoint Connection to be Ready", || async { is_ready_current(&world.connection(NS, "disjoint").await).then_some(()) })
        .await;
    assert!(is_ready_current(&world.connection(NS, "older").await));

    let metadata = world.upstream("nango", "shared").await["metadata"].clone();
    assert_eq!(metadata["region"], "eu", "{metadata}");
    assert_eq!(metadata["tier"], "gold", "{metadata}");
    assert_eq!(metadata["color"], "red", "{metadata}");
    assert_eq!(metadata["app"], "kept", "{metadata}");
    for w in writes(&world.journal("nango").await) {
        assert_ne!(w["body"]["metadata"]["region"], "us", "the newer Connection wrote a contested key: {w}");
    }
}
