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
mod tokens;
mod triggers;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::Client;
use kube::runtime::Controller;

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
    /// Connections reconciled at once (kube-runtime's default is unbounded).
    pub concurrency: u16,
    pub timing: Timing,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { namespace: None, concurrency: 16, timing: Timing::default() }
    }
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
    let by_sibling = t.connection_targets.clone();
    let (by_provider, by_cluster_provider) = (store.clone(), store.clone());
    let (secret_connections, secret_providers, secret_cluster_providers) =
        (store.clone(), t.provider_store.clone(), t.cluster_provider_store.clone());
    let config_map_connections = store.clone();
    Controller::for_stream(t.connections, t.connection_store)
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .watches_stream(t.connection_changes, move |c| by_sibling.siblings(&c))
        .watches_stream(t.providers, move |p| triggers::for_provider(&by_provider, &p))
        .watches_stream(t.cluster_providers, move |p| triggers::for_cluster_provider(&by_cluster_provider, &p))
        .watches_stream(t.secrets, move |s| {
            triggers::for_secret(&secret_connections, &secret_providers, &secret_cluster_providers, &s)
        })
        .watches_stream(t.config_maps, move |cm| triggers::for_config_map(&config_map_connections, &cm))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}
