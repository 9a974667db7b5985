//! A Kubernetes API to test against: the real control plane (shared, or dedicated to one
//! test) or the in-process emulator, behind one handle, so a test case can run on both and
//! the emulator is measured against the real server.

use std::path::{Path, PathBuf};

use connection_sandbox::kube::KubeSandbox;
use rand::Rng;

use crate::control_plane::ControlPlane;
use crate::kubectl::Kubectl;

/// Which Kubernetes API a [`Cluster`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// kube-apiserver + etcd + kube-controller-manager built from the pinned release.
    Real,
    /// `connection-sandbox`'s Kubernetes API emulator.
    Emulator,
}

enum Inner {
    Shared(&'static ControlPlane),
    Dedicated(ControlPlane),
    Emulator { sandbox: KubeSandbox, _dir: tempfile::TempDir },
}

pub struct Cluster {
    inner: Inner,
}

impl Cluster {
    /// The run's shared real control plane; work in a [`Cluster::namespace`] of your own.
    pub fn real() -> Cluster {
        Cluster { inner: Inner::Shared(ControlPlane::shared()) }
    }

    /// A real control plane for this test alone (stopped on drop).
    pub fn real_dedicated() -> Cluster {
        Cluster { inner: Inner::Dedicated(ControlPlane::dedicated()) }
    }

    /// A fresh emulator on a free loopback port (stopped on drop).
    pub fn emulator() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let sandbox =
            KubeSandbox::start("127.0.0.1:0".parse().expect("literal address"), &dir.path().join("kubeconfig"))
                .expect("start the Kubernetes API emulator");
        Cluster { inner: Inner::Emulator { sandbox, _dir: dir } }
    }

    /// [`Cluster::real`] or [`Cluster::emulator`].
    pub fn of(backend: Backend) -> Cluster {
        match backend {
            Backend::Real => Cluster::real(),
            Backend::Emulator => Cluster::emulator(),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Shared(_) | Inner::Dedicated(_) => Backend::Real,
            Inner::Emulator { .. } => Backend::Emulator,
        }
    }

    /// The real control plane, when this is one.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        match &self.inner {
            Inner::Shared(plane) => Some(plane),
            Inner::Dedicated(plane) => Some(plane),
            Inner::Emulator { .. } => None,
        }
    }

    /// The emulator, when this is one (its admin API: `sandbox.url()` + `/_sandbox/...`).
    pub fn emulator_sandbox(&self) -> Option<&KubeSandbox> {
        match &self.inner {
            Inner::Emulator { sandbox, .. } => Some(sandbox),
            _ => None,
        }
    }

    /// An admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        match &self.inner {
            Inner::Shared(plane) => plane.kubeconfig(),
            Inner::Dedicated(plane) => plane.kubeconfig(),
            Inner::Emulator { sandbox, .. } => sandbox.kubeconfig().to_path_buf(),
        }
    }

    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig())
    }

    /// A kube-rs client with the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig()).await
    }

    /// A namespace of this test's own (`<prefix>-<random>`), deleted when dropped.
    pub fn namespace(&self, prefix: &str) -> TestNamespace {
        let suffix: String = {
            let mut rng = rand::rng();
            (0..6).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])).collect()
        };
        let prefix: String = prefix.chars().take(50).collect();
        let name = format!("{prefix}-{suffix}");
        self.kubectl().ok(&["create", "namespace", &name]);
        TestNamespace { name, kubectl: self.kubectl() }
    }

    /// Install `crds/` (`kubectl apply --server-side`) and wait until every CRD is
    /// Established. Idempotent; on the shared control plane it runs under a cross-process
    /// lock, so concurrent tests do not fight over the cluster-scoped objects.
    pub fn install_crds(&self) {
        let _guard = self.control_plane().map(|plane| plane.lock("crds"));
        let crds = crate::tools::workspace_root().join("crds");
        let kubectl = self.kubectl();
        kubectl.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=testkit",
            "-f",
            &crds.to_string_lossy(),
        ]);
        kubectl.ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=120s",
            "crd/connections.connection-operator.dev",
            "crd/providers.connection-operator.dev",
            "crd/clusterproviders.connection-operator.dev",
        ]);
    }
}

/// A kube-rs client for `kubeconfig`.
pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("kubeconfig");
    kube::Client::try_from(config).expect("kube client")
}

/// A namespace a test works in; deleted (without waiting) when dropped.
pub struct TestNamespace {
    name: String,
    kubectl: Kubectl,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// kubectl with `--namespace` set to this namespace.
    pub fn kubectl(&self) -> Kubectl {
        self.kubectl.in_namespace(&self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Best effort: the cluster may already be gone (a dedicated control plane dropped first).
        let _ = self.kubectl.run(&["delete", "namespace", &self.name, "--wait=false", "--ignore-not-found"], None);
    }
}
