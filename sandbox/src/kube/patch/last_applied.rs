//! kubectl's client-side apply annotation under server-side apply (kube-apiserver's
//! `lastAppliedUpdater`).

use serde_json::Value;

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
    if let Some(own) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        own.shift_remove(ANNOTATION);
    }
    annotations.insert(
        ANNOTATION.into(),
        Value::String(sorted_keys(&config).to_string()),
    );
}

fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_keys(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}
