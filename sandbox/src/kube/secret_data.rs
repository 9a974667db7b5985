//! Secret write rules of the core/v1 Secret strategy: `stringData` is a write-only
//! convenience merged into `data` (base64) and never stored; `type` defaults to `Opaque`
//! and is immutable. Shared with ConfigMaps: `immutable: true` freezes the data.

use base64::Engine;
use serde_json::{Value, json};

use super::field_error::FieldError;

/// Merge `stringData` into `data` (stringData wins on conflicts, as documented for
/// `Secret.stringData`), default `type`, check that `data` values are base64.
pub fn prepare(obj: &mut Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
        if !obj["data"].is_object() {
            obj["data"] = json!({});
        }
        for (k, v) in string_data {
            let s = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            obj["data"][k] = Value::String(base64::engine::general_purpose::STANDARD.encode(s));
        }
    }
    if obj["type"].as_str().is_none_or(str::is_empty) {
        obj["type"] = json!("Opaque");
    }
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            let decodes = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !decodes {
                // The real server fails JSON decoding of []byte with this wording.
                errs.push(FieldError::invalid(format!("data[{k}]"), v, "illegal base64 data"));
            }
        }
    }
    errs
}

/// `type` may not change (core/v1 `ValidateSecretUpdate`).
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    if old["type"] != new["type"] {
        vec![FieldError::invalid("type", &new["type"], "field is immutable")]
    } else {
        Vec::new()
    }
}

/// `immutable: true` Secrets and ConfigMaps (core/v1 `ValidateSecretUpdate` /
/// `ValidateConfigMapUpdate`): the data may not change and the flag may not be unset.
pub fn validate_immutable(old: &Value, new: &Value) -> Vec<FieldError> {
    if old["immutable"] != json!(true) {
        return Vec::new();
    }
    let mut errs = Vec::new();
    if new["immutable"] != json!(true) {
        errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
    for field in ["data", "binaryData"] {
        if old[field] != new[field] {
            errs.push(FieldError::forbidden(field, "field is immutable when `immutable` is set"));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_is_merged_and_dropped() {
        let mut s = json!({"data": {"a": "eA=="}, "stringData": {"b": "hi", "a": "y"}});
        assert!(prepare(&mut s).is_empty());
        assert_eq!(s, json!({"data": {"a": "eQ==", "b": "aGk="}, "type": "Opaque"}));
    }

    #[test]
    fn immutable_freezes_data() {
        let old = json!({"immutable": true, "data": {"a": "b"}});
        assert!(validate_immutable(&old, &old).is_empty());
        assert_eq!(validate_immutable(&old, &json!({"immutable": true, "data": {"a": "c"}})).len(), 1);
        assert_eq!(validate_immutable(&old, &json!({"data": {"a": "b"}})).len(), 1);
        assert!(validate_immutable(&json!({"data": {}}), &json!({"data": {"x": "y"}})).is_empty());
    }

    #[test]
    fn type_is_immutable() {
        assert_eq!(validate_update(&json!({"type": "Opaque"}), &json!({"type": "x"})).len(), 1);
    }
}
