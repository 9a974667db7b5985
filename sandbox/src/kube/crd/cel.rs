//! CEL `x-kubernetes-validations`, evaluated the way apiextensions-apiserver's
//! `apiserver/schema/cel` validator does, on the `cel` crate with the Kubernetes function
//! libraries registered by `kube-cel`.
//!
//! We keep our own schema walk (rather than `kube_cel::Validator`) because the wording
//! and the old-value correlation must match the server: errors are
//! `field.Invalid(path, <schema type>, message)` (or Forbidden/Required/Duplicate per
//! `reason`), transition rules only see `oldSelf` where the old value correlates (object
//! properties, map keys, `set`/`map` list items — never atomic list items), `null` values
//! are not evaluated, and at the root `metadata` only exposes `name` and `generateName`.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::objects::{Key, Map as CelMap, OptionalValue};
use kube_cel::KubeCelExt;
use serde_json::Value;

use super::schema::{self, ListType};
use crate::kube::field_error::FieldError;

/// One compiled rule of a schema node.
struct Rule {
    rule: String,
    program: cel::Program,
    message: Option<String>,
    message_program: Option<cel::Program>,
    reason: Option<String>,
    field_path: Option<String>,
    optional_old_self: bool,
    uses_old_self: bool,
}

/// The rules of one schema node and of the nodes below it (only branches holding rules).
#[derive(Default)]
pub(super) struct Node {
    rules: Vec<Rule>,
    properties: BTreeMap<String, Node>,
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.properties.is_empty()
            && self.additional.is_none()
            && self.items.is_none()
    }
}

/// Compiled rules of a whole `openAPIV3Schema`. Shared because `cel::Program` is not `Clone`.
#[derive(Clone, Default)]
pub(super) struct Rules(Arc<Node>);

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rules")
    }
}

const REASONS: &[&str] = &[
    "FieldValueInvalid",
    "FieldValueForbidden",
    "FieldValueRequired",
    "FieldValueDuplicate",
];

/// Compile every rule of `root`. Problems are reported against `schema_path` (e.g.
/// `spec.versions[0].schema.openAPIV3Schema`) as `validate_crd` must report them.
pub(super) fn compile(root: &Value, schema_path: &str) -> (Rules, Vec<FieldError>) {
    let mut errs = Vec::new();
    let node = compile_node(root, schema_path, None, &mut errs);
    (Rules(Arc::new(node)), errs)
}

fn compile_node(
    s: &Value,
    path: &str,
    uncorrelatable: Option<&str>,
    errs: &mut Vec<FieldError>,
) -> Node {
    let mut node = Node::default();
    if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        let vpath = schema::join(path, "x-kubernetes-validations");
        for (i, raw) in rules.iter().enumerate() {
            if let Some(rule) = compile_rule(raw, &schema::index(&vpath, i), uncorrelatable, errs) {
                node.rules.push(rule);
            }
        }
    }
    if let Some(props) = schema::properties(s) {
        for (k, ps) in props {
            let child = compile_node(
                ps,
                &schema::key(&schema::join(path, "properties"), k),
                uncorrelatable,
                errs,
            );
            if !child.is_empty() {
                node.properties.insert(k.clone(), child);
            }
        }
    }
    if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object()) {
        let child = compile_node(
            extra,
            &schema::join(path, "additionalProperties"),
            uncorrelatable,
            errs,
        );
        if !child.is_empty() {
            node.additional = Some(Box::new(child));
        }
    }
    if let Some(items) = schema::items(s) {
        let items_path = schema::join(path, "items");
        // Items of an atomic list have no old counterpart: transition rules there are refused.
        let below = match (uncorrelatable, schema::list_type(s)) {
            (Some(u), _) => Some(u.to_owned()),
            (None, ListType::Atomic) => Some(items_path.clone()),
            (None, _) => None,
        };
        let child = compile_node(items, &items_path, below.as_deref(), errs);
        if !child.is_empty() {
            node.items = Some(Box::new(child));
        }
    }
    node
}

/// Go's `%#v` of the apiextensions ValidationRule, the value the server shows for a rule
/// that fails to compile.
fn rule_go_repr(raw: &Value) -> String {
    let s = |k: &str| format!("{:?}", raw.get(k).and_then(Value::as_str).unwrap_or(""));
    let reason = match raw.get("reason").and_then(Value::as_str) {
        Some(_) => "(*apiextensions.FieldValueErrorReason)(0xc000000000)".to_owned(),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".to_owned(),
    };
    let optional = match raw.get("optionalOldSelf") {
        Some(Value::Bool(_)) => "(*bool)(0xc000000000)",
        _ => "(*bool)(nil)",
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        s("fieldPath")
    )
}

/// Variables a CRD rule may reference (comprehension variables aside).
fn check_references(program: &cel::Program, allowed_extra: &[String]) -> Option<String> {
    let refs = program.references();
    refs.variables()
        .into_iter()
        .find(|v| !matches!(*v, "self" | "oldSelf") && !allowed_extra.iter().any(|a| a == v))
        .map(str::to_owned)
}

/// Names bound by comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`):
/// the first argument of those calls, collected textually because the parser's
/// references include them.
fn comprehension_vars(expr: &str) -> Vec<String> {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"\.(?:all|exists|exists_one|existsOne|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,",
        )
        .expect("static regex")
    });
    RE.captures_iter(expr).map(|c| c[1].to_owned()).collect()
}

fn compile_rule(
    raw: &Value,
    path: &str,
    uncorrelatable: Option<&str>,
    errs: &mut Vec<FieldError>,
) -> Option<Rule> {
    let text = raw.get("rule").and_then(Value::as_str).unwrap_or("");
    let rule_path = schema::join(path, "rule");
    if text.trim().is_empty() {
        errs.push(FieldError::required(rule_path, "rule is not specified"));
        return None;
    }
    let message = raw
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(m) = &message {
        if m.contains('\n') {
            errs.push(FieldError::invalid(
                schema::join(path, "message"),
                &Value::String(m.clone()),
                "message must not contain line breaks",
            ));
        }
    } else if text.contains('\n') {
        errs.push(FieldError::required(
            schema::join(path, "message"),
            "message must be specified if rule contains line breaks",
        ));
    }
    let reason = raw.get("reason").and_then(Value::as_str).map(str::to_owned);
    if let Some(r) = &reason
        && !REASONS.contains(&r.as_str())
    {
        let allowed: Vec<Value> = REASONS
            .iter()
            .map(|r| Value::String((*r).to_owned()))
            .collect();
        errs.push(FieldError::not_supported(
            schema::join(path, "reason"),
            &Value::String(r.clone()),
            &allowed,
        ));
    }
    let program = match cel::Program::compile(text) {
        Ok(p) => p,
        Err(e) => {
            errs.push(FieldError::invalid(
                rule_path,
                &Value::String(String::new()),
                &format!("compilation failed: ERROR: <input>: {e}"),
            ));
            // Replace the quoted "" value by the rule's Go representation, as the server shows it.
            if let Some(last) = errs.last_mut() {
                last.message = last.message.replacen(
                    "Invalid value: \"\"",
                    &format!("Invalid value: {}", rule_go_repr(raw)),
                    1,
                );
            }
            return None;
        }
    };
    let vars = comprehension_vars(text);
    if let Some(undeclared) = check_references(&program, &vars) {
        errs.push(FieldError {
            reason: "FieldValueInvalid",
            field: rule_path.clone(),
            message: format!(
                "Invalid value: {}: compilation failed: ERROR: <input>: undeclared reference to '{undeclared}' (in container '')",
                rule_go_repr(raw)
            ),
        });
        return None;
    }
    let uses_old_self = program.references().has_variable("oldSelf");
    if uses_old_self && let Some(u) = uncorrelatable {
        errs.push(FieldError::invalid(
            rule_path,
            &Value::String(text.to_owned()),
            &format!(
                "oldSelf cannot be used on the uncorrelatable portion of the schema within {u}"
            ),
        ));
        return None;
    }
    let message_program = match raw.get("messageExpression").and_then(Value::as_str) {
        Some(expr) => match cel::Program::compile(expr) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(FieldError::invalid(
                    schema::join(path, "messageExpression"),
                    &Value::String(expr.to_owned()),
                    &format!("messageExpression compilation failed: ERROR: <input>: {e}"),
                ));
                return None;
            }
        },
        None => None,
    };
    let optional_old_self = raw
        .get("optionalOldSelf")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if optional_old_self && !uses_old_self {
        errs.push(FieldError::invalid(
            schema::join(path, "optionalOldSelf"),
            &Value::Bool(true),
            "may not be set if rule does not use oldSelf",
        ));
    }
    Some(Rule {
        rule: text.trim().to_owned(),
        program,
        message: message.map(|m| m.trim().to_owned()),
        message_program,
        reason,
        field_path: raw
            .get("fieldPath")
            .and_then(Value::as_str)
            .map(|p| p.trim_start_matches('.').to_owned()),
        optional_old_self,
        uses_old_self,
    })
}

/// Results of evaluating the rules of one object.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) errors: Vec<FieldError>,
    /// Failures ratcheted into warnings (see [`Outcome::report`]).
    pub(super) warnings: Vec<String>,
}

impl Outcome {
    /// With CRD validation ratcheting (GA in 1.33), a failing rule that does not use
    /// `oldSelf` on a value left unchanged by the update becomes a warning, not an error.
    fn report(&mut self, ratchet: bool, e: FieldError) {
        if ratchet {
            self.warnings.push(e.to_string());
        } else {
            self.errors.push(e);
        }
    }
}

/// Evaluate every rule against `obj` (and `old` on update).
pub(super) fn evaluate(rules: &Rules, root: &Value, obj: &Value, old: Option<&Value>) -> Outcome {
    let mut out = Outcome::default();
    if rules.0.is_empty() {
        return out;
    }
    let mut base = cel::Context::default();
    base.register_all();
    let obj = restrict_root_metadata(obj);
    let old = old.map(restrict_root_metadata);
    walk(&base, &rules.0, root, &obj, old.as_ref(), "", &mut out);
    out
}

/// CEL at the root sees only `metadata.name` and `metadata.generateName`.
fn restrict_root_metadata(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.retain(|k, _| k == "name" || k == "generateName");
    }
    obj
}

fn walk(
    base: &cel::Context<'_>,
    node: &Node,
    s: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    out: &mut Outcome,
) {
    if v.is_null() {
        return;
    }
    if !node.rules.is_empty() {
        let this = to_cel(v, Some(s));
        let before = old.map(|o| to_cel(o, Some(s)));
        let unchanged = old == Some(v);
        for rule in &node.rules {
            let ctx = RuleCtx {
                base,
                s,
                path,
                ratchet: unchanged && !rule.uses_old_self,
            };
            evaluate_rule(&ctx, rule, &this, before.as_ref(), out);
        }
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let old_child = old.and_then(|o| o.get(k));
                if let Some(cn) = node.properties.get(k) {
                    if let Some(cs) = schema::property(s, k) {
                        walk(base, cn, cs, child, old_child, &schema::join(path, k), out);
                    }
                } else if let (Some(cn), None) = (&node.additional, schema::property(s, k))
                    && let Some(cs) = s.get("additionalProperties")
                {
                    walk(base, cn, cs, child, old_child, &schema::key(path, k), out);
                }
            }
        }
        Value::Array(items) => {
            if let (Some(cn), Some(is)) = (&node.items, schema::items(s)) {
                let list_type = schema::list_type(s);
                let old_items = old.and_then(Value::as_array);
                for (i, item) in items.iter().enumerate() {
                    let old_item =
                        old_items.and_then(|olds| schema::correlate(&list_type, item, olds));
                    walk(base, cn, is, item, old_item, &schema::index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// Where a rule is evaluated.
struct RuleCtx<'a, 'c> {
    base: &'a cel::Context<'c>,
    s: &'a Value,
    path: &'a str,
    ratchet: bool,
}

fn evaluate_rule(
    at: &RuleCtx<'_, '_>,
    rule: &Rule,
    this: &cel::Value,
    old: Option<&cel::Value>,
    out: &mut Outcome,
) {
    let (base, s, path) = (at.base, at.s, at.path);
    // Transition rules run only when there is a comparable old value, unless
    // `optionalOldSelf` asks for them on create too (then `oldSelf` is a CEL optional).
    if rule.uses_old_self && old.is_none() && !rule.optional_old_self {
        return;
    }
    let mut ctx = base.new_inner_scope();
    ctx.add_variable_from_value("self", this.clone());
    if rule.optional_old_self {
        let opt = match old {
            Some(o) => OptionalValue::of(o.clone()),
            None => OptionalValue::none(),
        };
        ctx.add_variable_from_value("oldSelf", cel::Value::Opaque(Arc::new(opt)));
    } else if let Some(o) = old {
        ctx.add_variable_from_value("oldSelf", o.clone());
    }
    let type_value = Value::String(schema::type_of(s).to_owned());
    let default_message = || {
        rule.message
            .clone()
            .unwrap_or_else(|| format!("failed rule: {}", rule.rule))
    };
    match rule.program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => {}
        Ok(cel::Value::Bool(false)) => {
            let message = rule
                .message_program
                .as_ref()
                .and_then(|p| match p.execute(&ctx) {
                    Ok(cel::Value::String(m)) if !m.trim().is_empty() && !m.contains('\n') => {
                        Some(m.trim().to_owned())
                    }
                    _ => None,
                })
                .unwrap_or_else(default_message);
            let err_path = match &rule.field_path {
                Some(fp) if !fp.is_empty() => schema::join(path, fp),
                _ => shown_path(path),
            };
            out.report(
                at.ratchet,
                match rule.reason.as_deref() {
                    Some("FieldValueForbidden") => FieldError::forbidden(err_path, &message),
                    Some("FieldValueRequired") => FieldError::required(err_path, &message),
                    Some("FieldValueDuplicate") => FieldError::duplicate(err_path, &type_value),
                    _ => FieldError::invalid(err_path, &type_value, &message),
                },
            );
        }
        Ok(_) => out.report(
            at.ratchet,
            FieldError::invalid(
                shown_path(path),
                &type_value,
                "rule did not evaluate to a bool",
            ),
        ),
        Err(e) => {
            // `ruleErrorString`: the rule's message when it has one, else the rule text.
            let shown_rule = rule.message.as_deref().unwrap_or(&rule.rule);
            let text = e.to_string();
            let detail = if matches!(e, cel::ExecutionError::NoSuchOverload) {
                format!(
                    "'{text}': call arguments did not match a supported operator, function or macro signature for rule: {shown_rule}"
                )
            } else {
                format!("{} evaluating rule: {shown_rule}", lower_first(&text))
            };
            out.report(
                at.ratchet,
                FieldError::invalid(shown_path(path), &type_value, &detail),
            );
        }
    }
}

/// apimachinery prints the root (a nil `field.Path`) as `<nil>`.
fn shown_path(path: &str) -> String {
    if path.is_empty() {
        "<nil>".to_owned()
    } else {
        path.to_owned()
    }
}

/// cel-go's runtime errors start lower-case (`no such key: foo`).
fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

const CEL_RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Kubernetes' property-name escaping for CEL (apiserver `cel/model.Escape`): keywords
/// become `__kw__`; `__`, `.`, `-`, `/` become `__underscores__`, `__dot__`, `__dash__`,
/// `__slash__`. A single `_` stays as is.
pub(super) fn escape(name: &str) -> String {
    if CEL_RESERVED.contains(&name) {
        return format!("__{name}__");
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("__") {
            out.push_str("__underscores__");
            rest = &rest[2..];
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            other => out.push(other),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// JSON → CEL value with the schema's help: field names escaped for objects (not for
/// maps), `date-time` strings as timestamps, `duration` as durations, `byte` as bytes.
fn to_cel(v: &Value, s: Option<&Value>) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => {
            let format = s.and_then(|s| s.get("format")).and_then(Value::as_str);
            match format {
                Some("date-time") => match chrono::DateTime::parse_from_rfc3339(text) {
                    Ok(t) => cel::Value::Timestamp(t),
                    Err(_) => cel::Value::String(Arc::new(text.clone())),
                },
                Some("duration") => match parse_go_duration(text) {
                    Some(d) => cel::Value::Duration(d),
                    None => cel::Value::String(Arc::new(text.clone())),
                },
                Some("byte") => {
                    use base64::Engine;
                    match base64::engine::general_purpose::STANDARD.decode(text) {
                        Ok(b) => cel::Value::Bytes(Arc::new(b)),
                        Err(_) => cel::Value::String(Arc::new(text.clone())),
                    }
                }
                _ => cel::Value::String(Arc::new(text.clone())),
            }
        }
        Value::Array(items) => {
            let is = s.and_then(schema::items);
            cel::Value::List(Arc::new(items.iter().map(|i| to_cel(i, is)).collect()))
        }
        Value::Object(map) => {
            let is_map = s.is_some_and(|s| {
                schema::additional_properties(s).is_some() && schema::properties(s).is_none()
            });
            let mut out = std::collections::HashMap::with_capacity(map.len());
            for (k, child) in map {
                let cs = s.and_then(|s| schema::child(s, k)).filter(|c| !c.is_null());
                let key = if is_map { k.clone() } else { escape(k) };
                out.insert(Key::String(Arc::new(key)), to_cel(child, cs));
            }
            cel::Value::Map(CelMap { map: Arc::new(out) })
        }
    }
}

/// Go `time.ParseDuration` syntax (`1h30m`, `1.5s`, `300ms`).
fn parse_go_duration(s: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += n * scale;
        rest = &rest[unit_len..];
    }
    let d = chrono::Duration::nanoseconds(nanos as i64);
    Some(if neg { -d } else { d })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(root: &Value, obj: &Value, old: Option<&Value>) -> Vec<String> {
        let (rules, errs) = compile(root, "spec.versions[0].schema.openAPIV3Schema");
        assert!(errs.is_empty(), "{errs:?}");
        evaluate(&rules, root, obj, old)
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn with_spec(spec: Value) -> Value {
        json!({"type": "object", "properties": {"metadata": {"type": "object"}, "spec": spec}})
    }

    #[test]
    fn compiled_rules_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Rules>();
    }

    #[test]
    fn exactly_one_provider_block() {
        let s = with_spec(json!({
            "type": "object",
            "x-kubernetes-validations": [{
                "rule": "[has(self.nango), has(self.mielto), has(self.arena), has(self.datagrid)].filter(x, x).size() == 1",
                "message": "exactly one provider block must be set"
            }],
            "properties": {"nango": {"type": "object"}, "mielto": {"type": "object"}, "arena": {"type": "object"}, "datagrid": {"type": "object"}}
        }));
        assert!(run(&s, &json!({"spec": {"nango": {}}}), None).is_empty());
        assert_eq!(
            run(&s, &json!({"spec": {"nango": {}, "arena": {}}}), None),
            vec![r#"spec: Invalid value: "object": exactly one provider block must be set"#]
        );
        assert_eq!(
            run(&s, &json!({"spec": {}}), None),
            vec![r#"spec: Invalid value: "object": exactly one provider block must be set"#]
        );
    }

    #[test]
    fn transition_rule_runs_only_on_update_with_old_value() {
        let s = with_spec(json!({"type": "object", "properties": {"connectionId": {
            "type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "connectionId is immutable"}]
        }}}));
        let new = json!({"spec": {"connectionId": "b"}});
        assert!(run(&s, &new, None).is_empty());
        assert!(
            run(&s, &new, Some(&json!({"spec": {}}))).is_empty(),
            "no old value: not a transition"
        );
        assert!(run(&s, &new, Some(&json!({"spec": {"connectionId": "b"}}))).is_empty());
        assert_eq!(
            run(&s, &new, Some(&json!({"spec": {"connectionId": "a"}}))),
            vec![r#"spec.connectionId: Invalid value: "string": connectionId is immutable"#]
        );
    }

    #[test]
    fn map_key_pattern_and_default_message() {
        let s = with_spec(json!({"type": "object", "properties": {"metadata": {
            "type": "object",
            "maxProperties": 50,
            "additionalProperties": {"type": "string", "maxLength": 2000},
            "x-kubernetes-validations": [{"rule": "self.all(k, k.matches('^[A-Za-z0-9_]{1,40}$'))"}]
        }}}));
        assert!(run(&s, &json!({"spec": {"metadata": {"ok_key_1": "v"}}}), None).is_empty());
        assert_eq!(
            run(&s, &json!({"spec": {"metadata": {"bad-key": "v"}}}), None),
            vec![
                r#"spec.metadata: Invalid value: "object": failed rule: self.all(k, k.matches('^[A-Za-z0-9_]{1,40}$'))"#
            ]
        );
    }

    #[test]
    fn message_expression_reason_and_field_path() {
        let s = with_spec(json!({
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "messageExpression": "'min ' + string(self.min) + ' exceeds max ' + string(self.max)"},
                {"rule": "self.max < 100", "reason": "FieldValueForbidden", "fieldPath": ".max", "message": "too big"},
                {"rule": "self.max != 42", "messageExpression": "''", "message": "not the answer"}
            ],
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}
        }));
        assert_eq!(
            run(&s, &json!({"spec": {"min": 200, "max": 150}}), None),
            vec![
                r#"spec: Invalid value: "object": min 200 exceeds max 150"#,
                "spec.max: Forbidden: too big"
            ]
        );
        assert_eq!(
            run(&s, &json!({"spec": {"min": 1, "max": 42}}), None),
            vec![r#"spec: Invalid value: "object": not the answer"#]
        );
    }

    #[test]
    fn optional_old_self_sees_none_on_create() {
        let s = with_spec(
            json!({"type": "object", "properties": {"x": {"type": "string",
            "x-kubernetes-validations": [{"rule": "!oldSelf.hasValue() || oldSelf.value() == self", "optionalOldSelf": true, "message": "immutable"}]}}}),
        );
        assert!(run(&s, &json!({"spec": {"x": "a"}}), None).is_empty());
        assert_eq!(
            run(
                &s,
                &json!({"spec": {"x": "a"}}),
                Some(&json!({"spec": {"x": "b"}}))
            ),
            vec![r#"spec.x: Invalid value: "string": immutable"#]
        );
    }

    #[test]
    fn root_rules_see_only_name_in_metadata_and_runtime_errors_are_reported() {
        let s = json!({"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.metadata.name.startsWith('conn-')", "message": "name must start with conn-"},
                {"rule": "!has(self.metadata.labels)", "message": "labels hidden from CEL"}
            ],
            "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.missing == 1"}]}}});
        assert_eq!(
            run(
                &s,
                &json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {}}),
                None
            ),
            vec![
                r#"<nil>: Invalid value: "object": name must start with conn-"#,
                r#"spec: Invalid value: "object": no such key: missing evaluating rule: self.missing == 1"#,
            ]
        );
        let with_message = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.organization == oldSelf.organization", "message": "spec.organization is immutable"}
        ]}));
        assert_eq!(
            run(
                &with_message,
                &json!({"spec": {}}),
                Some(&json!({"spec": {}}))
            ),
            vec![
                r#"spec: Invalid value: "object": no such key: organization evaluating rule: spec.organization is immutable"#
            ]
        );
    }

    #[test]
    fn list_items_correlate_only_for_map_lists() {
        let item_rule = json!({"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self >= oldSelf", "message": "may not decrease"}]}}});
        let s = with_spec(json!({"type": "object", "properties": {
            "keyed": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": item_rule}
        }}));
        let old = json!({"spec": {"keyed": [{"name": "a", "v": 5}, {"name": "b", "v": 1}]}});
        let new = json!({"spec": {"keyed": [{"name": "b", "v": 2}, {"name": "a", "v": 4}]}});
        assert_eq!(
            run(&s, &new, Some(&old)),
            vec![r#"spec.keyed[1].v: Invalid value: "integer": may not decrease"#]
        );
    }

    #[test]
    fn compile_errors_are_reported_at_the_rule() {
        let s = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.a =="},
            {"rule": "foo == 1"},
            {"rule": "self.x", "reason": "Bogus"}
        ], "properties": {
            "list": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}
        }}));
        let (_, errs) = compile(&s, "spec.versions[0].schema.openAPIV3Schema");
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[2].reason",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[list].items.x-kubernetes-validations[0].rule",
            ]
        );
        assert!(
            errs[0]
                .message
                .starts_with("Invalid value: apiextensions.ValidationRule{Rule:\"self.a ==\""),
            "{}",
            errs[0].message
        );
        assert!(errs[0].message.contains("compilation failed"));
        assert!(errs[1].message.contains("undeclared reference to 'foo'"));
        assert!(
            errs[3]
                .message
                .contains("oldSelf cannot be used on the uncorrelatable portion of the schema")
        );
    }

    #[test]
    fn escaping_follows_kubernetes() {
        assert_eq!(escape("namespace"), "__namespace__");
        assert_eq!(escape("a_b"), "a_b");
        assert_eq!(escape("a__b"), "a__underscores__b");
        assert_eq!(escape("x-y.z/w"), "x__dash__y__dot__z__slash__w");
        let s = with_spec(
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.__namespace__ == 'n' && self.x__dash__y == 1"}],
            "properties": {"namespace": {"type": "string"}, "x-y": {"type": "integer"}}}),
        );
        assert!(run(&s, &json!({"spec": {"namespace": "n", "x-y": 1}}), None).is_empty());
    }

    #[test]
    fn formats_become_cel_types() {
        let s = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.until > timestamp('2020-01-01T00:00:00Z')", "message": "too old"},
            {"rule": "self.every < duration('2h')", "message": "too long"}
        ], "properties": {"until": {"type": "string", "format": "date-time"}, "every": {"type": "string", "format": "duration"}}}));
        assert!(
            run(
                &s,
                &json!({"spec": {"until": "2024-01-01T00:00:00Z", "every": "90m"}}),
                None
            )
            .is_empty()
        );
        assert_eq!(
            run(
                &s,
                &json!({"spec": {"until": "2019-01-01T00:00:00Z", "every": "3h"}}),
                None
            ),
            vec![
                r#"spec: Invalid value: "object": too old"#,
                r#"spec: Invalid value: "object": too long"#
            ]
        );
    }
}
