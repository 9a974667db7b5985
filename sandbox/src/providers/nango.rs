//! Placeholder: the Nango emulator is being built;
//! file entirely. Until then the prefix serves nothing (404).

use axum::Router;

pub fn router() -> Router {
    Router::new()
}
