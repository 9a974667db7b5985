//! The Kubernetes API as one test's operator sees it, with the `/_sandbox/` admin API of
//! docs/interfaces.md (request journal, faults, dropped and expired watches): the emulator
//! serves that API itself; in front of the real control plane a `kube-proxy`
//! (`connection_sandbox::kube_proxy`) serves it and forwards everything else. A test
//! written against this handle runs unchanged on both.

use std::path::{Path, PathBuf};

use connection_sandbox::kube_proxy::KubeProxy;
use serde_json::Value;

use crate::cluster::Cluster;

pub struct Instrumented {
    kubeconfig: PathBuf,
    admin_url: String,
    _proxy: Option<KubeProxy>,
    _dir: tempfile::TempDir,
}

impl Instrumented {
    pub(crate) fn new(cluster: &Cluster) -> Instrumented {
        let dir = tempfile::tempdir().expect("tempdir");
        if let Some(sandbox) = cluster.emulator_sandbox() {
            return Instrumented {
                kubeconfig: sandbox.kubeconfig().to_path_buf(),
                admin_url: sandbox.url(),
                _proxy: None,
                _dir: dir,
            };
        }
        let out = dir.path().join("kubeconfig");
        let proxy = KubeProxy::start(&cluster.kubeconfig(), "127.0.0.1:0".parse().expect("literal address"), &out)
            .expect("start the kube-proxy in front of the control plane");
        Instrumented { kubeconfig: out, admin_url: proxy.url(), _proxy: Some(proxy), _dir: dir }
    }

    /// A kubeconfig through which every request is journaled and faults apply.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `http://ADDR`: `<this>/_sandbox/requests`, `/_sandbox/faults`, `/_sandbox/watches/...`.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// A request to the admin API; its JSON answer (`null` when empty). Panics on a non-2xx.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}{path}", self.admin_url);
        crate::admin_api::request(&reqwest::Client::new(), method, &url, body).await
    }

    /// The journal of Kubernetes API requests made through this handle, oldest first.
    pub async fn journal(&self) -> Vec<Value> {
        match self.admin(reqwest::Method::GET, "/_sandbox/requests", None).await {
            Value::Array(entries) => entries,
            other => panic!("journal: expected an array, got {other}"),
        }
    }

    pub async fn clear_journal(&self) {
        self.admin(reqwest::Method::DELETE, "/_sandbox/requests", None).await;
    }

    /// Queue faults (`PUT /_sandbox/faults`, one object or an array).
    pub async fn faults(&self, faults: &Value) {
        self.admin(reqwest::Method::PUT, "/_sandbox/faults", Some(faults)).await;
    }

    pub async fn clear_faults(&self) {
        self.admin(reqwest::Method::DELETE, "/_sandbox/faults", None).await;
    }

    /// End every open watch.
    pub async fn drop_watches(&self) {
        self.admin(reqwest::Method::POST, "/_sandbox/watches/drop", None).await;
    }

    /// The next watch from an older resourceVersion sees an in-stream 410 Expired.
    pub async fn expire_watches(&self) {
        self.admin(reqwest::Method::POST, "/_sandbox/watches/expire", None).await;
    }

    /// The next `count` watches of the collection `path` resuming from a resourceVersion see
    /// an in-stream 410 Expired (a client may keep several watches of one collection). The
    /// emulator's expiry is a compaction, which reaches every watch resuming from before it,
    /// these included; the kube-proxy expires exactly these.
    pub async fn expire_watches_of(&self, path: &str, count: u32) {
        let body = self._proxy.as_ref().map(|_| serde_json::json!({"path": path, "count": count}));
        self.admin(reqwest::Method::POST, "/_sandbox/watches/expire", body.as_ref()).await;
    }
}

impl Cluster {
    /// This cluster through an instrumented door (see the module docs).
    pub fn instrumented(&self) -> Instrumented {
        Instrumented::new(self)
    }
}
