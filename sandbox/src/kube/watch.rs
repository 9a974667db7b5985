//! Watch streams (`?watch=true`): one JSON `WatchEvent` per line over a chunked response.
//! Replays the retained history after the requested resourceVersion (or synthesises ADDED
//! events for the current state), then follows live changes. Mirrors the watch cache:
//! an expired resourceVersion is reported in-stream as an `ERROR` event with a 410 `Expired`
//! Status; selectors turn objects leaving the selection into DELETED events; periodic
//! BOOKMARKs when asked; `sendInitialEvents` ends its initial state with a bookmark
//! annotated `k8s.io/initial-events-end`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::api_error::ApiError;
use super::crd::table::{self, Column, IncludeObject};
use super::resources::ResourceType;
use super::rest::{Selectors, to_view};
use super::shared::Shared;
use super::store::{EventType, StoredEvent};

/// Where a watch starts.
pub enum Start {
    /// Replay events after this resourceVersion.
    After(u64),
    /// Synthetic ADDED events for the current state first (resourceVersion "" or "0", or
    /// `sendInitialEvents=true`); `end_bookmark` adds the initial-events-end BOOKMARK.
    Initial { end_bookmark: bool },
}

/// Render watch objects as Table rows (`kubectl get -w`).
pub struct TableMode {
    pub columns: Vec<Column>,
    pub include: IncludeObject,
}

pub struct WatchRequest {
    pub rt: Arc<ResourceType>,
    /// Objects as `meta.k8s.io/v1` PartialObjectMetadata (kube-rs `metadata_watcher`).
    pub metadata_only: bool,
    pub namespace: Option<String>,
    pub selectors: Selectors,
    pub start: Start,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub table: Option<TableMode>,
}

type Line = Result<Bytes, Infallible>;

fn line(kind: &str, object: Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

struct Renderer {
    rt: Arc<ResourceType>,
    table: Option<TableMode>,
    metadata_only: bool,
    first: bool,
}

impl Renderer {
    fn render(&mut self, obj: Value) -> Value {
        if self.metadata_only {
            return json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]});
        }
        let Some(t) = &self.table else { return obj };
        let rv = obj["metadata"]["resourceVersion"].clone();
        let mut out = table::render(&t.columns, std::slice::from_ref(&obj), t.include, chrono::Utc::now());
        out["metadata"]["resourceVersion"] = rv;
        // Only the first event of a Table watch carries the column definitions, so that
        // `kubectl get -w` prints its header once.
        if !self.first
            && let Some(m) = out.as_object_mut()
        {
            m.insert("columnDefinitions".into(), Value::Array(Vec::new()));
        }
        self.first = false;
        out
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta})
    }
}

/// Translate a stored event for this watch, honouring scope and selectors.
fn translate(w: &WatchRequest, ev: &StoredEvent) -> Option<(&'static str, Value)> {
    let rt = &w.rt;
    if ev.key.group != rt.storage_group || ev.key.plural != rt.storage_plural {
        return None;
    }
    if let Some(ns) = &w.namespace
        && rt.namespaced
        && &ev.key.namespace != ns
    {
        return None;
    }
    let new = to_view(rt, &ev.object);
    let now_in = w.selectors.matches(&new);
    let was_in = ev.previous.as_ref().is_some_and(|p| w.selectors.matches(&to_view(rt, p)));
    match ev.kind {
        EventType::Added => now_in.then_some(("ADDED", new)),
        EventType::Deleted => (was_in || now_in).then_some(("DELETED", new)),
        EventType::Modified => match (was_in, now_in) {
            (true, true) => Some(("MODIFIED", new)),
            (false, true) => Some(("ADDED", new)),
            (true, false) => Some(("DELETED", new)),
            (false, false) => None,
        },
    }
}

/// Start a watch; returns the receiving end of its lines.
pub fn start(shared: Arc<Shared>, w: WatchRequest) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel::<Line>(256);
    let cancel = shared.watch_cancel.lock().map(|t| t.clone()).unwrap_or_else(|p| p.into_inner().clone());
    let bookmark_every = shared.options.bookmark_interval;
    let setup = {
        let mut c = shared.lock();
        let rv = c.store.current_rv();
        match w.start {
            Start::After(since) => c.store.watch_from(since).map(|(replay, sub)| (Vec::new(), replay, sub, rv)),
            Start::Initial { .. } => {
                let scope = if w.rt.namespaced { w.namespace.as_deref() } else { None };
                let initial: Vec<Value> = c
                    .store
                    .list(&w.rt.storage_group, &w.rt.storage_plural, scope)
                    .map(|(_, o)| to_view(&w.rt, o))
                    .filter(|o| w.selectors.matches(o))
                    .collect();
                Ok((initial, Vec::new(), c.store.subscribe(), rv))
            }
        }
    };
    tokio::spawn(async move {
        let (initial, replay, mut sub, start_rv) = match setup {
            Ok(s) => s,
            Err(too_old) => {
                // In-stream 410, as the watch cache does; kube-rs then relists.
                let status = ApiError::Expired(too_old.to_string()).status();
                let _ = tx.send(Ok(line("ERROR", status))).await;
                return;
            }
        };
        let end_bookmark = matches!(w.start, Start::Initial { end_bookmark: true });
        let mut r = Renderer { rt: w.rt.clone(), table: None, metadata_only: w.metadata_only, first: true };
        let table = w.table.as_ref().map(|t| TableMode { columns: t.columns.clone(), include: t.include });
        r.table = table;
        let mut last_rv = start_rv;
        for obj in initial {
            if tx.send(Ok(line("ADDED", r.render(obj)))).await.is_err() {
                return;
            }
        }
        if end_bookmark && tx.send(Ok(line("BOOKMARK", r.bookmark(start_rv, true)))).await.is_err() {
            return;
        }
        for ev in replay {
            last_rv = ev.rv;
            if let Some((kind, obj)) = translate(&w, &ev)
                && tx.send(Ok(line(kind, r.render(obj)))).await.is_err()
            {
                return;
            }
        }
        let started = tokio::time::Instant::now();
        let deadline = started + w.timeout;
        // The watch cache's schedule (cacheWatcher.nextBookmarkTime): a bookmark every
        // `bookmark_every`, and one 2 s before the watch times out, so the client resumes
        // from the newest version; none at the timeout itself.
        let pre_timeout = deadline.checked_sub(Duration::from_secs(2));
        let mut next_bookmark =
            if w.bookmarks { next_bookmark_time(started, bookmark_every, pre_timeout) } else { None };
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tokio::time::sleep_until(next_bookmark.unwrap_or(deadline)), if next_bookmark.is_some() => {
                    let rv = bookmark_rv(&shared, &sub, last_rv);
                    last_rv = rv;
                    if tx.send(Ok(line("BOOKMARK", r.bookmark(rv, false)))).await.is_err() {
                        break;
                    }
                    next_bookmark = next_bookmark_time(tokio::time::Instant::now(), bookmark_every, pre_timeout);
                }
                _ = cancel.cancelled() => break,
                _ = tx.closed() => break,
                got = sub.recv() => match got {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some((kind, obj)) = translate(&w, &ev)
                            && tx.send(Ok(line(kind, r.render(obj)))).await.is_err() {
                                break;
                            }
                    }
                    // A watcher too slow for the broadcast buffer is closed, like the watch
                    // cache terminates slow watchers; the client resumes from its last version.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    });
    rx
}

/// When the next periodic bookmark is due: `every` from `now`, but not after `pre_timeout`;
/// none once that moment has passed.
fn next_bookmark_time(
    now: tokio::time::Instant,
    every: Duration,
    pre_timeout: Option<tokio::time::Instant>,
) -> Option<tokio::time::Instant> {
    let Some(pre_timeout) = pre_timeout else { return Some(now + every) };
    let at = (now + every).min(pre_timeout);
    (at > now).then_some(at)
}

/// The revision a bookmark may claim: the store's, but only when no event is queued for this
/// watch, so a client resuming from the bookmark cannot skip an undelivered event.
fn bookmark_rv(shared: &Shared, sub: &broadcast::Receiver<Arc<StoredEvent>>, last_rv: u64) -> u64 {
    let c = shared.lock();
    if sub.is_empty() { c.store.current_rv().max(last_rv) } else { last_rv }
}

/// Cancel every open watch and install a fresh token for the next ones.
pub fn drop_all(token: &std::sync::Mutex<CancellationToken>) {
    let mut t = token.lock().unwrap_or_else(|p| p.into_inner());
    t.cancel();
    *t = CancellationToken::new();
}
