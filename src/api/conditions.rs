//! Condition types and reasons shared by `Connection` and `Provider` status, and the
//! deterministic helper that sets one condition in a list.
//!
//! Conditions follow the Kubernetes API conventions for `metav1.Condition`: one entry per
//! `type`, `lastTransitionTime` changes only when `status` changes, and messages are stable
//! (no request ids, no timestamps except retry times; docs/api.md, "Status") so an
//! unchanged failure does not rewrite status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// `Ready`: the upstream connection matches the spec (or, for a Provider, its credentials
/// resolve and the last authentication succeeded).
pub const READY: &str = "Ready";
/// `Synced`: outcome of the last reconcile attempt.
pub const SYNCED: &str = "Synced";
/// `RateLimited`: the provider account is blocked until `status.retryAt`.
pub const RATE_LIMITED: &str = "RateLimited";

/// Reasons used on the `Ready` condition (docs/api.md, "Status").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    InSync,
    DriftDetected,
    Suspended,
    ProviderNotFound,
    ProviderNotReady,
    ProviderMismatch,
    InvalidSpec,
    UpstreamNotFound,
    Unauthorized,
    RateLimited,
    UpstreamUnavailable,
    Deleting,
    /// An older Connection of the same upstream connection already owns a declared key.
    Conflict,
    /// A ConfigMap or Secret of `metadataFrom`/`configFrom` that is not `optional` is
    /// missing (or cannot be read).
    ReferenceNotFound,
}

impl Reason {
    /// The CamelCase reason string written to the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InSync => "InSync",
            Reason::DriftDetected => "DriftDetected",
            Reason::Suspended => "Suspended",
            Reason::ProviderNotFound => "ProviderNotFound",
            Reason::ProviderNotReady => "ProviderNotReady",
            Reason::ProviderMismatch => "ProviderMismatch",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::UpstreamNotFound => "UpstreamNotFound",
            Reason::Unauthorized => "Unauthorized",
            Reason::RateLimited => "RateLimited",
            Reason::UpstreamUnavailable => "UpstreamUnavailable",
            Reason::Deleting => "Deleting",
            Reason::Conflict => "Conflict",
            Reason::ReferenceNotFound => "ReferenceNotFound",
        }
    }
}

/// Set (insert or update) the condition `type_` in `conditions`.
///
/// `lastTransitionTime` is kept from the existing entry when `status` is unchanged, as the
/// Kubernetes conventions require, so rebuilding the same state yields an identical list.
/// Returns true when anything other than the transition time changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: Reason,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let changed = existing.status != status
                || existing.reason != reason.as_str()
                || existing.message != message
                || existing.observed_generation != observed_generation;
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status;
            existing.reason = reason.as_str().to_string();
            existing.message = message;
            existing.observed_generation = observed_generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_string(),
                status,
                reason: reason.as_str().to_string(),
                message,
                observed_generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

/// Find the condition `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let mut list = Vec::new();
        assert!(set_condition(&mut list, READY, false, Reason::RateLimited, "m", Some(1), ts(10)));
        assert!(!set_condition(&mut list, READY, false, Reason::RateLimited, "m", Some(1), ts(20)));
        assert_eq!(list[0].last_transition_time, Time(ts(10)));
        assert!(set_condition(&mut list, READY, false, Reason::Unauthorized, "x", Some(1), ts(30)));
        assert_eq!(list[0].last_transition_time, Time(ts(10)), "reason change is no transition");
        assert!(set_condition(&mut list, READY, true, Reason::InSync, "", Some(2), ts(40)));
        assert_eq!(list[0].last_transition_time, Time(ts(40)));
        assert_eq!(list.len(), 1);
        assert_eq!(find(&list, READY).unwrap().reason, "InSync");
    }
}
