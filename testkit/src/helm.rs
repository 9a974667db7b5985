//! The real helm CLI (`.tools/bin/helm`, built by `scripts/bootstrap`), run as its own
//! process against one kubeconfig, with cache, config and data directories of its own: a
//! test never reads or writes the developer's `~/.config/helm` or repositories, and two
//! tests never share Helm state except the release Secrets in the cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::kubectl::Output;

/// helm bound to a kubeconfig (or to none, for `lint` and `template`).
#[derive(Clone, Debug)]
pub struct Helm {
    program: PathBuf,
    kubeconfig: Option<PathBuf>,
    home: Arc<tempfile::TempDir>,
}

impl Helm {
    /// helm talking to the cluster of `kubeconfig`.
    pub fn new(kubeconfig: &Path) -> Helm {
        Helm { kubeconfig: Some(kubeconfig.to_path_buf()), ..Helm::offline() }
    }

    /// helm without a cluster: `lint`, `template`, `show`.
    pub fn offline() -> Helm {
        let home = tempfile::Builder::new().prefix("helm-home-").tempdir().expect("tempdir for Helm's state");
        Helm { program: crate::tools::helm(), kubeconfig: None, home: Arc::new(home) }
    }

    /// A file in this helm's own directory holding `values` (JSON is YAML), for `-f`.
    pub fn values_file(&self, values: &Value) -> PathBuf {
        let file = tempfile::Builder::new()
            .prefix("values-")
            .suffix(".json")
            .tempfile_in(self.home.path())
            .expect("values file");
        std::fs::write(file.path(), values.to_string()).expect("write a values file");
        // Kept until this helm's directory goes.
        file.into_temp_path().keep().expect("keep the values file")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        let home = self.home.path();
        command
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            // Only the kubeconfig given here; no context or namespace from the environment.
            .env_remove("KUBECONFIG")
            .env_remove("HELM_KUBECONTEXT")
            .env_remove("HELM_NAMESPACE")
            .env_remove("HELM_DRIVER");
        match &self.kubeconfig {
            Some(kubeconfig) => command.arg("--kubeconfig").arg(kubeconfig),
            // Nothing to reach: a command that needed a cluster fails instead of finding one.
            None => command.arg("--kubeconfig").arg(home.join("no-cluster")),
        };
        command.args(args).stdin(Stdio::null());
        command
    }

    /// Run helm; what it printed.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run and require success; its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.ok, "helm {} failed:\n{}{}", args.join(" "), out.stdout, out.stderr);
        out.stdout
    }

    /// Run with `-o json` and require success; the JSON it printed.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json"]);
        let stdout = self.ok(&all);
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("helm {} printed no JSON ({e}): {stdout}", args.join(" ")))
    }

    /// Run, require failure; helm's error text.
    #[track_caller]
    pub fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.ok, "helm {} succeeded where it should fail:\n{}", args.join(" "), out.stdout);
        out.stderr
    }
}

impl Cluster {
    /// The real helm with this cluster's admin kubeconfig.
    pub fn helm(&self) -> Helm {
        Helm::new(&self.kubeconfig())
    }
}
