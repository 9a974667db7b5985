//! Pruning of fields the schema does not declare, as apiextensions-apiserver's
//! `structural/pruning` and `objectmeta.Coerce` do on every write of a custom resource.
//!
//! Returns the pruned paths (`spec.foo`, `spec.items[0].bar`, map keys dotted) so the
//! caller can turn them into `fieldValidation=Strict` errors or `Warn` warnings.

use serde_json::Value;

use super::schema::{self, OBJECT_META_FIELDS};

/// Prune `obj` (a whole custom object) in place. `apiVersion`, `kind` and `metadata` are
/// never pruned at the root; unknown fields inside `metadata` are dropped like the
/// ObjectMeta decoder drops them. The returned paths are sorted, as the apiserver reports
/// them (`unknown field "spec.a", unknown field "spec.b"`).
pub(super) fn prune_object(obj: &mut Value, root: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune(obj, Some(root), "", true, &mut pruned);
    pruned.sort();
    pruned
}

/// Prune a value below the resource root (e.g. a schema `default`), returning the pruned
/// paths relative to it.
pub(super) fn prune_value(value: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    prune(value, Some(schema), "", false, &mut pruned);
    pruned.sort();
    pruned
}

fn prune(value: &mut Value, schema: Option<&Value>, path: &str, resource_root: bool, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let Some(s) = schema else {
                // No schema below here (cannot happen in a structural schema except under
                // preserve-unknown-fields, handled by the caller): drop everything.
                pruned.extend(map.keys().map(|k| schema::join(path, k)));
                map.clear();
                return;
            };
            let preserve = schema::preserve_unknown(s);
            let meta_root = resource_root || schema::embedded_resource(s);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child_path = schema::join(path, &k);
                if meta_root && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if meta_root && k == "metadata" {
                    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                        let unknown: Vec<String> =
                            meta.keys().filter(|f| !OBJECT_META_FIELDS.contains(&f.as_str())).cloned().collect();
                        for f in unknown {
                            meta.remove(&f);
                            pruned.push(schema::join(&child_path, &f));
                        }
                    }
                    continue;
                }
                match schema::child(s, &k) {
                    Some(child) if !child.is_null() => {
                        if let Some(v) = map.get_mut(&k) {
                            prune(v, Some(child), &child_path, false, pruned);
                        }
                    }
                    // `additionalProperties: true` or preserve-unknown-fields: keep as is.
                    Some(_) => {}
                    None if preserve => {}
                    None => {
                        map.remove(&k);
                        pruned.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.and_then(schema::items) {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item, Some(item_schema), &schema::index(path, i), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// Drop properties whose value is `null` while their schema is neither `nullable` nor
/// defaulted: the apiserver does this after defaulting
/// (`structuraldefaulting.PruneNonNullableNullsWithoutDefaults`), so such a null never
/// reaches validation. Only declared properties are concerned, not map values or items.
pub(super) fn prune_non_nullable_nulls(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if let Some(prop) = schema::property(schema, &k) {
                    if map[&k].is_null() && !schema::nullable(prop) && prop.get("default").is_none() {
                        map.remove(&k);
                    } else if let Some(v) = map.get_mut(&k) {
                        prune_non_nullable_nulls(v, prop);
                    }
                } else if let Some(extra) = schema::additional_properties(schema)
                    && let Some(v) = map.get_mut(&k)
                {
                    prune_non_nullable_nulls(v, extra);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema::items(schema) {
                for item in items {
                    prune_non_nullable_nulls(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "known": {"type": "string"},
                        "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {"type": "integer"}}}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"typed": {"type": "object", "properties": {"k": {"type": "string"}}}}},
                        "any": {"type": "object", "additionalProperties": true},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
                    }
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_and_reports_sorted_paths() {
        let mut obj = json!({
            "apiVersion": "x.dev/v1", "kind": "Thing",
            "metadata": {"name": "a", "labels": {"k": "v"}, "bogus": 1},
            "extra": true,
            "spec": {
                "known": "k", "zzz": 1, "aaa": 2,
                "items": [{"a": "x", "b": "y"}],
                "labels": {"one": {"x": 1, "y": 2}},
                "free": {"anything": {"goes": 1}, "typed": {"k": "v", "drop": 1}},
                "any": {"whatever": [1, 2]},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}, "junk": 1}
            },
            "status": {"ok": true, "nope": 1}
        });
        let pruned = prune_object(&mut obj, &schema());
        assert_eq!(
            pruned,
            vec![
                "extra",
                "metadata.bogus",
                "spec.aaa",
                "spec.free.typed.drop",
                "spec.items[0].b",
                "spec.labels.one.y",
                "spec.template.junk",
                "spec.template.spec.x",
                "spec.zzz",
                "status.nope",
            ]
        );
        assert_eq!(obj["apiVersion"], "x.dev/v1");
        assert_eq!(obj["metadata"], json!({"name": "a", "labels": {"k": "v"}}));
        assert_eq!(obj["spec"]["free"]["anything"], json!({"goes": 1}));
        assert_eq!(obj["spec"]["any"], json!({"whatever": [1, 2]}));
        assert_eq!(obj["spec"]["template"]["metadata"], json!({"name": "p"}));
        assert_eq!(obj["spec"]["items"], json!([{"a": "x"}]));
        assert_eq!(obj["spec"]["labels"], json!({"one": {"x": 1}}));
    }

    #[test]
    fn drops_non_nullable_nulls_without_default() {
        let s = json!({"type": "object", "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "nullable": true},
            "c": {"type": "object", "properties": {"d": {"type": "integer"}}}
        }});
        let mut v = json!({"a": null, "b": null, "c": {"d": null}});
        prune_non_nullable_nulls(&mut v, &s);
        assert_eq!(v, json!({"b": null, "c": {}}));
    }
}
