//! The benchmark command works end to end at a small scale, on the emulator and on the real
//! control plane: the harness binary starts the sandboxes, builds and runs the operator
//! binary, and writes a report whose fields are all present and consistent with each other.
//! No timing is asserted (the numbers are the benchmark's output, not a test's pass
//! criterion); counts, structure and causality are.

use std::process::{Command, Output};

use serde_json::Value;

const CONNECTIONS: u64 = 24;
const RATE_LIMITED_CONNECTIONS: u64 = 4;
/// Single changes: 2 per second for 3 s.
const SINGLE_CHANGES: u64 = 6;

/// A short steady state (one drift interval of 2 s) and no rate-limited run.
const QUICK: [&str; 6] =
    ["--drift-interval-override-seconds", "2", "--steady-intervals", "1", "--rate-limited-provider", "none"];

/// Run the bench binary with `args` (plus `--out`); its report and its output.
fn bench(args: &[&str]) -> (Value, Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        .arg("--out")
        .arg(&out)
        .args(["--trickle-per-second", "2", "--trickle-seconds", "3", "--timeout-seconds", "300"])
        .output()
        .expect("running the bench binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let markdown = std::fs::read_to_string(out.with_extension("md")).unwrap();
    (report, output, markdown)
}

/// The fields of the real-control-plane runs, on either control plane.
fn check_real_plane_fields(report: &Value, control_plane: &str, processes: &[&str]) {
    assert_eq!(report["control_plane"], control_plane);
    assert_eq!(report["shards"], 1);
    let latency = report["config"]["upstream_latency_ms"].as_f64().unwrap();

    let single = &report["single_change"];
    assert_eq!(single["changes"], SINGLE_CHANGES, "{single}");
    assert_eq!(single["without_write"], 0, "every single change was written upstream: {single}");
    assert_eq!(single["upstream_round_trip_ms"].as_f64().unwrap(), latency);
    // A change's upstream write can only arrive after the read it needs was answered.
    let (p99, over) = (single["p99_ms"].as_f64().unwrap(), single["p99_over_upstream_ms"].as_f64().unwrap());
    assert!(p99 >= latency, "{single}");
    assert!((p99 - latency - over).abs() < 1e-6, "{single}");
    assert!(single["reads_per_change"].as_f64().unwrap() >= 1.0, "each change read its connection first: {single}");

    let wave = &report["change_wave"];
    let floor = wave["floor_ms"].as_f64().unwrap();
    assert!(floor >= 2.0 * latency, "a read then a write: {wave}");
    assert!(wave["p50_ms"].as_f64().unwrap() >= latency, "{wave}");

    let all = report["processes"].as_object().unwrap();
    for name in processes {
        let p = &all.get(*name).unwrap_or_else(|| panic!("no processes.{name}: {all:?}"));
        assert!(p["cpu_seconds"].as_f64().unwrap() >= 0.0 && p["peak_rss_mb"].as_f64().unwrap() > 0.0, "{name}: {p}");
    }
    assert_eq!(all["operator"]["cpu_seconds"], report["cpu_seconds"], "the top-level figures are the operator's");
    assert_eq!(all["operator"]["peak_rss_mb"], report["peak_rss_mb"]);
    assert!(all["operator"]["cpu_seconds"].as_f64().unwrap() > 0.0);

    let by_verb = report["kube_requests_by_verb"].as_object().unwrap();
    let requests = report["kube_requests_per_connection"].as_f64().unwrap() * report["connections"].as_f64().unwrap();
    let summed: u64 = by_verb.values().map(|v| v.as_u64().unwrap()).sum();
    assert!(summed > 0 && (summed as f64 - requests).abs() < 1e-6, "{by_verb:?} vs {requests}");
}

#[test]
fn small_run_writes_a_complete_consistent_report() {
    let (report, output, markdown) = bench(&[
        "--connections",
        &CONNECTIONS.to_string(),
        "--drift-interval-override-seconds",
        "3",
        "--steady-intervals",
        "2",
        "--rate-limited-connections",
        &RATE_LIMITED_CONNECTIONS.to_string(),
        "--rate-limit",
        "8",
        "--rate-window-seconds",
        "10",
    ]);
    check_real_plane_fields(&report, "emulator", &["operator", "provider_sandboxes", "bench", "kube_emulator"]);

    assert_eq!(report["connections"], CONNECTIONS);
    let providers = report["providers"].as_object().unwrap();
    assert_eq!(providers.len(), 4, "spread over all four providers: {providers:?}");
    assert_eq!(providers.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), CONNECTIONS);

    // Every Connection needed one write (seeds differ from specs) and was read first.
    let writes = report["upstream_writes_per_connection"].as_f64().unwrap();
    let reads = report["upstream_reads_per_connection"].as_f64().unwrap();
    assert!(writes > 0.0 && reads > 0.0, "writes {writes}, reads {reads}");
    let by_provider = report["initial_by_provider"].as_object().unwrap();
    let summed: u64 = by_provider.values().map(|p| p["writes"].as_u64().unwrap()).sum();
    assert!(((summed as f64 / CONNECTIONS as f64) - writes).abs() < 1e-9);
    for (name, p) in by_provider {
        assert_eq!(p["connections"], providers[name], "{name}");
    }
    assert!(
        report["kube_requests_per_connection"].as_f64().unwrap() > 0.0,
        "the operator's kube requests are attributed"
    );

    let converge = report["converge_seconds"].as_f64().unwrap();
    let floor = report["floor_seconds"].as_f64().unwrap();
    assert!(converge > 0.0 && floor > 0.0);
    assert!(converge >= floor, "nothing beats the floor: converge {converge}, floor {floor}");

    let steady = &report["steady"];
    assert!(steady["intervals"].as_f64().unwrap() >= 1.9, "{steady}");
    assert!(steady["upstream_reads_per_connection_per_interval"].is_number());
    assert!(steady["upstream_writes"].is_u64());
    assert!(steady["kube_writes"].is_u64());

    let wave = &report["change_wave"];
    assert_eq!(wave["changed"], CONNECTIONS.div_ceil(10), "every tenth Connection changes");
    assert_eq!(wave["without_write"], 0, "every changed Connection was written upstream: {wave}");
    let (p50, p99) = (wave["p50_ms"].as_f64().unwrap(), wave["p99_ms"].as_f64().unwrap());
    assert!(0.0 < p50 && p50 <= p99, "{wave}");
    assert!(wave["writes_per_changed_connection"].as_f64().unwrap() > 0.0);

    let limited = &report["rate_limited"];
    assert_eq!(limited["connections"], RATE_LIMITED_CONNECTIONS);
    assert_eq!(limited["limit"], 8);
    assert!(limited["upstream_requests"].as_u64().unwrap() >= 2 * RATE_LIMITED_CONNECTIONS);
    // 8 calls fit the first window of 8: the ideal is one read then one write, 2 x 20 ms.
    let ideal = limited["ideal_seconds"].as_f64().unwrap();
    assert!((ideal - 0.040).abs() < 1e-9, "{limited}");
    assert!(limited["achieved_seconds"].as_f64().unwrap() >= ideal, "{limited}");
    assert!(limited["http_429"].is_u64());

    assert!(report["peak_rss_mb"].as_f64().unwrap() > 0.0);
    assert!(report["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["targets"].as_array().unwrap().len() >= 10);
    assert_eq!(report["commit"].as_str().unwrap().len(), 40);

    // The operator logs at its default level: at least its start and its cache sync, so a
    // run that goes wrong leaves something to read.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = stderr.lines().find_map(|l| l.split("; operator log ").nth(1)).expect("the bench names the operator log");
    let log = std::fs::read_to_string(log.trim()).unwrap();
    assert!(log.contains("caches synced"), "the operator's log: {log:?}");

    assert!(markdown.contains("| converge_seconds |"), "{markdown}");
    assert!(markdown.contains("| single_change.p50 / p99_over_upstream_ms |"), "{markdown}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("| floor_seconds |"));
}

/// `--control-plane real` on the run's control plane (`CONNECTION_OPERATOR_CONTROL_PLANE`,
/// or one of its own): Kubernetes requests come from kube-apiserver's metrics, and the
/// control plane's processes are measured.
#[test]
fn tiny_run_on_the_real_control_plane() {
    let (report, _, markdown) = bench(&[&["--control-plane", "real", "--connections", "8"][..], &QUICK].concat());
    assert_eq!(report["connections"], 8);
    assert!(report["rate_limited"].is_null());
    assert!(
        report["kube_requests_by_verb"].as_object().unwrap().contains_key("APPLY"),
        "status is applied: {}",
        report["kube_requests_by_verb"]
    );
    check_real_plane_fields(&report, "real", &["operator", "provider_sandboxes", "bench", "kube_apiserver", "etcd"]);
    assert!(markdown.contains("| control_plane / shards | real / 1 |"), "{markdown}");
}

/// `--shards 2` on the emulator: two operator processes, each provider account pinned to a
/// shard, every Connection converged and every change written, each process measured.
#[test]
fn two_shards_share_a_small_run() {
    let connections = CONNECTIONS.to_string();
    let (report, _, markdown) = bench(&[&["--shards", "2", "--connections", &connections][..], &QUICK].concat());
    assert_eq!(report["shards"], 2);
    assert_eq!(report["connections"], CONNECTIONS);
    assert_eq!(report["change_wave"]["without_write"], 0, "{}", report["change_wave"]);
    assert_eq!(report["single_change"]["without_write"], 0, "{}", report["single_change"]);
    let all = report["processes"].as_object().unwrap();
    assert!(!all.contains_key("operator"), "{all:?}");
    let shards: Vec<&Value> = ["operator-0", "operator-1"].iter().map(|n| &all[*n]).collect();
    for p in &shards {
        assert!(p["cpu_seconds"].as_f64().unwrap() > 0.0 && p["peak_rss_mb"].as_f64().unwrap() > 0.0, "measured: {p}");
    }
    let cpu: f64 = shards.iter().map(|p| p["cpu_seconds"].as_f64().unwrap()).sum();
    assert!((report["cpu_seconds"].as_f64().unwrap() - cpu).abs() < 1e-9, "the top-level CPU is the sum");
    assert!(markdown.contains("| control_plane / shards | emulator / 2 |"), "{markdown}");
}
