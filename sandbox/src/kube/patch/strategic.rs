//! Strategic merge patch for built-in kinds (k8s.io/apimachinery/pkg/util/strategicpatch),
//! as `kubectl patch`, `kubectl apply` (client-side) and Helm send it: merge patch semantics,
//! plus lists merged by their `patchMergeKey` (`builtin.rs`) and the directives
//! `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>`.

use serde_json::{Map, Value};

use super::PatchError;
use super::builtin::{self, PatchStrategy};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn bad(message: impl Into<String>) -> PatchError {
    PatchError::BadRequest(message.into())
}

pub fn strategic_merge_patch(live: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    let (Value::Object(original), Value::Object(patch)) = (live, patch) else {
        return Err(bad(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            if patch.is_array() {
                "array"
            } else {
                "non-object"
            }
        )));
    };
    let ctx = Ctx { kind };
    match ctx.merge_map(original.clone(), patch, "")? {
        Some(out) => Ok(Value::Object(out)),
        None => Ok(Value::Object(Map::new())),
    }
}

struct Ctx<'k> {
    kind: &'k str,
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A patch value without directives and nulls, for a field the live object lacks.
fn clean(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|item| item.get(PATCH).is_none())
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn string_list(value: &Value, directive: &str) -> Result<Vec<Value>, PatchError> {
    value
        .as_array()
        .cloned()
        .ok_or_else(|| bad(format!("invalid patch: {directive} must be a list")))
}

impl Ctx<'_> {
    /// Merges `patch` into `original`; None when the patch deletes the map (`$patch: delete`).
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        path: &str,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        match patch.get(PATCH).map(|v| v.as_str()) {
            None | Some(Some("merge")) => {}
            Some(Some("replace")) => {
                return match clean(&Value::Object(patch.clone())) {
                    Value::Object(map) => Ok(Some(map)),
                    _ => unreachable!("clean keeps objects"),
                };
            }
            Some(Some("delete")) => return Ok(None),
            Some(other) => return Err(bad(format!("Unknown patch type: {}", other.unwrap_or("")))),
        }
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            // `retainKeys` strategy (e.g. a Deployment's `spec.strategy`, pod volumes): fields
            // not listed are cleared, and the patch may only set listed fields.
            let keep: Vec<&str> = retain
                .as_array()
                .ok_or_else(|| bad("invalid patch: $retainKeys must be a list of strings"))?
                .iter()
                .map(|k| {
                    k.as_str()
                        .ok_or_else(|| bad("invalid patch: $retainKeys must be a list of strings"))
                })
                .collect::<Result<_, _>>()?;
            // Nulls may name other fields: they clear them anyway.
            let mut set_keys = patch
                .iter()
                .filter(|(k, v)| !k.starts_with('$') && !v.is_null());
            if let Some((extra, _)) = set_keys.find(|(k, _)| !keep.contains(&k.as_str())) {
                return Err(PatchError::Invalid(format!(
                    "The patch content doesn't match retainKeys list: field {extra:?} is not in $retainKeys"
                )));
            }
            original.retain(|k, _| keep.contains(&k.as_str()));
        }
        for (key, value) in patch {
            if let Some(list) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let doomed = string_list(value, DELETE_FROM_PRIMITIVE_LIST)?;
                if let Some(Value::Array(items)) = original.get_mut(list) {
                    items.retain(|item| !doomed.contains(item));
                }
            }
        }
        for (key, value) in patch {
            if key.starts_with('$') {
                continue;
            }
            let field_path = child_path(path, key);
            if value.is_null() {
                original.shift_remove(key);
                continue;
            }
            let merged = match (original.shift_remove(key), value) {
                (Some(Value::Object(live)), Value::Object(p)) => {
                    self.merge_map(live, p, &field_path)?.map(Value::Object)
                }
                (Some(Value::Array(live)), Value::Array(p)) => {
                    Some(Value::Array(self.merge_list(live, p, &field_path)?))
                }
                (None, Value::Object(p))
                    if p.get(PATCH).and_then(Value::as_str) == Some("delete") =>
                {
                    None
                }
                (None, Value::Array(p)) => {
                    Some(Value::Array(self.merge_list(Vec::new(), p, &field_path)?))
                }
                _ => Some(clean(value)),
            };
            if let Some(merged) = merged {
                original.insert(key.clone(), merged);
            }
        }
        for (key, value) in patch {
            if let Some(list) = key.strip_prefix(SET_ELEMENT_ORDER) {
                let order = string_list(value, SET_ELEMENT_ORDER)?;
                let strategy = builtin::patch_strategy(self.kind, &child_path(path, list));
                if let Some(Value::Array(items)) = original.get_mut(list) {
                    reorder(items, &order, &strategy);
                }
            }
        }
        Ok(Some(original))
    }

    fn merge_list(
        &self,
        mut live: Vec<Value>,
        patch: &[Value],
        path: &str,
    ) -> Result<Vec<Value>, PatchError> {
        match builtin::patch_strategy(self.kind, path) {
            PatchStrategy::Replace => Ok(patch.iter().map(clean).collect()),
            PatchStrategy::MergePrimitives => {
                for item in patch {
                    if !live.contains(item) {
                        live.push(item.clone());
                    }
                }
                Ok(live)
            }
            PatchStrategy::MergeByKey(key) => {
                if patch
                    .iter()
                    .any(|p| p.get(PATCH).and_then(Value::as_str) == Some("replace"))
                {
                    return Ok(patch
                        .iter()
                        .filter(|p| p.get(PATCH).is_none())
                        .map(clean)
                        .collect());
                }
                let item_path = format!("{path}[]");
                for item in patch {
                    let Value::Object(p) = item else {
                        return Err(bad(format!(
                            "invalid patch: items of {path} must be objects with the merge key {key:?}"
                        )));
                    };
                    let Some(id) = p.get(key) else {
                        return Err(bad(format!(
                            "map: {p:?} does not contain declared merge key: {key}"
                        )));
                    };
                    let pos = live.iter().position(|l| l.get(key) == Some(id));
                    if p.get(PATCH).and_then(Value::as_str) == Some("delete") {
                        live.retain(|l| l.get(key) != Some(id));
                        continue;
                    }
                    match pos {
                        Some(i) => {
                            let current = std::mem::take(&mut live[i]);
                            let base = match current {
                                Value::Object(m) => m,
                                _ => Map::new(),
                            };
                            match self.merge_map(base, p, &item_path)? {
                                Some(m) => live[i] = Value::Object(m),
                                None => {
                                    live.remove(i);
                                }
                            }
                        }
                        None => live.push(clean(item)),
                    }
                }
                Ok(live)
            }
        }
    }
}

/// Applies `$setElementOrder`: the listed items take the listed order; items the patch did
/// not list (present only on the server) keep their place relative to the others.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: &PatchStrategy) {
    let id = |v: &Value| -> Value {
        match strategy {
            PatchStrategy::MergeByKey(key) => v.get(*key).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let order_ids: Vec<Value> = order.iter().map(id).collect();
    let rank = |v: &Value| order_ids.iter().position(|o| *o == id(v));
    let mut listed: Vec<Value> = items
        .iter()
        .filter(|v| rank(v).is_some())
        .cloned()
        .collect();
    listed.sort_by_key(|v| rank(v));
    let mut listed = listed.into_iter();
    let reordered: Vec<Value> = items
        .iter()
        .map(|v| {
            if rank(v).is_some() {
                listed.next().expect("as many listed as slots")
            } else {
                v.clone()
            }
        })
        .collect();
    *items = reordered;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "template": {"spec": {
                    "containers": [
                        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "ports": [{"containerPort": 80}], "args": ["--a"]},
                        {"name": "sidecar", "image": "side:1"}
                    ],
                    "volumes": [{"name": "v", "emptyDir": {}}]
                }}
            }
        })
    }

    fn patch(p: Value) -> Value {
        strategic_merge_patch(&deployment(), &p, "Deployment").unwrap()
    }

    #[test]
    fn containers_merge_by_name_and_args_replace() {
        let out = patch(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "app:2", "args": ["--b"], "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}
        ]}}}}));
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(containers[0]["image"], "app:2");
        assert_eq!(containers[0]["args"], json!(["--b"]));
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(containers[1]["name"], "sidecar");
    }

    #[test]
    fn patch_delete_and_replace_directives_in_lists() {
        let out = patch(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}),
        );
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["app"]);

        let out = patch(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "o"}, {"$patch": "replace"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "o"}])
        );
    }

    #[test]
    fn map_directives() {
        let out = patch(json!({"metadata": {"labels": {"$patch": "replace", "b": "2"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        let out = patch(json!({"spec": {"strategy": {"$patch": "delete"}}}));
        assert!(out["spec"].get("strategy").is_none());
        let err = strategic_merge_patch(
            &deployment(),
            &json!({"spec": {"$patch": "nope"}}),
            "Deployment",
        );
        assert_eq!(
            err,
            Err(PatchError::BadRequest("Unknown patch type: nope".into()))
        );
    }

    #[test]
    fn retain_keys_clears_the_other_strategy_fields() {
        // kubectl apply switching a Deployment to Recreate sends exactly this.
        let out = patch(
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let err = strategic_merge_patch(
            &deployment(),
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}}),
            "Deployment",
        );
        assert!(matches!(err, Err(PatchError::Invalid(_))));
    }

    #[test]
    fn set_element_order_and_primitive_lists() {
        let out = patch(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "sidecar", "image": "side:2"}]
        }}}}));
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sidecar", "app"]);
        assert!(
            out["spec"]["template"]["spec"]
                .get("$setElementOrder/containers")
                .is_none()
        );

        let out = patch(json!({"metadata": {"finalizers": ["y", "x"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        let out = patch(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn nulls_delete_and_new_fields_are_cleaned() {
        let out = patch(
            json!({"metadata": {"labels": {"a": null}}, "spec": {"paused": true, "extra": {"k": null, "j": 1}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({}));
        assert_eq!(out["spec"]["paused"], true);
        assert_eq!(out["spec"]["extra"], json!({"j": 1}));
    }

    #[test]
    fn malformed_patches() {
        assert!(matches!(
            strategic_merge_patch(&deployment(), &json!([1]), "Deployment"),
            Err(PatchError::BadRequest(_))
        ));
        let no_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(matches!(
            strategic_merge_patch(&deployment(), &no_key, "Deployment"),
            Err(PatchError::BadRequest(_))
        ));
    }
}
