//! What `tests/plan.rs`, `tests/import.rs` and `tests/shared_settings.rs` share: a namespace
//! of the test's own on the REAL control plane (CRDs installed), the four provider emulators
//! in-process, one Secret and Provider per provider type pointing at them, the operator
//! (`controller::run`, watching only the namespace) when a test wants it, and the
//! `connection-operator` binary run as its own process (`plan`, `import`) with the admin
//! kubeconfig.

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connection_operator::admin::Readiness;
use connection_operator::api::Connection;
use connection_operator::controller::{self, BackoffPolicy, RunConfig, Timing};
use connection_operator::metrics::Metrics;
use connection_testkit::providers::{PROVIDERS, Providers};
use connection_testkit::{Cluster, Kubectl, TestNamespace};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

pub const TOKEN: &str = "tok-9c2e41-issue14-credential";
pub const API_VERSION: &str = "connection-operator.dev/v1alpha1";

/// What one run of the binary printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub struct Env {
    pub client: Client,
    pub providers: Providers,
    pub metrics: Arc<Metrics>,
    operator: Mutex<Option<tokio::task::JoinHandle<()>>>,
    cluster_scoped: Mutex<Vec<(String, String)>>,
    pub ns: TestNamespace,
    pub cluster: Cluster,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(task) = self.operator.lock().unwrap().take() {
            task.abort();
        }
        let kubectl = self.cluster.kubectl();
        for (kind, name) in self.cluster_scoped.lock().unwrap().iter() {
            let _ = kubectl.run(&["delete", kind, name, "--wait=false", "--ignore-not-found"], None);
        }
    }
}

pub fn fast_timing() -> Timing {
    Timing {
        backoff: BackoffPolicy { base: Duration::from_millis(100), max: Duration::from_secs(2) },
        terminal_requeue: Duration::from_secs(3600),
        drift_interval_override: None,
    }
}

impl Env {
    /// A namespace named after `prefix` with a Secret (`<type>-credentials`) and a Provider
    /// (named after the type) per provider type; no operator yet.
    pub async fn start(prefix: &str) -> Env {
        let cluster = Cluster::real();
        cluster.install_crds();
        let ns = cluster.namespace(prefix);
        let client = cluster.client().await;
        let providers = Providers::start().await;
        let env = Env {
            client,
            providers,
            metrics: Arc::new(Metrics::new()),
            operator: Mutex::default(),
            cluster_scoped: Mutex::default(),
            ns,
            cluster,
        };
        for p in PROVIDERS {
            env.secret(&format!("{p}-credentials"), json!({"token": TOKEN})).await;
            env.provider(p, p, json!({})).await;
        }
        env
    }

    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    pub fn kubectl(&self) -> Kubectl {
        self.ns.kubectl()
    }

    /// Run the operator on this namespace (once).
    pub fn start_operator(&self) {
        let config = RunConfig { namespace: Some(self.ns().to_string()), concurrency: 8, timing: fast_timing() };
        let task = tokio::spawn(controller::run(
            self.client.clone(),
            config,
            self.metrics.clone(),
            Readiness::default(),
            std::future::pending(),
        ));
        *self.operator.lock().unwrap() = Some(task);
    }

    pub fn stop_operator(&self) {
        if let Some(task) = self.operator.lock().unwrap().take() {
            task.abort();
        }
    }

    async fn apply_object(&self, object: Value) {
        let kubectl = self.kubectl();
        let out = kubectl
            .run_async(&["apply", "--server-side", "--field-manager=test", "-f", "-"], Some(&object.to_string()))
            .await;
        assert!(out.ok, "kubectl apply {object}: {}", out.stderr);
    }

    /// A Secret with `string_data`.
    pub async fn secret(&self, name: &str, string_data: Value) {
        self.apply_object(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": string_data}),
        )
        .await;
    }

    pub async fn config_map(&self, name: &str, data: Value) {
        self.apply_object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}))
            .await;
    }

    /// A Provider of `type_` named `name` with the sandbox's baseUrl, Secret
    /// `<type>-credentials`, and `extra` spec fields.
    pub async fn provider(&self, name: &str, type_: &str, extra: Value) {
        let mut spec = json!({"type": type_, "baseUrl": self.providers.base_url(type_),
                              "credentialsRef": {"name": format!("{type_}-credentials"), "key": "token"}, "timeoutSeconds": 5});
        spec.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        self.apply_object(
            json!({"apiVersion": API_VERSION, "kind": "Provider", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
    }

    /// A ClusterProvider named after this test (`<ns>-<suffix>`), deleted on drop.
    pub async fn cluster_provider(&self, suffix: &str, spec: Value) -> String {
        let name = format!("{}-{suffix}", self.ns());
        self.cluster_scoped.lock().unwrap().push(("clusterprovider".into(), name.clone()));
        let object =
            json!({"apiVersion": API_VERSION, "kind": "ClusterProvider", "metadata": {"name": name}, "spec": spec});
        let out = self
            .cluster
            .kubectl()
            .run_async(&["apply", "--server-side", "--field-manager=test", "-f", "-"], Some(&object.to_string()))
            .await;
        assert!(out.ok, "{}", out.stderr);
        name
    }

    /// A Connection manifest in this namespace.
    pub fn connection(&self, name: &str, spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "Connection", "metadata": {"name": name, "namespace": self.ns()}, "spec": spec})
    }

    /// Create or update a Connection (server-side apply, as a user would).
    pub async fn apply(&self, name: &str, spec: Value) {
        let api: Api<Connection> = Api::namespaced(self.client.clone(), self.ns());
        let object = json!({"apiVersion": API_VERSION, "kind": "Connection", "metadata": {"name": name}, "spec": spec});
        api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(object)).await.unwrap();
    }

    pub async fn get(&self, name: &str) -> Option<Connection> {
        Api::<Connection>::namespaced(self.client.clone(), self.ns()).get_opt(name).await.unwrap()
    }

    /// Wait until `name`'s Ready condition has `reason` for its current generation.
    pub async fn ready_reason(&self, name: &str, reason: &str) -> Connection {
        let last = Mutex::new(String::from("no Ready condition"));
        let deadline = tokio::time::Instant::now() + connection_testkit::wait::GENEROUS;
        loop {
            if let Some(c) = self.get(name).await {
                let ready = c.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
                if let Some(ready) = ready {
                    if ready.reason == reason && ready.observed_generation == c.metadata.generation {
                        return c;
                    }
                    *last.lock().unwrap() = format!(
                        "{}: {} (observedGeneration {:?})",
                        ready.reason, ready.message, ready.observed_generation
                    );
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never reached Ready reason {reason}; last seen {}",
                last.lock().unwrap()
            );
            tokio::time::sleep(connection_testkit::wait::POLL).await;
        }
    }

    /// The `connection-operator` binary with `args` (and `stdin`), KUBECONFIG the admin's.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        run_binary(env!("CARGO_BIN_EXE_connection-operator"), args, stdin, &self.cluster.kubeconfig(), None).await
    }

    /// Write `objects` as one YAML stream into a file of `dir`.
    pub fn manifest_file(dir: &Path, file: &str, objects: &[Value]) -> String {
        let path = dir.join(file);
        std::fs::write(&path, yaml_stream(objects)).unwrap();
        path.display().to_string()
    }
}

/// `objects` as a YAML stream.
pub fn yaml_stream(objects: &[Value]) -> String {
    objects.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap())).collect()
}

/// Run `program` with `args`, `KUBECONFIG=kubeconfig`, and `PATH` prefixed by `path_first`.
pub async fn run_binary(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    kubeconfig: &Path,
    path_first: Option<&Path>,
) -> Run {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = path_first {
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", dir.display()));
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        let _ = pipe.write_all(stdin.unwrap_or("").as_bytes()).await;
    }
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
