//! The benchmark's phases, each against fresh emulators and a separately running operator:
//! the main run (initial wave → steady state → change wave) and the rate-limited run.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use connection_sandbox::kube::KubeSandbox;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use crate::{
    cluster::{self, Cluster, connections_path, providers_path},
    fleet::{self, Budget, Kind, Member, Wave},
    journal::{self, KubeTraffic, Traffic},
    operator::{Operator, Usage},
    readiness::Tracker,
    report::{self, ChangeWave, ProviderCounts, RateLimited, Steady},
    upstream::Upstreams,
};

/// Applies the harness keeps in flight (a bulk `kubectl apply --server-side` would send
/// them one by one; the operator must cope with them arriving fast).
const APPLY_PARALLELISM: usize = 32;

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
    pub change_fraction: f64,
    pub timeout: Duration,
    pub operator_log: PathBuf,
}

impl Settings {
    /// The drift interval the operator actually uses.
    pub fn effective_drift_seconds(&self) -> f64 {
        self.drift_override_seconds.unwrap_or(self.drift_interval_seconds as f64)
    }
}

/// Emulators set up for one run: CRDs, namespace, Secrets, Providers, upstream latency and
/// limits, and a watch on the Connections.
struct Environment {
    cluster: Cluster,
    upstreams: Upstreams,
    tracker: Arc<Mutex<Tracker>>,
    watch: tokio::task::JoinHandle<()>,
    kubeconfig: PathBuf,
    // Dropped last: the emulator and the directory holding its kubeconfig.
    _kube: KubeSandbox,
    _dir: tempfile::TempDir,
}

impl Environment {
    async fn start(binary: &Path, kinds: &[Kind], latency_ms: u64, limit: Option<(u32, f64)>, budget: Budget) -> anyhow::Result<Environment> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let kube = KubeSandbox::start(([127, 0, 0, 1], 0).into(), &kubeconfig)?;
        let cluster = Cluster::new(kube.url(), kube.token().to_owned())?;
        cluster.install_crds(&crds_yaml(binary)?).await?;
        cluster.create_namespace().await?;
        let upstreams = Upstreams::start().await?;
        for kind in Kind::ALL {
            let (limit, window) = limit.unwrap_or((0, 60.0));
            upstreams.set_rate_limit(kind, limit, window).await?;
            upstreams.set_latency(kind, latency_ms).await?;
        }
        for &kind in kinds {
            cluster.create(&format!("/api/v1/namespaces/{}/secrets", fleet::NAMESPACE), &fleet::secret(kind)).await?;
            cluster.apply(&providers_path(), &fleet::provider(kind, &upstreams.base_url(kind), budget)).await?;
        }
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let watch = cluster.spawn_watch(tracker.clone());
        Ok(Environment { cluster, upstreams, tracker, watch, kubeconfig, _kube: kube, _dir: dir })
    }

    /// Server-side apply every member's Connection for `wave`; the unix time each apply was
    /// sent and the generation it produced, by name.
    async fn apply(&self, members: &[Member], wave: Wave, drift: u64) -> anyhow::Result<HashMap<String, (f64, i64)>> {
        let path = connections_path();
        stream::iter(members)
            .map(|m| {
                let path = &path;
                async move {
                    let sent = unix_now();
                    let applied = self.cluster.apply(path, &m.connection(wave, drift)).await?;
                    let generation = applied.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                    anyhow::Ok((m.name(), (sent, generation)))
                }
            })
            .buffer_unordered(APPLY_PARALLELISM)
            .try_collect()
            .await
    }

    /// Wait until every applied Connection is Ready for the generation its apply produced.
    async fn converge(&self, applied: &HashMap<String, (f64, i64)>, bound: Duration) -> anyhow::Result<()> {
        let wanted: Vec<(&str, i64)> = applied.iter().map(|(name, (_, g))| (name.as_str(), *g)).collect();
        let done = || self.tracker.lock().unwrap_or_else(|p| p.into_inner()).count_converged(wanted.iter().copied());
        let result = cluster::poll(bound, "every Connection to be Ready", || std::future::ready(done() == wanted.len())).await;
        if result.is_ok() {
            return Ok(());
        }
        // Name one laggard and its status, so a failed run says why.
        let laggard = {
            let tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            wanted.iter().find(|(name, g)| !tracker.converged(name, *g)).map(|(name, _)| name.to_string())
        };
        let status = match &laggard {
            Some(name) => self.cluster.get(&format!("{}/{name}", connections_path())).await.map(|c| c["status"].to_string()).unwrap_or_default(),
            None => String::new(),
        };
        result.with_context(|| format!("{} of {} Connections Ready; {} has status {status}", done(), wanted.len(), laggard.unwrap_or_default()))
    }

    async fn traffic(&self, kinds: &[Kind]) -> anyhow::Result<(BTreeMap<Kind, Traffic>, BTreeMap<Kind, Vec<journal::Upstream>>)> {
        let journals = self.upstreams.journals(kinds).await?;
        Ok((journals.iter().map(|(k, e)| (*k, Traffic::of(e))).collect(), journals))
    }

    async fn kube_traffic(&self) -> anyhow::Result<Option<KubeTraffic>> {
        Ok(KubeTraffic::of(&self.cluster.journal().await?))
    }

    async fn clear_journals(&self) -> anyhow::Result<()> {
        self.upstreams.clear_journals().await?;
        self.cluster.clear_journal().await
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// The CRDs exactly as the operator binary under test renders them.
fn crds_yaml(binary: &Path) -> anyhow::Result<String> {
    let output = std::process::Command::new(binary).arg("crd").output().context("running connection-operator crd")?;
    anyhow::ensure!(output.status.success(), "connection-operator crd failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?)
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// What the main run measured.
pub struct MainRun {
    pub converge_seconds: f64,
    pub initial: BTreeMap<Kind, Traffic>,
    pub initial_kube: Option<KubeTraffic>,
    pub counts: BTreeMap<Kind, u64>,
    pub steady: Steady,
    pub change_wave: ChangeWave,
    pub usage: Usage,
}

pub async fn main_run(binary: &Path, s: &Settings) -> anyhow::Result<MainRun> {
    let members = fleet::members(s.connections, &s.kinds);
    let mut counts: BTreeMap<Kind, u64> = BTreeMap::new();
    for m in &members {
        *counts.entry(m.kind).or_default() += 1;
    }
    let env = Environment::start(binary, &s.kinds, s.latency_ms, None, fleet::UNLIMITED).await?;
    env.upstreams.seed(&members).await?;
    env.clear_journals().await?;
    let mut operator = Operator::start(binary, &env.kubeconfig, s, &s.operator_log)?;
    operator.wait_ready().await?;

    eprintln!("bench: applying {} Connections", members.len());
    let start = Instant::now();
    let applied = env.apply(&members, Wave::Initial, s.drift_interval_seconds).await?;
    env.converge(&applied, s.timeout).await.context("initial wave")?;
    let converge_seconds = start.elapsed().as_secs_f64();
    eprintln!("bench: initial wave converged in {converge_seconds:.2} s");
    let (initial, _) = env.traffic(&s.kinds).await?;
    let initial_kube = env.kube_traffic().await?;
    env.clear_journals().await?;

    let steady = steady_state(&env, s, &counts).await?;

    let changed: Vec<Member> = members.iter().filter(|m| is_changed(m.index, s.change_fraction)).cloned().collect();
    let change_wave = change_wave(&env, s, &changed).await?;
    let usage = operator.usage()?;
    Ok(MainRun { converge_seconds, initial, initial_kube, counts, steady, change_wave, usage })
}

/// Every `round(1 / fraction)`-th Connection changes.
fn is_changed(index: usize, fraction: f64) -> bool {
    let every = (1.0 / fraction.clamp(1e-6, 1.0)).round().max(1.0) as usize;
    index % every == 0
}

async fn steady_state(env: &Environment, s: &Settings, counts: &BTreeMap<Kind, u64>) -> anyhow::Result<Steady> {
    let length = Duration::from_secs_f64(s.effective_drift_seconds() * f64::from(s.steady_intervals));
    eprintln!("bench: steady state for {:.0} s", length.as_secs_f64());
    let start = Instant::now();
    tokio::time::sleep(length).await;
    let seconds = start.elapsed().as_secs_f64();
    let (traffic, _) = env.traffic(&s.kinds).await?;
    let kube = env.kube_traffic().await?;
    env.clear_journals().await?;
    let intervals = seconds / s.effective_drift_seconds();
    let total: u64 = counts.values().sum();
    let mut sum = Traffic::default();
    traffic.values().for_each(|t| sum.add(*t));
    let by_provider = traffic
        .iter()
        .map(|(k, t)| (k.name().to_owned(), t.reads as f64 / counts.get(k).copied().unwrap_or(1).max(1) as f64 / intervals))
        .collect();
    Ok(Steady {
        seconds,
        intervals,
        upstream_reads_per_connection_per_interval: sum.reads as f64 / total.max(1) as f64 / intervals,
        upstream_writes: sum.writes,
        kube_writes: kube.map(|k| k.writes),
        kube_requests: kube.map(|k| k.requests),
        reads_per_connection_per_interval_by_provider: by_provider,
    })
}

async fn change_wave(env: &Environment, s: &Settings, changed: &[Member]) -> anyhow::Result<ChangeWave> {
    eprintln!("bench: changing {} Connections", changed.len());
    let start = Instant::now();
    let applied = env.apply(changed, Wave::Changed, s.drift_interval_seconds).await?;
    env.converge(&applied, s.timeout).await.context("change wave")?;
    let converge_seconds = start.elapsed().as_secs_f64();
    let (traffic, journals) = env.traffic(&s.kinds).await?;
    env.clear_journals().await?;
    let mut latencies = Vec::with_capacity(changed.len());
    for m in changed {
        let Some(&(sent, _)) = applied.get(&m.name()) else { continue };
        let entries = journals.get(&m.kind).map(Vec::as_slice).unwrap_or_default();
        if let Some(at) = journal::first_writes(m.kind, entries, sent).get(&m.upstream_id()) {
            latencies.push((at - sent) * 1000.0);
        }
    }
    let writes: u64 = traffic.values().map(|t| t.writes).sum();
    let reads: u64 = traffic.values().map(|t| t.reads).sum();
    Ok(ChangeWave {
        changed: changed.len() as u64,
        p50_ms: journal::quantile(&latencies, 0.5).unwrap_or(f64::NAN),
        p99_ms: journal::quantile(&latencies, 0.99).unwrap_or(f64::NAN),
        max_ms: journal::quantile(&latencies, 1.0).unwrap_or(f64::NAN),
        writes_per_changed_connection: writes as f64 / changed.len().max(1) as f64,
        upstream_reads: reads,
        converge_seconds,
        without_write: (changed.len() - latencies.len()) as u64,
    })
}

#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    pub kind: Kind,
    pub connections: usize,
    pub limit: u32,
    pub window_seconds: f64,
}

/// `connections` Connections of one provider whose upstream allows `limit` requests per
/// `window_seconds`; the Provider declares the same budget (`requestsPerMinute` scaled from
/// the window, and `burst` = the whole window's allowance, which a fixed window grants at once).
pub async fn rate_limited_run(binary: &Path, s: &Settings, r: &RateLimitSettings) -> anyhow::Result<RateLimited> {
    let members = fleet::members(r.connections, &[r.kind]);
    let per_minute = (f64::from(r.limit) * 60.0 / r.window_seconds).floor().max(1.0) as u32;
    let budget = Budget { requests_per_minute: per_minute, burst: r.limit.clamp(1, 10_000) };
    let env = Environment::start(binary, &[r.kind], s.latency_ms, Some((r.limit, r.window_seconds)), budget).await?;
    env.upstreams.seed(&members).await?;
    env.clear_journals().await?;
    let log = s.operator_log.with_extension("rate-limited.log");
    let mut operator = Operator::start(binary, &env.kubeconfig, s, &log)?;
    operator.wait_ready().await?;
    eprintln!("bench: rate-limited run, {} {} Connections at {} / {} s", members.len(), r.kind.name(), r.limit, r.window_seconds);
    let start = Instant::now();
    let applied = env.apply(&members, Wave::Initial, s.drift_interval_seconds).await?;
    env.converge(&applied, s.timeout).await.context("rate-limited run")?;
    let achieved_seconds = start.elapsed().as_secs_f64();
    let (traffic, _) = env.traffic(&[r.kind]).await?;
    let t = traffic.get(&r.kind).copied().unwrap_or_default();
    let calls = 2 * members.len() as u64;
    let ideal_seconds = report::floor_seconds(calls, 2, s.latency_ms as f64 / 1000.0, u64::from(s.concurrency), Some((u64::from(r.limit), r.window_seconds)));
    let windows = (achieved_seconds / r.window_seconds).ceil().max(1.0);
    drop(operator);
    Ok(RateLimited {
        provider: r.kind.name().to_owned(),
        connections: members.len() as u64,
        limit: r.limit,
        window_seconds: r.window_seconds,
        upstream_requests: t.total(),
        ideal_seconds,
        achieved_seconds,
        http_429: t.http_429,
        windows,
        http_429_per_window: t.http_429 as f64 / windows,
    })
}

/// Per-provider counts of the initial wave, for the report.
pub fn initial_by_provider(run: &MainRun) -> BTreeMap<String, ProviderCounts> {
    run.counts
        .iter()
        .map(|(k, &n)| {
            let t = run.initial.get(k).copied().unwrap_or_default();
            (k.name().to_owned(), ProviderCounts { connections: n, reads: t.reads, writes: t.writes, http_429: t.http_429 })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_percent_is_every_tenth() {
        let changed = (0..1000).filter(|&i| is_changed(i, 0.10)).count();
        assert_eq!(changed, 100);
        assert_eq!((0..10).filter(|&i| is_changed(i, 1.0)).count(), 10);
    }
}
