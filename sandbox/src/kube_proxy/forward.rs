//! Relaying one Kubernetes API request upstream and its answer back: same method, path, query,
//! end-to-end headers and body, streamed both ways (a watch is a long-lived chunked response;
//! each chunk is passed on as it arrives). `Authorization` is the client's when it sent one,
//! else the upstream kubeconfig's identity (see `upstream`).
//!
//! Not relayed: hop-by-hop headers (RFC 9110 §7.6.1) and `Host`; protocol upgrades (`kubectl
//! exec`, `port-forward`), which nothing this proxy serves needs (no kubelets run).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::BodyExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::upstream::{Upstream, error_chain};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// de-facto `Proxy-Connection` and `Keep-Alive`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The end-to-end headers of a message: without hop-by-hop ones, nor those its `Connection`
/// header names.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Send the request upstream and relay the answer. `watch` is the drop token of a watch
/// request, `None` for any other request.
pub async fn forward(upstream: &Upstream, parts: Parts, body: Body, watch: Option<CancellationToken>) -> Response {
    let path_and_query = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let own_credentials = parts.headers.contains_key(header::AUTHORIZATION);
    let mut headers = end_to_end(&parts.headers);
    headers.remove(header::HOST);
    if !own_credentials && let Some(auth) = upstream.authorization() {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3);
    // sending an empty chunked one would change the request.
    let has_body =
        parts.headers.contains_key(header::CONTENT_LENGTH) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    let mut request =
        upstream.client(own_credentials).request(parts.method, upstream.url(path_and_query)).headers(headers);
    if has_body {
        request = request.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => return unreachable(&e),
    };
    let status = answer.status();
    let headers = end_to_end(answer.headers());
    let json_lines = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let upstream_body = reqwest::Body::from(answer);
    let body = match watch {
        Some(stop) => Body::from_stream(relay(upstream_body.into_data_stream(), stop, json_lines)),
        None => Body::new(upstream_body),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The answer when the upstream server cannot be reached or fails mid-request: 503 with a
/// `Status`, as kube-apiserver's own proxying answers an unreachable backend, so clients
/// treat it as retryable.
fn unreachable(e: &reqwest::Error) -> Response {
    let chain = error_chain(e);
    tracing::warn!(error = %chain, "upstream request failed");
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("kube-proxy: error trying to reach the API server: {chain}"),
        "reason": "ServiceUnavailable",
        "code": 503,
    });
    let mut response = Response::new(Body::from(status.to_string()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// State of a relayed watch body.
struct Relay<S> {
    data: S,
    stop: CancellationToken,
    /// The stream is JSON, one event per line.
    lines: bool,
    /// The last byte passed on was not the end of a line.
    mid_line: bool,
    /// A drop was asked for: end at the next event boundary.
    stopping: bool,
}

/// Pass a watch body on chunk by chunk until it ends or `stop` is cancelled. A JSON stream
/// stops only at a line end, so a dropped watch never ends inside an event (the client would
/// see a decoding error instead of an ended watch); other encodings stop between chunks.
fn relay<S, E>(data: S, stop: CancellationToken, lines: bool) -> impl Stream<Item = Result<Bytes, E>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: Send,
{
    let state = Relay { data, stop, lines, mid_line: false, stopping: false };
    futures::stream::unfold(state, |mut r| async move {
        loop {
            if r.stopping && !r.mid_line {
                return None;
            }
            let next = if r.stopping {
                r.data.next().await
            } else {
                tokio::select! {
                    biased;
                    _ = r.stop.cancelled() => {
                        r.stopping = true;
                        continue;
                    }
                    next = r.data.next() => next,
                }
            };
            let mut chunk = match next? {
                Ok(c) => c,
                Err(e) => return Some((Err(e), r)),
            };
            if chunk.is_empty() {
                continue;
            }
            if r.lines {
                if r.stopping {
                    if let Some(end) = chunk.iter().position(|b| *b == b'\n') {
                        chunk.truncate(end + 1);
                        r.mid_line = false;
                    }
                } else {
                    r.mid_line = chunk.last() != Some(&b'\n');
                }
            }
            return Some((Ok(chunk), r));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_headers_and_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, X-Trace"));
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        let forwarded = end_to_end(&h);
        let mut names: Vec<&str> = forwarded.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "content-type"]);
    }

    async fn collect(chunks: Vec<&'static str>, stop_after: usize, lines: bool) -> String {
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, ()>>(16);
        let mut relayed = Box::pin(relay(tokio_stream::wrappers::ReceiverStream::new(rx), stop.clone(), lines));
        let mut out = String::new();
        for (i, c) in chunks.iter().enumerate() {
            if i == stop_after {
                stop.cancel();
            }
            tx.send(Ok(Bytes::from_static(c.as_bytes()))).await.expect("send");
            // Give the relay the chunk (or the cancellation) before the next one.
            match tokio::time::timeout(std::time::Duration::from_millis(200), relayed.next()).await {
                Ok(Some(Ok(b))) => out.push_str(std::str::from_utf8(&b).expect("utf8")),
                Ok(Some(Err(()))) => panic!("error"),
                Ok(None) => return out,
                Err(_) => {}
            }
        }
        out
    }

    #[tokio::test]
    async fn a_dropped_json_watch_ends_at_a_line_end() {
        // The drop lands while the second event is half sent: its rest is relayed, then the end.
        let out = collect(vec!["{\"a\":1}\n{\"b\"", ":2}\n{\"c\":3}\n", "{\"d\":4}\n"], 1, true).await;
        assert_eq!(out, "{\"a\":1}\n{\"b\":2}\n");
        // Between events: nothing more.
        let out = collect(vec!["{\"a\":1}\n", "{\"b\":2}\n"], 1, true).await;
        assert_eq!(out, "{\"a\":1}\n");
    }
}
