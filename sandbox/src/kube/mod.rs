//! The Kubernetes API emulator (see docs/kube-emulator.md): kube-apiserver's
//! REST, watch, discovery and OpenAPI surface over an in-memory store, strict where the
//! real server is strict.
//!
//! Layout: `server` (HTTP edge, admin API) → `rest` (verbs) → `store` (revisions, history);
//! `lifecycle` (finalizers, namespace and CRD termination, default ServiceAccount), `crds`
//! (CRD status and registration), `resources` (served types), `discovery`, `openapi_docs`,
//! `watch`, `selectors`, `request` (paths, query, content negotiation), `protobuf` (bodies
//! kubectl and Helm send as protobuf), `builtin_decode` (typed decoding of built-in kinds),
//! `object_meta`, `secret_data`, `service_defaults`, `event_views`, `authz` (seam for RBAC),
//! `kubeconfig`, `api_error`. Fault injection is the sandbox-wide `crate::faults`.
//! `crd/` (schema engine) and `patch/` (patch engines) are pure libraries called by `rest`.

pub(crate) mod api_error;
mod authz;
mod builtin_decode;
mod builtin_validation;
mod cluster;
pub mod crd;
mod crds;
mod discovery;
mod event_views;
pub mod field_error;
mod kubeconfig;
mod lifecycle;
mod object_meta;
mod openapi_docs;
pub mod patch;
mod protobuf;
mod rbac;
mod request;
mod resources;
mod rest;
mod secret_data;
mod selectors;
mod server;
mod service_defaults;
mod shared;
mod storage_version_hash;
mod store;
mod token_request;
mod watch;
mod workload_defaults;
mod zero_values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

pub use shared::Options;

/// Bind `addr`, write a kubeconfig for it to `kubeconfig`, print `listening on http://ADDR`,
/// serve until SIGINT/SIGTERM.
pub async fn run(addr: SocketAddr, kubeconfig: &Path) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    let token = kubeconfig::new_token();
    kubeconfig::write(kubeconfig, addr, &token).with_context(|| format!("writing {}", kubeconfig.display()))?;
    let shared = Arc::new(shared::Shared::new(addr, Options::default()));
    shared.rbac.set_admin_token(&token);
    println!("listening on http://{addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    axum::serve(listener, server::router(shared)).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

/// SIGINT or SIGTERM (SIGINT only off Unix).
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// An in-process emulator for tests and the demo. It runs on its own thread and runtime, so
/// a test may block (e.g. on a `kubectl` child process) without starving the server. Stops
/// when dropped.
pub struct KubeSandbox {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeSandbox {
    /// Start on `addr` (port 0 picks a free port) and write a kubeconfig to `kubeconfig`.
    pub fn start(addr: SocketAddr, kubeconfig: &Path) -> anyhow::Result<Self> {
        Self::start_with(addr, kubeconfig, Options::default())
    }

    pub fn start_with(addr: SocketAddr, kubeconfig: &Path, options: Options) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let token = kubeconfig::new_token();
        kubeconfig::write(kubeconfig, addr, &token).with_context(|| format!("writing {}", kubeconfig.display()))?;
        let shared = Arc::new(shared::Shared::new(addr, options));
        shared.rbac.set_admin_token(&token);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let thread = std::thread::Builder::new().name(format!("kube-sandbox-{}", addr.port())).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "kube sandbox listener");
                        return;
                    }
                };
                tokio::select! {
                    res = axum::serve(listener, server::router(shared)) => {
                        if let Err(e) = res {
                            tracing::error!(error = %e, "kube sandbox server");
                        }
                    }
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here ends open watch streams and connections.
        })?;
        Ok(Self { addr, kubeconfig: kubeconfig.to_path_buf(), token, stop: Some(stop), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the server URL in the kubeconfig.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The bearer token written into the kubeconfig.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for KubeSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
