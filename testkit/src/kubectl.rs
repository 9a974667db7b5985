//! The real kubectl, run as its own process against a kubeconfig.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one kubectl run printed.
#[derive(Clone, Debug)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// kubectl bound to one kubeconfig (and optionally a default namespace).
#[derive(Clone, Debug)]
pub struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
    namespace: Option<String>,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Self {
        Kubectl { program: crate::tools::kubectl(), kubeconfig: kubeconfig.to_path_buf(), namespace: None }
    }

    /// The same kubectl with `--namespace NS` on every command.
    pub fn in_namespace(&self, namespace: &str) -> Self {
        Kubectl { namespace: Some(namespace.to_string()), ..self.clone() }
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        if let Some(ns) = &self.namespace {
            command.arg("--namespace").arg(ns);
        }
        command.args(args);
        command
    }

    /// Run with `stdin` (empty when `None`).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        let mut pipe = child.stdin.take().expect("piped stdin");
        // kubectl may exit before reading stdin (a usage error); that is its answer, not ours.
        let _ = pipe.write_all(stdin.unwrap_or("").as_bytes());
        drop(pipe);
        let out = child.wait_with_output().expect("wait for kubectl");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Run and require success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    /// [`Kubectl::ok`] with `stdin`.
    pub fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(out.ok, "kubectl {} failed:\n{}", args.join(" "), out.stderr);
        out.stdout
    }

    /// The API server's release (`v1.37.2`): what Argo CD passes to `helm template
    /// --kube-version`, so that a chart renders for the cluster it will be applied to.
    pub fn server_version(&self) -> String {
        let out: serde_json::Value =
            serde_json::from_str(&self.ok(&["version", "-o", "json"])).expect("kubectl version -o json");
        out["serverVersion"]["gitVersion"].as_str().expect("serverVersion.gitVersion").to_owned()
    }

    /// `kubectl apply -f -` of `manifest`, which must succeed.
    pub fn apply(&self, manifest: &str) -> String {
        self.ok_with(&["apply", "-f", "-"], Some(manifest))
    }

    /// `kubectl <verb> -f -` of `manifest`, which must be refused; kubectl's error text.
    pub fn refused(&self, verb: &str, manifest: &str) -> String {
        let out = self.run(&[verb, "-f", "-"], Some(manifest));
        assert!(!out.ok, "kubectl {verb} accepted what it should refuse:\n{manifest}\n{}", out.stdout);
        out.stderr
    }

    /// [`Kubectl::run`] on a blocking thread, for async tests.
    pub async fn run_async(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let this = self.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            this.run(&args, stdin.as_deref())
        })
        .await
        .expect("kubectl thread")
    }
}
