//! Rate limiters: a fixed window (Nango: rate-limiter-flexible with `duration: 60`) and a
//! sliding window (Datagrid), as docs/providers.md describes them. Pure: every call takes
//! the current time, so the arithmetic is unit-tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How requests are counted within a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// The window starts at the first request and resets `window` seconds later; requests
    /// over the limit still consume points (as rate-limiter-flexible does).
    Fixed,
    /// Only requests accepted during the last `window` seconds count; rejected ones do not.
    Sliding,
}

/// A limit: `limit` requests per `window_seconds`. `limit == 0` disables limiting.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    pub limit: u32,
    #[serde(default = "default_window")]
    pub window_seconds: f64,
}

fn default_window() -> f64 {
    60.0
}

impl RateLimit {
    pub const fn per_minute(limit: u32) -> Self {
        RateLimit { limit, window_seconds: 60.0 }
    }

    pub fn is_valid(&self) -> bool {
        self.window_seconds.is_finite() && self.window_seconds > 0.0
    }
}

/// The bucket a request is counted in, chosen by the provider (see `Provider::bucket`).
#[derive(Clone, Debug)]
pub struct Bucket {
    /// E.g. the account for Nango, teamspace + route + method for Datagrid.
    pub key: String,
    pub kind: WindowKind,
    /// The provider's documented default for this bucket; an admin override replaces it.
    pub default: RateLimit,
}

/// The outcome of counting one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// When the window (fixed) or the oldest counted request (sliding) expires, unix seconds.
    pub reset_at: f64,
    /// Milliseconds until a request can be accepted again (0 when `remaining > 0`).
    pub ms_before_next: u64,
    /// The effective window length in seconds (Are.na reports it as `X-RateLimit-Window`).
    pub window_seconds: f64,
}

#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, State>>,
}

enum State {
    Fixed { start: f64, consumed: u32 },
    Sliding { accepted: VecDeque<f64> },
}

impl Limiter {
    /// Count one request in `bucket` at time `now` (unix seconds) under `limit`.
    pub fn hit(&self, bucket: &Bucket, limit: RateLimit, now: f64) -> Decision {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let window = limit.window_seconds;
        let state = buckets.entry(bucket.key.clone()).or_insert_with(|| match bucket.kind {
            WindowKind::Fixed => State::Fixed { start: now, consumed: 0 },
            WindowKind::Sliding => State::Sliding { accepted: VecDeque::new() },
        });
        match state {
            State::Fixed { start, consumed } => {
                if now >= *start + window {
                    *start = now;
                    *consumed = 0;
                }
                *consumed = consumed.saturating_add(1);
                let reset_at = *start + window;
                Decision {
                    allowed: *consumed <= limit.limit,
                    limit: limit.limit,
                    remaining: limit.limit.saturating_sub(*consumed),
                    reset_at,
                    ms_before_next: millis(reset_at - now),
                    window_seconds: window,
                }
            }
            State::Sliding { accepted } => {
                while accepted.front().is_some_and(|&t| t + window <= now) {
                    accepted.pop_front();
                }
                let allowed = (accepted.len() as u64) < u64::from(limit.limit);
                if allowed {
                    accepted.push_back(now);
                }
                let used = u32::try_from(accepted.len()).unwrap_or(u32::MAX);
                let remaining = limit.limit.saturating_sub(used);
                let reset_at = accepted.front().map_or(now + window, |&t| t + window);
                Decision {
                    allowed,
                    limit: limit.limit,
                    remaining,
                    reset_at,
                    ms_before_next: if remaining == 0 { millis(reset_at - now) } else { 0 },
                    window_seconds: window,
                }
            }
        }
    }

    /// Forget all counts (after the limit configuration changes).
    pub fn clear(&self) {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn millis(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1000.0).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(kind: WindowKind) -> Bucket {
        Bucket { key: "k".into(), kind, default: RateLimit::per_minute(2) }
    }

    #[test]
    fn fixed_window_counts_rejected_requests_and_resets_after_the_window() {
        let limiter = Limiter::default();
        let b = bucket(WindowKind::Fixed);
        let limit = RateLimit { limit: 2, window_seconds: 10.0 };
        let d1 = limiter.hit(&b, limit, 100.0);
        assert!(d1.allowed);
        assert_eq!(d1.remaining, 1);
        assert_eq!(d1.reset_at, 110.0);
        assert!(limiter.hit(&b, limit, 101.0).allowed);
        let d3 = limiter.hit(&b, limit, 109.5);
        assert!(!d3.allowed);
        assert_eq!(d3.remaining, 0);
        assert_eq!(d3.ms_before_next, 500);
        let d4 = limiter.hit(&b, limit, 110.0);
        assert!(d4.allowed);
        assert_eq!(d4.reset_at, 120.0);
    }

    #[test]
    fn sliding_window_frees_slots_as_requests_age_out() {
        let limiter = Limiter::default();
        let b = bucket(WindowKind::Sliding);
        let limit = RateLimit { limit: 2, window_seconds: 10.0 };
        assert_eq!(limiter.hit(&b, limit, 100.0).remaining, 1);
        let d2 = limiter.hit(&b, limit, 105.0);
        assert!(d2.allowed);
        assert_eq!(d2.remaining, 0);
        assert_eq!(d2.ms_before_next, 5000);
        let d3 = limiter.hit(&b, limit, 106.0);
        assert!(!d3.allowed);
        assert_eq!(d3.reset_at, 110.0);
        // The request at 100 ages out at 110; the rejected one at 106 never counted.
        let d4 = limiter.hit(&b, limit, 110.0);
        assert!(d4.allowed);
        assert_eq!(d4.remaining, 0);
        assert_eq!(d4.reset_at, 115.0);
    }

    #[test]
    fn buckets_are_independent() {
        let limiter = Limiter::default();
        let limit = RateLimit { limit: 1, window_seconds: 10.0 };
        let a = Bucket { key: "a".into(), kind: WindowKind::Fixed, default: limit };
        let b = Bucket { key: "b".into(), ..a.clone() };
        assert!(limiter.hit(&a, limit, 0.0).allowed);
        assert!(!limiter.hit(&a, limit, 1.0).allowed);
        assert!(limiter.hit(&b, limit, 1.0).allowed);
    }
}
