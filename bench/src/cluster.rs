//! The harness's side of the Kubernetes emulator: a thin HTTP client (plain JSON over the
//! REST API, with its own User-Agent so the emulator's journal tells its requests from the
//! operator's), bulk server-side apply, CRD installation, and a watch feeding the readiness
//! [`Tracker`].

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::{Value, json};
use thiserror::Error;

use crate::{
    fleet::{GROUP_VERSION, NAMESPACE},
    journal::{BENCH_USER_AGENT, KubeRequest},
    readiness::Tracker,
};

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status { method: String, path: String, status: u16, body: String },
    #[error("{method} {path}: {source}")]
    Transport { method: String, path: String, source: reqwest::Error },
}

#[derive(Clone)]
pub struct Cluster {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Where the Connections of the fleet live.
pub fn connections_path() -> String {
    format!("/apis/{GROUP_VERSION}/namespaces/{NAMESPACE}/connections")
}

pub fn providers_path() -> String {
    format!("/apis/{GROUP_VERSION}/namespaces/{NAMESPACE}/providers")
}

impl Cluster {
    pub fn new(base: String, token: String) -> anyhow::Result<Cluster> {
        // Loopback only: a proxy from the environment must not see these requests.
        let http = reqwest::Client::builder().user_agent(BENCH_USER_AGENT).no_proxy().build()?;
        Ok(Cluster { http, base, token })
    }

    async fn send(&self, method: reqwest::Method, path: &str, content_type: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.header("content-type", content_type).body(body.to_string());
        }
        let transport = |source| ApiError::Transport { method: method.to_string(), path: path.to_owned(), source };
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

    pub async fn create(&self, collection: &str, object: &Value) -> Result<Value, ApiError> {
        self.send(reqwest::Method::POST, collection, "application/json", Some(object)).await
    }

    /// Server-side apply (what `kubectl apply --server-side` sends), creating or updating.
    pub async fn apply(&self, collection: &str, object: &Value) -> Result<Value, ApiError> {
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let path = format!("{collection}/{name}?fieldManager=bench&force=true");
        self.send(reqwest::Method::PATCH, &path, "application/apply-patch+yaml", Some(object)).await
    }

    /// Create every CRD of the multi-document `yaml` and wait until Connections are served.
    pub async fn install_crds(&self, yaml: &str) -> anyhow::Result<()> {
        for document in serde_yaml::Deserializer::from_str(yaml) {
            let crd: Value = serde::Deserialize::deserialize(document).context("parsing the CRD YAML")?;
            if crd.is_null() {
                continue;
            }
            self.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd).await?;
        }
        poll(Duration::from_secs(60), "the Connection CRD to be served", || async {
            self.get(&connections_path()).await.is_ok()
        })
        .await
    }

    pub async fn create_namespace(&self) -> anyhow::Result<()> {
        self.create("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
            .await?;
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
            let page = self.get(&format!("{}?limit=500{resume}", connections_path())).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
            items.iter().for_each(|item| t.observe(item));
            drop(t);
            match page.pointer("/metadata/continue").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => continue_token = token.to_owned(),
                _ => return Ok(page.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("0").to_owned()),
            }
        }
    }

    /// Follow one watch; the resourceVersion to resume from, or `None` to re-list.
    async fn watch_from(&self, rv: &str, tracker: &Mutex<Tracker>) -> Option<String> {
        let url = format!("{}{}?watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion={rv}", self.base, connections_path());
        let mut response = self.http.get(url).bearer_auth(&self.token).send().await.ok()?;
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
