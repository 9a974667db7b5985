//! HTTP-level tier: statuses, headers, bodies and watch streams of the Kubernetes API,
//! driven with reqwest against the real control plane (HTTPS, the admin's client
//! certificate) and against the emulator (HTTP, its bearer token). Every case runs on both
//! (`real::*`, `emulator::*`) in a namespace of its own; the expected answers are
//! kube-apiserver 1.37's. The emulator's own admin API (`/_sandbox/`) is tested in
//! `emulator_only`.

#[macro_use]
#[path = "kube_support/mod.rs"]
mod kube_support;

use std::time::Duration;

use connection_testkit::http::ApiClient;
use kube_support::{Backend, Kube, Reply, TestNamespace};
use reqwest::Method;
use serde_json::{Value, json};

/// One case's API: a namespace of its own (dropped first), an HTTP client as the admin.
struct Api {
    ns: TestNamespace,
    http: ApiClient,
    kube: Kube,
}

/// The backend with a namespace `api-<random>` for the case.
fn start(backend: Backend) -> Api {
    let kube = Kube::start(backend);
    let http = ApiClient::admin(kube.cluster());
    let ns = kube.namespace("api");
    Api { ns, http, kube }
}

impl Api {
    /// The case's namespace.
    fn ns(&self) -> &str {
        self.ns.name()
    }

    /// `/api/v1/namespaces/<ns>/<plural>`.
    fn core(&self, plural: &str) -> String {
        format!("/api/v1/namespaces/{}/{plural}", self.ns())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<String>,
        accept: Option<&str>,
    ) -> Reply {
        let mut req = self.http.request(method, path);
        if let Some(b) = body {
            req = req.header("content-type", content_type).body(b);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        Reply::read(req.send().await.expect("request sent")).await
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
    /// Open a watch and return a reader of its JSON lines.
    async fn watch(&self, path_and_query: &str) -> WatchReader {
        self.watch_as(path_and_query, "application/json").await
    }
    async fn watch_as(&self, path_and_query: &str, accept: &str) -> WatchReader {
        let resp = self
            .http
            .request(Method::GET, path_and_query)
            .header("accept", accept)
            .send()
            .await
            .expect("watch request");
        assert_eq!(resp.status(), 200, "{path_and_query}");
        WatchReader { resp, buf: Vec::new() }
    }
    /// Poll GET `path` until it answers `status`.
    async fn until_status(&self, path: &str, status: u16) {
        connection_testkit::wait::eventually(&format!("GET {path} to answer {status}"), || async move {
            (self.get(path).await.status == status).then_some(())
        })
        .await;
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
            match tokio::time::timeout(Duration::from_secs(60), self.resp.chunk())
                .await
                .expect("watch event within 60s")
            {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }
    /// Next event about an object of the case that is not a BOOKMARK.
    async fn next_change(&mut self) -> Option<Value> {
        loop {
            let ev = self.next_own().await?;
            if ev["type"] != "BOOKMARK" {
                return Some(ev);
            }
        }
    }
    /// The next event about an object of the case (not `kube-root-ca.crt`, which
    /// kube-controller-manager's root-ca publisher puts into every namespace).
    async fn next_own(&mut self) -> Option<Value> {
        loop {
            let ev = self.next().await?;
            if !is_root_ca(&ev["object"]) {
                return Some(ev);
            }
        }
    }
}

/// The ConfigMap kube-controller-manager publishes in every namespace; the emulator runs no
/// such controller (docs/sandbox.md).
fn is_root_ca(obj: &Value) -> bool {
    obj["metadata"]["name"] == "kube-root-ca.crt"
}

/// Names of a list's items, without `kube-root-ca.crt`.
fn names(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .filter(|i| !is_root_ca(i))
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

/// A random lower-case suffix for cluster-scoped names on the shared control plane.
fn unique() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..6).map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz"[rng.random_range(0..26)])).collect()
}

/// The minor version each backend reports: kube-apiserver is 1.37.2; the emulator models
/// the 1.33 API (its built-in schemas come from k8s-openapi's v1_33), see docs/sandbox.md.
fn minor(backend: Backend) -> &'static str {
    match backend {
        Backend::Real => "37",
        Backend::Emulator => "33",
    }
}

async fn version_health_and_plain_discovery(backend: Backend) {
    let api = start(backend);
    let v = api.get("/version").await;
    assert_eq!(v.body["major"], "1", "{}", v.body);
    assert_eq!(v.body["minor"], minor(backend), "{}", v.body);
    assert!(v.body["gitVersion"].as_str().unwrap().starts_with(&format!("v1.{}.", minor(backend))), "{}", v.body);
    assert_eq!(api.get("/healthz").await.body, "ok");
    assert_eq!(api.get("/readyz").await.status, 200);
    let versions = api.get("/api").await.body;
    assert_eq!(versions["kind"], "APIVersions");
    assert_eq!(versions["versions"], json!(["v1"]));
    let core = api.get("/api/v1").await.body;
    let ns = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "namespaces").unwrap().clone();
    assert_eq!(ns["shortNames"], json!(["ns"]));
    assert_eq!(ns["namespaced"], false);
    let groups = api.get("/apis").await.body;
    let names: Vec<&str> = groups["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    for g in
        ["apps", "coordination.k8s.io", "events.k8s.io", "rbac.authorization.k8s.io", "policy", "apiextensions.k8s.io"]
    {
        assert!(names.contains(&g), "{g} in {names:?}");
    }
    let apps = api.get("/apis/apps/v1").await.body;
    assert_eq!(apps["groupVersion"], "apps/v1");
    let deployments =
        apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments").expect("deployments");
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    assert_eq!(deployments["kind"], "Deployment");
    assert_eq!(api.get("/apis/apps").await.body["preferredVersion"]["version"], "v1");
    // A group nobody serves is the mux's plain-text 404; a served group's unknown version a
    // NotFound Status.
    let missing = api.get("/apis/nope.dev/v1").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(missing.body, "404 page not found\n");
    let no_version = api.get("/apis/apps/v2").await;
    assert_eq!(no_version.status, 404);
    assert_eq!(no_version.body["kind"], "Status", "{}", no_version.body);
    assert_eq!(no_version.body["message"], "the server could not find the requested resource");
    assert_eq!(no_version.body["details"], json!({}));
}

async fn aggregated_discovery_matches_the_accept_header(backend: Backend) {
    let api = start(backend);
    let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let r = api.get_as("/apis", v2).await;
    assert_eq!(r.headers["content-type"], "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    assert_eq!(r.body["kind"], "APIGroupDiscoveryList");
    let crd_group =
        r.body["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apiextensions.k8s.io").unwrap();
    let crds = &crd_group["versions"][0]["resources"][0];
    assert_eq!(crds["resource"], "customresourcedefinitions");
    assert_eq!(crds["scope"], "Cluster");
    assert_eq!(crds["subresources"][0]["subresource"], "status");
    let r = api.get_as("/api", v2).await;
    assert_eq!(r.body["apiVersion"], "apidiscovery.k8s.io/v2");
    let core = &r.body["items"][0]["versions"][0];
    assert_eq!(core["version"], "v1");
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resource"] == "configmaps" && r["shortNames"] == json!(["cm"]))
    );
    // v2beta1 is no longer served (1.33 still did): with a plain fallback the plain document
    // comes, without one a 406.
    let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
    let r = api.get_as("/api", &format!("{beta},application/json")).await;
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.body["kind"], "APIVersions", "{}", r.body);
    let r = api.get_as("/apis", beta).await;
    assert_eq!(r.status, 406, "{}", r.body);
    assert_eq!(r.body["reason"], "NotAcceptable");
}

async fn create_get_list_and_errors_like_kube_apiserver(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    let created = api.post(&cms, cm("a", json!({"k": "v"}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let meta = &created.body["metadata"];
    assert!(meta["uid"].as_str().unwrap().len() > 10);
    assert!(meta["creationTimestamp"].is_string());
    assert_eq!(meta["namespace"], api.ns());
    let rv1: u64 = meta["resourceVersion"].as_str().unwrap().parse().unwrap();

    let dup = api.post(&cms, cm("a", json!({}))).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["reason"], "AlreadyExists");
    assert_eq!(dup.body["message"], "configmaps \"a\" already exists");

    let missing_ns = api.post("/api/v1/namespaces/nope/configmaps", cm("a", json!({}))).await;
    assert_eq!(missing_ns.status, 404);
    assert_eq!(missing_ns.body["message"], "namespaces \"nope\" not found");

    let gone = api.get(&format!("{cms}/zzz")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body["message"], "configmaps \"zzz\" not found");
    assert_eq!(gone.body["details"], json!({"name": "zzz", "kind": "configmaps"}));

    let bad_name = api.post(&cms, cm("Bad_Name", json!({}))).await;
    assert_eq!(bad_name.status, 422);
    assert!(
        bad_name.body["message"]
            .as_str()
            .unwrap()
            .starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""),
        "{}",
        bad_name.body
    );

    let mut bad_label = cm("labelled", json!({}));
    bad_label["metadata"]["labels"] = json!({"bad key": "v"});
    let r = api.post(&cms, bad_label).await;
    assert_eq!(r.status, 422);
    assert!(
        r.body["message"].as_str().unwrap().starts_with(
            "ConfigMap \"labelled\" is invalid: metadata.labels: Invalid value: \"bad key\": name part must consist of"
        ),
        "{}",
        r.body
    );

    let generated = api.post(&cms, json!({"metadata": {"generateName": "gen-"}, "data": {}})).await;
    assert_eq!(generated.status, 201);
    assert!(generated.body["metadata"]["name"].as_str().unwrap().starts_with("gen-"));

    // Stale resourceVersion on update: 409 with the real message.
    let mut stale = created.body.clone();
    let updated = api
        .put(&format!("{cms}/a"), {
            let mut v = created.body.clone();
            v["data"]["k"] = json!("v2");
            v
        })
        .await;
    assert_eq!(updated.status, 200);
    let rv2: u64 = updated.body["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    stale["data"]["k"] = json!("v3");
    let conflict = api.put(&format!("{cms}/a"), stale).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        conflict.body["message"],
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // An update that changes nothing keeps the resourceVersion.
    let same = api.put(&format!("{cms}/a"), updated.body.clone()).await;
    assert_eq!(same.body["metadata"]["resourceVersion"], updated.body["metadata"]["resourceVersion"]);

    let list = api.get(&cms).await.body;
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(names(&list).len(), 2, "{list}");
    let list_rv: u64 = list["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(list_rv >= rv2);
}

async fn selectors_pagination_and_cluster_wide_lists(backend: Backend) {
    let api = start(backend);
    let (one_ns, two_ns) = (api.kube.namespace("one"), api.kube.namespace("two"));
    let (one, two) = (one_ns.name(), two_ns.name());
    // `app=<this case>` narrows cluster-wide lists to this case's objects on the shared
    // control plane.
    let app = api.ns().to_string();
    for (ns, name, tier) in [(one, "a", "fe"), (one, "b", "be"), (two, "c", "fe"), (two, "d", "db")] {
        let mut obj = cm(name, json!({}));
        obj["metadata"]["labels"] = json!({"tier": tier, "app": app});
        assert_eq!(api.post(&format!("/api/v1/namespaces/{ns}/configmaps"), obj).await.status, 201);
    }
    let mine = |selector: &str| {
        let selector = if selector.is_empty() { format!("app%3D{app}") } else { format!("app%3D{app},{selector}") };
        format!("/api/v1/configmaps?labelSelector={selector}")
    };
    // Cluster-wide lists are ordered by namespace, then name.
    assert_eq!(names(&api.get(&mine("")).await.body), ["a", "b", "c", "d"]);
    assert_eq!(names(&api.get(&mine("tier%3Dfe")).await.body), ["a", "c"]);
    assert_eq!(names(&api.get(&mine("tier%20in%20(be,db)")).await.body), ["b", "d"]);
    assert_eq!(names(&api.get(&mine("tier!%3Dfe,app")).await.body), ["b", "d"]);
    assert_eq!(names(&api.get(&mine("!tier")).await.body), Vec::<String>::new());
    assert_eq!(
        names(&api.get(&format!("{}&fieldSelector=metadata.namespace%3D{two}", mine(""))).await.body),
        ["c", "d"]
    );
    assert_eq!(
        names(&api.get(&format!("/api/v1/namespaces/{one}/configmaps?fieldSelector=metadata.name!%3Da")).await.body),
        ["b"]
    );
    // Kinds without field selectors of their own answer with apimachinery's default
    // conversion; those with some (Secret, Namespace, Service, Event, custom resources) with
    // their own.
    let bad = api.get("/api/v1/configmaps?fieldSelector=spec.foo%3D1").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.body["message"],
        "\"spec.foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    let bad = api.get("/api/v1/secrets?fieldSelector=spec.foo%3D1").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["message"], "field label not supported: spec.foo");

    // Pages of a selected list: the server fills each page with matching objects and, as
    // a selector makes the rest unknowable, reports no remainingItemCount.
    let page1 = api.get(&format!("{}&limit=3", mine(""))).await.body;
    assert_eq!(names(&page1), ["a", "b", "c"]);
    assert!(page1["metadata"]["remainingItemCount"].is_null(), "{page1}");
    let token = page1["metadata"]["continue"].as_str().unwrap();
    let page2 = api.get(&format!("{}&limit=3&continue={token}", mine(""))).await.body;
    assert_eq!(names(&page2), ["d"]);
    assert!(page2["metadata"]["continue"].is_null());
    assert_eq!(page2["metadata"]["resourceVersion"], page1["metadata"]["resourceVersion"]);

    // Without a selector the first page counts what is left.
    let secrets = format!("/api/v1/namespaces/{one}/secrets");
    for name in ["s1", "s2", "s3", "s4"] {
        assert_eq!(api.post(&secrets, json!({"metadata": {"name": name}})).await.status, 201);
    }
    let page1 = api.get(&format!("{secrets}?limit=3")).await.body;
    assert_eq!(names(&page1), ["s1", "s2", "s3"]);
    assert_eq!(page1["metadata"]["remainingItemCount"], 1, "{page1}");
    let token = page1["metadata"]["continue"].as_str().unwrap();
    let page2 = api.get(&format!("{secrets}?limit=3&continue={token}")).await.body;
    assert_eq!(names(&page2), ["s4"]);
    assert!(page2["metadata"]["continue"].is_null());
}

async fn secrets_merge_string_data_and_default_their_type(backend: Backend) {
    let api = start(backend);
    let secrets = api.core("secrets");
    let r = api
        .post(&secrets, json!({"metadata": {"name": "s"}, "stringData": {"token": "abc"}, "data": {"other": "eA=="}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"], json!({"other": "eA==", "token": "YWJj"}));
    assert_eq!(r.body["type"], "Opaque");
    assert!(r.body.get("stringData").is_none());
    let mut changed = r.body.clone();
    changed["type"] = json!("kubernetes.io/tls");
    let immut = api.put(&format!("{secrets}/s"), changed).await;
    assert_eq!(immut.status, 422);
    assert!(immut.body["message"].as_str().unwrap().contains("field is immutable"));
}

async fn finalizers_hold_deletion_until_released(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    let mut obj = cm("held", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let created = api.post(&cms, obj).await;
    let rv = created.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut w = api.watch(&format!("{cms}?watch=true&resourceVersion={rv}")).await;

    let del = api.delete(&format!("{cms}/held")).await;
    assert_eq!(del.status, 200);
    assert!(del.body["metadata"]["deletionTimestamp"].is_string());
    let still = api.get(&format!("{cms}/held")).await;
    assert_eq!(still.status, 200);
    let ev = w.next_change().await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert!(ev["object"]["metadata"]["deletionTimestamp"].is_string());

    // Adding a finalizer while deleting is forbidden.
    let add = api
        .patch(
            &format!("{cms}/held"),
            "application/merge-patch+json",
            json!({"metadata": {"finalizers": ["example.com/hold", "x.io/y"]}}),
        )
        .await;
    assert_eq!(add.status, 422, "{}", add.body);

    // Releasing the last finalizer deletes the object as it was last stored (the DELETED
    // event still lists the finalizer); the answer is the patched object, never stored, at
    // the last stored resourceVersion.
    let last_rv = api.get(&format!("{cms}/held")).await.body["metadata"]["resourceVersion"].clone();
    let release = api
        .patch(&format!("{cms}/held"), "application/merge-patch+json", json!({"metadata": {"finalizers": []}}))
        .await;
    assert_eq!(release.status, 200, "{}", release.body);
    assert!(release.body["metadata"]["finalizers"].is_null(), "{}", release.body);
    assert_eq!(release.body["metadata"]["resourceVersion"], last_rv);
    let ev = w.next_change().await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["finalizers"], json!(["example.com/hold"]), "{ev}");
    assert_eq!(api.get(&format!("{cms}/held")).await.status, 404);
}

async fn namespace_deletion_terminates_and_removes_contents(backend: Backend) {
    let api = start(backend);
    let doomed = format!("doomed-{}", unique());
    let r = api
        .post("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": doomed}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cms = format!("/api/v1/namespaces/{doomed}/configmaps");
    let mut held = cm("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.post(&cms, held).await;
    api.post(&cms, cm("free", json!({}))).await;
    // Every namespace gets a default ServiceAccount (kube-controller-manager's serviceaccount
    // controller creates it shortly after the namespace).
    api.until_status(&format!("/api/v1/namespaces/{doomed}/serviceaccounts/default"), 200).await;
    let del = api.delete(&format!("/api/v1/namespaces/{doomed}")).await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body["status"]["phase"], "Terminating");
    // The namespace controller deletes the contents; the finalizer holds `held` back.
    api.until_status(&format!("{cms}/free"), 404).await;
    let refused = api.post(&cms, cm("late", json!({}))).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body["message"].as_str().unwrap().contains("because it is being terminated"), "{}", refused.body);
    assert_eq!(api.get(&format!("/api/v1/namespaces/{doomed}")).await.status, 200);
    // The namespace controller reports what holds the namespace back.
    let ns_path = format!("/api/v1/namespaces/{doomed}");
    let conditions = connection_testkit::wait::eventually("the namespace's remaining-content conditions", || async {
        let ns = api.get(&ns_path).await.body;
        let conditions = ns["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conditions
            .iter()
            .any(|c| c["type"] == "NamespaceFinalizersRemaining" && c["status"] == "True")
            .then_some(conditions)
    })
    .await;
    let condition = |ty: &str| {
        conditions.iter().find(|c| c["type"] == ty).cloned().unwrap_or_else(|| panic!("no {ty}: {conditions:?}"))
    };
    assert_eq!(
        condition("NamespaceContentRemaining")["message"],
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert_eq!(
        condition("NamespaceFinalizersRemaining")["message"],
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    assert_eq!(condition("NamespaceDeletionContentFailure")["reason"], "ContentDeleted");
    let release = api
        .patch(&format!("{cms}/held"), "application/merge-patch+json", json!({"metadata": {"finalizers": null}}))
        .await;
    assert_eq!(release.status, 200, "{}", release.body);
    api.until_status(&format!("/api/v1/namespaces/{doomed}"), 404).await;
}

async fn watch_replays_history_then_streams_live_events(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    let first = api.post(&cms, cm("w1", json!({}))).await;
    let rv0 = first.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    api.post(&cms, cm("w2", json!({}))).await;

    // From a version: replay what happened after it, then live events.
    let mut w = api.watch(&format!("{cms}?watch=true&resourceVersion={rv0}")).await;
    let ev = w.next_own().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("w2")));
    api.post(&cms, cm("w3", json!({}))).await;
    let ev = w.next_own().await.unwrap();
    assert_eq!(ev["object"]["metadata"]["name"], "w3");
    assert_eq!(ev["object"]["kind"], "ConfigMap");

    // Without a version: synthetic ADDED for the current state.
    let mut all = api.watch(&format!("{cms}?watch=true")).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = all.next_own().await.unwrap();
        assert_eq!(ev["type"], "ADDED");
        seen.push(ev["object"]["metadata"]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["w1", "w2", "w3"]);
}

async fn watch_selectors_turn_leaving_objects_into_deleted(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    let mut obj = cm("sel", json!({}));
    obj["metadata"]["labels"] = json!({"watch": "me"});
    let created = api.post(&cms, obj).await;
    let rv = created.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut w = api.watch(&format!("{cms}?watch=true&labelSelector=watch%3Dme&resourceVersion={rv}")).await;
    api.post(&cms, cm("other", json!({}))).await;
    api.patch(&format!("{cms}/sel"), "application/merge-patch+json", json!({"metadata": {"labels": {"watch": "no"}}}))
        .await;
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("DELETED"), Some("sel")));
    api.patch(&format!("{cms}/sel"), "application/merge-patch+json", json!({"metadata": {"labels": {"watch": "me"}}}))
        .await;
    assert_eq!(w.next().await.unwrap()["type"], "ADDED");
}

async fn streaming_list_and_bookmarks(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    api.post(&cms, cm("s1", json!({}))).await;
    let invalid = api.get(&format!("{cms}?watch=true&sendInitialEvents=true")).await;
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.body["details"]["kind"], "ListOptions");
    let mut w = api
        .watch(&format!(
            "{cms}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ))
        .await;
    let ev = w.next_own().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("s1")));
    let end = w.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
    assert_eq!(end["object"]["kind"], "ConfigMap");
    let rv = end["object"]["metadata"]["resourceVersion"].as_str().unwrap().to_string();

    // A watch without a version (or from "0") is a streaming list too: its initial events
    // end with the same bookmark when bookmarks are allowed.
    let mut legacy = api.watch(&format!("{cms}?watch=true&allowWatchBookmarks=true&timeoutSeconds=1")).await;
    let ev = legacy.next_own().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("s1")));
    let end = legacy.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK", "{end}");
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");

    // timeoutSeconds ends the stream cleanly.
    let mut short = api.watch(&format!("{cms}?watch=true&timeoutSeconds=1")).await;
    assert_eq!(short.next_own().await.unwrap()["type"], "ADDED");
    assert!(short.next_own().await.is_none());

    // From a version, with bookmarks: a BOOKMARK about 2 s before the timeout (so the client
    // resumes from the newest version; kube-apiserver's watch cache, working in 1 s buckets,
    // may send it twice), then the end.
    let mut last =
        api.watch(&format!("{cms}?watch=true&resourceVersion={rv}&timeoutSeconds=4&allowWatchBookmarks=true")).await;
    let mut kinds = Vec::new();
    while let Some(ev) = last.next().await {
        if is_root_ca(&ev["object"]) {
            continue;
        }
        assert!(ev["object"]["metadata"]["annotations"].is_null(), "{ev}");
        assert!(ev["object"]["metadata"]["resourceVersion"].is_string(), "{ev}");
        kinds.push(ev["type"].as_str().unwrap().to_string());
    }
    assert!(!kinds.is_empty() && kinds.iter().all(|k| k == "BOOKMARK"), "{kinds:?}");
}

async fn events_are_visible_in_both_api_groups(backend: Backend) {
    let api = start(backend);
    let ns = api.ns().to_string();
    let ev = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e1", "namespace": ns},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "ctl", "reportingInstance": "ctl-0",
        "action": "Reconcile", "reason": "Synced", "type": "Normal", "note": "all good",
        "regarding": {"kind": "ConfigMap", "namespace": ns, "name": "x"}
    });
    let created = api.post(&format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"), ev).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["note"], "all good");
    let core = api.get(&api.core("events/e1")).await.body;
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["message"], "all good");
    assert_eq!(core["involvedObject"]["name"], "x");
    let by_field = api.get(&format!("{}?fieldSelector=involvedObject.name%3Dx", api.core("events"))).await.body;
    assert_eq!(by_field["items"].as_array().unwrap().len(), 1);
}

/// The Gizmo test CRD of one case, in a group of its own (`<random>.test.dev`): CRDs are
/// cluster-scoped and the control plane is shared. Deleted when dropped.
struct Gizmos {
    api: Api,
    group: String,
}

impl Gizmos {
    /// `gizmos.<group>`.
    fn crd_name(&self) -> String {
        format!("gizmos.{}", self.group)
    }
    fn crd_path(&self) -> String {
        format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}", self.crd_name())
    }
    /// `/apis/<group>/v1/namespaces/<ns>/gizmos`.
    fn path(&self) -> String {
        format!("/apis/{}/v1/namespaces/{}/gizmos", self.group, self.api.ns())
    }
    fn api_version(&self) -> String {
        format!("{}/v1", self.group)
    }
    fn gizmo(&self, name: &str, size: i64) -> Value {
        json!({"apiVersion": self.api_version(), "kind": "Gizmo", "metadata": {"name": name}, "spec": {"size": size}})
    }
}

impl Drop for Gizmos {
    fn drop(&mut self) {
        let _ = self.api.kube.kubectl(&["delete", "crd", &self.crd_name(), "--ignore-not-found", "--wait=false"]);
    }
}

fn gizmo_crd(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("gizmos.{group}")},
        "spec": {
            "group": group, "scope": "Namespaced",
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

/// The backend with a Gizmo CRD of the case's own, Established and served.
async fn with_gizmos(backend: Backend) -> Gizmos {
    let api = start(backend);
    let gizmos = Gizmos { api, group: format!("{}.test.dev", unique()) };
    let api = &gizmos.api;
    let crd = api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", gizmo_crd(&gizmos.group)).await;
    assert_eq!(crd.status, 201, "{}", crd.body);
    // The create answers before the names are accepted and the CRD is established: that
    // happens right after, in kube-apiextensions' controllers.
    assert_eq!(crd.body["status"]["storedVersions"], json!(["v1"]), "{}", crd.body);
    let established = connection_testkit::wait::eventually("the CRD to be Established", || async {
        let crd = api.get(&gizmos.crd_path()).await.body;
        let conditions = crd["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conditions.iter().any(|c| c["type"] == "Established" && c["status"] == "True").then_some(crd)
    })
    .await;
    assert_eq!(established["status"]["acceptedNames"]["kind"], "Gizmo");
    // Established comes before the group/version is in discovery.
    api.until_status(&format!("/apis/{}/v1", gizmos.group), 200).await;
    gizmos
}

async fn crds_are_served_once_established(backend: Backend) {
    let g = with_gizmos(backend).await;
    let api = &g.api;
    let list = api.get(&format!("/apis/{}/v1", g.group)).await.body;
    let res = &list["resources"].as_array().unwrap();
    assert!(
        res.iter()
            .any(|r| r["name"] == "gizmos" && r["shortNames"] == json!(["gz"]) && r["categories"] == json!(["all"])),
        "{list}"
    );
    assert!(res.iter().any(|r| r["name"] == "gizmos/status"), "{list}");
    let agg = api.get_as("/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList").await.body;
    assert!(agg["items"].as_array().unwrap().iter().any(|item| item["metadata"]["name"] == g.group.as_str()));

    let gizmos = g.path();
    let created = api.post(&gizmos, g.gizmo("g1", 2)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["spec"]["colour"], "blue", "defaulted");
    assert_eq!(created.body["metadata"]["generation"], 1);

    let invalid = api.post(&gizmos, g.gizmo("g2", 0)).await;
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    assert_eq!(invalid.body["reason"], "Invalid");
    let prefix = format!("Gizmo.{} \"g2\" is invalid: spec.size", g.group);
    assert!(invalid.body["message"].as_str().unwrap().starts_with(&prefix), "{}", invalid.body);
    assert_eq!(invalid.body["details"]["causes"][0]["field"], "spec.size");

    let no_kind = api.post(&gizmos, json!({"metadata": {"name": "x"}, "spec": {"size": 1}})).await;
    assert_eq!(no_kind.status, 400);

    // Custom resources need metadata.resourceVersion on PUT and are never created by PUT.
    let mut unconditional = created.body.clone();
    unconditional["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let r = api.put(&format!("{gizmos}/g1"), unconditional).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.body["message"],
        format!(
            "gizmos.{} \"g1\" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update",
            g.group
        )
    );
    assert_eq!(r.body["details"]["kind"], "gizmos");
    let r = api.put(&format!("{gizmos}/nope"), g.gizmo("nope", 1)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["message"], format!("gizmos.{} \"nope\" not found", g.group));
}

async fn status_subresource_and_generation(backend: Backend) {
    let g = with_gizmos(backend).await;
    let api = &g.api;
    let gizmos = g.path();
    let mut obj = g.gizmo("s", 1);
    obj["status"] = json!({"phase": "Ignored"});
    let created = api.post(&gizmos, obj).await.body;
    assert!(created.get("status").is_none(), "status is dropped on create: {created}");

    // Status through /status: generation unchanged, spec changes ignored.
    let st = api
        .patch(
            &format!("{gizmos}/s/status"),
            "application/merge-patch+json",
            json!({"spec": {"size": 9}, "status": {"phase": "Ready"}}),
        )
        .await;
    assert_eq!(st.status, 200, "{}", st.body);
    assert_eq!(st.body["status"]["phase"], "Ready");
    assert_eq!(st.body["spec"]["size"], 1);
    assert_eq!(st.body["metadata"]["generation"], 1);

    // Main resource: status ignored, spec change bumps generation.
    let main = api
        .patch(
            &format!("{gizmos}/s"),
            "application/merge-patch+json",
            json!({"spec": {"size": 3}, "status": {"phase": "Hacked"}}),
        )
        .await;
    assert_eq!(main.body["status"]["phase"], "Ready");
    assert_eq!(main.body["metadata"]["generation"], 2);
    // Metadata-only change: no generation bump.
    let labels = api
        .patch(&format!("{gizmos}/s"), "application/merge-patch+json", json!({"metadata": {"labels": {"a": "b"}}}))
        .await;
    assert_eq!(labels.body["metadata"]["generation"], 2);

    // Status apply without metadata (controller-rs style): accepted, no generation bump, and
    // an unchanged re-apply is a no-op (same resourceVersion, no event).
    let apply_url = format!("{gizmos}/s/status?fieldManager=ctl&force=true");
    let status_cfg = json!({"apiVersion": g.api_version(), "kind": "Gizmo", "status": {"phase": "Applied"}});
    let applied = api.patch(&apply_url, "application/apply-patch+yaml", status_cfg.clone()).await;
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert_eq!(applied.body["status"]["phase"], "Applied");
    assert_eq!(applied.body["metadata"]["generation"], 2);
    let rv = applied.body["metadata"]["resourceVersion"].clone();
    let mut w = api.watch(&format!("{gizmos}?watch=true&resourceVersion={}", rv.as_str().unwrap())).await;
    let again = api.patch(&apply_url, "application/apply-patch+yaml", status_cfg).await;
    assert_eq!(again.body["metadata"]["resourceVersion"], rv);
    api.post(&gizmos, g.gizmo("marker", 1)).await;
    assert_eq!(w.next_change().await.unwrap()["object"]["metadata"]["name"], "marker", "no event for the no-op apply");
    let wrong = api
        .patch(
            &apply_url,
            "application/apply-patch+yaml",
            json!({"apiVersion": g.api_version(), "kind": "Gizmo", "metadata": {"name": "other"}}),
        )
        .await;
    assert_eq!(wrong.status, 400);

    let smp =
        api.patch(&format!("{gizmos}/s"), "application/strategic-merge-patch+json", json!({"spec": {"size": 4}})).await;
    assert_eq!(smp.status, 415);
    assert_eq!(smp.body["reason"], "UnsupportedMediaType");

    let no_manager = api.patch(&format!("{gizmos}/s"), "application/apply-patch+yaml", g.gizmo("s", 5)).await;
    assert_eq!(no_manager.status, 422);
    assert_eq!(
        no_manager.body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );

    // dryRun=All answers with the result and stores nothing.
    let dry = api
        .patch(&format!("{gizmos}/s?dryRun=All"), "application/merge-patch+json", json!({"spec": {"size": 7}}))
        .await;
    assert_eq!(dry.body["spec"]["size"], 7);
    assert_eq!(api.get(&format!("{gizmos}/s")).await.body["spec"]["size"], 3);
    let dry_create = api
        .call(
            Method::POST,
            &format!("{gizmos}?dryRun=All"),
            "application/json",
            Some(g.gizmo("ghost", 1).to_string()),
            None,
        )
        .await;
    assert_eq!(dry_create.status, 201);
    assert_eq!(api.get(&format!("{gizmos}/ghost")).await.status, 404);
}

async fn tables_and_openapi_for_custom_resources(backend: Backend) {
    let g = with_gizmos(backend).await;
    let api = &g.api;
    let gizmos = g.path();
    api.post(&gizmos, g.gizmo("t1", 5)).await;
    let table = api.get_as(&gizmos, "application/json;as=Table;v=v1;g=meta.k8s.io,application/json").await;
    // The converted answer is labelled plain JSON.
    assert_eq!(table.headers["content-type"], "application/json");
    assert_eq!(table.body["kind"], "Table");
    let cols: Vec<&str> =
        table.body["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(cols.contains(&"Size"), "{cols:?}");
    assert_eq!(table.body["rows"][0]["object"]["metadata"]["name"], "t1");
    assert!(table.body["metadata"]["resourceVersion"].is_string());

    // The OpenAPI document of the new group/version is published shortly after it is served.
    let key = format!("apis/{}/v1", g.group);
    let url = connection_testkit::wait::eventually("the group/version in /openapi/v3", || async {
        api.get("/openapi/v3").await.body["paths"][key.as_str()]["serverRelativeURL"].as_str().map(str::to_string)
    })
    .await;
    assert!(url.contains("?hash="));
    let doc = api.get(&url).await;
    assert_eq!(doc.status, 200);
    let etag = doc.headers["etag"].to_str().unwrap().to_string();
    assert!(url.ends_with(etag.trim_matches('"')), "{url} {etag}");
    assert_eq!(doc.headers["cache-control"], "public, immutable");
    assert!(!doc.body["components"]["schemas"].as_object().unwrap().is_empty());
    assert_eq!(api.get("/openapi/v3/apis/nope/v1").await.status, 404);
}

async fn deleting_a_crd_deletes_its_objects_and_stops_serving(backend: Backend) {
    let g = with_gizmos(backend).await;
    let api = &g.api;
    let gizmos = g.path();
    api.post(&gizmos, g.gizmo("d1", 1)).await;
    let created = api.post(&gizmos, g.gizmo("d2", 1)).await;
    let rv = created.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut w = api.watch(&format!("{gizmos}?watch=true&resourceVersion={rv}")).await;
    let del = api.delete(&g.crd_path()).await;
    assert_eq!(del.status, 200, "{}", del.body);
    let mut deleted = Vec::new();
    for _ in 0..2 {
        let ev = w.next_change().await.unwrap();
        assert_eq!(ev["type"], "DELETED");
        deleted.push(ev["object"]["metadata"]["name"].as_str().unwrap().to_string());
    }
    deleted.sort();
    assert_eq!(deleted, ["d1", "d2"]);
    // The CRD's cleanup finalizer goes once its objects are gone; then it stops being served.
    api.until_status(&g.crd_path(), 404).await;
    api.until_status(&gizmos, 404).await;
    api.until_status(&format!("/apis/{}/v1", g.group), 404).await;
}

async fn create_on_update_and_delete_collection_follow_the_kind(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    // Leases may be created by PUT; ConfigMaps may not.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}});
    let r = api.put(&format!("/apis/coordination.k8s.io/v1/namespaces/{}/leases/l", api.ns()), lease).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api.put(&format!("{cms}/c"), cm("c", json!({}))).await;
    assert_eq!(r.status, 404);
    let mismatch = api.put(&format!("{cms}/other"), cm("c", json!({}))).await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(mismatch.body["message"], "the name of the object (c) does not match the name on the URL (other)");

    for name in ["x1", "x2", "y1"] {
        let mut obj = cm(name, json!({}));
        obj["metadata"]["labels"] = json!({"group": &name[..1]});
        api.post(&cms, obj).await;
    }
    let r = api.call(Method::DELETE, &format!("{cms}?labelSelector=group%3Dx"), "", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let left = api.get(&cms).await.body;
    assert_eq!(names(&left), ["y1"]);

    // Preconditions on delete.
    let r = api
        .call(
            Method::DELETE,
            &format!("{cms}/y1"),
            "application/json",
            Some(json!({"preconditions": {"uid": "nope"}}).to_string()),
            None,
        )
        .await;
    assert_eq!(r.status, 409);
    let uid = api.get(&format!("{cms}/y1")).await.body["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["message"],
        format!(
            "Operation cannot be fulfilled on ConfigMap \"y1\": the UID in the precondition (nope) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
        )
    );
    assert_eq!(r.body["details"], json!({"name": "y1", "kind": "ConfigMap"}));
}

async fn metadata_only_reads_and_watches(backend: Backend) {
    let api = start(backend);
    let secrets = api.core("secrets");
    api.post(&secrets, json!({"metadata": {"name": "m"}, "stringData": {"k": "secret"}})).await;
    let list = api.get_as(&secrets, "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").await;
    assert_eq!(list.body["kind"], "PartialObjectMetadataList");
    assert_eq!(list.body["items"][0]["metadata"]["name"], "m");
    assert!(list.body["items"][0].get("data").is_none());
    let mut w = api
        .watch_as(&format!("{secrets}?watch=true"), "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
        .await;
    let ev = w.next().await.unwrap();
    assert_eq!(ev["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(ev["object"]["metadata"]["name"], "m");
    assert!(ev["object"].get("data").is_none());
}

async fn built_in_kinds_prune_or_refuse_unknown_fields(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    let mut obj = cm("u", json!({"a": "b"}));
    obj["spec"] = json!({"oops": 1});
    let strict = api
        .call(Method::POST, &format!("{cms}?fieldValidation=Strict"), "application/json", Some(obj.to_string()), None)
        .await;
    assert_eq!(strict.status, 400);
    assert_eq!(
        strict.body["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\""
    );
    let warned = api.post(&cms, obj).await;
    assert_eq!(warned.status, 201);
    assert_eq!(warned.headers["warning"], "299 - \"unknown field \\\"spec\\\"\"");
    assert!(warned.body.get("spec").is_none());
    let bad_type = api.post(&cms, json!({"metadata": {"name": "t"}, "data": {"a": 1}})).await;
    assert_eq!(bad_type.status, 400);
    assert!(
        bad_type.body["message"]
            .as_str()
            .unwrap()
            .starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap:")
    );
}

async fn immutable_data_and_malformed_patches_are_refused(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    let mut obj = cm("frozen", json!({"a": "b"}));
    obj["immutable"] = json!(true);
    api.post(&cms, obj).await;
    let change = api.patch(&format!("{cms}/frozen"), "application/merge-patch+json", json!({"data": {"a": "c"}})).await;
    assert_eq!(change.status, 422);
    assert!(
        change.body["message"]
            .as_str()
            .unwrap()
            .contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{}",
        change.body
    );
    let labels = api
        .patch(&format!("{cms}/frozen"), "application/merge-patch+json", json!({"metadata": {"labels": {"x": "y"}}}))
        .await;
    assert_eq!(labels.status, 200, "metadata stays writable");
    let root = api
        .patch(
            &format!("{cms}/frozen"),
            "application/json-patch+json",
            json!([{"op": "replace", "path": "", "value": [1]}]),
        )
        .await;
    assert!(root.status == 400 || root.status == 422, "{} {}", root.status, root.body);
    assert_eq!(api.get(&format!("{cms}/frozen")).await.body["data"]["a"], "b");
}

async fn services_get_defaults_and_keep_their_cluster_ip(backend: Backend) {
    let api = start(backend);
    let services = api.core("services");
    let svc =
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
    let created = api.post(&services, svc.clone()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    // Allocated from the cluster's service range (a setting: 10.0.0.0/24 on the test control
    // plane, 10.96.0.0/12 in the emulator, kubeadm's default).
    let ip: std::net::Ipv4Addr =
        created.body["spec"]["clusterIP"].as_str().unwrap().parse().expect("an IPv4 clusterIP");
    assert_eq!(created.body["spec"]["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(created.body["spec"]["type"], "ClusterIP");
    assert_eq!(created.body["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(created.body["spec"]["ports"][0]["protocol"], "TCP");
    let mut replaced = svc;
    replaced["metadata"]["resourceVersion"] = created.body["metadata"]["resourceVersion"].clone();
    replaced["spec"]["ports"][0]["port"] = json!(81);
    let updated = api.put(&format!("{services}/web"), replaced).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["spec"]["clusterIP"], ip.to_string());
    let other = api.post(&services, json!({"metadata": {"name": "api"}, "spec": {"ports": [{"port": 1}]}})).await;
    assert_ne!(other.body["spec"]["clusterIP"], ip.to_string());
}

async fn table_watches_and_watches_of_one_object(backend: Backend) {
    let api = start(backend);
    let cms = api.core("configmaps");
    api.post(&cms, cm("t1", json!({}))).await;
    api.post(&cms, cm("t2", json!({}))).await;
    let mut w = api
        .watch_as(
            &format!("{cms}?watch=true&includeObject=Object"),
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .await;
    // One row per event; only the first event carries the column definitions.
    let mut rows = Vec::new();
    for i in 0..3 {
        let ev = w.next().await.unwrap();
        assert_eq!(ev["object"]["kind"], "Table");
        let columns = ev["object"]["columnDefinitions"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(columns > 0, i == 0, "columns only in the first event: {ev}");
        let name = ev["object"]["rows"][0]["object"]["metadata"]["name"].as_str().unwrap().to_string();
        if name == "t2" {
            rows.push(name);
            break;
        }
        rows.push(name);
    }
    rows.retain(|n| n != "kube-root-ca.crt");
    assert_eq!(rows, ["t1", "t2"]);

    // `?watch=true` on an object's own URL is a plain get; one object is watched through its
    // collection, selected by name.
    let plain = api.get(&format!("{cms}/t2?watch=true")).await;
    assert_eq!(
        (plain.body["kind"].as_str(), plain.body["metadata"]["name"].as_str()),
        (Some("ConfigMap"), Some("t2")),
        "{}",
        plain.body
    );
    let mut one = api.watch(&format!("{cms}?watch=true&fieldSelector=metadata.name%3Dt2")).await;
    let ev = one.next().await.unwrap();
    assert_eq!(ev["object"]["metadata"]["name"], "t2");
    api.patch(&format!("{cms}/t1"), "application/merge-patch+json", json!({"data": {"x": "1"}})).await;
    api.patch(&format!("{cms}/t2"), "application/merge-patch+json", json!({"data": {"x": "2"}})).await;
    let ev = one.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("MODIFIED"), Some("t2")));
}

/// A watcher that stops reading while events keep coming is closed, the way the watch
/// cache terminates a watcher it cannot keep up with; it never skips events to catch up
/// (a client resuming from its last version would then miss them for good). Resuming
/// from the last version delivered either continues without a gap or gets a 410.
async fn a_watcher_that_stops_reading_is_closed_and_never_skips_events(backend: Backend) {
    // More events than the socket buffers (a few MiB each way on loopback), the watch's
    // own queue and the emulator's fan-out buffer (4096 events) hold together.
    const UPDATES: usize = 8_000;
    let api = start(backend);
    let cms = api.core("configmaps");
    let pad = "x".repeat(4 * 1024);
    let created = api.post(&cms, cm("counter", json!({"n": "0"}))).await;
    let rv0 = created.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut w = api.watch(&format!("{cms}?watch=true&resourceVersion={rv0}")).await;
    for n in 1..=UPDATES {
        let put = api.put(&format!("{cms}/counter"), cm("counter", json!({"n": n.to_string(), "pad": pad}))).await;
        assert_eq!(put.status, 200, "{}", put.body);
    }
    // Every update the stream delivers follows the previous one.
    async fn read(w: &mut WatchReader, seen: &mut Vec<usize>, last_rv: &mut String) -> bool {
        while let Some(ev) = w.next().await {
            if ev["type"] == "ERROR" {
                assert_eq!(ev["object"]["code"], 410, "{ev}");
                return true;
            }
            if ev["object"]["metadata"]["name"] != "counter" {
                continue;
            }
            let n: usize = ev["object"]["data"]["n"].as_str().unwrap().parse().unwrap();
            assert_eq!(n, seen.last().map_or(1, |l| l + 1), "skipped from {:?} to {n}", seen.last());
            seen.push(n);
            *last_rv = ev["object"]["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        }
        false
    }
    let (mut seen, mut last_rv) = (Vec::new(), rv0);
    read(&mut w, &mut seen, &mut last_rv).await;
    assert!(seen.len() < UPDATES, "the slow watcher was never closed: it got all {UPDATES} updates");
    // Each resumption is a short watch (a busy machine may not deliver the rest within one);
    // every one must make progress until the updates are all seen or the version is gone.
    loop {
        let before = seen.len();
        let mut resumed = api.watch(&format!("{cms}?watch=true&resourceVersion={last_rv}&timeoutSeconds=5")).await;
        if read(&mut resumed, &mut seen, &mut last_rv).await || seen.len() == UPDATES {
            break;
        }
        assert!(seen.len() > before, "resumed at {last_rv}: nothing more after {:?}", seen.last());
    }
}

async_tests_on_both_backends!(
    version_health_and_plain_discovery,
    aggregated_discovery_matches_the_accept_header,
    create_get_list_and_errors_like_kube_apiserver,
    selectors_pagination_and_cluster_wide_lists,
    secrets_merge_string_data_and_default_their_type,
    finalizers_hold_deletion_until_released,
    namespace_deletion_terminates_and_removes_contents,
    watch_replays_history_then_streams_live_events,
    watch_selectors_turn_leaving_objects_into_deleted,
    streaming_list_and_bookmarks,
    events_are_visible_in_both_api_groups,
    crds_are_served_once_established,
    status_subresource_and_generation,
    tables_and_openapi_for_custom_resources,
    deleting_a_crd_deletes_its_objects_and_stops_serving,
    create_on_update_and_delete_collection_follow_the_kind,
    metadata_only_reads_and_watches,
    built_in_kinds_prune_or_refuse_unknown_fields,
    immutable_data_and_malformed_patches_are_refused,
    services_get_defaults_and_keep_their_cluster_ip,
    table_watches_and_watches_of_one_object,
    a_watcher_that_stops_reading_is_closed_and_never_skips_events,
);

/// The emulator's own admin API (`/_sandbox/`): emulator-only by nature. (The kube-proxy
/// serves the same API in front of kube-apiserver; kube_proxy.rs tests it.)
mod emulator_only {
    use super::*;

    /// The emulator with its admin API on the same port as the Kubernetes API.
    fn emulator() -> Api {
        start(Backend::Emulator)
    }

    #[tokio::test]
    async fn expired_watches_get_an_in_stream_410_and_dropped_watches_end() {
        let api = emulator();
        let cms = api.core("configmaps");
        let first = api.post(&cms, cm("w1", json!({}))).await;
        let rv0 = first.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        api.post(&cms, cm("w2", json!({}))).await;
        let mut w = api.watch(&format!("{cms}?watch=true&resourceVersion={rv0}")).await;
        assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "w2");

        // After expiry, an old version gets an in-stream ERROR 410 (not an HTTP error).
        let expire =
            api.call(Method::POST, "/_sandbox/watches/expire", "application/json", Some("{}".into()), None).await;
        assert_eq!(expire.status, 200);
        let mut old = api.watch(&format!("{cms}?watch=true&resourceVersion={rv0}")).await;
        let ev = old.next().await.unwrap();
        assert_eq!(ev["type"], "ERROR");
        assert_eq!(ev["object"]["code"], 410);
        assert_eq!(ev["object"]["reason"], "Expired");
        assert!(old.next().await.is_none());

        // Expiry is also one-shot for a watch resuming from the current version.
        let now = api.get(&cms).await.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        api.call(Method::POST, "/_sandbox/watches/expire", "application/json", Some("{}".into()), None).await;
        let mut current = api.watch(&format!("{cms}?watch=true&resourceVersion={now}")).await;
        assert_eq!(current.next().await.unwrap()["object"]["code"], 410);
        let mut resumed = api.watch(&format!("{cms}?watch=true&resourceVersion={now}&timeoutSeconds=1")).await;
        assert!(resumed.next().await.is_none(), "a second watch resumes normally");

        // Dropping watches ends open streams.
        let drop = api.call(Method::POST, "/_sandbox/watches/drop", "application/json", Some("{}".into()), None).await;
        assert_eq!(drop.status, 200);
        assert!(w.next().await.is_none());
    }

    #[tokio::test]
    async fn faults_fail_matching_requests_then_clear() {
        let api = emulator();
        let put = api
            .call(
                Method::PUT,
                "/_sandbox/faults",
                "application/json",
                Some(json!({"method": "GET", "path": "/api/v1/namespaces*", "status": 503, "count": 2}).to_string()),
                None,
            )
            .await;
        assert_eq!(put.status, 200);
        assert_eq!(api.get("/api/v1/namespaces").await.status, 503);
        assert_eq!(api.get("/api/v1/namespaces/default").await.status, 503);
        assert_eq!(api.get("/api/v1/namespaces").await.status, 200);
        api.call(
            Method::PUT,
            "/_sandbox/faults",
            "application/json",
            Some(json!({"path": "*", "status": 500, "probability": 1.0}).to_string()),
            None,
        )
        .await;
        assert_eq!(api.get("/version").await.status, 500);
        let cleared = api.call(Method::DELETE, "/_sandbox/faults", "", None, None).await;
        assert_eq!(cleared.status, 200);
        assert_eq!(api.get("/version").await.status, 200);
        let invalid = api
            .call(
                Method::PUT,
                "/_sandbox/faults",
                "application/json",
                Some(json!({"path": "x", "status": 500}).to_string()),
                None,
            )
            .await;
        assert_eq!(invalid.status, 400);
        let reset = api
            .call(
                Method::PUT,
                "/_sandbox/faults",
                "application/json",
                Some(json!({"path": "*", "reset": true}).to_string()),
                None,
            )
            .await;
        assert_eq!(reset.status, 400, "connection resets are a provider-emulator feature");
        api.call(
            Method::PUT,
            "/_sandbox/faults",
            "application/json",
            Some(json!({"path": "/version", "status": 502, "body": "not json"}).to_string()),
            None,
        )
        .await;
        let raw = api.get("/version").await;
        assert_eq!((raw.status.as_u16(), raw.body.as_str()), (502, Some("not json")));
    }
}
