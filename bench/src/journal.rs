//! Reading the emulators' request journals (docs/interfaces.md): provider journals
//! (`<prefix>/_sandbox/requests`) and the Kubernetes emulator's (`/_sandbox/requests`).
//! Pure: counting and attribution only, so it is unit-tested on literal entries.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value;

use crate::fleet::Kind;

/// The User-Agent of every request the harness sends to the Kubernetes emulator, so its own
/// requests are not counted as the operator's.
pub const BENCH_USER_AGENT: &str = "connection-operator-bench";

/// One provider journal entry.
#[derive(Clone, Debug, Deserialize)]
pub struct Upstream {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Value,
    /// Arrival, unix seconds.
    pub at: f64,
}

impl Upstream {
    /// GET (and HEAD) read; every other method writes.
    pub fn is_read(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
    }

    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The upstream connection ids a write targets. Nango names them in the body, one id
    /// or an array (docs/providers.md, Nango); the others in the last path segment.
    pub fn write_targets(&self, kind: Kind) -> Vec<String> {
        if self.is_read() {
            return Vec::new();
        }
        match kind {
            Kind::Nango => match self.body.get("connection_id") {
                Some(Value::String(id)) => vec![id.clone()],
                Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                _ => Vec::new(),
            },
            Kind::Mielto | Kind::Arena | Kind::Datagrid => {
                self.path.rsplit('/').next().filter(|s| !s.is_empty()).map(str::to_owned).into_iter().collect()
            }
        }
    }
}

impl Upstream {
    /// Whether this request reads or writes one of `ids` (a read names its connection in
    /// the last path segment; a list names none).
    pub fn concerns(&self, kind: Kind, ids: &std::collections::HashSet<String>) -> bool {
        if self.is_read() {
            let path = self.path.split('?').next().unwrap_or_default();
            path.rsplit('/').next().is_some_and(|id| ids.contains(id))
        } else {
            self.write_targets(kind).iter().any(|id| ids.contains(id))
        }
    }
}

/// Request counts of one provider (or a sum of several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub reads: u64,
    pub writes: u64,
    pub http_429: u64,
}

impl Traffic {
    pub fn of(entries: &[Upstream]) -> Traffic {
        let mut t = Traffic::default();
        for e in entries {
            if e.is_read() {
                t.reads += 1;
            } else {
                t.writes += 1;
            }
            if e.status == Some(429) {
                t.http_429 += 1;
            }
        }
        t
    }

    pub fn total(&self) -> u64 {
        self.reads + self.writes
    }

    pub fn add(&mut self, other: Traffic) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.http_429 += other.http_429;
    }
}

/// The arrival time of the first successful write to each upstream id at or after `since`.
pub fn first_writes(kind: Kind, entries: &[Upstream], since: f64) -> HashMap<String, f64> {
    let mut first = HashMap::new();
    for e in entries.iter().filter(|e| e.succeeded() && e.at >= since) {
        for id in e.write_targets(kind) {
            first.entry(id).and_modify(|t: &mut f64| *t = t.min(e.at)).or_insert(e.at);
        }
    }
    first
}

/// One Kubernetes emulator journal entry.
#[derive(Clone, Debug, Deserialize)]
pub struct KubeRequest {
    pub method: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub query: String,
    #[serde(default, rename = "userAgent")]
    pub user_agent: Option<String>,
}

impl KubeRequest {
    fn is_bench(&self) -> bool {
        self.user_agent.as_deref() == Some(BENCH_USER_AGENT)
    }

    /// Whether kube-apiserver's metrics would count it as the operator's
    /// (`kube_metrics::in_operator_scope`): the shard Leases of `--shards` are left out on
    /// both control planes. Paths naming no resource (discovery) count.
    fn in_operator_scope(&self) -> bool {
        crate::kube_metrics::classify(&self.method, &self.path, &self.query, "")
            .is_none_or(|(group, resource, _)| crate::kube_metrics::in_operator_scope(&group, &resource))
    }

    /// The verb as kube-apiserver's metrics name it (the journal has no content type, so
    /// an apply counts as PATCH); the HTTP method when the path names no resource.
    fn verb(&self) -> String {
        crate::kube_metrics::classify(&self.method, &self.path, &self.query, "")
            .map_or_else(|| self.method.clone(), |(_, _, verb)| verb)
    }
}

/// The operator's Kubernetes requests (everything not sent by the harness, in the
/// operator's scope).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeTraffic {
    pub requests: u64,
    pub writes: u64,
    pub watches: u64,
    pub by_verb: BTreeMap<String, u64>,
}

impl KubeTraffic {
    /// From the operator's requests by verb (`kube_metrics::operator_by_verb`).
    pub fn from_verbs(by_verb: BTreeMap<String, u64>) -> KubeTraffic {
        let count = |pred: &dyn Fn(&str) -> bool| by_verb.iter().filter(|(v, _)| pred(v)).map(|(_, n)| n).sum();
        KubeTraffic {
            requests: by_verb.values().sum(),
            writes: count(&|v| crate::kube_metrics::WRITE_VERBS.contains(&v)),
            watches: count(&|v| v == "WATCH"),
            by_verb,
        }
    }

    /// `None` when the journal does not name user agents: the operator's requests could
    /// not be told apart from the harness's, and a wrong number is worse than none.
    pub fn of(entries: &[KubeRequest]) -> Option<KubeTraffic> {
        if entries.iter().any(|e| e.user_agent.is_none()) {
            return None;
        }
        let mut by_verb: BTreeMap<String, u64> = BTreeMap::new();
        for e in entries.iter().filter(|e| !e.is_bench() && e.in_operator_scope()) {
            *by_verb.entry(e.verb()).or_default() += 1;
        }
        Some(KubeTraffic::from_verbs(by_verb))
    }
}

/// The `q`-quantile (0..=1) of `values` by the nearest-rank method; `None` when empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(v: Value) -> Upstream {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn counts_reads_writes_and_429s() {
        let entries = vec![
            entry(json!({"method": "GET", "path": "/connections/a", "status": 200, "at": 1.0})),
            entry(json!({"method": "PATCH", "path": "/connections/metadata", "status": 429, "at": 2.0})),
            entry(json!({"method": "PATCH", "path": "/connections/metadata", "status": 200, "at": 3.0})),
        ];
        assert_eq!(Traffic::of(&entries), Traffic { reads: 1, writes: 2, http_429: 1 });
    }

    #[test]
    fn nango_batched_writes_target_every_id_and_429s_are_not_writes_done() {
        let entries = vec![
            entry(json!({"method": "PATCH", "path": "/connections/metadata", "status": 429, "at": 1.0,
                         "body": {"connection_id": "a"}})),
            entry(json!({"method": "PATCH", "path": "/connections/metadata", "status": 200, "at": 2.0,
                         "body": {"connection_id": ["a", "b"]}})),
            entry(json!({"method": "POST", "path": "/connections/metadata", "status": 201, "at": 3.0,
                         "body": {"connection_id": "b"}})),
        ];
        let first = first_writes(Kind::Nango, &entries, 0.0);
        assert_eq!(first["a"], 2.0);
        assert_eq!(first["b"], 2.0);
        assert!(!first_writes(Kind::Nango, &entries, 2.5).contains_key("a"));
    }

    #[test]
    fn requests_concerning_some_connections() {
        let ids: std::collections::HashSet<String> = ["7".to_owned(), "b".to_owned()].into();
        let e = |v: Value| entry(v);
        assert!(e(json!({"method": "GET", "path": "/v3/connections/7", "at": 1.0})).concerns(Kind::Arena, &ids));
        assert!(!e(json!({"method": "GET", "path": "/v3/connections/8", "at": 1.0})).concerns(Kind::Arena, &ids));
        assert!(
            !e(json!({"method": "GET", "path": "/connection", "at": 1.0})).concerns(Kind::Nango, &ids),
            "a list names none"
        );
        let batch = e(
            json!({"method": "PATCH", "path": "/connections/metadata", "at": 1.0, "body": {"connection_id": ["a", "b"]}}),
        );
        assert!(batch.concerns(Kind::Nango, &ids));
        assert!(!e(json!({"method": "PUT", "path": "/v3/connections/8", "at": 1.0})).concerns(Kind::Arena, &ids));
    }

    #[test]
    fn path_providers_target_the_last_segment() {
        let put = entry(json!({"method": "PUT", "path": "/v3/connections/100001", "status": 200, "at": 1.0}));
        assert_eq!(put.write_targets(Kind::Arena), ["100001"]);
        let get = entry(json!({"method": "GET", "path": "/v3/connections/100001", "status": 200, "at": 1.0}));
        assert!(get.write_targets(Kind::Arena).is_empty());
    }

    #[test]
    fn kube_traffic_excludes_the_harness_and_needs_user_agents() {
        let path = "/apis/connection-operator.dev/v1alpha1/namespaces/b/connections";
        let req = |m: &str, p: &str, q: &str, ua: &str| KubeRequest {
            method: m.into(),
            path: p.into(),
            query: q.into(),
            user_agent: Some(ua.into()),
        };
        let entries = vec![
            req("PATCH", &format!("{path}/x"), "fieldManager=bench", BENCH_USER_AGENT),
            req("GET", path, "watch=true&resourceVersion=1", "kube-rs"),
            req("PATCH", &format!("{path}/x/status"), "fieldManager=connection-operator", ""),
            req("GET", path, "limit=500", "kube-rs"),
            // A shard Lease renewal: not counted, as on the real control plane.
            req("PATCH", "/apis/coordination.k8s.io/v1/namespaces/b/leases/connection-operator-shard-0", "", "kube-rs"),
        ];
        let t = KubeTraffic::of(&entries).unwrap();
        assert_eq!((t.requests, t.writes, t.watches), (3, 1, 1));
        assert_eq!(t.by_verb, BTreeMap::from([("LIST".into(), 1), ("PATCH".into(), 1), ("WATCH".into(), 1)]));
        let anonymous =
            vec![KubeRequest { method: "GET".into(), path: String::new(), query: String::new(), user_agent: None }];
        assert_eq!(KubeTraffic::of(&anonymous), None);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
