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
/// scalar (string of at most 2000 characters, number or boolean): docs/providers.md, Are.na.
///
/// Structural schemas allow neither `propertyNames` nor a typed "any scalar" node, so the
/// values are untyped nodes (allowed with `x-kubernetes-preserve-unknown-fields`) whose value
/// validations only bite on the JSON type they apply to: `maxLength` limits strings, and the
/// contradictory `minProperties: 1` / `maxProperties: 0` and `minItems: 1` / `maxItems: 0`
/// reject every object and every array. The map is bounded by `maxProperties`.
///
/// The key pattern cannot be checked here: kube-apiserver only compiles a CEL rule on a
/// node it can give a CEL type, and a map whose values have no `type` has none
/// (`SchemaDeclType` returns nil; the CRD is refused with "failed to convert to declType
/// for CEL validation rules"). The controller checks the keys before any upstream request
/// ([`super::validate`], `Ready=False` reason `InvalidSpec`), and the chart's
/// ValidatingAdmissionPolicy refuses them at `kubectl apply` (its CEL sees the object
/// untyped).
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
        }
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

/// Rewrite schemars' unsigned integer formats as the ones Kubernetes knows.
///
/// schemars marks `u32`/`u64` fields `format: uint32`/`uint64`, which kube-apiserver does not
/// recognize (`kubectl apply` prints `Warning: unrecognized format "uint32"`); OpenAPI and
/// Kubernetes know `int32` and `int64`. The sign is kept as `minimum: 0` (schemars already
/// writes it, or a higher one from `range(min = ..)`).
pub fn kubernetes_integer_formats(node: &mut serde_json::Value) {
    use serde_json::Value;
    match node {
        Value::Object(map) => {
            let format = match map.get("format").and_then(Value::as_str) {
                Some("uint32" | "uint16" | "uint8") => Some("int32"),
                Some("uint64" | "uint") => Some("int64"),
                _ => None,
            };
            if let Some(format) = format {
                map.insert("format".into(), format.into());
                if !map.get("minimum").and_then(Value::as_f64).is_some_and(|m| m >= 0.0) {
                    map.insert("minimum".into(), 0.into());
                }
            }
            map.values_mut().for_each(kubernetes_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(kubernetes_integer_formats),
        _ => {}
    }
}
