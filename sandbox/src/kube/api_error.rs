//! Errors of the API server, rendered as `meta.k8s.io/v1` `Status` objects exactly the way
//! kube-apiserver renders `k8s.io/apimachinery/pkg/api/errors` (`StatusError`): the HTTP
//! code, the `reason`, a `message` clients print verbatim (kubectl shows it as
//! `Error from server (Reason): message`) and `details` naming the object.

use serde_json::{Value, json};

use super::field_error::FieldError;

/// A resource as it appears in error messages: `secrets` for the core group,
/// `connections.connection-operator.dev` otherwise (apimachinery's `GroupResource.String()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A kind as it appears in `Invalid` messages: `Secret`, `Connection.connection-operator.dev`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl std::fmt::Display for GroupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() { write!(f, "{}", self.kind) } else { write!(f, "{}.{}", self.kind, self.group) }
    }
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: GroupResource, name: String },
    /// A URL under a served group (or the core group) that names no version or resource.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    /// A URL no API group serves: kube-apiserver's mux answers a plain-text
    /// `404 page not found` (rendered by the HTTP layer, not as a Status).
    #[error("404 page not found")]
    PageNotFound,
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: GroupResource, name: String },
    /// Optimistic-concurrency and precondition failures.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {detail}")]
    Conflict { resource: GroupResource, name: String, detail: String },
    /// Server-side apply conflicts carry their own message and causes.
    #[error("{message}")]
    ApplyConflict { message: String, causes: Vec<Value> },
    #[error("{}", invalid_message(.kind, .name, .causes))]
    Invalid { kind: GroupKind, name: String, causes: Vec<FieldError> },
    #[error("{0}")]
    BadRequest(String),
    /// 422 from a JSON patch that could not be applied (`NewGenericServerResponse`): a fixed
    /// message and empty details.
    #[error("{message}")]
    Unprocessable { message: String },
    #[error("{message}")]
    Forbidden { resource: GroupResource, name: String, message: String },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// Authentication failed (no or unknown bearer token while RBAC is enforced).
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The requested resourceVersion is older than the retained history.
    #[error("{0}")]
    Expired(String),
    /// A fault injected through `/_sandbox/faults`.
    #[error("injected fault")]
    Injected(u16),
}

/// apimachinery's `NewInvalid`: one cause is inlined, several are bracketed.
fn invalid_message(kind: &GroupKind, name: &str, causes: &[FieldError]) -> String {
    let rendered: Vec<String> = causes.iter().map(ToString::to_string).collect();
    match rendered.as_slice() {
        [] => format!("{kind} \"{name}\" is invalid"),
        [one] => format!("{kind} \"{name}\" is invalid: {one}"),
        many => format!("{kind} \"{name}\" is invalid: [{}]", many.join(", ")),
    }
}

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound { .. } | Self::NoSuchPath | Self::PageNotFound => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } | Self::ApplyConflict { .. } => 409,
            Self::Invalid { .. } | Self::Unprocessable { .. } => 422,
            Self::BadRequest(_) => 400,
            Self::Forbidden { .. } => 403,
            Self::Unauthorized => 401,
            Self::MethodNotAllowed => 405,
            Self::UnsupportedMediaType(_) => 415,
            Self::Expired(_) => 410,
            Self::Injected(code) => *code,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } | Self::NoSuchPath | Self::PageNotFound => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } | Self::ApplyConflict { .. } => "Conflict",
            Self::Invalid { .. } | Self::Unprocessable { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Forbidden { .. } => "Forbidden",
            Self::Unauthorized => "Unauthorized",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Expired(_) => "Expired",
            Self::Injected(code) => reason_for_code(*code),
        }
    }

    fn details(&self) -> Option<Value> {
        let named = |r: &GroupResource, name: &str| {
            // `StatusDetails.name` is omitempty: a forbidden list names no object.
            let mut d =
                if name.is_empty() { json!({"kind": r.resource}) } else { json!({"name": name, "kind": r.resource}) };
            if !r.group.is_empty() {
                d["group"] = json!(r.group);
            }
            d
        };
        match self {
            Self::NotFound { resource, name }
            | Self::AlreadyExists { resource, name }
            | Self::Conflict { resource, name, .. }
            | Self::Forbidden { resource, name, .. } => Some(named(resource, name)),
            // apimachinery `NewApplyConflict`: only the causes, no name or kind.
            Self::ApplyConflict { causes, .. } => Some(json!({"causes": causes})),
            Self::Invalid { kind, name, causes } => {
                // StatusDetails' name, group and kind are omitempty.
                let mut d = json!({});
                if !name.is_empty() {
                    d["name"] = json!(name);
                }
                if !kind.group.is_empty() {
                    d["group"] = json!(kind.group);
                }
                if !kind.kind.is_empty() {
                    d["kind"] = json!(kind.kind);
                }
                d["causes"] = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                Some(d)
            }
            // kube-apiserver drops the JSON patch's own error here: empty details.
            Self::Unprocessable { .. } => Some(json!({})),
            Self::NoSuchPath | Self::MethodNotAllowed => Some(json!({})),
            _ => None,
        }
    }

    /// The `Status` object sent as the response body (and inside watch `ERROR` events).
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Self::Injected(code) = self {
            s["message"] = json!(format!("injected fault: {}", reason_for_code(*code)));
        }
        if let Some(d) = self.details() {
            s["details"] = d;
        }
        s
    }

    pub fn invalid(kind: GroupKind, name: &str, causes: Vec<FieldError>) -> Self {
        Self::Invalid { kind, name: name.to_string(), causes }
    }
}

/// The `StatusReason` kube-apiserver pairs with a bare HTTP code.
fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_qualified_resource() {
        let e = ApiError::NotFound {
            resource: GroupResource { group: "connection-operator.dev".into(), resource: "connections".into() },
            name: "a".into(),
        };
        let s = e.status();
        assert_eq!(s["message"], "connections.connection-operator.dev \"a\" not found");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["group"], "connection-operator.dev");
    }

    #[test]
    fn invalid_brackets_several_causes_only() {
        let kind = GroupKind { group: "g.dev".into(), kind: "Thing".into() };
        let one = ApiError::invalid(kind.clone(), "x", vec![FieldError::required("spec.a", "")]);
        assert_eq!(one.to_string(), "Thing.g.dev \"x\" is invalid: spec.a: Required value");
        let two = ApiError::invalid(
            kind,
            "x",
            vec![FieldError::required("spec.a", ""), FieldError::too_many("spec.b", 3, 2)],
        );
        assert_eq!(
            two.to_string(),
            "Thing.g.dev \"x\" is invalid: [spec.a: Required value, spec.b: Too many: 3: must have at most 2 items]"
        );
        assert_eq!(two.status()["details"]["causes"][1]["reason"], "FieldValueTooMany");
    }
}
