//! What one benchmark run is asked to do (the command line, resolved): the fleet's size and
//! providers, the operator's flags, the phases' lengths. Both the scenario and the operator
//! process read it, so it sits below both.

use std::{path::PathBuf, time::Duration};

use crate::fleet::Kind;

#[derive(Clone, Debug)]
pub struct Settings {
    pub connections: usize,
    pub kinds: Vec<Kind>,
    pub latency_ms: u64,
    pub concurrency: u16,
    pub drift_interval_seconds: u64,
    /// The operator's hidden `--drift-interval-override-seconds`, to shorten the steady
    /// state below the CRD's 30 s minimum.
    pub drift_override_seconds: Option<f64>,
    pub steady_intervals: u32,
    /// Single changes per second, and for how long, while the fleet is in steady state.
    pub trickle_per_second: f64,
    pub trickle_seconds: f64,
    pub change_fraction: f64,
    pub timeout: Duration,
    pub operator_log: PathBuf,
    /// Namespaces of this invocation start with it (`<prefix>` for the main run,
    /// `<prefix>-limited` for the rate-limited one): fresh names, so a control plane given
    /// by the user can hold earlier runs.
    pub namespace_prefix: String,
    /// Operator processes, one per shard (`--shards`).
    pub shards: u32,
}

impl Settings {
    /// The drift interval the operator actually uses.
    pub fn effective_drift_seconds(&self) -> f64 {
        self.drift_override_seconds.unwrap_or(self.drift_interval_seconds as f64)
    }

    /// Reconciles one provider account may run at once: the operator gives one account at
    /// most half of its workers (`AccountHandle::slot` in src/providers/accounts.rs).
    pub fn per_account_concurrency(&self) -> u64 {
        u64::from(self.concurrency / 2).max(1)
    }

    pub fn log(&self, what: &str) -> PathBuf {
        self.operator_log.with_extension(format!("{what}.log"))
    }
}
