//! The resource types the server knows: the built-in kinds of docs/kube-emulator.md and one entry
//! per served version of every established CRD. Discovery, routing and the store all read
//! this registry.

use std::sync::Arc;

use serde_json::Value;

use super::api_error::{GroupKind, GroupResource};
use super::crd::CompiledVersion;

/// Which rule `metadata.name` must follow (apimachinery `path.ValidatePathSegmentName`,
/// `NameIsDNSSubdomain`, `NameIsDNSLabel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    DnsSubdomain,
    DnsLabel,
    /// RBAC objects allow names such as `system:controller:foo`.
    PathSegment,
}

/// How objects of a resource are presented compared with their stored form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Stored as served (only `apiVersion` differs between versions of a CRD).
    Plain,
    /// events.k8s.io/v1 Events are core/v1 Events converted on the way in and out.
    EventsV1,
}

/// A CRD-backed resource: the CRD object and the compiled served version.
#[derive(Clone, Debug)]
pub struct Custom {
    pub crd: Value,
    pub compiled: CompiledVersion,
    /// Fields declared in `selectableFields` of this version (besides metadata.name/namespace).
    pub selectable_fields: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<&'static str>,
    pub status_subresource: bool,
    /// Where the objects live: several views may share one storage (events).
    pub storage_group: String,
    pub storage_plural: String,
    /// The apiVersion objects carry in storage.
    pub storage_api_version: String,
    pub view: View,
    pub name_rule: NameRule,
    /// `rest.RESTUpdateStrategy.AllowCreateOnUpdate` of the real registry.
    pub allow_create_on_update: bool,
    /// `AllowUnconditionalUpdate`: false for custom resources, which therefore need
    /// `metadata.resourceVersion` on PUT.
    pub allow_unconditional_update: bool,
    /// Whether the real strategy maintains `metadata.generation` for this kind.
    pub tracks_generation: bool,
    /// Field selectors supported beyond `metadata.name` / `metadata.namespace`.
    pub extra_field_selectors: Vec<&'static str>,
    pub custom: Option<Arc<Custom>>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn group_resource(&self) -> GroupResource {
        GroupResource { group: self.group.clone(), resource: self.plural.clone() }
    }

    pub fn group_kind(&self) -> GroupKind {
        GroupKind { group: self.group.clone(), kind: self.kind.clone() }
    }

    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }

    /// The CRD schema the patch engine consults for list/map types.
    pub fn schema(&self) -> Option<&Value> {
        self.custom.as_ref().map(|c| c.compiled.schema())
    }
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

struct Builtin {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    create_on_update: bool,
    generation: bool,
    name_rule: NameRule,
    field_selectors: &'static [&'static str],
}

/// The built-in kinds docs/kube-emulator.md lists, with the names, short names, categories and
/// strategy flags of kube-apiserver 1.33 (`kubectl api-resources -o wide`).
const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        status: true,
        create_on_update: false,
        generation: false,
        name_rule: NameRule::DnsLabel,
        field_selectors: &["status.phase"],
    },
    Builtin {
        group: "",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
        create_on_update: false,
        generation: false,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &["type"],
    },
    Builtin {
        group: "",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        status: false,
        create_on_update: false,
        generation: false,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[],
    },
    Builtin {
        group: "",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        status: false,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[],
    },
    Builtin {
        group: "",
        kind: "Service",
        plural: "services",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        status: true,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::DnsLabel,
        field_selectors: &["spec.clusterIP", "spec.type"],
    },
    Builtin {
        group: "",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        status: false,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    },
    Builtin {
        group: "events.k8s.io",
        kind: "Event",
        plural: "events",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        status: false,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ],
    },
    Builtin {
        group: "coordination.k8s.io",
        kind: "Lease",
        plural: "leases",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[],
    },
    Builtin {
        group: "apps",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        status: true,
        create_on_update: false,
        generation: true,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        kind: "Role",
        plural: "roles",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::PathSegment,
        field_selectors: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        kind: "RoleBinding",
        plural: "rolebindings",
        namespaced: true,
        short_names: &[],
        categories: &[],
        status: false,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::PathSegment,
        field_selectors: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        short_names: &[],
        categories: &[],
        status: false,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::PathSegment,
        field_selectors: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        short_names: &[],
        categories: &[],
        status: false,
        create_on_update: true,
        generation: false,
        name_rule: NameRule::PathSegment,
        field_selectors: &[],
    },
    Builtin {
        group: "policy",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        status: true,
        create_on_update: false,
        generation: true,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[],
    },
    Builtin {
        group: "apiextensions.k8s.io",
        kind: "CustomResourceDefinition",
        plural: "customresourcedefinitions",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        status: true,
        create_on_update: false,
        generation: true,
        name_rule: NameRule::DnsSubdomain,
        field_selectors: &[],
    },
];

fn builtin_types() -> Vec<Arc<ResourceType>> {
    BUILTINS
        .iter()
        .map(|b| {
            let events_v1 = b.group == "events.k8s.io";
            let verbs: Vec<&'static str> = if b.plural == "namespaces" {
                // Namespaces have no deletecollection (deleting all namespaces is not a thing).
                ALL_VERBS.iter().copied().filter(|v| *v != "deletecollection").collect()
            } else {
                ALL_VERBS.to_vec()
            };
            let group = b.group.to_string();
            let api_version = if group.is_empty() { "v1".to_string() } else { format!("{group}/v1") };
            Arc::new(ResourceType {
                group: group.clone(),
                version: "v1".into(),
                kind: b.kind.into(),
                plural: b.plural.into(),
                singular: b.kind.to_lowercase(),
                namespaced: b.namespaced,
                short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
                categories: b.categories.iter().map(|s| s.to_string()).collect(),
                verbs,
                status_subresource: b.status,
                storage_group: if events_v1 { String::new() } else { group },
                storage_plural: b.plural.into(),
                storage_api_version: if events_v1 { "v1".into() } else { api_version },
                view: if events_v1 { View::EventsV1 } else { View::Plain },
                name_rule: b.name_rule,
                allow_create_on_update: b.create_on_update,
                allow_unconditional_update: true,
                tracks_generation: b.generation,
                extra_field_selectors: b.field_selectors.to_vec(),
                custom: None,
            })
        })
        .collect()
}

/// Every resource type currently served.
#[derive(Clone, Debug)]
pub struct Registry {
    types: Vec<Arc<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { types: builtin_types() }
    }
}

impl Registry {
    pub fn all(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types.iter().find(|t| t.group == group && t.version == version && t.plural == plural).cloned()
    }

    pub fn namespace_type(&self) -> Arc<ResourceType> {
        self.find("", "v1", "namespaces").expect("namespaces are built in")
    }

    /// Replace every type served for CRD storage `group`/`plural` by `types`.
    pub fn set_custom(&mut self, group: &str, plural: &str, types: Vec<Arc<ResourceType>>) {
        self.types.retain(|t| !(t.is_custom() && t.storage_group == group && t.storage_plural == plural));
        self.types.extend(types);
    }
}

/// Kubernetes version priority (apimachinery `version.CompareKubeAwareVersionStrings`):
/// GA before beta before alpha, higher numbers first, non-Kubernetes versions last
/// alphabetically. Used for preferredVersion and the order of versions in discovery.
pub fn version_priority_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (prefix, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(n) = tail.strip_prefix(prefix) {
                let minor: u64 = n.parse().ok()?;
                return Some((rank, major, minor));
            }
        }
        None
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_like_kubernetes() {
        let mut v = vec!["v1alpha1", "v1", "v2beta1", "foo", "v1beta2", "v2"];
        v.sort_by(|a, b| version_priority_cmp(a, b));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]);
    }

    #[test]
    fn events_views_share_storage() {
        let r = Registry::default();
        let core = r.find("", "v1", "events").unwrap();
        let new = r.find("events.k8s.io", "v1", "events").unwrap();
        assert_eq!((&core.storage_group, &core.storage_plural), (&new.storage_group, &new.storage_plural));
        assert_eq!(new.view, View::EventsV1);
    }
}
