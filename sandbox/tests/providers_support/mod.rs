//! Shared fixture of the provider emulator tests: the kit's provider emulators
//! (`connection_testkit::providers`: in-process on a real socket, with the admin calls:
//! seed, journal, faults, rate limit), one provider's base URL and a reqwest client.
#![allow(dead_code, unused_macros)]

use connection_testkit::providers::Providers;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;

/// `struct $name(Env)`: the shared fixture for one provider's tests, reached through `Deref`,
/// so the test file adds that provider's own API calls in an `impl $name` of its own.
macro_rules! provider_fixture {
    ($name:ident, $provider:literal) => {
        struct $name(providers_support::Env);

        impl std::ops::Deref for $name {
            type Target = providers_support::Env;
            fn deref(&self) -> &providers_support::Env {
                &self.0
            }
        }

        impl $name {
            async fn start() -> Self {
                $name(providers_support::Env::start($provider).await)
            }
        }
    };
}

pub struct Env {
    pub sandbox: Providers,
    pub http: Client,
    provider: String,
    /// e.g. `http://127.0.0.1:PORT/nango`.
    pub base: String,
}

impl Env {
    pub async fn start(provider: &str) -> Env {
        let sandbox = Providers::start().await;
        let base = sandbox.base_url(provider);
        Env { sandbox, http: Client::new(), provider: provider.to_string(), base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An API request with `Authorization: Bearer test-key`.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth("test-key")
    }

    pub async fn seed(&self, id: &str, state: Value) {
        self.sandbox.seed(&self.provider, id, state).await;
    }

    pub async fn stored(&self, id: &str) -> Value {
        self.sandbox.upstream(&self.provider, id).await
    }

    pub async fn journal(&self) -> Vec<Value> {
        self.sandbox.journal(&self.provider).await
    }

    /// A raw admin request, for the tests of the admin API itself.
    pub async fn admin_put(&self, path: &str, body: Value) -> Response {
        self.http.put(self.url(&format!("/_sandbox/{path}"))).json(&body).send().await.unwrap()
    }

    pub async fn rate_limit(&self, limit: u32, window_seconds: f64) {
        self.sandbox.rate_limit(&self.provider, limit, window_seconds).await;
    }
}

/// (method, path, status) of each journal entry, oldest first.
pub fn method_path_status(journal: &[Value]) -> Vec<(Value, Value, Value)> {
    journal.iter().map(|e| (e["method"].clone(), e["path"].clone(), e["status"].clone())).collect()
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
