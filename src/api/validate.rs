//! Spec rules that the CRD schema cannot hold, checked by the controller before any
//! upstream request (Stackable's "validate" step).
//!
//! kube-apiserver only compiles a CEL `x-kubernetes-validations` rule on a node it can give a
//! CEL type. Are.na metadata values are untyped (any scalar), so the metadata map has no CEL
//! type and a rule on its keys makes the whole CRD invalid ("failed to convert to declType
//! for CEL validation rules"). The key rule therefore lives here: a Connection that breaks it
//! is `Ready=False` reason `InvalidSpec`, with no upstream request and no retry until the spec
//! changes. The chart's ValidatingAdmissionPolicy (`templates/validating-admission-policy.yaml`)
//! states the same rule in CEL, whose admission-time evaluation is dynamic, so `kubectl
//! apply` is refused with the same message when the policy is installed.

use super::ConnectionSpec;

/// Are.na metadata keys (docs/providers.md, Are.na): 1 to 40 ASCII letters, digits
/// or underscores.
pub const ARENA_METADATA_KEY_PATTERN: &str = "^[A-Za-z0-9_]{1,40}$";

/// Are.na's bounds (docs/providers.md, Are.na), also the CRD schema's for the inline map.
const MAX_ARENA_KEYS: usize = 50;
const MAX_ARENA_VALUE_CHARS: usize = 2000;

/// How many characters of an offending key a message shows: keys are unbounded in length,
/// and a condition message may not exceed 32768 bytes (metav1.Condition). With at most 50
/// keys (the schema's `maxProperties`) the message stays below 3000 characters.
const SHOWN_KEY_CHARS: usize = 50;

/// Why a Connection spec is invalid although the API server admitted it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Are.na metadata keys outside [`ARENA_METADATA_KEY_PATTERN`], sorted.
    #[error("Are.na metadata keys must match ^[A-Za-z0-9_]{{1,40}}$: {}", shown(.0))]
    ArenaMetadataKeys(Vec<String>),
    /// More than 50 keys once `metadataFrom` is merged in (the schema bounds the inline map).
    #[error("Are.na metadata holds {0} keys once metadataFrom is merged in; at most 50 are allowed")]
    ArenaMetadataCount(usize),
    /// String values longer than 2000 characters once `metadataFrom` is merged in.
    #[error("Are.na metadata values may hold at most 2000 characters: {}", shown(.0))]
    ArenaMetadataValues(Vec<String>),
}

/// Whether `key` may be an Are.na metadata key ([`ARENA_METADATA_KEY_PATTERN`]).
pub fn is_arena_metadata_key(key: &str) -> bool {
    (1..=40).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The rules of a Connection spec that admission may not have checked.
pub fn validate_spec(spec: &ConnectionSpec) -> Result<(), SpecError> {
    if let Some(arena) = &spec.arena {
        let mut bad: Vec<String> = arena.metadata.keys().filter(|k| !is_arena_metadata_key(k)).cloned().collect();
        if !bad.is_empty() {
            // Byte order, as CEL's `sort()` orders strings: the same message either way.
            bad.sort();
            return Err(SpecError::ArenaMetadataKeys(bad));
        }
        // Schema constraints for inline keys; keys merged in from metadataFrom (the
        // controller validates the merged spec too) are only checked here.
        if arena.metadata.len() > MAX_ARENA_KEYS {
            return Err(SpecError::ArenaMetadataCount(arena.metadata.len()));
        }
        let mut long: Vec<String> = arena
            .metadata
            .iter()
            .filter(|(_, v)| v.as_str().is_some_and(|s| s.chars().count() > MAX_ARENA_VALUE_CHARS))
            .map(|(k, _)| k.clone())
            .collect();
        if !long.is_empty() {
            long.sort();
            return Err(SpecError::ArenaMetadataValues(long));
        }
    }
    Ok(())
}

/// `"a", "b"`: each key quoted as is and cut to [`SHOWN_KEY_CHARS`] characters (`...`
/// marks a cut), the policy's `messageExpression` doing the same.
fn shown(keys: &[String]) -> String {
    keys.iter()
        .map(|k| match k.char_indices().nth(SHOWN_KEY_CHARS) {
            Some((cut, _)) => format!("\"{}...\"", &k[..cut]),
            None => format!("\"{k}\""),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arena(metadata: serde_json::Value) -> ConnectionSpec {
        serde_json::from_value(json!({
            "providerRef": {"name": "a"}, "connectionId": "1", "arena": {"metadata": metadata}
        }))
        .unwrap()
    }

    #[test]
    fn keys_follow_the_are_na_pattern() {
        let pattern = regex::Regex::new(ARENA_METADATA_KEY_PATTERN).unwrap();
        for key in [
            "a",
            "A_1",
            "snake_case",
            "x".repeat(40).as_str(),
            "",
            "bad-key",
            "x y",
            "a.b",
            "é",
            "k\n",
            "x".repeat(41).as_str(),
            "ÿ",
        ] {
            assert_eq!(is_arena_metadata_key(key), pattern.is_match(key), "{key:?}");
        }
    }

    #[test]
    fn valid_specs_pass() {
        assert_eq!(validate_spec(&arena(json!({"reviewed": true, "score": 0.5, "K_9": "x"}))), Ok(()));
        assert_eq!(validate_spec(&arena(json!({}))), Ok(()));
        let datagrid: ConnectionSpec = serde_json::from_value(json!({
            "providerRef": {"name": "d"}, "connectionId": "c", "datagrid": {"name": "bad-key"}
        }))
        .unwrap();
        assert_eq!(validate_spec(&datagrid), Ok(()));
    }

    #[test]
    fn the_message_names_every_offending_key_sorted() {
        let err = validate_spec(&arena(json!({"x y": 1, "ok": 2, "bad-key": true, "Z-": "v", "a.b": 1}))).unwrap_err();
        assert_eq!(err, SpecError::ArenaMetadataKeys(vec!["Z-".into(), "a.b".into(), "bad-key".into(), "x y".into()]));
        assert_eq!(
            err.to_string(),
            r#"Are.na metadata keys must match ^[A-Za-z0-9_]{1,40}$: "Z-", "a.b", "bad-key", "x y""#
        );
    }

    #[test]
    fn merged_metadata_is_bounded_like_the_inline_map() {
        let many: serde_json::Map<String, serde_json::Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(validate_spec(&arena(serde_json::Value::Object(many))), Err(SpecError::ArenaMetadataCount(51)));
        let err = validate_spec(&arena(json!({"ok": "x", "long": "y".repeat(2001)}))).unwrap_err();
        assert_eq!(err.to_string(), r#"Are.na metadata values may hold at most 2000 characters: "long""#);
        assert_eq!(validate_spec(&arena(json!({"ok": "é".repeat(2000)}))), Ok(()));
    }

    #[test]
    fn long_keys_are_cut_in_the_message() {
        let long = "é".repeat(60);
        let err = validate_spec(&arena(json!({ "k".repeat(41): 1, long.clone(): 2 }))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                r#"Are.na metadata keys must match ^[A-Za-z0-9_]{{1,40}}$: "{}", "{}...""#,
                "k".repeat(41),
                "é".repeat(50)
            )
        );
        // Fifty keys of any length stay far below the 32768-byte limit of a condition message.
        let many: serde_json::Map<String, serde_json::Value> =
            (0..50).map(|i| (format!("{i}-{}", "x".repeat(10_000)), json!(1))).collect();
        let err = validate_spec(&arena(serde_json::Value::Object(many))).unwrap_err();
        assert!(err.to_string().len() < 4000, "{}", err.to_string().len());
    }
}
