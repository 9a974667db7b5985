//! `bench`: the scale benchmark (its targets: `report::Report::judge`; bench/README.md).
//!
//! `cargo run --release -p bench -- --control-plane real|emulator --connections N --out FILE`
//! uses a Kubernetes control plane (the emulator, or a real kube-apiserver + etcd), starts
//! the provider sandboxes, builds and runs the operator binary as a separate process, drives
//! N Connections through an initial wave, a steady state of several drift intervals, a
//! trickle of single changes and a change wave, then a separate rate-limited run, and writes
//! the JSON report to FILE (and the same as a Markdown table next to it, FILE with extension
//! `.md`, and on stdout).

mod backend;
mod cluster;
mod fleet;
mod journal;
mod kube_metrics;
mod operator;
mod procs;
mod readiness;
mod report;
mod scenario;
mod settings;
mod upstream;

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::Context;
use clap::Parser;

use crate::{
    backend::{Backend, ControlPlaneKind},
    fleet::Kind,
    report::{Config, Report},
    scenario::RateLimitSettings,
    settings::Settings,
};

#[derive(Parser, Debug)]
#[command(name = "bench", about = "Scale benchmark of connection-operator against the emulators")]
struct Cli {
    /// The Kubernetes control plane: `emulator` (connection-sandbox's, its own process) or
    /// `real` (kube-apiserver + etcd + kube-controller-manager: `--kubeconfig`, else
    /// `CONNECTION_OPERATOR_CONTROL_PLANE=DIR`, else one started for this run by
    /// scripts/control-plane).
    #[arg(long, value_enum, default_value = "emulator")]
    control_plane: ControlPlaneKind,
    /// With `--control-plane real`: the admin kubeconfig of a running control plane (its
    /// processes are measured when it sits in a scripts/control-plane directory).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How many Connections the main run manages.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Where to write the JSON report (the Markdown table goes next to it, as `.md`).
    #[arg(long)]
    out: PathBuf,
    /// Providers the Connections are spread over, round-robin.
    #[arg(long, value_delimiter = ',', default_value = "nango,mielto,arena,datagrid")]
    providers: Vec<String>,
    /// Latency every upstream request gets before it is answered.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// The operator's `--concurrency`.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// `spec.driftInterval` of every Connection (the CRD admits 30 s at least).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(30..))]
    drift_interval_seconds: u64,
    /// Pass the operator's hidden `--drift-interval-override-seconds` (benchmark/test knob)
    /// so the steady state can span several drift intervals quickly.
    #[arg(long)]
    drift_interval_override_seconds: Option<f64>,
    /// How many drift intervals the steady state lasts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    steady_intervals: u32,
    /// Single changes per second while the fleet is in steady state (after the steady state
    /// measurement, before the change wave).
    #[arg(long, default_value_t = 2.0)]
    trickle_per_second: f64,
    /// How long the single changes go on, in seconds (0: none).
    #[arg(long, default_value_t = 60.0)]
    trickle_seconds: f64,
    /// Share of the Connections whose spec changes in the change wave, in percent.
    #[arg(long, default_value_t = 10.0)]
    change_percent: f64,
    /// Provider of the rate-limited run, or `none` to skip it.
    #[arg(long, default_value = "nango")]
    rate_limited_provider: String,
    /// Connections of the rate-limited run.
    #[arg(long, default_value_t = 100)]
    rate_limited_connections: usize,
    /// Requests the rate-limited provider allows per window.
    #[arg(long, default_value_t = 100)]
    rate_limit: u32,
    /// The rate-limited provider's window, in seconds. Every provider documents a 60 s
    /// window (docs/providers.md), and the operator rightly assumes it where headers do not say.
    #[arg(long, default_value_t = 60.0)]
    rate_window_seconds: f64,
    /// Operator processes, one per shard (`connection-operator run --shards N`); each
    /// provider's account is pinned to shard `i mod N` (i: its place in --providers) with the
    /// shard label, so the accounts spread evenly. 1: one process, no sharding.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    shards: u32,
    /// Bound on each wait for convergence (a failure bound, not a measurement).
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let kinds = cli
        .providers
        .iter()
        .map(|p| {
            Kind::parse(p).with_context(|| format!("unknown provider {p:?}: expected nango, mielto, arena or datagrid"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!kinds.is_empty(), "--providers names no provider");
    anyhow::ensure!(cli.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(cli.change_percent > 0.0 && cli.change_percent <= 100.0, "--change-percent must be in (0, 100]");
    anyhow::ensure!(
        cli.trickle_per_second > 0.0 && cli.trickle_seconds >= 0.0,
        "--trickle-per-second must be positive, --trickle-seconds not negative"
    );
    anyhow::ensure!(
        cli.kubeconfig.is_none() || cli.control_plane == ControlPlaneKind::Real,
        "--kubeconfig needs --control-plane real"
    );
    let rate_limited = match cli.rate_limited_provider.as_str() {
        "none" => None,
        name => Some(RateLimitSettings {
            kind: Kind::parse(name).with_context(|| format!("unknown --rate-limited-provider {name:?}"))?,
            connections: cli.rate_limited_connections.max(1),
            limit: cli.rate_limit.max(1),
            window_seconds: cli.rate_window_seconds,
        }),
    };
    let operator_log = std::env::temp_dir().join(format!("connection-operator-bench-{}.log", std::process::id()));
    let settings = Settings {
        connections: cli.connections,
        kinds,
        latency_ms: cli.latency_ms,
        concurrency: cli.concurrency,
        drift_interval_seconds: cli.drift_interval_seconds,
        drift_override_seconds: cli.drift_interval_override_seconds,
        steady_intervals: cli.steady_intervals,
        trickle_per_second: cli.trickle_per_second,
        trickle_seconds: cli.trickle_seconds,
        change_fraction: cli.change_percent / 100.0,
        timeout: Duration::from_secs(cli.timeout_seconds),
        operator_log,
        namespace_prefix: format!("bench-{}", chrono::Utc::now().format("%H%M%S")),
        shards: cli.shards,
    };
    if let Some(parent) = cli.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let load_at_start = report::load_average();
    eprintln!("bench: building the operator and the sandboxes");
    let binaries = operator::build()?;
    let backend = match cli.control_plane {
        ControlPlaneKind::Emulator => {
            Backend::emulator(&binaries.sandbox, &settings.operator_log.with_extension("kube-emulator.log"))?
        }
        ControlPlaneKind::Real => Backend::real(cli.kubeconfig.clone())?,
    };
    eprintln!(
        "bench: control plane {} ({}), namespace {}",
        backend.kind.name(),
        backend.origin,
        settings.namespace_prefix
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (main, rate_limited) = runtime
        .block_on(async {
            let main = scenario::main_run(&binaries, &backend, &settings).await?;
            let rate_limited = match &rate_limited {
                Some(r) => Some(scenario::rate_limited_run(&binaries, &backend, &settings, r).await?),
                None => None,
            };
            anyhow::Ok((main, rate_limited))
        })
        .with_context(|| format!("benchmark failed; the operator's log is {}", settings.operator_log.display()))?;
    drop(runtime);
    drop(backend);

    let mut report = build_report(&settings, cli.control_plane, started_at, &main, rate_limited);
    report.load_average = (load_at_start, report::load_average());
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(&cli.out, json + "\n").with_context(|| format!("writing {}", cli.out.display()))?;
    let markdown = report.markdown();
    std::fs::write(cli.out.with_extension("md"), &markdown)?;
    println!("{markdown}");
    eprintln!("bench: report written to {}; operator log {}", cli.out.display(), settings.operator_log.display());
    Ok(())
}

fn build_report(
    s: &Settings,
    control_plane: ControlPlaneKind,
    started_at: String,
    main: &scenario::MainRun,
    rate_limited: Option<report::RateLimited>,
) -> Report {
    let n = s.connections as f64;
    let reads: u64 = main.initial.values().map(|t| t.reads).sum();
    let writes: u64 = main.initial.values().map(|t| t.writes).sum();
    let calls = 2 * s.connections as u64;
    let (commit, dirty) = commit();
    let mut report = Report {
        commit,
        dirty,
        started_at,
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        control_plane: control_plane.name(),
        shards: s.shards,
        connections: s.connections as u64,
        providers: main.counts.iter().map(|(k, v)| (k.name().to_owned(), *v)).collect(),
        config: Config {
            upstream_latency_ms: s.latency_ms,
            operator_concurrency: s.concurrency,
            drift_interval_seconds: s.effective_drift_seconds(),
            steady_intervals: s.steady_intervals,
            change_fraction: s.change_fraction,
            upstream_rate_limits: "lifted in the main run (sandbox limit 0, Provider rateLimit 100000/min)",
            profile: if cfg!(debug_assertions) { "debug" } else { "release" },
        },
        converge_seconds: main.converge_seconds,
        floor_seconds: report::floor_seconds(calls, 2, s.latency_ms as f64 / 1000.0, u64::from(s.concurrency), None),
        floor_formula: report::FLOOR_FORMULA,
        upstream_reads_per_connection: reads as f64 / n,
        upstream_writes_per_connection: writes as f64 / n,
        kube_requests_per_connection: main.initial_kube.as_ref().map(|k| k.requests as f64 / n),
        kube_requests_by_verb: main.initial_kube.as_ref().map(|k| k.by_verb.clone()).unwrap_or_default(),
        initial_by_provider: scenario::initial_by_provider(main),
        steady: main.steady.clone(),
        single_change: main.single_change.clone(),
        change_wave: main.change_wave.clone(),
        rate_limited,
        peak_rss_mb: main.usage.peak_rss_mb,
        cpu_seconds: main.usage.cpu_seconds,
        processes: main.processes.clone(),
        load_average: (f64::NAN, f64::NAN),
        targets: Vec::new(),
    };
    report.judge();
    report
}

/// The workspace's commit and whether the tree differs from it.
fn commit() -> (String, bool) {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty()).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    (commit, dirty)
}
