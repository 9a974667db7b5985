//! HTTP-level tests of the Kubernetes API emulator: a real server on 127.0.0.1 (port 0)
//! driven with reqwest, asserting statuses, bodies and watch streams as kube-apiserver
//! would produce them.

use std::net::SocketAddr;
use std::time::Duration;

use connection_sandbox::kube::{KubeSandbox, Options};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Api {
    _sandbox: KubeSandbox,
    _dir: tempfile::TempDir,
    base: String,
    token: String,
    http: reqwest::Client,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

fn start() -> Api {
    start_with(Options::default())
}

fn start_with(options: Options) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sandbox = KubeSandbox::start_with(addr, &kubeconfig, options).expect("sandbox starts");
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig written");
    assert!(text.contains(&format!("server: {}", sandbox.url())), "{text}");
    Api { base: sandbox.url(), token: sandbox.token().to_string(), _sandbox: sandbox, _dir: dir, http: reqwest::Client::new() }
}

impl Api {
    async fn call(&self, method: Method, path: &str, content_type: &str, body: Option<String>, accept: Option<&str>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", content_type).body(b);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, headers, body }
    }
    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, "", None, None).await
    }
    async fn get_as(&self, path: &str, accept: &str) -> Reply {
        self.call(Method::GET, path, "", None, Some(accept)).await
    }
    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, "application/json", Some(body.to_string()), None).await
    }
    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, "application/json", Some(body.to_string()), None).await
    }
    async fn patch(&self, path: &str, content_type: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, content_type, Some(body.to_string()), None).await
    }
    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, "", None, None).await
    }
    async fn create_ns(&self, name: &str) {
        let r = self.post("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    /// Open a watch and return a reader of its JSON lines.
    async fn watch(&self, path_and_query: &str) -> WatchReader {
        self.watch_as(path_and_query, "application/json").await
    }
    async fn watch_as(&self, path_and_query: &str, accept: &str) -> WatchReader {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.token)
            .header("accept", accept)
            .send()
            .await
            .expect("watch request");
        assert_eq!(resp.status(), 200);
        WatchReader { resp, buf: Vec::new() }
    }
}

struct WatchReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchReader {
    /// The next event, or None when the stream ended. Bounded wait so a missing event fails
    /// the test instead of hanging it.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("watch line is JSON"));
            }
            match tokio::time::timeout(Duration::from_secs(20), self.resp.chunk()).await.expect("watch event within 20s") {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }
    /// Next event that is not a BOOKMARK.
    async fn next_change(&mut self) -> Option<Value> {
        loop {
            let ev = self.next().await?;
            if ev["type"] != "BOOKMARK" {
                return Some(ev);
            }
        }
    }
}

/// An emulator whose periodic bookmarks never come during a test.
async fn api_with_slow_bookmarks() -> Api {
    start_with(Options { bookmark_interval: Duration::from_secs(3600), ..Options::default() })
}

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

#[tokio::test]
async fn version_health_and_plain_discovery() {
    let api = start();
    let v = api.get("/version").await;
    assert_eq!(v.body["minor"], "33");
    assert!(v.body["gitVersion"].as_str().unwrap().starts_with("v1.33."));
    assert_eq!(api.get("/healthz").await.body, "ok");
    assert_eq!(api.get("/readyz").await.status, 200);
    assert_eq!(api.get("/api").await.body["versions"], json!(["v1"]));
    let core = api.get("/api/v1").await.body;
    let ns = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "namespaces").unwrap().clone();
    assert_eq!(ns["shortNames"], json!(["ns"]));
    assert_eq!(ns["namespaced"], false);
    let groups = api.get("/apis").await.body;
    let names: Vec<&str> = groups["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    for g in ["apps", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io", "policy", "apiextensions.k8s.io"] {
        assert!(names.contains(&g), "{g} in {names:?}");
    }
    let apps = api.get("/apis/apps/v1").await.body;
    assert_eq!(apps["groupVersion"], "apps/v1");
    assert_eq!(apps["resources"][0]["shortNames"], json!(["deploy"]));
    assert_eq!(api.get("/apis/apps").await.body["preferredVersion"]["version"], "v1");
    let missing = api.get("/apis/nope.dev/v1").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["kind"], "Status");
}

#[tokio::test]
async fn aggregated_discovery_matches_the_accept_header() {
    let api = start();
    let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let r = api.get_as("/apis", v2).await;
    assert_eq!(r.headers["content-type"], "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    assert_eq!(r.body["kind"], "APIGroupDiscoveryList");
    let crd_group = r.body["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apiextensions.k8s.io").unwrap();
    let crds = &crd_group["versions"][0]["resources"][0];
    assert_eq!(crds["resource"], "customresourcedefinitions");
    assert_eq!(crds["scope"], "Cluster");
    assert_eq!(crds["subresources"][0]["subresource"], "status");
    let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let r = api.get_as("/api", beta).await;
    assert_eq!(r.headers["content-type"], "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList");
    assert_eq!(r.body["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    let core = &r.body["items"][0]["versions"][0];
    assert_eq!(core["version"], "v1");
    assert!(core["resources"].as_array().unwrap().iter().any(|r| r["resource"] == "configmaps" && r["shortNames"] == json!(["cm"])));
}

#[tokio::test]
async fn create_get_list_and_errors_like_kube_apiserver() {
    let api = start();
    let created = api.post("/api/v1/namespaces/default/configmaps", cm("a", json!({"k": "v"}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let meta = &created.body["metadata"];
    assert!(meta["uid"].as_str().unwrap().len() > 10);
    assert!(meta["creationTimestamp"].is_string());
    assert_eq!(meta["namespace"], "default");
    let rv1: u64 = meta["resourceVersion"].as_str().unwrap().parse().unwrap();

    let dup = api.post("/api/v1/namespaces/default/configmaps", cm("a", json!({}))).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["reason"], "AlreadyExists");
    assert_eq!(dup.body["message"], "configmaps \"a\" already exists");

    let missing_ns = api.post("/api/v1/namespaces/nope/configmaps", cm("a", json!({}))).await;
    assert_eq!(missing_ns.status, 404);
    assert_eq!(missing_ns.body["message"], "namespaces \"nope\" not found");

    let gone = api.get("/api/v1/namespaces/default/configmaps/zzz").await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body["message"], "configmaps \"zzz\" not found");
    assert_eq!(gone.body["details"], json!({"name": "zzz", "kind": "configmaps"}));

    let bad_name = api.post("/api/v1/namespaces/default/configmaps", cm("Bad_Name", json!({}))).await;
    assert_eq!(bad_name.status, 422);
    assert!(bad_name.body["message"].as_str().unwrap().starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""));

    let mut bad_label = cm("labelled", json!({}));
    bad_label["metadata"]["labels"] = json!({"bad key": "v"});
    let r = api.post("/api/v1/namespaces/default/configmaps", bad_label).await;
    assert_eq!(r.status, 422);
    assert!(r.body["message"].as_str().unwrap().starts_with("ConfigMap \"labelled\" is invalid: metadata.labels: Invalid value: \"bad key\": name part must consist of"), "{}", r.body);

    let generated = api
        .post("/api/v1/namespaces/default/configmaps", json!({"metadata": {"generateName": "gen-"}, "data": {}}))
        .await;
    assert_eq!(generated.status, 201);
    assert!(generated.body["metadata"]["name"].as_str().unwrap().starts_with("gen-"));

    // Stale resourceVersion on update: 409 with the real message.
    let mut stale = created.body.clone();
    let updated = api.put("/api/v1/namespaces/default/configmaps/a", {
        let mut v = created.body.clone();
        v["data"]["k"] = json!("v2");
        v
    })
    .await;
    assert_eq!(updated.status, 200);
    let rv2: u64 = updated.body["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    stale["data"]["k"] = json!("v3");
    let conflict = api.put("/api/v1/namespaces/default/configmaps/a", stale).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.body["message"],
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // An update that changes nothing keeps the resourceVersion.
    let same = api.put("/api/v1/namespaces/default/configmaps/a", updated.body.clone()).await;
    assert_eq!(same.body["metadata"]["resourceVersion"], updated.body["metadata"]["resourceVersion"]);

    let list = api.get("/api/v1/namespaces/default/configmaps").await.body;
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let list_rv: u64 = list["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(list_rv >= rv2);
}

#[tokio::test]
async fn selectors_pagination_and_cluster_wide_lists() {
    let api = start();
    api.create_ns("one").await;
    api.create_ns("two").await;
    for (ns, name, tier) in [("one", "a", "fe"), ("one", "b", "be"), ("two", "c", "fe"), ("two", "d", "db")] {
        let mut obj = cm(name, json!({}));
        obj["metadata"]["labels"] = json!({"tier": tier, "app": "x"});
        assert_eq!(api.post(&format!("/api/v1/namespaces/{ns}/configmaps"), obj).await.status, 201);
    }
    let names = |v: &Value| -> Vec<String> { v["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect() };
    assert_eq!(names(&api.get("/api/v1/configmaps").await.body), ["a", "b", "c", "d"]);
    assert_eq!(names(&api.get("/api/v1/configmaps?labelSelector=tier%3Dfe").await.body), ["a", "c"]);
    assert_eq!(names(&api.get("/api/v1/configmaps?labelSelector=tier%20in%20(be,db)").await.body), ["b", "d"]);
    assert_eq!(names(&api.get("/api/v1/configmaps?labelSelector=tier!%3Dfe,app").await.body), ["b", "d"]);
    assert_eq!(names(&api.get("/api/v1/configmaps?labelSelector=!tier").await.body), Vec::<String>::new());
    assert_eq!(names(&api.get("/api/v1/configmaps?fieldSelector=metadata.namespace%3Dtwo").await.body), ["c", "d"]);
    assert_eq!(names(&api.get("/api/v1/namespaces/one/configmaps?fieldSelector=metadata.name!%3Da").await.body), ["b"]);
    let bad = api.get("/api/v1/configmaps?fieldSelector=spec.foo%3D1").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["message"], "field label not supported: spec.foo");

    let page1 = api.get("/api/v1/configmaps?limit=3").await.body;
    assert_eq!(names(&page1), ["a", "b", "c"]);
    assert_eq!(page1["metadata"]["remainingItemCount"], 1);
    let token = page1["metadata"]["continue"].as_str().unwrap();
    let page2 = api.get(&format!("/api/v1/configmaps?limit=3&continue={token}")).await.body;
    assert_eq!(names(&page2), ["d"]);
    assert!(page2["metadata"]["continue"].is_null());
    assert_eq!(page2["metadata"]["resourceVersion"], page1["metadata"]["resourceVersion"]);
}

#[tokio::test]
async fn secrets_merge_string_data_and_default_their_type() {
    let api = start();
    let r = api
        .post(
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "s"}, "stringData": {"token": "abc"}, "data": {"other": "eA=="}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"], json!({"other": "eA==", "token": "YWJj"}));
    assert_eq!(r.body["type"], "Opaque");
    assert!(r.body.get("stringData").is_none());
    let mut changed = r.body.clone();
    changed["type"] = json!("kubernetes.io/tls");
    let immut = api.put("/api/v1/namespaces/default/secrets/s", changed).await;
    assert_eq!(immut.status, 422);
    assert!(immut.body["message"].as_str().unwrap().contains("field is immutable"));
}

#[tokio::test]
async fn finalizers_hold_deletion_until_released() {
    let api = start();
    let mut obj = cm("held", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let created = api.post("/api/v1/namespaces/default/configmaps", obj).await;
    let rv = created.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut w = api.watch(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}")).await;

    let del = api.delete("/api/v1/namespaces/default/configmaps/held").await;
    assert_eq!(del.status, 200);
    assert!(del.body["metadata"]["deletionTimestamp"].is_string());
    let still = api.get("/api/v1/namespaces/default/configmaps/held").await;
    assert_eq!(still.status, 200);
    let ev = w.next_change().await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert!(ev["object"]["metadata"]["deletionTimestamp"].is_string());

    // Adding a finalizer while deleting is forbidden.
    let add = api
        .patch("/api/v1/namespaces/default/configmaps/held", "application/merge-patch+json", json!({"metadata": {"finalizers": ["example.com/hold", "x.io/y"]}}))
        .await;
    assert_eq!(add.status, 422, "{}", add.body);

    let release = api
        .patch("/api/v1/namespaces/default/configmaps/held", "application/merge-patch+json", json!({"metadata": {"finalizers": []}}))
        .await;
    assert_eq!(release.status, 200, "{}", release.body);
    let ev = w.next_change().await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(api.get("/api/v1/namespaces/default/configmaps/held").await.status, 404);
}

#[tokio::test]
async fn namespace_deletion_terminates_and_removes_contents() {
    let api = start();
    api.create_ns("doomed").await;
    let mut held = cm("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.post("/api/v1/namespaces/doomed/configmaps", held).await;
    api.post("/api/v1/namespaces/doomed/configmaps", cm("free", json!({}))).await;
    let sa = api.get("/api/v1/namespaces/doomed/serviceaccounts/default").await;
    assert_eq!(sa.status, 200, "every namespace gets a default ServiceAccount");
    let del = api.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body["status"]["phase"], "Terminating");
    assert_eq!(api.get("/api/v1/namespaces/doomed/configmaps/free").await.status, 404);
    let refused = api.post("/api/v1/namespaces/doomed/configmaps", cm("late", json!({}))).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body["message"].as_str().unwrap().contains("because it is being terminated"));
    assert_eq!(api.get("/api/v1/namespaces/doomed").await.status, 200);
    let release = api
        .patch("/api/v1/namespaces/doomed/configmaps/held", "application/merge-patch+json", json!({"metadata": {"finalizers": null}}))
        .await;
    assert_eq!(release.status, 200, "{}", release.body);
    assert_eq!(api.get("/api/v1/namespaces/doomed").await.status, 404);
}

#[tokio::test]
async fn watch_replays_streams_and_expires() {
    let api = start();
    let first = api.post("/api/v1/namespaces/default/configmaps", cm("w1", json!({}))).await;
    let rv0 = first.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    api.post("/api/v1/namespaces/default/configmaps", cm("w2", json!({}))).await;

    // From a version: replay what happened after it, then live events.
    let mut w = api.watch(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv0}")).await;
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("w2")));
    api.post("/api/v1/namespaces/default/configmaps", cm("w3", json!({}))).await;
    let ev = w.next().await.unwrap();
    assert_eq!(ev["object"]["metadata"]["name"], "w3");
    assert_eq!(ev["object"]["kind"], "ConfigMap");

    // Without a version: synthetic ADDED for the current state.
    let mut all = api.watch("/api/v1/namespaces/default/configmaps?watch=true").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(all.next().await.unwrap()["object"]["metadata"]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["w1", "w2", "w3"]);

    // After expiry, an old version gets an in-stream ERROR 410 (not an HTTP error).
    let expire = api.call(Method::POST, "/_sandbox/watches/expire", "application/json", Some("{}".into()), None).await;
    assert_eq!(expire.status, 200);
    let mut old = api.watch(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv0}")).await;
    let ev = old.next().await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    assert!(old.next().await.is_none());

    // Expiry is also one-shot for a watch resuming from the current version.
    let now = api.get("/api/v1/namespaces/default/configmaps").await.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    api.call(Method::POST, "/_sandbox/watches/expire", "application/json", Some("{}".into()), None).await;
    let mut current = api.watch(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={now}")).await;
    assert_eq!(current.next().await.unwrap()["object"]["code"], 410);
    let mut resumed = api.watch(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={now}&timeoutSeconds=1")).await;
    assert!(resumed.next().await.is_none(), "a second watch resumes normally");

    // Dropping watches ends open streams.
    let drop = api.call(Method::POST, "/_sandbox/watches/drop", "application/json", Some("{}".into()), None).await;
    assert_eq!(drop.status, 200);
    assert!(w.next().await.is_none());
}

#[tokio::test]
async fn watch_selectors_turn_leaving_objects_into_deleted() {
    let api = start();
    let mut obj = cm("sel", json!({}));
    obj["metadata"]["labels"] = json!({"watch": "me"});
    let created = api.post("/api/v1/namespaces/default/configmaps", obj).await;
    let rv = created.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut w = api.watch(&format!("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=watch%3Dme&resourceVersion={rv}")).await;
    api.post("/api/v1/namespaces/default/configmaps", cm("other", json!({}))).await;
    api.patch("/api/v1/namespaces/default/configmaps/sel", "application/merge-patch+json", json!({"metadata": {"labels": {"watch": "no"}}})).await;
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("DELETED"), Some("sel")));
    api.patch("/api/v1/namespaces/default/configmaps/sel", "application/merge-patch+json", json!({"metadata": {"labels": {"watch": "me"}}})).await;
    assert_eq!(w.next().await.unwrap()["type"], "ADDED");
}

#[tokio::test]
async fn streaming_list_and_bookmarks() {
    let api = start_with(Options { bookmark_interval: Duration::from_millis(200), ..Options::default() });
    api.post("/api/v1/namespaces/default/configmaps", cm("s1", json!({}))).await;
    let invalid = api.get("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true").await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.body["details"]["kind"], "ListOptions");
    let mut w = api
        .watch("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
        .await;
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("s1")));
    let end = w.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert_eq!(end["object"]["kind"], "ConfigMap");
    let periodic = w.next().await.unwrap();
    assert_eq!(periodic["type"], "BOOKMARK");
    assert!(periodic["object"]["metadata"]["resourceVersion"].is_string());

    // timeoutSeconds ends the stream cleanly.
    let mut short = api.watch("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1").await;
    assert_eq!(short.next().await.unwrap()["type"], "ADDED");
    assert!(short.next().await.is_none());
    // With bookmarks, a last BOOKMARK precedes the close.
    let slow = api_with_slow_bookmarks().await;
    let mut last = slow.watch("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&allowWatchBookmarks=true").await;
    let mut kinds = Vec::new();
    while let Some(ev) = last.next().await {
        kinds.push(ev["type"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds.last().map(String::as_str), Some("BOOKMARK"), "{kinds:?}");
}

#[tokio::test]
async fn events_are_visible_in_both_api_groups() {
    let api = start();
    let ev = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e1", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "ctl", "reportingInstance": "ctl-0",
        "action": "Reconcile", "reason": "Synced", "type": "Normal", "note": "all good",
        "regarding": {"kind": "ConfigMap", "namespace": "default", "name": "x"}
    });
    let created = api.post("/apis/events.k8s.io/v1/namespaces/default/events", ev).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["note"], "all good");
    let core = api.get("/api/v1/namespaces/default/events/e1").await.body;
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "all good");
    assert_eq!(core["involvedObject"]["name"], "x");
    let by_field = api.get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dx").await.body;
    assert_eq!(by_field["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn faults_fail_matching_requests_then_clear() {
    let api = start();
    let put = api
        .call(Method::PUT, "/_sandbox/faults", "application/json", Some(json!({"method": "GET", "path": "/api/v1/namespaces*", "status": 503, "count": 2}).to_string()), None)
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(api.get("/api/v1/namespaces").await.status, 503);
    assert_eq!(api.get("/api/v1/namespaces/default").await.status, 503);
    assert_eq!(api.get("/api/v1/namespaces").await.status, 200);
    api.call(Method::PUT, "/_sandbox/faults", "application/json", Some(json!({"path": "*", "status": 500, "probability": 1.0}).to_string()), None).await;
    assert_eq!(api.get("/version").await.status, 500);
    let cleared = api.call(Method::DELETE, "/_sandbox/faults", "", None, None).await;
    assert_eq!(cleared.status, 200);
    assert_eq!(api.get("/version").await.status, 200);
    let invalid = api.call(Method::PUT, "/_sandbox/faults", "application/json", Some(json!({"path": "x", "status": 500}).to_string()), None).await;
    assert_eq!(invalid.status, 400);
    let reset = api.call(Method::PUT, "/_sandbox/faults", "application/json", Some(json!({"path": "*", "reset": true}).to_string()), None).await;
    assert_eq!(reset.status, 400, "connection resets are a provider-emulator feature");
    api.call(Method::PUT, "/_sandbox/faults", "application/json", Some(json!({"path": "/version", "status": 502, "body": "not json"}).to_string()), None).await;
    let raw = api.get("/version").await;
    assert_eq!((raw.status.as_u16(), raw.body.as_str()), (502, Some("not json")));
}

fn gizmo_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.test.dev"},
        "spec": {
            "group": "test.dev", "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo", "shortNames": ["gz"], "categories": ["all"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1, "description": "How big."},
                        "colour": {"type": "string", "default": "blue"}
                    }},
                    "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
                }}}
            }]
        }
    })
}

fn gizmo(name: &str, size: i64) -> Value {
    json!({"apiVersion": "test.dev/v1", "kind": "Gizmo", "metadata": {"name": name}, "spec": {"size": size}})
}

const GIZMOS: &str = "/apis/test.dev/v1/namespaces/default/gizmos";

async fn with_gizmos() -> Api {
    let api = start();
    let crd = api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", gizmo_crd()).await;
    assert_eq!(crd.status, 201, "{}", crd.body);
    let conditions = crd.body["status"]["conditions"].as_array().unwrap();
    assert!(conditions.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
    assert_eq!(crd.body["status"]["acceptedNames"]["kind"], "Gizmo");
    api
}

#[tokio::test]
async fn crds_are_served_once_established() {
    let api = with_gizmos().await;
    let list = api.get("/apis/test.dev/v1").await.body;
    let res = &list["resources"].as_array().unwrap();
    assert!(res.iter().any(|r| r["name"] == "gizmos" && r["shortNames"] == json!(["gz"]) && r["categories"] == json!(["all"])));
    assert!(res.iter().any(|r| r["name"] == "gizmos/status"));
    let agg = api.get_as("/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList").await.body;
    assert!(agg["items"].as_array().unwrap().iter().any(|g| g["metadata"]["name"] == "test.dev"));

    let created = api.post(GIZMOS, gizmo("g1", 2)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["spec"]["colour"], "blue", "defaulted");
    assert_eq!(created.body["metadata"]["generation"], 1);

    let invalid = api.post(GIZMOS, gizmo("g2", 0)).await;
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    assert_eq!(invalid.body["reason"], "Invalid");
    assert!(invalid.body["message"].as_str().unwrap().starts_with("Gizmo.test.dev \"g2\" is invalid: spec.size"), "{}", invalid.body);
    assert_eq!(invalid.body["details"]["causes"][0]["field"], "spec.size");

    let no_kind = api.post(GIZMOS, json!({"metadata": {"name": "x"}, "spec": {"size": 1}})).await;
    assert_eq!(no_kind.status, 400);

    // Custom resources need metadata.resourceVersion on PUT and are never created by PUT.
    let mut unconditional = created.body.clone();
    unconditional["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let r = api.put(&format!("{GIZMOS}/g1"), unconditional).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"));
    let r = api.put(&format!("{GIZMOS}/nope"), gizmo("nope", 1)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["message"], "gizmos.test.dev \"nope\" not found");
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let api = with_gizmos().await;
    let mut obj = gizmo("s", 1);
    obj["status"] = json!({"phase": "Ignored"});
    let created = api.post(GIZMOS, obj).await.body;
    assert!(created.get("status").is_none(), "status is dropped on create: {created}");

    // Status through /status: generation unchanged, spec changes ignored.
    let st = api
        .patch(&format!("{GIZMOS}/s/status"), "application/merge-patch+json", json!({"spec": {"size": 9}, "status": {"phase": "Ready"}}))
        .await;
    assert_eq!(st.status, 200, "{}", st.body);
    assert_eq!(st.body["status"]["phase"], "Ready");
    assert_eq!(st.body["spec"]["size"], 1);
    assert_eq!(st.body["metadata"]["generation"], 1);

    // Main resource: status ignored, spec change bumps generation.
    let main = api
        .patch(&format!("{GIZMOS}/s"), "application/merge-patch+json", json!({"spec": {"size": 3}, "status": {"phase": "Hacked"}}))
        .await;
    assert_eq!(main.body["status"]["phase"], "Ready");
    assert_eq!(main.body["metadata"]["generation"], 2);
    // Metadata-only change: no generation bump.
    let labels = api.patch(&format!("{GIZMOS}/s"), "application/merge-patch+json", json!({"metadata": {"labels": {"a": "b"}}})).await;
    assert_eq!(labels.body["metadata"]["generation"], 2);

    // Status apply without metadata (controller-rs style): accepted, no generation bump, and
    // an unchanged re-apply is a no-op (same resourceVersion, no event).
    let apply_url = format!("{GIZMOS}/s/status?fieldManager=ctl&force=true");
    let status_cfg = json!({"apiVersion": "test.dev/v1", "kind": "Gizmo", "status": {"phase": "Applied"}});
    let applied = api.patch(&apply_url, "application/apply-patch+yaml", status_cfg.clone()).await;
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert_eq!(applied.body["status"]["phase"], "Applied");
    assert_eq!(applied.body["metadata"]["generation"], 2);
    let rv = applied.body["metadata"]["resourceVersion"].clone();
    let mut w = api.watch(&format!("{GIZMOS}?watch=true&resourceVersion={}", rv.as_str().unwrap())).await;
    let again = api.patch(&apply_url, "application/apply-patch+yaml", status_cfg).await;
    assert_eq!(again.body["metadata"]["resourceVersion"], rv);
    api.post(GIZMOS, gizmo("marker", 1)).await;
    assert_eq!(w.next_change().await.unwrap()["object"]["metadata"]["name"], "marker", "no event for the no-op apply");
    let wrong = api
        .patch(&apply_url, "application/apply-patch+yaml", json!({"apiVersion": "test.dev/v1", "kind": "Gizmo", "metadata": {"name": "other"}}))
        .await;
    assert_eq!(wrong.status, 400);

    let smp = api.patch(&format!("{GIZMOS}/s"), "application/strategic-merge-patch+json", json!({"spec": {"size": 4}})).await;
    assert_eq!(smp.status, 415);
    assert_eq!(smp.body["reason"], "UnsupportedMediaType");

    let no_manager = api.patch(&format!("{GIZMOS}/s"), "application/apply-patch+yaml", gizmo("s", 5)).await;
    assert_eq!(no_manager.status, 422);
    assert_eq!(no_manager.body["message"], "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");

    // dryRun=All answers with the result and stores nothing.
    let dry = api.patch(&format!("{GIZMOS}/s?dryRun=All"), "application/merge-patch+json", json!({"spec": {"size": 7}})).await;
    assert_eq!(dry.body["spec"]["size"], 7);
    assert_eq!(api.get(&format!("{GIZMOS}/s")).await.body["spec"]["size"], 3);
    let dry_create = api.call(Method::POST, &format!("{GIZMOS}?dryRun=All"), "application/json", Some(gizmo("ghost", 1).to_string()), None).await;
    assert_eq!(dry_create.status, 201);
    assert_eq!(api.get(&format!("{GIZMOS}/ghost")).await.status, 404);
}

#[tokio::test]
async fn tables_and_openapi_for_custom_resources() {
    let api = with_gizmos().await;
    api.post(GIZMOS, gizmo("t1", 5)).await;
    let table = api.get_as(GIZMOS, "application/json;as=Table;v=v1;g=meta.k8s.io,application/json").await;
    assert_eq!(table.headers["content-type"], "application/json;as=Table;v=v1;g=meta.k8s.io");
    assert_eq!(table.body["kind"], "Table");
    let cols: Vec<&str> = table.body["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(cols.contains(&"Size"), "{cols:?}");
    assert_eq!(table.body["rows"][0]["object"]["metadata"]["name"], "t1");
    assert!(table.body["metadata"]["resourceVersion"].is_string());

    let index = api.get("/openapi/v3").await.body;
    let url = index["paths"]["apis/test.dev/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
    assert!(url.contains("?hash="));
    let doc = api.get(&url).await;
    assert_eq!(doc.status, 200);
    let etag = doc.headers["etag"].to_str().unwrap().to_string();
    assert!(url.ends_with(etag.trim_matches('"')));
    assert_eq!(doc.headers["cache-control"], "public, immutable");
    assert!(!doc.body["components"]["schemas"].as_object().unwrap().is_empty());
    assert_eq!(api.get("/openapi/v3/apis/nope/v1").await.status, 404);
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_and_stops_serving() {
    let api = with_gizmos().await;
    api.post(GIZMOS, gizmo("d1", 1)).await;
    let created = api.post(GIZMOS, gizmo("d2", 1)).await;
    let rv = created.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut w = api.watch(&format!("{GIZMOS}?watch=true&resourceVersion={rv}")).await;
    let del = api.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gizmos.test.dev").await;
    assert_eq!(del.status, 200, "{}", del.body);
    let mut deleted = Vec::new();
    for _ in 0..2 {
        let ev = w.next_change().await.unwrap();
        assert_eq!(ev["type"], "DELETED");
        deleted.push(ev["object"]["metadata"]["name"].as_str().unwrap().to_string());
    }
    deleted.sort();
    assert_eq!(deleted, ["d1", "d2"]);
    assert_eq!(api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gizmos.test.dev").await.status, 404);
    assert_eq!(api.get(GIZMOS).await.status, 404);
    assert_eq!(api.get("/apis/test.dev/v1").await.status, 404);
}

#[tokio::test]
async fn create_on_update_and_delete_collection_follow_the_kind() {
    let api = start();
    // Leases may be created by PUT; ConfigMaps may not.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}});
    let r = api.put("/apis/coordination.k8s.io/v1/namespaces/default/leases/l", lease).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api.put("/api/v1/namespaces/default/configmaps/c", cm("c", json!({}))).await;
    assert_eq!(r.status, 404);
    let mismatch = api.put("/api/v1/namespaces/default/configmaps/other", cm("c", json!({}))).await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(mismatch.body["message"], "the name of the object (c) does not match the name on the URL (other)");

    for name in ["x1", "x2", "y1"] {
        let mut obj = cm(name, json!({}));
        obj["metadata"]["labels"] = json!({"group": &name[..1]});
        api.post("/api/v1/namespaces/default/configmaps", obj).await;
    }
    let r = api.call(Method::DELETE, "/api/v1/namespaces/default/configmaps?labelSelector=group%3Dx", "", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let left = api.get("/api/v1/namespaces/default/configmaps").await.body;
    assert_eq!(left["items"].as_array().unwrap().len(), 1);

    // Preconditions on delete.
    let r = api
        .call(Method::DELETE, "/api/v1/namespaces/default/configmaps/y1", "application/json", Some(json!({"preconditions": {"uid": "nope"}}).to_string()), None)
        .await;
    assert_eq!(r.status, 409);
    assert!(r.body["message"].as_str().unwrap().contains("Precondition failed: UID in precondition: nope"));
}

#[tokio::test]
async fn metadata_only_reads_and_watches() {
    let api = start();
    api.post("/api/v1/namespaces/default/secrets", json!({"metadata": {"name": "m"}, "stringData": {"k": "secret"}})).await;
    let list = api.get_as("/api/v1/namespaces/default/secrets", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").await;
    assert_eq!(list.body["kind"], "PartialObjectMetadataList");
    assert_eq!(list.body["items"][0]["metadata"]["name"], "m");
    assert!(list.body["items"][0].get("data").is_none());
    let mut w = api.watch_as("/api/v1/namespaces/default/secrets?watch=true", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1").await;
    let ev = w.next().await.unwrap();
    assert_eq!(ev["object"]["kind"], "PartialObjectMetadata");
    assert!(ev["object"].get("data").is_none());
}

#[tokio::test]
async fn built_in_kinds_prune_or_refuse_unknown_fields() {
    let api = start();
    let mut obj = cm("u", json!({"a": "b"}));
    obj["spec"] = json!({"oops": 1});
    let strict = api.call(Method::POST, "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", "application/json", Some(obj.to_string()), None).await;
    assert_eq!(strict.status, 400);
    assert_eq!(strict.body["message"], "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\"");
    let warned = api.post("/api/v1/namespaces/default/configmaps", obj).await;
    assert_eq!(warned.status, 201);
    assert_eq!(warned.headers["warning"], "299 - \"unknown field \\\"spec\\\"\"");
    assert!(warned.body.get("spec").is_none());
    let bad_type = api.post("/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "t"}, "data": {"a": 1}})).await;
    assert_eq!(bad_type.status, 400);
    assert!(bad_type.body["message"].as_str().unwrap().starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap:"));
}

#[tokio::test]
async fn immutable_data_and_malformed_patches_are_refused() {
    let api = start();
    let mut obj = cm("frozen", json!({"a": "b"}));
    obj["immutable"] = json!(true);
    api.post("/api/v1/namespaces/default/configmaps", obj).await;
    let change = api.patch("/api/v1/namespaces/default/configmaps/frozen", "application/merge-patch+json", json!({"data": {"a": "c"}})).await;
    assert_eq!(change.status, 422);
    assert!(change.body["message"].as_str().unwrap().contains("data: Forbidden: field is immutable when `immutable` is set"), "{}", change.body);
    let labels = api.patch("/api/v1/namespaces/default/configmaps/frozen", "application/merge-patch+json", json!({"metadata": {"labels": {"x": "y"}}})).await;
    assert_eq!(labels.status, 200, "metadata stays writable");
    let root = api
        .patch("/api/v1/namespaces/default/configmaps/frozen", "application/json-patch+json", json!([{"op": "replace", "path": "", "value": [1]}]))
        .await;
    assert!(root.status == 400 || root.status == 422, "{} {}", root.status, root.body);
    assert_eq!(api.get("/api/v1/namespaces/default/configmaps/frozen").await.body["data"]["a"], "b");
}

#[tokio::test]
async fn services_get_defaults_and_keep_their_cluster_ip() {
    let api = start();
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
    let created = api.post("/api/v1/namespaces/default/services", svc.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let ip = created.body["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.96."), "{ip}");
    assert_eq!(created.body["spec"]["ports"][0]["targetPort"], 80);
    let mut replaced = svc;
    replaced["metadata"]["resourceVersion"] = created.body["metadata"]["resourceVersion"].clone();
    replaced["spec"]["ports"][0]["port"] = json!(81);
    let updated = api.put("/api/v1/namespaces/default/services/web", replaced).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["spec"]["clusterIP"], ip.as_str());
    let other = api.post("/api/v1/namespaces/default/services", json!({"metadata": {"name": "api"}, "spec": {"ports": [{"port": 1}]}})).await;
    assert_ne!(other.body["spec"]["clusterIP"], ip.as_str());
}

#[tokio::test]
async fn table_watches_and_watches_of_one_object() {
    let api = start();
    api.post("/api/v1/namespaces/default/configmaps", cm("t1", json!({}))).await;
    api.post("/api/v1/namespaces/default/configmaps", cm("t2", json!({}))).await;
    let mut w = api
        .watch_as("/api/v1/namespaces/default/configmaps?watch=true&includeObject=Object", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
        .await;
    let first = w.next().await.unwrap();
    assert_eq!(first["object"]["kind"], "Table");
    assert!(!first["object"]["columnDefinitions"].as_array().unwrap().is_empty());
    assert_eq!(first["object"]["rows"][0]["object"]["metadata"]["name"], "t1");
    let second = w.next().await.unwrap();
    assert!(second["object"]["columnDefinitions"].as_array().unwrap().is_empty(), "columns only in the first event");
    assert_eq!(second["object"]["rows"][0]["object"]["metadata"]["name"], "t2");

    let mut one = api.watch("/api/v1/namespaces/default/configmaps/t2?watch=true").await;
    let ev = one.next().await.unwrap();
    assert_eq!(ev["object"]["metadata"]["name"], "t2");
    api.patch("/api/v1/namespaces/default/configmaps/t1", "application/merge-patch+json", json!({"data": {"x": "1"}})).await;
    api.patch("/api/v1/namespaces/default/configmaps/t2", "application/merge-patch+json", json!({"data": {"x": "2"}})).await;
    let ev = one.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("MODIFIED"), Some("t2")));
}
