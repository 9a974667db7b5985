//! The object store: what etcd plus the watch cache are to kube-apiserver. One global,
//! monotonically increasing resourceVersion (etcd's revision); every write stamps it on the
//! object and appends a watch event to a bounded history that watches replay from.
//! No validation happens here: `rest` decides what may be written.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Where an object lives: storage group and resource (several views may share one), then
/// namespace ("" for cluster-scoped objects) and name. Ordered like etcd keys
/// (`/registry/<group>/<resource>/<namespace>/<name>`), so lists come out in that order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed change, as the watch cache keeps it.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub kind: EventType,
    pub key: Key,
    /// The object after the change (for DELETED: its last state, stamped with the deletion's
    /// resourceVersion as the real watch cache does).
    pub object: Value,
    /// The object before the change, so a watch with a selector can turn "moved out of the
    /// selector" into DELETED and "moved in" into ADDED.
    pub previous: Option<Value>,
}

/// The requested resourceVersion is older than the retained history.
#[derive(Debug, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

/// Retained events to replay, and the subscription for what follows them.
pub type Replay = (Vec<Arc<StoredEvent>>, broadcast::Receiver<Arc<StoredEvent>>);

pub struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<StoredEvent>>,
    history_limit: usize,
    /// Events after this revision are retained; watching from an older one gets 410.
    oldest_rv: u64,
    /// Set by `/_sandbox/watches/expire`: the next watch resuming from this revision or an
    /// older one gets 410 even when nothing was written since (so tests are deterministic).
    expire_next: Option<u64>,
    tx: broadcast::Sender<Arc<StoredEvent>>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            oldest_rv: 0,
            expire_next: None,
            tx,
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one storage location, in key order, optionally in one namespace.
    pub fn list<'a>(
        &'a self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let start = Key {
            group: group.to_string(),
            plural: plural.to_string(),
            namespace: namespace.unwrap_or("").to_string(),
            name: String::new(),
        };
        let (g, p, ns) = (group.to_string(), plural.to_string(), namespace.map(str::to_string));
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.group == g && k.plural == p && ns.as_ref().is_none_or(|n| &k.namespace == n))
    }

    /// Every object in namespace `ns`, whatever its resource.
    pub fn keys_in_namespace(&self, ns: &str) -> Vec<Key> {
        self.objects.keys().filter(|k| k.namespace == ns).cloned().collect()
    }

    fn commit(&mut self, kind: EventType, key: Key, object: Value, previous: Option<Value>) {
        let ev = Arc::new(StoredEvent { rv: self.rv, kind, key, object, previous });
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.oldest_rv = old.rv;
            }
        }
        // No receiver is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    fn stamp(&mut self, obj: &mut Value) {
        self.rv += 1;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
    }

    /// Insert a new object or replace an existing one; returns the stored object.
    pub fn put(&mut self, key: Key, mut obj: Value) -> Value {
        self.stamp(&mut obj);
        let previous = self.objects.insert(key.clone(), obj.clone());
        let kind = if previous.is_some() { EventType::Modified } else { EventType::Added };
        self.commit(kind, key, obj.clone(), previous);
        obj
    }

    /// Remove an object; `last` is its final state (e.g. with its last finalizer removed).
    pub fn remove(&mut self, key: &Key, mut last: Value) -> Value {
        self.stamp(&mut last);
        let previous = self.objects.remove(key);
        self.commit(EventType::Deleted, key.clone(), last.clone(), previous);
        last
    }

    /// Subscribe to live events and collect the retained ones after `since`, atomically
    /// (the caller holds the lock around the store, so nothing falls in between).
    pub fn watch_from(&mut self, since: u64) -> Result<Replay, TooOld> {
        if since < self.oldest_rv {
            // This watch is the one the armed expiry was meant for; the next resumes normally.
            self.expire_next = None;
            return Err(TooOld { requested: since, oldest: self.oldest_rv });
        }
        if let Some(limit) = self.expire_next.filter(|limit| since <= *limit) {
            self.expire_next = None;
            return Err(TooOld { requested: since, oldest: limit + 1 });
        }
        let replay = self.history.iter().filter(|e| e.rv > since).cloned().collect();
        Ok((replay, self.tx.subscribe()))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.tx.subscribe()
    }

    /// Forget the history, as a compaction does: any watch from an older revision sees 410.
    /// Also arms a one-shot 410 for the next watch from the current revision.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_rv = self.rv;
        self.expire_next = Some(self.rv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> Key {
        Key { group: "".into(), plural: "configmaps".into(), namespace: ns.into(), name: name.into() }
    }

    #[test]
    fn revisions_increase_and_history_replays() {
        let mut s = Store::new(10);
        let a = s.put(key("a", "x"), json!({"metadata": {"name": "x"}}));
        let b = s.put(key("a", "x"), json!({"metadata": {"name": "x"}, "data": {}}));
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(b["metadata"]["resourceVersion"], "2");
        let (replay, _) = s.watch_from(1).unwrap();
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].kind, EventType::Modified);
        assert!(replay[0].previous.is_some());
    }

    #[test]
    fn bounded_history_expires_old_versions() {
        let mut s = Store::new(2);
        for i in 0..5 {
            s.put(key("a", &format!("o{i}")), json!({}));
        }
        assert!(s.watch_from(1).is_err());
        assert_eq!(s.watch_from(3).unwrap().0.len(), 2);
        s.compact();
        // One watch from the current revision sees 410 once, then resuming works.
        assert!(s.watch_from(5).is_err());
        assert!(s.watch_from(5).unwrap().0.is_empty());
        // A watch from before the compaction consumes the one-shot too.
        s.compact();
        assert!(s.watch_from(4).is_err());
        assert!(s.watch_from(5).unwrap().0.is_empty());
    }

    #[test]
    fn list_is_scoped_by_namespace() {
        let mut s = Store::new(10);
        s.put(key("a", "x"), json!({}));
        s.put(key("b", "y"), json!({}));
        s.put(Key { group: "".into(), plural: "secrets".into(), namespace: "a".into(), name: "z".into() }, json!({}));
        assert_eq!(s.list("", "configmaps", None).count(), 2);
        assert_eq!(s.list("", "configmaps", Some("b")).count(), 1);
        assert_eq!(s.keys_in_namespace("a").len(), 2);
    }
}
