//! `mount`: one provider's API routes behind the common pipeline, plus its admin API. It
//! sits above `plugin` (the trait and the shared controls), `pipeline` and `admin`, which
//! all three import `plugin` and not each other.

use std::sync::Arc;

use axum::Router;

use super::plugin::{Controls, Mounted, Provider};
use super::{admin, pipeline};

/// Build the router of one provider: its API routes behind the common pipeline (journal,
/// faults, authentication, rate limit), plus the admin API under `/_sandbox/` (not
/// journaled, not authenticated, not limited). Nest the result under the provider prefix.
pub fn mount<P: Provider>(provider: P) -> Router {
    let provider = Arc::new(provider);
    let mounted = Arc::new(Mounted { provider: provider.clone(), controls: Controls::default() });
    let api = provider.routes().layer(axum::middleware::from_fn_with_state(mounted.clone(), pipeline::run::<P>));
    admin::router(mounted).merge(api)
}
