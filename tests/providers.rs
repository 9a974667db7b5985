//! Provider clients against the provider emulators (`connection-sandbox`) over real HTTP on
//! loopback: reads and planned writes change upstream exactly as the plan says, errors are
//! classified, and rate limits are honoured, counted in the sandbox's request journal.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use connection_operator::api::{ConnectionSpec, ProviderConfig, ProviderId, ProviderSpec};
use connection_operator::diff::{self, Plan, Write};
use connection_operator::providers::{self, Accounts, Freshness, ProviderClient, ProviderError, Target, Token};
use connection_testkit::providers::Providers;
use serde_json::{Value, json};

const TOKEN: &str = "operator-test-token";

/// The kit's provider emulators (seeding, journals, faults through their admin API: reached
/// through `Deref`) and the operator's clients for them.
struct Sandbox {
    providers: Providers,
    /// The clients' HTTP client; also the test's own traffic as another caller.
    http: reqwest::Client,
    /// One registry, so clients of one account share its pacer as the operator's do.
    accounts: Accounts,
}

impl std::ops::Deref for Sandbox {
    type Target = Providers;
    fn deref(&self) -> &Providers {
        &self.providers
    }
}

impl Sandbox {
    async fn start() -> Self {
        Sandbox { providers: Providers::start().await, http: reqwest::Client::new(), accounts: Accounts::default() }
    }

    fn config(&self, provider: &str, extra: Value) -> ProviderConfig {
        let mut spec = json!({
            "type": provider,
            "baseUrl": self.base_url(provider),
            "credentialsRef": {"name": format!("{provider}-credentials"), "key": "token"},
            "timeoutSeconds": 5,
        });
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let spec: ProviderSpec = serde_json::from_value(spec).unwrap();
        ProviderConfig::from_provider(&spec, "tenants")
    }

    fn client_for(&self, config: &ProviderConfig, token: &str) -> Arc<dyn ProviderClient> {
        let token = Token::new(token);
        // One user for every client: the latest rate limit is the account's, as a Provider's edit.
        let user = ProviderId::Cluster { name: "test".into() };
        let pacer = self.accounts.handle(&user, &config.account_key(&token), config, &token).unwrap().pacer;
        // A fresh client each time (its own list snapshot), on the account's pacer.
        providers::client(config, token, self.http.clone(), pacer).unwrap()
    }

    fn client(&self, provider: &str) -> Arc<dyn ProviderClient> {
        self.client_for(&self.config(provider, json!({})), TOKEN)
    }
}

fn spec(value: Value) -> ConnectionSpec {
    serde_json::from_value(value).unwrap()
}

/// One reconcile pass of the Manage policy: read, plan, write when needed.
async fn sync(client: &dyn ProviderClient, spec: &ConnectionSpec, managed: &[String]) -> Result<Plan, ProviderError> {
    let target = Target::for_connection(spec);
    let upstream = client.read(&target).await?;
    let plan = diff::plan(spec.block().unwrap(), managed, &upstream).unwrap();
    if let Some(write) = &plan.write {
        client.write(&target, write).await?;
    }
    Ok(plan)
}

fn methods(journal: &[Value]) -> Vec<String> {
    journal
        .iter()
        .map(|e| format!("{} {} {}", e["method"].as_str().unwrap(), e["path"].as_str().unwrap(), e["status"]))
        .collect()
}

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn arena_sync_puts_changed_keys_and_null_for_removed_ones_keeping_foreign_keys() {
    let s = Sandbox::start().await;
    s.seed("arena", "98765", json!({"metadata": {"reviewed": false, "old": "x", "theirs": 1}})).await;
    let spec = spec(json!({"providerRef": {"name": "arena"}, "connectionId": "98765",
                           "arena": {"metadata": {"reviewed": true, "score": 0.95}}}));
    let client = s.client("arena");

    let plan = sync(client.as_ref(), &spec, &keys(&["old", "reviewed"])).await.unwrap();
    assert_eq!(plan.managed_keys, keys(&["reviewed", "score"]));
    let journal = s.journal("arena").await;
    assert_eq!(methods(&journal), ["GET /v3/connections/98765 200", "PUT /v3/connections/98765 200"]);
    assert_eq!(journal[1]["body"], json!({"metadata": {"reviewed": true, "score": 0.95, "old": null}}));
    assert_eq!(s.upstream("arena", "98765").await["metadata"], json!({"reviewed": true, "score": 0.95, "theirs": 1}));

    // Steady state: one read, no write.
    s.clear_journal("arena").await;
    let again = sync(client.as_ref(), &spec, &plan.managed_keys).await.unwrap();
    assert!(again.in_sync(), "{again:?}");
    assert_eq!(methods(&s.journal("arena").await), ["GET /v3/connections/98765 200"]);
}

#[tokio::test]
async fn mielto_sync_puts_changed_fields_and_the_whole_config() {
    let s = Sandbox::start().await;
    s.seed(
        "mielto",
        "c1",
        json!({"label": "Acme", "status": "inactive", "config": {"channel": "#old", "old": 1, "theirs": 2}}),
    )
    .await;
    let spec = spec(json!({"providerRef": {"name": "mielto"}, "connectionId": "c1",
                           "mielto": {"label": "Acme", "status": "active", "config": {"channel": "#ops"}}}));
    let client = s.client("mielto");

    let plan = sync(client.as_ref(), &spec, &keys(&["config.old"])).await.unwrap();
    let journal = s.journal("mielto").await;
    assert_eq!(methods(&journal), ["GET /api/v1/connections/c1 200", "PUT /api/v1/connections/c1 200"]);
    // label is unchanged, so not sent; config goes whole, foreign key included.
    assert_eq!(journal[1]["body"], json!({"status": "active", "config": {"channel": "#ops", "theirs": 2}}));
    let raw = s.upstream("mielto", "c1").await;
    assert_eq!((raw["label"].clone(), raw["status"].clone()), (json!("Acme"), json!("active")));
    assert_eq!(raw["config"], json!({"channel": "#ops", "theirs": 2}));

    s.clear_journal("mielto").await;
    assert!(sync(client.as_ref(), &spec, &plan.managed_keys).await.unwrap().in_sync());
    assert_eq!(methods(&s.journal("mielto").await), ["GET /api/v1/connections/c1 200"]);
}

#[tokio::test]
async fn mielto_workspace_header_selects_the_workspace() {
    let s = Sandbox::start().await;
    s.seed("mielto", "away", json!({"label": "Away", "status": "active", "config": {}, "workspace_id": "ws_other"}))
        .await;
    let target = Target { connection_id: "away".into(), provider_config_key: None };
    let plain = s.client("mielto");
    assert!(matches!(plain.read(&target).await, Err(ProviderError::NotFound { .. })));
    let scoped = s.client_for(&s.config("mielto", json!({"workspaceId": "ws_other"})), TOKEN);
    let upstream = scoped.read(&target).await.unwrap();
    assert_eq!(upstream, diff::Upstream::mielto(Some("Away"), Some("active"), Some(&json!({}))));
}

#[tokio::test]
async fn errors_are_classified_with_the_provider_message() {
    let s = Sandbox::start().await;
    s.seed("arena", "1", json!({"metadata": {}})).await;
    s.seed("mielto", "c", json!({"label": "L", "status": "active", "config": {}})).await;
    let arena = s.client("arena");
    let mielto = s.client("mielto");
    let t = |id: &str| Target { connection_id: id.into(), provider_config_key: None };

    // Missing connection.
    assert!(matches!(arena.read(&t("424242")).await, Err(ProviderError::NotFound { .. })));
    match mielto.read(&t("nope")).await {
        Err(ProviderError::NotFound { message }) => assert_eq!(message, "Connection not found"),
        other => panic!("{other:?}"),
    }

    // Validation failures are terminal and carry the provider's words.
    let too_long = Write::MieltoPut { label: Some("x".repeat(256)), status: None, config: None };
    match mielto.write(&t("c"), &too_long).await {
        Err(ProviderError::Terminal { status: 422, message }) => assert!(message.contains("label"), "{message}"),
        other => panic!("{other:?}"),
    }
    let bad_key = Write::ArenaPut { metadata: json!({"bad-key": 1}).as_object().unwrap().clone() };
    match arena.write(&t("1"), &bad_key).await {
        Err(ProviderError::Terminal { status, message }) => {
            assert!((400..500).contains(&status) && !message.is_empty())
        }
        other => panic!("{other:?}"),
    }

    // A server error is retryable.
    s.faults("arena", json!({"method": "GET", "path": "/v3/connections/*", "status": 503, "count": 1})).await;
    assert!(matches!(arena.read(&t("1")).await, Err(ProviderError::Retryable { status: Some(503), .. })));
    assert!(arena.read(&t("1")).await.is_ok(), "the fault was used up");

    // Refused credentials; the token never shows in the error.
    s.accept_tokens("mielto", &["the-right-one"]).await;
    let err = mielto.read(&t("c")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unauthorized { status: 401 | 403, .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(TOKEN));
    let good = s.client_for(&s.config("mielto", json!({})), "the-right-one");
    assert!(good.read(&t("c")).await.is_ok());
}

#[tokio::test]
async fn network_failures_and_timeouts_are_retryable() {
    let s = Sandbox::start().await;
    s.seed("arena", "1", json!({"metadata": {}})).await;
    let t = Target { connection_id: "1".into(), provider_config_key: None };
    let client = s.client_for(&s.config("arena", json!({"timeoutSeconds": 1})), TOKEN);

    s.faults("arena", json!({"method": "GET", "path": "/v3/connections/*", "reset": true, "count": 1})).await;
    assert!(matches!(client.read(&t).await, Err(ProviderError::Retryable { status: None, .. })));

    s.faults("arena", json!({"method": "GET", "path": "/v3/connections/*", "latencyMs": 3000, "count": 1})).await;
    match client.read(&t).await {
        Err(ProviderError::Retryable { status: None, message }) => assert_eq!(message, "the request timed out"),
        other => panic!("{other:?}"),
    }

    // Nobody listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let mut config = s.config("arena", json!({}));
    config.base_url = format!("http://{closed}/arena");
    let nowhere = s.client_for(&config, TOKEN);
    assert!(matches!(nowhere.read(&t).await, Err(ProviderError::Retryable { status: None, .. })));
}

#[tokio::test]
async fn after_a_429_the_account_sends_nothing_until_the_retry_time() {
    let s = Sandbox::start().await;
    for id in ["1", "2"] {
        s.seed("arena", id, json!({"metadata": {}})).await;
    }
    s.rate_limit("arena", 1, 60.0).await;
    let client = s.client("arena");
    let t = |id: &str| Target { connection_id: id.into(), provider_config_key: None };

    assert!(client.read(&t("1")).await.is_ok());
    let before = SystemTime::now();
    let retry_at = match client.read(&t("1")).await {
        Err(ProviderError::RateLimited { retry_at }) => retry_at,
        other => panic!("{other:?}"),
    };
    let journal = s.journal("arena").await;
    assert_eq!(methods(&journal), ["GET /v3/connections/1 200", "GET /v3/connections/1 429"]);
    assert!(retry_at >= before + Duration::from_secs(1), "Retry-After is at least 1s here");

    // Another Connection of the same account: refused at once, no request sent.
    let same_account = s.client("arena");
    match same_account.read(&t("2")).await {
        Err(ProviderError::RateLimited { retry_at: again }) => assert_eq!(again, retry_at),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.journal("arena").await.len(), 2, "a blocked account sends no request");

    // Another account (other token) is not blocked by it.
    let other_account =
        s.client_for(&s.config("arena", json!({"credentialsRef": {"name": "other", "key": "token"}})), "another-token");
    assert!(other_account.read(&t("2")).await.is_ok());
    assert_eq!(s.journal("arena").await.len(), 3);
}

#[tokio::test]
async fn an_injected_429_retry_after_is_honoured_in_seconds_and_as_http_date() {
    let s = Sandbox::start().await;
    s.seed("mielto", "c", json!({"label": "L", "status": "active", "config": {}})).await;
    let t = Target { connection_id: "c".into(), provider_config_key: None };

    let client = s.client("mielto");
    s.faults(
        "mielto",
        json!({"method": "GET", "path": "/api/v1/connections/*", "status": 429, "retryAfter": 120, "count": 1}),
    )
    .await;
    let before = SystemTime::now();
    let retry_at = match client.read(&t).await {
        Err(ProviderError::RateLimited { retry_at }) => retry_at,
        other => panic!("{other:?}"),
    };
    assert!(retry_at >= before + Duration::from_secs(120), "not before Retry-After");
    assert!(retry_at <= SystemTime::now() + Duration::from_secs(121), "Retry-After plus a small jitter");
    assert!(matches!(client.read(&t).await, Err(ProviderError::RateLimited { .. })));
    assert_eq!(s.journal("mielto").await.len(), 1, "no request while blocked");

    // An HTTP date, on a fresh account.
    let date = SystemTime::now() + Duration::from_secs(300);
    let other = s.client_for(&s.config("mielto", json!({"credentialsRef": {"name": "b", "key": "token"}})), "b");
    s.faults("mielto", json!({"method": "GET", "path": "/api/v1/connections/*", "status": 429, "retryAfter": httpdate::fmt_http_date(date), "count": 1})).await;
    match other.read(&t).await {
        Err(ProviderError::RateLimited { retry_at }) => {
            // HTTP dates have whole seconds.
            assert!(retry_at + Duration::from_secs(1) >= date, "{retry_at:?} {date:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn requests_are_paced_by_the_configured_rate() {
    let s = Sandbox::start().await;
    s.seed("arena", "1", json!({"metadata": {}})).await;
    // 120/min with a burst of 1: one request every 500 ms after the first.
    let client = s.client_for(&s.config("arena", json!({"rateLimit": {"requestsPerMinute": 120, "burst": 1}})), TOKEN);
    let t = Target { connection_id: "1".into(), provider_config_key: None };
    for _ in 0..3 {
        client.read(&t).await.unwrap();
    }
    let at: Vec<f64> = s.journal("arena").await.iter().map(|e| e["at"].as_f64().unwrap()).collect();
    assert_eq!(at.len(), 3);
    for pair in at.windows(2) {
        // Lower bound only: the pacing sleep guarantees it, whatever the machine's speed.
        assert!(pair[1] - pair[0] >= 0.45, "requests {:.3}s apart", pair[1] - pair[0]);
    }
}

#[tokio::test]
async fn nango_sync_patches_changed_keys_and_replaces_to_remove_one() {
    let s = Sandbox::start().await;
    s.seed(
        "nango",
        "acme-1",
        json!({"provider_config_key": "salesforce", "metadata": {"region": "us", "old": 1, "subscription": "s-1"}}),
    )
    .await;
    let spec = spec(json!({"providerRef": {"name": "nango"}, "connectionId": "acme-1",
                           "nango": {"providerConfigKey": "salesforce", "metadata": {"region": "eu", "mapping": {"a": 1}}}}));
    let client = s.client("nango");

    // Nothing owned yet: a PATCH of the changed keys only.
    let plan = sync(client.as_ref(), &spec, &[]).await.unwrap();
    let journal = s.journal("nango").await;
    assert_eq!(methods(&journal), ["GET /connections/acme-1 200", "PATCH /connections/metadata 200"]);
    assert_eq!(journal[0]["query"], "provider_config_key=salesforce");
    assert_eq!(
        journal[1]["body"],
        json!({"connection_id": "acme-1", "provider_config_key": "salesforce", "metadata": {"region": "eu", "mapping": {"a": 1}}})
    );
    // Shallow merge: changed keys replaced, the rest untouched (maps compare regardless of order).
    assert_eq!(
        s.upstream("nango", "acme-1").await["metadata"],
        json!({"region": "eu", "old": 1, "subscription": "s-1", "mapping": {"a": 1}})
    );

    // It owned `old` and no longer declares it: a POST replace without it, foreign key kept.
    s.clear_journal("nango").await;
    let mut owned = plan.managed_keys.clone();
    owned.push("old".into());
    sync(client.as_ref(), &spec, &owned).await.unwrap();
    let journal = s.journal("nango").await;
    assert_eq!(methods(&journal), ["GET /connections/acme-1 200", "POST /connections/metadata 201"]);
    assert_eq!(
        s.upstream("nango", "acme-1").await["metadata"],
        json!({"region": "eu", "subscription": "s-1", "mapping": {"a": 1}})
    );

    s.clear_journal("nango").await;
    assert!(sync(client.as_ref(), &spec, &plan.managed_keys).await.unwrap().in_sync());
    assert_eq!(s.journal("nango").await.len(), 1);
}

#[tokio::test]
async fn nango_never_set_metadata_equals_empty_and_unknown_connection_is_not_found() {
    let s = Sandbox::start().await;
    s.seed("nango", "fresh", json!({"provider_config_key": "hubspot"})).await;
    assert_eq!(s.upstream("nango", "fresh").await["metadata"], Value::Null);
    let client = s.client("nango");
    let empty = spec(
        json!({"providerRef": {"name": "nango"}, "connectionId": "fresh", "nango": {"providerConfigKey": "hubspot"}}),
    );
    assert!(sync(client.as_ref(), &empty, &[]).await.unwrap().in_sync());
    let missing = Target { connection_id: "nope".into(), provider_config_key: Some("hubspot".into()) };
    assert!(matches!(client.read(&missing).await, Err(ProviderError::NotFound { .. })));
    let write = Write::NangoPatch { metadata: json!({"a": 1}).as_object().unwrap().clone() };
    match client.write(&missing, &write).await {
        Err(ProviderError::NotFound { message }) => assert!(message.starts_with("unknown_connection"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn nango_remaining_zero_holds_requests_until_the_reset_and_retry_after_zero_blocks_briefly() {
    let s = Sandbox::start().await;
    s.seed("nango", "a", json!({"provider_config_key": "k"})).await;
    let target = Target { connection_id: "a".into(), provider_config_key: Some("k".into()) };

    // Limit 1 per 60 s: the first answer says Remaining 0, so the second read is not sent.
    s.rate_limit("nango", 1, 60.0).await;
    let client = s.client("nango");
    client.read(&target).await.unwrap();
    assert!(matches!(client.read(&target).await, Err(ProviderError::RateLimited { .. })));
    assert_eq!(s.journal("nango").await.len(), 1, "held back by X-RateLimit-Remaining: 0");

    // Half-second window, consumed by someone else with the same key: Nango answers 429 with
    // Retry-After 0: the block follows X-RateLimit-Reset (at least a second), not a default minute.
    s.rate_limit("nango", 1, 0.5).await;
    let other =
        s.client_for(&s.config("nango", json!({"credentialsRef": {"name": "o", "key": "token"}})), "shared-key");
    let url = format!("{}/connections/a?provider_config_key=k", s.base_url("nango"));
    let mut saw_zero = false;
    for _ in 0..20 {
        s.clear_journal("nango").await;
        let consumed = reqwest::Client::new().get(&url).bearer_auth("shared-key").send().await.unwrap();
        if consumed.status() != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let before = SystemTime::now();
        match other.read(&target).await {
            Err(ProviderError::RateLimited { retry_at }) => {
                let status = s.journal("nango").await.last().map(|e| e["status"].clone());
                if status == Some(json!(429)) {
                    assert!(retry_at > before);
                    assert!(retry_at <= SystemTime::now() + Duration::from_secs(3), "not the 60 s default");
                    saw_zero = true;
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("{e:?}"),
        }
        // Our own pacer may hold the request; wait for the block to pass and try again.
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert!(saw_zero, "never saw a 429 with Retry-After 0");
}

#[tokio::test]
async fn datagrid_sync_patches_the_name_and_paces_each_route_separately() {
    let s = Sandbox::start().await;
    s.seed("datagrid", "conn_1", json!({"name": "Old", "teamspace_id": "ts_a"})).await;
    let spec = spec(json!({"providerRef": {"name": "datagrid", "kind": "ClusterProvider"}, "connectionId": "conn_1",
                           "datagrid": {"name": "Acme Drive"}}));
    let client = s.client("datagrid");
    sync(client.as_ref(), &spec, &[]).await.unwrap();
    let journal = s.journal("datagrid").await;
    assert_eq!(methods(&journal), ["GET /connections/conn_1 200", "PATCH /connections/conn_1 200"]);
    assert_eq!(journal[1]["body"], json!({"name": "Acme Drive"}));
    assert_eq!(s.upstream("datagrid", "conn_1").await["name"], "Acme Drive");

    // One request per route and method per minute: a second GET is held back (Remaining 0),
    // while the PATCH route still has its own budget.
    s.clear_journal("datagrid").await;
    s.rate_limit("datagrid", 1, 60.0).await;
    let fresh = s.client_for(&s.config("datagrid", json!({"credentialsRef": {"name": "d2", "key": "token"}})), "d2");
    let target = Target::for_connection(&spec);
    fresh.read(&target).await.unwrap();
    assert!(matches!(fresh.read(&target).await, Err(ProviderError::RateLimited { .. })));
    fresh.write(&target, &Write::DatagridPatch { name: "Renamed".into() }).await.unwrap();
    assert_eq!(methods(&s.journal("datagrid").await), ["GET /connections/conn_1 200", "PATCH /connections/conn_1 200"]);
}

#[tokio::test]
async fn datagrid_teamspace_header_scopes_reads() {
    let s = Sandbox::start().await;
    s.seed("datagrid", "conn_a", json!({"name": "A", "teamspace_id": "ts_a"})).await;
    s.seed("datagrid", "conn_b", json!({"name": "B", "teamspace_id": "ts_b"})).await;
    let scoped = s.client_for(&s.config("datagrid", json!({"teamspaceId": "ts_a"})), TOKEN);
    let t = |id: &str| Target { connection_id: id.into(), provider_config_key: None };
    assert_eq!(scoped.read(&t("conn_a")).await.unwrap(), diff::Upstream::datagrid("A"));
    assert!(matches!(scoped.read(&t("conn_b")).await, Err(ProviderError::NotFound { .. })));
}

#[tokio::test]
async fn connection_ids_are_sent_as_one_encoded_path_segment() {
    let s = Sandbox::start().await;
    let id = "acme/eu 1";
    s.seed("nango", id, json!({"provider_config_key": "k", "metadata": {"a": 1}})).await;
    let client = s.client("nango");
    let target = Target { connection_id: id.into(), provider_config_key: Some("k".into()) };
    assert_eq!(client.read(&target).await.unwrap(), diff::Upstream::nango(Some(&json!({"a": 1}))));
    let journal = s.journal("nango").await;
    assert_eq!(journal[0]["path"], "/connections/acme%2Feu%201");
}

fn target(id: &str, provider_config_key: Option<&str>) -> Target {
    Target { connection_id: id.to_string(), provider_config_key: provider_config_key.map(str::to_string) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nango_identical_patches_share_one_request_and_a_404_batch_falls_back_to_single_writes() {
    let s = Sandbox::start().await;
    for id in ["a", "b", "c"] {
        s.seed("nango", id, json!({"provider_config_key": "crm", "metadata": {"theirs": id}})).await;
    }
    // Every request takes 300 ms, so the later writes arrive while the first is in flight.
    s.faults("nango", json!({"path": "*", "latencyMs": 300, "count": 100})).await;
    let client = s.client("nango");
    let write = Write::NangoPatch { metadata: json!({"plan": "pro"}).as_object().unwrap().clone() };
    let spawn = |id: &'static str| {
        let (client, write) = (client.clone(), write.clone());
        tokio::spawn(async move { client.write(&target(id, Some("crm")), &write).await })
    };
    let first = spawn("a");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rest = [spawn("b"), spawn("gone"), spawn("c")];
    assert_eq!(first.await.unwrap(), Ok(()));
    let [b, gone, c] = rest;
    assert_eq!(b.await.unwrap(), Ok(()));
    assert!(matches!(gone.await.unwrap(), Err(ProviderError::NotFound { .. })));
    assert_eq!(c.await.unwrap(), Ok(()));

    let patches: Vec<(Value, Value)> = s
        .journal("nango")
        .await
        .iter()
        .filter(|e| e["method"] == "PATCH")
        .map(|e| (e["body"]["connection_id"].clone(), e["status"].clone()))
        .collect();
    assert_eq!(patches.len(), 5, "{patches:?}");
    assert_eq!(patches[0], (json!("a"), json!(200)));
    // The three that waited went out together; all-or-nothing, so one unknown id failed it.
    let mut batched: Vec<&str> = patches[1].0.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    batched.sort();
    assert_eq!(batched, ["b", "c", "gone"]);
    assert_eq!(patches[1].1, json!(404));
    // Then one at a time.
    let mut singles: Vec<(String, u64)> =
        patches[2..].iter().map(|(id, st)| (id.as_str().unwrap().to_string(), st.as_u64().unwrap())).collect();
    singles.sort();
    assert_eq!(singles, [("b".to_string(), 200), ("c".to_string(), 200), ("gone".to_string(), 404)]);
    for id in ["a", "b", "c"] {
        assert_eq!(s.upstream("nango", id).await["metadata"], json!({"theirs": id, "plan": "pro"}), "{id}");
    }
}

#[tokio::test]
async fn drift_checks_observe_nango_and_datagrid_through_one_list_while_it_is_fresh() {
    let s = Sandbox::start().await;
    for i in 0..150 {
        s.seed("datagrid", &format!("dg{i:03}"), json!({"name": format!("Name {i}")})).await;
    }
    s.seed("nango", "n1", json!({"provider_config_key": "crm", "metadata": {"plan": "pro"}})).await;
    s.seed("nango", "n1b", json!({"provider_config_key": "other", "metadata": null})).await;
    let (datagrid, nango, arena) = (s.client("datagrid"), s.client("nango"), s.client("arena"));
    let fresh = Freshness { not_before: SystemTime::UNIX_EPOCH, max_age: Duration::from_secs(60) };

    for i in [0, 77, 149] {
        let seen = datagrid.read_listed(&target(&format!("dg{i:03}"), None), fresh).await.unwrap();
        assert_eq!(seen, Some(diff::Upstream::datagrid(&format!("Name {i}"))));
    }
    let seen = nango.read_listed(&target("n1", Some("crm")), fresh).await.unwrap();
    assert_eq!(seen, Some(diff::Upstream::nango(Some(&json!({"plan": "pro"})))));
    // Rows are per integration: the same id under another key is another connection.
    assert_eq!(nango.read_listed(&target("n1", Some("other")), fresh).await.unwrap(), None);
    assert_eq!(
        nango.read_listed(&target("n1b", Some("other")), fresh).await.unwrap(),
        Some(diff::Upstream::nango(None))
    );
    // Arena has no list: the caller reads with a GET; nothing is sent.
    assert_eq!(arena.read_listed(&target("12", None), fresh).await.unwrap(), None);

    let paths = |journal: Vec<Value>| -> Vec<String> {
        journal.iter().map(|e| format!("{} {}", e["method"].as_str().unwrap(), e["path"].as_str().unwrap())).collect()
    };
    // Two pages of 100 for 150 connections, one Nango list; no per-connection GET.
    assert_eq!(paths(s.journal("datagrid").await), ["GET /connections", "GET /connections"]);
    assert_eq!(paths(s.journal("nango").await), ["GET /connections"]);
    assert!(s.journal("arena").await.is_empty());

    // A snapshot older than the Connection's last write is not used: list again.
    s.seed("datagrid", "dg005", json!({"name": "Changed"})).await;
    let after_write = Freshness { not_before: SystemTime::now(), max_age: Duration::from_secs(60) };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let seen = datagrid.read_listed(&target("dg005", None), after_write).await.unwrap();
    assert_eq!(seen, Some(diff::Upstream::datagrid("Changed")));
    assert_eq!(s.journal("datagrid").await.len(), 4);
    // A connection the list does not have is left to a GET.
    assert_eq!(datagrid.read_listed(&target("missing", None), after_write).await.unwrap(), None);
    assert_eq!(s.journal("datagrid").await.len(), 4);
}
