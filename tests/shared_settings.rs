//! Shared settings (`metadataFrom`, Mielto's `configFrom`) and the account identity, through
//! the operator (`controller::run`, watching the test's namespace) on the REAL control plane
//! with the provider emulators:
//!
//! - a change of a shared ConfigMap reaches every Connection using it upstream, one write
//!   each, and nothing else is written;
//! - a missing required source is `ReferenceNotFound` with no upstream request, an optional
//!   one contributes nothing, and creating the source brings the Connection to `InSync`;
//! - a Secret-sourced value is written upstream yet appears in no status, Event or log line;
//!   naming the Provider's own credentials Secret is refused (`InvalidSpec`);
//! - two Providers holding one token for one account (one of them Mielto with `auth: ApiKey`)
//!   are one account: one Conflict rule and one pacing budget.

mod cli_support;

use cli_support::Env;
use connection_testkit::log_capture::LogCapture;
use connection_testkit::operator_env::TOKEN;
use connection_testkit::providers::writes;
use connection_testkit::wait::eventually;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use serde_json::{Value, json};

/// The ids a provider write addresses (Nango batches carry several).
fn written_ids(entry: &Value) -> Vec<String> {
    let path = entry["path"].as_str().unwrap_or_default();
    match &entry["body"]["connection_id"] {
        Value::String(id) => vec![id.clone()],
        Value::Array(ids) => ids.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
        _ => vec![path.rsplit('/').next().unwrap_or_default().to_string()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_config_map_change_reaches_every_connection_with_one_write_each() {
    let env = Env::start("shared-rollout").await;
    let p = &env.providers;
    p.seed("arena", "11", json!({"metadata": {"theirs": 1}})).await;
    p.seed("arena", "12", json!({"metadata": {}})).await;
    p.seed("mielto", "m1", json!({"label": "M", "config": {"theirs": true}})).await;
    p.seed("nango", "n1", json!({"provider_config_key": "crm", "metadata": {}})).await;
    env.config_map("tenant-defaults", json!({"region": "eu", "tier": "gold"})).await;
    env.config_map("unrelated", json!({"x": "1"})).await;
    let from = json!([{"configMapRef": {"name": "tenant-defaults"}}]);
    env.apply("a11", json!({"providerRef": {"name": "arena"}, "connectionId": "11", "arena": {"metadata": {"own": true}, "metadataFrom": from}})).await;
    // Inline wins over the shared value.
    env.apply("a12", json!({"providerRef": {"name": "arena"}, "connectionId": "12", "arena": {"metadata": {"tier": "bronze"}, "metadataFrom": from}})).await;
    env.apply("m1", json!({"providerRef": {"name": "mielto"}, "connectionId": "m1", "mielto": {"configFrom": from}}))
        .await;
    env.apply("n1", json!({"providerRef": {"name": "nango"}, "connectionId": "n1", "nango": {"providerConfigKey": "crm", "metadataFrom": from}})).await;
    env.start_operator();
    for name in ["a11", "a12", "m1", "n1"] {
        env.ready_reason(name, "InSync").await;
    }
    assert_eq!(
        p.upstream("arena", "11").await["metadata"],
        json!({"theirs": 1, "own": true, "region": "eu", "tier": "gold"})
    );
    assert_eq!(p.upstream("arena", "12").await["metadata"], json!({"region": "eu", "tier": "bronze"}));
    assert_eq!(p.upstream("mielto", "m1").await["config"], json!({"theirs": true, "region": "eu", "tier": "gold"}));
    assert_eq!(p.upstream("nango", "n1").await["metadata"], json!({"region": "eu", "tier": "gold"}));
    let a11 = env.get("a11").await.unwrap();
    assert_eq!(a11.status.as_ref().unwrap().managed_keys, ["own", "region", "tier"], "keys from a ConfigMap are owned");
    assert!(a11.status.as_ref().unwrap().secret_keys.is_empty());
    for provider in ["arena", "mielto", "nango"] {
        p.clear_journal(provider).await;
    }

    // An unrelated ConfigMap changes nothing; the shared one rolls out.
    env.config_map("unrelated", json!({"x": "2"})).await;
    env.config_map("tenant-defaults", json!({"region": "us", "tier": "gold", "sla": "24h"})).await;
    eventually("the change upstream everywhere", || async {
        let a11 = p.upstream("arena", "11").await["metadata"].clone();
        let a12 = p.upstream("arena", "12").await["metadata"].clone();
        let m1 = p.upstream("mielto", "m1").await["config"].clone();
        let n1 = p.upstream("nango", "n1").await["metadata"].clone();
        (a11 == json!({"theirs": 1, "own": true, "region": "us", "tier": "gold", "sla": "24h"})
            && a12 == json!({"region": "us", "tier": "bronze", "sla": "24h"})
            && m1 == json!({"theirs": true, "region": "us", "tier": "gold", "sla": "24h"})
            && n1 == json!({"region": "us", "tier": "gold", "sla": "24h"}))
        .then_some(())
    })
    .await;
    // Every reconcile finished: its status owns the new key (written after the upstream write).
    for (name, key) in [("a11", "sla"), ("a12", "sla"), ("m1", "config.sla"), ("n1", "sla")] {
        eventually(&format!("{name} owns {key}"), || async {
            let status = env.get(name).await?.status?;
            status.managed_keys.iter().any(|k| k == key).then_some(())
        })
        .await;
        env.ready_reason(name, "InSync").await;
    }
    // One write per Connection, carrying only what changed.
    let mut written: Vec<String> = Vec::new();
    for provider in ["arena", "mielto", "nango"] {
        for entry in writes(&p.journal(provider).await) {
            written.extend(written_ids(&entry).into_iter().map(|id| format!("{provider}/{id}")));
        }
    }
    written.sort();
    assert_eq!(written, ["arena/11", "arena/12", "mielto/m1", "nango/n1"]);
    let arena_writes = writes(&p.journal("arena").await);
    let body_of =
        |id: &str| arena_writes.iter().find(|e| e["path"].as_str().unwrap().ends_with(id)).unwrap()["body"].clone();
    assert_eq!(body_of("/11"), json!({"metadata": {"region": "us", "sla": "24h"}}));
    assert_eq!(body_of("/12"), json!({"metadata": {"region": "us", "sla": "24h"}}));
    eventually("sla owned", || async {
        let status = env.get("a11").await?.status?;
        (status.managed_keys == ["own", "region", "sla", "tier"]).then_some(())
    })
    .await;

    // A key that leaves the ConfigMap is owned, so it is removed upstream; foreign keys stay.
    env.config_map("tenant-defaults", json!({"region": "us", "tier": "gold"})).await;
    eventually("sla removed upstream", || async {
        let a11 = p.upstream("arena", "11").await["metadata"].clone();
        let m1 = p.upstream("mielto", "m1").await["config"].clone();
        (a11 == json!({"theirs": 1, "own": true, "region": "us", "tier": "gold"})
            && m1 == json!({"theirs": true, "region": "us", "tier": "gold"}))
        .then_some(())
    })
    .await;
    // The status follows the write.
    eventually("sla no longer owned", || async {
        let status = env.get("a11").await?.status?;
        (status.managed_keys == ["own", "region", "tier"]).then_some(())
    })
    .await;
    env.ready_reason("a11", "InSync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_sources_are_reference_not_found_until_they_exist() {
    let env = Env::start("shared-missing").await;
    let p = &env.providers;
    p.seed("arena", "21", json!({"metadata": {}})).await;
    p.seed("arena", "22", json!({"metadata": {}})).await;
    env.start_operator();
    env.apply(
        "required",
        json!({"providerRef": {"name": "arena"}, "connectionId": "21",
               "arena": {"metadata": {"k": 1}, "metadataFrom": [{"configMapRef": {"name": "later"}}, {"secretRef": {"name": "later-secret"}}]}}),
    )
    .await;
    env.apply(
        "optional",
        json!({"providerRef": {"name": "arena"}, "connectionId": "22",
               "arena": {"metadata": {"k": 1}, "metadataFrom": [{"configMapRef": {"name": "absent", "optional": true}}]}}),
    )
    .await;
    let required = env.ready_reason("required", "ReferenceNotFound").await;
    let ready = required.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.message, format!("ConfigMap {}/later not found (metadataFrom[0])", env.ns()));
    env.ready_reason("optional", "InSync").await;
    assert_eq!(p.upstream("arena", "22").await["metadata"], json!({"k": 1}));
    assert!(
        !p.journal("arena").await.iter().any(|e| e["path"] == "/v3/connections/21"),
        "nothing is sent upstream for a Connection missing a source"
    );

    // Each source, created, moves it on: first the Secret is missing, then it syncs.
    env.config_map("later", json!({"fromCm": "1"})).await;
    let waiting = eventually("the Secret to be the missing one", || async {
        let c = env.get("required").await?;
        let ready = c.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        ready.message.contains("Secret").then_some(ready)
    })
    .await;
    assert_eq!(waiting.message, format!("Secret {}/later-secret not found (metadataFrom[1])", env.ns()));
    env.secret("later-secret", json!({"fromSecret": "2"})).await;
    env.ready_reason("required", "InSync").await;
    assert_eq!(p.upstream("arena", "21").await["metadata"], json!({"k": 1, "fromCm": "1", "fromSecret": "2"}));
    // Deleting a required source is noticed at once.
    env.kubectl().run_async(&["delete", "configmap", "later"], None).await;
    env.ready_reason("required", "ReferenceNotFound").await;
    // Merged keys obey Are.na's key rule like inline ones.
    env.config_map("later", json!({"bad-key": "x"})).await;
    let invalid = env.ready_reason("required", "InvalidSpec").await;
    let ready = invalid.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.message, r#"Are.na metadata keys must match ^[A-Za-z0-9_]{1,40}$: "bad-key""#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_go_upstream_and_nowhere_else() {
    const VALUE: &str = "whsec-7d1a93c0ffee-shared-signing-value";
    let logs = LogCapture::install();
    let env = Env::start("shared-secret").await;
    let p = &env.providers;
    p.seed("nango", "s1", json!({"provider_config_key": "crm", "metadata": {}})).await;
    p.seed("arena", "31", json!({"metadata": {}})).await;
    env.secret("signing", json!({"webhookSecret": VALUE})).await;
    env.start_operator();
    env.apply(
        "signed",
        json!({"providerRef": {"name": "nango"}, "connectionId": "s1",
               "nango": {"providerConfigKey": "crm", "metadata": {"plain": "yes"}, "metadataFrom": [{"secretRef": {"name": "signing"}}]}}),
    )
    .await;
    let signed = env.ready_reason("signed", "InSync").await;
    assert_eq!(p.upstream("nango", "s1").await["metadata"], json!({"plain": "yes", "webhookSecret": VALUE}));
    let status = signed.status.as_ref().unwrap();
    assert_eq!(status.managed_keys, ["plain", "webhookSecret"], "key names are shown");
    assert_eq!(status.secret_keys, ["webhookSecret"]);

    // A rotated Secret rolls out too.
    const ROTATED: &str = "whsec-rotated-0b5e22aa-value";
    env.secret("signing", json!({"webhookSecret": ROTATED})).await;
    eventually("the rotated value upstream", || async {
        (p.upstream("nango", "s1").await["metadata"]["webhookSecret"] == ROTATED).then_some(())
    })
    .await;

    // Importing the connection (to adopt it elsewhere) leaves the Secret-sourced key out.
    let ns = env.ns().to_string();
    let imported = env.run(&["import", "--provider", "nango", "-n", &ns, "--ids", "s1"], None).await;
    assert_eq!(imported.code, 0, "{imported:?}");
    assert!(imported.stdout.contains("plain: \"yes\""), "{}", imported.stdout);
    assert!(!imported.stdout.contains(ROTATED) && !imported.stdout.contains("webhookSecret"), "{}", imported.stdout);
    assert!(
        imported.stderr.contains("s1: left out webhookSecret (upstream values from a Secret"),
        "{}",
        imported.stderr
    );

    // A provider error that echoes what was sent shows `(secret)` in its place.
    const ECHOED: &str = "whsec-third-91be07d4-echoed-value";
    let echo =
        format!(r#"{{"error": {{"code": "invalid_request", "message": "webhookSecret {ECHOED} is not accepted"}}}}"#);
    p.faults("nango", json!({"path": "/connections/metadata", "status": 422, "body": echo})).await;
    env.secret("signing", json!({"webhookSecret": ECHOED})).await;
    let refused = env.ready_reason("signed", "InvalidSpec").await;
    let message =
        refused.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap().message.clone();
    assert!(message.contains("webhookSecret (secret) is not accepted"), "{message}");

    // Naming the Provider's own credentials Secret would send the token: refused, unsent.
    env.apply(
        "leaky",
        json!({"providerRef": {"name": "arena"}, "connectionId": "31",
               "arena": {"metadataFrom": [{"secretRef": {"name": "arena-credentials"}}]}}),
    )
    .await;
    let leaky = env.ready_reason("leaky", "InvalidSpec").await;
    let ready = leaky.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap().message.clone();
    assert_eq!(
        ready,
        format!(
            "metadataFrom names Secret {0}/arena-credentials, which holds the API token of Provider {0}/arena; the token is never sent as metadata",
            env.ns()
        )
    );
    assert!(p.journal("arena").await.is_empty(), "nothing was sent to Are.na");

    // Nowhere else: statuses, Events, logs, metrics.
    let events: Api<Event> = Api::namespaced(env.client.clone(), env.ns());
    let events = serde_json::to_string(&events.list(&Default::default()).await.unwrap().items).unwrap();
    assert!(events.contains("InSync"), "the Events were read: {events}");
    let statuses = env.kubectl().run_async(&["get", "connections", "-o", "json"], None).await.stdout;
    let text = logs.text();
    assert!(text.contains("provider request"), "the logs were captured");
    let metrics = env.metrics.encode();
    assert!(metrics.contains("connection_operator_upstream_requests_total"), "the metrics were read");
    for (place, content) in [("status", &statuses), ("Events", &events), ("logs", &text), ("metrics", &metrics)] {
        for secret in [VALUE, ROTATED, ECHOED, TOKEN] {
            assert!(!content.contains(secret), "a Secret value is in the {place}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_providers_of_one_account_share_the_conflict_rule_and_one_budget() {
    let env = Env::start("shared-account").await;
    let p = &env.providers;
    p.seed("mielto", "acct-conn", json!({"label": "L", "config": {}})).await;
    // A second Provider of the same account: the same token in another Secret, sent as
    // X-API-Key, the base URL written differently (trailing slash).
    env.secret("team-b-key", json!({"apiKey": TOKEN})).await;
    env.provider(
        "mielto-b",
        "mielto",
        json!({"credentialsRef": {"name": "team-b-key", "key": "apiKey"}, "auth": "ApiKey", "baseUrl": format!("{}/", p.base_url("mielto"))}),
    )
    .await;
    env.start_operator();
    env.apply("first", json!({"providerRef": {"name": "mielto"}, "connectionId": "acct-conn", "mielto": {"config": {"channel": "#a"}}})).await;
    env.ready_reason("first", "InSync").await;
    eventually("a new second", || async {
        let created = env.get("first").await?.metadata.creation_timestamp?.0.as_second();
        (k8s_openapi::jiff::Timestamp::now().as_second() > created).then_some(())
    })
    .await;
    env.apply("second", json!({"providerRef": {"name": "mielto-b"}, "connectionId": "acct-conn", "mielto": {"config": {"channel": "#b", "digest": "daily"}}})).await;
    let second = env.ready_reason("second", "Conflict").await;
    let ready = second.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.message, format!("key(s) config.channel already owned by Connection {}/first", env.ns()));
    assert_eq!(p.upstream("mielto", "acct-conn").await["config"], json!({"channel": "#a"}));
    // Disjoint keys through the X-API-Key Provider sync (the sandbox took the key).
    env.apply("second", json!({"providerRef": {"name": "mielto-b"}, "connectionId": "acct-conn", "mielto": {"config": {"digest": "daily"}}})).await;
    env.ready_reason("second", "InSync").await;
    assert_eq!(p.upstream("mielto", "acct-conn").await["config"], json!({"channel": "#a", "digest": "daily"}));

    // One budget: both Providers allow 2 requests (a read and a write) a minute. The first
    // Connection through one spends them; a Connection through the other Provider must wait
    // (RateLimited, nothing sent), as it would through the same Provider.
    p.seed("arena", "41", json!({"metadata": {}})).await;
    p.seed("arena", "42", json!({"metadata": {}})).await;
    env.secret("arena-b-key", json!({"token": TOKEN})).await;
    let slow = json!({"requestsPerMinute": 1, "burst": 2});
    env.provider("arena-a", "arena", json!({"rateLimit": slow})).await;
    env.provider(
        "arena-b",
        "arena",
        json!({"rateLimit": slow, "credentialsRef": {"name": "arena-b-key", "key": "token"}}),
    )
    .await;
    p.clear_journal("arena").await;
    env.apply(
        "paced-a",
        json!({"providerRef": {"name": "arena-a"}, "connectionId": "41", "arena": {"metadata": {"k": 1}}}),
    )
    .await;
    env.ready_reason("paced-a", "InSync").await;
    env.apply(
        "paced-b",
        json!({"providerRef": {"name": "arena-b"}, "connectionId": "42", "arena": {"metadata": {"k": 2}}}),
    )
    .await;
    let paced = env.ready_reason("paced-b", "RateLimited").await;
    assert!(paced.status.as_ref().unwrap().retry_at.is_some());
    let journal = p.journal("arena").await;
    assert_eq!(journal.len(), 2, "only paced-a's read and write: {journal:?}");
    assert!(journal.iter().all(|e| e["path"] == "/v3/connections/41"), "{journal:?}");
}
