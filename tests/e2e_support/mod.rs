//! Harness of the end-to-end tier: each test gets its own stack on the REAL control plane
//! (`connection_testkit::Cluster`): a namespace of its own on the run's shared control plane
//! (or, for the examples with their fixed namespaces and ClusterProvider, a control plane of
//! its own), the provider sandboxes on 127.0.0.1 port 0 (see `connection_testkit::demo::stack`), and
//! the compiled `connection-operator` binary as a child process whose KUBECONFIG is a
//! kube-proxy in front of the API server (`Cluster::instrumented`: journal, faults, dropped
//! and expired watches). Connections are created or changed only with the real kubectl
//! (`.tools/bin/kubectl`, admin kubeconfig, not through the proxy). Reads (status polls) use
//! kube-rs with the admin kubeconfig, which changes nothing; upstream state and request
//! counts come from the sandboxes' admin API.
#![allow(dead_code, reason = "each test uses part of the harness")]

use std::collections::BTreeMap;
use std::future::Future;

use connection_operator::api::Connection;
use connection_operator::api::conditions::READY;
use connection_testkit::wait;
use connection_testkit::{Cluster, Instrumented, TestNamespace};
use futures::StreamExt as _;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::Value;

use connection_testkit::demo::stack::{self, KubeTarget, Stack, StackOptions};

/// The operator under test: this package's binary, or `E2E_OPERATOR_BIN` (e.g. a release
/// build, or a build of another branch when checking the harness).
pub fn operator() -> std::path::PathBuf {
    std::env::var_os("E2E_OPERATOR_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_connection-operator").into())
}

pub use connection_testkit::manifests::{connection_yaml, documents, provider_yaml};
pub use connection_testkit::providers::writes;
/// The bound of every wait (the kit's).
pub use connection_testkit::wait::GENEROUS;

pub struct World {
    pub stack: Stack,
    /// Reads with the admin kubeconfig (never through the proxy, so never faulted).
    pub client: kube::Client,
    /// The namespace the test works in (and the operator watches, on the shared plane).
    pub ns: String,
    /// The operator's way to the API server: its journal, faults and watch controls.
    pub kube: Instrumented,
    /// Flags the operator runs with: `--namespace NS` on the shared control plane.
    operator_args: Vec<String>,
    /// The cluster is this world's alone and goes away with it (nothing to clean up).
    cluster_is_ours: bool,
    // Declared after `stack` and `kube`: the operator and the proxy stop before the
    // namespace is deleted and before a dedicated control plane goes down.
    namespace: Option<TestNamespace>,
    pub cluster: Cluster,
    // Kept for its Drop: removes rewritten manifests and operator logs.
    _dir: tempfile::TempDir,
}

impl World {
    /// A namespace `<prefix>-<random>` of the run's shared control plane, the CRDs
    /// installed; the operator (not started yet) will watch only that namespace.
    pub async fn real(prefix: &str) -> World {
        World::in_own_namespace(Cluster::real(), false, prefix).await
    }

    /// [`World::real`] on a control plane of this test's own, for a test that must be alone
    /// with the API server (its watch cache, its etcd).
    pub async fn real_dedicated(prefix: &str) -> World {
        World::in_own_namespace(Cluster::real_dedicated(), true, prefix).await
    }

    async fn in_own_namespace(cluster: Cluster, cluster_is_ours: bool, prefix: &str) -> World {
        cluster.install_crds();
        let namespace = cluster.namespace(&format!("e2e-{prefix}"));
        let ns = namespace.name().to_string();
        let operator_args = vec!["--namespace".to_string(), ns.clone()];
        World::assemble(cluster, cluster_is_ours, Some(namespace), ns, operator_args).await
    }

    /// A control plane of this test's own with `namespaces` created and the CRDs installed,
    /// for fixed names (the examples' `tenants`, `platform` and ClusterProvider `datagrid`);
    /// the operator will watch every namespace. [`World::ns`] is the first of `namespaces`.
    pub async fn dedicated(namespaces: &[&str]) -> World {
        World::with_namespaces(Cluster::real_dedicated(), namespaces).await
    }

    /// The Kubernetes API emulator with `namespaces`, for the tests not yet moved to the
    /// real control plane (`tests/leader_election.rs`); otherwise as [`World::dedicated`].
    pub async fn start(namespaces: &[&str]) -> World {
        World::with_namespaces(Cluster::emulator(), namespaces).await
    }

    async fn with_namespaces(cluster: Cluster, namespaces: &[&str]) -> World {
        cluster.install_crds();
        let ns = namespaces.first().expect("at least one namespace").to_string();
        let world = World::assemble(cluster, true, None, ns, Vec::new()).await;
        world.stack.create_namespaces(namespaces).await.expect("namespaces");
        world
    }

    async fn assemble(
        cluster: Cluster,
        cluster_is_ours: bool,
        namespace: Option<TestNamespace>,
        ns: String,
        operator_args: Vec<String>,
    ) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let kube = cluster.instrumented();
        let options = StackOptions {
            providers_addr: "127.0.0.1:0".parse().expect("literal address"),
            kube: KubeTarget::Cluster {
                kubeconfig: cluster.kubeconfig(),
                operator_kubeconfig: Some(kube.kubeconfig().to_path_buf()),
            },
            kubectl: connection_testkit::tools::kubectl(),
            workdir: dir.path().to_path_buf(),
            repo_root: stack::repo_root(),
        };
        let stack = Stack::start(options).await.expect("start the stack");
        let client = stack.client().await.expect("kube client");
        World { stack, client, ns, kube, operator_args, cluster_is_ours, namespace, cluster, _dir: dir }
    }

    /// Start the operator binary (`--concurrency 16`, plus `--namespace NS` on the shared
    /// control plane).
    pub fn start_operator(&mut self) {
        self.start_operator_logging(None);
    }

    /// [`World::start_operator`] with `RUST_LOG=rust_log`.
    pub fn start_operator_logging(&mut self, rust_log: Option<&str>) {
        let mut args: Vec<&str> = vec!["--concurrency", "16"];
        args.extend(self.operator_args.iter().map(String::as_str));
        self.stack.start_operator_logging(&operator(), &args, rust_log).expect("start the operator");
    }

    /// The operator's log so far (empty before it started).
    pub fn operator_log(&self) -> String {
        self.stack.operator_log().and_then(|path| std::fs::read_to_string(path).ok()).unwrap_or_default()
    }

    /// The path of this world's Connections collection, as the operator lists and watches it.
    pub fn connections_path(&self) -> String {
        format!("/apis/connection-operator.dev/v1alpha1/namespaces/{}/connections", self.ns)
    }

    /// `kubectl apply -f -` with `yaml`.
    pub async fn apply(&self, yaml: &str) -> String {
        self.stack.kubectl_with_stdin(&["apply", "-f", "-"], Some(yaml)).await.expect("kubectl apply")
    }

    pub async fn kubectl(&self, args: &[&str]) -> String {
        self.stack.kubectl(args).await.unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn connections(&self, namespace: &str) -> Vec<Connection> {
        let api: Api<Connection> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default()).await.expect("list Connections").items
    }

    pub async fn connection(&self, namespace: &str, name: &str) -> Connection {
        let api: Api<Connection> = Api::namespaced(self.client.clone(), namespace);
        api.get(name).await.unwrap_or_else(|e| panic!("get Connection {namespace}/{name}: {e}"))
    }

    /// Wait until every Connection of `namespace` (at least `count`) is Ready=True for its
    /// current generation. Fails early if the operator process died.
    pub async fn wait_all_ready(&self, namespace: &str, count: usize) -> Vec<Connection> {
        let what = format!("every Connection in {namespace} (at least {count}) to be Ready");
        self.until(&what, || async {
            let list = self.connections(namespace).await;
            let not_ready: Vec<String> = list
                .iter()
                .filter(|c| !is_ready_current(c))
                .map(|c| format!("{} {:?}", c.name_any(), ready(c)))
                .collect();
            if list.len() >= count && not_ready.is_empty() {
                return Ok(list);
            }
            Err(format!(
                "{} of {count} listed; not ready: {}",
                list.len(),
                not_ready.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            ))
        })
        .await
    }

    /// Poll `check` until it returns Some, failing with `what` after [`GENEROUS`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        self.until(what, || {
            let check = check();
            async move { check.await.ok_or_else(String::new) }
        })
        .await
    }

    /// [`wait::until`] that fails at once if the operator process died, and shows the end
    /// of its log with what was last seen.
    async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        wait::until(what, || {
            self.assert_operator_alive();
            let check = check();
            async move { check.await.map_err(|last| format!("{last}\n{}", self.operator_log_tail())) }
        })
        .await
    }

    pub fn assert_operator_alive(&self) {
        if let Some(status) = self.stack.operator_exited() {
            panic!("the operator exited: {status}\n{}", self.operator_log_tail());
        }
    }

    /// Wait until the operator answers `/readyz` with 200 (its caches have synced): where
    /// it serves comes from its startup log line (`serving /metrics, ... addr=HOST:PORT`).
    pub async fn wait_operator_ready(&self) {
        let http = reqwest::Client::new();
        self.eventually("the operator to be ready (/readyz)", || async {
            let addr = connection_testkit::operator_log::metrics_addr(&self.operator_log())?;
            let response = http.get(format!("http://{addr}/readyz")).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    pub fn operator_log_tail(&self) -> String {
        let Some(path) = self.stack.operator_log() else {
            return String::from("(no operator running)");
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- operator log tail ({}) ---\n{tail}", path.display())
    }

    /// The provider's API journal (not admin requests).
    pub async fn journal(&self, provider: &str) -> Vec<Value> {
        self.stack.providers.journal(provider).await
    }

    pub async fn upstream(&self, provider: &str, id: &str) -> Value {
        self.stack.providers.upstream(provider, id).await
    }

    pub async fn seed(&self, provider: &str, id: &str, state: Value) {
        self.stack.providers.seed(provider, id, state).await;
    }

    /// A Provider in `namespace` named like its type, pointing at the sandbox, with a
    /// Secret, pacing generous enough not to matter unless `rate_limit` says otherwise.
    pub async fn apply_provider(&self, namespace: &str, provider: &str, extra_spec: &str) {
        self.apply(&provider_yaml(namespace, provider, &self.stack.base_url(provider), extra_spec)).await;
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stack.kill_operator_now();
        // With the operator gone, its finalizers would keep the namespace Terminating on the
        // shared control plane for the rest of the run: remove them. (Teardown, not part of
        // any test: through kube-rs, 16 at a time, since kubectl's client-side rate limit
        // makes a `kubectl patch` of 500 Connections take minutes.)
        let Some(namespace) = &self.namespace else { return };
        if self.cluster_is_ours {
            return;
        }
        let api: Api<Connection> = Api::namespaced(self.client.clone(), namespace.name());
        let cleanup = async move {
            let Ok(list) = api.list_metadata(&ListParams::default()).await else {
                return;
            };
            let unfinalize = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
            futures::stream::iter(list.items.iter().map(ResourceExt::name_any))
                .for_each_concurrent(16, |name| {
                    let (api, unfinalize) = (&api, &unfinalize);
                    async move {
                        let _ = api.patch_metadata(&name, &PatchParams::default(), unfinalize).await;
                    }
                })
                .await;
        };
        // Drop is synchronous; the tests run on a multi-threaded runtime.
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(cleanup));
    }
}

/// The Ready condition as (status, reason, message).
pub fn ready(conn: &Connection) -> Option<(String, String, String)> {
    let c = conn.status.as_ref()?.conditions.iter().find(|c| c.type_ == READY)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Ready=True and the status describes the current generation.
pub fn is_ready_current(conn: &Connection) -> bool {
    let current = conn.status.as_ref().and_then(|s| s.observed_generation) == conn.metadata.generation;
    current && ready(conn).is_some_and(|(status, _, _)| status == "True")
}

/// Count journal entries by answered status (`null` → 0: reset or in flight).
pub fn by_status(journal: &[Value]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for e in journal {
        *counts.entry(e["status"].as_u64().unwrap_or(0)).or_insert(0) += 1;
    }
    counts
}
