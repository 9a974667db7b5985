//! Per-object exponential backoff for retryable failures, kept by the operator because
//! kube-runtime's `error_policy` never learns about successes, so it cannot reset a delay
//! (kaniop keeps one backoff per ObjectRef the same way): 1 s doubling to 5 min, with
//! jitter, reset on success (docs/controller.md, "Reconcile").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

/// Backoff bounds. Production uses [`BackoffPolicy::default`]; tests may shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy { base: Duration::from_secs(1), max: Duration::from_secs(300) }
    }
}

impl BackoffPolicy {
    /// The delay before attempt `failures + 1`, without jitter: `base * 2^(failures - 1)`,
    /// capped at `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exponent).min(self.max)
    }
}

/// Consecutive failure counts per object (keyed by `namespace/name`).
#[derive(Debug, Default)]
pub struct Backoffs {
    policy: BackoffPolicy,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoffs {
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoffs { policy, failures: Mutex::default() }
    }

    /// Record one more failure of `key` and return how long to wait before retrying: the
    /// exponential delay plus up to 10% jitter, so that many objects failing together (a
    /// provider outage) do not retry in lockstep.
    pub fn next(&self, key: &str) -> Duration {
        let failures = {
            let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = self.policy.delay(failures);
        let jitter_ms = (delay.as_millis() as u64 / 10).max(1);
        delay + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }

    /// Forget the failures of `key` after a success (or when it is deleted).
    pub fn reset(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// How many consecutive failures `key` has had.
    #[cfg(test)]
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_five_minutes() {
        let p = BackoffPolicy::default();
        let secs: Vec<u64> = (1..=11).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_success_resets() {
        let b = Backoffs::new(BackoffPolicy { base: Duration::from_secs(10), max: Duration::from_secs(100) });
        let first = b.next("ns/a");
        assert!(first >= Duration::from_secs(10) && first <= Duration::from_secs(11), "{first:?}");
        let second = b.next("ns/a");
        assert!(second >= Duration::from_secs(20) && second <= Duration::from_secs(22), "{second:?}");
        assert_eq!(b.failures("ns/a"), 2);
        assert_eq!(b.failures("ns/b"), 0, "per object");
        b.reset("ns/a");
        assert_eq!(b.failures("ns/a"), 0);
        assert!(b.next("ns/a") <= Duration::from_secs(11));
    }
}
