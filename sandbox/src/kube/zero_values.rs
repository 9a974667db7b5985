//! What kube-apiserver's Go types encode for fields nobody set: struct-typed fields are
//! always encoded (`omitempty` does not apply to structs; a zero `metav1.Time` is `null`),
//! fields without `omitempty` appear with their zero value, and empty strings of `omitempty`
//! fields are left out. Applied to every object the emulator answers with, so clients see
//! the same shape as from kube-apiserver (e.g. a core/v1 Event's `source: {}` and
//! `reportingComponent: ""`, a PodDisruptionBudget's zero status counters).

use serde_json::{Map, Value, json};

/// Fill in the zero values of the built-in `group`/`kind` object `obj` (as served).
pub fn fill(group: &str, kind: &str, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    match (group, kind) {
        // k8s.io/api core/v1 Event.
        ("", "Event") => {
            for (field, zero) in [
                ("involvedObject", json!({})),
                ("source", json!({})),
                ("firstTimestamp", Value::Null),
                ("lastTimestamp", Value::Null),
                ("eventTime", Value::Null),
                ("reportingComponent", json!("")),
                ("reportingInstance", json!("")),
            ] {
                o.entry(field).or_insert(zero);
            }
            drop_empty(o, &["reason", "message", "type", "action"]);
        }
        // events.k8s.io/v1 Event.
        ("events.k8s.io", "Event") => {
            for (field, zero) in [
                ("eventTime", Value::Null),
                ("regarding", json!({})),
                ("deprecatedSource", json!({})),
                ("deprecatedFirstTimestamp", Value::Null),
                ("deprecatedLastTimestamp", Value::Null),
            ] {
                o.entry(field).or_insert(zero);
            }
            drop_empty(o, &["reportingController", "reportingInstance", "action", "reason", "note", "type"]);
        }
        ("apps", "Deployment") => {
            o.entry("status").or_insert_with(|| json!({}));
        }
        ("policy", "PodDisruptionBudget") => {
            let status = o.entry("status").or_insert_with(|| json!({}));
            if let Some(s) = status.as_object_mut() {
                for counter in ["disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"] {
                    s.entry(counter).or_insert(json!(0));
                }
            }
        }
        ("coordination.k8s.io", "Lease") => {
            o.entry("spec").or_insert_with(|| json!({}));
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            o.entry("rules").or_insert(Value::Null);
        }
        _ => {}
    }
}

fn drop_empty(o: &mut Map<String, Value>, fields: &[&str]) {
    for f in fields {
        if o.get(*f).and_then(Value::as_str) == Some("") {
            o.remove(*f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_in_both_versions_look_like_kube_apiservers() {
        // What kube-apiserver 1.37.2 answered to a core/v1 create with only these fields.
        let mut core = json!({"involvedObject": {"kind": "ConfigMap", "name": "c"}, "reason": "R", "message": "m"});
        fill("", "Event", &mut core);
        assert_eq!(
            core,
            json!({"involvedObject": {"kind": "ConfigMap", "name": "c"}, "reason": "R", "message": "m", "source": {},
                   "firstTimestamp": null, "lastTimestamp": null, "eventTime": null, "reportingComponent": "", "reportingInstance": ""})
        );
        let mut v1 = json!({"reason": "R", "reportingController": "", "eventTime": "2026-01-01T00:00:00.000000Z"});
        fill("events.k8s.io", "Event", &mut v1);
        assert_eq!(
            v1,
            json!({"reason": "R", "eventTime": "2026-01-01T00:00:00.000000Z", "regarding": {}, "deprecatedSource": {},
                   "deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null})
        );
    }

    #[test]
    fn status_counters_and_structs() {
        let mut pdb = json!({"spec": {"minAvailable": 1}});
        fill("policy", "PodDisruptionBudget", &mut pdb);
        assert_eq!(
            pdb["status"],
            json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
        );
        let mut deploy = json!({"spec": {}});
        fill("apps", "Deployment", &mut deploy);
        assert_eq!(deploy["status"], json!({}));
        let mut cm = json!({"data": {}});
        fill("", "ConfigMap", &mut cm);
        assert_eq!(cm, json!({"data": {}}));
    }
}
