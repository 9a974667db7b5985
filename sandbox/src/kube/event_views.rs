//! core/v1 Events and events.k8s.io/v1 Events are two views of the same stored objects, as
//! on a real cluster (`kubectl get events` shows what a kube-rs `Recorder` wrote through
//! events.k8s.io/v1). Objects are stored in the core/v1 shape; these functions are the
//! field mapping of `k8s.io/kubernetes/pkg/apis/events/v1` conversion.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, core/v1 field) pairs that map one to one.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// Fields with the same name in both versions.
const SAME: &[&str] = &["metadata", "eventTime", "series", "action", "reason", "related", "reportingInstance", "type"];

fn map_fields(obj: &Value, pairs: impl Iterator<Item = (&'static str, &'static str)>, api_version: &str) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), Value::String("Event".into()));
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    for (from, to) in pairs {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            out.insert(to.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// events.k8s.io/v1 → core/v1 (storage).
pub fn to_core(obj: &Value) -> Value {
    let pairs = RENAMES.iter().copied().chain(SAME.iter().map(|f| (*f, *f)));
    map_fields(obj, pairs, "v1")
}

/// core/v1 (storage) → events.k8s.io/v1.
pub fn to_events_v1(obj: &Value) -> Value {
    let pairs = RENAMES.iter().map(|(a, b)| (*b, *a)).chain(SAME.iter().map(|f| (*f, *f)));
    map_fields(obj, pairs, "events.k8s.io/v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_every_field() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "n"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "ctl",
            "reportingInstance": "ctl-1", "action": "Reconcile", "reason": "Synced",
            "regarding": {"kind": "Connection", "name": "c"}, "note": "hello", "type": "Normal",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}
        });
        let core = to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "c");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "ctl");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(to_events_v1(&core), v1);
    }
}
