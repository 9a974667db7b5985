//! The controller end to end in-process: `controller::run` against the REAL Kubernetes
//! control plane (kube-apiserver + etcd + kube-controller-manager, shared by the test run, a
//! namespace per test) and the four provider emulators on loopback sockets, driving them
//! through kube-rs and the provider clients. Some cases run on the Kubernetes API emulator
//! too (see [`on_both`]), which keeps the emulator, the demo's and the end-to-end tier's
//! backend, honest about the semantics the operator relies on.
//!
//! The operator's client goes through `Cluster::instrumented()` (on the real control plane a
//! kube-proxy in front of the API server), whose journal counts the operator's Kubernetes
//! requests; the test's own reads and writes use the admin client directly, so they are not
//! counted. The operator watches only the test's namespace. Assertions are on states
//! (status, upstream data, finalizers, Events) and on counts in the request journals, never
//! on durations; waits poll with a generous bound.

use std::sync::Arc;
use std::time::Duration;

use connection_operator::admin;
use connection_operator::admin::Readiness;
use connection_operator::api::{ClusterProvider, Connection, Provider};
use connection_operator::controller::{self, FINALIZER, LeaseSettings, RunConfig, Timing};
use connection_operator::metrics::Metrics;
use connection_testkit::Backend;
use connection_testkit::log_capture::LogCapture;
use connection_testkit::operator_env::{Env, TOKEN, fast_timing};
use connection_testkit::providers::{PROVIDERS, writes};
use connection_testkit::wait::eventually;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

/// Runs the case `$name(Backend)` as two tests, `$name::real` and `$name::emulator`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn real() {
                super::$name(connection_testkit::Backend::Real).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn emulator() {
                super::$name(connection_testkit::Backend::Emulator).await
            }
        }
    };
}

/// Runs the case `$name(Backend)` as one test on the real control plane, `$name::real`.
macro_rules! on_real {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn real() {
                super::$name(connection_testkit::Backend::Real).await
            }
        }
    };
}

fn condition<'a>(c: &'a Connection, type_: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    c.status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|x| x.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

/// The spec of a Connection to provider `p` with upstream id `id` and its provider block.
fn spec(p: &str, id: &str, block: Value) -> Value {
    json!({"providerRef": {"name": p}, "connectionId": id, p: block})
}

// ---------------------------------------------------------------------------------------

on_real!(create_change_and_remove_keys_for_every_provider_keeping_foreign_keys);
async fn create_change_and_remove_keys_for_every_provider_keeping_foreign_keys(backend: Backend) {
    let env = Env::start(backend).await;
    env.seed("nango", "acme", json!({"provider_config_key": "salesforce", "metadata": {"theirs": "webhook-1"}})).await;
    env.seed("mielto", "acme", json!({"label": "Old", "status": "inactive", "config": {"theirs": 7}})).await;
    env.seed("arena", "4242", json!({"metadata": {"theirs": true}})).await;
    env.seed("datagrid", "acme", json!({"name": "Old name"})).await;

    env.apply(
        "n",
        spec("nango", "acme", json!({"providerConfigKey": "salesforce", "metadata": {"region": "eu", "tier": 2}})),
    )
    .await;
    env.apply(
        "m",
        spec("mielto", "acme", json!({"label": "Acme", "status": "active", "config": {"channel": "#a", "depth": 1}})),
    )
    .await;
    env.apply("a", spec("arena", "4242", json!({"metadata": {"reviewed": true, "score": 0.5}}))).await;
    env.apply("d", spec("datagrid", "acme", json!({"name": "Acme Drive"}))).await;
    for name in ["n", "m", "a", "d"] {
        let c = env.ready_reason(name, "InSync").await;
        assert_eq!(condition(&c, "Ready").status, "True");
        assert_eq!(condition(&c, "Synced").status, "True");
        assert_eq!(condition(&c, "RateLimited").status, "False");
        assert!(c.status.as_ref().unwrap().last_sync_time.is_some());
    }
    assert_eq!(
        env.upstream("nango", "acme").await["metadata"],
        json!({"theirs": "webhook-1", "region": "eu", "tier": 2})
    );
    let m = env.upstream("mielto", "acme").await;
    assert_eq!((m["label"].clone(), m["status"].clone()), (json!("Acme"), json!("active")));
    assert_eq!(m["config"], json!({"theirs": 7, "channel": "#a", "depth": 1}));
    assert_eq!(
        env.upstream("arena", "4242").await["metadata"],
        json!({"theirs": true, "reviewed": true, "score": 0.5})
    );
    assert_eq!(env.upstream("datagrid", "acme").await["name"], json!("Acme Drive"));
    let n = env.get("n").await.unwrap();
    assert_eq!(n.status.unwrap().managed_keys, ["region", "tier"]);

    // A spec change propagates; a key removed from the spec is removed upstream.
    env.apply("n", spec("nango", "acme", json!({"providerConfigKey": "salesforce", "metadata": {"region": "us"}})))
        .await;
    env.apply("m", spec("mielto", "acme", json!({"label": "Acme 2", "status": "active", "config": {"channel": "#b"}})))
        .await;
    env.apply("a", spec("arena", "4242", json!({"metadata": {"reviewed": false}}))).await;
    env.apply("d", spec("datagrid", "acme", json!({"name": "Acme Drive 2"}))).await;
    for name in ["n", "m", "a", "d"] {
        env.ready_reason(name, "InSync").await;
    }
    assert_eq!(env.upstream("nango", "acme").await["metadata"], json!({"theirs": "webhook-1", "region": "us"}));
    let m = env.upstream("mielto", "acme").await;
    assert_eq!(m["label"], json!("Acme 2"));
    assert_eq!(m["config"], json!({"theirs": 7, "channel": "#b"}));
    assert_eq!(env.upstream("arena", "4242").await["metadata"], json!({"theirs": true, "reviewed": false}));
    assert_eq!(env.upstream("datagrid", "acme").await["name"], json!("Acme Drive 2"));
    assert_eq!(env.get("n").await.unwrap().status.unwrap().managed_keys, ["region"]);
    assert_eq!(env.get("a").await.unwrap().status.unwrap().managed_keys, ["reviewed"]);

    // The transition to InSync was announced once by an Event; the write of the spec change,
    // which changed no Ready state, by DriftCorrected.
    let mut events = env.event("n", "DriftCorrected", "").await;
    events.sort();
    assert_eq!(
        events,
        [
            ("DriftCorrected".to_string(), "upstream was updated to match the spec".to_string(), 1),
            ("InSync".to_string(), "upstream matches the spec".to_string(), 1)
        ],
    );
}

on_real!(drift_is_corrected_in_manage_and_only_reported_in_observe);
async fn drift_is_corrected_in_manage_and_only_reported_in_observe(backend: Backend) {
    let env = Env::start(backend).await;
    env.seed("nango", "drift", json!({"provider_config_key": "hubspot", "metadata": {}})).await;
    env.seed("arena", "77", json!({"metadata": {"x": "y", "theirs": 1}})).await;
    env.seed("mielto", "obs", json!({"label": "L", "status": "active", "config": {"k": 1}})).await;
    env.apply("manage", spec("nango", "drift", json!({"providerConfigKey": "hubspot", "metadata": {"a": 1}}))).await;
    let mut observe = spec("arena", "77", json!({"metadata": {"x": "y"}}));
    observe["managementPolicy"] = json!("Observe");
    env.apply("observe", observe).await;
    let mut observe_mielto = spec("mielto", "obs", json!({"config": {"k": 2}}));
    observe_mielto["managementPolicy"] = json!("Observe");
    env.apply("observe-mielto", observe_mielto).await;
    env.ready_reason("manage", "InSync").await;
    env.ready_reason("observe", "InSync").await;
    // Observe found a difference at once and wrote nothing.
    let c = env.ready_reason("observe-mielto", "DriftDetected").await;
    assert_eq!(c.status.as_ref().unwrap().drift, ["config.k"]);
    assert_eq!(env.upstream("mielto", "obs").await["config"], json!({"k": 1}));
    assert!(writes(&env.journal("mielto").await).is_empty());

    // Someone changes upstream; a requested reconcile notices.
    env.seed("nango", "drift", json!({"provider_config_key": "hubspot", "metadata": {"a": 2, "theirs": true}})).await;
    env.seed("arena", "77", json!({"metadata": {"x": "z", "theirs": 1}})).await;
    env.clear_journal("arena").await;
    env.annotate_reconcile("manage", "2026-01-01T00:00:00Z").await;
    env.annotate_reconcile("observe", "2026-01-01T00:00:00Z").await;

    let handled = |name: &'static str| {
        let env = &env;
        async move {
            eventually("the reconcile request handled", || async {
                let c = env.get(name).await?;
                (c.status.as_ref()?.last_handled_reconcile_at.as_deref() == Some("2026-01-01T00:00:00Z")).then_some(c)
            })
            .await
        }
    };
    let manage = handled("manage").await;
    assert_eq!(condition(&manage, "Ready").reason, "InSync");
    assert_eq!(
        env.upstream("nango", "drift").await["metadata"],
        json!({"a": 1, "theirs": true}),
        "corrected, foreign key kept"
    );
    let observe = handled("observe").await;
    assert_eq!(condition(&observe, "Ready").reason, "DriftDetected");
    assert_eq!(condition(&observe, "Ready").status, "False");
    assert_eq!(observe.status.as_ref().unwrap().drift, ["x"]);
    assert_eq!(env.upstream("arena", "77").await["metadata"], json!({"x": "z", "theirs": 1}), "Observe writes nothing");
    let arena = env.journal("arena").await;
    assert!(writes(&arena).is_empty(), "{arena:?}");
    env.event("observe", "DriftDetected", "").await;
}

on_both!(in_sync_drift_checks_read_once_and_write_nothing);
async fn in_sync_drift_checks_read_once_and_write_nothing(backend: Backend) {
    let timing = Timing { drift_interval_override: Some(Duration::from_millis(1500)), ..fast_timing() };
    let env = Env::start_with(backend, timing).await;
    env.seed("nango", "s", json!({"provider_config_key": "github", "metadata": {"k": "v"}})).await;
    env.seed("mielto", "s", json!({"label": "L", "status": "active", "config": {"k": "v"}})).await;
    env.seed("arena", "1", json!({"metadata": {"k": "v"}})).await;
    env.seed("datagrid", "s", json!({"name": "N"})).await;
    env.apply("n", spec("nango", "s", json!({"providerConfigKey": "github", "metadata": {"k": "v"}}))).await;
    env.apply("m", spec("mielto", "s", json!({"label": "L", "config": {"k": "v"}}))).await;
    env.apply("a", spec("arena", "1", json!({"metadata": {"k": "v"}}))).await;
    env.apply("d", spec("datagrid", "s", json!({"name": "N"}))).await;
    for name in ["n", "m", "a", "d"] {
        env.ready_reason(name, "InSync").await;
    }
    // Let the first drift check of each pass (it may still write the Provider's status).
    for p in PROVIDERS {
        env.clear_journal(p).await;
    }
    eventually("a drift check per provider", || async {
        for p in PROVIDERS {
            if env.journal(p).await.is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await;

    env.kube.clear_journal().await;
    for p in PROVIDERS {
        env.clear_journal(p).await;
    }
    // Two further drift checks per Connection: the first ends before the second starts.
    let journals = eventually("two more drift checks per provider", || async {
        let mut all = Vec::new();
        for p in PROVIDERS {
            let j = env.journal(p).await;
            if j.len() < 2 {
                return None;
            }
            all.push((p, j));
        }
        Some(all)
    })
    .await;
    let kube = env.kube.journal().await;
    for (p, journal) in journals {
        let second_at = journal[1]["at"].as_f64().unwrap();
        let first_check: Vec<&Value> = journal.iter().filter(|r| r["at"].as_f64().unwrap() < second_at).collect();
        assert_eq!(first_check.len(), 1, "{p}: one upstream read per drift check: {journal:?}");
        assert_eq!(first_check[0]["method"], "GET", "{p}");
        assert!(writes(&journal).is_empty(), "{p}: no upstream write: {journal:?}");
    }
    // Not even a read: Providers, ClusterProviders and Secret versions come from the watch
    // caches, and the token is kept while its Secret is unchanged (a watch may be renewed).
    let requests: Vec<&Value> = kube
        .iter()
        .filter(|r| !(r["method"] == "GET" && r["query"].as_str().unwrap_or_default().contains("watch=true")))
        .collect();
    assert!(requests.is_empty(), "no Kubernetes request in steady state: {requests:?}");
}

on_real!(fleet_drift_checks_list_the_account_and_confirm_drift_with_one_get);
/// Drift checks of a fleet of Nango and Datagrid Connections list the account (a few
/// requests for all of them) instead of reading each one; drift seen in the list is
/// confirmed with one GET before the write. Steady state reads no Provider or Secret.
async fn fleet_drift_checks_list_the_account_and_confirm_drift_with_one_get(backend: Backend) {
    const N: usize = 6;
    let timing = Timing { drift_interval_override: Some(Duration::from_millis(1500)), ..fast_timing() };
    let env = Env::start_with(backend, timing).await;
    for i in 0..N {
        env.seed("nango", &format!("n{i}"), json!({"provider_config_key": "crm", "metadata": {"theirs": i}})).await;
        env.seed("datagrid", &format!("d{i}"), json!({"name": "old"})).await;
        env.apply(
            &format!("n{i}"),
            spec("nango", &format!("n{i}"), json!({"providerConfigKey": "crm", "metadata": {"plan": "pro"}})),
        )
        .await;
        env.apply(&format!("d{i}"), spec("datagrid", &format!("d{i}"), json!({"name": format!("D{i}")}))).await;
    }
    for i in 0..N {
        env.ready_reason(&format!("n{i}"), "InSync").await;
        env.ready_reason(&format!("d{i}"), "InSync").await;
    }
    // Every Connection gets its first drift check within an interval and a half.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    env.kube.clear_journal().await;
    for p in ["nango", "datagrid"] {
        env.clear_journal(p).await;
    }
    // Three intervals of drift checks: 2 x N Connections checked about six times each.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    for p in ["nango", "datagrid"] {
        let journal = env.journal(p).await;
        let lists = journal.iter().filter(|r| r["method"] == "GET" && r["path"] == "/connections").count();
        let gets: Vec<&Value> =
            journal.iter().filter(|r| r["method"] == "GET" && r["path"] != "/connections").collect();
        assert!(gets.is_empty(), "{p}: drift checks read one by one: {gets:?}");
        assert!(lists >= 1, "{p}: no list in three drift intervals: {journal:?}");
        // At most one list per half interval (plus one in flight at the edges).
        assert!(lists <= 7, "{p}: {lists} lists in three intervals: {journal:?}");
        assert!(writes(&journal).is_empty(), "{p}: {journal:?}");
    }
    let kube = env.kube.journal().await;
    let reads: Vec<&Value> = kube
        .iter()
        .filter(|r| {
            let path = r["path"].as_str().unwrap_or_default();
            r["method"] == "GET" && (path.contains("/secrets/") || path.contains("/providers/"))
        })
        .collect();
    assert!(reads.is_empty(), "steady state reads Providers or Secrets: {reads:?}");

    // Someone renames d3 upstream: the list shows it, one GET confirms, one PATCH fixes it.
    env.clear_journal("datagrid").await;
    env.seed("datagrid", "d3", json!({"name": "renamed"})).await;
    eventually("d3 renamed back", || async { (env.upstream("datagrid", "d3").await["name"] == "D3").then_some(()) })
        .await;
    let journal = env.journal("datagrid").await;
    let touched: Vec<String> = journal
        .iter()
        .filter(|r| r["path"] != "/connections")
        .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap()))
        .collect();
    assert_eq!(touched, ["GET /connections/d3", "PATCH /connections/d3"], "{journal:?}");
}

on_real!(upstream_errors_map_to_reasons_without_retry_loops_and_credentials_rotate_without_restart);
async fn upstream_errors_map_to_reasons_without_retry_loops_and_credentials_rotate_without_restart(backend: Backend) {
    let logs = LogCapture::install();
    let env = Env::start(backend).await;

    // 404: the connection does not exist upstream (Nango: in an existing integration).
    env.seed("nango", "known", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.apply("n404", spec("nango", "ghost", json!({"providerConfigKey": "x", "metadata": {"a": 1}}))).await;
    env.apply("m404", spec("mielto", "ghost", json!({"label": "L"}))).await;
    env.apply("a404", spec("arena", "999", json!({"metadata": {"a": 1}}))).await;
    env.apply("d404", spec("datagrid", "ghost", json!({"name": "N"}))).await;
    for name in ["n404", "m404", "a404", "d404"] {
        env.ready_reason(name, "UpstreamNotFound").await;
    }

    // 400/422: the provider rejects the write with its own message.
    let rejections = [
        (
            "nango",
            "PATCH",
            "/connections/metadata",
            400,
            r#"{"error":{"code":"invalid_body","message":"region is not allowed"}}"#,
            "invalid_body: region is not allowed",
        ),
        ("mielto", "PUT", "/api/v1/connections/*", 422, r#"{"detail":"label is reserved"}"#, "label is reserved"),
        (
            "arena",
            "PUT",
            "/v3/connections/*",
            422,
            r#"{"error":"Unprocessable","details":{"message":"score is out of range"}}"#,
            "score is out of range",
        ),
        ("datagrid", "PATCH", "/connections/*", 422, r#"{"message":"name is taken"}"#, "name is taken"),
    ];
    env.seed("nango", "bad", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.seed("mielto", "bad", json!({"label": "Old", "status": "active", "config": {}})).await;
    env.seed("arena", "5", json!({"metadata": {}})).await;
    env.seed("datagrid", "bad", json!({"name": "Old"})).await;
    for (p, method, path, status, body, _) in rejections {
        env.providers
            .faults(p, json!({"method": method, "path": path, "status": status, "body": body, "count": 1000}))
            .await;
        env.clear_journal(p).await;
    }
    env.apply("n422", spec("nango", "bad", json!({"providerConfigKey": "x", "metadata": {"region": "eu"}}))).await;
    env.apply("m422", spec("mielto", "bad", json!({"label": "New"}))).await;
    env.apply("a422", spec("arena", "5", json!({"metadata": {"score": 2}}))).await;
    env.apply("d422", spec("datagrid", "bad", json!({"name": "New"}))).await;
    let mut counts = Vec::new();
    for ((p, _, _, _, _, message), name) in rejections.iter().zip(["n422", "m422", "a422", "d422"]) {
        let c = env.ready_reason(name, "InvalidSpec").await;
        let ready = condition(&c, "Ready");
        assert!(ready.message.contains(message), "{name}: {}", ready.message);
        assert_eq!(condition(&c, "Synced").status, "False");
        counts.push((*p, env.journal(p).await.len()));
    }

    for p in PROVIDERS {
        env.providers.clear_faults(p).await;
    }

    // 401/403: the provider stops accepting the token...
    env.seed("nango", "auth", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.seed("mielto", "auth", json!({"label": "L", "status": "active", "config": {}})).await;
    env.seed("arena", "6", json!({"metadata": {}})).await;
    env.seed("datagrid", "auth", json!({"name": "N"})).await;
    for p in PROVIDERS {
        env.providers.accept_tokens(p, &["tok-rotated-credential-b81d"]).await;
    }
    env.apply("n401", spec("nango", "auth", json!({"providerConfigKey": "x", "metadata": {"a": 1}}))).await;
    env.apply("m401", spec("mielto", "auth", json!({"label": "M"}))).await;
    env.apply("a401", spec("arena", "6", json!({"metadata": {"a": 1}}))).await;
    env.apply("d401", spec("datagrid", "auth", json!({"name": "D"}))).await;
    for name in ["n401", "m401", "a401", "d401"] {
        env.ready_reason(name, "Unauthorized").await;
    }
    let providers: Api<Provider> = Api::namespaced(env.client.clone(), env.ns());
    eventually("the Provider reports Unauthorized", || async {
        let p = providers.get("nango").await.ok()?;
        p.status?.conditions.iter().any(|c| c.type_ == "Ready" && c.reason == "Unauthorized").then_some(())
    })
    .await;

    // ...and the rotated credential in the Secret is picked up without a restart.
    for p in PROVIDERS {
        env.secret(&format!("{p}-credentials"), "tok-rotated-credential-b81d").await;
    }
    for name in ["n401", "m401", "a401", "d401"] {
        env.ready_reason(name, "InSync").await;
    }
    assert_eq!(env.upstream("nango", "auth").await["metadata"], json!({"a": 1}));
    assert_eq!(env.upstream("datagrid", "auth").await["name"], json!("D"));

    // The rejected writes were sent once and never retried in a loop meanwhile (the
    // rotation reconciled them once more, as a Secret change should, and then they passed).
    for (p, before) in counts {
        let after = env.journal(p).await;
        let rejected = after.iter().filter(|r| r["status"] == 400 || r["status"] == 422).count();
        assert_eq!(rejected, 1, "{p}: {before} requests then {}: {after:?}", after.len());
    }
    for name in ["n422", "m422", "a422", "d422"] {
        env.ready_reason(name, "InSync").await;
    }

    // The credential appears nowhere: logs, status, events.
    let text = logs.text();
    assert!(text.contains("provider request"), "the capture works");
    for secret in [TOKEN, "tok-rotated-credential-b81d"] {
        assert!(!text.contains(secret), "a credential reached the log");
        let all = env.connections().list(&Default::default()).await.unwrap();
        assert!(!serde_json::to_string(&all).unwrap().contains(secret), "a credential reached a status");
        let events: Api<CoreEvent> = Api::namespaced(env.client.clone(), env.ns());
        let events = events.list(&Default::default()).await.unwrap();
        assert!(!events.items.is_empty());
        assert!(!serde_json::to_string(&events).unwrap().contains(secret), "a credential reached an Event");
        let providers = providers.list(&Default::default()).await.unwrap();
        assert!(!serde_json::to_string(&providers).unwrap().contains(secret), "a credential reached a Provider status");
    }
}

on_real!(server_errors_back_off_then_recover_and_metrics_and_readiness_are_served);
async fn server_errors_back_off_then_recover_and_metrics_and_readiness_are_served(backend: Backend) {
    let env = Env::start(backend).await;
    let listener = admin::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let admin_addr = listener.local_addr().unwrap();
    tokio::spawn(admin::serve(listener, env.metrics.clone(), env.readiness.clone()));

    env.seed("arena", "8", json!({"metadata": {}})).await;
    env.seed("datagrid", "flaky", json!({"name": "Old"})).await;
    env.providers
        .faults("arena", json!({"method": "GET", "path": "/v3/connections/*", "status": 503, "count": 3}))
        .await;
    env.providers
        .faults("datagrid", json!({"method": "PATCH", "path": "/connections/*", "status": 502, "count": 2}))
        .await;
    env.apply("a", spec("arena", "8", json!({"metadata": {"ok": true}}))).await;
    env.apply("d", spec("datagrid", "flaky", json!({"name": "New"}))).await;
    env.ready_reason("a", "InSync").await;
    env.ready_reason("d", "InSync").await;
    let statuses: Vec<Value> = env.journal("arena").await.iter().map(|r| json!([r["method"], r["status"]])).collect();
    assert_eq!(
        statuses,
        [json!(["GET", 503]), json!(["GET", 503]), json!(["GET", 503]), json!(["GET", 200]), json!(["PUT", 200])]
    );
    let statuses: Vec<Value> =
        env.journal("datagrid").await.iter().map(|r| json!([r["method"], r["status"]])).collect();
    assert_eq!(statuses.iter().filter(|s| s[0] == "PATCH").count(), 3, "{statuses:?}");
    assert_eq!(env.upstream("arena", "8").await["metadata"], json!({"ok": true}));

    let http = reqwest::Client::new();
    eventually("/readyz", || async {
        let ready = http.get(format!("http://{admin_addr}/readyz")).send().await.ok()?;
        (ready.status() == 200).then_some(())
    })
    .await;
    assert_eq!(http.get(format!("http://{admin_addr}/healthz")).send().await.unwrap().status(), 200);
    let metrics = http.get(format!("http://{admin_addr}/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "connection_operator_upstream_requests_total{provider=\"arena\",method=\"GET\",code=\"503\"} 3",
        "connection_operator_upstream_requests_total{provider=\"datagrid\",method=\"PATCH\",code=\"502\"} 2",
        "connection_operator_reconcile_total{result=\"UpstreamUnavailable\"} 5",
        "connection_operator_drift_corrections_total{provider=\"arena\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
}

on_real!(a_rate_limited_account_is_left_alone_until_retry_after_and_others_proceed);
async fn a_rate_limited_account_is_left_alone_until_retry_after_and_others_proceed(backend: Backend) {
    let env = Env::start(backend).await;
    env.seed("nango", "r1", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.seed("nango", "r2", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.seed("arena", "9", json!({"metadata": {}})).await;
    env.providers
        .faults("nango", json!({"method": "GET", "path": "/connections/*", "status": 429, "retryAfter": 3, "count": 1}))
        .await;
    env.apply("r1", spec("nango", "r1", json!({"providerConfigKey": "x", "metadata": {"a": 1}}))).await;
    let limited = env.ready_reason("r1", "RateLimited").await;
    let rl = condition(&limited, "RateLimited");
    assert_eq!((rl.status.as_str(), rl.reason.as_str()), ("True", "RetryAfter"));
    assert!(limited.status.as_ref().unwrap().retry_at.is_some());
    // Another Connection of the same account is held back without a request; another
    // provider is unaffected.
    env.apply("r2", spec("nango", "r2", json!({"providerConfigKey": "x", "metadata": {"b": 1}}))).await;
    env.apply("a", spec("arena", "9", json!({"metadata": {"c": 1}}))).await;
    env.ready_reason("a", "InSync").await;
    env.ready_reason("r1", "InSync").await;
    env.ready_reason("r2", "InSync").await;

    let journal = env.journal("nango").await;
    assert_eq!(journal[0]["status"], 429);
    let blocked_at = journal[0]["at"].as_f64().unwrap();
    let too_early: Vec<&Value> = journal[1..].iter().filter(|r| r["at"].as_f64().unwrap() < blocked_at + 3.0).collect();
    assert!(too_early.is_empty(), "requests before Retry-After elapsed: {too_early:?}");
    assert_eq!(journal.iter().filter(|r| r["status"] == 429).count(), 1);
    let providers: Api<Provider> = Api::namespaced(env.client.clone(), env.ns());
    let nango = providers.get("nango").await.unwrap();
    assert!(nango.status.unwrap().rate_limit.unwrap().blocked_until.is_some());
    assert!(env.metrics.encode().contains("connection_operator_rate_limited_total{provider=\"nango\"}"));
}

on_both!(deletion_policies_clean_up_owned_keys_or_orphan);
async fn deletion_policies_clean_up_owned_keys_or_orphan(backend: Backend) {
    let env = Env::start(backend).await;
    env.seed("nango", "del", json!({"provider_config_key": "x", "metadata": {"theirs": 1}})).await;
    env.seed("mielto", "del", json!({"label": "L", "status": "active", "config": {"theirs": 1}})).await;
    env.seed("arena", "10", json!({"metadata": {"theirs": 1}})).await;
    env.seed("datagrid", "del", json!({"name": "Old"})).await;
    env.seed("nango", "orphan", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.seed("arena", "11", json!({"metadata": {}})).await;
    let with_delete = |mut s: Value| {
        s["deletionPolicy"] = json!("Delete");
        s
    };
    env.apply("n", with_delete(spec("nango", "del", json!({"providerConfigKey": "x", "metadata": {"mine": 1}})))).await;
    env.apply("m", with_delete(spec("mielto", "del", json!({"label": "Mine", "config": {"mine": 1}})))).await;
    env.apply("a", with_delete(spec("arena", "10", json!({"metadata": {"mine": 1}})))).await;
    env.apply("d", with_delete(spec("datagrid", "del", json!({"name": "Mine"})))).await;
    env.apply("gone", with_delete(spec("arena", "404", json!({"metadata": {"mine": 1}})))).await;
    env.apply("o", spec("nango", "orphan", json!({"providerConfigKey": "x", "metadata": {"mine": 1}}))).await;
    env.apply("switch", with_delete(spec("arena", "11", json!({"metadata": {"mine": 1}})))).await;
    for name in ["n", "m", "a", "d", "o", "switch"] {
        env.ready_reason(name, "InSync").await;
    }
    env.ready_reason("gone", "UpstreamNotFound").await;
    for name in ["n", "m", "a", "d", "gone", "switch"] {
        assert!(env.get(name).await.unwrap().finalizers().contains(&FINALIZER.to_string()), "{name}");
    }
    assert!(env.get("o").await.unwrap().finalizers().is_empty(), "Orphan needs no finalizer");

    for name in ["n", "m", "a", "d", "gone", "o"] {
        env.connections().delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["n", "m", "a", "d", "gone", "o"] {
        eventually(&format!("{name} deleted"), || async { env.get(name).await.is_none().then_some(()) }).await;
    }
    assert_eq!(env.upstream("nango", "del").await["metadata"], json!({"theirs": 1}), "only the owned key removed");
    let m = env.upstream("mielto", "del").await;
    assert_eq!(m["config"], json!({"theirs": 1}));
    assert_eq!(m["label"], json!("Mine"), "label cannot be removed: orphaned");
    assert_eq!(env.upstream("arena", "10").await["metadata"], json!({"theirs": 1}));
    assert_eq!(env.upstream("datagrid", "del").await["name"], json!("Mine"));
    assert_eq!(env.upstream("nango", "orphan").await["metadata"], json!({"mine": 1}), "Orphan leaves upstream alone");
    env.event("d", "Orphaned", "name").await;
    env.event("m", "Orphaned", "label").await;

    // Deleting with cleanup failing holds the Connection; switching to Orphan releases it.
    env.providers
        .faults("arena", json!({"method": "PUT", "path": "/v3/connections/*", "status": 503, "count": 100000}))
        .await;
    env.connections().delete("switch", &DeleteParams::default()).await.unwrap();
    env.ready_reason("switch", "UpstreamUnavailable").await;
    assert!(env.get("switch").await.is_some());
    let patch = json!({"spec": {"deletionPolicy": "Orphan"}});
    env.connections().patch("switch", &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    eventually("switch released", || async { env.get("switch").await.is_none().then_some(()) }).await;
    assert_eq!(env.upstream("arena", "11").await["metadata"], json!({"mine": 1}));
}

on_both!(suspend_and_provider_problems_make_no_upstream_call);
async fn suspend_and_provider_problems_make_no_upstream_call(backend: Backend) {
    let env = Env::start(backend).await;
    env.seed("nango", "s", json!({"provider_config_key": "x", "metadata": {}})).await;
    let mut suspended = spec("nango", "s", json!({"providerConfigKey": "x", "metadata": {"a": 1}}));
    suspended["suspend"] = json!(true);
    env.apply("suspended", suspended).await;
    env.apply(
        "missing",
        json!({"providerRef": {"name": "nope"}, "connectionId": "s", "nango": {"providerConfigKey": "x"}}),
    )
    .await;
    env.apply(
        "mismatch",
        json!({"providerRef": {"name": "nango"}, "connectionId": "12", "arena": {"metadata": {"a": 1}}}),
    )
    .await;
    // A Provider whose Secret does not exist yet.
    let api: Api<Provider> = Api::namespaced(env.client.clone(), env.ns());
    let provider = json!({
        "apiVersion": "connection-operator.dev/v1alpha1", "kind": "Provider", "metadata": {"name": "later"},
        "spec": {"type": "nango", "baseUrl": env.providers.base_url("nango"), "credentialsRef": {"name": "later-credentials", "key": "token"}},
    });
    api.patch("later", &PatchParams::apply("test"), &Patch::Apply(provider)).await.unwrap();
    env.apply("not-ready", json!({"providerRef": {"name": "later"}, "connectionId": "s", "nango": {"providerConfigKey": "x", "metadata": {"b": 2}}})).await;
    // Through a ClusterProvider, whose Secret lives in a named namespace (another one of
    // this test's: the operator watches Secrets of its own namespace only, so this one is
    // read with a GET).
    let credentials = env.cluster.namespace("controller-credentials");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shared-arena"}, "stringData": {"token": TOKEN}});
    Api::<Secret>::namespaced(env.client.clone(), credentials.name())
        .patch("shared-arena", &PatchParams::apply("test"), &Patch::Apply(secret))
        .await
        .unwrap();
    let shared_arena = env.cluster_provider_name("shared-arena");
    let cluster: Api<ClusterProvider> = Api::all(env.client.clone());
    let cp = json!({
        "apiVersion": "connection-operator.dev/v1alpha1", "kind": "ClusterProvider", "metadata": {"name": shared_arena},
        "spec": {"type": "arena", "baseUrl": env.providers.base_url("arena"), "credentialsRef": {"name": "shared-arena", "namespace": credentials.name(), "key": "token"}},
    });
    cluster.patch(&shared_arena, &PatchParams::apply("test"), &Patch::Apply(cp)).await.unwrap();
    env.seed("arena", "13", json!({"metadata": {}})).await;
    env.apply("via-cluster", json!({"providerRef": {"kind": "ClusterProvider", "name": shared_arena}, "connectionId": "13", "arena": {"metadata": {"z": 1}}})).await;

    env.ready_reason("suspended", "Suspended").await;
    env.ready_reason("missing", "ProviderNotFound").await;
    let mismatch = env.ready_reason("mismatch", "ProviderMismatch").await;
    assert!(condition(&mismatch, "Ready").message.contains("arena"), "{:?}", condition(&mismatch, "Ready"));
    let not_ready = env.ready_reason("not-ready", "ProviderNotReady").await;
    assert!(condition(&not_ready, "Ready").message.contains("later-credentials"));
    env.ready_reason("via-cluster", "InSync").await;
    eventually("the ClusterProvider reports Ready", || async {
        let p = cluster.get(&shared_arena).await.ok()?;
        p.status?.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(())
    })
    .await;
    assert_eq!(env.upstream("arena", "13").await["metadata"], json!({"z": 1}));
    assert!(env.journal("nango").await.is_empty(), "no upstream call for any of them");

    // Creating the missing Secret is enough: its watch brings the Connection back.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), env.ns());
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later-credentials"}, "stringData": {"token": TOKEN}});
    secrets.patch("later-credentials", &PatchParams::apply("test"), &Patch::Apply(secret)).await.unwrap();
    env.ready_reason("not-ready", "InSync").await;
    // Deleting the Provider is noticed at once (not at the next drift check).
    api.delete("later", &DeleteParams::default()).await.unwrap();
    env.ready_reason("not-ready", "ProviderNotFound").await;
    // Unsuspending syncs.
    let patch = json!({"spec": {"suspend": false}});
    env.connections().patch("suspended", &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    env.ready_reason("suspended", "InSync").await;
    assert_eq!(env.upstream("nango", "s").await["metadata"], json!({"a": 1, "b": 2}));
    // A spec change of a Provider makes its Connections read upstream again.
    let before = env.journal("nango").await.len();
    api.patch("nango", &PatchParams::default(), &Patch::Merge(json!({"spec": {"timeoutSeconds": 7}}))).await.unwrap();
    eventually("a read after the spec change", || async { (env.journal("nango").await.len() > before).then_some(()) })
        .await;
}

on_real!(overlapping_keys_conflict_and_the_newer_connection_writes_nothing);
async fn overlapping_keys_conflict_and_the_newer_connection_writes_nothing(backend: Backend) {
    let env = Env::start(backend).await;
    env.seed("nango", "shared", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.apply("first", spec("nango", "shared", json!({"providerConfigKey": "x", "metadata": {"a": 1, "b": 1}}))).await;
    env.ready_reason("first", "InSync").await;
    // creationTimestamp has second precision; make sure the second one is strictly newer.
    eventually("a new second", || async {
        let first = env.get("first").await?.metadata.creation_timestamp?.0.as_second();
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        (now > first).then_some(())
    })
    .await;
    env.clear_journal("nango").await;
    env.apply("second", spec("nango", "shared", json!({"providerConfigKey": "x", "metadata": {"b": 2, "c": 2}}))).await;
    env.apply("third", spec("nango", "shared", json!({"providerConfigKey": "x", "metadata": {"z": 3}}))).await;
    let second = env.ready_reason("second", "Conflict").await;
    assert_eq!(condition(&second, "Ready").message, format!("key(s) b already owned by Connection {}/first", env.ns()));
    env.ready_reason("third", "InSync").await;
    assert_eq!(
        env.upstream("nango", "shared").await["metadata"],
        json!({"a": 1, "b": 1, "z": 3}),
        "the newer one wrote nothing"
    );

    // When the older one goes away, the newer one takes the key.
    env.connections().delete("first", &DeleteParams::default()).await.unwrap();
    env.ready_reason("second", "InSync").await;
    assert_eq!(env.upstream("nango", "shared").await["metadata"], json!({"a": 1, "b": 2, "c": 2, "z": 3}));
}

on_both!(only_the_lease_holder_reconciles_and_a_standby_takes_over);
async fn only_the_lease_holder_reconciles_and_a_standby_takes_over(backend: Backend) {
    use k8s_openapi::api::coordination::v1::Lease;
    let env = Env::start_inner(backend, None, 8).await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), env.ns());
    let holder = || async { leases.get_opt("connection-operator").await.ok()??.spec?.holder_identity };
    let replica = |identity: &str, metrics: Arc<Metrics>| {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let lease = LeaseSettings { duration: 3, grace: 1, ..LeaseSettings::new(env.ns(), identity) };
        let config = RunConfig { namespace: Some(env.ns().to_string()), concurrency: 4, timing: fast_timing() };
        let task = tokio::spawn(controller::run_when_leading(
            env.operator_client.clone(),
            config,
            lease,
            metrics,
            Readiness::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        (stop, task)
    };
    let (metrics_a, metrics_b) = (Arc::new(Metrics::new()), Arc::new(Metrics::new()));
    let (stop_a, task_a) = replica("replica-a", metrics_a.clone());
    eventually("replica-a holds the Lease", || async {
        (holder().await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;

    // What keeps two replicas racing for a free Lease from both taking it: kube-lease-manager
    // takes one with a server-side apply of holderIdentity, which the API server refuses
    // while another field manager owns that field. So each replica applies as a manager of
    // its own (under one shared manager, replica-b's apply below would succeed).
    let lease = leases.get("connection-operator").await.unwrap();
    let owners: Vec<String> = lease
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.fields_v1.as_ref().is_some_and(|v| v.0.to_string().contains("f:holderIdentity")))
        .filter_map(|f| f.manager.clone())
        .collect();
    assert_eq!(
        owners,
        [LeaseSettings::new(env.ns(), "replica-a").field_manager()],
        "{:?}",
        lease.metadata.managed_fields
    );
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now());
    let take = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "connection-operator"},
        "spec": {"holderIdentity": "replica-b", "acquireTime": now, "renewTime": now, "leaseDurationSeconds": 3},
    });
    let manager_b = LeaseSettings::new(env.ns(), "replica-b").field_manager();
    match leases.patch("connection-operator", &PatchParams::apply(&manager_b), &Patch::Apply(take)).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"), "{status:?}")
        }
        other => panic!("replica-b's apply of holderIdentity must conflict: {other:?}"),
    }
    assert_eq!(holder().await.as_deref(), Some("replica-a"));
    let (_stop_b, _task_b) = replica("replica-b", metrics_b.clone());

    env.seed("arena", "20", json!({"metadata": {}})).await;
    env.apply("one", spec("arena", "20", json!({"metadata": {"k": 1}}))).await;
    env.ready_reason("one", "InSync").await;
    assert!(metrics_a.encode().contains("connection_operator_reconcile_total{"), "the leader reconciled");
    assert!(!metrics_b.encode().contains("connection_operator_reconcile_total{"), "the standby did not");

    // The leader stops (and releases the Lease); the standby takes over.
    stop_a.send(()).unwrap();
    assert!(!task_a.await.unwrap().unwrap(), "stopped by shutdown, not by losing the Lease");
    eventually("replica-b holds the Lease", || async {
        (holder().await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    env.seed("arena", "21", json!({"metadata": {}})).await;
    env.apply("two", spec("arena", "21", json!({"metadata": {"k": 2}}))).await;
    env.ready_reason("two", "InSync").await;
    assert!(metrics_b.encode().contains("connection_operator_reconcile_total{"), "the new leader reconciled");
}

on_real!(a_slow_provider_account_cannot_take_every_worker);
async fn a_slow_provider_account_cannot_take_every_worker(backend: Backend) {
    // Two workers: one provider account may hold only one of them.
    let env = Env::start_inner(backend, Some(fast_timing()), 2).await;
    for id in ["s1", "s2", "s3", "s4"] {
        env.seed("nango", id, json!({"provider_config_key": "x", "metadata": {}})).await;
    }
    env.seed("arena", "30", json!({"metadata": {}})).await;
    // Every Nango answer takes 3 s (a provider at its limit, or a pacing wait).
    env.providers.faults("nango", json!({"path": "*", "latencyMs": 3000, "count": 1000})).await;
    for id in ["s1", "s2", "s3", "s4"] {
        env.apply(id, spec("nango", id, json!({"providerConfigKey": "x", "metadata": {"k": 1}}))).await;
    }
    eventually("a Nango request under way", || async { (!env.journal("nango").await.is_empty()).then_some(()) }).await;
    env.apply("fast", spec("arena", "30", json!({"metadata": {"k": 1}}))).await;
    env.ready_reason("fast", "InSync").await;
    // Had the Nango Connections held both workers, the Are.na one would have waited for a
    // whole Nango reconcile (a read and a write): at least three Nango requests by then.
    let nango = env.journal("nango").await;
    assert!(nango.len() <= 2, "the Are.na Connection waited behind Nango: {nango:?}");
    assert!(env.metrics.encode().contains("connection_operator_reconcile_total{result=\"deferred\"}"));
}

/// The `connection_operator_provider_accounts` gauge: the accounts the operator keeps
/// state for.
fn provider_accounts(metrics: &Metrics) -> Option<i64> {
    let text = metrics.encode();
    let line = text.lines().find(|l| l.starts_with("connection_operator_provider_accounts "))?;
    line.rsplit(' ').next()?.parse().ok()
}

on_both!(an_account_is_dropped_when_its_last_provider_goes);
async fn an_account_is_dropped_when_its_last_provider_goes(backend: Backend) {
    let env = Env::start(backend).await;
    // A second Provider of the Nango account: same type, endpoint and token.
    env.provider("nango-b", "nango").await;
    env.seed("nango", "a1", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.seed("nango", "b1", json!({"provider_config_key": "x", "metadata": {}})).await;
    env.apply("a", spec("nango", "a1", json!({"providerConfigKey": "x", "metadata": {"k": 1}}))).await;
    let through_b = json!({"providerRef": {"name": "nango-b"}, "connectionId": "b1", "nango": {"providerConfigKey": "x", "metadata": {"k": 2}}});
    env.apply("b", through_b).await;
    env.ready_reason("a", "InSync").await;
    env.ready_reason("b", "InSync").await;
    // The Providers of the other types are used by no Connection: never resolved.
    assert_eq!(provider_accounts(&env.metrics), Some(1), "one account behind both Providers");

    let providers: Api<Provider> = Api::namespaced(env.client.clone(), env.ns());
    providers.delete("nango-b", &DeleteParams::default()).await.unwrap();
    env.ready_reason("b", "ProviderNotFound").await;
    assert_eq!(provider_accounts(&env.metrics), Some(1), "the account's other Provider still uses it");

    providers.delete("nango", &DeleteParams::default()).await.unwrap();
    env.ready_reason("a", "ProviderNotFound").await;
    eventually("the account forgotten", || async { (provider_accounts(&env.metrics) == Some(0)).then_some(()) }).await;
}

on_real!(upstream_turns_bound_the_requests_in_flight_across_accounts);
async fn upstream_turns_bound_the_requests_in_flight_across_accounts(backend: Backend) {
    // Two upstream turns (so four workers); each account may hold one of them.
    let env = Env::start_inner(backend, Some(fast_timing()), 2).await;
    // Four Are.na accounts (one token each), two Connections each.
    let accounts = ["k1", "k2", "k3", "k4"];
    for account in accounts {
        let secret = format!("arena-{account}-credentials");
        env.secret(&secret, &format!("tok-{account}")).await;
        env.provider_with_secret(&format!("arena-{account}"), "arena", &secret).await;
    }
    // Every Are.na answer takes a while, so the requests of different accounts overlap
    // unless something keeps them apart.
    env.providers.faults("arena", json!({"path": "*", "latencyMs": 400, "count": 1000})).await;
    let mut names = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        for j in 0..2 {
            let id = format!("{}", 100 + i * 2 + j);
            env.seed("arena", &id, json!({"metadata": {}})).await;
            let name = format!("c-{account}-{j}");
            let spec = json!({"providerRef": {"name": format!("arena-{account}")}, "connectionId": id, "arena": {"metadata": {"k": j}}});
            env.apply(&name, spec).await;
            names.push(name);
        }
    }
    for name in &names {
        env.ready_reason(name, "InSync").await;
    }
    let journal = env.journal("arena").await;
    assert_eq!(writes(&journal).len(), names.len(), "one write each: {journal:?}");
    // Without the operator-wide turns, the four accounts' reconciles (four workers, one
    // slot per account) would have four requests in flight at once.
    let most = env.providers.max_in_flight("arena").await;
    assert!(most <= 2, "{most} Are.na requests in flight at once with --concurrency 2");
    assert!(most >= 1);
}

// A relist has to be forced for both of the operator's Connection watches: the emulator's
// expiry reaches every watch from before it, the kube-proxy's is asked for two of them.
on_both!(a_new_generation_seen_only_in_a_relist_is_reconciled_as_that_generation);
async fn a_new_generation_seen_only_in_a_relist_is_reconciled_as_that_generation(backend: Backend) {
    use futures::StreamExt;
    let env = Env::start(backend).await;
    // More Connections than one page of the operator's list (kube-rs lists 500 at a time), so
    // that its relist has a second page to wait for. The fillers are suspended: no upstream
    // call. The changed ones sort first, onto the first page.
    const FILLERS: usize = 500;
    let changed: Vec<String> = (0..6).map(|i| format!("a-{i}")).collect();
    let drift = |block: Value| {
        // A drift check must not come to the rescue while the test waits.
        let mut s = spec("nango", "unused", block);
        s["driftInterval"] = json!("1h");
        s
    };
    for name in &changed {
        env.seed("nango", name, json!({"provider_config_key": "x", "metadata": {"k": 1}})).await;
        let mut s = drift(json!({"providerConfigKey": "x", "metadata": {"k": 1}}));
        s["connectionId"] = json!(name);
        env.apply(name, s).await;
    }
    futures::stream::iter(0..FILLERS)
        .for_each_concurrent(16, |i| {
            let env = &env;
            async move {
                let mut s = drift(json!({"providerConfigKey": "x"}));
                s["connectionId"] = json!(format!("f-{i:03}"));
                s["suspend"] = json!(true);
                env.apply(&format!("f-{i:03}"), s).await;
            }
        })
        .await;
    eventually("every Connection reconciled for generation 1", || async {
        let list = env.connections().list(&Default::default()).await.unwrap();
        let done = list.items.iter().filter(|c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.observed_generation.is_some() && s.observed_generation == c.metadata.generation)
        });
        (done.count() == FILLERS + changed.len()).then_some(())
    })
    .await;
    for name in &changed {
        env.ready_reason(name, "InSync").await;
    }

    // The operator's watches end and cannot resume from their versions (the history is
    // gone), and each request of its Connection watches and lists waits 2 s: the changes
    // below happen while it watches nothing, so it sees them only in its relist, whose
    // second page comes 2 s after the first.
    let collection = format!("/apis/connection-operator.dev/v1alpha1/namespaces/{}/connections", env.ns());
    env.kube.faults(&json!({"method": "GET", "path": collection, "latencyMs": 2000, "count": 8})).await;
    env.kube.clear_journal().await;
    env.kube.expire_watches_of(&collection, 2).await;
    env.kube.drop_watches().await;
    for name in &changed {
        let patch = json!({"spec": {"nango": {"metadata": {"k": 2}}}});
        env.connections().patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    }

    for name in &changed {
        let c = env.ready_reason(name, "InSync").await;
        assert_eq!(c.metadata.generation, Some(2), "{name}");
        assert_eq!(env.upstream("nango", name).await["metadata"], json!({"k": 2}), "{name}");
    }
    // The changes did reach the operator through a relist of more than one page (else this
    // test proves nothing).
    let journal = env.kube.journal().await;
    let lists = |continued: bool| {
        journal
            .iter()
            .filter(|r| r["method"] == "GET" && r["path"] == collection.as_str())
            .filter_map(|r| r["query"].as_str())
            .filter(|q| !q.contains("watch=") && q.contains("continue=") == continued)
            .count()
    };
    assert!(lists(true) >= 1, "no second page of a Connection list: {journal:?}");
    // Both Connection watches relisted: the one filling the cache among them.
    assert!(lists(false) >= 2, "fewer than two relists of the Connections: {journal:?}");
}
