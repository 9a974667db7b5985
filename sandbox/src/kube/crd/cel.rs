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
    program: Program,
    message: Option<String>,
    message_program: Option<Program>,
    reason: Option<String>,
    field_path: Option<String>,
    optional_old_self: bool,
    uses_old_self: bool,
}

/// The rules of one schema node and of the nodes below it (only branches holding rules).
#[derive(Default)]
pub(super) struct Node {
    rules: Vec<Rule>,
    /// The node has rules but no CEL type ([`has_cel_type`]): none of them compiled.
    untyped: bool,
    properties: BTreeMap<String, Node>,
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && !self.untyped
            && self.properties.is_empty()
            && self.additional.is_none()
            && self.items.is_none()
    }
}

/// A parsed CEL expression. Parsed with optional syntax (`self.?field`, `.orValue()`)
/// enabled, which Kubernetes' CEL environment has allowed since 1.29; `cel::Program`'s own
/// constructor does not enable it.
struct Program(cel::parser::Expression);

impl Program {
    fn compile(source: &str) -> Result<Self, cel::ParseErrors> {
        cel::parser::Parser::new().enable_optional_syntax(true).parse(&optional_select_as_index(source)).map(Program)
    }

    /// Evaluate. Both the rule and the values come from clients, so a panic inside the
    /// interpreter is turned into an evaluation error instead of taking the request down.
    fn execute(&self, ctx: &cel::Context<'_>) -> cel::ResolveResult {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cel::Value::resolve(&self.0, ctx)))
            .unwrap_or_else(|_| Err(cel::ExecutionError::function_error("cel", "internal error while evaluating")))
    }

    fn references(&self) -> cel::parser::ExpressionReferences<'_> {
        self.0.references()
    }
}

/// Rewrite `x.?field` as the equivalent `x[?'field']`: the `cel` crate (0.13) evaluates an
/// optional select on a map without the key as an error instead of `optional.none()`,
/// while its optional index behaves as CEL specifies. String literals are left alone.
fn optional_select_as_index(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                out.push(c);
                if c == '\\' && i + 1 < chars.len() {
                    out.push(chars[i + 1]);
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '.' && chars.get(i + 1) == Some(&'?') => {
                let start = i + 2;
                let mut end = start;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                if end > start {
                    let field: String = chars[start..end].iter().collect();
                    out.push_str(&format!("[?'{field}']"));
                    i = end;
                    continue;
                }
                out.push(c);
            }
            None => out.push(c),
        }
        i += 1;
    }
    out
}

/// Compiled rules of a whole `openAPIV3Schema`. Shared because parsed expressions are not `Clone`.
#[derive(Clone, Default)]
pub(super) struct Rules(Arc<Node>);

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rules")
    }
}

/// Sorted, as the server lists them (`supportedValidationReason.List()`).
const REASONS: &[&str] = &["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"];

/// How kube-apiserver refuses a rule on a node without a CEL type when it compiles the CRD's
/// rules (apiextensions `validation.go`, an `InternalError` cause).
const UNTYPED_AT_COMPILE: &str = "Internal error: internal error: failed to construct type information for x-kubernetes-validations rules: unable to convert structural schema to CEL declarations";
/// ... and when it runs them, i.e. on a `default` reaching the node (`cel/validation.go`).
const UNTYPED_AT_RUNTIME: &str =
    "rule compiler initialization error: failed to convert to declType for CEL validation rules";

/// Whether kube-apiserver can give `s` a CEL type, i.e. `SchemaDeclType`
/// (k8s.io/apiserver/pkg/cel/common/schemas.go) is not nil: int-or-string is `dyn`; a
/// node without `type` (x-kubernetes-preserve-unknown-fields alone) has none, nor has an
/// array whose items have none or a map whose values have none. Rules on such a node make
/// the CRD invalid.
pub(super) fn has_cel_type(s: &Value) -> bool {
    if schema::int_or_string(s) {
        return true;
    }
    match schema::type_of(s) {
        "array" => schema::items(s).is_some_and(has_cel_type),
        "object" => match s.get("additionalProperties") {
            Some(values) if values.is_object() => has_cel_type(values),
            _ => true,
        },
        "string" | "boolean" | "number" | "integer" => true,
        _ => false,
    }
}

/// CEL on the `default`s of `root` (apiextensions `defaulting.ValidateDefaults`, run when
/// the CRD is written): every node with a default is validated with the rules of its
/// subtree, as an update from the default to itself, then as a create. Errors are reported
/// under `<node>.default`. A rule without a CEL type that the default reaches is reported
/// here (and the server then compiles no rule at all, see `definition.rs`).
///
/// Gap: a default whose subtree holds a rule that does not compile is not evaluated (the
/// server reports `rule compile error` there); the compile error is reported at the rule.
pub(super) fn default_errors(root: &Value, schema_path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    defaults_below(root, schema_path, &mut errs);
    errs
}

fn defaults_below(s: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(default) = s.get("default").filter(|d| !d.is_null()) {
        let mut compile_errs = Errors::default();
        let node = compile_node(s, path, None, &mut compile_errs);
        let compiles =
            compile_errs.definition.is_empty() && compile_errs.compilation.iter().all(|e| e.reason == "InternalError");
        if !node.is_empty() && compiles {
            let rules = Rules(Arc::new(node));
            let at = schema::join(path, "default");
            let as_update = evaluate_at(&rules, s, default, Some(default), &at);
            if as_update.errors.is_empty() {
                errs.extend(evaluate_at(&rules, s, default, None, &at).errors);
            } else {
                errs.extend(as_update.errors);
            }
        }
    }
    // Defaults are forbidden below additionalProperties: not followed.
    if let Some(items) = schema::items(s) {
        defaults_below(items, &schema::join(path, "items"), errs);
    }
    if let Some(props) = schema::properties(s) {
        for (k, ps) in props {
            defaults_below(ps, &schema::key(&schema::join(path, "properties"), k), errs);
        }
    }
}

/// Compile every rule of `root`. Problems are reported against `schema_path` (e.g.
/// `spec.versions[0].schema.openAPIV3Schema`) as `validate_crd` must report them: the rule
/// definition errors of the whole schema first, then the compilation errors (the server's
/// `SchemaErrors` and `CELErrors`).
pub(super) fn compile(root: &Value, schema_path: &str) -> (Rules, Vec<FieldError>) {
    let mut errs = Errors::default();
    let node = compile_node(root, schema_path, None, &mut errs);
    let mut all = errs.definition;
    all.extend(errs.compilation);
    (Rules(Arc::new(node)), all)
}

/// The two kinds of problems apiextensions tells apart.
#[derive(Default)]
struct Errors {
    /// A rule's own fields (message, reason, fieldPath, ...): "schema errors".
    definition: Vec<FieldError>,
    /// CEL type information and compilation.
    compilation: Vec<FieldError>,
}

fn compile_node(s: &Value, path: &str, uncorrelatable: Option<&str>, errs: &mut Errors) -> Node {
    let mut node = Node::default();
    let definition_errors_before = errs.definition.len();
    // The server walks the children before this node's rules.
    if let Some(props) = schema::properties(s) {
        for (k, ps) in props {
            let child = compile_node(ps, &schema::key(&schema::join(path, "properties"), k), uncorrelatable, errs);
            if !child.is_empty() {
                node.properties.insert(k.clone(), child);
            }
        }
    }
    if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object()) {
        let child = compile_node(extra, &schema::join(path, "additionalProperties"), uncorrelatable, errs);
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
    let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array).filter(|r| !r.is_empty()) else {
        return node;
    };
    let vpath = schema::join(path, "x-kubernetes-validations");
    let field_paths: Vec<Option<String>> = rules
        .iter()
        .enumerate()
        .map(|(i, raw)| check_rule_definition(raw, s, &schema::index(&vpath, i), &mut errs.definition))
        .collect();
    // "If any schema related validation errors have been found at this level or deeper,
    // skip CEL expression validation" (apiextensions validation.go).
    if errs.definition.len() > definition_errors_before {
        return node;
    }
    if !has_cel_type(s) {
        node.untyped = true;
        errs.compilation.push(FieldError {
            reason: "InternalError",
            field: vpath,
            message: UNTYPED_AT_COMPILE.to_owned(),
        });
        return node;
    }
    for (i, (raw, field_path)) in rules.iter().zip(field_paths).enumerate() {
        if let Some(rule) =
            compile_rule(raw, s, &schema::index(&vpath, i), uncorrelatable, field_path, &mut errs.compilation)
        {
            node.rules.push(rule);
        }
    }
    node
}

/// The apiextensions ValidationRule as kube-apiserver 1.37 shows a rule that fails to
/// compile: `json.Marshal` of the internal struct (no JSON tags, so Go field names; pointers
/// as `null` or their value; `<`, `>` and `&` escaped as Go's encoder does).
fn rule_go_repr(raw: &Value) -> String {
    let s = |k: &str| Value::String(raw.get(k).and_then(Value::as_str).unwrap_or("").to_owned());
    let reason = raw.get("reason").and_then(Value::as_str).map_or(Value::Null, |r| Value::String(r.to_owned()));
    let optional = raw.get("optionalOldSelf").and_then(Value::as_bool).map_or(Value::Null, Value::Bool);
    let fields = [
        ("Rule", s("rule")),
        ("Message", s("message")),
        ("MessageExpression", s("messageExpression")),
        ("Reason", reason),
        ("FieldPath", s("fieldPath")),
        ("OptionalOldSelf", optional),
    ];
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
    format!("{{{}}}", body.join(","))
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Variables a CRD rule may reference (comprehension variables aside).
fn check_references(program: &Program, allowed_extra: &[String]) -> Option<String> {
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
        regex::Regex::new(r"\.(?:all|exists|exists_one|existsOne|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
            .expect("static regex")
    });
    RE.captures_iter(expr).map(|c| c[1].to_owned()).collect()
}

/// apiextensions' checks of a rule's own fields (1.37 wording); the rule's `fieldPath`
/// normalized the way `field.Path` prints it, when it has a valid one.
fn check_rule_definition(raw: &Value, node_schema: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    let str_of = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("");
    let text = str_of("rule");
    let message = str_of("message");
    if text.trim().is_empty() {
        errs.push(FieldError::required(schema::join(path, "rule"), "rule is not specified"));
    } else if !message.is_empty() && message.trim().is_empty() {
        errs.push(FieldError::invalid(
            schema::join(path, "message"),
            &json_str(message),
            "must be non-empty if specified",
        ));
    } else if has_newlines(message.trim()) {
        errs.push(FieldError::invalid(
            schema::join(path, "message"),
            &json_str(message),
            "must not contain line breaks",
        ));
    } else if has_newlines(text.trim()) && message.trim().is_empty() {
        errs.push(FieldError::required(
            schema::join(path, "message"),
            "message must be specified if rule contains line breaks",
        ));
    }
    let message_expression = str_of("messageExpression");
    if !message_expression.is_empty() && message_expression.trim().is_empty() {
        errs.push(FieldError::required(
            schema::join(path, "messageExpression"),
            "messageExpression must be non-empty if specified",
        ));
    }
    if let Some(r) = raw.get("reason").and_then(Value::as_str)
        && !REASONS.contains(&r)
    {
        let allowed: Vec<Value> = REASONS.iter().map(|r| json_str(r)).collect();
        errs.push(FieldError::not_supported(schema::join(path, "reason"), &json_str(r), &allowed));
    }
    let fp = str_of("fieldPath");
    if fp.is_empty() {
        return None;
    }
    let fp_path = schema::join(path, "fieldPath");
    if fp.trim().is_empty() {
        errs.push(FieldError::invalid(fp_path.clone(), &json_str(fp), "must be non-empty if specified"));
    }
    if has_newlines(fp) {
        errs.push(FieldError::invalid(fp_path.clone(), &json_str(fp), "must not contain line breaks"));
    }
    match valid_field_path(fp, node_schema) {
        Ok(normalized) => Some(normalized),
        Err(_) => {
            errs.push(FieldError::invalid(fp_path, &json_str(fp), "must be a valid path"));
            None
        }
    }
}

/// Compile a rule whose definition passed [`check_rule_definition`].
fn compile_rule(
    raw: &Value,
    node_schema: &Value,
    path: &str,
    uncorrelatable: Option<&str>,
    field_path: Option<String>,
    errs: &mut Vec<FieldError>,
) -> Option<Rule> {
    let text = raw.get("rule").and_then(Value::as_str).unwrap_or("");
    let rule_path = schema::join(path, "rule");
    let message = raw.get("message").and_then(Value::as_str);
    let message_expression = raw.get("messageExpression").and_then(Value::as_str);
    let reason = raw.get("reason").and_then(Value::as_str).map(str::to_owned);
    let compile_error = |what: &str, e: &dyn std::fmt::Display| FieldError {
        reason: "FieldValueInvalid",
        field: schema::join(path, what),
        // The cel crate reports parse errors in cel-go's form (`ERROR: <input>:1:10: Syntax
        // error: ...` with the caret snippet).
        message: format!(
            "Invalid value: {}: {}compilation failed: {e}",
            rule_go_repr(raw),
            if what == "rule" { "" } else { "messageExpression " }
        ),
    };
    let program = match Program::compile(text) {
        Ok(p) => p,
        Err(e) => {
            errs.push(compile_error("rule", &e));
            return None;
        }
    };
    let vars = comprehension_vars(text);
    if let Some(undeclared) = check_references(&program, &vars) {
        let at = text.find(undeclared.as_str()).unwrap_or(0);
        errs.push(compile_error(
            "rule",
            &cel_go_error(text, at, &format!("undeclared reference to '{undeclared}' (in container '')")),
        ));
        return None;
    }
    if let Some(field) = undefined_field(&program.0, node_schema, path.is_empty() || is_root_path(path)) {
        errs.push(compile_error(
            "rule",
            &cel_go_error(text, undefined_field_offset(text, &field), &format!("undefined field '{field}'")),
        ));
        return None;
    }
    let uses_old_self = program.references().has_variable("oldSelf");
    if uses_old_self && let Some(u) = uncorrelatable {
        errs.push(FieldError::invalid(
            rule_path,
            &json_str(text),
            &format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {u}"),
        ));
        return None;
    }
    let message_program = match message_expression.filter(|me| !me.trim().is_empty()) {
        Some(expr) => match Program::compile(expr) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(compile_error("messageExpression", &e));
                return None;
            }
        },
        None => None,
    };
    let optional_old_self = raw.get("optionalOldSelf").and_then(Value::as_bool).unwrap_or(false);
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
        message: message.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()),
        message_program,
        reason,
        field_path,
        optional_old_self,
        uses_old_self,
    })
}

/// A cel-go checker error: `ERROR: <input>:L:C: message`, then the source line and a caret
/// under the offending character (columns are 1-based, counted in characters).
fn cel_go_error(text: &str, offset: usize, message: &str) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset.min(text.len())].chars().count();
    let source_line = text[line_start..].lines().next().unwrap_or("");
    format!("ERROR: <input>:{line}:{}: {message}\n | {source_line}\n | {}^", column + 1, ".".repeat(column))
}

/// Where cel-go points at an undefined field: the `.` before it, or, inside the `has()`
/// macro, the macro's `(`.
fn undefined_field_offset(text: &str, field: &str) -> usize {
    let Some(dot) = text.find(&format!(".{field}")) else {
        return 0;
    };
    let chain_start =
        text[..dot].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).map_or(0, |i| i + 1);
    match text[..chain_start].strip_suffix("has(") {
        Some(head) => head.len() + 3,
        None => dot,
    }
}

/// Whether a rule path (`….openAPIV3Schema.x-kubernetes-validations[i]`) belongs to the
/// root schema node.
fn is_root_path(path: &str) -> bool {
    path.rsplit_once(".x-kubernetes-validations[")
        .is_some_and(|(node, _)| node.ends_with("openAPIV3Schema") || node.is_empty())
}

/// cel-go type-checks a rule against the schema when the CRD is written: selecting a field
/// that an object does not declare (`self.replcias`, also on a preserve-unknown-fields
/// object) is `undefined field`. Only chains rooted at `self`/`oldSelf` through declared
/// object properties are checked; maps, int-or-string and lists are dynamic there.
fn undefined_field(expr: &cel::parser::Expression, node_schema: &Value, root: bool) -> Option<String> {
    use cel::common::ast::{EntryExpr, Expr};
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.expr {
            Expr::Select(sel) => {
                if let Some(missing) = check_select_chain(e, node_schema, root) {
                    return Some(missing);
                }
                stack.push(&sel.operand);
            }
            Expr::Call(call) => {
                stack.extend(call.target.as_deref());
                stack.extend(call.args.iter());
            }
            Expr::Comprehension(c) => {
                stack.extend([&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]);
            }
            Expr::List(l) => stack.extend(l.elements.iter()),
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let EntryExpr::MapEntry(me) = &entry.expr {
                        stack.push(&me.key);
                        stack.push(&me.value);
                    }
                }
            }
            Expr::Struct(st) => {
                for entry in &st.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        stack.push(&f.value);
                    }
                }
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
    None
}

/// Resolve `self.a.b…` against the schema; the first undeclared field, if any.
fn check_select_chain(e: &cel::parser::Expression, node_schema: &Value, root: bool) -> Option<String> {
    use cel::common::ast::Expr;
    let mut fields = Vec::new();
    let mut cur = e;
    loop {
        match &cur.expr {
            Expr::Select(sel) => {
                fields.push(sel.field.as_str());
                cur = &sel.operand;
            }
            Expr::Ident(name) if name == "self" || name == "oldSelf" => break,
            _ => return None,
        }
    }
    fields.reverse();
    let mut s = node_schema;
    let mut at_root = root;
    let mut in_root_metadata = false;
    for f in fields {
        if in_root_metadata {
            // Only name and generateName of the root metadata are visible to rules.
            return (f != "name" && f != "generateName").then(|| f.to_owned());
        }
        if at_root && (f == "apiVersion" || f == "kind") {
            return None;
        }
        if at_root && f == "metadata" {
            in_root_metadata = true;
            at_root = false;
            continue;
        }
        at_root = false;
        // Maps (a selection is a key lookup) and int-or-string are dynamic; selecting on a
        // scalar or a list is another error, not checked here.
        if schema::int_or_string(s) || schema::type_of(s) != "object" || schema::additional_properties(s).is_some() {
            return None;
        }
        if schema::embedded_resource(s) && matches!(f, "apiVersion" | "kind" | "metadata") {
            return None;
        }
        // An object's CEL type holds its declared properties only, also with
        // x-kubernetes-preserve-unknown-fields (`SchemaDeclType`: "does not expose unknown
        // fields").
        match schema::properties(s).and_then(|props| props.iter().find(|(name, _)| escape(name) == f)) {
            Some((_, next)) => s = next,
            None => return Some(f.to_owned()),
        }
    }
    None
}

fn json_str(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// CEL's grammar counts `\n` and `\r` as line breaks.
fn has_newlines(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

/// apiextensions `cel.ValidFieldPath`: a relative JSON path (`.a.b`, `.m['k.x']`) that must
/// name declared properties (or keys of a map); returns it the way `field.Path` prints it
/// (`a.b`, `m[k.x]`), which is where the server reports the rule's failure.
fn valid_field_path(fp: &str, root: &Value) -> Result<String, String> {
    // Tokens: the delimiters '.', '[' and ']' alone, everything between them as one token.
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    for c in fp.chars() {
        if in_quote {
            cur.push(c);
            if c == '\'' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '.' | '[' | ']' => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
                tokens.push(c.to_string());
            }
            '\'' => {
                in_quote = true;
                cur.push(c);
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    let mut schema_node = root;
    let mut out = String::new();
    let step = |name: &str, node: &mut &Value, out: &mut String| -> Result<(), String> {
        if schema::properties(node).is_some() {
            let next = schema::property(node, name).ok_or("does not refer to a valid field")?;
            *out = schema::join(out, name);
            *node = next;
        } else if let Some(extra) = node.get("additionalProperties").filter(|a| a.is_object()) {
            *out = schema::key(out, name);
            *node = extra;
        } else {
            return Err("does not refer to a valid field".into());
        }
        Ok(())
    };
    let mut it = tokens.iter();
    while let Some(tok) = it.next() {
        match tok.as_str() {
            "[" => {
                let t = it.next().ok_or("unexpected end of JSON path")?;
                if t.len() < 2 || !t.starts_with('\'') || !t.ends_with('\'') {
                    return Err(format!("expected single quoted string but got {t}"));
                }
                step(&t[1..t.len() - 1], &mut schema_node, &mut out)?;
                match it.next() {
                    None => return Err("unexpected end of JSON path".into()),
                    Some(t) if t != "]" => return Err(format!("expected ] but got {t}")),
                    Some(_) => {}
                }
            }
            "." => {
                let t = it.next().ok_or("unexpected end of JSON path")?;
                step(t, &mut schema_node, &mut out)?;
            }
            other => return Err(format!("expected [ or . but got: {other}")),
        }
    }
    Ok(out)
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

/// [`evaluate`] of a value below the root (a `default`), errors reported under `path`.
fn evaluate_at(rules: &Rules, s: &Value, v: &Value, old: Option<&Value>, path: &str) -> Outcome {
    let mut out = Outcome::default();
    let mut base = cel::Context::default();
    base.register_all();
    walk(&base, &rules.0, s, v, old, path, &mut out);
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
    if node.untyped {
        let type_value = Value::String(schema::type_of(s).to_owned());
        out.errors.push(FieldError::invalid(shown_path(path), &type_value, UNTYPED_AT_RUNTIME));
    }
    if !node.rules.is_empty() {
        let this = to_cel(v, Some(s));
        let before = old.map(|o| to_cel(o, Some(s)));
        let unchanged = old == Some(v);
        for rule in &node.rules {
            let ctx = RuleCtx { base, s, value: v, path, ratchet: unchanged && !rule.uses_old_self };
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
                    let old_item = old_items.and_then(|olds| schema::correlate(&list_type, item, olds));
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
    /// `self` as JSON: the bad value of a failed rule.
    value: &'a Value,
    path: &'a str,
    ratchet: bool,
}

fn evaluate_rule(at: &RuleCtx<'_, '_>, rule: &Rule, this: &cel::Value, old: Option<&cel::Value>, out: &mut Outcome) {
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
    let default_message = || rule.message.clone().unwrap_or_else(|| format!("failed rule: {}", rule.rule));
    match rule.program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => {}
        Ok(cel::Value::Bool(false)) => {
            let message = rule
                .message_program
                .as_ref()
                .and_then(|p| match p.execute(&ctx) {
                    Ok(cel::Value::String(m)) if !m.trim().is_empty() && !m.contains('\n') => Some(m.trim().to_owned()),
                    _ => None,
                })
                .unwrap_or_else(default_message);
            let err_path = match &rule.field_path {
                Some(fp) if !fp.is_empty() => schema::join(path, fp),
                _ => shown_path(path),
            };
            out.report(
                at.ratchet,
                rule_failure(rule.reason.as_deref(), err_path, schema::type_of(s), at.value, &message),
            );
        }
        Ok(_) => out
            .report(at.ratchet, FieldError::invalid(shown_path(path), &type_value, "rule did not evaluate to a bool")),
        Err(e) => {
            // `ruleErrorString`: the rule's message when it has one, else the rule text.
            let shown_rule = rule.message.as_deref().unwrap_or(&rule.rule);
            let text = e.to_string();
            let detail = if matches!(e, cel::ExecutionError::NoSuchOverload) {
                format!(
                    "'{text}': call arguments did not match a supported operator, function or macro signature for rule: {shown_rule}"
                )
            } else if let Some(conversion) = conversion_error(&e) {
                format!("{conversion} evaluating rule: {shown_rule}")
            } else {
                format!("{} evaluating rule: {shown_rule}", lower_first(&text))
            };
            out.report(at.ratchet, FieldError::invalid(shown_path(path), &type_value, &detail));
        }
    }
}

/// The error of a rule that evaluated to false (apiextensions 1.37 `validateExpressions` and
/// `fieldErrorForReason`): the bad value is `self` itself, omitted when the node's schema
/// type is `object` or `array` (`field.OmitValueType`, printed as a bare `Invalid value`).
fn rule_failure(reason: Option<&str>, path: String, schema_type: &str, value: &Value, detail: &str) -> FieldError {
    let omit = matches!(schema_type, "object" | "array");
    match reason {
        Some("FieldValueForbidden") => FieldError::forbidden(path, detail),
        Some("FieldValueRequired") => FieldError::required(path, detail),
        Some("FieldValueDuplicate") if omit => {
            FieldError { reason: "FieldValueDuplicate", field: path, message: "Duplicate value".into() }
        }
        Some("FieldValueDuplicate") => FieldError::duplicate(path, value),
        _ if omit => FieldError {
            reason: "FieldValueInvalid",
            field: path,
            message: if detail.is_empty() { "Invalid value".into() } else { format!("Invalid value: {detail}") },
        },
        _ => FieldError::invalid(path, value, detail),
    }
}

/// cel-go's wording for a string that does not convert to a duration or a timestamp
/// (`common/types/string.go` `ConvertToType`); the `cel` crate reports its parser's error.
fn conversion_error(e: &cel::ExecutionError) -> Option<&'static str> {
    match e {
        cel::ExecutionError::FunctionError { function, .. } if function == "duration" => {
            Some("type conversion error from 'string' to 'google.protobuf.Duration'")
        }
        cel::ExecutionError::FunctionError { function, .. } if function == "timestamp" => {
            Some("type conversion error from 'string' to 'google.protobuf.Timestamp'")
        }
        _ => None,
    }
}

/// apimachinery prints the root (a nil `field.Path`) as `<nil>`.
fn shown_path(path: &str) -> String {
    if path.is_empty() { "<nil>".to_owned() } else { path.to_owned() }
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
            let is_map =
                s.is_some_and(|s| schema::additional_properties(s).is_some() && schema::properties(s).is_none());
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
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
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
        evaluate(&rules, root, obj, old).errors.iter().map(ToString::to_string).collect()
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
            vec![r#"spec: Invalid value: exactly one provider block must be set"#]
        );
        assert_eq!(
            run(&s, &json!({"spec": {}}), None),
            vec![r#"spec: Invalid value: exactly one provider block must be set"#]
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
        assert!(run(&s, &new, Some(&json!({"spec": {}}))).is_empty(), "no old value: not a transition");
        assert!(run(&s, &new, Some(&json!({"spec": {"connectionId": "b"}}))).is_empty());
        assert_eq!(
            run(&s, &new, Some(&json!({"spec": {"connectionId": "a"}}))),
            vec![r#"spec.connectionId: Invalid value: "b": connectionId is immutable"#]
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
            vec![r#"spec.metadata: Invalid value: failed rule: self.all(k, k.matches('^[A-Za-z0-9_]{1,40}$'))"#]
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
            vec![r#"spec: Invalid value: min 200 exceeds max 150"#, "spec.max: Forbidden: too big"]
        );
        assert_eq!(
            run(&s, &json!({"spec": {"min": 1, "max": 42}}), None),
            vec![r#"spec: Invalid value: not the answer"#]
        );
    }

    #[test]
    fn optional_old_self_sees_none_on_create() {
        let s = with_spec(json!({"type": "object", "properties": {"x": {"type": "string",
            "x-kubernetes-validations": [{"rule": "!oldSelf.hasValue() || oldSelf.value() == self", "optionalOldSelf": true, "message": "immutable"}]}}}));
        assert!(run(&s, &json!({"spec": {"x": "a"}}), None).is_empty());
        assert_eq!(
            run(&s, &json!({"spec": {"x": "a"}}), Some(&json!({"spec": {"x": "b"}}))),
            vec![r#"spec.x: Invalid value: "a": immutable"#]
        );
    }

    #[test]
    fn root_rules_see_only_name_in_metadata_and_runtime_errors_are_reported() {
        let s = json!({"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.metadata.name.startsWith('conn-')", "message": "name must start with conn-"}
            ],
            "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "self.m.missing == 1"}],
                "properties": {"m": {"type": "object", "additionalProperties": {"type": "integer"}}}}}});
        assert_eq!(
            run(&s, &json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"m": {}}}), None),
            vec![
                r#"<nil>: Invalid value: name must start with conn-"#,
                r#"spec: Invalid value: "object": no such key: missing evaluating rule: self.m.missing == 1"#,
            ]
        );
        let with_message = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.organization == oldSelf.organization", "message": "spec.organization is immutable"}
        ], "properties": {"organization": {"type": "string"}}}));
        assert_eq!(
            run(&with_message, &json!({"spec": {}}), Some(&json!({"spec": {}}))),
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
        assert_eq!(run(&s, &new, Some(&old)), vec![r#"spec.keyed[1].v: Invalid value: 4: may not decrease"#]);
    }

    #[test]
    fn compile_errors_are_reported_at_the_rule() {
        let s = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.a =="},
            {"rule": "foo == 1"}
        ], "properties": {
            "list": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}
        }}));
        let (_, errs) = compile(&s, "spec.versions[0].schema.openAPIV3Schema");
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[list].items.x-kubernetes-validations[0].rule",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule",
            ]
        );
        assert!(errs[0].message.contains("oldSelf cannot be used on the uncorrelatable portion of the schema"));
        assert!(
            errs[1].message.starts_with(r#"Invalid value: {"Rule":"self.a ==","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}"#),
            "{}",
            errs[1].message
        );
        assert!(errs[1].message.contains("compilation failed"));
        assert_eq!(
            errs[2].message,
            r#"Invalid value: {"Rule":"foo == 1","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')
 | foo == 1
 | ^"#
        );
        // A definition error at a node (an unknown reason) keeps its rules from compiling:
        // only the reason is reported.
        let bogus = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.a =="},
            {"rule": "self.x", "reason": "Bogus"}
        ]}));
        let (_, errs) = compile(&bogus, "o");
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"o.properties[spec].x-kubernetes-validations[1].reason: Unsupported value: "Bogus": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#
            ]
        );
    }

    #[test]
    fn optional_select_rewrite_skips_strings() {
        assert_eq!(optional_select_as_index("self.?a.orValue('x.?y')"), "self[?'a'].orValue('x.?y')");
        assert_eq!(optional_select_as_index("self.?a.?b_1.hasValue()"), "self[?'a'][?'b_1'].hasValue()");
    }

    #[test]
    fn optional_field_syntax_is_supported() {
        let s = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.?limit.orValue(10) <= 100", "message": "limit too high"}
        ], "properties": {"limit": {"type": "integer"}}}));
        assert_eq!(run(&s, &json!({"spec": {}}), None), Vec::<String>::new());
        assert_eq!(run(&s, &json!({"spec": {"limit": 5}}), None), Vec::<String>::new());
        assert_eq!(run(&s, &json!({"spec": {"limit": 500}}), None), vec![r#"spec: Invalid value: limit too high"#]);
    }

    #[test]
    fn rule_definitions_are_checked_like_the_server() {
        let s = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.a > 0", "message": " "},
            {"rule": "self.a > 0", "message": "x".repeat(2049)},
            {"rule": "self.a > 0", "message": "two\nlines"},
            {"rule": "self.a \n > 0"},
            {"rule": "self.a > 0", "messageExpression": " "},
            {"rule": "self.a > 0", "fieldPath": ".b"},
            {"rule": "self.a > 0", "fieldPath": ".list[0]"},
            {"rule": "self.a > 0", "fieldPath": "."},
            {"rule": "self.a > 0", "fieldPath": "a"},
            {"rule": "self.a > 0", "messageExpression": "'x' +"}
        ], "properties": {"a": {"type": "integer"}, "list": {"type": "array", "items": {"type": "string"}}}}));
        let (_, errs) = compile(&s, "o");
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        let v = "o.properties[spec].x-kubernetes-validations";
        // kube-apiserver 1.37.2's answer for the same rules: no length limit on a message any
        // more, and with definition errors at a node its rules are not compiled (so the
        // broken messageExpression of [9] goes unreported).
        assert_eq!(
            shown,
            [
                format!(r#"{v}[0].message: Invalid value: " ": must be non-empty if specified"#),
                format!(r#"{v}[2].message: Invalid value: "two\nlines": must not contain line breaks"#),
                format!("{v}[3].message: Required value: message must be specified if rule contains line breaks"),
                format!("{v}[4].messageExpression: Required value: messageExpression must be non-empty if specified"),
                format!(r#"{v}[5].fieldPath: Invalid value: ".b": must be a valid path"#),
                format!(r#"{v}[6].fieldPath: Invalid value: ".list[0]": must be a valid path"#),
                format!(r#"{v}[7].fieldPath: Invalid value: ".": must be a valid path"#),
                format!(r#"{v}[8].fieldPath: Invalid value: "a": must be a valid path"#),
            ]
        );
        let broken_message_expression = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.a > 0", "messageExpression": "'x' +"}
        ], "properties": {"a": {"type": "integer"}}}));
        let (_, errs) = compile(&broken_message_expression, "o");
        assert_eq!(errs.len(), 1);
        let shown = errs[0].to_string();
        assert!(
            shown.starts_with(&format!(r#"{v}[0].messageExpression: Invalid value: {{"Rule":"self.a \u003e 0","Message":"","MessageExpression":"'x' +","Reason":null,"FieldPath":"","OptionalOldSelf":null}}: messageExpression compilation failed: ERROR: <input>:1:6: Syntax error:"#)),
            "{shown}"
        );
    }

    #[test]
    fn field_path_with_map_key_is_reported_where_the_server_reports_it() {
        let s = with_spec(json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "!('bad' in self.labels)", "fieldPath": ".labels['bad']", "message": "no bad label"}
        ], "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}}));
        assert_eq!(
            run(&s, &json!({"spec": {"labels": {"bad": "x"}}}), None),
            vec![r#"spec.labels[bad]: Invalid value: no bad label"#]
        );
    }

    #[test]
    fn undeclared_fields_are_refused_like_cel_go_type_checking() {
        let s = json!({"type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.startsWith('a')"},
            {"rule": "self.metadata.labels.size() > 0"}
        ],
        "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.replicas > 0"},
                {"rule": "has(self.replcias)"},
                {"rule": "self.labels.anything == 'x' && self.free.whatever == 1 && self.x__dash__y == 1"}
            ],
            "properties": {
                "replicas": {"type": "integer"},
                "x-y": {"type": "integer"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}}});
        let (_, errs) = compile(&s, "spec.versions[0].schema.openAPIV3Schema");
        let shown: Vec<String> = errs.iter().map(|e| format!("{} | {}", e.field, e.message)).collect();
        // What kube-apiserver 1.37.2 answers for the same schema (an object with
        // x-kubernetes-preserve-unknown-fields exposes its declared fields only).
        let rule = |r: &str| {
            format!(
                r#"{{"Rule":"{r}","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}}"#
            )
        };
        let base = "spec.versions[0].schema.openAPIV3Schema";
        assert_eq!(
            shown,
            [
                format!(
                    "{base}.properties[spec].x-kubernetes-validations[1].rule | Invalid value: {}: compilation failed: ERROR: <input>:1:4: undefined field 'replcias'\n | has(self.replcias)\n | ...^",
                    rule("has(self.replcias)")
                ),
                format!(
                    "{base}.properties[spec].x-kubernetes-validations[2].rule | Invalid value: {}: compilation failed: ERROR: <input>:1:41: undefined field 'whatever'\n | self.labels.anything == 'x' && self.free.whatever == 1 && self.x__dash__y == 1\n | ........................................^",
                    rule(
                        "self.labels.anything == 'x' \\u0026\\u0026 self.free.whatever == 1 \\u0026\\u0026 self.x__dash__y == 1"
                    )
                ),
                format!(
                    "{base}.x-kubernetes-validations[1].rule | Invalid value: {}: compilation failed: ERROR: <input>:1:14: undefined field 'labels'\n | self.metadata.labels.size() > 0\n | .............^",
                    rule("self.metadata.labels.size() \\u003e 0")
                ),
            ]
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
        assert!(run(&s, &json!({"spec": {"until": "2024-01-01T00:00:00Z", "every": "90m"}}), None).is_empty());
        assert_eq!(
            run(&s, &json!({"spec": {"until": "2019-01-01T00:00:00Z", "every": "3h"}}), None),
            vec![r#"spec: Invalid value: too old"#, r#"spec: Invalid value: too long"#]
        );
    }
}
