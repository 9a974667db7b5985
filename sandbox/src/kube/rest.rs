//! The REST verbs on objects (get, list, create, update, patch, delete, deletecollection):
//! the generic registry of kube-apiserver (`k8s.io/apiserver/pkg/registry/generic/registry`)
//! with the per-kind strategies this emulator needs. Pure over the in-memory `Cluster`;
//! the HTTP layer (`server`) parses requests and renders responses.

use std::sync::Arc;

use serde_json::{Value, json};

use super::api_error::ApiError;
use super::cluster::Cluster;
use super::crd::{AdmitError, FieldValidation};
use super::field_error::FieldError;
use super::lifecycle;
use super::object_meta::{self, finalizers, meta_mut, meta_str, now_rfc3339};
use super::patch::{self, PatchError};
use super::request::{Query, ResourcePath};
use super::resources::{Registry, ResourceType, View};
use super::selectors::{FieldLabels, FieldSelector, LabelSelector};
use super::store::Key;
use super::{
    builtin_decode, builtin_validation, crds, event_views, secret_data, service_defaults, workload_defaults,
    zero_values,
};

/// Options of a write request.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
}

/// A successful write: the HTTP code, the object to return, `Warning` header texts.
#[derive(Debug)]
pub struct Outcome {
    pub code: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

pub fn key_for(rt: &ResourceType, namespace: Option<&str>, name: &str) -> Key {
    Key {
        group: rt.storage_group.clone(),
        plural: rt.storage_plural.clone(),
        namespace: if rt.namespaced { namespace.unwrap_or("").to_string() } else { String::new() },
        name: name.to_string(),
    }
}

/// The stored object as the resource type presents it.
pub fn to_view(rt: &ResourceType, stored: &Value) -> Value {
    let mut v = match rt.view {
        View::EventsV1 => event_views::to_events_v1(stored),
        View::Plain => {
            let mut v = stored.clone();
            v["apiVersion"] = json!(rt.api_version());
            v["kind"] = json!(rt.kind);
            v
        }
    };
    if !rt.is_custom() {
        zero_values::fill(&rt.group, &rt.kind, &mut v);
    }
    v
}

fn to_storage(rt: &ResourceType, obj: &Value) -> Value {
    match rt.view {
        View::EventsV1 => event_views::to_core(obj),
        View::Plain => {
            let mut v = obj.clone();
            v["apiVersion"] = json!(rt.storage_api_version);
            v["kind"] = json!(rt.kind);
            v
        }
    }
}

fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::NotFound { resource: rt.group_resource(), name: name.to_string() }
}

fn conflict(rt: &ResourceType, name: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Conflict { resource: rt.group_resource(), name: name.to_string(), detail: detail.into() }
}

const OPTIMISTIC_LOCK_MSG: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// A namespaced request needs its namespace to exist; creates need it not to be terminating.
fn check_namespace(
    c: &Cluster,
    rt: &ResourceType,
    namespace: Option<&str>,
    creating: bool,
    name: &str,
) -> Result<(), ApiError> {
    if !rt.namespaced {
        return Ok(());
    }
    let ns_type = c.registry.namespace_type();
    let ns = namespace.unwrap_or("");
    if ns.is_empty() {
        return Err(ApiError::BadRequest("the server could not find the requested resource".into()));
    }
    let Some(ns_obj) = c.store.get(&key_for(&ns_type, None, ns)) else {
        return Err(not_found(&ns_type, ns));
    };
    if creating && !ns_obj["metadata"]["deletionTimestamp"].is_null() {
        // NamespaceLifecycle admission plugin.
        return Err(ApiError::Forbidden {
            resource: rt.group_resource(),
            name: name.to_string(),
            message: format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                rt.group_resource()
            ),
        });
    }
    Ok(())
}

/// The body's `apiVersion`/`kind` must name the endpoint's type. Custom resources must carry
/// both (unstructured decoding needs them); built-in kinds default missing ones.
fn check_type(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the object provided is not a JSON object".into()));
    }
    if !rt.is_custom() {
        decodable_as(rt, obj)?;
    }
    match obj["kind"].as_str() {
        Some(k) if k == rt.kind => {}
        // apiextensions validates the kind of an unstructured body like a field.
        Some(k) if !k.is_empty() && rt.is_custom() => {
            let name = meta_str(obj, "name").unwrap_or("").to_string();
            return Err(ApiError::invalid(
                super::api_error::GroupKind { group: rt.group.clone(), kind: k.to_string() },
                &name,
                vec![FieldError::invalid("kind", &json!(k), &format!("must be {}", rt.kind))],
            ));
        }
        Some(k) if !k.is_empty() => {
            return Err(ApiError::BadRequest(format!(
                "the object provided is unrecognized (must be of type {}): kind {k} does not match",
                rt.kind
            )));
        }
        _ if rt.is_custom() => return Err(ApiError::BadRequest(format!("Object 'Kind' is missing in '{obj}'"))),
        _ => obj["kind"] = json!(rt.kind),
    }
    match obj["apiVersion"].as_str() {
        Some(v) if v == rt.api_version() => {}
        Some(v) if !v.is_empty() => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
        _ => obj["apiVersion"] = json!(rt.api_version()),
    }
    if !obj["metadata"].is_null() && !obj["metadata"].is_object() {
        return Err(ApiError::BadRequest("metadata must be an object".into()));
    }
    Ok(())
}

/// kube-apiserver's typed decoder on a body naming another kind or version of a built-in
/// endpoint (`transformDecodeError`): the scheme has no such kind in that version, or no
/// conversion from that kind to the endpoint's.
fn decodable_as(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let kind = obj["kind"].as_str().filter(|k| !k.is_empty()).unwrap_or(&rt.kind);
    let api_version = obj["apiVersion"].as_str().filter(|v| !v.is_empty()).unwrap_or("");
    let version = api_version.rsplit('/').next().unwrap_or("");
    if kind == rt.kind && (api_version.is_empty() || api_version == rt.api_version()) {
        return Ok(());
    }
    let cannot = |detail: String| {
        let shown_version = if api_version.is_empty() { rt.version.as_str() } else { version };
        ApiError::BadRequest(format!(
            "{kind} in version {shown_version:?} cannot be handled as a {}: {detail}",
            rt.kind
        ))
    };
    // Every built-in kind the emulator serves is v1 of its group.
    let registry = Registry::default();
    let known = registry
        .all()
        .iter()
        .find(|t| t.kind == kind && (api_version.is_empty() || t.api_version() == api_version))
        .cloned();
    match known {
        Some(other) if other.kind != rt.kind || other.group != rt.group => {
            let internal_package = |group: &str| match group.split('.').next().unwrap_or("") {
                "" => "core".to_string(),
                "rbac" => "rbac".to_string(),
                first => first.to_string(),
            };
            Err(cannot(format!(
                "converting ({}.{kind}) to ({}.{}): unknown conversion",
                other.version,
                internal_package(&rt.group),
                rt.kind
            )))
        }
        Some(_) => Ok(()),
        None => Err(cannot(format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme \"pkg/runtime/scheme.go:111\""
        ))),
    }
}

/// The namespace in the body must match the URL's; an absent one is filled in.
fn check_body_namespace(rt: &ResourceType, obj: &mut Value, namespace: Option<&str>) -> Result<(), ApiError> {
    if !rt.namespaced {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        return Ok(());
    }
    let ns = namespace.unwrap_or("");
    match meta_str(obj, "namespace") {
        Some(b) if !b.is_empty() && b != ns => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        )),
        _ => {
            meta_mut(obj).insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

/// Admission shared by create and update: metadata, per-kind strategies and, for custom
/// resources, the CRD schema (defaulting, pruning, validation, CEL).
fn admit(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    opts: &WriteOptions,
) -> Result<Vec<String>, ApiError> {
    // Built-in kinds are decoded into their types first (unknown fields, wrong types), which
    // sets their defaults.
    let mut warnings =
        if rt.is_custom() { Vec::new() } else { builtin_decode::decode(rt, obj, opts.field_validation)? };
    if rt.group == "apps" && rt.kind == "Deployment" {
        workload_defaults::default_deployment(obj);
    }
    let name = meta_str(obj, "name").unwrap_or("").to_string();
    let invalid = |causes: Vec<FieldError>| ApiError::invalid(rt.group_kind(), &name, causes);
    let mut errs = if old.is_none() {
        object_meta::validate_create_meta(obj, rt.name_rule)
    } else {
        let mut e = object_meta::validate_labels(&obj["metadata"]["labels"]);
        e.extend(object_meta::validate_annotations(&obj["metadata"]["annotations"]));
        e
    };
    if let Some(old) = old
        && !old["metadata"]["deletionTimestamp"].is_null()
    {
        let before = finalizers(old);
        let added: Vec<String> = finalizers(obj).into_iter().filter(|f| !before.contains(f)).collect();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            errs.push(FieldError::forbidden(
                    "metadata.finalizers",
                    &format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}", list.join(", ")),
                ));
        }
    }
    if rt.storage_group.is_empty() && rt.storage_plural == "secrets" {
        errs.extend(secret_data::prepare(obj));
        if let Some(old) = old {
            errs.extend(secret_data::validate_update(old, obj));
        }
    }
    if is_service(rt) {
        service_defaults::default_service(obj);
    }
    if let Some(old) =
        old.filter(|_| rt.storage_group.is_empty() && ["secrets", "configmaps"].contains(&rt.storage_plural.as_str()))
    {
        errs.extend(secret_data::validate_immutable(old, obj));
    }
    if !rt.is_custom() {
        errs.extend(builtin_validation::validate(&rt.group, &rt.kind, obj, old));
    }
    if !errs.is_empty() {
        return Err(invalid(errs));
    }
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        warnings.extend(crds::admit(obj, old)?);
    }
    if let Some(custom) = &rt.custom {
        warnings = custom.compiled.admit_object(obj, old, opts.field_validation).map_err(|e| match e {
            AdmitError::Invalid(causes) => invalid(causes),
            // The strict decoder refuses the body before validation: 400, not 422.
            AdmitError::StrictDecoding { message, .. } => ApiError::BadRequest(message),
        })?;
    }
    Ok(warnings)
}

fn is_service(rt: &ResourceType) -> bool {
    rt.storage_group.is_empty() && rt.storage_plural == "services"
}

/// What a registry sets after admission and field ownership: a Service's allocated
/// addresses. Addresses are numbered by the global revision: unique per create, no
/// allocator state.
fn allocate(c: &Cluster, rt: &ResourceType, obj: &mut Value, old: Option<&Value>) {
    if is_service(rt) {
        let revision = c.store.current_rv();
        service_defaults::allocate(obj, old, || service_defaults::cluster_ip(revision));
    }
}

pub fn get(c: &Cluster, rt: &ResourceType, path: &ResourcePath) -> Result<Value, ApiError> {
    let name = path.name.as_deref().unwrap_or("");
    check_namespace(c, rt, path.namespace.as_deref(), false, name)?;
    c.store
        .get(&key_for(rt, path.namespace.as_deref(), name))
        .map(|o| to_view(rt, o))
        .ok_or_else(|| not_found(rt, name))
}

/// The selectors of a list or watch request, checked against what the kind supports.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(rt: &ResourceType, q: &Query) -> Result<Self, ApiError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let mut allowed: Vec<String> = rt.extra_field_selectors.iter().map(|s| s.to_string()).collect();
        if let Some(c) = &rt.custom {
            allowed.extend(c.selectable_fields.iter().cloned());
        }
        // Namespace, Secret, Service, Event and custom resources have field label
        // conversions of their own; every other kind apimachinery's default one.
        let conversion = if rt.is_custom() || !rt.extra_field_selectors.is_empty() {
            FieldLabels::Own { cluster_scoped: !rt.namespaced }
        } else {
            FieldLabels::MetadataOnly
        };
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), &allowed, conversion)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Self { labels, fields })
    }

    /// `obj` in the view of the request's resource type.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(&obj["metadata"]["labels"]) && self.fields.matches(obj)
    }
}

/// A page of a list: items, the list's resourceVersion, the continue token.
pub struct Page {
    pub items: Vec<Value>,
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// Continue tokens carry the list's resourceVersion and the last key returned, base64 JSON
/// like the real ones (`{"v":"meta.k8s.io/v1","rv":N,"start":"..."}`).
fn encode_continue(rv: &str, ns: &str, name: &str) -> String {
    use base64::Engine;
    let raw =
        json!({"v": "meta.k8s.io/v1", "rv": rv.parse::<u64>().unwrap_or(0), "start": format!("{ns}/{name}\u{0}")});
    // base64.RawURLEncoding, as storage.EncodeContinue.
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_continue(token: &str) -> Result<(String, String, String), ApiError> {
    use base64::Engine;
    // storage.DecodeContinue's errors, behind the list's "invalid continue token: ".
    let invalid =
        |detail: String| ApiError::BadRequest(format!("invalid continue token: continue key is not valid: {detail}"));
    let bad = || invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|e| invalid(e.to_string()))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| invalid(e.to_string()))?;
    let start = v["start"].as_str().ok_or_else(bad)?.trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((v["rv"].as_u64().ok_or_else(bad)?.to_string(), ns.to_string(), name.to_string()))
}

pub fn list(c: &Cluster, rt: &ResourceType, namespace: Option<&str>, q: &Query) -> Result<Page, ApiError> {
    let sel = Selectors::parse(rt, q)?;
    let limit = q.u64("limit")?.filter(|l| *l > 0);
    let (mut rv, after) = match q.get("continue").filter(|s| !s.is_empty()) {
        Some(tok) => {
            let (rv, ns, name) = decode_continue(tok)?;
            (rv, Some((ns, name)))
        }
        None => (c.store.current_rv().to_string(), None),
    };
    if rv == "0" {
        rv = c.store.current_rv().to_string();
    }
    let scope = if rt.namespaced { namespace } else { None };
    let mut items = Vec::new();
    let mut continue_token = None;
    let mut remaining = 0u64;
    for (key, obj) in c.store.list(&rt.storage_group, &rt.storage_plural, scope) {
        if let Some((ns, name)) = &after
            && (key.namespace.as_str(), key.name.as_str()) <= (ns.as_str(), name.as_str())
        {
            continue;
        }
        let view = to_view(rt, obj);
        if !sel.matches(&view) {
            continue;
        }
        if continue_token.is_some() {
            remaining += 1;
            continue;
        }
        items.push(view);
        if limit.is_some_and(|l| items.len() as u64 == l) {
            continue_token = Some(encode_continue(&rv, &key.namespace, &key.name));
        }
    }
    // A token pointing past the last item is not handed out.
    if continue_token.is_some() && remaining == 0 {
        continue_token = None;
    }
    let selective = !sel.labels.is_empty() || !sel.fields.is_empty();
    Ok(Page {
        items,
        resource_version: rv,
        remaining: continue_token.as_ref().filter(|_| !selective).map(|_| remaining),
        continue_token,
    })
}

pub fn list_body(rt: &ResourceType, page: Page) -> Value {
    let mut meta = json!({"resourceVersion": page.resource_version});
    match page.continue_token {
        Some(t) => meta["continue"] = json!(t),
        // An unstructured list (custom resources) always carries `continue`.
        None if rt.is_custom() => meta["continue"] = json!(""),
        None => {}
    }
    if let Some(r) = page.remaining {
        meta["remainingItemCount"] = json!(r);
    }
    json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": meta, "items": page.items})
}

/// Fields the system sets on create (generic registry `BeforeCreate`).
fn init_meta(rt: &ResourceType, obj: &mut Value) {
    let now = now_rfc3339();
    let m = meta_mut(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now));
    for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "selfLink"] {
        m.remove(k);
    }
    if rt.tracks_generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
}

/// `PrepareForCreate` of the strategies: status is not settable on create where a status
/// subresource exists; namespaces start Active with the `kubernetes` finalizer.
fn prepare_create(rt: &ResourceType, obj: &mut Value) {
    if rt.status_subresource
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    if rt.group.is_empty() && rt.plural == "namespaces" {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
        // Every namespace carries this label since 1.21 (NamespaceDefaultLabelName).
        labels["kubernetes.io/metadata.name"] = json!(name);
    }
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        crds::initial_status(obj);
    }
}

pub fn create(
    c: &mut Cluster,
    rt: &Arc<ResourceType>,
    namespace: Option<&str>,
    mut obj: Value,
    opts: &WriteOptions,
) -> Result<Outcome, ApiError> {
    check_type(rt, &mut obj)?;
    if meta_str(&obj, "resourceVersion").is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::BadRequest("resourceVersion should not be set on objects to be created".into()));
    }
    let mut name = meta_str(&obj, "name").unwrap_or("").to_string();
    if name.is_empty()
        && let Some(prefix) = meta_str(&obj, "generateName").filter(|p| !p.is_empty())
    {
        name = object_meta::generate_name(prefix);
        meta_mut(&mut obj).insert("name".into(), json!(name));
    }
    check_body_namespace(rt, &mut obj, namespace)?;
    check_namespace(c, rt, namespace, true, &name)?;
    prepare_create(rt, &mut obj);
    init_meta(rt, &mut obj);
    let warnings = admit(rt, &mut obj, None, opts)?;
    let key = key_for(rt, namespace, &name);
    if c.store.get(&key).is_some() {
        return Err(ApiError::AlreadyExists { resource: rt.group_resource(), name });
    }
    object_meta::drop_empty_meta(&mut obj);
    patch::record_update(None, &mut obj, &opts.field_manager, None, rt.schema(), &now_rfc3339());
    allocate(c, rt, &mut obj, None);
    let body = if opts.dry_run { obj } else { store_put(c, rt, key, &obj) };
    if !opts.dry_run && rt.group.is_empty() && rt.plural == "namespaces" {
        lifecycle::namespace_created(c, &name);
    }
    Ok(Outcome { code: 201, body, warnings })
}

/// Write an object (storage conversion, CRD registration) and return its view.
fn store_put(c: &mut Cluster, rt: &ResourceType, key: Key, obj: &Value) -> Value {
    let stored = c.store.put(key.clone(), to_storage(rt, obj));
    if rt.group == "apiextensions.k8s.io"
        && rt.plural == "customresourcedefinitions"
        && stored["metadata"]["deletionTimestamp"].is_null()
    {
        if crds::is_established(&stored) {
            crds::register(&mut c.registry, &stored);
        } else {
            establish_crd(c, rt, key, &stored);
        }
    }
    to_view(rt, &stored)
}

/// What apiextensions' naming and establishing controllers do right after a CRD is created:
/// a status update by `kube-apiserver` (accepted names, NamesAccepted, Established), after
/// which its resources are served. The creating request has its answer already (the CRD as
/// created, not yet established), as from kube-apiserver.
fn establish_crd(c: &mut Cluster, rt: &ResourceType, key: Key, created: &Value) {
    let old = to_view(rt, created);
    let mut new = old.clone();
    crds::set_status(&mut new, Some(&old));
    patch::record_update(Some(&old), &mut new, "kube-apiserver", Some("status"), None, &now_rfc3339());
    let stored = c.store.put(key, to_storage(rt, &new));
    crds::register(&mut c.registry, &stored);
}

/// How an update came in: PUT, a non-apply patch, or server-side apply (which records
/// managedFields itself).
#[derive(Clone, Copy, PartialEq, Eq)]
enum UpdateKind {
    Put,
    Patch,
    Apply,
}

/// The common tail of PUT and PATCH on an existing object (generic registry `Update`).
/// An update about to be made: where, from what, to what, through which subresource.
struct Change<'a> {
    key: Key,
    old: Value,
    new: Value,
    subresource: Option<&'a str>,
    kind: UpdateKind,
}

fn update_existing(
    c: &mut Cluster,
    rt: &ResourceType,
    change: Change<'_>,
    opts: &WriteOptions,
) -> Result<Outcome, ApiError> {
    let Change { key, old, mut new, subresource, kind } = change;
    let name = key.name.clone();
    if !new.is_object() {
        // e.g. a JSON patch replacing the whole document with an array.
        return Err(ApiError::BadRequest("the object provided is not a JSON object".into()));
    }
    match meta_str(&new, "resourceVersion").filter(|v| !v.is_empty()) {
        Some(rv) if Some(rv) != meta_str(&old, "resourceVersion") => {
            return Err(conflict(rt, &name, OPTIMISTIC_LOCK_MSG));
        }
        Some(_) => {}
        None if !rt.allow_unconditional_update => {
            // The generic registry names the resource, not the kind, here
            // (`GroupKind{Group, Kind: qualifiedResource.Resource}`), and prints the uint64 0.
            let resource = rt.group_resource();
            return Err(ApiError::invalid(
                super::api_error::GroupKind { group: resource.group, kind: resource.resource },
                &name,
                vec![FieldError::invalid("metadata.resourceVersion", &json!(0), "must be specified for an update")],
            ));
        }
        None => {}
    }
    if let Some(uid) = meta_str(&new, "uid").filter(|u| !u.is_empty()) {
        let old_uid = meta_str(&old, "uid").unwrap_or("");
        if uid != old_uid {
            return Err(conflict(
                rt,
                &name,
                format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"),
            ));
        }
    }
    if subresource == Some("status") {
        // Status strategy: only status (plus labels/annotations) may change through /status.
        let mut scoped = old.clone();
        match new.get("status") {
            Some(s) => scoped["status"] = s.clone(),
            None => {
                if let Some(m) = scoped.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        for f in ["labels", "annotations", "managedFields", "resourceVersion"] {
            match new["metadata"].get(f) {
                Some(v) => {
                    meta_mut(&mut scoped).insert(f.into(), v.clone());
                }
                None => {
                    meta_mut(&mut scoped).remove(f);
                }
            }
        }
        new = scoped;
    } else if rt.status_subresource {
        // Main-resource writes ignore status where a status subresource exists.
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    // System-owned metadata is kept from the live object (ObjectMeta update rules).
    {
        let om = old["metadata"].clone();
        let m = meta_mut(&mut new);
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match om.get(f) {
                Some(v) => m.insert(f.into(), v.clone()),
                None => m.remove(f),
            };
        }
        if !m.contains_key("managedFields")
            && let Some(mf) = om.get("managedFields")
        {
            m.insert("managedFields".into(), mf.clone());
        }
        m.insert("resourceVersion".into(), om["resourceVersion"].clone());
    }
    if rt.group.is_empty() && rt.plural == "namespaces" {
        // Namespace spec.finalizers change only through /finalize; status through /status.
        new["spec"] = old["spec"].clone();
    }
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        crds::set_status(&mut new, Some(&old));
    }
    let warnings = admit(rt, &mut new, Some(&old), opts)?;
    object_meta::drop_empty_meta(&mut new);
    if rt.tracks_generation {
        let changed = if rt.status_subresource {
            object_meta::spec_changed(&old, &new)
        } else {
            // Without a status subresource, status is part of what generation tracks.
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("metadata");
                }
                v
            };
            strip(&old) != strip(&new)
        };
        if changed {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
    }
    if kind != UpdateKind::Apply && new != old {
        patch::record_update(Some(&old), &mut new, &opts.field_manager, subresource, rt.schema(), &now_rfc3339());
    }
    allocate(c, rt, &mut new, Some(&old));
    // An update that changes nothing is not written: same resourceVersion, no watch event
    // (etcd3 store GuaranteedUpdate skips identical bytes).
    if new == old {
        return Ok(Outcome { code: 200, body: old, warnings });
    }
    if opts.dry_run {
        return Ok(Outcome { code: 200, body: new, warnings });
    }
    let body = if !new["metadata"]["deletionTimestamp"].is_null() && finalizers(&new).is_empty() {
        // The last finalizer is gone: the object is deleted now, as it was last stored
        // (`deleteWithoutFinalizers`: the DELETED event still lists the finalizers). The
        // answer is the update's result, never stored, at the last stored resourceVersion.
        c.store.remove(&key, to_storage(rt, &old));
        lifecycle::settle(c);
        new
    } else {
        store_put(c, rt, key, &new)
    };
    Ok(Outcome { code: 200, body, warnings })
}

fn check_name(obj: &Value, name: &str) -> Result<(), ApiError> {
    let body_name = meta_str(obj, "name").unwrap_or("");
    if body_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

pub fn update(
    c: &mut Cluster,
    rt: &Arc<ResourceType>,
    path: &ResourcePath,
    mut obj: Value,
    opts: &WriteOptions,
) -> Result<Outcome, ApiError> {
    let name = path.name.as_deref().unwrap_or("");
    check_type(rt, &mut obj)?;
    check_name(&obj, name)?;
    check_body_namespace(rt, &mut obj, path.namespace.as_deref())?;
    let key = key_for(rt, path.namespace.as_deref(), name);
    match c.store.get(&key) {
        Some(old) => {
            let old = to_view(rt, old);
            update_existing(
                c,
                rt,
                Change { key, old, new: obj, subresource: path.subresource.as_deref(), kind: UpdateKind::Put },
                opts,
            )
        }
        None if rt.allow_create_on_update && path.subresource.is_none() => {
            if meta_str(&obj, "resourceVersion").is_some_and(|v| !v.is_empty()) {
                return Err(conflict(rt, name, OPTIMISTIC_LOCK_MSG));
            }
            check_namespace(c, rt, path.namespace.as_deref(), false, name)?;
            create(c, rt, path.namespace.as_deref(), obj, opts)
        }
        None => {
            check_namespace(c, rt, path.namespace.as_deref(), false, name)?;
            Err(not_found(rt, name))
        }
    }
}

/// The patch content types kube-apiserver accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str, custom: bool) -> Result<Self, ApiError> {
        let media = ct.split(';').next().unwrap_or("").trim();
        let t = match media {
            "application/json-patch+json" => Self::Json,
            "application/merge-patch+json" => Self::Merge,
            "application/strategic-merge-patch+json" if !custom => Self::Strategic,
            "application/apply-patch+yaml" => Self::Apply,
            _ => {
                let accepted = if custom {
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                } else {
                    "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
                };
                return Err(ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: {accepted}"
                )));
            }
        };
        Ok(t)
    }
}

fn patch_error(e: PatchError) -> ApiError {
    let message = e.to_string();
    match e {
        PatchError::BadRequest(m) => ApiError::BadRequest(m),
        PatchError::Invalid(detail) => {
            // The client learns nothing more from kube-apiserver; the log keeps the reason.
            tracing::debug!(%detail, "JSON patch rejected");
            ApiError::Unprocessable { message: patch::JSON_PATCH_REJECTED_MESSAGE.to_string() }
        }
        PatchError::Conflict(conflicts) => {
            // The Display of the error is structured-merge-diff's message; each conflict is a
            // `FieldManagerConflict` cause.
            let causes = conflicts
                .iter()
                .map(|c| json!({"reason": patch::CONFLICT_CAUSE_TYPE, "message": c.cause, "field": c.field}))
                .collect();
            ApiError::ApplyConflict { message, causes }
        }
    }
}

pub struct PatchRequest<'a> {
    pub patch_type: PatchType,
    pub body: &'a [u8],
    pub force: bool,
}

pub fn patch(
    c: &mut Cluster,
    rt: &Arc<ResourceType>,
    path: &ResourcePath,
    req: PatchRequest<'_>,
    opts: &WriteOptions,
) -> Result<Outcome, ApiError> {
    let name = path.name.as_deref().unwrap_or("");
    let sub = path.subresource.as_deref();
    let key = key_for(rt, path.namespace.as_deref(), name);
    let old = c.store.get(&key).map(|o| to_view(rt, o));
    let now = now_rfc3339();
    let parse_json = |b: &[u8]| -> Result<Value, ApiError> {
        serde_json::from_slice(b).map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))
    };
    match req.patch_type {
        PatchType::Apply => {
            // The body is YAML (kubectl) or JSON (kube-rs); JSON is YAML.
            let mut applied: Value = serde_yaml::from_slice(req.body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
            check_type(rt, &mut applied)?;
            check_body_namespace(rt, &mut applied, path.namespace.as_deref())?;
            // A configuration without metadata (kube-rs status applies send only apiVersion,
            // kind and status) gets an empty one, as namespaced ones get theirs from
            // check_body_namespace; without it a cluster-scoped apply lost the live
            // resourceVersion and failed as an unconditional update.
            if !applied["metadata"].is_object() {
                meta_mut(&mut applied);
            }
            // kube-apiserver checks the name of the merged result, so a configuration without
            // metadata.name is fine for an existing object (controller-rs' status apply).
            if old.is_none() || meta_str(&applied, "name").is_some_and(|n| !n.is_empty()) {
                check_name(&applied, name)?;
            }
            match old {
                None => {
                    check_namespace(c, rt, path.namespace.as_deref(), true, name)?;
                    if sub.is_some() {
                        return Err(not_found(rt, name));
                    }
                    let mut new = patch::server_side_apply(
                        None,
                        &applied,
                        &opts.field_manager,
                        None,
                        req.force,
                        rt.schema(),
                        &now,
                    )
                    .map_err(patch_error)?;
                    check_type(rt, &mut new)?;
                    prepare_create(rt, &mut new);
                    init_meta(rt, &mut new);
                    let warnings = admit(rt, &mut new, None, opts)?;
                    object_meta::drop_empty_meta(&mut new);
                    allocate(c, rt, &mut new, None);
                    let body = if opts.dry_run { new } else { store_put(c, rt, key, &new) };
                    Ok(Outcome { code: 201, body, warnings })
                }
                Some(old) => {
                    let new = patch::server_side_apply(
                        Some(&old),
                        &applied,
                        &opts.field_manager,
                        sub,
                        req.force,
                        rt.schema(),
                        &now,
                    )
                    .map_err(patch_error)?;
                    update_existing(c, rt, Change { key, old, new, subresource: sub, kind: UpdateKind::Apply }, opts)
                }
            }
        }
        other => {
            check_namespace(c, rt, path.namespace.as_deref(), false, name)?;
            let old = old.ok_or_else(|| not_found(rt, name))?;
            let doc = parse_json(req.body)?;
            let new = match other {
                PatchType::Json => patch::json_patch(&old, &doc),
                PatchType::Merge => patch::merge_patch(&old, &doc),
                _ => patch::strategic_merge_patch(&old, &doc, &rt.kind),
            }
            .map_err(patch_error)?;
            // A patched object its type cannot hold is the patch's fault: a 422 naming the
            // patched object (handlers/patch.go), not the create/update decoding 400.
            if let Some(detail) = builtin_decode::type_error(rt, &new) {
                let cause = FieldError::invalid("patch", &json!(builtin_validation::go_json(&new)), &detail);
                return Err(ApiError::invalid(
                    super::api_error::GroupKind { group: String::new(), kind: String::new() },
                    "",
                    vec![cause],
                ));
            }
            update_existing(c, rt, Change { key, old, new, subresource: sub, kind: UpdateKind::Patch }, opts)
        }
    }
}

/// `DeleteOptions.preconditions` (uid, resourceVersion) must match the live object
/// (`rest.BeforeDelete`, which names the kind rather than the resource in its 409).
fn check_preconditions(rt: &ResourceType, name: &str, live: &Value, opts: &Value) -> Result<(), ApiError> {
    let pre = &opts["preconditions"];
    let kind_conflict = |detail: String| ApiError::Conflict {
        resource: super::api_error::GroupResource { group: rt.group.clone(), resource: rt.kind.clone() },
        name: name.to_string(),
        detail,
    };
    if let Some(uid) = pre["uid"].as_str() {
        let have = meta_str(live, "uid").unwrap_or("");
        if uid != have {
            return Err(kind_conflict(format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({have}). The object might have been deleted and then recreated"
            )));
        }
    }
    if let Some(rv) = pre["resourceVersion"].as_str() {
        let have = meta_str(live, "resourceVersion").unwrap_or("");
        if rv != have {
            return Err(kind_conflict(format!(
                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({have}). The object might have been modified"
            )));
        }
    }
    Ok(())
}

/// The response to a delete that removed the object: a `Success` Status naming it (the
/// generic registry without `ReturnDeletedObject`, custom resources included).
fn deleted_body(rt: &ResourceType, gone: &Value) -> Value {
    let mut details = json!({"name": meta_str(gone, "name").unwrap_or(""), "kind": rt.plural, "uid": meta_str(gone, "uid").unwrap_or("")});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// DELETE of one object. `delete_options` is the request's `DeleteOptions` body (or null).
/// `propagationPolicy` is accepted; with no garbage collector here, Orphan and Foreground
/// behave like Background (no `orphan`/`foregroundDeletion` finalizer is added, which would
/// otherwise never be removed).
pub fn delete(
    c: &mut Cluster,
    rt: &Arc<ResourceType>,
    path: &ResourcePath,
    delete_options: &Value,
    dry_run: bool,
) -> Result<Outcome, ApiError> {
    let name = path.name.as_deref().unwrap_or("");
    check_namespace(c, rt, path.namespace.as_deref(), false, name)?;
    if let Some(p) = delete_options["propagationPolicy"].as_str()
        && !["Orphan", "Background", "Foreground"].contains(&p)
    {
        return Err(ApiError::invalid(
            super::api_error::GroupKind { group: "meta.k8s.io".into(), kind: "DeleteOptions".into() },
            "",
            vec![FieldError::not_supported(
                "propagationPolicy",
                &json!(p),
                &[json!("Foreground"), json!("Background"), json!("Orphan"), json!("nil")],
            )],
        ));
    }
    let key = key_for(rt, path.namespace.as_deref(), name);
    let live = c.store.get(&key).map(|o| to_view(rt, o)).ok_or_else(|| not_found(rt, name))?;
    check_preconditions(rt, name, &live, delete_options)?;
    if dry_run {
        return Ok(Outcome { code: 200, body: live, warnings: Vec::new() });
    }
    match lifecycle::delete_key(c, &key) {
        // A CRD is deleted in two phases (its cleanup finalizer), so kube-apiserver answers
        // with the CRD marked for deletion even when it had no objects left to clean up.
        lifecycle::Deleted::Gone(stored)
            if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" =>
        {
            Ok(Outcome { code: 200, body: to_view(rt, &stored), warnings: Vec::new() })
        }
        lifecycle::Deleted::Gone(stored) => {
            Ok(Outcome { code: 200, body: deleted_body(rt, &to_view(rt, &stored)), warnings: Vec::new() })
        }
        // Finalizers pending: the object with its deletionTimestamp. kube-apiserver answers
        // 202 only when the client asked for `orphanDependents: false` (handlers/delete.go).
        lifecycle::Deleted::Pending(stored) => {
            let code = if delete_options["orphanDependents"] == json!(false) { 202 } else { 200 };
            Ok(Outcome { code, body: to_view(rt, &stored), warnings: Vec::new() })
        }
    }
}

/// DELETE on a collection: every object matching the selectors; answers with the list of
/// what was deleted (or is now deleting).
pub fn delete_collection(
    c: &mut Cluster,
    rt: &Arc<ResourceType>,
    namespace: Option<&str>,
    q: &Query,
    dry_run: bool,
) -> Result<Value, ApiError> {
    if !rt.verbs.contains(&"deletecollection") {
        return Err(ApiError::MethodNotAllowed);
    }
    check_namespace(c, rt, namespace, false, "")?;
    let sel = Selectors::parse(rt, q)?;
    let scope = if rt.namespaced { namespace } else { None };
    let keys: Vec<Key> = c
        .store
        .list(&rt.storage_group, &rt.storage_plural, scope)
        .filter(|(_, o)| sel.matches(&to_view(rt, o)))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for key in keys {
        if dry_run {
            if let Some(o) = c.store.get(&key) {
                items.push(to_view(rt, o));
            }
            continue;
        }
        let stored = match lifecycle::delete_key(c, &key) {
            lifecycle::Deleted::Gone(o) | lifecycle::Deleted::Pending(o) => o,
        };
        items.push(to_view(rt, &stored));
    }
    let mut meta = json!({"resourceVersion": c.store.current_rv().to_string()});
    if rt.is_custom() {
        meta["continue"] = json!("");
    }
    Ok(json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": meta, "items": items}))
}
