//! One request to a `/_sandbox/` admin API (docs/interfaces.md), the provider emulators' or
//! the Kubernetes API's (emulator or kube-proxy). A failed admin call is a broken test
//! setup, never the behaviour under test, so it panics.

use serde_json::Value;

/// `method url` with `body` as JSON; the JSON answer (`null` when empty, a string when it is
/// not JSON). Panics on a non-2xx.
pub async fn request(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Option<&Value>) -> Value {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{method} {url}: {status}: {text}");
    if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}
