//! The cleanup finalizer (docs/controller.md, "Deletion"): present only while `deletionPolicy` is
//! `Delete`, so that deleting an `Orphan` Connection never blocks. Patches carry the
//! resourceVersion they were computed from (see [`set`]).

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::context::FIELD_MANAGER;
use crate::api::Connection;

/// Held by a `deletionPolicy: Delete` Connection until its managed keys are removed
/// upstream.
pub const FINALIZER: &str = "connection-operator.dev/cleanup";

pub fn has_finalizer(conn: &Connection) -> bool {
    conn.finalizers().iter().any(|f| f == FINALIZER)
}

/// Add the finalizer (no-op when present).
pub async fn add(api: &Api<Connection>, conn: &Connection) -> Result<(), kube::Error> {
    if has_finalizer(conn) {
        return Ok(());
    }
    let mut finalizers = conn.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    set(api, conn, finalizers).await
}

/// Remove the finalizer (no-op when absent), letting a deleting Connection go.
pub async fn remove(api: &Api<Connection>, conn: &Connection) -> Result<(), kube::Error> {
    if !has_finalizer(conn) {
        return Ok(());
    }
    let finalizers: Vec<String> = conn.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    set(api, conn, finalizers).await
}

/// A merge patch of the whole list, carrying `resourceVersion` as a precondition: the API
/// server answers 409 if the object changed since it was read, so another controller's
/// finalizer is never clobbered; the reconcile then retries with a fresh object.
async fn set(api: &Api<Connection>, conn: &Connection, finalizers: Vec<String>) -> Result<(), kube::Error> {
    let body = json!({"metadata": {"resourceVersion": conn.resource_version(), "finalizers": finalizers}});
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..Default::default() };
    api.patch(&conn.name_any(), &params, &Patch::Merge(body)).await.map(drop)
}
