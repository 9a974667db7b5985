//! Leader election (`--leader-election`): a `coordination.k8s.io/v1` Lease held through
//! kube-lease-manager. Only the holder runs the controller, so two replicas never reconcile
//! (and write upstream) at once; a replica that loses the Lease stops its controller.

use std::future::Future;
use std::sync::Arc;

use kube::Client;
use kube_lease_manager::{DurationSeconds, LeaseManagerBuilder, LeaseManagerError};

use super::RunConfig;
use super::shard::Shard;
use crate::admin::Readiness;
use crate::metrics::Metrics;

/// The Lease and how this replica holds it.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// Unique per replica (the pod name in a cluster).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub duration: DurationSeconds,
    /// Renewal happens this long before the Lease expires (less than `duration`).
    pub grace: DurationSeconds,
    /// `--shards`: more than 1 means one Lease per shard ([`shard_lease_name`]).
    pub shards: u32,
}

impl LeaseSettings {
    /// Lease `connection-operator` in `namespace`, 15 s valid, renewed 5 s before expiry.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseSettings {
            name: "connection-operator".into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: 15,
            grace: 5,
            shards: 1,
        }
    }

    /// The field manager of this replica's Lease writes: one per identity. kube-lease-manager
    /// takes a free Lease with a server-side apply of `holderIdentity` (without force), so
    /// when two replicas race for it the second apply is refused with a 409 conflict because
    /// another manager owns that field. Under one shared manager both applies succeed, both
    /// replicas read themselves as the holder, and both run the controller until the next
    /// renewal (seen with two replicas started at once on a real API server).
    pub fn field_manager(&self) -> String {
        format!("{}-{}", super::FIELD_MANAGER, self.identity)
    }
}

/// The Lease of shard `index` (`--shards N`, N > 1): `<name>-shard-<index>`.
pub fn shard_lease_name(name: &str, index: u32) -> String {
    format!("{name}-shard-{index}")
}

/// Wait for the Lease, then run the controller until `shutdown` or until the Lease is lost.
/// Returns `Ok(true)` when it stopped because leadership was lost (the caller should exit so
/// that a fresh process competes again), `Ok(false)` on shutdown.
///
/// With `lease.shards` > 1 the process competes for every shard's Lease
/// ([`shard_lease_name`]), holds the first it gets, releases any other it got meanwhile, and
/// runs the controller for that shard only. One shard per process: a
/// replica beyond the shard count is a standby that takes over a shard whose holder stopped
/// renewing. With one shard it is the single Lease `lease.name`, as before sharding.
pub async fn run_when_leading(
    client: Client,
    config: RunConfig,
    lease: LeaseSettings,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<bool, LeaseManagerError> {
    let names: Vec<String> = match lease.shards {
        0 | 1 => vec![lease.name.clone()],
        n => (0..n).map(|i| shard_lease_name(&lease.name, i)).collect(),
    };
    let mut shutdown = Box::pin(shutdown);
    let (index, mut leading, task) = match acquire(&client, &lease, &names, &mut shutdown).await? {
        Acquired::Lease { index, leading, task } => (index, leading, task),
        Acquired::Lost => return Ok(true),
        Acquired::Shutdown => return Ok(false),
    };
    let name = &names[index];
    let shard = (names.len() > 1).then_some(Shard { index: index as u32, count: names.len() as u32 });
    tracing::info!(lease = %name, identity = %lease.identity, shard = index, "leading; starting the controller");
    // Runs beside the controller in the same future (nothing outlives a dropped caller):
    // true when leadership is lost, false on shutdown. `leading` is dropped when it ends,
    // which makes the Lease manager release the Lease.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let leadership = async move {
        let lost = tokio::select! {
            _ = async { while leading.changed().await.is_ok() && *leading.borrow_and_update() {} } => true,
            _ = shutdown => false,
        };
        let _ = stop_tx.send(());
        lost
    };
    let controller = super::run_shard(client, config, shard, metrics, readiness, async move {
        let _ = stop_rx.await;
    });
    let (lost, ()) = tokio::join!(leadership, controller);
    if lost {
        tracing::warn!(lease = %name, "lost the Lease; the controller stopped");
    }
    let _ = task.await;
    Ok(lost)
}

type ManagerTask = tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>;

/// How waiting for a Lease ended.
enum Acquired {
    /// This process holds `names[index]`.
    Lease {
        index: usize,
        leading: tokio::sync::watch::Receiver<bool>,
        task: ManagerTask,
    },
    /// A Lease manager stopped before any Lease was held.
    Lost,
    Shutdown,
}

/// Compete for every Lease of `names` until one is held (or shutdown). The managers of the
/// others are dropped, which releases any of them taken in the same moment, so that the
/// process holds one Lease and the other replicas can take the rest.
async fn acquire(
    client: &Client,
    lease: &LeaseSettings,
    names: &[String],
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<Acquired, LeaseManagerError> {
    // Invalid settings would make kube-lease-manager panic; clamp them instead.
    let duration = lease.duration.max(2);
    let grace = lease.grace.clamp(1, duration - 1);
    let mut watches = Vec::with_capacity(names.len());
    for name in names {
        let manager = LeaseManagerBuilder::new(client.clone(), name)
            .with_namespace(&lease.namespace)
            .with_identity(&lease.identity)
            .with_duration(duration)
            .with_grace(grace)
            .with_field_manager(lease.field_manager())
            .build()
            .await?;
        watches.push(manager.watch().await);
    }
    loop {
        if let Some(index) = watches.iter_mut().position(|(leading, _)| *leading.borrow_and_update()) {
            let (leading, task) = watches.swap_remove(index);
            return Ok(Acquired::Lease { index, leading, task });
        }
        let changed = {
            let changes = watches.iter_mut().map(|(leading, _)| Box::pin(leading.changed()));
            tokio::select! {
                (result, index, _) = futures::future::select_all(changes) => Some((result.is_ok(), index)),
                _ = &mut *shutdown => None,
            }
        };
        match changed {
            None => return Ok(Acquired::Shutdown),
            Some((true, _)) => continue,
            // The manager's task ended: a Kubernetes error it could not get past.
            Some((false, index)) => {
                let (_, task) = watches.swap_remove(index);
                return task_result(task).await.map(|()| Acquired::Lost);
            }
        }
    }
}

async fn task_result(
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
) -> Result<(), LeaseManagerError> {
    match task.await {
        Ok(result) => result.map(drop),
        Err(_) => Ok(()),
    }
}
