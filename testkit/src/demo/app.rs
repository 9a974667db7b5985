//! The demo's flow: start the local stack (the emulator, or a cluster given by a
//! kubeconfig), install the CRDs, apply `examples/`, run the operator, and show the
//! Connections converging; then either return (`--exit-when-ready`) or keep running and tell
//! the newcomer what to try.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connection_operator::api::Connection;
use kube::Api;
use kube::api::ListParams;

use super::kubectl;
use super::stack::{EXAMPLE_NAMESPACES, KubeTarget, Stack, StackError, StackOptions};
use super::table::{HEADER, LiveTable, render};

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub providers_addr: SocketAddr,
    /// The emulator (default) or a cluster.
    pub kube: KubeTarget,
    /// The kubectl binary; `None`: `.tools/bin/kubectl`, else `kubectl` on PATH.
    pub kubectl: Option<PathBuf>,
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

/// Unique per run, even for two runs within one second in one process (the tests).
fn unix_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
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
    #[error("connection-operator plan: {0}")]
    Plan(String),
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
    let kubectl = match &options.kubectl {
        Some(path) => path.clone(),
        None => kubectl::find(&options.repo_root).map_err(StackError::from)?,
    };
    let mut stack = Stack::start(StackOptions {
        providers_addr: options.providers_addr,
        kube: options.kube.clone(),
        kubectl: kubectl.clone(),
        workdir: options.workdir.clone(),
        repo_root: options.repo_root.clone(),
    })
    .await?;
    match &stack.emulator {
        Some(emulator) => println!("Kubernetes API emulator  {}", emulator.url()),
        None => println!("Kubernetes API           {} (kubeconfig {})", stack.kube_url(), stack.kubeconfig().display()),
    }
    println!("kubectl                  {}", kubectl.display());
    println!("provider sandboxes       {} (/nango /mielto /arena /datagrid/v1)", stack.providers_url());

    println!("installing crds/, creating namespaces, seeding upstream, applying examples/ ...");
    stack.prepare_examples().await?;
    // This run's reconcile request: only a status that handled it counts as Ready.
    let token = format!("demo-{}-{}", unix_nanos(), std::process::id());
    stack.request_example_reconciles(&token).await?;

    let binary = match &options.operator_bin {
        Some(path) => path.clone(),
        None => build_operator(&options.repo_root).await?,
    };
    let log = stack.start_operator(&binary, &[])?.display().to_string();
    println!("operator                 {} (log: {log})", binary.display());
    println!();

    let result = watch(&stack, &options, &binary, &token, &log, shutdown).await;
    // A clean stop either way: SIGTERM, then SIGKILL if it lingers; the emulators stop when
    // `stack` is dropped.
    stack.stop_operator(Duration::from_secs(10)).await?;
    result
}

async fn watch(
    stack: &Stack,
    options: &DemoOptions,
    binary: &Path,
    token: &str,
    log: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<Ended, DemoError> {
    let client = stack.client().await?;
    // The example namespaces only: on a shared cluster, other Connections are not the demo's.
    let apis: Vec<Api<Connection>> = EXAMPLE_NAMESPACES.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect();
    let mut table = LiveTable::expecting(stack.example_connections()?, Some(token.to_string()));
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
        let mut listed = Vec::new();
        for api in &apis {
            listed.extend(api.list(&ListParams::default()).await?.items);
        }
        for line in table.update(&listed) {
            println!("{line}");
        }
        if table.all_ready() && !told {
            told = true;
            plan_a_pull_request(stack, options, binary, &client).await?;
            if options.exit_when_ready {
                println!("\nevery Connection is Ready");
                return Ok(Ended::Ready);
            }
            print_next_steps(stack, binary);
        }
        if !told && tokio::time::Instant::now() >= deadline {
            let pending = table.pending();
            if options.exit_when_ready {
                return Err(DemoError::Timeout { timeout: options.timeout, pending: pending.join(", ") });
            }
            told = true;
            println!("\nstill waiting for: {}; see the operator log {log}", pending.join(", "));
            print_next_steps(stack, binary);
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(Ended::Interrupted),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The changed example the demo plans, applies and plans again.
pub const PULL_REQUEST: &str = "examples/pull-request/acme-salesforce.yaml";
/// Where the demo keeps what `plan` printed before and after applying [`PULL_REQUEST`].
pub const PLAN_BEFORE: &str = "plan-before.txt";
pub const PLAN_AFTER: &str = "plan-after.txt";

/// What a reviewer sees before a change merges: `connection-operator plan` of a changed
/// example (exit 2, the keys it would change), then the change applied with kubectl and
/// planned again (exit 0: nothing left to do). Both outputs are kept in the workdir.
async fn plan_a_pull_request(
    stack: &Stack,
    options: &DemoOptions,
    binary: &Path,
    client: &kube::Client,
) -> Result<(), DemoError> {
    let file = options.repo_root.join(PULL_REQUEST);
    let file_arg = file.to_string_lossy().into_owned();
    println!(
        "
a pull request changes acme-salesforce ({PULL_REQUEST}); before it merges:
"
    );
    println!("$ connection-operator plan -f {PULL_REQUEST}");
    let before = plan(stack, binary, &file_arg, 2, &options.workdir.join(PLAN_BEFORE)).await?;
    print!("{before}");
    let api: Api<Connection> = Api::namespaced(client.clone(), "tenants");
    let generation = api.get("acme-salesforce").await?.metadata.generation;
    println!(
        "
$ kubectl apply -f {PULL_REQUEST}"
    );
    print!("{}", stack.kubectl(&["apply", "-f", &file_arg]).await?);
    // In sync at the new generation: the operator did what the plan said.
    let deadline = tokio::time::Instant::now() + options.timeout;
    loop {
        let conn = api.get("acme-salesforce").await?;
        let applied = conn.metadata.generation != generation;
        let ready = conn.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        if applied && ready.is_some_and(|r| r.reason == "InSync" && r.observed_generation == conn.metadata.generation) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DemoError::Plan("acme-salesforce did not reach InSync after applying the pull request".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "
$ connection-operator plan -f {PULL_REQUEST}     # applied: nothing left to do"
    );
    let after = plan(stack, binary, &file_arg, 0, &options.workdir.join(PLAN_AFTER)).await?;
    print!("{after}");
    Ok(())
}

/// `connection-operator plan -f file` with the stack's kubeconfig; its output (also written
/// to `keep`), which must end with exit status `expected`.
async fn plan(stack: &Stack, binary: &Path, file: &str, expected: i32, keep: &Path) -> Result<String, DemoError> {
    let output = tokio::process::Command::new(binary)
        .args(["plan", "-f", file, "--kubeconfig"])
        .arg(stack.kubeconfig())
        .output()
        .await
        .map_err(|e| DemoError::Plan(format!("cannot run {}: {e}", binary.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let _ = std::fs::write(keep, &stdout);
    if output.status.code() != Some(expected) {
        return Err(DemoError::Plan(format!(
            "exited with {} (expected {expected}):\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(stdout)
}

fn print_next_steps(stack: &Stack, binary: &Path) {
    let bin = binary.display();
    let kubeconfig = stack.kubeconfig().display();
    let nango = stack.base_url("nango");
    let mielto = stack.base_url("mielto");
    let stopping = if stack.emulator.is_some() {
        "Ctrl-C stops everything."
    } else {
        "Ctrl-C stops the operator and the provider sandboxes;\n\
         the example objects stay in the cluster. To remove them, run `kubectl delete -f examples/`\n\
         while the demo still runs (the operator removes the finalizers of its Connections)."
    };
    // `.tools/bin` is not on a newcomer's PATH; say which kubectl the demo used.
    let path = match stack.options.kubectl.parent() {
        Some(dir) if dir.ends_with(".tools/bin") => format!("  export PATH={}:$PATH\n", dir.display()),
        _ => String::new(),
    };
    println!(
        r#"
every example Connection is Ready. The stack keeps running; {stopping}
In another terminal:

{path}  export KUBECONFIG={kubeconfig}
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

  # review a change before applying it (exit 0: nothing to do, 2: changes, 1: errors)
  {bin} plan -f examples/connections.yaml -o markdown
  # change a shared setting: every Connection using it is updated upstream
  kubectl patch configmap -n tenants plan-defaults --type merge -p '{{"data":{{"supportTier":"gold"}}}}'
  # write manifests for what a provider account already holds (Observe until you switch)
  {bin} import --provider nango -n tenants
"#
    );
}

/// Build the operator binary (`cargo run --example` builds examples, not the package's
/// binaries) and return its path, as cargo reports it.
async fn build_operator(repo_root: &Path) -> Result<PathBuf, DemoError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = tokio::process::Command::new(&cargo);
    command
        .args([
            "build",
            "--bin",
            "connection-operator",
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
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
