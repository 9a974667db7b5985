//! JSON patch (RFC 6902), with the behaviour of the library kube-apiserver uses for
//! `application/json-patch+json` (evanphx/json-patch v4):
//! - a `test` of `null` succeeds on a missing member whose parent exists (kube-rs' finalizer
//!   helper tests `/metadata/finalizers` for null before adding it);
//! - a missing `value` means `null`;
//! - a document that is not a list of objects is a 400; an operation that does not apply is
//!   a 422 whose cause carries the library's message (`testing value /x failed: test failed`),
//!   the texts below are the library's.

use serde_json::Value;

use super::PatchError;

const MISSING: &str = "missing value";
const TEST_FAILED: &str = "test failed";
const INVALID_INDEX: &str = "invalid index referenced";

fn invalid(message: String) -> PatchError {
    PatchError::Invalid(message)
}

/// Splits a JSON pointer into unescaped reference tokens (`~1` is `/`, `~0` is `~`,
/// unescaped in that order per RFC 6901 §4). None for a pointer without a leading `/`,
/// which addresses nothing the library can patch (it does not patch the root either).
fn tokens(pointer: &str) -> Option<Vec<String>> {
    let rest = pointer.strip_prefix('/')?;
    Some(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    let idx: i64 = token.parse().map_err(|_| format!("strconv.Atoi: parsing {token:?}: invalid syntax"))?;
    let limit = if allow_end { len } else { len.saturating_sub(1) };
    if idx < 0 || (idx as u64) > limit as u64 || (!allow_end && len == 0) {
        return Err(format!("Unable to access invalid index: {idx}: {INVALID_INDEX}"));
    }
    Ok(idx as usize)
}

/// The container holding the member `pointer` names, and that member's token.
fn parent<'v>(doc: &'v mut Value, pointer: &str) -> Option<(&'v mut Value, String)> {
    let mut toks = tokens(pointer)?;
    let last = toks.pop()?;
    let mut cur = doc;
    for tok in toks {
        cur = match cur {
            Value::Object(map) => map.get_mut(&tok)?,
            Value::Array(items) => {
                let i = array_index(&tok, items.len(), false).ok()?;
                items.get_mut(i)?
            }
            _ => return None,
        };
    }
    matches!(cur, Value::Object(_) | Value::Array(_)).then_some((cur, last))
}

fn get(doc: &mut Value, pointer: &str) -> Option<Value> {
    let (container, key) = parent(doc, pointer)?;
    match container {
        Value::Object(map) => map.get(&key).cloned(),
        Value::Array(items) => items.get(array_index(&key, items.len(), false).ok()?).cloned(),
        _ => None,
    }
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let Some((container, key)) = parent(doc, path) else {
        return Err(invalid(format!("add operation does not apply: doc is missing path: {path:?}: {MISSING}")));
    };
    match container {
        Value::Object(map) => {
            map.insert(key, value);
        }
        Value::Array(items) => {
            let idx = if key == "-" {
                items.len()
            } else {
                array_index(&key, items.len(), true)
                    .map_err(|e| invalid(format!("error in add for path: '{path}': {e}")))?
            };
            items.insert(idx, value);
        }
        _ => unreachable!("parent() only returns containers"),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let Some((container, key)) = parent(doc, path) else {
        return Err(invalid(format!("remove operation does not apply: doc is missing path: {path:?}: {MISSING}")));
    };
    match container {
        Value::Object(map) => map.shift_remove(&key).ok_or_else(|| {
            invalid(format!("error in remove for path: '{path}': Unable to remove nonexistent key: {key}: {MISSING}"))
        }),
        Value::Array(items) => {
            let idx = array_index(&key, items.len(), false)
                .map_err(|e| invalid(format!("error in remove for path: '{path}': {e}")))?;
            Ok(items.remove(idx))
        }
        _ => unreachable!("parent() only returns containers"),
    }
}

fn replace(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let Some((container, key)) = parent(doc, path) else {
        return Err(invalid(format!("replace operation does not apply: doc is missing path: {path}: {MISSING}")));
    };
    let slot = match container {
        Value::Object(map) => map.get_mut(&key),
        Value::Array(items) => match array_index(&key, items.len(), false) {
            Ok(i) => items.get_mut(i),
            Err(e) => return Err(invalid(format!("error in replace for path: '{path}': {e}"))),
        },
        _ => None,
    };
    match slot {
        Some(slot) => {
            *slot = value;
            Ok(())
        }
        None => Err(invalid(format!("replace operation does not apply: doc is missing key: {path}: {MISSING}"))),
    }
}

fn test(doc: &mut Value, path: &str, expected: &Value) -> Result<(), PatchError> {
    let Some((container, key)) = parent(doc, path) else {
        return Err(invalid(format!("test operation does not apply: is missing path: {path}: {MISSING}")));
    };
    let actual = match container {
        // The library treats a missing member and a JSON null alike: both equal null.
        Value::Object(map) => map.get(&key).unwrap_or(&Value::Null),
        // A list index out of range is an error though, whatever the tested value.
        Value::Array(items) => match array_index(&key, items.len(), false) {
            Ok(i) => &items[i],
            Err(e) => return Err(invalid(format!("error in test for path: '{path}': {e}"))),
        },
        _ => unreachable!("parent() only returns containers"),
    };
    if actual == expected { Ok(()) } else { Err(invalid(format!("testing value {path} failed: {TEST_FAILED}"))) }
}

/// One decoded operation; fields are looked up lazily like the library does.
struct Operation<'p> {
    raw: &'p serde_json::Map<String, Value>,
}

impl Operation<'_> {
    fn text(&self, field: &str) -> Result<&str, PatchError> {
        self.raw.get(field).and_then(Value::as_str).ok_or_else(|| invalid(format!("operation missing {field} field")))
    }

    fn value(&self) -> Value {
        self.raw.get("value").cloned().unwrap_or(Value::Null)
    }

    fn apply(&self, doc: &mut Value) -> Result<(), PatchError> {
        let kind = self.raw.get("op").and_then(Value::as_str).unwrap_or("unknown");
        match kind {
            "add" => add(doc, self.text("path")?, self.value()),
            "remove" => remove(doc, self.text("path")?).map(drop),
            "replace" => replace(doc, self.text("path")?, self.value()),
            "test" => test(doc, self.text("path")?, &self.value()),
            "move" => {
                let (from, path) = (self.text("from")?, self.text("path")?);
                if get(doc, from).is_none() {
                    return Err(invalid(format!(
                        "move operation does not apply: doc is missing from path: {from}: {MISSING}"
                    )));
                }
                let moved = remove(doc, from).map_err(|e| invalid(format!("error in move for path: '{from}': {e}")))?;
                add(doc, path, moved).map_err(|e| invalid(format!("error in move for path: '{path}': {e}")))
            }
            "copy" => {
                let (from, path) = (self.text("from")?, self.text("path")?);
                let Some(copied) = get(doc, from) else {
                    return Err(invalid(format!(
                        "copy operation does not apply: doc is missing from path: {from}: {MISSING}"
                    )));
                };
                add(doc, path, copied).map_err(|e| invalid(format!("error in copy for path: '{path}': {e}")))
            }
            other => Err(invalid(format!("Unexpected kind: {other}"))),
        }
    }
}

pub fn json_patch(live: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            json_type(patch)
        )));
    };
    let ops: Vec<Operation<'_>> = ops
        .iter()
        .map(|op| match op {
            Value::Object(raw) => Ok(Operation { raw }),
            other => Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                json_type(other)
            ))),
        })
        .collect::<Result<_, _>>()?;
    let mut doc = live.clone();
    for op in &ops {
        op.apply(&mut doc)?;
    }
    Ok(doc)
}

/// The JSON type name Go's encoding/json uses in unmarshal errors.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(doc: Value, patch: Value) -> Result<Value, PatchError> {
        json_patch(&doc, &patch)
    }

    #[test]
    fn rfc6902_appendix_a() {
        let ok = [
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/baz", "value": "qux"}]),
                json!({"foo": "bar", "baz": "qux"}),
            ),
            (
                json!({"foo": ["bar", "baz"]}),
                json!([{"op": "add", "path": "/foo/1", "value": "qux"}]),
                json!({"foo": ["bar", "qux", "baz"]}),
            ),
            (json!({"baz": "qux", "foo": "bar"}), json!([{"op": "remove", "path": "/baz"}]), json!({"foo": "bar"})),
            (
                json!({"foo": ["bar", "qux", "baz"]}),
                json!([{"op": "remove", "path": "/foo/1"}]),
                json!({"foo": ["bar", "baz"]}),
            ),
            (
                json!({"baz": "qux", "foo": "bar"}),
                json!([{"op": "replace", "path": "/baz", "value": "boo"}]),
                json!({"baz": "boo", "foo": "bar"}),
            ),
            (
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]),
                json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
            ),
            (
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}]),
                json!({"foo": ["all", "cows", "eat", "grass"]}),
            ),
            (
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}]),
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
            ),
            (
                json!({"foo": "bar"}),
                json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}]),
                json!({"foo": "bar", "child": {"grandchild": {}}}),
            ),
            (
                json!({"foo": ["bar"]}),
                json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}]),
                json!({"foo": ["bar", ["abc", "def"]]}),
            ),
            (
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}, {"op": "copy", "from": "/~1", "path": "/x"}]),
                json!({"/": 9, "~1": 10, "x": 9}),
            ),
        ];
        for (doc, patch, want) in ok {
            assert_eq!(run(doc, patch.clone()).unwrap(), want, "patch {patch}");
        }
    }

    #[test]
    fn kube_rs_finalizer_patch_on_an_object_without_finalizers() {
        // kube-runtime's finalizer helper: test that the list is absent, then add it.
        let doc = json!({"metadata": {"name": "a"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x.io/cleanup"]}
        ]);
        assert_eq!(run(doc, patch).unwrap(), json!({"metadata": {"name": "a", "finalizers": ["x.io/cleanup"]}}));
    }

    #[test]
    fn kube_rs_finalizer_removal_guards_with_test() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
        let remove_a = json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "a"},
            {"op": "remove", "path": "/metadata/finalizers/0"}
        ]);
        assert_eq!(run(doc.clone(), remove_a).unwrap(), json!({"metadata": {"finalizers": ["b"]}}));
        let stale = json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": "b"},
            {"op": "remove", "path": "/metadata/finalizers/0"}
        ]);
        assert_eq!(
            run(doc, stale),
            Err(PatchError::Invalid("testing value /metadata/finalizers/0 failed: test failed".into()))
        );
    }

    #[test]
    fn failures_are_invalid_with_library_messages() {
        let doc = json!({"a": {"b": 1}, "l": [1]});
        let cases = [
            (json!([{"op": "test", "path": "/a/b", "value": 2}]), "testing value /a/b failed: test failed"),
            (json!([{"op": "test", "path": "/a/zz", "value": 1}]), "testing value /a/zz failed: test failed"),
            (
                json!([{"op": "test", "path": "/nope/x", "value": null}]),
                "test operation does not apply: is missing path: /nope/x: missing value",
            ),
            (
                json!([{"op": "add", "path": "/x/y", "value": 1}]),
                "add operation does not apply: doc is missing path: \"/x/y\": missing value",
            ),
            (
                json!([{"op": "remove", "path": "/a/zz"}]),
                "error in remove for path: '/a/zz': Unable to remove nonexistent key: zz: missing value",
            ),
            (
                json!([{"op": "replace", "path": "/zz", "value": 1}]),
                "replace operation does not apply: doc is missing key: /zz: missing value",
            ),
            (
                json!([{"op": "add", "path": "/l/5", "value": 1}]),
                "error in add for path: '/l/5': Unable to access invalid index: 5: invalid index referenced",
            ),
            (
                json!([{"op": "move", "from": "/zz", "path": "/a"}]),
                "move operation does not apply: doc is missing from path: /zz: missing value",
            ),
            (json!([{"op": "frobnicate", "path": "/a"}]), "Unexpected kind: frobnicate"),
            (json!([{"path": "/a"}]), "Unexpected kind: unknown"),
            (
                json!([{"op": "test", "path": "/l/3", "value": null}]),
                "error in test for path: '/l/3': Unable to access invalid index: 3: invalid index referenced",
            ),
            (json!([{"op": "add", "value": 1}]), "operation missing path field"),
        ];
        for (patch, want) in cases {
            assert_eq!(run(doc.clone(), patch.clone()), Err(PatchError::Invalid(want.into())), "patch {patch}");
        }
    }

    #[test]
    fn a_failed_operation_leaves_nothing_applied() {
        // The store gets an error, never a half-applied document.
        let doc = json!({"a": 1});
        let patch = json!([{"op": "replace", "path": "/a", "value": 2}, {"op": "test", "path": "/a", "value": 1}]);
        assert!(run(doc, patch).is_err());
    }

    #[test]
    fn malformed_documents_are_bad_requests() {
        assert_eq!(
            run(json!({}), json!({"op": "add"})),
            Err(PatchError::BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch".into()))
        );
        assert_eq!(
            run(json!({}), json!(["add"])),
            Err(PatchError::BadRequest(
                "json: cannot unmarshal string into Go value of type jsonpatch.Operation".into()
            ))
        );
    }

    #[test]
    fn null_test_passes_on_explicit_null_and_fails_on_a_value() {
        assert!(run(json!({"a": null}), json!([{"op": "test", "path": "/a", "value": null}])).is_ok());
        assert!(run(json!({"a": 0}), json!([{"op": "test", "path": "/a", "value": null}])).is_err());
        assert!(run(json!({"a": 0}), json!([{"op": "test", "path": "/a"}])).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn doc() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (0..100i64).prop_map(Value::from),
            "[a-z~/]{0,3}".prop_map(Value::from)
        ];
        leaf.prop_recursive(3, 20, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z~/]{1,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn escape(token: &str) -> String {
        token.replace('~', "~0").replace('/', "~1")
    }

    proptest! {
        #[test]
        fn add_then_remove_restores_the_document(
            mut fields in proptest::collection::btree_map("[a-z]{1,2}", doc(), 0..4),
            key in "[a-z~/]{1,3}",
            value in doc(),
        ) {
            fields.remove(&key);
            let original = Value::Object(fields.into_iter().collect());
            let path = format!("/{}", escape(&key));
            let patch = json!([
                {"op": "test", "path": path, "value": null},
                {"op": "add", "path": path, "value": value},
                {"op": "test", "path": path, "value": value},
                {"op": "remove", "path": path}
            ]);
            prop_assert_eq!(json_patch(&original, &patch).unwrap(), original);
        }

        #[test]
        fn copy_then_test_sees_the_same_value(
            fields in proptest::collection::btree_map("[a-z]{1,2}", doc(), 1..4),
        ) {
            let (key, value) = fields.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
            let original = Value::Object(fields.into_iter().collect());
            let patch = json!([
                {"op": "copy", "from": format!("/{key}"), "path": "/copied~1here"},
                {"op": "test", "path": "/copied~1here", "value": value}
            ]);
            let out = json_patch(&original, &patch).unwrap();
            prop_assert_eq!(&out["copied/here"], &value);
        }
    }
}
