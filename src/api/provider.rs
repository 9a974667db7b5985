//! The `Provider` (namespaced) and `ClusterProvider` (cluster-scoped) custom resources: one
//! upstream account at an integration provider (docs/api.md, "Provider and ClusterProvider").

// kube-derive's repeated `printcolumn(type_ = ...)` trips this lint; the attributes are distinct.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::schema;
use super::{ProviderKind, ProviderRef};

/// Plain `http://` is only accepted for loopback hosts (the sandbox, a local proxy) unless
/// the Provider says `insecure: true`: credentials must not cross a network in clear text.
const BASE_URL_RULE: &str = r#"!has(self.baseUrl) || self.baseUrl.startsWith('https://') || self.baseUrl.matches('^http://(localhost|127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|\\[::1\\])(:[0-9]{1,5})?(/.*)?$') || (has(self.insecure) && self.insecure && self.baseUrl.startsWith('http://'))"#;
const BASE_URL_MESSAGE: &str =
    "baseUrl must use https:// (plain http:// only for loopback hosts, or with insecure: true)";
const WORKSPACE_RULE: &str = "!has(self.workspaceId) || self.type == 'mielto'";
const TEAMSPACE_RULE: &str = "!has(self.teamspaceId) || self.type == 'datagrid'";
const AUTH_RULE: &str = "!has(self.auth) || self.auth == 'Bearer' || self.type == 'mielto'";
const AUTH_MESSAGE: &str = "auth: ApiKey (X-API-Key) applies only to type mielto";

/// An upstream account at an integration provider, usable by Connections in its namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "connection-operator.dev",
    version = "v1alpha1",
    kind = "Provider",
    namespaced,
    status = "ProviderStatus",
    category = "connection-operator",
    doc = "An upstream account at an integration provider, usable by Connections in the same namespace.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type", description = "Provider type"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Credentials resolvable and last authentication succeeded"
    ),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new(BASE_URL_RULE).message(BASE_URL_MESSAGE).field_path(".baseUrl"),
    validation = Rule::new(WORKSPACE_RULE).message("workspaceId applies only to type mielto").field_path(".workspaceId"),
    validation = Rule::new(TEAMSPACE_RULE).message("teamspaceId applies only to type datagrid").field_path(".teamspaceId"),
    validation = Rule::new(AUTH_RULE).message(AUTH_MESSAGE).field_path(".auth")
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// Which provider API this account belongs to. Immutable.
    #[serde(rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("type is immutable"))]
    pub type_: ProviderType,
    /// API base URL; defaults to the provider's public endpoint. Plain `http://` only for
    /// loopback hosts unless `insecure` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://[^\s]+$"))]
    pub base_url: Option<String>,
    /// Allow a plain `http://` baseUrl to a non-loopback host.
    #[serde(default)]
    pub insecure: bool,
    /// The Secret key (in the Provider's namespace) holding the API token.
    pub credentials_ref: SecretKeyRef,
    /// Mielto only: sent as `X-Workspace-Id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub workspace_id: Option<String>,
    /// Datagrid only: sent as `Datagrid-Teamspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub teamspace_id: Option<String>,
    /// How the token is sent: `Bearer` (the default, `Authorization: Bearer <token>`) or,
    /// for Mielto only, `ApiKey` (`X-API-Key: <token>` and no Authorization header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ProviderAuth>,
    /// Client-side pacing; defaults to the provider's documented limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Timeout of one upstream request, in seconds.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: u32,
}

/// An upstream account at an integration provider, usable by Connections in any namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "connection-operator.dev",
    version = "v1alpha1",
    kind = "ClusterProvider",
    status = "ProviderStatus",
    category = "connection-operator",
    doc = "An upstream account at an integration provider, usable by Connections in every namespace.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type", description = "Provider type"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Credentials resolvable and last authentication succeeded"
    ),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new(BASE_URL_RULE).message(BASE_URL_MESSAGE).field_path(".baseUrl"),
    validation = Rule::new(WORKSPACE_RULE).message("workspaceId applies only to type mielto").field_path(".workspaceId"),
    validation = Rule::new(TEAMSPACE_RULE).message("teamspaceId applies only to type datagrid").field_path(".teamspaceId"),
    validation = Rule::new(AUTH_RULE).message(AUTH_MESSAGE).field_path(".auth")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProviderSpec {
    /// Which provider API this account belongs to. Immutable.
    #[serde(rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("type is immutable"))]
    pub type_: ProviderType,
    /// API base URL; defaults to the provider's public endpoint. Plain `http://` only for
    /// loopback hosts unless `insecure` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://[^\s]+$"))]
    pub base_url: Option<String>,
    /// Allow a plain `http://` baseUrl to a non-loopback host.
    #[serde(default)]
    pub insecure: bool,
    /// The Secret key (namespace included) holding the API token.
    pub credentials_ref: NamespacedSecretKeyRef,
    /// Mielto only: sent as `X-Workspace-Id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub workspace_id: Option<String>,
    /// Datagrid only: sent as `Datagrid-Teamspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub teamspace_id: Option<String>,
    /// How the token is sent: `Bearer` (the default, `Authorization: Bearer <token>`) or,
    /// for Mielto only, `ApiKey` (`X-API-Key: <token>` and no Authorization header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ProviderAuth>,
    /// Client-side pacing; defaults to the provider's documented limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Timeout of one upstream request, in seconds.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_seconds: u32,
}

fn default_timeout_seconds() -> u32 {
    30
}

/// The four supported provider APIs.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    Nango,
    Mielto,
    Arena,
    Datagrid,
}

impl ProviderType {
    /// The wire value, also the name of the Connection's provider block.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Nango => "nango",
            ProviderType::Mielto => "mielto",
            ProviderType::Arena => "arena",
            ProviderType::Datagrid => "datagrid",
        }
    }

    /// The public API endpoint used when `baseUrl` is not set (docs/providers.md, "Default
    /// base URLs"; Mielto's API lives under `/api/v1` below it, Datagrid's base includes `/v1`).
    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderType::Nango => "https://api.nango.dev",
            ProviderType::Mielto => "https://api.mielto.com",
            ProviderType::Arena => "https://api.are.na",
            ProviderType::Datagrid => "https://api.datagrid.com/v1",
        }
    }

    /// The documented default request budget per minute (docs/providers.md, "Default budgets"):
    /// Nango 200/min (free and self-hosted), Are.na 30/min (guest tier, the safe floor),
    /// Datagrid 200/min per path and method, Mielto undocumented (60/min, conservative).
    pub fn default_requests_per_minute(self) -> u32 {
        match self {
            ProviderType::Nango => 200,
            ProviderType::Mielto => 60,
            ProviderType::Arena => 30,
            ProviderType::Datagrid => 200,
        }
    }
}

/// How the token is sent: `Bearer` (the default, `Authorization: Bearer <token>`, every
/// provider) or, for type mielto only, `ApiKey` (`X-API-Key: <token>` and no Authorization
/// header, Mielto's alternative scheme).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProviderAuth {
    /// `Authorization: Bearer <token>` (every provider).
    #[default]
    Bearer,
    /// `X-API-Key: <token>`, without an Authorization header (Mielto's alternative scheme).
    ApiKey,
}

/// A key of a Secret in the Provider's own namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A key of a Secret in a named namespace (ClusterProvider).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedSecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Client-side pacing of one provider account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Sustained request rate.
    #[schemars(range(min = 1, max = 100000))]
    pub requests_per_minute: u32,
    /// Requests that may be sent at once before pacing starts.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: u32,
}

fn default_burst() -> u32 {
    10
}

/// Observed state of a Provider or ClusterProvider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// The `metadata.generation` the status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: credentials resolvable; last authentication outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Rate-limit state last seen upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitStatus>,
}

/// Rate-limit state last reported by the provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitStatus {
    /// `X-RateLimit-Limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<Time>,
    /// No request is sent to this account before this time (after a 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_until: Option<Time>,
}

/// Where a provider account's token lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CredentialsLocation {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

/// The settings of a Provider or ClusterProvider in one shape, for the controller and the
/// provider clients.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderConfig {
    pub type_: ProviderType,
    pub base_url: String,
    pub credentials: CredentialsLocation,
    pub workspace_id: Option<String>,
    pub teamspace_id: Option<String>,
    pub auth: ProviderAuth,
    pub rate_limit: RateLimitSpec,
    pub timeout: Duration,
}

impl ProviderConfig {
    #[allow(clippy::too_many_arguments)]
    fn build(
        type_: ProviderType,
        base_url: &Option<String>,
        credentials: CredentialsLocation,
        workspace_id: &Option<String>,
        teamspace_id: &Option<String>,
        auth: Option<ProviderAuth>,
        rate_limit: Option<RateLimitSpec>,
        timeout_seconds: u32,
    ) -> Self {
        ProviderConfig {
            type_,
            base_url: base_url
                .clone()
                .unwrap_or_else(|| type_.default_base_url().to_string())
                .trim_end_matches('/')
                .to_string(),
            credentials,
            workspace_id: workspace_id.clone(),
            teamspace_id: teamspace_id.clone(),
            auth: auth.unwrap_or_default(),
            rate_limit: rate_limit.unwrap_or(RateLimitSpec {
                requests_per_minute: type_.default_requests_per_minute(),
                burst: default_burst(),
            }),
            timeout: Duration::from_secs(u64::from(timeout_seconds.max(1))),
        }
    }
}

impl ProviderConfig {
    /// The settings of a namespaced Provider; its Secret lives in its own namespace.
    pub fn from_provider(s: &ProviderSpec, namespace: &str) -> Self {
        let credentials = CredentialsLocation {
            namespace: namespace.to_string(),
            name: s.credentials_ref.name.clone(),
            key: s.credentials_ref.key.clone(),
        };
        ProviderConfig::build(
            s.type_,
            &s.base_url,
            credentials,
            &s.workspace_id,
            &s.teamspace_id,
            s.auth,
            s.rate_limit,
            s.timeout_seconds,
        )
    }

    /// The settings of a ClusterProvider; its Secret's namespace is in the reference.
    pub fn from_cluster_provider(s: &ClusterProviderSpec) -> Self {
        let credentials = CredentialsLocation {
            namespace: s.credentials_ref.namespace.clone(),
            name: s.credentials_ref.name.clone(),
            key: s.credentials_ref.key.clone(),
        };
        ProviderConfig::build(
            s.type_,
            &s.base_url,
            credentials,
            &s.workspace_id,
            &s.teamspace_id,
            s.auth,
            s.rate_limit,
            s.timeout_seconds,
        )
    }

    /// Identity of the upstream account: every Provider and ClusterProvider with the same
    /// provider type, API endpoint (normalised: scheme and host lower-cased, default port and
    /// trailing slash dropped), workspace/teamspace and token is one account, whichever
    /// Secret holds the token. Connections of one account share one pacing budget and are
    /// checked against each other by the Conflict rule.
    ///
    /// The token enters as [`crate::providers::Token::fingerprint`], a keyed hash whose key is
    /// random per process, so the key identifies the token without revealing it; like the
    /// token it is never logged.
    pub fn account_key(&self, token: &crate::providers::Token) -> AccountKey {
        AccountKey(format!(
            "{}|{}|{}|{}|{:016x}",
            self.type_.as_str(),
            normalized_base_url(&self.base_url),
            self.workspace_id.as_deref().unwrap_or(""),
            self.teamspace_id.as_deref().unwrap_or(""),
            token.fingerprint()
        ))
    }
}

/// The identity of an upstream account ([`ProviderConfig::account_key`]): every per-account
/// state (pacer, client, reconcile slots) is keyed by it. Its string form
/// (`type|baseUrl|workspace|teamspace|token fingerprint`) is what logs never show (it names
/// the token's fingerprint) and what sharding hashes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountKey(String);

impl AccountKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Everything but the fingerprint: a key reaches `Debug` output through the structs that
/// hold it (a reconcile's resolution, an account handle), and the fingerprint, though not
/// reversible, still tells whether two Providers hold the same token.
impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.rsplit_once('|').map_or("", |(rest, _fingerprint)| rest);
        write!(f, "AccountKey({shown}|<fingerprint>)")
    }
}

/// A Provider or ClusterProvider by name: what the account registry
/// (`providers::Accounts`) counts an account's users by, so that an account is forgotten when
/// the last object naming it goes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderId {
    Namespaced { namespace: String, name: String },
    Cluster { name: String },
}

impl ProviderId {
    /// The object a Connection in `namespace` refers to with `reference`.
    pub fn referenced(reference: &ProviderRef, namespace: &str) -> Self {
        match reference.kind {
            ProviderKind::Provider => {
                ProviderId::Namespaced { namespace: namespace.to_string(), name: reference.name.clone() }
            }
            ProviderKind::ClusterProvider => ProviderId::Cluster { name: reference.name.clone() },
        }
    }

    pub fn kind(&self) -> ProviderKind {
        match self {
            ProviderId::Namespaced { .. } => ProviderKind::Provider,
            ProviderId::Cluster { .. } => ProviderKind::ClusterProvider,
        }
    }
}

/// `Provider ns/name` or `ClusterProvider name`, as messages name them.
impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderId::Namespaced { namespace, name } => write!(f, "Provider {namespace}/{name}"),
            ProviderId::Cluster { name } => write!(f, "ClusterProvider {name}"),
        }
    }
}

impl std::fmt::Debug for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Provider {
    pub fn id(&self) -> ProviderId {
        use kube::ResourceExt;
        ProviderId::Namespaced { namespace: self.namespace().unwrap_or_default(), name: self.name_any() }
    }
}

impl ClusterProvider {
    pub fn id(&self) -> ProviderId {
        use kube::ResourceExt;
        ProviderId::Cluster { name: self.name_any() }
    }
}

impl std::fmt::Display for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Per-account maps and callers that take `&str` keep working.
impl std::ops::Deref for AccountKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for AccountKey {
    fn from(s: &str) -> Self {
        AccountKey(s.to_string())
    }
}

/// `baseUrl` as one account is known under whichever way it is written: the URL parser's
/// normal form (lower-case scheme and host, no default port), without a trailing slash.
pub fn normalized_base_url(base_url: &str) -> String {
    let normal = url::Url::parse(base_url).map(|u| u.to_string()).unwrap_or_else(|_| base_url.to_string());
    normal.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Token;

    fn config(spec: serde_json::Value, namespace: &str) -> ProviderConfig {
        ProviderConfig::from_provider(&serde_json::from_value(spec).unwrap(), namespace)
    }

    #[test]
    fn one_account_whatever_secret_holds_the_token() {
        let a = config(
            serde_json::json!({"type": "mielto", "baseUrl": "https://API.Mielto.com:443/", "credentialsRef": {"name": "a", "key": "token"}, "workspaceId": "ws"}),
            "team-a",
        );
        let b = config(
            serde_json::json!({"type": "mielto", "baseUrl": "https://api.mielto.com", "credentialsRef": {"name": "b", "key": "apiKey"}, "workspaceId": "ws", "auth": "ApiKey", "rateLimit": {"requestsPerMinute": 5}}),
            "team-b",
        );
        let token = Token::new("tok-1");
        assert_eq!(a.account_key(&token), b.account_key(&Token::new("tok-1")));
        assert_ne!(a.account_key(&token), a.account_key(&Token::new("tok-2")), "another token is another account");
        let other_workspace = ProviderConfig { workspace_id: Some("ws2".into()), ..a.clone() };
        assert_ne!(a.account_key(&token), other_workspace.account_key(&token));
        let other_host = ProviderConfig { base_url: "https://eu.mielto.com".into(), ..a.clone() };
        assert_ne!(a.account_key(&token), other_host.account_key(&token));
        assert!(!a.account_key(&token).contains("tok-1"), "the token itself is not in the key");
        let key = a.account_key(&token);
        assert_eq!(key.to_string(), key.as_str(), "one string form");
        assert_eq!(key.as_str().split('|').count(), 5, "type|baseUrl|workspace|teamspace|fingerprint: {key}");
        let fingerprint = key.as_str().rsplit('|').next().unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains(fingerprint), "Debug shows no fingerprint: {debug}");
        assert!(debug.contains("mielto|https://api.mielto.com|ws|"), "{debug}");
        assert_eq!(b.auth, ProviderAuth::ApiKey);
        assert_eq!(a.auth, ProviderAuth::Bearer);
    }
}
