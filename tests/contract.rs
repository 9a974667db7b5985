//! The provider clients' traffic through Prism (proxy mode, `--errors`) configured with each
//! provider's official OpenAPI document, in front of the provider emulator (README.md,
//! "Test tiers"): every request the operator sends, and every answer it relies on,
//! must satisfy a contract nobody here wrote. With `--errors` Prism refuses a request that
//! violates the document (422, never forwarded) and turns a non-conforming response into an
//! error, so a clean sync plus the emulator's journal showing each request answered proves
//! both directions.

use std::sync::Arc;

use connection_operator::api::{ConnectionSpec, ProviderConfig, ProviderSpec};
use connection_operator::diff;
use connection_operator::providers::{self, AccountPacer, ProviderClient, Target, Token};
use connection_testkit::prism::Prism;
use connection_testkit::providers::Providers;
use connection_testkit::tools::provider_document;
use serde_json::{Value, json};

struct Contract {
    provider: &'static str,
    /// The test's own requests to Prism.
    admin: reqwest::Client,
    // Dropped in this order: Prism is killed before the emulators stop.
    prism: Prism,
    emulators: Providers,
}

impl Contract {
    /// The emulators, with Prism in front of `provider`'s, judging by its own API description
    /// `document` (`providers/openapi/`, see `providers/README.md`).
    async fn start(provider: &'static str, document: &str) -> Self {
        let emulators = Providers::start().await;
        let prism = Prism::proxy(&provider_document(document), &emulators.base_url(provider)).await;
        Contract { provider, admin: reqwest::Client::new(), prism, emulators }
    }

    /// A client whose baseUrl is Prism.
    fn client(&self, extra: Value) -> Arc<dyn ProviderClient> {
        let mut spec = json!({"type": self.provider, "baseUrl": self.prism.base_url(), "credentialsRef": {"name": "s", "key": "token"}});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let spec: ProviderSpec = serde_json::from_value(spec).unwrap();
        let config = ProviderConfig::from_provider(&spec, "tenants");
        // A Nango secret key looks like a UUIDv4 (`invalid_secret_key_format`, docs/providers.md).
        let token = Token::new("7f4c2a4e-9b1d-4c3e-8f6a-2d5b9e0c1a37");
        let pacer = Arc::new(AccountPacer::new(config.rate_limit));
        providers::client(&config, token, reqwest::Client::new(), pacer).unwrap()
    }

    async fn seed(&self, id: &str, state: Value) {
        self.emulators.seed(self.provider, id, state).await;
    }

    async fn raw(&self, id: &str) -> Value {
        self.emulators.upstream(self.provider, id).await
    }

    /// `METHOD path status` of every request that reached the emulator.
    async fn journal(&self) -> Vec<String> {
        self.emulators
            .journal(self.provider)
            .await
            .iter()
            .map(|e| format!("{} {} {}", e["method"].as_str().unwrap(), e["path"].as_str().unwrap(), e["status"]))
            .collect()
    }
}

/// Read, plan and write through Prism until in sync; returns the managed keys.
async fn sync(client: &dyn ProviderClient, spec: &ConnectionSpec, managed: &[String]) -> Vec<String> {
    let target = Target::for_connection(spec);
    let upstream = client.read(&target).await.unwrap_or_else(|e| panic!("read through Prism: {e}"));
    let plan = diff::plan(spec.block().unwrap(), managed, &upstream).unwrap();
    if let Some(write) = &plan.write {
        client.write(&target, write).await.unwrap_or_else(|e| panic!("write {write:?} through Prism: {e}"));
    }
    plan.managed_keys
}

fn spec(value: Value) -> ConnectionSpec {
    serde_json::from_value(value).unwrap()
}

fn owned(mut keys: Vec<String>, extra: &str) -> Vec<String> {
    keys.push(extra.to_string());
    keys
}

#[tokio::test]
async fn nango_reads_patches_and_replaces_within_the_official_contract() {
    let c = Contract::start("nango", "nango.yaml").await;
    c.seed("acme-1", json!({"provider_config_key": "salesforce", "metadata": {"old": 1, "subscription": "s-1"}})).await;
    let client = c.client(json!({}));
    let spec = spec(json!({"providerRef": {"name": "n"}, "connectionId": "acme-1",
                           "nango": {"providerConfigKey": "salesforce", "metadata": {"region": "eu", "mapping": {"a": [1, 2]}}}}));
    let managed = sync(client.as_ref(), &spec, &[]).await;
    sync(client.as_ref(), &spec, &owned(managed, "old")).await;
    assert_eq!(
        c.journal().await,
        [
            "GET /connections/acme-1 200",
            "PATCH /connections/metadata 200",
            "GET /connections/acme-1 200",
            "POST /connections/metadata 201"
        ]
    );
    assert_eq!(
        c.raw("acme-1").await["metadata"],
        json!({"subscription": "s-1", "region": "eu", "mapping": {"a": [1, 2]}})
    );
}

#[tokio::test]
async fn mielto_reads_and_puts_within_the_official_contract() {
    let c = Contract::start("mielto", "mielto.yaml").await;
    c.seed("c1", json!({"label": "Old", "status": "inactive", "config": {"channel": "#old", "theirs": 2}})).await;
    let client = c.client(json!({}));
    let spec = spec(json!({"providerRef": {"name": "m"}, "connectionId": "c1",
                           "mielto": {"label": "Acme", "status": "active", "config": {"channel": "#ops"}}}));
    sync(client.as_ref(), &spec, &[]).await;
    assert_eq!(c.journal().await, ["GET /api/v1/connections/c1 200", "PUT /api/v1/connections/c1 200"]);
    let raw = c.raw("c1").await;
    assert_eq!((raw["label"].clone(), raw["config"].clone()), (json!("Acme"), json!({"channel": "#ops", "theirs": 2})));
}

#[tokio::test]
async fn arena_reads_and_puts_with_null_removal_within_the_official_contract() {
    let c = Contract::start("arena", "arena.json").await;
    c.seed("98765", json!({"metadata": {"old": "x", "theirs": 1}})).await;
    let client = c.client(json!({}));
    let spec = spec(json!({"providerRef": {"name": "a"}, "connectionId": "98765",
                           "arena": {"metadata": {"reviewed": true, "score": 0.95, "note": "ok"}}}));
    sync(client.as_ref(), &spec, &["old".to_string()]).await;
    assert_eq!(c.journal().await, ["GET /v3/connections/98765 200", "PUT /v3/connections/98765 200"]);
    assert_eq!(c.raw("98765").await["metadata"], json!({"theirs": 1, "reviewed": true, "score": 0.95, "note": "ok"}));
}

#[tokio::test]
async fn datagrid_reads_and_renames_within_the_official_contract() {
    let c = Contract::start("datagrid", "datagrid.yaml").await;
    c.seed("conn_1", json!({"name": "Old", "teamspace_id": "ts_a"})).await;
    let client = c.client(json!({"teamspaceId": "ts_a"}));
    let spec =
        spec(json!({"providerRef": {"name": "d"}, "connectionId": "conn_1", "datagrid": {"name": "Acme Drive"}}));
    sync(client.as_ref(), &spec, &[]).await;
    assert_eq!(c.journal().await, ["GET /connections/conn_1 200", "PATCH /connections/conn_1 200"]);
    assert_eq!(c.raw("conn_1").await["name"], "Acme Drive");
    // Self-check: Prism does police requests. A body without the required `name` is refused
    // by Prism itself (422) and never reaches the emulator.
    let before = c.journal().await.len();
    let refused = c
        .admin
        .patch(format!("{}/connections/conn_1", c.prism.base_url()))
        .bearer_auth("k")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(c.journal().await.len(), before, "Prism forwarded a request that violates the document");
}
