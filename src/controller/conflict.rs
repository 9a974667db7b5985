//! Ownership conflicts between Connections: two Connections of the same upstream
//! connection (same `providerRef` and `connectionId`) that declare an overlapping key. The
//! older one (creationTimestamp, then namespace/name) keeps the key; the newer one reports
//! `Ready=False` reason `Conflict` and writes nothing while in conflict, so two resources can
//! never fight over a key upstream. Disjoint keys coexist.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::{Connection, ProviderBlock, ProviderKind};

/// The upstream keys a Connection declares or owns, named as in `status.managedKeys`
/// (Mielto config keys are prefixed `config.`, as the plan engine names them).
fn claimed_keys(conn: &Connection) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = match conn.spec.block() {
        Some(ProviderBlock::Nango(n)) => n.metadata.iter().flat_map(|m| m.keys().cloned()).collect(),
        Some(ProviderBlock::Arena(a)) => a.metadata.keys().cloned().collect(),
        Some(ProviderBlock::Mielto(m)) => {
            let mut keys: BTreeSet<String> = m
                .config
                .iter()
                .flat_map(|c| c.keys().map(|k| format!("config.{k}")))
                .collect();
            if m.label.is_some() {
                keys.insert("label".into());
            }
            if m.status.is_some() {
                keys.insert("status".into());
            }
            keys
        }
        Some(ProviderBlock::Datagrid(_)) => ["name".to_string()].into(),
        None => BTreeSet::new(),
    };
    keys.extend(conn.status.iter().flat_map(|s| s.managed_keys.iter().cloned()));
    keys
}

/// Whether `a` and `b` target the same upstream connection through the same account.
fn same_target(a: &Connection, b: &Connection) -> bool {
    let (ra, rb) = (&a.spec.provider_ref, &b.spec.provider_ref);
    ra.kind == rb.kind
        && ra.name == rb.name
        && (ra.kind == ProviderKind::ClusterProvider || a.namespace() == b.namespace())
        && a.spec.connection_id == b.spec.connection_id
        && a.spec.block().map(|b| b.provider_type()) == b.spec.block().map(|b| b.provider_type())
}

/// Ordering key: older first; among those created in the same second (creationTimestamp
/// has whole seconds), one that already owns keys upstream before one that owns none, so
/// that a newer Connection applied within that second cannot take them over; then
/// namespace/name.
fn age(conn: &Connection) -> (Option<i64>, bool, String, String) {
    let created = conn.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second());
    let owns_nothing = conn.status.as_ref().is_none_or(|s| s.managed_keys.is_empty());
    (created, owns_nothing, conn.namespace().unwrap_or_default(), conn.name_any())
}

/// The oldest Connection older than `conn` that claims one of its keys, with the contested
/// keys.
pub fn older_owner(conn: &Connection, others: &[Arc<Connection>]) -> Option<(Arc<Connection>, Vec<String>)> {
    let mine = claimed_keys(conn);
    let mut older: Vec<&Arc<Connection>> = others
        .iter()
        .filter(|o| o.metadata.uid != conn.metadata.uid && same_target(conn, o) && age(o) < age(conn))
        .collect();
    older.sort_by_key(|o| age(o));
    older.into_iter().find_map(|o| {
        let contested: Vec<String> = mine.intersection(&claimed_keys(o)).cloned().collect();
        (!contested.is_empty()).then(|| (o.clone(), contested))
    })
}

/// The `Conflict` message for `owner` holding `keys`.
pub fn message(owner: &Connection, keys: &[String]) -> String {
    format!(
        "key(s) {} already owned by Connection {}/{}",
        keys.join(", "),
        owner.namespace().unwrap_or_default(),
        owner.name_any()
    )
}

/// Connections sharing `conn`'s upstream connection (but not `conn`), to re-reconcile when
/// it changes or goes away.
pub fn siblings(store: &Store<Connection>, conn: &Connection) -> Vec<ObjectRef<Connection>> {
    store
        .state()
        .iter()
        .filter(|o| o.metadata.uid != conn.metadata.uid && same_target(conn, o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conn(name: &str, created: &str, spec: serde_json::Value) -> Arc<Connection> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection",
                "metadata": {"name": name, "namespace": "t", "uid": name, "creationTimestamp": created},
                "spec": spec,
            }))
            .unwrap(),
        )
    }

    #[test]
    fn the_newer_of_two_overlapping_connections_is_in_conflict() {
        let spec = |keys: serde_json::Value| json!({"providerRef": {"name": "p"}, "connectionId": "c", "nango": {"providerConfigKey": "k", "metadata": keys}});
        let old = conn("old", "2026-01-01T00:00:00Z", spec(json!({"a": 1, "b": 1})));
        let new = conn("new", "2026-01-02T00:00:00Z", spec(json!({"b": 2, "c": 1})));
        let disjoint = conn("disjoint", "2026-01-03T00:00:00Z", spec(json!({"z": 1})));
        let all = vec![old.clone(), new.clone(), disjoint.clone()];
        let conflict =
            |c: &Connection, all: &[Arc<Connection>]| older_owner(c, all).map(|(o, keys)| message(&o, &keys));
        assert_eq!(
            conflict(&new, &all).unwrap(),
            "key(s) b already owned by Connection t/old"
        );
        assert_eq!(conflict(&old, &all), None, "the older keeps its keys");
        assert_eq!(conflict(&disjoint, &all), None, "disjoint keys coexist");
        // Created in the same second: the one that already owns the keys keeps them, even
        // if its name sorts after the other's.
        let mut owner = (*conn("zz-owner", "2026-01-05T00:00:00Z", spec(json!({"a": 1})))).clone();
        owner.status = Some(serde_json::from_value(json!({"managedKeys": ["a"]})).unwrap());
        let owner = Arc::new(owner);
        let late = conn("aa-late", "2026-01-05T00:00:00Z", spec(json!({"a": 2})));
        let both = vec![owner.clone(), late.clone()];
        assert_eq!(conflict(&late, &both).unwrap(), "key(s) a already owned by Connection t/zz-owner");
        assert_eq!(conflict(&owner, &both), None);
        let elsewhere = conn(
            "elsewhere",
            "2026-01-03T00:00:00Z",
            json!({"providerRef": {"name": "p"}, "connectionId": "other", "nango": {"providerConfigKey": "k", "metadata": {"a": 1}}}),
        );
        assert_eq!(
            conflict(&elsewhere, &[old, elsewhere.clone()]),
            None,
            "another upstream connection"
        );
    }
}
