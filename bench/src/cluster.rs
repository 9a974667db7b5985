//! The harness's side of the Kubernetes emulator: a thin HTTP client (plain JSON over the
//! REST API, with its own User-Agent so the emulator's journal tells its requests from the
//! operator's), bulk server-side apply, CRD installation, and a watch feeding the readiness
//! [`Tracker`].

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use connection_testkit::http::ApiClient;
use serde_json::{Value, json};
use thiserror::Error;

use crate::{
    fleet::GROUP_VERSION,
    journal::{BENCH_USER_AGENT, KubeRequest},
    kube_metrics::{self, Counts},
    readiness::Tracker,
};

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status { method: String, path: String, status: u16, body: String },
    #[error("{method} {path}: {source}")]
    Transport { method: String, path: String, source: reqwest::Error },
}

/// The harness's client of one Kubernetes API (the emulator or a real kube-apiserver, as the
/// kubeconfig's identity), bound to the namespace of one run. It counts its own requests the
/// way kube-apiserver's metrics name them, so they can be told from the operator's.
#[derive(Clone)]
pub struct Cluster {
    api: ApiClient,
    namespace: String,
    own: Arc<Mutex<Counts>>,
}

impl Cluster {
    pub fn new(kubeconfig: &Path, namespace: &str) -> anyhow::Result<Cluster> {
        let api =
            ApiClient::from_kubeconfig(kubeconfig).with_context(|| format!("a client for {}", kubeconfig.display()))?;
        Ok(Cluster { api, namespace: namespace.to_owned(), own: Arc::default() })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Where the Connections of the run live.
    pub fn connections_path(&self) -> String {
        format!("/apis/{GROUP_VERSION}/namespaces/{}/connections", self.namespace)
    }

    pub fn providers_path(&self) -> String {
        format!("/apis/{GROUP_VERSION}/namespaces/{}/providers", self.namespace)
    }

    pub fn secrets_path(&self) -> String {
        format!("/api/v1/namespaces/{}/secrets", self.namespace)
    }

    /// The harness's own requests so far, by (group, resource, verb).
    pub fn own_requests(&self) -> Counts {
        self.own.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn count(&self, method: &str, path_and_query: &str, content_type: &str) {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        if let Some(key) = kube_metrics::classify(method, path, query, content_type) {
            *self.own.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default() += 1;
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.api.request(method, path).header(reqwest::header::USER_AGENT, BENCH_USER_AGENT)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = body {
            request = request.header("content-type", content_type).body(body.to_string());
        }
        let transport = |source| ApiError::Transport { method: method.to_string(), path: path.to_owned(), source };
        self.count(method.as_str(), path, content_type);
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Status { method: method.to_string(), path: path.to_owned(), status, body: text });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.send(reqwest::Method::GET, path, "", None).await
    }

    /// A non-JSON document (kube-apiserver's `/metrics`).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self.request(reqwest::Method::GET, path).send().await.with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "GET {path}: HTTP {status}: {text}");
        Ok(text)
    }

    pub async fn create(&self, collection: &str, object: &Value) -> Result<Value, ApiError> {
        self.send(reqwest::Method::POST, collection, "application/json", Some(object)).await
    }

    /// Server-side apply (what `kubectl apply --server-side` sends), creating or updating.
    pub async fn apply(&self, collection: &str, object: &Value) -> Result<Value, ApiError> {
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let path = format!("{collection}/{name}?fieldManager=bench&force=true");
        self.send(reqwest::Method::PATCH, &path, "application/apply-patch+yaml", Some(object)).await
    }

    /// Apply every CRD of the multi-document `yaml` (creating or updating: a control plane
    /// given by the user may have them already) and wait until Connections are served.
    pub async fn install_crds(&self, yaml: &str) -> anyhow::Result<()> {
        for document in serde_yaml::Deserializer::from_str(yaml) {
            let crd: Value = serde::Deserialize::deserialize(document).context("parsing the CRD YAML")?;
            if crd.is_null() {
                continue;
            }
            self.apply("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd).await?;
        }
        poll(Duration::from_secs(60), "the Connection CRD to be served", || async {
            self.get(&self.connections_path()).await.is_ok()
        })
        .await
    }

    /// Create the run's namespace (a fresh name: it must not exist).
    pub async fn create_namespace(&self) -> anyhow::Result<()> {
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}});
        self.create("/api/v1/namespaces", &namespace).await?;
        Ok(())
    }

    /// The emulator's request journal (admin API).
    pub async fn journal(&self) -> anyhow::Result<Vec<KubeRequest>> {
        let value = self.get("/_sandbox/requests").await.context("reading the Kubernetes request journal")?;
        Ok(serde_json::from_value(value)?)
    }

    pub async fn clear_journal(&self) -> anyhow::Result<()> {
        self.send(reqwest::Method::DELETE, "/_sandbox/requests", "", None).await?;
        Ok(())
    }

    /// Keep `tracker` up to date with every Connection, by list then watch, re-listing when
    /// the watch ends with an error (e.g. 410 Gone) and resuming when it merely times out.
    pub fn spawn_watch(&self, tracker: Arc<Mutex<Tracker>>) -> tokio::task::JoinHandle<()> {
        let cluster = self.clone();
        tokio::spawn(async move {
            let mut resource_version: Option<String> = None;
            loop {
                let rv = match resource_version.take() {
                    Some(rv) => rv,
                    None => match cluster.list_into(&tracker).await {
                        Ok(rv) => rv,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                    },
                };
                resource_version = cluster.watch_from(&rv, &tracker).await;
            }
        })
    }

    async fn list_into(&self, tracker: &Mutex<Tracker>) -> anyhow::Result<String> {
        let mut continue_token = String::new();
        loop {
            let resume = if continue_token.is_empty() { String::new() } else { format!("&continue={continue_token}") };
            let page = self.get(&format!("{}?limit=500{resume}", self.connections_path())).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
            items.iter().for_each(|item| t.observe(item));
            drop(t);
            match page.pointer("/metadata/continue").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => continue_token = token.to_owned(),
                _ => {
                    return Ok(page
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("0")
                        .to_owned());
                }
            }
        }
    }

    /// Follow one watch; the resourceVersion to resume from, or `None` to re-list.
    async fn watch_from(&self, rv: &str, tracker: &Mutex<Tracker>) -> Option<String> {
        let path = format!(
            "{}?watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={rv}",
            self.connections_path()
        );
        // kube-apiserver counts a WATCH when it ends; so does the harness.
        struct Ended<'a>(&'a Cluster, &'a str);
        impl Drop for Ended<'_> {
            fn drop(&mut self) {
                self.0.count("GET", self.1, "");
            }
        }
        let _ended = Ended(self, &path);
        let mut response = self.request(reqwest::Method::GET, &path).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let mut last = rv.to_owned();
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Some(last),
                Err(_) => return Some(last),
            };
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else { continue };
                let object = &event["object"];
                if let Some(v) = object.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
                    last = v.to_owned();
                }
                let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
                match event["type"].as_str() {
                    Some("ADDED" | "MODIFIED") => t.observe(object),
                    Some("DELETED") => t.forget(object),
                    Some("ERROR") => return None,
                    _ => {}
                }
            }
        }
    }
}

/// Poll `check` every 100 ms until it holds, failing after `bound` (generous: a bound,
/// not a measurement).
pub async fn poll<F, Fut>(bound: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    while !check().await {
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {}s waiting for {what}", bound.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
