//! Mielto emulator (docs/providers.md, Mielto, `openapi/mielto.yaml`), served under `/mielto`:
//! `GET` and `PUT /api/v1/connections/{connection_id}`.
//!
//! Mielto is a FastAPI app, so every error body is FastAPI's: `{"detail": "<text>"}` for
//! HTTP errors and `{"detail": [{"type","loc","msg","input","ctx"?}]}` for 422 validation
//! errors (see `validation`). Checks run in FastAPI's order (`fastapi.routing`): the route
//! (404/405, before anything else), decoding the JSON body (422 `json_invalid`, before any
//! dependency), the security dependency (401, and 403 for a read-only credential on a
//! write), request validation (422, query and body), then the handler (404 for an unknown
//! connection or one of another workspace). Authentication therefore happens in the
//! handlers, and `Provider::authenticate` only identifies the caller.
//!
//! Choices where the docs are silent:
//! - 401 `{"detail":"Not authenticated"}` without `Authorization: Bearer` or `X-API-Key`
//!   (FastAPI's `HTTPBearer` wording, with `WWW-Authenticate: Bearer`), 401
//!   `{"detail":"Invalid authentication credentials"}` for a credential that is not accepted,
//!   403 `{"detail":"Not enough permissions"}` for a read-only credential on PUT.
//! - No rate limit is documented, so none applies by default. When a test configures one
//!   (`PUT /_sandbox/rate-limit`) it is a fixed window per credential answering 429
//!   `{"detail":"Rate limit exceeded"}` with `Retry-After` (seconds, at least 1) and no
//!   `X-RateLimit-*` headers, since Mielto documents none.
//! - Unknown routes answer FastAPI's 404 `{"detail":"Not Found"}`, other methods on a known
//!   route 405 `{"detail":"Method Not Allowed"}`.

mod model;
mod python_json;
mod status;
mod validation;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::request::Parts,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use self::{
    model::{Connection, DEFAULT_WORKSPACE},
    validation::{DecodeError, ValidationFailure, decode_body, parse_bool_query, validate_update},
};
use super::{
    mounting::mount,
    plugin::{Caller, Provider},
    rate_limit::{Bucket, Decision, RateLimit, WindowKind},
    tokens::{self, Access, Bearer, Tokens},
};

/// The Mielto emulator's state: connections by id (ids are global; the workspace is an
/// attribute that scopes who can see them).
#[derive(Default)]
pub struct Mielto {
    connections: Mutex<HashMap<String, Connection>>,
}

/// The router to nest under `/mielto`: the API behind the common pipeline plus the admin API.
pub fn router() -> Router {
    mount(Mielto::default())
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "detail": text }))).into_response()
}

fn unprocessable(failure: &ValidationFailure) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(failure.body())).into_response()
}

fn not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Connection not found")
}

/// The workspace a request addresses: `X-Workspace-Id` when sent (it is optional in the
/// spec), else the workspace of the API key.
fn workspace(headers: &HeaderMap) -> String {
    headers
        .get("x-workspace-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| DEFAULT_WORKSPACE.to_string(), str::to_string)
}

/// The credential of the `DualAuthScheme`: `Authorization: Bearer <token>` first, else
/// `X-API-Key` ("alternative to Authorization header", docs/providers.md, Mielto).
/// `Err(())` when an Authorization header is present in another scheme and no API key is.
fn credential(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let bearer = tokens::bearer(headers);
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
    match (bearer, api_key) {
        (Bearer::Token(token), _) => Ok(Some(token.to_string())),
        (_, Some(key)) => Ok(Some(key)),
        (Bearer::Malformed, None) => Err(()),
        (Bearer::Missing, None) => Ok(None),
    }
}

impl Mielto {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `DualAuthScheme` dependency: `None` when the caller may go on, else its 401/403.
/// `authenticate` left the caller anonymous when the presented credential was refused.
fn authorize(headers: &HeaderMap, caller: &Caller, write: bool) -> Option<Response> {
    match (credential(headers), &caller.credential) {
        (Ok(None), _) => {
            let mut response = detail(StatusCode::UNAUTHORIZED, "Not authenticated");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(response)
        }
        (Err(()), _) | (Ok(Some(_)), None) => {
            Some(detail(StatusCode::UNAUTHORIZED, "Invalid authentication credentials"))
        }
        (Ok(Some(_)), Some(_)) if write && caller.read_only => {
            Some(detail(StatusCode::FORBIDDEN, "Not enough permissions"))
        }
        (Ok(Some(_)), Some(_)) => None,
    }
}

async fn get_connection(
    State(mielto): State<Arc<Mielto>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = authorize(&headers, &caller, false) {
        return refused;
    }
    // Starlette keeps the last value of a repeated query parameter.
    let query = query.unwrap_or_default();
    let flag = url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == "include_credentials").last();
    if let Some((name, raw)) = flag {
        // The flag is validated, but ConnectionRead has no credential fields to add.
        if let Err(failure) = parse_bool_query(&name, &raw) {
            return unprocessable(&failure);
        }
    }
    let ws = workspace(&headers);
    match mielto.lock().get(&id).filter(|c| c.workspace_id == ws) {
        Some(c) => Json(c.to_read()).into_response(),
        None => not_found(),
    }
}

async fn put_connection(
    State(mielto): State<Arc<Mielto>>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let raw = match decode_body(&body, content_type) {
        Ok(raw) => raw,
        Err(DecodeError::Invalid(failure)) => return unprocessable(&failure),
        Err(DecodeError::Unparseable) => {
            return detail(StatusCode::BAD_REQUEST, "There was an error parsing the body");
        }
    };
    if let Some(refused) = authorize(&headers, &caller, true) {
        return refused;
    }
    let update = match validate_update(raw) {
        Ok(update) => update,
        Err(failure) => return unprocessable(&failure),
    };
    let ws = workspace(&headers);
    let mut connections = mielto.lock();
    match connections.get_mut(&id).filter(|c| c.workspace_id == ws) {
        Some(c) => {
            c.apply(update, Utc::now());
            Json(c.to_read()).into_response()
        }
        None => not_found(),
    }
}

async fn route_not_found() -> Response {
    detail(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> Response {
    detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

impl Provider for Mielto {
    fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/api/v1/connections/{connection_id}", get(get_connection).put(put_connection))
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(route_not_found)
            .with_state(self)
    }

    /// Identifies the caller without rejecting anyone (see the module docs): a refused
    /// credential leaves the caller anonymous, and the handler's `authorize` answers.
    fn authenticate(&self, request: &Parts, tokens: &Tokens) -> Result<Caller, Response> {
        let write = !matches!(request.method, Method::GET | Method::HEAD);
        let Ok(Some(presented)) = credential(&request.headers) else {
            return Ok(Caller::default());
        };
        Ok(match tokens.check(Some(&presented), write) {
            Access::Granted { read_only } => Caller { credential: Some(presented), read_only },
            Access::ReadOnlyWrite => Caller { credential: Some(presented), read_only: true },
            Access::Missing | Access::Unknown => Caller::default(),
        })
    }

    /// One fixed window per credential, disabled (limit 0) unless a test configures one.
    fn bucket(&self, _request: &Parts, caller: &Caller) -> Option<Bucket> {
        Some(Bucket {
            key: caller.credential.clone().unwrap_or_default(),
            kind: WindowKind::Fixed,
            default: RateLimit { limit: 0, window_seconds: 60.0 },
        })
    }

    /// Mielto documents no rate-limit headers.
    fn rate_limit_headers(&self, _decision: &Decision, _caller: &Caller, _headers: &mut HeaderMap) {}

    fn rate_limited(&self, _request: &Parts, decision: &Decision, _caller: &Caller) -> Response {
        let mut response = detail(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        let seconds = decision.ms_before_next.div_ceil(1000).max(1);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }

    /// Starlette's `HTTPException` default: the reason phrase as `detail`.
    fn fault_body(&self, status: StatusCode) -> Value {
        json!({ "detail": status.canonical_reason().unwrap_or("Error") })
    }

    fn seed(&self, id: &str, state: Value) -> Result<Value, String> {
        let now = Utc::now();
        let mut connection = Connection::from_seed(id, &state, now).map_err(|e| e.to_string())?;
        let mut connections = self.lock();
        // Re-seeding keeps the original creation time unless the seed names one.
        if let Some(old) = connections.get(id)
            && state.get("created_at").is_none()
        {
            connection.created_at = old.created_at;
        }
        let read = connection.to_read();
        connections.insert(id.to_string(), connection);
        Ok(read)
    }

    fn seeded(&self, id: &str) -> Option<Value> {
        self.lock().get(id).map(Connection::to_read)
    }

    fn unseed(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }
}
