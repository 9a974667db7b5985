//! Patch engines, pure functions over JSON: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902, with Kubernetes' leniencies), strategic merge patch for built-in kinds, and
//! server-side apply with `managedFields` bookkeeping.
//!
//! INTERFACE CONTRACT with the object store (`super`), keep the signatures stable:
//! - every function takes the live object and returns the new object; the store handles
//!   resourceVersion, generation, subresource scoping, admission and storage;
//! - `server_side_apply` returns an object *equal* (==) to `live` when the apply changes
//!   nothing, including `managedFields`, so the store can make it a no-op (same
//!   resourceVersion, no watch event);
//! - `record_update` records ownership for non-apply writes (operation `Update`).
//! - `schema` is the CRD version's `openAPIV3Schema` (for `x-kubernetes-list-type` /
//!   `x-kubernetes-list-map-keys` / `x-kubernetes-map-type`), or `None` for a built-in kind.

use serde_json::Value;

/// Why a patch could not be applied; the store maps each variant to its HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// 400 BadRequest: the patch document itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 422 Invalid: e.g. a failed JSON-patch `test`, a path that does not exist.
    #[error("{0}")]
    Invalid(String),
    /// 409 Conflict: server-side apply touched fields owned by other managers (no force).
    #[error("Apply failed with {} conflict(s)", .0.len())]
    Conflict(Vec<Conflict>),
}

/// One field owned by another manager, e.g. `.spec.replicas` owned by `kubectl-client-side-apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

/// Operation recorded in a `managedFields` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

pub fn merge_patch(live: &Value, patch: &Value) -> Result<Value, PatchError> {
    let mut out = live.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

pub fn json_patch(live: &Value, patch: &Value) -> Result<Value, PatchError> {
    let _ = (live, patch);
    Err(PatchError::BadRequest("json patch is not implemented yet".into()))
}

/// Strategic merge patch; only ever called for built-in kinds (custom resources get 415).
pub fn strategic_merge_patch(live: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    let _ = kind;
    merge_patch(live, patch)
}

/// Server-side apply of `applied` by `manager` (`subresource` = Some("status") for /status).
/// `live` is None when the object does not exist yet (the apply creates it).
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    schema: Option<&Value>,
    now: &str,
) -> Result<Value, PatchError> {
    let _ = (live, applied, manager, subresource, force, schema, now);
    Err(PatchError::BadRequest("server-side apply is not implemented yet".into()))
}

/// Record in `new.metadata.managedFields` that `manager` set the fields that differ between
/// `old` and `new` with a non-apply write (create, update, merge/JSON/strategic patch).
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    schema: Option<&Value>,
    now: &str,
) {
    let _ = (old, new, manager, subresource, schema, now);
}
