//! Mielto's stored connection, its seed shape and its `ConnectionRead` rendering
//! (`openapi/mielto.yaml`, docs/providers.md, Mielto).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use thiserror::Error;

use super::status::ConnectionStatus;
use super::validation::{ConnectionUpdate, Field, LABEL_MAX_CHARS};

/// Workspace of connections seeded without `workspace_id`, and of requests sent without
/// `X-Workspace-Id`: the docs say the workspace "is normally derived from the API key", and
/// the sandbox has one key-derived workspace.
pub const DEFAULT_WORKSPACE: &str = "ws_sandbox";

/// `IntegrationType` enum of `mielto.yaml`.
const INTEGRATION_TYPES: [&str; 7] = ["connectors", "mcp", "tool", "model", "custom", "storage", "api"];

/// One connection as the emulator stores it: every `ConnectionRead` property.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: String,
    pub workspace_id: String,
    pub label: Option<String>,
    pub integration: String,
    pub integration_type: String,
    pub config: Map<String, Value>,
    pub credential_id: String,
    pub user_id: Option<String>,
    pub created_by: String,
    pub status: ConnectionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
    #[error("seed field `id` ({0}) does not match the connection id in the path")]
    IdMismatch(String),
}

fn timestamp(dt: &DateTime<Utc>) -> String {
    // pydantic v2 renders an aware UTC datetime with microseconds and `Z`.
    dt.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Connection {
    /// Builds a connection from the admin seed `{"label","status","config","integration",
    /// ...}`; any other `ConnectionRead` field may be given, the rest get defaults. Unknown
    /// keys are rejected so that a typo in a test fixture fails loudly.
    pub fn from_seed(id: &str, seed: &Value, now: DateTime<Utc>) -> Result<Self, SeedError> {
        let obj = seed.as_object().ok_or(SeedError::NotAnObject)?;
        const KNOWN: [&str; 12] = [
            "id",
            "workspace_id",
            "label",
            "integration",
            "integration_type",
            "config",
            "credential_id",
            "user_id",
            "created_by",
            "status",
            "created_at",
            "updated_at",
        ];
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(SeedError::UnknownField(k.clone()));
        }
        let string = |field: &'static str, default: &str| -> Result<String, SeedError> {
            match obj.get(field) {
                None => Ok(default.to_string()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(SeedError::Invalid { field, expected: "a string" }),
            }
        };
        let nullable_string = |field: &'static str| -> Result<Option<String>, SeedError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(SeedError::Invalid { field, expected: "a string or null" }),
            }
        };
        let time = |field: &'static str| -> Result<DateTime<Utc>, SeedError> {
            match obj.get(field) {
                None => Ok(now),
                Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| SeedError::Invalid { field, expected: "an RFC 3339 date-time" }),
                Some(_) => Err(SeedError::Invalid { field, expected: "an RFC 3339 date-time" }),
            }
        };

        if let Some(seed_id) = obj.get("id")
            && seed_id.as_str() != Some(id)
        {
            return Err(SeedError::IdMismatch(seed_id.to_string()));
        }
        let label = nullable_string("label")?;
        if label.as_ref().is_some_and(|l| l.chars().count() > LABEL_MAX_CHARS) {
            return Err(SeedError::Invalid { field: "label", expected: "at most 255 characters" });
        }
        let integration_type = string("integration_type", "connectors")?;
        if !INTEGRATION_TYPES.contains(&integration_type.as_str()) {
            return Err(SeedError::Invalid {
                field: "integration_type",
                expected: "one of connectors, mcp, tool, model, custom, storage, api",
            });
        }
        let status = match obj.get("status") {
            None => ConnectionStatus::Active,
            Some(v) => v.as_str().and_then(ConnectionStatus::parse).ok_or(SeedError::Invalid {
                field: "status",
                expected: "one of active, inactive, testing, error, expired",
            })?,
        };
        let config = match obj.get("config") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(SeedError::Invalid { field: "config", expected: "an object" });
            }
        };
        Ok(Connection {
            id: id.to_string(),
            workspace_id: string("workspace_id", DEFAULT_WORKSPACE)?,
            label,
            integration: string("integration", "custom")?,
            integration_type,
            config,
            credential_id: string("credential_id", &format!("cred_{id}"))?,
            user_id: nullable_string("user_id")?,
            created_by: string("created_by", "usr_sandbox")?,
            status,
            created_at: time("created_at")?,
            updated_at: time("updated_at")?,
        })
    }

    /// The `ConnectionRead` body (also the admin API's raw state, which is the same shape).
    pub fn to_read(&self) -> Value {
        json!({
            "label": self.label,
            "integration": self.integration,
            "integration_type": self.integration_type,
            "config": self.config,
            "id": self.id,
            "credential_id": self.credential_id,
            "user_id": self.user_id,
            "workspace_id": self.workspace_id,
            "created_by": self.created_by,
            "status": self.status.as_str(),
            "created_at": timestamp(&self.created_at),
            "updated_at": timestamp(&self.updated_at),
        })
    }

    /// Applies a validated PUT the way the FastAPI/SQLModel update pattern does
    /// (`model_dump(exclude_unset=True)` then `setattr`, docs/providers.md, Mielto): omitted
    /// fields stay, a supplied `config` replaces the whole object.
    ///
    /// Explicit `null` (undocumented, our choice): `label: null` clears the label, because
    /// `ConnectionRead.label` is nullable; `config: null` and `status: null` are ignored,
    /// because `ConnectionRead` declares both non-nullable, so the server cannot store and
    /// then return a null there.
    ///
    /// `updated_at` moves only when a value actually changed (an ORM issues no UPDATE for an
    /// unchanged row), so a repeated PUT is idempotent down to the timestamps.
    /// Returns whether anything changed.
    pub fn apply(&mut self, update: ConnectionUpdate, now: DateTime<Utc>) -> bool {
        let before = self.clone();
        if let Field::Set(label) = update.label {
            self.label = label;
        }
        if let Field::Set(Some(config)) = update.config {
            self.config = config;
        }
        if let Field::Set(Some(status)) = update.status {
            self.status = status;
        }
        let changed = *self != before;
        if changed {
            self.updated_at = now;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::mielto::validation::parse_update;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn seed_fills_every_required_read_field() {
        let c = Connection::from_seed("c1", &json!({"label": "L"}), t("2026-01-01T00:00:00Z")).unwrap();
        let read = c.to_read();
        for f in [
            "integration",
            "integration_type",
            "id",
            "credential_id",
            "user_id",
            "workspace_id",
            "created_by",
            "status",
            "created_at",
            "updated_at",
        ] {
            assert!(read.get(f).is_some(), "missing {f}");
        }
        assert_eq!(read["created_at"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(read["workspace_id"], DEFAULT_WORKSPACE);
        assert_eq!(read["status"], "active");
        assert_eq!(read["config"], json!({}));
    }

    #[test]
    fn seed_rejects_unknown_and_invalid_fields() {
        let now = Utc::now();
        assert_eq!(
            Connection::from_seed("c", &json!({"lable": "x"}), now),
            Err(SeedError::UnknownField("lable".into()))
        );
        assert!(Connection::from_seed("c", &json!({"status": "paused"}), now).is_err());
        assert!(Connection::from_seed("c", &json!({"config": []}), now).is_err());
        assert!(Connection::from_seed("c", &json!({"integration_type": "x"}), now).is_err());
        assert!(Connection::from_seed("c", &json!({"id": "other"}), now).is_err());
        assert!(Connection::from_seed("c", &json!([]), now).is_err());
    }

    #[test]
    fn put_replaces_supplied_fields_and_config_whole() {
        let t0 = t("2026-01-01T00:00:00Z");
        let t1 = t("2026-01-02T00:00:00Z");
        let mut c = Connection::from_seed(
            "c",
            &json!({"label": "A", "config": {"a": 1, "b": {"x": 1}}, "status": "active"}),
            t0,
        )
        .unwrap();
        let u = parse_update(br#"{"config": {"b": {"y": 2}}}"#, None).unwrap();
        assert!(c.apply(u, t1));
        assert_eq!(Value::Object(c.config.clone()), json!({"b": {"y": 2}}));
        assert_eq!(c.label.as_deref(), Some("A"));
        assert_eq!(c.updated_at, t1);
        // Same body again: no change, timestamp kept.
        let u = parse_update(br#"{"config": {"b": {"y": 2}}}"#, None).unwrap();
        assert!(!c.apply(u, t("2026-01-03T00:00:00Z")));
        assert_eq!(c.updated_at, t1);
    }

    #[test]
    fn explicit_null_clears_label_but_not_config_or_status() {
        let mut c =
            Connection::from_seed("c", &json!({"label": "A", "config": {"a": 1}, "status": "testing"}), Utc::now())
                .unwrap();
        let u = parse_update(br#"{"label": null, "config": null, "status": null}"#, None).unwrap();
        assert!(c.apply(u, Utc::now()));
        assert_eq!(c.label, None);
        assert_eq!(Value::Object(c.config.clone()), json!({"a": 1}));
        assert_eq!(c.status, ConnectionStatus::Testing);
    }

    #[test]
    fn expected_list_matches_pydantic() {
        assert_eq!(ConnectionStatus::expected_list(), "'active', 'inactive', 'testing', 'error' or 'expired'");
    }
}
