//! A real control plane's etcd, reached directly through its gRPC gateway (`POST /v3/...`
//! with JSON bodies), for tests that must do to the store what kube-apiserver does on its
//! own schedule: compact its history (`--etcd-compaction-interval`, every 5 minutes by
//! default), after which reads at an older revision (a LIST's `continue` token, a watch
//! served without the watch cache) get 410 Expired.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::control_plane::ControlPlane;

/// The etcd of one control plane.
#[derive(Clone, Debug)]
pub struct Etcd {
    url: String,
    http: reqwest::Client,
}

impl ControlPlane {
    /// This control plane's etcd (its client URL comes from the running etcd's own flags).
    pub fn etcd(&self) -> Etcd {
        Etcd { url: client_url(self.dir()), http: reqwest::Client::new() }
    }
}

/// `--listen-client-urls` of the etcd `scripts/control-plane` started for `dir` (its pid is
/// in `DIR/pids`).
fn client_url(dir: &Path) -> String {
    let pids = std::fs::read_to_string(dir.join("pids")).expect("the control plane's pids file");
    let pid = pids
        .lines()
        .find_map(|l| l.strip_prefix("etcd "))
        .unwrap_or_else(|| panic!("no etcd in {}/pids", dir.display()));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).expect("etcd's command line");
    cmdline
        .split(|b| *b == 0)
        .filter_map(|arg| std::str::from_utf8(arg).ok())
        .find_map(|arg| arg.strip_prefix("--listen-client-urls="))
        .map(|urls| urls.split(',').next().unwrap_or(urls).to_string())
        .expect("etcd runs with --listen-client-urls")
}

impl Etcd {
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn call(&self, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.url);
        let response = self.http.post(&url).json(body).send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "POST {url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {url}: not JSON ({e}): {text}"))
    }

    /// Write a key outside kube-apiserver's `/registry/` prefix, so the store's revision
    /// moves past every version read so far; the new revision.
    pub async fn bump(&self) -> i64 {
        let body = json!({"key": STANDARD.encode("/connection-testkit/bump"), "value": STANDARD.encode("1")});
        revision(&self.call("/v3/kv/put", &body).await)
    }

    /// Compact the history before `revision` the way kube-apiserver's compactor does (it
    /// first records the revision in etcd's `compact_rev_key`, then compacts), and wait
    /// until the history is physically gone. The record matters: kube-apiserver watches that
    /// key and, within its cacher's 15 s poll, drops the watch cache's list snapshots older
    /// than the revision; until then LISTs at older versions are still answered from memory,
    /// so a compaction behind its back goes unnoticed.
    pub async fn compact(&self, revision: i64) {
        let record = json!({"key": STANDARD.encode("compact_rev_key"), "value": STANDARD.encode(revision.to_string())});
        self.call("/v3/kv/put", &record).await;
        self.call("/v3/kv/compaction", &json!({"revision": revision, "physical": true})).await;
    }
}

/// The gateway renders int64 fields as JSON strings.
fn revision(answer: &Value) -> i64 {
    let field = &answer["header"]["revision"];
    field
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| field.as_i64())
        .unwrap_or_else(|| panic!("no header.revision in {answer}"))
}
