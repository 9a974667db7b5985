//! Deterministic status building (linkerd2 policy-controller style): the whole status is
//! computed from the outcome of one reconcile and the previous status, then compared with
//! the current one ignoring `lastTransitionTime`; it is written only when it differs, so in
//! steady state a drift check costs zero Kubernetes writes (an unchanged status is never
//! written, so the operator's own writes never wake it). Messages are stable: no request
//! ids, no timestamps except retry times.

use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{RATE_LIMITED, READY, Reason, SYNCED, condition};
use crate::api::{ConnectionStatus, ProviderStatus};
use crate::providers::{ProviderError, RateLimitSnapshot};

/// Reason of `RateLimited=True`: the provider said when to retry (docs/api.md, "Status").
pub const RETRY_AFTER: &str = "RetryAfter";
/// Reason of `RateLimited=False`: conditions are always present (Kubernetes API
/// conventions: set them on the first visit), and a condition needs a reason.
pub const NOT_RATE_LIMITED: &str = "NotRateLimited";
/// Reason of a Provider's `Ready=True`.
pub const CREDENTIALS_RESOLVED: &str = "CredentialsResolved";

/// What one reconcile of a Connection found.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Upstream matches the spec (`wrote`: after a write made by this reconcile).
    InSync { wrote: bool },
    /// Observe mode: these keys differ upstream; nothing was written.
    Drift { keys: Vec<String> },
    /// `spec.suspend`: no upstream call was made.
    Suspended,
    /// Deletion in progress (cleanup upstream pending).
    Deleting,
    /// A failure with its Ready reason and a stable message; `retry_at` when rate limited.
    Failed { reason: Reason, message: String, retry_at: Option<SystemTime> },
    /// Not attempted: the provider account's reconcile slots were all busy. Status is not
    /// touched; the Connection is requeued shortly.
    Deferred,
    /// Not attempted: the Connection's account belongs to another shard (`--shards`), whose
    /// process writes everything about it. Nothing is written.
    OtherShard,
}

impl Outcome {
    /// The failure outcome of a provider error, with the class's reason
    /// ([`ProviderError::reason`]) and, when rate limited, when to retry.
    pub fn from_provider_error(e: &ProviderError) -> Self {
        let retry_at = match e {
            ProviderError::RateLimited { retry_at } => Some(*retry_at),
            _ => None,
        };
        Outcome::Failed { reason: e.reason(), message: e.to_string(), retry_at }
    }

    /// The `Ready` reason this outcome shows.
    pub fn reason(&self) -> Reason {
        match self {
            Outcome::InSync { .. } => Reason::InSync,
            Outcome::Drift { .. } => Reason::DriftDetected,
            Outcome::Suspended => Reason::Suspended,
            Outcome::Deleting => Reason::Deleting,
            Outcome::Failed { reason, .. } => *reason,
            // Never written to status (see `Deferred`); the closest reason for logs.
            Outcome::Deferred => Reason::RateLimited,
            // Never written to status either; nothing is wrong with the Connection.
            Outcome::OtherShard => Reason::InSync,
        }
    }
}

/// Everything status is built from, besides the previous status.
#[derive(Clone, Debug)]
pub struct Observation {
    pub generation: Option<i64>,
    pub outcome: Outcome,
    /// The keys owned after this reconcile; `None` keeps the previous list (no plan made).
    pub managed_keys: Option<Vec<String>>,
    /// Which of `managed_keys` come from Secrets (names only); given with `managed_keys`.
    pub secret_keys: Option<Vec<String>>,
    /// The `reconcile-requested-at` annotation handled by this reconcile, if any.
    pub requested_at: Option<String>,
}

/// Build the Connection status for `observation`, keeping from `previous` what this
/// reconcile did not learn anew.
pub fn connection_status(
    previous: Option<&ConnectionStatus>,
    observation: &Observation,
    now: Timestamp,
) -> ConnectionStatus {
    let default = ConnectionStatus::default();
    let previous = previous.unwrap_or(&default);
    let now = truncate(now);
    let generation = observation.generation;
    let outcome = &observation.outcome;

    let (ready, ready_message) = match outcome {
        Outcome::InSync { .. } => (true, "upstream matches the spec".to_string()),
        Outcome::Drift { keys } => (false, format!("{} key(s) differ upstream: {}", keys.len(), keys.join(", "))),
        Outcome::Suspended => (false, "reconciliation is suspended (spec.suspend)".to_string()),
        Outcome::Deferred => (false, "waiting for a free slot of the provider account".to_string()),
        Outcome::OtherShard => (false, "reconciled by another shard".to_string()),
        Outcome::Deleting => (false, "removing the managed keys upstream before deletion".to_string()),
        Outcome::Failed { message, .. } => (false, message.clone()),
    };
    // Synced: whether the last attempt itself succeeded (an Observe run that found drift
    // did; a suspended Connection made no attempt).
    let (synced, synced_message) = match outcome {
        Outcome::InSync { .. } | Outcome::Drift { .. } => (true, "the last reconcile succeeded".to_string()),
        Outcome::Suspended | Outcome::Deleting | Outcome::Deferred | Outcome::OtherShard => {
            (false, ready_message.clone())
        }
        Outcome::Failed { message, .. } => (false, message.clone()),
    };
    let retry_at = match outcome {
        Outcome::Failed { retry_at: Some(at), .. } => Some(*at),
        _ => None,
    };
    let rate_limited = match retry_at {
        Some(at) => (
            true,
            RETRY_AFTER,
            format!("the provider account is rate limited; retrying at {}", httpdate::fmt_http_date(at)),
        ),
        None => (false, NOT_RATE_LIMITED, "the provider account is not rate limited".to_string()),
    };

    let reason = outcome.reason().as_str();
    let conditions = vec![
        condition(&previous.conditions, READY, ready, reason, ready_message, generation, now),
        condition(&previous.conditions, SYNCED, synced, reason, synced_message, generation, now),
        condition(&previous.conditions, RATE_LIMITED, rate_limited.0, rate_limited.1, rate_limited.2, generation, now),
    ];

    let drift = match outcome {
        Outcome::Drift { keys } => keys.clone(),
        Outcome::InSync { .. } => Vec::new(),
        // A failed or skipped attempt learnt nothing new about upstream.
        _ => previous.drift.clone(),
    };
    // "Last time upstream was changed or found changed" (docs/api.md, "Status"): a write, newly
    // found drift, or the first time the Connection was seen in sync.
    let found_changed = matches!(outcome, Outcome::Drift { keys } if *keys != previous.drift);
    let first_sync = matches!(outcome, Outcome::InSync { .. }) && previous.last_sync_time.is_none();
    let last_sync_time = if matches!(outcome, Outcome::InSync { wrote: true }) || found_changed || first_sync {
        Some(Time(now))
    } else {
        previous.last_sync_time.clone()
    };

    ConnectionStatus {
        observed_generation: generation,
        conditions,
        managed_keys: observation.managed_keys.clone().unwrap_or_else(|| previous.managed_keys.clone()),
        secret_keys: match (&observation.managed_keys, &observation.secret_keys) {
            (Some(_), Some(secret)) => secret.clone(),
            (Some(_), None) => Vec::new(),
            (None, _) => previous.secret_keys.clone(),
        },
        drift,
        last_sync_time,
        retry_at: retry_at.map(|at| Time(truncate(Timestamp::try_from(at).unwrap_or(now)))),
        last_handled_reconcile_at: observation
            .requested_at
            .clone()
            .or_else(|| previous.last_handled_reconcile_at.clone()),
    }
}

/// How a Provider account looks after one reconcile of a Connection using it.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderHealth {
    /// Credentials resolve and the provider accepted them (or was not asked).
    Ready,
    /// The Secret or its key is missing or unusable.
    CredentialsMissing(String),
    /// The provider refused the credentials (401/403).
    Unauthorized(String),
}

/// Build a Provider's status: `Ready` and the rate-limit snapshot.
pub fn provider_status(
    previous: Option<&ProviderStatus>,
    generation: Option<i64>,
    health: &ProviderHealth,
    snapshot: Option<RateLimitSnapshot>,
    now: Timestamp,
) -> ProviderStatus {
    let default = ProviderStatus::default();
    let previous = previous.unwrap_or(&default);
    let now = truncate(now);
    let (ready, reason, message) = match health {
        ProviderHealth::Ready => (true, CREDENTIALS_RESOLVED, "the credentials resolve and were accepted".to_string()),
        ProviderHealth::CredentialsMissing(m) => (false, Reason::ProviderNotReady.as_str(), m.clone()),
        ProviderHealth::Unauthorized(m) => (false, Reason::Unauthorized.as_str(), m.clone()),
    };
    // A snapshot with nothing seen yet keeps what the status said.
    let rate_limit = snapshot.and_then(|s| s.to_status()).or_else(|| previous.rate_limit.clone());
    ProviderStatus {
        observed_generation: generation,
        conditions: vec![condition(&previous.conditions, READY, ready, reason, message, generation, now)],
        rate_limit,
    }
}

/// Whether a Provider status must be written. `remaining` and `resetAt` move with every
/// request; rewriting the Provider for them would cost a Kubernetes write per reconcile,
/// so they are refreshed only along with a change that matters (a new block, a new limit,
/// a condition change).
pub fn provider_status_changed(current: Option<&ProviderStatus>, wanted: &ProviderStatus) -> bool {
    let essential = |s: &ProviderStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        if let Some(r) = &mut s.rate_limit {
            r.remaining = None;
            r.reset_at = None;
        }
        s
    };
    current.map(essential) != Some(essential(wanted))
}

/// Whether a Connection status must be written: any difference but `lastTransitionTime`.
pub fn connection_status_changed(current: Option<&ConnectionStatus>, wanted: &ConnectionStatus) -> bool {
    let normalise = |s: &ConnectionStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        }
        s.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
        s
    };
    current.map(normalise) != Some(normalise(wanted))
}

/// Kubernetes serialises `metav1.Time` with second precision; building with the same
/// precision keeps a rebuilt status equal to the one read back.
fn truncate(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn obs(outcome: Outcome) -> Observation {
        Observation {
            generation: Some(2),
            outcome,
            managed_keys: Some(vec!["a".into()]),
            secret_keys: None,
            requested_at: None,
        }
    }

    #[test]
    fn rebuilding_the_same_outcome_needs_no_write() {
        let first = connection_status(None, &obs(Outcome::InSync { wrote: true }), ts(100));
        assert_eq!(crate::api::conditions::find(&first.conditions, READY).unwrap().reason, "InSync");
        assert_eq!(first.last_sync_time, Some(Time(ts(100))));
        let again = connection_status(Some(&first), &obs(Outcome::InSync { wrote: false }), ts(200));
        assert!(!connection_status_changed(Some(&first), &again), "{again:?}");
        assert_eq!(again.last_sync_time, Some(Time(ts(100))));
    }

    #[test]
    fn transitions_keep_times_and_carry_generation() {
        let first = connection_status(None, &obs(Outcome::InSync { wrote: true }), ts(100));
        let e = ProviderError::Retryable { status: Some(503), message: "down".into() };
        let failed = connection_status(Some(&first), &obs(Outcome::from_provider_error(&e)), ts(200));
        let ready = crate::api::conditions::find(&failed.conditions, READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "UpstreamUnavailable"));
        assert_eq!(ready.last_transition_time, Time(ts(200)));
        let rl = crate::api::conditions::find(&failed.conditions, RATE_LIMITED).unwrap();
        assert_eq!(rl.last_transition_time, Time(ts(100)), "RateLimited stayed False");
        assert!(failed.conditions.iter().all(|c| c.observed_generation == Some(2)));
        assert!(connection_status_changed(Some(&first), &failed));
    }

    #[test]
    fn rate_limits_set_retry_at_and_observe_reports_drift() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let e = ProviderError::RateLimited { retry_at: at };
        let s = connection_status(None, &obs(Outcome::from_provider_error(&e)), ts(900));
        assert_eq!(s.retry_at, Some(Time(ts(1_000))));
        let rl = crate::api::conditions::find(&s.conditions, RATE_LIMITED).unwrap();
        assert_eq!((rl.status.as_str(), rl.reason.as_str()), ("True", RETRY_AFTER));
        let drift = connection_status(Some(&s), &obs(Outcome::Drift { keys: vec!["a".into()] }), ts(950));
        assert_eq!(drift.drift, ["a"]);
        assert_eq!(drift.retry_at, None);
        assert_eq!(drift.last_sync_time, Some(Time(ts(950))), "found changed");
    }

    #[test]
    fn provider_status_ignores_moving_counters() {
        let snap = RateLimitSnapshot { limit: Some(60), remaining: Some(10), reset_at: None, blocked_until: None };
        let a = provider_status(None, Some(1), &ProviderHealth::Ready, Some(snap), ts(10));
        let b = provider_status(
            Some(&a),
            Some(1),
            &ProviderHealth::Ready,
            Some(RateLimitSnapshot { remaining: Some(3), ..snap }),
            ts(20),
        );
        assert!(!provider_status_changed(Some(&a), &b));
        let c = provider_status(Some(&a), Some(1), &ProviderHealth::Unauthorized("no".into()), Some(snap), ts(30));
        assert!(provider_status_changed(Some(&a), &c));
    }
}
