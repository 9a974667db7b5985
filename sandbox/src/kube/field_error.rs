//! Field-level validation errors, rendered the way kube-apiserver renders
//! `k8s.io/apimachinery/pkg/util/validation/field.Error`: a cause with a `reason`, the
//! `field` path and a message such as `Too many: 51: must have at most 50 items`.
//! Both the CRD engine and the object store produce these; the store turns a list of them
//! into a 422 `Invalid` Status.

use std::fmt;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Status cause reason, e.g. `FieldValueRequired`, `FieldValueInvalid`.
    pub reason: &'static str,
    /// Dotted field path, e.g. `spec.arena.metadata`; `spec.items[2].name` for list items.
    pub field: String,
    /// The message without the field path, e.g. `Required value`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// How apimachinery (`field.Error.ErrorBody`) prints a bad value: strings with `%q`,
/// numbers and booleans with `%v`, `null` for nil, and anything else (maps, slices of the
/// unstructured object) with Go's `%#v`.
pub fn render_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::String(s) => format!("{s:?}"),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(_) | Value::Object(_) => go_sharp_v(v),
    }
}

/// Go's `%#v` of an unstructured JSON value (`[]interface {}{"a", 1}`,
/// `map[string]interface {}{"k":"v"}`, map keys sorted as `fmt` sorts them).
pub fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".to_owned(),
        Value::String(s) => format!("{s:?}"),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_sharp_v).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys.iter().map(|k| format!("{k:?}:{}", go_sharp_v(&map[k.as_str()]))).collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() { head } else { format!("{head}: {detail}") }
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: with_detail("Required value".into(), detail),
        }
    }
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", render_value(value)), detail),
        }
    }
    /// Type mismatch; apimachinery reports it with reason `FieldValueTypeInvalid`.
    pub fn type_invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            reason: "FieldValueTypeInvalid",
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", render_value(value)), detail),
        }
    }
    /// `field.NotSupported`: every supported value is `strconv.Quote(fmt.Sprint(v))`, so
    /// numbers are quoted too (`supported values: "1", "2"`).
    pub fn not_supported(field: impl Into<String>, value: &Value, allowed: &[Value]) -> Self {
        let allowed: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {}: supported values: {}", render_value(value), allowed.join(", ")),
        }
    }
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} {}", plural(max, "byte", "bytes")),
        }
    }
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        Self {
            reason: "FieldValueTooMany",
            field: field.into(),
            message: format!("Too many: {actual}: must have at most {max} {}", plural(max, "item", "items")),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self { reason: "FieldValueForbidden", field: field.into(), message: with_detail("Forbidden".into(), detail) }
    }
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", render_value(value)),
        }
    }
}
