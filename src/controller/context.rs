//! What every reconcile shares: the Kubernetes client and the watch caches, one HTTP client
//! for all providers (connection pooling), the pacers (one per provider account, so that
//! every Connection of an account shares its budget and its 429 block), the provider
//! clients (one per account, sharing its list snapshot and batched writes), the tokens read
//! from Secrets, the per-object backoff, metrics and the Event recorder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

use super::backoff::{BackoffPolicy, Backoffs};
use super::conflict::TargetIndex;
use super::lookup::Sources;
use super::tokens::Tokens;
use crate::api::{ClusterProvider, Connection, Provider};
use crate::metrics::Metrics;
use crate::providers::{Clients, Pacers, RequestObserver};

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

/// Shared state of the reconciles.
pub struct Context {
    pub client: Client,
    pub http: reqwest::Client,
    pub pacers: Pacers,
    pub clients: Clients,
    pub tokens: Tokens,
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
    resolutions: Mutex<HashMap<String, Resolution>>,
    /// Reconciles of one provider account allowed at once (see [`Context::account_slot`]).
    per_account: usize,
    account_slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl Context {
    /// `concurrency` is the controller's worker count; one provider account may use at most
    /// half of them.
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
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            http: reqwest::Client::new(),
            pacers: Pacers::default(),
            clients: Clients::new(Some(observer)),
            tokens: Tokens::default(),
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
            per_account: usize::from(concurrency / 2).max(1),
            account_slots: Mutex::default(),
        }
    }

    /// Remember what a Connection resolved to (see [`Resolution`]).
    pub fn remember_resolution(&self, uid: &str, resolution: Resolution) {
        let mut all = self.resolutions.lock().unwrap_or_else(|e| e.into_inner());
        // Entries of deleted Connections are never looked up again; drop them now and then.
        if all.len() > 64 && all.len() > 2 * self.connections.state().len() {
            let live: std::collections::HashSet<String> =
                self.connections.state().iter().filter_map(|c| c.metadata.uid.clone()).collect();
            all.retain(|uid, _| live.contains(uid));
        }
        all.insert(uid.to_string(), resolution);
    }

    /// Forget a Connection's resolution (it is being deleted).
    pub fn forget_resolution(&self, uid: &str) {
        self.resolutions.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }

    /// The last resolution of the Connection `uid`, if any.
    pub fn resolution(&self, uid: &str) -> Option<Resolution> {
        self.resolutions.lock().unwrap_or_else(|e| e.into_inner()).get(uid).cloned()
    }

    /// A slot to reconcile against the provider account `account`, if one is free now.
    ///
    /// Requests to a busy account wait for pacing tokens inside the worker (up to
    /// `pacing::MAX_PACING_WAIT`); without a cap a burst of Connections of one account would
    /// occupy every worker and starve the Connections of other providers (one rate-limited
    /// provider must not starve the others). A reconcile that finds
    /// no free slot requeues shortly instead of waiting.
    /// Reconciles of `account` holding a slot now.
    pub fn account_busy(&self, account: &str) -> usize {
        let slots = self.account_slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(account).map_or(0, |s| self.per_account.saturating_sub(s.available_permits()))
    }

    pub fn account_slot(&self, account: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self.account_slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .entry(account.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_account)))
                .clone()
        };
        semaphore.try_acquire_owned().ok()
    }
}
