//! Nango's connection state and the read shapes built from it (docs/providers.md, Nango). Pure: the
//! handlers call these under one lock, so a failed write changes nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::validate::{ListQuery, MetadataWrite};
use super::zod::PROVIDER_CONFIG_KEY;

#[derive(Clone, Debug)]
pub struct Connection {
    /// Nango's internal integer id.
    id: u64,
    connection_id: String,
    provider_config_key: String,
    provider: String,
    /// `None` until metadata is first set: the API then answers `metadata: null`
    /// (`data.metadata || null` in formatters/connection.ts).
    metadata: Option<Map<String, Value>>,
    tags: Map<String, Value>,
    connection_config: Map<String, Value>,
    created_at: String,
    updated_at: String,
    last_fetched_at: String,
}

/// How a metadata write combines with what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// PATCH: `{...existing, ...metadata}`, shallow; a `null` value is stored, not deleted.
    Merge,
    /// POST: the stored metadata becomes exactly the body's.
    Replace,
}

/// One connection per `connection_id` (the admin API addresses connections by id alone);
/// it belongs to exactly one integration (`provider_config_key`).
#[derive(Default)]
pub struct Store {
    next_id: u64,
    connections: BTreeMap<String, Connection>,
    /// Connections per `provider_config_key`, so the integration check on every GET does
    /// not scan all connections (the scale benchmark stores thousands).
    integrations: HashMap<String, usize>,
}

const SEED_KEYS: [&str; 6] = ["provider_config_key", "metadata", "provider", "tags", "connection_config", "created_at"];

impl Store {
    /// Create or replace a connection from its raw state
    /// `{"provider_config_key", "metadata"?, "provider"?, "tags"?, "connection_config"?,
    /// "created_at"?}`. Replacing keeps the integer id.
    pub fn seed(&mut self, connection_id: &str, state: &Value, now: &str) -> Result<Value, String> {
        let Value::Object(fields) = state else {
            return Err("connection state must be a JSON object".into());
        };
        if let Some(extra) = fields.keys().find(|k| !SEED_KEYS.contains(&k.as_str())) {
            return Err(format!("unknown field {extra:?}; expected some of {SEED_KEYS:?}"));
        }
        let provider_config_key = match fields.get("provider_config_key") {
            Some(Value::String(k)) if PROVIDER_CONFIG_KEY.is_match(k) && k.len() <= 255 => k.clone(),
            _ => return Err("provider_config_key must be a string matching ^[a-zA-Z0-9~:.@ _-]+$".into()),
        };
        let metadata = match fields.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => return Err("metadata must be an object or null".into()),
        };
        let provider = match fields.get("provider") {
            None => provider_config_key.clone(),
            Some(Value::String(p)) => p.clone(),
            Some(_) => return Err("provider must be a string".into()),
        };
        let tags = match fields.get("tags") {
            None => Map::new(),
            Some(Value::Object(t)) if t.values().all(Value::is_string) => {
                // Tag keys are normalised to lowercase (nango.yaml `Tags`).
                t.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect()
            }
            Some(_) => return Err("tags must be an object of strings".into()),
        };
        let connection_config = match fields.get("connection_config") {
            None => Map::new(),
            Some(Value::Object(c)) => c.clone(),
            Some(_) => return Err("connection_config must be an object".into()),
        };
        let existing = self.connections.get(connection_id);
        let created_at = match fields.get("created_at") {
            Some(Value::String(c)) => c.clone(),
            Some(_) => return Err("created_at must be a string".into()),
            None => existing.map_or_else(|| now.to_owned(), |c| c.created_at.clone()),
        };
        let id = match existing {
            Some(c) => c.id,
            None => {
                self.next_id += 1;
                self.next_id
            }
        };
        let connection = Connection {
            id,
            connection_id: connection_id.to_owned(),
            provider_config_key,
            provider,
            metadata,
            tags,
            connection_config,
            created_at,
            updated_at: now.to_owned(),
            last_fetched_at: now.to_owned(),
        };
        let raw = raw(&connection);
        *self.integrations.entry(connection.provider_config_key.clone()).or_default() += 1;
        if let Some(replaced) = self.connections.insert(connection_id.to_owned(), connection) {
            self.forget_integration(&replaced.provider_config_key);
        }
        Ok(raw)
    }

    pub fn raw(&self, connection_id: &str) -> Option<Value> {
        self.connections.get(connection_id).map(raw)
    }

    pub fn remove(&mut self, connection_id: &str) -> bool {
        match self.connections.remove(connection_id) {
            Some(removed) => {
                self.forget_integration(&removed.provider_config_key);
                true
            }
            None => false,
        }
    }

    fn forget_integration(&mut self, provider_config_key: &str) {
        if let Some(count) = self.integrations.get_mut(provider_config_key) {
            *count -= 1;
            if *count == 0 {
                self.integrations.remove(provider_config_key);
            }
        }
    }

    /// Whether an integration with this key exists: here, whether any connection uses it.
    pub fn knows_integration(&self, provider_config_key: &str) -> bool {
        self.integrations.contains_key(provider_config_key)
    }

    /// `GET /connections/{id}`: the `ConnectionFull` shape, marking the fetch time.
    pub fn fetch(&mut self, connection_id: &str, provider_config_key: &str, now: &str) -> Option<Value> {
        let connection =
            self.connections.get_mut(connection_id).filter(|c| c.provider_config_key == provider_config_key)?;
        connection.last_fetched_at = now.to_owned();
        Some(full(connection))
    }

    /// Apply a validated metadata write to every listed connection, or to none: every id is
    /// looked up first and the first missing one is returned (docs/providers.md, Nango).
    pub fn write_metadata(&mut self, write: &MetadataWrite, mode: WriteMode, now: &str) -> Result<(), String> {
        if let Some(missing) = write.connection_ids.iter().find(|id| {
            self.connections.get(id.as_str()).is_none_or(|c| c.provider_config_key != write.provider_config_key)
        }) {
            return Err(missing.clone());
        }
        for id in &write.connection_ids {
            if let Some(connection) = self.connections.get_mut(id) {
                let next = match mode {
                    WriteMode::Merge => {
                        let mut merged = connection.metadata.clone().unwrap_or_default();
                        merged.extend(write.metadata.clone());
                        merged
                    }
                    WriteMode::Replace => write.metadata.clone(),
                };
                connection.metadata = Some(next);
                connection.updated_at = now.to_owned();
            }
        }
        Ok(())
    }

    /// `GET /connections` rows, in creation order, filtered and paged.
    pub fn list(&self, query: &ListQuery) -> Vec<Value> {
        let mut rows: Vec<&Connection> = self
            .connections
            .values()
            .filter(|c| query.connection_id.as_ref().is_none_or(|id| &c.connection_id == id))
            .filter(|c| {
                query.search.as_ref().is_none_or(|s| c.connection_id.to_lowercase().contains(&s.to_lowercase()))
            })
            .filter(|c| query.integration_ids.as_ref().is_none_or(|ids| ids.contains(&c.provider_config_key)))
            .filter(|c| query.tags.iter().all(|(k, v)| c.tags.get(k).and_then(Value::as_str) == Some(v.as_str())))
            // No connection here has an end user, so end-user filters match nothing.
            .filter(|_| query.end_user_id.is_none() && query.end_user_organization_id.is_none())
            .collect();
        rows.sort_by_key(|c| c.id);
        let rows = rows.into_iter().map(row);
        match query.limit {
            Some(limit) => rows.skip(query.page.saturating_mul(limit)).take(limit).collect(),
            None => rows.collect(),
        }
    }
}

fn metadata_value(c: &Connection) -> Value {
    c.metadata.clone().map_or(Value::Null, Value::Object)
}

fn raw(c: &Connection) -> Value {
    json!({
        "provider_config_key": c.provider_config_key,
        "metadata": metadata_value(c),
        "provider": c.provider,
        "tags": c.tags,
        "connection_config": c.connection_config,
        "created_at": c.created_at,
    })
}

/// `ConnectionFull` with every field Nango's GET returns. `credentials` is `{}`: the
/// emulated key has `connections:read`, not `read_credentials`, so nothing is refreshed.
fn full(c: &Connection) -> Value {
    json!({
        "id": c.id,
        "connection_id": c.connection_id,
        "provider_config_key": c.provider_config_key,
        "provider": c.provider,
        "errors": [],
        "end_user": null,
        "metadata": metadata_value(c),
        "connection_config": c.connection_config,
        "tags": c.tags,
        "webhook_url_override": null,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "last_fetched_at": c.last_fetched_at,
        "credentials": {},
    })
}

/// A `GET /connections` row: never credentials.
fn row(c: &Connection) -> Value {
    json!({
        "id": c.id,
        "connection_id": c.connection_id,
        "provider": c.provider,
        "provider_config_key": c.provider_config_key,
        "created": c.created_at,
        "metadata": metadata_value(c),
        "tags": c.tags,
        "errors": [],
        "end_user": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(ids: &[&str], metadata: Value) -> MetadataWrite {
        MetadataWrite {
            connection_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            many: ids.len() > 1,
            provider_config_key: "k".into(),
            metadata: metadata.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn merge_is_shallow_and_stores_null_replace_overwrites() {
        let mut store = Store::default();
        store.seed("a", &json!({"provider_config_key": "k"}), "t0").unwrap();
        assert_eq!(store.raw("a").unwrap()["metadata"], Value::Null);
        store.write_metadata(&write(&["a"], json!({"x": {"y": 1}, "z": 1})), WriteMode::Merge, "t1").unwrap();
        store.write_metadata(&write(&["a"], json!({"x": {"w": 2}, "z": null})), WriteMode::Merge, "t2").unwrap();
        assert_eq!(store.raw("a").unwrap()["metadata"], json!({"x": {"w": 2}, "z": null}));
        store.write_metadata(&write(&["a"], json!({"n": 1})), WriteMode::Replace, "t3").unwrap();
        assert_eq!(store.raw("a").unwrap()["metadata"], json!({"n": 1}));
    }

    #[test]
    fn a_missing_id_writes_nothing() {
        let mut store = Store::default();
        store.seed("a", &json!({"provider_config_key": "k", "metadata": {"v": 1}}), "t0").unwrap();
        store.seed("b", &json!({"provider_config_key": "other"}), "t0").unwrap();
        assert_eq!(store.write_metadata(&write(&["a", "c"], json!({"v": 2})), WriteMode::Merge, "t1"), Err("c".into()));
        assert_eq!(store.write_metadata(&write(&["a", "b"], json!({"v": 2})), WriteMode::Merge, "t1"), Err("b".into()));
        assert_eq!(store.raw("a").unwrap()["metadata"], json!({"v": 1}));
    }

    #[test]
    fn seeding_refuses_bad_shapes_and_keeps_ids() {
        let mut store = Store::default();
        assert!(store.seed("a", &json!({"metadata": {}}), "t").is_err());
        assert!(store.seed("a", &json!({"provider_config_key": "k", "metadata": []}), "t").is_err());
        assert!(store.seed("a", &json!({"provider_config_key": "k", "bogus": 1}), "t").is_err());
        store.seed("a", &json!({"provider_config_key": "k"}), "t").unwrap();
        store.seed("b", &json!({"provider_config_key": "k"}), "t").unwrap();
        store.seed("a", &json!({"provider_config_key": "k", "tags": {"Env": "x"}}), "t").unwrap();
        assert_eq!(store.fetch("a", "k", "t2").unwrap()["id"], json!(1));
        assert_eq!(store.raw("a").unwrap()["tags"], json!({"env": "x"}));
        assert!(store.fetch("a", "other", "t2").is_none());
    }

    #[test]
    fn integrations_exist_while_a_connection_uses_them() {
        let mut store = Store::default();
        store.seed("a", &json!({"provider_config_key": "k1"}), "t").unwrap();
        store.seed("b", &json!({"provider_config_key": "k1"}), "t").unwrap();
        assert!(store.knows_integration("k1"));
        store.seed("a", &json!({"provider_config_key": "k2"}), "t").unwrap();
        assert!(store.knows_integration("k1") && store.knows_integration("k2"));
        store.remove("b");
        assert!(!store.knows_integration("k1"));
        store.remove("a");
        assert!(!store.knows_integration("k2"));
    }
}
