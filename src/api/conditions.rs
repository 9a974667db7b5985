//! Condition types and reasons shared by `Connection` and `Provider` status, and the
//! deterministic builder of one condition.
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

/// The condition `type_` as it stands after this reconcile, given the `previous` list.
///
/// `lastTransitionTime` is kept from the previous entry of the same type while `status` is
/// unchanged, as the Kubernetes conventions require, so rebuilding the same state yields an
/// identical condition. `reason` is a string: Provider and `RateLimited` conditions use
/// reasons that are not [`Reason`]s.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = find(previous, type_)
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time,
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
        let first = condition(&[], READY, false, Reason::RateLimited.as_str(), "m", Some(1), ts(10));
        assert_eq!(first.last_transition_time, Time(ts(10)));
        let same =
            condition(std::slice::from_ref(&first), READY, false, Reason::RateLimited.as_str(), "m", Some(1), ts(20));
        assert_eq!(same, first, "rebuilding the same state yields the same condition");
        let other = condition(&[same], READY, false, Reason::Unauthorized.as_str(), "x", Some(1), ts(30));
        assert_eq!(other.last_transition_time, Time(ts(10)), "reason change is no transition");
        assert_eq!((other.reason.as_str(), other.message.as_str()), ("Unauthorized", "x"));
        let flipped = condition(&[other], READY, true, Reason::InSync.as_str(), "", Some(2), ts(40));
        assert_eq!(flipped.last_transition_time, Time(ts(40)));
        assert_eq!(flipped.observed_generation, Some(2));
        let elsewhere = condition(&[flipped], SYNCED, true, "x", "", Some(2), ts(50));
        assert_eq!(elsewhere.last_transition_time, Time(ts(50)), "another type's time is not borrowed");
    }
}
