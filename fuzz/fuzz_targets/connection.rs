//! A connection read (`GET`) as each provider client turns it into the plan's upstream
//! state (`nango::connection` etc.), and planned against: a spec that declares exactly what
//! was read is in sync, before and after the state goes over the wire again, whether the
//! keys are inline or come from a `metadataFrom`/`configFrom` ConfigMap.
//!
//! Input: the 2xx body (JSON text).
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use connection_operator::api::ConnectionSpec;
use connection_operator::desired::{Fetched, merge};
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

/// A spec equal to what was read, owning every key, plans nothing: with every key inline,
/// and again with the string-valued keys moved to a `metadataFrom`/`configFrom` ConfigMap
/// (as shared settings would declare them), merged in as the controller merges them.
fn in_sync_with_itself(upstream: &Upstream) {
    let (field, spec, managed): (&str, Value, Vec<String>) = match upstream {
        Upstream::Nango { metadata } => {
            ("nango", json!({"providerConfigKey": "k", "metadata": metadata}), metadata.keys().cloned().collect())
        }
        Upstream::Arena { metadata } => {
            assert!(metadata.values().all(|v| !v.is_null()), "Are.na nulls are absent keys: {metadata:?}");
            ("arena", json!({"metadata": metadata}), metadata.keys().cloned().collect())
        }
        Upstream::Mielto { label, config, .. } => (
            "mielto",
            json!({"label": label, "config": config}),
            config.keys().map(|k| format!("config.{k}")).chain(label.iter().map(|_| "label".into())).collect(),
        ),
        Upstream::Datagrid { name } => ("datagrid", json!({"name": name}), vec!["name".into()]),
    };
    planned_in_sync(field, spec.clone(), &[], &managed, upstream);
    if field == "datagrid" {
        return;
    }
    // The same keys, the string ones from a ConfigMap.
    let (map_field, list_field) =
        if field == "mielto" { ("config", "configFrom") } else { ("metadata", "metadataFrom") };
    let mut spec = spec;
    let Some(map) = spec.get_mut(map_field).and_then(Value::as_object_mut) else { return };
    let strings: Vec<String> = map.iter().filter(|(_, v)| v.is_string()).map(|(k, _)| k.clone()).collect();
    if strings.is_empty() {
        return;
    }
    let mut data = BTreeMap::new();
    for k in strings {
        let Some(Value::String(v)) = map.remove(&k) else { unreachable!() };
        data.insert(k, v.into_bytes());
    }
    spec[list_field] = json!([{"configMapRef": {"name": "shared"}}]);
    planned_in_sync(field, spec, &[Fetched::Found(Arc::new(data))], &managed, upstream);
}

fn planned_in_sync(field: &str, block: Value, fetched: &[Fetched], managed: &[String], upstream: &Upstream) {
    let spec: ConnectionSpec =
        serde_json::from_value(json!({"providerRef": {"name": "p"}, "connectionId": "c", field: block})).unwrap();
    let desired = merge(&spec, "ns", fetched).expect("one ConfigMap, found, of text");
    let block = desired.spec.block().expect("one provider block");
    let p = plan(block, managed, upstream).expect("same provider");
    assert!(p.in_sync() && p.drift.is_empty(), "what was read is not in sync with itself: {p:?} for {upstream:?}");
}
