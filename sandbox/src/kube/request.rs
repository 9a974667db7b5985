//! What a request addresses and asks for: the resource path (kube-apiserver's
//! `RequestInfoFactory`), query options and content negotiation.

use std::collections::HashMap;

use super::api_error::{ApiError, GroupKind};
use super::crd::FieldValidation;
use super::crd::table::IncludeObject;
use super::field_error::FieldError;

/// `/api/v1/...` or `/apis/{group}/{version}/...` split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The deprecated `/api/v1/watch/...` form: a watch of the collection, or of one object
    /// when the path names it.
    pub watch_prefix: bool,
}

/// Subresources of a namespace object, which must not be read as `namespaces/{ns}/{resource}`.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

impl ResourcePath {
    /// None for paths that are not resource paths (discovery documents are matched before).
    pub fn parse(path: &str) -> Option<Self> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
            ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
            _ => return None,
        };
        let mut parts: Vec<String> = rest.iter().map(|s| percent_decode(s)).collect();
        let watch_prefix = parts.len() > 1 && parts[0] == "watch";
        if watch_prefix {
            parts.remove(0);
        }
        if parts.is_empty() || parts.iter().any(String::is_empty) {
            return None;
        }
        let mut namespace = None;
        if parts[0] == "namespaces" && parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2].as_str()) {
            namespace = Some(parts[1].clone());
            parts.drain(..2);
        }
        if parts.len() > 3 {
            return None;
        }
        Some(Self {
            group,
            version,
            namespace,
            plural: parts[0].clone(),
            name: parts.get(1).cloned(),
            subresource: parts.get(2).cloned(),
            watch_prefix,
        })
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// Query parameters of a request (first value wins, like `url.Values.Get`).
#[derive(Clone, Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Self(map)
    }

    /// This query with `metadata.name=NAME` added to its field selector (a `/watch/` path
    /// naming one object is a watch of its collection selected by name).
    pub fn with_name_selector(&self, name: &str) -> Self {
        let mut map = self.0.clone();
        let term = format!("metadata.name={name}");
        let sel = match map.get("fieldSelector").filter(|s| !s.is_empty()) {
            Some(existing) => format!("{existing},{term}"),
            None => term,
        };
        map.insert("fieldSelector".into(), sel);
        Self(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// `?dryRun=`; anything but `All` is refused like apimachinery's `ValidateDryRun` (a 422
    /// on the request's options kind, e.g. `CreateOptions`).
    pub fn dry_run(&self, options_kind: &str) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(options_invalid(
                options_kind,
                FieldError {
                    reason: "FieldValueNotSupported",
                    field: "dryRun".into(),
                    message: format!("Unsupported value: [{other:?}]: supported values: \"All\""),
                },
            )),
        }
    }

    /// `?fieldValidation=`.
    pub fn field_validation(&self, options_kind: &str) -> Result<FieldValidation, ApiError> {
        match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(options_invalid(
                options_kind,
                FieldError::not_supported(
                    "fieldValidation",
                    &serde_json::json!(other),
                    &[
                        serde_json::json!(""),
                        serde_json::json!("Ignore"),
                        serde_json::json!("Strict"),
                        serde_json::json!("Warn"),
                    ],
                ),
            )),
        }
    }

    pub fn include_object(&self) -> Result<IncludeObject, ApiError> {
        match self.get("includeObject") {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(ApiError::BadRequest(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"Metadata\", \"None\", \"Object\""
            ))),
        }
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::BadRequest(format!("invalid value for {key}: {v:?}"))),
        }
    }
}

/// A 422 on the request's options (`CreateOptions.meta.k8s.io "" is invalid: ...`).
fn options_invalid(kind: &str, cause: FieldError) -> ApiError {
    ApiError::invalid(GroupKind { group: "meta.k8s.io".into(), kind: kind.into() }, "", vec![cause])
}

/// The response representation a client asked for in `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    Plain,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`
    Table,
    /// `as=PartialObjectMetadata[List]` (metadata-only informers).
    PartialMetadata,
}

pub fn representation(accept: &str) -> Representation {
    for alt in accept.split(',') {
        let params: Vec<&str> = alt.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("g=meta.k8s.io") && has("as=Table") {
            return Representation::Table;
        }
        if has("g=meta.k8s.io") && (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList")) {
            return Representation::PartialMetadata;
        }
        // The first acceptable plain alternative wins over later ones.
        if params[0] == "application/json" && params.len() == 1 || params[0] == "*/*" {
            return Representation::Plain;
        }
    }
    Representation::Plain
}

/// Which aggregated discovery version the client accepts, if any. kube-apiserver 1.37 serves
/// only v2 (the v2beta1 type is removed, feature AggregatedDiscoveryRemoveBetaType).
pub fn aggregated_discovery(accept: &str) -> Option<&'static str> {
    let wants_v2 = accept.split(',').any(|alt| {
        let p: Vec<&str> = alt.split(';').map(str::trim).collect();
        p.contains(&"g=apidiscovery.k8s.io") && p.contains(&"as=APIGroupDiscoveryList") && p.contains(&"v=v2")
    });
    wants_v2.then_some("v2")
}

/// Whether `accept` allows a plain (unconverted) JSON, YAML or protobuf answer: no header,
/// a wildcard, or one of those media types without an `as=` conversion.
pub fn accepts_plain(accept: &str) -> bool {
    accept.trim().is_empty()
        || accept.split(',').any(|alt| {
            let p: Vec<&str> = alt.split(';').map(str::trim).collect();
            let plain_media = matches!(
                p[0],
                "*/*"
                    | "application/*"
                    | "application/json"
                    | "application/yaml"
                    | "application/vnd.kubernetes.protobuf"
            );
            plain_media && !p.iter().any(|param| param.starts_with("as="))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_paths() {
        let p = ResourcePath::parse("/api/v1/namespaces/a/secrets/s").unwrap();
        assert_eq!((p.namespace.as_deref(), p.plural.as_str(), p.name.as_deref()), (Some("a"), "secrets", Some("s")));
        let ns = ResourcePath::parse("/api/v1/namespaces/a").unwrap();
        assert_eq!((ns.plural.as_str(), ns.name.as_deref(), ns.namespace), ("namespaces", Some("a"), None));
        let st = ResourcePath::parse("/api/v1/namespaces/a/status").unwrap();
        assert_eq!(st.subresource.as_deref(), Some("status"));
        let cr = ResourcePath::parse("/apis/g.dev/v1/namespaces/n/things/x/status").unwrap();
        assert_eq!((cr.group.as_str(), cr.subresource.as_deref()), ("g.dev", Some("status")));
        assert_eq!(ResourcePath::parse("/apis/g.dev/v1/things").unwrap().namespace, None);
        assert!(ResourcePath::parse("/apis/g.dev").is_none());
        let w = ResourcePath::parse("/api/v1/watch/namespaces/a/secrets/s").unwrap();
        assert!(w.watch_prefix);
        assert_eq!((w.namespace.as_deref(), w.plural.as_str(), w.name.as_deref()), (Some("a"), "secrets", Some("s")));
    }

    #[test]
    fn negotiates_tables_and_discovery() {
        assert_eq!(
            representation(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Representation::Table
        );
        assert_eq!(representation("application/json"), Representation::Plain);
        assert_eq!(
            aggregated_discovery(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            ),
            Some("v2")
        );
        assert_eq!(
            aggregated_discovery(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            ),
            None
        );
        assert!(accepts_plain(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!accepts_plain("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"));
        assert!(accepts_plain(""));
        assert_eq!(aggregated_discovery("application/json"), None);
    }
}
