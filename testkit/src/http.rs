//! Raw HTTP(S) to a Kubernetes API as a kubeconfig's identity, for tests that assert status
//! codes, headers and bodies byte for byte (kube-rs and kubectl interpret them first).
//!
//! The real control plane speaks HTTPS with its own CA and authenticates the admin by a
//! client certificate (an EC key in SEC1 PEM); the emulator speaks plain HTTP with a bearer
//! token; a kube-proxy (an [`crate::Instrumented`] handle) speaks plain HTTP without
//! credentials. [`ApiClient::from_kubeconfig`] reads whichever the kubeconfig holds.

use std::path::Path;

use base64::Engine as _;
use serde_yaml::Value as Yaml;

use crate::cluster::Cluster;

/// Why a kubeconfig cannot be turned into an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing {path}: {source}")]
    Parse { path: String, source: serde_yaml::Error },
    #[error("the kubeconfig has no {0}")]
    Missing(&'static str),
    #[error("{field} is not base64: {source}")]
    Base64 { field: &'static str, source: base64::DecodeError },
    #[error("{field}: {detail}")]
    Pem { field: &'static str, detail: String },
    #[error("building the HTTP client: {0}")]
    Client(String),
}

/// An HTTP client bound to one API server and one identity.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: String,
    client: reqwest::Client,
    /// `Bearer ...`, when the identity is a token.
    authorization: Option<String>,
    /// The server's CA, kept so [`ApiClient::with_token`] can build a client without the
    /// client certificate.
    roots: Vec<reqwest::Certificate>,
}

impl ApiClient {
    /// A client as the current context's user of `kubeconfig` (client certificate and/or
    /// token, the cluster's `certificate-authority-data`).
    pub fn from_kubeconfig(kubeconfig: &Path) -> Result<ApiClient, HttpSetupError> {
        let shown = kubeconfig.display().to_string();
        let text = std::fs::read_to_string(kubeconfig)
            .map_err(|source| HttpSetupError::Read { path: shown.clone(), source })?;
        let config: Yaml =
            serde_yaml::from_str(&text).map_err(|source| HttpSetupError::Parse { path: shown, source })?;
        let current = config["current-context"].as_str().ok_or(HttpSetupError::Missing("current-context"))?;
        let named = |list: &str, name: &str| -> Option<Yaml> {
            config[list].as_sequence()?.iter().find(|e| e["name"].as_str() == Some(name)).cloned()
        };
        let context = named("contexts", current).ok_or(HttpSetupError::Missing("current context"))?;
        let cluster_name = context["context"]["cluster"].as_str().ok_or(HttpSetupError::Missing("context cluster"))?;
        let cluster = named("clusters", cluster_name).ok_or(HttpSetupError::Missing("cluster"))?;
        let server = cluster["cluster"]["server"].as_str().ok_or(HttpSetupError::Missing("cluster server"))?;
        let user = context["context"]["user"]
            .as_str()
            .and_then(|u| named("users", u))
            .map(|u| u["user"].clone())
            .unwrap_or(Yaml::Null);

        let roots = match decode(&cluster["cluster"]["certificate-authority-data"], "certificate-authority-data")? {
            Some(pem) => reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| HttpSetupError::Pem { field: "certificate-authority-data", detail: e.to_string() })?,
            None => Vec::new(),
        };
        let cert = decode(&user["client-certificate-data"], "client-certificate-data")?;
        let key = decode(&user["client-key-data"], "client-key-data")?;
        let identity = match (cert, key) {
            (Some(mut pem), Some(key)) => {
                // reqwest wants the key and the chain in one PEM buffer (SEC1, PKCS#8 or PKCS#1).
                pem.push(b'\n');
                pem.extend_from_slice(&key);
                Some(
                    reqwest::Identity::from_pem(&pem)
                        .map_err(|e| HttpSetupError::Pem { field: "client certificate/key", detail: e.to_string() })?,
                )
            }
            _ => None,
        };
        let authorization = user["token"].as_str().filter(|t| !t.is_empty()).map(|t| format!("Bearer {t}"));
        let client = build(&roots, identity)?;
        Ok(ApiClient { base: server.trim_end_matches('/').to_string(), client, authorization, roots })
    }

    /// The admin of `cluster`.
    pub fn admin(cluster: &Cluster) -> ApiClient {
        ApiClient::from_kubeconfig(&cluster.kubeconfig()).expect("an HTTP client from the cluster's kubeconfig")
    }

    /// The same server, authenticated by `token` alone (e.g. a ServiceAccount's TokenRequest
    /// token): no client certificate, which kube-apiserver would authenticate first.
    pub fn with_token(&self, token: &str) -> ApiClient {
        let client = build(&self.roots, None).expect("an HTTP client without identity");
        ApiClient {
            base: self.base.clone(),
            client,
            authorization: Some(format!("Bearer {token}")),
            roots: self.roots.clone(),
        }
    }

    /// `https://127.0.0.1:PORT` or `http://...`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path_and_query` (starting with `/`) with this client's credentials.
    pub fn request(&self, method: reqwest::Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path_and_query}", self.base));
        match &self.authorization {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
            None => request,
        }
    }
}

fn decode(value: &Yaml, field: &'static str) -> Result<Option<Vec<u8>>, HttpSetupError> {
    match value.as_str().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(data) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map(Some)
            .map_err(|source| HttpSetupError::Base64 { field, source }),
    }
}

fn build(
    roots: &[reqwest::Certificate],
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client, HttpSetupError> {
    // Loopback servers: never through an HTTP(S)_PROXY of the environment.
    let mut builder = reqwest::Client::builder().no_proxy();
    if !roots.is_empty() {
        builder = builder.tls_certs_only(roots.iter().cloned());
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| HttpSetupError::Client(e.to_string()))
}
