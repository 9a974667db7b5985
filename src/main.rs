//! The `connection-operator` command line (see docs/interfaces.md).

use std::io::Write;
use std::process::ExitCode;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use connection_operator::admin::{self, Readiness};
use connection_operator::api::{ManagementPolicy, ProviderKind};
use connection_operator::controller::{self, LeaseSettings, RunConfig};
use connection_operator::import::{self, ImportOptions};
use connection_operator::metrics::Metrics;
use connection_operator::plan::{self, Format};
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
    /// Show what the operator would do for the Connections in some manifests, without doing
    /// it: keys it would set, change or remove (old and new values), keys it leaves alone,
    /// conflicts, and the upstream requests. Writes nothing, upstream or to Kubernetes.
    /// Exit status: 0 nothing would change, 2 something would, 1 an error.
    Plan(PlanArgs),
    /// Write Connection manifests whose spec is the current upstream state of a provider
    /// account's connections (a YAML stream on stdout, or one file per Connection with
    /// --out). Applying them changes nothing upstream.
    Import(ImportArgs),
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
    /// How many reconciles talk to providers at once (upstream requests in flight); twice
    /// as many run, so that their Kubernetes writes overlap the upstream turns.
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
    /// Split the provider accounts over N shards, each guarded by its own Lease
    /// `connection-operator-shard-<i>`: a process holds one shard's Lease and reconciles only
    /// the Connections of that shard's accounts; run at least N replicas (more are standbys).
    /// 1: no sharding. More than 1 implies --leader-election.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    shards: u32,
    /// Test only: how long a Lease stays valid without renewal (default 15).
    #[arg(long, hide = true)]
    lease_duration_seconds: Option<u64>,
    /// Test only: renew the Lease this long before it expires (default 5).
    #[arg(long, hide = true)]
    lease_grace_seconds: Option<u64>,
    /// Test and benchmark only: replace every Connection's driftInterval (whose admitted
    /// minimum is 30s) with this many seconds.
    #[arg(long, hide = true)]
    drift_interval_override_seconds: Option<f64>,
}

#[derive(clap::Args)]
struct PlanArgs {
    /// Manifests: files, directories (their .yaml/.yml/.json files) or `-` for standard
    /// input (e.g. `kustomize build overlay | connection-operator plan -f -`). Repeatable.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1.., action = clap::ArgAction::Append)]
    files: Vec<String>,
    /// The kubeconfig to use (default: KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Namespace of manifests that name none (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Output format; markdown is ready to post as a pull-request comment.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    output: Format,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// The Provider to import from (in --namespace), or `clusterprovider/NAME`.
    #[arg(long)]
    provider: String,
    /// Namespace of the Provider and of the Connections written (default: the kubeconfig
    /// context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Only these connection ids; required for Mielto and Are.na, which cannot list.
    #[arg(long, value_delimiter = ',')]
    ids: Vec<String>,
    /// managementPolicy of the Connections: Observe (nothing is written until you switch to
    /// Manage) or Manage.
    #[arg(long, value_enum, default_value_t = Policy::Observe)]
    policy: Policy,
    /// Write one <name>.yaml per Connection into this directory instead of stdout (existing
    /// files are never overwritten).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// The kubeconfig to use (default: KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Policy {
    #[value(name = "Observe")]
    Observe,
    #[value(name = "Manage")]
    Manage,
}

/// The name the binary answers to as a kubectl plugin (`kubectl connection plan ...`):
/// kubectl runs `kubectl-connection plan ...` found on PATH (a symlink to this binary).
const PLUGIN_NAME: &str = "kubectl-connection";

fn parse_cli() -> Cli {
    let invoked_as = std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()));
    if invoked_as.as_deref() == Some(PLUGIN_NAME) {
        let command = Cli::command().name("kubectl connection").bin_name("kubectl connection");
        return Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    }
    Cli::parse()
}

fn main() -> ExitCode {
    match parse_cli().command {
        Command::Run(args) => run(args),
        Command::Plan(args) => plan_command(args),
        Command::Import(args) => import_command(args),
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
    let mut config = RunConfig { namespace: args.namespace, concurrency: args.concurrency, ..RunConfig::default() };
    config.timing.drift_interval_override = args
        .drift_interval_override_seconds
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(std::time::Duration::from_secs_f64);
    tracing::info!(
        namespace = config.namespace.as_deref().unwrap_or("<all>"),
        concurrency = config.concurrency,
        shards = args.shards,
        "starting the controller"
    );
    if !args.leader_election && args.shards == 1 {
        controller::run(client, config, metrics, readiness, shutdown_signal()).await;
        return Ok(());
    }
    let namespace =
        std::env::var("POD_NAMESPACE").ok().or_else(|| config.namespace.clone()).unwrap_or_else(|| "default".into());
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "connection-operator".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let mut lease = LeaseSettings::new(namespace, identity);
    lease.duration = args.lease_duration_seconds.unwrap_or(lease.duration);
    lease.grace = args.lease_grace_seconds.unwrap_or(lease.grace);
    lease.shards = args.shards;
    let lost = controller::run_when_leading(client, config, lease, metrics, readiness, shutdown_signal()).await?;
    if lost {
        anyhow::bail!("lost the leader Lease");
    }
    Ok(())
}

/// A client for `kubeconfig` (else the usual inference), with its default namespace.
async fn cli_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<(kube::Client, String)> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("cannot read the kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    let namespace = config.default_namespace.clone();
    Ok((kube::Client::try_from(config)?, namespace))
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
    }
}

fn plan_command(args: PlanArgs) -> ExitCode {
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let documents = match plan::read(&args.files, &mut std::io::stdin().lock()) {
        Ok(documents) => documents,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let report = runtime.block_on(async {
        let (client, namespace) = cli_client(args.kubeconfig.as_deref()).await?;
        let namespace = args.namespace.clone().unwrap_or(namespace);
        Ok::<_, anyhow::Error>(plan::plan(client, &namespace, documents).await)
    });
    match report {
        Ok(report) => {
            let _ = std::io::stdout().write_all(report.render(args.output).as_bytes());
            ExitCode::from(report.exit_code())
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn import_command(args: ImportArgs) -> ExitCode {
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let (provider_kind, provider_name) = match args.provider.split_once('/') {
        Some((kind, name)) if kind.eq_ignore_ascii_case("clusterprovider") => (ProviderKind::ClusterProvider, name),
        Some((kind, name)) if kind.eq_ignore_ascii_case("provider") => (ProviderKind::Provider, name),
        Some(_) => {
            eprintln!("error: --provider is NAME, provider/NAME or clusterprovider/NAME");
            return ExitCode::from(1);
        }
        None => (ProviderKind::Provider, args.provider.as_str()),
    };
    let result = runtime.block_on(async {
        let (client, namespace) = cli_client(args.kubeconfig.as_deref()).await?;
        let options = ImportOptions {
            provider_kind,
            provider_name: provider_name.to_string(),
            namespace: args.namespace.clone().unwrap_or(namespace),
            ids: args.ids.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
            policy: match args.policy {
                Policy::Observe => ManagementPolicy::Observe,
                Policy::Manage => ManagementPolicy::Manage,
            },
        };
        Ok::<_, anyhow::Error>(import::import(client, &options).await?)
    });
    let imported = match result {
        Ok(imported) => imported,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    for i in imported.iter().filter(|i| !i.withheld.is_empty()) {
        eprintln!(
            "{}: left out {} (upstream values from a Secret, as recorded by an existing Connection; use metadataFrom/configFrom with a secretRef)",
            i.name,
            i.withheld.join(", ")
        );
    }
    match &args.out {
        None => {
            let _ = std::io::stdout().write_all(import::to_yaml_stream(&imported).as_bytes());
        }
        Some(dir) => match import::write_files(dir, &imported) {
            Ok(written) => {
                for path in written {
                    eprintln!("wrote {path}");
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
    }
    eprintln!("imported {} Connection(s)", imported.len());
    ExitCode::SUCCESS
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
