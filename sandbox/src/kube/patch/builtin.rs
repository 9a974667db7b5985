//! What the emulator knows of built-in kinds' Go types, for the fields that matter to patches:
//! list types (`+listType`/`+listMapKey`, used by server-side apply), patch strategies
//! (`patchStrategy`/`patchMergeKey`, used by strategic merge patch), which fields are Go maps
//! rather than structs, and which structs are atomic.
//!
//! The list, map and patch metadata is kube-apiserver's own: `builtin_fields.json`, extracted
//! from a real 1.37.2 control plane's `/openapi/v3` by `builtin_fields.py`. Paths are dotted
//! field names from the object root; `[]` marks a list item, `{}` a map value, e.g.
//! `spec.template.spec.containers[].ports`. A custom resource's `metadata` is ObjectMeta, like
//! any kind's. Anything not listed is a granular struct, and an unlisted list is atomic (the
//! structured-merge-diff default for lists without `+listType`).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// How server-side apply treats a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// How strategic merge patch treats a list (`patchStrategy` tag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchStrategy {
    /// No strategy: the patch's list replaces the live one.
    Replace,
    /// `patchStrategy:"merge"` on a list of scalars: union.
    MergePrimitives,
    /// `patchStrategy:"merge"` with `patchMergeKey`.
    MergeByKey(&'static str),
}

/// `builtin_fields.json`: kind → field path → extensions.
struct Tables {
    fields: HashMap<String, HashMap<String, Map<String, Value>>>,
    components: Map<String, Value>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let doc: Value =
            serde_json::from_str(include_str!("builtin_fields.json")).expect("builtin_fields.json is JSON");
        let fields = doc["fields"]
            .as_object()
            .expect("fields")
            .iter()
            .map(|(kind, paths)| {
                let paths = paths
                    .as_object()
                    .expect("paths")
                    .iter()
                    .map(|(path, ext)| (path.clone(), ext.as_object().cloned().unwrap_or_default()))
                    .collect();
                (kind.clone(), paths)
            })
            .collect();
        let components = doc["components"].as_object().cloned().unwrap_or_default();
        Tables { fields, components }
    })
}

/// The extensions kube-apiserver publishes for the field at `path` of `kind`. ObjectMeta is
/// the same for every kind (custom resources included), so `metadata.*` comes from any.
fn extensions(kind: &str, path: &str) -> Option<&'static Map<String, Value>> {
    let t = tables();
    let kind = if (path == "metadata" || path.starts_with("metadata.")) && !t.fields.contains_key(kind) {
        "ConfigMap"
    } else {
        kind
    };
    t.fields.get(kind)?.get(path)
}

fn extension(kind: &str, path: &str, name: &str) -> Option<&'static str> {
    extensions(kind, path)?.get(name)?.as_str()
}

/// The x-kubernetes-* extensions of OpenAPI component `name` as kube-apiserver publishes them:
/// key "" for the component's own, else a property's. `None` for a component it lacks.
pub fn component_extensions(name: &str) -> Option<&'static Map<String, Value>> {
    tables().components.get(name)?.as_object()
}

pub fn list_type(kind: &str, path: &str) -> ListType {
    match extension(kind, path, "x-kubernetes-list-type") {
        Some("set") => ListType::Set,
        Some("map") => {
            let keys = extensions(kind, path)
                .and_then(|e| e.get("x-kubernetes-list-map-keys"))
                .and_then(Value::as_array)
                .map(|ks| ks.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            ListType::Map(keys)
        }
        _ => ListType::Atomic,
    }
}

/// The `x-kubernetes-patch-strategy` parts (`merge`, `retainKeys`, `replace`) of a field.
fn strategy_has(kind: &str, path: &str, part: &str) -> bool {
    extension(kind, path, "x-kubernetes-patch-strategy").is_some_and(|s| s.split(',').any(|p| p == part))
}

pub fn patch_strategy(kind: &str, path: &str) -> PatchStrategy {
    if !strategy_has(kind, path, "merge") {
        return PatchStrategy::Replace;
    }
    match extension(kind, path, "x-kubernetes-patch-merge-key") {
        Some(key) => PatchStrategy::MergeByKey(key),
        None => PatchStrategy::MergePrimitives,
    }
}

/// A struct field with `patchStrategy:"replace"` (a PodDisruptionBudget's `spec.selector`):
/// a strategic merge patch replaces it whole instead of merging into it.
pub fn replaces_whole(kind: &str, path: &str) -> bool {
    strategy_has(kind, path, "replace")
}

/// Go `map[string]T` fields: their keys are not struct fields (not "named" in
/// structured-merge-diff's sense).
pub fn is_go_map(kind: &str, path: &str) -> bool {
    const MAP_SUFFIXES: &[&str] = &[
        "metadata.labels",
        "metadata.annotations",
        "nodeSelector",
        "resources.limits",
        "resources.requests",
        "matchLabels",
    ];
    if MAP_SUFFIXES.iter().any(|s| ends_with_segment(path, s)) {
        return true;
    }
    matches!(
        (kind, path),
        ("ConfigMap", "data" | "binaryData") | ("Secret", "data" | "stringData") | ("Service", "spec.selector")
    )
}

/// True when `path` ends with the dotted `suffix` at a segment boundary.
fn ends_with_segment(path: &str, suffix: &str) -> bool {
    path == suffix
        || (path.ends_with(suffix) && {
            let cut = &path[..path.len() - suffix.len()];
            cut.ends_with('.')
        })
}

/// Structs and maps marked atomic (`x-kubernetes-map-type: atomic`), on the field or on its
/// type (metav1.LabelSelector is `+structType=atomic`).
pub fn is_atomic_map(kind: &str, path: &str) -> bool {
    extensions(kind, path).is_some_and(|e| {
        e.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
            || e.get("type:x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
    })
}

/// The OpenAPI extensions kube-apiserver publishes on the field at `path` of `kind`
/// (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`, `x-kubernetes-map-type`), from the table the patch
/// engines use. kubectl's client-side apply reads the patch ones to build its patches.
pub fn openapi_extensions(kind: &str, path: &str) -> Map<String, Value> {
    extensions(kind, path)
        .map(|e| e.iter().filter(|(k, _)| !k.starts_with("type:")).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The JSON of a zero Go value of `kind`, minus what is stripped from managed fields: the
/// "before" of a create. Non-pointer struct fields exist (empty) in it, so a create owns
/// their contents but not the structs themselves (no `"."` entry for `f:spec`), exactly as
/// kube-apiserver, which compares against `New()`. Custom resources start from `{}`.
pub fn zero_object(kind: &str) -> Value {
    match kind {
        // `containers` has no omitempty: a zero PodSpec carries `"containers": null`.
        "Deployment" => json!({
            "spec": {"template": {"metadata": {}, "spec": {"containers": null}}, "strategy": {}},
            "status": {}
        }),
        "Service" => json!({"spec": {}, "status": {"loadBalancer": {}}}),
        "Namespace" | "PodDisruptionBudget" => json!({"spec": {}, "status": {}}),
        "Lease" => json!({"spec": {}}),
        "CustomResourceDefinition" => {
            json!({"spec": {"names": {}}, "status": {"acceptedNames": {}}})
        }
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_template_lists_are_keyed_as_kube_apiserver_publishes() {
        assert_eq!(list_type("Deployment", "spec.template.spec.containers"), ListType::Map(vec!["name".into()]));
        assert_eq!(
            list_type("Deployment", "spec.template.spec.containers[].ports"),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            list_type("Deployment", "spec.template.spec.containers[].volumeMounts"),
            ListType::Map(vec!["mountPath".into()])
        );
        assert_eq!(list_type("Deployment", "spec.template.spec.containers[].args"), ListType::Atomic);
        assert_eq!(list_type("Role", "rules"), ListType::Atomic);
        assert_eq!(list_type("ServiceAccount", "secrets"), ListType::Map(vec!["name".into()]));
        assert_eq!(
            patch_strategy("Deployment", "spec.template.spec.containers[].env"),
            PatchStrategy::MergeByKey("name")
        );
        assert_eq!(patch_strategy("Deployment", "spec.template.spec.tolerations"), PatchStrategy::Replace);
        // A CRD's conditions are a keyed list for apply but have no patch strategy.
        assert_eq!(list_type("CustomResourceDefinition", "status.conditions"), ListType::Map(vec!["type".into()]));
        assert_eq!(patch_strategy("CustomResourceDefinition", "status.conditions"), PatchStrategy::Replace);
    }

    #[test]
    fn metadata_and_status_lists() {
        assert_eq!(list_type("Secret", "metadata.finalizers"), ListType::Set);
        assert_eq!(list_type("Widget", "metadata.finalizers"), ListType::Set, "custom resources have ObjectMeta too");
        assert_eq!(list_type("Widget", "metadata.ownerReferences"), ListType::Map(vec!["uid".into()]));
        assert_eq!(list_type("Deployment", "status.conditions"), ListType::Map(vec!["type".into()]));
        assert_eq!(patch_strategy("ConfigMap", "metadata.finalizers"), PatchStrategy::MergePrimitives);
    }

    #[test]
    fn openapi_extensions_match_kube_apiserver() {
        assert_eq!(
            Value::Object(openapi_extensions("Deployment", "spec.template.spec.containers")),
            json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                   "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"})
        );
        assert_eq!(
            Value::Object(openapi_extensions("Deployment", "spec.template.spec.volumes")),
            json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                   "x-kubernetes-patch-strategy": "merge,retainKeys", "x-kubernetes-patch-merge-key": "name"})
        );
        assert_eq!(
            Value::Object(openapi_extensions("Deployment", "spec.strategy")),
            json!({"x-kubernetes-patch-strategy": "retainKeys"})
        );
        assert!(openapi_extensions("Lease", "spec.strategy").is_empty(), "a Lease's strategy is a string");
        assert_eq!(
            Value::Object(openapi_extensions("Secret", "metadata.finalizers")),
            json!({"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"})
        );
        // The selector's atomicity is LabelSelector's, not the field's.
        assert!(openapi_extensions("Deployment", "spec.selector").is_empty());
        assert!(is_atomic_map("Deployment", "spec.selector"));
        assert_eq!(
            Value::Object(openapi_extensions("PodDisruptionBudget", "spec.selector")),
            json!({"x-kubernetes-patch-strategy": "replace"})
        );
        assert!(replaces_whole("PodDisruptionBudget", "spec.selector"));
        assert!(!replaces_whole("Deployment", "spec.selector"));
        assert_eq!(Value::Object(openapi_extensions("Role", "rules")), json!({"x-kubernetes-list-type": "atomic"}));
    }

    #[test]
    fn maps_and_atomic_structs() {
        assert!(is_go_map("Deployment", "spec.template.metadata.labels"));
        assert!(is_go_map("ConfigMap", "data"));
        assert!(!is_go_map("ConfigMap", "spec.data"));
        assert!(is_atomic_map("Deployment", "spec.selector"));
        // A Service selector is a plain map, but `+mapType=atomic`.
        assert!(is_atomic_map("Service", "spec.selector"));
        assert!(!ends_with_segment("spec.myselector", "selector"));
        assert_eq!(
            component_extensions("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector").map(|c| c[""].clone()),
            Some(json!({"x-kubernetes-map-type": "atomic"}))
        );
    }
}
