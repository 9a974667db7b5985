//! Prometheus metrics (docs/controller.md, "Metrics"), served by `admin` at `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    provider: String,
    method: String,
    code: String,
}

/// The operator's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    upstream_requests: Family<RequestLabels, Counter>,
    upstream_duration: Family<ProviderLabels, Histogram>,
    rate_limited: Family<ProviderLabels, Counter>,
    drift_corrections: Family<ProviderLabels, Counter>,
    provider_accounts: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms .. ~80 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("connection_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let reconcile_duration = duration_histogram();
        let upstream_requests = Family::<RequestLabels, Counter>::default();
        let upstream_duration =
            Family::<ProviderLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> Histogram);
        let rate_limited = Family::<ProviderLabels, Counter>::default();
        let drift_corrections = Family::<ProviderLabels, Counter>::default();
        let provider_accounts = Gauge::default();
        registry.register("reconcile", "Reconciles of Connections by result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Duration of one reconcile", reconcile_duration.clone());
        registry.register("upstream_requests", "Requests sent to providers", upstream_requests.clone());
        registry.register(
            "upstream_request_duration_seconds",
            "Duration of one provider request",
            upstream_duration.clone(),
        );
        registry.register(
            "rate_limited",
            "Reconciles that found the provider account rate limited",
            rate_limited.clone(),
        );
        registry.register(
            "drift_corrections",
            "Writes that brought upstream back in line with the spec",
            drift_corrections.clone(),
        );
        registry.register(
            "provider_accounts",
            "Provider accounts the operator keeps state for (pacer, clients, reconcile slots)",
            provider_accounts.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            upstream_requests,
            upstream_duration,
            rate_limited,
            drift_corrections,
            provider_accounts,
        }
    }

    /// One finished reconcile (`result`: `ok` or a Ready reason such as `RateLimited`).
    pub fn reconciled(&self, result: &str, took: Duration) {
        self.reconciles.get_or_create(&ResultLabels { result: result.to_string() }).inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    /// One provider request; `code` is the HTTP status, or `error` when none came back.
    pub fn upstream_request(&self, provider: &str, method: &str, code: &str, took: Duration) {
        let labels =
            RequestLabels { provider: provider.to_string(), method: method.to_string(), code: code.to_string() };
        self.upstream_requests.get_or_create(&labels).inc();
        self.upstream_duration
            .get_or_create(&ProviderLabels { provider: provider.to_string() })
            .observe(took.as_secs_f64());
    }

    pub fn rate_limited(&self, provider: &str) {
        self.rate_limited.get_or_create(&ProviderLabels { provider: provider.to_string() }).inc();
    }

    pub fn drift_corrected(&self, provider: &str) {
        self.drift_corrections.get_or_create(&ProviderLabels { provider: provider.to_string() }).inc();
    }

    /// The number of provider accounts in the registry now.
    pub fn provider_accounts(&self, accounts: usize) {
        self.provider_accounts.set(i64::try_from(accounts).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let m = Metrics::new();
        m.reconciled("ok", Duration::from_millis(3));
        m.upstream_request("nango", "GET", "200", Duration::from_millis(3));
        m.rate_limited("arena");
        m.drift_corrected("mielto");
        m.provider_accounts(3);
        let text = m.encode();
        for needle in [
            "connection_operator_reconcile_total{result=\"ok\"} 1",
            "connection_operator_reconcile_duration_seconds_count 1",
            "connection_operator_upstream_requests_total{provider=\"nango\",method=\"GET\",code=\"200\"} 1",
            "connection_operator_upstream_request_duration_seconds_count{provider=\"nango\"} 1",
            "connection_operator_rate_limited_total{provider=\"arena\"} 1",
            "connection_operator_drift_corrections_total{provider=\"mielto\"} 1",
            "connection_operator_provider_accounts 3",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
}
