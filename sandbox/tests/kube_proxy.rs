//! The kube proxy (`connection-sandbox kube-proxy`, `KubeProxy`) over real sockets, with the
//! Kubernetes emulator as its upstream: forwarding (bodies, statuses, streamed watches), the
//! admin API it shares with the emulator (journal, faults, watch drop and expiry),
//! `Authorization` pass-through versus the proxy's own identity, an HTTPS upstream with a
//! client certificate, and kube-rs and kubectl as clients. Waits are bounded by
//! `GENEROUS` so a missing event fails a test instead of hanging it; no assertion depends
//! on how fast anything is.

#[path = "kube_support/mod.rs"]
mod kube_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use connection_sandbox::kube::KubeSandbox;
use connection_sandbox::kube_proxy::KubeProxy;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use kube_support::{Emulator, GENEROUS, KUBECTL, Reply, fixture};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_rustls::rustls;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("loopback address")
}

/// An in-process emulator and a proxy in front of it, built from the emulator's kubeconfig.
struct Stack {
    emulator: KubeSandbox,
    proxy: KubeProxy,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn start() -> Stack {
    let dir = tempfile::tempdir().expect("tempdir");
    let emulator = KubeSandbox::start(loopback(), &dir.path().join("emulator.kubeconfig")).expect("emulator starts");
    let proxy = KubeProxy::start(emulator.kubeconfig(), loopback(), &dir.path().join("proxy.kubeconfig"))
        .expect("proxy starts");
    Stack { emulator, proxy, dir, http: reqwest::Client::new() }
}

impl Stack {
    /// A request to `base` (the proxy's or the emulator's URL) with an optional bearer token.
    async fn send(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<(&str, Value)>,
        token: Option<&str>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some((content_type, b)) = body {
            req = req.header("content-type", content_type).body(b.to_string());
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    /// Through the proxy, without credentials (the proxy adds its own).
    async fn proxied(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let content_type = if method == Method::PATCH { "application/merge-patch+json" } else { "application/json" };
        self.send(&self.proxy.url(), method, path, body.map(|b| (content_type, b)), None).await
    }

    /// Straight to the emulator, as its admin.
    async fn direct(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(
            &self.emulator.url(),
            method,
            path,
            body.map(|b| ("application/json", b)),
            Some(self.emulator.token()),
        )
        .await
    }

    /// The proxy's admin API; asserts success.
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let r = self
            .send(
                &self.proxy.url(),
                method.clone(),
                &format!("/_sandbox/{path}"),
                body.map(|b| ("application/json", b)),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{method} /_sandbox/{path}: {}", r.body);
        r.body
    }

    /// The emulator's admin API; asserts success.
    async fn emulator_admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let r = self
            .send(
                &self.emulator.url(),
                method.clone(),
                &format!("/_sandbox/{path}"),
                body.map(|b| ("application/json", b)),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "emulator {method} /_sandbox/{path}: {}", r.body);
        r.body
    }

    async fn namespace(&self, name: &str) {
        let r = self
            .proxied(
                Method::POST,
                "/api/v1/namespaces",
                Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }

    /// Create a ConfigMap straight on the emulator (not through the proxy); its resourceVersion.
    async fn create_cm_directly(&self, ns: &str, name: &str) -> String {
        let r = self
            .direct(Method::POST, &format!("/api/v1/namespaces/{ns}/configmaps"), Some(cm(name, json!({"k": "v"}))))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["metadata"]["resourceVersion"].as_str().expect("resourceVersion").to_string()
    }

    /// Open a watch through the proxy.
    async fn watch(&self, path_and_query: &str) -> Watch {
        let resp = self.http.get(format!("{}{path_and_query}", self.proxy.url())).send().await.expect("watch request");
        Watch { resp, buf: Vec::new() }
    }
}

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// One watch response read line by line.
struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

/// What reading a watch produced.
#[derive(Debug, PartialEq)]
enum Next {
    Event(Value),
    /// The body ended cleanly (final chunk received).
    End,
}

impl Watch {
    fn status(&self) -> StatusCode {
        self.resp.status()
    }

    /// The next event or the clean end of the stream; panics on a broken stream, on a line
    /// left unterminated at the end, and after `GENEROUS` without either.
    async fn next(&mut self) -> Next {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Next::Event(serde_json::from_slice(&line).expect("watch line is JSON"));
            }
            match tokio::time::timeout(GENEROUS, self.resp.chunk())
                .await
                .expect("a watch event or the end of the stream")
            {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => {
                    assert!(
                        self.buf.is_empty(),
                        "the stream ended inside an event: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return Next::End;
                }
                Err(e) => panic!("the watch stream broke instead of ending: {e}"),
            }
        }
    }

    async fn event(&mut self) -> Value {
        match self.next().await {
            Next::Event(v) => v,
            Next::End => panic!("the watch ended before the expected event"),
        }
    }
}

fn entries(journal: &Value) -> &Vec<Value> {
    journal.as_array().expect("journal is an array")
}

// ---------------------------------------------------------------------------------------
// Forwarding
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn forwards_reads_and_writes_with_their_bodies_and_statuses() {
    let s = start();
    s.namespace("fwd").await;
    let base = "/api/v1/namespaces/fwd/configmaps";

    let created = s.proxied(Method::POST, base, Some(cm("a", json!({"k": "one"})))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["data"]["k"], "one");
    assert_eq!(created.headers["content-type"], "application/json");
    // It is on the emulator, not only in the proxy's answer.
    let stored = s.direct(Method::GET, &format!("{base}/a"), None).await;
    assert_eq!(stored.body["metadata"]["uid"], created.body["metadata"]["uid"]);

    let again = s.proxied(Method::POST, base, Some(cm("a", json!({})))).await;
    assert_eq!((again.status.as_u16(), again.body["reason"].as_str()), (409, Some("AlreadyExists")), "{}", again.body);

    let got = s.proxied(Method::GET, &format!("{base}/a"), None).await;
    assert_eq!((got.status.as_u16(), &got.body["data"]["k"]), (200, &json!("one")));

    let labelled = s
        .proxied(
            Method::POST,
            base,
            Some(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "labels": {"pick": "yes"}}}),
            ),
        )
        .await;
    assert_eq!(labelled.status, 201, "{}", labelled.body);
    let picked = s.proxied(Method::GET, &format!("{base}?labelSelector=pick%3Dyes"), None).await;
    let names: Vec<&str> =
        picked.body["items"].as_array().expect("items").iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
    assert_eq!((picked.status.as_u16(), names), (200, vec!["b"]), "the query reaches the server");

    let patched = s.proxied(Method::PATCH, &format!("{base}/a"), Some(json!({"data": {"k": "two"}}))).await;
    assert_eq!((patched.status.as_u16(), &patched.body["data"]["k"]), (200, &json!("two")), "{}", patched.body);

    let failed_test = s
        .send(
            &s.proxy.url(),
            Method::PATCH,
            &format!("{base}/a"),
            Some(("application/json-patch+json", json!([{"op": "test", "path": "/data/k", "value": "nope"}]))),
            None,
        )
        .await;
    assert_eq!(failed_test.status, 422, "{}", failed_test.body);

    let missing = s.proxied(Method::GET, &format!("{base}/zzz"), None).await;
    assert_eq!(
        (missing.status.as_u16(), missing.body["kind"].as_str(), missing.body["reason"].as_str()),
        (404, Some("Status"), Some("NotFound"))
    );

    let deleted = s.proxied(Method::DELETE, &format!("{base}/a"), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(s.direct(Method::GET, &format!("{base}/a"), None).await.status, 404);
}

#[tokio::test]
async fn watch_events_arrive_through_the_open_stream() {
    let s = start();
    s.namespace("w").await;
    let list = s.proxied(Method::GET, "/api/v1/namespaces/w/configmaps", None).await;
    let rv = list.body["metadata"]["resourceVersion"].as_str().expect("list resourceVersion").to_string();
    let mut watch = s.watch(&format!("/api/v1/namespaces/w/configmaps?watch=true&resourceVersion={rv}")).await;
    assert_eq!(watch.status(), 200);
    // The emulator's watch stays open for 30 minutes: each event must come through while the
    // stream is open, not when the proxy has the whole body.
    for name in ["first", "second"] {
        s.create_cm_directly("w", name).await;
        let ev = watch.event().await;
        assert_eq!(
            (ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()),
            (Some("ADDED"), Some(name)),
            "{ev}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Journal
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_journal_records_what_went_through_in_the_emulators_shape() {
    let s = start();
    s.namespace("j").await;
    s.admin(Method::DELETE, "requests", None).await;
    s.emulator_admin(Method::DELETE, "requests", None).await;
    let resp = s
        .http
        .get(format!("{}/api/v1/namespaces/j/configmaps?limit=5", s.proxy.url()))
        .header("user-agent", "journal-test/1.0")
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status(), 200);
    s.proxied(Method::POST, "/api/v1/namespaces/j/configmaps", Some(cm("x", json!({})))).await;
    let mut watch = s.watch("/api/v1/namespaces/j/configmaps?watch=true").await;
    assert!(matches!(watch.next().await, Next::Event(_)), "the watch lists x first");
    s.admin(Method::GET, "faults", None).await; // admin requests are not journaled

    let journal = s.admin(Method::GET, "requests", None).await;
    let seen: Vec<(&str, &str, &str)> = entries(&journal)
        .iter()
        .map(|e| {
            (e["method"].as_str().unwrap_or("?"), e["path"].as_str().unwrap_or("?"), e["query"].as_str().unwrap_or("?"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/api/v1/namespaces/j/configmaps", "limit=5"),
            ("POST", "/api/v1/namespaces/j/configmaps", ""),
            ("GET", "/api/v1/namespaces/j/configmaps", "watch=true"),
        ]
    );
    assert_eq!(entries(&journal)[0]["userAgent"], "journal-test/1.0");
    assert!(entries(&journal).iter().all(|e| e["at"].as_f64().is_some_and(|at| at > 1.7e9)), "{journal}");
    // The same fields as the emulator's own journal, which saw the same requests relayed.
    let upstream = s.emulator_admin(Method::GET, "requests", None).await;
    assert_eq!(entries(&upstream).len(), 3, "{upstream}");
    let keys = |e: &Value| e.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(&entries(&journal)[0]), keys(&entries(&upstream)[0]));
    assert_eq!(entries(&upstream)[0]["userAgent"], "journal-test/1.0", "the user agent is relayed");

    s.admin(Method::DELETE, "requests", None).await;
    assert_eq!(s.admin(Method::GET, "requests", None).await, json!([]));
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_queued_fault_is_answered_by_the_proxy_then_requests_pass_again() {
    let s = start();
    s.namespace("f").await;
    s.create_cm_directly("f", "a").await;
    let path = "/api/v1/namespaces/f/configmaps/a";
    let queued = s
        .admin(
            Method::PUT,
            "faults",
            Some(json!({"method": "GET", "path": path, "status": 503, "count": 2, "retryAfter": 1})),
        )
        .await;
    assert_eq!(queued[0]["remaining"], 2, "{queued}");
    s.emulator_admin(Method::DELETE, "requests", None).await;

    for _ in 0..2 {
        let r = s.proxied(Method::GET, path, None).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(
            r.body,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "injected fault: ServiceUnavailable", "reason": "ServiceUnavailable", "code": 503})
        );
        assert_eq!(r.headers["retry-after"], "1");
    }
    // Other methods and paths are untouched meanwhile; faulted requests never reached upstream.
    assert_eq!(s.proxied(Method::GET, "/api/v1/namespaces/f/configmaps", None).await.status, 200);
    let upstream = s.emulator_admin(Method::GET, "requests", None).await;
    assert!(entries(&upstream).iter().all(|e| e["path"] != path), "{upstream}");

    let r = s.proxied(Method::GET, path, None).await;
    assert_eq!((r.status.as_u16(), &r.body["metadata"]["name"]), (200, &json!("a")), "{}", r.body);
    assert_eq!(s.admin(Method::GET, "faults", None).await, json!([]));
    // Every request was journaled, the faulted ones too.
    let journal = s.admin(Method::GET, "requests", None).await;
    assert_eq!(entries(&journal).iter().filter(|e| e["path"] == path).count(), 3);
}

#[tokio::test]
async fn faults_cover_watches_and_take_the_emulators_options() {
    let s = start();
    s.namespace("fw").await;
    s.admin(
        Method::PUT,
        "faults",
        Some(json!([{"path": "/api/v1/namespaces/fw/configmaps", "status": 500, "body": "not json"}])),
    )
    .await;
    let watch = s
        .http
        .get(format!("{}/api/v1/namespaces/fw/configmaps?watch=true", s.proxy.url()))
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status(), 500);
    assert_eq!(watch.text().await.expect("body"), "not json");
    // probability 0: queued, never fires.
    s.admin(Method::PUT, "faults", Some(json!({"path": "*", "status": 500, "probability": 0.0}))).await;
    assert_eq!(s.proxied(Method::GET, "/api/v1/namespaces/fw/configmaps", None).await.status, 200);
    s.admin(Method::DELETE, "faults", None).await;
    assert_eq!(s.admin(Method::GET, "faults", None).await, json!([]));

    for refused in [
        json!({"path": "/x"}),
        json!({"path": "/x", "status": 42}),
        json!({"path": "/x", "reset": true}),
        json!({"path": "/x", "statuss": 500}),
    ] {
        let r = s
            .send(&s.proxy.url(), Method::PUT, "/_sandbox/faults", Some(("application/json", refused.clone())), None)
            .await;
        assert_eq!(r.status, 400, "{refused} is refused: {}", r.body);
    }
}

#[tokio::test]
async fn a_latency_fault_delays_the_real_answer() {
    const LATENCY_MS: u64 = 1500;
    let s = start();
    s.namespace("lat").await;
    s.create_cm_directly("lat", "slow").await;
    let path = "/api/v1/namespaces/lat/configmaps/slow";
    s.admin(Method::PUT, "faults", Some(json!({"method": "GET", "path": path, "latencyMs": LATENCY_MS}))).await;
    let r = s.proxied(Method::GET, path, None).await;
    assert_eq!(
        (r.status.as_u16(), &r.body["metadata"]["name"]),
        (200, &json!("slow")),
        "the real answer after the delay: {}",
        r.body
    );
    // The proxy journals on arrival, then waits, then forwards: the emulator's journal saw the
    // request at least the latency later (both clocks are this machine's; `at` is rounded to
    // the millisecond).
    let arrived = entries(&s.admin(Method::GET, "requests", None).await)
        .iter()
        .find(|e| e["path"] == path)
        .and_then(|e| e["at"].as_f64())
        .expect("journaled");
    let forwarded = entries(&s.emulator_admin(Method::GET, "requests", None).await)
        .iter()
        .find(|e| e["path"] == path)
        .and_then(|e| e["at"].as_f64())
        .expect("reached the emulator");
    assert!(
        (forwarded - arrived) * 1000.0 >= LATENCY_MS as f64 - 1.0,
        "forwarded {forwarded} only {}ms after arrival {arrived}",
        (forwarded - arrived) * 1000.0
    );
    // One use: the next request is not delayed again (the queue is empty).
    assert_eq!(s.admin(Method::GET, "faults", None).await, json!([]));
}

// ---------------------------------------------------------------------------------------
// Watch drop and expiry
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn watches_drop_ends_every_open_watch_cleanly() {
    let s = start();
    s.namespace("d").await;
    let mut a = s.watch("/api/v1/namespaces/d/configmaps?watch=true").await;
    let mut b = s.watch("/api/v1/namespaces/d/secrets?watch=1").await;
    // Both are open and relaying.
    s.create_cm_directly("d", "before").await;
    assert_eq!(a.event().await["object"]["metadata"]["name"], "before");

    assert_eq!(s.admin(Method::POST, "watches/drop", None).await, json!({"dropped": true}));
    assert_eq!(a.next().await, Next::End);
    assert_eq!(b.next().await, Next::End);

    // Watches opened after the drop are not affected by it.
    let mut c = s.watch("/api/v1/namespaces/d/configmaps?watch=true").await;
    assert_eq!(c.event().await["object"]["metadata"]["name"], "before");
    s.create_cm_directly("d", "after").await;
    assert_eq!(c.event().await["object"]["metadata"]["name"], "after");
}

#[tokio::test]
async fn watches_expire_answers_the_next_resumed_watch_with_one_in_stream_410() {
    let s = start();
    s.namespace("e").await;
    let rv = s.create_cm_directly("e", "x").await;
    let watch_from = |rv: &str| format!("/api/v1/namespaces/e/configmaps?watch=true&resourceVersion={rv}");

    assert_eq!(s.admin(Method::POST, "watches/expire", None).await, json!({"expireNext": true}));
    // A watch from the current state ("0") is not a resumed one: it is relayed and lists x.
    let mut fresh = s.watch(&watch_from("0")).await;
    assert_eq!(fresh.event().await["type"], "ADDED");

    let mut expired = s.watch(&watch_from(&rv)).await;
    assert_eq!(expired.status(), 200, "the 410 is in the stream, not the HTTP status");
    let ev = expired.event().await;
    assert_eq!(expired.next().await, Next::End, "one event, then the end");
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(
        (
            ev["object"]["kind"].as_str(),
            ev["object"]["code"].as_i64(),
            ev["object"]["reason"].as_str(),
            ev["object"]["status"].as_str()
        ),
        (Some("Status"), Some(410), Some("Expired"), Some("Failure")),
        "{ev}"
    );
    assert!(
        ev["object"]["message"].as_str().is_some_and(|m| m.starts_with(&format!("too old resource version: {rv} ("))),
        "{ev}"
    );

    // The emulator's own expiry has the same wire form.
    s.emulator_admin(Method::POST, "watches/expire", None).await;
    let mut native = s.send(&s.emulator.url(), Method::GET, &watch_from(&rv), None, Some(s.emulator.token())).await;
    let native_ev: Value = match native.body.take() {
        Value::String(line) => serde_json::from_str(line.trim()).expect("one JSON line"),
        other => other,
    };
    assert_eq!(native.status, 200);
    let shape = |v: &Value| {
        (
            v["type"].clone(),
            v["object"]["kind"].clone(),
            v["object"]["apiVersion"].clone(),
            v["object"]["code"].clone(),
            v["object"]["reason"].clone(),
        )
    };
    assert_eq!(shape(&ev), shape(&native_ev), "proxy {ev} vs emulator {native_ev}");

    // Only once: the same resumed watch is relayed now.
    let mut resumed = s.watch(&watch_from(&rv)).await;
    s.create_cm_directly("e", "y").await;
    let next = resumed.event().await;
    assert_eq!(
        (next["type"].as_str(), next["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("y")),
        "{next}"
    );
}

#[tokio::test]
async fn an_expiry_aimed_at_a_collection_is_taken_by_that_many_of_its_resumed_watches() {
    let s = start();
    s.namespace("ea").await;
    let rv = s.create_cm_directly("ea", "x").await;
    let configmaps = "/api/v1/namespaces/ea/configmaps";
    let secrets = "/api/v1/namespaces/ea/secrets";
    let watch_from = |path: &str| format!("{path}?watch=true&resourceVersion={rv}");
    let expired = |ev: &Value| ev["type"] == "ERROR" && ev["object"]["code"] == 410;

    let refused = s
        .send(
            &s.proxy.url(),
            Method::POST,
            "/_sandbox/watches/expire",
            Some(("application/json", json!({"path": configmaps, "count": 2, "every": true}))),
            None,
        )
        .await;
    assert_eq!(refused.status, 400, "an unknown field: {}", refused.body);

    s.admin(Method::POST, "watches/expire", Some(json!({"path": configmaps, "count": 2}))).await;
    // A resumed watch of another collection is relayed.
    let mut other = s.watch(&watch_from(secrets)).await;
    s.direct(Method::POST, secrets, Some(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})))
        .await;
    let ev = other.event().await;
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("s")), "{ev}");
    // Two resumed watches of the collection take it; the third is relayed.
    for i in 0..2 {
        let ev = s.watch(&watch_from(configmaps)).await.event().await;
        assert!(expired(&ev), "watch {i}: {ev}");
    }
    let mut third = s.watch(&watch_from(configmaps)).await;
    s.create_cm_directly("ea", "y").await;
    let ev = third.event().await;
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("y")), "{ev}");
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn authorization_is_passed_through_and_the_proxys_identity_used_otherwise() {
    let s = start();
    s.namespace("authz").await;
    let sa = s
        .proxied(
            Method::POST,
            "/api/v1/namespaces/authz/serviceaccounts",
            Some(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}})),
        )
        .await;
    assert_eq!(sa.status, 201, "{}", sa.body);
    s.emulator_admin(Method::PUT, "rbac", Some(json!({"enforce": true}))).await;
    let minted = s.emulator_admin(Method::POST, "tokens", Some(json!({"serviceAccount": "authz/reader"}))).await;
    let token = minted["token"].as_str().expect("token").to_string();
    let list = "/api/v1/namespaces/authz/configmaps";

    // The ServiceAccount's token reaches the server unchanged: RBAC judges the ServiceAccount.
    let denied = s.send(&s.proxy.url(), Method::GET, list, None, Some(&token)).await;
    assert_eq!((denied.status.as_u16(), denied.body["reason"].as_str()), (403, Some("Forbidden")), "{}", denied.body);
    assert!(
        denied.body["message"].as_str().is_some_and(|m| m.contains("system:serviceaccount:authz:reader")),
        "{}",
        denied.body
    );
    let unknown = s.send(&s.proxy.url(), Method::GET, list, None, Some("not-a-token")).await;
    assert_eq!(unknown.status, 401, "an unknown token is not replaced by the proxy's: {}", unknown.body);

    // Without credentials the request goes as the proxy's identity (the emulator's admin),
    // which may grant the ServiceAccount a Role.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]});
    assert_eq!(
        s.proxied(Method::POST, "/apis/rbac.authorization.k8s.io/v1/namespaces/authz/roles", Some(role)).await.status,
        201
    );
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "authz"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}});
    assert_eq!(
        s.proxied(Method::POST, "/apis/rbac.authorization.k8s.io/v1/namespaces/authz/rolebindings", Some(binding))
            .await
            .status,
        201
    );
    assert_eq!(s.send(&s.proxy.url(), Method::GET, list, None, Some(&token)).await.status, 200);
    assert_eq!(
        s.send(&s.proxy.url(), Method::GET, "/api/v1/namespaces/authz/secrets", None, Some(&token)).await.status,
        403
    );

    // The emulator lets credential-less requests through, so to see that the proxy really
    // sends its kubeconfig's token, give a second proxy a token the emulator rejects.
    let text = std::fs::read_to_string(s.emulator.kubeconfig()).expect("emulator kubeconfig");
    let wrong = s.dir.path().join("wrong-token.kubeconfig");
    std::fs::write(&wrong, text.replace(s.emulator.token(), "sandbox-wrong")).expect("write kubeconfig");
    let impostor =
        KubeProxy::start(&wrong, loopback(), &s.dir.path().join("impostor.kubeconfig")).expect("second proxy");
    let r = s.send(&impostor.url(), Method::GET, list, None, None).await;
    assert_eq!((r.status.as_u16(), r.body["reason"].as_str()), (401, Some("Unauthorized")), "{}", r.body);
    // ...and that a request's own token still wins over the proxy's.
    assert_eq!(s.send(&impostor.url(), Method::GET, list, None, Some(&token)).await.status, 200);
}

// ---------------------------------------------------------------------------------------
// HTTPS upstream with a client certificate
// ---------------------------------------------------------------------------------------

/// How one connection to the TLS front went.
#[derive(Clone, Debug, PartialEq)]
enum Handshake {
    /// Completed; whether the client presented a certificate.
    Done {
        client_certificate: bool,
    },
    Failed(String),
}

/// A stand-in HTTPS API server: TLS with `server.crt` (signed by `ca.crt`), optionally asking
/// for a client certificate signed by `ca.crt` (as kube-apiserver with `--client-ca-file`
/// does), spliced to the plain-HTTP emulator.
struct TlsFront {
    addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_fixture(name: &str) -> PathBuf {
    fixture(&format!("kube_proxy_tls/{name}"))
}

async fn tls_front(upstream: SocketAddr) -> TlsFront {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(tls_fixture("ca.crt")).expect("ca.crt") {
        roots.add(cert.expect("CA certificate")).expect("trust anchor");
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .expect("client verifier");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(tls_fixture("server.crt"))
        .expect("server.crt")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(tls_fixture("server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(loopback()).await.expect("bind TLS front");
    let addr = listener.local_addr().expect("TLS front address");
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    let seen = handshakes.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        let client_certificate = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                        seen.lock().expect("handshakes").push(Handshake::Done { client_certificate });
                        if let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        }
                    }
                    Err(e) => seen.lock().expect("handshakes").push(Handshake::Failed(e.to_string())),
                }
            });
        }
    });
    TlsFront { addr, handshakes, task }
}

fn b64_file(path: &Path) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).expect("fixture"))
}

/// A kubeconfig for `server` with the given cluster and user fields (YAML flow mappings).
fn kubeconfig_text(server: &str, cluster_extra: &str, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
current-context: tls
contexts:
- name: tls
  context: {{cluster: tls, user: admin}}
clusters:
- name: tls
  cluster: {{server: \"{server}\"{cluster_extra}}}
users:
- name: admin
  user: {user}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_with_the_kubeconfigs_ca_and_client_certificate() {
    let s = start();
    let front = tls_front(s.emulator.addr()).await;
    let server = format!("https://127.0.0.1:{}", front.addr.port());
    let handshakes = || front.handshakes.lock().expect("handshakes").clone();
    // The front records a failed handshake on its own task, possibly after the proxy answered.
    let handshakes_after = async |before: usize| {
        for _ in 0..(GENEROUS.as_millis() / 50) {
            let all = handshakes();
            if all.len() > before {
                return all[before..].to_vec();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no handshake recorded");
    };

    // Inline data, SEC1 ("EC PRIVATE KEY") client key.
    let inline = s.dir.path().join("tls-inline.kubeconfig");
    let ca = format!(", certificate-authority-data: \"{}\"", b64_file(&tls_fixture("ca.crt")));
    let user = format!(
        "{{client-certificate-data: \"{}\", client-key-data: \"{}\"}}",
        b64_file(&tls_fixture("client.crt")),
        b64_file(&tls_fixture("client-sec1.key"))
    );
    std::fs::write(&inline, kubeconfig_text(&server, &ca, &user)).expect("write kubeconfig");
    let proxy = KubeProxy::start(&inline, loopback(), &s.dir.path().join("p1.kubeconfig")).expect("proxy over https");
    let r = s.send(&proxy.url(), Method::GET, "/api/v1/namespaces/default", None, None).await;
    assert_eq!((r.status.as_u16(), &r.body["metadata"]["name"]), (200, &json!("default")), "{}", r.body);
    assert_eq!(handshakes(), [Handshake::Done { client_certificate: true }]);

    // A request with its own credentials goes without the client certificate (kube-apiserver
    // would otherwise authenticate it as the certificate's user).
    let r = s.send(&proxy.url(), Method::GET, "/api/v1/namespaces/default", None, Some(s.emulator.token())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(handshakes().last(), Some(&Handshake::Done { client_certificate: false }));
    drop(proxy);

    // Files relative to the kubeconfig's directory, PKCS#8 client key.
    let files = tempfile::tempdir().expect("tempdir");
    for name in ["ca.crt", "client.crt", "client-pkcs8.key"] {
        std::fs::copy(tls_fixture(name), files.path().join(name)).expect("copy fixture");
    }
    let by_path = files.path().join("kubeconfig");
    std::fs::write(
        &by_path,
        kubeconfig_text(
            &server,
            ", certificate-authority: ca.crt",
            "{client-certificate: client.crt, client-key: client-pkcs8.key}",
        ),
    )
    .expect("write kubeconfig");
    let proxy =
        KubeProxy::start(&by_path, loopback(), &s.dir.path().join("p2.kubeconfig")).expect("proxy with PKCS#8 key");
    let before = handshakes().len();
    let r = s.send(&proxy.url(), Method::GET, "/api/v1/namespaces/default", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(handshakes()[before..], [Handshake::Done { client_certificate: true }]);
    drop(proxy);

    // A client certificate from another CA is refused by the server; a server certificate
    // from a CA the kubeconfig does not name is refused by the proxy. Both are 503 Status.
    let rogue_user = format!(
        "{{client-certificate-data: \"{}\", client-key-data: \"{}\"}}",
        b64_file(&tls_fixture("rogue-client.crt")),
        b64_file(&tls_fixture("rogue-client.key"))
    );
    let rogue_ca = format!(", certificate-authority-data: \"{}\"", b64_file(&tls_fixture("rogue-ca.crt")));
    for (name, cluster_extra, user) in
        [("rogue-client", ca.as_str(), rogue_user.as_str()), ("rogue-ca", rogue_ca.as_str(), user.as_str())]
    {
        let path = s.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, kubeconfig_text(&server, cluster_extra, user)).expect("write kubeconfig");
        let proxy =
            KubeProxy::start(&path, loopback(), &s.dir.path().join(format!("{name}.out"))).expect("proxy starts");
        let before = handshakes().len();
        let r = s.send(&proxy.url(), Method::GET, "/api/v1/namespaces/default", None, None).await;
        assert_eq!(
            (r.status.as_u16(), r.body["kind"].as_str(), r.body["reason"].as_str()),
            (503, Some("Status"), Some("ServiceUnavailable")),
            "{name}: {}",
            r.body
        );
        let new = handshakes_after(before).await;
        assert!(new.iter().all(|h| matches!(h, Handshake::Failed(_))), "{name}: {new:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Clients: kube-rs and kubectl
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_lists_and_watches_through_the_proxy_and_relists_after_expiry() {
    let s = start();
    s.namespace("krs").await;
    s.create_cm_directly("krs", "one").await;
    let kubeconfig = kube::config::Kubeconfig::read_from(s.proxy.kubeconfig()).expect("proxy kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client, "krs");
    let listed = api.list(&ListParams::default()).await.expect("list through the proxy");
    assert_eq!(listed.items.iter().filter_map(|c| c.metadata.name.as_deref()).collect::<Vec<_>>(), ["one"]);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<String, u16>>();
    let watching = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(item) = events.next().await {
            let sent = match item {
                Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => {
                    tx.send(Ok(cm.metadata.name.unwrap_or_default()))
                }
                Ok(_) => Ok(()),
                Err(watcher::Error::WatchError(status)) => tx.send(Err(status.code)),
                Err(_) => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = async |want: Result<&'static str, u16>| loop {
        let got = tokio::time::timeout(GENEROUS, rx.recv()).await.expect("a watcher event").expect("watcher running");
        let hit = match (&got, want) {
            (Ok(name), Ok(w)) => name == w,
            (Err(code), Err(w)) => *code == w,
            _ => false,
        };
        seen.push(got);
        if hit {
            break;
        }
    };
    wait_for(Ok("one")).await;
    s.create_cm_directly("krs", "two").await;
    wait_for(Ok("two")).await;

    s.admin(Method::DELETE, "requests", None).await;
    s.admin(Method::POST, "watches/expire", None).await;
    s.admin(Method::POST, "watches/drop", None).await;
    // kube-rs resumes its dropped watch, meets the in-stream 410, relists and watches again.
    wait_for(Err(410)).await;
    s.create_cm_directly("krs", "three").await;
    wait_for(Ok("three")).await;

    // "three" may have come with the relist, before the new watch was sent: wait for it.
    let mut kinds = Vec::new();
    for _ in 0..(GENEROUS.as_millis() / 100) {
        let journal = s.admin(Method::GET, "requests", None).await;
        kinds = entries(&journal)
            .iter()
            .filter(|e| e["path"] == "/api/v1/namespaces/krs/configmaps")
            .map(|e| if e["query"].as_str().is_some_and(|q| q.contains("watch=true")) { "watch" } else { "list" })
            .collect::<Vec<_>>();
        if kinds.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watching.abort();
    assert!(kinds.starts_with(&["watch", "list", "watch"]), "resume, relist, watch again: {kinds:?} (events {seen:?})");
}

/// `connection-sandbox kube-proxy` as a process: its stdout line, its kubeconfig, kubectl
/// through it, and SIGTERM while a watch is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subcommand_serves_kubectl_and_stops_on_sigterm() {
    let emulator = Emulator::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("proxy.kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_connection-sandbox"))
        .args(["kube-proxy", "--upstream-kubeconfig"])
        .arg(emulator.kubeconfig())
        .args(["--addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn connection-sandbox kube-proxy");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(GENEROUS).expect("a first line from kube-proxy");
    let addr = first
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let written = std::fs::read_to_string(&out).expect("kubeconfig written before the line");
    assert!(written.contains(&format!("server: http://{addr}\n")), "{written}");

    let kubectl = |args: &[&str]| {
        let output = Command::new(KUBECTL)
            .args(args)
            .arg("--kubeconfig")
            .arg(&out)
            .arg("--cache-dir")
            .arg(dir.path().join("kube-cache"))
            .env_remove("KUBECONFIG")
            .env("HOME", dir.path())
            .output()
            .expect("run kubectl");
        assert!(output.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let http = reqwest::Client::new();
    http.delete(format!("http://{addr}/_sandbox/requests")).send().await.expect("clear journal");
    let run = |args: Vec<&'static str>| {
        let kubectl = &kubectl;
        tokio::task::block_in_place(move || kubectl(&args))
    };
    run(vec!["create", "configmap", "via-proxy", "--from-literal=k=v", "-n", "default"]);
    assert_eq!(run(vec!["get", "configmap", "via-proxy", "-n", "default", "-o", "jsonpath={.data.k}"]), "v");
    let journal: Value =
        http.get(format!("http://{addr}/_sandbox/requests")).send().await.expect("journal").json().await.expect("json");
    let created = entries(&journal)
        .iter()
        .find(|e| e["method"] == "POST" && e["path"] == "/api/v1/namespaces/default/configmaps")
        .unwrap_or_else(|| panic!("kubectl's create went through the proxy: {journal}"));
    assert!(created["userAgent"].as_str().is_some_and(|ua| ua.starts_with("kubectl")), "{created}");
    // kubectl sends no credentials over plain HTTP; the object exists upstream.
    let upstream = http
        .get(format!("{}/api/v1/namespaces/default/configmaps/via-proxy", emulator.base_url()))
        .send()
        .await
        .expect("get");
    assert_eq!(upstream.status(), 200);

    // SIGTERM with a watch open: the watch ends and the process exits cleanly.
    let mut watch = Watch {
        resp: http
            .get(format!("http://{addr}/api/v1/namespaces/default/configmaps?watch=true"))
            .send()
            .await
            .expect("watch"),
        buf: Vec::new(),
    };
    assert_eq!(watch.event().await["object"]["metadata"]["name"], "via-proxy");
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
    assert!(term.success());
    assert_eq!(watch.next().await, Next::End);
    let exited = tokio::task::block_in_place(|| {
        for _ in 0..(GENEROUS.as_millis() / 100) {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    });
    if exited.is_none() {
        let _ = child.kill();
    }
    assert!(exited.is_some_and(|s| s.success()), "kube-proxy exits 0 on SIGTERM: {exited:?}");
}
