//! The Datagrid emulator (docs/providers.md, Datagrid; `datagrid.yaml`): read, rename and list
//! connections, scoped by the `Datagrid-Teamspace` header, with the 60-second sliding
//! window per teamspace + templated path + method.
//!
//! Datagrid documents only its 404 description and the 429 `RateLimitError` body. For the
//! other errors we reuse the `RateLimitError` envelope (`status_code`, `error`, `message`,
//! `retryable`), the likely shape ([I] in docs/providers.md, Datagrid).
//!
//! Other choices where Datagrid documents nothing:
//! - `Datagrid-Teamspace` is honoured for every key (the real server ignores it for
//!   org-scoped keys); without it a request sees every teamspace and counts in the
//!   `teamspace_default` rate-limit bucket.
//! - PATCH: non-JSON `Content-Type` 415; no object, no string `name` or a blank `name` 400;
//!   extra keys ignored; `updated_at` moves only when the name changes.
//! - List: creation order; a bad `limit`, both cursors, or an unknown cursor 400; unknown
//!   query parameters ignored.
//! - `X-RateLimit-Reset` and `Retry-After` are rounded up to whole seconds, so waiting
//!   that long always frees a slot.
//! - Unknown `valid`/`value` are omitted rather than `null` (datagrid.yaml: non-nullable).

mod store;

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::request::Parts,
    response::{IntoResponse, Response},
    routing::get,
};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{
    Access, Bucket, Caller, Decision, Provider, RateLimit, Tokens, WindowKind, mount,
    tokens::{Bearer, bearer},
};
use store::{ListError, Page, Store};

pub fn router() -> Router {
    mount(Datagrid::default())
}

/// 200 requests per 60-second sliding window (docs/providers.md, Datagrid).
const DEFAULT_LIMIT: RateLimit = RateLimit::per_minute(200);
const TEAMSPACE_HEADER: &str = "datagrid-teamspace";
const NOT_FOUND: &str = "Not found. The requested connection does not exist, or the authenticated user does not have permission to access it.";

#[derive(Default)]
struct Datagrid {
    store: Mutex<Store>,
}

impl Datagrid {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // Store operations validate before mutating, so a poisoned lock guards consistent data.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The error envelope (see the module docs).
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "status_code": status.as_u16(),
        "error": code,
        "message": message,
        "retryable": matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error(),
    });
    (status, Json(body)).into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", NOT_FOUND)
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// The teamspace a request is scoped to; `None` without the header.
fn teamspace(headers: &HeaderMap) -> Option<String> {
    headers
        .get(TEAMSPACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The route template a path belongs to: limits are kept per templated route, not per
/// concrete path (docs/providers.md, Datagrid [I], the likelier reading).
fn route_template(path: &str) -> &'static str {
    match path.trim_end_matches('/') {
        "/connections" => "/connections",
        p if p.starts_with("/connections/") && !p["/connections/".len()..].contains('/') => {
            "/connections/{connection_id}"
        }
        _ => "other",
    }
}

impl Provider for Datagrid {
    fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/connections", get(list))
            .route("/connections/{id}", get(read).patch(rename))
            .fallback(route_not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self)
    }

    fn authenticate(&self, request: &Parts, tokens: &Tokens) -> Result<Caller, Response> {
        let token = match bearer(&request.headers) {
            Bearer::Token(token) => Some(token),
            Bearer::Missing | Bearer::Malformed => None,
        };
        let write = !matches!(request.method, http::Method::GET | http::Method::HEAD);
        match tokens.check(token, write) {
            Access::Granted { read_only } => Ok(Caller { credential: token.map(str::to_owned), read_only }),
            Access::Missing => Err(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "Missing API key. Send it as `Authorization: Bearer <API key>`.",
            )),
            Access::Unknown => Err(error(StatusCode::UNAUTHORIZED, "authentication_error", "Invalid API key.")),
            Access::ReadOnlyWrite => Err(error(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "This API key does not have permission to perform this action.",
            )),
        }
    }

    /// Per teamspace + templated path + method (rate-limits.md).
    fn bucket(&self, request: &Parts, _caller: &Caller) -> Option<Bucket> {
        let teamspace = teamspace(&request.headers).unwrap_or_else(|| store::DEFAULT_TEAMSPACE.to_owned());
        Some(Bucket {
            key: format!("{teamspace} {} {}", request.method, route_template(request.uri.path())),
            kind: WindowKind::Sliding,
            default: DEFAULT_LIMIT,
        })
    }

    /// Limit, Remaining and Reset (unix seconds) on every response, and `Retry-After`
    /// (seconds) whenever Remaining is 0, 429s included.
    fn rate_limit_headers(&self, decision: &Decision, _caller: &Caller, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_at.ceil() as u64));
        if decision.remaining == 0 {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(decision.ms_before_next.div_ceil(1000)));
        }
    }

    fn rate_limited(&self, _request: &Parts, _decision: &Decision, _caller: &Caller) -> Response {
        let body = json!({
            "status_code": 429,
            "statusCode": 429,
            "error": "rate_limit_exceeded",
            "message": "Rate limit exceeded",
            "mitigation": "Implement exponential backoff and retry with delays",
            "retryable": true,
            "details": { "reason": "Rate limit exceeded. Please retry after the current window resets." },
        });
        (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
    }

    fn fault_body(&self, status: StatusCode) -> Value {
        let code = match status.as_u16() {
            429 => "rate_limit_exceeded",
            404 => "not_found",
            s if s >= 500 => "internal_server_error",
            _ => "error",
        };
        json!({
            "status_code": status.as_u16(),
            "error": code,
            "message": status.canonical_reason().unwrap_or("error"),
            "retryable": matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error(),
        })
    }

    fn seed(&self, id: &str, state: Value) -> Result<Value, String> {
        self.store().seed(id, &state, &now_iso())
    }

    fn seeded(&self, id: &str) -> Option<Value> {
        self.store().raw(id)
    }

    fn unseed(&self, id: &str) -> bool {
        self.store().remove(id)
    }
}

async fn route_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "Route not found.")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed.")
}

async fn read(State(datagrid): State<Arc<Datagrid>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match datagrid.store().get(&id, teamspace(&headers).as_deref()) {
        Some(connection) => Json(connection.to_json()).into_response(),
        None => not_found(),
    }
}

/// `PATCH /connections/{id}` with `{"name": string}` (required). Choices where Datagrid
/// documents nothing: a non-JSON `Content-Type` is 415; a body that is not a JSON object,
/// a missing or non-string `name`, or a blank name is 400; other keys are ignored (the
/// schema does not forbid them).
async fn rename(
    State(datagrid): State<Arc<Datagrid>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/json.",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request body must be valid JSON.");
    };
    let Value::Object(fields) = body else {
        return bad_request("Request body must be a JSON object.");
    };
    let name = match fields.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name,
        Some(Value::String(_)) => return bad_request("name must not be empty."),
        Some(_) => return bad_request("name must be a string."),
        None => return bad_request("name is required."),
    };
    match datagrid.store().rename(&id, teamspace(&headers).as_deref(), name, &now_iso()) {
        Some(connection) => Json(connection).into_response(),
        None => not_found(),
    }
}

/// `GET /connections?limit=1..100 (default 20)&after=&before=&connector_id=`. Choices:
/// a bad `limit`, both cursors at once, or a cursor naming no visible connection is 400;
/// other query parameters are ignored.
async fn list(State(datagrid): State<Arc<Datagrid>>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let page = match parse_page(query.as_deref()) {
        Ok(page) => page,
        Err(message) => return bad_request(&message),
    };
    match datagrid.store().list(&page, teamspace(&headers).as_deref()) {
        Ok((data, has_more)) => Json(json!({ "object": "list", "data": data, "has_more": has_more })).into_response(),
        Err(ListError::UnknownCursor(id)) => bad_request(&format!("Unknown cursor: {id}.")),
    }
}

fn parse_page(raw: Option<&str>) -> Result<Page, String> {
    let mut page = Page { limit: 20, after: None, before: None, connector_id: None };
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "limit" => {
                page.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| format!("limit must be an integer between 1 and 100, got {value:?}."))?;
            }
            "after" => page.after = Some(value.into_owned()),
            "before" => page.before = Some(value.into_owned()),
            "connector_id" => page.connector_id = Some(value.into_owned()),
            _ => {}
        }
    }
    if page.after.is_some() && page.before.is_some() {
        return Err("Use either after or before, not both.".into());
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_paths_for_rate_limit_keys() {
        assert_eq!(route_template("/connections"), "/connections");
        assert_eq!(route_template("/connections/abc"), "/connections/{connection_id}");
        assert_eq!(route_template("/connections/a/b"), "other");
    }

    #[test]
    fn parses_list_queries() {
        assert_eq!(parse_page(None).unwrap().limit, 20);
        assert_eq!(parse_page(Some("limit=100&after=x")).unwrap().after.as_deref(), Some("x"));
        assert!(parse_page(Some("limit=0")).is_err());
        assert!(parse_page(Some("limit=101")).is_err());
        assert!(parse_page(Some("after=a&before=b")).is_err());
    }
}
