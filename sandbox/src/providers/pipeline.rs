//! The common request pipeline in front of every provider's API routes: journal, faults,
//! authentication, rate limit, then the handler (see `Provider` for the order).

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};

use super::{
    faults::Fault,
    plugin::{Mounted, Provider},
    server::ConnectionReset,
};

/// Request bodies above this are refused; no provider call of ours comes near it.
const MAX_BODY: usize = 4 * 1024 * 1024;

enum Outcome {
    Respond(Response),
    Reset(Option<ConnectionReset>),
}

pub(super) async fn run<P: Provider>(State(mounted): State<Arc<Mounted<P>>>, request: Request, next: Next) -> Response {
    let at = unix_now();
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let journal = &mounted.controls.journal;
    let _serving = journal.serving();
    let ticket = journal.begin(parts.method.as_str(), parts.uri.path(), parts.uri.query(), &body, at);
    match respond(&mounted, parts, body, next).await {
        Outcome::Respond(response) => {
            journal.finish(ticket, Some(response.status().as_u16()));
            response
        }
        Outcome::Reset(Some(handle)) => {
            journal.finish(ticket, None);
            handle.reset();
            // The connection task drops this future together with the connection.
            std::future::pending().await
        }
        Outcome::Reset(None) => {
            // Only reachable when the router is driven without our server (no socket).
            journal.finish(ticket, Some(500));
            (StatusCode::INTERNAL_SERVER_ERROR, "connection reset unavailable").into_response()
        }
    }
}

async fn respond<P: Provider>(mounted: &Mounted<P>, mut parts: Parts, body: Bytes, next: Next) -> Outcome {
    let provider = &*mounted.provider;
    let controls = &mounted.controls;
    if let Some(fault) = controls.faults.take(parts.method.as_str(), parts.uri.path()) {
        if let Some(ms) = fault.latency_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if fault.reset {
            return Outcome::Reset(parts.extensions.get::<ConnectionReset>().cloned());
        }
        if let Some(status) = fault.status {
            return Outcome::Respond(fault_response(provider, &fault, status));
        }
    }
    if let Some(response) = provider.screen(&parts) {
        return Outcome::Respond(response);
    }
    let caller = match provider.authenticate(&parts, &controls.tokens) {
        Ok(caller) => caller,
        Err(response) => return Outcome::Respond(response),
    };
    let rate_override = *controls.rate_override.read().unwrap_or_else(|e| e.into_inner());
    let decision = provider.bucket(&parts, &caller).and_then(|bucket| {
        let limit = rate_override.unwrap_or(bucket.default);
        (limit.limit > 0).then(|| controls.limiter.hit(&bucket, limit, unix_now()))
    });
    if let Some(decision) = decision.filter(|d| !d.allowed) {
        let mut response = provider.rate_limited(&parts, &decision, &caller);
        provider.rate_limit_headers(&decision, &caller, response.headers_mut());
        return Outcome::Respond(response);
    }
    parts.extensions.insert(caller.clone());
    let mut response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if let Some(decision) = decision {
        provider.rate_limit_headers(&decision, &caller, response.headers_mut());
    }
    Outcome::Respond(response)
}

fn fault_response<P: Provider>(provider: &P, fault: &Fault, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match &fault.body {
        Some(raw) => raw.clone(),
        None => provider.fault_body(status).to_string(),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(value) = fault.retry_after_header().and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::RETRY_AFTER, value);
    }
    response
}

/// Now as unix seconds (fractional).
pub(super) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
