//! Shared fixture of the provider emulator tests: an in-process `ProviderSandbox` on a real
//! socket, a reqwest client, and the admin calls (seed, journal, faults, rate limit).
#![allow(dead_code)]

use connection_sandbox::providers::ProviderSandbox;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;

pub struct Env {
    pub sandbox: ProviderSandbox,
    pub http: Client,
    /// e.g. `http://127.0.0.1:PORT/nango`.
    pub base: String,
}

impl Env {
    pub async fn start(provider: &str) -> Env {
        let sandbox = ProviderSandbox::start("127.0.0.1:0".parse().unwrap()).await.expect("start sandbox");
        let base = sandbox.base_url(provider);
        Env { sandbox, http: Client::new(), base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An API request with `Authorization: Bearer test-key`.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth("test-key")
    }

    pub async fn seed(&self, id: &str, state: Value) {
        let response =
            self.http.put(self.url(&format!("/_sandbox/connections/{id}"))).json(&state).send().await.unwrap();
        assert_eq!(response.status(), 200, "seeding {id}: {}", response.text().await.unwrap());
    }

    pub async fn stored(&self, id: &str) -> Value {
        let response = self.http.get(self.url(&format!("/_sandbox/connections/{id}"))).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn journal(&self) -> Vec<Value> {
        self.http.get(self.url("/_sandbox/requests")).send().await.unwrap().json().await.unwrap()
    }

    pub async fn admin_put(&self, path: &str, body: Value) -> Response {
        self.http.put(self.url(&format!("/_sandbox/{path}"))).json(&body).send().await.unwrap()
    }

    pub async fn rate_limit(&self, limit: u32, window_seconds: f64) {
        let response =
            self.admin_put("rate-limit", serde_json::json!({"limit": limit, "windowSeconds": window_seconds})).await;
        assert_eq!(response.status(), 200);
    }
}

pub fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

pub fn header_u64(response: &Response, name: &str) -> u64 {
    header(response, name).unwrap_or_else(|| panic!("missing header {name}")).parse().unwrap()
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}
