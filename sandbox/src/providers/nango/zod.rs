//! Validation issues shaped like Nango's: the server validates with zod (v3) and answers
//! `{"error":{"code":"invalid_body"|…,"errors":[{"code","message","path"}]}}`
//! (`zodErrorToHTTP`, docs/providers.md, Nango). These helpers reproduce zod v3's issue codes and
//! messages for the checks Nango's schemas use.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Issue {
    pub code: &'static str,
    pub message: String,
    pub path: Vec<Value>,
}

/// Where in the input an issue is.
pub type Path = Vec<Value>;

pub fn path(segments: &[&str]) -> Path {
    segments.iter().map(|s| Value::String((*s).to_owned())).collect()
}

/// zod's `getParsedType` names, as used in "Expected X, received Y".
pub fn parsed_type(value: Option<&Value>) -> &'static str {
    match value {
        None => "undefined",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Array(_)) => "array",
        Some(Value::Object(_)) => "object",
    }
}

/// zod's `invalid_type` issue: "Required" for a missing value.
pub fn invalid_type(expected: &str, value: Option<&Value>, at: Path) -> Issue {
    let message = match value {
        None => "Required".to_owned(),
        Some(v) => format!("Expected {expected}, received {}", parsed_type(Some(v))),
    };
    Issue { code: "invalid_type", message, path: at }
}

/// `z.object({..}).strict()` on extra keys.
pub fn unrecognized_keys(keys: &[String], at: Path) -> Issue {
    let listed: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
    Issue {
        code: "unrecognized_keys",
        message: format!("Unrecognized key(s) in object: {}", listed.join(", ")),
        path: at,
    }
}

/// `connectionIdSchema` in Nango's helpers/validation.ts.
pub static CONNECTION_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^[a-zA-Z0-9,.;:=+~\[\]|@${}"'\\/_ -]+$"#).expect("static regex"));
/// `providerConfigKeySchema` in Nango's helpers/validation.ts.
pub static PROVIDER_CONFIG_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9~:.@ _-]+$").expect("static regex"));

/// `z.string().regex(re).max(max)`: the type issue, or every failed check (zod runs all
/// checks of a string and reports each).
pub enum StringCheck {
    Ok,
    /// Wrong type: the value is not a string at all (zod: INVALID).
    WrongType(Issue),
    /// A string that fails checks (zod: DIRTY).
    Failed(Vec<Issue>),
}

pub fn check_string(value: Option<&Value>, re: &Regex, max: usize, at: &Path) -> StringCheck {
    let Some(Value::String(s)) = value else {
        return StringCheck::WrongType(invalid_type("string", value, at.clone()));
    };
    string_checks(s, re, max, at)
}

pub fn string_checks(s: &str, re: &Regex, max: usize, at: &Path) -> StringCheck {
    let mut issues = Vec::new();
    if !re.is_match(s) {
        issues.push(Issue { code: "invalid_string", message: "Invalid".into(), path: at.clone() });
    }
    // zod measures `.length`, i.e. UTF-16 code units.
    if s.encode_utf16().count() > max {
        issues.push(Issue {
            code: "too_big",
            message: format!("String must contain at most {max} character(s)"),
            path: at.clone(),
        });
    }
    if issues.is_empty() { StringCheck::Ok } else { StringCheck::Failed(issues) }
}

impl StringCheck {
    pub fn into_issues(self) -> Vec<Issue> {
        match self {
            StringCheck::Ok => Vec::new(),
            StringCheck::WrongType(issue) => vec![issue],
            StringCheck::Failed(issues) => issues,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_match_zod_v3() {
        assert_eq!(invalid_type("string", None, vec![]).message, "Required");
        assert_eq!(invalid_type("object", Some(&json!([])), vec![]).message, "Expected object, received array");
        assert_eq!(
            unrecognized_keys(&["a".into(), "b".into()], vec![]).message,
            "Unrecognized key(s) in object: 'a', 'b'"
        );
    }

    #[test]
    fn string_checks_report_every_failure() {
        let at = path(&["connection_id"]);
        let long_bad = "!".repeat(256);
        let issues = string_checks(&long_bad, &CONNECTION_ID, 255, &at).into_issues();
        assert_eq!(issues.iter().map(|i| i.code).collect::<Vec<_>>(), ["invalid_string", "too_big"]);
        assert!(matches!(string_checks("", &CONNECTION_ID, 255, &at), StringCheck::Failed(_)));
        assert!(matches!(string_checks("a b/c@d{\"x\"}", &CONNECTION_ID, 255, &at), StringCheck::Ok));
        assert!(matches!(string_checks("a/b", &PROVIDER_CONFIG_KEY, 255, &at), StringCheck::Failed(_)));
    }
}
