//! The contract fixture: the provider emulators (served in-process on a real socket by
//! `ProviderSandbox`) with Prism in proxy mode in front of one of them, configured with that
//! provider's official document, plus the emulator's admin API.
//!
//! Each test starts its own fixture. nextest (the runner of `scripts/test`) runs every test
//! in its own process, so a process-wide `OnceCell` would not share a Prism between tests
//! anyway; owning the fixture also keeps tests from seeing each other's admin settings
//! (tokens, rate limits), and Prism ends with its test (see `connection_testkit::prism`). The price is
//! one Prism start (about 1-3 s, more under load) per test.

use connection_testkit::prism::Prism;
use connection_testkit::providers::Providers;
use connection_testkit::tools::provider_document;
use serde_json::Value;

use crate::exchange::{Call, Reply};
use crate::schema::Document;

#[derive(Clone, Copy, Debug)]
pub enum Provider {
    Nango,
    Mielto,
    Arena,
    Datagrid,
}

impl Provider {
    /// The name `Providers::base_url` knows; the official documents' paths start
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
    provider: Provider,
    /// `http://ADDR/<prefix>` of the emulator.
    direct_base: String,
    // Dropped in this order: Prism is killed before the emulator stops.
    prism: Prism,
    emulators: Providers,
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
        // Loopback only: never route these requests through a proxy from the environment.
        // The generous bound turns a request Prism never answers (it leaves a body that is not
        // valid JSON hanging) into a failure that names the request, not a stuck test.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .expect("http client");
        let emulators = Providers::start().await;
        let direct_base = emulators.base_url(provider.name());
        // The official document is used as it is (Datagrid's `/v1` base path included).
        let document_path = provider_document(provider.document_file());
        let prism = Prism::proxy(&document_path, &direct_base).await;
        Contract { document: Document::load(&document_path), http, provider, direct_base, prism, emulators }
    }

    /// Send `call` through Prism.
    pub async fn via_prism(&self, call: &Call) -> Reply {
        call.send(&self.http, self.prism.base_url()).await
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
        self.emulators.seed(self.provider.name(), id, state).await;
    }

    /// Only these bearer tokens are accepted; `read_only` ones may read but not write.
    pub async fn set_tokens(&self, tokens: &[&str], read_only: &[&str]) {
        self.emulators.accept_tokens_read_only(self.provider.name(), tokens, read_only).await;
    }

    /// Allow `limit` requests per window of `window_seconds` (0 disables the limit); the
    /// override also starts every bucket afresh, so the next `limit` requests pass.
    pub async fn set_rate_limit(&self, limit: u32, window_seconds: f64) {
        self.emulators.rate_limit(self.provider.name(), limit, window_seconds).await;
    }

    /// Queue a fault (docs/interfaces.md `PUT /_sandbox/faults`): the emulator answers the next
    /// matching request with it instead of running the handler.
    pub async fn inject_fault(&self, fault: Value) {
        self.emulators.faults(self.provider.name(), fault).await;
    }

    pub async fn journal(&self) -> Vec<Value> {
        self.emulators.journal(self.provider.name()).await
    }

    pub async fn clear_journal(&self) {
        self.emulators.clear_journal(self.provider.name()).await;
    }
}
