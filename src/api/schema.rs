//! Hand-written schema fragments for fields whose Rust type cannot express a structural
//! Kubernetes schema on its own.
//!
//! kube-apiserver requires structural schemas: every node has a `type`, except nodes marked
//! `x-kubernetes-preserve-unknown-fields` (free-form JSON), and lists merged by key must say
//! so with `x-kubernetes-list-type: map` for server-side apply to merge them per entry.

use schemars::{Schema, SchemaGenerator, json_schema};

/// A free-form JSON object (Nango metadata, Mielto config): any nested values, kept as is.
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Are.na connection metadata: at most 50 keys, each `^[A-Za-z0-9_]{1,40}$`, each value a
/// scalar (string of at most 2000 characters, number or boolean). REFERENCE.md §3 "Write
/// semantics".
///
/// Structural schemas allow neither `propertyNames` nor a typed "any scalar" node, so:
/// the key pattern is a CEL rule on the map; the values are untyped nodes (allowed with
/// `x-kubernetes-preserve-unknown-fields`) whose value validations only bite on the JSON
/// type they apply to: `maxLength` limits strings, and the contradictory `minProperties: 1` /
/// `maxProperties: 0` and `minItems: 1` / `maxItems: 0` reject every object and every array.
/// The key rule checks `size(k)` first, as production CRDs do for map keys, and the map is
/// bounded by `maxProperties`, which keeps the apiserver's static CEL cost estimate in budget.
/// (A CEL `type(v)` check would read better but the CEL engine of the Kubernetes emulator,
/// kube-cel, does not implement `type()`.)
pub fn arena_metadata(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 50,
        "additionalProperties": {
            "x-kubernetes-preserve-unknown-fields": true,
            "maxLength": 2000,
            "minProperties": 1,
            "maxProperties": 0,
            "minItems": 1,
            "maxItems": 0
        },
        "x-kubernetes-validations": [
            {
                "rule": "self.all(k, size(k) <= 40 && k.matches('^[A-Za-z0-9_]{1,40}$'))",
                "message": "Are.na metadata keys must match ^[A-Za-z0-9_]{1,40}$"
            }
        ]
    })
}

/// `status.conditions`: the `metav1.Condition` list, as a list-map keyed by `type`, so that
/// server-side apply merges entries per condition type (Kubernetes API conventions; the
/// schema generated from k8s-openapi lacks the list-type markers).
pub fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>();
    let object = schema.ensure_object();
    // Optional Vec fields get `nullable`/`null` variants from schemars; the status list is
    // simply absent when empty, so the plain array type is what the server should see.
    object.insert("type".into(), "array".into());
    object.insert("x-kubernetes-list-type".into(), "map".into());
    object.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    schema
}
