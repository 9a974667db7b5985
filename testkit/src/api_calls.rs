//! Every Kubernetes API call a kube-rs client makes, with the status code the API server
//! answered, recorded by a tower layer inside the client's own stack. It sees what the
//! server said to *this* client's credentials (a ServiceAccount's 403s, say), which a
//! proxy in front of the server, authenticating as the admin, cannot.
//!
//! Each call is described in RBAC's terms (verb, API group, resource with its subresource,
//! namespace, name), so a test can compare the calls with the rules of a Role.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// One request and the API server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiCall {
    /// RBAC's verb: get, list, watch, create, update, patch, delete, deletecollection (the
    /// lower-cased HTTP method for a non-resource path).
    pub verb: String,
    /// The API group ("" for the core group).
    pub group: String,
    /// The resource, with its subresource as RBAC names it (`connections/status`); the path
    /// itself for a non-resource request (`/version`).
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The HTTP status; `None` when no response came (a transport error).
    pub code: Option<u16>,
}

impl ApiCall {
    /// The call a request is, in RBAC's terms (its `code` not yet known).
    pub fn of(method: &http::Method, uri: &http::Uri) -> ApiCall {
        let segments: Vec<&str> = uri.path().trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => ("", rest),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => (*group, rest),
            _ => {
                return ApiCall {
                    verb: method.as_str().to_ascii_lowercase(),
                    group: String::new(),
                    resource: uri.path().to_string(),
                    namespace: None,
                    name: None,
                    code: None,
                };
            }
        };
        // `namespaces/NS/<resource>...`; `namespaces/NAME` alone is the Namespace itself.
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let name = rest.get(1).map(|s| s.to_string());
        let resource = match rest.get(2) {
            Some(sub) => format!("{}/{sub}", rest[0]),
            None => rest[0].to_string(),
        };
        let watching = uri.query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        let verb = match (method.as_str(), name.is_some()) {
            ("GET", _) if watching => "watch",
            ("GET", true) => "get",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            (other, _) => {
                return ApiCall {
                    verb: other.to_ascii_lowercase(),
                    group: group.to_string(),
                    resource,
                    namespace,
                    name,
                    code: None,
                };
            }
        };
        ApiCall { verb: verb.to_string(), group: group.to_string(), resource, namespace, name, code: None }
    }

    /// Refused by authentication (401) or authorization (403).
    pub fn denied(&self) -> bool {
        matches!(self.code, Some(401 | 403))
    }
}

impl std::fmt::Display for ApiCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "core" } else { &self.group };
        write!(f, "{} {}/{}", self.verb, group, self.resource)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns}")?;
        }
        if let Some(name) = &self.name {
            write!(f, " named {name}")?;
        }
        match self.code {
            Some(code) => write!(f, ": {code}"),
            None => write!(f, ": no response"),
        }
    }
}

/// The calls recorded so far (shared by the layer and the test).
#[derive(Clone, Debug, Default)]
pub struct ApiCalls(Arc<Mutex<Vec<ApiCall>>>);

impl ApiCalls {
    /// The layer to add to a `kube::client::ClientBuilder`.
    pub fn layer(&self) -> RecordLayer {
        RecordLayer { calls: self.clone() }
    }

    /// Every call, oldest first (a watch is recorded when its response headers arrive).
    pub fn calls(&self) -> Vec<ApiCall> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The calls refused with 401 or 403.
    pub fn denied(&self) -> Vec<ApiCall> {
        self.calls().into_iter().filter(ApiCall::denied).collect()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, call: ApiCall) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(call);
    }
}

/// A `tower::Layer` recording into [`ApiCalls`].
#[derive(Clone, Debug)]
pub struct RecordLayer {
    calls: ApiCalls,
}

impl<S> tower::Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record { inner, calls: self.calls.clone() }
    }
}

/// The service of [`RecordLayer`].
#[derive(Clone, Debug)]
pub struct Record<S> {
    inner: S,
    calls: ApiCalls,
}

impl<S, B, R> tower::Service<http::Request<B>> for Record<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut call = ApiCall::of(request.method(), request.uri());
        let calls = self.calls.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            call.code = result.as_ref().ok().map(|r| r.status().as_u16());
            calls.push(call);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ApiCall;

    fn of(method: &str, uri: &str) -> (String, String, String, Option<String>, Option<String>) {
        let c = ApiCall::of(&method.parse().unwrap(), &uri.parse().unwrap());
        (c.verb, c.group, c.resource, c.namespace, c.name)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn requests_read_as_rbac_attributes() {
        let g = "connection-operator.dev";
        assert_eq!(
            of("GET", "/apis/connection-operator.dev/v1alpha1/connections?limit=500"),
            ("list".into(), g.into(), "connections".into(), None, None)
        );
        assert_eq!(
            of("GET", "/apis/connection-operator.dev/v1alpha1/namespaces/t/connections?watch=true&resourceVersion=1"),
            ("watch".into(), g.into(), "connections".into(), s("t"), None)
        );
        assert_eq!(
            of("PATCH", "/apis/connection-operator.dev/v1alpha1/namespaces/t/connections/c/status?fieldManager=x"),
            ("patch".into(), g.into(), "connections/status".into(), s("t"), s("c"))
        );
        assert_eq!(
            of("GET", "/api/v1/namespaces/t/secrets/s"),
            ("get".into(), "".into(), "secrets".into(), s("t"), s("s"))
        );
        assert_eq!(of("GET", "/api/v1/namespaces/t"), ("get".into(), "".into(), "namespaces".into(), None, s("t")));
        assert_eq!(
            of("POST", "/apis/events.k8s.io/v1/namespaces/t/events"),
            ("create".into(), "events.k8s.io".into(), "events".into(), s("t"), None)
        );
        assert_eq!(
            of("DELETE", "/api/v1/namespaces/t/secrets"),
            ("deletecollection".into(), "".into(), "secrets".into(), s("t"), None)
        );
        assert_eq!(of("GET", "/version"), ("get".into(), "".into(), "/version".into(), None, None));
    }
}
