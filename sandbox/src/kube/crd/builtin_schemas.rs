//! OpenAPI schemas of the built-in kinds the emulator serves, generated from `k8s-openapi`
//! (v1_33) through its `schemars` implementations: they are produced from the same
//! upstream OpenAPI document kube-apiserver 1.33 publishes, so names
//! (`io.k8s.api.core.v1.Secret`), descriptions and field types match the real server.

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};

fn name_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    // Registers T (and everything it references) in the generator's definitions.
    let _ = generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Register the schema of a built-in kind; returns its component name, `None` for a kind
/// the emulator does not serve.
pub(super) fn register(
    group: &str,
    version: &str,
    kind: &str,
    generator: &mut SchemaGenerator,
) -> Option<String> {
    let name = match (group, version, kind) {
        ("", "v1", "Namespace") => name_of::<api::core::v1::Namespace>(generator),
        ("", "v1", "Secret") => name_of::<api::core::v1::Secret>(generator),
        ("", "v1", "ConfigMap") => name_of::<api::core::v1::ConfigMap>(generator),
        ("", "v1", "ServiceAccount") => name_of::<api::core::v1::ServiceAccount>(generator),
        ("", "v1", "Service") => name_of::<api::core::v1::Service>(generator),
        ("", "v1", "Event") => name_of::<api::core::v1::Event>(generator),
        ("events.k8s.io", "v1", "Event") => name_of::<api::events::v1::Event>(generator),
        ("coordination.k8s.io", "v1", "Lease") => {
            name_of::<api::coordination::v1::Lease>(generator)
        }
        ("apps", "v1", "Deployment") => name_of::<api::apps::v1::Deployment>(generator),
        ("rbac.authorization.k8s.io", "v1", "Role") => name_of::<api::rbac::v1::Role>(generator),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => {
            name_of::<api::rbac::v1::RoleBinding>(generator)
        }
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => {
            name_of::<api::rbac::v1::ClusterRole>(generator)
        }
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            name_of::<api::rbac::v1::ClusterRoleBinding>(generator)
        }
        ("policy", "v1", "PodDisruptionBudget") => {
            name_of::<api::policy::v1::PodDisruptionBudget>(generator)
        }
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            name_of::<apiextensions::CustomResourceDefinition>(generator)
        }
        _ => return None,
    };
    Some(name)
}

/// Patch and list metadata that kube-apiserver publishes on built-in fields (from the
/// `patchStrategy`/`patchMergeKey`/`+listType`/`+listMapKey` tags of k8s.io/api 1.33) but that
/// k8s-openapi's schemars output leaves out. kubectl's client-side `apply` builds its strategic
/// merge patch from these (`$setElementOrder`, `$patch: delete`, `$retainKeys`); without them
/// it would treat keyed lists as atomic.
const PATCH_METADATA: &[FieldPatchMeta] = &[
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "containers",
        Some("merge"),
        Some("name"),
        ListMeta::Map(&["name"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "initContainers",
        Some("merge"),
        Some("name"),
        ListMeta::Map(&["name"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "ephemeralContainers",
        Some("merge"),
        Some("name"),
        ListMeta::Map(&["name"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "volumes",
        Some("merge,retainKeys"),
        Some("name"),
        ListMeta::Map(&["name"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "imagePullSecrets",
        Some("merge"),
        Some("name"),
        ListMeta::None,
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "hostAliases",
        Some("merge"),
        Some("ip"),
        ListMeta::Map(&["ip"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        Some("merge"),
        Some("topologyKey"),
        ListMeta::Map(&["topologyKey", "whenUnsatisfiable"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "tolerations",
        None,
        None,
        ListMeta::Atomic,
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "schedulingGates",
        Some("merge"),
        Some("name"),
        ListMeta::Map(&["name"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        Some("merge,retainKeys"),
        Some("name"),
        ListMeta::Map(&["name"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.Container",
        "ports",
        Some("merge"),
        Some("containerPort"),
        ListMeta::Map(&["containerPort", "protocol"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.Container",
        "env",
        Some("merge"),
        Some("name"),
        ListMeta::Map(&["name"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.Container",
        "volumeMounts",
        Some("merge"),
        Some("mountPath"),
        ListMeta::Map(&["mountPath"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.Container",
        "volumeDevices",
        Some("merge"),
        Some("devicePath"),
        ListMeta::Map(&["devicePath"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.Container",
        "resizePolicy",
        None,
        None,
        ListMeta::Atomic,
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        None,
        None,
        ListMeta::Map(&["containerPort", "protocol"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.EphemeralContainer",
        "env",
        Some("merge"),
        Some("name"),
        ListMeta::Map(&["name"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        Some("merge"),
        Some("mountPath"),
        ListMeta::Map(&["mountPath"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        Some("merge"),
        Some("devicePath"),
        ListMeta::Map(&["devicePath"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        Some("merge"),
        Some("port"),
        ListMeta::Map(&["port", "protocol"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.ServiceStatus",
        "conditions",
        Some("merge"),
        Some("type"),
        ListMeta::Map(&["type"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.core.v1.NamespaceStatus",
        "conditions",
        Some("merge"),
        Some("type"),
        ListMeta::Map(&["type"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.apps.v1.DeploymentSpec",
        "strategy",
        Some("retainKeys"),
        None,
        ListMeta::None,
    ),
    FieldPatchMeta(
        "io.k8s.api.apps.v1.DeploymentStatus",
        "conditions",
        Some("merge"),
        Some("type"),
        ListMeta::Map(&["type"]),
    ),
    FieldPatchMeta(
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        Some("merge"),
        Some("type"),
        ListMeta::Map(&["type"]),
    ),
    FieldPatchMeta(
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
        "conditions",
        None,
        None,
        ListMeta::Map(&["type"]),
    ),
    FieldPatchMeta(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        Some("merge"),
        None,
        ListMeta::Set,
    ),
    FieldPatchMeta(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        Some("merge"),
        Some("uid"),
        ListMeta::Map(&["uid"]),
    ),
];

/// (definition, property, patch strategy, merge key, list type)
struct FieldPatchMeta(
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    ListMeta,
);

#[derive(Clone, Copy)]
enum ListMeta {
    None,
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

/// Add [`PATCH_METADATA`] to the generated definitions that are present.
pub(super) fn annotate(schemas: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::{Value, json};
    for FieldPatchMeta(def, prop, strategy, key, list) in PATCH_METADATA {
        let Some(Value::Object(p)) = schemas
            .get_mut(*def)
            .and_then(|d| d.pointer_mut(&format!("/properties/{prop}")))
        else {
            continue;
        };
        if let Some(s) = strategy {
            p.insert("x-kubernetes-patch-strategy".into(), json!(s));
        }
        if let Some(k) = key {
            p.insert("x-kubernetes-patch-merge-key".into(), json!(k));
        }
        match list {
            ListMeta::None => {}
            ListMeta::Atomic => {
                p.insert("x-kubernetes-list-type".into(), json!("atomic"));
            }
            ListMeta::Set => {
                p.insert("x-kubernetes-list-type".into(), json!("set"));
            }
            ListMeta::Map(keys) => {
                p.insert("x-kubernetes-list-type".into(), json!("map"));
                p.insert("x-kubernetes-list-map-keys".into(), json!(keys));
            }
        }
    }
}
