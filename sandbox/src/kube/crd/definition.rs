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
const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// apimachinery `IsDNS1035Label` messages, joined with "," as the CRD validation does.
fn dns1035_errors(v: &str) -> Vec<String> {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(&format!("^{DNS1035_FMT}$")).expect("static regex"));
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
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let e = dns1123_subdomain_errors(group);
        if !e.is_empty() {
            errs.push(FieldError::invalid(
                "spec.group",
                &json!(group),
                &e.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                &json!(group),
                "should be a domain with at least one dot",
            ));
        }
    }
    match crd.pointer("/spec/scope").and_then(Value::as_str) {
        Some("Cluster" | "Namespaced") => {}
        Some(other) => errs.push(FieldError::not_supported(
            "spec.scope",
            &json!(other),
            &[json!("Cluster"), json!("Namespaced")],
        )),
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
                errs.push(FieldError::invalid(
                    field,
                    crd.pointer(ptr).unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
        // A version whose objects may still be stored cannot disappear from spec.versions.
        let names: HashSet<&str> = versions(crd)
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        if let Some(stored) = old
            .pointer("/status/storedVersions")
            .and_then(Value::as_array)
        {
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
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn validate_names(crd: &Value, errs: &mut Vec<FieldError>) {
    let names = &crd["spec"]["names"];
    for field in ["plural", "singular"] {
        match names.get(field).and_then(Value::as_str) {
            None | Some("") if field == "plural" => {
                errs.push(FieldError::required("spec.names.plural", ""))
            }
            None | Some("") => {}
            Some(v) => {
                let e = dns1035_errors(v);
                if !e.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("spec.names.{field}"),
                        &json!(v),
                        &e.join(","),
                    ));
                }
            }
        }
    }
    for field in ["kind", "listKind"] {
        match names.get(field).and_then(Value::as_str) {
            None | Some("") if field == "kind" => {
                errs.push(FieldError::required("spec.names.kind", ""))
            }
            None | Some("") => {}
            Some(v) => {
                let e = dns1035_errors(&v.to_lowercase());
                if !e.is_empty() {
                    errs.push(FieldError::invalid(
                        format!("spec.names.{field}"),
                        &json!(v),
                        &e.join(","),
                    ));
                }
            }
        }
    }
    if let (Some(k), Some(lk)) = (names["kind"].as_str(), names["listKind"].as_str())
        && !k.is_empty()
        && k == lk
    {
        errs.push(FieldError::invalid(
            "spec.names.listKind",
            &json!(lk),
            "kind and listKind must be different",
        ));
    }
    if let Some(shorts) = names["shortNames"].as_array() {
        for (i, s) in shorts.iter().enumerate() {
            let v = s.as_str().unwrap_or("");
            let e = dns1035_errors(v);
            if !e.is_empty() {
                errs.push(FieldError::invalid(
                    format!("spec.names.shortNames[{i}]"),
                    s,
                    &e.join(","),
                ));
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
    let storage = vs.iter().filter(|v| v["storage"] == true).count();
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &Value::Array(
                vs.iter()
                    .map(|v| json!({"name": v["name"], "storage": v["storage"]}))
                    .collect(),
            ),
            "must have exactly one version marked as storage version",
        ));
    }
    if !vs.iter().any(|v| v["served"] == true) {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!(""),
            "must have at least one served version",
        ));
    }
    let mut seen = HashSet::new();
    for (i, v) in vs.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let vname = v["name"].as_str().unwrap_or("");
        if vname.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else {
            let e = dns1035_errors(vname);
            if !e.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{path}.name"),
                    &json!(vname),
                    &e.join(","),
                ));
            }
            if !seen.insert(vname) {
                errs.push(FieldError::duplicate(format!("{path}.name"), &json!(vname)));
            }
        }
        let schema_path = format!("{path}.schema.openAPIV3Schema");
        match v.pointer("/schema/openAPIV3Schema") {
            Some(s) if s.is_object() => {
                validate_structural(s, Level::Root, &schema_path, errs);
                let (_, cel_errs) = cel::compile(s, &schema_path);
                errs.extend(cel_errs);
            }
            _ => errs.push(FieldError::required(schema_path, "schemas are required")),
        }
        validate_printer_columns(v, &path, errs);
        if v.pointer("/subresources/scale").is_some() {
            for field in ["specReplicasPath", "statusReplicasPath"] {
                if v.pointer(&format!("/subresources/scale/{field}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    errs.push(FieldError::required(
                        format!("{path}.subresources.scale.{field}"),
                        "",
                    ));
                }
            }
        }
    }
}

fn validate_printer_columns(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(cols) = v["additionalPrinterColumns"].as_array() else {
        return;
    };
    // Sorted, as `sets.String.List()` lists them in the server's message.
    const TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
    const FORMATS: &[&str] = &[
        "byte",
        "date",
        "date-time",
        "double",
        "float",
        "int32",
        "int64",
        "password",
    ];
    for (i, c) in cols.iter().enumerate() {
        let cp = format!("{path}.additionalPrinterColumns[{i}]");
        if c["name"].as_str().unwrap_or("").is_empty() {
            errs.push(FieldError::required(format!("{cp}.name"), ""));
        }
        match c["type"].as_str() {
            None | Some("") => errs.push(FieldError::required(format!("{cp}.type"), "")),
            Some(t) if !TYPES.contains(&t) => {
                errs.push(FieldError::not_supported(
                    format!("{cp}.type"),
                    &json!(t),
                    &TYPES.iter().map(|t| json!(t)).collect::<Vec<_>>(),
                ));
            }
            _ => {}
        }
        if let Some(f) = c["format"].as_str()
            && !f.is_empty()
            && !FORMATS.contains(&f)
        {
            errs.push(FieldError::not_supported(
                format!("{cp}.format"),
                &json!(f),
                &FORMATS.iter().map(|t| json!(t)).collect::<Vec<_>>(),
            ));
        }
        match c["jsonPath"].as_str().unwrap_or("") {
            "" => errs.push(FieldError::required(format!("{cp}.jsonPath"), "")),
            p if !p.starts_with('.') => errs.push(FieldError::invalid(
                format!("{cp}.jsonPath"),
                &json!(p),
                "must be a simple json path starting with .",
            )),
            _ => {}
        }
    }
}

/// A `default` must be pruned (no undeclared fields) and valid against its own schema,
/// since the server stores it into objects as is.
fn validate_default(
    s: &Value,
    default: &Value,
    lvl: Level,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if lvl == Level::Root {
        errs.push(FieldError::forbidden(path, "must not be set at the root"));
        return;
    }
    let mut pruned_copy = default.clone();
    let pruned = prune::prune_value(&mut pruned_copy, s);
    if !pruned.is_empty() {
        errs.push(FieldError::invalid(
            path,
            default,
            &format!("must not have unknown fields: {}", pruned.join(", ")),
        ));
    }
    for mut e in validate::validate_value(s, default) {
        e.field = if e.field.is_empty() {
            path.to_owned()
        } else {
            format!("{path}.{}", e.field)
        };
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
    if t.is_empty()
        && !schema::embedded_resource(s)
        && !schema::int_or_string(s)
        && !schema::preserve_unknown(s)
    {
        let detail = match lvl {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(child("type"), detail));
    }
    if !matches!(
        t,
        "" | "object" | "array" | "string" | "integer" | "number" | "boolean"
    ) {
        errs.push(FieldError::not_supported(
            child("type"),
            &json!(t),
            &["array", "boolean", "integer", "number", "object", "string"].map(|x| json!(x)),
        ));
    }
    if lvl == Level::Root && !t.is_empty() && t != "object" {
        errs.push(FieldError::invalid(
            child("type"),
            &json!(t),
            "must be object at the root",
        ));
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
        } else if schema::properties(s).is_none_or(|p| p.is_empty()) && !schema::preserve_unknown(s)
        {
            errs.push(FieldError::required(
                child("properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            ));
        }
    }
    if schema::int_or_string(s) && !t.is_empty() {
        errs.push(FieldError::invalid(
            child("type"),
            &json!(t),
            "must be empty to be int-or-string",
        ));
    }
    if schema::flag(s, "uniqueItems") {
        errs.push(FieldError::forbidden(
            child("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    for forbidden in [
        "$ref",
        "definitions",
        "id",
        "additionalItems",
        "patternProperties",
        "dependencies",
    ] {
        if s.get(forbidden).is_some() {
            errs.push(FieldError::forbidden(
                child(forbidden),
                &format!("{forbidden} is not supported"),
            ));
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
                errs.push(FieldError::forbidden(
                    child("additionalProperties"),
                    "must not be used at the root",
                ));
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
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
        && Regex::new(pattern).is_err()
    {
        errs.push(FieldError::invalid(
            child("pattern"),
            &json!(pattern),
            "must be a valid regular expression",
        ));
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
            let mp = schema::key(&child("properties"), "metadata");
            if schema::type_of(meta) != "object" {
                errs.push(FieldError::invalid(
                    format!("{mp}.type"),
                    &json!(schema::type_of(meta)),
                    "must be object",
                ));
            }
            if let Some(props) = schema::properties(meta) {
                for k in props
                    .keys()
                    .filter(|k| *k != "name" && *k != "generateName")
                {
                    errs.push(FieldError::forbidden(
                        schema::key(&format!("{mp}.properties"), k),
                        "must not be specified",
                    ));
                }
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
        validate_crd(crd, old)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
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
        assert_eq!(
            e[1],
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#
        );
        assert!(e[2].starts_with(r#"spec.names.plural: Invalid value: "Widgets": a DNS-1035 label must consist of lower case alphanumeric characters or '-'"#), "{}", e[2]);
        assert!(e[3].starts_with(r#"spec.names.shortNames[0]: Invalid value: "w_1""#));
        let mut dotless = crd();
        dotless["spec"]["group"] = json!("example");
        dotless["metadata"]["name"] = json!("widgets.example");
        assert_eq!(
            errors(&dotless, None),
            vec![
                r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#
            ]
        );
    }

    #[test]
    fn exactly_one_storage_version_and_unique_names() {
        let mut c = crd();
        let v = c["spec"]["versions"][0].clone();
        c["spec"]["versions"] = json!([v.clone(), v]);
        let e = errors(&c, None);
        assert!(e[0].starts_with("spec.versions: Invalid value: "), "{e:?}");
        assert!(e[0].ends_with("must have exactly one version marked as storage version"));
        assert_eq!(e[1], r#"spec.versions[1].name: Duplicate value: "v1""#);
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
                "spec.versions[0].schema.openAPIV3Schema.properties[metadata].properties[labels]: Forbidden: must not be specified",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[list].items: Required value: must be specified",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                "spec.versions[0].schema.openAPIV3Schema.properties[status].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            ]
        );
        let mut no_schema = crd();
        no_schema["spec"]["versions"][0]
            .as_object_mut()
            .expect("object")
            .remove("schema");
        assert_eq!(
            errors(&no_schema, None),
            vec!["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
        );
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
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].default: Invalid value: "string": must be of type integer: "string""#,
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[mode].default: Unsupported value: "c": supported values: "a", "b""#,
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[policy].default: Invalid value: map[string]interface {}{"x":1, "y":2}: must not have unknown fields: y"#,
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
        assert!(e[0].starts_with("spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.size >\""), "{}", e[0]);
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
        c["spec"]["versions"][0]["additionalPrinterColumns"] =
            json!([{"name": "X", "type": "list", "jsonPath": ""}]);
        assert_eq!(
            errors(&c, None),
            vec![
                r#"spec.versions[0].additionalPrinterColumns[0].type: Unsupported value: "list": supported values: "boolean", "date", "integer", "number", "string""#,
                "spec.versions[0].additionalPrinterColumns[0].jsonPath: Required value",
            ]
        );
    }
}
