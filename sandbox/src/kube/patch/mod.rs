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
//!
//! # Server-side apply: what is emulated
//! Modelled on structured-merge-diff v4 (`merge.Updater`) and kube-apiserver's field manager:
//! - field sets as kube-apiserver computes them (`ToFieldSet`, `Compare`), encoded as
//!   `fieldsV1` byte-for-byte in the same order (`f:`, `k:{...}`, `v:...`, `"."` entries);
//! - list types from the CRD schema (atomic by default, `set`, `map` with keys) and map
//!   types (`x-kubernetes-map-type: atomic`); untyped (`x-kubernetes-preserve-unknown-fields`)
//!   values merge maps granularly and lists atomically; a custom resource's `metadata` is
//!   typed as ObjectMeta (finalizers a set, ownerReferences keyed by uid, labels a map);
//! - built-in kinds use the list types and merge keys kube-apiserver publishes
//!   (`builtin.rs`, `builtin_fields.json`); other built-in lists are atomic;
//! - merge order of keyed lists, pruning of fields the applier stopped applying unless
//!   someone else owns them, conflicts with every other manager's changed fields (409 listing
//!   each field, exact kube-apiserver message), `force` moving ownership, shared ownership
//!   on equal values, `Update` entries for every other write (one per manager, operation,
//!   apiVersion and subresource; appliers regardless of apiVersion), entries sorted as
//!   kube-apiserver sorts them, timestamps moved only when the write changes something;
//! - reset fields: a `/status` write owns only `status` and `metadata`, any other write never
//!   owns `status` (also for a custom resource without a status subresource, whose status
//!   kube-apiserver would track: the store knows, these functions don't); `apiVersion`,
//!   `kind`, `metadata.name` & co. are never recorded;
//! - `before-first-apply`: applying to an object without managed fields first gives its
//!   current fields to that manager; updates to such an object stay untracked;
//! - managed fields sent with an update replace the stored ones; `[]` or `[{}]` clears them;
//!   an applied configuration must not carry them;
//! - more than 10 `Update` entries: the oldest fold into `ancient-changes`;
//! - a server-side apply by `kubectl` rewrites an existing `last-applied-configuration`
//!   annotation (`lastAppliedUpdater`) and may take, without `force`, the fields that
//!   annotation still describes (`lastAppliedManager`);
//! - a create of a built-in kind is compared with the kind's zero value (`builtin.rs`), so
//!   `f:spec` carries no `"."` where kube-apiserver's doesn't.
//!
//! Not emulated: version conversion of field sets (every apiVersion of a kind is treated as
//! the same schema), unions/discriminators, `x-kubernetes-embedded-resource` metadata
//! typing, and validation of the applied configuration against the schema (the store's CRD engine
//! validates the result). Like structured-merge-diff, nobody owns an empty list or map in an
//! applied configuration, and nulls are merged as nulls (the CRD engine prunes them).
//!
//! # Strategic merge patch
//! apimachinery's `strategicpatch` for the merge keys in `builtin.rs`, including its list
//! ordering (`normalizeElementOrder`) and error texts. Values the patch adds where the live
//! object has nothing are stored without nulls and directives, which is what the Go-struct
//! round trip of a built-in object leaves of them.

mod apply;
mod builtin;
mod fieldset;
mod json_patch;
mod last_applied;
mod managed_fields;
mod merge;
mod schema;
mod strategic;
mod typed;

use serde_json::Value;

/// Message of the 422 Status kube-apiserver answers when a JSON patch does not apply (it
/// builds it with `NewGenericServerResponse`); the `PatchError::Invalid` text is then the
/// Status' single `details.causes[].message`.
pub const JSON_PATCH_REJECTED_MESSAGE: &str = "the server rejected our request due to an error in our request";

/// Status cause `type` kube-apiserver gives each apply conflict.
pub const CONFLICT_CAUSE_TYPE: &str = "FieldManagerConflict";

/// Why a patch could not be applied; the store maps each variant to its HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// 400 BadRequest: the patch document itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 422 Invalid: a JSON patch operation that does not apply (a failed `test`, a missing
    /// path); only `json_patch` returns it. The Status message is
    /// `JSON_PATCH_REJECTED_MESSAGE`, this text its cause.
    #[error("{0}")]
    Invalid(String),
    /// 409 Conflict: server-side apply touched fields owned by other managers (no force).
    /// Displays as kube-apiserver's Status message; each `Conflict` is one Status cause
    /// (`type: FieldManagerConflict`, `message: cause`, `field: field`).
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<Conflict>),
}

/// One field owned by another manager, e.g. `.spec.replicas` owned by `kubectl-client-side-apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// The field path as kube-apiserver prints it, e.g. `.spec.replicas`,
    /// `.status.conditions[type="Ready"].status`.
    pub field: String,
    /// The Status cause message, e.g. `conflict with "kubectl-client-side-apply" using apps/v1`.
    pub cause: String,
}

/// kube-apiserver's conflict Status message (`getConflictMessage`).
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!("Apply failed with 1 conflict: {}: {}", only.cause, only.field);
    }
    // Grouped by manager, managers sorted; the causes already are.
    let mut lines = Vec::new();
    let mut current: Option<&str> = None;
    for c in conflicts {
        if current != Some(c.cause.as_str()) {
            let who = c.cause.strip_prefix("conflict with ").unwrap_or(&c.cause);
            lines.push(format!("conflicts with {who}:"));
            current = Some(c.cause.as_str());
        }
        lines.push(format!("- {}", c.field));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Operation recorded in a `managedFields` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

/// `application/merge-patch+json` (RFC 7386). A patch that is not a JSON object is a 400.
pub fn merge_patch(live: &Value, patch: &Value) -> Result<Value, PatchError> {
    merge::merge_patch(live, patch)
}

/// `application/json-patch+json` (RFC 6902).
pub fn json_patch(live: &Value, patch: &Value) -> Result<Value, PatchError> {
    json_patch::json_patch(live, patch)
}

/// Strategic merge patch; only ever called for built-in kinds (custom resources get 415).
pub fn strategic_merge_patch(live: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    strategic::strategic_merge_patch(live, patch, kind)
}

/// Server-side apply of `applied` by `manager` (`subresource` = Some("status") for /status).
/// `live` is None when the object does not exist yet (the apply creates it). `now` is the
/// RFC 3339 time (seconds precision, `Z`) recorded in the manager's entry.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    schema: Option<&Value>,
    now: &str,
) -> Result<Value, PatchError> {
    apply::server_side_apply(live, applied, manager, subresource, force, schema, now)
}

/// The OpenAPI extensions (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
/// `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`, `x-kubernetes-map-type`)
/// of the field at `path` of built-in `kind`, for the OpenAPI documents: `path` is dotted
/// from the object root with `[]` for list items, e.g. `spec.template.spec.containers[].env`.
/// Empty for fields without any. They come from the tables the patch engines use, so what
/// kubectl reads matches what the server does.
pub fn builtin_field_extensions(kind: &str, path: &str) -> serde_json::Map<String, Value> {
    builtin::openapi_extensions(kind, path)
}

/// The x-kubernetes-* extensions kube-apiserver publishes on OpenAPI component `name` (key
/// "") and its properties; `None` for a component it does not publish.
pub fn builtin_component_extensions(name: &str) -> Option<&'static serde_json::Map<String, Value>> {
    builtin::component_extensions(name)
}

/// Record in `new.metadata.managedFields` that `manager` set the fields that differ between
/// `old` and `new` with a non-apply write (create, update, merge/JSON/strategic patch).
/// `old` is None for a create.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    schema: Option<&Value>,
    now: &str,
) {
    apply::record_update(old, new, manager, subresource, schema, now)
}
