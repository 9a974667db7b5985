//! Are.na v3 connection metadata: validation of the PUT body against `MetadataInput` and the
//! documented rules, and the merge (docs/providers.md, Are.na, `openapi/arena.json`).
//!
//! Which status each rule gets (the docs give 400 for "invalid request parameters", validated
//! "against this OpenAPI specification", and 422 for "well-formed request that could not be
//! processed"):
//! - **400**, because the OpenAPI schema itself expresses it: a missing or non-JSON body
//!   ("body is required", the documented 400 example), a body or `metadata` that is not an
//!   object, a value that is not a string/number/boolean/null (`oneOf`), a string over 2000
//!   characters (`maxLength`), more than 50 keys in the request (`maxProperties`).
//! - **422**, because only the description states it, so the server checks it after schema
//!   validation: a key outside `^[A-Za-z0-9_]{1,40}$` (the aredotna CLI's pattern), more
//!   than 50 keys in the *merged* result, more than 32 KB in the merged result.

use serde_json::{Map, Value};

/// `maxProperties` of `MetadataInput` / `Metadata`.
pub const MAX_KEYS: usize = 50;
/// `maxLength` of string values.
pub const MAX_STRING_CHARS: usize = 2000;
/// "32KB total", measured as the bytes of the compact JSON encoding of the stored object.
pub const MAX_TOTAL_BYTES: usize = 32 * 1024;
const MAX_KEY_CHARS: usize = 40;

/// Why a PUT body was rejected; the handler renders it in the Are.na error envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// 400 with `details.message` and optional `details.errors`.
    BadRequest { message: String, errors: Vec<String> },
    /// 422 with `details.message` and `details.errors`.
    Unprocessable { message: String, errors: Vec<String> },
}

fn bad_request(message: &str, errors: Vec<String>) -> Rejection {
    Rejection::BadRequest { message: message.to_string(), errors }
}

/// Whether the `Content-Type` is JSON; Rails only parses JSON bodies into params, so any
/// other body looks absent to the API.
fn is_json_content_type(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json")
    })
}

/// Parses and schema-validates a PUT body. `Ok(None)` is a valid body without `metadata`
/// (nothing to change); `Ok(Some(patch))` a metadata patch that passed the schema (nulls
/// included). The documented rules that need the stored state are checked by [`merge`].
pub fn parse_put_body(body: &[u8], content_type: Option<&str>) -> Result<Option<Map<String, Value>>, Rejection> {
    if body.iter().all(u8::is_ascii_whitespace) || !is_json_content_type(content_type) {
        return Err(bad_request("body is required", Vec::new()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| bad_request("body is not valid JSON", Vec::new()))?;
    let Value::Object(mut top) = value else {
        return Err(bad_request("Invalid request body", vec!["body must be an object".into()]));
    };
    // Unknown top-level keys are ignored: the request schema does not forbid them.
    let metadata = match top.remove("metadata") {
        None => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(bad_request("Invalid request body", vec!["metadata must be an object".into()]));
        }
    };
    let mut errors = Vec::new();
    if metadata.len() > MAX_KEYS {
        errors.push(format!("metadata must have at most {MAX_KEYS} keys"));
    }
    for (key, value) in &metadata {
        match value {
            Value::String(s) if s.chars().count() > MAX_STRING_CHARS => {
                errors.push(format!("metadata.{key} must be at most {MAX_STRING_CHARS} characters"))
            }
            Value::Array(_) | Value::Object(_) => {
                errors.push(format!("metadata.{key} must be a string, number, boolean or null"))
            }
            _ => {}
        }
    }
    if errors.is_empty() { Ok(Some(metadata)) } else { Err(bad_request("Invalid request body", errors)) }
}

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_CHARS).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Merges a schema-valid patch into the stored metadata: new keys are appended, existing keys
/// overwritten in place, keys set to `null` removed (the documented merge semantics). Then
/// checks the documented rules on the patch keys and on the merged result, so a rejected
/// patch leaves nothing half-applied (the caller stores the result only on `Ok`).
pub fn merge(stored: Option<&Map<String, Value>>, patch: &Map<String, Value>) -> Result<Map<String, Value>, Rejection> {
    let mut errors: Vec<String> = patch
        .keys()
        .filter(|k| !valid_key(k))
        .map(|k| {
            format!("metadata key {k:?} is invalid: keys must be 1 to {MAX_KEY_CHARS} letters, digits or underscores")
        })
        .collect();

    let mut merged = stored.cloned().unwrap_or_default();
    for (key, value) in patch {
        if value.is_null() {
            merged.shift_remove(key);
        } else {
            merged.insert(key.clone(), value.clone());
        }
    }
    if merged.len() > MAX_KEYS {
        errors.push(format!("metadata would have {} keys; at most {MAX_KEYS} are allowed", merged.len()));
    }
    let size = encoded_len(&merged);
    if size > MAX_TOTAL_BYTES {
        errors.push(format!("metadata would be {size} bytes; at most {MAX_TOTAL_BYTES} bytes are allowed"));
    }
    if errors.is_empty() {
        Ok(merged)
    } else {
        Err(Rejection::Unprocessable { message: "Metadata is invalid".into(), errors })
    }
}

/// Bytes of the compact JSON encoding.
fn encoded_len(m: &Map<String, Value>) -> usize {
    serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX)
}

/// Validates seeded (stored) metadata against `Metadata`: the same rules, but without nulls.
pub fn validate_stored(m: &Map<String, Value>) -> Result<(), String> {
    if let Some((k, _)) = m.iter().find(|(_, v)| v.is_null()) {
        return Err(format!("metadata.{k} must not be null in stored metadata"));
    }
    let body = serde_json::to_vec(&serde_json::json!({ "metadata": m })).unwrap_or_default();
    let patch = match parse_put_body(&body, None) {
        Ok(Some(p)) => p,
        Ok(None) => Map::new(),
        Err(Rejection::BadRequest { errors, .. } | Rejection::Unprocessable { errors, .. }) => {
            return Err(errors.join("; "));
        }
    };
    match merge(None, &patch) {
        Ok(_) => Ok(()),
        Err(Rejection::BadRequest { errors, .. } | Rejection::Unprocessable { errors, .. }) => Err(errors.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn status(r: &Rejection) -> u16 {
        match r {
            Rejection::BadRequest { .. } => 400,
            Rejection::Unprocessable { .. } => 422,
        }
    }

    #[test]
    fn missing_or_non_json_body_is_body_is_required() {
        for (body, ct) in [(&b""[..], None), (b"  \n", None), (br#"{"metadata":{}}"#, Some("text/plain"))] {
            let r = parse_put_body(body, ct).unwrap_err();
            assert_eq!(r, bad_request("body is required", vec![]));
        }
    }

    #[test]
    fn schema_violations_are_400() {
        for body in [
            json!([1]),
            json!({"metadata": null}),
            json!({"metadata": [1]}),
            json!({"metadata": {"a": {"b": 1}}}),
            json!({"metadata": {"a": [1]}}),
            json!({"metadata": {"a": "x".repeat(2001)}}),
        ] {
            let r = parse_put_body(body.to_string().as_bytes(), Some("application/json")).unwrap_err();
            assert_eq!(status(&r), 400, "{body}");
        }
        let many: Map<String, Value> = (0..51).map(|i| (format!("k{i}"), Value::Null)).collect();
        let body = json!({ "metadata": many }).to_string();
        assert_eq!(status(&parse_put_body(body.as_bytes(), None).unwrap_err()), 400);
        assert!(parse_put_body(b"{not json", None).is_err());
    }

    #[test]
    fn string_limit_counts_characters() {
        let body = json!({"metadata": {"a": "é".repeat(2000)}}).to_string();
        assert!(parse_put_body(body.as_bytes(), None).is_ok());
    }

    #[test]
    fn body_without_metadata_changes_nothing() {
        assert_eq!(parse_put_body(br#"{"other": 1}"#, None), Ok(None));
    }

    #[test]
    fn merge_adds_overwrites_and_null_deletes_keeping_order() {
        let stored = obj(json!({"a": 1, "b": "x", "c": true}));
        let patch = obj(json!({"b": "y", "c": null, "d": 0.5, "zz": null}));
        let merged = merge(Some(&stored), &patch).unwrap();
        assert_eq!(Value::Object(merged.clone()), json!({"a": 1, "b": "y", "d": 0.5}));
        let keys: Vec<_> = merged.keys().cloned().collect();
        assert_eq!(keys, ["a", "b", "d"]);
    }

    #[test]
    fn bad_keys_are_422() {
        for key in ["", "has-dash", "sp ace", "é", &"k".repeat(41)] {
            let r = merge(None, &obj(json!({ key: 1 }))).unwrap_err();
            assert_eq!(status(&r), 422, "{key:?}");
        }
        assert!(merge(None, &obj(json!({ "A_z9": 1, "k".repeat(40): 2 }))).is_ok());
    }

    #[test]
    fn merged_key_count_is_limited_not_the_request() {
        let stored: Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        let r = merge(Some(&stored), &obj(json!({"new": 1}))).unwrap_err();
        assert_eq!(status(&r), 422);
        // Replacing one key with another keeps 50: allowed.
        assert!(merge(Some(&stored), &obj(json!({"new": 1, "k0": null}))).is_ok());
    }

    #[test]
    fn total_size_is_limited() {
        let stored: Map<String, Value> = (0..16).map(|i| (format!("k{i}"), json!("x".repeat(2000)))).collect();
        let r = merge(Some(&stored), &obj(json!({"more": "y".repeat(2000)}))).unwrap_err();
        assert_eq!(status(&r), 422);
        assert!(merge(Some(&stored), &obj(json!({"more": 1}))).is_ok());
    }

    /// Randomised check of the merge laws over many generated (stored, patch) pairs: null
    /// deletes, other values win, untouched keys stay, and merging twice changes nothing.
    #[test]
    fn merge_laws_hold_for_generated_inputs() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(0x0a7e4a);
        let keys = ["a", "b", "c", "d", "e", "f"];
        let value = |rng: &mut StdRng, allow_null: bool| match rng.random_range(0..if allow_null { 5 } else { 4 }) {
            0 => json!(rng.random_range(-5..5)),
            1 => json!(rng.random_bool(0.5)),
            2 => json!(format!("s{}", rng.random_range(0..3))),
            3 => json!(0.5),
            _ => Value::Null,
        };
        for _ in 0..2000 {
            let mut stored = Map::new();
            let mut patch = Map::new();
            for k in keys {
                if rng.random_bool(0.5) {
                    stored.insert(k.to_string(), value(&mut rng, false));
                }
                if rng.random_bool(0.5) {
                    patch.insert(k.to_string(), value(&mut rng, true));
                }
            }
            let merged = merge(Some(&stored), &patch).unwrap();
            for k in keys {
                match patch.get(k) {
                    Some(Value::Null) => assert!(!merged.contains_key(k)),
                    Some(v) => assert_eq!(merged.get(k), Some(v)),
                    None => assert_eq!(merged.get(k), stored.get(k)),
                }
            }
            assert_eq!(merge(Some(&merged), &patch).unwrap(), merged);
        }
    }

    #[test]
    fn stored_metadata_validation() {
        assert!(validate_stored(&obj(json!({"a": 1, "b": "x"}))).is_ok());
        assert!(validate_stored(&obj(json!({"a": null}))).is_err());
        assert!(validate_stored(&obj(json!({"a-b": 1}))).is_err());
        assert!(validate_stored(&obj(json!({"a": {"n": 1}}))).is_err());
    }
}
