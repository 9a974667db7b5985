//! What every reconcile shares: the Kubernetes client and the watch caches, the provider
//! accounts (`providers::Accounts`: per account its pacer, client and reconcile slots, and
//! the tokens read from Secrets), the per-object backoff, metrics and the Event recorder.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::backoff::{BackoffPolicy, Backoffs};
use super::conflict::TargetIndex;
use super::lookup::Sources;
use crate::api::{ClusterProvider, Connection, Provider, ProviderId, ProviderKind};
use crate::metrics::Metrics;
use crate::providers::{AccountHandle, Accounts, CountObserver, RequestObserver};

/// The field manager of every write the operator makes, so its fields are told apart from
/// those `kubectl` or other controllers set.
pub const FIELD_MANAGER: &str = "connection-operator";

/// Time constants of the error policy and the drift timer. Production uses
/// [`Timing::default`] (docs/controller.md, "Reconcile"); tests shorten them through the library
/// API (there is no command-line flag for them) so that they assert on counts and states
/// without waiting minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Backoff after retryable failures: 1 s doubling to 5 min.
    pub backoff: BackoffPolicy,
    /// Safety requeue after a terminal failure (nothing is retried before the Connection,
    /// its Provider or its Secret changes, or this elapses): 30 min.
    pub terminal_requeue: Duration,
    /// Test-only: replaces every Connection's `spec.driftInterval` (whose admitted minimum,
    /// 30 s, is too long for a test). `None` in production.
    pub drift_interval_override: Option<Duration>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            backoff: BackoffPolicy::default(),
            terminal_requeue: Duration::from_secs(30 * 60),
            drift_interval_override: None,
        }
    }
}

/// The watch caches a reconcile reads instead of asking the API server.
#[derive(Clone)]
pub struct Caches {
    pub connections: Store<Connection>,
    /// The same cache, by upstream connection.
    pub connection_targets: TargetIndex,
    pub providers: Store<Provider>,
    pub cluster_providers: Store<ClusterProvider>,
    /// Secret metadata (resourceVersion), to know when a cached token is still current.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// ConfigMap metadata (resourceVersion), to know when cached shared settings are current.
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
}

/// What the last reconcile of a Connection resolved, for the Conflict rule between
/// Connections: its account key and the keys its merged spec declares.
#[derive(Clone, Debug)]
pub struct Resolution {
    pub account: crate::api::AccountKey,
    pub declared: std::collections::BTreeSet<String>,
}

/// The last resolution of each Connection, by uid. Entries of Connections deleted without a
/// reconcile seeing it (a finalizer removed by hand, a deletion while the operator was down)
/// are never looked up again and are pruned against the cache now and then: each time the
/// map has doubled since the last prune, so a reconcile costs O(1) amortised. Reading the
/// whole cache on every reconcile would make each one O(Connections).
struct Resolutions<V = Resolution> {
    by_uid: HashMap<String, V>,
    /// The size at which the next prune runs.
    prune_at: usize,
}

impl<V> Default for Resolutions<V> {
    fn default() -> Self {
        Resolutions { by_uid: HashMap::new(), prune_at: 0 }
    }
}

impl<V> Resolutions<V> {
    /// Below this many entries nothing is pruned.
    const FLOOR: usize = 64;

    /// Remember `resolution` for `uid`, first pruning the entries whose uid `live` (the
    /// cached Connections' uids, read only when a prune is due) does not hold.
    fn remember(&mut self, uid: &str, resolution: V, live: impl FnOnce() -> HashSet<String>) {
        if self.by_uid.len() >= self.prune_at.max(Self::FLOOR) {
            let live = live();
            self.by_uid.retain(|uid, _| live.contains(uid));
            self.prune_at = 2 * self.by_uid.len();
        }
        self.by_uid.insert(uid.to_string(), resolution);
    }
}

/// Shared state of the reconciles.
pub struct Context {
    pub client: Client,
    /// The provider accounts in use, and the tokens read from Secrets.
    pub accounts: Accounts,
    pub backoffs: Backoffs,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub timing: Timing,
    /// The controller's cache of Connections.
    pub connections: Store<Connection>,
    /// The same cache by upstream connection, for ownership conflicts between them.
    pub connection_targets: TargetIndex,
    pub providers: Store<Provider>,
    pub cluster_providers: Store<ClusterProvider>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    /// Data of the ConfigMaps and Secrets that shared settings reference.
    pub sources: Sources,
    /// Whether a Connection is this process's shard's (`--shards`).
    pub shard_gate: super::shard_gate::ShardGate,
    /// The last resolution of each Connection, by uid.
    resolutions: Mutex<Resolutions>,
    /// The operator's upstream turns: `--concurrency` permits (see [`Context::upstream_slot`]).
    upstream_turns: Arc<Semaphore>,
}

/// A reconcile's turn to talk to its provider: one of its account's slots and one of the
/// operator's upstream turns, both given back when dropped.
pub struct UpstreamTurn {
    _account: OwnedSemaphorePermit,
    _operator: OwnedSemaphorePermit,
}

impl Context {
    /// `concurrency` is the number of upstream turns (`--concurrency`); one provider account
    /// may hold at most half of them.
    pub fn new(client: Client, metrics: Arc<Metrics>, timing: Timing, caches: Caches, concurrency: u16) -> Self {
        let reporter = Reporter { controller: FIELD_MANAGER.to_string(), instance: std::env::var("POD_NAME").ok() };
        let counted = metrics.clone();
        let observer: RequestObserver = Arc::new(move |provider, method, status, took| {
            let code = match status {
                Some(s) if (200..300).contains(&s) => "2xx".to_string(),
                Some(s) => s.to_string(),
                None => "error".to_string(),
            };
            counted.upstream_request(provider, method.as_str(), &code, took);
        });
        let gauge = metrics.clone();
        let accounts_counted: CountObserver = Arc::new(move |n| gauge.provider_accounts(n));
        // One account may hold at most half the workers, so that one busy (rate-limited,
        // slow) provider cannot starve the others.
        let per_account = usize::from(concurrency / 2).max(1);
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            accounts: Accounts::new(Some(observer), Some(accounts_counted), per_account),
            backoffs: Backoffs::new(timing.backoff),
            metrics,
            timing,
            connections: caches.connections,
            connection_targets: caches.connection_targets,
            providers: caches.providers,
            cluster_providers: caches.cluster_providers,
            secrets: caches.secrets,
            config_maps: caches.config_maps,
            sources: Sources::default(),
            shard_gate: Default::default(),
            resolutions: Mutex::default(),
            upstream_turns: Arc::new(Semaphore::new(usize::from(concurrency).max(1))),
        }
    }

    /// Remember what a Connection resolved to (see [`Resolution`]).
    pub fn remember_resolution(&self, uid: &str, resolution: Resolution) {
        let mut all = self.resolutions.lock().unwrap_or_else(|e| e.into_inner());
        all.remember(uid, resolution, || {
            self.connections.state().iter().filter_map(|c| c.metadata.uid.clone()).collect()
        });
    }

    /// Forget a Connection's resolution (it is being deleted).
    pub fn forget_resolution(&self, uid: &str) {
        self.resolutions.lock().unwrap_or_else(|e| e.into_inner()).by_uid.remove(uid);
    }

    /// The last resolution of the Connection `uid`, if any.
    pub fn resolution(&self, uid: &str) -> Option<Resolution> {
        self.resolutions.lock().unwrap_or_else(|e| e.into_inner()).by_uid.get(uid).cloned()
    }

    /// A turn to talk to `account`'s provider, for the read → plan → write stage only (not
    /// the Kubernetes writes after it): first one of the account's slots (`None` when none
    /// is free and the account's queue is full: the reconcile requeues shortly), then one of
    /// the operator's `--concurrency` upstream turns, waited for in arrival order. The
    /// controller runs twice as many workers as turns (`controller::workers`), so the
    /// requests in flight upstream stay within `--concurrency` across all accounts while
    /// status writes overlap them.
    pub async fn upstream_slot(&self, account: &AccountHandle) -> Option<UpstreamTurn> {
        let slot = account.slot().await?;
        // The semaphore is never closed.
        let turn = self.upstream_turns.clone().acquire_owned().await.ok()?;
        Some(UpstreamTurn { _account: slot, _operator: turn })
    }

    /// A Provider watch event: a deleted Provider no longer holds its account; after a
    /// relist (`InitDone`), the Providers no longer listed are forgotten too, since their
    /// deletion may have happened while the watch was down.
    pub fn provider_event(&self, event: &watcher::Event<Provider>) {
        self.on_provider_event(event, ProviderKind::Provider, Provider::id, || {
            self.providers.state().iter().map(|p| p.id()).collect()
        });
    }

    /// [`Context::provider_event`] for ClusterProviders.
    pub fn cluster_provider_event(&self, event: &watcher::Event<ClusterProvider>) {
        self.on_provider_event(event, ProviderKind::ClusterProvider, ClusterProvider::id, || {
            self.cluster_providers.state().iter().map(|p| p.id()).collect()
        });
    }

    /// `listed` is read after the reflector applied the event, so on `InitDone` it is the
    /// relisted state.
    fn on_provider_event<K>(
        &self,
        event: &watcher::Event<K>,
        kind: ProviderKind,
        id: impl Fn(&K) -> ProviderId,
        listed: impl FnOnce() -> HashSet<ProviderId>,
    ) {
        match event {
            watcher::Event::Delete(object) => self.accounts.forget(&id(object)),
            watcher::Event::InitDone => self.accounts.sweep(kind, &listed()),
            watcher::Event::Apply(_) | watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::Resolutions;

    #[test]
    fn resolutions_read_the_cache_a_logarithmic_number_of_times_and_drop_the_deleted() {
        let mut resolutions = Resolutions::<u32>::default();
        let mut reads = 0;
        let live: HashSet<String> = (0..10_000).map(|i| format!("uid-{i}")).collect();
        for i in 0..10_000 {
            resolutions.remember(&format!("uid-{i}"), i, || {
                reads += 1;
                live.clone()
            });
        }
        assert_eq!(resolutions.by_uid.len(), 10_000);
        // Prunes at 64, 128, ..., 8192: one read of the cache each time the map doubled.
        assert_eq!(reads, 8, "the cache was read {reads} times for 10,000 reconciles");

        // Every one deleted unseen but the first ten: the next prune forgets the others.
        let survivors: HashSet<String> = (0..10).map(|i| format!("uid-{i}")).collect();
        for i in 10_000..20_000 {
            resolutions.remember(&format!("uid-{i}"), i, || {
                (10_000..20_000).map(|j| format!("uid-{j}")).chain(survivors.iter().cloned()).collect()
            });
        }
        assert!(resolutions.by_uid.contains_key("uid-3"));
        assert!(!resolutions.by_uid.contains_key("uid-5000"), "a deleted Connection's resolution kept");
        assert!(resolutions.by_uid.len() < 20_000);
    }
}
