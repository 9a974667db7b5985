//! The `connection-operator` command line (see docs/interfaces.md).

use std::io::Write;
use std::process::ExitCode;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use connection_operator::admin::{self, Readiness};
use connection_operator::controller::{self, LeaseSettings, RunConfig};
use connection_operator::metrics::Metrics;
use connection_operator::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(name = "connection-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster from KUBECONFIG or the in-cluster config.
    Run(RunArgs),
    /// Print every CRD as multi-document YAML (what `crds/` holds).
    Crd,
    /// Print the version.
    Version,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// How many Connections are reconciled at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Run the controller only while holding the Lease `connection-operator` (in
    /// POD_NAMESPACE, else --namespace, else `default`); identity POD_NAME, else the host
    /// name with a random suffix.
    #[arg(long)]
    leader_election: bool,
    /// Test and benchmark only: replace every Connection's driftInterval (whose admitted
    /// minimum is 30s) with this many seconds.
    #[arg(long, hide = true)]
    drift_interval_override_seconds: Option<f64>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Crd => match connection_operator::api::crds_yaml() {
            Ok(yaml) => {
                // A closed pipe (`| head`) is not worth a panic.
                let _ = std::io::stdout().write_all(yaml.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render the CRDs: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Version => {
            println!("connection-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    telemetry::init(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "connection-operator stopped");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::default();
    let listener = admin::bind(args.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    tokio::spawn(admin::serve(listener, metrics.clone(), readiness.clone()));
    let mut config = RunConfig {
        namespace: args.namespace,
        concurrency: args.concurrency,
        ..RunConfig::default()
    };
    config.timing.drift_interval_override = args
        .drift_interval_override_seconds
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(std::time::Duration::from_secs_f64);
    tracing::info!(
        namespace = config.namespace.as_deref().unwrap_or("<all>"),
        concurrency = config.concurrency,
        "starting the controller"
    );
    if !args.leader_election {
        controller::run(client, config, metrics, readiness, shutdown_signal()).await;
        return Ok(());
    }
    let namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| config.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "connection-operator".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let lost = controller::run_when_leading(
        client,
        config,
        LeaseSettings::new(namespace, identity),
        metrics,
        readiness,
        shutdown_signal(),
    )
    .await?;
    if lost {
        anyhow::bail!("lost the leader Lease");
    }
    Ok(())
}

/// SIGINT or SIGTERM (what Kubernetes sends a terminating pod).
async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
