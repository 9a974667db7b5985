//! The `Connection` custom resource: the settings one customer's connection should carry
//! at one provider (docs/api.md, "Connection").

// kube-derive's repeated `printcolumn(type_ = ...)` trips this lint; the attributes are distinct.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

use super::schema;

/// Free-form JSON object as stored by the providers.
pub type JsonObject = Map<String, Value>;

/// Nango validates `connection_id` with `^[a-zA-Z0-9,.;:=+~[\]|@${}"'\\/_ -]+$`
/// (docs/providers.md, Nango, helpers/validation.ts); checking it at admission gives a clear
/// `kubectl apply` error instead of an upstream 400. In the CEL string, `\\` is one regex
/// backslash and `\'` a quote.
const NANGO_CONNECTION_ID_RULE: &str =
    r#"!has(self.nango) || self.connectionId.matches('^[a-zA-Z0-9,.;:=+~\\[\\]|@${}"\'\\\\/_ -]+$')"#;

/// Desired state of one connection at an integration provider.
///
/// A Connection names its upstream account (`providerRef`), the upstream connection
/// (`connectionId`) and exactly one provider block (`nango`, `mielto`, `arena` or `datagrid`)
/// holding the settings to keep in sync. The controller owns only the keys declared here
/// (and remembered in `status.managedKeys`); keys written upstream by anyone else are never
/// touched.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "connection-operator.dev",
    version = "v1alpha1",
    kind = "Connection",
    namespaced,
    status = "ConnectionStatus",
    shortname = "conn",
    category = "connection-operator",
    doc = "A connection at a SaaS integration provider (Nango, Mielto, Are.na, Datagrid) whose settings the operator keeps in sync.",
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.providerRef.name",
        description = "The Provider or ClusterProvider holding the upstream account"
    ),
    printcolumn(
        name = "Connection",
        type_ = "string",
        json_path = ".spec.connectionId",
        description = "The upstream connection id"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether upstream matches the spec"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Why the connection is or is not ready"
    ),
    printcolumn(
        name = "Last Sync",
        type_ = "date",
        json_path = ".status.lastSyncTime",
        description = "Last time upstream was changed or found changed"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("(has(self.nango) ? 1 : 0) + (has(self.mielto) ? 1 : 0) + (has(self.arena) ? 1 : 0) + (has(self.datagrid) ? 1 : 0) == 1")
        .message("exactly one provider block (nango, mielto, arena or datagrid) must be set"),
    validation = Rule::new(NANGO_CONNECTION_ID_RULE)
        .message("a Nango connectionId may only hold letters, digits, spaces and ,.;:=+~[]|@${}\"'\\/_-")
        .field_path(".connectionId"),
    validation = Rule::new("!has(self.arena) || self.connectionId.matches('^[0-9]{1,18}$')")
        .message("an Are.na connectionId must be a decimal integer")
        .field_path(".connectionId")
)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// The Provider (same namespace) or ClusterProvider holding the upstream account and its
    /// credentials. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("providerRef is immutable; create a new Connection to use another provider account"))]
    pub provider_ref: ProviderRef,

    /// The id of the connection at the provider (Are.na: a decimal integer). Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionId is immutable; create a new Connection for another upstream connection"))]
    #[schemars(length(min = 1, max = 255))]
    pub connection_id: String,

    /// Nango connection metadata. Set only when the provider's type is `nango`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nango: Option<NangoSpec>,

    /// Mielto connection label, status and config. Set only when the provider's type is
    /// `mielto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mielto: Option<MieltoSpec>,

    /// Are.na connection metadata. Set only when the provider's type is `arena`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arena: Option<ArenaSpec>,

    /// Datagrid connection name. Set only when the provider's type is `datagrid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagrid: Option<DatagridSpec>,

    /// `Manage` writes upstream to match the spec; `Observe` only reads upstream and reports
    /// differing keys in `status.drift`.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// What happens upstream when the Connection is deleted: `Orphan` leaves everything in
    /// place; `Delete` removes the managed keys upstream first (a finalizer holds deletion
    /// until done).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// How often upstream is re-read to detect drift (jittered), as a duration such as `10m`
    /// or `1h30m`; at least 30s. Default 10m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('30s')").message("driftInterval must be at least 30s"))]
    pub drift_interval: Option<String>,

    /// When true the controller makes no upstream call at all for this Connection.
    #[serde(default)]
    pub suspend: bool,
}

/// The drift interval used when `spec.driftInterval` is not set.
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(600);
/// The smallest drift interval admitted by the schema.
pub const MIN_DRIFT_INTERVAL: Duration = Duration::from_secs(30);

impl ConnectionSpec {
    /// The drift interval, defaulted and clamped to the admitted minimum (a value that
    /// slipped past admission must not turn into a hot loop against the provider).
    pub fn drift_interval(&self) -> Duration {
        self.drift_interval
            .as_deref()
            .and_then(|s| s.parse::<kube::core::Duration>().ok())
            .map(Duration::from)
            .unwrap_or(DEFAULT_DRIFT_INTERVAL)
            .max(MIN_DRIFT_INTERVAL)
    }

    /// The `metadataFrom` (Nango, Are.na) or `configFrom` (Mielto) list of the provider
    /// block; empty for Datagrid, whose only field is its name.
    pub fn sources(&self) -> &[MetadataSource] {
        match self.block() {
            Some(ProviderBlock::Nango(n)) => &n.metadata_from,
            Some(ProviderBlock::Mielto(m)) => &m.config_from,
            Some(ProviderBlock::Arena(a)) => &a.metadata_from,
            Some(ProviderBlock::Datagrid(_)) | None => &[],
        }
    }

    /// The provider block that is set, if exactly one is (admission guarantees it).
    pub fn block(&self) -> Option<ProviderBlock<'_>> {
        let blocks = [
            self.nango.as_ref().map(ProviderBlock::Nango),
            self.mielto.as_ref().map(ProviderBlock::Mielto),
            self.arena.as_ref().map(ProviderBlock::Arena),
            self.datagrid.as_ref().map(ProviderBlock::Datagrid),
        ];
        let mut set = blocks.into_iter().flatten();
        match (set.next(), set.next()) {
            (Some(block), None) => Some(block),
            _ => None,
        }
    }
}

/// The one provider block of a Connection spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProviderBlock<'a> {
    Nango(&'a NangoSpec),
    Mielto(&'a MieltoSpec),
    Arena(&'a ArenaSpec),
    Datagrid(&'a DatagridSpec),
}

impl ProviderBlock<'_> {
    /// The provider type this block belongs to.
    pub fn provider_type(&self) -> super::ProviderType {
        match self {
            ProviderBlock::Nango(_) => super::ProviderType::Nango,
            ProviderBlock::Mielto(_) => super::ProviderType::Mielto,
            ProviderBlock::Arena(_) => super::ProviderType::Arena,
            ProviderBlock::Datagrid(_) => super::ProviderType::Datagrid,
        }
    }
}

/// Reference to the Provider or ClusterProvider of a Connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// `Provider` (namespaced, in the Connection's namespace; the default) or
    /// `ClusterProvider`.
    #[serde(default)]
    pub kind: ProviderKind,
    /// Name of the Provider or ClusterProvider.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Kind of object a `providerRef` points at.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    #[default]
    Provider,
    ClusterProvider,
}

/// Nango connection metadata (docs/providers.md, Nango).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NangoSpec {
    /// The integration id (`provider_config_key`) the connection belongs to.
    #[schemars(length(min = 1, max = 255), pattern(r"^[a-zA-Z0-9~:.@ _-]+$"))]
    pub provider_config_key: String,
    /// Top-level metadata keys to keep upstream. Values may be any JSON; nested objects are
    /// replaced whole (Nango merges shallowly). Keys not listed here are left alone unless
    /// this Connection wrote them before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::free_form_object")]
    pub metadata: Option<JsonObject>,
    /// ConfigMaps and Secrets (in the Connection's namespace) whose data keys become metadata
    /// keys, in the shape of a Pod's `envFrom`: each data key is one top-level key with its
    /// value as a string. Merged in order (a later source wins a key), then `metadata` on top
    /// (inline wins). Keys from a source are owned like inline keys. A change of a source
    /// rolls out to every Connection using it. A missing source that is not `optional` is
    /// `Ready=False` reason `ReferenceNotFound`; values from a Secret never appear in status,
    /// Events, logs or `connection-operator plan` output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new(SOURCES_UNIQUE_RULE).message(SOURCES_UNIQUE_MESSAGE))]
    pub metadata_from: Vec<MetadataSource>,
}

/// Mielto connection settings (docs/providers.md, Mielto).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MieltoSpec {
    /// Display label of the connection (at most 255 characters). Not removed on deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub label: Option<String>,
    /// Connection status. Not removed on deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MieltoStatus>,
    /// Top-level keys of the integration-specific `config` to keep upstream. Other keys of
    /// the upstream config are preserved (the whole config is sent, as Mielto replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::free_form_object")]
    pub config: Option<JsonObject>,
    /// ConfigMaps and Secrets (in the Connection's namespace) whose data keys become top-level
    /// `config` keys (string values), in the shape of a Pod's `envFrom`. Merged in order (a
    /// later source wins a key), then `config` on top (inline wins). Keys from a source are
    /// owned like inline keys; a missing source that is not `optional` is `Ready=False` reason
    /// `ReferenceNotFound`; values from a Secret are never shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new(SOURCES_UNIQUE_RULE).message(SOURCES_UNIQUE_MESSAGE))]
    pub config_from: Vec<MetadataSource>,
}

/// Mielto's `ConnectionStatus` enum.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MieltoStatus {
    Active,
    Inactive,
    Testing,
    Error,
    Expired,
}

impl MieltoStatus {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            MieltoStatus::Active => "active",
            MieltoStatus::Inactive => "inactive",
            MieltoStatus::Testing => "testing",
            MieltoStatus::Error => "error",
            MieltoStatus::Expired => "expired",
        }
    }
}

/// Are.na connection metadata (docs/providers.md, Are.na).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArenaSpec {
    /// Metadata keys to keep upstream: at most 50 keys matching `^[A-Za-z0-9_]{1,40}$`, each
    /// value a string (at most 2000 characters), a number or a boolean. The key pattern is
    /// checked by the operator (Ready=False, reason InvalidSpec, nothing sent upstream) and,
    /// when the chart's admission policy is installed, at `kubectl apply`; not by this
    /// schema, because Kubernetes cannot type a CEL rule on a map whose values may be any
    /// scalar.
    #[serde(default)]
    #[schemars(schema_with = "schema::arena_metadata")]
    pub metadata: JsonObject,
    /// ConfigMaps and Secrets (in the Connection's namespace) whose data keys become metadata
    /// keys (string values), in the shape of a Pod's `envFrom`. Merged in order (a later source
    /// wins a key), then `metadata` on top (inline wins). The merged keys follow the rules
    /// above (checked by the operator: `InvalidSpec`); a missing source that is not `optional`
    /// is `Ready=False` reason `ReferenceNotFound`; values from a Secret are never shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new(SOURCES_UNIQUE_RULE).message(SOURCES_UNIQUE_MESSAGE))]
    pub metadata_from: Vec<MetadataSource>,
}

/// Datagrid connection settings (docs/providers.md, Datagrid): only the name is mutable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatagridSpec {
    /// Display name of the connection. Not removed on deletion.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
}

/// Each ConfigMap and each Secret at most once in one list: a second mention could only
/// shadow the first, which is a mistake rather than an intent (see `desired`).
const SOURCES_UNIQUE_RULE: &str = "self.all(a, self.filter(b, (has(a.configMapRef) && has(b.configMapRef) && a.configMapRef.name == b.configMapRef.name) || (has(a.secretRef) && has(b.secretRef) && a.secretRef.name == b.secretRef.name)).size() <= 1)";
const SOURCES_UNIQUE_MESSAGE: &str = "each ConfigMap and each Secret may be referenced only once";

/// One source of shared keys, in the shape of a Pod's `envFrom` entry: exactly one of
/// `configMapRef` and `secretRef`. Every key of the object's `data` becomes one key, its
/// value a string (a ConfigMap's `binaryData` is ignored; a Secret's values must be UTF-8).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMapRef) != has(self.secretRef)").message("set exactly one of configMapRef and secretRef"))]
pub struct MetadataSource {
    /// A ConfigMap in the Connection's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<SourceRef>,
    /// A Secret in the Connection's namespace. Its values are never shown (status, Events,
    /// logs and plan output print `(secret)`); its key names are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SourceRef>,
}

/// The kind of object a [`MetadataSource`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    ConfigMap,
    Secret,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
        }
    }
}

impl MetadataSource {
    /// The object this entry names (admission guarantees exactly one of the two).
    pub fn reference(&self) -> Option<(SourceKind, &SourceRef)> {
        match (&self.config_map_ref, &self.secret_ref) {
            (Some(r), None) => Some((SourceKind::ConfigMap, r)),
            (None, Some(r)) => Some((SourceKind::Secret, r)),
            _ => None,
        }
    }
}

/// A ConfigMap or Secret named in `metadataFrom`/`configFrom`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// Name of the object, in the Connection's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// When true a missing object contributes no keys; when false (the default) the
    /// Connection is `Ready=False` reason `ReferenceNotFound` until it exists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// Whether the controller writes upstream.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ManagementPolicy {
    /// Write upstream so that it matches the spec.
    #[default]
    Manage,
    /// Read upstream and report drift; never write.
    Observe,
}

/// What deleting the Connection does upstream.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Leave upstream as it is (no finalizer).
    #[default]
    Orphan,
    /// Remove the managed keys upstream before the Connection goes away.
    Delete,
}

/// Observed state of a Connection.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// The `metadata.generation` the status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Synced` and `RateLimited` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Upstream keys this Connection owns (written by it and not yet removed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_keys: Vec<String>,
    /// The keys of `managedKeys` whose value comes from a Secret (`metadataFrom` /
    /// `configFrom`): names only, so that `connection-operator plan` can hide their old values
    /// upstream too. Values never appear in status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_keys: Vec<String>,
    /// Keys that differ upstream from the spec (Observe mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Last time upstream was changed or found changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// When the next attempt happens after a rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Time>,
    /// Echo of the `connection-operator.dev/reconcile-requested-at` annotation last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}
