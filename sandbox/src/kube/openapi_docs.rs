//! Serving OpenAPI v3: the `/openapi/v3` index (one entry per group/version with a content
//! hash in `serverRelativeURL`, as kube-apiserver does so clients can cache documents
//! forever) and the per group/version documents built by `crd::openapi`.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use super::crd::openapi::{ResourceDoc, group_version_document};
use super::resources::Registry;

/// Every served group/version, as index keys: `api/v1`, `apis/{g}/{v}`.
fn group_versions(reg: &Registry) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for t in reg.all() {
        let gv = (t.group.clone(), t.version.clone());
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

fn index_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

pub fn document(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let docs: Vec<ResourceDoc> = reg
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .map(|t| ResourceDoc {
            group: t.group.clone(),
            version: t.version.clone(),
            kind: t.kind.clone(),
            plural: t.plural.clone(),
            namespaced: t.namespaced,
            schema: t.custom.as_ref().map(|c| c.compiled.schema().clone()),
            status_subresource: t.status_subresource,
        })
        .collect();
    if docs.is_empty() {
        return None;
    }
    let mut doc = group_version_document(group, version, &docs);
    publish_builtin_extensions(&mut doc);
    Some(doc)
}

/// Give the built-in components exactly the x-kubernetes-* extensions kube-apiserver
/// publishes on them and their properties (list and map types, patch strategies and merge
/// keys, unions): kubectl builds its client-side apply patches from them. k8s-openapi's
/// schemas carry only some, a few of them not kube-apiserver's (`x-kubernetes-int-or-string`).
fn publish_builtin_extensions(doc: &mut Value) {
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    let is_ext = |k: &str| k.starts_with("x-kubernetes-") && k != "x-kubernetes-group-version-kind";
    for (name, schema) in schemas.iter_mut() {
        let Some(published) = super::patch::builtin_component_extensions(name) else { continue };
        let Some(component) = schema.as_object_mut() else { continue };
        component.retain(|k, _| !is_ext(k));
        if let Some(Value::Object(own)) = published.get("") {
            component.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let Some(Value::Object(props)) = component.get_mut("properties") else { continue };
        for (prop, prop_schema) in props.iter_mut() {
            let Some(p) = prop_schema.as_object_mut() else { continue };
            p.retain(|k, _| !is_ext(k));
            if let Some(Value::Object(ext)) = published.get(prop.as_str()) {
                p.extend(ext.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
}

/// Uppercase hex of a stable hash of the document (kube-apiserver uses SHA-512; any stable
/// digest works for the ETag/`hash` contract).
pub fn hash(doc: &Value) -> String {
    let mut h = DefaultHasher::new();
    doc.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

pub fn index(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in group_versions(reg) {
        if let Some(doc) = document(reg, &g, &v) {
            let key = index_key(&g, &v);
            paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&doc))}));
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` → ("", "v1"); `/openapi/v3/apis/g/v` → (g, v).
pub fn parse_path(rest: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", v] => Some((String::new(), v.to_string())),
        ["apis", g, v] => Some((g.to_string(), v.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_hash_matches_document() {
        let reg = Registry::default();
        let idx = index(&reg);
        let url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        let doc = document(&reg, "apps", "v1").unwrap();
        assert!(url.ends_with(&format!("hash={}", hash(&doc))));
        assert!(idx["paths"]["api/v1"].is_object());
        assert_eq!(parse_path("apis/apps/v1"), Some(("apps".into(), "v1".into())));
        assert!(document(&reg, "nope", "v1").is_none());
    }
}
