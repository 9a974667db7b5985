//! Acting as a ServiceAccount on the real control plane, the way a pod does: a token from
//! the TokenRequest API (`kubectl create token`), in a kubeconfig with the API server's URL
//! (from the admin kubeconfig) and the control plane's CA, so the real authenticator and
//! the real RBAC authorizer judge every call.

use std::path::{Path, PathBuf};

use crate::api_calls::ApiCalls;
use crate::cluster::Cluster;

/// A ServiceAccount's credentials: its token and a kubeconfig holding it.
pub struct ServiceAccountCredentials {
    /// `system:serviceaccount:NS:NAME`, the user RBAC sees.
    pub user: String,
    token: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServiceAccountCredentials {
    /// The kubeconfig (for `KUBECONFIG`, `--kubeconfig`, or [`ServiceAccountCredentials::client`]).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The bearer token itself (a JWT), e.g. to check it never shows up in a log.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A kube-rs client authenticated with the token.
    pub async fn client(&self) -> kube::Client {
        crate::cluster::client_for(&self.kubeconfig).await
    }

    /// A kube-rs client authenticated with the token, recording every call it makes and the
    /// API server's answer (see [`ApiCalls`]).
    pub async fn recorded_client(&self) -> (kube::Client, ApiCalls) {
        let calls = ApiCalls::default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("kubeconfig");
        let client = kube::client::ClientBuilder::try_from(config)
            .expect("kube client stack")
            .with_layer(&calls.layer())
            .build();
        (client, calls)
    }
}

impl Cluster {
    /// A TokenRequest token for the ServiceAccount `namespace/name` (which must exist), valid
    /// for two hours, and a kubeconfig holding it. Real control plane only: the emulator mints
    /// its tokens through its admin API instead.
    pub fn service_account(&self, namespace: &str, name: &str) -> ServiceAccountCredentials {
        let plane =
            self.control_plane().expect("ServiceAccount tokens come from the real control plane's TokenRequest API");
        let kubectl = self.kubectl();
        let token =
            kubectl.ok(&["create", "token", name, "--namespace", namespace, "--duration=2h"]).trim().to_string();
        let admin = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("read the admin kubeconfig");
        let server = admin
            .clusters
            .iter()
            .find_map(|c| c.cluster.as_ref().and_then(|c| c.server.clone()))
            .expect("the admin kubeconfig names the API server");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let user = format!("system:serviceaccount:{namespace}:{name}");
        let yaml = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "control-plane", "cluster": {"server": server, "certificate-authority": plane.ca_cert()}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": user, "context": {"cluster": "control-plane", "user": user, "namespace": namespace}}],
            "current-context": user,
        });
        // JSON is YAML; kubectl, kube-rs and the operator's KUBECONFIG all read it.
        std::fs::write(&kubeconfig, yaml.to_string()).expect("write the ServiceAccount kubeconfig");
        ServiceAccountCredentials { user, token, kubeconfig, _dir: dir }
    }
}
