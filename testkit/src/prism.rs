//! Prism (`@stoplight/prism-cli`, installed by `scripts/bootstrap`) in proxy mode with
//! `--errors`, configured with a provider's official OpenAPI document and forwarding to a
//! provider emulator: a contract nobody here wrote judges every request and answer.
//!
//! Prism runs under `scripts/contract/until-stdin-closes`, whose stdin is a pipe held here:
//! dropping [`Prism`] (the test ends or panics) closes the pipe, and so does the kernel when
//! the test process is killed outright and no destructor runs, so Prism never outlives its
//! test. Its output goes to a file, so a chatty Prism never blocks on a full pipe.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, ChildStdin, Command};

use crate::tools::{tools_dir, workspace_root};
use crate::wait::{POLL, until};

/// What Prism prints once it serves, followed by its base URL.
const LISTENING: &str = "Prism is listening on ";

/// `.tools/node/node_modules/.bin/prism`, under `CONNECTION_OPERATOR_TOOLS` if set.
pub fn prism_bin() -> PathBuf {
    let prism = tools_dir().join("node/node_modules/.bin/prism");
    assert!(
        prism.exists(),
        "Prism is not installed at {}: run scripts/bootstrap (it installs @stoplight/prism-cli \
         into .tools/, or set CONNECTION_OPERATOR_TOOLS to a folder laid out the same way)",
        prism.display()
    );
    prism
}

pub struct Prism {
    base_url: String,
    child: Child,
    // Held open for the guard; closing it ends Prism.
    _stdin: ChildStdin,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prism {
    /// Prism in front of `upstream` (e.g. `http://127.0.0.1:PORT/nango`), checking against
    /// `document`; returns once it answers HTTP requests.
    ///
    /// Prism matches request paths against the document's paths and ignores `servers`, and
    /// forwards to `<upstream><request path>`, keeping the upstream's own path prefix.
    /// `--port 0` lets the kernel pick a free port, which Prism then prints; that avoids the
    /// race of probing for a free port and handing it over.
    pub async fn proxy(document: &Path, upstream: &str) -> Prism {
        let dir = tempfile::tempdir().expect("temp dir for the Prism log");
        let log = dir.path().join("prism.log");
        let out = std::fs::File::create(&log).expect("create the Prism log");
        let err = out.try_clone().expect("clone the Prism log handle");
        let mut child = Command::new(workspace_root().join("scripts/contract/until-stdin-closes"))
            .arg(prism_bin())
            .arg("proxy")
            .arg(document)
            .arg(upstream)
            .args(["--errors", "--host", "127.0.0.1", "--port", "0"])
            // Prism colours its log only on a terminal; make sure the markers stay plain.
            .env("NO_COLOR", "1")
            .env("FORCE_COLOR", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prism: {e}"));
        let stdin = child.stdin.take().expect("the guard's stdin is piped");
        let mut prism = Prism { base_url: String::new(), child, _stdin: stdin, log, _dir: dir };
        prism.base_url = prism.listening_on().await;
        prism.wait_until_serving().await;
        prism
    }

    /// `http://127.0.0.1:PORT`; Prism appends the request path to the upstream URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Everything Prism logged so far (requests, forwards, violations; never headers, so
    /// no token appears).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn listening_on(&mut self) -> String {
        let child = &mut self.child;
        let log = &self.log;
        until("prism to print its address", || {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let found = text.lines().find_map(|l| l.find(LISTENING).map(|at| l[at + LISTENING.len()..].trim()));
            let answer = match (found, child.try_wait()) {
                (Some(base), _) => Ok(base.trim_end_matches('/').to_string()),
                (None, Ok(Some(status))) => panic!("prism exited ({status}) before listening; log:\n{text}"),
                (None, _) => Err(text.clone()),
            };
            std::future::ready(answer)
        })
        .await
    }

    /// Poll until Prism answers with any HTTP status (a 404 is fine: it proves the listener
    /// serves requests, not just that the port is bound).
    async fn wait_until_serving(&self) {
        let http = reqwest::Client::builder().no_proxy().timeout(POLL * 50).build().expect("http client");
        let url = format!("{}/", self.base_url);
        until(&format!("prism at {url} to answer"), || async {
            http.get(&url).send().await.map(drop).map_err(|_| self.log_text())
        })
        .await
    }
}
