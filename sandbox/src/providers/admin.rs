//! The admin API under `<prefix>/_sandbox/` (docs/interfaces.md): seeding raw state, the request
//! journal, rate-limit configuration, faults and accepted tokens. Admin requests bypass the
//! pipeline: they are not journaled, authenticated, limited or faulted. Admin errors are
//! `{"message": ...}` with 400 or 404.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    faults::Fault,
    plugin::{Mounted, Provider},
    rate_limit::RateLimit,
    tokens::TokenConfig,
};

pub(super) fn router<P: Provider>(mounted: Arc<Mounted<P>>) -> Router {
    Router::new()
        .route(
            "/_sandbox/connections/{*id}",
            get(get_connection::<P>).put(put_connection::<P>).delete(delete_connection::<P>),
        )
        .route("/_sandbox/requests", get(get_requests::<P>).delete(delete_requests::<P>))
        .route("/_sandbox/requests/in-flight", get(get_in_flight::<P>))
        .route("/_sandbox/rate-limit", get(get_rate_limit::<P>).put(put_rate_limit::<P>).delete(delete_rate_limit::<P>))
        .route("/_sandbox/faults", get(get_faults::<P>).put(put_faults::<P>).delete(delete_faults::<P>))
        .route("/_sandbox/tokens", put(put_tokens::<P>).delete(delete_tokens::<P>))
        .with_state(mounted)
}

type Shared<P> = State<Arc<Mounted<P>>>;

fn bad_request(message: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": message.to_string() }))).into_response()
}

#[allow(
    clippy::result_large_err,
    reason = "an axum Response is the natural rejection of an HTTP check, built at most once per request"
)]
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid admin request body: {e}")))
}

async fn get_connection<P: Provider>(State(m): Shared<P>, Path(id): Path<String>) -> Response {
    match m.provider.seeded(&id) {
        Some(state) => Json(state).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({ "message": format!("no connection {id}") }))).into_response(),
    }
}

async fn put_connection<P: Provider>(State(m): Shared<P>, Path(id): Path<String>, body: Bytes) -> Response {
    let state: Value = match parse(&body) {
        Ok(state) => state,
        Err(response) => return response,
    };
    match m.provider.seed(&id, state) {
        Ok(stored) => Json(stored).into_response(),
        Err(message) => bad_request(message),
    }
}

async fn delete_connection<P: Provider>(State(m): Shared<P>, Path(id): Path<String>) -> StatusCode {
    if m.provider.unseed(&id) { StatusCode::NO_CONTENT } else { StatusCode::NOT_FOUND }
}

async fn get_requests<P: Provider>(State(m): Shared<P>) -> Response {
    Json(m.controls.journal.entries()).into_response()
}

async fn get_in_flight<P: Provider>(State(m): Shared<P>) -> Response {
    Json(m.controls.journal.in_flight()).into_response()
}

async fn delete_requests<P: Provider>(State(m): Shared<P>) -> StatusCode {
    m.controls.journal.clear();
    StatusCode::NO_CONTENT
}

async fn get_rate_limit<P: Provider>(State(m): Shared<P>) -> Response {
    let current = *m.controls.rate_override.read().unwrap_or_else(|e| e.into_inner());
    // `null` means the provider's documented defaults apply.
    Json(current).into_response()
}

/// Replaces the limit of every bucket and forgets the counts so far, so a test starts
/// from a fresh window.
async fn put_rate_limit<P: Provider>(State(m): Shared<P>, body: Bytes) -> Response {
    let limit: RateLimit = match parse(&body) {
        Ok(limit) => limit,
        Err(response) => return response,
    };
    if !limit.is_valid() {
        return bad_request("windowSeconds must be a positive number");
    }
    *m.controls.rate_override.write().unwrap_or_else(|e| e.into_inner()) = Some(limit);
    m.controls.limiter.clear();
    Json(limit).into_response()
}

async fn delete_rate_limit<P: Provider>(State(m): Shared<P>) -> StatusCode {
    *m.controls.rate_override.write().unwrap_or_else(|e| e.into_inner()) = None;
    m.controls.limiter.clear();
    StatusCode::NO_CONTENT
}

async fn get_faults<P: Provider>(State(m): Shared<P>) -> Response {
    Json(m.controls.faults.snapshot()).into_response()
}

/// Appends one fault (an object) or several (an array) to the queue.
async fn put_faults<P: Provider>(State(m): Shared<P>, body: Bytes) -> Response {
    let value: Value = match parse(&body) {
        Ok(value) => value,
        Err(response) => return response,
    };
    let list = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    let mut faults = Vec::with_capacity(list.len());
    for item in list {
        let fault: Fault = match serde_json::from_value(item) {
            Ok(fault) => fault,
            Err(e) => return bad_request(format!("invalid fault: {e}")),
        };
        if let Err(e) = fault.validate() {
            return bad_request(e);
        }
        faults.push(fault);
    }
    for fault in faults {
        m.controls.faults.push(fault);
    }
    Json(m.controls.faults.snapshot()).into_response()
}

async fn delete_faults<P: Provider>(State(m): Shared<P>) -> StatusCode {
    m.controls.faults.clear();
    StatusCode::NO_CONTENT
}

async fn put_tokens<P: Provider>(State(m): Shared<P>, body: Bytes) -> Response {
    match parse::<TokenConfig>(&body) {
        Ok(config) => {
            m.controls.tokens.set(config);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(response) => response,
    }
}

/// Back to accepting any token.
async fn delete_tokens<P: Provider>(State(m): Shared<P>) -> StatusCode {
    m.controls.tokens.set(TokenConfig::default());
    StatusCode::NO_CONTENT
}
