//! What `tests/leader_election.rs` and `tests/sharding.rs` share: the operator binary run as
//! a replica would run it (`connection-operator run --namespace NS ...`, its own `POD_NAME`
//! as the Lease holder identity and the Events' reporting instance, no `POD_NAMESPACE`, so
//! the Leases live in `--namespace`), its log and its `/metrics`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use connection_testkit::operator_log::metrics_addr;
use connection_testkit::wait::eventually;
use tokio::process::{Child, Command};

/// One replica: the operator binary as a child process, logging to a file. Killed when
/// dropped.
pub struct Replica {
    pub name: String,
    pub child: Child,
    log: PathBuf,
}

impl Replica {
    /// `connection-operator run --namespace NAMESPACE --concurrency 4 EXTRA...`.
    pub fn start(kubeconfig: &Path, namespace: &str, dir: &Path, name: &str, extra: &[&str]) -> Replica {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create the replica log");
        let err = file.try_clone().expect("clone the log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_connection-operator"))
            .args(["run", "--metrics-addr", "127.0.0.1:0", "--log-format", "text"])
            .args(["--namespace", namespace, "--concurrency", "4"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            // What the Deployment passes through the downward API; the Lease's namespace
            // comes from --namespace here.
            .env("POD_NAME", name)
            .env_remove("POD_NAMESPACE")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn connection-operator");
        Replica { name: name.to_string(), child, log }
    }

    /// The log so far (plain text: `NO_COLOR` keeps ANSI styling out of it).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("replica {} exited: {status}\n{}", self.name, self.log_text());
        }
    }

    /// The address of /metrics, from the startup log line (the port is chosen by the OS).
    pub async fn metrics_addr(&mut self) -> String {
        let what = format!("{} to serve /metrics", self.name);
        eventually(&what, || {
            self.assert_alive();
            std::future::ready(metrics_addr(&self.log_text()))
        })
        .await
    }
}

/// The `connection_operator_upstream_requests_total` samples on a replica's /metrics.
pub async fn upstream_samples(addr: &str) -> Vec<String> {
    let text =
        reqwest::get(format!("http://{addr}/metrics")).await.expect("GET /metrics").text().await.expect("metrics body");
    text.lines().filter(|l| l.starts_with("connection_operator_upstream_requests_total{")).map(str::to_string).collect()
}

/// Sum of `connection_operator_upstream_requests_total` samples on a replica's /metrics.
pub async fn upstream_requests(addr: &str) -> u64 {
    upstream_samples(addr)
        .await
        .iter()
        .map(|l| {
            l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| panic!("bad sample: {l}")) as u64
        })
        .sum()
}
