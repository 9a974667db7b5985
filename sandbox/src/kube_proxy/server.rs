//! The proxy's HTTP edge: `/_sandbox/` goes to the admin API; every other request is
//! journaled, may meet a queued fault (latency, an injected `Status`) or the armed watch
//! expiry, and is otherwise relayed upstream. The order (journal, fault, expiry, upstream) is
//! the emulator's, so a request answered by a fault is still counted.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::state::Proxy;
use super::watches;
use super::{admin, forward};
use crate::faults::Fault;
use crate::kube::api_error::ApiError;

/// Admin request bodies are small JSON documents.
const MAX_ADMIN_BODY: usize = 1024 * 1024;

pub fn router(proxy: Arc<Proxy>) -> Router {
    Router::new().fallback(handle).with_state(proxy)
}

async fn handle(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    tracing::debug!(method = %parts.method, %path, %query, "request");
    if let Some(admin_path) = path.strip_prefix("/_sandbox/") {
        let body = axum::body::to_bytes(body, MAX_ADMIN_BODY).await.unwrap_or_default();
        return admin::handle(&proxy, &parts.method, admin_path, &body);
    }
    let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    proxy.journal.record(parts.method.as_str(), &path, &query, user_agent);
    if let Some(fault) = proxy.faults.take(parts.method.as_str(), &path) {
        if let Some(ms) = fault.latency_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(code) = fault.status {
            return injected(&fault, code);
        }
    }
    let watch = watches::is_watch(&path, &query);
    if watch {
        let rv = watches::query_param(&query, "resourceVersion").unwrap_or_default();
        if proxy.watches.take_expiry(&path, &rv) {
            return watches::expired_answer(&rv);
        }
    }
    let stop = watch.then(|| proxy.watches.token());
    forward::forward(&proxy.upstream, parts, body, stop).await
}

/// The answer of a fault with a status: the emulator's injected `Status` (or the fault's raw
/// body), with its `Retry-After`.
fn injected(fault: &Fault, code: u16) -> Response {
    let body = match &fault.body {
        Some(raw) => raw.clone(),
        None => ApiError::Injected(code).status().to_string(),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(ra) = fault.retry_after_header().and_then(|v| HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, ra);
    }
    resp
}
