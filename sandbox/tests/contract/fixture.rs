//! The contract fixture: the provider emulators (served in-process on a real socket by
//! `ProviderSandbox`) with Prism in proxy mode in front of one of them, configured with that
//! provider's official document, plus the emulator's admin API.
//!
//! Each test starts its own fixture. nextest (the runner of `scripts/test`) runs every test
//! in its own process, so a process-wide `OnceCell` would not share a Prism between tests
//! anyway; owning the fixture also keeps tests from seeing each other's admin settings
//! (tokens, rate limits), and Prism ends with its test (see `process::Logged`). The price is
//! one Prism start (about 1-3 s, more under load) per test.

use std::ffi::OsStr;

use connection_sandbox::providers::ProviderSandbox;
use reqwest::Method;
use serde_json::Value;

use crate::exchange::{Call, Reply};
use crate::locate::{official_document, prism_bin};
use crate::process::{Logged, wait_until_serving};
use crate::schema::Document;

#[derive(Clone, Copy, Debug)]
pub enum Provider {
    Nango,
    Mielto,
    Arena,
    Datagrid,
}

impl Provider {
    /// The name `ProviderSandbox::base_url` knows; the official documents' paths start
    /// below that base URL (docs/interfaces.md).
    fn name(self) -> &'static str {
        match self {
            Provider::Nango => "nango",
            Provider::Mielto => "mielto",
            Provider::Arena => "arena",
            Provider::Datagrid => "datagrid",
        }
    }

    fn document_file(self) -> &'static str {
        match self {
            Provider::Nango => "nango.yaml",
            Provider::Mielto => "mielto.yaml",
            Provider::Arena => "arena.json",
            Provider::Datagrid => "datagrid.yaml",
        }
    }
}

pub struct Contract {
    /// The official document, for checking bodies Prism does not see (schema.rs).
    pub document: Document,
    http: reqwest::Client,
    /// `http://ADDR/<prefix>` of the emulator.
    direct_base: String,
    /// `http://127.0.0.1:PORT` of Prism; it appends the request path to the upstream URL.
    prism_base: String,
    // Dropped in this order: Prism is killed before the emulator stops, and its log folder
    // goes last.
    prism: Logged,
    _emulator: ProviderSandbox,
    _logs: tempfile::TempDir,
}

/// When a test fails, show what Prism logged (requests, forwards, violations; Prism does not
/// log headers, so no token appears) next to the assertion message.
impl Drop for Contract {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.prism.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- last lines of the Prism log ---\n{}", tail.join("\n"));
        }
    }
}

impl Contract {
    pub async fn start(provider: Provider) -> Contract {
        let logs = tempfile::tempdir().expect("temp dir for child logs");
        // Loopback only: never route these requests through a proxy from the environment.
        // The generous bound turns a request Prism never answers (it leaves a body that is not
        // valid JSON hanging) into a failure that names the request, not a stuck test.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .expect("http client");

        let emulator = ProviderSandbox::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("start the provider emulators on a loopback port");
        let direct_base = emulator.base_url(provider.name());

        // The official document is used as it is: Prism matches request paths against the
        // document's paths and ignores `servers` (Datagrid's `/v1` base path included), and
        // it forwards to `<upstream><request path>`, keeping the upstream's own path prefix.
        // `--port 0` lets the kernel pick a free port, which Prism then prints; that avoids
        // the race of probing for a free port and handing it over.
        let document_path = official_document(provider.document_file());
        let args: [&OsStr; 8] = [
            "proxy".as_ref(),
            document_path.as_os_str(),
            direct_base.as_ref(),
            "--errors".as_ref(),
            "--host".as_ref(),
            "127.0.0.1".as_ref(),
            "--port".as_ref(),
            "0".as_ref(),
        ];
        let log = logs.path().join("prism.log");
        let mut prism = Logged::spawn("prism proxy", &prism_bin(), args, &log);
        let prism_base = prism.wait_for_line("Prism is listening on ").await;
        wait_until_serving(&http, &format!("{prism_base}/"), &prism).await;

        Contract {
            document: Document::load(&document_path),
            http,
            direct_base,
            prism_base,
            prism,
            _emulator: emulator,
            _logs: logs,
        }
    }

    /// Send `call` through Prism.
    pub async fn via_prism(&self, call: &Call) -> Reply {
        call.send(&self.http, &self.prism_base).await
    }

    /// Send `call` straight to the emulator.
    pub async fn direct(&self, call: &Call) -> Reply {
        call.send(&self.http, &self.direct_base).await
    }

    /// Send a valid `call` through Prism and check that it reached the emulator exactly
    /// once and that the emulator's answer is the one Prism relayed (unless Prism replaced
    /// it with its VIOLATIONS problem, which the caller then checks).
    pub async fn forwarded(&self, call: &Call) -> Reply {
        self.clear_journal().await;
        let reply = self.via_prism(call).await;
        let journal = self.journal().await;
        let relayed = reply.is_prism_violations() || journal.first().is_some_and(|e| e["status"] == reply.status);
        assert!(
            journal.len() == 1
                && journal[0]["method"] == call.method.as_str()
                && journal[0]["path"] == call.route()
                && relayed,
            "{} {}: expected the emulator to have answered it once with {}, journal: {journal:?}",
            call.method,
            call.path,
            reply.status
        );
        reply
    }

    /// Send `call` through Prism and check that Prism answered it itself: the emulator's
    /// journal stays empty.
    pub async fn stopped_by_prism(&self, call: &Call) -> Reply {
        self.clear_journal().await;
        let reply = self.via_prism(call).await;
        let journal = self.journal().await;
        assert!(
            journal.is_empty(),
            "{} {}: Prism should not have forwarded it (it answered {}), journal: {journal:?}",
            call.method,
            call.path,
            reply.status
        );
        reply
    }

    /// A request the official document makes invalid: Prism refuses it at `location`
    /// without forwarding it, and the emulator, sent the same request directly, rejects it
    /// with `emulator_status`. Returns the emulator's answer for further checks.
    pub async fn rejected_by_both(&self, call: &Call, location: &[&str], emulator_status: u16) -> Reply {
        self.stopped_by_prism(call).await.assert_prism_rejected(location);
        let direct = self.direct(call).await;
        direct.assert_status(emulator_status);
        direct
    }

    /// Seed a connection's raw state (docs/interfaces.md: `PUT /_sandbox/connections/{id}`).
    pub async fn seed(&self, id: &str, state: Value) {
        self.admin(Method::PUT, &format!("/_sandbox/connections/{id}"), Some(state)).await;
    }

    /// Only these bearer tokens are accepted; `read_only` ones may read but not write.
    pub async fn set_tokens(&self, tokens: &[&str], read_only: &[&str]) {
        let body = serde_json::json!({ "tokens": tokens, "readOnly": read_only });
        self.admin(Method::PUT, "/_sandbox/tokens", Some(body)).await;
    }

    /// Allow `limit` requests per window of `window_seconds` (0 disables the limit); the
    /// override also starts every bucket afresh, so the next `limit` requests pass.
    pub async fn set_rate_limit(&self, limit: u32, window_seconds: f64) {
        let body = serde_json::json!({ "limit": limit, "windowSeconds": window_seconds });
        self.admin(Method::PUT, "/_sandbox/rate-limit", Some(body)).await;
    }

    /// Queue a fault (docs/interfaces.md `PUT /_sandbox/faults`): the emulator answers the next
    /// matching request with it instead of running the handler.
    pub async fn inject_fault(&self, fault: Value) {
        self.admin(Method::PUT, "/_sandbox/faults", Some(fault)).await;
    }

    pub async fn journal(&self) -> Vec<Value> {
        match self.admin(Method::GET, "/_sandbox/requests", None).await {
            Value::Array(entries) => entries,
            other => panic!("the request journal is not an array: {other}"),
        }
    }

    pub async fn clear_journal(&self) {
        self.admin(Method::DELETE, "/_sandbox/requests", None).await;
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut call = Call::new(method, path);
        if let Some(body) = body {
            call = call.json(body);
        }
        let reply = self.direct(&call).await;
        assert!(
            (200..300).contains(&reply.status),
            "admin {} {path} failed with {}: {}",
            call.method,
            reply.status,
            reply.text
        );
        reply.body
    }
}
