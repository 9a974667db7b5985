//! Placeholder: the Mielto emulator is built by helper `providers-more`, which replaces this
//! file entirely. Until then the prefix serves nothing (404).

use axum::Router;

pub fn router() -> Router {
    Router::new()
}
