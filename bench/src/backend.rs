//! The Kubernetes control plane a benchmark runs on: the emulator (`connection-sandbox
//! kube`, its own process) or a real one (kube-apiserver, etcd and kube-controller-manager
//! as `scripts/control-plane` starts them: given by `--kubeconfig` or
//! `CONNECTION_OPERATOR_CONTROL_PLANE`, or started for this run through testkit's
//! [`ControlPlane::dedicated`] and stopped at its end).

use std::path::{Path, PathBuf};

use anyhow::Context;
use connection_testkit::ControlPlane;
use connection_testkit::control_plane::SHARED_ENV;

use crate::procs::Sandbox;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ControlPlaneKind {
    Real,
    Emulator,
}

impl ControlPlaneKind {
    pub fn name(self) -> &'static str {
        match self {
            ControlPlaneKind::Real => "real",
            ControlPlaneKind::Emulator => "emulator",
        }
    }
}

pub struct Backend {
    pub kind: ControlPlaneKind,
    kubeconfig: PathBuf,
    /// The control plane's processes, by report name.
    processes: Vec<(String, u32)>,
    /// Where the kubeconfig came from, for the report.
    pub origin: String,
    _emulator: Option<Sandbox>,
    _plane: Option<ControlPlane>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// A fresh emulator process on a free loopback port.
    pub fn emulator(sandbox_binary: &Path, log: &Path) -> anyhow::Result<Backend> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let kubeconfig_arg = kubeconfig.to_string_lossy().into_owned();
        let sandbox =
            Sandbox::start(sandbox_binary, &["kube", "--addr", "127.0.0.1:0", "--kubeconfig", &kubeconfig_arg], log)
                .context("starting the Kubernetes emulator")?;
        Ok(Backend {
            kind: ControlPlaneKind::Emulator,
            kubeconfig,
            processes: vec![("kube_emulator".into(), sandbox.pid())],
            origin: "connection-sandbox kube, started for this run".into(),
            _emulator: Some(sandbox),
            _plane: None,
            _dir: Some(dir),
        })
    }

    /// The real control plane: `kubeconfig` when given (its processes are measured when the
    /// kubeconfig sits in a `scripts/control-plane` directory, next to its `pids` file), else
    /// the one `CONNECTION_OPERATOR_CONTROL_PLANE` names, else a dedicated one.
    pub fn real(kubeconfig: Option<PathBuf>) -> anyhow::Result<Backend> {
        let backend = |kubeconfig: PathBuf, origin: String, plane: Option<ControlPlane>| {
            let processes = kubeconfig.parent().map(control_plane_processes).unwrap_or_default();
            Backend {
                kind: ControlPlaneKind::Real,
                kubeconfig,
                processes,
                origin,
                _emulator: None,
                _plane: plane,
                _dir: None,
            }
        };
        if let Some(kubeconfig) = kubeconfig {
            anyhow::ensure!(kubeconfig.is_file(), "--kubeconfig {} is not a file", kubeconfig.display());
            let origin = format!("--kubeconfig {}", kubeconfig.display());
            return Ok(backend(kubeconfig, origin, None));
        }
        if let Some(dir) = std::env::var_os(SHARED_ENV) {
            let kubeconfig = Path::new(&dir).join("kubeconfig");
            anyhow::ensure!(
                kubeconfig.is_file(),
                "{SHARED_ENV}={} has no kubeconfig: start it with scripts/control-plane up DIR",
                kubeconfig.display()
            );
            return Ok(backend(kubeconfig, format!("{SHARED_ENV}={}", Path::new(&dir).display()), None));
        }
        eprintln!("bench: starting a dedicated control plane (scripts/control-plane up)");
        let plane = ControlPlane::dedicated();
        Ok(backend(plane.kubeconfig(), "scripts/control-plane, started for this run".into(), Some(plane)))
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The control plane's processes (name, pid) to measure.
    pub fn processes(&self) -> Vec<(String, u32)> {
        self.processes.clone()
    }
}

/// `DIR/pids` of `scripts/control-plane` (lines `NAME PID`), without its watchdog, with the
/// names the report uses (`kube_apiserver`, `etcd`, `kube_controller_manager`).
fn control_plane_processes(dir: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(dir.join("pids")).map(|text| parse_pids(&text)).unwrap_or_default()
}

fn parse_pids(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|line| {
            let (name, pid) = line.split_once(' ')?;
            let pid = pid.trim().parse().ok()?;
            (name != "watchdog").then(|| (name.replace('-', "_"), pid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_control_plane_pids_file() {
        let pids = parse_pids("etcd 10\nkube-apiserver 11\nkube-controller-manager 12\nwatchdog 13\ngarbage\n");
        assert_eq!(
            pids,
            [("etcd".to_owned(), 10), ("kube_apiserver".to_owned(), 11), ("kube_controller_manager".to_owned(), 12)]
        );
    }
}
