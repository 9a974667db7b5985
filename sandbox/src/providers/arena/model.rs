//! Are.na's stored connection, its seed shape and the `Connection` response
//! (`EmbeddedConnection` + `can` + `_links`, `openapi/arena.json`; docs/providers.md, Are.na).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use thiserror::Error;

use super::metadata;

/// One connection as the emulator stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: i64,
    pub position: i64,
    pub pinned: bool,
    /// `None` until metadata was ever set (the schema allows `null`); `Some({})` once every key
    /// was deleted through a merge (undocumented; clients normalise both, docs/providers.md).
    pub metadata: Option<Map<String, Value>>,
    pub connected_at: DateTime<Utc>,
    /// `EmbeddedUser` object, or `null` (the schema allows both).
    pub connected_by: Value,
}

/// A seed that cannot be stored (admin API 400).
#[derive(Debug, Error, PartialEq)]
pub enum SeedError {
    #[error("seed must be a JSON object")]
    NotAnObject,
    #[error("unknown seed field `{0}`")]
    UnknownField(String),
    #[error("seed field `{field}` must be {expected}")]
    Invalid { field: &'static str, expected: &'static str },
    #[error("seed metadata is invalid: {0}")]
    Metadata(String),
}

/// The user every seeded connection is connected by, unless the seed names one.
fn default_user() -> Value {
    json!({
        "id": 1,
        "type": "User",
        "name": "Sandbox User",
        "slug": "sandbox-user",
        "avatar": null,
        "initials": "SU"
    })
}

impl Connection {
    /// Builds a connection from the admin seed `{"metadata": {...}}` with optional
    /// `position` (≥ 1, "1-indexed"), `pinned`, `connected_at`, `connected_by`. Unknown keys
    /// are rejected so that a typo in a fixture fails loudly; metadata must satisfy the
    /// stored `Metadata` schema and the documented rules.
    pub fn from_seed(id: i64, seed: &Value, now: DateTime<Utc>) -> Result<Self, SeedError> {
        let obj = seed.as_object().ok_or(SeedError::NotAnObject)?;
        const KNOWN: [&str; 6] = ["id", "metadata", "position", "pinned", "connected_at", "connected_by"];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(SeedError::UnknownField(k.clone()));
        }
        if obj.get("id").is_some_and(|v| v.as_i64() != Some(id)) {
            return Err(SeedError::Invalid { field: "id", expected: "the id in the path" });
        }
        let metadata = match obj.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                metadata::validate_stored(m).map_err(SeedError::Metadata)?;
                Some(m.clone())
            }
            Some(_) => {
                return Err(SeedError::Invalid { field: "metadata", expected: "an object or null" });
            }
        };
        let position = match obj.get("position") {
            None => 1,
            Some(v) => v
                .as_i64()
                .filter(|p| *p >= 1)
                .ok_or(SeedError::Invalid { field: "position", expected: "an integer of at least 1" })?,
        };
        let pinned = match obj.get("pinned") {
            None => false,
            Some(v) => v.as_bool().ok_or(SeedError::Invalid { field: "pinned", expected: "a boolean" })?,
        };
        let connected_at = match obj.get("connected_at") {
            None => now,
            Some(v) => v
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or(SeedError::Invalid { field: "connected_at", expected: "an RFC 3339 date-time" })?,
        };
        let connected_by = match obj.get("connected_by") {
            None => default_user(),
            Some(v) if v.is_null() || valid_embedded_user(v) => v.clone(),
            Some(_) => {
                return Err(SeedError::Invalid {
                    field: "connected_by",
                    expected: "null or an EmbeddedUser {id, type: \"User\", name, slug, avatar, initials}",
                });
            }
        };
        Ok(Connection { id, position, pinned, metadata, connected_at, connected_by })
    }

    /// The raw stored state for the admin API: the seed shape, every field present.
    pub fn to_raw(&self) -> Value {
        json!({
            "id": self.id,
            "metadata": self.metadata,
            "position": self.position,
            "pinned": self.pinned,
            "connected_at": self.connected_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "connected_by": self.connected_by,
        })
    }

    /// The `Connection` response. `self_href` is the absolute URL of this resource as the
    /// client addressed it (`_links.self.href`, HAL); `can_remove` is whether the caller may
    /// remove the connection (`ConnectionAbilities`).
    pub fn to_response(&self, self_href: &str, can_remove: bool) -> Value {
        json!({
            "id": self.id,
            "position": self.position,
            "pinned": self.pinned,
            "metadata": self.metadata,
            "connected_at": self.connected_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "connected_by": self.connected_by,
            "can": { "remove": can_remove },
            "_links": { "self": { "href": self_href } },
        })
    }
}

/// `EmbeddedUser`: every property is required; `avatar` may be null.
fn valid_embedded_user(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    o.get("id").is_some_and(Value::is_i64)
        && o.get("type").and_then(Value::as_str) == Some("User")
        && ["name", "slug", "initials"].iter().all(|k| o.get(*k).is_some_and(Value::is_string))
        && o.get("avatar").is_some_and(|a| a.is_null() || a.is_string())
}

/// Parses the `{id}` path segment. The OpenAPI document types it `integer`, so anything that is
/// not a decimal integer is a 400 (parameter validation). An integer too large for any stored
/// connection cannot exist, so it is reported as `Ok(None)` (the caller answers 404).
pub fn parse_id(raw: &str) -> Result<Option<i64>, ()> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    Ok(raw.parse::<i64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_defaults_and_response_shape() {
        let now = DateTime::parse_from_rfc3339("2026-01-15T10:30:00Z").unwrap().with_timezone(&Utc);
        let c = Connection::from_seed(7, &json!({"metadata": {"a": 1}}), now).unwrap();
        let r = c.to_response("http://h/arena/v3/connections/7", true);
        assert_eq!(
            r,
            json!({
                "id": 7, "position": 1, "pinned": false, "metadata": {"a": 1},
                "connected_at": "2026-01-15T10:30:00Z", "connected_by": default_user(),
                "can": {"remove": true},
                "_links": {"self": {"href": "http://h/arena/v3/connections/7"}}
            })
        );
        let empty = Connection::from_seed(8, &json!({}), now).unwrap();
        assert_eq!(empty.to_raw()["metadata"], Value::Null);
    }

    #[test]
    fn seed_validation() {
        let now = Utc::now();
        for bad in [
            json!({"metadata": {"a": null}}),
            json!({"metadata": {"a-b": 1}}),
            json!({"metadata": []}),
            json!({"position": 0}),
            json!({"pinned": "yes"}),
            json!({"connected_by": {"id": 1}}),
            json!({"meta": {}}),
            json!({"id": 9}),
        ] {
            assert!(Connection::from_seed(1, &bad, now).is_err(), "{bad}");
        }
        let c = Connection::from_seed(1, &json!({"connected_by": null, "pinned": true, "position": 3}), now).unwrap();
        assert_eq!((c.connected_by.clone(), c.pinned, c.position), (Value::Null, true, 3));
    }

    #[test]
    fn ids_are_decimal_integers() {
        assert_eq!(parse_id("42"), Ok(Some(42)));
        assert_eq!(parse_id("-3"), Ok(Some(-3)));
        assert_eq!(parse_id("99999999999999999999"), Ok(None));
        for bad in ["", "abc", "1.0", "+1", "1e3", " 1", "-"] {
            assert_eq!(parse_id(bad), Err(()), "{bad:?}");
        }
    }
}
