//! The type information server-side apply needs at each point of an object: is a list
//! atomic, a set or a map (and keyed by what), is a map atomic, is a key a struct field.
//!
//! Sources: a CRD's structural schema (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`), the built-in tables in `builtin.rs`, or, for values without a
//! schema (`x-kubernetes-preserve-unknown-fields`), structured-merge-diff's "deduced" type:
//! granular maps and atomic lists.

use std::rc::Rc;

use serde_json::Value;

use super::builtin::{self, ListType};

#[derive(Clone, Debug)]
pub enum Node<'a> {
    /// The root of a custom resource: its CRD's `openAPIV3Schema` and its kind.
    CrdRoot(&'a Value, Rc<str>),
    /// A node of a CRD's `openAPIV3Schema`.
    Crd(&'a Value),
    /// A field of a built-in kind: (kind, dotted path with `[]` for list items).
    Builtin(Rc<str>, Rc<str>),
    /// No schema: maps are granular, lists atomic.
    Deduced,
}

impl<'a> Node<'a> {
    /// The root node for an object of `kind`.
    pub fn root(schema: Option<&'a Value>, kind: &str) -> Node<'a> {
        match schema {
            Some(s) => Node::CrdRoot(s, Rc::from(kind)),
            None => Node::Builtin(Rc::from(kind), Rc::from("")),
        }
    }

    /// The node of field `key` of an object, and whether `key` is a *named* field (a struct
    /// field rather than a key of a map).
    pub fn field(&self, key: &str) -> (Node<'a>, bool) {
        match self {
            // kube-apiserver types a custom resource's `metadata` as ObjectMeta, whatever the
            // CRD schema says about it.
            Node::CrdRoot(_, kind) if key == "metadata" => (Node::Builtin(kind.clone(), Rc::from("metadata")), true),
            Node::CrdRoot(schema, _) | Node::Crd(schema) => {
                if let Some(prop) = schema.get("properties").and_then(|p| p.get(key)) {
                    return (Node::Crd(prop), true);
                }
                match schema.get("additionalProperties") {
                    Some(ap @ Value::Object(_)) => (Node::Crd(ap), false),
                    _ => (Node::Deduced, false),
                }
            }
            Node::Builtin(kind, path) => {
                let child = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
                let named = !builtin::is_go_map(kind, path);
                (Node::Builtin(kind.clone(), Rc::from(child)), named)
            }
            Node::Deduced => (Node::Deduced, false),
        }
    }

    /// The node of the items of a list.
    pub fn item(&self) -> Node<'a> {
        match self {
            Node::CrdRoot(schema, _) | Node::Crd(schema) => match schema.get("items") {
                Some(items @ Value::Object(_)) => Node::Crd(items),
                _ => Node::Deduced,
            },
            Node::Builtin(kind, path) => Node::Builtin(kind.clone(), Rc::from(format!("{path}[]"))),
            Node::Deduced => Node::Deduced,
        }
    }

    pub fn list_type(&self) -> ListType {
        match self {
            Node::CrdRoot(schema, _) | Node::Crd(schema) => {
                match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("set") => ListType::Set,
                    Some("map") => {
                        let keys = schema
                            .get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|ks| ks.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                            .unwrap_or_default();
                        ListType::Map(keys)
                    }
                    _ => ListType::Atomic,
                }
            }
            Node::Builtin(kind, path) => builtin::list_type(kind, path),
            Node::Deduced => ListType::Atomic,
        }
    }

    pub fn is_atomic_map(&self) -> bool {
        match self {
            Node::CrdRoot(schema, _) | Node::Crd(schema) => {
                schema.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
            }
            Node::Builtin(kind, path) => builtin::is_atomic_map(kind, path),
            Node::Deduced => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn crd_schema_extensions() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "items": {"type": "array", "x-kubernetes-list-type": "map",
                              "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}},
                    "plain": {"type": "array", "items": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "ref": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"a": {"type": "string"}}},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}
            }
        });
        let root = Node::root(Some(&schema), "Thing");
        let (spec, named) = root.field("spec");
        assert!(named);
        assert_eq!(spec.field("tags").0.list_type(), ListType::Set);
        assert_eq!(spec.field("items").0.list_type(), ListType::Map(vec!["name".into()]));
        assert_eq!(spec.field("plain").0.list_type(), ListType::Atomic);
        let (labels, _) = spec.field("labels");
        assert!(!labels.field("x").1, "additionalProperties keys are not named fields");
        assert!(spec.field("ref").0.is_atomic_map());
        assert!(!spec.field("free").0.is_atomic_map());
        assert!(matches!(spec.field("free").0.field("anything").0, Node::Deduced));
        let (meta, _) = root.field("metadata");
        assert_eq!(meta.field("finalizers").0.list_type(), ListType::Set);
        assert!(!meta.field("labels").0.field("app").1);
    }
}
