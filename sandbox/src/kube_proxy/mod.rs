//! A fault-injecting, journaling reverse proxy in front of a Kubernetes API server
//! (`connection-sandbox kube-proxy`).
//!
//! The tests of the operator drive the Kubernetes emulator's `/_sandbox/` admin API: a request
//! journal, queued faults, dropping every watch, expiring the next resumed watch. A real
//! kube-apiserver offers none of that, so this proxy serves the same admin API in front of
//! one: a test written against the emulator runs unchanged against proxy + real API server.
//! It serves plain HTTP on loopback and reaches the upstream server over HTTPS with the CA
//! and identity of the upstream kubeconfig (or over plain HTTP, e.g. the emulator itself).
//!
//! Layout: `upstream` (the upstream kubeconfig and its HTTP clients), `server` (the request
//! pipeline: journal → fault → expiry → forward), `forward` (relaying a request and its
//! streamed answer), `watches` (drop and expiry of relayed watches), `journal`, `admin` (the
//! `/_sandbox/` endpoints), `kubeconfig` (the file written for the proxy's clients). Fault
//! rules are the sandbox-wide `crate::faults`.

mod admin;
mod forward;
mod journal;
mod kubeconfig;
mod server;
mod state;
mod upstream;
mod watches;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

pub use upstream::UpstreamError;

/// Why the proxy could not start or stopped serving.
#[derive(Debug, Error)]
pub enum ProxyError {
    #[error("upstream kubeconfig {}: {source}", path.display())]
    Upstream { path: PathBuf, source: UpstreamError },
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("writing {}: {source}", path.display())]
    WriteKubeconfig { path: PathBuf, source: std::io::Error },
    #[error("starting the proxy's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

/// Everything up to serving: read the upstream kubeconfig, bind, write the proxy's kubeconfig.
fn prepare(
    upstream_kubeconfig: &Path,
    addr: SocketAddr,
    out_kubeconfig: &Path,
) -> Result<(Arc<state::Proxy>, std::net::TcpListener), ProxyError> {
    let upstream = upstream::Upstream::from_kubeconfig(upstream_kubeconfig)
        .map_err(|source| ProxyError::Upstream { path: upstream_kubeconfig.to_path_buf(), source })?;
    let listener = std::net::TcpListener::bind(addr).map_err(|source| ProxyError::Bind { addr, source })?;
    listener.set_nonblocking(true).map_err(|source| ProxyError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| ProxyError::Bind { addr, source })?;
    kubeconfig::write(out_kubeconfig, bound)
        .map_err(|source| ProxyError::WriteKubeconfig { path: out_kubeconfig.to_path_buf(), source })?;
    Ok((Arc::new(state::Proxy::new(upstream)), listener))
}

/// Serve until `stop` completes; then end the relayed watches, so the graceful shutdown does
/// not wait for streams that only end when their client goes away.
async fn serve(
    proxy: Arc<state::Proxy>,
    listener: std::net::TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProxyError> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ProxyError::Serve)?;
    let on_stop = proxy.clone();
    axum::serve(listener, server::router(proxy))
        .with_graceful_shutdown(async move {
            stop.await;
            on_stop.watches.drop_all();
        })
        .await
        .map_err(ProxyError::Serve)
}

/// The `kube-proxy` subcommand: read `upstream_kubeconfig`, bind `addr`, write a kubeconfig
/// for the proxy to `out_kubeconfig`, print `listening on http://ADDR`, serve until
/// SIGINT/SIGTERM.
pub async fn run(upstream_kubeconfig: &Path, addr: SocketAddr, out_kubeconfig: &Path) -> Result<(), ProxyError> {
    let (proxy, listener) = prepare(upstream_kubeconfig, addr, out_kubeconfig)?;
    let bound = listener.local_addr().map_err(|source| ProxyError::Bind { addr, source })?;
    println!("listening on http://{bound}");
    use std::io::Write;
    std::io::stdout().flush().map_err(ProxyError::Serve)?;
    serve(proxy, listener, crate::kube::shutdown_signal()).await
}

/// An in-process proxy for tests. Like [`crate::kube::KubeSandbox`], it runs on its own
/// thread and runtime, so a test may block (on a `kubectl` child, say) without starving it.
/// Stops when dropped, ending every relayed stream.
pub struct KubeProxy {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeProxy {
    /// Proxy the API server of `upstream_kubeconfig` on `addr` (port 0 picks a free port) and
    /// write a kubeconfig for the proxy to `out_kubeconfig`.
    pub fn start(upstream_kubeconfig: &Path, addr: SocketAddr, out_kubeconfig: &Path) -> Result<Self, ProxyError> {
        let (proxy, listener) = prepare(upstream_kubeconfig, addr, out_kubeconfig)?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Bind { addr, source })?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(ProxyError::Runtime)?;
        let thread = std::thread::Builder::new()
            .name(format!("kube-proxy-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        res = serve(proxy, listener, std::future::pending()) => {
                            if let Err(e) = res {
                                tracing::error!(error = %e, "kube proxy");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends relayed streams and connections.
            })
            .map_err(ProxyError::Runtime)?;
        Ok(Self { addr, kubeconfig: out_kubeconfig.to_path_buf(), stop: Some(stop), thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the server URL in the proxy's kubeconfig.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The kubeconfig written for the proxy's clients.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
