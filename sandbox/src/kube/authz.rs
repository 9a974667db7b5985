//! Authorization seam: every resource request passes here with its bearer token and
//! attributes. RBAC enforcement for ServiceAccount tokens lives in `rbac` (off unless turned
//! on through the admin API). Tokens are never logged.

use super::api_error::ApiError;
use super::rbac::{self, Rbac};
use super::resources::ResourceType;
use super::store::Store;

/// What a request does, in RBAC terms (`authorizer.Attributes`).
pub struct Attributes<'a> {
    pub verb: &'static str,
    pub resource: &'a ResourceType,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

pub fn authorize(rbac: &Rbac, store: &Store, token: Option<&str>, attrs: &Attributes<'_>) -> Result<(), ApiError> {
    // RBAC speaks of the resource as requested (events.k8s.io events are authorized as
    // such even though they share storage with core events).
    let request = rbac::Request {
        verb: attrs.verb,
        group: &attrs.resource.group,
        resource: &attrs.resource.plural,
        subresource: attrs.subresource,
        namespace: attrs.namespace,
        name: attrs.name,
    };
    rbac.authorize(store, token, &request)
}
