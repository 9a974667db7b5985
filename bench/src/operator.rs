//! The operator under test, as a separate process: built with the harness's own profile
//! (so a release benchmark measures a release operator, next to a release
//! `connection-sandbox`), started against the control plane's kubeconfig, and measured from
//! `/proc` (`procs`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;

use crate::{
    cluster::poll,
    procs::{self, Usage},
    settings::Settings,
};

/// The binaries a run uses, built with the harness's profile.
pub struct Binaries {
    pub operator: PathBuf,
    pub sandbox: PathBuf,
}

/// The profile this harness was built with; the operator is built with the same one.
fn profile() -> &'static str {
    if cfg!(debug_assertions) { "dev" } else { "release" }
}

/// `cargo build` of `connection-operator` and `connection-sandbox` with the harness's
/// profile, then the paths of the binaries, which cargo puts next to the harness's own
/// binary. Always asking cargo (a no-op when up to date) keeps a stale operator from being
/// measured.
pub fn build() -> anyhow::Result<Binaries> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("bench/ has a parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--profile", profile(), "-p", "connection-operator", "--bin", "connection-operator"])
        .args(["-p", "connection-sandbox", "--bin", "connection-sandbox"])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .status()
        .context("running cargo build for the operator")?;
    anyhow::ensure!(status.success(), "cargo build -p connection-operator -p connection-sandbox failed ({status})");
    let own = std::env::current_exe()?;
    let mut dir = own.parent().context("the harness binary has a directory")?.to_path_buf();
    // Test binaries live one level down, in `deps/`.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binaries = Binaries { operator: dir.join("connection-operator"), sandbox: dir.join("connection-sandbox") };
    for binary in [&binaries.operator, &binaries.sandbox] {
        anyhow::ensure!(binary.is_file(), "cargo built it but {} is missing", binary.display());
    }
    Ok(binaries)
}

/// A running operator. Killed when dropped.
pub struct Operator {
    child: Child,
    metrics_addr: SocketAddr,
}

impl Operator {
    /// `connection-operator run --namespace NAMESPACE` against `kubeconfig`; with more than
    /// one shard, `--shards N` and the holder identity `bench-operator-INDEX`.
    fn start(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        settings: &Settings,
        log: &Path,
        index: u32,
    ) -> anyhow::Result<Operator> {
        let metrics_addr = free_port()?;
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .args(["run", "--namespace", namespace, "--log-format", "json"])
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .arg("--concurrency")
            .arg(settings.concurrency.to_string());
        if let Some(seconds) = settings.drift_override_seconds {
            command.arg("--drift-interval-override-seconds").arg(seconds.to_string());
        }
        // The operator's own default level (info) unless `BENCH_OPERATOR_LOG` says otherwise:
        // at `warn` a healthy run logs nothing at all, not even its start, its cache sync or
        // its watches' relists, and an empty log tells nothing about a run that went wrong.
        match std::env::var_os("BENCH_OPERATOR_LOG") {
            Some(filter) => command.env("RUST_LOG", filter),
            None => command.env_remove("RUST_LOG"),
        };
        if settings.shards > 1 {
            // The shard Leases live in --namespace (no POD_NAMESPACE).
            command.arg("--shards").arg(settings.shards.to_string()).env("POD_NAME", format!("bench-operator-{index}"));
        }
        let child = command
            .env_remove("POD_NAMESPACE")
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Operator { child, metrics_addr })
    }

    /// Wait until `/readyz` answers 200 (its caches have synced).
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let url = format!("http://{}/readyz", self.metrics_addr);
        let mut exited = None;
        let ready = poll(Duration::from_secs(120), "the operator's /readyz", || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return futures::future::Either::Left(std::future::ready(true));
            }
            let request = http.get(&url).send();
            futures::future::Either::Right(async move { request.await.is_ok_and(|r| r.status().is_success()) })
        })
        .await;
        if let Some(status) = exited {
            anyhow::bail!("the operator exited before becoming ready ({status}); see its log");
        }
        ready
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (MiB) and CPU time (s) so far.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        procs::usage(self.pid())
    }
}

/// The operator processes of a run: one per shard (`Settings::shards`).
pub struct Operators(Vec<Operator>);

impl Operators {
    /// One process per shard; the first logs to `log`, shard process `i` > 0 next to it.
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        settings: &Settings,
        log: &Path,
    ) -> anyhow::Result<Operators> {
        let started = (0..settings.shards.max(1))
            .map(|i| {
                let log = if i == 0 { log.to_path_buf() } else { log.with_extension(format!("{i}.log")) };
                Operator::start(binary, kubeconfig, namespace, settings, &log, i)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Operators(started))
    }

    /// `operator` for a single process (as before sharding), else `operator-INDEX`.
    fn names(&self) -> impl Iterator<Item = (String, &Operator)> {
        let single = self.0.len() == 1;
        self.0
            .iter()
            .enumerate()
            .map(move |(i, o)| (if single { "operator".into() } else { format!("operator-{i}") }, o))
    }

    /// The processes by name, for the report's `processes`.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.names().map(|(name, o)| (name, o.pid())).collect()
    }

    /// Every process ready: each runs a shard's controller once its caches synced (a
    /// process holds one shard's Lease, so N processes hold the N shards).
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        for operator in &mut self.0 {
            operator.wait_ready().await?;
        }
        Ok(())
    }

    /// Each process's usage over its whole life, by name.
    pub fn usages(&self) -> anyhow::Result<Vec<(String, Usage)>> {
        self.names().map(|(name, o)| Ok((name, o.usage()?))).collect()
    }

    /// The operator's usage: with several processes, their CPU time and their peak RSS
    /// summed (what the operator as a whole costs).
    pub fn usage(&self) -> anyhow::Result<Usage> {
        let all = self.usages()?;
        Ok(Usage {
            peak_rss_mb: all.iter().map(|(_, u)| u.peak_rss_mb).sum(),
            cpu_seconds: all.iter().map(|(_, u)| u.cpu_seconds).sum(),
        })
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
