//! Validation of Nango requests, as the server's zod schemas do it (docs/providers.md, Nango): the
//! strict metadata body, the strict empty query on writes, and the queries of the two reads.
//! Pure: input in, typed request or zod-like issues out.

use serde_json::{Map, Value};

use super::zod::{
    CONNECTION_ID, Issue, PROVIDER_CONFIG_KEY, StringCheck, check_string, invalid_type, path, unrecognized_keys,
};

/// A validated `PATCH`/`POST /connections/metadata` body.
#[derive(Debug, PartialEq)]
pub struct MetadataWrite {
    pub connection_ids: Vec<String>,
    /// `connection_id` was sent as an array (changes the 404 message).
    pub many: bool,
    pub provider_config_key: String,
    pub metadata: Map<String, Value>,
}

/// `z.object({connection_id: union([connectionId, array(connectionId)]), provider_config_key,
/// metadata: record(unknown)}).strict()`. All three are required; extra keys are refused.
pub fn metadata_body(body: &Value) -> Result<MetadataWrite, Vec<Issue>> {
    let Value::Object(fields) = body else {
        return Err(vec![invalid_type("object", Some(body), vec![])]);
    };
    let mut issues = Vec::new();

    let id_path = path(&["connection_id"]);
    let connection_id = fields.get("connection_id");
    let ids = match connection_id {
        Some(Value::String(s)) => match super::zod::string_checks(s, &CONNECTION_ID, 255, &id_path) {
            StringCheck::Ok => Some((vec![s.clone()], false)),
            other => {
                issues.extend(other.into_issues());
                None
            }
        },
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            // zod's union returns the issues of the first option that got past the type
            // check (here the array) when it is only "dirty".
            let mut element_issues = Vec::new();
            let mut ids = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let mut at = id_path.clone();
                at.push(Value::from(index));
                element_issues.extend(check_string(Some(item), &CONNECTION_ID, 255, &at).into_issues());
                ids.push(item.as_str().unwrap_or_default().to_owned());
            }
            if element_issues.is_empty() {
                Some((ids, true))
            } else {
                issues.extend(element_issues);
                None
            }
        }
        _ => {
            issues.push(Issue { code: "invalid_union", message: "Invalid input".into(), path: id_path });
            None
        }
    };

    let key_check =
        check_string(fields.get("provider_config_key"), &PROVIDER_CONFIG_KEY, 255, &path(&["provider_config_key"]));
    let provider_config_key = match key_check {
        StringCheck::Ok => fields.get("provider_config_key").and_then(Value::as_str).map(str::to_owned),
        other => {
            issues.extend(other.into_issues());
            None
        }
    };

    let metadata = match fields.get("metadata") {
        Some(Value::Object(map)) => Some(map.clone()),
        other => {
            issues.push(invalid_type("object", other, path(&["metadata"])));
            None
        }
    };

    let extra: Vec<String> = fields
        .keys()
        .filter(|k| !matches!(k.as_str(), "connection_id" | "provider_config_key" | "metadata"))
        .cloned()
        .collect();
    if !extra.is_empty() {
        issues.push(unrecognized_keys(&extra, vec![]));
    }

    match (ids, provider_config_key, metadata) {
        (Some((connection_ids, many)), Some(provider_config_key), Some(metadata)) if issues.is_empty() => {
            Ok(MetadataWrite { connection_ids, many, provider_config_key, metadata })
        }
        _ => Err(issues),
    }
}

/// The query string parsed as Express's `qs` does for the shapes Nango uses:
/// `k=v` → string, repeated `k` → array, `k[sub]=v` → object, `k[]=v` → array.
pub fn parse_query(raw: Option<&str>) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(raw) = raw else { return out };
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let value = Value::String(value.into_owned());
        match name.split_once('[') {
            Some((top, rest)) if rest.ends_with(']') => {
                let sub = &rest[..rest.len() - 1];
                let entry = out.entry(top.to_owned());
                if sub.is_empty() {
                    let slot = entry.or_insert_with(|| Value::Array(Vec::new()));
                    push_value(slot, value);
                } else if let Value::Object(map) = entry.or_insert_with(|| Value::Object(Map::new())) {
                    match map.get_mut(sub) {
                        Some(existing) => push_value(existing, value),
                        None => {
                            map.insert(sub.to_owned(), value);
                        }
                    }
                }
            }
            _ => match out.get_mut(name.as_ref()) {
                Some(existing) => push_value(existing, value),
                None => {
                    out.insert(name.into_owned(), value);
                }
            },
        }
    }
    out
}

fn push_value(slot: &mut Value, value: Value) {
    match slot {
        Value::Array(items) => items.push(value),
        other => {
            let first = std::mem::take(other);
            *other = Value::Array(vec![first, value]);
        }
    }
}

fn unknown_keys(query: &Map<String, Value>, known: &[&str]) -> Option<Issue> {
    let extra: Vec<String> = query.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
    (!extra.is_empty()).then(|| unrecognized_keys(&extra, vec![]))
}

/// `requireEmptyQuery`: any query parameter on the metadata writes is refused.
pub fn empty_query(raw: Option<&str>) -> Result<(), Vec<Issue>> {
    match unknown_keys(&parse_query(raw), &[]) {
        Some(issue) => Err(vec![issue]),
        None => Ok(()),
    }
}

/// Query of `GET /connections/{id}`.
#[derive(Debug, PartialEq)]
pub struct GetQuery {
    pub provider_config_key: String,
    /// Any of `force_refresh`, `refresh_token`, `refresh_github_app_jwt_token` is `true`.
    pub wants_credentials: bool,
}

const BOOL_FLAGS: [&str; 3] = ["force_refresh", "refresh_token", "refresh_github_app_jwt_token"];

pub fn get_query(raw: Option<&str>) -> Result<GetQuery, Vec<Issue>> {
    let query = parse_query(raw);
    let mut issues = Vec::new();
    let key = query.get("provider_config_key");
    issues.extend(check_string(key, &PROVIDER_CONFIG_KEY, 255, &path(&["provider_config_key"])).into_issues());
    let mut wants_credentials = false;
    for flag in BOOL_FLAGS {
        match query.get(flag) {
            None => {}
            Some(Value::String(v)) if v == "true" => wants_credentials = true,
            Some(Value::String(v)) if v == "false" => {}
            Some(other) => issues.push(bool_issue(other, flag)),
        }
    }
    let mut known = vec!["provider_config_key"];
    known.extend(BOOL_FLAGS);
    issues.extend(unknown_keys(&query, &known));
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(GetQuery { provider_config_key: key.and_then(Value::as_str).unwrap_or_default().to_owned(), wants_credentials })
}

/// Boolean query flags are the strings `true`/`false` (zod enum).
fn bool_issue(value: &Value, flag: &str) -> Issue {
    match value {
        Value::String(v) => Issue {
            code: "invalid_enum_value",
            message: format!("Invalid enum value. Expected 'true' | 'false', received '{v}'"),
            path: path(&[flag]),
        },
        other => invalid_type("string", Some(other), path(&[flag])),
    }
}

/// `connectionId` path parameter (`invalid_uri_params` when it fails).
pub fn connection_id_param(id: &str) -> Result<(), Vec<Issue>> {
    let issues = super::zod::string_checks(id, &CONNECTION_ID, 255, &path(&["connectionId"])).into_issues();
    if issues.is_empty() { Ok(()) } else { Err(issues) }
}

/// Query of `GET /connections` (docs/providers.md, Nango; connectionId, search, integrationId,
/// tags[k], limit 1..2000, page; plus the deprecated end-user filters).
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    pub connection_id: Option<String>,
    pub search: Option<String>,
    pub integration_ids: Option<Vec<String>>,
    /// Tag filters with lower-cased keys; all must match.
    pub tags: Vec<(String, String)>,
    pub end_user_id: Option<String>,
    pub end_user_organization_id: Option<String>,
    pub limit: Option<usize>,
    pub page: usize,
}

pub fn list_query(raw: Option<&str>) -> Result<ListQuery, Vec<Issue>> {
    let query = parse_query(raw);
    let mut issues = Vec::new();
    let mut out = ListQuery::default();
    let text = |name: &str, issues: &mut Vec<Issue>| -> Option<String> {
        match query.get(name)? {
            Value::String(s) if s.is_empty() => {
                issues.push(Issue {
                    code: "too_small",
                    message: "String must contain at least 1 character(s)".into(),
                    path: path(&[name]),
                });
                None
            }
            Value::String(s) if s.encode_utf16().count() > 255 => {
                issues.push(Issue {
                    code: "too_big",
                    message: "String must contain at most 255 character(s)".into(),
                    path: path(&[name]),
                });
                None
            }
            Value::String(s) => Some(s.clone()),
            other => {
                issues.push(invalid_type("string", Some(other), path(&[name])));
                None
            }
        }
    };
    out.connection_id = text("connectionId", &mut issues);
    out.search = text("search", &mut issues);
    out.end_user_id = text("endUserId", &mut issues);
    out.end_user_organization_id = text("endUserOrganizationId", &mut issues);
    out.integration_ids = text("integrationId", &mut issues)
        .map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect());
    match query.get("tags") {
        None => {}
        Some(Value::Object(tags)) => {
            for (key, value) in tags {
                match value {
                    Value::String(v) => out.tags.push((key.to_lowercase(), v.clone())),
                    other => issues.push(invalid_type("string", Some(other), path(&["tags", key]))),
                }
            }
        }
        Some(other) => issues.push(invalid_type("object", Some(other), path(&["tags"]))),
    }
    out.limit = number(query.get("limit"), "limit", 1, 2000, &mut issues);
    out.page = number(query.get("page"), "page", 0, u32::MAX as usize, &mut issues).unwrap_or(0);
    issues.extend(unknown_keys(
        &query,
        &["connectionId", "search", "endUserId", "endUserOrganizationId", "integrationId", "tags", "limit", "page"],
    ));
    if issues.is_empty() { Ok(out) } else { Err(issues) }
}

/// `z.coerce.number().int().min(min).max(max)`.
fn number(value: Option<&Value>, name: &str, min: usize, max: usize, issues: &mut Vec<Issue>) -> Option<usize> {
    let raw = match value? {
        Value::String(s) => s,
        other => {
            issues.push(invalid_type("number", Some(other), path(&[name])));
            return None;
        }
    };
    let Ok(n) = raw.trim().parse::<f64>() else {
        issues.push(Issue {
            code: "invalid_type",
            message: "Expected number, received nan".into(),
            path: path(&[name]),
        });
        return None;
    };
    if n.fract() != 0.0 {
        issues.push(Issue {
            code: "invalid_type",
            message: "Expected integer, received float".into(),
            path: path(&[name]),
        });
        return None;
    }
    if n < min as f64 {
        issues.push(Issue {
            code: "too_small",
            message: format!("Number must be greater than or equal to {min}"),
            path: path(&[name]),
        });
        return None;
    }
    if n > max as f64 {
        issues.push(Issue {
            code: "too_big",
            message: format!("Number must be less than or equal to {max}"),
            path: path(&[name]),
        });
        return None;
    }
    Some(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(issues: &[Issue]) -> Vec<&str> {
        issues.iter().map(|i| i.code).collect()
    }

    #[test]
    fn accepts_a_string_or_an_array_of_ids() {
        let one =
            metadata_body(&json!({"connection_id": "a", "provider_config_key": "k", "metadata": {"x": 1}})).unwrap();
        assert_eq!(one.connection_ids, ["a"]);
        assert!(!one.many);
        let many =
            metadata_body(&json!({"connection_id": ["a", "b"], "provider_config_key": "k", "metadata": {}})).unwrap();
        assert_eq!(many.connection_ids, ["a", "b"]);
        assert!(many.many);
        let none = metadata_body(&json!({"connection_id": [], "provider_config_key": "k", "metadata": {}})).unwrap();
        assert!(none.connection_ids.is_empty());
    }

    #[test]
    fn reports_every_problem_like_zod() {
        let issues = metadata_body(&json!({"connection_id": 5, "metadata": null, "extra": 1, "more": 2})).unwrap_err();
        assert_eq!(codes(&issues), ["invalid_union", "invalid_type", "invalid_type", "unrecognized_keys"]);
        assert_eq!(issues[1].message, "Required");
        assert_eq!(issues[2].message, "Expected object, received null");
        assert_eq!(issues[3].message, "Unrecognized key(s) in object: 'extra', 'more'");
        let issues =
            metadata_body(&json!({"connection_id": "", "provider_config_key": "", "metadata": []})).unwrap_err();
        assert_eq!(codes(&issues), ["invalid_string", "invalid_string", "invalid_type"]);
        assert_eq!(issues[0].path, vec![json!("connection_id")]);
        let issues = metadata_body(&json!({"connection_id": ["ok", ""], "provider_config_key": "k", "metadata": {}}))
            .unwrap_err();
        assert_eq!(issues[0].path, vec![json!("connection_id"), json!(1)]);
        assert_eq!(codes(&metadata_body(&json!([])).unwrap_err()), ["invalid_type"]);
    }

    #[test]
    fn parses_queries_like_qs() {
        let q = parse_query(Some("a=1&a=2&tags[Env]=prod&b[]=x&c=%20y"));
        assert_eq!(Value::Object(q), json!({"a": ["1", "2"], "tags": {"Env": "prod"}, "b": ["x"], "c": " y"}));
    }

    #[test]
    fn checks_the_read_queries() {
        assert!(empty_query(None).is_ok());
        assert_eq!(empty_query(Some("x=1")).unwrap_err()[0].message, "Unrecognized key(s) in object: 'x'");
        let q = get_query(Some("provider_config_key=k&force_refresh=false")).unwrap();
        assert!(!q.wants_credentials);
        assert!(get_query(Some("provider_config_key=k&refresh_token=true")).unwrap().wants_credentials);
        assert_eq!(
            codes(&get_query(Some("force_refresh=yes&x=1")).unwrap_err()),
            ["invalid_type", "invalid_enum_value", "unrecognized_keys"]
        );
        let l = list_query(Some("integrationId=a,b&tags[Env]=prod&limit=5&page=2")).unwrap();
        assert_eq!(l.integration_ids, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(l.tags, vec![("env".to_owned(), "prod".to_owned())]);
        assert_eq!((l.limit, l.page), (Some(5), 2));
        assert_eq!(codes(&list_query(Some("limit=0")).unwrap_err()), ["too_small"]);
        assert_eq!(codes(&list_query(Some("limit=2001")).unwrap_err()), ["too_big"]);
        assert_eq!(codes(&list_query(Some("limit=abc&foo=1")).unwrap_err()), ["invalid_type", "unrecognized_keys"]);
    }
}
