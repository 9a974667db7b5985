//! OpenAPI schemas of the built-in kinds the emulator serves, generated from `k8s-openapi`
//! (v1_33) through its `schemars` implementations: they are produced from the same
//! upstream OpenAPI document kube-apiserver 1.33 publishes, so names
//! (`io.k8s.api.core.v1.Secret`), descriptions and field types match the real server.

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};

fn name_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    // Registers T (and everything it references) in the generator's definitions.
    let _ = generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Register the schema of a built-in kind; returns its component name, `None` for a kind
/// the emulator does not serve.
pub(super) fn register(group: &str, version: &str, kind: &str, generator: &mut SchemaGenerator) -> Option<String> {
    let name = match (group, version, kind) {
        ("", "v1", "Namespace") => name_of::<api::core::v1::Namespace>(generator),
        ("", "v1", "Secret") => name_of::<api::core::v1::Secret>(generator),
        ("", "v1", "ConfigMap") => name_of::<api::core::v1::ConfigMap>(generator),
        ("", "v1", "ServiceAccount") => name_of::<api::core::v1::ServiceAccount>(generator),
        ("", "v1", "Service") => name_of::<api::core::v1::Service>(generator),
        ("", "v1", "Event") => name_of::<api::core::v1::Event>(generator),
        ("events.k8s.io", "v1", "Event") => name_of::<api::events::v1::Event>(generator),
        ("coordination.k8s.io", "v1", "Lease") => name_of::<api::coordination::v1::Lease>(generator),
        ("apps", "v1", "Deployment") => name_of::<api::apps::v1::Deployment>(generator),
        ("rbac.authorization.k8s.io", "v1", "Role") => name_of::<api::rbac::v1::Role>(generator),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => name_of::<api::rbac::v1::RoleBinding>(generator),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => name_of::<api::rbac::v1::ClusterRole>(generator),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            name_of::<api::rbac::v1::ClusterRoleBinding>(generator)
        }
        ("policy", "v1", "PodDisruptionBudget") => name_of::<api::policy::v1::PodDisruptionBudget>(generator),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            name_of::<apiextensions::CustomResourceDefinition>(generator)
        }
        _ => return None,
    };
    Some(name)
}

/// Add the patch and list metadata kube-apiserver publishes on built-in fields
/// (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`,
/// `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`), which k8s-openapi's schemars output
/// leaves out. kubectl's client-side `apply` builds its strategic merge patch from them
/// (`$setElementOrder`, `$patch: delete`, `$retainKeys`); without them it would treat keyed
/// lists as atomic. The values come from the patch engines' own table
/// (`patch::builtin_field_extensions`), so what kubectl reads is what the server does.
///
/// Walks `kind`'s schema from its definition `root` through `$ref`s, building the dotted paths
/// (`spec.template.spec.containers[].env`) that table is keyed by. Definitions are shared
/// (one `PodSpec` for every kind), so extensions are only ever added.
pub(super) fn annotate(kind: &str, root: &str, schemas: &mut Map<String, Value>) {
    let mut stack = vec![root.to_owned()];
    annotate_definition(kind, root, "", schemas, &mut stack);
}

/// Deep enough for a pod template's containers' fields; recursive definitions (the CRD's
/// JSONSchemaProps) stop at the first repetition on the current path anyway.
const MAX_DEPTH: usize = 16;

fn annotate_definition(kind: &str, def: &str, path: &str, schemas: &mut Map<String, Value>, stack: &mut Vec<String>) {
    let props: Vec<(String, Value)> =
        match schemas.get(def).and_then(|d| d.get("properties")).and_then(Value::as_object) {
            Some(p) => p.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => return,
        };
    for (prop, prop_schema) in props {
        let field_path = if path.is_empty() { prop.clone() } else { format!("{path}.{prop}") };
        let ext = crate::kube::patch::builtin_field_extensions(kind, &field_path);
        if !ext.is_empty()
            && let Some(Value::Object(target)) =
                schemas.get_mut(def).and_then(|d| d.pointer_mut(&format!("/properties/{}", escape_pointer(&prop))))
        {
            for (k, v) in ext {
                target.entry(k).or_insert(v);
            }
        }
        let (child, child_path) = match ref_name(&prop_schema) {
            Some(r) => (Some(r), field_path),
            None => (prop_schema.get("items").and_then(ref_name), format!("{field_path}[]")),
        };
        if let Some(child) = child
            && stack.len() < MAX_DEPTH
            && !stack.contains(&child)
        {
            stack.push(child.clone());
            annotate_definition(kind, &child, &child_path, schemas, stack);
            stack.pop();
        }
    }
}

/// The component a schema refers to, directly or through kube-openapi's `allOf` wrapper.
fn ref_name(s: &Value) -> Option<String> {
    let r = s
        .get("$ref")
        .or_else(|| s.get("allOf").and_then(Value::as_array).and_then(|a| a.first()).and_then(|f| f.get("$ref")))?;
    r.as_str()?.strip_prefix("#/components/schemas/").map(str::to_owned)
}

/// RFC 6901 escaping of one JSON pointer segment.
fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}
