//! Leader election end to end on the REAL control plane: two
//! `connection-operator run --leader-election --namespace NS` processes, as two replicas of
//! the Deployment would run, against the run's shared kube-apiserver (a namespace of the
//! test's own) and one set of provider sandboxes. Each replica has its own POD_NAME (the
//! holder identity); no POD_NAMESPACE, so the `coordination.k8s.io/v1` Lease lives in the
//! `--namespace` (src/main.rs).
//!
//! What is asserted: exactly one replica holds the Lease (read with kube-rs:
//! `holderIdentity`); only that replica talks to the provider (its own /metrics counts
//! upstream requests, the other's counts none) and a spec change through kubectl gives
//! exactly one upstream write in the provider journal; after the leader is SIGKILLed (so it
//! never releases the Lease) the other replica takes the Lease once it expires (15 s) and
//! writes the next change, again exactly once. Waits poll with a generous bound; nothing
//! asserts on durations.

mod replica_support;

use connection_operator::api::Connection;
use connection_testkit::manifests::{connection_yaml, documents, provider_yaml};
use connection_testkit::providers::{Providers, writes};
use connection_testkit::wait::{eventually, until};
use connection_testkit::{Cluster, TestNamespace};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use replica_support::{Replica, upstream_requests};
use serde_json::{Value, json};

/// The Lease the binary holds (controller::LeaseSettings::new).
const LEASE: &str = "connection-operator";
const CONN: &str = "drive";
const ID: &str = "conn_leader_drive";

struct World {
    cluster: Cluster,
    ns: TestNamespace,
    client: kube::Client,
    providers: Providers,
}

impl World {
    async fn lease(&self) -> Option<Lease> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), self.ns.name());
        leases.get_opt(LEASE).await.expect("get the Lease")
    }

    async fn holder(&self) -> Option<String> {
        self.lease().await?.spec?.holder_identity.filter(|h| !h.is_empty())
    }

    /// Wait until the Connection is Ready=True for its current generation.
    async fn wait_ready(&self, replicas: &mut [&mut Replica]) {
        let api: Api<Connection> = Api::namespaced(self.client.clone(), self.ns.name());
        until(&format!("{CONN} to be Ready"), || {
            for r in replicas.iter_mut() {
                r.assert_alive();
            }
            let api = &api;
            async move {
                let conn = api.get(CONN).await.expect("get the Connection");
                let ready = conn.status.as_ref().and_then(|s| {
                    let current = s.observed_generation == conn.metadata.generation;
                    let ready = s.conditions.iter().find(|c| c.type_ == "Ready")?;
                    Some(current && ready.status == "True")
                });
                if ready == Some(true) { Ok(()) } else { Err(format!("{:?}", conn.status)) }
            }
        })
        .await
    }

    /// `kubectl patch` the Connection's Datagrid name, wait until it is Ready for the new
    /// generation and upstream carries the name, and return the provider's writes since
    /// the journal was cleared.
    async fn change_and_collect_writes(&self, name: &str, replicas: &mut [&mut Replica]) -> Vec<Value> {
        self.providers.clear_journal("datagrid").await;
        let patch = json!({"spec": {"datagrid": {"name": name}}}).to_string();
        let out =
            self.ns.kubectl().run_async(&["patch", "connection", CONN, "--type", "merge", "-p", &patch], None).await;
        assert!(out.ok, "kubectl patch: {}", out.stderr);
        self.wait_ready(replicas).await;
        eventually(&format!("upstream to carry {name}"), || async {
            (self.providers.upstream("datagrid", ID).await["name"] == name).then_some(())
        })
        .await;
        writes(&self.providers.journal("datagrid").await)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_other_takes_over_after_sigkill() {
    let cluster = Cluster::real();
    cluster.install_crds();
    let ns = cluster.namespace("leader");
    let client = cluster.client().await;
    let providers = Providers::start().await;
    let world = World { ns, client, providers, cluster };
    let dir = tempfile::tempdir().expect("tempdir");

    world.providers.rate_limit("datagrid", 0, 60.0).await;
    let ns = world.ns.name();
    let base_url = world.providers.base_url("datagrid");
    let manifest = documents([
        provider_yaml(ns, "datagrid", &base_url, "rateLimit: {requestsPerMinute: 100000, burst: 1000}"),
        connection_yaml(ns, CONN, "datagrid", ID, "{name: v1}", ""),
    ]);
    world.providers.seed("datagrid", ID, json!({"name": "v1"})).await;
    let out = world.ns.kubectl().run_async(&["apply", "-f", "-"], Some(&manifest)).await;
    assert!(out.ok, "kubectl apply: {}", out.stderr);

    let kubeconfig = world.cluster.kubeconfig();
    let mut a = Replica::start(&kubeconfig, world.ns.name(), dir.path(), "replica-a", &["--leader-election"]);
    let mut b = Replica::start(&kubeconfig, world.ns.name(), dir.path(), "replica-b", &["--leader-election"]);
    let addr_a = a.metrics_addr().await;
    let addr_b = b.metrics_addr().await;

    // Exactly one holder, and it is one of the two replicas.
    let first = eventually("a replica to take the Lease", || {
        a.assert_alive();
        b.assert_alive();
        world.holder()
    })
    .await;
    let (mut leader, mut follower, leader_addr, follower_addr) = match first.as_str() {
        "replica-a" => (a, b, addr_a, addr_b),
        "replica-b" => (b, a, addr_b, addr_a),
        other => panic!("unexpected Lease holder {other:?}"),
    };
    let lease = world.lease().await.expect("the Lease").spec.expect("a Lease spec");
    assert_eq!(lease.lease_duration_seconds, Some(15), "{lease:?}");
    assert!(lease.renew_time.is_some() && lease.acquire_time.is_some(), "{lease:?}");
    let transitions = lease.lease_transitions.unwrap_or(0);
    world.wait_ready(&mut [&mut leader, &mut follower]).await;

    // A spec change gives one write upstream, not one per replica.
    let written = world.change_and_collect_writes("v2", &mut [&mut leader, &mut follower]).await;
    assert_eq!(written.len(), 1, "one upstream write per change: {written:?}");
    assert_eq!(written[0]["method"], "PATCH");
    assert_eq!(written[0]["body"], json!({"name": "v2"}));
    leader.assert_alive();
    follower.assert_alive();
    assert_eq!(world.holder().await.as_deref(), Some(leader.name.as_str()), "the Lease stayed with the leader");
    // Only the leader talks to the provider; the follower never started its controller.
    assert!(upstream_requests(&leader_addr).await >= 2, "the leader read and wrote upstream");
    assert_eq!(upstream_requests(&follower_addr).await, 0, "the follower must not call the provider");
    assert!(!follower.log_text().contains("leading; starting the controller"), "{}", follower.log_text());

    // SIGKILL: the leader cannot release the Lease, so the follower must wait for it to
    // expire and then take it. kube-lease-manager counts the transition with a write of its
    // own after the one that sets the holder, so both are waited for.
    leader.child.kill().await.expect("SIGKILL the leader");
    until("the follower to take the Lease (a transition counted)", || {
        follower.assert_alive();
        let (world, name, log) = (&world, follower.name.clone(), follower.log_text());
        async move {
            let lease = world.lease().await.and_then(|l| l.spec);
            let holder = lease.as_ref().and_then(|l| l.holder_identity.as_deref());
            let counted = lease.as_ref().and_then(|l| l.lease_transitions).unwrap_or(0) > transitions;
            if holder == Some(name.as_str()) && counted { Ok(()) } else { Err(format!("{lease:?}\n{log}")) }
        }
    })
    .await;

    // The new leader writes the next change, exactly once.
    let written = world.change_and_collect_writes("v3", &mut [&mut follower]).await;
    assert_eq!(written.len(), 1, "one upstream write after the takeover: {written:?}");
    assert_eq!(written[0]["method"], "PATCH");
    assert_eq!(written[0]["body"], json!({"name": "v3"}));
    assert!(upstream_requests(&follower_addr).await >= 2, "the new leader read and wrote upstream");
    assert!(follower.log_text().contains("leading; starting the controller"), "{}", follower.log_text());
    follower.assert_alive();
}
