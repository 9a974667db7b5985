//! List-based reads for drift checks of large fleets: instead of one `GET` per Connection
//! every drift interval, a provider client that can list (Nango `GET /connections`,
//! Datagrid's cursor-paged list) keeps one snapshot of every connection of the account and
//! answers drift checks from it while it is fresh enough.
//!
//! A snapshot is only ever *read*: the controller re-reads with a `GET` before it writes
//! anything planned from it (see `controller::reconcile`), so a stale row can cost a
//! missed drift for one interval, never a clobbered key.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use super::ProviderError;
use crate::diff::Upstream;

/// What a drift check accepts from a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// The snapshot must have been fetched (request sent) strictly after this instant:
    /// the Connection's last known write, so the snapshot shows it.
    pub not_before: SystemTime,
    /// ... and be at most this old.
    pub max_age: Duration,
}

/// One list of an account's connections, keyed by [`ListKey`].
#[derive(Debug)]
struct Snapshot {
    /// Wall-clock time the first page was requested: every row is at least this new.
    requested_at: SystemTime,
    fetched: Instant,
    rows: HashMap<ListKey, Upstream>,
}

/// A connection's identity in a list: its id and, for Nango, its integration.
pub type ListKey = (String, Option<String>);

impl Snapshot {
    fn usable(&self, freshness: Freshness, now: Instant) -> bool {
        usable(self.requested_at, self.fetched, freshness, now)
    }
}

/// Whether a snapshot requested at `requested_at` (wall clock) and completed at `fetched`
/// (monotonic) satisfies `freshness` at `now`.
fn usable(requested_at: SystemTime, fetched: Instant, freshness: Freshness, now: Instant) -> bool {
    requested_at > freshness.not_before && now.saturating_duration_since(fetched) <= freshness.max_age
}

/// After a list call failed with something other than a rate limit (a token without the
/// list scope gets 403, a gateway may not route the list), drift checks use single `GET`s
/// for this long before the list is tried again.
const LIST_UNAVAILABLE_FOR: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Default)]
struct State {
    snapshot: Option<Snapshot>,
    unavailable_until: Option<Instant>,
}

/// The snapshot of one provider account (one per cached client), refreshed by at most one
/// list at a time: drift checks that arrive together wait for the same list.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    state: tokio::sync::Mutex<State>,
}

impl Listing {
    /// The row of `key` from a snapshot satisfying `freshness`, listing again with `list`
    /// when the current one does not. `Ok(None)`: no row (not listed, or the list is
    /// unavailable): the caller reads the connection with a `GET`.
    pub(crate) async fn row<F, Fut>(
        &self,
        key: &ListKey,
        freshness: Freshness,
        list: F,
    ) -> Result<Option<Upstream>, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<HashMap<ListKey, Upstream>, ProviderError>>,
    {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if state.unavailable_until.is_some_and(|until| until > now) {
            return Ok(None);
        }
        if let Some(snapshot) = &state.snapshot
            && snapshot.usable(freshness, now)
        {
            return Ok(snapshot.rows.get(key).cloned());
        }
        let requested_at = SystemTime::now();
        match list().await {
            Ok(rows) => {
                let row = rows.get(key).cloned();
                state.snapshot = Some(Snapshot { requested_at, fetched: Instant::now(), rows });
                state.unavailable_until = None;
                Ok(row)
            }
            // The account is blocked: a GET would be refused the same way.
            Err(e @ ProviderError::RateLimited { .. }) => Err(e),
            Err(e) => {
                tracing::info!(error = %e, "listing connections failed; drift checks read one by one for a while");
                state.snapshot = None;
                state.unavailable_until = Some(Instant::now() + LIST_UNAVAILABLE_FOR);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn rows(name: &str) -> HashMap<ListKey, Upstream> {
        HashMap::from([(("a".to_string(), None), Upstream::datagrid(name))])
    }

    fn key() -> ListKey {
        ("a".to_string(), None)
    }

    #[test]
    fn a_snapshot_must_postdate_the_last_write_and_be_young_enough() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = Instant::now();
        let fresh = |not_before, max_age| Freshness { not_before, max_age };
        assert!(usable(t0, now, fresh(t0 - Duration::from_secs(1), Duration::from_secs(5)), now));
        // Requested in the same instant as the write: it may not show it.
        assert!(!usable(t0, now, fresh(t0, Duration::from_secs(5)), now));
        // Too old.
        let later = now + Duration::from_secs(6);
        assert!(!usable(t0, now, fresh(t0 - Duration::from_secs(1), Duration::from_secs(5)), later));
    }

    #[tokio::test]
    async fn one_list_serves_every_check_while_fresh() {
        let listing = Listing::default();
        let calls = AtomicUsize::new(0);
        let freshness = Freshness { not_before: SystemTime::UNIX_EPOCH, max_age: Duration::from_secs(60) };
        for _ in 0..5 {
            let row = listing
                .row(&key(), freshness, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(rows("x"))
                })
                .await
                .unwrap();
            assert_eq!(row, Some(Upstream::datagrid("x")));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A write after the snapshot was taken forces a new list.
        let after_write = Freshness { not_before: SystemTime::now(), max_age: Duration::from_secs(60) };
        std::thread::sleep(Duration::from_millis(2));
        listing
            .row(&key(), after_write, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(rows("y"))
            })
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_list_falls_back_to_gets_but_a_rate_limit_is_returned() {
        let listing = Listing::default();
        let freshness = Freshness { not_before: SystemTime::UNIX_EPOCH, max_age: Duration::from_secs(60) };
        let limited = ProviderError::RateLimited { retry_at: SystemTime::now() };
        let got = listing.row(&key(), freshness, || async { Err(limited.clone()) }).await;
        assert_eq!(got, Err(limited));
        let forbidden = ProviderError::Unauthorized { status: 403, message: "missing scope".into() };
        let got = listing.row(&key(), freshness, || async { Err(forbidden) }).await;
        assert_eq!(got, Ok(None));
        // Unavailable for a while: no list is attempted.
        let got = listing.row(&key(), freshness, || async { panic!("listed again") }).await;
        assert_eq!(got, Ok(None));
    }
}
