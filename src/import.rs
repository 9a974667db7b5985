//! `connection-operator import`: Connection manifests whose spec is the current upstream
//! state of a provider account's connections, to adopt existing connections.
//!
//! The account is a Provider (or ClusterProvider) of the cluster, resolved with its
//! credentials exactly as the controller resolves it (`resolve::account`). Nango and Datagrid
//! list the account's connections (all of them, or those of `--ids`); Mielto and Are.na have
//! no such list, so their connections are read one by one by id (`--ids` is required).
//! Only reads are sent upstream.
//!
//! Each manifest declares what is upstream now (Nango metadata, Mielto label/status/config,
//! Are.na metadata, Datagrid name), so applying it changes nothing: the operator finds
//! upstream in sync, with zero writes. `managementPolicy` defaults to `Observe`: even a later
//! difference is only reported until the user switches to `Manage`. Every key imported is
//! declared, hence owned once managed: remove the keys your application writes itself
//! before switching to `Manage`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kube::Api;
use kube::api::ListParams;
use serde_json::{Map, Value, json};

use crate::api::{Connection, ManagementPolicy, MieltoStatus, ProviderKind};
use crate::diff::Upstream;
use crate::providers::{Accounts, ListKey, ProviderError, Target};
use crate::resolve::{self, ApiLookup};

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// `Provider` in `namespace`, or `ClusterProvider`.
    pub provider_kind: ProviderKind,
    pub provider_name: String,
    /// Where the Connections go (and the Provider's namespace).
    pub namespace: String,
    /// Only these connection ids (required for Mielto and Are.na).
    pub ids: Vec<String>,
    pub policy: ManagementPolicy,
}

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Unresolved(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{provider} cannot list the account's connections: name them with --ids a,b,...")]
    NeedsIds { provider: &'static str },
    #[error("reading upstream: {0}")]
    Upstream(#[from] ProviderError),
    #[error("not found upstream: {}", .0.join(", "))]
    NotFound(Vec<String>),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("refusing to overwrite existing files: {}", .0.join(", "))]
    Exists(Vec<String>),
}

/// One imported Connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    pub name: String,
    pub manifest: Value,
    /// Keys left out of the manifest: their values came from a Secret (see [`import`]).
    pub withheld: Vec<String>,
}

/// Read the account's connections and build their manifests, sorted by id.
pub async fn import(client: kube::Client, options: &ImportOptions) -> Result<Vec<Imported>, ImportError> {
    let lookup_client = client.clone();
    let lookup = ApiLookup::new(client);
    let provider_ref = match options.provider_kind {
        ProviderKind::Provider => json!({"name": options.provider_name}),
        ProviderKind::ClusterProvider => json!({"kind": "ClusterProvider", "name": options.provider_name}),
    };
    // The account is resolved as for a Connection of that Provider (no block: any type).
    let probe: Connection = serde_json::from_value(json!({
        "apiVersion": "connection-operator.dev/v1alpha1", "kind": "Connection",
        "metadata": {"name": "import", "namespace": options.namespace},
        "spec": {"providerRef": provider_ref, "connectionId": "import"},
    }))
    .expect("a literal Connection");
    let accounts = Accounts::default();
    let resolve::Resolved { account, handle } =
        match resolve::account_handle(&probe, &options.namespace, &lookup, &accounts).await? {
            Ok(resolved) => resolved,
            Err(unresolved) => return Err(ImportError::Unresolved(unresolved.message)),
        };
    let config = &account.config;
    let client = handle.client;
    let wanted: BTreeSet<&str> = options.ids.iter().map(String::as_str).collect();

    let rows: Vec<(ListKey, Upstream)> = match client.list().await? {
        Some(listed) => {
            let rows: Vec<(ListKey, Upstream)> =
                listed.into_iter().filter(|((id, _), _)| wanted.is_empty() || wanted.contains(id.as_str())).collect();
            let found: BTreeSet<&str> = rows.iter().map(|((id, _), _)| id.as_str()).collect();
            let missing: Vec<String> =
                wanted.iter().filter(|id| !found.contains(**id)).map(|id| id.to_string()).collect();
            if !missing.is_empty() {
                return Err(ImportError::NotFound(missing));
            }
            rows
        }
        None if wanted.is_empty() => return Err(ImportError::NeedsIds { provider: config.type_.as_str() }),
        None => {
            let mut rows = Vec::new();
            let mut missing = Vec::new();
            for id in &wanted {
                let target = Target { connection_id: id.to_string(), provider_config_key: None };
                match client.read(&target).await {
                    Ok(upstream) => rows.push(((id.to_string(), None), upstream)),
                    Err(ProviderError::NotFound { .. }) => missing.push(id.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            if !missing.is_empty() {
                return Err(ImportError::NotFound(missing));
            }
            rows
        }
    };

    let secret = secret_keys(&lookup_client, options).await;
    let mut taken = BTreeSet::new();
    let mut out = Vec::new();
    for ((id, integration), upstream) in rows {
        let name = unique_name(&id, &mut taken);
        let mut block = block(integration.as_deref(), &upstream);
        let withheld = secret.get(&id).map(|keys| withhold(&mut block, keys)).unwrap_or_default();
        let mut spec = Map::new();
        spec.insert("providerRef".into(), provider_ref.clone());
        spec.insert("connectionId".into(), id.clone().into());
        spec.insert(config.type_.as_str().into(), block);
        spec.insert("managementPolicy".into(), format!("{:?}", options.policy).into());
        let manifest = json!({
            "apiVersion": "connection-operator.dev/v1alpha1",
            "kind": "Connection",
            "metadata": {"name": name, "namespace": options.namespace},
            "spec": spec,
        });
        out.push(Imported { name, manifest, withheld });
    }
    Ok(out)
}

/// Per connection id, the keys whose upstream values came from a Secret, as the Connections
/// of this Provider record them (`status.secretKeys`). Such a value must not end up in a
/// manifest (and so in Git): it is left out. Best effort: Connections that cannot be listed
/// withhold nothing.
async fn secret_keys(client: &kube::Client, options: &ImportOptions) -> BTreeMap<String, BTreeSet<String>> {
    let listed = match options.provider_kind {
        // A ClusterProvider serves every namespace.
        ProviderKind::ClusterProvider => {
            match Api::<Connection>::all(client.clone()).list(&ListParams::default()).await {
                Ok(list) => Ok(list),
                Err(_) => {
                    Api::<Connection>::namespaced(client.clone(), &options.namespace).list(&ListParams::default()).await
                }
            }
        }
        ProviderKind::Provider => {
            Api::<Connection>::namespaced(client.clone(), &options.namespace).list(&ListParams::default()).await
        }
    };
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for conn in listed.map(|l| l.items).unwrap_or_default() {
        let same_provider = conn.spec.provider_ref.kind == options.provider_kind
            && conn.spec.provider_ref.name == options.provider_name
            && (options.provider_kind == ProviderKind::ClusterProvider
                || conn.metadata.namespace.as_deref() == Some(&options.namespace));
        if let (true, Some(status)) = (same_provider, conn.status.as_ref()) {
            out.entry(conn.spec.connection_id.clone()).or_default().extend(status.secret_keys.iter().cloned());
        }
    }
    out
}

/// Remove `keys` (named as in `status.managedKeys`: `config.<key>` for Mielto) from a
/// provider block; the keys removed.
fn withhold(block: &mut Value, keys: &BTreeSet<String>) -> Vec<String> {
    let mut removed = Vec::new();
    for key in keys {
        let (map, inner) = match key.strip_prefix("config.") {
            Some(inner) if block.get("config").is_some() => ("config", inner),
            _ => ("metadata", key.as_str()),
        };
        if let Some(Value::Object(m)) = block.get_mut(map)
            && m.remove(inner).is_some()
        {
            removed.push(key.clone());
            if m.is_empty() && map != "metadata" {
                block.as_object_mut().map(|b| b.remove(map));
            }
        }
    }
    removed
}

/// The provider block that declares `upstream` as it is.
fn block(integration: Option<&str>, upstream: &Upstream) -> Value {
    match upstream {
        Upstream::Nango { metadata } => {
            let mut block = json!({"providerConfigKey": integration.unwrap_or_default()});
            if !metadata.is_empty() {
                block["metadata"] = Value::Object(metadata.clone());
            }
            block
        }
        Upstream::Arena { metadata } => json!({"metadata": metadata}),
        Upstream::Mielto { label, status, config } => {
            let mut block = Map::new();
            if let Some(label) = label {
                block.insert("label".into(), label.clone().into());
            }
            // Only a status the CRD admits can be declared; another is left unmanaged.
            let admitted = status.as_deref().and_then(|s| serde_json::from_value::<MieltoStatus>(json!(s)).ok());
            if let Some(status) = admitted {
                block.insert("status".into(), status.as_str().into());
            }
            if !config.is_empty() {
                block.insert("config".into(), Value::Object(config.clone()));
            }
            Value::Object(block)
        }
        Upstream::Datagrid { name } => json!({"name": name}),
    }
}

/// A Kubernetes object name for connection `id`: lower-case letters, digits and `-` (a
/// DNS-1123 label, at most 63 characters), `-2`, `-3`... when two ids give the same name.
pub fn unique_name(id: &str, taken: &mut BTreeSet<String>) -> String {
    let mut base = String::new();
    for c in id.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            base.push(c);
        } else if !base.ends_with('-') {
            base.push('-');
        }
    }
    let mut base = base.trim_matches('-').to_string();
    base.truncate(57);
    let base = base.trim_end_matches('-').to_string();
    let base = if base.is_empty() { "connection".to_string() } else { base };
    let mut name = base.clone();
    let mut n = 1;
    while taken.contains(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    taken.insert(name.clone());
    name
}

/// The manifests as one YAML stream.
pub fn to_yaml_stream(imported: &[Imported]) -> String {
    imported.iter().map(|i| format!("---\n{}", to_yaml(&i.manifest))).collect()
}

/// `value` (a JSON object) as block YAML that every YAML reader takes back as the same JSON,
/// kubectl's included. kubectl reads YAML 1.1, where an unquoted `n`, `no`, `on` or `y` is a
/// boolean, `0755` an octal number and `2024-01-01` may be a timestamp; a YAML 1.2 writer
/// (serde_yaml) leaves such keys and values bare, and an imported key `n` would come back as
/// `false`. So a string is written bare only when it starts with a letter, holds nothing but
/// letters, digits, `_`, `.`, `/`, `-` and inner spaces, and is not one of those words;
/// every other string is double-quoted (JSON escapes are YAML escapes). Nested arrays and
/// the objects in them are written in flow style with every string quoted.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => block_mapping(&mut out, map, 0),
        other => {
            out.push_str(&flow(other));
            out.push('\n');
        }
    }
    out
}

fn block_mapping(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&plain_or_quoted(key));
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                block_mapping(out, inner, indent + 2);
            }
            Value::String(s) => {
                out.push(' ');
                out.push_str(&plain_or_quoted(s));
                out.push('\n');
            }
            other => {
                out.push(' ');
                out.push_str(&flow(other));
                out.push('\n');
            }
        }
    }
}

/// Flow style: JSON with spaces after `,` and `:` (JSON is YAML; the spaces keep YAML 1.1
/// readers from taking `a:b` for one scalar).
fn flow(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let entries: Vec<String> = map.iter().map(|(k, v)| format!("{}: {}", quoted(k), flow(v))).collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::String(s) => quoted(s),
        scalar => scalar.to_string(),
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn plain_or_quoted(s: &str) -> String {
    const RESERVED: [&str; 10] = ["y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan"];
    let mut chars = s.chars();
    let safe = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | ' '))
        && !s.ends_with(' ')
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str());
    if safe { s.to_string() } else { quoted(s) }
}

/// Write one `<name>.yaml` per manifest into `dir` (created if needed). Nothing is written
/// when any of the files exists already.
pub fn write_files(dir: &Path, imported: &[Imported]) -> Result<Vec<String>, ImportError> {
    std::fs::create_dir_all(dir).map_err(|e| ImportError::Io(dir.display().to_string(), e))?;
    let paths: Vec<_> = imported.iter().map(|i| dir.join(format!("{}.yaml", i.name))).collect();
    let existing: Vec<String> = paths.iter().filter(|p| p.exists()).map(|p| p.display().to_string()).collect();
    if !existing.is_empty() {
        return Err(ImportError::Exists(existing));
    }
    let mut written = Vec::new();
    for (path, i) in paths.iter().zip(imported) {
        let text = to_yaml(&i.manifest);
        std::fs::write(path, text).map_err(|e| ImportError::Io(path.display().to_string(), e))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_and_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(unique_name("acme-salesforce-1", &mut taken), "acme-salesforce-1");
        assert_eq!(unique_name("Acme Salesforce #1", &mut taken), "acme-salesforce-1-2");
        assert_eq!(unique_name("conn_01HACME", &mut taken), "conn-01hacme");
        assert_eq!(unique_name("98765", &mut taken), "98765");
        assert_eq!(unique_name("???", &mut taken), "connection");
        let long = unique_name(&"x".repeat(100), &mut taken);
        assert!(long.len() <= 63 && long.chars().all(|c| c == 'x'), "{long}");
    }

    #[test]
    fn blocks_declare_upstream_as_it_is() {
        let nango = Upstream::nango(Some(&json!({"a": 1, "nested": {"b": [1]}})));
        assert_eq!(
            block(Some("salesforce"), &nango),
            json!({"providerConfigKey": "salesforce", "metadata": {"a": 1, "nested": {"b": [1]}}})
        );
        assert_eq!(block(Some("k"), &Upstream::nango(None)), json!({"providerConfigKey": "k"}));
        let mielto = Upstream::mielto(Some("L"), Some("paused"), Some(&json!({"c": true})));
        assert_eq!(block(None, &mielto), json!({"label": "L", "config": {"c": true}}));
        let mielto = Upstream::mielto(None, Some("active"), None);
        assert_eq!(block(None, &mielto), json!({"status": "active"}));
        assert_eq!(block(None, &Upstream::arena(None)), json!({"metadata": {}}));
        assert_eq!(block(None, &Upstream::datagrid("D")), json!({"name": "D"}));
    }

    #[test]
    fn yaml_output_means_the_same_to_yaml_1_1_readers() {
        let manifest = json!({
            "apiVersion": "connection-operator.dev/v1alpha1",
            "metadata": {"name": "acme-sf", "namespace": "tenants"},
            "spec": {"connectionId": "4242", "nango": {"providerConfigKey": "Sales Force", "metadata": {
                "n": 1.5, "on": "off", "Yes": "NO", "mode": "0755", "when": "2024-01-01", "time": "1:20",
                "empty": {}, "none": null, "list": [1, "y", {"k": "a: b"}, []], "text": "line\nbreak \"q\"",
                "url": "http://x/y?z=1#f", "pad": "trailing ", "lead": " x", "tilde": "~", "star": "*ref",
                "account.Name": "Account.Name", "unicode": "café", "big": 1e300, "neg": -3}}}
        });
        let yaml = to_yaml(&manifest);
        assert!(
            yaml.starts_with("apiVersion: connection-operator.dev/v1alpha1\nmetadata:\n  name: acme-sf\n"),
            "{yaml}"
        );
        for line in [
            "      \"n\": 1.5",
            "      \"on\": \"off\"",
            "      \"Yes\": \"NO\"",
            "      mode: \"0755\"",
            "      when: \"2024-01-01\"",
            "      time: \"1:20\"",
            "      empty: {}",
            "      list: [1, \"y\", {\"k\": \"a: b\"}, []]",
            "    providerConfigKey: Sales Force",
            "  connectionId: \"4242\"",
            "      account.Name: Account.Name",
        ] {
            assert!(yaml.lines().any(|l| l == line), "no line {line:?} in\n{yaml}");
        }
        // What a YAML 1.2 reader takes back is the manifest itself.
        let back: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, manifest);
    }

    #[test]
    fn secret_sourced_keys_are_withheld() {
        let keys: BTreeSet<String> = ["apiKey".to_string(), "config.signing".to_string(), "absent".to_string()].into();
        let mut nango = json!({"providerConfigKey": "k", "metadata": {"apiKey": "v", "region": "eu"}});
        assert_eq!(withhold(&mut nango, &keys), ["apiKey"]);
        assert_eq!(nango, json!({"providerConfigKey": "k", "metadata": {"region": "eu"}}));
        let mut mielto = json!({"label": "L", "config": {"signing": "v"}});
        assert_eq!(withhold(&mut mielto, &keys), ["config.signing"]);
        assert_eq!(mielto, json!({"label": "L"}));
        let mut arena = json!({"metadata": {"apiKey": "v"}});
        withhold(&mut arena, &keys);
        assert_eq!(arena, json!({"metadata": {}}));
    }

    #[test]
    fn files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let one = vec![Imported { name: "a".into(), manifest: json!({"kind": "Connection"}), withheld: vec![] }];
        assert_eq!(write_files(dir.path(), &one).unwrap().len(), 1);
        let two = vec![
            Imported { name: "b".into(), manifest: json!({"kind": "Connection"}), withheld: vec![] },
            Imported { name: "a".into(), manifest: json!({"kind": "Changed"}), withheld: vec![] },
        ];
        let err = write_files(dir.path(), &two).unwrap_err();
        assert!(err.to_string().contains("a.yaml"), "{err}");
        assert!(!dir.path().join("b.yaml").exists(), "nothing written when one file exists");
        assert_eq!(std::fs::read_to_string(dir.path().join("a.yaml")).unwrap(), "kind: Connection\n");
    }
}
