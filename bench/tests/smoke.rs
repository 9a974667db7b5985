//! The benchmark command works end to end at a small scale: the harness binary starts the
//! emulators, builds and runs the operator binary, and writes a report whose fields are all
//! present and consistent with each other. No timing is asserted (the numbers are the
//! benchmark's output, not a test's pass criterion); counts and structure are.

use std::process::Command;

use serde_json::Value;

const CONNECTIONS: u64 = 24;
const RATE_LIMITED_CONNECTIONS: u64 = 4;

#[test]
fn small_run_writes_a_complete_consistent_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--connections", &CONNECTIONS.to_string(), "--out"])
        .arg(&out)
        .args(["--drift-interval-override-seconds", "3", "--steady-intervals", "2"])
        .args(["--rate-limited-connections", &RATE_LIMITED_CONNECTIONS.to_string(), "--rate-limit", "8", "--rate-window-seconds", "60"])
        .args(["--timeout-seconds", "300"])
        .output()
        .expect("running the bench binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();

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
    assert!(report["kube_requests_per_connection"].as_f64().unwrap() > 0.0, "the operator's kube requests are attributed");

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

    let markdown = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(markdown.contains("| converge_seconds |"), "{markdown}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("| floor_seconds |"));
}
