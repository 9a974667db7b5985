//! Kubernetes Events, published on state transitions only (docs/controller.md, "Events"): a
//! Connection whose state does not change produces no Event, so steady state costs no
//! Kubernetes writes. The Event reason is the `Ready` reason (Stackable: the error category
//! becomes the Event reason). Notes carry status messages, never credentials.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

use crate::api::conditions::Reason;

/// Reason of the Event listing fields the provider cannot remove on deletion.
pub const ORPHANED: &str = "Orphaned";
/// Reason of the Event when upstream was written to match the spec.
pub const DRIFT_CORRECTED: &str = "DriftCorrected";
/// Reason of the Event when deletion proceeds without upstream cleanup.
pub const CLEANUP_SKIPPED: &str = "CleanupSkipped";

/// The Event type of a transition to `reason`.
pub fn event_type(reason: Reason) -> EventType {
    match reason {
        Reason::InSync | Reason::Suspended | Reason::Deleting => EventType::Normal,
        _ => EventType::Warning,
    }
}

/// Publish one Event; a failure is logged, never fatal (an Event is informational).
pub async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event =
        Event { type_, reason: reason.to_string(), note: Some(note), action: action.to_string(), secondary: None };
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, reason, "cannot publish an Event");
    }
}
