//! `connection-operator plan`: what the operator would do for the Connections of some
//! manifests, without doing it.
//!
//! For each Connection of the input: the cluster's own CRD validates it (a server-side dry
//! run: `create` when it does not exist, else `replace` of the live object, so immutability
//! rules and defaults apply as `kubectl apply` would see them); then the operator's own steps
//! (`resolve::desired`, `resolve::account`, the Conflict rule, an upstream read and
//! `diff::plan`) say which keys it would set, change or remove. Nothing is written: the dry
//! run persists nothing and the provider sees one `GET` per Connection (none for a suspended
//! one).
//!
//! ConfigMaps and Secrets in the input stand in for the cluster's (a change to shared
//! settings can be planned before it is applied); Providers and their Secrets come from the
//! cluster. Other kinds are skipped.
//!
//! Exit status (Terraform's `-detailed-exitcode`): 0 nothing would change upstream, 2 some
//! upstream write would happen, 1 an error: the input cannot be read, or a Connection cannot
//! be planned or would not become Ready (invalid, missing Provider, Secret, key or shared
//! settings, a reference loop, a Conflict, the provider unreachable or refusing).

mod input;
pub mod report;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

pub use input::{Document, InputError, parse, read};
pub use report::{Format, KeyRow, Planned, Report, Verdict};

use crate::api::conditions::Reason;
use crate::api::{Connection, ManagementPolicy, SourceKind};
use crate::controller::conflict::{self, Claim};
use crate::desired::Desired;
use crate::diff::{self, Change};
use crate::providers::{self, Accounts, Target};
use crate::resolve::{self, ApiLookup, Lookup};

/// The field manager named in the dry runs (nothing is persisted under it).
pub const FIELD_MANAGER: &str = "connection-operator-plan";
const API_VERSION: &str = "connection-operator.dev/v1alpha1";

fn connection_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("connection-operator.dev", "v1alpha1", "Connection"),
        "connections",
    )
}

/// Plan every Connection of `documents`; `default_namespace` for those without one.
pub async fn plan(client: Client, default_namespace: &str, documents: Vec<Document>) -> Report {
    let mut lookup = ApiLookup::new(client.clone());
    let mut report = Report::default();
    let mut connections = Vec::new();
    for doc in documents {
        let namespace = doc.object["metadata"]["namespace"].as_str().unwrap_or(default_namespace).to_string();
        let name = doc.object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let (api_version, kind) =
            (doc.object["apiVersion"].as_str().unwrap_or_default(), doc.object["kind"].as_str().unwrap_or_default());
        match (api_version, kind) {
            (API_VERSION, "Connection") => connections.push((doc, namespace, name)),
            (_, "Connection") => report.input_errors.push(format!(
                "{}: Connection {namespace}/{name} has apiVersion {api_version}; connection-operator serves {API_VERSION}",
                doc.origin
            )),
            ("v1", "ConfigMap") => match serde_json::from_value::<ConfigMap>(doc.object.clone()) {
                Ok(cm) => {
                    lookup.overlay(SourceKind::ConfigMap, &namespace, &name, resolve::fetched_from_config_map(Some(&cm)));
                    report.from_input.push(format!("ConfigMap {namespace}/{name}"));
                }
                Err(e) => report.input_errors.push(format!("{}: ConfigMap {namespace}/{name}: {e}", doc.origin)),
            },
            ("v1", "Secret") => match secret_of(&doc.object) {
                Ok(secret) => {
                    lookup.overlay(SourceKind::Secret, &namespace, &name, resolve::fetched_from_secret(Some(&secret)));
                    report.from_input.push(format!("Secret {namespace}/{name}"));
                }
                // serde's message could quote the value; name the object only.
                Err(_) => report.input_errors.push(format!("{}: Secret {namespace}/{name} is not a valid Secret", doc.origin)),
            },
            _ => report.skipped.push(format!("{}: {kind} {}{name} (not a Connection)", doc.origin, scope(&doc.object, &namespace))),
        }
    }
    if connections.is_empty() && report.input_errors.is_empty() {
        report.input_errors.push("the input holds no Connection".into());
    }
    let accounts = Accounts::default();
    for (doc, namespace, name) in connections {
        let planned = plan_one(&client, &lookup, &accounts, &doc, &namespace, &name).await;
        report.connections.push(planned);
    }
    report
}

/// `namespace/` for namespaced kinds as the input says (a guess: what it would be applied to).
fn scope(object: &Value, namespace: &str) -> String {
    if object["metadata"]["namespace"].is_string() { format!("{namespace}/") } else { String::new() }
}

/// A Secret from the input, with `stringData` folded into `data` as the API server would.
fn secret_of(object: &Value) -> Result<Secret, serde_json::Error> {
    let mut secret: Secret = serde_json::from_value(object.clone())?;
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (k, v) in strings {
            data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
        }
    }
    Ok(secret)
}

/// The Connection as the API server would store it, validated by the cluster's CRD, and the
/// live object (whose status holds the keys it owns) when it exists.
async fn validated(client: &Client, doc: &Document, namespace: &str, name: &str) -> Result<Connection, String> {
    let live =
        Api::<Connection>::namespaced(client.clone(), namespace).get_opt(name).await.map_err(|e| api_message(&e))?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &connection_resource());
    let mut object: DynamicObject =
        serde_json::from_value(doc.object.clone()).map_err(|e| format!("not a Connection: {e}"))?;
    object.metadata.namespace = Some(namespace.to_string());
    let params = PostParams { dry_run: true, field_manager: Some(FIELD_MANAGER.into()) };
    let result = match &live {
        None => api.create(&params, &object).await,
        Some(live) => {
            object.metadata.resource_version = live.metadata.resource_version.clone();
            api.replace(name, &params, &object).await
        }
    };
    let admitted = result.map_err(|e| api_message(&e))?;
    let mut conn: Connection = serde_json::from_value(serde_json::to_value(admitted).map_err(|e| e.to_string())?)
        .map_err(|e| format!("the admitted object does not decode: {e}"))?;
    match &live {
        // The live object's identity and status (what the controller would see).
        Some(live) => {
            conn.metadata.uid = live.metadata.uid.clone();
            conn.metadata.creation_timestamp = live.metadata.creation_timestamp.clone();
            conn.status = live.status.clone();
        }
        // Not created: no identity, the newest of all for the Conflict rule.
        None => {
            conn.metadata.uid = None;
            conn.metadata.creation_timestamp = None;
            conn.status = None;
        }
    }
    Ok(conn)
}

/// The API server's own message (`The Connection "x" is invalid: ...`).
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

async fn plan_one(
    client: &Client,
    lookup: &ApiLookup,
    accounts: &Accounts,
    doc: &Document,
    namespace: &str,
    name: &str,
) -> Planned {
    let mut planned = Planned::new(&doc.origin, namespace, name);
    planned.connection_id = doc.object["spec"]["connectionId"].as_str().map(str::to_string);
    let conn = match validated(client, doc, namespace, name).await {
        Ok(v) => v,
        Err(message) => return planned.error("Invalid", message),
    };
    planned.policy = Some(format!("{:?}", conn.spec.management_policy));
    let failed = |planned: Planned, u: resolve::Unresolved| planned.error(u.reason.as_str(), u.message);
    let desired = match resolve::desired(&conn, namespace, lookup).await {
        Ok(Ok(d)) => d,
        Ok(Err(u)) => return failed(planned, u),
        Err(e) => return planned.error("Error", api_message(&e)),
    };
    let resolve::Resolved { account, handle } = match resolve::account_handle(&conn, namespace, lookup, accounts).await
    {
        Ok(Ok(r)) => r,
        Ok(Err(u)) => return failed(planned, u),
        Err(e) => return planned.error("Error", api_message(&e)),
    };
    planned.provider = Some(format!("{} ({})", account.provider.describe(), account.config.type_.as_str()));
    if let Some(u) = resolve::credentials_loop(&desired, &account, namespace) {
        return failed(planned, u);
    }
    if conn.spec.management_policy == ManagementPolicy::Manage
        && let Some(message) = conflict_with(client, lookup, &conn, namespace, &desired, &account.key).await
    {
        return planned.error(Reason::Conflict.as_str(), message);
    }
    let managed = conn.status.as_ref().map(|s| s.managed_keys.clone()).unwrap_or_default();
    let mut secret_keys: Vec<String> = desired.secret_keys();
    secret_keys.extend(conn.status.iter().flat_map(|s| s.secret_keys.iter().cloned()));
    if conn.spec.suspend {
        planned.verdict = Verdict::Suspended;
        planned.message = Some("spec.suspend is true: the operator makes no upstream call".into());
        return planned;
    }

    let config = &account.config;
    let client = handle.client;
    let target = Target::for_connection(&conn.spec);
    planned.requests.push(providers::read_request(config.type_, &target));
    let upstream = match client.read(&target).await {
        Ok(u) => u,
        Err(e) => return planned.error(e.reason().as_str(), desired.redact(&e.to_string())),
    };
    let Some(block) = desired.spec.block() else {
        return planned.error("Invalid", "exactly one provider block (nango, mielto, arena or datagrid) must be set");
    };
    let (plan, description) = match (diff::plan(block, &managed, &upstream), diff::describe(block, &managed, &upstream))
    {
        (Ok(p), Ok(d)) => (p, d),
        (Err(e), _) | (_, Err(e)) => return planned.error(Reason::ProviderMismatch.as_str(), e.to_string()),
    };
    planned.changes = rows(&description, &desired, &secret_keys);
    planned.unchanged = description.unchanged;
    planned.foreign = description.foreign;
    match (conn.spec.management_policy, &plan.write) {
        (_, None) => planned.verdict = Verdict::NoChange,
        (ManagementPolicy::Observe, Some(_)) => {
            planned.verdict = Verdict::Drift;
            planned.message = Some(format!(
                "Observe: {} key(s) differ upstream and would be reported in status.drift, not written",
                plan.drift.len()
            ));
        }
        (ManagementPolicy::Manage, Some(write)) => {
            planned.verdict = Verdict::Change;
            planned.requests.push(providers::write_request(write, &target));
            planned.writes = 1;
        }
    }
    planned
}

/// One table row per changed key, values hidden where they come from a Secret (now, or as
/// recorded in `status.secretKeys` for what is upstream).
fn rows(description: &diff::Description, desired: &Desired, secret_keys: &[String]) -> Vec<KeyRow> {
    let hidden = |key: &str| secret_keys.iter().any(|k| k == key);
    let shown = |key: &str, v: &Value| {
        if hidden(key) { Value::String(crate::desired::SECRET_PLACEHOLDER.into()) } else { v.clone() }
    };
    description
        .changes
        .iter()
        .map(|(key, change)| {
            let from = desired.origins.get(key).map(|o| o.describe());
            let (action, old, new) = match change {
                Change::Add { new } => ("add", None, Some(shown(key, new))),
                Change::Update { old, new } => ("change", Some(shown(key, old)), Some(shown(key, new))),
                Change::Remove { old } => ("remove", Some(shown(key, old)), None),
            };
            KeyRow { key: key.clone(), action: action.into(), old, new, from }
        })
        .collect()
}

/// The Conflict rule as the controller applies it: the oldest other Connection (Manage) of
/// the same upstream connection through the same account that claims one of these keys.
async fn conflict_with(
    client: &Client,
    lookup: &ApiLookup,
    conn: &Connection,
    namespace: &str,
    desired: &Desired,
    account: &str,
) -> Option<String> {
    // Every namespace when allowed (ClusterProviders serve them all), else this one.
    let all = match Api::<Connection>::all(client.clone()).list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(_) => {
            Api::<Connection>::namespaced(client.clone(), namespace).list(&ListParams::default()).await.ok()?.items
        }
    };
    let mine = Claim::new(Arc::new(conn.clone()), Some(account.into()), Some(conflict::declared_keys(&desired.spec)));
    let mut others = Vec::new();
    for other in all {
        let same_id = other.spec.connection_id == conn.spec.connection_id;
        let same_object = other.name_any() == conn.name_any() && other.namespace() == conn.namespace();
        if !same_id || same_object || other.spec.management_policy != ManagementPolicy::Manage {
            continue;
        }
        let ns = other.namespace().unwrap_or_default();
        let account = match resolve::account(&other, &ns, lookup as &dyn Lookup).await {
            Ok(Ok(a)) => Some(a.key),
            _ => None,
        };
        let declared = match resolve::desired(&other, &ns, lookup as &dyn Lookup).await {
            Ok(Ok(d)) => Some(conflict::declared_keys(&d.spec)),
            _ => None,
        };
        others.push(Claim::new(Arc::new(other), account, declared));
    }
    conflict::older_owner(&mine, &others).map(|(owner, keys)| conflict::message(&owner, &keys))
}
