//! Shared harness of the client tiers (kubectl, kube-rs, Helm) against the Kubernetes
//! emulator. Each test starts its own emulator process (`connection-sandbox kube` on
//! 127.0.0.1 port 0), so tests are independent under nextest's process-per-test model; each
//! test also works in its own namespace so a shared emulator would work the same way.
//!
//! Included by each tier's test file with `#[path = "kube_support/mod.rs"] mod kube_support;`,
//! so a helper one tier does not use is dead code in that binary (hence the `allow`).
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

/// The real kubectl: a dispatcher that asks the server's `/version` and runs the kubectl of
/// that minor (1.27-1.33).
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// How long a test waits for something that should happen promptly (a line of output, an
/// object to appear). Generous on purpose: the machine is shared, and a wait that ends early
/// because the condition holds costs nothing.
pub const GENEROUS: Duration = Duration::from_secs(60);

/// Path of a fixture under `sandbox/tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// The test tools installed by `scripts/bootstrap` (`.tools/` at the workspace root, or
/// `$CONNECTION_OPERATOR_TOOLS`).
pub fn tools_dir() -> PathBuf {
    let dir = std::env::var_os("CONNECTION_OPERATOR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools"));
    assert!(
        dir.is_dir(),
        "test tools not found at {}: run scripts/bootstrap first",
        dir.display()
    );
    dir
}

/// One running emulator process with its kubeconfig; killed on drop.
pub struct Emulator {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl Emulator {
    /// Start `connection-sandbox kube --addr 127.0.0.1:0 --kubeconfig FILE` and wait for its
    /// `listening on http://ADDR` line (printed after the kubeconfig is written).
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// [`Emulator::start`] with extra environment variables (e.g. `RUST_LOG`). The emulator's
    /// log (stderr) goes to a file, printed when the test fails ([`Emulator::log`]).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let log = std::fs::File::create(dir.path().join("emulator.log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_connection-sandbox"))
            .args(["kube", "--addr", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn connection-sandbox kube");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the first line on a thread, so an emulator that never gets ready fails the
        // test after GENEROUS instead of hanging it; the thread then keeps draining stdout
        // so the emulator never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        let first = rx.recv_timeout(GENEROUS).unwrap_or_default();
        let Some(addr) = first.trim().strip_prefix("listening on http://").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("emulator.log")).unwrap_or_default();
            panic!("unexpected first line from the emulator: {first:?}\n--- emulator log ---\n{log}");
        };
        assert!(kubeconfig.is_file(), "the emulator did not write {}", kubeconfig.display());
        Self { child, dir, addr }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Everything the emulator logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }

    /// A scratch directory that lives as long as the emulator.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A `kubectl` command with this emulator's kubeconfig and a private discovery cache
    /// (so no state leaks between tests through `~/.kube/cache`).
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path());
        cmd
    }

    /// Run kubectl to completion.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        self.kubectl_stdin(args, "")
    }

    /// Run kubectl to completion with `input` on its stdin (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).expect("write kubectl stdin");
        drop(stdin);
        let out = child.wait_with_output().expect("wait for kubectl");
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `kubectl apply -f -` of a YAML document, with extra flags.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_stdin(&args, yaml)
    }

    /// Install the Widget test CRD and wait until kubectl can use it.
    pub fn install_widget_crd(&self) {
        let crd = fixture("widget-crd.yaml");
        self.kubectl(&["apply", "-f", crd.to_str().expect("utf-8 path")]).ok();
        self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=60s",
        ])
        .ok();
    }

    /// Create a namespace for one test.
    pub fn namespace(&self, name: &str) -> String {
        self.kubectl(&["create", "namespace", name]).ok();
        name.to_string()
    }

    /// Start a long-running kubectl (e.g. `get -w`) whose stdout lines are read on demand.
    pub fn kubectl_stream(&self, args: &[&str]) -> Stream {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || forward_lines(stdout, tx));
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Stream { child, lines: rx, stderr: Some(stderr) }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- emulator log ---\n{}", self.log());
        }
    }
}

fn forward_lines(stdout: ChildStdout, tx: mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if tx.send(line).is_err() {
            break;
        }
    }
}

/// The outcome of one finished kubectl run.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Assert success; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(
            self.status.success(),
            "kubectl {:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.args,
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Assert failure; returns stderr.
    #[track_caller]
    pub fn fails(&self) -> &str {
        assert!(
            !self.status.success(),
            "kubectl {:?} unexpectedly succeeded:\nstdout: {}\nstderr: {}",
            self.args,
            self.stdout,
            self.stderr
        );
        &self.stderr
    }

    /// Assert success and parse stdout as JSON (for `-o json`).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(out)
            .unwrap_or_else(|e| panic!("kubectl {:?} printed no JSON ({e}): {out}", self.args))
    }
}

/// A running kubectl whose output lines arrive on a channel; killed on drop.
pub struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Stream {
    /// The next stdout line, waiting at most [`GENEROUS`].
    #[track_caller]
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(GENEROUS) {
            Ok(line) => line,
            Err(e) => {
                let stderr = self.stop();
                panic!("no line from kubectl within {GENEROUS:?} ({e}); stderr: {stderr}")
            }
        }
    }

    /// Read lines until one satisfies `pred`, returning every line read.
    #[track_caller]
    pub fn lines_until(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.next_line();
            let done = pred(&line);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    /// Wait (at most [`GENEROUS`]) for kubectl to exit by itself; returns its exit status and
    /// the stdout lines not read yet.
    #[track_caller]
    pub fn finish(&mut self) -> (ExitStatus, Vec<String>) {
        let deadline = std::time::Instant::now() + GENEROUS;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll kubectl") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let stderr = self.stop();
                panic!("kubectl did not exit within {GENEROUS:?}; stderr: {stderr}");
            }
            thread::sleep(Duration::from_millis(100));
        };
        // The reader thread ends at EOF, which follows the exit.
        let lines = self.lines.iter().collect();
        (status, lines)
    }

    /// Kill kubectl; returns what it printed on stderr.
    pub fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `probe` until it returns `Some`, for at most [`GENEROUS`].
#[track_caller]
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + GENEROUS;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}
