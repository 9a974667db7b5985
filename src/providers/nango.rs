//! Nango (docs/providers.md, Nango): `GET /connections/{id}?provider_config_key=K`, and
//! `PATCH`/`POST /connections/metadata` with `{connection_id, provider_config_key, metadata}`.
//! Drift checks read through the list `GET /connections` (`listing`), and identical
//! PATCHes of many connections share one request with an array of ids (`batch`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::AccountConnections;
use super::batch::Coalescer;
use super::http::{Call, Dialect, Http, RequestObserver, rate_limit_reset, retry_after};
use super::listing::{Freshness, ListKey, Listing};
use super::{AccountPacer, ProviderClient, ProviderError, Target, Token, unexpected, unsupported};
use crate::api::ProviderConfig;
use crate::diff::{Upstream, Write};

/// Rows per list page (the list accepts 1..2000).
const LIST_PAGE: usize = 1000;

#[derive(Debug)]
pub(super) struct Nango {
    http: Arc<Http>,
    listing: Listing,
    /// PATCHes waiting to share a request, by integration and metadata body.
    patches: Coalescer<(String, String)>,
}

impl Nango {
    pub(super) fn new(
        config: &ProviderConfig,
        token: Token,
        client: reqwest::Client,
        pacer: Arc<AccountPacer>,
        observer: Option<RequestObserver>,
    ) -> Result<Self, ProviderError> {
        let http = Http::new(client, &config.base_url, token, config.timeout, pacer, Box::new(NangoDialect))?
            .with_observer(observer);
        Ok(Nango { http: Arc::new(http), listing: Listing::default(), patches: Coalescer::default() })
    }

    /// Every connection of the account, all integrations, page by page. Rows never hold
    /// credentials and listing never refreshes a token (docs/providers.md, Nango).
    async fn list_rows(&self) -> Result<HashMap<ListKey, Upstream>, ProviderError> {
        let mut pages = ListPages::new(LIST_PAGE);
        let limit = LIST_PAGE.to_string();
        for page in 0usize.. {
            let page_text = page.to_string();
            let body = self
                .http
                .send(Call {
                    method: Method::GET,
                    bucket: "",
                    segments: &["connections"],
                    query: &[("limit", &limit), ("page", &page_text)],
                    body: None,
                })
                .await?;
            if !pages.take(&body)? {
                break;
            }
        }
        Ok(pages.rows)
    }
}

/// The rows of a list, page by page: `limit`/`page` offset pages, the first short one being
/// the last (docs/providers.md, Nango).
pub(super) struct ListPages {
    page_size: usize,
    pub(super) rows: HashMap<ListKey, Upstream>,
}

impl ListPages {
    pub(super) fn new(page_size: usize) -> Self {
        ListPages { page_size, rows: HashMap::new() }
    }

    /// Take one page's body; `Ok(true)`: the next page is to be read. A full page that
    /// brings no connection not already listed is refused: a server that ignores `page`
    /// would otherwise be listed for ever (the list is then unavailable for a while and
    /// drift checks use single reads, listing.rs).
    pub(super) fn take(&mut self, body: &Value) -> Result<bool, ProviderError> {
        let items = body
            .get("connections")
            .and_then(Value::as_array)
            .ok_or_else(|| unexpected("the list has no connections array"))?;
        let mut new = false;
        for item in items {
            let (Some(id), Some(key)) = (
                item.get("connection_id").and_then(Value::as_str),
                item.get("provider_config_key").and_then(Value::as_str),
            ) else {
                return Err(unexpected("a listed connection has no connection_id or provider_config_key"));
            };
            let row = self.rows.insert((id.to_string(), Some(key.to_string())), Upstream::nango(item.get("metadata")));
            new |= row.is_none();
        }
        let more = items.len() >= self.page_size;
        if more && !new {
            return Err(unexpected("a full list page repeats connections already listed"));
        }
        Ok(more)
    }
}

/// The connection of a `GET /connections/{id}` body. `metadata` is null when never set;
/// `Upstream::nango` treats it as {}.
pub(super) fn connection(body: &Value) -> Result<Upstream, ProviderError> {
    if !body.is_object() {
        return Err(unexpected("the connection is not a JSON object"));
    }
    Ok(Upstream::nango(body.get("metadata")))
}

/// One `PATCH` or `POST /connections/metadata` for `ids` (a string for one, an array for
/// several).
async fn send_metadata(
    http: &Http,
    method: Method,
    ids: Vec<String>,
    key: &str,
    metadata: Value,
) -> Result<(), ProviderError> {
    let connection_id = match <[String; 1]>::try_from(ids) {
        Ok([one]) => Value::String(one),
        Err(many) => Value::from(many),
    };
    let body = json!({"connection_id": connection_id, "provider_config_key": key, "metadata": metadata});
    http.send(Call { method, bucket: "", segments: &["connections", "metadata"], query: &[], body: Some(body) })
        .await
        .map(drop)
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
            // the query is validated strictly (docs/providers.md, Nango).
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
            connection(&body)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Option<AccountConnections>, ProviderError>> {
        Box::pin(async move {
            let mut rows: Vec<(ListKey, Upstream)> = self.list_rows().await?.into_iter().collect();
            rows.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Some(rows))
        })
    }

    fn read_listed<'a>(
        &'a self,
        target: &'a Target,
        freshness: Freshness,
    ) -> BoxFuture<'a, Result<Option<Upstream>, ProviderError>> {
        Box::pin(async move {
            let key = (target.connection_id.clone(), Some(provider_config_key(target)?.to_string()));
            self.listing.row(&key, freshness, || self.list_rows()).await
        })
    }

    fn write<'a>(&'a self, target: &'a Target, write: &'a Write) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            // PATCH merges shallowly (and stores null); POST replaces: docs/providers.md, Nango.
            let key = provider_config_key(target)?.to_string();
            match write {
                Write::NangoPatch { metadata } => {
                    let metadata = Value::Object(metadata.clone());
                    let (http, batch_key) = (self.http.clone(), (key.clone(), metadata.to_string()));
                    let send = move |ids| {
                        let (http, key, metadata) = (http.clone(), key.clone(), metadata.clone());
                        async move { send_metadata(&http, Method::PATCH, ids, &key, metadata).await }
                    };
                    self.patches.write(batch_key, target.connection_id.clone(), send).await
                }
                // A replacement carries the keys of others too: never shared.
                Write::NangoReplace { metadata } => {
                    let ids = vec![target.connection_id.clone()];
                    send_metadata(&self.http, Method::POST, ids, &key, Value::Object(metadata.clone())).await
                }
                other => Err(unsupported("nango", other)),
            }
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
    /// missing) the window's `X-RateLimit-Reset` says when to come back (docs/providers.md, Nango).
    fn retry_at(&self, headers: &HeaderMap, _: &Value, now: SystemTime) -> Option<SystemTime> {
        let hint = match retry_after(headers, now) {
            Some(at) if at > now => Some(at),
            zero_or_none => rate_limit_reset(headers, now).or(zero_or_none),
        };
        // Both hints are floored to whole seconds (docs/providers.md, Nango: `Retry-After` =
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

    /// Found by the `nango_list` fuzz target (docs/fuzzing.md): a server that ignores
    /// `page` and serves the same full page was listed for ever.
    #[test]
    fn a_full_page_of_nothing_new_ends_the_listing() {
        let page = serde_json::json!({"connections": [
            {"connection_id": "a", "provider_config_key": "k"},
            {"connection_id": "b", "provider_config_key": "k", "metadata": {"x": 1}},
        ]});
        let mut pages = ListPages::new(2);
        assert!(pages.take(&page).unwrap());
        assert!(matches!(pages.take(&page), Err(ProviderError::Retryable { status: None, .. })));
        // One row repeated within a page is not enough to read on either.
        let same = serde_json::json!({"connections": [
            {"connection_id": "c", "provider_config_key": "k"},
            {"connection_id": "c", "provider_config_key": "k"},
        ]});
        let mut pages = ListPages::new(2);
        assert!(pages.take(&same).unwrap(), "the page brought c");
        assert!(pages.take(&same).is_err());
        // A short page ends it as before, repeated rows or not.
        let short = serde_json::json!({"connections": [{"connection_id": "a", "provider_config_key": "k"}]});
        assert!(!pages.take(&short).unwrap());
        assert!(!pages.take(&short).unwrap());
        assert_eq!(pages.rows.len(), 2);
    }

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
