//! The real control plane (kube-apiserver, etcd, kube-controller-manager), started and
//! stopped by `scripts/control-plane`, so tests run exactly what a developer runs by hand.
//!
//! One control plane serves a whole test run: `scripts/test` starts it and exports
//! `CONNECTION_OPERATOR_CONTROL_PLANE=DIR`; without that variable (a single test run with
//! `cargo nextest run ...`), the first test of each process starts one and it stops when
//! the process ends (the script's `--owner-pid` watchdog). Tests share it through a
//! namespace each; cluster-scoped fixtures are created under a cross-process file lock
//! ([`ControlPlane::lock`]). A test that needs the cluster to itself (a cluster-wide
//! operator, etcd compaction) takes a [`ControlPlane::dedicated`] one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    /// Dedicated control planes are stopped (and their directory removed) on drop.
    owned: Option<tempfile::TempDir>,
}

/// The environment variable naming the run's shared control plane directory.
pub const SHARED_ENV: &str = "CONNECTION_OPERATOR_CONTROL_PLANE";

impl ControlPlane {
    /// The control plane shared by this test run (see the module docs).
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var_os(SHARED_ENV) {
            Some(dir) => {
                let plane = ControlPlane { dir: PathBuf::from(dir), owned: None };
                assert!(
                    plane.kubeconfig().is_file(),
                    "{SHARED_ENV}={} has no kubeconfig: start it with scripts/control-plane up DIR",
                    plane.dir.display()
                );
                plane
            }
            None => {
                // Kept for the whole process: statics are never dropped, the watchdog stops it.
                let dir = tempfile::Builder::new().prefix("control-plane-").tempdir().expect("tempdir").keep();
                up(&dir);
                ControlPlane { dir, owned: None }
            }
        })
    }

    /// A control plane of this test's own, stopped when dropped.
    pub fn dedicated() -> ControlPlane {
        let owned = tempfile::Builder::new().prefix("control-plane-").tempdir().expect("tempdir");
        up(owned.path());
        ControlPlane { dir: owned.path().to_path_buf(), owned: Some(owned) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The CA that signed the API server's serving certificate and the client certificates.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("pki/ca.crt")
    }

    /// A file under the control plane's directory, for state tests keep next to it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A cross-process exclusive lock named `name` (held until the guard drops), for
    /// cluster-scoped fixtures several test processes may create at once.
    pub fn lock(&self, name: &str) -> File {
        let locks = self.dir.join("locks");
        std::fs::create_dir_all(&locks).expect("locks directory");
        let file = File::create(locks.join(format!("{name}.lock"))).expect("lock file");
        file.lock().expect("lock");
        file
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.owned.is_some() {
            let _ = Command::new(crate::tools::control_plane_script()).arg("down").arg(&self.dir).output();
        }
    }
}

/// `scripts/control-plane up DIR --owner-pid <this process>`.
fn up(dir: &Path) {
    let out = Command::new(crate::tools::control_plane_script())
        .arg("up")
        .arg(dir)
        .arg("--owner-pid")
        .arg(std::process::id().to_string())
        .output()
        .expect("run scripts/control-plane");
    assert!(
        out.status.success(),
        "scripts/control-plane up {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
