//! Datagrid (REFERENCE.md §4): `GET`/`PATCH /connections/{id}` below the base URL (which
//! includes `/v1`), optional `Datagrid-Teamspace` header. Limits are per teamspace, path
//! and method, so each route has its own pacing bucket.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::http::{Call, Dialect, Http, rate_limit_reset, retry_after, retry_after_ms};
use super::{AccountPacer, ProviderClient, ProviderError, Target, Token, unexpected, unsupported};
use crate::api::ProviderConfig;
use crate::diff::{Upstream, Write};

/// Pacing buckets: the templated route, which is the likelier limiter key (§4 [I]).
const READ_BUCKET: &str = "GET /connections/{connection_id}";
const WRITE_BUCKET: &str = "PATCH /connections/{connection_id}";

#[derive(Debug)]
pub(super) struct Datagrid {
    http: Http,
}

impl Datagrid {
    pub(super) fn new(
        config: &ProviderConfig,
        token: Token,
        client: reqwest::Client,
        pacer: Arc<AccountPacer>,
    ) -> Result<Self, ProviderError> {
        let mut http = Http::new(client, &config.base_url, token, config.timeout, pacer, Box::new(DatagridDialect))?;
        if let Some(teamspace) = &config.teamspace_id {
            http = http.with_header("datagrid-teamspace", teamspace)?;
        }
        Ok(Datagrid { http })
    }
}

impl ProviderClient for Datagrid {
    fn read<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Upstream, ProviderError>> {
        Box::pin(async move {
            let body = self
                .http
                .send(Call {
                    method: Method::GET,
                    bucket: READ_BUCKET,
                    segments: &["connections", &target.connection_id],
                    query: &[],
                    body: None,
                })
                .await?;
            let name =
                body.get("name").and_then(Value::as_str).ok_or_else(|| unexpected("the connection has no name"))?;
            Ok(Upstream::datagrid(name))
        })
    }

    fn write<'a>(&'a self, target: &'a Target, write: &'a Write) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let Write::DatagridPatch { name } = write else {
                return Err(unsupported("datagrid", write));
            };
            self.http
                .send(Call {
                    method: Method::PATCH,
                    bucket: WRITE_BUCKET,
                    segments: &["connections", &target.connection_id],
                    query: &[],
                    body: Some(json!({ "name": name })),
                })
                .await
                .map(drop)
        })
    }
}

/// `{"status_code", "error", "message", "details": {"reason"}}` (the documented 429 shape,
/// likely shared by the other errors).
pub(super) struct DatagridDialect;

impl Dialect for DatagridDialect {
    fn name(&self) -> &'static str {
        "datagrid"
    }

    fn error_message(&self, _: u16, body: &Value) -> Option<String> {
        body.get("message")
            .or_else(|| body.get("error"))
            .or_else(|| body.get("detail"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// `retry-after-ms`, then `Retry-After`, then `X-RateLimit-Reset` (Stainless order).
    fn retry_at(&self, headers: &HeaderMap, _: &Value, now: SystemTime) -> Option<SystemTime> {
        retry_after_ms(headers, now).or_else(|| retry_after(headers, now)).or_else(|| rate_limit_reset(headers, now))
    }

    fn default_window(&self) -> Option<Duration> {
        Some(Duration::from_secs(60))
    }
}
