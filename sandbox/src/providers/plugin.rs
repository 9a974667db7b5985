//! The contract between the framework and one provider module (see the module docs of
//! `providers` for how to write one), and the per-provider controls the pipeline and the
//! admin API share. `mounting` puts the pieces together.

use std::sync::{Arc, RwLock};

use axum::{Router, http::request::Parts, response::Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{
    faults::Faults,
    journal::Journal,
    rate_limit::{Bucket, Decision, Limiter, RateLimit},
    tokens::Tokens,
};

/// Who made an API request, as established by `Provider::authenticate`. The pipeline puts
/// it into the request extensions, so handlers can take `Extension<Caller>`.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The accepted credential (bearer token or API key); `None` for anonymous access.
    /// Never log it.
    pub credential: Option<String>,
    /// Whether the credential is read-only.
    pub read_only: bool,
}

/// One provider emulator. Every method except `routes` and the seeding trio is called by
/// the common pipeline for each API request, in this order: a queued fault may answer
/// first; then `screen` and `authenticate`; then `bucket` (and `rate_limited` when over the limit); then
/// the route handler; `rate_limit_headers` decorates whatever answer comes out.
pub trait Provider: Send + Sync + 'static {
    /// The API routes, with paths relative to the provider prefix (`/connections/{id}`).
    /// Called once by `mount`. Handlers should parse bodies themselves (take `Bytes`) so
    /// that validation errors have the provider's own shape.
    fn routes(self: Arc<Self>) -> Router;

    /// Checks that the real service makes before authentication (e.g. Nango's 415 for a
    /// non-JSON `Content-Type`). `Some` answers the request right away, unlimited.
    fn screen(&self, _request: &Parts) -> Option<Response> {
        None
    }

    /// Establish the caller, or answer with the provider's own 401/403. `tokens.check`
    /// classifies the presented credential (any is accepted unless tokens are configured).
    #[allow(
        clippy::result_large_err,
        reason = "an axum Response is the natural rejection of an HTTP check, built at most once per request"
    )]
    fn authenticate(&self, request: &Parts, tokens: &Tokens) -> Result<Caller, Response>;

    /// The rate-limit bucket this request counts in, with the provider's default limit,
    /// or `None` when it is not limited. An admin override (`PUT /_sandbox/rate-limit`)
    /// replaces the default limit and window of every bucket.
    fn bucket(&self, request: &Parts, caller: &Caller) -> Option<Bucket>;

    /// Add the provider's rate-limit headers (to 429s and to normal answers alike).
    fn rate_limit_headers(&self, decision: &Decision, caller: &Caller, headers: &mut HeaderMap);

    /// The provider's 429 answer (body and any headers other than `rate_limit_headers`).
    fn rate_limited(&self, request: &Parts, decision: &Decision, caller: &Caller) -> Response;

    /// Body of an injected fault with `status` when the fault gives no raw `body`.
    fn fault_body(&self, status: StatusCode) -> Value {
        json!({ "error": status.canonical_reason().unwrap_or("error") })
    }

    /// Create or replace the raw state of connection `id` from the admin API, in the
    /// provider's read shape; returns the stored state, or a message for a 400.
    fn seed(&self, id: &str, state: Value) -> Result<Value, String>;

    /// The raw stored state of connection `id`.
    fn seeded(&self, id: &str) -> Option<Value>;

    /// Remove connection `id`; false when it did not exist.
    fn unseed(&self, id: &str) -> bool;
}

/// The per-provider controls shared by the pipeline and the admin API.
#[derive(Default)]
pub(super) struct Controls {
    pub journal: Journal,
    pub faults: Faults,
    pub tokens: Tokens,
    pub limiter: Limiter,
    /// Admin override of every bucket's limit; `None` = the provider's defaults.
    pub rate_override: RwLock<Option<RateLimit>>,
}

pub(super) struct Mounted<P> {
    pub provider: Arc<P>,
    pub controls: Controls,
}
