//! Authorization seam. Every bearer token is accepted today; RBAC enforcement for a chosen
//! ServiceAccount token is a later issue, and will plug in here with the request's token and
//! attributes. Tokens are never logged.

use super::api_error::ApiError;
use super::resources::ResourceType;

/// What a request does, in RBAC terms (`authorizer.Attributes`).
pub struct Attributes<'a> {
    pub verb: &'static str,
    pub resource: &'a ResourceType,
    pub namespace: Option<&'a str>,
}

pub fn authorize(token: Option<&str>, attrs: &Attributes<'_>) -> Result<(), ApiError> {
    let _ = (token, attrs.verb, attrs.resource, attrs.namespace);
    Ok(())
}
