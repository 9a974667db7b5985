//! The HTTP edge: routes every request (discovery, OpenAPI, resources, watches, the
//! `/_sandbox/` admin API), negotiates representations and renders results and errors.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio_stream::wrappers::ReceiverStream;

use super::api_error::{ApiError, GroupKind};
use super::crd::table;
use super::field_error::FieldError;
use super::request::{self, Query, Representation, ResourcePath};
use super::resources::{Registry, ResourceType};
use super::rest::{self, Outcome, PatchRequest, PatchType, Selectors, WriteOptions};
use super::shared::Shared;
use super::watch::{self, Start, TableMode, WatchRequest};
use super::{authz, discovery, kubeconfig, openapi_docs, protobuf, rbac, token_request};
use crate::faults::{self};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

const JSON: &str = "application/json";
const MAX_BODY: usize = 16 * 1024 * 1024;

fn json_response(code: u16, body: &Value, content_type: &str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static(JSON)));
    resp
}

fn error_response(e: &ApiError) -> Response {
    match e {
        // The Go mux's own 404, for paths no API group serves.
        ApiError::PageNotFound => {
            let mut resp = Response::new(Body::from("404 page not found\n"));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            resp.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            resp
        }
        _ => json_response(e.code(), &e.status(), JSON),
    }
}

/// 406 for a discovery request accepting neither aggregated v2 nor a plain document.
fn not_acceptable() -> Response {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        "reason": "NotAcceptable", "code": 406,
    });
    json_response(406, &status, JSON)
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    tracing::debug!(%method, %path, query = parts.uri.query().unwrap_or(""), "request");
    if let Some(admin) = path.strip_prefix("/_sandbox/") {
        let body = axum::body::to_bytes(body, MAX_BODY).await.unwrap_or_default();
        return admin_api(&shared, &method, admin, &body);
    }
    let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    shared.record(&method, &path, parts.uri.query().unwrap_or(""), user_agent);
    if let Some(fault) = shared.faults.take(method.as_str(), &path) {
        if let Some(ms) = fault.latency_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(code) = fault.status {
            let mut resp = match &fault.body {
                Some(raw) => json_response(code, &Value::Null, JSON).map(|_| Body::from(raw.clone())),
                None => error_response(&ApiError::Injected(code)),
            };
            if let Some(ra) = fault.retry_after_header().and_then(|v| HeaderValue::from_str(&v).ok()) {
                resp.headers_mut().insert(header::RETRY_AFTER, ra);
            }
            return resp;
        }
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return error_response(&ApiError::BadRequest("request body too large or unreadable".into())),
    };
    let ctx = Ctx { query: Query::parse(parts.uri.query()), headers: parts.headers, method, path, body };
    match dispatch(&shared, &ctx) {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

struct Ctx {
    method: Method,
    path: String,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
}

impl Ctx {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn bearer_token(&self) -> Option<&str> {
        self.header(header::AUTHORIZATION).strip_prefix("Bearer ").map(str::trim)
    }

    /// The field manager of a write: `?fieldManager=`, else the user agent's product name,
    /// as kube-apiserver derives it (`prefixFromUserAgent`).
    /// `options_kind`: the request's options type (`CreateOptions`, `UpdateOptions`,
    /// `PatchOptions`), named by its validation errors.
    fn write_options(&self, apply: bool, options_kind: &str) -> Result<WriteOptions, ApiError> {
        let explicit = self.query.get("fieldManager").unwrap_or("").to_string();
        if explicit.len() > 128 {
            return Err(ApiError::invalid(
                GroupKind { group: "meta.k8s.io".into(), kind: "PatchOptions".into() },
                "",
                vec![FieldError::too_long("fieldManager", 128)],
            ));
        }
        let field_manager = if explicit.is_empty() && !apply {
            let ua = self.header(header::USER_AGENT);
            let prefix = ua.split('/').next().unwrap_or("").chars().take(128).collect::<String>();
            if prefix.is_empty() { "unknown".to_string() } else { prefix }
        } else {
            explicit
        };
        Ok(WriteOptions {
            dry_run: self.query.dry_run(options_kind)?,
            field_manager,
            field_validation: self.query.field_validation(options_kind)?,
        })
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        let content_type = self.header(header::CONTENT_TYPE);
        if content_type.starts_with("application/vnd.kubernetes.protobuf") {
            return protobuf::decode(&self.body).map_err(|e| match e {
                protobuf::ProtoError::Unsupported(_) => ApiError::UnsupportedMediaType(e.to_string()),
                _ => ApiError::BadRequest(e.to_string()),
            });
        }
        let yaml = content_type.starts_with("application/yaml");
        if yaml {
            return serde_yaml::from_slice(&self.body)
                .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}")))
    }

    /// [`Ctx::json_body`] for a write to `rt`: an undecodable body is "unrecognized" as that
    /// type, with a summary of its first bytes (`transformDecodeError`, `summarizeData`).
    fn body_for(&self, rt: &ResourceType) -> Result<Value, ApiError> {
        self.json_body().map_err(|e| match e {
            ApiError::BadRequest(detail) if detail.starts_with("couldn't get version/kind") => {
                const MAX: usize = 30;
                let data = &self.body[..];
                let summary = match data.first() {
                    None => "<empty>".to_string(),
                    Some(b'{') if data.len() > MAX => format!("{} ...", String::from_utf8_lossy(&data[..MAX])),
                    Some(b'{') => String::from_utf8_lossy(data).into_owned(),
                    Some(_) => {
                        let hex: String = data.iter().take(MAX).map(|b| format!("{b:02x}")).collect();
                        if data.len() > MAX { format!("{hex} ...") } else { hex }
                    }
                };
                ApiError::BadRequest(format!(
                    "the object provided is unrecognized (must be of type {}): {detail} ({summary})",
                    rt.kind
                ))
            }
            other => other,
        })
    }
}

fn dispatch(shared: &Arc<Shared>, ctx: &Ctx) -> Result<Response, ApiError> {
    let accept = ctx.header(header::ACCEPT).to_string();
    let segs: Vec<&str> = ctx.path.trim_matches('/').split('/').collect();
    let get = ctx.method == Method::GET;
    match segs.as_slice() {
        ["version"] if get => return Ok(json_response(200, &version(), JSON)),
        ["healthz" | "readyz" | "livez"] if get => {
            return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response());
        }
        ["api"] if get => {
            let c = shared.lock();
            return Ok(match request::aggregated_discovery(&accept) {
                Some(v) => json_response(
                    200,
                    &discovery::aggregated(&c.registry, true, v),
                    &discovery::aggregated_content_type(v),
                ),
                None if !request::accepts_plain(&accept) => not_acceptable(),
                None => json_response(200, &discovery::api_versions(&shared.addr.to_string()), JSON),
            });
        }
        ["apis"] if get => {
            let c = shared.lock();
            return Ok(match request::aggregated_discovery(&accept) {
                Some(v) => json_response(
                    200,
                    &discovery::aggregated(&c.registry, false, v),
                    &discovery::aggregated_content_type(v),
                ),
                None if !request::accepts_plain(&accept) => not_acceptable(),
                None => json_response(200, &discovery::group_list(&c.registry), JSON),
            });
        }
        ["apis", g] if get => {
            let c = shared.lock();
            return discovery::group(&c.registry, g)
                .map(|d| json_response(200, &d, JSON))
                .ok_or(ApiError::PageNotFound);
        }
        ["api", v] if get => {
            let c = shared.lock();
            return discovery::resource_list(&c.registry, "", v)
                .map(|d| json_response(200, &d, JSON))
                .ok_or(ApiError::NoSuchPath);
        }
        ["apis", g, v] if get => {
            let c = shared.lock();
            return discovery::resource_list(&c.registry, g, v)
                .map(|d| json_response(200, &d, JSON))
                .ok_or_else(|| unknown_path(&c.registry, g));
        }
        ["openapi", "v3"] if get => {
            let c = shared.lock();
            return Ok(json_response(200, &openapi_docs::index(&c.registry), JSON));
        }
        ["openapi", "v3", ..] if get => return openapi_document(shared, ctx),
        _ => {}
    }
    let Some(rp) = ResourcePath::parse(&ctx.path) else {
        // `/api/...` belongs to the core group's handler; anything else no group serves.
        return Err(if segs.first() == Some(&"api") { ApiError::NoSuchPath } else { ApiError::PageNotFound });
    };
    let rt = {
        let c = shared.lock();
        c.registry.find(&rp.group, &rp.version, &rp.plural).ok_or_else(|| unknown_path(&c.registry, &rp.group))?
    };
    if rp.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::NoSuchPath);
    }
    // A namespaced resource addressed without a namespace: only the cluster-wide list and
    // watch exist. kube-apiserver's routes answer the rest; apiextensions' handler knows
    // no such path at all.
    if rt.namespaced && rp.namespace.is_none() && (rp.name.is_some() || ctx.method == Method::POST) {
        return Err(match (rt.is_custom(), rp.name.is_some()) {
            (true, _) => ApiError::PageNotFound,
            (false, true) => ApiError::NoSuchPath,
            (false, false) => ApiError::MethodNotAllowed,
        });
    }
    match rp.subresource.as_deref() {
        None => {}
        Some("status") if rt.status_subresource => {}
        Some("token") if rt.group.is_empty() && rt.plural == "serviceaccounts" => {}
        // apiextensions' handler looks the object up for any subresource it does not serve.
        Some(_) if rt.is_custom() => {
            return Err(ApiError::NotFound {
                resource: rt.group_resource(),
                name: rp.name.clone().unwrap_or_default(),
            });
        }
        Some(_) => return Err(ApiError::NoSuchPath),
    }
    {
        let attrs = authz::Attributes {
            verb: verb(ctx, &rp),
            resource: &rt,
            subresource: rp.subresource.as_deref(),
            namespace: rp.namespace.as_deref(),
            name: rp.name.as_deref(),
        };
        let c = shared.lock();
        authz::authorize(&shared.rbac, &c.store, ctx.bearer_token(), &attrs)?;
    }
    resource(shared, ctx, &rt, &rp, &accept)
}

/// A path under a group/version/resource nobody serves: within a served group (or the core
/// group) a `NotFound` Status, else the mux's plain-text 404.
fn unknown_path(reg: &Registry, group: &str) -> ApiError {
    if group.is_empty() || reg.all().iter().any(|t| t.group == group) {
        ApiError::NoSuchPath
    } else {
        ApiError::PageNotFound
    }
}

/// The Kubernetes verb of a request (RBAC vocabulary).
fn verb(ctx: &Ctx, rp: &ResourcePath) -> &'static str {
    match (&ctx.method, rp.name.is_some()) {
        // Only a collection GET becomes a watch (apiserver RequestInfoFactory); `GET
        // .../name?watch=true` is a get.
        (&Method::GET, _) if rp.watch_prefix => "watch",
        (&Method::GET, false) if ctx.query.flag("watch") => "watch",
        (&Method::GET, true) => "get",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.1",
        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32"
    })
}

fn outcome_response(o: Outcome) -> Response {
    let mut resp = json_response(o.code, &o.body, JSON);
    for w in o.warnings {
        // RFC 7234 warning with code 299 and agent "-", as kube-apiserver sends them.
        let text = format!("299 - {:?}", w);
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn resource(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    rt: &Arc<ResourceType>,
    rp: &ResourcePath,
    accept: &str,
) -> Result<Response, ApiError> {
    let repr = request::representation(accept);
    let ns = rp.namespace.as_deref();
    match (&ctx.method, &rp.name) {
        (&Method::GET, Some(name)) if rp.watch_prefix && rp.subresource.is_none() => {
            start_watch(shared, &ctx.query.with_name_selector(name), rt, ns, repr)
        }
        // `?watch=true` on a named object is ignored: a plain get (watching one object goes
        // through the collection with `fieldSelector=metadata.name=...`).
        (&Method::GET, Some(_)) => {
            let obj = rest::get(&shared.lock(), rt, rp)?;
            render_read(rt, repr, &ctx.query, vec![obj], None, true)
        }
        (&Method::GET, None) if ctx.query.flag("watch") || rp.watch_prefix => {
            start_watch(shared, &ctx.query, rt, ns, repr)
        }
        (&Method::GET, None) => {
            check_list_options(&ctx.query)?;
            let page = {
                // Listing in a missing namespace is an empty list, like kube-apiserver.
                rest::list(&shared.lock(), rt, ns, &ctx.query)?
            };
            match repr {
                Representation::Plain => Ok(json_response(200, &rest::list_body(rt, page), JSON)),
                _ => {
                    let meta = (page.resource_version.clone(), page.continue_token.clone());
                    render_read(rt, repr, &ctx.query, page.items, Some(meta), false)
                }
            }
        }
        (&Method::POST, Some(name)) if rp.subresource.as_deref() == Some("token") => {
            let body = if ctx.body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { ctx.json_body()? };
            let c = shared.lock();
            let sa = rest::get(&c, rt, &ResourcePath { subresource: None, ..rp.clone() }).ok();
            let answer = token_request::create(&shared.rbac, ns.unwrap_or(""), name, sa.as_ref(), &body)?;
            Ok(json_response(201, &answer, JSON))
        }
        (&Method::POST, None) => {
            let opts = ctx.write_options(false, "CreateOptions")?;
            let body = ctx.body_for(rt)?;
            let out = rest::create(&mut shared.lock(), rt, ns, body, &opts)?;
            Ok(outcome_response(out))
        }
        (&Method::PUT, Some(_)) => {
            let opts = ctx.write_options(false, "UpdateOptions")?;
            let body = ctx.body_for(rt)?;
            let out = rest::update(&mut shared.lock(), rt, rp, body, &opts)?;
            Ok(outcome_response(out))
        }
        (&Method::PATCH, Some(_)) => {
            let patch_type = PatchType::from_content_type(ctx.header(header::CONTENT_TYPE), rt.is_custom())?;
            let opts = ctx.write_options(patch_type == PatchType::Apply, "PatchOptions")?;
            let force = ctx.query.flag("force");
            // apimachinery ValidatePatchOptions, checked before the object is looked up: 422.
            let patch_options_invalid = |e: FieldError| {
                ApiError::invalid(GroupKind { group: "meta.k8s.io".into(), kind: "PatchOptions".into() }, "", vec![e])
            };
            if ctx.query.get("force").is_some() && patch_type != PatchType::Apply {
                return Err(patch_options_invalid(FieldError::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )));
            }
            if patch_type == PatchType::Apply && opts.field_manager.is_empty() {
                return Err(patch_options_invalid(FieldError::required("fieldManager", "is required for apply patch")));
            }
            let req = PatchRequest { patch_type, body: &ctx.body, force };
            let out = rest::patch(&mut shared.lock(), rt, rp, req, &opts)?;
            Ok(outcome_response(out))
        }
        (&Method::DELETE, Some(_)) => {
            let mut opts = if ctx.body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { ctx.json_body()? };
            if let Some(p) = ctx.query.get("propagationPolicy") {
                opts["propagationPolicy"] = json!(p);
            }
            let dry_run = ctx.query.dry_run("DeleteOptions")?
                || opts["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
            let out = rest::delete(&mut shared.lock(), rt, rp, &opts, dry_run)?;
            Ok(outcome_response(out))
        }
        (&Method::DELETE, None) => {
            let dry_run = ctx.query.dry_run("DeleteOptions")?;
            let list = rest::delete_collection(&mut shared.lock(), rt, ns, &ctx.query, dry_run)?;
            Ok(json_response(200, &list, JSON))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

fn list_options_invalid(causes: Vec<FieldError>) -> ApiError {
    ApiError::invalid(GroupKind { group: "meta.k8s.io".into(), kind: "ListOptions".into() }, "", causes)
}

/// apimachinery `ValidateListOptions` for plain lists.
fn check_list_options(q: &Query) -> Result<(), ApiError> {
    if q.get("sendInitialEvents").is_some() {
        return Err(list_options_invalid(vec![FieldError::forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        )]));
    }
    let rv_match = q.get("resourceVersionMatch").filter(|m| !m.is_empty());
    if rv_match.is_some() && q.get("resourceVersion").is_none_or(str::is_empty) {
        return Err(list_options_invalid(vec![FieldError::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )]));
    }
    match q.get("resourceVersionMatch") {
        None | Some("") | Some("NotOlderThan") | Some("Exact") => Ok(()),
        Some(other) => Err(list_options_invalid(vec![FieldError::not_supported(
            "resourceVersionMatch",
            &json!(other),
            &[json!("Exact"), json!("NotOlderThan"), json!("")],
        )])),
    }
}

/// A read answered as the plain object, a Table or PartialObjectMetadata.
fn render_read(
    rt: &ResourceType,
    repr: Representation,
    q: &Query,
    items: Vec<Value>,
    list_meta: Option<(String, Option<String>)>,
    single: bool,
) -> Result<Response, ApiError> {
    match repr {
        Representation::Plain => Ok(json_response(200, &items.into_iter().next().unwrap_or(Value::Null), JSON)),
        Representation::Table => {
            let crd = rt.custom.as_ref().map(|c| &c.crd);
            let columns = table::columns_for(crd, &rt.version, &rt.kind);
            let mut t = table::render(&columns, &items, q.include_object()?, chrono::Utc::now());
            match list_meta {
                Some((rv, cont)) => {
                    t["metadata"]["resourceVersion"] = json!(rv);
                    if let Some(c) = cont {
                        t["metadata"]["continue"] = json!(c);
                    }
                }
                None if single => {
                    t["metadata"]["resourceVersion"] =
                        items.first().map(|o| o["metadata"]["resourceVersion"].clone()).unwrap_or(Value::Null);
                }
                None => {}
            }
            // kube-apiserver labels converted answers plain `application/json`.
            Ok(json_response(200, &t, JSON))
        }
        Representation::PartialMetadata => {
            let partial = |o: &Value| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
            if single {
                let obj = items.first().map(partial).unwrap_or(Value::Null);
                return Ok(json_response(200, &obj, JSON));
            }
            let (rv, cont) = list_meta.unwrap_or_default();
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = cont {
                meta["continue"] = json!(c);
            }
            let list = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items.iter().map(partial).collect::<Vec<_>>()});
            Ok(json_response(200, &list, JSON))
        }
    }
}

fn start_watch(
    shared: &Arc<Shared>,
    q: &Query,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    repr: Representation,
) -> Result<Response, ApiError> {
    let send_initial = match q.get("sendInitialEvents") {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => return Err(ApiError::BadRequest(format!("invalid value for sendInitialEvents: {other:?}"))),
    };
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    let bookmarks = q.flag("allowWatchBookmarks");
    // apimachinery ValidateListOptions for watches (the WatchList feature).
    let mut causes = Vec::new();
    match send_initial {
        Some(_) if rv_match != Some("NotOlderThan") => {
            causes.push(FieldError::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        Some(_) => {}
        None if rv_match.is_some() => {
            causes.push(FieldError::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        None => {}
    }
    if !causes.is_empty() {
        return Err(list_options_invalid(causes));
    }
    let rv = match q.get("resourceVersion").filter(|s| !s.is_empty() && *s != "0") {
        None => None,
        Some(s) => {
            Some(s.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {s:?}")))?)
        }
    };
    // The initial-events-end bookmark goes to clients that allow bookmarks; a watch from ""
    // or "0" defaults to sendInitialEvents=true (SetListOptionsDefaults), so it gets one too.
    let start = match (send_initial, rv) {
        (Some(true), _) | (None, None) => Start::Initial { end_bookmark: bookmarks },
        (_, Some(n)) => Start::After(n),
        (Some(false), None) => Start::After(shared.lock().store.current_rv()),
    };
    let timeout = Duration::from_secs(q.u64("timeoutSeconds")?.unwrap_or(1800));
    let table = match repr {
        Representation::Table => {
            let crd = rt.custom.as_ref().map(|c| &c.crd);
            Some(TableMode { columns: table::columns_for(crd, &rt.version, &rt.kind), include: q.include_object()? })
        }
        _ => None,
    };
    let w = WatchRequest {
        rt: rt.clone(),
        metadata_only: repr == Representation::PartialMetadata,
        namespace: ns.map(str::to_string),
        selectors: Selectors::parse(rt, q)?,
        start,
        bookmarks,
        timeout,
        table,
    };
    let rx = watch::start(shared.clone(), w);
    let mut resp = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp)
}

fn openapi_document(shared: &Arc<Shared>, ctx: &Ctx) -> Result<Response, ApiError> {
    let rest_path = ctx.path.trim_start_matches("/openapi/v3/");
    // kube-openapi's handler answers an unknown group/version with an empty 404.
    let empty_404 = || StatusCode::NOT_FOUND.into_response();
    let Some((g, v)) = openapi_docs::parse_path(rest_path) else { return Ok(empty_404()) };
    let doc = {
        let c = shared.lock();
        openapi_docs::document(&c.registry, &g, &v)
    };
    let Some(doc) = doc else { return Ok(empty_404()) };
    let hash = openapi_docs::hash(&doc);
    let etag = format!("\"{hash}\"");
    if ctx.header(header::IF_NONE_MATCH) == etag {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut()
            .insert(header::ETAG, HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")));
        return Ok(resp);
    }
    let mut resp = json_response(200, &doc, JSON);
    resp.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")));
    // A request carrying the current hash may be cached forever (kube-openapi handler3).
    let cache = if ctx.query.get("hash") == Some(hash.as_str()) { "public, immutable" } else { "no-cache, private" };
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(resp)
}

/// `/_sandbox/` admin API (never under a Kubernetes path).
fn admin_api(shared: &Arc<Shared>, method: &Method, path: &str, body: &[u8]) -> Response {
    let ok = |v: Value| json_response(200, &v, JSON);
    let bad = |msg: String| json_response(400, &json!({"error": msg}), JSON);
    match (method, path.trim_end_matches('/')) {
        (&Method::POST, "watches/drop") => {
            watch::drop_all(&shared.watch_cancel);
            ok(json!({"dropped": true}))
        }
        (&Method::POST, "watches/expire") => {
            let mut c = shared.lock();
            c.store.compact();
            ok(json!({"expiredBefore": c.store.current_rv().to_string()}))
        }
        (&Method::GET, "requests") => {
            ok(Value::Array(shared.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()))
        }
        (&Method::DELETE, "requests") => {
            shared.requests.lock().unwrap_or_else(|p| p.into_inner()).clear();
            ok(json!({}))
        }
        (&Method::GET, "faults") => ok(shared.faults.snapshot()),
        (&Method::GET, "rbac") => ok(shared.rbac.snapshot()),
        (&Method::PUT, "rbac") => match serde_json::from_slice::<Value>(body).ok().and_then(|v| v["enforce"].as_bool())
        {
            Some(enforce) => {
                shared.rbac.set_enforce(enforce);
                ok(json!({"enforce": enforce}))
            }
            None => bad("expected {\"enforce\": true|false}".into()),
        },
        (&Method::POST, "tokens") => {
            let requested = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["serviceAccount"].as_str().map(str::to_string));
            match requested.as_deref().and_then(rbac::parse_service_account) {
                Some((ns, name)) => {
                    let token = shared.rbac.mint(ns, name);
                    let kubeconfig = kubeconfig::render(shared.addr, &token);
                    ok(
                        json!({"token": token, "user": format!("system:serviceaccount:{ns}:{name}"), "kubeconfig": kubeconfig}),
                    )
                }
                None => bad("expected {\"serviceAccount\": \"namespace/name\"}".into()),
            }
        }
        (&Method::DELETE, "faults") => {
            shared.faults.clear();
            ok(json!({}))
        }
        (&Method::PUT, "faults") => {
            let faults = match faults::parse_body(body) {
                Ok(f) => f,
                Err(e) => return bad(e.to_string()),
            };
            // The kube server answers through axum and cannot cut a connection mid-request.
            if faults.iter().any(|f| f.reset) {
                return bad("reset is not supported by the Kubernetes emulator".into());
            }
            for f in faults {
                shared.faults.push(f);
            }
            ok(shared.faults.snapshot())
        }
        _ => json_response(404, &json!({"error": format!("no admin endpoint {method} /_sandbox/{path}")}), JSON),
    }
}
