//! Are.na v3 emulator (docs/providers.md, Are.na, `openapi/arena.json`), served under `/arena`:
//! `GET` and `PUT /v3/connections/{id}`.
//!
//! Order of checks, following a Rails app that validates requests against its OpenAPI file
//! in middleware ("All parameters are validated against this OpenAPI specification") before
//! the controller authenticates and loads the record:
//! 1. rate limit (the framework's pipeline; every answer carries `X-RateLimit-*`);
//! 2. the `{id}` is an integer, the PUT body matches the request schema (400);
//! 3. authentication: an unknown token is 401 on any request, a PUT without a token is 401,
//!    a read-scoped token's PUT is 403 (documented: "write operations will return 403");
//! 4. the connection exists (404);
//! 5. the documented rules the schema cannot express, on the merged result (422, see
//!    `metadata`), then the merge is stored. A rejected PUT stores nothing.
//!
//! Authentication is done here rather than in `Provider::authenticate` so that 401 and 403
//! answers also pass through the rate limiter and carry the rate-limit headers, which the
//! docs promise "in every response".
//!
//! Caching (documented): a 200 carries a weak `ETag` and `Cache-Control` (`private,
//! no-cache` when authenticated, `max-age=300, public` otherwise); a GET whose
//! `If-None-Match` matches answers 304 without a body (and still counts toward the limit).
//! Error answers carry `Cache-Control: no-cache` and no `ETag`.
//!
//! Choices where the docs are silent ([I] in docs/providers.md, Are.na):
//! - Every token is a `free`-tier account (120/min, one fixed window per token); anonymous
//!   callers share one `guest` window (30/min). An admin override sets the limit and window
//!   of both. `Retry-After` and `retry_after` are the whole seconds until the window resets
//!   (at least 1); `X-RateLimit-Reset` is that instant in unix seconds, rounded up.
//! - A token the server does not accept is a 401 even on GET, where auth is optional: a
//!   client with a wrong token should find out, not silently read as a guest.
//! - Metadata never set reads `null`; after a PUT that deletes every key it reads `{}`.
//! - Seeded connections are connected by a fixed sandbox user unless the seed names one.

mod errors;
mod metadata;
mod model;

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
};

use axum::{
    Extension, Router,
    body::{Body, Bytes},
    extract::{OriginalUri, Path, State},
    http::{Uri, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::Value;

use self::{
    errors::Tier,
    metadata::Rejection,
    model::{Connection, parse_id},
};
use super::{
    mounting::mount,
    plugin::{Caller, Provider},
    rate_limit::{Bucket, Decision, RateLimit, WindowKind},
    tokens::{self, Access, Bearer, Tokens},
};

/// The Are.na emulator's state: connections by integer id.
#[derive(Default)]
pub struct Arena {
    connections: Mutex<HashMap<i64, Connection>>,
}

/// The router to nest under `/arena`: the API behind the common pipeline plus the admin API.
pub fn router() -> Router {
    mount(Arena::default())
}

impl Arena {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Connection>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How the request authenticated, as far as the handlers need to know.
enum Auth {
    Guest,
    /// A bearer token was sent but is not accepted.
    Invalid,
    Token {
        read_only: bool,
    },
}

/// `authenticate` never rejects (see the module docs); a presented token that did not become
/// the caller's credential was refused.
fn auth(headers: &HeaderMap, caller: &Caller) -> Auth {
    match (&caller.credential, headers.contains_key(header::AUTHORIZATION)) {
        (Some(_), _) => Auth::Token { read_only: caller.read_only },
        (None, true) => Auth::Invalid,
        (None, false) => Auth::Guest,
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    json_text_response(status, body.to_string())
}

fn json_text_response(status: StatusCode, text: String) -> Response {
    let mut response = (status, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

fn error(status: StatusCode, body: &Value) -> Response {
    let mut response = json_response(status, body);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn rejection(r: Rejection) -> Response {
    match r {
        Rejection::BadRequest { message, errors } => {
            error(StatusCode::BAD_REQUEST, &errors::envelope(400, &message, &errors))
        }
        Rejection::Unprocessable { message, errors } => {
            error(StatusCode::UNPROCESSABLE_ENTITY, &errors::envelope(422, &message, &errors))
        }
    }
}

/// A 200 with the documented caching headers, or a 304 for a matching `If-None-Match`.
fn ok(body: &Value, authenticated: bool, request_headers: &HeaderMap, conditional: bool) -> Response {
    let text = body.to_string();
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    let etag = format!("W/\"{:016x}\"", hasher.finish());
    let matches = conditional
        && request_headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag.trim_start_matches("W/"));
    let mut response = if matches {
        Response::builder().status(StatusCode::NOT_MODIFIED).body(Body::empty()).unwrap_or_default()
    } else {
        json_text_response(StatusCode::OK, text)
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    let cache = if authenticated { "private, no-cache" } else { "max-age=300, public" };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// `_links.self.href`: the absolute URL of the connection as this client reaches it (the
/// real API answers `https://api.are.na/v3/connections/{id}`; here the base URL is
/// `http://HOST/arena`).
fn self_href(headers: &HeaderMap, original: &Uri, nested: &Uri, id: i64) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let prefix = original.path().strip_suffix(nested.path()).unwrap_or("");
    format!("http://{host}{prefix}/v3/connections/{id}")
}

/// Why an `{id}` segment does not resolve to a stored connection.
enum Unresolved {
    /// Not an integer: 400 (parameter validation).
    BadId,
    /// No such connection: 404.
    NotFound,
}

impl Unresolved {
    fn respond(self, raw: &str) -> Response {
        match self {
            Unresolved::BadId => error(StatusCode::BAD_REQUEST, &errors::invalid_id(raw)),
            Unresolved::NotFound => error(StatusCode::NOT_FOUND, &errors::not_found()),
        }
    }
}

/// Resolves the `{id}` segment to a stored connection.
fn lookup(arena: &Arena, raw: &str) -> Result<(i64, Connection), Unresolved> {
    let id = parse_id(raw).map_err(|()| Unresolved::BadId)?;
    id.and_then(|id| arena.lock().get(&id).cloned().map(|c| (id, c))).ok_or(Unresolved::NotFound)
}

async fn get_connection(
    State(arena): State<Arc<Arena>>,
    Path(raw_id): Path<String>,
    Extension(caller): Extension<Caller>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if parse_id(&raw_id).is_err() {
        return error(StatusCode::BAD_REQUEST, &errors::invalid_id(&raw_id));
    }
    let can_remove = match auth(&headers, &caller) {
        Auth::Invalid => return error(StatusCode::UNAUTHORIZED, &errors::unauthorized(true)),
        Auth::Guest => false,
        Auth::Token { read_only } => !read_only,
    };
    let (id, connection) = match lookup(&arena, &raw_id) {
        Ok(found) => found,
        Err(unresolved) => return unresolved.respond(&raw_id),
    };
    let body = connection.to_response(&self_href(&headers, &original, &uri, id), can_remove);
    ok(&body, caller.credential.is_some(), &headers, true)
}

async fn put_connection(
    State(arena): State<Arc<Arena>>,
    Path(raw_id): Path<String>,
    Extension(caller): Extension<Caller>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if parse_id(&raw_id).is_err() {
        return error(StatusCode::BAD_REQUEST, &errors::invalid_id(&raw_id));
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let patch = match metadata::parse_put_body(&body, content_type) {
        Ok(patch) => patch,
        Err(r) => return rejection(r),
    };
    match auth(&headers, &caller) {
        Auth::Guest => return error(StatusCode::UNAUTHORIZED, &errors::unauthorized(false)),
        Auth::Invalid => return error(StatusCode::UNAUTHORIZED, &errors::unauthorized(true)),
        Auth::Token { read_only: true } => {
            return error(StatusCode::FORBIDDEN, &errors::forbidden());
        }
        Auth::Token { read_only: false } => {}
    }
    let id = match parse_id(&raw_id) {
        Ok(Some(id)) => id,
        Ok(None) => return Unresolved::NotFound.respond(&raw_id),
        Err(()) => return Unresolved::BadId.respond(&raw_id),
    };
    // Validate and apply under one lock, so a rejected PUT leaves nothing behind.
    let mut connections = arena.lock();
    let Some(connection) = connections.get_mut(&id) else {
        return Unresolved::NotFound.respond(&raw_id);
    };
    if let Some(patch) = patch {
        match metadata::merge(connection.metadata.as_ref(), &patch) {
            Ok(merged) => connection.metadata = Some(merged),
            Err(r) => return rejection(r),
        }
    }
    let body = connection.to_response(&self_href(&headers, &original, &uri, id), true);
    ok(&body, true, &headers, false)
}

async fn route_not_found() -> Response {
    error(StatusCode::NOT_FOUND, &errors::envelope(404, "The resource you are looking for does not exist.", &[]))
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, &errors::envelope(405, "The method is not allowed for this resource.", &[]))
}

/// The tier of a request: `free` for a presented bearer token (the sandbox's accounts are
/// free accounts), `guest` otherwise.
fn tier_of(caller: &Caller) -> Tier {
    if caller.credential.is_some() { Tier::Free } else { Tier::Guest }
}

fn seconds_header(seconds: f64) -> HeaderValue {
    if seconds.fract() == 0.0 {
        HeaderValue::from(seconds as u64)
    } else {
        HeaderValue::from_str(&seconds.to_string()).unwrap_or(HeaderValue::from_static("60"))
    }
}

impl Provider for Arena {
    fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v3/connections/{id}", get(get_connection).put(put_connection))
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(route_not_found)
            .with_state(self)
    }

    /// Never rejects: see the module docs. A refused token leaves the caller anonymous, and
    /// the handler answers 401 because an Authorization header was sent.
    fn authenticate(&self, request: &Parts, tokens: &Tokens) -> Result<Caller, Response> {
        let write = !matches!(request.method, Method::GET | Method::HEAD);
        let token = match tokens::bearer(&request.headers) {
            Bearer::Token(token) => Some(token),
            Bearer::Missing | Bearer::Malformed => None,
        };
        Ok(match tokens.check(token, write) {
            Access::Granted { read_only } => Caller { credential: token.map(str::to_string), read_only },
            Access::ReadOnlyWrite => Caller { credential: token.map(str::to_string), read_only: true },
            Access::Missing | Access::Unknown => Caller::default(),
        })
    }

    /// One fixed per-minute window per token at the `free` tier's 120, and one shared
    /// window for anonymous callers at the `guest` tier's 30 (all sandbox clients come from
    /// loopback, so per-IP and shared are the same).
    fn bucket(&self, _request: &Parts, caller: &Caller) -> Option<Bucket> {
        let tier = tier_of(caller);
        Some(Bucket {
            key: caller.credential.as_ref().map_or_else(|| "guest".to_string(), |t| format!("token:{t}")),
            kind: WindowKind::Fixed,
            default: RateLimit::per_minute(tier.per_minute()),
        })
    }

    /// `X-RateLimit-Limit`, `-Tier`, `-Window`, `-Reset` (unix seconds); deliberately no
    /// `X-RateLimit-Remaining`, which Are.na does not document.
    fn rate_limit_headers(&self, decision: &Decision, caller: &Caller, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
        headers.insert("x-ratelimit-tier", HeaderValue::from_static(tier_of(caller).name()));
        headers.insert("x-ratelimit-window", seconds_header(decision.window_seconds));
        headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset_at.ceil() as u64));
    }

    /// The distinct `RateLimitError` body with `Retry-After` (whole seconds, at least 1).
    fn rate_limited(&self, _request: &Parts, decision: &Decision, caller: &Caller) -> Response {
        let tier = tier_of(caller);
        let retry_after = decision.ms_before_next.div_ceil(1000).max(1);
        let body = errors::rate_limited(tier, decision.limit, decision.window_seconds, retry_after);
        let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        response
    }

    /// The generic envelope with the status's reason phrase.
    fn fault_body(&self, status: StatusCode) -> Value {
        errors::envelope(status.as_u16(), status.canonical_reason().unwrap_or("Error"), &[])
    }

    fn seed(&self, id: &str, state: Value) -> Result<Value, String> {
        let id = match parse_id(id) {
            Ok(Some(id)) => id,
            _ => return Err(format!("Are.na connection ids are integers, got {id:?}")),
        };
        let connection = Connection::from_seed(id, &state, Utc::now()).map_err(|e| e.to_string())?;
        let raw = connection.to_raw();
        self.lock().insert(id, connection);
        Ok(raw)
    }

    fn seeded(&self, id: &str) -> Option<Value> {
        let id = parse_id(id).ok().flatten()?;
        self.lock().get(&id).map(Connection::to_raw)
    }

    fn unseed(&self, id: &str) -> bool {
        parse_id(id).ok().flatten().is_some_and(|id| self.lock().remove(&id).is_some())
    }
}
