//! Ownership-aware plan: (spec, managed keys, upstream) -> minimal provider calls. Pure.
//!
//! The resource owns the keys in its spec plus the keys recorded in `status.managedKeys`
//! (docs/api.md, "Ownership"). Keys it owned but no longer declares are removed upstream;
//! keys nobody declared (written by the customer's application) are never touched. The
//! write is the smallest the provider allows:
//! - Nango: `PATCH` with the changed keys only; when a key must go, `POST` (replace) of the
//!   freshly read object with the changes applied and the removed keys left out, because a
//!   PATCH stores `null` instead of deleting (docs/providers.md, Nango).
//! - Are.na: `PUT` with the changed keys and `null` for each removed key, which Are.na
//!   deletes (docs/providers.md, Are.na).
//! - Mielto: `PUT` with `label`/`status` when they changed, and the whole `config` (the
//!   freshly read one with the owned keys updated or removed) when it changed, because a
//!   supplied config replaces the stored one whole and `null` must never be sent
//!   (docs/providers.md, Mielto).
//! - Datagrid: `PATCH` of `name`, the only mutable field (docs/providers.md, Datagrid).
//!
//! Comparison is done on normalised values: Nango `null` metadata equals `{}`; Are.na
//! absent, `null` and `{}` are equal; numbers compare as JSON numbers (`1 == 1.0`), so a
//! provider that re-serialises a number cannot cause an endless write loop.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::api::{JsonObject, ProviderBlock, ProviderType};

/// Prefix of Mielto config keys in `managedKeys`/`drift`, keeping them apart from the
/// connection fields `label` and `status`.
const MIELTO_CONFIG_PREFIX: &str = "config.";

/// The upstream state that matters to the plan, normalised per provider.
#[derive(Clone, Debug, PartialEq)]
pub enum Upstream {
    Nango { metadata: JsonObject },
    Mielto { label: Option<String>, status: Option<String>, config: JsonObject },
    Arena { metadata: JsonObject },
    Datagrid { name: String },
}

impl Upstream {
    /// Nango metadata as read (`null` when never set, docs/providers.md, Nango).
    pub fn nango(metadata: Option<&Value>) -> Self {
        Upstream::Nango { metadata: object_or_empty(metadata) }
    }

    /// Mielto fields as read; a `null` config is an empty one.
    pub fn mielto(label: Option<&str>, status: Option<&str>, config: Option<&Value>) -> Self {
        Upstream::Mielto {
            label: label.map(str::to_string),
            status: status.map(str::to_string),
            config: object_or_empty(config),
        }
    }

    /// Are.na metadata as read: absent, `null` and `{}` are equal, and a `null` value is
    /// an absent key (a `null` deletes the key, docs/providers.md, Are.na).
    pub fn arena(metadata: Option<&Value>) -> Self {
        let mut metadata = object_or_empty(metadata);
        metadata.retain(|_, v| !v.is_null());
        Upstream::Arena { metadata }
    }

    /// Datagrid name as read.
    pub fn datagrid(name: &str) -> Self {
        Upstream::Datagrid { name: name.to_string() }
    }

    fn provider_type(&self) -> ProviderType {
        match self {
            Upstream::Nango { .. } => ProviderType::Nango,
            Upstream::Mielto { .. } => ProviderType::Mielto,
            Upstream::Arena { .. } => ProviderType::Arena,
            Upstream::Datagrid { .. } => ProviderType::Datagrid,
        }
    }
}

/// One provider write. Bodies hold only what the provider needs to receive.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// `PATCH /connections/metadata`: shallow merge of these keys.
    NangoPatch { metadata: JsonObject },
    /// `POST /connections/metadata`: replace the metadata with exactly this object.
    NangoReplace { metadata: JsonObject },
    /// `PUT /v3/connections/{id}`: merge; a `null` value deletes the key.
    ArenaPut { metadata: JsonObject },
    /// `PUT /api/v1/connections/{id}`: each supplied field replaces the stored one.
    MieltoPut { label: Option<String>, status: Option<String>, config: Option<JsonObject> },
    /// `PATCH /connections/{id}`: set the name.
    DatagridPatch { name: String },
}

/// The outcome of planning one Connection against its upstream state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The write that brings upstream in line (none when in sync). Observe mode ignores it.
    pub write: Option<Write>,
    /// Keys that differ upstream (changed or to be removed), sorted.
    pub drift: Vec<String>,
    /// The keys the resource owns once `write` is applied, sorted: what goes to
    /// `status.managedKeys` after a successful write (or when in sync). In Observe mode
    /// nothing is written, so the recorded keys stay as they are.
    pub managed_keys: Vec<String>,
}

impl Plan {
    /// True when upstream already matches the spec.
    pub fn in_sync(&self) -> bool {
        self.write.is_none()
    }
}

/// What removing the managed keys upstream (deletion policy `Delete`) takes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Removal {
    /// The write that removes the managed keys still present upstream.
    pub write: Option<Write>,
    /// Managed fields the provider cannot remove (Datagrid `name`, Mielto `label` and
    /// `status`); they are left in place and reported in an Event.
    pub orphaned: Vec<String>,
}

/// Planning failed because the spec and the upstream state belong to different providers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Connection has a {desired} block but its provider is of type {upstream}")]
pub struct ProviderMismatch {
    pub desired: &'static str,
    pub upstream: &'static str,
}

/// Plan the minimal write for `desired`, given the keys recorded as owned and the upstream
/// state.
pub fn plan(desired: ProviderBlock<'_>, managed: &[String], upstream: &Upstream) -> Result<Plan, ProviderMismatch> {
    let managed: BTreeSet<&str> = managed.iter().map(String::as_str).collect();
    match (desired, upstream) {
        (ProviderBlock::Nango(spec), Upstream::Nango { metadata }) => {
            let want = spec.metadata.clone().unwrap_or_default();
            Ok(plan_nango(&want, &managed, metadata))
        }
        (ProviderBlock::Arena(spec), Upstream::Arena { metadata }) => {
            // A null would delete the key on every write, never converging; admission
            // rejects it, and a value that slipped through is treated as undeclared.
            let want: JsonObject =
                spec.metadata.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
            Ok(plan_arena(&want, &managed, metadata))
        }
        (ProviderBlock::Mielto(spec), Upstream::Mielto { label, status, config }) => {
            let want = MieltoWant {
                label: spec.label.as_deref(),
                status: spec.status.map(|s| s.as_str()),
                config: spec.config.as_ref(),
            };
            Ok(plan_mielto(&want, &managed, label.as_deref(), status.as_deref(), config))
        }
        (ProviderBlock::Datagrid(spec), Upstream::Datagrid { name }) => {
            let changed = spec.name != *name;
            Ok(Plan {
                write: changed.then(|| Write::DatagridPatch { name: spec.name.clone() }),
                drift: if changed { vec!["name".into()] } else { vec![] },
                managed_keys: vec!["name".into()],
            })
        }
        (desired, upstream) => Err(ProviderMismatch {
            desired: desired.provider_type().as_str(),
            upstream: upstream.provider_type().as_str(),
        }),
    }
}

/// Plan the removal of every managed key still present upstream (deletion policy
/// `Delete`). Keys the resource does not own are kept.
pub fn plan_removal(managed: &[String], upstream: &Upstream) -> Removal {
    let managed: BTreeSet<&str> = managed.iter().map(String::as_str).collect();
    match upstream {
        Upstream::Nango { metadata } => {
            Removal { write: plan_nango(&Map::new(), &managed, metadata).write, orphaned: vec![] }
        }
        Upstream::Arena { metadata } => {
            Removal { write: plan_arena(&Map::new(), &managed, metadata).write, orphaned: vec![] }
        }
        Upstream::Mielto { label, status, config } => {
            let want = MieltoWant { label: None, status: None, config: None };
            let orphaned =
                ["label", "status"].into_iter().filter(|k| managed.contains(k)).map(str::to_string).collect();
            Removal { write: plan_mielto(&want, &managed, label.as_deref(), status.as_deref(), config).write, orphaned }
        }
        Upstream::Datagrid { .. } => Removal {
            write: None,
            orphaned: managed.contains("name").then(|| "name".to_string()).into_iter().collect(),
        },
    }
}

/// Keys of `want` whose upstream value differs, and owned keys no longer wanted that are
/// still present upstream.
fn key_changes<'a>(
    want: &'a JsonObject,
    owned_before: impl Iterator<Item = &'a str>,
    upstream: &JsonObject,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let changed = want
        .iter()
        .filter(|(k, v)| !upstream.get(k.as_str()).is_some_and(|u| json_eq(u, v)))
        .map(|(k, _)| k.as_str())
        .collect();
    let removed = owned_before.filter(|k| !want.contains_key(*k) && upstream.contains_key(*k)).collect();
    (changed, removed)
}

fn plan_nango(want: &JsonObject, managed: &BTreeSet<&str>, upstream: &JsonObject) -> Plan {
    let (changed, removed) = key_changes(want, managed.iter().copied(), upstream);
    let write = if !removed.is_empty() {
        // PATCH cannot delete (it stores null): replace with the freshly read object, the
        // changes applied and the removed keys left out. Foreign keys travel unchanged.
        let mut full = upstream.clone();
        for k in &removed {
            full.remove(*k);
        }
        for k in &changed {
            full.insert((*k).to_string(), want[*k].clone());
        }
        Some(Write::NangoReplace { metadata: full })
    } else if !changed.is_empty() {
        Some(Write::NangoPatch { metadata: subset(want, &changed) })
    } else {
        None
    };
    Plan { write, drift: sorted_union(&changed, &removed), managed_keys: sorted_keys(want) }
}

fn plan_arena(want: &JsonObject, managed: &BTreeSet<&str>, upstream: &JsonObject) -> Plan {
    let (changed, removed) = key_changes(want, managed.iter().copied(), upstream);
    let write = (!changed.is_empty() || !removed.is_empty()).then(|| {
        let mut body = subset(want, &changed);
        for k in &removed {
            body.insert((*k).to_string(), Value::Null);
        }
        Write::ArenaPut { metadata: body }
    });
    Plan { write, drift: sorted_union(&changed, &removed), managed_keys: sorted_keys(want) }
}

struct MieltoWant<'a> {
    label: Option<&'a str>,
    status: Option<&'a str>,
    config: Option<&'a JsonObject>,
}

fn plan_mielto(
    want: &MieltoWant<'_>,
    managed: &BTreeSet<&str>,
    label: Option<&str>,
    status: Option<&str>,
    config: &JsonObject,
) -> Plan {
    let empty = Map::new();
    let want_config = want.config.unwrap_or(&empty);
    let owned_config = managed.iter().filter_map(|k| k.strip_prefix(MIELTO_CONFIG_PREFIX));
    let (changed, removed) = key_changes(want_config, owned_config, config);

    // label and status are set when declared and differ; they cannot be unset (never send
    // null, docs/providers.md, Mielto), so dropping them from the spec only ends the ownership.
    let new_label = want.label.filter(|l| Some(*l) != label);
    let new_status = want.status.filter(|s| Some(*s) != status);
    let new_config = (!changed.is_empty() || !removed.is_empty()).then(|| {
        let mut full = config.clone();
        for k in &removed {
            full.remove(*k);
        }
        for k in &changed {
            full.insert((*k).to_string(), want_config[*k].clone());
        }
        full
    });

    let mut drift: Vec<String> =
        sorted_union(&changed, &removed).into_iter().map(|k| format!("{MIELTO_CONFIG_PREFIX}{k}")).collect();
    drift.extend(new_label.map(|_| "label".to_string()));
    drift.extend(new_status.map(|_| "status".to_string()));
    drift.sort();

    let mut managed_keys: Vec<String> = want_config.keys().map(|k| format!("{MIELTO_CONFIG_PREFIX}{k}")).collect();
    managed_keys.extend(want.label.map(|_| "label".to_string()));
    managed_keys.extend(want.status.map(|_| "status".to_string()));
    managed_keys.sort();

    let write = (new_label.is_some() || new_status.is_some() || new_config.is_some()).then(|| Write::MieltoPut {
        label: new_label.map(str::to_string),
        status: new_status.map(str::to_string),
        config: new_config,
    });
    Plan { write, drift, managed_keys }
}

/// What a plan does to one key, for people (`connection-operator plan`).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// The key is not upstream and will be set.
    Add { new: Value },
    /// The key is upstream with another value.
    Update { old: Value, new: Value },
    /// An owned key no longer declared, still upstream: it will be removed.
    Remove { old: Value },
}

/// A plan, key by key (names as in `status.managedKeys`), sorted by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Description {
    /// Keys the write sets, changes or removes: exactly [`Plan::drift`].
    pub changes: Vec<(String, Change)>,
    /// Declared keys that already have their value upstream.
    pub unchanged: Vec<String>,
    /// Upstream keys this Connection neither declares nor owns: left alone.
    pub foreign: Vec<String>,
}

/// Describe, key by key, what [`plan`] does with the same inputs.
pub fn describe(
    desired: ProviderBlock<'_>,
    managed: &[String],
    upstream: &Upstream,
) -> Result<Description, ProviderMismatch> {
    let owned: BTreeSet<&str> = managed.iter().map(String::as_str).collect();
    let mut out = Description::default();
    // A flat map of wanted keys against a flat map of upstream keys; `prefix` names them.
    let maps = |want: &JsonObject, up: &JsonObject, prefix: &str, out: &mut Description| {
        let owned_here =
            owned.iter().filter_map(|k| k.strip_prefix(prefix)).filter(|k| prefix.is_empty() || !k.is_empty());
        let (changed, removed) = key_changes(want, owned_here, up);
        for (k, v) in want {
            let name = format!("{prefix}{k}");
            if changed.contains(&k.as_str()) {
                let change = match up.get(k) {
                    Some(old) => Change::Update { old: old.clone(), new: v.clone() },
                    None => Change::Add { new: v.clone() },
                };
                out.changes.push((name, change));
            } else {
                out.unchanged.push(name);
            }
        }
        for k in removed {
            out.changes.push((format!("{prefix}{k}"), Change::Remove { old: up[k].clone() }));
        }
        for k in up.keys() {
            let name = format!("{prefix}{k}");
            if !want.contains_key(k) && !owned.contains(name.as_str()) {
                out.foreign.push(name);
            }
        }
    };
    match (desired, upstream) {
        (ProviderBlock::Nango(spec), Upstream::Nango { metadata }) => {
            maps(&spec.metadata.clone().unwrap_or_default(), metadata, "", &mut out);
        }
        (ProviderBlock::Arena(spec), Upstream::Arena { metadata }) => {
            let want: JsonObject =
                spec.metadata.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
            maps(&want, metadata, "", &mut out);
        }
        (ProviderBlock::Mielto(spec), Upstream::Mielto { label, status, config }) => {
            maps(&spec.config.clone().unwrap_or_default(), config, MIELTO_CONFIG_PREFIX, &mut out);
            let fields = [
                ("label", spec.label.as_deref(), label.as_deref()),
                ("status", spec.status.map(|s| s.as_str()), status.as_deref()),
            ];
            for (name, want, up) in fields {
                match (want, up) {
                    (Some(w), Some(u)) if w == u => out.unchanged.push(name.into()),
                    (Some(w), Some(u)) => {
                        out.changes.push((name.into(), Change::Update { old: u.into(), new: w.into() }))
                    }
                    (Some(w), None) => out.changes.push((name.into(), Change::Add { new: w.into() })),
                    // Not declared: left alone (never unset, docs/providers.md, Mielto), owned or not.
                    (None, Some(_)) => out.foreign.push(name.into()),
                    (None, None) => {}
                }
            }
        }
        (ProviderBlock::Datagrid(spec), Upstream::Datagrid { name }) => {
            if spec.name == *name {
                out.unchanged.push("name".into());
            } else {
                out.changes.push((
                    "name".into(),
                    Change::Update { old: name.as_str().into(), new: spec.name.as_str().into() },
                ));
            }
        }
        (desired, upstream) => {
            return Err(ProviderMismatch {
                desired: desired.provider_type().as_str(),
                upstream: upstream.provider_type().as_str(),
            });
        }
    }
    out.changes.sort_by(|a, b| a.0.cmp(&b.0));
    out.unchanged.sort();
    out.foreign.sort();
    Ok(out)
}

fn subset(from: &JsonObject, keys: &[&str]) -> JsonObject {
    keys.iter().map(|k| ((*k).to_string(), from[*k].clone())).collect()
}

fn sorted_keys(map: &JsonObject) -> Vec<String> {
    let mut keys: Vec<String> = map.keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted_union(a: &[&str], b: &[&str]) -> Vec<String> {
    a.iter().chain(b).map(|k| (*k).to_string()).collect::<BTreeSet<_>>().into_iter().collect()
}

fn object_or_empty(value: Option<&Value>) -> JsonObject {
    match value {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`) and object key order does not
/// matter.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ArenaSpec, DatagridSpec, MieltoSpec, MieltoStatus, NangoSpec};
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap()
    }

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn nango(metadata: Value) -> NangoSpec {
        NangoSpec { provider_config_key: "salesforce".into(), metadata: Some(obj(metadata)), metadata_from: vec![] }
    }

    /// The provider's real merge semantics (docs/providers.md), to check plans end to end.
    fn apply(upstream: &Upstream, write: &Write) -> Upstream {
        match (upstream.clone(), write) {
            (Upstream::Nango { mut metadata }, Write::NangoPatch { metadata: patch }) => {
                // Shallow merge; null is stored, not deleted.
                metadata.extend(patch.clone());
                Upstream::Nango { metadata }
            }
            (Upstream::Nango { .. }, Write::NangoReplace { metadata }) => {
                Upstream::Nango { metadata: metadata.clone() }
            }
            (Upstream::Arena { mut metadata }, Write::ArenaPut { metadata: body }) => {
                for (k, v) in body {
                    if v.is_null() {
                        metadata.remove(k);
                    } else {
                        metadata.insert(k.clone(), v.clone());
                    }
                }
                Upstream::Arena { metadata }
            }
            (Upstream::Mielto { label, status, config }, Write::MieltoPut { label: l, status: s, config: c }) => {
                Upstream::Mielto {
                    label: l.clone().or(label),
                    status: s.clone().or(status),
                    config: c.clone().unwrap_or(config),
                }
            }
            (Upstream::Datagrid { .. }, Write::DatagridPatch { name }) => Upstream::Datagrid { name: name.clone() },
            (u, w) => panic!("write {w:?} does not fit {u:?}"),
        }
    }

    #[test]
    fn in_sync_nango_plans_nothing_and_null_equals_empty() {
        let spec = NangoSpec { provider_config_key: "k".into(), metadata: None, metadata_from: vec![] };
        let p = plan(ProviderBlock::Nango(&spec), &[], &Upstream::nango(Some(&Value::Null))).unwrap();
        assert_eq!(p, Plan::default());
        let spec = nango(json!({"a": 1}));
        let p = plan(
            ProviderBlock::Nango(&spec),
            &keys(&["a"]),
            &Upstream::nango(Some(&json!({"a": 1.0, "webhook": "x"}))),
        )
        .unwrap();
        assert!(p.in_sync(), "1 == 1.0 and a foreign key is not drift: {p:?}");
        assert_eq!(p.managed_keys, keys(&["a"]));
    }

    #[test]
    fn nango_changes_are_a_patch_of_changed_keys_only() {
        let spec = nango(json!({"region": "eu", "mapping": {"x": 1}, "same": true}));
        let up = Upstream::nango(Some(&json!({"region": "us", "same": true, "subscription": "s-1"})));
        let p = plan(ProviderBlock::Nango(&spec), &[], &up).unwrap();
        assert_eq!(p.write, Some(Write::NangoPatch { metadata: obj(json!({"region": "eu", "mapping": {"x": 1}})) }));
        assert_eq!(p.drift, keys(&["mapping", "region"]));
        assert_eq!(p.managed_keys, keys(&["mapping", "region", "same"]));
    }

    #[test]
    fn nango_removal_is_a_replace_of_the_read_object_without_the_removed_key() {
        let spec = nango(json!({"region": "eu"}));
        let up = Upstream::nango(Some(&json!({"region": "us", "old": 1, "subscription": "s-1"})));
        let p = plan(ProviderBlock::Nango(&spec), &keys(&["region", "old"]), &up).unwrap();
        assert_eq!(
            p.write,
            Some(Write::NangoReplace { metadata: obj(json!({"region": "eu", "subscription": "s-1"})) })
        );
        assert_eq!(p.drift, keys(&["old", "region"]));
        assert_eq!(p.managed_keys, keys(&["region"]));
    }

    #[test]
    fn owned_key_already_gone_upstream_needs_no_write() {
        let spec = nango(json!({}));
        let p = plan(ProviderBlock::Nango(&spec), &keys(&["old"]), &Upstream::nango(None)).unwrap();
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn arena_put_carries_changes_and_null_for_removed_keys() {
        let spec = ArenaSpec { metadata: obj(json!({"reviewed": true, "score": 0.95})), metadata_from: vec![] };
        let up = Upstream::arena(Some(&json!({"reviewed": false, "score": 0.95, "old": "x", "theirs": 1})));
        let p = plan(ProviderBlock::Arena(&spec), &keys(&["old", "reviewed"]), &up).unwrap();
        assert_eq!(p.write, Some(Write::ArenaPut { metadata: obj(json!({"reviewed": true, "old": null})) }));
        assert_eq!(p.managed_keys, keys(&["reviewed", "score"]));
    }

    /// Found by the `plan` fuzz target (docs/fuzzing.md): without serde_json's exact float
    /// parsing, `6.480922892492762e-307` written to a provider read back one unit in the
    /// last place off, so the plan wrote the same key on every reconcile.
    #[test]
    fn a_float_written_and_read_back_is_in_sync() {
        for x in [6.480922892492762e-307, 0.1, 1e300, -2.2250738585072014e-308, 5e-324] {
            let spec = ArenaSpec { metadata: obj(json!({ "x": x })), metadata_from: vec![] };
            let first = plan(ProviderBlock::Arena(&spec), &[], &Upstream::arena(None)).unwrap();
            let Some(Write::ArenaPut { metadata }) = &first.write else { panic!("{first:?}") };
            let wire: Value = serde_json::from_slice(&serde_json::to_vec(metadata).unwrap()).unwrap();
            let up = Upstream::arena(Some(&wire));
            let second = plan(ProviderBlock::Arena(&spec), &first.managed_keys, &up).unwrap();
            assert!(second.in_sync() && second.write.is_none(), "{x:e}: {second:?}");
        }
    }

    #[test]
    fn arena_absent_null_and_empty_metadata_are_equal() {
        let spec = ArenaSpec { metadata: Map::new(), metadata_from: vec![] };
        for raw in [None, Some(Value::Null), Some(json!({})), Some(json!({"k": null}))] {
            let p = plan(ProviderBlock::Arena(&spec), &keys(&["k"]), &Upstream::arena(raw.as_ref())).unwrap();
            assert_eq!(p, Plan::default(), "{raw:?}");
        }
    }

    #[test]
    fn mielto_sends_changed_fields_and_whole_config() {
        let spec = MieltoSpec {
            label: Some("Acme".into()),
            status: Some(MieltoStatus::Active),
            config: Some(obj(json!({"channel": "#ops"}))),
            config_from: vec![],
        };
        let up =
            Upstream::mielto(Some("Acme"), Some("inactive"), Some(&json!({"channel": "#old", "old": 1, "theirs": 2})));
        let p = plan(ProviderBlock::Mielto(&spec), &keys(&["config.old", "label"]), &up).unwrap();
        assert_eq!(
            p.write,
            Some(Write::MieltoPut {
                label: None,
                status: Some("active".into()),
                config: Some(obj(json!({"channel": "#ops", "theirs": 2})))
            })
        );
        assert_eq!(p.drift, keys(&["config.channel", "config.old", "status"]));
        assert_eq!(p.managed_keys, keys(&["config.channel", "label", "status"]));
        let only_label = MieltoSpec { label: Some("New".into()), status: None, config: None, config_from: vec![] };
        let p = plan(ProviderBlock::Mielto(&only_label), &[], &up).unwrap();
        assert_eq!(p.write, Some(Write::MieltoPut { label: Some("New".into()), status: None, config: None }));
    }

    #[test]
    fn datagrid_patches_the_name_when_it_differs() {
        let spec = DatagridSpec { name: "Acme Drive".into() };
        let p = plan(ProviderBlock::Datagrid(&spec), &[], &Upstream::datagrid("Old")).unwrap();
        assert_eq!(p.write, Some(Write::DatagridPatch { name: "Acme Drive".into() }));
        assert!(plan(ProviderBlock::Datagrid(&spec), &[], &Upstream::datagrid("Acme Drive")).unwrap().in_sync());
    }

    #[test]
    fn mismatched_provider_is_an_error() {
        let spec = DatagridSpec { name: "x".into() };
        let err = plan(ProviderBlock::Datagrid(&spec), &[], &Upstream::nango(None)).unwrap_err();
        assert_eq!(err.to_string(), "the Connection has a datagrid block but its provider is of type nango");
    }

    #[test]
    fn removal_plans_keep_foreign_keys_and_orphan_unremovable_fields() {
        let up = Upstream::nango(Some(&json!({"a": 1, "theirs": 2})));
        assert_eq!(
            plan_removal(&keys(&["a"]), &up).write,
            Some(Write::NangoReplace { metadata: obj(json!({"theirs": 2})) })
        );
        let up = Upstream::arena(Some(&json!({"a": 1, "theirs": 2})));
        assert_eq!(
            plan_removal(&keys(&["a", "gone"]), &up).write,
            Some(Write::ArenaPut { metadata: obj(json!({"a": null})) })
        );
        let up = Upstream::mielto(Some("L"), Some("active"), Some(&json!({"a": 1, "theirs": 2})));
        let r = plan_removal(&keys(&["config.a", "label", "status"]), &up);
        assert_eq!(
            r.write,
            Some(Write::MieltoPut { label: None, status: None, config: Some(obj(json!({"theirs": 2}))) })
        );
        assert_eq!(r.orphaned, keys(&["label", "status"]));
        let r = plan_removal(&keys(&["name"]), &Upstream::datagrid("x"));
        assert_eq!(r, Removal { write: None, orphaned: keys(&["name"]) });
    }

    #[test]
    fn describe_names_old_and_new_values_and_foreign_keys() {
        let spec = nango(json!({"region": "eu", "tier": 2, "same": true}));
        let up = Upstream::nango(Some(&json!({"region": "us", "same": true, "old": 1, "webhook": "w"})));
        let d = describe(ProviderBlock::Nango(&spec), &keys(&["old", "region"]), &up).unwrap();
        assert_eq!(
            d.changes,
            vec![
                ("old".to_string(), Change::Remove { old: json!(1) }),
                ("region".to_string(), Change::Update { old: json!("us"), new: json!("eu") }),
                ("tier".to_string(), Change::Add { new: json!(2) }),
            ]
        );
        assert_eq!(d.unchanged, keys(&["same"]));
        assert_eq!(d.foreign, keys(&["webhook"]));
        let m = MieltoSpec {
            label: Some("New".into()),
            status: None,
            config: Some(obj(json!({"a": 1}))),
            config_from: vec![],
        };
        let up = Upstream::mielto(Some("Old"), Some("active"), Some(&json!({"a": 1, "theirs": 2})));
        let d = describe(ProviderBlock::Mielto(&m), &[], &up).unwrap();
        assert_eq!(d.changes, vec![("label".to_string(), Change::Update { old: json!("Old"), new: json!("New") })]);
        assert_eq!(d.unchanged, keys(&["config.a"]));
        assert_eq!(d.foreign, keys(&["config.theirs", "status"]));
    }

    // ---- property tests -------------------------------------------------------------

    fn key() -> impl Strategy<Value = String> {
        // A small alphabet makes desired, managed and foreign keys collide often.
        "[a-f]{1,2}"
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            (-3i64..3).prop_map(|n| json!(n as f64 + 0.5)),
            "[xy]{0,2}".prop_map(Value::from),
        ]
    }

    fn any_json() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map(key(), inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
                Just(Value::Null),
            ]
        })
    }

    fn map_of(values: impl Strategy<Value = Value>) -> impl Strategy<Value = JsonObject> {
        prop::collection::btree_map(key(), values, 0..5).prop_map(|m| m.into_iter().collect())
    }

    fn key_list() -> impl Strategy<Value = Vec<String>> {
        prop::collection::btree_set(key(), 0..5).prop_map(|s| s.into_iter().collect())
    }

    fn mielto_status() -> impl Strategy<Value = Option<MieltoStatus>> {
        prop_oneof![
            Just(None),
            Just(Some(MieltoStatus::Active)),
            Just(Some(MieltoStatus::Inactive)),
            Just(Some(MieltoStatus::Error)),
        ]
    }

    /// (desired block, managed keys, upstream) for every provider.
    #[derive(Debug, Clone)]
    enum Case {
        Nango(NangoSpec, Vec<String>, Upstream),
        Arena(ArenaSpec, Vec<String>, Upstream),
        Mielto(MieltoSpec, Vec<String>, Upstream),
        Datagrid(DatagridSpec, Upstream),
    }

    impl Case {
        fn block(&self) -> ProviderBlock<'_> {
            match self {
                Case::Nango(s, ..) => ProviderBlock::Nango(s),
                Case::Arena(s, ..) => ProviderBlock::Arena(s),
                Case::Mielto(s, ..) => ProviderBlock::Mielto(s),
                Case::Datagrid(s, _) => ProviderBlock::Datagrid(s),
            }
        }
        fn managed(&self) -> Vec<String> {
            match self {
                Case::Nango(_, m, _) | Case::Arena(_, m, _) => m.clone(),
                Case::Mielto(_, m, _) => m.iter().map(|k| format!("config.{k}")).chain(["label".to_string()]).collect(),
                Case::Datagrid(..) => vec![],
            }
        }
        fn upstream(&self) -> &Upstream {
            match self {
                Case::Nango(.., u) | Case::Arena(.., u) | Case::Mielto(.., u) | Case::Datagrid(_, u) => u,
            }
        }
        /// Upstream keys (of the map the plan manages) and the desired keys.
        fn desired_keys(&self) -> BTreeSet<String> {
            match self {
                Case::Nango(s, ..) => s.metadata.clone().unwrap_or_default().keys().cloned().collect(),
                Case::Arena(s, ..) => s.metadata.keys().cloned().collect(),
                Case::Mielto(s, ..) => s.config.clone().unwrap_or_default().keys().cloned().collect(),
                Case::Datagrid(..) => BTreeSet::new(),
            }
        }
    }

    fn managed_map(u: &Upstream) -> JsonObject {
        match u {
            Upstream::Nango { metadata } | Upstream::Arena { metadata } => metadata.clone(),
            Upstream::Mielto { config, .. } => config.clone(),
            Upstream::Datagrid { .. } => Map::new(),
        }
    }

    fn case() -> impl Strategy<Value = Case> {
        prop_oneof![
            (prop::option::of(map_of(any_json())), key_list(), prop::option::of(map_of(any_json()))).prop_map(
                |(want, managed, up)| {
                    let spec = NangoSpec { provider_config_key: "k".into(), metadata: want, metadata_from: vec![] };
                    Case::Nango(spec, managed, Upstream::nango(up.map(Value::Object).as_ref()))
                }
            ),
            (map_of(scalar()), key_list(), map_of(scalar())).prop_map(|(want, managed, up)| {
                Case::Arena(
                    ArenaSpec { metadata: want, metadata_from: vec![] },
                    managed,
                    Upstream::arena(Some(&Value::Object(up))),
                )
            }),
            (
                prop::option::of("[AB]"),
                mielto_status(),
                prop::option::of(map_of(any_json())),
                key_list(),
                (prop::option::of("[AB]"), prop::option::of("active|inactive"), map_of(any_json())),
            )
                .prop_map(|(label, status, config, managed, (ul, us, uc))| {
                    let spec = MieltoSpec { label, status, config, config_from: vec![] };
                    Case::Mielto(
                        spec,
                        managed,
                        Upstream::mielto(ul.as_deref(), us.as_deref(), Some(&Value::Object(uc))),
                    )
                }),
            ("[AB]", "[AB]")
                .prop_map(|(want, up)| Case::Datagrid(DatagridSpec { name: want }, Upstream::datagrid(&up))),
        ]
    }

    proptest! {
        /// Applying the plan with the provider's own merge semantics and planning again
        /// yields nothing to do.
        #[test]
        fn plans_are_idempotent(case in case()) {
            let first = plan(case.block(), &case.managed(), case.upstream()).unwrap();
            let after = match &first.write { Some(w) => apply(case.upstream(), w), None => case.upstream().clone() };
            let second = plan(case.block(), &first.managed_keys, &after).unwrap();
            prop_assert_eq!(second.write, None);
            prop_assert!(second.drift.is_empty());
            prop_assert_eq!(second.managed_keys, first.managed_keys);
        }

        /// The description names exactly the keys the plan changes.
        #[test]
        fn description_matches_the_plan(case in case()) {
            let p = plan(case.block(), &case.managed(), case.upstream()).unwrap();
            let d = describe(case.block(), &case.managed(), case.upstream()).unwrap();
            let described: Vec<String> = d.changes.iter().map(|(k, _)| k.clone()).collect();
            prop_assert_eq!(described, p.drift.clone());
            prop_assert_eq!(d.changes.is_empty(), p.write.is_none());
            for (k, _) in &d.changes {
                prop_assert!(!d.unchanged.contains(k) && !d.foreign.contains(k));
            }
        }

        /// Keys neither declared nor owned are never touched.
        #[test]
        fn foreign_keys_are_untouched(case in case()) {
            let p = plan(case.block(), &case.managed(), case.upstream()).unwrap();
            let after = match &p.write { Some(w) => apply(case.upstream(), w), None => case.upstream().clone() };
            let owned: BTreeSet<String> = case.desired_keys().into_iter()
                .chain(case.managed().iter().map(|k| k.strip_prefix("config.").unwrap_or(k).to_string()))
                .collect();
            let before = managed_map(case.upstream());
            let now = managed_map(&after);
            for (k, v) in &before {
                if !owned.contains(k) {
                    prop_assert_eq!(now.get(k), Some(v), "foreign key {} changed", k);
                }
            }
            for k in now.keys() {
                prop_assert!(before.contains_key(k) || owned.contains(k), "foreign key {} appeared", k);
            }
        }

        /// An owned key that the spec no longer declares is gone upstream afterwards
        /// (absent, not null), and every declared key has its desired value.
        #[test]
        fn owned_undeclared_keys_are_removed(case in case()) {
            let p = plan(case.block(), &case.managed(), case.upstream()).unwrap();
            let after = match &p.write { Some(w) => apply(case.upstream(), w), None => case.upstream().clone() };
            let now = managed_map(&after);
            let desired = case.desired_keys();
            for k in case.managed() {
                let k = k.strip_prefix("config.").unwrap_or(&k).to_string();
                if !desired.contains(&k) && k != "label" {
                    prop_assert!(!now.contains_key(&k), "owned key {} still upstream", k);
                }
            }
        }

        /// The deletion plan removes every owned key and keeps everything else.
        #[test]
        fn removal_removes_exactly_the_owned_keys(case in case()) {
            let r = plan_removal(&case.managed(), case.upstream());
            let after = match &r.write { Some(w) => apply(case.upstream(), w), None => case.upstream().clone() };
            let owned: BTreeSet<String> = case.managed().iter().map(|k| k.strip_prefix("config.").unwrap_or(k).to_string()).collect();
            let before = managed_map(case.upstream());
            let now = managed_map(&after);
            for (k, v) in &before {
                if owned.contains(k) { prop_assert!(!now.contains_key(k)); } else { prop_assert_eq!(now.get(k), Some(v)); }
            }
        }
    }
}
