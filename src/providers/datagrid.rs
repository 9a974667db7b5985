//! Datagrid (docs/providers.md, Datagrid): `GET`/`PATCH /connections/{id}` below the base URL
//! (which includes `/v1`), optional `Datagrid-Teamspace` header. Limits are per teamspace, path
//! and method, so each route has its own pacing bucket. Drift checks read through the
//! cursor-paged list `GET /connections` (`listing`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::AccountConnections;
use super::http::{Call, Dialect, Http, RequestObserver, rate_limit_reset, retry_after, retry_after_ms};
use super::listing::{Freshness, ListKey, Listing};
use super::{AccountPacer, ProviderClient, ProviderError, Target, Token, unexpected, unsupported};
use crate::api::ProviderConfig;
use crate::diff::{Upstream, Write};

/// Pacing buckets: the templated route, the likelier limiter key (docs/providers.md, Datagrid [I]).
const READ_BUCKET: &str = "GET /connections/{connection_id}";
const WRITE_BUCKET: &str = "PATCH /connections/{connection_id}";
const LIST_BUCKET: &str = "GET /connections";
/// What a read followed by a write takes (see `providers::sync_buckets`).
pub(super) const SYNC_BUCKETS: &[(&str, u32)] = &[(READ_BUCKET, 1), (WRITE_BUCKET, 1)];
/// Rows per list page (the list accepts 1..100).
const LIST_PAGE: &str = "100";

#[derive(Debug)]
pub(super) struct Datagrid {
    http: Http,
    listing: Listing,
}

impl Datagrid {
    pub(super) fn new(
        config: &ProviderConfig,
        token: Token,
        client: reqwest::Client,
        pacer: Arc<AccountPacer>,
        observer: Option<RequestObserver>,
    ) -> Result<Self, ProviderError> {
        let mut http = Http::new(client, &config.base_url, token, config.timeout, pacer, Box::new(DatagridDialect))?
            .with_observer(observer);
        if let Some(teamspace) = &config.teamspace_id {
            http = http.with_header("datagrid-teamspace", teamspace)?;
        }
        Ok(Datagrid { http, listing: Listing::default() })
    }

    /// Every connection visible to the token (in the teamspace when one is set), following
    /// the `after` cursor until `has_more` is false (docs/providers.md, Datagrid).
    async fn list_rows(&self) -> Result<HashMap<ListKey, Upstream>, ProviderError> {
        let mut pages = ListPages::default();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", LIST_PAGE)];
            if let Some(cursor) = &after {
                query.push(("after", cursor.as_str()));
            }
            let body = self
                .http
                .send(Call {
                    method: Method::GET,
                    bucket: LIST_BUCKET,
                    segments: &["connections"],
                    query: &query,
                    body: None,
                })
                .await?;
            match pages.take(&body)? {
                Some(cursor) => after = Some(cursor),
                None => return Ok(pages.rows),
            }
        }
    }
}

/// The rows of a list, page by page, following the `after` cursor (the last row's id)
/// while `has_more` (docs/providers.md, Datagrid).
#[derive(Default)]
pub(super) struct ListPages {
    pub(super) rows: HashMap<ListKey, Upstream>,
    /// The cursors followed so far.
    cursors: HashSet<String>,
}

impl ListPages {
    /// Take one page's body; `Ok(Some(cursor))`: the page `after` it is to be read. A
    /// cursor already followed is refused: a server that ignores `after` (or cycles) would
    /// otherwise be listed for ever (the list is then unavailable for a while and drift
    /// checks use single reads, listing.rs).
    pub(super) fn take(&mut self, body: &Value) -> Result<Option<String>, ProviderError> {
        let data =
            body.get("data").and_then(Value::as_array).ok_or_else(|| unexpected("the list has no data array"))?;
        let mut last = None;
        for item in data {
            let (Some(id), Some(name)) =
                (item.get("id").and_then(Value::as_str), item.get("name").and_then(Value::as_str))
            else {
                return Err(unexpected("a listed connection has no id or name"));
            };
            self.rows.insert((id.to_string(), None), Upstream::datagrid(name));
            last = Some(id.to_string());
        }
        match (body.get("has_more").and_then(Value::as_bool), last) {
            (Some(true), Some(last)) if !self.cursors.insert(last.clone()) => {
                Err(unexpected("the list cursor does not move on"))
            }
            (Some(true), Some(last)) => Ok(Some(last)),
            _ => Ok(None),
        }
    }
}

/// The connection of a `GET /connections/{id}` body.
pub(super) fn connection(body: &Value) -> Result<Upstream, ProviderError> {
    let name = body.get("name").and_then(Value::as_str).ok_or_else(|| unexpected("the connection has no name"))?;
    Ok(Upstream::datagrid(name))
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
            let key = (target.connection_id.clone(), None);
            self.listing.row(&key, freshness, || self.list_rows()).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the `datagrid_list` fuzz target (docs/fuzzing.md): a server that ignores
    /// `after` and serves the same page with `has_more` was listed for ever.
    #[test]
    fn a_cursor_that_does_not_move_ends_the_listing() {
        let page = json!({"data": [{"id": "a", "name": "A"}], "has_more": true});
        let mut pages = ListPages::default();
        assert_eq!(pages.take(&page).unwrap().as_deref(), Some("a"));
        assert!(matches!(pages.take(&page), Err(ProviderError::Retryable { status: None, .. })));
        // A cycle of two pages is caught as well.
        let (one, two) = (
            json!({"data": [{"id": "b", "name": "B"}], "has_more": true}),
            json!({"data": [{"id": "c", "name": "C"}], "has_more": true}),
        );
        let mut pages = ListPages::default();
        assert_eq!(pages.take(&one).unwrap().as_deref(), Some("b"));
        assert_eq!(pages.take(&two).unwrap().as_deref(), Some("c"));
        assert!(pages.take(&one).is_err());
        // The last page ends it whatever it repeats.
        let last = json!({"data": [{"id": "c", "name": "C2"}], "has_more": false});
        assert_eq!(pages.take(&last).unwrap(), None);
        assert_eq!(pages.rows[&("c".to_string(), None)], Upstream::datagrid("C2"));
    }
}
