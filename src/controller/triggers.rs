//! What makes a Connection reconcile (docs/controller.md, "Reconcile"): its own changes
//! (generation, deletion, the `reconcile-requested-at` annotation; not its status, so writing
//! status does not trigger another upstream read), changes of the Provider or ClusterProvider it
//! references (spec only), changes of the Secret those reference (credential rotation
//! without restart), and the drift timer (the requeue after each reconcile).
//!
//! Secrets are watched with a metadata-only watch: the controller never holds the data of
//! Secrets it does not use, and reads the one it uses with a GET when its resourceVersion
//! differs from the one its cached token was read at (`providers::Accounts`).
//!
//! A reconcile reads its object from the cache, not from the event that woke it, so every
//! watch passes on the objects of a relist only once its cache shows the whole list
//! (`settled`).
//!
//! The caches drop `managedFields`, which nothing here reads and which would otherwise be
//! most of the memory of 10,000 cached Connections.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, ResourceExt};

use super::conflict::TargetIndex;
use super::reconcile::RECONCILE_REQUESTED_AT;
use crate::api::{ClusterProvider, Connection, Provider, ProviderKind, SourceKind};
use crate::desired;

/// The hash of what makes a Connection worth reconciling when it changes.
fn connection_trigger(conn: &Connection) -> Option<u64> {
    let mut h = DefaultHasher::new();
    conn.metadata.generation.hash(&mut h);
    conn.metadata.deletion_timestamp.as_ref().map(|t| t.0.as_second()).hash(&mut h);
    conn.annotations().get(RECONCILE_REQUESTED_AT).hash(&mut h);
    conn.metadata.uid.hash(&mut h);
    Some(h.finish())
}

/// The watch streams and the caches they fill.
pub struct Triggers<C, CC, P, CP, S, M> {
    pub connections: C,
    /// Every change of any Connection (deletions included), to re-reconcile the other
    /// Connections of the same upstream connection (ownership conflicts).
    pub connection_changes: CC,
    pub connection_store: Store<Connection>,
    /// The cached Connections by upstream connection (ownership conflicts).
    pub connection_targets: TargetIndex,
    /// The Provider watch's events, already applied to `provider_store` (the controller
    /// sees deletions and relists in them before `spec_changes` turns them into triggers).
    pub providers: P,
    pub provider_store: Store<Provider>,
    /// The ClusterProvider watch's events, as `providers`.
    pub cluster_providers: CP,
    pub cluster_provider_store: Store<ClusterProvider>,
    pub secrets: S,
    pub secret_store: Store<PartialObjectMeta<Secret>>,
    pub config_maps: M,
    pub config_map_store: Store<PartialObjectMeta<ConfigMap>>,
}

/// Build the watch streams, scoped to `namespace` when given (ClusterProviders are
/// cluster-scoped and always watched cluster-wide).
#[allow(clippy::type_complexity)]
pub fn streams(
    client: &Client,
    namespace: Option<&str>,
) -> Triggers<
    impl Stream<Item = Result<Connection, watcher::Error>> + Send + 'static,
    impl Stream<Item = Result<Connection, watcher::Error>> + Send + 'static,
    impl Stream<Item = Result<watcher::Event<Provider>, watcher::Error>> + Send + 'static,
    impl Stream<Item = Result<watcher::Event<ClusterProvider>, watcher::Error>> + Send + 'static,
    impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static,
    impl Stream<Item = Result<PartialObjectMeta<ConfigMap>, watcher::Error>> + Send + 'static,
> {
    // `Api<PartialObjectMeta<_>>` makes metadata-only list and watch requests.
    let (connections_api, providers_api, secrets_api, config_maps_api): (
        Api<Connection>,
        Api<Provider>,
        Api<PartialObjectMeta<Secret>>,
        Api<PartialObjectMeta<ConfigMap>>,
    ) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => {
            (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()))
        }
    };
    let cluster_providers_api: Api<ClusterProvider> = Api::all(client.clone());
    let wc = watcher::Config::default();

    let connection_changes = watcher(connections_api.clone(), wc.clone()).default_backoff().touched_objects();
    let (connection_store, writer) = reflector::store();
    let connection_targets = TargetIndex::new(connection_store.clone());
    let connections = connection_triggers(
        watcher(connections_api, wc.clone()).modify(drop_managed_fields),
        writer,
        connection_store.clone(),
        connection_targets.clone(),
    );
    let (provider_store, writer) = reflector::store();
    let providers = settled(
        reflector::reflector(writer, watcher(providers_api, wc.clone()).modify(drop_managed_fields)),
        provider_store.clone(),
    )
    .default_backoff();
    let (cluster_provider_store, writer) = reflector::store();
    let cluster_providers = settled(
        reflector::reflector(writer, watcher(cluster_providers_api, wc.clone()).modify(drop_managed_fields)),
        cluster_provider_store.clone(),
    )
    .default_backoff();
    let (secret_store, writer) = reflector::store();
    // Deletions too: a deleted Secret or ConfigMap of shared settings is `ReferenceNotFound`.
    let secrets = settled(
        reflector::reflector(writer, watcher(secrets_api, wc.clone()).modify(drop_managed_fields)),
        secret_store.clone(),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicates::resource_version, Default::default())
    .boxed();
    let (config_map_store, writer) = reflector::store();
    let config_maps = settled(
        reflector::reflector(writer, watcher(config_maps_api, wc).modify(drop_managed_fields)),
        config_map_store.clone(),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicates::resource_version, Default::default())
    .boxed();
    Triggers {
        connections,
        connection_changes,
        connection_store,
        connection_targets,
        providers,
        provider_store,
        cluster_providers,
        cluster_provider_store,
        secrets,
        secret_store,
        config_maps,
        config_map_store,
    }
}

/// The Connections worth reconciling (`connection_trigger`) from the events of their watch,
/// which fill `store` (through `writer`) and `index` on the way.
fn connection_triggers(
    events: impl Stream<Item = Result<watcher::Event<Connection>, watcher::Error>> + Send + 'static,
    writer: reflector::store::Writer<Connection>,
    store: Store<Connection>,
    index: TargetIndex,
) -> impl Stream<Item = Result<Connection, watcher::Error>> + Send + 'static {
    let reflected = reflector::reflector(writer, events).inspect(move |event| {
        if let Ok(event) = event {
            index.apply(event);
        }
    });
    settled(reflected, store)
        .default_backoff()
        .applied_objects()
        .predicate_filter(connection_trigger, Default::default())
}

/// The events of a reflected watch, with the objects of a (re)list held back until the
/// reflector's `store` shows the whole list: then each listed object comes as an `Apply`,
/// right after `InitDone`.
///
/// A reconcile reads its object from the store, not from the event that triggered it. During
/// a relist (after the watch fell too far behind, a 410 `Expired`) the reflector fills a
/// buffer and only swaps it into the store at `InitDone`, so a trigger passed on at
/// `InitApply` can start a reconcile that still finds the object as it was before the relist:
/// a new generation seen only through the relist would be reconciled as the old one, found in
/// sync, and never looked at again until the drift timer (the trigger's predicate has already
/// recorded the new generation). A list of more than one page leaves plenty of time for
/// that between its pages.
fn settled<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    store: Store<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    type Events<K> = Box<dyn Iterator<Item = Result<watcher::Event<K>, watcher::Error>> + Send>;
    events.flat_map(move |event| {
        let out: Events<K> = match event {
            Ok(watcher::Event::InitApply(_)) => Box::new(std::iter::empty()),
            Ok(watcher::Event::InitDone) => {
                // The store now holds exactly the listed objects (those of an interrupted
                // relist included); each is cloned only when passed on.
                let listed = store.state().into_iter().map(|obj| Ok(watcher::Event::Apply((*obj).clone())));
                Box::new(std::iter::once(Ok(watcher::Event::InitDone)).chain(listed))
            }
            other => Box::new(std::iter::once(other)),
        };
        futures::stream::iter(out)
    })
}

fn drop_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// The objects of a watch whose spec changed (new generation) or that were deleted. Status
/// writes (the operator's own Provider status updates) are skipped, so they do not make every
/// Connection of the account read upstream again; a deleted Provider is passed on so its
/// Connections report `ProviderNotFound` at once (kube-runtime's predicate filter would drop
/// the deletion, whose generation is unchanged).
pub fn spec_changes<K>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource + Send + 'static,
{
    // The shard label counts as spec: it moves the account to another shard (`--shards`),
    // whose process must then reconcile its Connections.
    let mut seen: HashMap<String, (Option<i64>, Option<String>)> = HashMap::new();
    events.flat_map(move |event| {
        let out: Vec<Result<K, watcher::Error>> = match event {
            Err(e) => vec![Err(e)],
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                let uid = obj.meta().uid.clone().unwrap_or_default();
                let label = obj.meta().labels.as_ref().and_then(|l| l.get(super::shard::SHARD_LABEL)).cloned();
                let version = (obj.meta().generation, label);
                if seen.get(&uid) == Some(&version) {
                    vec![]
                } else {
                    seen.insert(uid, version);
                    vec![Ok(obj)]
                }
            }
            Ok(watcher::Event::Delete(obj)) => {
                seen.remove(obj.meta().uid.as_deref().unwrap_or_default());
                vec![Ok(obj)]
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => vec![],
        };
        futures::stream::iter(out)
    })
}

/// Connections referencing the Provider `provider`.
pub fn for_provider(connections: &Store<Connection>, provider: &Provider) -> Vec<ObjectRef<Connection>> {
    let namespace = provider.namespace();
    let name = provider.name_any();
    connections
        .state()
        .iter()
        .filter(|c| {
            c.namespace() == namespace
                && c.spec.provider_ref.kind == ProviderKind::Provider
                && c.spec.provider_ref.name == name
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Connections referencing the ClusterProvider `provider`.
pub fn for_cluster_provider(connections: &Store<Connection>, provider: &ClusterProvider) -> Vec<ObjectRef<Connection>> {
    let name = provider.name_any();
    connections
        .state()
        .iter()
        .filter(|c| c.spec.provider_ref.kind == ProviderKind::ClusterProvider && c.spec.provider_ref.name == name)
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Connections in `namespace` whose shared settings read the `kind` object `name`.
fn for_source(
    connections: &Store<Connection>,
    kind: SourceKind,
    namespace: Option<&String>,
    name: &str,
) -> Vec<ObjectRef<Connection>> {
    connections
        .state()
        .iter()
        .filter(|c| {
            c.namespace().as_ref() == namespace
                && desired::references(&c.spec).iter().any(|(k, n, _)| *k == kind && n == name)
        })
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

/// Connections whose shared settings read the ConfigMap `config_map` (created, changed or
/// deleted).
pub fn for_config_map(
    connections: &Store<Connection>,
    config_map: &PartialObjectMeta<ConfigMap>,
) -> Vec<ObjectRef<Connection>> {
    for_source(connections, SourceKind::ConfigMap, config_map.namespace().as_ref(), &config_map.name_any())
}

/// Connections whose Provider or ClusterProvider takes its token from `secret`, or whose
/// shared settings read it.
pub fn for_secret(
    connections: &Store<Connection>,
    providers: &Store<Provider>,
    cluster_providers: &Store<ClusterProvider>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<Connection>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    let mut refs = Vec::new();
    for p in providers.state().iter().filter(|p| p.namespace() == namespace && p.spec.credentials_ref.name == name) {
        refs.extend(for_provider(connections, p));
    }
    for p in cluster_providers.state().iter().filter(|p| {
        Some(&p.spec.credentials_ref.namespace) == namespace.as_ref() && p.spec.credentials_ref.name == name
    }) {
        refs.extend(for_cluster_provider(connections, p));
    }
    refs.extend(for_source(connections, SourceKind::Secret, namespace.as_ref(), &name));
    refs
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use futures::channel::mpsc;
    use serde_json::json;

    use super::*;

    fn conn(name: &str, generation: i64) -> Connection {
        serde_json::from_value(json!({
            "apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection",
            "metadata": {"name": name, "namespace": "t", "uid": name, "generation": generation},
            "spec": {"providerRef": {"name": "p"}, "connectionId": name, "nango": {"providerConfigKey": "k"}},
        }))
        .unwrap()
    }

    /// Feeds watch events through the Connection triggers and records, for each trigger, its
    /// name, its generation and the generation the store shows when the trigger comes out
    /// (what a reconcile started by it would read).
    struct Pipeline {
        tx: mpsc::UnboundedSender<Result<watcher::Event<Connection>, watcher::Error>>,
        triggers: futures::stream::BoxStream<'static, Result<Connection, watcher::Error>>,
        store: Store<Connection>,
    }

    impl Pipeline {
        fn new() -> Self {
            let (tx, rx) = mpsc::unbounded();
            let (store, writer) = reflector::store();
            let index = TargetIndex::new(store.clone());
            let triggers = connection_triggers(rx, writer, store.clone(), index).boxed();
            Pipeline { tx, triggers, store }
        }

        /// Send `events` and take every trigger ready after each one, as the controller
        /// would (it starts a reconcile as soon as a trigger comes out).
        fn feed(&mut self, events: Vec<watcher::Event<Connection>>) -> Vec<(String, Option<i64>, Option<i64>)> {
            let mut out = Vec::new();
            for event in events {
                self.tx.unbounded_send(Ok(event)).unwrap();
                while let Some(Some(Ok(c))) = self.triggers.next().now_or_never() {
                    let stored = self.store.get(&ObjectRef::from_obj(&c)).and_then(|s| s.metadata.generation);
                    out.push((c.name_any(), c.metadata.generation, stored));
                }
            }
            out
        }
    }

    #[test]
    fn a_generation_seen_first_in_a_relist_triggers_once_the_store_shows_it() {
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        let mut p = Pipeline::new();
        let mut first = p.feed(vec![Init, InitApply(conn("a", 1)), InitApply(conn("b", 1)), InitDone]);
        first.sort();
        assert_eq!(first, [("a".into(), Some(1), Some(1)), ("b".into(), Some(1), Some(1))]);
        // A status write of the same generation wakes nothing.
        assert_eq!(p.feed(vec![Apply(conn("a", 1))]), []);
        // The watch fell behind and relists, in two pages: `a` has a new generation that only
        // the relist shows. Between the pages the store still holds the old list.
        let relist = p.feed(vec![Init, InitApply(conn("a", 2)), InitApply(conn("b", 1)), InitDone]);
        assert_eq!(relist, [("a".into(), Some(2), Some(2))], "one trigger, read as the new generation");
        // A relist that changed nothing wakes nothing.
        assert_eq!(p.feed(vec![Init, InitApply(conn("a", 2)), InitApply(conn("b", 1)), InitDone]), []);
        // Live changes still trigger at once.
        assert_eq!(p.feed(vec![Apply(conn("b", 2))]), [("b".into(), Some(2), Some(2))]);
    }
}
