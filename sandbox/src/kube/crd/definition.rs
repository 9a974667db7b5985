//! Admission of a CustomResourceDefinition itself: what kube-apiserver 1.33's
//! apiextensions validation refuses (`apis/apiextensions/validation/validation.go` and
//! `apiserver/schema/validation.go` for structural schemas), with its field paths
//! (`spec.versions[0].schema.openAPIV3Schema.properties[spec].type`) and messages.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use super::{cel, prune, schema, validate};
use crate::kube::field_error::FieldError;

const DNS1035_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// apimachinery `IsDNS1035Label` messages, joined with "," as the CRD validation does.
fn dns1035_errors(v: &str) -> Vec<String> {
    static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(&format!("^{DNS1035_FMT}$")).expect("static regex"));
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_owned());
    }
    if !RE.is_match(v) {
        errs.push(format!(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '{DNS1035_FMT}')"
        ));
    }
    errs
}

fn dns1123_subdomain_errors(v: &str) -> Vec<String> {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(&format!("^{DNS1123_SUBDOMAIN_FMT}$")).expect("static regex"));
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    if !RE.is_match(v) {
        errs.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_SUBDOMAIN_FMT}')"
        ));
    }
    errs
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Validate a CRD on create (`old` = None) or update.
pub fn validate_crd(crd: &Value, old: Option<&Value>) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    let name = str_at(crd, "/metadata/name");

    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid("metadata.name", &json!(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let e = dns1123_subdomain_errors(group);
        if !e.is_empty() {
            errs.push(FieldError::invalid("spec.group", &json!(group), &e.join(",")));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid("spec.group", &json!(group), "should be a domain with at least one dot"));
        }
    }
    match crd.pointer("/spec/scope").and_then(Value::as_str) {
        Some("Cluster" | "Namespaced") => {}
        Some(other) => {
            errs.push(FieldError::not_supported("spec.scope", &json!(other), &[json!("Cluster"), json!("Namespaced")]))
        }
        None => errs.push(FieldError::required("spec.scope", "")),
    }
    if crd.pointer("/spec/preserveUnknownFields") == Some(&Value::Bool(true)) {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            &json!(true),
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    validate_names(crd, &mut errs);
    validate_versions(crd, &mut errs);

    if let Some(old) = old {
        for (field, ptr) in [("spec.scope", "/spec/scope"), ("spec.group", "/spec/group")] {
            if crd.pointer(ptr) != old.pointer(ptr) {
                errs.push(FieldError::invalid(field, crd.pointer(ptr).unwrap_or(&Value::Null), "field is immutable"));
            }
        }
        // A version whose objects may still be stored cannot disappear from spec.versions.
        let names: HashSet<&str> = versions(crd).iter().filter_map(|v| v["name"].as_str()).collect();
        if let Some(stored) = old.pointer("/status/storedVersions").and_then(Value::as_array) {
            for (i, sv) in stored.iter().enumerate() {
                if let Some(s) = sv.as_str()
                    && !names.contains(s)
                {
                    errs.push(FieldError::invalid(
                        format!("status.storedVersions[{i}]"),
                        sv,
                        "must appear in spec.versions",
                    ));
                }
            }
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn versions(crd: &Value) -> &[Value] {
    crd.pointer("/spec/versions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn validate_names(crd: &Value, errs: &mut Vec<FieldError>) {
    let names = &crd["spec"]["names"];
    for field in ["plural", "singular"] {
        match names.get(field).and_then(Value::as_str) {
            None | Some("") if field == "plural" => errs.push(FieldError::required("spec.names.plural", "")),
            None | Some("") => {}
            Some(v) => {
                let e = dns1035_errors(v);
                if !e.is_empty() {
                    errs.push(FieldError::invalid(format!("spec.names.{field}"), &json!(v), &e.join(",")));
                }
            }
        }
    }
    for field in ["kind", "listKind"] {
        match names.get(field).and_then(Value::as_str) {
            None | Some("") if field == "kind" => errs.push(FieldError::required("spec.names.kind", "")),
            None | Some("") => {}
            Some(v) => {
                let e = dns1035_errors(&v.to_lowercase());
                if !e.is_empty() {
                    errs.push(FieldError::invalid(format!("spec.names.{field}"), &json!(v), &e.join(",")));
                }
            }
        }
    }
    if let (Some(k), Some(lk)) = (names["kind"].as_str(), names["listKind"].as_str())
        && !k.is_empty()
        && k == lk
    {
        errs.push(FieldError::invalid("spec.names.listKind", &json!(lk), "kind and listKind must be different"));
    }
    if let Some(shorts) = names["shortNames"].as_array() {
        for (i, s) in shorts.iter().enumerate() {
            let v = s.as_str().unwrap_or("");
            let e = dns1035_errors(v);
            if !e.is_empty() {
                errs.push(FieldError::invalid(format!("spec.names.shortNames[{i}]"), s, &e.join(",")));
            }
        }
    }
}

fn validate_versions(crd: &Value, errs: &mut Vec<FieldError>) {
    let vs = versions(crd);
    if vs.is_empty() {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!([]),
            "must have exactly one version marked as storage version",
        ));
        return;
    }
    if !vs.iter().any(|v| v["served"] == true) {
        errs.push(FieldError::invalid("spec.versions", &json!(""), "must have at least one served version"));
    }
    // apiextensions converts v1 to its internal version by hoisting what every version has
    // identical (schema, subresources, printer columns) to the top of the spec; it validates
    // and reports it there, once (`spec.validation.openAPIV3Schema`,
    // `spec.additionalPrinterColumns[0]`).
    let identical = |key: &str| vs.iter().all(|v| v.get(key) == vs[0].get(key));
    let hoisted = Hoisted {
        schema: identical("schema"),
        subresources: identical("subresources"),
        columns: identical("additionalPrinterColumns"),
        selectable_fields: identical("selectableFields"),
    };
    let mut seen = HashSet::new();
    let mut unique = true;
    for (i, v) in vs.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let vname = v["name"].as_str().unwrap_or("");
        unique &= seen.insert(vname);
        if vname.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else {
            let e = dns1035_errors(vname);
            if !e.is_empty() {
                errs.push(FieldError::invalid(format!("{path}.name"), &json!(vname), &e.join(",")));
            }
        }
        match v.pointer("/schema/openAPIV3Schema") {
            Some(s) if s.is_object() => {
                if !hoisted.schema {
                    validate_schema(s, &format!("{path}.schema.openAPIV3Schema"), errs);
                } else if i == 0 {
                    validate_schema(s, "spec.validation.openAPIV3Schema", errs);
                }
            }
            _ => errs.push(FieldError::required(format!("{path}.schema.openAPIV3Schema"), "")),
        }
        if !hoisted.subresources {
            validate_subresources(v, &format!("{path}.subresources"), errs);
        } else if i == 0 {
            validate_subresources(v, "spec.subresources", errs);
        }
        if !hoisted.columns {
            validate_printer_columns(v, &format!("{path}.additionalPrinterColumns"), errs);
        } else if i == 0 {
            validate_printer_columns(v, "spec.additionalPrinterColumns", errs);
        }
    }
    if !unique {
        errs.push(versions_invalid(vs, &hoisted, "must contain unique version names"));
    }
    if vs.iter().filter(|v| v["storage"] == true).count() != 1 {
        errs.push(versions_invalid(vs, &hoisted, "must have exactly one version marked as storage version"));
    }
}

/// Which per-version fields the conversion to the internal version hoisted to the spec.
struct Hoisted {
    schema: bool,
    subresources: bool,
    columns: bool,
    selectable_fields: bool,
}

/// `field.Invalid(spec.versions, spec.Versions, detail)`: the bad value is the internal
/// versions list, printed as JSON of the Go structs (no JSON tags: Go field names; fields
/// hoisted to the spec are null). A version's own schema or subresources are shown in their
/// v1 form, not the internal one (documented in docs/sandbox.md).
fn versions_invalid(vs: &[Value], hoisted: &Hoisted, detail: &str) -> FieldError {
    let rendered: Vec<String> = vs
        .iter()
        .map(|v| {
            let or_null = |keep: bool, value: Value| if keep { value } else { Value::Null };
            let columns = v["additionalPrinterColumns"].as_array().map(|cols| {
                Value::Array(
                    cols.iter()
                        .map(|c| {
                            json!({"Name": c["name"].as_str().unwrap_or(""), "Type": c["type"].as_str().unwrap_or(""),
                                   "Format": c["format"].as_str().unwrap_or(""), "Description": c["description"].as_str().unwrap_or(""),
                                   "Priority": c["priority"].as_i64().unwrap_or(0), "JSONPath": c["jsonPath"].as_str().unwrap_or("")})
                        })
                        .collect(),
                )
            });
            let fields = [
                ("Name", json!(v["name"].as_str().unwrap_or(""))),
                ("Served", json!(v["served"].as_bool().unwrap_or(false))),
                ("Storage", json!(v["storage"].as_bool().unwrap_or(false))),
                ("Deprecated", json!(v["deprecated"].as_bool().unwrap_or(false))),
                ("DeprecationWarning", v.get("deprecationWarning").cloned().unwrap_or(Value::Null)),
                ("Schema", or_null(!hoisted.schema, v.get("schema").map(|s| json!({"OpenAPIV3Schema": s["openAPIV3Schema"]})).unwrap_or(Value::Null))),
                ("Subresources", or_null(!hoisted.subresources, v.get("subresources").cloned().unwrap_or(Value::Null))),
                ("AdditionalPrinterColumns", or_null(!hoisted.columns, columns.unwrap_or(Value::Null))),
                ("SelectableFields", or_null(!hoisted.selectable_fields, v.get("selectableFields").cloned().unwrap_or(Value::Null))),
            ];
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{}", go_json(v))).collect();
            format!("{{{}}}", body.join(","))
        })
        .collect();
    FieldError {
        reason: "FieldValueInvalid",
        field: "spec.versions".into(),
        message: format!("Invalid value: [{}]: {detail}", rendered.join(",")),
    }
}

/// Go's `json.Marshal` of an unstructured value, as apimachinery 1.37 prints a complex bad
/// value: object keys sorted, `<`, `>`, `&` escaped.
fn go_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let ordered: std::collections::BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// One `openAPIV3Schema`, in the server's order: structural rules (with the defaults'
/// schema validation); only when those pass, CEL on the defaults; only when that passes
/// too, the rules are compiled (a CEL context is built from a valid schema only).
fn validate_schema(s: &Value, schema_path: &str, errs: &mut Vec<FieldError>) {
    let before = errs.len();
    validate_structural(s, Level::Root, schema_path, errs);
    if errs.len() > before {
        return;
    }
    let default_errs = cel::default_errors(s, schema_path);
    if !default_errs.is_empty() {
        errs.extend(default_errs);
        return;
    }
    let (_, cel_errs) = cel::compile(s, schema_path);
    errs.extend(cel_errs);
}

/// apiextensions `ValidateCustomResourceDefinitionSubresources`: scale's replica paths.
fn validate_subresources(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(scale) = v.pointer("/subresources/scale") else {
        return;
    };
    for (field, under) in [("specReplicasPath", ".spec."), ("statusReplicasPath", ".status.")] {
        let fp = format!("{path}.scale.{field}");
        match scale[field].as_str().unwrap_or("") {
            "" => errs.push(FieldError::required(fp, "")),
            p => {
                if let Some(e) = simple_json_path_error(p, &fp) {
                    errs.push(e);
                } else if !p.starts_with(under) {
                    errs.push(FieldError::invalid(
                        fp,
                        &json!(p),
                        &format!("should be a json path under {}", &under[..under.len() - 1]),
                    ));
                }
            }
        }
    }
    if let Some(p) = scale["labelSelectorPath"].as_str().filter(|p| !p.is_empty()) {
        let fp = format!("{path}.scale.labelSelectorPath");
        if let Some(e) = simple_json_path_error(p, &fp) {
            errs.push(e);
        } else if !p.starts_with(".spec.") && !p.starts_with(".status.") {
            errs.push(FieldError::invalid(fp, &json!(p), "should be a json path under either .spec or .status"));
        }
    }
}

/// apiextensions `validateSimpleJSONPath`.
fn simple_json_path_error(p: &str, path: &str) -> Option<FieldError> {
    if p.is_empty() {
        Some(FieldError::invalid(path, &json!(p), "must not be empty"))
    } else if !p.starts_with('.') {
        Some(FieldError::invalid(path, &json!(p), "must be a simple json path starting with ."))
    } else {
        None
    }
}

/// apiextensions `ValidateCustomResourceColumnDefinition`; `path` is the list's
/// (`spec.versions[0].additionalPrinterColumns` or, hoisted, `spec.additionalPrinterColumns`).
/// The internal type's field is `JSONPath`, hence that path segment.
fn validate_printer_columns(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(cols) = v["additionalPrinterColumns"].as_array() else {
        return;
    };
    // Sorted, as `sets.String.List()` lists them in the server's message.
    const TYPES: &str = "boolean,date,integer,number,string";
    const FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";
    for (i, c) in cols.iter().enumerate() {
        let cp = format!("{path}[{i}]");
        if c["name"].as_str().unwrap_or("").is_empty() {
            errs.push(FieldError::required(format!("{cp}.name"), ""));
        }
        match c["type"].as_str().unwrap_or("") {
            "" => errs.push(FieldError::required(format!("{cp}.type"), &format!("must be one of {TYPES}"))),
            t if !TYPES.split(',').any(|x| x == t) => {
                errs.push(FieldError::invalid(format!("{cp}.type"), &json!(t), &format!("must be one of {TYPES}")))
            }
            _ => {}
        }
        if let Some(f) = c["format"].as_str()
            && !f.is_empty()
            && !FORMATS.split(',').any(|x| x == f)
        {
            errs.push(FieldError::invalid(format!("{cp}.format"), &json!(f), &format!("must be one of {FORMATS}")));
        }
        match c["jsonPath"].as_str().unwrap_or("") {
            "" => errs.push(FieldError::required(format!("{cp}.JSONPath"), "")),
            p => errs.extend(simple_json_path_error(p, &format!("{cp}.JSONPath"))),
        }
    }
}

/// Inside allOf/anyOf/oneOf/not only value validations are allowed; everything that shapes
/// the structure or the defaulting is refused (apiextensions `validateNestedValueValidation`).
fn validate_nested_value_validation(s: &Value, path: &str, errs: &mut Vec<FieldError>) {
    const FORBIDDEN: &[(&str, &str)] = &[
        ("type", "must be empty to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("title", "must be empty to be structural"),
        ("description", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        ("x-kubernetes-preserve-unknown-fields", "must be undefined to be structural"),
        ("x-kubernetes-embedded-resource", "must be false to be structural"),
        ("x-kubernetes-int-or-string", "must be false to be structural"),
        ("x-kubernetes-list-map-keys", "must be empty to be structural"),
        ("x-kubernetes-list-type", "must be undefined to be structural"),
        ("x-kubernetes-map-type", "must be undefined to be structural"),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ];
    for (key, detail) in FORBIDDEN {
        let set = match s.get(*key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(x)) => !x.is_empty(),
            Some(Value::Array(x)) => !x.is_empty(),
            Some(_) => true,
        };
        if set {
            errs.push(FieldError::forbidden(schema::join(path, key), detail));
        }
    }
    if let Some(props) = schema::properties(s) {
        for (k, p) in props {
            validate_nested_value_validation(p, &schema::key(&schema::join(path, "properties"), k), errs);
        }
    }
    if let Some(items) = schema::items(s) {
        validate_nested_value_validation(items, &schema::join(path, "items"), errs);
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = s.get(keyword).and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                validate_nested_value_validation(b, &schema::index(&schema::join(path, keyword), i), errs);
            }
        }
    }
    if let Some(not) = s.get("not") {
        validate_nested_value_validation(not, &schema::join(path, "not"), errs);
    }
}

/// A `default` must be pruned (no undeclared fields) and valid against its own schema,
/// since the server stores it into objects as is.
fn validate_default(s: &Value, default: &Value, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    if lvl == Level::Root {
        errs.push(FieldError::forbidden(path, "must not be set at the root"));
        return;
    }
    let mut pruned_copy = default.clone();
    let pruned = prune::prune_value(&mut pruned_copy, s);
    if !pruned.is_empty() {
        errs.push(FieldError {
            reason: "FieldValueInvalid",
            field: path.to_owned(),
            message: format!("Invalid value: {}: must not have unknown fields", go_json(default)),
        });
    }
    for mut e in validate::validate_value(s, default) {
        e.field = if e.field.is_empty() { path.to_owned() } else { format!("{path}.{}", e.field) };
        errs.push(e);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// Structural schema rules (KEP-2885 / "Specifying a structural schema"): every node has a
/// `type` (unless int-or-string / preserve-unknown-fields / embedded), arrays have
/// `items`, no `additionalProperties` at the root or together with `properties`,
/// `uniqueItems: true` is forbidden, and the root is an object whose `metadata` may only
/// constrain `name`/`generateName`.
fn validate_structural(s: &Value, lvl: Level, path: &str, errs: &mut Vec<FieldError>) {
    let t = schema::type_of(s);
    let child = |name: &str| schema::join(path, name);
    if t.is_empty() && !schema::embedded_resource(s) && !schema::int_or_string(s) && !schema::preserve_unknown(s) {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(child("type"), detail));
    }
    if !matches!(t, "" | "object" | "array" | "string" | "integer" | "number" | "boolean") {
        errs.push(FieldError::not_supported(
            child("type"),
            &json!(t),
            &["array", "boolean", "integer", "number", "object", "string"].map(|x| json!(x)),
        ));
    }
    if lvl == Level::Root && !t.is_empty() && t != "object" {
        errs.push(FieldError::invalid(child("type"), &json!(t), "must be object at the root"));
    }
    if t == "array" && schema::items(s).is_none() {
        errs.push(FieldError::required(child("items"), "must be specified"));
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errs.push(FieldError::invalid(
            child("x-kubernetes-preserve-unknown-fields"),
            &json!(false),
            "must be true or undefined",
        ));
    }
    if schema::embedded_resource(s) {
        if t != "object" {
            errs.push(FieldError::invalid(
                child("type"),
                &json!(t),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else if schema::properties(s).is_none_or(|p| p.is_empty()) && !schema::preserve_unknown(s) {
            errs.push(FieldError::required(
                child("properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            ));
        }
    }
    if schema::int_or_string(s) && !t.is_empty() {
        errs.push(FieldError::invalid(child("type"), &json!(t), "must be empty to be int-or-string"));
    }
    if schema::flag(s, "uniqueItems") {
        errs.push(FieldError::forbidden(
            child("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    for forbidden in ["$ref", "definitions", "id", "additionalItems", "patternProperties", "dependencies"] {
        if s.get(forbidden).is_some() {
            errs.push(FieldError::forbidden(child(forbidden), &format!("{forbidden} is not supported")));
        }
    }
    match s.get("additionalProperties") {
        Some(Value::Bool(false)) => {
            errs.push(FieldError::forbidden(
                child("additionalProperties"),
                "additionalProperties cannot be set to false",
            ));
        }
        Some(extra) => {
            if lvl == Level::Root {
                errs.push(FieldError::forbidden(child("additionalProperties"), "must not be used at the root"));
            }
            if schema::properties(s).is_some() {
                errs.push(FieldError::forbidden(
                    child("additionalProperties"),
                    "additionalProperties and properties are mutual exclusive",
                ));
            }
            if extra.is_object() {
                validate_structural(extra, Level::Field, &child("additionalProperties"), errs);
            }
        }
        None => {}
    }
    match schema::list_type(s) {
        schema::ListType::Map(keys) => {
            if keys.is_empty() {
                errs.push(FieldError::required(
                    child("x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                ));
            }
            if let Some(items) = schema::items(s)
                && schema::type_of(items) != "object"
            {
                errs.push(FieldError::invalid(
                    child("items.type"),
                    &json!(schema::type_of(items)),
                    "must be object if parent array's x-kubernetes-list-type is map",
                ));
            }
        }
        _ => {
            if s.get("x-kubernetes-list-map-keys").is_some() {
                errs.push(FieldError::forbidden(
                    child("x-kubernetes-list-map-keys"),
                    "must not be specified if x-kubernetes-list-type is not map",
                ));
            }
        }
    }
    if let Some(default) = s.get("default") {
        validate_default(s, default, lvl, &child("default"), errs);
    }
    // The two int-or-string exceptions: `anyOf: [{type: integer}, {type: string}]` (as
    // controller-gen writes it), directly or as the first `allOf` entry.
    let int_or_string_any_of = |v: Option<&Value>| {
        schema::int_or_string(s)
            && v.and_then(Value::as_array).is_some_and(|a| {
                a.len() == 2 && a[0] == json!({"type": "integer"}) && a[1] == json!({"type": "string"})
            })
    };
    let skip_any_of = int_or_string_any_of(s.get("anyOf"));
    let skip_first_all_of_any_of = s
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|first| int_or_string_any_of(first.get("anyOf")));
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if keyword == "anyOf" && skip_any_of {
            continue;
        }
        if let Some(branches) = s.get(keyword).and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                let branch_path = schema::index(&child(keyword), i);
                if keyword == "allOf" && i == 0 && skip_first_all_of_any_of {
                    let mut rest = b.clone();
                    if let Some(m) = rest.as_object_mut() {
                        m.remove("anyOf");
                    }
                    validate_nested_value_validation(&rest, &branch_path, errs);
                    continue;
                }
                validate_nested_value_validation(b, &branch_path, errs);
            }
        }
    }
    if let Some(not) = s.get("not") {
        validate_nested_value_validation(not, &child("not"), errs);
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
        && Regex::new(pattern).is_err()
    {
        errs.push(FieldError::invalid(child("pattern"), &json!(pattern), "must be a valid regular expression"));
    }
    if lvl == Level::Root {
        for meta_field in ["kind", "apiVersion"] {
            if let Some(p) = schema::property(s, meta_field)
                && schema::type_of(p) != "string"
            {
                errs.push(FieldError::invalid(
                    format!("{}.type", schema::key(&child("properties"), meta_field)),
                    &json!(schema::type_of(p)),
                    "must be string",
                ));
            }
        }
        if let Some(meta) = schema::property(s, "metadata") {
            // apiextensions `validateStructuralMetadataInvariants`: besides its type and
            // documentation, the root `metadata` may only constrain `name`/`generateName`.
            let constrains_more = meta.as_object().is_some_and(|m| {
                m.iter().any(|(k, v)| match k.as_str() {
                    "type" | "description" | "title" => false,
                    "properties" => v.as_object().is_some_and(|p| p.keys().any(|k| k != "name" && k != "generateName")),
                    _ => true,
                })
            });
            if constrains_more {
                errs.push(FieldError::forbidden(
                    schema::key(&child("properties"), "metadata"),
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
            }
        }
    }
    if let Some(props) = schema::properties(s) {
        for (k, ps) in props {
            let pp = schema::key(&child("properties"), k);
            if lvl == Level::Root && k == "metadata" {
                continue;
            }
            validate_structural(ps, Level::Field, &pp, errs);
        }
    }
    if let Some(items) = schema::items(s) {
        validate_structural(items, Level::Item, &child("items"), errs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}
                }}}]
            }
        })
    }

    fn errors(crd: &Value, old: Option<&Value>) -> Vec<String> {
        validate_crd(crd, old).err().unwrap_or_default().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn accepts_a_valid_crd() {
        assert!(errors(&crd(), None).is_empty());
    }

    #[test]
    fn names_group_and_scope() {
        let mut c = crd();
        c["metadata"]["name"] = json!("widgets.other.com");
        c["spec"]["scope"] = json!("Global");
        c["spec"]["names"]["plural"] = json!("Widgets");
        c["spec"]["names"]["shortNames"] = json!(["w_1"]);
        let e = errors(&c, None);
        assert_eq!(
            e[0],
            r#"metadata.name: Invalid value: "widgets.other.com": must be spec.names.plural+"."+spec.group"#
        );
        assert_eq!(e[1], r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#);
        assert!(e[2].starts_with(r#"spec.names.plural: Invalid value: "Widgets": a DNS-1035 label must consist of lower case alphanumeric characters or '-'"#), "{}", e[2]);
        assert!(e[3].starts_with(r#"spec.names.shortNames[0]: Invalid value: "w_1""#));
        let mut dotless = crd();
        dotless["spec"]["group"] = json!("example");
        dotless["metadata"]["name"] = json!("widgets.example");
        assert_eq!(
            errors(&dotless, None),
            vec![r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#]
        );
    }

    #[test]
    fn exactly_one_storage_version_and_unique_names() {
        let mut c = crd();
        let v = c["spec"]["versions"][0].clone();
        c["spec"]["versions"] = json!([v.clone(), v]);
        // The real server's words (kube-apiserver 1.37.2): the internal versions as JSON,
        // the identical schemas hoisted to spec.validation (so `"Schema":null`).
        let version = r#"{"Name":"v1","Served":true,"Storage":true,"Deprecated":false,"DeprecationWarning":null,"Schema":null,"Subresources":null,"AdditionalPrinterColumns":null,"SelectableFields":null}"#;
        assert_eq!(
            errors(&c, None),
            [
                format!("spec.versions: Invalid value: [{version},{version}]: must contain unique version names"),
                format!(
                    "spec.versions: Invalid value: [{version},{version}]: must have exactly one version marked as storage version"
                ),
            ]
        );
    }

    #[test]
    fn structural_schema_violations() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
                "spec": {"properties": {"list": {"type": "array"}, "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}},
                "status": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}
            }
        });
        assert_eq!(
            errors(&c, None),
            vec![
                "spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
                "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
                "spec.validation.openAPIV3Schema.properties[spec].properties[list].items: Required value: must be specified",
                "spec.validation.openAPIV3Schema.properties[spec].properties[tags].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                "spec.validation.openAPIV3Schema.properties[status].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            ]
        );
        let mut no_schema = crd();
        no_schema["spec"]["versions"][0].as_object_mut().expect("object").remove("schema");
        assert_eq!(errors(&no_schema, None), vec!["spec.versions[0].schema.openAPIV3Schema: Required value"]);
    }

    #[test]
    fn defaults_must_validate_and_be_pruned() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"] = json!({
            "size": {"type": "integer", "default": "big"},
            "mode": {"type": "string", "enum": ["a", "b"], "default": "c"},
            "policy": {"type": "object", "properties": {"x": {"type": "integer"}}, "default": {"x": 1, "y": 2}},
            "ok": {"type": "integer", "minimum": 1, "default": 1}
        });
        assert_eq!(
            errors(&c, None),
            vec![
                r#"spec.validation.openAPIV3Schema.properties[spec].properties[size].default: Invalid value: "string":  in body must be of type integer: "string""#,
                r#"spec.validation.openAPIV3Schema.properties[spec].properties[mode].default: Unsupported value: "c": supported values: "a", "b""#,
                r#"spec.validation.openAPIV3Schema.properties[spec].properties[policy].default: Invalid value: {"x":1,"y":2}: must not have unknown fields"#,
            ]
        );
    }

    #[test]
    fn compositions_hold_value_validations_only() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"] = json!({
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "ip": {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
            "n": {"type": "number", "not": {"x-kubernetes-validations": [{"rule": "true"}]},
                  "allOf": [{"default": 42, "properties": {"f": {"type": "number"}}}]}
        });
        assert_eq!(
            errors(&c, None),
            vec![
                "spec.validation.openAPIV3Schema.properties[spec].properties[n].allOf[0].default: Forbidden: must be undefined to be structural",
                "spec.validation.openAPIV3Schema.properties[spec].properties[n].allOf[0].properties[f].type: Forbidden: must be empty to be structural",
                "spec.validation.openAPIV3Schema.properties[spec].properties[n].not.x-kubernetes-validations: Forbidden: must be empty to be structural",
            ]
        );
    }

    #[test]
    fn invalid_cel_is_refused() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
            json!([{"rule": "self.size >"}]);
        let e = errors(&c, None);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with(r#"spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {"Rule":"self.size \u003e","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:12: Syntax error:"#),
            "{}",
            e[0]
        );
    }

    #[test]
    fn immutable_scope_and_group_and_stored_versions_on_update() {
        let mut old = crd();
        old["status"] = json!({"storedVersions": ["v1"]});
        let mut c = crd();
        c["spec"]["scope"] = json!("Cluster");
        c["spec"]["versions"][0]["name"] = json!("v2");
        assert_eq!(
            errors(&c, Some(&old)),
            vec![
                r#"spec.scope: Invalid value: "Cluster": field is immutable"#,
                r#"status.storedVersions[0]: Invalid value: "v1": must appear in spec.versions"#,
            ]
        );
    }

    #[test]
    fn printer_columns() {
        let mut c = crd();
        c["spec"]["versions"][0]["additionalPrinterColumns"] = json!([{"name": "X", "type": "list", "jsonPath": ""}]);
        assert_eq!(
            errors(&c, None),
            vec![
                r#"spec.additionalPrinterColumns[0].type: Invalid value: "list": must be one of boolean,date,integer,number,string"#,
                "spec.additionalPrinterColumns[0].JSONPath: Required value",
            ]
        );
    }

    // Each expectation below is what kube-apiserver 1.37.2 answered for the same CRD.

    #[test]
    fn per_version_schemas_are_reported_per_version() {
        let mut c = crd();
        let mut v2 = c["spec"]["versions"][0].clone();
        v2["name"] = json!("v2");
        v2["storage"] = json!(false);
        v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["size"]["default"] = json!("big");
        c["spec"]["versions"].as_array_mut().unwrap().push(v2);
        assert_eq!(
            errors(&c, None),
            vec![
                r#"spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[size].default: Invalid value: "string":  in body must be of type integer: "string""#
            ]
        );
    }

    #[test]
    fn rules_need_a_cel_type() {
        let rule = json!([{"rule": "self.all(k, k.size() < 5)"}]);
        let untyped_map = |default: Option<Value>| {
            let mut m = json!({"type": "object", "additionalProperties": {"x-kubernetes-preserve-unknown-fields": true},
                               "x-kubernetes-validations": rule});
            if let Some(d) = default {
                m["default"] = d;
            }
            let mut c = crd();
            c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["m"] = m;
            c
        };
        let at = "spec.validation.openAPIV3Schema.properties[spec].properties[m]";
        assert_eq!(
            errors(&untyped_map(None), None),
            vec![format!(
                "{at}.x-kubernetes-validations: Internal error: internal error: failed to construct type information for x-kubernetes-validations rules: unable to convert structural schema to CEL declarations"
            )]
        );
        assert_eq!(
            errors(&untyped_map(Some(json!({}))), None),
            vec![format!(
                "{at}.default: Invalid value: \"object\": rule compiler initialization error: failed to convert to declType for CEL validation rules"
            )]
        );
        // A typed map, int-or-string values, a typed list: fine.
        for values in [json!({"type": "string"}), json!({"x-kubernetes-int-or-string": true})] {
            let mut c = untyped_map(Some(json!({})));
            c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["m"]["additionalProperties"] =
                values;
            assert_eq!(errors(&c, None), Vec::<String>::new());
        }
        let mut untyped_items = crd();
        untyped_items["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["l"] = json!({"type": "array", "items": {"x-kubernetes-preserve-unknown-fields": true}, "x-kubernetes-validations": [{"rule": "size(self) < 3"}]});
        assert_eq!(errors(&untyped_items, None).len(), 1);
    }

    #[test]
    fn defaults_must_pass_the_rules() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["d"] = json!({
            "type": "object", "default": {"x": 7},
            "properties": {"x": {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 5", "message": "x too big"}]}}
        });
        assert_eq!(
            errors(&c, None),
            vec![
                "spec.validation.openAPIV3Schema.properties[spec].properties[d].default.x: Invalid value: 7: x too big"
            ]
        );
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["d"]["default"] =
            json!({"x": 4});
        assert_eq!(errors(&c, None), Vec::<String>::new());
    }

    #[test]
    fn undefined_fields_also_on_preserve_unknown_objects() {
        let mut c = crd();
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["n"] = json!({
            "type": "object", "x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-validations": [{"rule": "self.a == 1"}]
        });
        let e = errors(&c, None);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(r#"spec.validation.openAPIV3Schema.properties[spec].properties[n].x-kubernetes-validations[0].rule: Invalid value: {"Rule":"self.a == 1","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:5: undefined field 'a'"#),
            "{}",
            e[0]
        );
    }

    #[test]
    fn printer_columns_and_scale_paths() {
        let mut c = crd();
        c["spec"]["versions"][0]["additionalPrinterColumns"] =
            json!([{"name": "", "type": "", "jsonPath": "x", "format": "weird"}]);
        c["spec"]["versions"][0]["subresources"] = json!({"scale": {"specReplicasPath": "spec.r", "statusReplicasPath": ".spec.x", "labelSelectorPath": ".foo"}});
        assert_eq!(
            errors(&c, None),
            vec![
                r#"spec.subresources.scale.specReplicasPath: Invalid value: "spec.r": must be a simple json path starting with ."#,
                r#"spec.subresources.scale.statusReplicasPath: Invalid value: ".spec.x": should be a json path under .status"#,
                r#"spec.subresources.scale.labelSelectorPath: Invalid value: ".foo": should be a json path under either .spec or .status"#,
                "spec.additionalPrinterColumns[0].name: Required value",
                "spec.additionalPrinterColumns[0].type: Required value: must be one of boolean,date,integer,number,string",
                r#"spec.additionalPrinterColumns[0].format: Invalid value: "weird": must be one of byte,date,date-time,double,float,int32,int64,password"#,
                r#"spec.additionalPrinterColumns[0].JSONPath: Invalid value: "x": must be a simple json path starting with ."#,
            ]
        );
    }
}
