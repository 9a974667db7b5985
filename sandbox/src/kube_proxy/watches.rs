//! Control over the watch streams the proxy relays, for the emulator's
//! `POST /_sandbox/watches/drop` and `/watches/expire`, which a real API server has no
//! equivalent of.
//!
//! - Drop: every relayed watch holds the cancellation token current when it arrived; a drop
//!   cancels it (ending those streams with a clean end of body, as the emulator does, so the
//!   client sees a watch that ended and resumes from its last resourceVersion) and installs a
//!   fresh one for the watches that follow.
//! - Expire: one-shot by default. The next watch resuming from a resourceVersion (non-empty
//!   and not "0"; those mean "start from the current state") is answered by the proxy itself
//!   with one in-stream `ERROR` event carrying a 410 `Expired` Status, the watch cache's
//!   answer to a compacted version and the emulator's wire form. kube-rs and client-go relist
//!   on it; an HTTP 410 at the start of the response would make kube-rs retry the same
//!   version. An [`Expiry`] may name the collection (`path`) and how many of its watches
//!   (`count`) take it: a client may keep several watches of one collection, and the
//!   emulator's expiry (a compaction) reaches all of them.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::kube::api_error::ApiError;

#[derive(Default)]
pub struct Watches {
    cancel: Mutex<CancellationToken>,
    expiry: Mutex<Option<Expiry>>,
}

/// An armed expiry: the next `count` watches resuming from a resourceVersion, of the
/// collection `path` when set, take it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expiry {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry { path: None, count: 1 }
    }
}

impl Watches {
    /// The token a watch arriving now must stop on.
    pub fn token(&self) -> CancellationToken {
        self.cancel.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// End every watch relayed so far.
    pub fn drop_all(&self) {
        let mut t = self.cancel.lock().unwrap_or_else(|p| p.into_inner());
        t.cancel();
        *t = CancellationToken::new();
    }

    /// Arm `expiry`, replacing one still armed.
    pub fn arm_expiry(&self, expiry: Expiry) {
        *self.expiry.lock().unwrap_or_else(|p| p.into_inner()) = (expiry.count > 0).then_some(expiry);
    }

    /// Whether a watch of `path` resuming from `resource_version` takes the armed expiry
    /// (one of its `count`; the last disarms it).
    pub fn take_expiry(&self, path: &str, resource_version: &str) -> bool {
        if resource_version.is_empty() || resource_version == "0" {
            return false;
        }
        let mut armed = self.expiry.lock().unwrap_or_else(|p| p.into_inner());
        let Some(expiry) = armed.as_mut().filter(|e| e.path.as_deref().is_none_or(|p| p == path)) else {
            return false;
        };
        expiry.count -= 1;
        if expiry.count == 0 {
            *armed = None;
        }
        true
    }
}

/// A Kubernetes query parameter's value (the first, decoded).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Whether a request is a watch: `?watch=` true in Go's `strconv.ParseBool` spelling, or the
/// deprecated `/api/v1/watch/...`, `/apis/{g}/{v}/watch/...` paths.
pub fn is_watch(path: &str, query: &str) -> bool {
    let flag =
        query_param(query, "watch").is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let legacy = matches!(segs.as_slice(), ["api", _, "watch", ..] | ["apis", _, _, "watch", ..]);
    flag || legacy
}

/// The answer to a watch that takes the expiry: 200, one `ERROR` event with a 410 `Expired`
/// Status worded like the watch cache's (`too old resource version: N (oldest)`), end.
pub fn expired_answer(resource_version: &str) -> Response {
    let message = match resource_version.parse::<u64>() {
        Ok(n) => format!("too old resource version: {n} ({})", n.saturating_add(1)),
        Err(_) => format!("too old resource version: {resource_version}"),
    };
    let mut line = json!({"type": "ERROR", "object": ApiError::Expired(message).status()}).to_string();
    line.push('\n');
    let mut resp = Response::new(Body::from(line));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_watches() {
        assert!(is_watch("/api/v1/pods", "watch=true&resourceVersion=5"));
        assert!(is_watch("/api/v1/pods", "watch=1"));
        assert!(is_watch("/api/v1/watch/namespaces/a/pods", ""));
        assert!(is_watch("/apis/apps/v1/watch/deployments", ""));
        assert!(!is_watch("/api/v1/pods", "watch=false"));
        assert!(!is_watch("/api/v1/namespaces/watch", ""));
        assert!(!is_watch("/apis/apps/v1/deployments", "labelSelector=watch%3Dtrue"));
    }

    #[test]
    fn expiry_is_one_shot_and_skips_fresh_watches() {
        let w = Watches::default();
        assert!(!w.take_expiry("/api/v1/pods", "5"));
        w.arm_expiry(Expiry::default());
        assert!(!w.take_expiry("/api/v1/pods", ""));
        assert!(!w.take_expiry("/api/v1/pods", "0"));
        assert!(w.take_expiry("/api/v1/pods", "5"));
        assert!(!w.take_expiry("/api/v1/pods", "5"));
    }

    #[test]
    fn an_expiry_for_a_path_is_taken_by_that_many_of_its_watches_only() {
        let w = Watches::default();
        w.arm_expiry(Expiry { path: Some("/api/v1/pods".into()), count: 2 });
        assert!(!w.take_expiry("/api/v1/secrets", "5"), "another collection");
        assert!(w.take_expiry("/api/v1/pods", "5"));
        assert!(w.take_expiry("/api/v1/pods", "6"));
        assert!(!w.take_expiry("/api/v1/pods", "7"), "two were asked for");
        w.arm_expiry(Expiry { path: None, count: 0 });
        assert!(!w.take_expiry("/api/v1/pods", "5"), "a count of zero arms nothing");
    }

    #[test]
    fn drop_cancels_the_current_token_only() {
        let w = Watches::default();
        let before = w.token();
        w.drop_all();
        assert!(before.is_cancelled());
        assert!(!w.token().is_cancelled());
    }
}
