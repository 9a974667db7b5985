//! The four provider emulators (`connection_sandbox::providers`) in-process on a loopback
//! port, with their `/_sandbox/` admin API (docs/interfaces.md) as test helpers: seed an
//! upstream connection, read its stored state, the request journal, faults, accepted
//! tokens, the sandbox's own rate limit. Every helper panics on a failed admin call: that is
//! a broken test setup, never the behaviour under test.

use connection_sandbox::providers::ProviderSandbox;
use serde_json::{Value, json};

/// The provider types, in the order tests iterate them.
pub const PROVIDERS: [&str; 4] = ["nango", "mielto", "arena", "datagrid"];

pub struct Providers {
    sandbox: ProviderSandbox,
    http: reqwest::Client,
}

impl Providers {
    /// Serve all four emulators on a free loopback port (inside the caller's runtime).
    pub async fn start() -> Providers {
        Providers::start_on("127.0.0.1:0".parse().expect("literal address"))
            .await
            .expect("start the provider sandboxes")
    }

    /// Serve all four emulators on `addr` (the demo's fixed port, which may be busy).
    pub async fn start_on(addr: std::net::SocketAddr) -> anyhow::Result<Providers> {
        let sandbox = ProviderSandbox::start(addr).await?;
        // Loopback only: never route these requests through a proxy from the environment.
        let http = reqwest::Client::builder().no_proxy().build().expect("http client");
        Ok(Providers { sandbox, http })
    }

    /// Where the emulators listen (each provider under its prefix).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.sandbox.addr()
    }

    /// What a Provider's `spec.baseUrl` holds for `provider`.
    pub fn base_url(&self, provider: &str) -> String {
        self.sandbox.base_url(provider)
    }

    /// `<base>/_sandbox/<path>`.
    pub fn admin_url(&self, provider: &str, path: &str) -> String {
        format!("{}/_sandbox/{path}", self.base_url(provider))
    }

    /// An admin request; its JSON answer (`null` when empty). Panics on a non-2xx.
    pub async fn admin(&self, method: reqwest::Method, provider: &str, path: &str, body: Option<&Value>) -> Value {
        crate::admin_api::request(&self.http, method, &self.admin_url(provider, path), body).await
    }

    /// Store `state` (the provider's raw read shape) as upstream connection `id`.
    pub async fn seed(&self, provider: &str, id: &str, state: Value) {
        self.admin(reqwest::Method::PUT, provider, &format!("connections/{id}"), Some(&state)).await;
    }

    /// The stored upstream state of connection `id`.
    pub async fn upstream(&self, provider: &str, id: &str) -> Value {
        self.admin(reqwest::Method::GET, provider, &format!("connections/{id}"), None).await
    }

    /// The provider's API request journal, oldest first.
    pub async fn journal(&self, provider: &str) -> Vec<Value> {
        match self.admin(reqwest::Method::GET, provider, "requests", None).await {
            Value::Array(entries) => entries,
            other => panic!("{provider} journal: expected an array, got {other}"),
        }
    }

    /// The most API requests `provider` served at once since its journal was cleared.
    pub async fn max_in_flight(&self, provider: &str) -> u64 {
        let answer = self.admin(reqwest::Method::GET, provider, "requests/in-flight", None).await;
        answer["maxInFlight"].as_u64().unwrap_or_else(|| panic!("{provider} in-flight: {answer}"))
    }

    pub async fn clear_journal(&self, provider: &str) {
        self.admin(reqwest::Method::DELETE, provider, "requests", None).await;
    }

    /// Queue faults (one object or an array).
    pub async fn faults(&self, provider: &str, faults: Value) {
        self.admin(reqwest::Method::PUT, provider, "faults", Some(&faults)).await;
    }

    pub async fn clear_faults(&self, provider: &str) {
        self.admin(reqwest::Method::DELETE, provider, "faults", None).await;
    }

    /// Accept only `tokens` from now on.
    pub async fn accept_tokens(&self, provider: &str, tokens: &[&str]) {
        self.admin(reqwest::Method::PUT, provider, "tokens", Some(&json!({"tokens": tokens}))).await;
    }

    /// Accept only `tokens`, of which `read_only` may read but not write.
    pub async fn accept_tokens_read_only(&self, provider: &str, tokens: &[&str], read_only: &[&str]) {
        let body = json!({"tokens": tokens, "readOnly": read_only});
        self.admin(reqwest::Method::PUT, provider, "tokens", Some(&body)).await;
    }

    /// The sandbox's own rate limit: `limit` requests per `window_seconds` (0: none).
    pub async fn rate_limit(&self, provider: &str, limit: u32, window_seconds: f64) {
        let body = json!({"limit": limit, "windowSeconds": window_seconds});
        self.admin(reqwest::Method::PUT, provider, "rate-limit", Some(&body)).await;
    }
}

/// Requests in a provider journal that are not reads.
pub fn writes(journal: &[Value]) -> Vec<Value> {
    journal.iter().filter(|r| r["method"] != "GET").cloned().collect()
}
