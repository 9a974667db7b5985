//! The operator binary run as its own process, as the chart's pod runs it: the container
//! args of the rendered Deployment and `KUBECONFIG` holding the chart ServiceAccount's token
//! (what the in-cluster config would read from the mounted token), with its JSON log lines
//! collected and its metrics endpoint on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub struct OperatorProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl OperatorProcess {
    /// Start `connection-operator` with the Deployment's `args` (its `--metrics-addr`
    /// replaced by a free loopback port; the chart's is `0.0.0.0:8080`).
    pub fn start(kubeconfig: &Path, deployment_args: &[String]) -> Self {
        let args: Vec<String> = deployment_args
            .iter()
            .map(
                |a| if a.starts_with("--metrics-addr=") { "--metrics-addr=127.0.0.1:0".to_string() } else { a.clone() },
            )
            .collect();
        assert!(args.iter().any(|a| a == "--log-format=json"), "the chart logs JSON by default: {args:?}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_connection-operator"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start connection-operator");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        OperatorProcess { child, lines }
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The log lines that are JSON objects (all of them with `--log-format=json`).
    pub fn records(&self) -> Vec<Value> {
        self.log().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// `http://ADDR` of /metrics, /healthz, /readyz, once the operator logged where it serves.
    pub fn admin_url(&self) -> Option<String> {
        self.records()
            .iter()
            .find(|r| r["message"] == "serving /metrics, /healthz, /readyz")
            .and_then(|r| r["addr"].as_str().map(|a| format!("http://{a}")))
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a counter line `name{labels} value` in Prometheus text, 0 when absent.
pub fn counter(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok())).unwrap_or(0.0)
}
