//! Datagrid's connections and the cursor-paged list (docs/providers.md, Datagrid). Pure:
//! handlers call these under one lock.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Teamspace of a seeded connection that names none.
pub const DEFAULT_TEAMSPACE: &str = "teamspace_default";
/// Connector of a seeded connection that names none.
const DEFAULT_CONNECTOR: &str = "google_drive";

#[derive(Clone, Debug)]
pub struct Connection {
    /// Creation order, for the list.
    seq: u64,
    id: String,
    name: String,
    teamspace_id: String,
    connector_id: String,
    valid: Option<bool>,
    value: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Connection {
    /// Visible to a request scoped to `teamspace` (`None`: no `Datagrid-Teamspace` header,
    /// an organisation-wide key that sees every teamspace).
    fn visible_to(&self, teamspace: Option<&str>) -> bool {
        teamspace.is_none_or(|t| t == self.teamspace_id)
    }

    /// The `Connection` schema. `valid` and `value` are left out rather than sent as `null`
    /// when unknown: datagrid.yaml types them as non-nullable boolean and string.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("object".into(), json!("connection"));
        out.insert("id".into(), json!(self.id));
        out.insert("name".into(), json!(self.name));
        out.insert("teamspace_id".into(), json!(self.teamspace_id));
        out.insert("connector_id".into(), json!(self.connector_id));
        if let Some(valid) = self.valid {
            out.insert("valid".into(), json!(valid));
        }
        if let Some(value) = &self.value {
            out.insert("value".into(), json!(value));
        }
        out.insert("created_at".into(), json!(self.created_at));
        out.insert("updated_at".into(), json!(self.updated_at));
        Value::Object(out)
    }

    fn raw(&self) -> Value {
        json!({
            "name": self.name,
            "teamspace_id": self.teamspace_id,
            "connector_id": self.connector_id,
            "valid": self.valid,
            "value": self.value,
        })
    }
}

/// A validated list request.
#[derive(Debug, PartialEq)]
pub struct Page {
    pub limit: usize,
    pub after: Option<String>,
    pub before: Option<String>,
    pub connector_id: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum ListError {
    /// The cursor names no connection visible to the caller.
    UnknownCursor(String),
}

#[derive(Default)]
pub struct Store {
    next_seq: u64,
    connections: BTreeMap<String, Connection>,
}

const SEED_KEYS: [&str; 5] = ["name", "teamspace_id", "connector_id", "valid", "value"];

impl Store {
    /// Create or replace from `{"name", "teamspace_id"?, "connector_id"?, "valid"?, "value"?}`.
    pub fn seed(&mut self, id: &str, state: &Value, now: &str) -> Result<Value, String> {
        let Value::Object(fields) = state else {
            return Err("connection state must be a JSON object".into());
        };
        if let Some(extra) = fields.keys().find(|k| !SEED_KEYS.contains(&k.as_str())) {
            return Err(format!("unknown field {extra:?}; expected some of {SEED_KEYS:?}"));
        }
        let text = |key: &str, default: &str| -> Result<String, String> {
            match fields.get(key) {
                None => Ok(default.to_owned()),
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(format!("{key} must be a non-empty string")),
            }
        };
        let name = match fields.get("name") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err("name (a string) is required".into()),
        };
        let valid = match fields.get("valid") {
            None => Some(true),
            Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err("valid must be a boolean or null".into()),
        };
        let value = match fields.get("value") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("value must be a string or null".into()),
        };
        let existing = self.connections.get(id);
        let (seq, created_at) = match existing {
            Some(c) => (c.seq, c.created_at.clone()),
            None => {
                self.next_seq += 1;
                (self.next_seq, now.to_owned())
            }
        };
        let connection = Connection {
            seq,
            id: id.to_owned(),
            name,
            teamspace_id: text("teamspace_id", DEFAULT_TEAMSPACE)?,
            connector_id: text("connector_id", DEFAULT_CONNECTOR)?,
            valid,
            value,
            created_at,
            updated_at: now.to_owned(),
        };
        let raw = connection.raw();
        self.connections.insert(id.to_owned(), connection);
        Ok(raw)
    }

    pub fn raw(&self, id: &str) -> Option<Value> {
        self.connections.get(id).map(Connection::raw)
    }

    pub fn remove(&mut self, id: &str) -> bool {
        self.connections.remove(id).is_some()
    }

    /// A connection of another teamspace is indistinguishable from a missing one
    /// (docs/providers.md, Datagrid: 404 for both).
    pub fn get(&self, id: &str, teamspace: Option<&str>) -> Option<&Connection> {
        self.connections.get(id).filter(|c| c.visible_to(teamspace))
    }

    /// Set the name; `updated_at` moves only when the name changes (idempotent PATCH).
    pub fn rename(&mut self, id: &str, teamspace: Option<&str>, name: &str, now: &str) -> Option<Value> {
        let connection = self.connections.get_mut(id).filter(|c| c.visible_to(teamspace))?;
        if connection.name != name {
            connection.name = name.to_owned();
            connection.updated_at = now.to_owned();
        }
        Some(connection.to_json())
    }

    /// One page in creation order: `after` starts after that id, `before` ends before it
    /// (the `limit` items closest to it); `has_more` tells whether the list continues in
    /// the paging direction.
    pub fn list(&self, page: &Page, teamspace: Option<&str>) -> Result<(Vec<Value>, bool), ListError> {
        let mut rows: Vec<&Connection> = self
            .connections
            .values()
            .filter(|c| c.visible_to(teamspace))
            .filter(|c| page.connector_id.as_ref().is_none_or(|k| &c.connector_id == k))
            .collect();
        rows.sort_by_key(|c| c.seq);
        let position = |cursor: &str| {
            rows.iter().position(|c| c.id == cursor).ok_or_else(|| ListError::UnknownCursor(cursor.to_owned()))
        };
        let (start, end) = match (&page.after, &page.before) {
            (Some(after), _) => (position(after)? + 1, rows.len()),
            (None, Some(before)) => (0, position(before)?),
            (None, None) => (0, rows.len()),
        };
        let window = &rows[start..end];
        let (chosen, has_more) = if page.before.is_some() && page.after.is_none() {
            let from = window.len().saturating_sub(page.limit);
            (&window[from..], from > 0)
        } else {
            let to = window.len().min(page.limit);
            (&window[..to], window.len() > to)
        };
        Ok((chosen.iter().map(|c| c.to_json()).collect(), has_more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(n: usize) -> Store {
        let mut store = Store::default();
        for i in 1..=n {
            let connector = if i % 2 == 0 { "slack" } else { "drive" };
            store.seed(&format!("c{i}"), &json!({"name": format!("n{i}"), "connector_id": connector}), "t").unwrap();
        }
        store
    }

    fn ids(rows: &[Value]) -> Vec<&str> {
        rows.iter().map(|r| r["id"].as_str().unwrap()).collect()
    }

    #[test]
    fn pages_forward_and_backward_by_cursor() {
        let store = store(5);
        let page = |limit, after: Option<&str>, before: Option<&str>| Page {
            limit,
            after: after.map(str::to_owned),
            before: before.map(str::to_owned),
            connector_id: None,
        };
        let (rows, more) = store.list(&page(2, None, None), None).unwrap();
        assert_eq!((ids(&rows), more), (vec!["c1", "c2"], true));
        let (rows, more) = store.list(&page(2, Some("c4"), None), None).unwrap();
        assert_eq!((ids(&rows), more), (vec!["c5"], false));
        let (rows, more) = store.list(&page(2, None, Some("c4")), None).unwrap();
        assert_eq!((ids(&rows), more), (vec!["c2", "c3"], true));
        assert_eq!(store.list(&page(2, Some("zz"), None), None), Err(ListError::UnknownCursor("zz".into())));
        let filtered = Page { connector_id: Some("slack".into()), ..page(20, None, None) };
        assert_eq!(ids(&store.list(&filtered, None).unwrap().0), ["c2", "c4"]);
    }

    #[test]
    fn teamspaces_hide_connections_and_renames_are_idempotent() {
        let mut store = Store::default();
        store.seed("a", &json!({"name": "A", "teamspace_id": "t1"}), "t0").unwrap();
        assert!(store.get("a", Some("t2")).is_none());
        assert!(store.get("a", Some("t1")).is_some());
        assert!(store.get("a", None).is_some());
        assert!(store.rename("a", Some("t2"), "B", "t1").is_none());
        assert_eq!(store.rename("a", Some("t1"), "A", "t1").unwrap()["updated_at"], "t0");
        assert_eq!(store.rename("a", None, "B", "t2").unwrap()["updated_at"], "t2");
        assert!(store.seed("b", &json!({"teamspace_id": "t1"}), "t").is_err());
        assert!(store.seed("b", &json!({"name": "x", "extra": 1}), "t").is_err());
    }
}
