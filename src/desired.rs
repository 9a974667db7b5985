//! The desired state of a Connection: its provider block with the keys of its shared
//! settings (`metadataFrom`, Mielto's `configFrom`) merged in. Pure: the ConfigMaps and
//! Secrets are fetched by the caller (`resolve`), so the controller and
//! `connection-operator plan` merge the same way.
//!
//! Merge order, as a Pod's `envFrom` then `env`: the sources in list order, a later source
//! winning a key it shares with an earlier one, then the inline `metadata`/`config` on top.
//! Each data key is one top-level key whose value is the data value as a string (a
//! ConfigMap's `binaryData` is ignored; a Secret's value must be UTF-8 and is kept exactly,
//! a trailing newline included). Keys from a source are owned like inline keys.
//!
//! "Reference cycles": a source cannot name another source, so the only loops are
//! (1) the same ConfigMap or Secret named twice in one list, which admission refuses (a CEL
//! rule on the list; a second mention could only shadow the first) and which [`merge`] also
//! refuses should one slip through, and (2) a `secretRef` naming the Secret that holds the
//! Provider's own API token, which would send the credential upstream as metadata; `resolve`
//! refuses that (`InvalidSpec`) once the Provider is known.
//!
//! Secret-sourced values are tracked by key name ([`Desired::secret_keys`]) so that nothing
//! that shows values (plan output, messages) prints them: names are not secret, values are.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::api::{ConnectionSpec, JsonObject, MetadataSource, SourceKind};

/// What stands in for a value that came from a Secret wherever values are shown.
pub const SECRET_PLACEHOLDER: &str = "(secret)";

/// Prefix of Mielto config keys in `managedKeys` (as the plan engine names them).
const MIELTO_CONFIG_PREFIX: &str = "config.";

/// Secret values shorter than this are not searched for in free text (provider messages):
/// replacing every "1" or "eu" would garble messages, and such values are no secrets.
const MIN_REDACTED_LEN: usize = 4;

/// A ConfigMap's or Secret's data as read: key to bytes (ConfigMap strings as UTF-8).
pub type SourceData = BTreeMap<String, Vec<u8>>;

/// The outcome of reading one source.
#[derive(Clone, Debug, PartialEq)]
pub enum Fetched {
    Found(Arc<SourceData>),
    NotFound,
    /// The caller may not read it (403).
    Forbidden,
}

/// Where one desired key's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Inline,
    ConfigMap(String),
    Secret(String),
}

impl Origin {
    pub fn is_secret(&self) -> bool {
        matches!(self, Origin::Secret(_))
    }

    /// `inline`, `ConfigMap/name`, `Secret/name`.
    pub fn describe(&self) -> String {
        match self {
            Origin::Inline => "inline".into(),
            Origin::ConfigMap(name) => format!("ConfigMap/{name}"),
            Origin::Secret(name) => format!("Secret/{name}"),
        }
    }
}

/// A Connection's spec with its sources merged in, and where each key came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// The spec the plan engine sees: `metadata`/`config` hold the merged keys.
    pub spec: ConnectionSpec,
    /// Origin of every key of the merged map, named as in `status.managedKeys`.
    pub origins: BTreeMap<String, Origin>,
    /// Values that came from Secrets, to keep them out of free text.
    secret_values: Vec<String>,
}

/// Why the sources cannot be merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// A source that is not `optional` does not exist.
    #[error("{kind} {namespace}/{name} not found ({field}[{index}])", kind = .kind.as_str())]
    NotFound { kind: SourceKind, namespace: String, name: String, field: &'static str, index: usize },
    /// A source cannot be read (403).
    #[error("{kind} {namespace}/{name} cannot be read (forbidden) ({field}[{index}])", kind = .kind.as_str())]
    Forbidden { kind: SourceKind, namespace: String, name: String, field: &'static str, index: usize },
    /// A Secret value that is not text.
    #[error("Secret {namespace}/{name} key {key} is not UTF-8 text ({field}[{index}])")]
    NotText { namespace: String, name: String, key: String, field: &'static str, index: usize },
    /// The same object named twice in one list (admission refuses it too).
    #[error("{kind} {name} is referenced more than once in {field}", kind = .kind.as_str())]
    Duplicate { kind: SourceKind, name: String, field: &'static str },
}

impl ReferenceError {
    /// Whether the Connection waits for the object (`ReferenceNotFound`) rather than for a
    /// fix of its spec or data (`InvalidSpec`).
    pub fn is_missing(&self) -> bool {
        matches!(self, ReferenceError::NotFound { .. } | ReferenceError::Forbidden { .. })
    }
}

/// The name of the list field of `spec`'s provider block.
pub fn sources_field(spec: &ConnectionSpec) -> &'static str {
    if spec.mielto.is_some() { "configFrom" } else { "metadataFrom" }
}

/// The objects `spec` reads, in list order.
pub fn references(spec: &ConnectionSpec) -> Vec<(SourceKind, String, bool)> {
    spec.sources()
        .iter()
        .filter_map(MetadataSource::reference)
        .map(|(kind, r)| (kind, r.name.clone(), r.optional))
        .collect()
}

/// Merge `fetched` (one entry per [`references`] entry, same order) into `spec`'s provider
/// block. `namespace` only names objects in errors.
pub fn merge(spec: &ConnectionSpec, namespace: &str, fetched: &[Fetched]) -> Result<Desired, ReferenceError> {
    let field = sources_field(spec);
    let refs = references(spec);
    let mut seen = BTreeSet::new();
    for (kind, name, _) in &refs {
        if !seen.insert((*kind, name.clone())) {
            return Err(ReferenceError::Duplicate { kind: *kind, name: name.clone(), field });
        }
    }
    let mut merged = JsonObject::new();
    let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
    let mut secret_values = Vec::new();
    for (index, ((kind, name, optional), fetched)) in refs.iter().zip(fetched).enumerate() {
        let data = match fetched {
            Fetched::Found(data) => data,
            Fetched::NotFound if *optional => continue,
            Fetched::NotFound => {
                return Err(ReferenceError::NotFound {
                    kind: *kind,
                    namespace: namespace.into(),
                    name: name.clone(),
                    field,
                    index,
                });
            }
            Fetched::Forbidden => {
                return Err(ReferenceError::Forbidden {
                    kind: *kind,
                    namespace: namespace.into(),
                    name: name.clone(),
                    field,
                    index,
                });
            }
        };
        for (key, bytes) in data.iter() {
            let text = match String::from_utf8(bytes.clone()) {
                Ok(text) => text,
                Err(_) => {
                    return Err(ReferenceError::NotText {
                        namespace: namespace.into(),
                        name: name.clone(),
                        key: key.clone(),
                        field,
                        index,
                    });
                }
            };
            let origin = match kind {
                SourceKind::ConfigMap => Origin::ConfigMap(name.clone()),
                SourceKind::Secret => {
                    secret_values.push(text.clone());
                    Origin::Secret(name.clone())
                }
            };
            merged.insert(key.clone(), Value::String(text));
            origins.insert(key.clone(), origin);
        }
    }

    let mut spec = spec.clone();
    let prefix = if spec.mielto.is_some() { MIELTO_CONFIG_PREFIX } else { "" };
    let target: Option<&mut JsonObject> = if let Some(n) = spec.nango.as_mut() {
        Some(n.metadata.get_or_insert_with(JsonObject::new))
    } else if let Some(a) = spec.arena.as_mut() {
        Some(&mut a.metadata)
    } else if let Some(m) = spec.mielto.as_mut() {
        // An absent config stays absent when no source adds keys: nothing to own then.
        if merged.is_empty() && m.config.is_none() { None } else { Some(m.config.get_or_insert_with(JsonObject::new)) }
    } else {
        None
    };
    let mut keyed_origins = BTreeMap::new();
    if let Some(target) = target {
        for (key, _) in target.iter() {
            origins.insert(key.clone(), Origin::Inline);
        }
        // Inline keys win: start from the sources and lay the inline map over them.
        let mut combined = merged;
        for (key, value) in std::mem::take(target) {
            combined.insert(key, value);
        }
        *target = combined;
        for (key, origin) in origins {
            keyed_origins.insert(format!("{prefix}{key}"), origin);
        }
    }
    // The fields beside the maps (Mielto's label and status, Datagrid's name) are always
    // inline.
    if let Some(m) = spec.mielto.as_ref() {
        for (key, set) in [("label", m.label.is_some()), ("status", m.status.is_some())] {
            if set {
                keyed_origins.insert(key.to_string(), Origin::Inline);
            }
        }
    }
    if spec.datagrid.is_some() {
        keyed_origins.insert("name".to_string(), Origin::Inline);
    }
    // A Nango block whose metadata was absent and gained nothing stays absent (`null` and
    // `{}` plan the same; keeping the spec as written keeps it comparable).
    if let Some(n) = spec.nango.as_mut()
        && n.metadata.as_ref().is_some_and(JsonObject::is_empty)
        && keyed_origins.is_empty()
    {
        n.metadata = None;
    }
    // Only values that are still in effect (not shadowed by inline keys) need hiding, but a
    // shadowed value is as secret as any: keep them all.
    Ok(Desired { spec, origins: keyed_origins, secret_values })
}

impl Desired {
    /// A spec without sources: every key inline.
    pub fn inline(spec: &ConnectionSpec) -> Desired {
        merge(spec, "", &[]).unwrap_or_else(|_| Desired {
            spec: spec.clone(),
            origins: BTreeMap::new(),
            secret_values: vec![],
        })
    }

    /// The desired keys (named as in `status.managedKeys`) whose value comes from a Secret.
    pub fn secret_keys(&self) -> Vec<String> {
        self.origins.iter().filter(|(_, o)| o.is_secret()).map(|(k, _)| k.clone()).collect()
    }

    /// Whether the key (named as in `status.managedKeys`) comes from a Secret.
    pub fn is_secret(&self, key: &str) -> bool {
        self.origins.get(key).is_some_and(Origin::is_secret)
    }

    /// Whether a `secretRef` names `name` (in the Connection's namespace).
    pub fn reads_secret(&self, name: &str) -> bool {
        references(&self.spec).iter().any(|(kind, n, _)| *kind == SourceKind::Secret && n == name)
    }

    /// `text` with every Secret-sourced value (of at least 4 characters) replaced by
    /// `(secret)`: for provider messages, which may echo what was sent.
    pub fn redact(&self, text: &str) -> String {
        let mut values: Vec<&str> =
            self.secret_values.iter().map(String::as_str).filter(|v| v.chars().count() >= MIN_REDACTED_LEN).collect();
        // Longest first, so a value containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_string();
        for value in values {
            if out.contains(value) {
                out = out.replace(value, SECRET_PLACEHOLDER);
            }
            // JSON-escaped forms (a message quoting a body) too.
            let escaped = serde_json::to_string(value).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            if escaped != value && out.contains(escaped) {
                out = out.replace(escaped, SECRET_PLACEHOLDER);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> ConnectionSpec {
        serde_json::from_value(value).unwrap()
    }

    fn data(pairs: &[(&str, &str)]) -> Fetched {
        Fetched::Found(Arc::new(pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()))
    }

    fn nango(from: Value, metadata: Value) -> ConnectionSpec {
        spec(json!({"providerRef": {"name": "n"}, "connectionId": "c",
                    "nango": {"providerConfigKey": "k", "metadata": metadata, "metadataFrom": from}}))
    }

    #[test]
    fn sources_merge_in_order_and_inline_wins() {
        let s = nango(
            json!([{"configMapRef": {"name": "defaults"}}, {"secretRef": {"name": "keys"}}, {"configMapRef": {"name": "team"}}]),
            json!({"tier": 3, "region": "eu"}),
        );
        let d = merge(
            &s,
            "ns",
            &[
                data(&[("region", "us"), ("plan", "basic"), ("support", "std")]),
                data(&[("apiKey", "sk-live-123"), ("plan", "secret-plan")]),
                data(&[("support", "gold")]),
            ],
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&d.spec.nango.as_ref().unwrap().metadata).unwrap(),
            json!({"region": "eu", "plan": "secret-plan", "support": "gold", "apiKey": "sk-live-123", "tier": 3})
        );
        assert_eq!(d.origins["region"], Origin::Inline);
        assert_eq!(d.origins["plan"], Origin::Secret("keys".into()));
        assert_eq!(d.origins["support"], Origin::ConfigMap("team".into()));
        assert_eq!(d.secret_keys(), ["apiKey", "plan"]);
        assert!(d.reads_secret("keys") && !d.reads_secret("team"));
    }

    #[test]
    fn optional_sources_may_be_missing_and_required_ones_may_not() {
        let s =
            nango(json!([{"configMapRef": {"name": "a", "optional": true}}, {"secretRef": {"name": "b"}}]), json!({}));
        let err = merge(&s, "ns", &[Fetched::NotFound, Fetched::NotFound]).unwrap_err();
        assert_eq!(err.to_string(), "Secret ns/b not found (metadataFrom[1])");
        assert!(err.is_missing());
        let d = merge(&s, "ns", &[Fetched::NotFound, data(&[("k", "v")])]).unwrap();
        assert_eq!(d.origins.keys().collect::<Vec<_>>(), ["k"]);
        let err = merge(&s, "ns", &[Fetched::Forbidden, data(&[])]).unwrap_err();
        assert_eq!(err.to_string(), "ConfigMap ns/a cannot be read (forbidden) (metadataFrom[0])");
    }

    #[test]
    fn mielto_config_keys_are_prefixed_and_an_absent_config_stays_absent() {
        let m = spec(json!({"providerRef": {"name": "m"}, "connectionId": "c",
                            "mielto": {"label": "L", "configFrom": [{"configMapRef": {"name": "cm", "optional": true}}]}}));
        let d = merge(&m, "ns", &[data(&[("channel", "#ops")])]).unwrap();
        assert_eq!(
            d.spec.mielto.as_ref().unwrap().config,
            Some(serde_json::from_value(json!({"channel": "#ops"})).unwrap())
        );
        assert_eq!(d.origins.keys().collect::<Vec<_>>(), ["config.channel", "label"]);
        assert_eq!(d.origins["label"], Origin::Inline);
        let d = merge(&m, "ns", &[Fetched::NotFound]).unwrap();
        assert_eq!(d.spec.mielto.as_ref().unwrap().config, None);
    }

    #[test]
    fn duplicates_and_binary_secrets_are_refused() {
        let s = nango(
            json!([{"configMapRef": {"name": "a"}}, {"configMapRef": {"name": "a", "optional": true}}]),
            json!({}),
        );
        let err = merge(&s, "ns", &[data(&[]), data(&[])]).unwrap_err();
        assert_eq!(err.to_string(), "ConfigMap a is referenced more than once in metadataFrom");
        // A ConfigMap and a Secret of the same name are two objects.
        let s = nango(json!([{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "a"}}]), json!({}));
        assert!(merge(&s, "ns", &[data(&[]), data(&[])]).is_ok());
        let binary = Fetched::Found(Arc::new([("k".to_string(), vec![0xff, 0xfe])].into_iter().collect()));
        let s = nango(json!([{"secretRef": {"name": "bin"}}]), json!({}));
        let err = merge(&s, "ns", &[binary]).unwrap_err();
        assert_eq!(err.to_string(), "Secret ns/bin key k is not UTF-8 text (metadataFrom[0])");
        assert!(!err.is_missing());
    }

    #[test]
    fn a_spec_without_sources_is_unchanged() {
        let s = nango(json!([]), json!({"a": 1}));
        let d = Desired::inline(&s);
        assert_eq!(d.spec, s);
        assert_eq!(d.origins["a"], Origin::Inline);
        let bare =
            spec(json!({"providerRef": {"name": "n"}, "connectionId": "c", "nango": {"providerConfigKey": "k"}}));
        assert_eq!(Desired::inline(&bare).spec, bare);
        let dg = spec(json!({"providerRef": {"name": "d"}, "connectionId": "c", "datagrid": {"name": "x"}}));
        assert_eq!(Desired::inline(&dg).spec, dg);
        assert_eq!(Desired::inline(&dg).origins["name"], Origin::Inline);
        let m = spec(
            json!({"providerRef": {"name": "m"}, "connectionId": "c", "mielto": {"label": "L", "status": "active"}}),
        );
        assert_eq!(Desired::inline(&m).origins.keys().collect::<Vec<_>>(), ["label", "status"]);
    }

    #[test]
    fn redaction_hides_secret_values_in_text() {
        let s = nango(json!([{"secretRef": {"name": "keys"}}]), json!({}));
        let d =
            merge(&s, "ns", &[data(&[("apiKey", "sk-live-123"), ("short", "eu"), ("quoted", "a\"b-long")])]).unwrap();
        assert_eq!(d.redact("value sk-live-123 refused"), "value (secret) refused");
        assert_eq!(d.redact("region eu"), "region eu", "short values are left alone");
        assert_eq!(d.redact(r#"{"quoted":"a\"b-long"}"#), r#"{"quoted":"(secret)"}"#);
    }
}
