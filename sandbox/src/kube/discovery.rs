//! Discovery documents: the plain `APIVersions` / `APIGroupList` / `APIGroup` /
//! `APIResourceList` forms and the aggregated `APIGroupDiscoveryList` (apidiscovery.k8s.io
//! v2; v2beta1 is only built for the unit tests' sake, 1.37 serves v2 alone) kubectl asks
//! for first.

use std::sync::Arc;

use serde_json::{Value, json};

use super::resources::{Registry, ResourceType, version_priority_cmp};
use super::storage_version_hash::storage_version_hash;

/// Non-core groups in order of first appearance, each with its versions by priority.
fn groups(reg: &Registry) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for t in reg.all().iter().filter(|t| !t.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, vs)) if !vs.contains(&t.version) => vs.push(t.version.clone()),
            Some(_) => {}
            None => out.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    for (_, vs) in &mut out {
        vs.sort_by(|a, b| version_priority_cmp(a, b));
    }
    out
}

fn types_of<'a>(
    reg: &'a Registry,
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'a Arc<ResourceType>> + 'a {
    reg.all().iter().filter(move |t| t.group == group && t.version == version)
}

pub fn api_versions(server_addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_addr}]
    })
}

fn group_versions(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

pub fn group_list(reg: &Registry) -> Value {
    let gs: Vec<Value> = groups(reg).iter().map(|(g, vs)| group_versions(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

pub fn group(reg: &Registry, group: &str) -> Option<Value> {
    let (g, vs) = groups(reg).into_iter().find(|(g, _)| g == group)?;
    let mut doc = group_versions(&g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `APIResourceList` for `/api/v1` and `/apis/{g}/{v}`.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for t in types_of(reg, group, version) {
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs,
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        let (storage_group, storage_version) = match t.storage_api_version.rsplit_once('/') {
            // apiextensions still stores CRDs as v1beta1.
            Some(("apiextensions.k8s.io", _)) if !t.is_custom() => ("apiextensions.k8s.io", "v1beta1"),
            Some(gv) => gv,
            None => ("", t.storage_api_version.as_str()),
        };
        r["storageVersionHash"] = json!(storage_version_hash(storage_group, storage_version, &t.kind));
        resources.push(r);
        if t.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if serves_token_requests(t) {
            resources.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    // The core group's list carries no apiVersion (kube-apiserver's legacy root handler).
    Some(if group.is_empty() {
        json!({"kind": "APIResourceList", "groupVersion": version, "resources": resources})
    } else {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{group}/{version}"), "resources": resources})
    })
}

fn aggregated_resource(t: &ResourceType) -> Value {
    // Built-in kinds leave the group and version of their own group/version empty; custom
    // resources (apiextensions' discovery controller) spell them out.
    let kind = if t.is_custom() {
        json!({"group": t.group, "version": t.version, "kind": t.kind})
    } else {
        json!({"group": "", "version": "", "kind": t.kind})
    };
    let mut r = json!({
        "resource": t.plural,
        "responseKind": kind,
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": t.verbs,
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    if t.status_subresource {
        r["subresources"] =
            json!([{"subresource": "status", "responseKind": kind, "verbs": ["get", "patch", "update"]}]);
    }
    if serves_token_requests(t) {
        let token_kind = json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"});
        r["subresources"] = json!([{"subresource": "token", "responseKind": token_kind, "verbs": ["create"]}]);
    }
    r
}

/// ServiceAccounts have the `token` subresource (TokenRequest).
fn serves_token_requests(t: &ResourceType) -> bool {
    t.group.is_empty() && t.plural == "serviceaccounts"
}

fn aggregated_group(reg: &Registry, group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = types_of(reg, group, v).map(|t| aggregated_resource(t)).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({});
    if !group.is_empty() {
        metadata["name"] = json!(group);
    }
    json!({"metadata": metadata, "versions": vs})
}

/// The aggregated document for `/api` (`core` = true) or `/apis`, in apidiscovery `version`.
pub fn aggregated(reg: &Registry, core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(reg, "", &["v1".to_string()])]
    } else {
        groups(reg).iter().map(|(g, vs)| aggregated_group(reg, g, vs)).collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resources_carry_short_names_and_status() {
        let reg = Registry::default();
        let list = resource_list(&reg, "", "v1").unwrap();
        let names: Vec<&str> =
            list["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"namespaces/status"));
        let ns = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "namespaces").unwrap();
        assert_eq!(ns["shortNames"], json!(["ns"]));
        assert!(resource_list(&reg, "nope", "v1").is_none());
    }

    #[test]
    fn aggregated_lists_groups() {
        let reg = Registry::default();
        let doc = aggregated(&reg, false, "v2");
        let apps = doc["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "apps").unwrap();
        assert_eq!(apps["versions"][0]["resources"][0]["shortNames"], json!(["deploy"]));
        assert_eq!(aggregated(&reg, true, "v2beta1")["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        assert_eq!(group(&reg, "apps").unwrap()["preferredVersion"]["groupVersion"], "apps/v1");
    }
}
