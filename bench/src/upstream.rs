//! The harness's side of the provider emulators, run as their own process
//! (`connection-sandbox providers`, so their CPU and memory are measured apart from the
//! harness's): their admin API (docs/interfaces.md, "Provider sandbox admin API") for
//! seeding, latency, rate limits and the request journals.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use crate::{
    fleet::{Kind, Member},
    journal::Upstream,
    procs::Sandbox,
};

/// How many admin requests the harness keeps in flight while seeding.
const SEED_PARALLELISM: usize = 32;

pub struct Upstreams {
    sandbox: Sandbox,
    http: reqwest::Client,
}

impl Upstreams {
    /// `connection-sandbox providers` on a free loopback port, logging to `log`.
    pub fn start(sandbox_binary: &Path, log: &Path) -> anyhow::Result<Upstreams> {
        let sandbox = Sandbox::start(sandbox_binary, &["providers", "--addr", "127.0.0.1:0"], log)
            .context("starting the provider sandboxes")?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        Ok(Upstreams { sandbox, http })
    }

    pub fn pid(&self) -> u32 {
        self.sandbox.pid()
    }

    /// The base URL a Provider's `baseUrl` holds (the sandbox serves the four emulators
    /// under these prefixes; Datagrid's includes its `/v1`).
    pub fn base_url(&self, kind: Kind) -> String {
        let prefix = match kind {
            Kind::Nango => "/nango",
            Kind::Mielto => "/mielto",
            Kind::Arena => "/arena",
            Kind::Datagrid => "/datagrid/v1",
        };
        format!("{}{prefix}", self.sandbox.url)
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        kind: Kind,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/_sandbox/{path}", self.base_url(kind));
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "{method} {url}: HTTP {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Delay every API request of `kind` by `latency_ms` before it is answered: one fault
    /// without a status, whose use count never runs out in a benchmark.
    pub async fn set_latency(&self, kind: Kind, latency_ms: u64) -> anyhow::Result<()> {
        if latency_ms > 0 {
            let fault = json!({"path": "*", "latencyMs": latency_ms, "count": u32::MAX});
            self.admin(reqwest::Method::PUT, kind, "faults", Some(fault)).await?;
        }
        Ok(())
    }

    /// `limit` requests per `window_seconds` on every bucket of `kind`; 0 lifts the limit.
    pub async fn set_rate_limit(&self, kind: Kind, limit: u32, window_seconds: f64) -> anyhow::Result<()> {
        let body = json!({"limit": limit, "windowSeconds": window_seconds});
        self.admin(reqwest::Method::PUT, kind, "rate-limit", Some(body)).await?;
        Ok(())
    }

    /// Seed the upstream state of every member.
    pub async fn seed(&self, members: &[Member]) -> anyhow::Result<()> {
        stream::iter(members)
            .map(|m| async move {
                let path = format!("connections/{}", m.upstream_id());
                self.admin(reqwest::Method::PUT, m.kind, &path, Some(m.seed())).await.map(|_| ())
            })
            .buffer_unordered(SEED_PARALLELISM)
            .try_collect::<()>()
            .await
    }

    pub async fn journal(&self, kind: Kind) -> anyhow::Result<Vec<Upstream>> {
        let value = self.admin(reqwest::Method::GET, kind, "requests", None).await?;
        serde_json::from_value(value).context("parsing a provider journal")
    }

    /// Every provider's journal, by provider.
    pub async fn journals(&self, kinds: &[Kind]) -> anyhow::Result<BTreeMap<Kind, Vec<Upstream>>> {
        let mut all = BTreeMap::new();
        for &kind in kinds {
            all.insert(kind, self.journal(kind).await?);
        }
        Ok(all)
    }

    pub async fn clear_journals(&self) -> anyhow::Result<()> {
        for kind in Kind::ALL {
            self.admin(reqwest::Method::DELETE, kind, "requests", None).await?;
        }
        Ok(())
    }
}
