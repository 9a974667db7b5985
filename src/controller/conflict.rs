//! Ownership conflicts between Connections: two Connections of the same upstream
//! connection through the same upstream account that declare an overlapping key. The older
//! one (creationTimestamp, then namespace/name) keeps the key; the newer one reports
//! `Ready=False` reason `Conflict` and writes nothing while in conflict, so two resources can
//! never fight over a key upstream. Disjoint keys coexist.
//!
//! "The same account" is [`crate::api::ProviderConfig::account_key`]: two Providers,
//! or a Provider and a ClusterProvider, that reach one account with one token are one. A
//! Connection whose account is not known yet (never resolved) is compared by its
//! `providerRef` instead. A Connection's keys are the ones it declares once its shared
//! settings are merged in (when known) or inline, plus `status.managedKeys`.
//!
//! Used by the controller (accounts and declared keys remembered from each reconcile) and by
//! `connection-operator plan` (both resolved on the spot).
//!
//! The candidates of a Connection come from a [`TargetIndex`] (Connections by upstream
//! connection id and provider type), not from a scan of every cached Connection, so the
//! check costs the same at 100,000 Connections as at 10.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::api::{Connection, ConnectionSpec, ProviderBlock, ProviderKind, ProviderType};

/// What every Connection of one upstream connection has in common, whatever its provider
/// reference: the connection id and the provider type. (Coarser than [`same_target`], which
/// still decides among the candidates.)
type TargetKey = (String, Option<ProviderType>);

fn target_key(conn: &Connection) -> TargetKey {
    (conn.spec.connection_id.clone(), conn.spec.block().map(|b| b.provider_type()))
}

/// The cached Connections indexed by [`TargetKey`], kept up to date from the same watch
/// events as the cache itself ([`TargetIndex::apply`]) and resolved through it, so a lookup
/// returns what the cache holds now.
#[derive(Clone)]
pub struct TargetIndex {
    store: Store<Connection>,
    inner: Arc<RwLock<Index>>,
}

#[derive(Default)]
struct Index {
    by_target: HashMap<TargetKey, Vec<ObjectRef<Connection>>>,
    keys: HashMap<ObjectRef<Connection>, TargetKey>,
    /// Objects of a re-list under way (`Init` .. `InitDone`), which then replace the index,
    /// as they replace the cache.
    relist: Option<Vec<(ObjectRef<Connection>, TargetKey)>>,
}

impl Index {
    fn insert(&mut self, object: ObjectRef<Connection>, key: TargetKey) {
        if self.keys.get(&object) == Some(&key) {
            return;
        }
        self.remove(&object);
        self.by_target.entry(key.clone()).or_default().push(object.clone());
        self.keys.insert(object, key);
    }

    fn remove(&mut self, object: &ObjectRef<Connection>) {
        let Some(key) = self.keys.remove(object) else { return };
        if let Some(objects) = self.by_target.get_mut(&key) {
            objects.retain(|o| o != object);
            if objects.is_empty() {
                self.by_target.remove(&key);
            }
        }
    }
}

/// The index's name for a Connection (name and namespace only: what the cache is keyed by).
fn object_ref(conn: &Connection) -> ObjectRef<Connection> {
    let object = ObjectRef::new(&conn.name_any());
    match conn.namespace() {
        Some(namespace) => object.within(&namespace),
        None => object,
    }
}

impl TargetIndex {
    /// An empty index resolving through `store` (the Connection cache).
    pub fn new(store: Store<Connection>) -> Self {
        TargetIndex { store, inner: Arc::default() }
    }

    /// Follow one event of the watch that fills the cache.
    pub fn apply(&self, event: &watcher::Event<Connection>) {
        let mut index = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(conn) => index.insert(object_ref(conn), target_key(conn)),
            watcher::Event::Delete(conn) => index.remove(&object_ref(conn)),
            watcher::Event::Init => index.relist = Some(Vec::new()),
            watcher::Event::InitApply(conn) => {
                let entry = (object_ref(conn), target_key(conn));
                index.relist.get_or_insert_with(Vec::new).push(entry);
            }
            watcher::Event::InitDone => {
                let listed = index.relist.take().unwrap_or_default();
                *index = Index::default();
                for (object, key) in listed {
                    index.insert(object, key);
                }
            }
        }
    }

    /// The cached Connections that may share `conn`'s upstream connection (`conn` included
    /// when cached).
    pub fn candidates(&self, conn: &Connection) -> Vec<Arc<Connection>> {
        let objects: Vec<ObjectRef<Connection>> = {
            let index = self.inner.read().unwrap_or_else(|e| e.into_inner());
            index.by_target.get(&target_key(conn)).cloned().unwrap_or_default()
        };
        objects.iter().filter_map(|o| self.store.get(o)).collect()
    }

    /// Connections sharing `conn`'s upstream connection (but not `conn`), to re-reconcile
    /// when it changes or goes away.
    pub fn siblings(&self, conn: &Connection) -> Vec<ObjectRef<Connection>> {
        self.candidates(conn)
            .iter()
            .filter(|o| o.metadata.uid != conn.metadata.uid && same_connection(conn, o))
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect()
    }
}

/// What one Connection claims upstream.
#[derive(Clone, Debug)]
pub struct Claim {
    pub conn: Arc<Connection>,
    /// Its account key, when resolved.
    pub account: Option<crate::api::AccountKey>,
    /// The keys it declares or owns, named as in `status.managedKeys`.
    pub keys: BTreeSet<String>,
}

impl Claim {
    /// `declared`: the keys of its merged spec, when resolved (else the inline ones).
    pub fn new(
        conn: Arc<Connection>,
        account: Option<crate::api::AccountKey>,
        declared: Option<BTreeSet<String>>,
    ) -> Claim {
        let mut keys = declared.unwrap_or_else(|| declared_keys(&conn.spec));
        keys.extend(conn.status.iter().flat_map(|s| s.managed_keys.iter().cloned()));
        Claim { conn, account, keys }
    }
}

/// The upstream keys a spec declares, named as in `status.managedKeys` (Mielto config keys
/// are prefixed `config.`, as the plan engine names them). Pass a merged spec
/// ([`crate::desired::Desired::spec`]) to include the keys of its shared settings.
pub fn declared_keys(spec: &ConnectionSpec) -> BTreeSet<String> {
    match spec.block() {
        Some(ProviderBlock::Nango(n)) => n.metadata.iter().flat_map(|m| m.keys().cloned()).collect(),
        Some(ProviderBlock::Arena(a)) => a.metadata.keys().cloned().collect(),
        Some(ProviderBlock::Mielto(m)) => {
            let mut keys: BTreeSet<String> =
                m.config.iter().flat_map(|c| c.keys().map(|k| format!("config.{k}"))).collect();
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
    }
}

/// Whether `a` and `b` name the same upstream connection (id, provider type, and Nango's
/// integration), whatever the account.
fn same_connection(a: &Connection, b: &Connection) -> bool {
    a.spec.connection_id == b.spec.connection_id
        && a.spec.block().map(|b| b.provider_type()) == b.spec.block().map(|b| b.provider_type())
        && a.spec.nango.as_ref().map(|n| &n.provider_config_key)
            == b.spec.nango.as_ref().map(|n| &n.provider_config_key)
}

/// Whether `a` and `b` target the same upstream connection through the same account.
fn same_target(a: &Claim, b: &Claim) -> bool {
    if !same_connection(&a.conn, &b.conn) {
        return false;
    }
    match (&a.account, &b.account) {
        (Some(x), Some(y)) => x == y,
        _ => {
            let (ra, rb) = (&a.conn.spec.provider_ref, &b.conn.spec.provider_ref);
            ra.kind == rb.kind
                && ra.name == rb.name
                && (ra.kind == ProviderKind::ClusterProvider || a.conn.namespace() == b.conn.namespace())
        }
    }
}

/// Ordering key: older first; among those created in the same second (creationTimestamp
/// has whole seconds), one that already owns keys upstream before one that owns none, so
/// that a newer Connection applied within that second cannot take them over; then
/// namespace/name. A Connection not created yet (`plan` of a new manifest) is the newest.
fn age(conn: &Connection) -> (bool, Option<i64>, bool, String, String) {
    let created = conn.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second());
    let owns_nothing = conn.status.as_ref().is_none_or(|s| s.managed_keys.is_empty());
    (created.is_none(), created, owns_nothing, conn.namespace().unwrap_or_default(), conn.name_any())
}

/// The oldest Connection older than `mine` that claims one of its keys, with the contested
/// keys.
pub fn older_owner(mine: &Claim, others: &[Claim]) -> Option<(Arc<Connection>, Vec<String>)> {
    let conn = &mine.conn;
    let mut older: Vec<&Claim> = others
        .iter()
        .filter(|o| {
            let same_uid = o.conn.metadata.uid.is_some() && o.conn.metadata.uid == conn.metadata.uid;
            let same_name = o.conn.name_any() == conn.name_any() && o.conn.namespace() == conn.namespace();
            !same_uid && !same_name && same_target(mine, o) && age(&o.conn) < age(conn)
        })
        .collect();
    older.sort_by_key(|o| age(&o.conn));
    older.into_iter().find_map(|o| {
        let contested: Vec<String> = mine.keys.intersection(&o.keys).cloned().collect();
        (!contested.is_empty()).then(|| (o.conn.clone(), contested))
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
        let conflict = |c: &Arc<Connection>, all: &[Arc<Connection>]| {
            let claims: Vec<Claim> = all.iter().map(|o| Claim::new(o.clone(), None, None)).collect();
            older_owner(&Claim::new(c.clone(), None, None), &claims).map(|(o, keys)| message(&o, &keys))
        };
        assert_eq!(conflict(&new, &all).unwrap(), "key(s) b already owned by Connection t/old");
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
        assert_eq!(conflict(&elsewhere, &[old, elsewhere.clone()]), None, "another upstream connection");
    }

    #[test]
    fn one_account_through_two_providers_is_one_target() {
        let spec = |provider: &str, keys: serde_json::Value| json!({"providerRef": {"name": provider}, "connectionId": "c", "mielto": {"config": keys}});
        let old = conn("old", "2026-01-01T00:00:00Z", spec("team-a", json!({"x": 1})));
        let new = conn("new", "2026-01-02T00:00:00Z", spec("team-b", json!({"x": 2, "y": 1})));
        let claim = |c: &Arc<Connection>, account: &str| Claim::new(c.clone(), Some(account.into()), None);
        let (owner, keys) = older_owner(&claim(&new, "acct-1"), &[claim(&old, "acct-1")]).unwrap();
        assert_eq!(message(&owner, &keys), "key(s) config.x already owned by Connection t/old");
        assert!(older_owner(&claim(&new, "acct-1"), &[claim(&old, "acct-2")]).is_none(), "two accounts");
        // Unresolved: compared by providerRef, which differs.
        assert!(older_owner(&Claim::new(new.clone(), None, None), &[claim(&old, "acct-1")]).is_none());
        // Keys from shared settings count once resolved.
        let declared: BTreeSet<String> = ["config.fromCm".to_string()].into();
        let with_source = Claim::new(old.clone(), Some("acct-1".into()), Some(declared));
        let newer = Claim::new(
            conn("n2", "2026-01-03T00:00:00Z", spec("team-b", json!({"fromCm": 1}))),
            Some("acct-1".into()),
            None,
        );
        assert!(older_owner(&newer, &[with_source]).is_some());
        // A manifest not created yet is the newest, even against a later creationTimestamp.
        let mut planned = (*conn("planned", "2026-01-01T00:00:00Z", spec("team-a", json!({"x": 3})))).clone();
        planned.metadata.creation_timestamp = None;
        planned.metadata.uid = None;
        let planned = Arc::new(planned);
        assert!(older_owner(&claim(&planned, "acct-1"), &[claim(&new, "acct-1")]).is_some());
        assert!(older_owner(&claim(&new, "acct-1"), &[claim(&planned, "acct-1")]).is_none());
    }

    /// Apply `event` to a cache and to the index, as the watch does.
    fn feed(
        writer: &mut kube::runtime::reflector::store::Writer<Connection>,
        index: &TargetIndex,
        event: watcher::Event<Connection>,
    ) {
        writer.apply_watcher_event(&event);
        index.apply(&event);
    }

    fn names(conns: &[Arc<Connection>]) -> Vec<String> {
        let mut names: Vec<String> = conns.iter().map(|c| c.name_any()).collect();
        names.sort();
        names
    }

    #[test]
    fn the_index_finds_the_connections_of_one_upstream_connection_and_follows_the_watch() {
        let (store, mut writer) = kube::runtime::reflector::store::<Connection>();
        let index = TargetIndex::new(store);
        let nango = |name: &str, id: &str, provider: &str| {
            conn(
                name,
                "2026-01-01T00:00:00Z",
                json!({"providerRef": {"name": provider}, "connectionId": id, "nango": {"providerConfigKey": "k", "metadata": {"a": 1}}}),
            )
        };
        let (a, b, other_id) = (nango("a", "c1", "p"), nango("b", "c1", "p"), nango("x", "c2", "p"));
        let other_provider = nango("y", "c1", "q");
        let arena = conn(
            "z",
            "2026-01-01T00:00:00Z",
            json!({"providerRef": {"name": "p"}, "connectionId": "c1", "arena": {"metadata": {"a": 1}}}),
        );
        feed(&mut writer, &index, watcher::Event::Init);
        for c in [&a, &b, &other_id, &other_provider, &arena] {
            feed(&mut writer, &index, watcher::Event::InitApply((**c).clone()));
        }
        assert!(index.candidates(&a).is_empty(), "nothing is indexed before the list is complete");
        feed(&mut writer, &index, watcher::Event::InitDone);

        // Same id and type: candidates; the provider reference is left to `same_target`.
        assert_eq!(names(&index.candidates(&a)), ["a", "b", "y"]);
        let siblings: Vec<String> = index.siblings(&a).into_iter().map(|o| o.name).collect();
        // Through any Provider: whether they share an account is known once they are resolved.
        assert_eq!(siblings, ["b", "y"], "another id or another type is not a sibling");
        assert_eq!(names(&index.candidates(&arena)), ["z"]);
        let claims: Vec<Claim> = index.candidates(&b).into_iter().map(|c| Claim::new(c, None, None)).collect();
        assert_eq!(
            older_owner(&Claim::new(b.clone(), None, None), &claims).map(|(o, _)| o.name_any()),
            Some("a".into())
        );

        // Deletions and updates are followed.
        feed(&mut writer, &index, watcher::Event::Delete((*a).clone()));
        assert_eq!(names(&index.candidates(&b)), ["b", "y"]);
        let a2 = nango("a", "c1", "p");
        feed(&mut writer, &index, watcher::Event::Apply((*a2).clone()));
        feed(&mut writer, &index, watcher::Event::Apply((*a2).clone()));
        assert_eq!(names(&index.candidates(&b)), ["a", "b", "y"], "applied twice, indexed once");

        // A re-list replaces the index: what it no longer lists is gone.
        feed(&mut writer, &index, watcher::Event::Init);
        feed(&mut writer, &index, watcher::Event::InitApply((*b).clone()));
        feed(&mut writer, &index, watcher::Event::InitDone);
        assert_eq!(names(&index.candidates(&b)), ["b"]);
        assert!(index.siblings(&b).is_empty());
        assert!(index.candidates(&other_id).is_empty());
    }
}
