//! The benchmark's phases, each in a namespace of its own on the control plane, with fresh
//! provider sandboxes and a separately running operator: the main run (initial wave →
//! steady state → single changes → change wave) and the rate-limited run.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use crate::{
    backend::{Backend, ControlPlaneKind},
    cluster::{self, Cluster},
    fleet::{self, Budget, Kind, Member, Wave},
    journal::{self, KubeTraffic, Traffic},
    kube_metrics::{self, Counts},
    operator::{Binaries, Operators},
    procs::{self, ProcessUsage, Usage},
    readiness::Tracker,
    report::{self, ChangeWave, ProviderCounts, RateLimited, SingleChange, Steady},
    settings::Settings,
    upstream::Upstreams,
};

/// Applies the harness keeps in flight (a bulk `kubectl apply --server-side` would send
/// them one by one; the operator must cope with them arriving fast).
const APPLY_PARALLELISM: usize = 32;

/// Where the Kubernetes request count of a span starts: the emulator's journal was cleared,
/// or kube-apiserver's counter and the harness's own count as they were.
enum KubeMark {
    Journal,
    Metrics { apiserver: Counts, harness: Counts },
}

/// One run's environment on the control plane: CRDs, a namespace of its own, Secrets,
/// Providers, the provider sandboxes (their own process) with latency and limits, and a
/// watch on the Connections.
struct Environment {
    cluster: Cluster,
    upstreams: Upstreams,
    tracker: Arc<Mutex<Tracker>>,
    watch: tokio::task::JoinHandle<()>,
    kubeconfig: PathBuf,
    control_plane: ControlPlaneKind,
}

impl Environment {
    async fn start(
        binaries: &Binaries,
        backend: &Backend,
        namespace: &str,
        s: &Settings,
        kinds: &[Kind],
        limit: Option<(u32, f64)>,
        budget: Budget,
    ) -> anyhow::Result<Environment> {
        let kubeconfig = backend.kubeconfig().to_path_buf();
        let cluster = Cluster::new(&kubeconfig, namespace)?;
        cluster.install_crds(&crds_yaml(&binaries.operator)?).await?;
        cluster.create_namespace().await?;
        let upstreams = Upstreams::start(&binaries.sandbox, &s.log(&format!("{namespace}.providers")))?;
        for kind in Kind::ALL {
            let (limit, window) = limit.unwrap_or((0, 60.0));
            upstreams.set_rate_limit(kind, limit, window).await?;
            upstreams.set_latency(kind, s.latency_ms).await?;
        }
        for (i, &kind) in kinds.iter().enumerate() {
            cluster.create(&cluster.secrets_path(), &fleet::secret(namespace, kind)).await?;
            let mut provider = fleet::provider(namespace, kind, &upstreams.base_url(kind), budget);
            if s.shards > 1 {
                provider["metadata"]["labels"] =
                    serde_json::json!({fleet::SHARD_LABEL: (i as u32 % s.shards).to_string()});
            }
            cluster.apply(&cluster.providers_path(), &provider).await?;
        }
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let watch = cluster.spawn_watch(tracker.clone());
        Ok(Environment { cluster, upstreams, tracker, watch, kubeconfig, control_plane: backend.kind })
    }

    /// Server-side apply every member's Connection for `wave`; the unix time each apply was
    /// sent and the generation it produced, by name.
    async fn apply(&self, members: &[Member], wave: Wave, drift: u64) -> anyhow::Result<HashMap<String, (f64, i64)>> {
        let path = self.cluster.connections_path();
        stream::iter(members)
            .map(|m| {
                let path = &path;
                async move {
                    let (sent, generation) = self.apply_one(path, m, wave, drift).await?;
                    anyhow::Ok((m.name(), (sent, generation)))
                }
            })
            .buffer_unordered(APPLY_PARALLELISM)
            .try_collect()
            .await
    }

    /// Apply one Connection: when it was sent, and the generation it produced.
    async fn apply_one(&self, path: &str, m: &Member, wave: Wave, drift: u64) -> anyhow::Result<(f64, i64)> {
        let sent = unix_now();
        let applied = self.cluster.apply(path, &m.connection(self.cluster.namespace(), wave, drift)).await?;
        let generation = applied.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        Ok((sent, generation))
    }

    /// Wait until every applied Connection is Ready for the generation its apply produced.
    async fn converge(&self, applied: &HashMap<String, (f64, i64)>, bound: Duration) -> anyhow::Result<()> {
        let wanted: Vec<(&str, i64)> = applied.iter().map(|(name, (_, g))| (name.as_str(), *g)).collect();
        let done = || self.tracker.lock().unwrap_or_else(|p| p.into_inner()).count_converged(wanted.iter().copied());
        let result =
            cluster::poll(bound, "every Connection to be Ready", || std::future::ready(done() == wanted.len())).await;
        if result.is_ok() {
            return Ok(());
        }
        // Name one laggard and its status, so a failed run says why.
        let laggard = {
            let tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            wanted.iter().find(|(name, g)| !tracker.converged(name, *g)).map(|(name, _)| name.to_string())
        };
        let status = match &laggard {
            Some(name) => self
                .cluster
                .get(&format!("{}/{name}", self.cluster.connections_path()))
                .await
                .map(|c| c["status"].to_string())
                .unwrap_or_default(),
            None => String::new(),
        };
        result.with_context(|| {
            format!(
                "{} of {} Connections Ready; {} has status {status}",
                done(),
                wanted.len(),
                laggard.unwrap_or_default()
            )
        })
    }

    async fn traffic(
        &self,
        kinds: &[Kind],
    ) -> anyhow::Result<(BTreeMap<Kind, Traffic>, BTreeMap<Kind, Vec<journal::Upstream>>)> {
        let journals = self.upstreams.journals(kinds).await?;
        Ok((journals.iter().map(|(k, e)| (*k, Traffic::of(e))).collect(), journals))
    }

    /// Start a span: clear the provider journals and mark the Kubernetes request count.
    async fn mark(&self) -> anyhow::Result<KubeMark> {
        self.upstreams.clear_journals().await?;
        match self.control_plane {
            ControlPlaneKind::Emulator => {
                self.cluster.clear_journal().await?;
                Ok(KubeMark::Journal)
            }
            ControlPlaneKind::Real => Ok(KubeMark::Metrics {
                apiserver: self.apiserver_counts().await?,
                harness: self.cluster.own_requests(),
            }),
        }
    }

    async fn apiserver_counts(&self) -> anyhow::Result<Counts> {
        let text = self.cluster.get_text("/metrics").await.context("reading kube-apiserver's /metrics")?;
        let counts = kube_metrics::parse(&text);
        anyhow::ensure!(!counts.is_empty(), "kube-apiserver's /metrics has no apiserver_request_total");
        Ok(counts)
    }

    /// The operator's Kubernetes requests since `mark` (`None`: not attributable).
    async fn kube_traffic(&self, mark: &KubeMark) -> anyhow::Result<Option<KubeTraffic>> {
        match mark {
            KubeMark::Journal => Ok(KubeTraffic::of(&self.cluster.journal().await?)),
            KubeMark::Metrics { apiserver, harness } => {
                let apiserver = kube_metrics::delta(&self.apiserver_counts().await?, apiserver);
                let harness = kube_metrics::delta(&self.cluster.own_requests(), harness);
                Ok(Some(KubeTraffic::from_verbs(kube_metrics::operator_by_verb(&apiserver, &harness))))
            }
        }
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
    anyhow::ensure!(
        output.status.success(),
        "connection-operator crd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
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
    pub single_change: SingleChange,
    pub change_wave: ChangeWave,
    /// The operator's own usage over its whole life.
    pub usage: Usage,
    /// Every process of the run, from the operator's start to the end of the change wave.
    pub processes: BTreeMap<String, ProcessUsage>,
}

pub async fn main_run(binaries: &Binaries, backend: &Backend, s: &Settings) -> anyhow::Result<MainRun> {
    let members = fleet::members(s.connections, &s.kinds);
    let mut counts: BTreeMap<Kind, u64> = BTreeMap::new();
    for m in &members {
        *counts.entry(m.kind).or_default() += 1;
    }
    let namespace = s.namespace_prefix.clone();
    let env = Environment::start(binaries, backend, &namespace, s, &s.kinds, None, fleet::UNLIMITED).await?;
    env.upstreams.seed(&members).await?;
    let mut operators = Operators::start(&binaries.operator, &env.kubeconfig, &namespace, s, &s.operator_log)?;
    let mut processes = backend.processes();
    processes.extend(operators.pids());
    processes
        .extend([("provider_sandboxes".to_owned(), env.upstreams.pid()), ("bench".to_owned(), std::process::id())]);
    let span = procs::Span::start(&processes);
    operators.wait_ready().await?;

    eprintln!("bench: applying {} Connections", members.len());
    let mark = env.mark().await?;
    let start = Instant::now();
    let applied = env.apply(&members, Wave::Initial, s.drift_interval_seconds).await?;
    env.converge(&applied, s.timeout).await.context("initial wave")?;
    let converge_seconds = start.elapsed().as_secs_f64();
    eprintln!("bench: initial wave converged in {converge_seconds:.2} s");
    let (initial, _) = env.traffic(&s.kinds).await?;
    let initial_kube = env.kube_traffic(&mark).await?;

    let steady = steady_state(&env, s, &counts).await?;
    let single_change = trickle(&env, s, &members).await?;

    let changed: Vec<Member> = members.iter().filter(|m| is_changed(m.index, s.change_fraction)).cloned().collect();
    let change_wave = change_wave(&env, s, &changed).await?;
    let mut processes = span.finish();
    for (name, usage) in operators.usages()? {
        if let Some(op) = processes.get_mut(&name) {
            (op.cpu_seconds, op.peak_rss_mb, op.peak_reset) = (usage.cpu_seconds, usage.peak_rss_mb, false);
        }
    }
    let usage = operators.usage()?;
    Ok(MainRun {
        converge_seconds,
        initial,
        initial_kube,
        counts,
        steady,
        single_change,
        change_wave,
        usage,
        processes,
    })
}

/// Every `round(1 / fraction)`-th Connection changes.
fn is_changed(index: usize, fraction: f64) -> bool {
    let every = (1.0 / fraction.clamp(1e-6, 1.0)).round().max(1.0) as usize;
    index.is_multiple_of(every)
}

async fn steady_state(env: &Environment, s: &Settings, counts: &BTreeMap<Kind, u64>) -> anyhow::Result<Steady> {
    let length = Duration::from_secs_f64(s.effective_drift_seconds() * f64::from(s.steady_intervals));
    eprintln!("bench: steady state for {:.0} s", length.as_secs_f64());
    let mark = env.mark().await?;
    let start = Instant::now();
    tokio::time::sleep(length).await;
    let seconds = start.elapsed().as_secs_f64();
    let (traffic, _) = env.traffic(&s.kinds).await?;
    let kube = env.kube_traffic(&mark).await?;
    let intervals = seconds / s.effective_drift_seconds();
    let total: u64 = counts.values().sum();
    let mut sum = Traffic::default();
    traffic.values().for_each(|t| sum.add(*t));
    let by_provider = traffic
        .iter()
        .map(|(k, t)| {
            (k.name().to_owned(), t.reads as f64 / counts.get(k).copied().unwrap_or(1).max(1) as f64 / intervals)
        })
        .collect();
    Ok(Steady {
        seconds,
        intervals,
        upstream_reads_per_connection_per_interval: sum.reads as f64 / total.max(1) as f64 / intervals,
        upstream_writes: sum.writes,
        kube_writes: kube.as_ref().map(|k| k.writes),
        kube_requests: kube.as_ref().map(|k| k.requests),
        reads_per_connection_per_interval_by_provider: by_provider,
    })
}

/// The members the trickle changes, one after the other: the providers in turn, spread over
/// the fleet, each at most once (so every upstream write names one change).
fn trickle_members(members: &[Member], count: usize, kinds: &[Kind]) -> Vec<Member> {
    let by_kind: Vec<Vec<&Member>> = kinds.iter().map(|k| members.iter().filter(|m| m.kind == *k).collect()).collect();
    let count = count.min(members.len());
    let mut picked = Vec::with_capacity(count);
    let mut taken = vec![0usize; kinds.len()];
    let mut k = 0;
    while picked.len() < count {
        let group = &by_kind[k % kinds.len()];
        let per_kind = count.div_ceil(kinds.len()).max(1);
        let step = (group.len() / per_kind).max(1);
        let j = taken[k % kinds.len()];
        if j < group.len() {
            let index = (j * step + step / 2).min(group.len() - 1);
            let member = group[index];
            if !picked.iter().any(|p: &Member| p.index == member.index) {
                picked.push(member.clone());
            }
            taken[k % kinds.len()] += 1;
        }
        k += 1;
        if k > 4 * count + 4 * kinds.len() {
            break;
        }
    }
    picked
}

/// Single changes trickled at `trickle_per_second` for `trickle_seconds` while the rest of
/// the fleet is in steady state. Each change is applied on schedule (not waiting for the
/// previous one); its latency runs from the moment its apply is sent to the arrival of the
/// first successful upstream write naming its connection (provider journal); the upstream
/// round trip it needs is the one read that must precede the write (read, plan, write), i.e.
/// the sandbox's `latency_ms`.
async fn trickle(env: &Environment, s: &Settings, members: &[Member]) -> anyhow::Result<SingleChange> {
    let wanted = (s.trickle_per_second * s.trickle_seconds).round().max(0.0) as usize;
    let picks = trickle_members(members, wanted, &s.kinds);
    eprintln!("bench: {} single changes at {}/s", picks.len(), s.trickle_per_second);
    if picks.is_empty() {
        return Ok(SingleChange::default());
    }
    env.mark().await?;
    let path = env.cluster.connections_path();
    let period = Duration::from_secs_f64(1.0 / s.trickle_per_second.max(1e-3));
    let start = tokio::time::Instant::now();
    let sends = picks.iter().enumerate().map(|(k, m)| {
        let path = &path;
        async move {
            tokio::time::sleep_until(start + period * k as u32).await;
            let before = Instant::now();
            let (sent, generation) = env.apply_one(path, m, Wave::Trickle(k as u32), s.drift_interval_seconds).await?;
            anyhow::Ok((m.clone(), sent, generation, before.elapsed().as_secs_f64() * 1000.0))
        }
    });
    let done: Vec<(Member, f64, i64, f64)> = futures::future::try_join_all(sends).await?;
    let seconds = start.elapsed().as_secs_f64();
    let applied: HashMap<String, (f64, i64)> = done.iter().map(|(m, sent, g, _)| (m.name(), (*sent, *g))).collect();
    env.converge(&applied, s.timeout).await.context("single changes")?;
    let (_, journals) = env.traffic(&s.kinds).await?;
    let mut latencies = Vec::new();
    let mut reads = 0u64;
    for (m, sent, _, _) in &done {
        let entries = journals.get(&m.kind).map(Vec::as_slice).unwrap_or_default();
        let id = m.upstream_id();
        if let Some(&at) = journal::first_writes(m.kind, entries, *sent).get(&id) {
            latencies.push((at - sent) * 1000.0);
            reads += entries
                .iter()
                .filter(|e| {
                    e.is_read() && e.at >= *sent && e.at <= at && e.path.rsplit('/').next() == Some(id.as_str())
                })
                .count() as u64;
        }
    }
    let apply_ms: Vec<f64> = done.iter().map(|d| d.3).collect();
    Ok(SingleChange::from_latencies(
        done.len() as u64,
        s.trickle_per_second,
        seconds,
        &latencies,
        s.latency_ms as f64,
        journal::quantile(&apply_ms, 0.99).unwrap_or(f64::NAN),
        reads,
    ))
}

async fn change_wave(env: &Environment, s: &Settings, changed: &[Member]) -> anyhow::Result<ChangeWave> {
    eprintln!("bench: changing {} Connections", changed.len());
    env.mark().await?;
    let start = Instant::now();
    let applied = env.apply(changed, Wave::Changed, s.drift_interval_seconds).await?;
    env.converge(&applied, s.timeout).await.context("change wave")?;
    let converge_seconds = start.elapsed().as_secs_f64();
    let (traffic, journals) = env.traffic(&s.kinds).await?;
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
    // The wave's own requests: those reading or writing a changed connection (drift checks
    // of other Connections falling in the window are not the wave's).
    let by_account: Vec<u64> = journals
        .iter()
        .map(|(kind, entries)| {
            let ids: HashSet<String> = changed.iter().filter(|m| m.kind == *kind).map(Member::upstream_id).collect();
            entries.iter().filter(|e| e.concerns(*kind, &ids)).count() as u64
        })
        .collect();
    let floor_ms =
        report::wave_floor_ms(&by_account, s.latency_ms as f64, u64::from(s.concurrency), s.per_account_concurrency());
    Ok(ChangeWave {
        changed: changed.len() as u64,
        p50_ms: journal::quantile(&latencies, 0.5).unwrap_or(f64::NAN),
        p99_ms: journal::quantile(&latencies, 0.99).unwrap_or(f64::NAN),
        max_ms: journal::quantile(&latencies, 1.0).unwrap_or(f64::NAN),
        writes_per_changed_connection: writes as f64 / changed.len().max(1) as f64,
        upstream_reads: reads,
        converge_seconds,
        without_write: (changed.len() - latencies.len()) as u64,
        floor_ms,
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
pub async fn rate_limited_run(
    binaries: &Binaries,
    backend: &Backend,
    s: &Settings,
    r: &RateLimitSettings,
) -> anyhow::Result<RateLimited> {
    let members = fleet::members(r.connections, &[r.kind]);
    let per_minute = (f64::from(r.limit) * 60.0 / r.window_seconds).floor().max(1.0) as u32;
    let budget = Budget { requests_per_minute: per_minute, burst: r.limit.clamp(1, 10_000) };
    let namespace = format!("{}-limited", s.namespace_prefix);
    let env =
        Environment::start(binaries, backend, &namespace, s, &[r.kind], Some((r.limit, r.window_seconds)), budget)
            .await?;
    env.upstreams.seed(&members).await?;
    env.mark().await?;
    let log = s.log("rate-limited");
    let mut operators = Operators::start(&binaries.operator, &env.kubeconfig, &namespace, s, &log)?;
    operators.wait_ready().await?;
    eprintln!(
        "bench: rate-limited run, {} {} Connections at {} / {} s",
        members.len(),
        r.kind.name(),
        r.limit,
        r.window_seconds
    );
    let start = Instant::now();
    let applied = env.apply(&members, Wave::Initial, s.drift_interval_seconds).await?;
    env.converge(&applied, s.timeout).await.context("rate-limited run")?;
    let achieved_seconds = start.elapsed().as_secs_f64();
    let (traffic, _) = env.traffic(&[r.kind]).await?;
    let t = traffic.get(&r.kind).copied().unwrap_or_default();
    let calls = 2 * members.len() as u64;
    let ideal_seconds = report::floor_seconds(
        calls,
        2,
        s.latency_ms as f64 / 1000.0,
        u64::from(s.concurrency),
        Some((u64::from(r.limit), r.window_seconds)),
    );
    let windows = (achieved_seconds / r.window_seconds).ceil().max(1.0);
    drop(operators);
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
            (
                k.name().to_owned(),
                ProviderCounts { connections: n, reads: t.reads, writes: t.writes, http_429: t.http_429 },
            )
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

    #[test]
    fn trickle_takes_turns_over_providers_and_never_repeats() {
        let fleet = fleet::members(1000, &Kind::ALL);
        let picks = trickle_members(&fleet, 120, &Kind::ALL);
        assert_eq!(picks.len(), 120);
        for kind in Kind::ALL {
            assert_eq!(picks.iter().filter(|m| m.kind == kind).count(), 30, "{kind:?}");
        }
        let mut indices: Vec<usize> = picks.iter().map(|m| m.index).collect();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), 120);
        assert!(indices.last().unwrap() > &900, "spread over the fleet: {indices:?}");
        // A fleet smaller than the trickle: each member once.
        let small = fleet::members(6, &Kind::ALL);
        assert_eq!(trickle_members(&small, 120, &Kind::ALL).len(), 6);
        assert!(trickle_members(&small, 0, &Kind::ALL).is_empty());
    }
}
