//! `metadata.managedFields`: decoding, encoding and the field-set filters kube-apiserver
//! applies to them (k8s.io/apimachinery/pkg/util/managedfields/internal).

use serde_json::{Map, Value, json};

use super::Operation;
use super::fieldset::{FieldSet, PathElement};

/// One `managedFields` entry with its field set decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub set: FieldSet,
}

impl Entry {
    /// Whether this entry is the one (manager, operation, subresource) writes to. Appliers are
    /// identified without their apiVersion, updaters with it (`BuildManagerIdentifier`).
    pub fn is(&self, manager: &str, operation: Operation, api_version: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    /// How kube-apiserver names a manager in conflict messages (`printManager` of the
    /// manager identifier, which never carries the time: `BuildManagerIdentifier`).
    pub fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            out.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn encode(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(operation_name(self.operation)));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.set.to_fields_v1());
        if let Some(sub) = &self.subresource {
            entry.insert("subresource".into(), json!(sub));
        }
        Value::Object(entry)
    }

    fn decode(value: &Value) -> Result<Entry, String> {
        let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let operation = match text("operation").as_deref() {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            other => return Err(format!("invalid operation {other:?}")),
        };
        if text("fieldsType").as_deref() != Some("FieldsV1") {
            return Err(format!("invalid fieldsType {:?}", value.get("fieldsType")));
        }
        let set = match value.get("fieldsV1") {
            Some(fields) => FieldSet::from_fields_v1(fields)?,
            None => FieldSet::default(),
        };
        Ok(Entry {
            manager: text("manager").unwrap_or_default(),
            operation,
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            subresource: text("subresource").filter(|s| !s.is_empty()),
            set,
        })
    }
}

pub fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Apply => "Apply",
        Operation::Update => "Update",
    }
}

/// The raw `metadata.managedFields` of an object, if any.
pub fn raw(obj: &Value) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields")
}

/// Decodes `metadata.managedFields`; an absent list is empty.
pub fn decode(obj: &Value) -> Result<Vec<Entry>, String> {
    match raw(obj) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries.iter().map(Entry::decode).collect(),
        Some(_) => Err("metadata.managedFields must be a list".into()),
    }
}

/// A list that asks to clear managed fields: `[]` or `[{}]` (`isResetManagedFields`).
pub fn is_reset(obj: &Value) -> bool {
    match raw(obj) {
        Some(Value::Array(entries)) => {
            entries.is_empty() || (entries.len() == 1 && entries[0].as_object().is_some_and(Map::is_empty))
        }
        _ => false,
    }
}

/// Removes `metadata.managedFields` from `obj`.
pub fn strip(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

/// Writes `entries` into `obj.metadata.managedFields`, sorted as kube-apiserver sorts them:
/// by operation (Apply first), time, manager, apiVersion, subresource.
pub fn encode_into(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        operation_name(a.operation)
            .cmp(operation_name(b.operation))
            .then_with(|| a.time.cmp(&b.time))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries.iter().map(Entry::encode).collect()));
    }
}

/// Paths never tracked, whoever sets them (the `stripMetaManager`'s set). Only these exact
/// paths are removed, not what lies below them.
fn stripped_paths() -> FieldSet {
    let mut set = FieldSet::default();
    for top in ["apiVersion", "kind", "metadata"] {
        set.insert(&[PathElement::field(top)]);
    }
    for meta in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.insert(&[PathElement::field("metadata"), PathElement::field(meta)]);
    }
    set
}

/// Drops what a write through `subresource` does not own (the strategies' reset fields, which
/// structured-merge-diff ignores): a write to `/status` only owns `status` and `metadata`;
/// any other write (the main resource, a namespace's `/finalize`) never owns `status`.
pub fn ignore_reset_fields(set: &FieldSet, subresource: Option<&str>) -> FieldSet {
    let mut ignored = FieldSet::default();
    if subresource == Some("status") {
        let foreign = |pe: &PathElement| !matches!(pe, PathElement::Field(f) if f == "status" || f == "metadata");
        for (pe, _) in set.children().filter(|(pe, _)| foreign(pe)) {
            ignored.insert(std::slice::from_ref(pe));
        }
        for path in set.paths().into_iter().filter(|p| p.len() == 1 && foreign(&p[0])) {
            ignored.insert(&path);
        }
    } else {
        ignored.insert(&[PathElement::field("status")]);
    }
    set.recursive_difference(&ignored)
}

/// Drops the paths kube-apiserver never records (`stripMetaManager`); done on what is
/// stored, after the apply merge and prune have used the full sets.
pub fn strip_meta(set: &FieldSet) -> FieldSet {
    set.difference(&stripped_paths())
}

/// Both filters: what a write through `subresource` records.
pub fn filter(set: &FieldSet, subresource: Option<&str>) -> FieldSet {
    strip_meta(&ignore_reset_fields(set, subresource))
}

/// Beyond this many `Update` entries, the oldest are merged into `ancient-changes`
/// (kube-apiserver's `DefaultMaxUpdateManagers`, `capManagersManager`).
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Merges the oldest `Update` entries into a per-apiVersion `ancient-changes` entry until at
/// most `MAX_UPDATE_MANAGERS` remain; the bucket takes the time of the newest merged entry.
pub fn cap_update_managers(entries: &mut Vec<Entry>) {
    let updaters = |entries: &[Entry]| entries.iter().filter(|e| e.operation == Operation::Update).count();
    while updaters(entries) > MAX_UPDATE_MANAGERS {
        let oldest = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.operation == Operation::Update && e.manager != ANCIENT_CHANGES)
            .min_by(|(_, a), (_, b)| a.time.cmp(&b.time).then_with(|| a.manager.cmp(&b.manager)))
            .map(|(i, _)| i);
        let Some(i) = oldest else { return };
        let merged = entries.remove(i);
        match entries
            .iter_mut()
            .find(|e| e.is(ANCIENT_CHANGES, Operation::Update, &merged.api_version, merged.subresource.as_deref()))
        {
            Some(bucket) => {
                bucket.set = bucket.set.union(&merged.set);
                bucket.time = merged.time;
            }
            None => entries.push(Entry { manager: ANCIENT_CHANGES.to_owned(), ..merged }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, op: Operation, time: &str) -> Entry {
        let mut set = FieldSet::default();
        set.insert(&[PathElement::field("spec"), PathElement::field(manager)]);
        Entry {
            manager: manager.into(),
            operation: op,
            api_version: "v1".into(),
            time: Some(time.into()),
            subresource: None,
            set,
        }
    }

    #[test]
    fn encodes_sorted_entries_in_kube_field_order() {
        let mut obj = json!({"metadata": {"name": "x"}});
        encode_into(
            &mut obj,
            vec![
                entry("b", Operation::Update, "2026-01-01T00:00:02Z"),
                entry("a", Operation::Update, "2026-01-01T00:00:02Z"),
                entry("z", Operation::Apply, "2026-01-01T00:00:09Z"),
                Entry { set: FieldSet::default(), ..entry("empty", Operation::Update, "2026-01-01T00:00:00Z") },
            ],
        );
        let entries = raw(&obj).unwrap().as_array().unwrap();
        let managers: Vec<&str> = entries.iter().map(|e| e["manager"].as_str().unwrap()).collect();
        assert_eq!(managers, ["z", "a", "b"]);
        let keys: Vec<&String> = entries[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]);
        assert_eq!(decode(&obj).unwrap()[0], entry("z", Operation::Apply, "2026-01-01T00:00:09Z"));
    }

    #[test]
    fn describes_managers_like_conflict_messages() {
        let mut e = entry("kubectl-patch", Operation::Update, "2026-11-22T02:00:00Z");
        assert_eq!(e.describe(), r#""kubectl-patch" using v1"#);
        e.operation = Operation::Apply;
        e.subresource = Some("status".into());
        assert_eq!(e.describe(), r#""kubectl-patch" with subresource "status""#);
    }

    #[test]
    fn reset_and_invalid_lists() {
        assert!(is_reset(&json!({"metadata": {"managedFields": []}})));
        assert!(is_reset(&json!({"metadata": {"managedFields": [{}]}})));
        assert!(!is_reset(&json!({"metadata": {}})));
        assert!(decode(&json!({"metadata": {"managedFields": [{"operation": "Nope"}]}})).is_err());
        assert!(decode(&json!({"metadata": {"managedFields": {}}})).is_err());
    }

    #[test]
    fn filter_drops_untracked_and_foreign_fields() {
        let mut set = FieldSet::default();
        set.insert(&[PathElement::field("apiVersion")]);
        set.insert(&[PathElement::field("metadata")]);
        set.insert(&[PathElement::field("metadata"), PathElement::field("name")]);
        set.insert(&[PathElement::field("metadata"), PathElement::field("labels"), PathElement::field("a")]);
        set.insert(&[PathElement::field("spec"), PathElement::field("x")]);
        set.insert(&[PathElement::field("status"), PathElement::field("y")]);
        assert_eq!(
            filter(&set, None).to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:x": {}}})
        );
        assert_eq!(
            filter(&set, Some("status")).to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:status": {"f:y": {}}})
        );
    }
}
