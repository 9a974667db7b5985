//! Schema-aware operations on JSON values, after structured-merge-diff's `typed` package:
//! the field set a value sets (`to_field_set`), the difference of two values (`compare`),
//! the apply merge (`merge`) and removal of owned items (`remove_items`).

use serde_json::{Map, Value};

use super::builtin::ListType;
use super::fieldset::{FieldSet, Path, PathElement, same_value};
use super::schema::Node;

/// The path element of item `index` of a list of type `list_type`.
fn item_element(list_type: &ListType, index: usize, item: &Value) -> PathElement {
    match list_type {
        ListType::Map(keys) => PathElement::key_of(item, keys).unwrap_or(PathElement::Index(index)),
        ListType::Set => PathElement::value_of(item),
        ListType::Atomic => PathElement::Index(index),
    }
}

fn elements(list_type: &ListType, items: &[Value]) -> Vec<PathElement> {
    items.iter().enumerate().map(|(i, item)| item_element(list_type, i, item)).collect()
}

/// Why an applied configuration cannot be typed (structured-merge-diff refuses it before
/// merging): a list-map item that is not an object or lacks a key field, or two items of a
/// list-map or set under the same key.
pub fn config_error(value: &Value, node: &Node<'_>) -> Option<String> {
    config_error_at(value, node, &mut Vec::new())
}

fn config_error_at(value: &Value, node: &Node<'_>, path: &mut Path) -> Option<String> {
    match value {
        Value::Object(map) if !node.is_atomic_map() => map.iter().find_map(|(key, child)| {
            path.push(PathElement::field(key));
            let found = config_error_at(child, &node.field(key).0, path);
            path.pop();
            found
        }),
        Value::Array(items) => {
            let list_type = node.list_type();
            if list_type == ListType::Atomic {
                return None;
            }
            let at = super::fieldset::path_string(path);
            if let ListType::Map(keys) = &list_type {
                for (i, item) in items.iter().enumerate() {
                    let Some(obj) = item.as_object() else {
                        return Some(format!(
                            "{at}: element {i}: associative list with keys has an element that is not a map type"
                        ));
                    };
                    // A missing `protocol` has a schema default (see `PathElement::key_of`).
                    if let Some(k) = keys.iter().find(|k| !obj.contains_key(*k) && *k != "protocol") {
                        return Some(format!(
                            "{at}: element {i}: associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                        ));
                    }
                }
            }
            let pes = elements(&list_type, items);
            for (i, pe) in pes.iter().enumerate() {
                if pes[..i].contains(pe) {
                    return Some(format!("{at}: duplicate entries for key {pe}"));
                }
            }
            let item_node = node.item();
            items.iter().zip(pes).find_map(|(item, pe)| {
                path.push(pe);
                let found = config_error_at(item, &item_node, path);
                path.pop();
                found
            })
        }
        _ => None,
    }
}

/// The set of fields `value` specifies (structured-merge-diff `ToFieldSet`): every leaf,
/// every list item, every key of a map that is not a struct field; atomic lists and maps as
/// a whole.
pub fn to_field_set(value: &Value, node: &Node<'_>) -> FieldSet {
    let mut set = FieldSet::default();
    walk_field_set(value, node, &mut Vec::new(), &mut set);
    set
}

fn walk_field_set(value: &Value, node: &Node<'_>, path: &mut Path, set: &mut FieldSet) {
    match value {
        Value::Object(map) => {
            if node.is_atomic_map() {
                set.insert(path);
                return;
            }
            for (key, child) in map {
                let (child_node, named) = node.field(key);
                path.push(PathElement::field(key));
                walk_field_set(child, &child_node, path, set);
                if !named {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let list_type = node.list_type();
            if list_type == ListType::Atomic {
                set.insert(path);
                return;
            }
            let item_node = node.item();
            for (item, pe) in items.iter().zip(elements(&list_type, items)) {
                path.push(pe);
                walk_field_set(item, &item_node, path, set);
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
}

/// What changed from `lhs` to `rhs` (structured-merge-diff `Comparison`).
#[derive(Debug, Default, PartialEq)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    /// Fields set by the change: added or modified.
    pub fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }

    #[cfg(test)]
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

pub fn compare(lhs: &Value, rhs: &Value, node: &Node<'_>) -> Comparison {
    let mut out = Comparison::default();
    compare_at(Some(lhs), Some(rhs), node, &mut Vec::new(), &mut out);
    out
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn compare_leaf(lhs: Option<&Value>, rhs: Option<&Value>, path: &Path, out: &mut Comparison) {
    match (lhs, rhs) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        (Some(l), Some(r)) if !same_value(l, r) => out.modified.insert(path),
        _ => {}
    }
}

fn compare_at(lhs: Option<&Value>, rhs: Option<&Value>, node: &Node<'_>, path: &mut Path, out: &mut Comparison) {
    // A null takes the form of the other side (structured-merge-diff: "nil is a wildcard"),
    // but unlike an absent field it does not make the whole map or list added or removed.
    let present = match (lhs, rhs) {
        (_, Some(r)) if !r.is_null() => r,
        (Some(l), _) => l,
        (None, Some(r)) => r,
        (None, None) => unreachable!("compare needs at least one side"),
    };
    let kinds_match = match (lhs, rhs) {
        (Some(l), Some(r)) => l.is_null() || r.is_null() || std::mem::discriminant(l) == std::mem::discriminant(r),
        _ => true,
    };
    // Empty containers on both sides are compared as leaves, which keeps the empty/null
    // distinction (structured-merge-diff `emptyPromoteToLeaf`).
    let as_leaf = !kinds_match
        || match present {
            Value::Object(_) => node.is_atomic_map() || (is_empty_container(lhs) && is_empty_container(rhs)),
            Value::Array(_) => {
                node.list_type() == ListType::Atomic || (is_empty_container(lhs) && is_empty_container(rhs))
            }
            _ => true,
        };
    if as_leaf {
        compare_leaf(lhs, rhs, path, out);
        return;
    }
    match present {
        Value::Object(_) => {
            let empty = Map::new();
            let l = lhs.and_then(Value::as_object).unwrap_or(&empty);
            let r = rhs.and_then(Value::as_object).unwrap_or(&empty);
            for (key, rv) in r {
                path.push(PathElement::field(key));
                compare_at(l.get(key), Some(rv), &node.field(key).0, path, out);
                path.pop();
            }
            for (key, lv) in l.iter().filter(|(k, _)| !r.contains_key(*k)) {
                path.push(PathElement::field(key));
                compare_at(Some(lv), None, &node.field(key).0, path, out);
                path.pop();
            }
        }
        Value::Array(_) => {
            let list_type = node.list_type();
            let item_node = node.item();
            let empty = Vec::new();
            let l = lhs.and_then(Value::as_array).unwrap_or(&empty);
            let r = rhs.and_then(Value::as_array).unwrap_or(&empty);
            let lpes = elements(&list_type, l);
            let rpes = elements(&list_type, r);
            for (rv, pe) in r.iter().zip(&rpes) {
                let lv = lpes.iter().position(|p| p == pe).map(|i| &l[i]);
                path.push(pe.clone());
                compare_at(lv, Some(rv), &item_node, path, out);
                path.pop();
            }
            for (lv, pe) in l.iter().zip(&lpes).filter(|(_, pe)| !rpes.contains(pe)) {
                path.push(pe.clone());
                compare_at(Some(lv), None, &item_node, path, out);
                path.pop();
            }
        }
        _ => unreachable!("scalars are compared as leaves"),
    }
    // A map or list that appears or disappears as a whole is itself added or removed.
    match (lhs, rhs) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

/// Merges an applied configuration `rhs` into `lhs` (structured-merge-diff `Merge`): maps
/// and keyed lists merge item by item, everything else takes the applied value.
pub fn merge(lhs: &Value, rhs: &Value, node: &Node<'_>) -> Value {
    match (lhs, rhs) {
        (Value::Object(l), Value::Object(r)) if !node.is_atomic_map() => {
            let mut out = l.clone();
            for (key, rv) in r {
                let merged = match l.get(key) {
                    Some(lv) => merge(lv, rv, &node.field(key).0),
                    None => rv.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(r)) => match node.list_type() {
            ListType::Atomic => rhs.clone(),
            list_type => Value::Array(merge_list(l, r, &list_type, &node.item())),
        },
        _ => rhs.clone(),
    }
}

/// Merges keyed lists, keeping the live order of live items and placing applied items
/// relative to the items they share with live (the algorithm of structured-merge-diff's
/// `mergingWalker.visitListItems`), so re-applying the same configuration never reorders.
fn merge_list(l: &[Value], r: &[Value], list_type: &ListType, item_node: &Node<'_>) -> Vec<Value> {
    let lpes = elements(list_type, l);
    let rpes = elements(list_type, r);
    let lhs_index = |pe: &PathElement| lpes.iter().position(|p| p == pe);
    let rhs_index = |pe: &PathElement| rpes.iter().position(|p| p == pe);
    let mut shared: std::collections::VecDeque<&PathElement> =
        rpes.iter().filter(|pe| lhs_index(pe).is_some()).collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: Vec<&PathElement> = Vec::new();
    let mut out = Vec::with_capacity(l.len().max(r.len()));
    let merge_item = |pe: &PathElement, rv: &Value| match lhs_index(pe) {
        Some(li) => merge(&l[li], rv, item_node),
        None => rv.clone(),
    };
    let (mut li, mut ri) = (0, 0);
    while li < l.len() || ri < r.len() {
        if li < l.len() && ri < r.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.push(pe);
                out.push(merge_item(pe, &r[ri]));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if rhs_index(pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                // A shared item, but not the one the applied order wants next.
                li += 1;
                continue;
            }
        }
        if li < l.len() {
            let pe = &lpes[li];
            if rhs_index(pe).is_none() {
                out.push(l[li].clone());
                li += 1;
                continue;
            }
            if merged_rhs.contains(&pe) || ri >= r.len() {
                li += 1;
                continue;
            }
        }
        if ri < r.len() {
            let pe = &rpes[ri];
            if !merged_rhs.contains(&pe) {
                merged_rhs.push(pe);
                out.push(merge_item(pe, &r[ri]));
            }
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// Removes from `value` every member of `set` (structured-merge-diff `RemoveItems`).
pub fn remove_items(value: &Value, set: &FieldSet, node: &Node<'_>) -> Value {
    if set.is_empty() {
        return value.clone();
    }
    remove_below(value, set, node).unwrap_or_else(|| match value {
        Value::Array(_) => Value::Array(Vec::new()),
        _ => Value::Object(Map::new()),
    })
}

/// None when a walked map or list ends up empty: structured-merge-diff then leaves a null
/// in its parent, which kube-apiserver drops (null non-nullable fields are pruned), so the
/// emptied field disappears while its parent stays.
fn remove_below(value: &Value, set: &FieldSet, node: &Node<'_>) -> Option<Value> {
    match value {
        Value::Object(map) if !node.is_atomic_map() => {
            let mut out = Map::new();
            let mut kept_any = false;
            for (key, child) in map {
                let pe = PathElement::field(key);
                if set.has_member(&pe) {
                    continue;
                }
                kept_any = true;
                let kept = match set.child(&pe) {
                    Some(sub) => remove_below(child, sub, &node.field(key).0),
                    None => Some(child.clone()),
                };
                if let Some(kept) = kept {
                    out.insert(key.clone(), kept);
                }
            }
            kept_any.then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let list_type = node.list_type();
            if list_type == ListType::Atomic {
                return Some(value.clone());
            }
            let item_node = node.item();
            let kept: Vec<Value> = items
                .iter()
                .zip(elements(&list_type, items))
                .filter(|(_, pe)| !set.has_member(pe))
                .filter_map(|(item, pe)| match set.child(&pe) {
                    Some(sub) => remove_below(item, sub, &item_node),
                    None => Some(item.clone()),
                })
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => Some(value.clone()),
    }
}

/// Adds as members the struct fields that `set` only has children under
/// (structured-merge-diff `EnsureNamedFieldsAreMembers`), so that removing a struct's last
/// owned field can remove the struct too, while a map emptied of its keys stays.
pub fn ensure_named_fields_are_members(set: &FieldSet, node: &Node<'_>) -> FieldSet {
    let mut out = set.clone();
    for (pe, child) in set.children() {
        let child_node = match pe {
            PathElement::Field(name) => {
                let (child_node, named) = node.field(name);
                if named {
                    out.insert_member(pe.clone());
                }
                child_node
            }
            _ => node.item(),
        };
        let ensured = ensure_named_fields_are_members(child, &child_node);
        if let Some(slot) = out.child_mut(pe) {
            *slot = ensured;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn crd() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                              "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "string"}}}},
                    "args": {"type": "array", "items": {"type": "string"}}
                }}
            }
        })
    }

    fn render(set: &FieldSet) -> Value {
        set.to_fields_v1()
    }

    #[test]
    fn field_set_of_an_applied_configuration() {
        let schema = crd();
        let node = Node::root(Some(&schema), "Thing");
        let cfg = json!({
            "apiVersion": "x/v1", "kind": "Thing",
            "metadata": {"name": "a", "labels": {"app": "x"}},
            "spec": {"replicas": 1, "tags": ["b"], "items": [{"name": "n", "v": "1"}], "args": ["x"]}
        });
        assert_eq!(
            render(&to_field_set(&cfg, &node)),
            json!({
                "f:apiVersion": {}, "f:kind": {},
                "f:metadata": {"f:labels": {"f:app": {}}, "f:name": {}},
                "f:spec": {"f:args": {}, "f:items": {"k:{\"name\":\"n\"}": {".": {}, "f:name": {}, "f:v": {}}},
                           "f:replicas": {}, "f:tags": {"v:\"b\"": {}}}
            })
        );
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let schema = crd();
        let node = Node::root(Some(&schema), "Thing");
        let old = json!({"spec": {"replicas": 1, "items": [{"name": "a", "v": "1"}, {"name": "b"}]}});
        let new =
            json!({"metadata": {"labels": {"x": "y"}}, "spec": {"replicas": 2, "items": [{"name": "a", "v": "2"}]}});
        let cmp = compare(&old, &new, &node);
        assert_eq!(render(&cmp.added), json!({"f:metadata": {".": {}, "f:labels": {".": {}, "f:x": {}}}}));
        assert_eq!(
            render(&cmp.modified),
            json!({"f:spec": {"f:items": {"k:{\"name\":\"a\"}": {"f:v": {}}}, "f:replicas": {}}})
        );
        assert_eq!(
            render(&cmp.removed),
            json!({"f:spec": {"f:items": {"k:{\"name\":\"b\"}": {".": {}, "f:name": {}}}}})
        );
        assert!(compare(&old, &old, &node).is_same());
    }

    #[test]
    fn merge_by_list_type() {
        let schema = crd();
        let node = Node::root(Some(&schema), "Thing");
        let live = json!({"spec": {"replicas": 1, "tags": ["a"], "args": ["1", "2"],
                                   "items": [{"name": "a", "v": "1"}, {"name": "b", "v": "2"}]}});
        let cfg = json!({"spec": {"tags": ["b"], "args": ["3"], "items": [{"name": "b", "v": "3"}, {"name": "c"}]}});
        assert_eq!(
            merge(&live, &cfg, &node),
            json!({"spec": {"replicas": 1, "tags": ["a", "b"], "args": ["3"],
                            "items": [{"name": "a", "v": "1"}, {"name": "b", "v": "3"}, {"name": "c"}]}})
        );
    }

    #[test]
    fn merging_the_same_items_keeps_live_order() {
        let node = Node::Builtin("Deployment".into(), "status".into());
        let live = json!({"conditions": [{"type": "A"}, {"type": "B"}, {"type": "C"}]});
        let cfg = json!({"conditions": [{"type": "A"}, {"type": "C"}]});
        assert_eq!(merge(&live, &cfg, &node), live);
        let reordered = json!({"conditions": [{"type": "C"}, {"type": "A"}]});
        assert_eq!(
            merge(&live, &reordered, &node),
            json!({"conditions": [{"type": "B"}, {"type": "C"}, {"type": "A"}]})
        );
    }

    #[test]
    fn remove_items_and_named_fields() {
        let schema = crd();
        let node = Node::root(Some(&schema), "Thing");
        let value = json!({"spec": {"replicas": 1, "items": [{"name": "a"}, {"name": "b"}]}, "metadata": {"labels": {"k": "v"}}});
        let mut set = FieldSet::default();
        set.insert(&[PathElement::field("spec"), PathElement::field("replicas")]);
        set.insert(&[
            PathElement::field("spec"),
            PathElement::field("items"),
            PathElement::key_of(&json!({"name": "b"}), &["name".into()]).unwrap(),
        ]);
        set.insert(&[PathElement::field("metadata"), PathElement::field("labels"), PathElement::field("k")]);
        assert_eq!(remove_items(&value, &set, &node), json!({"spec": {"items": [{"name": "a"}]}, "metadata": {}}));
        let ensured = ensure_named_fields_are_members(&set, &node);
        assert!(ensured.has_member(&PathElement::field("spec")));
        assert!(ensured.has_member(&PathElement::field("metadata")));
        let meta = ensured.child(&PathElement::field("metadata")).unwrap();
        assert!(meta.has_member(&PathElement::field("labels")), "labels is an ObjectMeta field");
        assert!(!meta.child(&PathElement::field("labels")).unwrap().has_member(&PathElement::field("x")));
    }

    #[test]
    fn duplicates_in_keyed_lists_are_found() {
        let schema = crd();
        let node = Node::root(Some(&schema), "Thing");
        let cfg = json!({"spec": {"items": [{"name": "a"}, {"name": "a"}]}});
        assert_eq!(config_error(&cfg, &node).unwrap(), r#".spec.items: duplicate entries for key [name="a"]"#);
        assert!(config_error(&json!({"spec": {"args": ["a", "a"]}}), &node).is_none());
        assert_eq!(
            config_error(&json!({"spec": {"items": ["a"]}}), &node).unwrap(),
            ".spec.items: element 0: associative list with keys has an element that is not a map type"
        );
        assert_eq!(
            config_error(&json!({"spec": {"items": [{"v": "1"}]}}), &node).unwrap(),
            r#".spec.items: element 0: associative list with keys has an element that omits key field "name" (and doesn't have default value)"#
        );
        let ports = Node::Builtin("Deployment".into(), "spec.template.spec.containers[]".into());
        assert!(config_error(&json!({"ports": [{"containerPort": 80}]}), &ports).is_none(), "protocol defaults");
    }
}
