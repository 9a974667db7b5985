//! OpenAPI v3 documents for `/openapi/v3/apis/{g}/{v}` and `/openapi/v3/api/v1`, shaped
//! like kube-apiserver's so that kubectl 1.27-1.33 can use them:
//! - `kubectl apply` looks for the `patch` operation tagged with the kind's
//!   `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter on that
//!   operation (`query_param_verifier_v3.go`); without it kubectl falls back to OpenAPI v2.
//! - `kubectl explain` finds the component schema whose `x-kubernetes-group-version-kind`
//!   lists the kind and follows `$ref`s under `#/components/schemas/`.
//!
//! Custom kinds are published like apiextensions' `controller/openapi/builder`: the
//! version's schema with `apiVersion`/`kind` descriptions, `metadata` referencing
//! `ObjectMeta`, named `<reversed group>.<version>.<Kind>`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::JsonSchema;
use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::builtin_schemas;

/// One resource kind served under a group/version.
#[derive(Clone, Debug)]
pub struct ResourceDoc {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// The CRD version's `openAPIV3Schema`; `None` for a built-in kind (the engine
    /// supplies its schema).
    pub schema: Option<Value>,
    pub status_subresource: bool,
}

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DESCRIPTION: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_METADATA_DESCRIPTION: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#lists-and-simple-lists";

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A `$ref` with siblings, the way kube-openapi writes it for OpenAPI 3.0 (where siblings
/// of `$ref` are ignored): wrapped in `allOf`.
fn wrapped_ref(name: &str, description: &str) -> Value {
    json!({"allOf": [schema_ref(name)], "default": {}, "description": description})
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

/// `connection-operator.dev` → `dev.connection-operator` (the CRD OpenAPI builder's
/// reversed-domain package name).
fn reversed_group(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// `connection-operator.dev` → `ConnectionOperatorDev`, for operation ids.
fn camel(s: &str) -> String {
    s.split(['.', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// The whole OpenAPI v3 document of one group/version (`group` is "" for core).
pub fn group_version_document(group: &str, version: &str, resources: &[ResourceDoc]) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let object_meta = register::<meta::ObjectMeta>(&mut generator);
    let list_meta = register::<meta::ListMeta>(&mut generator);
    let status = register::<meta::Status>(&mut generator);
    let patch = register::<meta::Patch>(&mut generator);
    let delete_options = register::<meta::DeleteOptions>(&mut generator);

    let mut own: Map<String, Value> = Map::new();
    let mut builtin_kinds: Vec<(String, Value)> = Vec::new();
    let mut paths: Map<String, Value> = Map::new();
    let names = Names { status: &status, patch: &patch, delete_options: &delete_options };

    for r in resources {
        let kind_name = match &r.schema {
            Some(s) => {
                let name = format!("{}.{}.{}", reversed_group(&r.group), r.version, r.kind);
                own.insert(name.clone(), custom_kind_schema(s, r, &object_meta));
                name
            }
            None => match builtin_schemas::register(&r.group, &r.version, &r.kind, &mut generator) {
                Some(name) => {
                    builtin_kinds.push((name.clone(), gvk(&r.group, &r.version, &r.kind)));
                    name
                }
                None => continue,
            },
        };
        let list_name = format!("{kind_name}List");
        own.insert(list_name.clone(), list_schema(r, &kind_name, &list_meta));
        add_paths(&mut paths, group, version, r, &kind_name, &list_name, &names);
    }

    let mut schemas = generator.take_definitions(true);
    for (name, gvk) in &builtin_kinds {
        if let Some(kind) = gvk["kind"].as_str() {
            builtin_schemas::annotate(kind, name, &mut schemas);
        }
    }
    for (name, gvk) in builtin_kinds {
        if let Some(Value::Object(s)) = schemas.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
    }
    schemas.extend(own);
    let mut sorted: Vec<(String, Value)> = schemas.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));

    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": Map::from_iter(sorted)},
    })
}

fn register<T: JsonSchema>(generator: &mut k8s_openapi::schemars::SchemaGenerator) -> String {
    let _ = generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

fn custom_kind_schema(user: &Value, r: &ResourceDoc, object_meta: &str) -> Value {
    let mut s = match user {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    s.entry("type").or_insert(json!("object"));
    let props = s.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(props) = props {
        props.insert("apiVersion".into(), json!({"type": "string", "description": API_VERSION_DESCRIPTION}));
        props.insert("kind".into(), json!({"type": "string", "description": KIND_DESCRIPTION}));
        props.insert("metadata".into(), wrapped_ref(object_meta, METADATA_DESCRIPTION));
    }
    s.insert("x-kubernetes-group-version-kind".into(), json!([gvk(&r.group, &r.version, &r.kind)]));
    Value::Object(s)
}

fn list_schema(r: &ResourceDoc, kind_name: &str, list_meta: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {}", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DESCRIPTION},
            "items": {
                "type": "array",
                "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", r.plural),
                "items": {"allOf": [schema_ref(kind_name)], "default": {}}
            },
            "kind": {"type": "string", "description": KIND_DESCRIPTION},
            "metadata": wrapped_ref(list_meta, LIST_METADATA_DESCRIPTION)
        },
        "x-kubernetes-group-version-kind": [gvk(&r.group, &r.version, &format!("{}List", r.kind))]
    })
}

struct Names<'a> {
    status: &'a str,
    patch: &'a str,
    delete_options: &'a str,
}

fn query(name: &str, description: &str, type_: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params(with_force: bool) -> Vec<Value> {
    let mut ps = vec![
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
            "string",
        ),
        query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
            "string",
        ),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
            "string",
        ),
    ];
    if with_force {
        ps.push(query("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.", "boolean"));
    }
    ps
}

fn json_content(schema_name: &str) -> Value {
    let r = schema_ref(schema_name);
    json!({
        "application/json": {"schema": r},
        "application/yaml": {"schema": r},
        "application/vnd.kubernetes.protobuf": {"schema": r}
    })
}

/// One operation; `verb` + `id` make the operationId (`patchCoreV1NamespacedSecret`).
struct Op<'a> {
    verb: &'a str,
    action: &'a str,
    id: &'a str,
    description: String,
    params: Vec<Value>,
    responses: Value,
    body: Option<Value>,
}

impl Op<'_> {
    fn build(self, gvk_v: &Value) -> Value {
        let mut o = json!({
            "tags": [],
            "description": self.description,
            "operationId": format!("{}{}", self.verb, self.id),
            "parameters": self.params,
            "responses": self.responses,
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": gvk_v,
        });
        if let Some(b) = self.body {
            o["requestBody"] = b;
        }
        o
    }
}

fn add_paths(
    paths: &mut Map<String, Value>,
    group: &str,
    version: &str,
    r: &ResourceDoc,
    kind_name: &str,
    list_name: &str,
    names: &Names<'_>,
) {
    let root = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let gv_camel = if group.is_empty() {
        format!("Core{}", camel(version))
    } else {
        format!("{}{}", camel(group), camel(version))
    };
    let scoped = if r.namespaced { "Namespaced" } else { "" };
    let id = format!("{gv_camel}{scoped}{}", r.kind);
    let gvk_v = gvk(&r.group, &r.version, &r.kind);
    let collection = if r.namespaced {
        format!("{root}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{root}/{}", r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let mut common = vec![query(
        "pretty",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP client (curl and wget).",
        "string",
    )];
    if r.namespaced {
        common.insert(0, path_param("namespace", "object name and auth scope, such as for teams and projects"));
    }
    let ok = |schema: &str| json!({"200": {"description": "OK", "content": json_content(schema)}});
    let ok_created = |schema: &str| json!({"200": {"description": "OK", "content": json_content(schema)}, "201": {"description": "Created", "content": json_content(schema)}});
    let body = |schema: &str| json!({"content": {"*/*": {"schema": schema_ref(schema)}}, "required": true});
    let mut patch_types = json!({
        "application/apply-patch+yaml": {"schema": schema_ref(names.patch)},
        "application/json-patch+json": {"schema": schema_ref(names.patch)},
        "application/merge-patch+json": {"schema": schema_ref(names.patch)},
    });
    // Custom resources do not support strategic merge patch, and kubectl picks SMP for
    // `apply` whenever the document offers it, so only built-in kinds list it (as
    // apiextensions' OpenAPI builder does).
    if r.schema.is_none() {
        patch_types["application/strategic-merge-patch+json"] = json!({"schema": schema_ref(names.patch)});
    }
    let patch_body = json!({"content": patch_types, "required": true});
    let list_params = vec![
        query(
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
            "string",
        ),
        query(
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
            "string",
        ),
        query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
        query("continue", "The continue option should be set when retrieving more results from the server.", "string"),
        query(
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
            "string",
        ),
        query(
            "watch",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
            "boolean",
        ),
    ];

    let mut coll = Map::new();
    coll.insert(
        "get".into(),
        Op {
            verb: "list",
            action: "list",
            id: &id,
            description: format!("list or watch objects of kind {}", r.kind),
            params: list_params.clone(),
            responses: ok(list_name),
            body: None,
        }
        .build(&gvk_v),
    );
    coll.insert(
        "post".into(),
        Op {
            verb: "create",
            action: "post",
            id: &id,
            description: format!("create a {}", r.kind),
            params: write_params(false),
            responses: ok_created(kind_name),
            body: Some(body(kind_name)),
        }
        .build(&gvk_v),
    );
    coll.insert(
        "delete".into(),
        Op {
            verb: "deletecollection",
            action: "deletecollection",
            id: &id,
            description: format!("delete collection of {}", r.kind),
            params: list_params.clone(),
            responses: ok(names.status),
            body: Some(body(names.delete_options)),
        }
        .build(&gvk_v),
    );
    coll.insert("parameters".into(), Value::Array(common.clone()));
    paths.insert(collection.clone(), Value::Object(coll));

    let mut item_params = vec![path_param("name", &format!("name of the {}", r.kind))];
    item_params.extend(common.clone());
    let mut one = Map::new();
    one.insert(
        "get".into(),
        Op {
            verb: "read",
            action: "get",
            id: &id,
            description: format!("read the specified {}", r.kind),
            params: vec![],
            responses: ok(kind_name),
            body: None,
        }
        .build(&gvk_v),
    );
    one.insert(
        "put".into(),
        Op {
            verb: "replace",
            action: "put",
            id: &id,
            description: format!("replace the specified {}", r.kind),
            params: write_params(false),
            responses: ok_created(kind_name),
            body: Some(body(kind_name)),
        }
        .build(&gvk_v),
    );
    one.insert(
        "patch".into(),
        Op {
            verb: "patch",
            action: "patch",
            id: &id,
            description: format!("partially update the specified {}", r.kind),
            params: write_params(true),
            responses: ok_created(kind_name),
            body: Some(patch_body.clone()),
        }
        .build(&gvk_v),
    );
    one.insert(
        "delete".into(),
        Op {
            verb: "delete",
            action: "delete",
            id: &id,
            description: format!("delete a {}", r.kind),
            params: vec![query(
                "dryRun",
                "When present, indicates that modifications should not be persisted.",
                "string",
            )],
            responses: ok(names.status),
            body: Some(body(names.delete_options)),
        }
        .build(&gvk_v),
    );
    one.insert("parameters".into(), Value::Array(item_params.clone()));
    paths.insert(item.clone(), Value::Object(one));

    if r.status_subresource {
        let sid = format!("{id}Status");
        let mut st = Map::new();
        st.insert(
            "get".into(),
            Op {
                verb: "read",
                action: "get",
                id: &sid,
                description: format!("read status of the specified {}", r.kind),
                params: vec![],
                responses: ok(kind_name),
                body: None,
            }
            .build(&gvk_v),
        );
        st.insert(
            "put".into(),
            Op {
                verb: "replace",
                action: "put",
                id: &sid,
                description: format!("replace status of the specified {}", r.kind),
                params: write_params(false),
                responses: ok_created(kind_name),
                body: Some(body(kind_name)),
            }
            .build(&gvk_v),
        );
        st.insert(
            "patch".into(),
            Op {
                verb: "patch",
                action: "patch",
                id: &sid,
                description: format!("partially update status of the specified {}", r.kind),
                params: write_params(true),
                responses: ok_created(kind_name),
                body: Some(patch_body),
            }
            .build(&gvk_v),
        );
        st.insert("parameters".into(), Value::Array(item_params));
        paths.insert(format!("{item}/status"), Value::Object(st));
    }
    if r.namespaced {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            Op {
                verb: "list",
                action: "list",
                id: &format!("{gv_camel}{}ForAllNamespaces", r.kind),
                description: format!("list or watch objects of kind {}", r.kind),
                params: list_params,
                responses: ok(list_name),
                body: None,
            }
            .build(&gvk_v),
        );
        all.insert("parameters".into(), Value::Array(vec![common[1].clone()]));
        paths.insert(format!("{root}/{}", r.plural), Value::Object(all));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> ResourceDoc {
        let crd = super::super::tests::connection_crd();
        ResourceDoc {
            group: "connection-operator.dev".into(),
            version: "v1alpha1".into(),
            kind: "Connection".into(),
            plural: "connections".into(),
            namespaced: true,
            schema: Some(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()),
            status_subresource: true,
        }
    }

    /// Resolve a local `$ref`, as kubectl's spec3 loader does.
    fn resolve<'a>(doc: &'a Value, r: &str) -> &'a Value {
        let name = r.strip_prefix("#/components/schemas/").expect("local ref");
        &doc["components"]["schemas"][name]
    }

    #[test]
    fn custom_kind_document_serves_kubectl_apply_and_explain() {
        let doc = group_version_document("connection-operator.dev", "v1alpha1", &[connection()]);
        let schema = &doc["components"]["schemas"]["dev.connection-operator.v1alpha1.Connection"];
        assert_eq!(
            schema["x-kubernetes-group-version-kind"],
            json!([{"group": "connection-operator.dev", "version": "v1alpha1", "kind": "Connection"}])
        );
        assert_eq!(schema["description"], "A connection at a SaaS integration provider.");
        assert_eq!(schema["properties"]["spec"]["description"], "Desired connection.");
        let meta_ref = schema["properties"]["metadata"]["allOf"][0]["$ref"].as_str().expect("metadata ref");
        assert_eq!(meta_ref, "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        let meta = resolve(&doc, meta_ref);
        assert!(
            meta["properties"]["labels"]["description"].as_str().is_some_and(|d| d.starts_with("Map of string keys"))
        );
        // Every $ref in the document resolves.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"").skip(1) {
            let r = &part[..part.find('"').expect("closing quote")];
            assert!(resolve(&doc, r).is_object(), "dangling {r}");
        }

        let item = &doc["paths"]["/apis/connection-operator.dev/v1alpha1/namespaces/{namespace}/connections/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "connection-operator.dev", "version": "v1alpha1", "kind": "Connection"})
        );
        assert!(
            patch["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let patch_types: Vec<&String> = patch["requestBody"]["content"].as_object().expect("content").keys().collect();
        assert_eq!(
            patch_types,
            vec!["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"],
            "no strategic merge patch for custom resources"
        );
        assert!(doc["paths"]["/apis/connection-operator.dev/v1alpha1/namespaces/{namespace}/connections/{name}/status"]["patch"].is_object());
        assert!(doc["paths"]["/apis/connection-operator.dev/v1alpha1/connections"]["get"].is_object());
        assert_eq!(
            doc["components"]["schemas"]["dev.connection-operator.v1alpha1.ConnectionList"]["x-kubernetes-group-version-kind"]
                [0]["kind"],
            "ConnectionList"
        );
    }

    #[test]
    fn builtin_kinds_come_from_k8s_openapi() {
        let secret = ResourceDoc {
            group: String::new(),
            version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
            namespaced: true,
            schema: None,
            status_subresource: false,
        };
        let ns = ResourceDoc {
            kind: "Namespace".into(),
            plural: "namespaces".into(),
            namespaced: false,
            status_subresource: true,
            ..secret.clone()
        };
        let doc = group_version_document("", "v1", &[secret, ns]);
        let s = &doc["components"]["schemas"]["io.k8s.api.core.v1.Secret"];
        assert_eq!(s["x-kubernetes-group-version-kind"], json!([{"group": "", "version": "v1", "kind": "Secret"}]));
        assert_eq!(s["properties"]["data"]["additionalProperties"]["format"], "byte");
        assert!(
            s["properties"]["metadata"]["allOf"][0]["$ref"].as_str().is_some_and(|r| r.ends_with("meta.v1.ObjectMeta"))
        );
        assert!(
            doc["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"]["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(doc["paths"]["/api/v1/namespaces/{name}/status"]["patch"].is_object());
        assert!(
            doc["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"]["requestBody"]["content"]
                ["application/strategic-merge-patch+json"]
                .is_object()
        );
        assert!(doc["components"]["schemas"]["io.k8s.api.core.v1.NamespaceSpec"].is_object());
        let finalizers = &doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
            ["finalizers"];
        assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    }

    #[test]
    fn builtin_lists_carry_patch_strategies_for_kubectl_apply() {
        let dep = ResourceDoc {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
            namespaced: true,
            schema: None,
            status_subresource: true,
        };
        let doc = group_version_document("apps", "v1", &[dep]);
        let schemas = &doc["components"]["schemas"];
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(
            schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"]["x-kubernetes-patch-strategy"],
            "merge,retainKeys"
        );
        assert_eq!(
            schemas["io.k8s.api.core.v1.Container"]["properties"]["env"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert_eq!(
            schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"]["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        assert_eq!(
            schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]["x-kubernetes-patch-strategy"],
            "retainKeys"
        );
    }
}
