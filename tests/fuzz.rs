//! The fuzz targets of fuzz/ (docs/fuzzing.md), each run for a fixed number of inputs
//! (`-runs`, a count, not a time) with a fixed seed, starting from its committed corpus.
//!
//! Built and run by the pinned cargo-fuzz that scripts/bootstrap installs, with
//! `--sanitizer none`, which needs no nightly toolchain: the targets are safe Rust, so
//! AddressSanitizer would add cost and find nothing the assertions and overflow checks
//! (debug assertions are on) do not. The coverage instrumentation is the same as under
//! nightly, so the fuzzer mutates guided by coverage, not blindly.
//!
//! New inputs go to a scratch directory, so the committed corpus never changes here; a
//! crash fails the test with the target's panic and the path of the crashing input (and its
//! bytes, hex), to be minimised (`cargo fuzz tmin`) into a regression test.
//!
//! The instrumented build goes to `fuzz/` beside the tests' own target directory (so under
//! `CARGO_TARGET_DIR` when it is set): it survives between runs and only the first one pays
//! for it. `CONNECTION_OPERATOR_FUZZ_RUNS` raises the count for a longer local run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Inputs run per target: a count, so that a run does the same work on any machine, small
/// enough that the tier stays within a few minutes on two cores (docs/fuzzing.md).
const RUNS: u64 = 200_000;
/// The libFuzzer seed of every run, so that a failure repeats.
const SEED: u64 = 1;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo-fuzz of scripts/bootstrap (.tools/bin, or the tools directory scripts/test
/// names).
fn cargo_fuzz() -> PathBuf {
    let tools = std::env::var_os("CONNECTION_OPERATOR_TOOLS").map_or_else(|| root().join(".tools"), PathBuf::from);
    let bin = tools.join("bin/cargo-fuzz");
    assert!(bin.exists(), "{} is missing: run scripts/bootstrap, which installs the pinned cargo-fuzz", bin.display());
    bin
}

fn runs() -> u64 {
    std::env::var("CONNECTION_OPERATOR_FUZZ_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(RUNS)
}

/// `fuzz/` beside the target directory's scratch `tmp/`: stable across runs.
fn build_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("fuzz")
}

fn fuzz(target: &str) {
    let runs = runs();
    let corpus = root().join("fuzz/corpus").join(target);
    let seeds = std::fs::read_dir(&corpus).map(Iterator::count).unwrap_or(0);
    assert!(seeds > 0, "no committed corpus in {}", corpus.display());
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-runs").join(target);
    let _ = std::fs::remove_dir_all(&scratch);
    let (new_inputs, artifacts) = (scratch.join("corpus"), scratch.join("artifacts"));
    std::fs::create_dir_all(&new_inputs).unwrap();
    std::fs::create_dir_all(&artifacts).unwrap();

    let output = Command::new(cargo_fuzz())
        .current_dir(root())
        .args(["fuzz", "run", "--sanitizer", "none", "--target-dir"])
        .arg(build_dir())
        .arg(target)
        .arg(&new_inputs)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-runs={runs}"))
        .arg(format!("-seed={SEED}"))
        .arg("-max_len=4096")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        // A build or run that inherited the suite's `cargo +toolchain` would not matter,
        // but a stray RUSTFLAGS would change what is built.
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo-fuzz runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect();
    let crashes: Vec<String> = std::fs::read_dir(&artifacts)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            let hex: String = bytes.iter().take(512).map(|b| format!("{b:02x}")).collect();
            format!("{} ({} bytes): {hex}", e.path().display(), bytes.len())
        })
        .collect();
    assert!(
        output.status.success() && crashes.is_empty(),
        "fuzz target {target} failed ({}); crashing inputs: {crashes:#?}\n{}",
        output.status,
        tail.join("\n")
    );
    // The run did what it was asked: every input run, none skipped.
    let executed = stderr
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{target}: no final stats\n{}", tail.join("\n")));
    assert!(executed >= runs, "{target}: {executed} inputs run of {runs}");
}

#[test]
fn response() {
    fuzz("response");
}

#[test]
fn rate_limits() {
    fuzz("rate_limits");
}

#[test]
fn connection() {
    fuzz("connection");
}

#[test]
fn nango_list() {
    fuzz("nango_list");
}

#[test]
fn datagrid_list() {
    fuzz("datagrid_list");
}

#[test]
fn plan() {
    fuzz("plan");
}
