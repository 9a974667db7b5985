//! The operator under test, as a separate process: built with the harness's own profile
//! (so a release benchmark measures a release operator), started against the emulator's
//! kubeconfig, and measured from `/proc` (proc(5): `VmHWM` in `status`, `utime`/`stime` in
//! `stat`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;

use crate::{cluster::poll, scenario::Settings};

/// The profile this harness was built with; the operator is built with the same one.
fn profile() -> &'static str {
    if cfg!(debug_assertions) { "dev" } else { "release" }
}

/// `cargo build -p connection-operator` with the harness's profile, then the path of the
/// binary, which cargo puts next to the harness's own binary. Always asking cargo (a no-op
/// when up to date) keeps a stale operator from being measured.
pub fn build() -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("bench/ has a parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--profile", profile(), "-p", "connection-operator", "--bin", "connection-operator"])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .status()
        .context("running cargo build for the operator")?;
    anyhow::ensure!(status.success(), "cargo build -p connection-operator failed ({status})");
    let own = std::env::current_exe()?;
    let mut dir = own.parent().context("the harness binary has a directory")?.to_path_buf();
    // Test binaries live one level down, in `deps/`.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join("connection-operator");
    anyhow::ensure!(binary.is_file(), "cargo built the operator but {} is missing", binary.display());
    Ok(binary)
}

/// A running operator. Killed when dropped.
pub struct Operator {
    child: Child,
    metrics_addr: SocketAddr,
}

impl Operator {
    pub fn start(binary: &Path, kubeconfig: &Path, settings: &Settings, log: &Path) -> anyhow::Result<Operator> {
        let metrics_addr = free_port()?;
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(binary);
        command
            .args(["run", "--namespace", crate::fleet::NAMESPACE, "--log-format", "json"])
            .arg("--metrics-addr")
            .arg(metrics_addr.to_string())
            .arg("--concurrency")
            .arg(settings.concurrency.to_string());
        if let Some(seconds) = settings.drift_override_seconds {
            command.arg("--drift-interval-override-seconds").arg(seconds.to_string());
        }
        let child = command
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", std::env::var("BENCH_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()))
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
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        parse_usage(&status, &stat, clock_ticks())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub peak_rss_mb: f64,
    pub cpu_seconds: f64,
}

/// From `/proc/PID/status` (`VmHWM: N kB`) and `/proc/PID/stat` (fields 14 and 15, counted
/// after the parenthesised command name, which may itself contain spaces).
fn parse_usage(status: &str, stat: &str, ticks_per_second: f64) -> anyhow::Result<Usage> {
    let hwm_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmHWM in /proc/PID/status")?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed /proc/PID/stat")?;
    // after_name starts with field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok()).context("missing CPU field in /proc/PID/stat");
    Ok(Usage { peak_rss_mb: hwm_kb / 1024.0, cpu_seconds: (ticks(14)? + ticks(15)?) / ticks_per_second })
}

/// `sysconf(_SC_CLK_TCK)` through getconf(1); 100 (the Linux USER_HZ) if unavailable.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status_and_stat() {
        let status = "Name:\tconnection-oper\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 40000 kB\n";
        let stat = "4242 (connection oper) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 100 0";
        let usage = parse_usage(status, stat, 100.0).unwrap();
        assert_eq!(usage, Usage { peak_rss_mb: 50.0, cpu_seconds: 3.0 });
        assert!(parse_usage("Name: x\n", stat, 100.0).is_err());
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let usage = parse_usage(&status, &stat, clock_ticks()).unwrap();
        assert!(usage.peak_rss_mb > 0.0);
        assert!(usage.cpu_seconds >= 0.0);
    }
}
