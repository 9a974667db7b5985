//! Structural validation of a custom object against its `openAPIV3Schema`, with the
//! messages kube-apiserver returns: kube-openapi's validator messages
//! (`spec.x in body must be of type integer: "string"`) wrapped into apimachinery field
//! errors the way apiextensions-apiserver's `validation.ValidateCustomResource` maps them
//! (Required → `Required value`, enum → `Unsupported value`, maxLength → `Too long`,
//! maxItems/maxProperties → `Too many`, type → `FieldValueTypeInvalid`, the rest →
//! `Invalid value`). Then the `x-kubernetes-list-type` set/map invariants
//! (`structurallisttype.ValidateListSetsAndMaps`).

use std::collections::HashSet;

use regex::Regex;
use serde_json::{Value, json};

use super::formats;
use super::schema::{self, ListType};
use crate::kube::field_error::FieldError;

/// Validate a whole custom object. At the root, `apiVersion`/`kind` are not checked
/// against the schema and of `metadata` only `name`/`generateName` are, because those are
/// the only metadata constraints a CRD schema may express.
///
/// On update (`old` given) this ratchets like kube-apiserver 1.33 (CRDValidationRatcheting,
/// GA): a value equal to its correlated old value is not validated again, so an update
/// never fails on data it did not change.
pub(super) fn validate_object(root: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Value::Object(map) = obj else {
        validate(root, obj, old, "", &mut errs);
        return errs;
    };
    let strip = |m: &serde_json::Map<String, Value>| {
        let mut m = m.clone();
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("metadata");
        Value::Object(m)
    };
    let restricted = strip(map);
    let old_restricted = old.and_then(Value::as_object).map(strip);
    let mut root_schema = root.clone();
    if let Some(Value::Object(props)) = root_schema.get_mut("properties") {
        props.remove("apiVersion");
        props.remove("kind");
        props.remove("metadata");
    }
    if let Some(Value::Array(req)) = root_schema.get_mut("required") {
        req.retain(|r| !matches!(r.as_str(), Some("apiVersion" | "kind" | "metadata")));
    }
    validate(&root_schema, &restricted, old_restricted.as_ref(), "", &mut errs);
    if let (Some(meta_schema), Some(meta)) = (schema::property(root, "metadata"), map.get("metadata")) {
        for field in ["name", "generateName"] {
            if let (Some(s), Some(v)) = (schema::property(meta_schema, field), meta.get(field)) {
                let old_v = old.and_then(|o| o.get("metadata")).and_then(|m| m.get(field));
                validate(s, v, old_v, &format!("metadata.{field}"), &mut errs);
            }
        }
    }
    errs
}

/// Validate a value against a schema node with paths relative to it (used for schema
/// `default`s at CRD admission).
pub(super) fn validate_value(s: &Value, v: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate(s, v, None, "", &mut errs);
    errs
}

/// kube-openapi's subject of a message: `<path> in body `, also for an empty path (a
/// schema `default` validated on its own reads ` in body must be of type integer`).
fn subject(path: &str) -> String {
    format!("{path} in body ")
}

fn length_or_pattern_error(s: &Value, text: &str, v: &Value, path: &str) -> Option<FieldError> {
    // kube-openapi counts characters (runes), not bytes, although apimachinery's
    // `Too long` message says bytes.
    let chars = text.chars().count() as u64;
    if let Some(max) = limit(s, "maxLength")
        && chars > max
    {
        return Some(FieldError::too_long(path, max as usize));
    }
    if let Some(min) = limit(s, "minLength")
        && chars < min
    {
        return Some(FieldError::invalid(path, v, &format!("{}should be at least {min} chars long", subject(path))));
    }
    // An uncompilable pattern is refused at CRD admission; never here.
    let pattern = s.get("pattern").and_then(Value::as_str)?;
    let re = Regex::new(pattern).ok()?;
    (!re.is_match(text)).then(|| FieldError::invalid(path, v, &format!("{}should match '{pattern}'", subject(path))))
}

/// Go's `%v` of a float64 bound (`1`, `1.5`).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e21 { format!("{v:.0}") } else { format!("{v}") }
}

fn validate(s: &Value, v: &Value, old: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    if old == Some(v) {
        return;
    }
    if v.is_null() {
        let t = schema::type_of(s);
        if !schema::nullable(s) && !t.is_empty() {
            errs.push(type_error(path, t, "null"));
        }
        return;
    }
    if !type_ok(s, v, path, errs) {
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| json_eq(a, v))
    {
        errs.push(FieldError::not_supported(path, v, allowed));
    }
    match v {
        Value::String(text) => string_checks(s, text, v, path, errs),
        Value::Number(n) => number_checks(s, n.as_f64().unwrap_or(f64::NAN), v, path, errs),
        Value::Array(items) => array_checks(s, items, old, path, errs),
        Value::Object(map) => object_checks(s, map, old, path, errs),
        _ => {}
    }
    composition_checks(s, v, old, path, errs);
}

fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::type_invalid(
        path,
        &Value::String(actual.to_owned()),
        &format!("{}must be of type {expected}: {actual:?}", subject(path)),
    )
}

fn type_ok(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) -> bool {
    let actual = schema::json_type_name(v);
    if schema::int_or_string(s) {
        if matches!(actual, "integer" | "string") {
            return true;
        }
        errs.push(type_error(path, "integer,string", actual));
        return false;
    }
    let expected = schema::type_of(s);
    let ok = match expected {
        "" => true,
        "number" => matches!(actual, "integer" | "number"),
        t => t == actual,
    };
    if !ok {
        errs.push(type_error(path, expected, actual));
    }
    ok
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q)))
        }
        _ => a == b,
    }
}

fn limit(s: &Value, key: &str) -> Option<u64> {
    s.get(key).and_then(Value::as_u64)
}

fn string_checks(s: &Value, text: &str, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    // kube-openapi's stringValidator stops at its first failure (maxLength, minLength,
    // pattern); formats are another validator's.
    if let Some(e) = length_or_pattern_error(s, text, v, path) {
        errs.push(e);
    }
    if let Some(format) = s.get("format").and_then(Value::as_str)
        && formats::check(format, text) == Some(false)
    {
        errs.push(FieldError::invalid(path, v, &format!("{}must be of type {format}: {text:?}", subject(path))));
    }
}

fn number_checks(s: &Value, n: f64, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(m) = s.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
        && (n / m).fract() != 0.0
    {
        errs.push(FieldError::invalid(path, v, &format!("{}should be a multiple of {}", subject(path), num(m))));
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        if schema::flag(s, "exclusiveMaximum") {
            if n >= max {
                errs.push(FieldError::invalid(path, v, &format!("{}should be less than {}", subject(path), num(max))));
            }
        } else if n > max {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{}should be less than or equal to {}", subject(path), num(max)),
            ));
        }
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        if schema::flag(s, "exclusiveMinimum") {
            if n <= min {
                errs.push(FieldError::invalid(
                    path,
                    v,
                    &format!("{}should be greater than {}", subject(path), num(min)),
                ));
            }
        } else if n < min {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{}should be greater than or equal to {}", subject(path), num(min)),
            ));
        }
    }
}

fn array_checks(s: &Value, items: &[Value], old: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let len = items.len();
    if let Some(max) = limit(s, "maxItems")
        && len as u64 > max
    {
        errs.push(FieldError::too_many(path, len, max as usize));
    }
    if let Some(min) = limit(s, "minItems")
        && (len as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            &json!(len),
            &format!("{}should have at least {min} items", subject(path)),
        ));
    }
    if schema::flag(s, "uniqueItems") && items.iter().enumerate().any(|(i, a)| items[..i].iter().any(|b| json_eq(a, b)))
    {
        // kube-openapi's DuplicateItems error carries no value, rendered as "".
        errs.push(FieldError::invalid(path, &json!(""), &format!("{}shouldn't contain duplicates", subject(path))));
    }
    if let Some(item_schema) = schema::items(s) {
        let list_type = schema::list_type(s);
        let olds = old.and_then(Value::as_array);
        for (i, item) in items.iter().enumerate() {
            let old_item = olds.and_then(|o| schema::correlate(&list_type, item, o));
            validate(item_schema, item, old_item, &schema::index(path, i), errs);
        }
    }
}

fn object_checks(
    s: &Value,
    map: &serde_json::Map<String, Value>,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errs.push(FieldError::required(schema::join(path, r), ""));
            }
        }
    }
    if schema::embedded_resource(s) {
        embedded_type_meta(map, path, errs);
    }
    let len = map.len();
    if let Some(max) = limit(s, "maxProperties")
        && len as u64 > max
    {
        errs.push(FieldError::too_many(path, len, max as usize));
    }
    if let Some(min) = limit(s, "minProperties")
        && (len as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            &json!(len),
            &format!("{}should have at least {min} properties", subject(path)),
        ));
    }
    for (k, child) in map {
        let old_child = old.and_then(|o| o.get(k));
        if let Some(prop) = schema::property(s, k) {
            validate(prop, child, old_child, &schema::join(path, k), errs);
        } else if let Some(extra) = schema::additional_properties(s).filter(|e| !e.is_null()) {
            validate(extra, child, old_child, &schema::join(path, k), errs);
        }
    }
}

/// An `x-kubernetes-embedded-resource` object must carry its own `apiVersion` and `kind`
/// (apiextensions `objectmeta.validateEmbeddedResource`).
fn embedded_type_meta(map: &serde_json::Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    for field in ["apiVersion", "kind"] {
        let p = schema::join(path, field);
        match map.get(field) {
            None => errs.push(FieldError::required(p, "must not be empty")),
            Some(Value::String(v)) if v.is_empty() => {
                errs.push(FieldError::invalid(p, &json!(""), "must not be empty"))
            }
            Some(Value::String(_)) => {}
            Some(other) => errs.push(FieldError::invalid(p, other, "must be a string")),
        }
    }
}

/// allOf/anyOf/oneOf/not, which structural schemas allow for value validations only.
fn composition_checks(s: &Value, v: &Value, old: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let branch_errors = |b: &Value| {
        let mut e = Vec::new();
        validate(b, v, old, path, &mut e);
        e
    };
    let shown = if path.is_empty() { "<nil>".to_owned() } else { path.to_owned() };
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for b in all {
            errs.extend(branch_errors(b));
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let results: Vec<Vec<FieldError>> = any.iter().map(branch_errors).collect();
        if !results.is_empty() && results.iter().all(|r| !r.is_empty()) {
            errs.push(FieldError::invalid(
                path,
                &json!(""),
                &format!("{shown:?} must validate at least one schema (anyOf)"),
            ));
            errs.extend(results.into_iter().flatten());
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let passing = one.iter().filter(|b| branch_errors(b).is_empty()).count();
        if passing != 1 {
            errs.push(FieldError::invalid(
                path,
                &json!(""),
                &format!("{shown:?} must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = s.get("not")
        && branch_errors(not).is_empty()
    {
        errs.push(FieldError::invalid(path, &json!(""), &format!("{shown:?} must not validate the schema (not)")));
    }
}

/// `x-kubernetes-list-type: set|map` invariants: duplicates are `Duplicate value` at the
/// index of the repeated item; for a map list the value shown is the key fields.
pub(super) fn validate_list_types(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Array(items) => {
            match schema::list_type(s) {
                ListType::Atomic => {}
                ListType::Set => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].iter().any(|prev| json_eq(prev, item)) {
                            errs.push(FieldError::duplicate(schema::index(path, i), item));
                        }
                    }
                }
                ListType::Map(keys) => {
                    let item_schema = schema::items(s);
                    let mut seen: HashSet<String> = HashSet::new();
                    for (i, item) in items.iter().enumerate() {
                        let Value::Object(obj) = item else {
                            if !item.is_null() {
                                errs.push(FieldError::invalid(
                                    schema::index(path, i),
                                    item,
                                    "must be an object for an array of list-type map",
                                ));
                            }
                            continue;
                        };
                        let mut key_value = serde_json::Map::new();
                        for k in &keys {
                            // A missing key takes its schema default, as the apiserver does.
                            let val = obj.get(k).cloned().or_else(|| {
                                item_schema
                                    .and_then(|is| schema::property(is, k))
                                    .and_then(|p| p.get("default"))
                                    .cloned()
                            });
                            if let Some(val) = val {
                                key_value.insert(k.clone(), val);
                            }
                        }
                        let key_value = Value::Object(key_value);
                        if !seen.insert(key_value.to_string()) {
                            let shown = if keys.len() == 1 {
                                json!({ keys[0].clone(): key_value.get(&keys[0]).cloned().unwrap_or(Value::Null) })
                            } else {
                                key_value
                            };
                            errs.push(FieldError::duplicate(schema::index(path, i), &shown));
                        }
                    }
                }
            }
            if let Some(item_schema) = schema::items(s) {
                for (i, item) in items.iter().enumerate() {
                    validate_list_types(item_schema, item, &schema::index(path, i), errs);
                }
            }
        }
        Value::Object(map) => {
            for (k, child) in map {
                if let Some(cs) = schema::child(s, k).filter(|c| !c.is_null()) {
                    validate_list_types(cs, child, &schema::join(path, k), errs);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn spec_schema(props: Value) -> Value {
        json!({"type": "object", "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": props}
        }})
    }

    fn check(props: Value, spec: Value) -> Vec<String> {
        msgs(&validate_object(
            &spec_schema(props),
            &json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}, "spec": spec}),
            None,
        ))
    }

    #[test]
    fn type_errors_use_kube_openapi_wording_and_reason() {
        let errs = validate_object(
            &spec_schema(json!({"x": {"type": "integer"}, "n": {"type": "number"}, "o": {"type": "object"}})),
            &json!({"spec": {"x": "string", "n": 3, "o": []}}),
            None,
        );
        assert_eq!(
            msgs(&errs),
            vec![
                r#"spec.x: Invalid value: "string": spec.x in body must be of type integer: "string""#,
                r#"spec.o: Invalid value: "array": spec.o in body must be of type object: "array""#,
            ]
        );
        assert!(errs.iter().all(|e| e.reason == "FieldValueTypeInvalid"));
        assert_eq!(
            check(json!({"x": {"type": "integer"}}), json!({"x": 1.5})),
            vec![r#"spec.x: Invalid value: "number": spec.x in body must be of type integer: "number""#]
        );
    }

    #[test]
    fn required_enum_pattern_lengths() {
        let props = json!({
            "req": {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
            "mode": {"type": "string", "enum": ["Auto", "Manual"]},
            "lvl": {"type": "integer", "enum": [1, 2]},
            "key": {"type": "string", "pattern": "^[a-z]+$"},
            "long": {"type": "string", "maxLength": 3},
            "short": {"type": "string", "minLength": 2}
        });
        assert_eq!(
            check(props, json!({"req": {}, "mode": "x", "lvl": 3, "key": "A1", "long": "abcd", "short": "é"})),
            vec![
                "spec.req.a: Required value",
                r#"spec.mode: Unsupported value: "x": supported values: "Auto", "Manual""#,
                r#"spec.lvl: Unsupported value: 3: supported values: "1", "2""#,
                r#"spec.key: Invalid value: "A1": spec.key in body should match '^[a-z]+$'"#,
                "spec.long: Too long: may not be more than 3 bytes",
                r#"spec.short: Invalid value: "é": spec.short in body should be at least 2 chars long"#,
            ]
        );
    }

    #[test]
    fn numbers_items_properties() {
        let props = json!({
            "min": {"type": "integer", "minimum": 1},
            "max": {"type": "number", "maximum": 2.5, "exclusiveMaximum": true},
            "tags": {"type": "array", "maxItems": 2, "uniqueItems": true, "items": {"type": "string"}},
            "few": {"type": "array", "minItems": 1},
            "meta": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string", "maxLength": 2000}},
            "empty": {"type": "object", "minProperties": 1}
        });
        assert_eq!(
            check(
                props,
                json!({"min": 0, "max": 2.5, "tags": ["a", "a", "b"], "few": [], "meta": {"a": "x", "b": 1}, "empty": {}})
            ),
            vec![
                "spec.min: Invalid value: 0: spec.min in body should be greater than or equal to 1",
                "spec.max: Invalid value: 2.5: spec.max in body should be less than 2.5",
                "spec.tags: Too many: 3: must have at most 2 items",
                r#"spec.tags: Invalid value: "": spec.tags in body shouldn't contain duplicates"#,
                "spec.few: Invalid value: 0: spec.few in body should have at least 1 items",
                "spec.meta: Too many: 2: must have at most 1 item",
                r#"spec.meta.b: Invalid value: "integer": spec.meta.b in body must be of type string: "integer""#,
                "spec.empty: Invalid value: 0: spec.empty in body should have at least 1 properties",
            ]
        );
    }

    #[test]
    fn nullable_int_or_string_and_formats() {
        let props = json!({
            "opt": {"type": "string", "nullable": true},
            "req": {"type": "string"},
            "port": {"x-kubernetes-int-or-string": true},
            "when": {"type": "string", "format": "date-time"},
            "n": {"type": "integer", "format": "int32"}
        });
        assert_eq!(
            check(props.clone(), json!({"opt": null, "req": null, "port": true, "when": "soon", "n": 1})),
            vec![
                r#"spec.req: Invalid value: "null": spec.req in body must be of type string: "null""#,
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
                r#"spec.when: Invalid value: "soon": spec.when in body must be of type date-time: "soon""#,
            ]
        );
        assert!(check(props, json!({"port": "http", "when": "2024-01-01T00:00:00Z"})).is_empty());
    }

    #[test]
    fn root_metadata_only_name_constraints() {
        let s = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}},
            "spec": {"type": "object"}
        }, "required": ["spec"]});
        let errs = msgs(&validate_object(
            &s,
            &json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "toolong", "labels": {"a": "b"}}}),
            None,
        ));
        assert_eq!(errs, vec!["spec: Required value", "metadata.name: Too long: may not be more than 5 bytes"]);
    }

    #[test]
    fn list_type_set_and_map_duplicates() {
        let s = json!({"type": "object", "properties": {
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "conds": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                      "items": {"type": "object", "properties": {"type": {"type": "string"}}}}
        }});
        let mut errs = Vec::new();
        validate_list_types(
            &s,
            &json!({"set": ["a", "b", "a"], "conds": [{"type": "Ready"}, {"type": "Ready", "status": "x"}]}),
            "status",
            &mut errs,
        );
        assert_eq!(
            msgs(&errs),
            vec![
                r#"status.set[2]: Duplicate value: "a""#,
                r#"status.conds[1]: Duplicate value: map[string]interface {}{"type":"Ready"}"#,
            ]
        );
        assert!(errs.iter().all(|e| e.reason == "FieldValueDuplicate"));
    }

    #[test]
    fn embedded_resources_need_type_meta() {
        let props = json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}});
        assert_eq!(
            check(props.clone(), json!({"template": {"kind": ""}})),
            vec![
                "spec.template.apiVersion: Required value: must not be empty",
                r#"spec.template.kind: Invalid value: "": must not be empty"#,
            ]
        );
        assert!(check(props, json!({"template": {"apiVersion": "v1", "kind": "Pod"}})).is_empty());
    }

    #[test]
    fn any_of_and_one_of() {
        let props = json!({"x": {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}});
        assert_eq!(
            check(props.clone(), json!({"x": {"a": 1, "b": 2}})),
            vec![r#"spec.x: Invalid value: "": "spec.x" must validate one and only one schema (oneOf)"#]
        );
        assert!(check(props, json!({"x": {"a": 1}})).is_empty());
    }
}
