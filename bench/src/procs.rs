//! CPU time and peak resident memory of the processes a run involves, from `/proc` (proc(5):
//! `VmHWM` in `status`, `utime` + `stime` in `stat`), and the child processes the harness
//! starts (the provider sandboxes and the Kubernetes emulator, each `connection-sandbox`).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::Context;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub peak_rss_mb: f64,
    pub cpu_seconds: f64,
}

/// One process's share of a run, as reported under `processes.<name>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProcessUsage {
    /// CPU time (user + system) spent during the measured span.
    pub cpu_seconds: f64,
    /// Peak resident set size during the span (since the process started when its peak could
    /// not be reset at the span's start: `peak_reset` false).
    pub peak_rss_mb: f64,
    /// Whether the peak was reset at the span's start (`/proc/PID/clear_refs`, value 5).
    pub peak_reset: bool,
}

/// The usage of `pid` so far.
pub fn usage(pid: u32) -> anyhow::Result<Usage> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("/proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("/proc/{pid}/stat"))?;
    parse_usage(&status, &stat, clock_ticks())
}

/// From `/proc/PID/status` (`VmHWM: N kB`) and `/proc/PID/stat` (fields 14 and 15, counted
/// after the parenthesised command name, which may itself contain spaces).
pub fn parse_usage(status: &str, stat: &str, ticks_per_second: f64) -> anyhow::Result<Usage> {
    let hwm_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmHWM in /proc/PID/status")?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed /proc/PID/stat")?;
    // after_name starts with field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks =
        |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok()).context("missing CPU field in /proc/PID/stat");
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

/// Named processes measured over one span: CPU time as the difference between the span's
/// end and its start, peak RSS as `VmHWM` at the end after resetting it at the start.
pub struct Span {
    start: BTreeMap<String, (u32, f64, bool)>,
}

impl Span {
    /// Start measuring `processes` (name, pid). A process whose `/proc` cannot be read is
    /// left out (and so absent from the report, not reported as zero).
    pub fn start(processes: &[(String, u32)]) -> Span {
        let mut start = BTreeMap::new();
        for (name, pid) in processes {
            let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
            if let Ok(u) = usage(*pid) {
                start.insert(name.clone(), (*pid, u.cpu_seconds, reset));
            }
        }
        Span { start }
    }

    /// The usage of every process since [`Span::start`].
    pub fn finish(&self) -> BTreeMap<String, ProcessUsage> {
        self.start
            .iter()
            .filter_map(|(name, &(pid, cpu0, reset))| {
                let u = usage(pid).ok()?;
                Some((
                    name.clone(),
                    ProcessUsage { cpu_seconds: u.cpu_seconds - cpu0, peak_rss_mb: u.peak_rss_mb, peak_reset: reset },
                ))
            })
            .collect()
    }
}

/// A `connection-sandbox` subcommand as a child process (killed when dropped), with the
/// address it printed (`listening on http://ADDR`).
pub struct Sandbox {
    child: Child,
    pub url: String,
}

impl Sandbox {
    pub fn start(binary: &Path, args: &[&str], log: &Path) -> anyhow::Result<Sandbox> {
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} {}", binary.display(), args.join(" ")))?;
        let stdout = child.stdout.take().context("the sandbox's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let status = child.wait()?;
            anyhow::bail!(
                "{} {} printed {line:?} and exited ({status}); see {}",
                binary.display(),
                args.join(" "),
                log.display()
            );
        };
        Ok(Sandbox { url: url.to_owned(), child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    fn measures_this_process_over_a_span() {
        let me = std::process::id();
        assert!(usage(me).unwrap().peak_rss_mb > 0.0);
        let span = Span::start(&[("me".into(), me), ("gone".into(), u32::MAX)]);
        // Burn a little CPU so the span has something to measure.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let measured = span.finish();
        assert!(!measured.contains_key("gone"), "a process without /proc is left out");
        let me = measured["me"];
        assert!(me.cpu_seconds >= 0.0 && me.peak_rss_mb > 0.0, "{me:?}");
    }
}
