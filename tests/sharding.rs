//! Sharding by provider account on the REAL control plane: three
//! `connection-operator run --shards 2 --namespace NS` processes (two shards and a standby)
//! against the run's shared kube-apiserver (a namespace of the test's own) and four Datagrid
//! accounts, each its own provider sandbox (so each account has its own journal and its own
//! rate limit), with many Connections each. Short Leases (`--lease-duration-seconds 6`) keep
//! the takeover short; every wait is bounded by [`GENEROUS`], nothing asserts on durations.
//!
//! The accounts: `acct-0` and `acct-1` pinned by the shard label to shard 0 and 1, `acct-2`
//! unlabelled and `acct-3` with a label naming no shard, both placed by the hash.
//!
//! What is asserted:
//! - each shard's Lease has its own holder and the third process holds none;
//! - every Connection becomes Ready, and every Event about it was reported by the holder of
//!   its account's shard (`reportingInstance` is the process's `POD_NAME`);
//! - each process's own count of upstream requests (its /metrics) equals the requests the
//!   sandboxes of its shard's accounts received, and the standby's is zero: no process
//!   called another shard's account;
//! - no account got a 429: each sandbox allows exactly what one pacer at the Provider's
//!   `rateLimit` can send, so two processes pacing one account would overrun it;
//! - the bad label gives one `InvalidShardLabel` Warning on its Provider;
//! - after SIGKILL of shard 1's holder, the standby takes its Lease once it expires, reads
//!   every account of shard 1 again, and a change to a Connection of shard 1 is written
//!   upstream exactly once, by the standby.

mod replica_support;

use std::collections::BTreeMap;

use connection_operator::api::{Connection, Provider, ProviderConfig};
use connection_operator::controller::{INVALID_SHARD_LABEL, SHARD_LABEL, shard};
use connection_testkit::providers::{Providers, writes};
use connection_testkit::wait::{GENEROUS, POLL};
use connection_testkit::{Cluster, TestNamespace};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use replica_support::{Replica, upstream_requests, upstream_samples};
use serde_json::{Value, json};

const SHARDS: u32 = 2;
/// Connections per account.
const PER_ACCOUNT: usize = 12;
/// The label of each account's Provider (`None`: unlabelled).
const LABELS: [Option<&str>; 4] = [Some("0"), Some("1"), None, Some("7")];
const LEASE_ARGS: [&str; 6] = ["--shards", "2", "--lease-duration-seconds", "6", "--lease-grace-seconds", "3"];

/// One provider account: a Datagrid sandbox of its own, its Provider, its shard.
struct Account {
    provider: String,
    sandbox: Providers,
    shard: u32,
}

impl Account {
    fn connection(&self, j: usize) -> String {
        format!("{}-c{j}", self.provider)
    }

    fn upstream_id(&self, j: usize) -> String {
        format!("{}_conn_{j}", self.provider.replace('-', "_"))
    }

    async fn journal(&self) -> Vec<Value> {
        self.sandbox.journal("datagrid").await
    }
}

struct World {
    cluster: Cluster,
    ns: TestNamespace,
    client: kube::Client,
    accounts: Vec<Account>,
}

impl World {
    async fn holder(&self, shard: u32) -> Option<(String, i32)> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), self.ns.name());
        let name = format!("connection-operator-shard-{shard}");
        let spec = leases.get_opt(&name).await.expect("get a shard Lease")?.spec?;
        let holder = spec.holder_identity.filter(|h| !h.is_empty())?;
        Some((holder, spec.lease_transitions.unwrap_or(0)))
    }

    /// Requests the sandboxes of `shard`'s accounts received (journal since last cleared).
    async fn shard_requests(&self, shard: u32) -> u64 {
        let mut total = 0;
        for account in self.accounts.iter().filter(|a| a.shard == shard) {
            total += account.journal().await.len() as u64;
        }
        total
    }

    async fn assert_no_429(&self) {
        for account in &self.accounts {
            let refused: Vec<Value> = account.journal().await.into_iter().filter(|r| r["status"] == 429).collect();
            assert!(refused.is_empty(), "{} was sent over its limit: {refused:?}", account.provider);
        }
    }

    /// Wait until every Connection is Ready=True for its current generation.
    async fn wait_all_ready(&self, replicas: &mut [&mut Replica]) {
        let api: Api<Connection> = Api::namespaced(self.client.clone(), self.ns.name());
        let deadline = tokio::time::Instant::now() + GENEROUS;
        loop {
            for r in replicas.iter_mut() {
                r.assert_alive();
            }
            let list = api.list(&ListParams::default()).await.expect("list Connections");
            let waiting: Vec<String> =
                list.items.iter().filter(|c| !ready(c)).map(|c| c.metadata.name.clone().unwrap_or_default()).collect();
            if list.items.len() == self.accounts.len() * PER_ACCOUNT && waiting.is_empty() {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "not Ready: {waiting:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Poll until each replica's count of upstream requests equals what the sandboxes of
    /// its shard received (`None`: a standby, which must count none).
    async fn wait_counts_match(&self, replicas: &[(&str, Option<u32>)]) {
        let deadline = tokio::time::Instant::now() + GENEROUS;
        loop {
            let mut seen = Vec::new();
            for (addr, shard) in replicas {
                let counted = upstream_requests(addr).await;
                let received = match shard {
                    Some(shard) => self.shard_requests(*shard).await,
                    None => 0,
                };
                seen.push((*shard, counted, received));
            }
            if seen.iter().all(|(_, counted, received)| counted == received) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let mut per_account = Vec::new();
                for a in &self.accounts {
                    let journal = a.journal().await;
                    let statuses: Vec<Value> = journal.iter().map(|r| r["status"].clone()).collect();
                    per_account.push((a.provider.clone(), a.shard, statuses));
                }
                let mut samples = Vec::new();
                for (addr, _) in replicas {
                    samples.push(upstream_samples(addr).await);
                }
                panic!(
                    "(shard, requests counted by its process, requests its accounts received): {seen:?}; \
                     each process's samples: {samples:?}; (account, shard, statuses received): {per_account:?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn ready(conn: &Connection) -> bool {
    conn.status.as_ref().is_some_and(|s| {
        s.observed_generation == conn.metadata.generation
            && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn manifest(i: usize, account: &Providers, label: Option<&str>) -> String {
    let name = format!("acct-{i}");
    let labels = label.map(|l| format!("\n  labels: {{{SHARD_LABEL}: \"{l}\"}}")).unwrap_or_default();
    let mut yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-token}}\nstringData: {{token: t0k3n-{i}}}\n---\n\
         apiVersion: connection-operator.dev/v1alpha1\nkind: Provider\nmetadata:\n  name: {name}{labels}\nspec:\n  type: datagrid\n  baseUrl: {}\n  credentialsRef: {{name: {name}-token, key: token}}\n  rateLimit: {{requestsPerMinute: 60, burst: 5}}\n",
        account.base_url("datagrid")
    );
    for j in 0..PER_ACCOUNT {
        yaml.push_str(&format!(
            "---\napiVersion: connection-operator.dev/v1alpha1\nkind: Connection\nmetadata: {{name: {name}-c{j}}}\nspec:\n  providerRef: {{name: {name}}}\n  connectionId: \"acct_{i}_conn_{j}\"\n  datagrid: {{name: v2}}\n"
        ));
    }
    yaml
}

/// The shard each Provider's account should land on, from the Providers as stored.
async fn expected_shards(client: &kube::Client, ns: &str) -> BTreeMap<String, u32> {
    let providers = Api::<Provider>::namespaced(client.clone(), ns).list(&ListParams::default()).await.expect("list");
    let keyed: Vec<(String, Option<String>)> = providers
        .items
        .iter()
        .map(|p| {
            let key = shard::shard_key(&ProviderConfig::from_provider(&p.spec, ns));
            let label = p.metadata.labels.as_ref().and_then(|l| l.get(SHARD_LABEL)).cloned();
            (key, label)
        })
        .collect();
    providers
        .items
        .iter()
        .zip(&keyed)
        .map(|(p, (key, _))| {
            let all = keyed.iter().map(|(k, l)| (k.as_str(), l.as_deref()));
            (p.metadata.name.clone().unwrap_or_default(), shard::assign(key, all, SHARDS))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_write_disjoint_accounts_and_a_standby_takes_over_after_sigkill() {
    let cluster = Cluster::real();
    cluster.install_crds();
    let ns = cluster.namespace("sharding");
    let client = cluster.client().await;
    let dir = tempfile::tempdir().expect("tempdir");

    let mut yaml = Vec::new();
    let mut sandboxes = Vec::new();
    for (i, label) in LABELS.iter().enumerate() {
        let sandbox = Providers::start().await;
        // What one pacer at 60/min with a burst of 5 can send in any 10 s, per route and
        // method: 5 + 10. Two processes pacing the account would each send that much.
        sandbox.rate_limit("datagrid", 15, 10.0).await;
        for j in 0..PER_ACCOUNT {
            sandbox.seed("datagrid", &format!("acct_{i}_conn_{j}"), json!({"name": "v1"})).await;
        }
        yaml.push(manifest(i, &sandbox, *label));
        sandboxes.push(sandbox);
    }
    let out = ns.kubectl().run_async(&["apply", "-f", "-"], Some(&yaml.join("---\n"))).await;
    assert!(out.ok, "kubectl apply: {}", out.stderr);
    let shards = expected_shards(&client, ns.name()).await;
    let accounts: Vec<Account> = sandboxes
        .into_iter()
        .enumerate()
        .map(|(i, sandbox)| {
            let provider = format!("acct-{i}");
            Account { shard: shards[&provider], provider, sandbox }
        })
        .collect();
    assert_eq!(accounts[0].shard, 0, "pinned by its label");
    assert_eq!(accounts[1].shard, 1, "pinned by its label");
    let world = World { cluster, ns, client, accounts };

    let kubeconfig = world.cluster.kubeconfig();
    let mut replicas: Vec<Replica> = ["replica-a", "replica-b", "replica-c"]
        .into_iter()
        .map(|name| Replica::start(&kubeconfig, world.ns.name(), dir.path(), name, &LEASE_ARGS))
        .collect();
    let mut addrs = BTreeMap::new();
    for r in replicas.iter_mut() {
        addrs.insert(r.name.clone(), r.metrics_addr().await);
    }

    // Each shard has its holder, a different one; the third process is the standby.
    let deadline = tokio::time::Instant::now() + GENEROUS;
    let holders = loop {
        for r in replicas.iter_mut() {
            r.assert_alive();
        }
        if let (Some(zero), Some(one)) = (world.holder(0).await, world.holder(1).await) {
            break [zero, one];
        }
        assert!(tokio::time::Instant::now() < deadline, "the shard Leases were not both taken");
        tokio::time::sleep(POLL).await;
    };
    assert_ne!(holders[0].0, holders[1].0, "one shard per process");
    let standby = replicas.iter().map(|r| r.name.clone()).find(|n| holders.iter().all(|(h, _)| h != n)).unwrap();
    let holder_of = |shard: u32| holders[shard as usize].0.clone();

    {
        let mut all: Vec<&mut Replica> = replicas.iter_mut().collect();
        world.wait_all_ready(&mut all).await;
    }
    let counts: Vec<(&str, Option<u32>)> = vec![
        (addrs[&holder_of(0)].as_str(), Some(0)),
        (addrs[&holder_of(1)].as_str(), Some(1)),
        (addrs[&standby].as_str(), None),
    ];
    world.wait_counts_match(&counts).await;
    world.assert_no_429().await;
    for account in &world.accounts {
        let written = writes(&account.journal().await);
        assert_eq!(written.len(), PER_ACCOUNT, "{}: one write per Connection: {written:?}", account.provider);
    }

    // Every Event about a Connection was reported by its shard's holder.
    let events: Api<Event> = Api::namespaced(world.client.clone(), world.ns.name());
    let events = events.list(&ListParams::default()).await.expect("list Events").items;
    for account in &world.accounts {
        for j in 0..PER_ACCOUNT {
            let name = account.connection(j);
            let reporters: Vec<Option<String>> = events
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str()))
                .map(|e| e.reporting_instance.clone())
                .collect();
            assert!(!reporters.is_empty(), "no Event about {name}");
            let owner = holder_of(account.shard);
            assert!(
                reporters.iter().all(|r| r.as_deref() == Some(owner.as_str())),
                "{name}: {reporters:?}, owner {owner}"
            );
        }
    }
    let bad_label: Vec<&Event> = events.iter().filter(|e| e.reason.as_deref() == Some(INVALID_SHARD_LABEL)).collect();
    assert_eq!(bad_label.len(), 1, "one Warning for the bad label: {bad_label:?}");
    let warned = bad_label[0];
    assert_eq!(warned.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("acct-3"));
    assert_eq!(warned.reporting_instance.as_deref(), Some(holder_of(world.accounts[3].shard).as_str()));

    // SIGKILL shard 1's holder: it cannot release its Lease, so the standby takes it when
    // it expires. The journals start over, so what follows is the standby's doing.
    for account in &world.accounts {
        account.sandbox.clear_journal("datagrid").await;
    }
    let before = upstream_requests(&addrs[&holder_of(0)]).await;
    let victim = replicas.iter().position(|r| r.name == holder_of(1)).unwrap();
    let mut killed = replicas.remove(victim);
    killed.child.kill().await.expect("SIGKILL shard 1's holder");
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        for r in replicas.iter_mut() {
            r.assert_alive();
        }
        let taken = world.holder(1).await.is_some_and(|(h, transitions)| h == standby && transitions > holders[1].1);
        if taken {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the standby did not take shard 1 ({:?})",
            world.holder(1).await
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(world.holder(0).await.map(|(h, _)| h), Some(holder_of(0)), "shard 0 kept its holder");

    // The standby reads every account of its new shard again (the previous holder handled
    // them last), then writes a change exactly once.
    let shard_one: Vec<&Account> = world.accounts.iter().filter(|a| a.shard == 1).collect();
    for account in &shard_one {
        let what = format!("the standby to read {} again", account.provider);
        let deadline = tokio::time::Instant::now() + GENEROUS;
        while account.journal().await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(POLL).await;
        }
    }
    let changed = &world.accounts[1];
    let patch = json!({"spec": {"datagrid": {"name": "v3"}}}).to_string();
    let out = world
        .ns
        .kubectl()
        .run_async(&["patch", "connection", &changed.connection(0), "--type", "merge", "-p", &patch], None)
        .await;
    assert!(out.ok, "kubectl patch: {}", out.stderr);
    {
        let mut alive: Vec<&mut Replica> = replicas.iter_mut().collect();
        world.wait_all_ready(&mut alive).await;
    }
    let deadline = tokio::time::Instant::now() + GENEROUS;
    while changed.sandbox.upstream("datagrid", &changed.upstream_id(0)).await["name"] != "v3" {
        assert!(tokio::time::Instant::now() < deadline, "upstream never carried v3");
        tokio::time::sleep(POLL).await;
    }
    let written = writes(&changed.journal().await);
    assert_eq!(written.len(), 1, "one upstream write after the takeover: {written:?}");
    assert_eq!(written[0]["body"], json!({"name": "v3"}));
    // The standby's requests are exactly shard 1's; shard 0's holder sent nothing to them.
    world.wait_counts_match(&[(addrs[&standby].as_str(), Some(1))]).await;
    assert_eq!(upstream_requests(&addrs[&holder_of(0)]).await - before, world.shard_requests(0).await);
    world.assert_no_429().await;
    assert!(replicas.iter().any(|r| r.name == standby && r.log_text().contains("leading; starting the controller")));
}
