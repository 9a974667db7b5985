//! Are.na v3 (docs/providers.md, Are.na): `GET`/`PUT /v3/connections/{id}` with `{metadata}`; a
//! `null` value deletes a key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::http::{Call, Dialect, Http, RequestObserver, after_seconds, rate_limit_reset, retry_after};
use super::{AccountPacer, ProviderClient, ProviderError, Target, Token, unexpected, unsupported};
use crate::api::ProviderConfig;
use crate::diff::{Upstream, Write};

#[derive(Debug)]
pub(super) struct Arena {
    http: Http,
}

impl Arena {
    pub(super) fn new(
        config: &ProviderConfig,
        token: Token,
        client: reqwest::Client,
        pacer: Arc<AccountPacer>,
        observer: Option<RequestObserver>,
    ) -> Result<Self, ProviderError> {
        Ok(Arena {
            http: Http::new(client, &config.base_url, token, config.timeout, pacer, Box::new(ArenaDialect))?
                .with_observer(observer),
        })
    }
}

impl ProviderClient for Arena {
    fn read<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Upstream, ProviderError>> {
        Box::pin(async move {
            let body = self
                .http
                .send(Call {
                    method: Method::GET,
                    bucket: "",
                    segments: &["v3", "connections", &target.connection_id],
                    query: &[],
                    body: None,
                })
                .await?;
            connection(&body)
        })
    }

    fn write<'a>(&'a self, target: &'a Target, write: &'a Write) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let Write::ArenaPut { metadata } = write else {
                return Err(unsupported("arena", write));
            };
            self.http
                .send(Call {
                    method: Method::PUT,
                    bucket: "",
                    segments: &["v3", "connections", &target.connection_id],
                    query: &[],
                    body: Some(json!({ "metadata": metadata })),
                })
                .await
                .map(drop)
        })
    }
}

/// The connection of a `GET /v3/connections/{id}` body. Absent, null and {} are the same
/// empty metadata.
pub(super) fn connection(body: &Value) -> Result<Upstream, ProviderError> {
    if !body.is_object() {
        return Err(unexpected("the connection is not a JSON object"));
    }
    Ok(Upstream::arena(body.get("metadata")))
}

/// `{"error": "Not Found", "code": 404, "details": {"message"}}`, except 429:
/// `{"error": {"type", "message", "retry_after", ...}}`.
pub(super) struct ArenaDialect;

impl Dialect for ArenaDialect {
    fn name(&self) -> &'static str {
        "arena"
    }

    fn error_message(&self, _: u16, body: &Value) -> Option<String> {
        // Same precedence as the official SDK: details.message, error_description, message.
        body.pointer("/details/message")
            .or_else(|| body.get("error_description"))
            .or_else(|| body.get("message"))
            .or_else(|| body.pointer("/error/message"))
            .or_else(|| body.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The 429 body's `error.retry_after` (seconds), `X-RateLimit-Reset` and `Retry-After`
    /// (docs/providers.md, Are.na): the latest of those present, so none of them is undercut.
    fn retry_at(&self, headers: &HeaderMap, body: &Value, now: SystemTime) -> Option<SystemTime> {
        let from_body = body.pointer("/error/retry_after").and_then(Value::as_f64).and_then(|s| after_seconds(s, now));
        [from_body, rate_limit_reset(headers, now), retry_after(headers, now)].into_iter().flatten().max()
    }

    fn default_window(&self) -> Option<Duration> {
        Some(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_body_retry_after_wins() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let body = json!({"error": {"type": "rate_limit_exceeded", "message": "Rate limit of 30 requests per minute exceeded", "retry_after": 65}});
        assert_eq!(ArenaDialect.retry_at(&HeaderMap::new(), &body, now), Some(now + Duration::from_secs(65)));
        assert_eq!(ArenaDialect.error_message(429, &body).unwrap(), "Rate limit of 30 requests per minute exceeded");
    }

    #[test]
    fn generic_errors_use_details_message() {
        let body = json!({"error": "Forbidden", "code": 403, "details": {"message": "You do not have permission to access this resource."}});
        assert_eq!(
            ArenaDialect.error_message(403, &body).unwrap(),
            "You do not have permission to access this resource."
        );
        assert_eq!(ArenaDialect.error_message(404, &json!({"error": "Not Found", "code": 404})).unwrap(), "Not Found");
    }
}
