//! The API server behind the proxy, read from its kubeconfig: where it is (the current
//! context's cluster `server`), how to trust it (`certificate-authority-data` or
//! `certificate-authority`) and whom the proxy acts as (the user's client certificate and key,
//! or its bearer token).
//!
//! Two HTTP clients share that trust: one presents the kubeconfig's identity, for requests
//! that arrive without credentials; the other presents no client certificate, for requests
//! that carry their own `Authorization`. kube-apiserver's union authenticator tries the x509
//! authenticator before bearer tokens and takes the first success, so a connection showing the
//! admin certificate would authenticate a ServiceAccount's token as the admin, and RBAC would
//! never judge the ServiceAccount.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use http::HeaderValue;
use serde::Deserialize;
use thiserror::Error;

/// Why the upstream kubeconfig cannot be used.
#[derive(Debug, Error)]
pub enum UpstreamError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a kubeconfig: {source}", path.display())]
    Parse { path: PathBuf, source: serde_yaml::Error },
    #[error("the kubeconfig sets no current-context")]
    NoCurrentContext,
    #[error("context {0:?} is not in the kubeconfig")]
    MissingContext(String),
    #[error("cluster {0:?} is not in the kubeconfig")]
    MissingCluster(String),
    #[error("user {0:?} is not in the kubeconfig")]
    MissingUser(String),
    #[error("server {0:?} is not an http:// or https:// URL")]
    BadServer(String),
    #[error("{field} is not valid base64: {source}")]
    Base64 { field: &'static str, source: base64::DecodeError },
    #[error("{field} holds no PEM certificate")]
    NoCertificate { field: &'static str },
    #[error("{field}: {detail}")]
    Pem { field: &'static str, detail: String },
    #[error("the user has a client certificate without a key, or a key without a certificate")]
    HalfIdentity,
    #[error("the user authenticates with {0}, which the proxy does not support (use a client certificate or a token)")]
    UnsupportedAuth(&'static str),
    #[error("the cluster sets {0}, which the proxy does not support")]
    UnsupportedCluster(&'static str),
    #[error("the user's token is not a valid HTTP header value")]
    BadToken,
    /// The TLS settings were refused (e.g. a key type rustls does not support).
    #[error("building the upstream HTTP client: {0}")]
    Client(String),
}

/// The subset of a kubeconfig the proxy reads (clientcmd's `Config`); other fields are ignored.
#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    tls_server_name: Option<String>,
    #[serde(default)]
    proxy_url: Option<String>,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    exec: Option<serde_yaml::Value>,
    #[serde(default)]
    auth_provider: Option<serde_yaml::Value>,
}

/// The upstream API server and the clients that reach it.
pub struct Upstream {
    /// `server` without a trailing `/`; request paths are appended to it.
    base: String,
    /// Presents the kubeconfig's client certificate (if any).
    own: reqwest::Client,
    /// Presents no client certificate.
    bare: reqwest::Client,
    /// `Bearer <token>` of the kubeconfig's user, if it has a token.
    token: Option<HeaderValue>,
}

impl Upstream {
    pub fn from_kubeconfig(path: &Path) -> Result<Self, UpstreamError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| UpstreamError::Read { path: path.to_path_buf(), source })?;
        let config: Kubeconfig =
            serde_yaml::from_str(&text).map_err(|source| UpstreamError::Parse { path: path.to_path_buf(), source })?;
        // Relative file references in a kubeconfig are relative to the kubeconfig's directory.
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_config(&config, dir)
    }

    fn from_config(config: &Kubeconfig, dir: &Path) -> Result<Self, UpstreamError> {
        let current =
            config.current_context.as_deref().filter(|c| !c.is_empty()).ok_or(UpstreamError::NoCurrentContext)?;
        let context = &config
            .contexts
            .iter()
            .find(|c| c.name == current)
            .ok_or_else(|| UpstreamError::MissingContext(current.to_string()))?
            .context;
        let cluster = &config
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .ok_or_else(|| UpstreamError::MissingCluster(context.cluster.clone()))?
            .cluster;
        let anonymous = User::default();
        let user = match context.user.as_deref().filter(|u| !u.is_empty()) {
            None => &anonymous,
            Some(name) => {
                &config
                    .users
                    .iter()
                    .find(|u| u.name == name)
                    .ok_or_else(|| UpstreamError::MissingUser(name.to_string()))?
                    .user
            }
        };
        let base = cluster.server.trim_end_matches('/').to_string();
        let url = url::Url::parse(&base).map_err(|_| UpstreamError::BadServer(cluster.server.clone()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(UpstreamError::BadServer(cluster.server.clone()));
        }
        if cluster.tls_server_name.is_some() {
            return Err(UpstreamError::UnsupportedCluster("tls-server-name"));
        }
        if cluster.proxy_url.is_some() {
            return Err(UpstreamError::UnsupportedCluster("proxy-url"));
        }
        if user.exec.is_some() {
            return Err(UpstreamError::UnsupportedAuth("exec"));
        }
        if user.auth_provider.is_some() {
            return Err(UpstreamError::UnsupportedAuth("auth-provider"));
        }
        if user.username.is_some() {
            return Err(UpstreamError::UnsupportedAuth("username/password"));
        }

        let ca = data_or_file(
            cluster.certificate_authority_data.as_deref(),
            cluster.certificate_authority.as_deref(),
            dir,
            "certificate-authority",
        )?;
        let cert = data_or_file(
            user.client_certificate_data.as_deref(),
            user.client_certificate.as_deref(),
            dir,
            "client-certificate",
        )?;
        let key = data_or_file(user.client_key_data.as_deref(), user.client_key.as_deref(), dir, "client-key")?;
        let token = match (&user.token, &user.token_file) {
            (Some(t), _) if !t.is_empty() => Some(t.trim().to_string()),
            (_, Some(file)) => {
                let path = dir.join(file);
                let t = std::fs::read_to_string(&path).map_err(|source| UpstreamError::Read { path, source })?;
                Some(t.trim().to_string())
            }
            _ => None,
        };
        let token = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| UpstreamError::BadToken))
            .transpose()?
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });

        let identity = match (cert, key) {
            (Some(mut cert), Some(key)) => {
                // reqwest takes one PEM buffer holding the key and the chain; it accepts
                // PKCS#8, SEC1 ("EC PRIVATE KEY") and PKCS#1 keys.
                cert.push(b'\n');
                cert.extend_from_slice(&key);
                Some(reqwest::Identity::from_pem(&cert).map_err(|e| UpstreamError::Pem {
                    field: "client-certificate/client-key",
                    detail: error_chain(&e),
                })?)
            }
            (None, None) => None,
            _ => return Err(UpstreamError::HalfIdentity),
        };
        let roots = match ca {
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| UpstreamError::Pem { field: "certificate-authority", detail: error_chain(&e) })?;
                if certs.is_empty() {
                    return Err(UpstreamError::NoCertificate { field: "certificate-authority" });
                }
                Some(certs)
            }
            None => None,
        };
        let builder = || {
            let b = reqwest::Client::builder()
                // Loopback or a cluster address: never through an HTTP(S)_PROXY of the environment.
                .no_proxy()
                // Redirects are the client's business; the proxy relays bytes (and reqwest,
                // built without its compression features, decodes no Content-Encoding).
                .redirect(reqwest::redirect::Policy::none())
                // One upstream connection per relayed watch, like an HTTP/1.1 client has.
                .http1_only()
                .connect_timeout(Duration::from_secs(10))
                .tls_danger_accept_invalid_certs(cluster.insecure_skip_tls_verify);
            match &roots {
                Some(certs) => b.tls_certs_only(certs.iter().cloned()),
                None => b,
            }
        };
        let own = match &identity {
            Some(id) => builder().identity(id.clone()),
            None => builder(),
        }
        .build()
        .map_err(|e| UpstreamError::Client(error_chain(&e)))?;
        let bare = builder().build().map_err(|e| UpstreamError::Client(error_chain(&e)))?;
        Ok(Self { base, own, bare, token })
    }

    /// The URL of `path_and_query` (`/api/v1/...?...`) on the upstream server.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// The client for a request: the kubeconfig's identity unless the request brings its own
    /// credentials.
    pub fn client(&self, own_credentials: bool) -> &reqwest::Client {
        if own_credentials { &self.bare } else { &self.own }
    }

    /// `Authorization` to add to a request that has none (the kubeconfig's token).
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.token.as_ref()
    }
}

/// An error with its causes, `a: b: c`: reqwest's own message ("builder error", "error
/// sending request") names none of what went wrong.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// PEM bytes from a `*-data` field (base64, which wins, as in client-go) or a file path.
fn data_or_file(
    data: Option<&str>,
    file: Option<&Path>,
    dir: &Path,
    field: &'static str,
) -> Result<Option<Vec<u8>>, UpstreamError> {
    if let Some(data) = data.filter(|d| !d.is_empty()) {
        let compact: String = data.split_whitespace().collect();
        return base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map(Some)
            .map_err(|source| UpstreamError::Base64 { field, source });
    }
    match file.filter(|f| !f.as_os_str().is_empty()) {
        Some(f) => {
            let path = dir.join(f);
            std::fs::read(&path).map(Some).map_err(|source| UpstreamError::Read { path, source })
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Upstream, UpstreamError> {
        let config: Kubeconfig = serde_yaml::from_str(yaml).expect("yaml");
        Upstream::from_config(&config, Path::new("/nonexistent"))
    }

    fn with_user(server: &str, user: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
current-context: c
contexts:
- name: c
  context: {{cluster: k, user: u}}
clusters:
- name: k
  cluster: {{server: \"{server}\"}}
users:
- name: u
  user: {user}
"
        )
    }

    #[test]
    fn token_user_over_http() {
        let up = parse(&with_user("http://127.0.0.1:8080/", "{token: abc}")).expect("valid");
        assert_eq!(up.url("/api/v1?x=1"), "http://127.0.0.1:8080/api/v1?x=1");
        assert_eq!(up.authorization().map(|v| v.as_bytes()), Some(&b"Bearer abc"[..]));
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert!(matches!(parse(&with_user("ftp://x", "{token: a}")), Err(UpstreamError::BadServer(_))));
        assert!(matches!(
            parse(&with_user("https://x", "{exec: {command: aws}}")),
            Err(UpstreamError::UnsupportedAuth("exec"))
        ));
        assert!(matches!(
            parse(&with_user("https://x", "{client-certificate-data: \"LS0t\"}")),
            Err(UpstreamError::HalfIdentity)
        ));
        assert!(matches!(
            parse(&with_user("https://x", "{client-certificate-data: \"%%\", client-key-data: \"LS0t\"}")),
            Err(UpstreamError::Base64 { field: "client-certificate", .. })
        ));
        let no_context = "current-context: other\ncontexts: []\nclusters: []\nusers: []\n";
        assert!(matches!(parse(no_context), Err(UpstreamError::MissingContext(c)) if c == "other"));
        assert!(matches!(parse("clusters: []\n"), Err(UpstreamError::NoCurrentContext)));
    }
}
