//! The proxy's `/_sandbox/` admin API: the Kubernetes emulator's endpoints with the
//! emulator's semantics and answer shapes (docs/interfaces.md), so a test written against the
//! emulator's admin API runs unchanged against the proxy in front of a real API server.
//! The emulator's RBAC switch and token minting have no equivalent here: the real server
//! always authorizes, and ServiceAccount tokens come from its TokenRequest API.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::state::Proxy;
use super::watches::Expiry;
use crate::faults;

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Answer `method /_sandbox/{path}`.
pub fn handle(proxy: &Proxy, method: &Method, path: &str, body: &[u8]) -> Response {
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    let bad = |msg: String| json_response(StatusCode::BAD_REQUEST, &json!({"error": msg}));
    match (method, path.trim_end_matches('/')) {
        (&Method::POST, "watches/drop") => {
            proxy.watches.drop_all();
            ok(json!({"dropped": true}))
        }
        (&Method::POST, "watches/expire") => {
            let expiry = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(Expiry::default())
            } else {
                serde_json::from_slice::<Expiry>(body)
            };
            match expiry {
                Ok(expiry) => {
                    proxy.watches.arm_expiry(expiry);
                    ok(json!({"expireNext": true}))
                }
                Err(e) => bad(format!("watches/expire: {e}")),
            }
        }
        (&Method::GET, "requests") => ok(proxy.journal.snapshot()),
        (&Method::DELETE, "requests") => {
            proxy.journal.clear();
            ok(json!({}))
        }
        (&Method::GET, "faults") => ok(proxy.faults.snapshot()),
        (&Method::DELETE, "faults") => {
            proxy.faults.clear();
            ok(json!({}))
        }
        (&Method::PUT, "faults") => {
            let parsed = match faults::parse_body(body) {
                Ok(f) => f,
                Err(e) => return bad(e.to_string()),
            };
            // Answers go through axum, which cannot cut a connection mid-request (as in the
            // emulator).
            if parsed.iter().any(|f| f.reset) {
                return bad("reset is not supported by the kube proxy".into());
            }
            for f in parsed {
                proxy.faults.push(f);
            }
            ok(proxy.faults.snapshot())
        }
        (_, "rbac" | "tokens") => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "the kube proxy relays a real API server, which always enforces RBAC; mint ServiceAccount tokens with its TokenRequest API (kubectl create token)"}),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no admin endpoint {method} /_sandbox/{path}")}),
        ),
    }
}
