//! FastAPI/pydantic-v2 request validation of Mielto's `ConnectionUpdate` body.
//!
//! Mielto is a FastAPI app (its reference pages are generated from FastAPI's OpenAPI output
//! and name `HTTPValidationError`; docs/providers.md, Mielto), so a schema violation is a 422
//! `{"detail":[{"type","loc","msg","input","ctx"?}]}` exactly as FastAPI renders pydantic v2
//! errors (FastAPI drops pydantic's `url` key). The body is read the way
//! `fastapi.routing.get_request_handler` reads it:
//! - an empty body, or the JSON literal `null`, is a missing required body (`missing`);
//! - a body whose `Content-Type` is present but not `application/json` / `*+json` is not
//!   parsed: the raw text reaches pydantic and fails `model_attributes_type`;
//! - undecodable JSON is `json_invalid` with `loc: ["body", <char offset>]`, raised before
//!   any dependency, so even before authentication ([`decode_body`]); the schema is checked
//!   after the dependencies ([`validate_update`]);
//! - unknown keys are ignored (pydantic's default `extra="ignore"`).

use serde_json::{Map, Value, json};

use super::python_json;
use super::status::ConnectionStatus;

/// The `ConnectionUpdate` schema's `label` bound (`maxLength: 255`).
pub const LABEL_MAX_CHARS: usize = 255;

/// One field of a partial update: pydantic's "unset" versus an explicit value (which may be
/// `None` for an explicit JSON `null`). `model_dump(exclude_unset=True)` keeps exactly this
/// distinction.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Unset,
    Set(Option<T>),
}

/// A validated `ConnectionUpdate`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionUpdate {
    pub label: Field<String>,
    pub config: Field<Map<String, Value>>,
    pub status: Field<ConnectionStatus>,
}

/// A 422 from request validation: the FastAPI `detail` items, already shaped for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationFailure(pub Vec<Value>);

impl ValidationFailure {
    /// The `HTTPValidationError` body.
    pub fn body(&self) -> Value {
        json!({ "detail": self.0 })
    }
}

/// Builds one pydantic error item in the key order FastAPI emits (`type, loc, msg, input,
/// ctx`).
fn item(kind: &str, loc: Vec<Value>, msg: &str, input: Value, ctx: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    m.insert("loc".into(), Value::Array(loc));
    m.insert("msg".into(), json!(msg));
    m.insert("input".into(), input);
    if let Some(ctx) = ctx {
        m.insert("ctx".into(), ctx);
    }
    Value::Object(m)
}

/// Whether FastAPI would JSON-decode a body sent with this `Content-Type`: absent, or a main
/// type `application` with subtype `json` or `*+json` (parameters such as `charset` ignored).
fn is_json_content_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// The body as FastAPI hands it to pydantic.
#[derive(Debug, Clone, PartialEq)]
pub enum RawBody {
    /// No body, or the JSON literal `null`.
    Missing,
    /// A body sent with a non-JSON `Content-Type`: not decoded.
    Undecoded(String),
    Json(Value),
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// 422 `json_invalid`.
    Invalid(ValidationFailure),
    /// Not UTF-8: Python's decoding fails with something other than `JSONDecodeError`, which
    /// FastAPI answers with 400 `{"detail":"There was an error parsing the body"}`.
    Unparseable,
}

/// The first step of FastAPI's request handling, before any dependency runs (so before
/// authentication): decoding a JSON body like `json.loads(bytes)`.
pub fn decode_body(body: &[u8], content_type: Option<&str>) -> Result<RawBody, DecodeError> {
    if body.is_empty() {
        return Ok(RawBody::Missing);
    }
    if !is_json_content_type(content_type) {
        return Ok(RawBody::Undecoded(String::from_utf8_lossy(body).into_owned()));
    }
    // `json.loads` on bytes decodes UTF-8 and drops a byte-order mark.
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::Unparseable)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match serde_json::from_str(text) {
        Ok(Value::Null) => Ok(RawBody::Missing),
        Ok(value) => Ok(RawBody::Json(value)),
        Err(e) => Err(DecodeError::Invalid(json_invalid(text, &e))),
    }
}

/// Validates a decoded body against `ConnectionUpdate` (after the dependencies ran).
pub fn validate_update(raw: RawBody) -> Result<ConnectionUpdate, ValidationFailure> {
    match raw {
        RawBody::Missing => Err(missing_body()),
        // The undecoded body reaches pydantic as bytes; FastAPI's encoder shows it as text.
        RawBody::Undecoded(text) => Err(ValidationFailure(vec![not_an_object(json!(text))])),
        RawBody::Json(Value::Object(fields)) => validate_fields(&fields),
        RawBody::Json(other) => Err(ValidationFailure(vec![not_an_object(other)])),
    }
}

/// Both steps at once.
#[cfg(test)]
pub fn parse_update(body: &[u8], content_type: Option<&str>) -> Result<ConnectionUpdate, ValidationFailure> {
    match decode_body(body, content_type) {
        Ok(raw) => validate_update(raw),
        Err(DecodeError::Invalid(failure)) => Err(failure),
        Err(DecodeError::Unparseable) => panic!("test body is not UTF-8"),
    }
}

fn missing_body() -> ValidationFailure {
    ValidationFailure(vec![item("missing", vec![json!("body")], "Field required", Value::Null, None)])
}

fn not_an_object(input: Value) -> Value {
    item(
        "model_attributes_type",
        vec![json!("body")],
        "Input should be a valid dictionary or object to extract fields from",
        input,
        None,
    )
}

/// FastAPI's `json_invalid` item, with Python's `JSONDecodeError` position and message.
fn json_invalid(text: &str, serde_error: &serde_json::Error) -> ValidationFailure {
    // serde_json rejects a few documents Python accepts (NaN, Infinity, numbers beyond f64);
    // those are reported at serde_json's position as "Expecting value".
    let (pos, python_msg) = python_json::decode_error(text)
        .unwrap_or_else(|| (char_offset(text, serde_error.line(), serde_error.column()), "Expecting value"));
    ValidationFailure(vec![item(
        "json_invalid",
        vec![json!("body"), json!(pos)],
        "JSON decode error",
        json!({}),
        Some(json!({ "error": python_msg })),
    )])
}

/// 0-based character offset of serde_json's 1-based (line, column) position.
fn char_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            return offset + l.chars().take(column.saturating_sub(1)).count();
        }
        offset += l.chars().count() + 1;
    }
    offset
}

/// Validates the three declared fields in declaration order, collecting every error as
/// pydantic does.
fn validate_fields(fields: &Map<String, Value>) -> Result<ConnectionUpdate, ValidationFailure> {
    let mut errors = Vec::new();
    let loc = |name: &str| vec![json!("body"), json!(name)];

    let label = match fields.get("label") {
        None => Field::Unset,
        Some(Value::Null) => Field::Set(None),
        Some(Value::String(s)) if s.chars().count() <= LABEL_MAX_CHARS => Field::Set(Some(s.clone())),
        Some(v @ Value::String(_)) => {
            errors.push(item(
                "string_too_long",
                loc("label"),
                "String should have at most 255 characters",
                v.clone(),
                Some(json!({ "max_length": LABEL_MAX_CHARS })),
            ));
            Field::Unset
        }
        Some(v) => {
            errors.push(item("string_type", loc("label"), "Input should be a valid string", v.clone(), None));
            Field::Unset
        }
    };

    let config = match fields.get("config") {
        None => Field::Unset,
        Some(Value::Null) => Field::Set(None),
        Some(Value::Object(m)) => Field::Set(Some(m.clone())),
        Some(v) => {
            errors.push(item("dict_type", loc("config"), "Input should be a valid dictionary", v.clone(), None));
            Field::Unset
        }
    };

    let status = match fields.get("status") {
        None => Field::Unset,
        Some(Value::Null) => Field::Set(None),
        Some(v) => match v.as_str().and_then(ConnectionStatus::parse) {
            Some(s) => Field::Set(Some(s)),
            None => {
                let expected = ConnectionStatus::expected_list();
                errors.push(item(
                    "enum",
                    loc("status"),
                    &format!("Input should be {expected}"),
                    v.clone(),
                    Some(json!({ "expected": expected })),
                ));
                Field::Unset
            }
        },
    };

    if errors.is_empty() { Ok(ConnectionUpdate { label, config, status }) } else { Err(ValidationFailure(errors)) }
}

/// Validates the optional `include_credentials` query flag of the GET like pydantic's lax
/// `bool` (`true/false/1/0/yes/no/on/off/t/f/y/n`, any case).
pub fn parse_bool_query(name: &str, raw: &str) -> Result<bool, ValidationFailure> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(ValidationFailure(vec![item(
            "bool_parsing",
            vec![json!("query"), json!(name)],
            "Input should be a valid boolean, unable to interpret input",
            json!(raw),
            None,
        )])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(r: Result<ConnectionUpdate, ValidationFailure>) -> Vec<Value> {
        r.expect_err("expected a validation failure").0
    }

    #[test]
    fn omitted_fields_are_unset_and_nulls_are_explicit() {
        let u = parse_update(br#"{"label":null,"extra":1}"#, Some("application/json")).unwrap();
        assert_eq!(u.label, Field::Set(None));
        assert_eq!(u.config, Field::Unset);
        assert_eq!(u.status, Field::Unset);
    }

    #[test]
    fn full_update_is_parsed() {
        let u = parse_update(br#"{"label":"Acme","config":{"a":{"b":1}},"status":"inactive"}"#, None).unwrap();
        assert_eq!(u.label, Field::Set(Some("Acme".into())));
        assert_eq!(u.status, Field::Set(Some(ConnectionStatus::Inactive)));
        let Field::Set(Some(cfg)) = u.config else { panic!("config") };
        assert_eq!(Value::Object(cfg), json!({"a":{"b":1}}));
    }

    #[test]
    fn label_length_counts_characters_not_bytes() {
        let ok = "é".repeat(255);
        assert!(parse_update(json!({ "label": ok }).to_string().as_bytes(), None).is_ok());
        let long = "a".repeat(256);
        let d = detail(parse_update(json!({ "label": long }).to_string().as_bytes(), None));
        assert_eq!(d[0]["type"], "string_too_long");
        assert_eq!(d[0]["loc"], json!(["body", "label"]));
        assert_eq!(d[0]["msg"], "String should have at most 255 characters");
        assert_eq!(d[0]["ctx"], json!({"max_length": 255}));
    }

    #[test]
    fn wrong_types_are_reported_per_field_in_declaration_order() {
        let d = detail(parse_update(br#"{"status":"paused","config":[1],"label":5}"#, None));
        let types: Vec<_> = d.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["string_type", "dict_type", "enum"]);
        assert_eq!(d[2]["msg"], "Input should be 'active', 'inactive', 'testing', 'error' or 'expired'");
        assert_eq!(d[2]["input"], "paused");
        // FastAPI's key order.
        let keys: Vec<_> = d[2].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["type", "loc", "msg", "input", "ctx"]);
    }

    #[test]
    fn body_shapes_that_are_not_objects() {
        assert_eq!(detail(parse_update(b"", None))[0]["type"], "missing");
        assert_eq!(detail(parse_update(b"null", None))[0]["loc"], json!(["body"]));
        let d = detail(parse_update(b"[1,2]", None));
        assert_eq!(d[0]["type"], "model_attributes_type");
        let d = detail(parse_update(br#"{"label":"x"}"#, Some("text/plain")));
        assert_eq!(d[0]["type"], "model_attributes_type");
        assert_eq!(d[0]["input"], r#"{"label":"x"}"#);
        assert!(parse_update(br#"{}"#, Some("application/merge-patch+json; charset=utf-8")).is_ok());
    }

    #[test]
    fn malformed_json_reports_python_position_and_message() {
        let d = detail(parse_update(br#"{"label": }"#, None));
        assert_eq!(d[0]["type"], "json_invalid");
        assert_eq!(d[0]["msg"], "JSON decode error");
        assert_eq!(d[0]["loc"], json!(["body", 10]));
        assert_eq!(d[0]["ctx"], json!({"error": "Expecting value"}));
        let d = detail(parse_update(br#"{"label": "x""#, None));
        assert_eq!(d[0]["loc"], json!(["body", 13]));
        assert_eq!(d[0]["ctx"], json!({"error": "Expecting ',' delimiter"}));
        // Python accepts NaN, serde_json does not: reported where serde_json stopped.
        let d = detail(parse_update(br#"{"label": NaN}"#, None));
        assert_eq!(d[0]["type"], "json_invalid");
        let d = detail(parse_update(b"{}x", None));
        assert_eq!(d[0]["ctx"]["error"], "Extra data");
        assert_eq!(d[0]["loc"], json!(["body", 2]));
    }

    #[test]
    fn byte_order_mark_is_dropped_and_non_utf8_is_unparseable() {
        assert!(parse_update("\u{feff}{\"label\":\"x\"}".as_bytes(), None).is_ok());
        assert_eq!(decode_body(b"{\"label\":\"\xff\"}", None), Err(DecodeError::Unparseable));
    }

    #[test]
    fn bool_query_accepts_pydantic_spellings() {
        assert!(parse_bool_query("include_credentials", "YES").unwrap());
        assert!(!parse_bool_query("include_credentials", "0").unwrap());
        let d = parse_bool_query("include_credentials", "maybe").unwrap_err().0;
        assert_eq!(d[0]["loc"], json!(["query", "include_credentials"]));
        assert_eq!(d[0]["type"], "bool_parsing");
    }
}
