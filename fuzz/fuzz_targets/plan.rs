//! The plan engine (`diff::plan`, `diff::plan_removal`) on arbitrary (spec, managed keys,
//! upstream state) of every provider, the write applied with the provider's own merge
//! semantics (fuzzing::merge) and read back over the wire:
//! - a key neither declared nor managed (foreign) is never changed, removed or added;
//! - applying the plan and planning again gives nothing to do (a fixed point), and the
//!   managed keys recorded after the write are those the second plan reports;
//! - a key managed but no longer declared is gone afterwards;
//! - the deletion plan removes exactly the managed keys, and is a fixed point too.
//!
//! The spec goes through `desired::merge` first, with `metadataFrom`/`configFrom` sources
//! (ConfigMaps and Secrets, found, missing or forbidden, optional or not, named twice now
//! and then) read after the rest of the case, so that older corpus inputs still decode:
//! - the merge fails exactly when a source is named twice, a required one is missing or
//!   forbidden, or a value is not UTF-8; otherwise inline keys win, a later source wins over
//!   an earlier one, and every merged key has its origin recorded;
//! - no Secret value of four characters or more survives `redact`;
//! - the merged spec is what is planned, so source keys are owned like inline ones.
//!
//! Input: bytes read by `arbitrary` (keys from a small alphabet so that declared, managed,
//! sourced and foreign keys collide; values of every JSON kind, numbers of every
//! representation).
#![no_main]

use std::collections::BTreeSet;

use arbitrary::{Arbitrary, Result, Unstructured};
use std::sync::Arc;

use connection_operator::api::{ArenaSpec, ConnectionSpec, DatagridSpec, MieltoSpec, NangoSpec, ProviderBlock};
use connection_operator::desired::{Fetched, ReferenceError, SECRET_PLACEHOLDER, merge};
use connection_operator::diff::{Upstream, plan, plan_removal};
use fuzzing::merge::{apply, keyed, over_the_wire};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value, json};

/// Keys: few, so that they collide; `config.`-prefixed and field names for Mielto's
/// managed keys; and now and then any string.
fn key(u: &mut Unstructured<'_>) -> Result<String> {
    const KEYS: &[&str] = &["a", "b", "c", "config.a", "config.b", "config.", "label", "status", "name", ""];
    Ok(match u.int_in_range(0..=KEYS.len())? {
        i if i < KEYS.len() => KEYS[i].to_string(),
        _ => String::arbitrary(u)?,
    })
}

fn number(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=6)? {
        0 => json!(u.int_in_range(-2i64..=2)?),
        1 => json!(u.int_in_range(-2i64..=2)? as f64),
        2 => json!(i64::arbitrary(u)?),
        3 => json!(u64::arbitrary(u)?),
        4 => json!(u.int_in_range(0u64..=3)? + (1 << 53)),
        5 => json!(-0.0),
        _ => Number::from_f64(f64::arbitrary(u)?).map_or(Value::Null, Value::Number),
    })
}

fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 4 } else { 6 };
    Ok(match u.int_in_range(0..=kinds)? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => number(u)?,
        3 => Value::String(["", "x", "y"][u.int_in_range(0..=2)?].to_string()),
        4 => Value::String(String::arbitrary(u)?),
        5 => Value::Array((0..u.int_in_range(0..=3)?).map(|_| value(u, depth - 1)).collect::<Result<_>>()?),
        _ => Value::Object(object(u, depth - 1)?),
    })
}

fn object(u: &mut Unstructured<'_>, depth: u32) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for _ in 0..u.int_in_range(0..=5)? {
        map.insert(key(u)?, value(u, depth)?);
    }
    Ok(map)
}

fn optional<T>(u: &mut Unstructured<'_>, f: impl FnOnce(&mut Unstructured<'_>) -> Result<T>) -> Result<Option<T>> {
    Ok(if bool::arbitrary(u)? { Some(f(u)?) } else { None })
}

fn short(u: &mut Unstructured<'_>, of: &[&str]) -> Result<String> {
    Ok(of[u.int_in_range(0..=of.len() - 1)?].to_string())
}

/// The spec as the API server hands it over (JSON), so the target follows the CRD types.
struct Case {
    /// The provider block's field in the Connection spec.
    field: &'static str,
    spec: Value,
    managed: Vec<String>,
    upstream: Upstream,
}

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    let managed = (0..u.int_in_range(0..=6)?).map(|_| key(u)).collect::<Result<_>>()?;
    let upstream_object = |u: &mut Unstructured<'_>| -> Result<Value> {
        // What the provider stores, as it would be read: absent, null or an object.
        Ok(match u.int_in_range(0..=5)? {
            0 => Value::Null,
            _ => Value::Object(object(u, 2)?),
        })
    };
    Ok(match u.int_in_range(0..=3)? {
        0 => Case {
            field: "nango",
            spec: json!({"providerConfigKey": "k", "metadata": optional(u, |u| object(u, 2))?}),
            managed,
            upstream: Upstream::nango(Some(&upstream_object(u)?)),
        },
        1 => Case {
            field: "arena",
            spec: json!({"metadata": object(u, 1)?}),
            managed,
            upstream: Upstream::arena(Some(&upstream_object(u)?)),
        },
        2 => {
            let statuses = ["active", "inactive", "testing", "error", "expired"];
            let spec = json!({
                "label": optional(u, |u| short(u, &["A", "B", ""]))?,
                "status": optional(u, |u| short(u, &statuses))?,
                "config": optional(u, |u| object(u, 2))?,
            });
            let label = optional(u, |u| short(u, &["A", "B", ""]))?;
            let status = optional(u, |u| short(u, &["active", "inactive", "unknown"]))?;
            let config = upstream_object(u)?;
            Case {
                field: "mielto",
                spec,
                managed,
                upstream: Upstream::mielto(label.as_deref(), status.as_deref(), Some(&config)),
            }
        }
        _ => Case {
            field: "datagrid",
            spec: json!({"name": short(u, &["A", "B", ""])?}),
            managed,
            upstream: Upstream::datagrid(&short(u, &["A", "B", ""])?),
        },
    })
}

/// One `metadataFrom`/`configFrom` entry and what reading it gave.
struct Source {
    secret: bool,
    name: String,
    optional: bool,
    fetched: Fetched,
}

fn sources(u: &mut Unstructured<'_>) -> Result<Vec<Source>> {
    (0..u.int_in_range(0..=3)?)
        .map(|_| {
            let (secret, name, optional) = (bool::arbitrary(u)?, short(u, &["s", "t"])?, bool::arbitrary(u)?);
            let fetched = match u.int_in_range(0..=5)? {
                0 => Fetched::NotFound,
                1 => Fetched::Forbidden,
                _ => {
                    let mut data = std::collections::BTreeMap::new();
                    for _ in 0..u.int_in_range(0..=4)? {
                        let bytes = match u.int_in_range(0..=3)? {
                            0 => b"x".to_vec(),
                            1 => b"secret-value".to_vec(),
                            2 => String::arbitrary(u)?.into_bytes(),
                            _ => Vec::<u8>::arbitrary(u)?,
                        };
                        data.insert(key(u)?, bytes);
                    }
                    Fetched::Found(Arc::new(data))
                }
            };
            Ok(Source { secret, name, optional, fetched })
        })
        .collect()
}

/// The merge's outcome, checked against the sources; the merged provider block on success.
fn merged(case: &Case, sources: &[Source]) -> Option<Value> {
    let mut block = case.spec.clone();
    let list_field = if case.field == "mielto" { "configFrom" } else { "metadataFrom" };
    if case.field != "datagrid" && !sources.is_empty() {
        let list: Vec<Value> = sources
            .iter()
            .map(|s| {
                let r = json!({"name": s.name, "optional": s.optional});
                if s.secret { json!({"secretRef": r}) } else { json!({"configMapRef": r}) }
            })
            .collect();
        block[list_field] = Value::Array(list);
    }
    let spec: ConnectionSpec = serde_json::from_value(json!({
        "providerRef": {"name": "p"},
        "connectionId": "c",
        case.field: block,
    }))
    .unwrap();
    // Datagrid has no sources: nothing is read for it.
    let sources = if case.field == "datagrid" { &[][..] } else { sources };
    let fetched: Vec<Fetched> = sources.iter().map(|s| s.fetched.clone()).collect();
    let result = merge(&spec, "ns", &fetched);

    let duplicate =
        sources.iter().enumerate().any(|(i, s)| sources[..i].iter().any(|t| t.secret == s.secret && t.name == s.name));
    // A forbidden source fails the merge even when optional: it may exist.
    let missing = sources.iter().any(|s| match s.fetched {
        Fetched::NotFound => !s.optional,
        Fetched::Forbidden => true,
        Fetched::Found(_) => false,
    });
    let not_text = sources.iter().any(|s| match &s.fetched {
        Fetched::Found(data) => data.values().any(|v| std::str::from_utf8(v).is_err()),
        _ => false,
    });
    let desired = match result {
        Err(e) => {
            match &e {
                ReferenceError::Duplicate { .. } => assert!(duplicate, "{e}"),
                ReferenceError::NotFound { .. } | ReferenceError::Forbidden { .. } => {
                    assert!(!duplicate && missing, "{e}")
                }
                ReferenceError::NotText { .. } => assert!(!duplicate && not_text, "{e}"),
            }
            // Reported in list order: the first bad source fails the merge, whichever it is.
            return None;
        }
        Ok(desired) => {
            assert!(!duplicate && !missing && !not_text, "merged although a source is bad");
            desired
        }
    };
    let merged = serde_json::to_value(&desired.spec).unwrap()[case.field].clone();
    let map_field = if case.field == "mielto" { "config" } else { "metadata" };
    let prefix = if case.field == "mielto" { "config." } else { "" };
    let inline = case.spec.get(map_field).and_then(Value::as_object);
    let map = merged.get(map_field).and_then(Value::as_object);
    // Expected: the sources in order, a later one winning, then the inline keys.
    let mut want = Map::new();
    for s in sources {
        if let Fetched::Found(data) = &s.fetched {
            for (k, v) in data.iter() {
                want.insert(k.clone(), Value::String(String::from_utf8(v.clone()).unwrap()));
            }
        }
    }
    for (k, v) in inline.into_iter().flatten() {
        want.insert(k.clone(), v.clone());
    }
    if case.field != "datagrid" {
        assert_eq!(map.cloned().unwrap_or_default(), want, "merged {map_field}");
        for k in want.keys() {
            assert!(desired.origins.contains_key(&format!("{prefix}{k}")), "no origin for {k:?}");
        }
    }
    // What a message echoes of a Secret value is hidden.
    for s in sources.iter().filter(|s| s.secret) {
        if let Fetched::Found(data) = &s.fetched {
            for v in data.values().filter_map(|v| std::str::from_utf8(v).ok()) {
                if v.chars().count() >= 4 && !v.contains('\0') {
                    // The placeholder itself may spell part of a value ("cret"): look past it.
                    let text = format!("upstream said: {v}.");
                    let shown = desired.redact(&text).replace(SECRET_PLACEHOLDER, "\0");
                    assert!(!shown.contains(v), "Secret value {v:?} shown: {shown:?}");
                }
            }
        }
    }
    Some(merged)
}

/// The keyed map's key a managed key names (Mielto's `config.K` is config key K).
fn owned_key(upstream: &Upstream, managed: &str) -> Option<String> {
    match upstream {
        Upstream::Mielto { .. } => managed.strip_prefix("config.").map(str::to_string),
        Upstream::Datagrid { .. } => None,
        _ => Some(managed.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(case) = case(&mut u) else { return };
    let Ok(sources) = sources(&mut u) else { return };
    let Some(spec) = merged(&case, &sources) else { return };
    // What a reconcile reads: the stored state, over the wire.
    let upstream = over_the_wire(&case.upstream);
    let (nango, arena, mielto, datagrid): (NangoSpec, ArenaSpec, MieltoSpec, DatagridSpec);
    let (block, declared): (ProviderBlock<'_>, BTreeSet<String>) = match &upstream {
        Upstream::Nango { .. } => {
            nango = serde_json::from_value(spec).unwrap();
            let keys = nango.metadata.iter().flat_map(|m| m.keys().cloned()).collect();
            (ProviderBlock::Nango(&nango), keys)
        }
        Upstream::Arena { .. } => {
            arena = serde_json::from_value(spec).unwrap();
            // A null is no declaration (admission refuses it; the plan ignores it).
            let keys = arena.metadata.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()).collect();
            (ProviderBlock::Arena(&arena), keys)
        }
        Upstream::Mielto { .. } => {
            mielto = serde_json::from_value(spec).unwrap();
            let keys = mielto.config.iter().flat_map(|m| m.keys().cloned()).collect();
            (ProviderBlock::Mielto(&mielto), keys)
        }
        Upstream::Datagrid { .. } => {
            datagrid = serde_json::from_value(spec).unwrap();
            (ProviderBlock::Datagrid(&datagrid), BTreeSet::new())
        }
    };
    let owned: BTreeSet<String> =
        declared.iter().cloned().chain(case.managed.iter().filter_map(|k| owned_key(&upstream, k))).collect();

    // Planning against another provider's state is refused, not guessed at.
    let other = match upstream {
        Upstream::Datagrid { .. } => Upstream::nango(None),
        _ => Upstream::datagrid("x"),
    };
    assert!(plan(block, &case.managed, &other).is_err());

    let first = plan(block, &case.managed, &upstream).expect("same provider");
    let after = match &first.write {
        Some(write) => over_the_wire(&apply(&upstream, write)),
        None => upstream.clone(),
    };
    assert_eq!(
        first.write.is_none(),
        first.drift.is_empty(),
        "drift {:?} and write {:?} disagree",
        first.drift,
        first.write
    );

    // Foreign keys: untouched, none added.
    let (before_map, after_map) = (keyed(&upstream), keyed(&after));
    for (k, v) in &before_map {
        if !owned.contains(k) {
            assert_eq!(after_map.get(k), Some(v), "foreign key {k:?} changed by {:?}", first.write);
        }
    }
    for k in after_map.keys() {
        assert!(before_map.contains_key(k) || declared.contains(k), "key {k:?} added by {:?}", first.write);
    }
    // Fields the spec does not declare are left as they are.
    match (&upstream, &after, block) {
        (
            Upstream::Mielto { label, status, .. },
            Upstream::Mielto { label: l, status: s, .. },
            ProviderBlock::Mielto(spec),
        ) => {
            assert!(spec.label.is_some() || label == l, "undeclared label changed");
            assert!(spec.status.is_some() || status == s, "undeclared status changed");
        }
        (Upstream::Datagrid { name }, Upstream::Datagrid { name: n }, ProviderBlock::Datagrid(spec)) => {
            assert!(name == n || *n == spec.name);
        }
        _ => {}
    }
    // Managed keys no longer declared are gone.
    for k in case.managed.iter().filter_map(|k| owned_key(&upstream, k)) {
        if !declared.contains(&k) {
            assert!(!after_map.contains_key(&k), "managed key {k:?} still upstream after {:?}", first.write);
        }
    }

    // A fixed point: the next reconcile, with the keys recorded after the write, has
    // nothing to do and records the same keys.
    let second = plan(block, &first.managed_keys, &after).expect("same provider");
    assert!(
        second.write.is_none() && second.drift.is_empty(),
        "not a fixed point: {:?} then {:?} (drift {:?})",
        first.write,
        second.write,
        second.drift
    );
    assert_eq!(second.managed_keys, first.managed_keys);

    // Deletion (policy Delete) removes exactly the managed keys and is a fixed point.
    let removal = plan_removal(&case.managed, &upstream);
    let removed = match &removal.write {
        Some(write) => over_the_wire(&apply(&upstream, write)),
        None => upstream.clone(),
    };
    let managed: BTreeSet<String> = case.managed.iter().filter_map(|k| owned_key(&upstream, k)).collect();
    let removed_map = keyed(&removed);
    for (k, v) in &before_map {
        if managed.contains(k) {
            assert!(!removed_map.contains_key(k), "managed key {k:?} kept by {:?}", removal.write);
        } else {
            assert_eq!(removed_map.get(k), Some(v), "key {k:?} changed by the removal {:?}", removal.write);
        }
    }
    assert_eq!(removed_map.len(), before_map.keys().filter(|k| !managed.contains(*k)).count());
    assert_eq!(plan_removal(&case.managed, &removed).write, None, "the removal is not a fixed point");
});
