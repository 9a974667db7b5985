//! What each provider does with a write, as docs/providers.md describes it (and the sandbox's
//! emulators implement): the plan engine's writes applied to the stored state, then read
//! back over the wire (JSON text), as the next reconcile reads it.

use connection_operator::diff::{Upstream, Write};
use serde_json::{Map, Value};

/// Upstream after `write`, as the provider stores it.
pub fn apply(upstream: &Upstream, write: &Write) -> Upstream {
    match (upstream.clone(), write) {
        // PATCH merges shallowly and stores null (docs/providers.md, Nango).
        (Upstream::Nango { mut metadata }, Write::NangoPatch { metadata: patch }) => {
            metadata.extend(patch.clone());
            Upstream::Nango { metadata }
        }
        // POST replaces the whole object.
        (Upstream::Nango { .. }, Write::NangoReplace { metadata }) => Upstream::Nango { metadata: metadata.clone() },
        // PUT merges; a null deletes the key (§3).
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
        // Each supplied field replaces the stored one, `config` whole (§2).
        (Upstream::Mielto { label, status, config }, Write::MieltoPut { label: l, status: s, config: c }) => {
            Upstream::Mielto {
                label: l.clone().or(label),
                status: s.clone().or(status),
                config: c.clone().unwrap_or(config),
            }
        }
        // PATCH sets the name (§4).
        (Upstream::Datagrid { .. }, Write::DatagridPatch { name }) => Upstream::Datagrid { name: name.clone() },
        (u, w) => panic!("the plan wrote {w:?} to a {u:?} connection"),
    }
}

/// `upstream` as the provider serves it (JSON text) and the client reads it back: what a
/// reconcile plans against.
pub fn over_the_wire(upstream: &Upstream) -> Upstream {
    let reread = |v: Value| -> Value {
        let text = serde_json::to_vec(&v).expect("a JSON value serialises");
        serde_json::from_slice(&text).expect("serialised JSON parses")
    };
    match upstream {
        Upstream::Nango { metadata } => Upstream::nango(Some(&reread(Value::Object(metadata.clone())))),
        Upstream::Arena { metadata } => Upstream::arena(Some(&reread(Value::Object(metadata.clone())))),
        Upstream::Mielto { label, status, config } => {
            Upstream::mielto(label.as_deref(), status.as_deref(), Some(&reread(Value::Object(config.clone()))))
        }
        Upstream::Datagrid { name } => Upstream::datagrid(name),
    }
}

/// The key-value map of `upstream` that keys are owned in (Nango and Are.na metadata,
/// Mielto config); empty for Datagrid.
pub fn keyed(upstream: &Upstream) -> Map<String, Value> {
    match upstream {
        Upstream::Nango { metadata } | Upstream::Arena { metadata } => metadata.clone(),
        Upstream::Mielto { config, .. } => config.clone(),
        Upstream::Datagrid { .. } => Map::new(),
    }
}
