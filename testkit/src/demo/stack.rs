//! The whole system on loopback: a Kubernetes API (the emulator, in-process, or any cluster
//! a kubeconfig names), the provider sandboxes (in-process, from `connection-sandbox`), the
//! real kubectl, and the `connection-operator` binary as a child process.
//!
//! Shared by the demo (`examples/demo.rs`) and the end-to-end tests (`tests/e2e.rs`), so the
//! tests exercise exactly what a newcomer runs.
//!
//! The sandboxes are started in-process because they are test fixtures, while the operator
//! runs as its own process: that is the artefact users deploy, and killing it with SIGKILL
//! must leave the cluster's and the providers' state intact. Against a real cluster the
//! provider sandboxes still listen on loopback: the operator runs on this machine too, so
//! the Providers' `baseUrl: http://127.0.0.1:...` reach them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use connection_sandbox::kube::KubeSandbox;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::kubectl::{Kubectl, KubectlError};
use crate::providers::Providers;

/// The base URL host and port written in `examples/providers.yaml`; the demo serves the
/// provider sandboxes there by default, so `kubectl apply -f examples/` works unchanged.
pub const EXAMPLES_PROVIDERS_URL: &str = "http://127.0.0.1:8090";

/// The namespaces the example manifests live in.
pub const EXAMPLE_NAMESPACES: [&str; 2] = ["tenants", "platform"];

/// The CRDs in `crds/`, waited for by name (not `crd --all`: a real cluster has others).
pub const CRDS: [&str; 3] = [
    "crd/connections.connection-operator.dev",
    "crd/providers.connection-operator.dev",
    "crd/clusterproviders.connection-operator.dev",
];

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot start the {what}: {source}")]
    Start { what: &'static str, source: anyhow::Error },
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error(transparent)]
    Kubectl(#[from] KubectlError),
    #[error("{path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("kube client: {0}")]
    Client(String),
}

/// The Kubernetes API the stack works against.
#[derive(Clone, Debug)]
pub enum KubeTarget {
    /// Start the in-process emulator on this address (port 0: any free port).
    Emulator(SocketAddr),
    /// An existing cluster (the real control plane of `scripts/control-plane`, kind, a
    /// cloud cluster).
    Cluster {
        /// What kubectl and the stack's own reads use (an admin's kubeconfig).
        kubeconfig: PathBuf,
        /// The operator's KUBECONFIG when it is not `kubeconfig` (the tests put a
        /// fault-injecting kube-proxy between the operator and the API server).
        operator_kubeconfig: Option<PathBuf>,
    },
}

/// Where things are and how the stack binds.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Provider sandboxes' address (port 0: any free port; the example manifests are then
    /// applied with their baseUrl rewritten to it).
    pub providers_addr: SocketAddr,
    pub kube: KubeTarget,
    /// The kubectl binary (see `kubectl::find`).
    pub kubectl: PathBuf,
    /// Holds the emulator's kubeconfig, the operator logs and rewritten manifests.
    pub workdir: PathBuf,
    /// The repository root (holds `crds/` and `examples/`).
    pub repo_root: PathBuf,
}

/// The workspace root, where `crds/` and `examples/` live.
pub fn repo_root() -> PathBuf {
    crate::tools::workspace_root()
}

pub struct Stack {
    /// The emulator, when the stack started one.
    pub emulator: Option<KubeSandbox>,
    /// The provider sandboxes with their admin API (seeding, journals, faults).
    pub providers: Providers,
    pub options: StackOptions,
    kubectl: Kubectl,
    operator_kubeconfig: PathBuf,
    // Behind a lock so that status reads and waits can check it through `&Stack`.
    operator: std::sync::Mutex<Option<Operator>>,
    /// How many operators were started, to name their log files.
    started: usize,
}

/// A running `connection-operator run`, its output going to a log file.
pub struct Operator {
    pub child: Child,
    pub log: PathBuf,
}

impl Stack {
    /// Start the provider sandboxes, and the emulator unless the target is a cluster. Must
    /// run inside a multi-threaded tokio runtime (the provider sandboxes are served by it;
    /// the Kubernetes emulator brings its own thread).
    pub async fn start(options: StackOptions) -> Result<Stack, StackError> {
        std::fs::create_dir_all(&options.workdir)
            .map_err(|source| StackError::File { path: options.workdir.clone(), source })?;
        let (emulator, kubeconfig, operator_kubeconfig) = match &options.kube {
            KubeTarget::Emulator(addr) => {
                let kubeconfig = options.workdir.join("kubeconfig");
                let emulator = KubeSandbox::start(*addr, &kubeconfig)
                    .map_err(|source| StackError::Start { what: "Kubernetes API emulator", source })?;
                (Some(emulator), kubeconfig.clone(), kubeconfig)
            }
            KubeTarget::Cluster { kubeconfig, operator_kubeconfig } => {
                // Say so now rather than through kubectl's first error.
                std::fs::metadata(kubeconfig)
                    .map_err(|source| StackError::File { path: kubeconfig.clone(), source })?;
                (None, kubeconfig.clone(), operator_kubeconfig.clone().unwrap_or_else(|| kubeconfig.clone()))
            }
        };
        let providers = Providers::start_on(options.providers_addr)
            .await
            .map_err(|source| StackError::Start { what: "provider sandboxes", source })?;
        let kubectl = Kubectl { program: options.kubectl.clone(), kubeconfig };
        Ok(Stack {
            emulator,
            providers,
            options,
            kubectl,
            operator_kubeconfig,
            operator: std::sync::Mutex::new(None),
            started: 0,
        })
    }

    /// The kubeconfig kubectl and the stack's reads use.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubectl.kubeconfig
    }

    /// The API server's URL, as the kubeconfig's current context names it.
    pub fn kube_url(&self) -> String {
        if let Some(emulator) = &self.emulator {
            return emulator.url();
        }
        let server = || -> Option<String> {
            let config = kube::config::Kubeconfig::read_from(self.kubeconfig()).ok()?;
            let context = config.current_context.as_deref()?;
            let context = config.contexts.iter().find(|c| c.name == context)?.context.as_ref()?;
            let cluster = config.clusters.iter().find(|c| c.name == context.cluster)?;
            cluster.cluster.as_ref()?.server.clone()
        };
        server().unwrap_or_else(|| format!("(the current context of {})", self.kubeconfig().display()))
    }

    /// `http://ADDR` of the provider sandboxes (each provider under its prefix).
    pub fn providers_url(&self) -> String {
        format!("http://{}", self.providers.addr())
    }

    pub fn base_url(&self, provider: &str) -> String {
        self.providers.base_url(provider)
    }

    /// Run kubectl; its stdout on success.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String, StackError> {
        self.kubectl_with_stdin(args, None).await
    }

    /// Run kubectl with `input` on its stdin (for `apply -f -`).
    pub async fn kubectl_with_stdin(&self, args: &[&str], input: Option<&str>) -> Result<String, StackError> {
        Ok(self.kubectl.run(args, input).await?)
    }

    /// `kubectl apply -f crds/`, then wait until the CRDs are established.
    pub async fn install_crds(&self) -> Result<(), StackError> {
        let crds = self.options.repo_root.join("crds");
        self.kubectl(&["apply", "-f", &crds.to_string_lossy()]).await?;
        let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
        wait.extend(CRDS);
        self.kubectl(&wait).await?;
        Ok(())
    }

    pub async fn create_namespaces(&self, names: &[&str]) -> Result<(), StackError> {
        for name in names {
            // `create namespace` fails when it exists; apply is idempotent.
            let manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
            self.kubectl_with_stdin(&["apply", "-f", "-"], Some(&manifest)).await?;
        }
        Ok(())
    }

    /// The example manifests as `kubectl apply -f` should see them: `examples/` itself when
    /// the provider sandboxes listen where the manifests point, else a copy under the
    /// workdir with `baseUrl` pointed at the sandboxes' actual port.
    pub fn examples_dir(&self) -> Result<PathBuf, StackError> {
        let examples = self.options.repo_root.join("examples");
        let actual = self.providers_url();
        if actual == EXAMPLES_PROVIDERS_URL {
            return Ok(examples);
        }
        let copy = self.options.workdir.join("examples");
        std::fs::create_dir_all(&copy).map_err(|source| StackError::File { path: copy.clone(), source })?;
        let entries =
            std::fs::read_dir(&examples).map_err(|source| StackError::File { path: examples.clone(), source })?;
        for entry in entries {
            let path = entry.map_err(|source| StackError::File { path: examples.clone(), source })?.path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text =
                    std::fs::read_to_string(&path).map_err(|source| StackError::File { path: path.clone(), source })?;
                let target = copy.join(path.file_name().expect("a file from read_dir has a name"));
                std::fs::write(&target, text.replace(EXAMPLES_PROVIDERS_URL, &actual))
                    .map_err(|source| StackError::File { path: target, source })?;
            }
        }
        Ok(copy)
    }

    /// `kubectl apply -f examples/` (see [`Stack::examples_dir`]).
    pub async fn apply_examples(&self) -> Result<String, StackError> {
        let dir = self.examples_dir()?;
        self.kubectl(&["apply", "-f", &dir.to_string_lossy()]).await
    }

    /// (namespace, name) of every Connection in `examples/connections.yaml`.
    pub fn example_connections(&self) -> Result<Vec<(String, String)>, StackError> {
        let path = self.options.repo_root.join("examples/connections.yaml");
        let text = std::fs::read_to_string(&path).map_err(|source| StackError::File { path: path.clone(), source })?;
        let mut keys = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let doc = <Value as serde::Deserialize>::deserialize(document).map_err(|e| StackError::File {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
            if doc["kind"] == "Connection" {
                let field = |f: &str| doc["metadata"][f].as_str().unwrap_or_default().to_string();
                keys.push((field("namespace"), field("name")));
            }
        }
        Ok(keys)
    }

    /// Stamp `connection-operator.dev/reconcile-requested-at: <token>` on the example
    /// Connections (`kubectl annotate -f examples/connections.yaml`): the operator echoes the
    /// value it handled in `status.lastHandledReconcileAt`, so the demo can tell this run's
    /// reconciles from the status an earlier run left in a long-lived cluster.
    pub async fn request_example_reconciles(&self, token: &str) -> Result<(), StackError> {
        let file = self.examples_dir()?.join("connections.yaml");
        let annotation = format!("connection-operator.dev/reconcile-requested-at={token}");
        self.kubectl(&["annotate", "--overwrite", "-f", &file.to_string_lossy(), &annotation]).await?;
        Ok(())
    }

    /// Everything up to (not including) the operator: CRDs, namespaces, the upstream
    /// connections the examples refer to, and the example manifests.
    pub async fn prepare_examples(&self) -> Result<(), StackError> {
        self.install_crds().await?;
        self.create_namespaces(&EXAMPLE_NAMESPACES).await?;
        self.seed_example_upstreams().await;
        self.apply_examples().await?;
        Ok(())
    }

    /// Seed the upstream connections `examples/connections.yaml` refers to. Each carries a
    /// key no Connection declares (written by "the customer's application"), which the
    /// operator must leave alone. The Are.na one (Observe mode) already matches its spec,
    /// so it is Ready without any write; the others differ and get corrected.
    pub async fn seed_example_upstreams(&self) {
        for (provider, id, state) in example_upstreams() {
            self.providers.seed(provider, id, state).await;
        }
    }

    // ---- the operator process ----

    /// Start `connection-operator run` with the operator's kubeconfig, logging (text) to
    /// `<workdir>/operator-<n>.log`. `extra` adds flags (e.g. `--namespace NS`).
    pub fn start_operator(&mut self, binary: &Path, extra: &[&str]) -> Result<PathBuf, StackError> {
        self.start_operator_logging(binary, extra, None)
    }

    /// [`Stack::start_operator`] with `RUST_LOG=rust_log` (default: the environment's
    /// `RUST_LOG`, else `info`).
    pub fn start_operator_logging(
        &mut self,
        binary: &Path,
        extra: &[&str],
        rust_log: Option<&str>,
    ) -> Result<PathBuf, StackError> {
        self.started += 1;
        let log = self.options.workdir.join(format!("operator-{}.log", self.started));
        let file = std::fs::File::create(&log).map_err(|source| StackError::File { path: log.clone(), source })?;
        let err = file.try_clone().map_err(|source| StackError::File { path: log.clone(), source })?;
        let child = Command::new(binary)
            .args(["run", "--metrics-addr", "127.0.0.1:0", "--log-format", "text"])
            .args(extra)
            .env("KUBECONFIG", &self.operator_kubeconfig)
            .env(
                "RUST_LOG",
                rust_log
                    .map(str::to_string)
                    .unwrap_or_else(|| std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| StackError::Spawn { program: binary.display().to_string(), source })?;
        *self.lock_operator() = Some(Operator { child, log: log.clone() });
        Ok(log)
    }

    fn lock_operator(&self) -> std::sync::MutexGuard<'_, Option<Operator>> {
        // Only this module touches it, never panicking while holding it.
        self.operator.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_operator(&self) -> Option<Operator> {
        self.lock_operator().take()
    }

    /// SIGKILL the operator (no chance to clean up, like an OOM kill or a node loss) and
    /// reap it.
    pub async fn kill_operator(&self) -> Result<(), StackError> {
        if let Some(mut op) = self.take_operator() {
            op.child.kill().await.map_err(|source| StackError::Spawn { program: "kill".into(), source })?;
        }
        Ok(())
    }

    /// SIGKILL the operator without waiting for it (from a `Drop`; tokio reaps it).
    pub fn kill_operator_now(&self) {
        if let Some(mut op) = self.take_operator() {
            let _ = op.child.start_kill();
        }
    }

    /// SIGTERM the operator and wait up to `grace` for it to exit, then SIGKILL.
    pub async fn stop_operator(&self, grace: Duration) -> Result<(), StackError> {
        if let Some(mut op) = self.take_operator() {
            if let Some(pid) = op.child.id() {
                // tokio only sends SIGKILL; `kill -TERM <pid of our own child>` asks for a clean stop.
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            if tokio::time::timeout(grace, op.child.wait()).await.is_err() {
                op.child.kill().await.map_err(|source| StackError::Spawn { program: "kill".into(), source })?;
            }
        }
        Ok(())
    }

    /// Whether the operator has exited (crashed) since it was started.
    pub fn operator_exited(&self) -> Option<std::process::ExitStatus> {
        self.lock_operator().as_mut().and_then(|op| op.child.try_wait().ok().flatten())
    }

    pub fn operator_log(&self) -> Option<PathBuf> {
        self.lock_operator().as_ref().map(|op| op.log.clone())
    }

    /// A kube-rs client with the stack's kubeconfig, for reading state (tests and the demo's
    /// table); every change goes through kubectl.
    pub async fn client(&self) -> Result<kube::Client, StackError> {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.kubeconfig()).map_err(|e| StackError::Client(e.to_string()))?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|e| StackError::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| StackError::Client(e.to_string()))
    }
}

/// The upstream connections `examples/connections.yaml` refers to, as (provider, id, raw
/// state in the provider's read shape).
pub fn example_upstreams() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "nango",
            "acme-salesforce-1",
            json!({"provider_config_key": "salesforce", "metadata": {"accountRegion": "us", "webhookSubscriptionId": "whsub_123"}}),
        ),
        (
            "mielto",
            "conn_acme_slack",
            // In the workspace `examples/providers.yaml` names (`workspaceId: ws_acme`).
            json!({"label": "Slack (imported)", "status": "inactive", "workspace_id": "ws_acme",
                   "config": {"channel": "#general", "installedBy": "U024BE7LH"}}),
        ),
        (
            "arena",
            "98765",
            json!({"metadata": {"reviewed": true, "score": 0.95, "reviewer": "ops_team", "importedFrom": "csv"}}),
        ),
        // In the teamspace the ClusterProvider names (`teamspaceId: ts_acme`).
        ("datagrid", "conn_01HACME", json!({"name": "Google Drive", "teamspace_id": "ts_acme"})),
    ]
}
