//! Nango (REFERENCE.md §1): `GET /connections/{id}?provider_config_key=K`, and
//! `PATCH`/`POST /connections/metadata` with `{connection_id, provider_config_key, metadata}`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::http::{Call, Dialect, Http, rate_limit_reset, retry_after};
use super::{AccountPacer, ProviderClient, ProviderError, Target, Token, unexpected, unsupported};
use crate::api::ProviderConfig;
use crate::diff::{Upstream, Write};

#[derive(Debug)]
pub(super) struct Nango {
    http: Http,
}

impl Nango {
    pub(super) fn new(
        config: &ProviderConfig,
        token: Token,
        client: reqwest::Client,
        pacer: Arc<AccountPacer>,
    ) -> Result<Self, ProviderError> {
        Ok(Nango { http: Http::new(client, &config.base_url, token, config.timeout, pacer, Box::new(NangoDialect))? })
    }
}

fn provider_config_key(target: &Target) -> Result<&str, ProviderError> {
    target.provider_config_key.as_deref().ok_or_else(|| ProviderError::Terminal {
        status: 0,
        message: "a Nango connection needs nango.providerConfigKey".into(),
    })
}

impl ProviderClient for Nango {
    fn read<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Upstream, ProviderError>> {
        Box::pin(async move {
            let key = provider_config_key(target)?;
            // No other query parameter: refresh flags could trigger an OAuth refresh, and
            // the query is validated strictly (REFERENCE.md §1 "Side effects of GET").
            let body = self
                .http
                .send(Call {
                    method: Method::GET,
                    bucket: "",
                    segments: &["connections", &target.connection_id],
                    query: &[("provider_config_key", key)],
                    body: None,
                })
                .await?;
            if !body.is_object() {
                return Err(unexpected("the connection is not a JSON object"));
            }
            // `metadata` is null when never set; Upstream::nango treats it as {}.
            Ok(Upstream::nango(body.get("metadata")))
        })
    }

    fn write<'a>(&'a self, target: &'a Target, write: &'a Write) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            // PATCH merges shallowly (and stores null); POST replaces: REFERENCE.md §1.
            let (method, metadata) = match write {
                Write::NangoPatch { metadata } => (Method::PATCH, metadata),
                Write::NangoReplace { metadata } => (Method::POST, metadata),
                other => return Err(unsupported("nango", other)),
            };
            let body = json!({
                "connection_id": target.connection_id,
                "provider_config_key": provider_config_key(target)?,
                "metadata": metadata,
            });
            self.http
                .send(Call { method, bucket: "", segments: &["connections", "metadata"], query: &[], body: Some(body) })
                .await
                .map(drop)
        })
    }
}

/// Nango's error envelope `{"error": {"code", "message"?}}` and rate-limit headers.
pub(super) struct NangoDialect;

impl Dialect for NangoDialect {
    fn name(&self) -> &'static str {
        "nango"
    }

    fn error_message(&self, status: u16, body: &Value) -> Option<String> {
        let error = body.get("error")?;
        let code = error.get("code").and_then(Value::as_str);
        let message = error.get("message").and_then(Value::as_str);
        // 5xx messages carry a per-request support id; the code alone is stable.
        if status >= 500 {
            return code.map(str::to_string);
        }
        match (code, message) {
            (Some(code), Some(message)) => Some(format!("{code}: {message}")),
            (Some(only), None) | (None, Some(only)) => Some(only.to_string()),
            (None, None) => None,
        }
    }

    /// `Retry-After` is `floor(msBeforeNext/1000)` and can be `0`: then (and when it is
    /// missing) the window's `X-RateLimit-Reset` says when to come back (REFERENCE.md §1).
    fn retry_at(&self, headers: &HeaderMap, _: &Value, now: SystemTime) -> Option<SystemTime> {
        let hint = match retry_after(headers, now) {
            Some(at) if at > now => Some(at),
            zero_or_none => rate_limit_reset(headers, now).or(zero_or_none),
        };
        // Both hints are floored to whole seconds (REFERENCE.md §1: `Retry-After` =
        // floor(msBeforeNext/1000), `X-RateLimit-Reset` in unix seconds), so the window can
        // reset up to a second later: retrying at the hint itself collects more 429s.
        hint.map(|at| at + NANGO_HINT_ROUNDING)
    }

    fn default_window(&self) -> Option<Duration> {
        Some(Duration::from_secs(60))
    }
}

/// What Nango's whole-second rate-limit hints may be short of the real reset.
const NANGO_HINT_ROUNDING: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    #[test]
    fn retry_after_zero_falls_back_to_reset() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers: HeaderMap = [("retry-after", "0"), ("x-ratelimit-reset", "1700000030")]
            .into_iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect();
        assert_eq!(NangoDialect.retry_at(&headers, &Value::Null, now), Some(now + Duration::from_secs(31)));
    }

    #[test]
    fn error_messages_use_code_and_message_but_only_code_for_5xx() {
        let body =
            json!({"error": {"code": "unknown_connection", "message": "Connection with connection id X not found"}});
        assert_eq!(
            NangoDialect.error_message(404, &body).unwrap(),
            "unknown_connection: Connection with connection id X not found"
        );
        let body = json!({"error": {"code": "generic_error_support", "message": "contact support with this unique id: \"6c1f\"", "payload": "6c1f"}});
        assert_eq!(NangoDialect.error_message(500, &body).unwrap(), "generic_error_support");
    }
}
