//! The subset of Kubernetes JSONPath that `additionalPrinterColumns` use ("simple JSON
//! paths" per the CRD docs): `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`, and filters
//! `[?(@.type=="Ready")]` / `[?(@.x)]`. Results come back in document order.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Filter { path: Vec<String>, op: Option<(bool, Value)> },
}

/// Parse a path (with or without the `{...}` braces kubectl allows). `None` when the
/// path is outside the supported subset.
fn parse(path: &str) -> Option<Vec<Step>> {
    let p = path.trim();
    let p = p.strip_prefix('{').and_then(|x| x.strip_suffix('}')).unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name == "*" {
                    steps.push(Step::Wildcard);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let close = find_close(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            _ => {
                // A leading bare name (`spec.x`) is accepted like `.spec.x`.
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    Some(steps)
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (j, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let q = s.chars().next()?;
    if (q == '\'' || q == '"') && s.len() >= 2 && s.ends_with(q) { Some(s[1..s.len() - 1].to_owned()) } else { None }
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::Wildcard);
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Some(Step::Index(n));
    }
    let expr = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, op) = if let Some((l, r)) = expr.split_once("==") {
        (l.trim(), Some((true, literal(r.trim())?)))
    } else if let Some((l, r)) = expr.split_once("!=") {
        (l.trim(), Some((false, literal(r.trim())?)))
    } else {
        (expr, None)
    };
    let rel = lhs.strip_prefix('@')?;
    let path = rel.split('.').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    Some(Step::Filter { path, op })
}

fn literal(s: &str) -> Option<Value> {
    if let Some(text) = unquote(s) {
        return Some(Value::String(text));
    }
    serde_json::from_str(s).ok()
}

/// Every value the path selects in `root`.
pub(super) fn find<'a>(root: &'a Value, path: &str) -> Option<Vec<&'a Value>> {
    let steps = parse(path)?;
    let mut current = vec![root];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(name) => next.extend(v.get(name)),
                Step::Index(i) => {
                    if let Value::Array(items) = v {
                        let idx = if *i < 0 { items.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(idx).ok().and_then(|x| items.get(x)));
                    }
                }
                Step::Wildcard => match v {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter { path, op } => {
                    if let Value::Array(items) = v {
                        for item in items {
                            let found = path.iter().try_fold(item, |acc, k| acc.get(k));
                            let keep = match (found, op) {
                                (Some(_), None) => true,
                                (Some(x), Some((true, lit))) => x == lit,
                                (Some(x), Some((false, lit))) => x != lit,
                                (None, _) => false,
                            };
                            if keep {
                                next.push(item);
                            }
                        }
                    }
                }
            }
        }
        current = next;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::find;
    use serde_json::json;

    #[test]
    fn fields_indexes_filters() {
        let o = json!({"spec": {"a.b": 1, "list": [{"n": "x"}, {"n": "y"}]},
            "status": {"conditions": [{"type": "Synced", "status": "True"}, {"type": "Ready", "status": "False"}]}});
        assert_eq!(find(&o, ".spec.list[1].n").unwrap(), vec![&json!("y")]);
        assert_eq!(find(&o, ".spec.list[-1].n").unwrap(), vec![&json!("y")]);
        assert_eq!(find(&o, ".spec['a.b']").unwrap(), vec![&json!(1)]);
        assert_eq!(find(&o, ".spec.list[*].n").unwrap(), vec![&json!("x"), &json!("y")]);
        assert_eq!(find(&o, r#".status.conditions[?(@.type=="Ready")].status"#).unwrap(), vec![&json!("False")]);
        assert_eq!(find(&o, ".status.conditions[?(@.type=='Synced')].status").unwrap(), vec![&json!("True")]);
        assert!(find(&o, ".status.missing").unwrap().is_empty());
        assert_eq!(find(&o, "{.spec.list[0].n}").unwrap(), vec![&json!("x")]);
    }
}
