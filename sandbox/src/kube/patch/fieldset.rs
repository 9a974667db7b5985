//! Field sets: the set of field paths a manager owns, and their `fieldsV1` wire encoding.
//!
//! Mirrors `sigs.k8s.io/structured-merge-diff/fieldpath`: a set is a tree whose nodes hold
//! *members* (paths owned as a whole) and *children* (paths with owned descendants). On the
//! wire (`metadata.managedFields[].fieldsV1`) each path element is a key: `f:<field>`,
//! `k:<json object of key fields>` (list-map item), `v:<json value>` (set item), `i:<index>`;
//! a node that is both a member and has children carries a `".": {}` entry.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// A JSON value ordered as structured-merge-diff orders values (`value.Compare`): numbers
/// (numerically) < strings < booleans < lists < maps < null.
#[derive(Clone, Debug)]
pub struct KeyValue(pub Value);

fn rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => {
                let (f, g) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
                f.partial_cmp(&g).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(i, j)| compare_values(i, j))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            xs.iter()
                .zip(&ys)
                .map(|((k, v), (l, w))| k.cmp(l).then_with(|| compare_values(v, w)))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| xs.len().cmp(&ys.len()))
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Deep equality as structured-merge-diff's `value.Equals`: numbers compare numerically
/// (`2` equals `2.0`), object keys in any order.
pub fn same_value(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

impl PartialEq for KeyValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for KeyValue {}
impl PartialOrd for KeyValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for KeyValue {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_values(&self.0, &other.0)
    }
}
impl fmt::Display for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One step of a field path. The derived order (fields, then keys, then values, then
/// indices) is the order structured-merge-diff serializes sets in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// A map or struct field name.
    Field(String),
    /// A list-map item, identified by its key fields (sorted by name) and their values.
    Key(Vec<(String, KeyValue)>),
    /// A set item.
    Value(KeyValue),
    /// A positional list item (only for lists that are neither maps nor sets).
    Index(usize),
}

impl PathElement {
    pub fn field(name: &str) -> Self {
        Self::Field(name.to_owned())
    }

    /// The list-map key of `item` for `keys`, or None when `item` is not an object.
    /// A missing `protocol` key defaults to `TCP`, as the OpenAPI schema of container and
    /// service ports declares (structured-merge-diff uses schema defaults for key fields).
    pub fn key_of(item: &Value, keys: &[String]) -> Option<Self> {
        let obj = item.as_object()?;
        let mut fields: Vec<(String, KeyValue)> = keys
            .iter()
            .filter_map(|k| match obj.get(k) {
                Some(v) => Some((k.clone(), KeyValue(v.clone()))),
                None if k == "protocol" => Some((k.clone(), KeyValue(Value::from("TCP")))),
                None => None,
            })
            .collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Self::Key(fields))
    }

    pub fn value_of(item: &Value) -> Self {
        Self::Value(KeyValue(item.clone()))
    }

    /// The `fieldsV1` key for this element.
    fn encode(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(fields) => {
                let body: Vec<String> =
                    fields.iter().map(|(name, value)| format!("{}:{value}", Value::String(name.clone()))).collect();
                format!("k:{{{}}}", body.join(","))
            }
            Self::Value(json) => format!("v:{json}"),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(key: &str) -> Result<Self, String> {
        let (prefix, rest) =
            key.split_once(':').ok_or_else(|| format!("invalid path element {key:?}: missing type prefix"))?;
        match prefix {
            "f" => Ok(Self::Field(rest.to_owned())),
            "k" => {
                let parsed: Map<String, Value> =
                    serde_json::from_str(rest).map_err(|e| format!("invalid key path element {key:?}: {e}"))?;
                let mut fields: Vec<(String, KeyValue)> = parsed.into_iter().map(|(k, v)| (k, KeyValue(v))).collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(Self::Key(fields))
            }
            "v" => {
                let parsed: Value =
                    serde_json::from_str(rest).map_err(|e| format!("invalid value path element {key:?}: {e}"))?;
                Ok(Self::Value(KeyValue(parsed)))
            }
            "i" => rest.parse().map(Self::Index).map_err(|e| format!("invalid index path element {key:?}: {e}")),
            other => Err(format!("invalid path element {key:?}: unknown prefix {other:?}")),
        }
    }
}

/// Renders like structured-merge-diff's `PathElement.String()`, which kube-apiserver uses in
/// conflict messages: `.spec`, `[name="nginx"]`, `[="finalizer"]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(name) => write!(f, ".{name}"),
            Self::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            Self::Value(json) => write!(f, "[={json}]"),
            Self::Index(i) => write!(f, "[{i}]"),
        }
    }
}

pub type Path = Vec<PathElement>;

pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths. Invariant: no child set is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    pub fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    pub fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    pub fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    pub fn child_mut(&mut self, pe: &PathElement) -> Option<&mut FieldSet> {
        self.children.get_mut(pe)
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, mine)| {
                let both = mine.intersection(other.children.get(pe)?);
                (!both.is_empty()).then(|| (pe.clone(), both))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Paths of `self` that are not paths of `other`; a member of `other` does not remove
    /// descendants of that path (structured-merge-diff `Set.Difference`).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, mine)| {
                let rest = match other.children.get(pe) {
                    Some(theirs) => mine.difference(theirs),
                    None => mine.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Like `difference`, but a member of `other` also removes everything below it
    /// (structured-merge-diff `Set.RecursiveDifference`).
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, mine)| {
                if other.members.contains(pe) {
                    return None;
                }
                let rest = match other.children.get(pe) {
                    Some(theirs) => mine.recursive_difference(theirs),
                    None => mine.clone(),
                };
                (!rest.is_empty()).then(|| (pe.clone(), rest))
            })
            .collect();
        FieldSet { members, children }
    }

    /// Every member path, in serialization order (parents before their descendants).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let mut keys: BTreeSet<&PathElement> = self.members.iter().collect();
        keys.extend(self.children.keys());
        for pe in keys {
            prefix.push(pe.clone());
            if self.members.contains(pe) {
                out.push(prefix.clone());
            }
            if let Some(child) = self.children.get(pe) {
                child.collect_paths(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON object.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.encode_contents(false))
    }

    fn encode_contents(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_owned(), Value::Object(Map::new()));
        }
        let mut keys: BTreeSet<&PathElement> = self.members.iter().collect();
        keys.extend(self.children.keys());
        for pe in keys {
            let body = match self.children.get(pe) {
                Some(child) => child.encode_contents(self.members.contains(pe)),
                None => Map::new(),
            };
            out.insert(pe.encode(), Value::Object(body));
        }
        out
    }

    /// Parses a `fieldsV1` JSON object.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let obj = value.as_object().ok_or("fieldsV1 must be a JSON object")?;
        let mut set = FieldSet::default();
        for (key, body) in obj {
            if key == "." {
                continue;
            }
            let pe = PathElement::decode(key)?;
            let body_obj = body.as_object().ok_or_else(|| format!("fieldsV1 entry {key:?} must be an object"))?;
            if body_obj.is_empty() {
                set.members.insert(pe);
                continue;
            }
            if body_obj.contains_key(".") {
                set.members.insert(pe.clone());
            }
            let child = FieldSet::from_fields_v1(body)?;
            if !child.is_empty() {
                set.children.insert(pe, child);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn f(name: &str) -> PathElement {
        PathElement::field(name)
    }

    #[test]
    fn encodes_like_kube_apiserver() {
        let mut set = FieldSet::default();
        set.insert(&[f("metadata"), f("labels"), f("app")]);
        set.insert(&[f("spec"), f("x")]);
        let ready = PathElement::key_of(&json!({"type": "Ready", "status": "True"}), &["type".into()]).unwrap();
        set.insert(&[f("status"), f("conditions"), ready.clone()]);
        set.insert(&[f("status"), f("conditions"), ready, f("status")]);
        set.insert(&[f("metadata"), f("finalizers"), PathElement::value_of(&json!("x"))]);
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:app": {}}},
                "f:spec": {"f:x": {}},
                "f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}}}
            })
        );
    }

    #[test]
    fn serialization_is_sorted_and_round_trips() {
        let wire = json!({
            "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}}}},
            "f:metadata": {"f:labels": {".": {}, "f:b": {}, "f:a": {}}}
        });
        let set = FieldSet::from_fields_v1(&wire).unwrap();
        let text = serde_json::to_string(&set.to_fields_v1()).unwrap();
        assert_eq!(
            text,
            r#"{"f:metadata":{"f:labels":{".":{},"f:a":{},"f:b":{}}},"f:spec":{"f:ports":{"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},"f:port":{},"f:protocol":{}}}}}"#
        );
        assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
    }

    #[test]
    fn keys_sort_by_value_like_structured_merge_diff() {
        let port = |p: i64| PathElement::key_of(&json!({"port": p}), &["port".into()]).unwrap();
        let mut set = FieldSet::default();
        set.insert(&[f("ports"), port(443)]);
        set.insert(&[f("ports"), port(80)]);
        let text = serde_json::to_string(&set.to_fields_v1()).unwrap();
        assert_eq!(text, r#"{"f:ports":{"k:{\"port\":80}":{},"k:{\"port\":443}":{}}}"#);
        // Numbers before strings, then booleans.
        assert!(PathElement::value_of(&json!(10)) < PathElement::value_of(&json!("1")));
        assert!(PathElement::value_of(&json!("z")) < PathElement::value_of(&json!(false)));
    }

    #[test]
    fn values_compare_numerically_and_structurally() {
        assert!(same_value(&json!({"a": [1, {"b": 2.0}]}), &json!({"a": [1.0, {"b": 2}]})));
        assert!(!same_value(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(!same_value(&json!([1, 2]), &json!([2, 1])));
        assert!(!same_value(&json!("1"), &json!(1)));
    }

    #[test]
    fn rejects_malformed_fields_v1() {
        assert!(FieldSet::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"nocolon": {}})).is_err());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::default();
        a.insert(&[f("spec"), f("x")]);
        a.insert(&[f("spec"), f("y")]);
        a.insert(&[f("spec")]);
        let mut b = FieldSet::default();
        b.insert(&[f("spec"), f("y")]);
        b.insert(&[f("spec")]);

        let mut only_x = FieldSet::default();
        only_x.insert(&[f("spec"), f("x")]);
        assert_eq!(a.difference(&b), only_x);
        assert_eq!(a.recursive_difference(&b), FieldSet::default());
        assert_eq!(a.intersection(&b), b);
        assert_eq!(b.union(&only_x), a);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn paths_render_like_structured_merge_diff() {
        let key = PathElement::key_of(&json!({"name": "nginx"}), &["name".into()]).unwrap();
        let path = vec![f("spec"), f("containers"), key, f("image")];
        assert_eq!(path_string(&path), r#".spec.containers[name="nginx"].image"#);
        let set_item = vec![f("metadata"), f("finalizers"), PathElement::value_of(&json!("a/b"))];
        assert_eq!(path_string(&set_item), r#".metadata.finalizers[="a/b"]"#);
    }

    #[test]
    fn paths_lists_members_parents_first() {
        let mut set = FieldSet::default();
        set.insert(&[f("a"), f("b")]);
        set.insert(&[f("a")]);
        set.insert(&[f("c")]);
        let rendered: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
        assert_eq!(rendered, vec![".a", ".a.b", ".c"]);
    }
}
