//! One HTTP exchange, described once and sent either through Prism or straight to the
//! emulator, and what came back (status, headers, body, Prism's violations).

use reqwest::Method;
use serde_json::Value;

/// A request relative to a provider's base URL (`/connections/x?provider_config_key=k`).
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    headers: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>) -> Call {
        Call { method, path: path.into(), headers: Vec::new(), body: None }
    }
    pub fn get(path: impl Into<String>) -> Call {
        Call::new(Method::GET, path)
    }
    pub fn put(path: impl Into<String>, body: Value) -> Call {
        Call::new(Method::PUT, path).json(body)
    }
    pub fn patch(path: impl Into<String>, body: Value) -> Call {
        Call::new(Method::PATCH, path).json(body)
    }

    pub fn json(self, body: Value) -> Call {
        self.raw_body("application/json", body.to_string())
    }
    pub fn raw_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Call {
        self.body = Some((content_type.to_string(), body.into()));
        self
    }
    pub fn bearer(self, token: &str) -> Call {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The path without its query string, as the emulator's journal records it.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or(&self.path)
    }

    pub async fn send(&self, http: &reqwest::Client, base_url: &str) -> Reply {
        let url = format!("{base_url}{}", self.path);
        let mut request = http.request(self.method.clone(), &url);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some((content_type, body)) = &self.body {
            request = request.header("content-type", content_type).body(body.clone());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{} {url} failed: {e}", self.method));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("read response body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body, text, what: format!("{} {url}", self.method) }
    }
}

/// A response, with the request it answered for assertion messages.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub body: Value,
    pub text: String,
    what: String,
}

/// Prism's own error types (`https://stoplight.io/prism/errors#<TYPE>`), set on the
/// `application/problem+json` bodies it generates instead of forwarding or relaying.
const PRISM_INVALID_REQUEST: &str = "https://stoplight.io/prism/errors#UNPROCESSABLE_ENTITY";
const PRISM_UNAUTHORIZED: &str = "https://stoplight.io/prism/errors#UNAUTHORIZED";
const PRISM_VIOLATIONS: &str = "https://stoplight.io/prism/errors#VIOLATIONS";
const PRISM_NO_PATH_MATCHED: &str = "https://stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR";

/// The warning Prism attaches when the upstream answered with a status the operation does
/// not document; the body is then not checked against anything.
const UNDOCUMENTED_STATUS: &str = "Unable to match the returned status code";

impl Reply {
    /// The violations Prism found, from its `sl-violations` header (absent = none).
    pub fn violations(&self) -> Vec<Value> {
        match self.headers.get("sl-violations") {
            None => Vec::new(),
            Some(raw) => serde_json::from_slice(raw.as_bytes())
                .unwrap_or_else(|e| panic!("{}: unparsable sl-violations header ({e})", self.what)),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The response came from the emulator, with `status`, and Prism found nothing wrong
    /// with it: no `sl-violations` header (not even a warning) and not one of Prism's own
    /// problem documents (with `--errors`, a response violation becomes a 500 VIOLATIONS).
    pub fn assert_conforms(&self, status: u16) -> &Reply {
        if let Some(problem) = self.conformance_problem(status) {
            panic!("{problem}");
        }
        self
    }

    /// Why this is not a conforming `status` answer from the emulator, if it is not.
    pub fn conformance_problem(&self, status: u16) -> Option<String> {
        let violations = self.violations();
        let conforms = violations.is_empty() && self.status == status && !self.is_prism_problem();
        (!conforms).then(|| {
            format!(
                "{}: expected a conforming {status} from the emulator, got {} with violations \
                 {violations:?}: {}",
                self.what, self.status, self.text
            )
        })
    }

    /// The response came from the emulator with `status`, which the operation does not
    /// document: Prism relays it with exactly one warning saying so and nothing else wrong.
    pub fn assert_undocumented_status(&self, status: u16) -> &Reply {
        let violations = self.violations();
        let only_status_warning = violations.len() == 1
            && violations[0]["severity"] == "Warning"
            && violations[0]["message"].as_str().is_some_and(|m| m.contains(UNDOCUMENTED_STATUS));
        assert!(
            self.status == status && only_status_warning && !self.is_prism_problem(),
            "{}: expected an undocumented {status} relayed with only the status warning, got {} \
             with violations {violations:?}: {}",
            self.what,
            self.status,
            self.text
        );
        self
    }

    /// Prism itself refused the request as invalid for the document (HTTP 422, its
    /// UNPROCESSABLE_ENTITY problem) and named a violation at `location` (e.g. `["body",
    /// "metadata"]`, `["query", "force_refresh"]`); an empty `location` matches violations
    /// that carry none (Prism gives none for a wrong Content-Type or a missing body).
    pub fn assert_prism_rejected(&self, location: &[&str]) -> &Reply {
        let at_location = self.body["validation"].as_array().is_some_and(|all| {
            all.iter().any(|v| match v.get("location") {
                Some(l) => *l == serde_json::json!(location),
                None => location.is_empty(),
            })
        });
        assert!(
            self.status == 422 && self.body["type"] == PRISM_INVALID_REQUEST && at_location,
            "{}: expected Prism to reject the request at {location:?}, got {}: {}",
            self.what,
            self.status,
            self.text
        );
        self
    }

    /// Prism refused the request for missing credentials (HTTP 401, its UNAUTHORIZED problem).
    pub fn assert_prism_unauthorized(&self) -> &Reply {
        assert!(
            self.status == 401 && self.body["type"] == PRISM_UNAUTHORIZED,
            "{}: expected Prism's own 401, got {}: {}",
            self.what,
            self.status,
            self.text
        );
        self
    }

    /// Prism found no operation of the document for the request (its own 404).
    pub fn assert_prism_no_route(&self) -> &Reply {
        assert!(
            self.status == 404 && self.body["type"] == PRISM_NO_PATH_MATCHED,
            "{}: expected Prism's own 404 for a path outside the document, got {}: {}",
            self.what,
            self.status,
            self.text
        );
        self
    }

    /// The emulator answered `status` (used for direct calls, which Prism never sees).
    pub fn assert_status(&self, status: u16) -> &Reply {
        assert_eq!(self.status, status, "{}: unexpected status; body: {}", self.what, self.text);
        self
    }

    /// Prism replaced the emulator's answer because it violates the document (`--errors`).
    pub fn is_prism_violations(&self) -> bool {
        self.status == 500 && self.body["type"] == PRISM_VIOLATIONS
    }

    fn is_prism_problem(&self) -> bool {
        self.body["type"].as_str().is_some_and(|t| t.starts_with("https://stoplight.io/prism/"))
    }
}
