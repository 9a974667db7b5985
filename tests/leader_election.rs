//! Leader election end to end (issue 6): two `connection-operator run --leader-election`
//! processes against one Kubernetes API emulator and one set of provider sandboxes, as two
//! replicas of the Deployment would run (each with POD_NAMESPACE and its own POD_NAME, which
//! name the Lease's namespace and the holder identity, see src/main.rs).
//!
//! What is asserted: exactly one replica holds the `coordination.k8s.io/v1` Lease; only that
//! replica talks to the provider (its own /metrics counts upstream requests, the other's
//! counts none) and a spec change through kubectl gives exactly one upstream write in the
//! provider journal; after the leader is SIGKILLed (so it never releases the Lease) the other
//! replica takes the Lease once it expires and writes the next change, again exactly once.
//! Waits poll with a generous bound; nothing asserts on durations.

#[path = "e2e_support/mod.rs"]
mod e2e_support;
#[path = "../examples/demo/stack.rs"]
mod stack;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use e2e_support::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const NS: &str = "leader";
/// The Lease the binary holds (controller::LeaseSettings::new).
const LEASE: &str = "connection-operator";
const CONN: &str = "drive";
const ID: &str = "conn_leader_drive";

/// One replica: the operator binary as a child process, logging to a file.
struct Replica {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn start(world: &World, dir: &Path, name: &'static str) -> Replica {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create the replica log");
        let err = file.try_clone().expect("clone the log handle");
        let child = Command::new(operator())
            .args(["run", "--metrics-addr", "127.0.0.1:0", "--log-format", "text", "--leader-election", "--concurrency", "4"])
            .env("KUBECONFIG", world.stack.kubeconfig())
            // What the Deployment passes through the downward API.
            .env("POD_NAMESPACE", NS)
            .env("POD_NAME", name)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn connection-operator");
        Replica { name, child, log }
    }

    fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!("replica {} exited: {status}\n{}", self.name, self.log_text());
        }
    }

    /// The address of /metrics, from the startup log line (the port is chosen by the OS).
    async fn metrics_addr(&mut self) -> String {
        poll(&format!("{} to serve /metrics", self.name), GENEROUS, || {
            self.assert_alive();
            let text = self.log_text();
            let line = text.lines().find(|l| l.contains("serving /metrics"))?;
            let addr = line.split_whitespace().find_map(|w| w.strip_prefix("addr="))?;
            Some(addr.to_string())
        })
        .await
    }
}

/// Log files may carry ANSI colour codes; drop every `ESC [ ... m` sequence.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Poll a synchronous check every 250 ms until it returns Some, failing after `bound`.
async fn poll<T>(what: &str, bound: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sum of `connection_operator_upstream_requests_total` samples on a replica's /metrics.
async fn upstream_requests(addr: &str) -> u64 {
    let text = reqwest::get(format!("http://{addr}/metrics")).await.expect("GET /metrics").text().await.expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with("connection_operator_upstream_requests_total{"))
        .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| panic!("bad sample: {l}")) as u64)
        .sum()
}

async fn holder(world: &World) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), NS);
    let lease = leases.get_opt(LEASE).await.expect("get the Lease")?;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// `kubectl patch` the Connection's Datagrid name, wait until it is Ready for the new
/// generation and upstream carries the name, and return the provider's writes since
/// the journal was cleared.
async fn change_and_collect_writes(world: &World, name: &str) -> Vec<Value> {
    world.stack.clear_journal("datagrid").await.expect("clear the journal");
    let patch = json!({"spec": {"datagrid": {"name": name}}}).to_string();
    world.kubectl(&["patch", "connection", "-n", NS, CONN, "--type", "merge", "-p", &patch]).await;
    world.wait_all_ready(NS, 1).await;
    world
        .eventually("upstream to carry the change", || async {
            (world.upstream("datagrid", ID).await["name"] == name).then_some(())
        })
        .await;
    writes(&world.journal("datagrid").await).into_iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_other_takes_over_after_sigkill() {
    let world = World::start(&[NS]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    world.stack.provider_rate_limit("datagrid", 0, 60.0).await.expect("disable the sandbox limit");
    world.apply_provider(NS, "datagrid", "rateLimit: {requestsPerMinute: 100000, burst: 1000}").await;
    world.seed("datagrid", ID, json!({"name": "v1"})).await;
    world.apply(&connection_yaml(NS, CONN, "datagrid", ID, "{name: v1}", "")).await;

    let mut a = Replica::start(&world, dir.path(), "replica-a");
    let mut b = Replica::start(&world, dir.path(), "replica-b");
    let addr_a = a.metrics_addr().await;
    let addr_b = b.metrics_addr().await;

    // Exactly one holder, and it is one of the two replicas.
    let first = world.eventually("a replica to hold the Lease", || async { holder(&world).await }).await;
    let (mut leader, mut follower, leader_addr, follower_addr) = match first.as_str() {
        "replica-a" => (a, b, addr_a, addr_b),
        "replica-b" => (b, a, addr_b, addr_a),
        other => panic!("unexpected Lease holder {other:?}"),
    };
    world.wait_all_ready(NS, 1).await;

    // A spec change gives one write upstream, not one per replica.
    let written = change_and_collect_writes(&world, "v2").await;
    assert_eq!(written.len(), 1, "one upstream write per change: {written:?}");
    assert_eq!(written[0]["method"], "PATCH");
    assert_eq!(written[0]["body"], json!({"name": "v2"}));
    leader.assert_alive();
    follower.assert_alive();
    assert_eq!(holder(&world).await.as_deref(), Some(leader.name), "the Lease stayed with the leader");
    // Only the leader talks to the provider; the follower never started its controller.
    assert!(upstream_requests(&leader_addr).await >= 2, "the leader read and wrote upstream");
    assert_eq!(upstream_requests(&follower_addr).await, 0, "the follower must not call the provider");
    assert!(!follower.log_text().contains("leading; starting the controller"), "{}", follower.log_text());

    // SIGKILL: the leader cannot release the Lease, so the follower must wait for it to
    // expire and then take it.
    leader.child.kill().await.expect("SIGKILL the leader");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let taken = loop {
        follower.assert_alive();
        if let Some(h) = holder(&world).await.filter(|h| h == follower.name) {
            break h;
        }
        assert!(tokio::time::Instant::now() < deadline, "the follower did not take the Lease\n{}", follower.log_text());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(taken, follower.name);

    // The new leader writes the next change, exactly once.
    let written = change_and_collect_writes(&world, "v3").await;
    assert_eq!(written.len(), 1, "one upstream write after the takeover: {written:?}");
    assert_eq!(written[0]["method"], "PATCH");
    assert_eq!(written[0]["body"], json!({"name": "v3"}));
    assert!(upstream_requests(&follower_addr).await >= 2, "the new leader read and wrote upstream");
    assert!(follower.log_text().contains("leading; starting the controller"), "{}", follower.log_text());
    follower.assert_alive();
}
