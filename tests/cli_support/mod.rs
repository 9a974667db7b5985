//! What `tests/plan.rs`, `tests/import.rs` and `tests/shared_settings.rs` share: the kit's
//! operator environment (`connection_testkit::operator_env`) on the REAL control plane, with
//! the operator started only when a test wants it, and the `connection-operator` binary run
//! as its own process (`plan`, `import`) with the admin kubeconfig.

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;

use connection_testkit::Backend;
use serde_json::Value;

/// What one run of the binary printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The kit's [`connection_testkit::operator_env::Env`] (everything it offers is reached
/// through `Deref`) with Secrets and Providers given as JSON, and the binary.
pub struct Env(connection_testkit::operator_env::Env);

impl std::ops::Deref for Env {
    type Target = connection_testkit::operator_env::Env;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Env {
    /// A namespace named after `prefix` with a Secret (`<type>-credentials`) and a Provider
    /// (named after the type) per provider type; no operator yet.
    pub async fn start(prefix: &str) -> Env {
        Env(connection_testkit::operator_env::Env::prepared(Backend::Real, prefix).await)
    }

    /// A Secret with `string_data`.
    pub async fn secret(&self, name: &str, string_data: Value) {
        self.0.secret_data(name, string_data).await;
    }

    /// A Provider of `type_` named `name` with the sandbox's baseUrl, Secret
    /// `<type>-credentials`, and `extra` spec fields.
    pub async fn provider(&self, name: &str, type_: &str, extra: Value) {
        self.0.provider_with(name, type_, extra).await;
    }

    /// The `connection-operator` binary with `args` (and `stdin`), KUBECONFIG the admin's.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        run_binary(env!("CARGO_BIN_EXE_connection-operator"), args, stdin, &self.cluster.kubeconfig(), None).await
    }

    /// Write `objects` as one YAML stream into a file of `dir`.
    pub fn manifest_file(dir: &Path, file: &str, objects: &[Value]) -> String {
        let path = dir.join(file);
        std::fs::write(&path, yaml_stream(objects)).unwrap();
        path.display().to_string()
    }
}

/// `objects` as a YAML stream.
pub fn yaml_stream(objects: &[Value]) -> String {
    objects.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap())).collect()
}

/// Run `program` with `args`, `KUBECONFIG=kubeconfig`, and `PATH` prefixed by `path_first`.
pub async fn run_binary(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    kubeconfig: &Path,
    path_first: Option<&Path>,
) -> Run {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = path_first {
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", dir.display()));
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        let _ = pipe.write_all(stdin.unwrap_or("").as_bytes()).await;
    }
    let out = child.wait_with_output().await.unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
