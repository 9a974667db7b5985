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
            if patch.is_array() { "array" } else { "non-object" }
        )));
    };
    let ctx = Ctx { kind };
    Ok(Value::Object(ctx.merge_map(original.clone(), patch, "")?))
}

struct Ctx<'k> {
    kind: &'k str,
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
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
        Value::Array(items) => Value::Array(items.iter().filter(|item| item.get(PATCH).is_none()).map(clean).collect()),
        other => other.clone(),
    }
}

fn string_list(value: &Value, directive: &str) -> Result<Vec<Value>, PatchError> {
    value.as_array().cloned().ok_or_else(|| bad(format!("invalid patch: {directive} must be a list")))
}

/// How an item is identified in a list: its merge key's value, or itself for scalars.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(k) => item.get(k),
        None => Some(item),
    }
}

fn index_in(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(item, key)?;
    list.iter().position(|v| identity(v, key) == Some(id))
}

/// The order strategic merge patch gives a merged list (`normalizeElementOrder`): items
/// named by `patch_order` in that order, the others in their `server_order` order, the two
/// interleaved by their live positions (`mergeSortedSlice`).
fn normalize_order(merged: Vec<Value>, patch_order: &[Value], server_order: &[Value], key: Option<&str>) -> Vec<Value> {
    let (mut from_patch, mut server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|item| index_in(patch_order, item, key).is_some());
    from_patch.sort_by_key(|item| index_in(patch_order, item, key));
    server_only.sort_by_key(|item| index_in(server_order, item, key));
    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let (mut left, mut right) = (server_only.into_iter().peekable(), from_patch.into_iter().peekable());
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (index_in(server_order, l, key), index_in(server_order, r, key)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

impl Ctx<'_> {
    /// Merges `patch` into `original` (`mergeMap`).
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
        path: &str,
    ) -> Result<Map<String, Value>, PatchError> {
        if let Some(directive) = patch.get(PATCH) {
            // A map-level directive replaces the merge; `delete` leaves an empty map
            // (`handleDirectiveInMergeMap`), only list items are removed by it.
            return match directive.as_str() {
                Some("replace") => match clean(&Value::Object(patch.clone())) {
                    Value::Object(map) => Ok(map),
                    _ => unreachable!("clean keeps objects"),
                },
                Some("delete") => Ok(Map::new()),
                _ => Err(bad(format!(
                    "unknown patch type: {} in map: {}",
                    go_format(directive),
                    go_format(&Value::Object(patch.clone()))
                ))),
            };
        }
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            // `retainKeys` strategy (e.g. a Deployment's `spec.strategy`, pod volumes): fields
            // not listed are cleared, and the patch may only set listed fields
            // (`applyRetainKeysDirective`; nulls may name others, they clear them anyway).
            const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
            let keep: Vec<&Value> = retain.as_array().ok_or_else(|| bad(BAD_RETAIN_KEYS))?.iter().collect();
            let listed = |k: &str| keep.iter().any(|v| v.as_str() == Some(k));
            if patch.iter().any(|(k, v)| !k.starts_with('$') && !v.is_null() && !listed(k)) {
                return Err(bad(BAD_RETAIN_KEYS));
            }
            original.retain(|k, _| listed(k));
        }
        // `$setElementOrder/<list>` is merged first, together with its list
        // (`mergePatchIntoOriginal`); that list is then done.
        let mut done: Vec<&str> = Vec::new();
        for (key, value) in patch {
            let Some(list) = key.strip_prefix(SET_ELEMENT_ORDER) else {
                continue;
            };
            let order = string_list(value, SET_ELEMENT_ORDER)?;
            let list_path = child_path(path, list);
            let merge_key = match builtin::patch_strategy(self.kind, &list_path) {
                PatchStrategy::MergeByKey(k) => Some(k),
                _ => None,
            };
            let live = match original.get(list) {
                Some(Value::Array(items)) => Some(items.clone()),
                _ => None,
            };
            let merged = match (live.clone(), patch.get(list)) {
                (Some(items), None) => items,
                (None, Some(Value::Array(p))) => p.iter().map(clean).collect(),
                (Some(items), Some(Value::Array(p))) => self.merge_list(items, p, &list_path)?,
                (None, None) => continue,
                (_, Some(other)) => {
                    return Err(bad(format!("invalid patch: {list} must be a list, got {other}")));
                }
            };
            let ordered = normalize_order(merged, &order, live.as_deref().unwrap_or_default(), merge_key);
            original.insert(list.to_owned(), Value::Array(ordered));
            done.push(list);
        }
        for (key, value) in patch {
            if let Some(list) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let doomed = string_list(value, DELETE_FROM_PRIMITIVE_LIST)?;
                if let Some(Value::Array(items)) = original.get_mut(list) {
                    items.retain(|item| !doomed.contains(item));
                }
                continue;
            }
            if key.starts_with('$') || done.contains(&key.as_str()) {
                continue;
            }
            if value.is_null() {
                original.shift_remove(key);
                continue;
            }
            let field_path = child_path(path, key);
            let merged = match (original.shift_remove(key), value) {
                // `patchStrategy:"replace"` on a struct (`mergeMapHandler`): no merge.
                (Some(Value::Object(_)), Value::Object(_)) if builtin::replaces_whole(self.kind, &field_path) => {
                    clean(value)
                }
                (Some(Value::Object(live)), Value::Object(p)) => Value::Object(self.merge_map(live, p, &field_path)?),
                (Some(Value::Array(live)), Value::Array(p)) => Value::Array(self.merge_list(live, p, &field_path)?),
                _ => clean(value),
            };
            original.insert(key.clone(), merged);
        }
        Ok(original)
    }

    /// Merges a list by its patch strategy (`mergeSliceHandler`, `mergeSlice`).
    fn merge_list(&self, live: Vec<Value>, patch: &[Value], path: &str) -> Result<Vec<Value>, PatchError> {
        if live.is_empty() && patch.is_empty() {
            return Ok(live);
        }
        match builtin::patch_strategy(self.kind, path) {
            PatchStrategy::Replace => Ok(patch.iter().map(clean).collect()),
            PatchStrategy::MergePrimitives => {
                let mut merged = live.clone();
                for item in patch {
                    if !merged.contains(item) {
                        merged.push(item.clone());
                    }
                }
                Ok(normalize_order(merged, patch, &live, None))
            }
            PatchStrategy::MergeByKey(key) => {
                let mut live = live;
                let mut plain: Vec<&Map<String, Value>> = Vec::new();
                let mut replace = false;
                for item in patch {
                    let Value::Object(p) = item else {
                        return Err(bad(format!("invalid patch: items of {path} must be objects, got {item}")));
                    };
                    match p.get(PATCH).map(|d| d.as_str()) {
                        None => plain.push(p),
                        Some(Some("delete")) => {
                            let id = p.get(key).ok_or_else(|| no_merge_key(p, key))?;
                            live.retain(|l| l.get(key) != Some(id));
                        }
                        Some(Some("replace")) => replace = true,
                        Some(Some("merge")) => {
                            return Err(bad("merging lists cannot yet be specified in the patch"));
                        }
                        Some(_) => {
                            return Err(bad(format!(
                                "unknown patch type: {} in map: {}",
                                go_format(&p[PATCH]),
                                go_format(item)
                            )));
                        }
                    }
                }
                if replace {
                    return Ok(plain.into_iter().map(|p| clean(&Value::Object(p.clone()))).collect());
                }
                let server_order = live.clone();
                let item_path = format!("{path}[]");
                for p in &plain {
                    let id = p.get(key).ok_or_else(|| no_merge_key(p, key))?;
                    match live.iter().position(|l| l.get(key) == Some(id)) {
                        Some(i) => {
                            let base = match std::mem::take(&mut live[i]) {
                                Value::Object(m) => m,
                                _ => Map::new(),
                            };
                            live[i] = Value::Object(self.merge_map(base, p, &item_path)?);
                        }
                        None => live.push(clean(&Value::Object((*p).clone()))),
                    }
                }
                let patch_order: Vec<Value> = plain.into_iter().map(|p| Value::Object(p.clone())).collect();
                Ok(normalize_order(live, &patch_order, &server_order, Some(key)))
            }
        }
    }
}

fn no_merge_key(item: &Map<String, Value>, key: &str) -> PatchError {
    bad(format!("map: {} does not contain declared merge key: {key}", go_format(&Value::Object(item.clone()))))
}

/// A decoded JSON value as Go's `%v` prints it, as strategicpatch's error messages do:
/// `map[image:x name:y]` (keys sorted), `[a b]`, `<nil>`.
fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_format).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys.into_iter().map(|k| format!("{k}:{}", go_format(&map[k]))).collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
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
        let out =
            patch(json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}));
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
        assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "only", "image": "o"}]));
    }

    #[test]
    fn map_directives() {
        let out = patch(json!({"metadata": {"labels": {"$patch": "replace", "b": "2"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        // A map-level delete leaves an empty map (only list items disappear).
        let out = patch(json!({"spec": {"strategy": {"$patch": "delete"}}}));
        assert_eq!(out["spec"]["strategy"], json!({}));
        let err = strategic_merge_patch(&deployment(), &json!({"spec": {"$patch": "merge"}}), "Deployment");
        assert_eq!(err, Err(PatchError::BadRequest("unknown patch type: merge in map: map[$patch:merge]".into())));
    }

    #[test]
    fn retain_keys_clears_the_other_strategy_fields() {
        // kubectl apply switching a Deployment to Recreate sends exactly this.
        let out =
            patch(json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let err = strategic_merge_patch(
            &deployment(),
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}}),
            "Deployment",
        );
        assert_eq!(err, Err(PatchError::BadRequest("invalid patch format of retainKeys".into())));
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
        assert!(out["spec"]["template"]["spec"].get("$setElementOrder/containers").is_none());

        // The patch's order wins for the items it names.
        let out = patch(json!({"metadata": {"finalizers": ["y", "x"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
        let out = patch(json!({"metadata": {"finalizers": ["z"]}}));
        // A new item comes before server-only ones (mergeSortedSlice takes the patch side
        // when either item is missing from the live list).
        assert_eq!(out["metadata"]["finalizers"], json!(["z", "x"]));
        let out = patch(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn new_items_take_their_place_in_the_patch_order() {
        // Live [app, sidecar]; the patch names [new, app]: kube's mergeSortedSlice gives
        // [new, app, sidecar].
        let out = patch(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "new", "image": "n"}, {"name": "app", "image": "app:3"}
        ]}}}}));
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["new", "app", "sidecar"]);
    }

    #[test]
    fn kubectl_three_way_patch_with_deletions_and_order() {
        // What kubectl apply sends after removing env B and adding D before A.
        let out = patch(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{
                "name": "app",
                "$setElementOrder/env": [{"name": "D"}, {"name": "A"}],
                "env": [{"name": "D", "value": "4"}, {"name": "B", "$patch": "delete"}]
            }]
        }}}}));
        let app = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(app["env"], json!([{"name": "D", "value": "4"}, {"name": "A", "value": "1"}]));
        assert!(app.get("$setElementOrder/env").is_none());
    }

    #[test]
    fn nulls_delete_and_new_fields_are_cleaned() {
        let out =
            patch(json!({"metadata": {"labels": {"a": null}}, "spec": {"paused": true, "extra": {"k": null, "j": 1}}}));
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
        let no_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x", "args": ["a", "b"]}]}}}});
        assert_eq!(
            strategic_merge_patch(&deployment(), &no_key, "Deployment"),
            Err(PatchError::BadRequest(
                "map: map[args:[a b] image:x] does not contain declared merge key: name".into()
            ))
        );
        assert!(matches!(strategic_merge_patch(&deployment(), &no_key, "Deployment"), Err(PatchError::BadRequest(_))));
    }
}
