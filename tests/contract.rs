//! The provider clients' traffic through Prism (proxy mode, `--errors`) configured with each
//! provider's official OpenAPI document, in front of the provider emulator (README.md,
//! "Test tiers"): every request the operator sends, and every answer it relies on,
//! must satisfy a contract nobody here wrote. With `--errors` Prism refuses a request that
//! violates the document (422, never forwarded) and turns a non-conforming response into an
//! error, so a clean sync plus the emulator's journal showing each request answered proves
//! both directions.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use connection_operator::api::{ConnectionSpec, ProviderConfig, ProviderSpec};
use connection_operator::diff;
use connection_operator::providers::{self, AccountPacer, ProviderClient, Target, Token};
use connection_sandbox::providers::ProviderSandbox;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prism from `scripts/bootstrap` (`CONNECTION_OPERATOR_TOOLS`, else `<root>/.tools`).
fn prism_bin() -> PathBuf {
    let tools = std::env::var_os("CONNECTION_OPERATOR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"));
    let prism = tools.join("node/node_modules/.bin/prism");
    assert!(prism.exists(), "Prism is not installed at {}: run scripts/bootstrap", prism.display());
    prism
}

/// The provider's own API description (`providers/openapi/`, see `providers/README.md`).
fn official_document(file: &str) -> PathBuf {
    connection_testkit::tools::provider_document(file)
}

struct Contract {
    sandbox: ProviderSandbox,
    provider: &'static str,
    prism_base: String,
    admin: reqwest::Client,
    _prism: Child,
}

impl Contract {
    async fn start(provider: &'static str, document: &str) -> Self {
        let sandbox = ProviderSandbox::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let upstream = sandbox.base_url(provider);
        // Prism matches request paths against the document and forwards them to
        // `<upstream><path>`; `--port 0` lets the kernel choose, and Prism prints it.
        let mut prism = Command::new(prism_bin())
            .arg("proxy")
            .arg(official_document(document))
            .arg(&upstream)
            .args(["--errors", "--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prism");
        let mut lines = BufReader::new(prism.stdout.take().unwrap()).lines();
        let prism_base = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(at) = line.find("Prism is listening on ") {
                    return line[at + "Prism is listening on ".len()..].trim().trim_end_matches('/').to_string();
                }
            }
            panic!("prism exited before listening");
        })
        .await
        .expect("prism did not start within two minutes");
        // Keep draining Prism's log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Contract { sandbox, provider, prism_base, admin: reqwest::Client::new(), _prism: prism }
    }

    /// A client whose baseUrl is Prism.
    fn client(&self, extra: Value) -> Arc<dyn ProviderClient> {
        let mut spec =
            json!({"type": self.provider, "baseUrl": self.prism_base, "credentialsRef": {"name": "s", "key": "token"}});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let spec: ProviderSpec = serde_json::from_value(spec).unwrap();
        let config = ProviderConfig::from_provider(&spec, "tenants");
        // A Nango secret key looks like a UUIDv4 (`invalid_secret_key_format`, docs/providers.md).
        let token = Token::new("7f4c2a4e-9b1d-4c3e-8f6a-2d5b9e0c1a37");
        let pacer = Arc::new(AccountPacer::new(config.rate_limit));
        providers::client(&config, token, reqwest::Client::new(), pacer).unwrap()
    }

    fn admin_url(&self, path: &str) -> String {
        format!("{}/_sandbox/{path}", self.sandbox.base_url(self.provider))
    }

    async fn seed(&self, id: &str, state: Value) {
        let r = self.admin.put(self.admin_url(&format!("connections/{id}"))).json(&state).send().await.unwrap();
        assert!(r.status().is_success(), "seed {id}: {}", r.text().await.unwrap());
    }

    async fn raw(&self, id: &str) -> Value {
        self.admin.get(self.admin_url(&format!("connections/{id}"))).send().await.unwrap().json().await.unwrap()
    }

    /// `METHOD path status` of every request that reached the emulator.
    async fn journal(&self) -> Vec<String> {
        let journal: Value = self.admin.get(self.admin_url("requests")).send().await.unwrap().json().await.unwrap();
        journal
            .as_array()
            .unwrap()
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
        .patch(format!("{}/connections/conn_1", c.prism_base))
        .bearer_auth("k")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(c.journal().await.len(), before, "Prism forwarded a request that violates the document");
}
