//! Read-only accessors over a structural `openAPIV3Schema` node (JSON), and the two path
//! notations kube-apiserver uses in its messages.
//!
//! Schemas are walked as raw JSON rather than typed structs because the store hands the
//! engine CRD objects as JSON, and every walker (pruning, defaulting, validation, CEL) needs
//! the same handful of questions answered about a node.

use serde_json::{Map, Value};

/// `type` of the node ("" when absent, e.g. `x-kubernetes-int-or-string` or a
/// preserve-unknown-fields node without type).
pub(super) fn type_of(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

pub(super) fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

pub(super) fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

pub(super) fn property<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    properties(schema).and_then(|p| p.get(name))
}

/// `additionalProperties` as a schema. `true` means "any value" (an empty schema);
/// `false`/absent mean no additional properties are declared.
pub(super) fn additional_properties(schema: &Value) -> Option<&Value> {
    static ANY: Value = Value::Null;
    match schema.get("additionalProperties") {
        Some(Value::Bool(true)) => Some(&ANY),
        Some(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

pub(super) fn items(schema: &Value) -> Option<&Value> {
    schema.get("items").filter(|v| v.is_object())
}

pub(super) fn preserve_unknown(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-preserve-unknown-fields")
}

pub(super) fn embedded_resource(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-embedded-resource")
}

pub(super) fn int_or_string(schema: &Value) -> bool {
    flag(schema, "x-kubernetes-int-or-string")
}

pub(super) fn nullable(schema: &Value) -> bool {
    flag(schema, "nullable")
}

/// The schema governing `obj[key]`: a declared property first, else `additionalProperties`.
pub(super) fn child<'a>(schema: &'a Value, key: &str) -> Option<&'a Value> {
    property(schema, key).or_else(|| additional_properties(schema))
}

/// `x-kubernetes-list-type` of an array node (`atomic` when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

pub(super) fn list_type(schema: &Value) -> ListType {
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|ks| ks.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        ),
        _ => ListType::Atomic,
    }
}

/// The old counterpart of a list item, as the apiserver correlates them for transition
/// rules and ratcheting: by key for `map` lists, by value for `set` lists, none for atomic
/// lists.
pub(super) fn correlate<'a>(list_type: &ListType, item: &Value, olds: &'a [Value]) -> Option<&'a Value> {
    match list_type {
        ListType::Atomic => None,
        ListType::Set => olds.iter().find(|o| *o == item),
        ListType::Map(keys) => olds.iter().find(|o| keys.iter().all(|k| o.get(k) == item.get(k))),
    }
}

/// The JSON type name kube-openapi reports for a value (`integer` for whole numbers, the
/// way the apiserver's unstructured decoder yields int64 for them).
pub(super) fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Dotted child path as `field.Path.Child` prints it: `spec.foo`.
pub(super) fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

/// Index path as `field.Path.Index` prints it: `spec.items[2]`.
pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Map-key path as `field.Path.Key` prints it: `spec.labels[app]`.
pub(super) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// Fields of `metav1.ObjectMeta` (JSON names). Anything else under a resource's
/// `metadata` is dropped by the apiserver's ObjectMeta coercion, and reported as an unknown
/// field under `fieldValidation=Strict|Warn`.
pub(super) const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn child_prefers_properties_then_additional_properties() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}});
        assert_eq!(type_of(child(&s, "a").unwrap()), "string");
        assert_eq!(type_of(child(&s, "zzz").unwrap()), "integer");
        let closed = json!({"type": "object", "properties": {"a": {}}});
        assert!(child(&closed, "b").is_none());
        let open = json!({"type": "object", "additionalProperties": true});
        assert!(child(&open, "b").is_some());
    }

    #[test]
    fn list_types_and_paths() {
        assert_eq!(list_type(&json!({"type": "array"})), ListType::Atomic);
        assert_eq!(list_type(&json!({"x-kubernetes-list-type": "set"})), ListType::Set);
        assert_eq!(
            list_type(&json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})),
            ListType::Map(vec!["type".into()])
        );
        assert_eq!(join("", "spec"), "spec");
        assert_eq!(index(&join("spec", "items"), 2), "spec.items[2]");
        assert_eq!(key("metadata.labels", "app"), "metadata.labels[app]");
        assert_eq!(json_type_name(&json!(1)), "integer");
        assert_eq!(json_type_name(&json!(1.5)), "number");
    }
}
