//! The reconcile loop (kube-runtime `Controller` on Connections), status building, error
//! policy and finalizer handling.
//!
//! - `triggers`: the watches and how Provider/ClusterProvider/Secret changes map to
//!   Connections;
//! - `reconcile`: dereference → read → plan → write → status, and deletion;
//! - `status`: deterministic status building; `backoff`: per-object backoff;
//! - `finalizer`, `events`, `context`.

mod backoff;
pub mod conflict;
mod context;
mod events;
mod finalizer;
mod leader;
mod lookup;
mod reconcile;
pub mod shard;
mod shard_gate;
mod status;
mod triggers;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::Client;
use kube::runtime::{Controller, controller};

pub use backoff::BackoffPolicy;
pub use context::{FIELD_MANAGER, Timing};
pub use finalizer::FINALIZER;
pub use leader::{LeaseSettings, run_when_leading};
pub use reconcile::RECONCILE_REQUESTED_AT;
pub use shard::{SHARD_LABEL, Shard};
pub use shard_gate::INVALID_SHARD_LABEL;

use crate::admin::Readiness;
use crate::metrics::Metrics;

/// How the controller runs (`connection-operator run` flags, plus test timing).
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    /// Reconciles talking to providers at once (`--concurrency`): the upstream turns. The
    /// controller runs [`workers`] of them (kube-runtime's default is unbounded).
    pub concurrency: u16,
    pub timing: Timing,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { namespace: None, concurrency: 16, timing: Timing::default() }
    }
}

/// The kube-runtime workers for `concurrency` upstream turns: twice as many. A reconcile
/// spends part of its time on Kubernetes (the status write, its Event, the finalizer) after
/// its upstream turn; with as many workers as turns those writes would leave turns idle,
/// with twice as many they overlap other reconciles' upstream turns, while
/// `Context::upstream_slot` still keeps the requests in flight upstream within
/// `concurrency`.
pub fn workers(concurrency: u16) -> u16 {
    concurrency.max(1).saturating_mul(2)
}

/// Wait until `store` has its first full list; false when its writer is gone.
///
/// `Store::wait_until_ready` wakes only the last of several concurrent waiters (it sits on
/// a oneshot receiver), and the controller itself waits on the Connection store, so the
/// wait is re-polled periodically instead of relying on a wake-up.
pub(super) async fn synced<K: kube::Resource + Clone + 'static>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(std::time::Duration::from_millis(250), store.wait_until_ready()).await {
            Ok(result) => return result.is_ok(),
            Err(_elapsed) => continue,
        }
    }
}

/// Run the controller until `shutdown` completes. `readiness` turns ready once the
/// Connection, Provider and ClusterProvider caches have synced.
pub async fn run(
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_shard(client, config, None, metrics, readiness, shutdown).await
}

/// [`run`] for the Connections of one shard's accounts (`None`: all of them).
async fn run_shard(
    client: Client,
    config: RunConfig,
    shard: Option<Shard>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let t = triggers::streams(&client, config.namespace.as_deref());
    let (connections, providers, cluster_providers) =
        (t.connection_store.clone(), t.provider_store.clone(), t.cluster_provider_store.clone());
    tokio::spawn(async move {
        // `wait_until_ready` fails only when the writer is dropped (shutdown).
        let synced = synced(&connections).await && synced(&providers).await && synced(&cluster_providers).await;
        if synced {
            tracing::info!("caches synced; ready");
            readiness.set_ready();
        }
    });

    let store = t.connection_store.clone();
    let caches = context::Caches {
        connections: store.clone(),
        connection_targets: t.connection_targets.clone(),
        providers: t.provider_store.clone(),
        cluster_providers: t.cluster_provider_store.clone(),
        secrets: t.secret_store.clone(),
        config_maps: t.config_map_store.clone(),
    };
    let mut context = context::Context::new(client, metrics, config.timing, caches, config.concurrency);
    context.shard_gate = shard_gate::ShardGate::new(shard);
    let context = Arc::new(context);
    // The account registry forgets the accounts of deleted Providers from these events.
    let hook = context.clone();
    let providers = triggers::spec_changes(t.providers.inspect(move |event| {
        if let Ok(event) = event {
            hook.provider_event(event);
        }
    }));
    let hook = context.clone();
    let cluster_providers = triggers::spec_changes(t.cluster_providers.inspect(move |event| {
        if let Ok(event) = event {
            hook.cluster_provider_event(event);
        }
    }));
    let by_sibling = t.connection_targets.clone();
    let (by_provider, by_cluster_provider) = (store.clone(), store.clone());
    let (secret_connections, secret_providers, secret_cluster_providers) =
        (store.clone(), t.provider_store.clone(), t.cluster_provider_store.clone());
    let config_map_connections = store.clone();
    Controller::for_stream(t.connections, t.connection_store)
        .with_config(kube::runtime::controller::Config::default().concurrency(workers(config.concurrency)))
        .watches_stream(t.connection_changes, move |c| by_sibling.siblings(&c))
        .watches_stream(providers, move |p| triggers::for_provider(&by_provider, &p))
        .watches_stream(cluster_providers, move |p| triggers::for_cluster_provider(&by_cluster_provider, &p))
        .watches_stream(t.secrets, move |s| {
            triggers::for_secret(&secret_connections, &secret_providers, &secret_cluster_providers, &s)
        })
        .watches_stream(t.config_maps, move |cm| triggers::for_config_map(&config_map_connections, &cm))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            match result {
                // A failed watch resumes, or relists when it fell too far behind: each relist
                // is a full list of its kind, worth seeing in a log at the default level.
                Err(e @ controller::Error::QueueError(_)) => {
                    tracing::info!(error = %e, "a watch failed; it resumes or relists")
                }
                // Failed reconciles are logged by `error_policy`; an object gone from the cache
                // before its turn is routine.
                Err(e) => tracing::debug!(error = %e, "controller event"),
                Ok(_) => {}
            }
        })
        .await;
}
