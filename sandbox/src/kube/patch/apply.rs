//! Server-side apply and ownership bookkeeping for other writes, after structured-merge-diff's
//! `merge.Updater` (`Apply`, `Update`, `prune`) and kube-apiserver's field manager chain
//! (`managedFieldsUpdater`, `skipNonAppliedManager`, `stripMetaManager`).

use serde_json::{Map, Value};

use super::builtin;
use super::fieldset::{FieldSet, path_string, same_value};
use super::last_applied;
use super::managed_fields::{self, Entry};
use super::schema::Node;
use super::typed::{self, Comparison};
use super::{Conflict, Operation, PatchError};

/// Manager that takes over the fields of an object that had no managed fields when it is
/// first applied to (kube-apiserver's `before-first-apply`).
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

fn text<'v>(obj: &'v Value, field: &str) -> &'v str {
    obj.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    managed_fields::strip(&mut out);
    out
}

/// Ownership changes of one write of `changed`/`removed` fields: every other entry loses
/// them. Returns, per entry index, the fields it loses that were `changed` (the conflicts).
fn take_from_others(entries: &mut [Entry], own: Option<usize>, cmp: &Comparison) -> Vec<(usize, FieldSet)> {
    let changed = cmp.changed();
    let mut lost = Vec::new();
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) == own {
            continue;
        }
        let conflicting = entry.set.intersection(&changed);
        entry.set = entry.set.difference(&changed).difference(&cmp.removed);
        if !conflicting.is_empty() {
            lost.push((i, conflicting));
        }
    }
    lost
}

/// Records an `Update` by `manager`: what changed from `old` to `new` becomes its, and no
/// longer anyone else's; fields removed are no longer anyone's.
fn update_entries(
    entries: &mut Vec<Entry>,
    old: &Value,
    new: &Value,
    node: &Node<'_>,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) {
    let api_version = text(new, "apiVersion").to_owned();
    let raw = typed::compare(old, new, node);
    let cmp = Comparison {
        added: managed_fields::filter(&raw.added, subresource),
        modified: managed_fields::filter(&raw.modified, subresource),
        removed: managed_fields::filter(&raw.removed, subresource),
    };
    take_from_others(entries, None, &cmp);
    let changed = cmp.changed();
    // The timestamp moves only when this write took fields (`managedFieldsUpdater`).
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.is(manager, Operation::Update, &api_version, subresource)) {
            Some(entry) => {
                entry.set = entry.set.union(&changed);
                entry.time = Some(now.to_owned());
            }
            None => entries.push(Entry {
                manager: manager.to_owned(),
                operation: Operation::Update,
                api_version,
                time: Some(now.to_owned()),
                subresource: subresource.map(str::to_owned),
                set: changed,
            }),
        }
    }
    entries.retain(|e| !e.set.is_empty());
}

pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    schema: Option<&Value>,
    now: &str,
) {
    if managed_fields::is_reset(new) {
        managed_fields::strip(new);
        return;
    }
    // Managed fields sent with the write replace the stored ones (that is how a client
    // edits them), except through a subresource or when they do not decode.
    let sent = if subresource.is_none() { managed_fields::decode(new).ok() } else { None };
    let mut entries = match sent {
        Some(entries) if !entries.is_empty() => entries,
        _ => old.map(|o| managed_fields::decode(o).unwrap_or_default()).unwrap_or_default(),
    };
    managed_fields::strip(new);
    // An existing object without managed fields stays untracked (`skipNonAppliedManager`).
    if old.is_some() && entries.is_empty() {
        return;
    }
    let old_value = match (old, schema) {
        (Some(o), _) => without_managed_fields(o),
        (None, None) => builtin::zero_object(text(new, "kind")),
        (None, Some(_)) => Value::Object(Map::new()),
    };
    let node = Node::root(schema, text(new, "kind"));
    update_entries(&mut entries, &old_value, new, &node, manager, subresource, now);
    managed_fields::cap_update_managers(&mut entries);
    managed_fields::encode_into(new, entries);
}

#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    schema: Option<&Value>,
    now: &str,
) -> Result<Value, PatchError> {
    if !applied.is_object() {
        return Err(PatchError::BadRequest("the applied configuration must be a JSON object".into()));
    }
    if manager.is_empty() {
        // kube-apiserver: "PATCH with apply requires fieldManager" (the store normally checks).
        return Err(PatchError::BadRequest("fieldManager is required for apply requests".into()));
    }
    if managed_fields::raw(applied).is_some_and(|m| !m.is_null()) {
        return Err(PatchError::BadRequest("metadata.managedFields must be nil".into()));
    }
    let kind = if text(applied, "kind").is_empty() {
        live.map(|l| text(l, "kind")).unwrap_or_default()
    } else {
        text(applied, "kind")
    };
    let node = Node::root(schema, kind);
    if let Some(why) = typed::config_error(applied, &node) {
        // kube-apiserver: `failed to create typed patch object (<ns>/<name>; <gvk>): <why>`.
        let api_version = text(applied, "apiVersion");
        let gv = if api_version.contains('/') { api_version.to_owned() } else { format!("/{api_version}") };
        let meta = applied.get("metadata").unwrap_or(&Value::Null);
        return Err(PatchError::BadRequest(format!(
            "failed to create typed patch object ({}/{}; {gv}, Kind={kind}): {why}",
            text(meta, "namespace"),
            text(meta, "name"),
        )));
    }

    let live_value = live.map(without_managed_fields).unwrap_or_else(|| Value::Object(Map::new()));
    let original_entries = match live {
        Some(l) => managed_fields::decode(l).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut entries = original_entries.clone();
    if live.is_some() && entries.is_empty() {
        // Whoever wrote the object before it was tracked owns what is there now.
        let zero = match schema {
            Some(_) => Value::Object(Map::new()),
            None => builtin::zero_object(kind),
        };
        update_entries(&mut entries, &zero, &live_value, &node, BEFORE_FIRST_APPLY, None, now);
    }

    let api_version = text(applied, "apiVersion").to_owned();
    // The applier's set keeps `metadata.name` & co. until after the prune, so that the
    // metadata they live in counts as owned (kube-apiserver strips them on the way out).
    let config_set = managed_fields::ignore_reset_fields(&typed::to_field_set(applied, &node), subresource);
    let own = match entries.iter().position(|e| e.is(manager, Operation::Apply, &api_version, subresource)) {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: manager.to_owned(),
                operation: Operation::Apply,
                api_version: api_version.clone(),
                // Timestamped below only if the apply changes the object (as kube-apiserver).
                time: None,
                subresource: subresource.map(str::to_owned),
                set: FieldSet::default(),
            });
            entries.len() - 1
        }
    };
    let last_set = std::mem::replace(&mut entries[own].set, config_set);
    entries[own].api_version = api_version;

    let merged = typed::merge(&live_value, applied, &node);
    let mut merged = prune(&merged, &entries, &last_set, &node);
    keep_identity(&mut merged, &live_value);
    if same_value(&merged, &live_value) {
        // Equal as structured-merge-diff compares (`2` is `2.0`): nothing changes.
        merged = live_value.clone();
    }

    let raw = typed::compare(&live_value, &merged, &node);
    let cmp = Comparison {
        added: managed_fields::filter(&raw.added, subresource),
        modified: managed_fields::filter(&raw.modified, subresource),
        removed: managed_fields::filter(&raw.removed, subresource),
    };
    let before = entries.clone();
    let lost = take_from_others(&mut entries, Some(own), &cmp);
    if !force && !lost.is_empty() {
        // kubectl's first server-side apply over a client-side-applied object may take the
        // fields its last-applied annotation still describes (`lastAppliedManager`).
        let allowed = match manager {
            "kubectl" => last_applied::allowed_conflicts(&live_value, &node),
            _ => None,
        };
        let remaining: Vec<(usize, FieldSet)> = lost
            .iter()
            .map(|(i, set)| (*i, allowed.as_ref().map_or_else(|| set.clone(), |a| set.difference(a))))
            .filter(|(_, set)| !set.is_empty())
            .collect();
        if !remaining.is_empty() {
            return Err(PatchError::Conflict(conflicts(&before, &remaining)));
        }
    }
    // An apply that changes the object bumps its entry's time; one that does not leaves it.
    if merged != live_value {
        entries[own].time = Some(now.to_owned());
    }
    // After the ownership bookkeeping, as kube-apiserver's outermost `lastAppliedUpdater`.
    last_applied::sync(&mut merged, applied, manager);
    entries[own].set = managed_fields::strip_meta(&entries[own].set);
    entries.retain(|e| !e.set.is_empty());

    if let Some(l) = live
        && merged == live_value
        && entries == original_entries
    {
        return Ok(l.clone());
    }
    let mut out = merged;
    if out.get("metadata").is_none()
        && let Some(obj) = out.as_object_mut()
    {
        obj.insert("metadata".into(), Value::Object(Map::new()));
    }
    managed_fields::encode_into(&mut out, entries);
    Ok(out)
}

/// Puts back `apiVersion`, `kind` and the system metadata if the prune took them: it can
/// when a configuration without `metadata` follows one with labels (kube-apiserver's
/// configurations always carry `metadata.name`, so there the object keeps its metadata).
fn keep_identity(merged: &mut Value, live: &Value) {
    const SYSTEM_METADATA: &[&str] =
        &["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp"];
    let (Some(out), Some(live)) = (merged.as_object_mut(), live.as_object()) else {
        return;
    };
    for field in ["apiVersion", "kind"] {
        if let (false, Some(v)) = (out.contains_key(field), live.get(field)) {
            out.insert(field.into(), v.clone());
        }
    }
    let Some(live_meta) = live.get("metadata").and_then(Value::as_object) else {
        return;
    };
    let meta = out.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        for field in SYSTEM_METADATA {
            if let (false, Some(v)) = (meta.contains_key(*field), live_meta.get(*field)) {
                meta.insert((*field).into(), v.clone());
            }
        }
    }
}

/// Removes from `merged` the fields the applier owned before (`last_set`) and owns no longer,
/// unless another manager owns them (structured-merge-diff `Updater.prune`,
/// `addBackOwnedItems`, `addBackDanglingItems`).
fn prune(merged: &Value, entries: &[Entry], last_set: &FieldSet, node: &Node<'_>) -> Value {
    if last_set.is_empty() {
        return merged.clone();
    }
    let named = |set: &FieldSet| typed::ensure_named_fields_are_members(set, node);
    let last = named(last_set);
    let managed = named(&entries.iter().fold(FieldSet::default(), |acc, e| acc.union(&e.set)));
    let merged_set = named(&typed::to_field_set(merged, node));

    let pruned = typed::remove_items(merged, &last, node);
    let pruned_set = named(&typed::to_field_set(&pruned, node));
    let owned_back = typed::remove_items(merged, &merged_set.difference(&pruned_set.union(&managed)), node);
    let owned_back_set = named(&typed::to_field_set(&owned_back, node));
    typed::remove_items(merged, &merged_set.difference(&owned_back_set).intersection(&last), node)
}

fn conflicts(entries: &[Entry], lost: &[(usize, FieldSet)]) -> Vec<Conflict> {
    let mut out: Vec<Conflict> = lost
        .iter()
        .flat_map(|(i, set)| {
            let entry = &entries[*i];
            set.paths().into_iter().map(move |p| Conflict {
                manager: entry.manager.clone(),
                field: path_string(&p),
                cause: format!("conflict with {}", entry.describe()),
            })
        })
        .collect();
    out.sort_by(|a, b| a.cause.cmp(&b.cause));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T1: &str = "2026-11-22T01:00:00Z";
    const T2: &str = "2026-11-22T02:00:00Z";
    const T3: &str = "2026-11-22T03:00:00Z";

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": {
                    "x": {"type": "string"}, "y": {"type": "string"}, "replicas": {"type": "integer"},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "nested": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
                }},
                "status": {"type": "object", "properties": {
                    "phase": {"type": "string"},
                    "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                                   "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}}
                }}
            }
        })
    }

    fn obj(spec: Value) -> Value {
        json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "ns"}, "spec": spec})
    }

    fn apply(live: Option<&Value>, cfg: &Value, manager: &str, force: bool, now: &str) -> Result<Value, PatchError> {
        let s = schema();
        server_side_apply(live, cfg, manager, None, force, Some(&s), now)
    }

    fn entries(obj: &Value) -> Vec<Value> {
        obj["metadata"]["managedFields"].as_array().cloned().unwrap_or_default()
    }

    /// Simulates the store's uid/resourceVersion stamping on create.
    fn stored(mut o: Value) -> Value {
        o["metadata"]["uid"] = json!("u-1");
        o["metadata"]["resourceVersion"] = json!("1");
        o
    }

    #[test]
    fn apply_creates_with_an_apply_entry() {
        let cfg = obj(json!({"x": "1", "tags": ["a"]}));
        let out = apply(None, &cfg, "op", false, T1).unwrap();
        assert_eq!(out["spec"], json!({"x": "1", "tags": ["a"]}));
        assert_eq!(
            entries(&out),
            vec![json!({
                "manager": "op", "operation": "Apply", "apiVersion": "example.io/v1", "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:tags": {"v:\"a\"": {}}, "f:x": {}}}
            })]
        );
    }

    #[test]
    fn reapplying_the_same_configuration_is_a_no_op() {
        let cfg = obj(json!({"x": "1", "tags": ["a", "b"]}));
        let live = stored(apply(None, &cfg, "op", false, T1).unwrap());
        let again = apply(Some(&live), &cfg, "op", false, T2).unwrap();
        assert_eq!(again, live);
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_owned_elsewhere() {
        let live =
            stored(apply(None, &obj(json!({"x": "1", "y": "2", "nested": {"a": "1"}})), "op", false, T1).unwrap());
        let out = apply(Some(&live), &obj(json!({"x": "1"})), "op", false, T2).unwrap();
        assert_eq!(out["spec"], json!({"x": "1"}), "y and the whole nested struct go");
        assert_eq!(out["metadata"]["uid"], "u-1", "untracked metadata stays");
        assert_eq!(entries(&out)[0]["time"], T2);

        // Another applier sharing y keeps it alive.
        let shared = apply(Some(&live), &obj(json!({"y": "2"})), "other", false, T2).unwrap();
        let out = apply(Some(&shared), &obj(json!({"x": "1"})), "op", false, T3).unwrap();
        assert_eq!(out["spec"], json!({"x": "1", "y": "2"}));
    }

    #[test]
    fn conflicting_value_is_409_and_force_moves_ownership() {
        let live = stored(apply(None, &obj(json!({"x": "1", "replicas": 1})), "op", false, T1).unwrap());
        let err = apply(Some(&live), &obj(json!({"replicas": 3})), "hpa", false, T2).unwrap_err();
        let PatchError::Conflict(conflicts) = &err else { panic!("want a conflict, got {err:?}") };
        assert_eq!(
            conflicts,
            &vec![Conflict {
                manager: "op".into(),
                field: ".spec.replicas".into(),
                cause: "conflict with \"op\"".into()
            }]
        );
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"op\": .spec.replicas");

        let forced = apply(Some(&live), &obj(json!({"replicas": 3})), "hpa", true, T2).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let es = entries(&forced);
        let op = es.iter().find(|e| e["manager"] == "op").unwrap();
        let hpa = es.iter().find(|e| e["manager"] == "hpa").unwrap();
        assert_eq!(op["fieldsV1"], json!({"f:spec": {"f:x": {}}}));
        assert_eq!(hpa["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));

        // Now "op" re-applying its old config conflicts with hpa instead.
        let err = apply(Some(&forced), &obj(json!({"x": "1", "replicas": 1})), "op", false, T3).unwrap_err();
        assert!(matches!(err, PatchError::Conflict(c) if c[0].manager == "hpa"));
    }

    #[test]
    fn same_value_is_shared_without_conflict() {
        let live = stored(apply(None, &obj(json!({"x": "1"})), "op", false, T1).unwrap());
        let out = apply(Some(&live), &obj(json!({"x": "1"})), "other", false, T2).unwrap();
        assert_eq!(out["spec"], live["spec"]);
        let es = entries(&out);
        assert_eq!(es.len(), 2);
        assert!(es.iter().all(|e| e["fieldsV1"] == json!({"f:spec": {"f:x": {}}})));
        // The object did not change, so the new entry carries no time (as kube-apiserver).
        assert!(es.iter().find(|e| e["manager"] == "other").unwrap().get("time").is_none());
    }

    #[test]
    fn apply_conflicts_with_fields_last_set_by_an_update() {
        let mut created = obj(json!({"x": "1"}));
        record_update(None, &mut created, "kubectl-create", None, Some(&schema()), T1);
        let created = stored(created);
        let mut patched = created.clone();
        patched["spec"]["replicas"] = json!(5);
        record_update(Some(&created), &mut patched, "kubectl-patch", None, Some(&schema()), T2);
        let err = apply(Some(&patched), &obj(json!({"x": "2", "replicas": 2})), "op", false, T3).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Apply failed with 2 conflicts: conflicts with \"kubectl-create\" using example.io/v1:\n- .spec.x\nconflicts with \"kubectl-patch\" using example.io/v1:\n- .spec.replicas"
            )
        );
        // Applying the values already there conflicts with nobody.
        assert!(apply(Some(&patched), &obj(json!({"x": "1", "replicas": 5})), "op", false, T3).is_ok());
    }

    #[test]
    fn record_update_moves_changed_fields_and_drops_removed_ones() {
        let s = schema();
        let mut created = obj(json!({"x": "1", "y": "2"}));
        created["metadata"]["labels"] = json!({"app": "w"});
        record_update(None, &mut created, "kubectl-create", None, Some(&s), T1);
        assert_eq!(
            entries(&created),
            vec![json!({
                "manager": "kubectl-create", "operation": "Update", "apiVersion": "example.io/v1", "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {".": {}, "f:x": {}, "f:y": {}}}
            })]
        );
        let created = stored(created);
        let mut edited = created.clone();
        edited["spec"] = json!({"x": "9"});
        record_update(Some(&created), &mut edited, "kubectl-edit", None, Some(&s), T2);
        let es = entries(&edited);
        assert_eq!(es[0]["manager"], "kubectl-create");
        assert_eq!(es[0]["fieldsV1"], json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {}}));
        assert_eq!(es[1]["manager"], "kubectl-edit");
        assert_eq!(es[1]["fieldsV1"], json!({"f:spec": {"f:x": {}}}));

        // A write that changes nothing keeps managed fields (and their times) as they were.
        let mut same = edited.clone();
        record_update(Some(&edited), &mut same, "kubectl-edit", None, Some(&s), T3);
        assert_eq!(same, edited);
    }

    #[test]
    fn status_writes_are_recorded_under_the_status_subresource() {
        let s = schema();
        let live = stored(apply(None, &obj(json!({"x": "1"})), "op", false, T1).unwrap());
        let status_cfg = json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "ns"},
                                "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let out = server_side_apply(Some(&live), &status_cfg, "op", Some("status"), false, Some(&s), T2).unwrap();
        let es = entries(&out);
        assert_eq!(es.len(), 2, "one entry per (manager, operation, subresource): {es:?}");
        let status_entry = es.iter().find(|e| e.get("subresource").is_some()).unwrap();
        assert_eq!(status_entry["subresource"], "status");
        assert_eq!(
            status_entry["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
        );
        // Re-applying unchanged status is a no-op.
        let again = server_side_apply(Some(&out), &status_cfg, "op", Some("status"), false, Some(&s), T3).unwrap();
        assert_eq!(again, out);
        // A main-resource apply never owns status.
        let with_status = obj(json!({"x": "1"}));
        let mut with_status = with_status;
        with_status["status"] = json!({"phase": "x"});
        let main = apply(Some(&out), &with_status, "op", false, T3).unwrap();
        let main_entry = entries(&main).into_iter().find(|e| e.get("subresource").is_none()).unwrap();
        assert_eq!(main_entry["fieldsV1"], json!({"f:spec": {"f:x": {}}}));
    }

    #[test]
    fn conditions_merge_by_type_and_prune_per_manager() {
        let s = schema();
        let base = stored(obj(json!({})));
        let cfg = |conds: Value| json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"conditions": conds}});
        let a = server_side_apply(
            Some(&base),
            &cfg(json!([{"type": "A", "status": "True"}])),
            "ctl-a",
            Some("status"),
            false,
            Some(&s),
            T1,
        )
        .unwrap();
        let b = server_side_apply(
            Some(&a),
            &cfg(json!([{"type": "B", "status": "False"}])),
            "ctl-b",
            Some("status"),
            false,
            Some(&s),
            T2,
        )
        .unwrap();
        assert_eq!(
            b["status"]["conditions"],
            json!([{"type": "A", "status": "True"}, {"type": "B", "status": "False"}])
        );
        let a2 = server_side_apply(Some(&b), &cfg(json!([])), "ctl-a", Some("status"), false, Some(&s), T3).unwrap();
        assert_eq!(a2["status"]["conditions"], json!([{"type": "B", "status": "False"}]));
    }

    #[test]
    fn before_first_apply_takes_untracked_fields() {
        let untracked = stored(obj(json!({"x": "1"})));
        let out = apply(Some(&untracked), &obj(json!({"x": "2"})), "op", false, T1).unwrap_err();
        assert!(matches!(out, PatchError::Conflict(c) if c[0].manager == BEFORE_FIRST_APPLY));
        let out = apply(Some(&untracked), &obj(json!({"y": "2"})), "op", false, T1).unwrap();
        let managers: Vec<Value> = entries(&out).iter().map(|e| e["manager"].clone()).collect();
        assert_eq!(managers, vec![json!("op"), json!(BEFORE_FIRST_APPLY)]);

        // Updates to an untracked existing object stay untracked.
        let mut new = untracked.clone();
        new["spec"]["x"] = json!("3");
        record_update(Some(&untracked), &mut new, "kubectl-edit", None, Some(&schema()), T1);
        assert!(new["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn managed_fields_can_be_cleared_and_not_applied() {
        let live = stored(apply(None, &obj(json!({"x": "1"})), "op", false, T1).unwrap());
        let mut new = live.clone();
        new["metadata"]["managedFields"] = json!([{}]);
        record_update(Some(&live), &mut new, "kubectl-edit", None, Some(&schema()), T2);
        assert!(new["metadata"].get("managedFields").is_none());

        let mut cfg = obj(json!({"x": "1"}));
        cfg["metadata"]["managedFields"] = json!([]);
        assert_eq!(
            apply(Some(&live), &cfg, "op", false, T2),
            Err(PatchError::BadRequest("metadata.managedFields must be nil".into()))
        );
    }

    #[test]
    fn builtin_deployment_containers_merge_by_name() {
        let dep = |containers: Value| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                   "spec": {"template": {"spec": {"containers": containers}}}})
        };
        let live =
            server_side_apply(None, &dep(json!([{"name": "app", "image": "a:1"}])), "helm", None, false, None, T1)
                .unwrap();
        let live = stored(live);
        let out = server_side_apply(
            Some(&live),
            &dep(json!([{"name": "side", "image": "s:1"}])),
            "injector",
            None,
            false,
            None,
            T2,
        )
        .unwrap();
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app", "side"]);
        let err = server_side_apply(
            Some(&out),
            &dep(json!([{"name": "app", "image": "a:2"}])),
            "injector",
            None,
            false,
            None,
            T3,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"helm\": .spec.template.spec.containers[name=\"app\"].image"
        );
    }

    #[test]
    fn dropping_metadata_from_the_configuration_keeps_the_object_identity() {
        let mut cfg = obj(json!({"x": "1"}));
        cfg["metadata"]["labels"] = json!({"a": "b"});
        let live = stored(apply(None, &cfg, "op", false, T1).unwrap());
        let bare = json!({"apiVersion": "example.io/v1", "kind": "Widget", "spec": {"x": "1"}});
        let out = apply(Some(&live), &bare, "op", false, T2).unwrap();
        assert_eq!(out["metadata"]["name"], "w");
        assert_eq!(out["metadata"]["uid"], "u-1");
        assert!(out["metadata"].get("labels").is_none(), "the label the applier stopped applying goes");
    }

    #[test]
    fn builtin_creates_do_not_own_zero_structs() {
        let mut dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        record_update(None, &mut dep, "kubectl-create", None, None, T1);
        assert_eq!(
            entries(&dep)[0]["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                    }
                }
            })
        );
    }

    #[test]
    fn more_than_ten_updaters_fold_into_ancient_changes() {
        let s = schema();
        let mut live = obj(json!({}));
        record_update(None, &mut live, "creator", None, Some(&s), "2026-11-22T00:00:00Z");
        for i in 0..11 {
            let mut next = live.clone();
            next["spec"][format!("f{i}")] = json!(i);
            record_update(
                Some(&live),
                &mut next,
                &format!("m{i:02}"),
                None,
                Some(&s),
                &format!("2026-11-22T00:00:{:02}Z", i + 1),
            );
            live = next;
        }
        let es = entries(&live);
        let managers: Vec<&str> = es.iter().map(|e| e["manager"].as_str().unwrap()).collect();
        assert_eq!(es.len(), 10, "{managers:?}");
        // The bucket counts as an updater: "creator", "m00" and "m01" were folded into it.
        let bucket = es.iter().find(|e| e["manager"] == "ancient-changes").unwrap();
        assert_eq!(bucket["fieldsV1"], json!({"f:spec": {".": {}, "f:f0": {}, "f:f1": {}}}));
        assert_eq!(bucket["time"], "2026-11-22T00:00:02Z");
        assert!(!managers.iter().any(|m| ["creator", "m00", "m01"].contains(m)));
    }

    #[test]
    fn kubectl_server_side_apply_rewrites_the_client_side_annotation() {
        let mut live = obj(json!({"x": "1"}));
        live["metadata"]["annotations"] = json!({last_applied::ANNOTATION: "{\"old\":true}", "other": "kept"});
        record_update(None, &mut live, "kubectl-client-side-apply", None, Some(&schema()), T1);
        let live = stored(live);
        let cfg = obj(json!({"x": "1", "y": "2"}));
        let out = server_side_apply(Some(&live), &cfg, "kubectl", None, true, Some(&schema()), T2).unwrap();
        assert_eq!(
            out["metadata"]["annotations"][last_applied::ANNOTATION],
            r#"{"apiVersion":"example.io/v1","kind":"Widget","metadata":{"name":"w","namespace":"ns"},"spec":{"x":"1","y":"2"}}"#
        );
        assert_eq!(out["metadata"]["annotations"]["other"], "kept");
        // Stable from then on: re-applying is a no-op.
        let again = server_side_apply(Some(&out), &cfg, "kubectl", None, false, Some(&schema()), T3).unwrap();
        assert_eq!(again, out);
        // Other managers leave it alone.
        let other = server_side_apply(Some(&live), &cfg, "helm", None, true, Some(&schema()), T2).unwrap();
        assert_eq!(other["metadata"]["annotations"][last_applied::ANNOTATION], "{\"old\":true}");
    }

    #[test]
    fn numerically_equal_values_change_nothing() {
        let live = stored(apply(None, &obj(json!({"replicas": 2})), "op", false, T1).unwrap());
        assert_eq!(apply(Some(&live), &obj(json!({"replicas": 2.0})), "op", false, T2).unwrap(), live);
        assert_eq!(apply(Some(&live), &obj(json!({"replicas": 2.0})), "other", false, T2).map(|_| ()), Ok(()));
    }

    #[test]
    fn controller_status_applies_stay_no_ops_across_other_writes() {
        // The operator's loop: a finalizer JSON patch, then the same status apply each
        // reconcile; only the first status apply may write.
        let s = schema();
        let mut created = obj(json!({"x": "1"}));
        record_update(None, &mut created, "kubectl-client-side-apply", None, Some(&s), T1);
        let created = stored(created);
        let mut with_finalizer = crate::kube::patch::json_patch(
            &created,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["example.io/cleanup"]}]),
        )
        .unwrap();
        record_update(Some(&created), &mut with_finalizer, "operator", None, Some(&s), T1);
        let status = json!({"apiVersion": "example.io/v1", "kind": "Widget",
            "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}});
        let first =
            server_side_apply(Some(&with_finalizer), &status, "operator", Some("status"), true, Some(&s), T2).unwrap();
        assert_ne!(first, with_finalizer);
        assert_eq!(first["metadata"]["finalizers"], json!(["example.io/cleanup"]));
        let second = server_side_apply(Some(&first), &status, "operator", Some("status"), true, Some(&s), T3).unwrap();
        assert_eq!(second, first);
        let managers: Vec<(String, String)> = entries(&first)
            .iter()
            .map(|e| (e["manager"].as_str().unwrap().to_owned(), e["operation"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            managers,
            [("operator", "Apply"), ("kubectl-client-side-apply", "Update"), ("operator", "Update")]
                .map(|(m, o)| (m.to_owned(), o.to_owned()))
        );
    }

    #[test]
    fn kubectl_may_take_over_what_its_last_applied_annotation_describes() {
        let s = schema();
        // `kubectl apply` (client-side) wrote x and y and recorded them in the annotation;
        // then someone patched y.
        let mut live = obj(json!({"x": "1", "y": "2"}));
        live["metadata"]["annotations"] = json!({
            last_applied::ANNOTATION: r#"{"apiVersion":"example.io/v1","kind":"Widget","metadata":{"name":"w","namespace":"ns"},"spec":{"x":"1","y":"2"}}"#
        });
        record_update(None, &mut live, "kubectl-client-side-apply", None, Some(&s), T1);
        let live = stored(live);
        let mut patched = live.clone();
        patched["spec"]["y"] = json!("9");
        record_update(Some(&live), &mut patched, "kubectl-patch", None, Some(&s), T2);

        // x still matches the annotation: kubectl takes it without --force-conflicts.
        let out =
            server_side_apply(Some(&live), &obj(json!({"x": "5"})), "kubectl", None, false, Some(&s), T2).unwrap();
        assert_eq!(out["spec"]["x"], "5");
        // y no longer matches it: a conflict, with kubectl-patch only.
        let err =
            server_side_apply(Some(&patched), &obj(json!({"x": "5", "y": "3"})), "kubectl", None, false, Some(&s), T3)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using example.io/v1: .spec.y"
        );
        // Another manager gets no such allowance.
        assert!(server_side_apply(Some(&live), &obj(json!({"x": "5"})), "helm", None, false, Some(&s), T2).is_err());
    }

    #[test]
    fn finalizers_are_a_set() {
        let mut cfg = obj(json!({}));
        cfg["metadata"]["finalizers"] = json!(["a.io/x"]);
        let out = apply(None, &cfg, "op", false, T1).unwrap();
        assert_eq!(entries(&out)[0]["fieldsV1"], json!({"f:metadata": {"f:finalizers": {"v:\"a.io/x\"": {}}}}));
    }

    #[test]
    fn malformed_configurations_are_bad_requests() {
        assert!(matches!(apply(None, &json!([]), "op", false, T1), Err(PatchError::BadRequest(_))));
        assert!(matches!(apply(None, &obj(json!({})), "", false, T1), Err(PatchError::BadRequest(_))));
        let mut dup = obj(json!({}));
        dup["status"] = json!({"conditions": [{"type": "A"}, {"type": "A"}]});
        assert_eq!(
            apply(None, &dup, "op", false, T1),
            Err(PatchError::BadRequest(
                "failed to create typed patch object (ns/w; example.io/v1, Kind=Widget): .status.conditions: duplicate entries for key [type=\"A\"]".into()
            ))
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::kube::patch::fieldset::FieldSet;

    const T1: &str = "2026-11-22T01:00:00Z";
    const T2: &str = "2026-11-22T02:00:00Z";
    const T3: &str = "2026-11-22T03:00:00Z";

    /// A CRD whose spec is untyped: maps merge key by key, lists are atomic.
    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }})
    }

    /// Non-empty nested objects over a small key alphabet, so configurations overlap.
    fn spec_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            (0..3i64).prop_map(Value::from),
            "[xy]{1,2}".prop_map(Value::from),
            proptest::collection::vec(0..3i64, 0..3).prop_map(|v| json!(v)),
        ];
        leaf.prop_recursive(3, 24, 3, |inner| {
            proptest::collection::btree_map("[abc]", inner, 1..4).prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    fn spec_object() -> impl Strategy<Value = Value> {
        proptest::collection::btree_map("[abcd]", spec_value(), 1..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    fn cfg(spec: &Value) -> Value {
        json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
    }

    fn apply(live: Option<&Value>, spec: &Value, manager: &str, now: &str) -> Result<Value, PatchError> {
        let s = schema();
        server_side_apply(live, &cfg(spec), manager, None, false, Some(&s), now)
    }

    fn stored(mut o: Value) -> Value {
        o["metadata"]["uid"] = json!("u-1");
        o
    }

    fn keyed_schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}}
        }}}})
    }

    /// A spec with a set and a list-map, unique keys, in any order. Lists are non-empty:
    /// structured-merge-diff owns nothing in an empty list, so a configuration that empties
    /// a list prunes the whole (then unowned) spec, as on a real cluster.
    fn keyed_spec() -> impl Strategy<Value = Value> {
        let names = proptest::sample::subsequence(vec!["p", "q", "r", "s"], 1..4).prop_shuffle();
        let tags = proptest::sample::subsequence(vec!["t1", "t2", "t3"], 1..3).prop_shuffle();
        (names, proptest::collection::vec(0..3i64, 4), tags).prop_map(|(names, vs, tags)| {
            let items: Vec<Value> = names.iter().zip(vs).map(|(n, v)| json!({"name": n, "v": v})).collect();
            json!({"items": items, "tags": tags})
        })
    }

    proptest! {
        #[test]
        fn reapplying_is_a_no_op(spec in spec_object()) {
            let live = stored(apply(None, &spec, "op", T1).unwrap());
            prop_assert_eq!(apply(Some(&live), &spec, "op", T2).unwrap(), live);
        }

        #[test]
        fn the_last_configuration_of_a_sole_applier_is_the_spec(first in spec_object(), second in spec_object()) {
            let live = stored(apply(None, &first, "op", T1).unwrap());
            let out = apply(Some(&live), &second, "op", T2).unwrap();
            prop_assert_eq!(&out["spec"], &second);
        }

        #[test]
        fn appliers_of_disjoint_fields_never_conflict_and_withdraw_cleanly(a in spec_value(), b in spec_value()) {
            let live = stored(apply(None, &json!({"a": a.clone()}), "one", T1).unwrap());
            let both = apply(Some(&live), &json!({"b": b.clone()}), "two", T2).unwrap();
            prop_assert_eq!(&both["spec"], &json!({"a": a, "b": b.clone()}));
            let only_two = apply(Some(&both), &json!({}), "one", T3).unwrap();
            prop_assert_eq!(&only_two["spec"], &json!({"b": b}));
        }

        #[test]
        fn keyed_lists_end_as_the_sole_applier_last_applied_them(first in keyed_spec(), second in keyed_spec()) {
            let s = keyed_schema();
            let live = stored(server_side_apply(None, &cfg(&first), "op", None, false, Some(&s), T1).unwrap());
            let out = server_side_apply(Some(&live), &cfg(&second), "op", None, false, Some(&s), T2).unwrap();
            let again = server_side_apply(Some(&out), &cfg(&second), "op", None, false, Some(&s), T3).unwrap();
            prop_assert_eq!(&out["spec"], &second);
            prop_assert_eq!(&again, &out);
        }

        #[test]
        fn fields_v1_round_trips(spec in spec_object()) {
            let s = schema();
            let node = Node::root(Some(&s), "Widget");
            let set = typed::to_field_set(&cfg(&spec), &node);
            prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
        }

        #[test]
        fn an_update_owns_exactly_what_it_changed(before in spec_object(), after in spec_object()) {
            let s = schema();
            let mut created = cfg(&before);
            record_update(None, &mut created, "creator", None, Some(&s), T1);
            let mut updated = cfg(&after);
            updated["metadata"]["managedFields"] = created["metadata"]["managedFields"].clone();
            record_update(Some(&created), &mut updated, "editor", None, Some(&s), T2);
            // Whoever owns a field, re-applying the object's own values never conflicts,
            // and applying it by the editor changes nothing it does not already own.
            let reapplied = apply(Some(&updated), &after, "editor", T3).unwrap();
            prop_assert_eq!(&reapplied["spec"], &after);
        }
    }
}
