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
