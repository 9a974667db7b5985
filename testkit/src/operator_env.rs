//! The operator in-process for one test: a namespace of the test's own on the real control
//! plane or the emulator (CRDs installed), the four provider emulators, a Secret and a
//! Provider per provider type pointing at them, and `controller::run` watching only that
//! namespace through `Cluster::instrumented()`, whose journal counts the operator's
//! Kubernetes requests. The test's own reads and writes use the admin client, so they are
//! never counted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connection_operator::admin::Readiness;
use connection_operator::api::{ClusterProvider, Connection, Provider};
use connection_operator::controller::{self, BackoffPolicy, RECONCILE_REQUESTED_AT, RunConfig, Timing};
use connection_operator::metrics::Metrics;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::providers::{PROVIDERS, Providers};
use crate::wait::{eventually, until};
use crate::{Backend, Cluster, Instrumented, Kubectl, TestNamespace};

/// The token of every provider's credentials Secret.
pub const TOKEN: &str = "tok-3f9a7c1e-original-credential";

/// The CRDs' group and version.
pub const API_VERSION: &str = "connection-operator.dev/v1alpha1";

/// Retries fast enough for a test; a terminal failure is never retried during one.
pub fn fast_timing() -> Timing {
    Timing {
        backoff: BackoffPolicy { base: Duration::from_millis(100), max: Duration::from_secs(2) },
        terminal_requeue: Duration::from_secs(3600),
        drift_interval_override: None,
    }
}

pub struct Env {
    /// The admin client: the test's own reads and writes (not in the journal).
    pub client: Client,
    /// The client the operator runs with (through `kube`, journaled).
    pub operator_client: Client,
    pub kube: Instrumented,
    pub providers: Providers,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    controller: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Cluster-scoped objects this test created, as (kind, name): deleted on drop.
    cluster_scoped: Mutex<Vec<(&'static str, String)>>,
    // Dropped after the operator has stopped: the namespace goes last.
    ns: TestNamespace,
    pub cluster: Cluster,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_operator();
        let kubectl = self.cluster.kubectl();
        for (kind, name) in self.cluster_scoped.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = kubectl.run(&["delete", kind, name, "--wait=false", "--ignore-not-found"], None);
        }
        if std::thread::panicking() {
            // A failed test may leave a finalizer no operator will ever release, which would
            // keep its namespace Terminating on the shared control plane.
            let ns = self.ns.kubectl();
            let names = ns.run(&["get", "connections", "-o", "name"], None).stdout;
            for name in names.lines().filter(|l| !l.is_empty()) {
                let _ = ns.run(&["patch", name, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#], None);
            }
        }
    }
}

impl Env {
    /// [`Env::start_with`] the [`fast_timing`].
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, fast_timing()).await
    }

    /// A namespace of the test's own on `backend` with the CRDs installed, a Secret and a
    /// Provider per provider type (named after the type), and the controller running on it.
    pub async fn start_with(backend: Backend, timing: Timing) -> Self {
        Self::start_inner(backend, Some(timing), 8).await
    }

    /// [`Env::start_with`] with `concurrency` workers; `None`: no controller (the test runs
    /// its own).
    pub async fn start_inner(backend: Backend, timing: Option<Timing>, concurrency: u16) -> Self {
        let env = Self::prepared(backend, "controller").await;
        if let Some(timing) = timing {
            env.run_operator(timing, concurrency);
        }
        env
    }

    /// A namespace `<prefix>-<random>` on `backend`, set up as for [`Env::start_with`],
    /// with no operator yet ([`Env::start_operator`]).
    pub async fn prepared(backend: Backend, prefix: &str) -> Self {
        let cluster = Cluster::of(backend);
        cluster.install_crds();
        let ns = cluster.namespace(prefix);
        let kube = cluster.instrumented();
        let client = cluster.client().await;
        let operator_client = crate::cluster::client_for(kube.kubeconfig()).await;
        let providers = Providers::start().await;
        let env = Env {
            client,
            operator_client,
            kube,
            providers,
            metrics: Arc::new(Metrics::new()),
            readiness: Readiness::default(),
            controller: Mutex::default(),
            cluster_scoped: Mutex::default(),
            ns,
            cluster,
        };
        for p in PROVIDERS {
            env.secret(&format!("{p}-credentials"), TOKEN).await;
            env.provider(p, p).await;
        }
        env
    }

    /// Run the operator on this namespace (8 workers, [`fast_timing`]).
    pub fn start_operator(&self) {
        self.run_operator(fast_timing(), 8);
    }

    fn run_operator(&self, timing: Timing, concurrency: u16) {
        let config = RunConfig { namespace: Some(self.ns().to_string()), concurrency, timing };
        let task = tokio::spawn(controller::run(
            self.operator_client.clone(),
            config,
            self.metrics.clone(),
            self.readiness.clone(),
            std::future::pending(),
        ));
        if let Some(earlier) = self.controller.lock().unwrap_or_else(|e| e.into_inner()).replace(task) {
            earlier.abort();
        }
    }

    pub fn stop_operator(&self) {
        if let Some(task) = self.controller.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }

    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// kubectl with the admin kubeconfig, in this namespace.
    pub fn kubectl(&self) -> Kubectl {
        self.ns.kubectl()
    }

    pub fn connections(&self) -> Api<Connection> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    /// Server-side apply `object` into this namespace as the user `test` would.
    async fn apply_in_namespace<K>(&self, name: &str, object: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), self.ns());
        api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(object))
            .await
            .unwrap_or_else(|e| panic!("apply {name}: {e}"));
    }

    /// A Secret holding `token` under the key `token`.
    pub async fn secret(&self, name: &str, token: &str) {
        self.secret_data(name, json!({"token": token})).await;
    }

    /// A Secret with `string_data`.
    pub async fn secret_data(&self, name: &str, string_data: Value) {
        let secret =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": string_data});
        self.apply_in_namespace::<Secret>(name, secret).await;
    }

    pub async fn config_map(&self, name: &str, data: Value) {
        let map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data});
        self.apply_in_namespace::<ConfigMap>(name, map).await;
    }

    /// A Provider of `type_` named `name`, pointing at the emulator, with Secret
    /// `<type>-credentials`.
    pub async fn provider(&self, name: &str, type_: &str) {
        self.provider_with(name, type_, json!({})).await;
    }

    /// A Provider of `type_` on its emulator taking its token from the Secret `secret`.
    pub async fn provider_with_secret(&self, name: &str, type_: &str, secret: &str) {
        self.provider_with(name, type_, json!({"credentialsRef": {"name": secret, "key": "token"}})).await;
    }

    /// [`Env::provider`] with `extra` spec fields.
    pub async fn provider_with(&self, name: &str, type_: &str, extra: Value) {
        let mut spec = json!({"type": type_, "baseUrl": self.providers.base_url(type_),
                              "credentialsRef": {"name": format!("{type_}-credentials"), "key": "token"}, "timeoutSeconds": 5});
        spec.as_object_mut().expect("an object").extend(extra.as_object().cloned().unwrap_or_default());
        let provider = json!({"apiVersion": API_VERSION, "kind": "Provider", "metadata": {"name": name}, "spec": spec});
        self.apply_in_namespace::<Provider>(name, provider).await;
    }

    /// A ClusterProvider name unique to this test (they are cluster-scoped), deleted on drop.
    pub fn cluster_provider_name(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.ns());
        self.cluster_scoped.lock().unwrap_or_else(|e| e.into_inner()).push(("clusterprovider", name.clone()));
        name
    }

    /// A ClusterProvider named by [`Env::cluster_provider_name`] with `spec`; its name.
    pub async fn cluster_provider(&self, suffix: &str, spec: Value) -> String {
        let name = self.cluster_provider_name(suffix);
        let object =
            json!({"apiVersion": API_VERSION, "kind": "ClusterProvider", "metadata": {"name": name}, "spec": spec});
        let api: Api<ClusterProvider> = Api::all(self.client.clone());
        api.patch(&name, &PatchParams::apply("test").force(), &Patch::Apply(object))
            .await
            .unwrap_or_else(|e| panic!("apply ClusterProvider {name}: {e}"));
        name
    }

    /// A Connection manifest in this namespace.
    pub fn connection(&self, name: &str, spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "Connection", "metadata": {"name": name, "namespace": self.ns()}, "spec": spec})
    }

    /// Create or update a Connection from its spec (server-side apply as a user would).
    pub async fn apply(&self, name: &str, spec: Value) {
        let conn = json!({"apiVersion": API_VERSION, "kind": "Connection", "metadata": {"name": name}, "spec": spec});
        self.apply_in_namespace::<Connection>(name, conn).await;
    }

    pub async fn annotate_reconcile(&self, name: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {RECONCILE_REQUESTED_AT: value}}});
        self.connections().patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    }

    pub async fn get(&self, name: &str) -> Option<Connection> {
        self.connections().get_opt(name).await.unwrap()
    }

    /// Wait until the Connection's Ready condition has `reason` (for its current
    /// generation) and return the Connection.
    pub async fn ready_reason(&self, name: &str, reason: &str) -> Connection {
        until(&format!("{name} Ready reason {reason}"), || async {
            let c = self.get(name).await.ok_or_else(|| "no such Connection".to_string())?;
            let ready = c.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
            match ready {
                Some(r) if r.reason == reason && r.observed_generation == c.metadata.generation => Ok(c),
                _ => Err(format!("status {:?} at generation {:?}", c.status, c.metadata.generation)),
            }
        })
        .await
    }

    pub async fn seed(&self, provider: &str, id: &str, state: Value) {
        self.providers.seed(provider, id, state).await;
    }

    pub async fn upstream(&self, provider: &str, id: &str) -> Value {
        self.providers.upstream(provider, id).await
    }

    /// The provider's request journal, oldest first.
    pub async fn journal(&self, provider: &str) -> Vec<Value> {
        self.providers.journal(provider).await
    }

    pub async fn clear_journal(&self, provider: &str) {
        self.providers.clear_journal(provider).await;
    }

    /// Events about the Connection `name` (events.k8s.io/v1, what the operator's Recorder
    /// writes), as (reason, note, count: repeats of one Event are one object with a series).
    pub async fn events(&self, name: &str) -> Vec<(String, String, i32)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), self.ns());
        let list = api.list(&Default::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default(), e.series.map_or(1, |s| s.count)))
            .collect()
    }

    /// Wait until the Events about `name` include one with `reason` whose note contains
    /// `note`, and return them all. A Ready transition's Event is published right after the
    /// status write that shows it, so a test that saw the status may still have to wait.
    pub async fn event(&self, name: &str, reason: &str, note: &str) -> Vec<(String, String, i32)> {
        let what = format!("a {reason} Event about {name} saying {note:?}");
        eventually(&what, || async {
            let events = self.events(name).await;
            events.iter().any(|(r, n, _)| r == reason && n.contains(note)).then_some(events)
        })
        .await
    }
}
