//! The `Warning`s kube-apiserver 1.37 sends when a CRD is written (apiextensions
//! `registry/customresourcedefinition/strategy.go`, `WarningsOnCreate`/`WarningsOnUpdate`):
//! formats it does not know (`unrecognized format "uint32"`; on update only those the old
//! CRD did not have yet), and `x-kubernetes-list-type: set` over objects or arrays. The
//! server's warning recorder drops repeats, so each text appears once.

use serde_json::Value;

use super::schema;

/// String formats kube-apiserver validates (`apiserver/validation/formats.go`, 1.37),
/// compared with `-` removed as go-openapi normalizes them.
const STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

/// The warnings for writing `crd` over `old` (`None`: a create).
pub fn crd_warnings(crd: &Value, old: Option<&Value>) -> Vec<String> {
    let old_formats = old.map(unrecognized_formats).unwrap_or_default();
    let mut warnings: Vec<String> = unrecognized_formats(crd)
        .into_iter()
        .filter(|f| !old_formats.contains(f))
        .map(|f| format!("unrecognized format {f:?}"))
        .collect();
    let old_sets = old.map(set_warnings).unwrap_or_default();
    warnings.extend(set_warnings(crd).into_iter().filter(|w| !old_sets.contains(w)));
    let mut seen = std::collections::HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    warnings
}

/// Every schema of the CRD's versions.
fn version_schemas(crd: &Value) -> Vec<&Value> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| vs.iter().filter_map(|v| v.pointer("/schema/openAPIV3Schema")).collect())
        .unwrap_or_default()
}

/// `f` on every node of `s` (apiextensions `SchemaHas` walks these keywords).
fn each_node<'a>(s: &'a Value, f: &mut impl FnMut(&'a Value)) {
    if !s.is_object() {
        return;
    }
    f(s);
    for key in ["items", "additionalProperties", "additionalItems", "not"] {
        match s.get(key) {
            Some(Value::Array(list)) => list.iter().for_each(|c| each_node(c, f)),
            Some(child) => each_node(child, f),
            None => {}
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            list.iter().for_each(|c| each_node(c, f));
        }
    }
    for key in ["properties", "patternProperties", "definitions", "dependencies"] {
        if let Some(map) = s.get(key).and_then(Value::as_object) {
            map.values().for_each(|c| each_node(c, f));
        }
    }
}

/// `GetUnrecognizedFormats` per node: integer formats int32/int64, number float/double,
/// string (or untyped) the formats above, no format on any other type.
fn unrecognized_formats(crd: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for root in version_schemas(crd) {
        each_node(root, &mut |s| {
            let Some(format) = s.get("format").and_then(Value::as_str).filter(|f| !f.is_empty()) else {
                return;
            };
            let known = match schema::type_of(s) {
                "" | "string" => STRING_FORMATS.contains(&format.replace('-', "").as_str()),
                "integer" => matches!(format, "int32" | "int64"),
                "number" => matches!(format, "float" | "double"),
                _ => false,
            };
            if !known {
                out.push(format.to_owned());
            }
        });
    }
    out
}

/// `getNonScalarListTypeSetWarnings`, sorted.
fn set_warnings(crd: &Value) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for root in version_schemas(crd) {
        each_node(root, &mut |s| {
            if s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set")
                && let Some(items) = schema::items(s)
                && matches!(schema::type_of(items), "object" | "array")
            {
                out.insert(format!(
                    "x-kubernetes-list-type: set for items of type {:?} is not supported by server-side apply or CEL validation rules",
                    schema::type_of(items)
                ));
            }
        });
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(props: Value) -> Value {
        json!({"spec": {"versions": [
            {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": props}}},
            {"name": "v2", "schema": {"openAPIV3Schema": {"type": "object", "properties": props}}}
        ]}})
    }

    #[test]
    fn unknown_formats_are_warned_once_and_only_when_new() {
        let with = crd(json!({
            "a": {"type": "integer", "format": "uint32"},
            "b": {"type": "integer", "format": "int64"},
            "c": {"type": "string", "format": "date-time"},
            "d": {"type": "string", "format": "k8s-short-name"},
            "e": {"type": "number", "format": "int32"},
            "f": {"type": "array", "items": {"type": "string", "format": "weird"}},
            "g": {"type": "boolean", "format": "byte"}
        }));
        assert_eq!(
            crd_warnings(&with, None),
            [
                "unrecognized format \"uint32\"",
                "unrecognized format \"int32\"",
                "unrecognized format \"weird\"",
                "unrecognized format \"byte\""
            ]
        );
        assert_eq!(crd_warnings(&with, Some(&with)), Vec::<String>::new());
        let without = crd(json!({"a": {"type": "integer", "format": "int32"}}));
        assert_eq!(crd_warnings(&with, Some(&without)).len(), 4);
        assert_eq!(crd_warnings(&without, Some(&with)), Vec::<String>::new());
    }

    #[test]
    fn sets_of_objects_are_warned_about() {
        let sets = crd(json!({
            "objs": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "object"}},
            "strs": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }));
        assert_eq!(
            crd_warnings(&sets, None),
            [
                "x-kubernetes-list-type: set for items of type \"object\" is not supported by server-side apply or CEL validation rules"
            ]
        );
    }
}
