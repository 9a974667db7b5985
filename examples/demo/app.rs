//! The demo's flow: start the local stack, install the CRDs, apply `examples/`, run the
//! operator, and show the Connections converging; then either return (`--exit-when-ready`)
//! or keep running and tell the newcomer what to try.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connection_operator::api::Connection;
use kube::Api;
use kube::api::ListParams;

use super::stack::{Stack, StackError, StackOptions};
use super::table::{HEADER, LiveTable, render};

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub providers_addr: SocketAddr,
    pub kube_addr: SocketAddr,
    /// Return as soon as every Connection is Ready (for scripts and the tests).
    pub exit_when_ready: bool,
    /// With `exit_when_ready`: give up after this long.
    pub timeout: Duration,
    /// The `connection-operator` binary; `None`: build it with cargo.
    pub operator_bin: Option<PathBuf>,
    pub workdir: PathBuf,
    /// Directory with `crds/` and `examples/`.
    pub repo_root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("cannot build the operator with cargo: {0}")]
    Build(String),
    #[error("the operator exited ({status}); its log is {log}")]
    OperatorExited { status: std::process::ExitStatus, log: String },
    #[error("not every Connection was Ready after {timeout:?}: {pending}")]
    Timeout { timeout: Duration, pending: String },
    #[error("listing Connections: {0}")]
    List(#[from] kube::Error),
}

/// How the demo ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every Connection became Ready (`--exit-when-ready`).
    Ready,
    /// Stopped by the shutdown signal (Ctrl-C).
    Interrupted,
}

/// Run the demo until every Connection is Ready (`exit_when_ready`) or `shutdown` completes.
pub async fn run(options: DemoOptions, shutdown: impl Future<Output = ()>) -> Result<Ended, DemoError> {
    let mut stack = Stack::start(StackOptions {
        providers_addr: options.providers_addr,
        kube_addr: options.kube_addr,
        workdir: options.workdir.clone(),
        repo_root: options.repo_root.clone(),
    })
    .await?;
    println!("Kubernetes API emulator  {}", stack.kube.url());
    println!("provider sandboxes       {} (/nango /mielto /arena /datagrid/v1)", stack.providers_url());

    println!("installing crds/, creating namespaces, seeding upstream, applying examples/ ...");
    stack.prepare_examples().await?;

    let binary = match &options.operator_bin {
        Some(path) => path.clone(),
        None => build_operator(&options.repo_root).await?,
    };
    let log = stack.start_operator(&binary, &[])?.display().to_string();
    println!("operator                 {} (log: {log})", binary.display());
    println!();

    let result = watch(&stack, &options, &log, shutdown).await;
    // A clean stop either way: SIGTERM, then SIGKILL if it lingers; the emulators stop when
    // `stack` is dropped.
    stack.stop_operator(Duration::from_secs(10)).await?;
    result
}

async fn watch(stack: &Stack, options: &DemoOptions, log: &str, shutdown: impl Future<Output = ()>) -> Result<Ended, DemoError> {
    let api: Api<Connection> = Api::all(stack.client().await?);
    let mut table = LiveTable::default();
    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut told = false;
    tokio::pin!(shutdown);
    println!("{}", render(HEADER));
    loop {
        if let Some(status) = stack.operator_exited() {
            return Err(DemoError::OperatorExited { status, log: log.to_string() });
        }
        // Polling a full list keeps the table exact even across watch faults the
        // newcomer may inject into the emulator.
        let list = api.list(&ListParams::default()).await?;
        for line in table.update(&list.items) {
            println!("{line}");
        }
        if table.all_ready() && !told {
            told = true;
            if options.exit_when_ready {
                println!("\nevery Connection is Ready");
                return Ok(Ended::Ready);
            }
            print_next_steps(stack);
        }
        if !told && tokio::time::Instant::now() >= deadline {
            let pending: Vec<String> = table
                .rows()
                .filter(|r| !r.is_ready())
                .map(|r| match r.ready.as_str() {
                    "" => format!("{}/{} (no status yet)", r.namespace, r.name),
                    ready => format!("{}/{} (Ready={ready} {})", r.namespace, r.name, r.reason),
                })
                .collect();
            if options.exit_when_ready {
                return Err(DemoError::Timeout { timeout: options.timeout, pending: pending.join(", ") });
            }
            told = true;
            println!("\nstill waiting for: {}; see the operator log {log}", pending.join(", "));
            print_next_steps(stack);
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(Ended::Interrupted),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

fn print_next_steps(stack: &Stack) {
    let kubeconfig = stack.kubeconfig().display();
    let nango = stack.base_url("nango");
    let mielto = stack.base_url("mielto");
    println!(
        r#"
every example Connection is Ready. The stack keeps running; Ctrl-C stops everything.
In another terminal:

  export KUBECONFIG={kubeconfig}
  kubectl get connections -A -w                  # this table, live
  kubectl describe connection -n tenants acme-salesforce

  # change the spec: the new value reaches Nango within seconds
  kubectl patch connection -n tenants acme-salesforce --type merge \
    -p '{{"spec":{{"nango":{{"metadata":{{"accountRegion":"us"}}}}}}}}'
  curl -s {nango}/_sandbox/connections/acme-salesforce-1

  # break upstream behind the operator's back, then ask for a reconcile: it heals
  curl -s -X PUT {mielto}/_sandbox/connections/conn_acme_slack \
    -H 'content-type: application/json' -d '{{"label":"broken","status":"inactive","config":{{}}}}'
  kubectl annotate connection -n tenants acme-slack --overwrite \
    connection-operator.dev/reconcile-requested-at="$(date +%s)"
  curl -s {mielto}/_sandbox/connections/conn_acme_slack

  # make the provider fail: the Connection reports UpstreamUnavailable, backs off, recovers
  curl -s -X PUT {mielto}/_sandbox/faults -H 'content-type: application/json' \
    -d '{{"path":"*","status":503,"count":3}}'
  curl -s {mielto}/_sandbox/requests             # what the operator sent
"#
    );
}

/// Build the operator binary (`cargo run --example` builds examples, not the package's
/// binaries) and return its path, as cargo reports it.
async fn build_operator(repo_root: &Path) -> Result<PathBuf, DemoError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = tokio::process::Command::new(&cargo);
    command
        .args(["build", "--bin", "connection-operator", "--message-format", "json-render-diagnostics", "--manifest-path"])
        .arg(repo_root.join("Cargo.toml"))
        .stderr(std::process::Stdio::inherit());
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    println!("building the operator: {cargo} build --bin connection-operator ...");
    let output = command.output().await.map_err(|e| DemoError::Build(e.to_string()))?;
    if !output.status.success() {
        return Err(DemoError::Build(format!("cargo exited with {}", output.status)));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "connection-operator")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| DemoError::Build("cargo reported no connection-operator executable".into()))
}
