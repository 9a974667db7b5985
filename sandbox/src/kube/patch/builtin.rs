//! What the emulator knows of built-in kinds' Go types, for the fields that matter to patches:
//! list types (`+listType`/`+listMapKey`, used by server-side apply), patch strategies
//! (`patchStrategy`/`patchMergeKey`, used by strategic merge patch), which fields are Go maps
//! rather than structs, and which structs are atomic.
//!
//! Paths are dotted field names from the object root; `[]` marks a list item, e.g.
//! `spec.template.spec.containers[].ports`. Matching is by suffix so one rule covers a pod
//! spec wherever it is embedded. Anything not listed is a granular struct, and an unlisted
//! list is atomic (the structured-merge-diff default for lists without `+listType`).

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

/// Pod-spec lists, keyed as in k8s.io/api/core/v1 types.go (1.33).
const POD_LIST_MAPS: &[(&str, &[&str])] = &[
    ("spec.containers", &["name"]),
    ("spec.initContainers", &["name"]),
    ("spec.ephemeralContainers", &["name"]),
    ("containers[].ports", &["containerPort", "protocol"]),
    ("initContainers[].ports", &["containerPort", "protocol"]),
    ("containers[].env", &["name"]),
    ("initContainers[].env", &["name"]),
    ("spec.volumes", &["name"]),
    (
        "spec.topologySpreadConstraints",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    ("spec.hostAliases", &["ip"]),
];

const POD_MERGE_KEYS: &[(&str, &str)] = &[
    ("spec.containers", "name"),
    ("spec.initContainers", "name"),
    ("spec.ephemeralContainers", "name"),
    ("containers[].ports", "containerPort"),
    ("initContainers[].ports", "containerPort"),
    ("containers[].env", "name"),
    ("initContainers[].env", "name"),
    ("containers[].volumeMounts", "mountPath"),
    ("initContainers[].volumeMounts", "mountPath"),
    ("containers[].volumeDevices", "devicePath"),
    ("spec.volumes", "name"),
    ("spec.imagePullSecrets", "name"),
    ("spec.topologySpreadConstraints", "topologyKey"),
    ("spec.hostAliases", "ip"),
];

/// True when `path` ends with the dotted `suffix` at a segment boundary.
fn ends_with_segment(path: &str, suffix: &str) -> bool {
    path == suffix
        || (path.ends_with(suffix) && {
            let cut = &path[..path.len() - suffix.len()];
            cut.ends_with('.')
        })
}

pub fn list_type(kind: &str, path: &str) -> ListType {
    if path == "metadata.finalizers" {
        return ListType::Set;
    }
    if path == "metadata.ownerReferences" {
        return ListType::Map(vec!["uid".into()]);
    }
    if path == "status.conditions" {
        return ListType::Map(vec!["type".into()]);
    }
    if kind == "Service" && path == "spec.ports" {
        return ListType::Map(vec!["port".into(), "protocol".into()]);
    }
    for (suffix, keys) in POD_LIST_MAPS {
        if ends_with_segment(path, suffix) {
            return ListType::Map(keys.iter().map(|k| (*k).to_owned()).collect());
        }
    }
    ListType::Atomic
}

pub fn patch_strategy(kind: &str, path: &str) -> PatchStrategy {
    match path {
        "metadata.finalizers" => return PatchStrategy::MergePrimitives,
        "metadata.ownerReferences" => return PatchStrategy::MergeByKey("uid"),
        "status.conditions" => return PatchStrategy::MergeByKey("type"),
        "spec.ports" if kind == "Service" => return PatchStrategy::MergeByKey("port"),
        _ => {}
    }
    for (suffix, key) in POD_MERGE_KEYS {
        if ends_with_segment(path, suffix) {
            return PatchStrategy::MergeByKey(key);
        }
    }
    PatchStrategy::Replace
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
        ("ConfigMap", "data" | "binaryData")
            | ("Secret", "data" | "stringData")
            | ("Service", "spec.selector")
    )
}

/// Structs tagged `+structType=atomic` / maps tagged `+mapType=atomic`.
pub fn is_atomic_map(kind: &str, path: &str) -> bool {
    // metav1.LabelSelector is `+structType=atomic`; a Service selector is a plain map.
    ends_with_segment(path, "selector") && !(kind == "Service" && path == "spec.selector")
}

/// Fields with the `retainKeys` patch strategy (the Go tag `patchStrategy:"retainKeys"`).
fn retains_keys(path: &str) -> bool {
    ends_with_segment(path, "spec.strategy") || ends_with_segment(path, "spec.volumes")
}

/// The OpenAPI extensions kube-apiserver publishes for the field at `path` of `kind`
/// (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`, `x-kubernetes-map-type`), from the same tables the patch
/// engines use. kubectl's client-side apply reads the patch ones to build its patches.
pub fn openapi_extensions(kind: &str, path: &str) -> Map<String, Value> {
    let mut ext = Map::new();
    match list_type(kind, path) {
        ListType::Atomic => {}
        ListType::Set => {
            ext.insert("x-kubernetes-list-type".into(), json!("set"));
        }
        ListType::Map(keys) => {
            ext.insert("x-kubernetes-list-type".into(), json!("map"));
            ext.insert("x-kubernetes-list-map-keys".into(), json!(keys));
        }
    }
    let retain = retains_keys(path);
    match patch_strategy(kind, path) {
        PatchStrategy::Replace if retain => {
            ext.insert("x-kubernetes-patch-strategy".into(), json!("retainKeys"));
        }
        PatchStrategy::Replace => {}
        PatchStrategy::MergePrimitives => {
            ext.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
        }
        PatchStrategy::MergeByKey(key) => {
            let strategy = if retain { "merge,retainKeys" } else { "merge" };
            ext.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
            ext.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
    }
    if is_atomic_map(kind, path) {
        ext.insert("x-kubernetes-map-type".into(), json!("atomic"));
    }
    ext
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
    fn pod_template_lists_are_keyed_wherever_embedded() {
        assert_eq!(
            list_type("Deployment", "spec.template.spec.containers"),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(
            list_type("Deployment", "spec.template.spec.containers[].ports"),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            list_type("Deployment", "spec.template.spec.containers[].args"),
            ListType::Atomic
        );
        assert_eq!(list_type("Role", "rules"), ListType::Atomic);
        assert_eq!(
            patch_strategy("Deployment", "spec.template.spec.containers[].env"),
            PatchStrategy::MergeByKey("name")
        );
        assert_eq!(
            patch_strategy("Deployment", "spec.template.spec.tolerations"),
            PatchStrategy::Replace
        );
    }

    #[test]
    fn metadata_and_status_lists() {
        assert_eq!(list_type("Secret", "metadata.finalizers"), ListType::Set);
        assert_eq!(
            list_type("Deployment", "status.conditions"),
            ListType::Map(vec!["type".into()])
        );
        assert_eq!(
            patch_strategy("ConfigMap", "metadata.finalizers"),
            PatchStrategy::MergePrimitives
        );
    }

    #[test]
    fn openapi_extensions_match_kube_apiserver() {
        assert_eq!(
            Value::Object(openapi_extensions(
                "Deployment",
                "spec.template.spec.containers"
            )),
            json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                   "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"})
        );
        assert_eq!(
            Value::Object(openapi_extensions(
                "Deployment",
                "spec.template.spec.volumes"
            )),
            json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                   "x-kubernetes-patch-strategy": "merge,retainKeys", "x-kubernetes-patch-merge-key": "name"})
        );
        assert_eq!(
            Value::Object(openapi_extensions("Deployment", "spec.strategy")),
            json!({"x-kubernetes-patch-strategy": "retainKeys"})
        );
        assert_eq!(
            Value::Object(openapi_extensions("Secret", "metadata.finalizers")),
            json!({"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"})
        );
        assert_eq!(
            Value::Object(openapi_extensions("Deployment", "spec.selector")),
            json!({"x-kubernetes-map-type": "atomic"})
        );
        assert!(openapi_extensions("Role", "rules").is_empty());
    }

    #[test]
    fn maps_and_atomic_structs() {
        assert!(is_go_map("Deployment", "spec.template.metadata.labels"));
        assert!(is_go_map("ConfigMap", "data"));
        assert!(!is_go_map("ConfigMap", "spec.data"));
        assert!(is_atomic_map("Deployment", "spec.selector"));
        assert!(!is_atomic_map("Service", "spec.selector"));
        assert!(!ends_with_segment("spec.myselector", "selector"));
    }
}
