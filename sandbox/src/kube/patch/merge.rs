//! JSON merge patch (RFC 7386), as kube-apiserver applies `application/merge-patch+json`.

use serde_json::Value;

use super::PatchError;

/// RFC 7386 `MergePatch`: objects merge recursively, `null` deletes, anything else replaces.
///
/// The patch must be a JSON object: kube-apiserver (evanphx/json-patch v4 `MergePatch`)
/// answers 400 `Invalid JSON Patch` for `null` or a scalar, and an array would replace the
/// whole object with something that is not an object, which it rejects too.
pub fn merge_patch(live: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadRequest("Invalid JSON Patch".into()));
    }
    let mut out = live.clone();
    apply(&mut out, patch);
    Ok(out)
}

fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = without_nulls(patch);
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(target_map) = target else { unreachable!("made an object above") };
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.shift_remove(key);
        } else {
            apply(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A value the patch puts in place, without the nulls of the objects it contains, lists
/// included: evanphx/json-patch v4 prunes them (`pruneNulls`, `pruneAryNulls`) where RFC 7386
/// would keep a list verbatim. Null items of a list stay.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc7386_appendix_a_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (live, patch, want) in cases {
            assert_eq!(merge_patch(&live, &patch).unwrap(), want, "patch {patch}");
        }
    }

    #[test]
    fn emptying_finalizers_keeps_an_empty_list_for_the_store_to_drop() {
        let live = json!({"metadata": {"name": "x", "finalizers": ["a"]}});
        let out = merge_patch(&live, &json!({"metadata": {"finalizers": []}})).unwrap();
        assert_eq!(out, json!({"metadata": {"name": "x", "finalizers": []}}));
        let out = merge_patch(&live, &json!({"metadata": {"finalizers": null}})).unwrap();
        assert_eq!(out, json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn nulls_inside_patched_lists_are_pruned_like_kube_apiserver() {
        let out = merge_patch(&json!({"a": 1}), &json!({"l": [{"b": null, "c": 1}, null]})).unwrap();
        assert_eq!(out, json!({"a": 1, "l": [{"c": 1}, null]}));
    }

    #[test]
    fn deleting_keeps_the_order_of_the_other_fields() {
        let out = merge_patch(&json!({"a": 1, "b": 2, "c": 3}), &json!({"a": null})).unwrap();
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "c"]);
    }

    #[test]
    fn non_object_patches_are_bad_requests() {
        for patch in [json!(null), json!("x"), json!(1), json!([{"op": "add"}])] {
            assert_eq!(merge_patch(&json!({}), &patch), Err(PatchError::BadRequest("Invalid JSON Patch".into())));
        }
    }
}
