//! The benchmark's fleet, as pure data: which provider each Connection uses, its upstream id,
//! the raw state seeded upstream, and the Connection, Provider and Secret manifests.
//!
//! Every seeded upstream connection differs from its Connection's spec, so the initial wave
//! needs exactly one read and one write per Connection (the floor). Seeds also carry a key
//! nobody declares (a customer's webhook id), which the operator must leave alone. All
//! Connections of one provider want the same change where the provider allows batching
//! (Nango: one PATCH with an array of `connection_id`s, docs/providers.md, Nango).

use serde_json::{Value, json};

pub const GROUP_VERSION: &str = "connection-operator.dev/v1alpha1";

/// The four provider types, in the order Connections are spread over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Nango,
    Mielto,
    Arena,
    Datagrid,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Nango, Kind::Mielto, Kind::Arena, Kind::Datagrid];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Nango => "nango",
            Kind::Mielto => "mielto",
            Kind::Arena => "arena",
            Kind::Datagrid => "datagrid",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A bearer token the emulator accepts. Nango requires a UUIDv4-shaped secret key
    /// (docs/providers.md, Nango, `invalid_secret_key_format`).
    fn token(self) -> &'static str {
        match self {
            Kind::Nango => "00000000-0000-4000-8000-000000000000",
            _ => "bench-token",
        }
    }
}

/// Which spec a Connection carries: the one of the initial wave, the `k`-th single change of
/// the trickle, or the one of the change wave. All differ from each other and from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wave {
    Initial,
    Trickle(u32),
    Changed,
}

/// One Connection of the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub index: usize,
    pub kind: Kind,
}

impl Member {
    /// The Connection's name, e.g. `bench-nango-00042`.
    pub fn name(&self) -> String {
        format!("bench-{}-{:05}", self.kind.name(), self.index)
    }

    /// The upstream connection id. Are.na ids are decimal integers (docs/providers.md, Are.na).
    pub fn upstream_id(&self) -> String {
        match self.kind {
            Kind::Nango => format!("bench-{}", self.index),
            Kind::Mielto => format!("conn_bench_{}", self.index),
            Kind::Arena => (100_000 + self.index).to_string(),
            Kind::Datagrid => format!("conn_bench_{}", self.index),
        }
    }

    /// The raw upstream state before the operator runs (admin API shape, docs/interfaces.md).
    pub fn seed(&self) -> Value {
        let i = self.index;
        match self.kind {
            Kind::Nango => json!({
                "provider_config_key": "bench",
                "metadata": {"region": "us", "plan": "free", "webhookId": format!("wh-{i}")},
            }),
            Kind::Mielto => json!({
                "label": format!("old {i}"), "status": "active", "integration": "slack",
                "config": {"channel": "#old", "digest": "weekly"},
            }),
            Kind::Arena => json!({"metadata": {"reviewed": false, "score": 0, "webhook_id": format!("wh{i}")}}),
            Kind::Datagrid => json!({"name": format!("old {i}")}),
        }
    }

    /// The provider block of the spec for `wave`.
    fn block(&self, wave: Wave) -> Value {
        let i = self.index;
        let (plan, digest, score, name) = match wave {
            Wave::Initial => ("pro".to_owned(), "daily".to_owned(), 1, format!("Bench {i}")),
            Wave::Changed => ("enterprise".to_owned(), "hourly".to_owned(), 2, format!("Bench {i} v2")),
            Wave::Trickle(k) => {
                (format!("trial-{k}"), format!("every-{k}"), 1000 + i64::from(k), format!("Bench {i} t{k}"))
            }
        };
        match self.kind {
            Kind::Nango => json!({
                "providerConfigKey": "bench",
                "metadata": {"region": "eu", "plan": plan},
            }),
            Kind::Mielto => json!({
                "label": format!("Bench {i}"), "status": "active",
                "config": {"channel": format!("#bench-{i}"), "digest": digest},
            }),
            Kind::Arena => json!({"metadata": {"reviewed": true, "score": score}}),
            Kind::Datagrid => json!({"name": name}),
        }
    }

    /// The whole Connection manifest in `namespace`, as server-side applied.
    pub fn connection(&self, namespace: &str, wave: Wave, drift_interval_seconds: u64) -> Value {
        let mut spec = json!({
            "providerRef": {"name": self.kind.name()},
            "connectionId": self.upstream_id(),
            "driftInterval": format!("{drift_interval_seconds}s"),
        });
        spec[self.kind.name()] = self.block(wave);
        json!({
            "apiVersion": GROUP_VERSION,
            "kind": "Connection",
            "metadata": {"name": self.name(), "namespace": namespace},
            "spec": spec,
        })
    }
}

/// `count` Connections spread round-robin over `kinds`.
pub fn members(count: usize, kinds: &[Kind]) -> Vec<Member> {
    (0..count).map(|index| Member { index, kind: kinds[index % kinds.len()] }).collect()
}

/// The label pinning a Provider's account to a shard (`connection-operator run --shards`).
pub const SHARD_LABEL: &str = "connection-operator.dev/shard";

/// The client-side budget a Provider declares (`spec.rateLimit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub requests_per_minute: u32,
    pub burst: u32,
}

/// When upstream limits are lifted, the Provider declares the schema's maximum so the
/// operator's pacing is not what the run measures.
pub const UNLIMITED: Budget = Budget { requests_per_minute: 100_000, burst: 10_000 };

/// The Provider of `kind` in `namespace`, pointing at the sandbox at `base_url`.
pub fn provider(namespace: &str, kind: Kind, base_url: &str, budget: Budget) -> Value {
    json!({
        "apiVersion": GROUP_VERSION,
        "kind": "Provider",
        "metadata": {"name": kind.name(), "namespace": namespace},
        "spec": {
            "type": kind.name(),
            "baseUrl": base_url,
            "credentialsRef": {"name": secret_name(kind), "key": "token"},
            "rateLimit": {"requestsPerMinute": budget.requests_per_minute, "burst": budget.burst},
        },
    })
}

fn secret_name(kind: Kind) -> String {
    format!("{}-credentials", kind.name())
}

/// The Secret in `namespace` holding the token of `kind`'s account.
pub fn secret(namespace: &str, kind: Kind) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(kind), "namespace": namespace},
        "type": "Opaque",
        "stringData": {"token": kind.token()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_round_robin_and_names_are_unique() {
        let fleet = members(10, &Kind::ALL);
        assert_eq!(fleet.iter().filter(|m| m.kind == Kind::Nango).count(), 3);
        assert_eq!(fleet.iter().filter(|m| m.kind == Kind::Datagrid).count(), 2);
        let mut names: Vec<String> = fleet.iter().map(Member::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 10);
    }

    #[test]
    fn every_seed_differs_from_both_waves_and_waves_differ() {
        for member in members(8, &Kind::ALL) {
            let initial = member.connection("b", Wave::Initial, 30);
            let changed = member.connection("b", Wave::Changed, 30);
            let trickles = [member.connection("b", Wave::Trickle(0), 30), member.connection("b", Wave::Trickle(1), 30)];
            assert_ne!(initial, changed, "{}", member.name());
            for t in &trickles {
                assert_ne!(t, &initial, "{}", member.name());
                assert_ne!(t, &changed, "{}", member.name());
            }
            assert_ne!(trickles[0], trickles[1], "successive single changes differ");
            assert_eq!(initial["metadata"]["namespace"], "b");
            assert_eq!(initial["spec"]["connectionId"], member.upstream_id());
            assert_eq!(initial["spec"]["driftInterval"], "30s");
            assert!(initial["spec"][member.kind.name()].is_object());
        }
        let arena = Member { index: 3, kind: Kind::Arena };
        assert!(arena.upstream_id().parse::<u64>().is_ok(), "Are.na ids are integers");
    }

    #[test]
    fn provider_points_at_its_secret() {
        let p = provider("b", Kind::Arena, "http://127.0.0.1:1/arena", UNLIMITED);
        assert_eq!(p["spec"]["credentialsRef"]["name"], secret("b", Kind::Arena)["metadata"]["name"]);
        assert_eq!(p["metadata"]["namespace"], "b");
        assert_eq!(p["spec"]["rateLimit"]["requestsPerMinute"], 100_000);
        assert_eq!(Kind::parse("datagrid"), Some(Kind::Datagrid));
        assert_eq!(Kind::parse("github"), None);
    }
}
