//! `meta.k8s.io/v1` Table rendering for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
//! (what `kubectl get` asks for): custom resources through their
//! `additionalPrinterColumns` (apiextensions `tableconvertor`), built-in kinds through the
//! columns kube-apiserver's printers define (`pkg/printers/internalversion`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::builtin_columns;
use super::column::{CREATION_TIMESTAMP_DESCRIPTION, NAME_DESCRIPTION, human_duration};
pub use super::column::{Column, Computed};
use super::jsonpath;

/// Whether rows carry the object (`includeObject=Object`), only its metadata
/// (`Metadata`, the default: a PartialObjectMetadata) or nothing (`None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

/// Columns from a CRD version's `additionalPrinterColumns` (NAME first; AGE when the CRD
/// declares none), or the default columns of a built-in kind.
pub fn columns_for(crd: Option<&Value>, version: &str, kind: &str) -> Vec<Column> {
    let Some(crd) = crd else {
        return builtin_columns::columns(kind);
    };
    let declared = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"] == version))
        .and_then(|v| v["additionalPrinterColumns"].as_array())
        .filter(|cols| !cols.is_empty())
        .cloned()
        // apiextensions serves an Age column when a version declares none.
        .unwrap_or_else(|| {
            vec![json!({"name": "Age", "type": "date", "description": CREATION_TIMESTAMP_DESCRIPTION, "jsonPath": ".metadata.creationTimestamp"})]
        });
    let mut cols = vec![Column::computed("Name", "string", "name", 0, NAME_DESCRIPTION, Computed::Name)];
    for c in declared {
        let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
        let json_path = s("jsonPath");
        let description = match s("description") {
            d if d.is_empty() => {
                format!("Custom resource definition column (in JSONPath format): {json_path}")
            }
            d => d,
        };
        cols.push(Column {
            name: s("name"),
            type_: s("type"),
            format: s("format"),
            description,
            priority: c["priority"].as_i64().unwrap_or(0),
            json_path,
            computed: None,
        });
    }
    cols
}

/// A Table for `objects`; the caller fills `metadata.resourceVersion`/`continue`.
pub fn render(columns: &[Column], objects: &[Value], include: IncludeObject, now: DateTime<Utc>) -> Value {
    let defs: Vec<Value> = columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}))
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = columns.iter().map(|c| cell(c, o, now)).collect();
            let object = match include {
                IncludeObject::None => Value::Null,
                IncludeObject::Object => o.clone(),
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": defs, "rows": rows})
}

fn cell(c: &Column, obj: &Value, now: DateTime<Utc>) -> Value {
    if let Some(computed) = &c.computed {
        return builtin_columns::cell(computed, obj, now);
    }
    // apiextensions `tableconvertor`: only the first result is shown; nothing → null.
    let Some(first) = jsonpath::find(obj, &c.json_path).and_then(|r| r.first().copied().cloned()) else {
        return Value::Null;
    };
    match c.type_.as_str() {
        // String columns print whatever was found with Go's %v.
        "string" => Value::String(go_print(&first)),
        "integer" => match &first {
            Value::Number(n) => {
                n.as_i64().map(Value::from).or_else(|| n.as_f64().map(|f| Value::from(f as i64))).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        },
        "number" => match &first {
            Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "boolean" => {
            if first.is_boolean() {
                first
            } else {
                Value::Null
            }
        }
        "date" => match first.as_str() {
            Some(ts) => Value::String(match DateTime::parse_from_rfc3339(ts) {
                Ok(t) => human_duration(now.signed_duration_since(t.with_timezone(&Utc))),
                Err(_) => "<invalid>".to_owned(),
            }),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// Go's `fmt.Sprint` of an unstructured value (`map[a:1]`, `[x y]`).
pub(super) fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter().map(|k| format!("{k}:{}", go_print(&map[k.as_str()]))).collect::<Vec<_>>().join(" ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn human_durations_like_kubectl() {
        let cases = [
            (Duration::seconds(-5), "<invalid>"),
            (Duration::seconds(-1), "0s"),
            (Duration::seconds(5), "5s"),
            (Duration::seconds(119), "119s"),
            (Duration::seconds(182), "3m2s"),
            (Duration::minutes(5), "5m"),
            (Duration::minutes(45), "45m"),
            (Duration::hours(4), "4h"),
            (Duration::minutes(4 * 60 + 7), "4h7m"),
            (Duration::hours(30), "30h"),
            (Duration::days(2), "2d"),
            (Duration::hours(3 * 24 + 5), "3d5h"),
            (Duration::days(100), "100d"),
            (Duration::days(365 * 3 + 10), "3y10d"),
            (Duration::days(365 * 9), "9y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn crd_columns_and_rows() {
        let crd = super::super::tests::connection_crd();
        let cols = columns_for(Some(&crd), "v1alpha1", "Connection");
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["Name", "Provider", "Ready", "Age"]);
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:05:00Z").unwrap().with_timezone(&Utc);
        let obj = json!({"metadata": {"name": "c1", "namespace": "ns", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"provider": "nango", "conditions": [{"type": "Ready", "status": "True"}]}});
        let bare = json!({"metadata": {"name": "c2", "creationTimestamp": "2024-01-01T00:04:55Z"}});
        let t = render(&cols, &[obj.clone(), bare], IncludeObject::Metadata, now);
        assert_eq!(t["kind"], "Table");
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0})
        );
        assert_eq!(t["rows"][0]["cells"], json!(["c1", "nango", "True", "5m"]));
        assert_eq!(t["rows"][1]["cells"], json!(["c2", null, null, "5s"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
        );
        let full = render(&cols, std::slice::from_ref(&obj), IncludeObject::Object, now);
        assert_eq!(full["rows"][0]["object"], obj);
        let none = render(&cols, std::slice::from_ref(&obj), IncludeObject::None, now);
        assert_eq!(none["rows"][0]["object"], Value::Null);
    }

    #[test]
    fn crd_without_columns_gets_age_and_typed_cells() {
        let crd = json!({"spec": {"versions": [{"name": "v1"}, {"name": "v2", "additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1},
            {"name": "Ratio", "type": "number", "jsonPath": ".spec.replicas"},
            {"name": "On", "type": "boolean", "jsonPath": ".spec.on"},
            {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"}
        ]}]}});
        let v1: Vec<String> =
            columns_for(Some(&crd), "v1", "W").into_iter().map(|c| format!("{}:{}", c.name, c.type_)).collect();
        assert_eq!(v1, vec!["Name:string", "Age:date"]);
        let cols = columns_for(Some(&crd), "v2", "W");
        assert_eq!(cols[1].priority, 1);
        let t = render(
            &cols,
            &[json!({"metadata": {"name": "w"}, "spec": {"replicas": 3, "on": true, "tags": ["a", "b"]}})],
            IncludeObject::Metadata,
            Utc::now(),
        );
        assert_eq!(t["rows"][0]["cells"], json!(["w", 3, 3.0, true, "[a b]"]));
    }
}
