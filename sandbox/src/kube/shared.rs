//! What every request handler and every watch share: the cluster state behind its lock,
//! the fault queue, the RBAC switch, the request journal and the emulator's tunables. It
//! sits below the HTTP edge (`server`) and the watches (`watch`), which both use it.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::rbac;
use super::resources::Registry;
use super::rest::{self, WriteOptions};
use super::store::Store;
use crate::faults::Faults;

/// Tunables of the emulator (tests shorten the bookmark interval).
#[derive(Clone, Debug)]
pub struct Options {
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// How many events the watch history keeps; older resourceVersions get 410.
    pub history_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        // kube-apiserver's watch cache sends a bookmark about once a minute (and one 2 s
        // before a watch's timeout).
        Self { bookmark_interval: Duration::from_secs(60), history_limit: 10_000 }
    }
}

pub struct Shared {
    cluster: Mutex<Cluster>,
    pub watch_cancel: Mutex<CancellationToken>,
    pub(super) faults: Faults,
    /// RBAC enforcement switch and minted ServiceAccount tokens.
    pub rbac: rbac::Rbac,
    /// Journal of the Kubernetes API requests received (admin ones excluded), so tests can
    /// count what a client did, e.g. that a steady-state reconcile writes nothing.
    pub(super) requests: Mutex<Vec<Value>>,
    pub options: Options,
    pub(super) addr: SocketAddr,
}

impl Shared {
    pub fn new(addr: SocketAddr, options: Options) -> Self {
        let mut cluster = Cluster { store: Store::new(options.history_limit), registry: Registry::default() };
        seed_namespaces(&mut cluster);
        Self {
            cluster: Mutex::new(cluster),
            watch_cancel: Mutex::new(CancellationToken::new()),
            faults: Faults::default(),
            rbac: rbac::Rbac::default(),
            requests: Mutex::new(Vec::new()),
            options,
            addr,
        }
    }

    /// The cluster state. A panic while holding the lock leaves consistent data behind (each
    /// write is one store call), so a poisoned lock is recovered rather than propagated.
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn record(&self, method: &Method, path: &str, query: &str, user_agent: &str) {
        let at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let entry = json!({"method": method.as_str(), "path": path, "query": query, "userAgent": user_agent, "at": (at * 1000.0).round() / 1000.0});
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    }
}

/// The namespaces every cluster starts with.
fn seed_namespaces(c: &mut Cluster) {
    let ns_type = c.registry.namespace_type();
    let opts =
        WriteOptions { dry_run: false, field_manager: "kube-apiserver".into(), field_validation: Default::default() };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        if let Err(e) = rest::create(c, &ns_type, None, obj, &opts) {
            tracing::error!(error = %e, "seeding namespace {name}");
        }
    }
}
