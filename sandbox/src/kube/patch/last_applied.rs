//! kubectl's client-side apply annotation under server-side apply (kube-apiserver's
//! `lastAppliedUpdater`).

use serde_json::Value;

use super::fieldset::FieldSet;
use super::schema::Node;
use super::typed;

/// kubectl's client-side apply annotation.
pub const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A server-side apply by `kubectl` rewrites an existing client-side apply annotation to the
/// applied configuration, so a later client-side apply diffs against what was last applied
/// (`lastAppliedUpdater`; other managers opt out). The value is Go's `json.Marshal` of the
/// configuration without the annotation: compact, object keys sorted.
pub fn sync(merged: &mut Value, applied: &Value, manager: &str) {
    if manager != "kubectl" {
        return;
    }
    let Some(annotations) = merged
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
        .filter(|a| a.contains_key(ANNOTATION))
    else {
        return;
    };
    let mut config = applied.clone();
    if let Some(own) = config.get_mut("metadata").and_then(|m| m.get_mut("annotations")).and_then(Value::as_object_mut)
    {
        own.shift_remove(ANNOTATION);
    }
    annotations.insert(ANNOTATION.into(), Value::String(sorted_keys(&config).to_string()));
}

fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted_keys(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// The fields a `kubectl` server-side apply may take from other managers without `force`:
/// those of the live object's last-applied annotation that still have the annotated value
/// (`lastAppliedManager.allowedConflictsFromLastApplied`). None without a usable annotation.
pub fn allowed_conflicts(live: &Value, node: &Node<'_>) -> Option<FieldSet> {
    let text = live.get("metadata")?.get("annotations")?.get(ANNOTATION)?.as_str()?;
    let last: Value = serde_json::from_str(text).ok().filter(Value::is_object)?;
    let cmp = typed::compare(&last, live, node);
    Some(typed::to_field_set(&last, node).difference(&cmp.modified).difference(&cmp.added).difference(&cmp.removed))
}
