//! The controller end to end in-process: the Kubernetes API emulator and the four provider
//! emulators on real loopback sockets, and `controller::run` driving them through kube-rs
//! and the provider clients. Assertions are on states (status, upstream data, finalizers)
//! and on counts in the emulators' request journals, never on durations; waits poll with a
//! generous bound.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use connection_operator::admin::Readiness;
use connection_operator::controller::{self, BackoffPolicy, FINALIZER, RECONCILE_REQUESTED_AT, RunConfig, Timing};
use connection_operator::metrics::Metrics;
use connection_operator::api::{ClusterProvider, Connection, Provider};
use connection_sandbox::kube::KubeSandbox;
use connection_sandbox::providers::ProviderSandbox;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use serde_json::{Value, json};

const NS: &str = "tenants";
const TOKEN: &str = "tok-3f9a7c1e-original-credential";
const GENEROUS: Duration = Duration::from_secs(60);
const PROVIDERS: [&str; 4] = ["nango", "mielto", "arena", "datagrid"];

/// Captures the operator's log output (the process-wide tracing subscriber), to check that
/// no credential ever reaches it.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn install() -> Self {
        let capture = LogCapture::default();
        let writer = capture.clone();
        // Debug level, so the provider request lines and error paths are included.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,h2=info,tower=info,rustls=info")
            .with_writer(move || writer.clone())
            .try_init();
        capture
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Env {
    _dir: tempfile::TempDir,
    kube: KubeSandbox,
    providers: ProviderSandbox,
    client: Client,
    admin: reqwest::Client,
    metrics: Arc<Metrics>,
    controller: tokio::task::JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

fn fast_timing() -> Timing {
    Timing {
        backoff: BackoffPolicy { base: Duration::from_millis(100), max: Duration::from_secs(2) },
        // Long enough that a terminal failure is never retried during a test.
        terminal_requeue: Duration::from_secs(3600),
        drift_interval_override: None,
    }
}

impl Env {
    async fn start() -> Self {
        Self::start_with(fast_timing()).await
    }

    /// Start both emulators, install the CRDs, create namespace `tenants` with a Secret and
    /// a Provider per provider type (named after the type), and run the controller.
    async fn start_with(timing: Timing) -> Self {
        connection_operator::telemetry::init(Default::default());
        let dir = tempfile::tempdir().unwrap();
        let kube = KubeSandbox::start("127.0.0.1:0".parse().unwrap(), &dir.path().join("kubeconfig")).unwrap();
        let kubeconfig = Kubeconfig::read_from(kube.kubeconfig()).unwrap();
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        let client = Client::try_from(config).unwrap();
        let providers = ProviderSandbox::start("127.0.0.1:0".parse().unwrap()).await.unwrap();

        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in connection_operator::api::crds() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        let names: Vec<String> = connection_operator::api::crds().iter().map(|c| c.name_any()).collect();
        eventually("CRDs established", || {
            let crds = crds.clone();
            let names = names.clone();
            async move {
                for name in &names {
                    let crd = crds.get(name).await.ok()?;
                    let established = crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
                    if !established {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap()).await.unwrap();

        let env_partial = (dir, kube, providers, client);
        let (dir, kube, providers, client) = env_partial;
        let metrics = Arc::new(Metrics::new());
        let config = RunConfig { namespace: None, concurrency: 8, timing };
        let controller = tokio::spawn(controller::run(client.clone(), config, metrics.clone(), Readiness::default(), std::future::pending()));
        let env = Env { _dir: dir, kube, providers, client, admin: reqwest::Client::new(), metrics, controller };
        for p in PROVIDERS {
            env.secret(&format!("{p}-credentials"), TOKEN).await;
            env.provider(p, p).await;
        }
        env
    }

    fn connections(&self) -> Api<Connection> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn secret(&self, name: &str, token: &str) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), NS);
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"token": token}});
        api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(secret)).await.unwrap();
    }

    async fn provider(&self, name: &str, type_: &str) {
        let api: Api<Provider> = Api::namespaced(self.client.clone(), NS);
        let provider = json!({
            "apiVersion": "connection-operator.dev/v1alpha1", "kind": "Provider",
            "metadata": {"name": name},
            "spec": {"type": type_, "baseUrl": self.providers.base_url(type_), "credentialsRef": {"name": format!("{type_}-credentials"), "key": "token"}, "timeoutSeconds": 5},
        });
        api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(provider)).await.unwrap();
    }

    /// Create or update a Connection from its spec (server-side apply as a user would).
    async fn apply(&self, name: &str, spec: Value) {
        let conn = json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection", "metadata": {"name": name}, "spec": spec});
        self.connections().patch(name, &PatchParams::apply("test").force(), &Patch::Apply(conn)).await.unwrap();
    }

    async fn annotate_reconcile(&self, name: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {RECONCILE_REQUESTED_AT: value}}});
        self.connections().patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    }

    async fn get(&self, name: &str) -> Option<Connection> {
        self.connections().get_opt(name).await.unwrap()
    }

    /// Wait until the Connection's Ready condition has `reason` (for its current
    /// generation) and return the Connection.
    async fn ready_reason(&self, name: &str, reason: &str) -> Connection {
        let last = Mutex::new(None);
        let what = format!("{name} Ready reason {reason}");
        let found = tokio::time::timeout(GENEROUS, eventually(&what, || async {
            let c = self.get(name).await?;
            *last.lock().unwrap() = c.status.clone();
            let status = c.status.as_ref()?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.reason == reason && ready.observed_generation == c.metadata.generation).then_some(c)
        }))
        .await;
        found.unwrap_or_else(|_| panic!("timed out waiting for {what}; last status {:?}", last.lock().unwrap()))
    }

    fn admin_url(&self, provider: &str, path: &str) -> String {
        format!("{}/_sandbox/{path}", self.providers.base_url(provider))
    }

    async fn admin_put(&self, provider: &str, path: &str, body: Value) {
        let r = self.admin.put(self.admin_url(provider, path)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "admin PUT {path}: {}", r.status());
    }

    async fn seed(&self, provider: &str, id: &str, state: Value) {
        self.admin_put(provider, &format!("connections/{id}"), state).await;
    }

    async fn upstream(&self, provider: &str, id: &str) -> Value {
        self.admin.get(self.admin_url(provider, &format!("connections/{id}"))).send().await.unwrap().json().await.unwrap()
    }

    /// The provider's request journal, oldest first.
    async fn journal(&self, provider: &str) -> Vec<Value> {
        let v: Value = self.admin.get(self.admin_url(provider, "requests")).send().await.unwrap().json().await.unwrap();
        v.as_array().unwrap().clone()
    }

    async fn clear_journal(&self, provider: &str) {
        self.admin.delete(self.admin_url(provider, "requests")).send().await.unwrap();
    }

    /// The Kubernetes emulator's request journal.
    async fn kube_journal(&self) -> Vec<Value> {
        let v: Value = self.admin.get(format!("{}/_sandbox/requests", self.kube.url())).send().await.unwrap().json().await.unwrap();
        v.as_array().unwrap().clone()
    }

    async fn clear_kube_journal(&self) {
        self.admin.delete(format!("{}/_sandbox/requests", self.kube.url())).send().await.unwrap();
    }

    /// Events about the Connection `name`, as (reason, note).
    async fn events(&self, name: &str) -> Vec<(String, String)> {
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), NS);
        let list = api.list(&Default::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }
}

/// Poll `probe` every 100 ms until it returns `Some`, for at most [`GENEROUS`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + GENEROUS + Duration::from_secs(5);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition<'a>(c: &'a Connection, type_: &str) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    c.status.as_ref().unwrap().conditions.iter().find(|x| x.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition"))
}

/// Requests in a journal that are not reads.
fn writes(journal: &[Value]) -> Vec<Value> {
    journal.iter().filter(|r| r["method"] != "GET").cloned().collect()
}

/// The spec of a Connection to provider `p` with upstream id `id` and its provider block.
fn spec(p: &str, id: &str, block: Value) -> Value {
    json!({"providerRef": {"name": p}, "connectionId": id, p: block})
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_change_and_remove_keys_for_every_provider_keeping_foreign_keys() {
    let env = Env::start().await;
    env.seed("nango", "acme", json!({"provider_config_key": "salesforce", "metadata": {"theirs": "webhook-1"}})).await;
    env.seed("mielto", "acme", json!({"label": "Old", "status": "inactive", "config": {"theirs": 7}})).await;
    env.seed("arena", "4242", json!({"metadata": {"theirs": true}})).await;
    env.seed("datagrid", "acme", json!({"name": "Old name"})).await;

    env.apply("n", spec("nango", "acme", json!({"providerConfigKey": "salesforce", "metadata": {"region": "eu", "tier": 2}}))).await;
    env.apply("m", spec("mielto", "acme", json!({"label": "Acme", "status": "active", "config": {"channel": "#a", "depth": 1}}))).await;
    env.apply("a", spec("arena", "4242", json!({"metadata": {"reviewed": true, "score": 0.5}}))).await;
    env.apply("d", spec("datagrid", "acme", json!({"name": "Acme Drive"}))).await;
    for name in ["n", "m", "a", "d"] {
        let c = env.ready_reason(name, "InSync").await;
        assert_eq!(condition(&c, "Ready").status, "True");
        assert_eq!(condition(&c, "Synced").status, "True");
        assert_eq!(condition(&c, "RateLimited").status, "False");
        assert!(c.status.as_ref().unwrap().last_sync_time.is_some());
    }
    assert_eq!(env.upstream("nango", "acme").await["metadata"], json!({"theirs": "webhook-1", "region": "eu", "tier": 2}));
    let m = env.upstream("mielto", "acme").await;
    assert_eq!((m["label"].clone(), m["status"].clone()), (json!("Acme"), json!("active")));
    assert_eq!(m["config"], json!({"theirs": 7, "channel": "#a", "depth": 1}));
    assert_eq!(env.upstream("arena", "4242").await["metadata"], json!({"theirs": true, "reviewed": true, "score": 0.5}));
    assert_eq!(env.upstream("datagrid", "acme").await["name"], json!("Acme Drive"));
    let n = env.get("n").await.unwrap();
    assert_eq!(n.status.unwrap().managed_keys, ["region", "tier"]);

    // A spec change propagates; a key removed from the spec is removed upstream.
    env.apply("n", spec("nango", "acme", json!({"providerConfigKey": "salesforce", "metadata": {"region": "us"}}))).await;
    env.apply("m", spec("mielto", "acme", json!({"label": "Acme 2", "status": "active", "config": {"channel": "#b"}}))).await;
    env.apply("a", spec("arena", "4242", json!({"metadata": {"reviewed": false}}))).await;
    env.apply("d", spec("datagrid", "acme", json!({"name": "Acme Drive 2"}))).await;
    for name in ["n", "m", "a", "d"] {
        env.ready_reason(name, "InSync").await;
    }
    assert_eq!(env.upstream("nango", "acme").await["metadata"], json!({"theirs": "webhook-1", "region": "us"}));
    let m = env.upstream("mielto", "acme").await;
    assert_eq!(m["label"], json!("Acme 2"));
    assert_eq!(m["config"], json!({"theirs": 7, "channel": "#b"}));
    assert_eq!(env.upstream("arena", "4242").await["metadata"], json!({"theirs": true, "reviewed": false}));
    assert_eq!(env.upstream("datagrid", "acme").await["name"], json!("Acme Drive 2"));
    assert_eq!(env.get("n").await.unwrap().status.unwrap().managed_keys, ["region"]);
    assert_eq!(env.get("a").await.unwrap().status.unwrap().managed_keys, ["reviewed"]);

    // Each transition to InSync was announced once by an Event.
    let events = env.events("n").await;
    assert!(events.iter().any(|(reason, _)| reason == "InSync"), "{events:?}");
}
