//! The benchmark report (the fields bench/README.md lists), the floor it is judged against,
//! the targets, and the Markdown rendering. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

/// The fewest seconds `calls` upstream requests can take: each costs `latency` seconds and
/// at most `concurrency` are in flight; every Connection needs a read then a write in
/// sequence (`chain` calls); and with a limit of `limit` requests per `window` seconds
/// (fixed window starting at the first request), `calls` need `ceil(calls/limit)` windows,
/// the last of which starts `(windows - 1) * window` seconds after the first.
pub fn floor_seconds(calls: u64, chain: u64, latency: f64, concurrency: u64, limit: Option<(u64, f64)>) -> f64 {
    let pipelined = calls as f64 * latency / concurrency.max(1) as f64;
    let sequential = chain as f64 * latency;
    let paced = limit.map_or(0.0, |(limit, window)| rate_bound_seconds(calls, limit, window));
    pipelined.max(sequential).max(paced)
}

/// `(ceil(calls/limit) - 1) * window`: the start of the window in which the last call fits.
pub fn rate_bound_seconds(calls: u64, limit: u64, window: f64) -> f64 {
    if limit == 0 || calls == 0 {
        return 0.0;
    }
    (calls.div_ceil(limit) - 1) as f64 * window
}

/// The floor of a change wave, in ms: its upstream requests (`by_account`, one entry per
/// provider account: the requests reading or writing a changed connection) each take
/// `latency_ms`; at most `concurrency` reconciles run at once,
/// and at most `per_account` of them against one account; a changed Connection needs a read
/// then a write in sequence. So the wave cannot finish before
/// `max(total x latency / concurrency, max over accounts of requests x latency / per_account, 2 x latency)`.
pub fn wave_floor_ms(by_account: &[u64], latency_ms: f64, concurrency: u64, per_account: u64) -> f64 {
    let total: u64 = by_account.iter().sum();
    let pipelined = total as f64 * latency_ms / concurrency.max(1) as f64;
    let busiest = by_account.iter().map(|&n| n as f64 * latency_ms / per_account.max(1) as f64).fold(0.0, f64::max);
    pipelined.max(busiest).max(if total > 0 { 2.0 * latency_ms } else { 0.0 })
}

pub const FLOOR_FORMULA: &str = "max(calls * latency / concurrency, 2 * latency, (ceil(calls / limit) - 1) * window) \
with calls = 1 read + 1 write per Connection (every seeded connection differs from its spec)";

#[derive(Clone, Debug, Default, Serialize)]
pub struct Config {
    pub upstream_latency_ms: u64,
    pub operator_concurrency: u16,
    pub drift_interval_seconds: f64,
    pub steady_intervals: u32,
    pub change_fraction: f64,
    pub upstream_rate_limits: &'static str,
    pub profile: &'static str,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProviderCounts {
    pub connections: u64,
    pub reads: u64,
    pub writes: u64,
    pub http_429: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Steady {
    pub seconds: f64,
    pub intervals: f64,
    pub upstream_reads_per_connection_per_interval: f64,
    pub upstream_writes: u64,
    pub kube_writes: Option<u64>,
    pub kube_requests: Option<u64>,
    /// Per provider: reads per Connection per drift interval.
    pub reads_per_connection_per_interval_by_provider: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ChangeWave {
    pub changed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub writes_per_changed_connection: f64,
    pub upstream_reads: u64,
    pub converge_seconds: f64,
    /// Changed Connections for which no successful upstream write after the apply was seen.
    pub without_write: u64,
    /// The fewest milliseconds the wave's upstream requests can take ([`wave_floor_ms`]).
    pub floor_ms: f64,
}

/// Single changes trickled while the fleet is in steady state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SingleChange {
    pub changes: u64,
    pub per_second: f64,
    /// From the first apply sent to the last one answered.
    pub seconds: f64,
    /// Apply sent (the Connection's write in Kubernetes) to the arrival of the first
    /// successful upstream write naming its connection.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The upstream time a change needs before its write can arrive: one read (read, plan,
    /// write), which the sandbox answers after `latency_ms`.
    pub upstream_round_trip_ms: f64,
    /// The latencies minus `upstream_round_trip_ms`: what the operator and Kubernetes add.
    pub p50_over_upstream_ms: f64,
    pub p99_over_upstream_ms: f64,
    /// p99 of the apply's own round trip (part of the latencies above).
    pub apply_p99_ms: f64,
    /// Upstream reads naming the changed connection between its apply and its write, per change.
    pub reads_per_change: f64,
    pub without_write: u64,
}

impl SingleChange {
    pub fn from_latencies(
        changes: u64,
        per_second: f64,
        seconds: f64,
        latencies: &[f64],
        round_trip_ms: f64,
        apply_p99_ms: f64,
        reads: u64,
    ) -> SingleChange {
        let q = |v: &[f64], q: f64| crate::journal::quantile(v, q).unwrap_or(f64::NAN);
        let over: Vec<f64> = latencies.iter().map(|l| l - round_trip_ms).collect();
        SingleChange {
            changes,
            per_second,
            seconds,
            p50_ms: q(latencies, 0.5),
            p99_ms: q(latencies, 0.99),
            max_ms: q(latencies, 1.0),
            upstream_round_trip_ms: round_trip_ms,
            p50_over_upstream_ms: q(&over, 0.5),
            p99_over_upstream_ms: q(&over, 0.99),
            apply_p99_ms,
            reads_per_change: reads as f64 / latencies.len().max(1) as f64,
            without_write: changes - latencies.len() as u64,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RateLimited {
    pub provider: String,
    pub connections: u64,
    pub limit: u32,
    pub window_seconds: f64,
    pub upstream_requests: u64,
    pub ideal_seconds: f64,
    pub achieved_seconds: f64,
    pub http_429: u64,
    pub windows: f64,
    pub http_429_per_window: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub commit: String,
    pub dirty: bool,
    pub started_at: String,
    pub cpus: usize,
    /// `"real"` (kube-apiserver + etcd) or `"emulator"`.
    pub control_plane: &'static str,
    /// Operator processes sharing the fleet, one per shard (`--shards`).
    pub shards: u32,
    pub connections: u64,
    pub providers: BTreeMap<String, u64>,
    pub config: Config,
    pub converge_seconds: f64,
    pub floor_seconds: f64,
    pub floor_formula: &'static str,
    pub upstream_reads_per_connection: f64,
    pub upstream_writes_per_connection: f64,
    /// `None` when the Kubernetes emulator's journal cannot attribute requests.
    pub kube_requests_per_connection: Option<f64>,
    /// The initial wave's Kubernetes requests of the operator, by verb (kube-apiserver's
    /// names; the emulator's journal has no content type, so its applies count as PATCH).
    pub kube_requests_by_verb: BTreeMap<String, u64>,
    pub initial_by_provider: BTreeMap<String, ProviderCounts>,
    pub steady: Steady,
    pub single_change: SingleChange,
    pub change_wave: ChangeWave,
    pub rate_limited: Option<RateLimited>,
    /// The operator's own peak RSS and CPU time (also `processes.operator`; with several
    /// shards, the sums over `processes.operator-<i>`).
    pub peak_rss_mb: f64,
    pub cpu_seconds: f64,
    /// Every process of the main run, from the operator's start to the end of the change
    /// wave: `operator`, `provider_sandboxes`, `bench` (the harness), and `kube_emulator`
    /// or `kube_apiserver`, `etcd`, `kube_controller_manager`.
    pub processes: BTreeMap<String, crate::procs::ProcessUsage>,
    pub targets: Vec<Target>,
    /// `/proc/loadavg`'s 1-minute figure at the start and the end (Markdown only: whatever
    /// else ran on the machine shares its cores with the benchmark).
    #[serde(skip)]
    pub load_average: (f64, f64),
}

/// The 1-minute load average (`/proc/loadavg`), or NaN.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub name: &'static str,
    pub target: String,
    pub value: String,
    pub met: Option<bool>,
}

fn target(name: &'static str, target: String, value: f64, met: bool) -> Target {
    Target { name, target, value: format!("{value:.3}"), met: Some(met) }
}

impl Report {
    /// The scale targets (convergence, calls per Connection, steady state, latency, memory,
    /// and on the real control plane its own limits), judged on this report. A value the run
    /// could not measure is listed with `met: null`.
    pub fn judge(&mut self) {
        let real = self.control_plane == "real";
        let converge_limit = if real { 90.0 } else { 60.0 };
        let mut t = vec![
            target(
                "converge_vs_floor",
                format!("<= 2 x floor ({:.1} s)", 2.0 * self.floor_seconds),
                self.converge_seconds,
                self.converge_seconds <= 2.0 * self.floor_seconds,
            ),
            target(
                "converge_seconds",
                format!("<= {converge_limit} s"),
                self.converge_seconds,
                self.converge_seconds <= converge_limit,
            ),
            target(
                "upstream_writes_per_connection",
                "<= 1.05".into(),
                self.upstream_writes_per_connection,
                self.upstream_writes_per_connection <= 1.05,
            ),
            target(
                "upstream_reads_per_connection",
                "<= 1.05".into(),
                self.upstream_reads_per_connection,
                self.upstream_reads_per_connection <= 1.05,
            ),
        ];
        let kube_limit = if real { 2.2 } else { 3.0 };
        t.push(match self.kube_requests_per_connection {
            Some(v) => target("kube_requests_per_connection", format!("<= {kube_limit}"), v, v <= kube_limit),
            None => Target {
                name: "kube_requests_per_connection",
                target: format!("<= {kube_limit}"),
                value: "unmeasured".into(),
                met: None,
            },
        });
        let s = &self.steady;
        t.push(target("steady_upstream_writes", "0".into(), s.upstream_writes as f64, s.upstream_writes == 0));
        t.push(match s.kube_writes {
            Some(w) => target("steady_kube_writes", "0".into(), w as f64, w == 0),
            None => Target { name: "steady_kube_writes", target: "0".into(), value: "unmeasured".into(), met: None },
        });
        t.push(target(
            "steady_reads_per_connection_per_interval",
            "<= 1".into(),
            s.upstream_reads_per_connection_per_interval,
            s.upstream_reads_per_connection_per_interval <= 1.0,
        ));
        for provider in ["nango", "datagrid"] {
            if let Some(&v) = s.reads_per_connection_per_interval_by_provider.get(provider) {
                let name = if provider == "nango" {
                    "steady_nango_reads_per_connection_per_interval"
                } else {
                    "steady_datagrid_reads_per_connection_per_interval"
                };
                t.push(target(name, "<= 0.05 (list-based observation)".into(), v, v <= 0.05));
            }
        }
        if self.single_change.changes > 0 {
            let limit = if real { 250.0 } else { 100.0 };
            let v = self.single_change.p99_over_upstream_ms;
            t.push(target("single_change_p99_over_upstream_ms", format!("<= {limit}"), v, v <= limit));
        }
        let c = &self.change_wave;
        t.push(target(
            "change_wave_p99_vs_floor",
            format!("<= 2 x floor ({:.0} ms)", 2.0 * c.floor_ms),
            c.p99_ms,
            c.p99_ms <= 2.0 * c.floor_ms,
        ));
        if let Some(r) = &self.rate_limited {
            t.push(target(
                "rate_limited_achieved_vs_ideal",
                format!("<= 1.1 x ideal ({:.1} s)", 1.1 * r.ideal_seconds),
                r.achieved_seconds,
                r.achieved_seconds <= 1.1 * r.ideal_seconds,
            ));
            t.push(target(
                "rate_limited_429_per_window",
                "<= 1".into(),
                r.http_429_per_window,
                r.http_429_per_window <= 1.0,
            ));
        }
        let (rss_limit, at) = if self.connections > 10_000 { (600.0, "100,000") } else { (150.0, "10,000") };
        t.push(target(
            "peak_rss_mb",
            format!("<= {rss_limit} (at {at})"),
            self.peak_rss_mb,
            self.peak_rss_mb <= rss_limit,
        ));
        self.targets = t;
    }

    /// The report as a Markdown table (metric | value), then the targets.
    pub fn markdown(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("commit".into(), format!("{}{}", self.commit, if self.dirty { " (dirty)" } else { "" })),
            ("started_at".into(), self.started_at.clone()),
            ("cpus".into(), self.cpus.to_string()),
            (
                "load average, 1 min (start / end)".into(),
                format!("{:.2} / {:.2}", self.load_average.0, self.load_average.1),
            ),
            ("control_plane / shards".into(), format!("{} / {}", self.control_plane, self.shards)),
            ("connections".into(), self.connections.to_string()),
            (
                "providers".into(),
                self.providers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "),
            ),
            (
                "upstream latency / concurrency".into(),
                format!("{} ms / {}", self.config.upstream_latency_ms, self.config.operator_concurrency),
            ),
            ("converge_seconds".into(), format!("{:.2}", self.converge_seconds)),
            ("floor_seconds".into(), format!("{:.2}", self.floor_seconds)),
            ("upstream_reads_per_connection".into(), format!("{:.3}", self.upstream_reads_per_connection)),
            ("upstream_writes_per_connection".into(), format!("{:.3}", self.upstream_writes_per_connection)),
            (
                "kube_requests_per_connection".into(),
                self.kube_requests_per_connection.map_or("unmeasured".into(), |v| format!("{v:.3}")),
            ),
            (
                "kube_requests_by_verb".into(),
                self.kube_requests_by_verb.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "),
            ),
            ("steady.seconds / intervals".into(), format!("{:.1} / {:.2}", self.steady.seconds, self.steady.intervals)),
            (
                "steady.upstream_reads_per_connection_per_interval".into(),
                format!("{:.3}", self.steady.upstream_reads_per_connection_per_interval),
            ),
            ("steady.upstream_writes".into(), self.steady.upstream_writes.to_string()),
            ("steady.kube_writes".into(), self.steady.kube_writes.map_or("unmeasured".into(), |v| v.to_string())),
        ];
        for (provider, v) in &self.steady.reads_per_connection_per_interval_by_provider {
            rows.push((format!("steady.{provider}.reads_per_connection_per_interval"), format!("{v:.3}")));
        }
        let sc = &self.single_change;
        rows.extend([
            (
                "single_change.changes (per second, seconds)".into(),
                format!("{} ({} /s, {:.1} s)", sc.changes, sc.per_second, sc.seconds),
            ),
            (
                "single_change.p50_ms / p99_ms / max_ms".into(),
                format!("{:.0} / {:.0} / {:.0}", sc.p50_ms, sc.p99_ms, sc.max_ms),
            ),
            ("single_change.upstream_round_trip_ms".into(), format!("{:.0}", sc.upstream_round_trip_ms)),
            (
                "single_change.p50 / p99_over_upstream_ms".into(),
                format!("{:.0} / {:.0}", sc.p50_over_upstream_ms, sc.p99_over_upstream_ms),
            ),
            (
                "single_change.apply_p99_ms / reads_per_change".into(),
                format!("{:.0} / {:.2}", sc.apply_p99_ms, sc.reads_per_change),
            ),
        ]);
        let c = &self.change_wave;
        rows.extend([
            ("change_wave.changed".into(), c.changed.to_string()),
            (
                "change_wave.p50_ms / p99_ms / max_ms".into(),
                format!("{:.0} / {:.0} / {:.0}", c.p50_ms, c.p99_ms, c.max_ms),
            ),
            ("change_wave.floor_ms".into(), format!("{:.0}", c.floor_ms)),
            ("change_wave.converge_seconds".into(), format!("{:.2}", c.converge_seconds)),
            (
                "change_wave.writes_per_changed_connection / upstream_reads".into(),
                format!("{:.3} / {}", c.writes_per_changed_connection, c.upstream_reads),
            ),
        ]);
        if let Some(r) = &self.rate_limited {
            rows.extend([
                (
                    "rate_limited.setup".into(),
                    format!(
                        "{}: {} Connections, {} requests / {} s",
                        r.provider, r.connections, r.limit, r.window_seconds
                    ),
                ),
                (
                    "rate_limited.ideal_seconds / achieved_seconds".into(),
                    format!("{:.2} / {:.2}", r.ideal_seconds, r.achieved_seconds),
                ),
                ("rate_limited.http_429 (per window)".into(), format!("{} ({:.2})", r.http_429, r.http_429_per_window)),
            ]);
        }
        rows.extend([
            ("peak_rss_mb".into(), format!("{:.1}", self.peak_rss_mb)),
            ("cpu_seconds".into(), format!("{:.2}", self.cpu_seconds)),
        ]);
        for (name, p) in &self.processes {
            let peak = if p.peak_reset || name.starts_with("operator") { "" } else { " (since process start)" };
            rows.push((
                format!("processes.{name} cpu_seconds / peak_rss_mb"),
                format!("{:.2} / {:.1}{peak}", p.cpu_seconds, p.peak_rss_mb),
            ));
        }
        let mut out = String::from("| metric | value |\n|---|---|\n");
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {v} |\n"));
        }
        out.push_str("\n| target | goal | value | met |\n|---|---|---|---|\n");
        for t in &self.targets {
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "n/a",
            };
            out.push_str(&format!("| {} | {} | {} | {met} |\n", t.name, t.target, t.value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_the_tightest_bound() {
        // 10,000 Connections x 2 calls at 20 ms over 16 in flight: 25 s.
        assert!((floor_seconds(20_000, 2, 0.020, 16, None) - 25.0).abs() < 1e-9);
        // Two calls alone still take two round trips.
        assert!((floor_seconds(2, 2, 0.020, 16, None) - 0.040).abs() < 1e-9);
        // 200 calls at 50 per 5 s: windows start at 0, 5, 10, 15.
        assert_eq!(floor_seconds(200, 2, 0.020, 16, Some((50, 5.0))), 15.0);
    }

    #[test]
    fn rate_bound_counts_whole_windows() {
        assert_eq!(rate_bound_seconds(50, 50, 5.0), 0.0);
        assert_eq!(rate_bound_seconds(51, 50, 5.0), 5.0);
        assert_eq!(rate_bound_seconds(0, 50, 5.0), 0.0);
        assert_eq!(rate_bound_seconds(10, 0, 5.0), 0.0);
    }

    #[test]
    fn judging_marks_missed_and_unmeasured_targets() {
        let mut r = Report {
            converge_seconds: 70.0,
            floor_seconds: 25.0,
            upstream_reads_per_connection: 1.0,
            upstream_writes_per_connection: 1.0,
            ..Report::default()
        };
        r.steady.reads_per_connection_per_interval_by_provider.insert("nango".into(), 1.0);
        r.control_plane = "emulator";
        r.change_wave.floor_ms = 2500.0;
        r.change_wave.p99_ms = 5001.0;
        r.judge();
        let met = |name: &str| r.targets.iter().find(|t| t.name == name).unwrap().met;
        assert_eq!(met("change_wave_p99_vs_floor"), Some(false));
        assert!(
            r.targets.iter().all(|t| t.name != "single_change_p99_over_upstream_ms"),
            "no single changes, no target"
        );
        assert_eq!(met("converge_vs_floor"), Some(false));
        assert_eq!(met("converge_seconds"), Some(false));
        assert_eq!(met("upstream_writes_per_connection"), Some(true));
        assert_eq!(met("kube_requests_per_connection"), None);
        assert_eq!(met("steady_nango_reads_per_connection_per_interval"), Some(false));
        let md = r.markdown();
        assert!(md.contains("| converge_seconds | 70.00 |"));
        assert!(md.contains("| converge_seconds | <= 60 s | 70.000 | NO |"));

        // On the real control plane the converge and Kubernetes bounds are the real plane's own.
        r.control_plane = "real";
        r.kube_requests_per_connection = Some(2.5);
        r.single_change = SingleChange::from_latencies(2, 2.0, 1.0, &[300.0, 120.0], 20.0, 5.0, 2);
        r.judge();
        let target = |name: &str| r.targets.iter().find(|t| t.name == name).unwrap().clone();
        assert_eq!(target("converge_seconds").met, Some(true), "70 s <= 90 s");
        assert_eq!(target("kube_requests_per_connection").target, "<= 2.2");
        assert_eq!(target("kube_requests_per_connection").met, Some(false));
        assert_eq!(target("single_change_p99_over_upstream_ms").met, Some(false), "280 ms > 250 ms");
        assert_eq!(target("single_change_p99_over_upstream_ms").value, "280.000");
    }

    #[test]
    fn single_change_subtracts_the_upstream_round_trip() {
        let latencies: Vec<f64> = (1..=100).map(|i| 20.0 + f64::from(i)).collect();
        let s = SingleChange::from_latencies(101, 2.0, 50.0, &latencies, 20.0, 7.0, 100);
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms), (70.0, 119.0, 120.0));
        assert_eq!((s.p50_over_upstream_ms, s.p99_over_upstream_ms), (50.0, 99.0));
        assert_eq!(s.without_write, 1);
        assert_eq!(s.reads_per_change, 1.0);
    }

    #[test]
    fn wave_floor_is_bound_by_the_busiest_account_or_the_workers() {
        // 1,000 changes over four accounts, a read and a write each, 20 ms, 16 workers with
        // at most 8 per account: the workers bound it (2,000 x 20 / 16 = 2.5 s).
        assert_eq!(wave_floor_ms(&[500, 500, 500, 500], 20.0, 16, 8), 2500.0);
        // All on one account: 8 at a time (5 s).
        assert_eq!(wave_floor_ms(&[2000], 20.0, 16, 8), 5000.0);
        // A single change still needs its read and its write.
        assert_eq!(wave_floor_ms(&[2], 20.0, 16, 8), 40.0);
        assert_eq!(wave_floor_ms(&[], 20.0, 16, 8), 0.0);
    }
}
