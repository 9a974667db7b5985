//! Leader election (`--leader-election`): a `coordination.k8s.io/v1` Lease held through
//! kube-lease-manager. Only the holder runs the controller, so two replicas never reconcile
//! (and write upstream) at once; a replica that loses the Lease stops its controller.

use std::future::Future;
use std::sync::Arc;

use kube::Client;
use kube_lease_manager::{DurationSeconds, LeaseManagerBuilder, LeaseManagerError};

use super::RunConfig;
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

/// Wait for the Lease, then run the controller until `shutdown` or until the Lease is lost.
/// Returns `Ok(true)` when it stopped because leadership was lost (the caller should exit so
/// that a fresh process competes again), `Ok(false)` on shutdown.
pub async fn run_when_leading(
    client: Client,
    config: RunConfig,
    lease: LeaseSettings,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<bool, LeaseManagerError> {
    // Invalid settings would make kube-lease-manager panic; clamp them instead.
    let duration = lease.duration.max(2);
    let grace = lease.grace.clamp(1, duration - 1);
    let manager = LeaseManagerBuilder::new(client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(duration)
        .with_grace(grace)
        .with_field_manager(lease.field_manager())
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    let mut shutdown = Box::pin(shutdown);
    // Wait to become the leader (or for shutdown).
    loop {
        if *leading.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return task_result(task).await.map(|_| true) },
            _ = &mut shutdown => return Ok(false),
        }
    }
    tracing::info!(lease = %lease.name, identity = %lease.identity, "leading; starting the controller");
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
    let controller = super::run(client, config, metrics, readiness, async move {
        let _ = stop_rx.await;
    });
    let (lost, ()) = tokio::join!(leadership, controller);
    if lost {
        tracing::warn!(lease = %lease.name, "lost the Lease; the controller stopped");
    }
    let _ = task.await;
    Ok(lost)
}

async fn task_result(
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
) -> Result<(), LeaseManagerError> {
    match task.await {
        Ok(result) => result.map(drop),
        Err(_) => Ok(()),
    }
}
