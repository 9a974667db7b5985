//! A connection read (`GET`) as each provider client turns it into the plan's upstream
//! state (`nango::connection` etc.), and planned against: a spec that declares exactly what
//! was read is in sync, before and after the state goes over the wire again.
//!
//! Input: the 2xx body (JSON text).
#![no_main]

use connection_operator::api::{ArenaSpec, DatagridSpec, MieltoSpec, NangoSpec, ProviderBlock};
use connection_operator::diff::{Upstream, plan};
use connection_operator::providers::fuzzing::Provider;
use fuzzing::merge::over_the_wire;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    // A body that is not JSON never reaches these parsers (`interpret` refuses it).
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    for provider in Provider::ALL {
        let read = provider.connection(&body);
        let Ok(upstream) = read else {
            let readable = match provider {
                Provider::Datagrid => body.get("name").is_some_and(Value::is_string),
                _ => body.is_object(),
            };
            assert!(!readable, "{provider:?}: a readable connection refused: {read:?}");
            continue;
        };
        assert!(body.is_object(), "{provider:?}: read a connection from {body}");
        in_sync_with_itself(&upstream);
        in_sync_with_itself(&over_the_wire(&upstream));
    }
});

/// A spec equal to what was read, owning every key, plans nothing.
fn in_sync_with_itself(upstream: &Upstream) {
    let (spec, managed): (Value, Vec<String>) = match upstream {
        Upstream::Nango { metadata } => {
            (json!({"providerConfigKey": "k", "metadata": metadata}), metadata.keys().cloned().collect())
        }
        Upstream::Arena { metadata } => {
            assert!(metadata.values().all(|v| !v.is_null()), "Are.na nulls are absent keys: {metadata:?}");
            (json!({"metadata": metadata}), metadata.keys().cloned().collect())
        }
        Upstream::Mielto { label, config, .. } => (
            json!({"label": label, "config": config}),
            config.keys().map(|k| format!("config.{k}")).chain(label.iter().map(|_| "label".into())).collect(),
        ),
        Upstream::Datagrid { name } => (json!({"name": name}), vec!["name".into()]),
    };
    let (nango, arena, mielto, datagrid): (NangoSpec, ArenaSpec, MieltoSpec, DatagridSpec);
    let block = match upstream {
        Upstream::Nango { .. } => {
            nango = serde_json::from_value(spec).unwrap();
            ProviderBlock::Nango(&nango)
        }
        Upstream::Arena { .. } => {
            arena = serde_json::from_value(spec).unwrap();
            ProviderBlock::Arena(&arena)
        }
        Upstream::Mielto { .. } => {
            mielto = serde_json::from_value(spec).unwrap();
            ProviderBlock::Mielto(&mielto)
        }
        Upstream::Datagrid { .. } => {
            datagrid = serde_json::from_value(spec).unwrap();
            ProviderBlock::Datagrid(&datagrid)
        }
    };
    let p = plan(block, &managed, upstream).expect("same provider");
    assert!(p.in_sync() && p.drift.is_empty(), "what was read is not in sync with itself: {p:?} for {upstream:?}");
}
