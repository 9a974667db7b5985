//! Child processes of the contract tier (Prism), each logging to a file so that a chatty
//! child can never block on a full pipe, and ended with the test that started it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, ChildStdin, Command};

use crate::locate::stdin_guard;

/// Generous bound for a child to announce readiness: Prism parses a 230 kB document on a
/// machine whose two cores are shared with other builds and test runs.
const STARTUP_BOUND: Duration = Duration::from_secs(180);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A running child process, ended with the test that owns it.
///
/// It runs under `scripts/contract/until-stdin-closes`, whose stdin is a pipe held here:
/// dropping this (the test ends or panics) closes the pipe, and so does the kernel when the
/// test process is killed outright and no destructor runs, so the child never outlives the
/// test. `kill_on_drop` also ends the wrapper itself at once.
pub struct Logged {
    child: Child,
    // Held open for the guard; closing it ends the child.
    _stdin: ChildStdin,
    log: PathBuf,
    name: &'static str,
}

impl Logged {
    /// Spawn `program` with `args`, stdout and stderr going to the file `log`.
    pub fn spawn<I, S>(name: &'static str, program: &Path, args: I, log: &Path) -> Logged
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = std::fs::File::create(log).expect("create child log file");
        let err = out.try_clone().expect("clone child log file handle");
        let mut command = Command::new(stdin_guard());
        command
            .arg(program)
            .args(args)
            // Prism colours its log only on a terminal; make sure the markers stay plain.
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take().expect("the guard's stdin is piped");
        Logged { child, _stdin: stdin, log: log.to_path_buf(), name }
    }

    /// Poll the log until a line contains `marker`; return the rest of that line after the
    /// marker, trimmed. Fails (with the log) if the child exits first or the bound passes.
    pub async fn wait_for_line(&mut self, marker: &str) -> String {
        let deadline = tokio::time::Instant::now() + STARTUP_BOUND;
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| l.contains(marker)) {
                let at = line.find(marker).unwrap_or(0) + marker.len();
                return line[at..].trim().to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before printing {marker:?}; log:\n{text}", self.name);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not print {marker:?} within {STARTUP_BOUND:?}; log:\n{text}",
                self.name
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Everything the child printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Poll `url` until it answers with any HTTP status (a 404 is fine: it proves the listener
/// serves requests, not just that the port is bound).
pub async fn wait_until_serving(http: &reqwest::Client, url: &str, child: &Logged) {
    let deadline = tokio::time::Instant::now() + STARTUP_BOUND;
    while http.get(url).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} at {url} did not answer within {STARTUP_BOUND:?}; log:\n{}",
            child.name,
            child.log_text()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
