//! Deletion and what the controller-manager would do after it: objects with finalizers get
//! a deletionTimestamp and stay until their last finalizer is removed; a deleted namespace
//! turns Terminating, has its contents deleted and disappears once empty (namespace
//! controller); a deleted CRD has its objects deleted first (apiextensions
//! `customresourcecleanup` finalizer). Done synchronously within the write that triggers it.
//! Likewise the ServiceAccount controller's `default` account in every new namespace.

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::crds::{self, CLEANUP_FINALIZER};
use super::object_meta::{finalizers, meta_mut, now_rfc3339};
use super::store::Key;

pub enum Deleted {
    /// Removed from storage (DELETED event sent); its last state.
    Gone(Value),
    /// Still present with a deletionTimestamp, waiting for finalizers.
    Pending(Value),
}

fn is_namespace(k: &Key) -> bool {
    k.group.is_empty() && k.plural == "namespaces"
}

fn is_crd(k: &Key) -> bool {
    k.group == "apiextensions.k8s.io" && k.plural == "customresourcedefinitions"
}

/// What the ServiceAccount controller does for a new namespace: create its `default`
/// ServiceAccount.
pub fn namespace_created(c: &mut Cluster, namespace: &str) {
    let key = Key {
        group: String::new(),
        plural: "serviceaccounts".into(),
        namespace: namespace.into(),
        name: "default".into(),
    };
    if c.store.get(&key).is_some() {
        return;
    }
    let sa = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": namespace, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now_rfc3339()}
    });
    c.store.put(key, sa);
}

/// Delete the object at `key` (which must exist).
pub fn delete_key(c: &mut Cluster, key: &Key) -> Deleted {
    let Some(mut obj) = c.store.get(key).cloned() else {
        return Deleted::Gone(Value::Null);
    };
    let special = is_namespace(key) || is_crd(key);
    if !special && finalizers(&obj).is_empty() {
        return Deleted::Gone(c.store.remove(key, obj));
    }
    if obj["metadata"]["deletionTimestamp"].is_null() {
        let m = meta_mut(&mut obj);
        m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if is_namespace(key) {
            obj["status"] = json!({"phase": "Terminating"});
        }
        if is_crd(key) {
            crds::mark_deleting(&mut obj);
        }
        obj = c.store.put(key.clone(), obj);
        if is_namespace(key) {
            for k in c.store.keys_in_namespace(&key.name) {
                delete_key(c, &k);
            }
        }
        if is_crd(key) {
            let (g, p) = crds::storage_of(&obj);
            let keys: Vec<Key> = c.store.list(&g, &p, None).map(|(k, _)| k.clone()).collect();
            for k in keys {
                delete_key(c, &k);
            }
        }
        settle(c);
    }
    match c.store.get(key) {
        Some(o) => Deleted::Pending(o.clone()),
        None => Deleted::Gone(obj),
    }
}

/// Finish terminating namespaces and CRDs whose contents are gone.
pub fn settle(c: &mut Cluster) {
    loop {
        let mut progressed = false;
        let terminating: Vec<(Key, Value)> = c
            .store
            .list("", "namespaces", None)
            .chain(c.store.list("apiextensions.k8s.io", "customresourcedefinitions", None))
            .filter(|(_, o)| !o["metadata"]["deletionTimestamp"].is_null())
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        for (key, mut obj) in terminating {
            let empty = if is_namespace(&key) {
                c.store.keys_in_namespace(&key.name).is_empty()
            } else {
                let (g, p) = crds::storage_of(&obj);
                c.store.list(&g, &p, None).next().is_none()
            };
            if !empty {
                if is_namespace(&key) {
                    report_remaining_content(c, &key, obj);
                }
                continue;
            }
            // Drop the system finalizer the respective controller owns.
            let before = obj.clone();
            if is_namespace(&key) {
                obj["spec"]["finalizers"] = json!([]);
            } else {
                let rest: Vec<Value> =
                    finalizers(&obj).into_iter().filter(|f| f != CLEANUP_FINALIZER).map(Value::String).collect();
                meta_mut(&mut obj).insert("finalizers".into(), Value::Array(rest));
            }
            super::object_meta::drop_empty_meta(&mut obj);
            if finalizers(&obj).is_empty() {
                if is_crd(&key) {
                    crds::unregister(&mut c.registry, &obj);
                }
                c.store.remove(&key, obj);
                progressed = true;
            } else if obj != before {
                c.store.put(key, obj);
            }
        }
        if !progressed {
            break;
        }
    }
}

/// The condition types the namespace controller maintains on a terminating namespace, with
/// the reason and message of their "all is well" (False) state.
const NAMESPACE_CONDITIONS: &[(&str, &str, &str)] = &[
    ("NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered", "All resources successfully discovered"),
    ("NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    ("NamespaceContentRemaining", "ContentRemoved", "All content successfully removed"),
    ("NamespaceFinalizersRemaining", "ContentHasNoFinalizers", "All content-preserving finalizers finished"),
];

/// What the namespace controller reports on a namespace whose content is held back by
/// finalizers (`namespaceConditionUpdater`): which resources remain and which finalizers
/// hold them, each condition's transition time kept while its status stays.
fn report_remaining_content(c: &mut Cluster, key: &Key, mut ns: Value) {
    let mut by_resource: std::collections::BTreeMap<String, usize> = Default::default();
    let mut by_finalizer: std::collections::BTreeMap<String, usize> = Default::default();
    for k in c.store.keys_in_namespace(&key.name) {
        *by_resource.entry(format!("{}.{}", k.plural, k.group)).or_default() += 1;
        if let Some(o) = c.store.get(&k) {
            for f in finalizers(o) {
                *by_finalizer.entry(f).or_default() += 1;
            }
        }
    }
    let remaining = |counts: &std::collections::BTreeMap<String, usize>, format: fn(&str, usize) -> String| {
        let mut parts: Vec<String> = counts.iter().map(|(name, n)| format(name, *n)).collect();
        parts.sort();
        parts.join(", ")
    };
    let now = now_rfc3339();
    let old: Vec<Value> = ns["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let conditions: Vec<Value> = NAMESPACE_CONDITIONS
        .iter()
        .map(|(ty, ok_reason, ok_message)| {
            let (status, reason, message) = match *ty {
                "NamespaceContentRemaining" if !by_resource.is_empty() => (
                    "True",
                    "SomeResourcesRemain".to_string(),
                    format!(
                        "Some resources are remaining: {}",
                        remaining(&by_resource, |r, n| format!("{r} has {n} resource instances"))
                    ),
                ),
                "NamespaceFinalizersRemaining" if !by_finalizer.is_empty() => (
                    "True",
                    "SomeFinalizersRemain".to_string(),
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        remaining(&by_finalizer, |f, n| format!("{f} in {n} resource instances"))
                    ),
                ),
                _ => ("False", ok_reason.to_string(), ok_message.to_string()),
            };
            let since = old
                .iter()
                .find(|o| o["type"] == *ty && o["status"] == status)
                .and_then(|o| o["lastTransitionTime"].as_str())
                .unwrap_or(&now)
                .to_string();
            json!({"type": ty, "status": status, "lastTransitionTime": since, "reason": reason, "message": message})
        })
        .collect();
    if ns["status"]["conditions"] != json!(conditions) {
        ns["status"]["conditions"] = json!(conditions);
        c.store.put(key.clone(), ns);
    }
}
