//! The request journal of one provider: every API request received (admin requests are
//! not journaled), oldest first, so tests can count and inspect what the operator sent; and
//! how many requests were in flight at once, so tests can check a client's concurrency
//! without timing it.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

/// One journaled request, as served by `GET <prefix>/_sandbox/requests`.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub method: String,
    /// Path relative to the provider prefix, e.g. `/connections/metadata`.
    pub path: String,
    /// The raw query string without `?`, or `null` when the URL has none.
    pub query: Option<String>,
    /// Final status; `null` while in flight and for requests answered by a connection reset.
    pub status: Option<u16>,
    /// The body parsed as JSON; a JSON string holding the raw text when it is not JSON;
    /// `null` when empty.
    pub body: Value,
    /// Arrival time, unix seconds with millisecond precision.
    pub at: f64,
    #[serde(skip)]
    seq: u64,
}

#[derive(Default)]
pub struct Journal {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    entries: Vec<Entry>,
    in_flight: usize,
    max_in_flight: usize,
}

/// Requests being served now and the most served at once since the journal was cleared, as
/// served by `GET <prefix>/_sandbox/requests/in-flight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    pub in_flight: usize,
    pub max_in_flight: usize,
}

/// A request counted as in flight until dropped: dropped with the request's future too,
/// so a client that gives up mid-answer (a timeout during injected latency) is not counted
/// forever.
pub struct Serving<'a>(&'a Journal);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
    }
}

/// Handle to a journaled request, used to fill in its status once it is answered.
/// Recording at arrival keeps the journal in arrival order under concurrency.
pub struct Ticket(u64);

impl Journal {
    pub fn begin(&self, method: &str, path: &str, query: Option<&str>, body: &[u8], at: f64) -> Ticket {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.push(Entry {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            status: None,
            body: body_value(body),
            at: (at * 1000.0).round() / 1000.0,
            seq,
        });
        Ticket(seq)
    }

    pub fn finish(&self, ticket: Ticket, status: Option<u16>) {
        let mut inner = self.lock();
        // The journal may have been cleared meanwhile; then there is nothing to update.
        if let Some(entry) = inner.entries.iter_mut().rev().find(|e| e.seq == ticket.0) {
            entry.status = status;
        }
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.clone()
    }

    /// Count a request as in flight until the returned guard is dropped.
    pub fn serving(&self) -> Serving<'_> {
        let mut inner = self.lock();
        inner.in_flight += 1;
        inner.max_in_flight = inner.max_in_flight.max(inner.in_flight);
        Serving(self)
    }

    pub fn in_flight(&self) -> InFlight {
        let inner = self.lock();
        InFlight { in_flight: inner.in_flight, max_in_flight: inner.max_in_flight }
    }

    /// Forget the entries and the maximum so far (requests still in flight stay counted).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.max_in_flight = inner.in_flight;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the journal inconsistent (each
        // operation is a single push/update), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn body_value(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_arrival_order_and_fills_status_later() {
        let journal = Journal::default();
        let first = journal.begin("GET", "/a", None, b"", 1.0004);
        let second = journal.begin("PATCH", "/b", Some("x=1"), b"{\"k\":1}", 2.0);
        journal.finish(second, Some(200));
        journal.finish(first, Some(404));
        let entries = journal.entries();
        assert_eq!(entries[0].path, "/a");
        assert_eq!(entries[0].status, Some(404));
        assert_eq!(entries[0].at, 1.0);
        assert_eq!(entries[1].body, serde_json::json!({"k": 1}));
        assert_eq!(entries[1].query.as_deref(), Some("x=1"));
    }

    #[test]
    fn counts_requests_in_flight_and_the_most_at_once() {
        let journal = Journal::default();
        let (a, b) = (journal.serving(), journal.serving());
        drop(a);
        let c = journal.serving();
        assert_eq!(journal.in_flight(), InFlight { in_flight: 2, max_in_flight: 2 });
        drop((b, c));
        assert_eq!(journal.in_flight(), InFlight { in_flight: 0, max_in_flight: 2 });
        let d = journal.serving();
        journal.clear();
        assert_eq!(journal.in_flight(), InFlight { in_flight: 1, max_in_flight: 1 }, "cleared to what is in flight");
        drop(d);
    }

    #[test]
    fn non_json_body_is_kept_as_text() {
        let journal = Journal::default();
        journal.begin("POST", "/a", None, b"not json", 0.0);
        assert_eq!(journal.entries()[0].body, Value::String("not json".into()));
    }
}
