//! Which kubectl the demo runs, and running it.
//!
//! `.tools/bin/kubectl` (built by `scripts/bootstrap` from the pinned Kubernetes release)
//! when it is there, else the first `kubectl` on `PATH`: a fresh machine with only a
//! distribution's kubectl (or gcloud's, a dispatcher that runs the kubectl matching the
//! server's minor) still runs the demo in one command.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error(
        "no kubectl: neither {tools} (scripts/bootstrap builds it) nor `kubectl` on PATH; install kubectl or run scripts/bootstrap"
    )]
    NotFound { tools: String },
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`kubectl {args}` failed ({status}): {stderr}")]
    Failed { args: String, status: std::process::ExitStatus, stderr: String },
}

/// `.tools/bin/kubectl` under `repo_root` when present, else `kubectl` from `PATH`.
pub fn find(repo_root: &Path) -> Result<PathBuf, KubectlError> {
    let tools = repo_root.join(".tools/bin/kubectl");
    if is_executable(&tools) {
        return Ok(tools);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| KubectlError::NotFound { tools: tools.display().to_string() })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One kubectl bound to one kubeconfig.
#[derive(Clone, Debug)]
pub struct Kubectl {
    pub program: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    /// Run with `input` on stdin (for `apply -f -`); its stdout on success.
    pub async fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, KubectlError> {
        let program = || self.program.display().to_string();
        let mut child = Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| KubectlError::Spawn { program: program(), source })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .await
                .map_err(|source| KubectlError::Spawn { program: program(), source })?;
            // Dropping stdin closes it, so kubectl sees the end of the manifest.
        }
        let output =
            child.wait_with_output().await.map_err(|source| KubectlError::Spawn { program: program(), source })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(KubectlError::Failed {
                args: args.join(" "),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }
}
