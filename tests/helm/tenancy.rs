//! What the operator works on in these tests, created as the admin: a `tenants` namespace
//! (Providers, their Secrets, Connections), a `platform` namespace (the ClusterProvider's
//! Secret, outside the watched namespace) and a ClusterProvider with a unique name (it is
//! cluster-scoped, and the control plane may be shared).

use connection_testkit::{Cluster, Kubectl, TestNamespace};
use serde_json::{Value, json};

use super::release::get_json;

pub const GROUP_VERSION: &str = "connection-operator.dev/v1alpha1";

pub struct Tenancy {
    pub tenants: TestNamespace,
    pub platform: TestNamespace,
    /// The ClusterProvider's name.
    pub cluster_provider: String,
    kubectl: Kubectl,
}

impl Tenancy {
    pub fn new(cluster: &Cluster) -> Self {
        let tenants = cluster.namespace("tenants");
        let platform = cluster.namespace("platform");
        let suffix = tenants.name().rsplit('-').next().expect("a random suffix");
        Tenancy { cluster_provider: format!("datagrid-{suffix}"), tenants, platform, kubectl: cluster.kubectl() }
    }

    pub fn tenants(&self) -> &str {
        self.tenants.name()
    }

    pub fn platform(&self) -> &str {
        self.platform.name()
    }

    /// `kubectl create -f -` of `obj` as the admin.
    #[track_caller]
    pub fn create(&self, obj: Value) {
        self.kubectl.ok_with(&["create", "-f", "-"], Some(&obj.to_string()));
    }

    #[track_caller]
    pub fn secret(&self, namespace: &str, name: &str, token: &str) {
        self.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "stringData": {"token": token}}));
    }

    /// A ConfigMap of shared settings.
    #[track_caller]
    pub fn config_map(&self, namespace: &str, name: &str, data: Value) {
        self.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}));
    }

    /// Provider `<type>` in tenants, its token in Secret `<type>-credentials` there.
    #[track_caller]
    pub fn provider(&self, type_: &str, base_url: &str) {
        self.create(json!({"apiVersion": GROUP_VERSION, "kind": "Provider", "metadata": {"name": type_, "namespace": self.tenants()},
            "spec": {"type": type_, "baseUrl": base_url, "credentialsRef": {"name": format!("{type_}-credentials"), "key": "token"}, "timeoutSeconds": 5}}));
    }

    /// The datagrid ClusterProvider, its token in Secret `datagrid-credentials` in platform.
    #[track_caller]
    pub fn datagrid_cluster_provider(&self, base_url: &str) {
        self.create(json!({"apiVersion": GROUP_VERSION, "kind": "ClusterProvider", "metadata": {"name": self.cluster_provider},
            "spec": {"type": "datagrid", "baseUrl": base_url, "credentialsRef": {"name": "datagrid-credentials", "namespace": self.platform(), "key": "token"}, "timeoutSeconds": 5}}));
    }

    /// Connection `name` in tenants.
    #[track_caller]
    pub fn connection(&self, name: &str, spec: Value) {
        self.create(json!({"apiVersion": GROUP_VERSION, "kind": "Connection", "metadata": {"name": name, "namespace": self.tenants()}, "spec": spec}));
    }

    #[track_caller]
    pub fn get_connection(&self, name: &str) -> Value {
        get_json(&self.kubectl, &["connection", name, "--namespace", self.tenants()])
    }

    /// The Connection's Ready condition, once it is about the current generation.
    pub fn ready(&self, name: &str) -> Option<Value> {
        let c = self.get_connection(name);
        let ready = c["status"]["conditions"].as_array()?.iter().find(|x| x["type"] == "Ready")?.clone();
        (ready["observedGeneration"] == c["metadata"]["generation"]).then_some(ready)
    }

    /// Whether the Connection is Ready=True InSync for its current generation.
    pub fn in_sync(&self, name: &str) -> bool {
        self.ready(name).is_some_and(|r| r["status"] == "True" && r["reason"] == "InSync")
    }

    pub fn kubectl(&self) -> &Kubectl {
        &self.kubectl
    }
}

impl Drop for Tenancy {
    fn drop(&mut self) {
        // Best effort, before the namespaces go: no operator may be left to release the
        // cleanup finalizer, which would keep the tenants namespace terminating for ever.
        let tenants = self.tenants.name().to_string();
        let out = self.kubectl.run(&["get", "connections", "--namespace", &tenants, "-o", "name"], None);
        for name in out.stdout.lines().filter(|l| !l.is_empty()) {
            let _ = self.kubectl.run(
                &["patch", name, "--namespace", &tenants, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#],
                None,
            );
        }
        let _ = self
            .kubectl
            .run(&["delete", "clusterprovider", &self.cluster_provider, "--ignore-not-found", "--wait=false"], None);
    }
}
