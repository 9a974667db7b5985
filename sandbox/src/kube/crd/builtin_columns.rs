//! Default Table columns of the built-in kinds the emulator serves, as kube-apiserver's
//! printers define them (`pkg/printers/internalversion/printers.go`). The server renders
//! every column (it generates tables with `Wide: true`); clients hide `priority > 0`
//! columns unless asked for `-o wide`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::column::{CREATION_TIMESTAMP_DESCRIPTION, Column, Computed, NAME_DESCRIPTION, human_duration};

fn col(name: &str, type_: &str, priority: i64, description: &str, c: Computed) -> Column {
    Column::computed(name, type_, "", priority, description, c)
}

fn name() -> Column {
    Column::computed("Name", "string", "name", 0, NAME_DESCRIPTION, Computed::Name)
}

fn age() -> Column {
    col("Age", "string", 0, CREATION_TIMESTAMP_DESCRIPTION, Computed::Age)
}

/// Columns of a built-in kind; the default table convertor's (Name, Created At) for the rest.
pub(super) fn columns(kind: &str) -> Vec<Column> {
    use Computed::*;
    match kind {
        "Namespace" => {
            vec![name(), col("Status", "string", 0, "The status of the namespace", Text("/status/phase")), age()]
        }
        "Secret" => vec![
            name(),
            col(
                "Type",
                "string",
                0,
                "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
                Text("/type"),
            ),
            col(
                "Data",
                "string",
                0,
                "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
                Count(&["/data"]),
            ),
            age(),
        ],
        "ConfigMap" => vec![
            name(),
            col(
                "Data",
                "string",
                0,
                "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
                Count(&["/data", "/binaryData"]),
            ),
            age(),
        ],
        "ServiceAccount" => vec![
            name(),
            col(
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                Count(&["/secrets"]),
            ),
            age(),
        ],
        "Deployment" => vec![
            name(),
            col("Ready", "string", 0, "Number of the pod with ready state", DeploymentReady),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminating pods targeted by this deployment that have the desired template spec.",
                Int("/status/updatedReplicas"),
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.",
                Int("/status/availableReplicas"),
            ),
            age(),
            col("Containers", "string", 1, "Names of each container in the template.", Containers),
            col("Images", "string", 1, "Images referenced by each container in the template.", Images),
            col(
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.",
                Selector("/spec/selector"),
            ),
        ],
        "Event" => vec![
            col(
                "Last Seen",
                "string",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
                EventLastSeen,
            ),
            col(
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future",
                EventType,
            ),
            col(
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                EventReason,
            ),
            col("Object", "string", 0, "The object that this event is about.", EventObject),
            col(
                "Subobject",
                "string",
                1,
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
                EventSubobject,
            ),
            col(
                "Source",
                "string",
                1,
                "The component reporting this event. Should be a short machine understandable string.",
                EventSource,
            ),
            col("Message", "string", 0, "A human-readable description of the status of this operation.", EventMessage),
            col(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
                EventFirstSeen,
            ),
            col("Count", "string", 1, "The number of times this event has occurred.", EventCount),
            Column::computed("Name", "string", "name", 1, NAME_DESCRIPTION, Name),
        ],
        "Lease" => {
            vec![name(), col("Holder", "string", 0, "The holder of the lease.", Text("/spec/holderIdentity")), age()]
        }
        "Service" => vec![
            name(),
            col("Type", "string", 0, "type determines how the Service is exposed.", Text("/spec/type")),
            col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
                Text("/spec/clusterIP"),
            ),
            col(
                "External-IP",
                "string",
                0,
                "List of IP addresses for which nodes in the cluster will also accept traffic for this service.",
                ExternalIps,
            ),
            col("Port(s)", "string", 0, "The list of ports that are exposed by this service.", ServicePorts),
            age(),
            col(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
                Selector("/spec/selector"),
            ),
        ],
        "Role" | "ClusterRole" => {
            vec![name(), col("Created At", "string", 0, CREATION_TIMESTAMP_DESCRIPTION, CreatedAt)]
        }
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name(),
            col(
                "Role",
                "string",
                0,
                "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
                RoleRef,
            ),
            age(),
            col("Users", "string", 1, "Users in the roleBinding", Subjects("User")),
            col("Groups", "string", 1, "Groups in the roleBinding", Subjects("Group")),
            col("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding", Subjects("ServiceAccount")),
        ],
        "PodDisruptionBudget" => vec![
            name(),
            col(
                "Min Available",
                "string",
                0,
                "The minimum number of pods that must be available simultaneously.  This can be either an integer or percentage.",
                IntOrStringOrNone("/spec/minAvailable"),
            ),
            col(
                "Max Unavailable",
                "string",
                0,
                "The maximum number of pods that may be unavailable. This can be either an integer or percentage.",
                IntOrStringOrNone("/spec/maxUnavailable"),
            ),
            col(
                "Allowed Disruptions",
                "integer",
                0,
                "Calculated number of pods that may be disrupted at this time.",
                Int("/status/disruptionsAllowed"),
            ),
            age(),
        ],
        // apiextensions-apiserver's own table convertor for CRDs (1.37).
        "CustomResourceDefinition" => vec![
            name(),
            col("Scope", "string", 0, "Cluster/Namespaced", Text("/spec/scope")),
            col("Versions", "string", 0, "Served versions", CrdVersions),
            Column::computed("Created At", "date", "", 0, CREATION_TIMESTAMP_DESCRIPTION, CreatedAt),
            col("Group", "string", 1, "API group", Text("/spec/group")),
            col("Kind", "string", 1, "CustomResource kind", Text("/spec/names/kind")),
            col("ShortNames", "string", 1, "Short names", CrdShortNames),
            col("Established", "boolean", 1, "Established status", CrdEstablished),
        ],
        _ => vec![name(), Column::computed("Created At", "date", "", 0, CREATION_TIMESTAMP_DESCRIPTION, CreatedAt)],
    }
}

fn text<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn since(ts: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration(now.signed_duration_since(t.with_timezone(&Utc))),
        Err(_) => "<unknown>".to_owned(),
    }
}

fn first_text<'a>(obj: &'a Value, ptrs: &[&str]) -> &'a str {
    ptrs.iter().map(|p| text(obj, p)).find(|s| !s.is_empty()).unwrap_or("")
}

/// `metav1.FormatLabelSelector` / `labels.FormatLabels`: `a=b,c=d` or `<none>`.
fn selector(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return "<none>".to_owned();
    };
    let labels = v.get("matchLabels").or(Some(v)).and_then(Value::as_object);
    let mut parts: Vec<String> = labels
        .map(|m| m.iter().filter_map(|(k, val)| val.as_str().map(|s| format!("{k}={s}"))).collect())
        .unwrap_or_default();
    if let Some(exprs) = v.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = text(e, "/key");
            let values: Vec<&str> =
                e["values"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            parts.push(match text(e, "/operator") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_owned(),
                "DoesNotExist" => format!("!{key}"),
                other => format!("{key} {other}"),
            });
        }
    }
    if parts.is_empty() { "<none>".to_owned() } else { parts.join(",") }
}

fn event_first_seen(obj: &Value, now: DateTime<Utc>) -> String {
    let first = first_text(obj, &["/firstTimestamp", "/deprecatedFirstTimestamp"]);
    if first.is_empty() { since(text(obj, "/eventTime"), now) } else { since(first, now) }
}

pub(super) fn cell(c: &Computed, obj: &Value, now: DateTime<Utc>) -> Value {
    use Computed::*;
    let s = |x: String| Value::String(x);
    match c {
        Name => s(text(obj, "/metadata/name").to_owned()),
        Age => s(since(text(obj, "/metadata/creationTimestamp"), now)),
        CreatedAt => s(DateTime::parse_from_rfc3339(text(obj, "/metadata/creationTimestamp"))
            .map(|t| t.with_timezone(&Utc).format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()),
        Text(p) => s(text(obj, p).to_owned()),
        Int(p) => json!(obj.pointer(p).and_then(Value::as_i64).unwrap_or(0)),
        Count(ps) => json!(
            ps.iter()
                .filter_map(|p| obj.pointer(p))
                .map(|v| match v {
                    Value::Object(m) => m.len(),
                    Value::Array(a) => a.len(),
                    _ => 0,
                })
                .sum::<usize>()
        ),
        DeploymentReady => s(format!(
            "{}/{}",
            obj.pointer("/status/readyReplicas").and_then(Value::as_i64).unwrap_or(0),
            obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
        )),
        Containers | Images => {
            let key = if *c == Containers { "name" } else { "image" };
            let list: Vec<&str> = obj
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().filter_map(|c| c[key].as_str()).collect())
                .unwrap_or_default();
            s(list.join(","))
        }
        CrdVersions => {
            let served: Vec<String> = obj
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .filter(|v| v["served"] == true)
                        .map(|v| match v["storage"] == true {
                            true => format!("{}(storage)", text(v, "/name")),
                            false => text(v, "/name").to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            s(served.join(","))
        }
        CrdShortNames => {
            let names: Vec<&str> = obj
                .pointer("/spec/names/shortNames")
                .and_then(Value::as_array)
                .map(|ns| ns.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            s(names.join(","))
        }
        CrdEstablished => Value::Bool(
            obj.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True")),
        ),
        Selector(p) => s(selector(obj.pointer(p))),
        RoleRef => s(format!("{}/{}", text(obj, "/roleRef/kind"), text(obj, "/roleRef/name"))),
        Subjects(kind) => {
            let list: Vec<String> = obj["subjects"]
                .as_array()
                .map(|ss| {
                    ss.iter()
                        .filter(|x| x["kind"] == *kind)
                        .map(|x| match (*kind, x["namespace"].as_str()) {
                            ("ServiceAccount", Some(ns)) => format!("{ns}/{}", text(x, "/name")),
                            _ => text(x, "/name").to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            s(list.join(", "))
        }
        ServicePorts => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p["protocol"].as_str().unwrap_or("TCP");
                            match p["nodePort"].as_i64() {
                                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                                None => format!("{}/{proto}", p["port"]),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            s(if ports.is_empty() { "<none>".to_owned() } else { ports.join(",") })
        }
        ExternalIps => {
            let ips: Vec<&str> = obj
                .pointer("/spec/externalIPs")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            s(if ips.is_empty() { "<none>".to_owned() } else { ips.join(",") })
        }
        IntOrStringOrNone(p) => s(match obj.pointer(p) {
            Some(Value::String(x)) => x.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => "N/A".to_owned(),
        }),
        // Events: core/v1 field names first, then their events.k8s.io/v1 equivalents, since
        // both API versions are views of the same stored events.
        EventLastSeen => s(if let Some(series) = obj.get("series").filter(|x| x.is_object()) {
            since(text(series, "/lastObservedTime"), now)
        } else {
            let last = first_text(obj, &["/lastTimestamp", "/deprecatedLastTimestamp"]);
            if last.is_empty() { event_first_seen(obj, now) } else { since(last, now) }
        }),
        EventFirstSeen => s(event_first_seen(obj, now)),
        EventType => s(text(obj, "/type").to_owned()),
        EventReason => s(text(obj, "/reason").to_owned()),
        EventObject => {
            let target = obj.get("involvedObject").or_else(|| obj.get("regarding")).cloned().unwrap_or(Value::Null);
            let kind = text(&target, "/kind").to_lowercase();
            let name = text(&target, "/name");
            s(if name.is_empty() { kind } else { format!("{kind}/{name}") })
        }
        EventSubobject => {
            let target = obj.get("involvedObject").or_else(|| obj.get("regarding")).cloned().unwrap_or(Value::Null);
            s(text(&target, "/fieldPath").to_owned())
        }
        EventSource => {
            let component =
                first_text(obj, &["/source/component", "/reportingController", "/deprecatedSource/component"]);
            let host = first_text(obj, &["/source/host", "/reportingInstance", "/deprecatedSource/host"]);
            s(match (component.is_empty(), host.is_empty()) {
                (true, _) => String::new(),
                (false, true) => component.to_owned(),
                (false, false) => format!("{component}, {host}"),
            })
        }
        EventMessage => s(first_text(obj, &["/message", "/note"]).trim().to_owned()),
        EventCount => {
            let count = obj
                .pointer("/series/count")
                .or_else(|| obj.get("count"))
                .or_else(|| obj.get("deprecatedCount"))
                .and_then(Value::as_i64)
                .filter(|c| *c != 0)
                .unwrap_or(1);
            json!(count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{IncludeObject, columns_for, render};
    use serde_json::json;

    fn rows(kind: &str, obj: serde_json::Value) -> (Vec<String>, serde_json::Value) {
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-03T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let cols = columns_for(None, "v1", kind);
        let t = render(&cols, &[obj], IncludeObject::Metadata, now);
        (cols.iter().map(|c| c.name.clone()).collect(), t["rows"][0]["cells"].clone())
    }

    const CREATED: &str = "2024-01-01T00:00:00Z";

    #[test]
    fn namespace_secret_configmap_serviceaccount() {
        assert_eq!(
            rows(
                "Namespace",
                json!({"metadata": {"name": "default", "creationTimestamp": CREATED}, "status": {"phase": "Active"}})
            ),
            (vec!["Name".into(), "Status".into(), "Age".into()], json!(["default", "Active", "2d"]))
        );
        assert_eq!(
            rows(
                "Secret",
                json!({"metadata": {"name": "s", "creationTimestamp": CREATED}, "type": "Opaque", "data": {"a": "eA==", "b": "eQ=="}})
            ),
            (vec!["Name".into(), "Type".into(), "Data".into(), "Age".into()], json!(["s", "Opaque", 2, "2d"]))
        );
        assert_eq!(rows("ConfigMap", json!({"metadata": {"name": "c", "creationTimestamp": CREATED}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}})).1, json!(["c", 2, "2d"]));
        assert_eq!(
            rows("ServiceAccount", json!({"metadata": {"name": "default", "creationTimestamp": CREATED}})).1,
            json!(["default", 0, "2d"])
        );
    }

    #[test]
    fn deployment_lease_crd_role() {
        let dep = json!({"metadata": {"name": "op", "creationTimestamp": CREATED},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "op"}}, "template": {"spec": {"containers": [{"name": "op", "image": "op:1"}]}}},
            "status": {"readyReplicas": 1, "updatedReplicas": 2}});
        let (names, cells) = rows("Deployment", dep);
        assert_eq!(names, vec!["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]);
        assert_eq!(cells, json!(["op", "1/2", 2, 0, "2d", "op", "op:1", "app=op"]));
        assert_eq!(
            rows(
                "Lease",
                json!({"metadata": {"name": "l", "creationTimestamp": CREATED}, "spec": {"holderIdentity": "pod-a"}})
            )
            .1,
            json!(["l", "pod-a", "2d"])
        );
        // As kube-apiserver 1.37.2 answers `kubectl get crd -o wide`.
        let (names, cells) = rows(
            "CustomResourceDefinition",
            json!({"metadata": {"name": "things.y.z", "creationTimestamp": "2024-01-01T01:02:03+01:00"},
                "spec": {"group": "y.z", "scope": "Namespaced", "names": {"kind": "Thing", "shortNames": ["th", "thg"]},
                    "versions": [{"name": "v1", "served": true, "storage": false}, {"name": "v2", "served": true, "storage": true},
                        {"name": "v3", "served": false, "storage": false}]},
                "status": {"conditions": [{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}]}}),
        );
        assert_eq!(
            names,
            vec!["Name", "Scope", "Versions", "Created At", "Group", "Kind", "ShortNames", "Established"]
        );
        assert_eq!(
            cells,
            json!([
                "things.y.z",
                "Namespaced",
                "v1,v2(storage)",
                "2024-01-01T00:02:03Z",
                "y.z",
                "Thing",
                "th,thg",
                true
            ])
        );
        let (_, cells) =
            rows("CustomResourceDefinition", json!({"metadata": {"name": "new.y.z"}, "spec": {"versions": []}}));
        assert_eq!(cells[7], json!(false), "not established before its status is written");
        assert_eq!(
            rows("Widget", json!({"metadata": {"name": "w", "creationTimestamp": CREATED}})).0,
            vec!["Name", "Created At"]
        );
        let rb = json!({"metadata": {"name": "rb", "creationTimestamp": CREATED}, "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "sys"}, {"kind": "User", "name": "alice"}]});
        assert_eq!(rows("RoleBinding", rb).1, json!(["rb", "ClusterRole/edit", "2d", "alice", "", "sys/op"]));
    }

    #[test]
    fn events_in_both_api_shapes() {
        let core = json!({"metadata": {"name": "e1", "creationTimestamp": CREATED}, "type": "Normal", "reason": "Ready",
            "involvedObject": {"kind": "Connection", "name": "c1"}, "message": "connected ", "source": {"component": "connection-operator"},
            "firstTimestamp": "2024-01-02T23:00:00Z", "lastTimestamp": "2024-01-02T23:59:00Z", "count": 3});
        let (names, cells) = rows("Event", core);
        assert_eq!(
            names,
            vec![
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        assert_eq!(
            cells,
            json!(["60s", "Normal", "Ready", "connection/c1", "", "connection-operator", "connected", "60m", 3, "e1"])
        );
        let new_api = json!({"metadata": {"name": "e2"}, "type": "Warning", "reason": "Failed", "regarding": {"kind": "Connection", "name": "c2"},
            "note": "boom", "reportingController": "ctl", "reportingInstance": "pod-1", "eventTime": "2024-01-02T23:58:00.000000Z"});
        assert_eq!(
            rows("Event", new_api).1,
            json!(["2m", "Warning", "Failed", "connection/c2", "", "ctl, pod-1", "boom", "2m", 1, "e2"])
        );
    }
}
