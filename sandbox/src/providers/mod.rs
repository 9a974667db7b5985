//! Stateful emulators of the Nango, Mielto, Are.na and Datagrid APIs
//! (docs/providers.md), served on one port under path prefixes
//! (docs/interfaces.md): `/nango`, `/mielto`, `/arena`, `/datagrid/v1`.
//!
//! # Running
//! - [`run`] serves them for `connection-sandbox providers --addr ADDR`.
//! - [`ProviderSandbox::start`] serves them in-process for tests and the demo; dropping the
//!   handle stops the server.
//!
//! # Writing a provider module
//! Each provider module exposes `pub fn router() -> Router`, nested under its prefix by
//! [`app`]. A real provider implements [`Provider`] and returns `mount(MyProvider::new())`:
//!
//! ```ignore
//! pub fn router() -> Router {
//!     super::mount(Mielto::default())
//! }
//!
//! impl Provider for Mielto {
//!     fn routes(self: Arc<Self>) -> Router {
//!         Router::new().route("/api/v1/connections/{id}", get(read).put(update)).with_state(self)
//!     }
//!     // authenticate, bucket, rate_limit_headers, rate_limited, seed, seeded, unseed ...
//! }
//! ```
//!
//! [`mount`] wraps the routes in the common pipeline (module `pipeline`), which for every API
//! request, in order:
//! 1. journals it (`GET <prefix>/_sandbox/requests`; path relative to the prefix, because
//!    axum strips the prefix of nested routers);
//! 2. applies the first matching queued fault (latency, then reset / injected status with
//!    `Retry-After` and either the raw fault `body` or [`Provider::fault_body`]);
//! 3. calls [`Provider::screen`] (default: nothing), then [`Provider::authenticate`] with the accepted-token configuration ([`Tokens`]:
//!    `tokens.check(credential, is_write)`, [`tokens::bearer`] parses `Authorization`);
//!    the provider answers 401/403 in its own error shape;
//! 4. counts the request in the [`Bucket`] given by [`Provider::bucket`] (fixed or sliding
//!    window, the provider's default limit unless overridden by `PUT /_sandbox/rate-limit`;
//!    a limit of 0 disables limiting) and answers [`Provider::rate_limited`] when over;
//! 5. runs the handler with the [`Caller`] in the request extensions, then adds
//!    [`Provider::rate_limit_headers`] to the answer (429s included).
//!
//! Handlers should take the raw body (`Bytes`) and validate it themselves, so errors have
//! the provider's own shape. A failed write must change nothing: validate fully, then
//! apply under one lock. The admin API (`<prefix>/_sandbox/…`, module `admin`) calls
//! [`Provider::seed`], [`Provider::seeded`] and [`Provider::unseed`] for
//! `PUT/GET/DELETE /_sandbox/connections/{id}` (the id may contain `/`).

mod admin;
mod arena;
mod datagrid;
pub mod faults;
mod journal;
mod mielto;
mod mounting;
mod nango;
mod pipeline;
mod plugin;
mod rate_limit;
mod server;
pub mod tokens;

use std::net::SocketAddr;

use axum::{Json, Router, http::StatusCode};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use mounting::mount;
pub use plugin::{Caller, Provider};
pub use rate_limit::{Bucket, Decision, RateLimit, WindowKind};
pub use server::ConnectionReset;
pub use tokens::{Access, Tokens};

/// All four emulators under their prefixes (docs/interfaces.md).
pub fn app() -> Router {
    Router::new()
        .nest("/nango", nango::router())
        .nest("/mielto", mielto::router())
        .nest("/arena", arena::router())
        .nest("/datagrid/v1", datagrid::router())
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({ "message": "no provider at this path" }))) })
}

/// Bind `addr`, print `listening on http://ADDR`, serve until SIGINT/SIGTERM.
pub async fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, app(), shutdown.clone()));
    shutdown_signal().await?;
    shutdown.cancel();
    server.await?;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// The four emulators served in-process on a real socket. Dropping it stops the server.
pub struct ProviderSandbox {
    addr: SocketAddr,
    shutdown: CancellationToken,
    _task: JoinHandle<()>,
}

impl ProviderSandbox {
    /// Bind `addr` (use port 0 for a free port) and serve; must run inside a tokio runtime.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::serve(listener, app(), shutdown.clone()));
        Ok(ProviderSandbox { addr, shutdown, _task: task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL a Provider's `baseUrl` would hold: `nango`, `mielto`, `arena` or
    /// `datagrid` (which includes `/v1`).
    ///
    /// # Panics
    /// On any other name: that is a bug in the calling test.
    pub fn base_url(&self, provider: &str) -> String {
        let prefix = match provider {
            "nango" => "/nango",
            "mielto" => "/mielto",
            "arena" => "/arena",
            "datagrid" => "/datagrid/v1",
            other => panic!("unknown provider {other:?}: expected nango, mielto, arena or datagrid"),
        };
        format!("http://{}{prefix}", self.addr)
    }
}

impl Drop for ProviderSandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
