//! Shared harness of the client tiers (kubectl, kube-rs, raw HTTP, Helm). Every case is
//! written once as `fn case(backend: Backend)` and runs twice: on the real control plane
//! (kube-apiserver 1.37.2, shared by the run; a test works in namespaces of its own) and on
//! the emulator (a fresh one per test). [`tests_on_both_backends!`] and
//! [`async_tests_on_both_backends!`] emit the two tests, `real::case` and `emulator::case`,
//! so the emulator is measured against the real server by the same assertions.
//!
//! Included by each tier's test file with `#[macro_use] #[path = "kube_support/mod.rs"] mod
//! kube_support;`, so a helper one tier does not use is dead code in that binary (hence the
//! `allow`).
#![allow(dead_code, unused_macros)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

pub use connection_testkit::{Backend, Cluster, Instrumented, TestNamespace};

/// For each `fn NAME(backend: Backend)` named, the tests `emulator::NAME` and `real::NAME`.
macro_rules! tests_on_both_backends {
    ($($name:ident),+ $(,)?) => {
        /// The cases on the emulator (one per test).
        mod emulator {
            $( #[test] fn $name() { super::$name(connection_testkit::Backend::Emulator) } )+
        }
        /// The same cases on the real control plane.
        mod real {
            $( #[test] fn $name() { super::$name(connection_testkit::Backend::Real) } )+
        }
    };
}

/// [`tests_on_both_backends!`] for `async fn NAME(backend: Backend)`.
macro_rules! async_tests_on_both_backends {
    ($($name:ident),+ $(,)?) => {
        /// The cases on the emulator (one per test).
        mod emulator {
            $( #[tokio::test] async fn $name() { super::$name(connection_testkit::Backend::Emulator).await } )+
        }
        /// The same cases on the real control plane.
        mod real {
            $( #[tokio::test] async fn $name() { super::$name(connection_testkit::Backend::Real).await } )+
        }
    };
}

/// How long a test waits for something that should happen promptly (a line of output, an
/// object to appear). Generous on purpose: the machine is shared, and a wait that ends early
/// because the condition holds costs nothing.
pub const GENEROUS: Duration = connection_testkit::wait::GENEROUS;

/// An HTTP answer read whole: status, headers, and the body as JSON (a string when it is
/// not JSON).
pub struct Reply {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Reply { status, headers, body }
    }
}

/// Path of a fixture under `sandbox/tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// One Kubernetes API (the real control plane or an emulator) with a scratch directory for
/// kubectl's discovery cache and Helm's state, so no test sees another's caches.
pub struct Kube {
    cluster: Cluster,
    scratch: tempfile::TempDir,
}

impl Kube {
    /// The run's shared control plane, or a fresh emulator.
    pub fn start(backend: Backend) -> Self {
        Self::on(Cluster::of(backend))
    }

    /// A control plane of this test's own (a test that deletes cluster-scoped objects other
    /// tests use, such as the Widget CRD), or a fresh emulator.
    pub fn dedicated(backend: Backend) -> Self {
        Self::on(match backend {
            Backend::Real => Cluster::real_dedicated(),
            Backend::Emulator => Cluster::emulator(),
        })
    }

    fn on(cluster: Cluster) -> Self {
        Self { cluster, scratch: tempfile::tempdir().expect("tempdir") }
    }

    pub fn backend(&self) -> Backend {
        self.cluster.backend()
    }

    pub fn is_real(&self) -> bool {
        self.backend() == Backend::Real
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.cluster.kubeconfig()
    }

    /// A scratch directory that lives as long as this handle.
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// A namespace of this test's own (`<prefix>-<random>`), deleted when dropped.
    pub fn namespace(&self, prefix: &str) -> TestNamespace {
        self.cluster.namespace(prefix)
    }

    /// A kube-rs client as the admin.
    pub async fn client(&self) -> kube::Client {
        self.cluster.client().await
    }

    /// A `kubectl` command (the real one, `.tools/bin/kubectl`) with this cluster's
    /// kubeconfig and a private discovery cache and HOME.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(connection_testkit::tools::kubectl());
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.scratch().join("kube-cache"))
            .env_remove("KUBECONFIG")
            .env("HOME", self.scratch());
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
        // kubectl may exit before reading stdin (a usage error); its output says why.
        let _ = stdin.write_all(input.as_bytes());
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

    /// Install the Widget test CRD (`fixtures/widget-crd.yaml`) and wait until it is
    /// Established and served. On the shared control plane it is installed once, under a
    /// cross-process lock, and left there for the other tests.
    pub fn install_widget_crd(&self) {
        let _guard = self.cluster.control_plane().map(|plane| plane.lock("widget-crd"));
        let crd = fixture("widget-crd.yaml");
        self.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=kube-tiers",
            "-f",
            crd.to_str().expect("utf-8 path"),
        ])
        .ok();
        self.kubectl(&["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=120s"]).ok();
        // Established comes before discovery lists the resource; kubectl needs both.
        eventually("discovery to list widgets.example.com", || {
            let run = self.kubectl(&["get", "--raw", "/apis/example.com/v1"]);
            (run.status.success() && run.stdout.contains("\"widgets\"")).then_some(())
        });
    }

    /// A handle with the `/_sandbox/` admin API (faults, journal, dropped and expired
    /// watches): the emulator's own, or a kube-proxy in front of the real control plane.
    pub fn instrumented(&self) -> Instrumented {
        self.cluster.instrumented()
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
        serde_json::from_str(out).unwrap_or_else(|e| panic!("kubectl {:?} printed no JSON ({e}): {out}", self.args))
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
pub fn eventually<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    connection_testkit::wait::eventually_blocking(what, probe)
}

/// The real kubectl at its `scripts/bootstrap` place, as a constant for the tests that
/// build their own `Command` (kube_proxy.rs); the tiers use [`Kube::kubectl_cmd`], which
/// honours `CONNECTION_OPERATOR_TOOLS_BIN`.
pub const KUBECTL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/bin/kubectl");

/// A separate `connection-sandbox kube` process (the binary, with its own log): for the
/// emulator-only test of what the emulator logs, and for kube_proxy.rs. Killed on drop.
pub struct Emulator {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl Emulator {
    /// [`Emulator::start_with_env`] without extra variables.
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Start `connection-sandbox kube --addr 127.0.0.1:0 --kubeconfig FILE` with extra
    /// environment variables (e.g. `RUST_LOG`), its stderr in a log file; wait for its
    /// `listening on http://ADDR` line (printed after the kubeconfig is written).
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
        // test instead of hanging it; the thread then keeps draining stdout.
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
        Self { child, dir, addr }
    }

    /// `http://127.0.0.1:PORT`.
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

    /// kubectl against this process, with a private cache and HOME.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        let out = Command::new(connection_testkit::tools::kubectl())
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl");
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
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
