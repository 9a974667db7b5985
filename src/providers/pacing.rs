//! Client-side pacing of one provider account (docs/api.md, "Rate limits"): token buckets
//! seeded from `spec.rateLimit` or the documented default, tightened
//! by the `X-RateLimit-*` headers the provider returns, and an account-wide block after a
//! 429 during which no request is sent at all.
//!
//! The decisions are pure functions of the times passed in, so they are tested without
//! sleeping; the HTTP layer passes the real clock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::api::RateLimitSpec;

/// Longest a request waits for a pacing token. A longer wait is reported as rate limited
/// instead, so a reconcile never sleeps long and one busy account cannot starve the
/// others (a worker never sleeps long on one account while others wait).
pub const MAX_PACING_WAIT: Duration = Duration::from_secs(2);

/// Resolution of `X-RateLimit-Reset` (unix seconds).
const RESET_RESOLUTION: Duration = Duration::from_secs(1);

/// The rate-limit headers of one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Limit`.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`, as a time.
    pub reset: Option<SystemTime>,
    /// Length of the provider's window (`X-RateLimit-Window`, else the documented one).
    pub window: Option<Duration>,
}

/// What the account last reported, for `Provider.status.rateLimit`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_at: Option<SystemTime>,
    pub blocked_until: Option<SystemTime>,
}

impl RateLimitSnapshot {
    /// The snapshot as `Provider.status.rateLimit` (None when nothing was seen yet).
    pub fn to_status(&self) -> Option<crate::api::RateLimitStatus> {
        let time = |t: SystemTime| {
            let since = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
            let ts = k8s_openapi::jiff::Timestamp::from_second(i64::try_from(since.as_secs()).ok()?).ok()?;
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts))
        };
        (*self != RateLimitSnapshot::default()).then(|| crate::api::RateLimitStatus {
            limit: self.limit,
            remaining: self.remaining,
            reset_at: self.reset_at.and_then(time),
            blocked_until: self.blocked_until.and_then(time),
        })
    }
}

/// The pacing decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Send after waiting this long (zero: now). The token is already taken.
    After(Duration),
    /// Do not send; the account or bucket is unavailable until then.
    RateLimited(SystemTime),
}

#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_second: f64,
    updated: Instant,
    /// Set when the provider said no request of this bucket may succeed before then
    /// (`Remaining: 0`).
    not_before: Option<SystemTime>,
    /// Requests admitted and not yet finished. A response's `X-RateLimit-Remaining` does
    /// not know about them, yet each will consume one of those remaining requests.
    in_flight: u32,
    /// The latest `X-RateLimit-Reset` seen: a later one means the provider opened a new
    /// window.
    reset_seen: Option<SystemTime>,
}

impl TokenBucket {
    fn new(spec: RateLimitSpec, now: Instant) -> Self {
        let capacity = f64::from(spec.burst.max(1));
        TokenBucket {
            capacity,
            tokens: capacity,
            per_second: f64::from(spec.requests_per_minute.max(1)) / 60.0,
            updated: now,
            not_before: None,
            in_flight: 0,
            reset_seen: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.updated = now;
    }
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, TokenBucket>,
    blocked_until: Option<SystemTime>,
    last: RateLimitSnapshot,
}

impl State {
    /// Until when the account (after a 429) or `bucket` (after `Remaining: 0`) is closed.
    fn blocked(&self, bucket: &str, wall: SystemTime) -> Option<SystemTime> {
        let account = self.blocked_until.filter(|until| *until > wall);
        let own = self.buckets.get(bucket).and_then(|b| b.not_before).filter(|until| *until > wall);
        account.max(own)
    }
}

/// Pacing state of one provider account, shared by every client of that account.
#[derive(Debug)]
pub struct AccountPacer {
    spec: RateLimitSpec,
    state: Mutex<State>,
}

impl AccountPacer {
    pub fn new(spec: RateLimitSpec) -> Self {
        AccountPacer { spec, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent numbers behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take a token from `bucket` (Datagrid: one per path and method; others: one per
    /// account), or say why not.
    pub fn admit(&self, bucket: &str, now: Instant, wall: SystemTime) -> Admission {
        let mut state = self.lock();
        if let Some(until) = state.blocked_until.filter(|until| *until > wall) {
            return Admission::RateLimited(until);
        }
        let spec = self.spec;
        let bucket = state.buckets.entry(bucket.to_string()).or_insert_with(|| TokenBucket::new(spec, now));
        if let Some(until) = bucket.not_before {
            if until > wall {
                return Admission::RateLimited(until);
            }
            bucket.not_before = None;
        }
        bucket.refill(now);
        let wait = if bucket.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - bucket.tokens) / bucket.per_second)
        };
        if wait > MAX_PACING_WAIT {
            return Admission::RateLimited(wall + wait);
        }
        // Reserve now (possibly going negative) so concurrent callers queue behind it.
        bucket.tokens -= 1.0;
        bucket.in_flight += 1;
        Admission::After(wait)
    }

    /// When `bucket` will have `needed` tokens (capped at its capacity), without taking any;
    /// `None`: now. A reconcile that will read and then write asks before its read, so
    /// that the read is not spent on a write the budget then refuses (which would cost a
    /// second read later: two requests of a scarce budget for one write).
    pub fn available_at(&self, bucket: &str, needed: f64, now: Instant, wall: SystemTime) -> Option<SystemTime> {
        let mut state = self.lock();
        if let Some(until) = state.blocked(bucket, wall) {
            return Some(until);
        }
        let spec = self.spec;
        let b = state.buckets.entry(bucket.to_string()).or_insert_with(|| TokenBucket::new(spec, now));
        b.refill(now);
        let needed = needed.min(b.capacity);
        // Refills leave rounding residues (2 tokens less 1e-16): a wait that rounds to
        // nothing is none.
        let wait = Duration::from_secs_f64((needed - b.tokens).max(0.0) / b.per_second);
        (!wait.is_zero()).then(|| wall + wait)
    }

    /// Tighten the bucket from the headers of a response: never more tokens than the
    /// provider says remain, never a faster rate than its limit, and no request before the
    /// reset once nothing remains.
    pub fn record_headers(&self, bucket: &str, headers: RateLimitHeaders, now: Instant, wall: SystemTime) {
        let mut state = self.lock();
        let spec = self.spec;
        let reset_at = headers.reset;
        let b = state.buckets.entry(bucket.to_string()).or_insert_with(|| TokenBucket::new(spec, now));
        b.refill(now);
        if let (Some(limit), Some(window)) = (headers.limit, headers.window)
            && limit > 0
            && !window.is_zero()
        {
            b.per_second = b.per_second.min(limit as f64 / window.as_secs_f64());
            b.capacity = b.capacity.min(limit as f64);
        }
        let new_window = match (b.reset_seen, reset_at) {
            (Some(seen), Some(reset)) => reset > seen,
            _ => false,
        };
        if let Some(reset) = reset_at {
            b.reset_seen = Some(b.reset_seen.map_or(reset, |seen| seen.max(reset)));
        }
        if let Some(remaining) = headers.remaining {
            // The other requests still in flight were admitted against an older count: they
            // will use up part of what remains (otherwise a burst of concurrent requests
            // overshoots the limit by the concurrency and collects that many 429s).
            let others = b.in_flight.saturating_sub(1);
            let left = remaining as f64 - f64::from(others);
            if new_window {
                // A fresh window's allowance is there to use now (up to the burst), not to
                // be trickled out at the refill rate.
                b.tokens = b.tokens.max(left.min(b.capacity));
            }
            b.tokens = b.tokens.min(left);
            if remaining == 0 {
                // `X-RateLimit-Reset` has whole-second resolution and Nango floors it
                // (docs/providers.md, Nango), so the window may reset up to a second after it.
                b.not_before = reset_at.map(|r| r + RESET_RESOLUTION).filter(|r| *r > wall);
            }
        }
        state.last.limit = headers.limit.or(state.last.limit);
        state.last.remaining = headers.remaining;
        state.last.reset_at = reset_at.or(state.last.reset_at);
    }

    /// Whether the account or `bucket` is blocked at `wall` (until when): checked again by a
    /// request that waited for its token, since a 429 or `Remaining: 0` may have come in
    /// meanwhile.
    pub fn blocked(&self, bucket: &str, wall: SystemTime) -> Option<SystemTime> {
        self.lock().blocked(bucket, wall)
    }

    /// A request admitted by [`AccountPacer::admit`] has finished (answered, failed or
    /// cancelled); call it after [`AccountPacer::record_headers`] of its answer.
    pub fn finished(&self, bucket: &str) {
        if let Some(b) = self.lock().buckets.get_mut(bucket) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }

    /// Block the whole account until `until` (after a 429): every request fails fast with
    /// `RateLimited` before then. A later block never shortens an earlier one.
    pub fn block_until(&self, until: SystemTime) {
        let mut state = self.lock();
        state.blocked_until = Some(state.blocked_until.map_or(until, |b| b.max(until)));
        state.last.blocked_until = state.blocked_until;
    }

    /// The account's rate-limit state for status.
    pub fn snapshot(&self) -> RateLimitSnapshot {
        self.lock().last
    }

    /// The budget this pacer was seeded with.
    pub(super) fn spec(&self) -> RateLimitSpec {
        self.spec
    }

    /// The end of a running account-wide block (after a 429), if any.
    pub(super) fn blocked_until(&self) -> Option<SystemTime> {
        self.lock().blocked_until
    }
}

#[cfg(test)]
mod available_tests {
    use super::*;

    /// Found by the `rate_limits` fuzz target (docs/fuzzing.md): after refills at 10/min
    /// the bucket held 2 tokens less a rounding residue, and `available_at` answered "at
    /// now" (`Some(wall)`) instead of `None`.
    #[test]
    fn a_rounding_residue_is_no_wait() {
        let pacer = AccountPacer::new(RateLimitSpec { requests_per_minute: 10, burst: 5 });
        let (start, wall0) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        for ms in [0, 5_000, 7_000, 12_000, 12_000, 12_000] {
            let (now, wall) = (start + Duration::from_millis(ms), wall0 + Duration::from_millis(ms));
            assert!(matches!(pacer.admit("", now, wall), Admission::After(_)));
            pacer.record_headers("", RateLimitHeaders::default(), now, wall);
            pacer.finished("");
            if let Some(at) = pacer.available_at("", 2.0, now, wall) {
                assert!(at > wall, "available at {at:?}, not later than now ({ms} ms)");
            }
        }
    }

    #[test]
    fn available_at_waits_for_enough_tokens_without_taking_them() {
        let pacer = AccountPacer::new(RateLimitSpec { requests_per_minute: 60, burst: 3 });
        let (now, wall) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        assert_eq!(pacer.available_at("", 2.0, now, wall), None);
        assert_eq!(pacer.available_at("", 2.0, now, wall), None, "asking takes nothing");
        assert_eq!(pacer.admit("", now, wall), Admission::After(Duration::ZERO));
        assert_eq!(pacer.admit("", now, wall), Admission::After(Duration::ZERO));
        // One token left, one per second: the second one in a second.
        assert_eq!(pacer.available_at("", 2.0, now, wall), Some(wall + Duration::from_secs(1)));
        // More than the bucket holds is asked as a full bucket.
        assert_eq!(pacer.available_at("", 10.0, now, wall), Some(wall + Duration::from_secs(2)));
        pacer.block_until(wall + Duration::from_secs(30));
        assert_eq!(pacer.available_at("", 1.0, now, wall), Some(wall + Duration::from_secs(30)));
    }

    #[test]
    fn a_new_window_refills_the_bucket_up_to_the_burst() {
        let pacer = AccountPacer::new(RateLimitSpec { requests_per_minute: 60, burst: 5 });
        let (now, wall) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        let headers = |remaining, reset| RateLimitHeaders {
            limit: Some(100),
            remaining: Some(remaining),
            reset: Some(wall + Duration::from_secs(reset)),
            window: Some(Duration::from_secs(60)),
        };
        for _ in 0..5 {
            assert!(matches!(pacer.admit("", now, wall), Admission::After(_)));
            pacer.record_headers("", headers(90, 60), now, wall);
            pacer.finished("");
        }
        assert!(pacer.available_at("", 5.0, now, wall).is_some(), "the burst is spent");
        // Same window: the refill rate still applies.
        pacer.record_headers("", headers(89, 60), now, wall);
        assert!(pacer.available_at("", 5.0, now, wall).is_some());
        // The provider reports a new window: its allowance is usable at once, up to the burst.
        pacer.record_headers("", headers(99, 120), now, wall);
        assert_eq!(pacer.available_at("", 5.0, now, wall), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rpm: u32, burst: u32) -> RateLimitSpec {
        RateLimitSpec { requests_per_minute: rpm, burst }
    }

    #[test]
    fn burst_then_paced_then_rate_limited_beyond_the_max_wait() {
        let pacer = AccountPacer::new(spec(60, 2));
        let (t0, w0) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        assert_eq!(pacer.admit("", t0, w0), Admission::After(Duration::ZERO));
        assert_eq!(pacer.admit("", t0, w0), Admission::After(Duration::ZERO));
        assert_eq!(pacer.admit("", t0, w0), Admission::After(Duration::from_secs(1)));
        assert_eq!(pacer.admit("", t0, w0), Admission::After(Duration::from_secs(2)));
        // The fifth would wait 3s > MAX_PACING_WAIT: refused, and no token taken.
        assert_eq!(pacer.admit("", t0, w0), Admission::RateLimited(w0 + Duration::from_secs(3)));
        assert_eq!(pacer.admit("", t0 + Duration::from_secs(1), w0), Admission::After(Duration::from_secs(2)));
    }

    #[test]
    fn buckets_are_independent() {
        let pacer = AccountPacer::new(spec(60, 1));
        let (t0, w0) = (Instant::now(), SystemTime::UNIX_EPOCH);
        assert_eq!(pacer.admit("GET /connections/{id}", t0, w0), Admission::After(Duration::ZERO));
        assert_eq!(pacer.admit("PATCH /connections/{id}", t0, w0), Admission::After(Duration::ZERO));
    }

    #[test]
    fn a_block_refuses_every_bucket_until_it_ends_and_never_shrinks() {
        let pacer = AccountPacer::new(spec(600, 10));
        let (t0, w0) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        let until = w0 + Duration::from_secs(30);
        pacer.block_until(until);
        pacer.block_until(w0 + Duration::from_secs(5));
        assert_eq!(pacer.admit("a", t0, w0), Admission::RateLimited(until));
        assert_eq!(pacer.admit("b", t0, w0 + Duration::from_secs(29)), Admission::RateLimited(until));
        assert_eq!(pacer.admit("a", t0, until), Admission::After(Duration::ZERO));
        assert_eq!(pacer.snapshot().blocked_until, Some(until));
    }

    #[test]
    fn headers_tighten_the_bucket() {
        let pacer = AccountPacer::new(spec(6000, 100));
        let (t0, w0) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        let headers = RateLimitHeaders {
            limit: Some(60),
            remaining: Some(1),
            reset: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(160)),
            window: Some(Duration::from_secs(60)),
        };
        pacer.record_headers("", headers, t0, w0);
        assert_eq!(pacer.admit("", t0, w0), Admission::After(Duration::ZERO));
        // Now 0 tokens at 1/s (the provider's 60/min, not our 6000/min).
        assert_eq!(pacer.admit("", t0, w0), Admission::After(Duration::from_secs(1)));
        let snapshot = pacer.snapshot();
        assert_eq!((snapshot.limit, snapshot.remaining), (Some(60), Some(1)));
        assert_eq!(snapshot.reset_at, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(160)));
    }

    #[test]
    fn nothing_remaining_means_no_request_before_the_reset() {
        let pacer = AccountPacer::new(spec(600, 10));
        let (t0, w0) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        let headers = RateLimitHeaders {
            limit: None,
            remaining: Some(0),
            reset: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(130)),
            window: None,
        };
        pacer.record_headers("PATCH", headers, t0, w0);
        // The header's whole second may be floored: the bucket waits one more second.
        let reset = SystemTime::UNIX_EPOCH + Duration::from_secs(131);
        assert_eq!(pacer.admit("PATCH", t0, w0), Admission::RateLimited(reset));
        assert_eq!(pacer.admit("GET", t0, w0), Admission::After(Duration::ZERO), "only that bucket");
        assert!(matches!(pacer.admit("PATCH", t0 + Duration::from_secs(30), reset), Admission::After(_)));
    }

    #[test]
    fn snapshot_becomes_status_with_whole_second_times() {
        assert_eq!(RateLimitSnapshot::default().to_status(), None);
        let snapshot = RateLimitSnapshot {
            limit: Some(200),
            remaining: Some(3),
            reset_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_900)),
            blocked_until: None,
        };
        let status = snapshot.to_status().unwrap();
        assert_eq!((status.limit, status.remaining), (Some(200), Some(3)));
        assert_eq!(status.reset_at.unwrap().0.as_second(), 1_700_000_000);
        assert_eq!(status.blocked_until, None);
    }

    proptest::proptest! {
        /// Whatever the arrival pattern, the send times the bucket hands out never exceed
        /// its budget: at most `burst + rate * t` requests by time `t`, and no wait beyond
        /// MAX_PACING_WAIT.
        #[test]
        fn sends_stay_within_the_budget(
            rpm in 1u32..600,
            burst in 1u32..20,
            gaps_ms in proptest::collection::vec(0u64..3000, 1..60),
        ) {
            let pacer = AccountPacer::new(spec(rpm, burst));
            let start = Instant::now();
            let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
            let mut at = Duration::ZERO;
            let mut sends = Vec::new();
            for gap in gaps_ms {
                at += Duration::from_millis(gap);
                match pacer.admit("", start + at, wall + at) {
                    Admission::After(wait) => {
                        proptest::prop_assert!(wait <= MAX_PACING_WAIT);
                        sends.push(at + wait);
                    }
                    Admission::RateLimited(until) => proptest::prop_assert!(until > wall + at),
                }
            }
            sends.sort();
            let rate = f64::from(rpm) / 60.0;
            for (i, t) in sends.iter().enumerate() {
                // i + 1 requests sent by time t.
                let budget = f64::from(burst) + rate * t.as_secs_f64() + 1e-6;
                proptest::prop_assert!((i + 1) as f64 <= budget, "{} sends by {:?}, budget {}", i + 1, t, budget);
            }
        }
    }

    #[test]
    fn requests_in_flight_count_against_the_remaining_header() {
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let pacer = AccountPacer::new(RateLimitSpec { requests_per_minute: 60, burst: 100 });
        for _ in 0..10 {
            assert_eq!(pacer.admit("", t0, w0), Admission::After(Duration::ZERO));
        }
        // The first answer says 5 remain, but 9 other requests are still in flight: nothing
        // more may be sent until answers or the refill say otherwise.
        let headers = RateLimitHeaders { limit: Some(100), remaining: Some(5), reset: None, window: None };
        pacer.record_headers("", headers, t0, w0);
        pacer.finished("");
        assert!(matches!(pacer.admit("", t0, w0), Admission::RateLimited(_)));
        // Finished requests stop counting: with nothing in flight, a later answer with 5
        // remaining does not lower the bucket further, and the refill (1/s) covers the
        // deficit of 4 five seconds later.
        for _ in 0..9 {
            pacer.finished("");
        }
        pacer.record_headers("", RateLimitHeaders { remaining: Some(5), ..headers }, t0, w0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(pacer.admit("", later, w0), Admission::After(Duration::ZERO));
        assert_eq!(pacer.blocked("", w0), None);
        pacer.block_until(w0 + Duration::from_secs(30));
        assert_eq!(pacer.blocked("", w0), Some(w0 + Duration::from_secs(30)));
        assert_eq!(pacer.blocked("", w0 + Duration::from_secs(30)), None);
    }
}
