//! The Nango emulator (docs/providers.md, Nango; official `nango.yaml`): reading one
//! connection, the connection list, and the metadata merge (PATCH) and replace (POST), with
//! Nango's strict validation, its `{"error":{...}}` envelope, and its per-account
//! fixed-window limit.
//!
//! Choices where the sources leave the behaviour open:
//! - Validation messages are zod v3's (the `invalid_string`/"Invalid" of Nango's own
//!   integration test); clients should rely on `code` and `path`, not the wording.
//! - Malformed JSON with a JSON `Content-Type`: 400 `invalid_body` with a message.
//! - The secret key may be any bearer token (the real server wants a UUIDv4), so tests can
//!   use readable tokens; `PUT /_sandbox/tokens` narrows it.
//! - 401/415 answers carry no `X-RateLimit-*`: the limiter runs after authentication,
//!   keyed by account (ratelimit.middleware.ts), and the JSON check before it.
//! - One connection per `connection_id`; the known integrations are the
//!   `provider_config_key`s of the stored connections.
//! - `force_refresh=true` (or the other refresh flags) is 403 `forbidden`: the emulated
//!   key has `connections:read`, not `read_credentials`, so `credentials` is always `{}`.
//! - List: creation order; without `limit` every row; `page` counts pages of `limit` from 0.
//! - A PATCH on never-set metadata stores `{...null, ...body}`, so `{}` afterwards reads `{}`.
//! - Unknown routes and methods: 404 `not_found` (Express has no 405).

mod store;
mod validate;
mod zod;

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
use store::{Store, WriteMode};
use zod::Issue;

pub fn router() -> Router {
    mount(Nango::default())
}

/// The self-hosted default and the Free plan: 200 requests per minute (docs/providers.md, Nango).
const DEFAULT_LIMIT: RateLimit = RateLimit::per_minute(200);

#[derive(Default)]
struct Nango {
    store: Mutex<Store>,
}

impl Nango {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // Every store operation validates before it mutates, so a poisoned lock still
        // guards consistent data.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `{"error":{"code","message"}}`: Nango's `StdError` envelope.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

/// 400 with zod issues (`zodErrorToHTTP`).
fn invalid(code: &str, issues: Vec<Issue>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": { "code": code, "errors": issues } }))).into_response()
}

/// Authentication errors carry an empty `payload` (NangoError via errorManager).
fn auth_error(code: &str, message: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "error": { "message": message, "code": code, "payload": {} } })))
        .into_response()
}

fn is_write(parts: &Parts) -> bool {
    !matches!(parts.method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS)
}

impl Provider for Nango {
    fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/connections", get(list))
            // `GET /connections/metadata` is a read of the connection named "metadata", as in
            // Nango, where the `:connectionId` route also matches it.
            .route("/connections/metadata", get(get_named_metadata).patch(patch_metadata).post(post_metadata))
            .route("/connection/metadata", get(get_named_metadata).patch(patch_metadata).post(post_metadata))
            .route("/connections/{id}", get(get_connection))
            // Deprecated path, still served (docs/providers.md, Nango).
            .route("/connection/{id}", get(get_connection))
            .fallback(not_found_route)
            .method_not_allowed_fallback(not_found_route)
            .with_state(self)
    }

    /// json.middleware.ts runs before authentication on `/connection*`: a `Content-Type`
    /// that is present and not JSON gets 415.
    fn screen(&self, request: &Parts) -> Option<Response> {
        let content_type = request.headers.get(header::CONTENT_TYPE)?;
        let is_json = content_type.to_str().is_ok_and(|v| v.starts_with("application/json"));
        (!is_json).then(|| {
            error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_content_type",
                "Content-Type header must be application/json",
            )
        })
    }

    /// The secret key is any bearer token unless tokens are configured (the real server
    /// also insists on a UUIDv4 format; we do not, so tests may use readable tokens).
    fn authenticate(&self, request: &Parts, tokens: &Tokens) -> Result<Caller, Response> {
        let token = match bearer(&request.headers) {
            Bearer::Missing => {
                return Err(auth_error(
                    "missing_auth_header",
                    "Authentication failed. The request is missing the Authorization header.",
                ));
            }
            Bearer::Malformed => {
                return Err(auth_error(
                    "malformed_auth_header",
                    "Authentication failed. The Authorization header is malformed.",
                ));
            }
            Bearer::Token(token) => token,
        };
        match tokens.check(Some(token), is_write(request)) {
            Access::Granted { read_only } => Ok(Caller { credential: Some(token.to_owned()), read_only }),
            Access::ReadOnlyWrite => Err(error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Insufficient scope. Required: environment:connections:update",
            )),
            Access::Missing | Access::Unknown => Err(auth_error(
                "unknown_account",
                "Authentication failed. The provided authorization header does not match any account.",
            )),
        }
    }

    /// One bucket per account (here: per secret key) shared by every endpoint, fixed 60 s
    /// window (ratelimit.middleware.ts).
    fn bucket(&self, _request: &Parts, caller: &Caller) -> Option<Bucket> {
        Some(Bucket {
            key: format!("account-{}", caller.credential.as_deref().unwrap_or_default()),
            kind: WindowKind::Fixed,
            default: DEFAULT_LIMIT,
        })
    }

    /// `X-RateLimit-Reset` is `floor((now + msBeforeNext) / 1000)`, in unix seconds.
    fn rate_limit_headers(&self, decision: &Decision, _caller: &Caller, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_at.floor() as u64));
    }

    /// `Retry-After` is `floor(msBeforeNext / 1000)`, so it can be 0; the body names the
    /// method and path, and the code is the singular `too_many_request`.
    fn rate_limited(&self, request: &Parts, decision: &Decision, _caller: &Caller) -> Response {
        let body = json!({ "error": {
            "code": "too_many_request",
            "method": request.method.as_str(),
            "path": request.uri.path(),
        }});
        let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(decision.ms_before_next / 1000));
        response
    }

    fn fault_body(&self, status: StatusCode) -> Value {
        let code = match status.as_u16() {
            400 => "invalid_body",
            401 => "unknown_account",
            403 => "forbidden",
            404 => "not_found",
            429 => "too_many_request",
            _ => "server_error",
        };
        json!({ "error": { "code": code, "message": status.canonical_reason().unwrap_or("error") } })
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

async fn not_found_route() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "Route not found")
}

async fn get_named_metadata(state: State<Arc<Nango>>, query: RawQuery) -> Response {
    read_connection(&state, "metadata", query.0.as_deref())
}

async fn get_connection(state: State<Arc<Nango>>, Path(id): Path<String>, query: RawQuery) -> Response {
    read_connection(&state, &id, query.0.as_deref())
}

/// getConnection.ts: query, then path, then integration, then connection.
fn read_connection(nango: &Nango, id: &str, raw_query: Option<&str>) -> Response {
    let query = match validate::get_query(raw_query) {
        Ok(query) => query,
        Err(issues) => return invalid("invalid_query_params", issues),
    };
    if let Err(issues) = validate::connection_id_param(id) {
        return invalid("invalid_uri_params", issues);
    }
    if query.wants_credentials {
        // Refreshing or returning tokens needs `connections:read_credentials`, which the
        // emulated key does not have (docs/providers.md, Nango, getConnection.ts).
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Insufficient scope. Required: environment:connections:read_credentials",
        );
    }
    let mut store = nango.store();
    if !store.knows_integration(&query.provider_config_key) {
        return error(StatusCode::BAD_REQUEST, "unknown_provider_config", "Provider does not exists");
    }
    match store.fetch(id, &query.provider_config_key, &now_iso()) {
        Some(connection) => Json(connection).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "Failed to find connection"),
    }
}

async fn list(State(nango): State<Arc<Nango>>, RawQuery(query): RawQuery) -> Response {
    match validate::list_query(query.as_deref()) {
        Ok(query) => Json(json!({ "connections": nango.store().list(&query) })).into_response(),
        Err(issues) => invalid("invalid_query_params", issues),
    }
}

async fn patch_metadata(state: State<Arc<Nango>>, query: RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    write_metadata(&state, query.0.as_deref(), &headers, &body, WriteMode::Merge)
}

async fn post_metadata(state: State<Arc<Nango>>, query: RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    write_metadata(&state, query.0.as_deref(), &headers, &body, WriteMode::Replace)
}

/// patchMetadata.ts / postMetadata.ts: empty query, strict body, every id looked up, then
/// one write. Answers 200 (PATCH) or 201 (POST) echoing the request body.
fn write_metadata(
    nango: &Nango,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    mode: WriteMode,
) -> Response {
    if let Err(issues) = validate::empty_query(raw_query) {
        return invalid("invalid_query_params", issues);
    }
    let body = match json_body(headers, body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let write = match validate::metadata_body(&body) {
        Ok(write) => write,
        Err(issues) => return invalid("invalid_body", issues),
    };
    if let Err(missing) = nango.store().write_metadata(&write, mode, &now_iso()) {
        let mut message = format!(
            "Connection with connection id {missing} and provider config key {} not found. Please make sure the connection exists in the Nango dashboard",
            write.provider_config_key
        );
        if write.many {
            message.push_str(". No actions were taken on any of the connections as a result of this failure.");
        }
        return error(StatusCode::NOT_FOUND, "unknown_connection", &message);
    }
    let status = match mode {
        WriteMode::Merge => StatusCode::OK,
        WriteMode::Replace => StatusCode::CREATED,
    };
    (status, Json(body)).into_response()
}

/// The body as Express's `json()` parser leaves it: without a `Content-Type` (or empty) it
/// is `{}`; in strict mode only an object or array parses. How Nango answers malformed JSON
/// is not documented; we answer 400 `invalid_body` with a message (docs/providers.md, Nango).
#[allow(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of an HTTP check, built at most once per request"
)]
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    if !headers.contains_key(header::CONTENT_TYPE) || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ (Value::Object(_) | Value::Array(_))) => Ok(value),
        _ => Err(error(StatusCode::BAD_REQUEST, "invalid_body", "Invalid JSON in request body")),
    }
}
