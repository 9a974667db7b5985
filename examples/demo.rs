//! The local demo, the README's first command: `cargo run --example demo`.
//!
//! Starts the Kubernetes API emulator (or, with `--kubeconfig`, uses that cluster instead)
//! and the provider sandboxes on loopback, installs `crds/`, applies `examples/` with the
//! real kubectl, runs the `connection-operator` binary and shows the Connections becoming
//! Ready. `--exit-when-ready` exits 0 once they all are (non-zero after `--timeout`), for
//! scripts; otherwise it keeps running until Ctrl-C and prints what to try next. Its stack and
//! flow live in the test kit (`connection_testkit::demo`), shared with the end-to-end tier.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use connection_testkit::demo::{app, stack};

#[derive(Parser)]
#[command(
    name = "demo",
    about = "Run connection-operator locally against emulated Kubernetes (or a cluster of yours) and emulated providers",
    after_help = "kubectl: .tools/bin/kubectl (scripts/bootstrap builds it) when present, else `kubectl` on PATH."
)]
struct Cli {
    /// Exit 0 once every example Connection is Ready (non-zero after --timeout).
    #[arg(long)]
    exit_when_ready: bool,
    /// Seconds to wait for every Connection to be Ready.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Where the provider sandboxes listen; `examples/providers.yaml` points at 8090.
    #[arg(long, default_value = "127.0.0.1:8090")]
    providers_addr: SocketAddr,
    /// Where the Kubernetes API emulator listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", conflicts_with = "kubeconfig")]
    kube_addr: SocketAddr,
    /// Run against the cluster of this kubeconfig's current context instead of the embedded
    /// emulator: e.g. DIR/kubeconfig of `scripts/control-plane up DIR`, kind, a cloud
    /// cluster. The demo installs crds/, creates the namespaces tenants and platform,
    /// applies examples/ (which include the cluster-scoped ClusterProvider `datagrid`) and
    /// runs the operator on this machine with this KUBECONFIG, watching all namespaces; the
    /// objects stay in the cluster afterwards. The provider sandboxes still listen on this
    /// machine's loopback, which works because the operator runs here too.
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// A prebuilt `connection-operator` binary (default: build it with cargo).
    #[arg(long, env = "CONNECTION_OPERATOR_BIN")]
    operator_bin: Option<PathBuf>,
    /// Directory for the emulator's kubeconfig and the operator log (default: a fresh
    /// temporary one).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let workdir = match cli.workdir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("connection-operator-demo-{}", std::process::id())),
    };
    let options = app::DemoOptions {
        providers_addr: cli.providers_addr,
        kube: match cli.kubeconfig {
            Some(kubeconfig) => stack::KubeTarget::Cluster { kubeconfig, operator_kubeconfig: None },
            None => stack::KubeTarget::Emulator(cli.kube_addr),
        },
        kubectl: None,
        exit_when_ready: cli.exit_when_ready,
        timeout: Duration::from_secs(cli.timeout),
        operator_bin: cli.operator_bin,
        workdir,
        repo_root: stack::repo_root(),
    };
    let ctrl_c = async {
        // If the handler cannot be installed, never fire (the demo still ends on its own).
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    match app::run(options, ctrl_c).await {
        Ok(app::Ended::Ready) => ExitCode::SUCCESS,
        Ok(app::Ended::Interrupted) => {
            println!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            if matches!(e, app::DemoError::Stack(stack::StackError::Start { .. })) {
                eprintln!("hint: is port 8090 busy? try --providers-addr 127.0.0.1:0");
            }
            ExitCode::FAILURE
        }
    }
}
