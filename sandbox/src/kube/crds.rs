//! The apiextensions side of CustomResourceDefinitions: admission of the CRD object (via
//! the `crd` engine), its status (NamesAccepted/Established, acceptedNames,
//! storedVersions), and turning an established CRD into served resource types.

use std::sync::Arc;

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::crd::{self, CompiledVersion};
use super::object_meta::now_rfc3339;
use super::resources::{Custom, NameRule, Registry, ResourceType, View};

/// The finalizer apiextensions-apiserver puts on every CRD so that its objects are deleted
/// before the CRD disappears.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Validate a CRD write and compile every served version (a version that does not compile
/// makes the CRD invalid rather than half-served). Ok: the `Warning`s to send.
pub fn admit(crd_obj: &mut Value, old: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let name = crd_obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let invalid = |causes| {
        ApiError::invalid(
            super::api_error::GroupKind {
                group: "apiextensions.k8s.io".into(),
                kind: "CustomResourceDefinition".into(),
            },
            &name,
            causes,
        )
    };
    crd::validate_crd(crd_obj, old).map_err(invalid)?;
    for v in served_versions(crd_obj) {
        CompiledVersion::compile(crd_obj, &v).map_err(invalid)?;
    }
    Ok(crd::crd_warnings(crd_obj, old))
}

fn served_versions(crd_obj: &Value) -> Vec<String> {
    crd_obj["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["served"].as_bool().unwrap_or(false))
                .filter_map(|v| v["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn storage_version(crd_obj: &Value) -> Option<String> {
    crd_obj["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str().map(str::to_string))
}

/// `spec.names` with the defaults apiextensions fills in (singular = lowercase kind,
/// listKind = kind + "List").
fn accepted_names(crd_obj: &Value) -> Value {
    let mut names = crd_obj["spec"]["names"].clone();
    if !names.is_object() {
        names = json!({});
    }
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    if names["singular"].as_str().is_none_or(str::is_empty) {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names["listKind"].as_str().is_none_or(str::is_empty) {
        names["listKind"] = json!(format!("{kind}List"));
    }
    names
}

/// The status a CRD is created with (the strategy's `PrepareForCreate`): no conditions yet,
/// empty accepted names, the storage version recorded. The naming and establishing
/// controllers fill the rest in right after ([`set_status`]).
pub fn initial_status(crd_obj: &mut Value) {
    let stored: Vec<Value> = storage_version(crd_obj).map(Value::String).into_iter().collect();
    crd_obj["status"] = json!({
        "conditions": null,
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": stored,
    });
}

/// Whether the CRD has its Established condition (its resources are served).
pub fn is_established(crd_obj: &Value) -> bool {
    crd_obj["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Established" && c["status"] == "True"))
}

/// What the apiextensions controllers write: accepted names, NamesAccepted and Established
/// conditions, storedVersions. The emulator writes it right after the create (as a second
/// write by `kube-apiserver` on the status subresource), so a CRD is established before
/// any other request sees it.
pub fn set_status(crd_obj: &mut Value, old: Option<&Value>) {
    let now = now_rfc3339();
    // Keep the transition time of a condition whose status did not change.
    let since = |ty: &str| {
        old.and_then(|o| o["status"]["conditions"].as_array())
            .and_then(|cs| cs.iter().find(|c| c["type"] == ty && c["status"] == "True"))
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(|| now.clone())
    };
    let mut stored: Vec<Value> =
        old.and_then(|o| o["status"]["storedVersions"].as_array().cloned()).unwrap_or_default();
    if let Some(v) = storage_version(crd_obj)
        && !stored.iter().any(|s| s == &json!(v))
    {
        stored.push(json!(v));
    }
    let mut conditions = vec![
        json!({"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")}),
        json!({"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since("Established")}),
    ];
    // The Terminating condition a delete adds stays until the CRD is gone.
    if let Some(terminating) = old
        .and_then(|o| o["status"]["conditions"].as_array())
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Terminating"))
    {
        conditions.push(terminating.clone());
    }
    crd_obj["status"] = json!({
        "conditions": conditions,
        "acceptedNames": accepted_names(crd_obj),
        "storedVersions": stored,
    });
}

/// What the first delete of a CRD does (its registry's `Delete`): the deletion timestamp,
/// the cleanup finalizer (whose controller deletes the custom resources, then removes it)
/// and a Terminating condition.
pub fn mark_deleting(crd_obj: &mut Value) {
    let fins = crd_obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
    if !fins.iter().any(|f| f == CLEANUP_FINALIZER) {
        let mut fins = fins;
        fins.push(json!(CLEANUP_FINALIZER));
        crd_obj["metadata"]["finalizers"] = Value::Array(fins);
    }
    let terminating = json!({
        "type": "Terminating", "status": "True", "lastTransitionTime": now_rfc3339(),
        "reason": "InstanceDeletionPending",
        "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    });
    match crd_obj["status"]["conditions"].as_array_mut() {
        Some(cs) => {
            cs.retain(|c| c["type"] != "Terminating");
            cs.push(terminating);
        }
        None => crd_obj["status"]["conditions"] = json!([terminating]),
    }
}

/// Serve (or re-serve) every served version of an established CRD.
pub fn register(reg: &mut Registry, crd_obj: &Value) {
    let group = crd_obj["spec"]["group"].as_str().unwrap_or("").to_string();
    let names = accepted_names(crd_obj);
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    if group.is_empty() || plural.is_empty() {
        return;
    }
    let storage = storage_version(crd_obj).unwrap_or_default();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let mut types = Vec::new();
    for version in served_versions(crd_obj) {
        // Admission already proved every served version compiles.
        let Ok(compiled) = CompiledVersion::compile(crd_obj, &version) else { continue };
        let vdef = crd_obj["spec"]["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == version.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        let selectable_fields = vdef["selectableFields"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| f["jsonPath"].as_str().map(|p| p.trim_start_matches('.').to_string()))
                    .collect()
            })
            .unwrap_or_default();
        types.push(Arc::new(ResourceType {
            group: group.clone(),
            version: version.clone(),
            kind: names["kind"].as_str().unwrap_or("").to_string(),
            plural: plural.clone(),
            singular: names["singular"].as_str().unwrap_or("").to_string(),
            namespaced: crd_obj["spec"]["scope"] == "Namespaced",
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            verbs: vec!["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            status_subresource: vdef["subresources"]["status"].is_object(),
            storage_group: group.clone(),
            storage_plural: plural.clone(),
            storage_api_version: format!("{group}/{storage}"),
            view: View::Plain,
            name_rule: NameRule::DnsSubdomain,
            // customResourceStrategy: no create-on-update, resourceVersion required on PUT.
            allow_create_on_update: false,
            allow_unconditional_update: false,
            tracks_generation: true,
            extra_field_selectors: Vec::new(),
            custom: Some(Arc::new(Custom { crd: crd_obj.clone(), compiled, selectable_fields })),
        }));
    }
    reg.set_custom(&group, &plural, types);
}

pub fn unregister(reg: &mut Registry, crd_obj: &Value) {
    let group = crd_obj["spec"]["group"].as_str().unwrap_or("");
    let plural = crd_obj["spec"]["names"]["plural"].as_str().unwrap_or("");
    reg.set_custom(group, plural, Vec::new());
}

/// Storage location (group, plural) of a CRD's objects.
pub fn storage_of(crd_obj: &Value) -> (String, String) {
    (
        crd_obj["spec"]["group"].as_str().unwrap_or("").to_string(),
        crd_obj["spec"]["names"]["plural"].as_str().unwrap_or("").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.g.dev"},
            "spec": {"group": "g.dev", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing", "shortNames": ["th"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1beta1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]}
        })
    }

    #[test]
    fn status_and_registration() {
        let mut crd_obj = sample();
        initial_status(&mut crd_obj);
        assert_eq!(crd_obj["status"]["storedVersions"], json!(["v1"]));
        assert!(!is_established(&crd_obj));
        let created = crd_obj.clone();
        set_status(&mut crd_obj, Some(&created));
        assert!(is_established(&crd_obj));
        assert_eq!(crd_obj["status"]["acceptedNames"]["singular"], "thing");
        assert_eq!(crd_obj["status"]["storedVersions"], json!(["v1"]));
        assert!(crd_obj["metadata"]["finalizers"].is_null(), "the cleanup finalizer comes with the first delete");
        mark_deleting(&mut crd_obj);
        assert_eq!(crd_obj["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(crd_obj["status"]["conditions"][2]["type"], "Terminating");
        let mut reg = Registry::default();
        register(&mut reg, &crd_obj);
        let t = reg.find("g.dev", "v1", "things").unwrap();
        assert!(t.status_subresource && t.namespaced && t.is_custom());
        assert!(reg.find("g.dev", "v1beta1", "things").is_none());
        unregister(&mut reg, &crd_obj);
        assert!(reg.find("g.dev", "v1", "things").is_none());
    }
}
