//! The accept loop. We serve each TCP connection with hyper ourselves instead of
//! `axum::serve`, because a fault may ask for an abrupt connection reset (RST, no response):
//! that needs the socket, which `axum::serve` hides. For every connection we keep a twin
//! descriptor of the socket (`try_clone`, a dup of the same socket); a reset sets
//! `SO_LINGER` to 0 on it, drops the hyper connection, then closes the twin, and the kernel
//! answers with RST instead of FIN. Normal connections are unaffected (linger stays default).

use std::{convert::Infallible, time::Duration};

use axum::{Router, body::Body};
use hyper::{Request, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Put in every request's extensions: lets a handler reset the connection it arrived on.
#[derive(Clone)]
pub struct ConnectionReset(CancellationToken);

impl ConnectionReset {
    /// Abort the connection with RST. The caller should then never complete its response.
    pub fn reset(&self) {
        self.0.cancel();
    }
}

/// Serve `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, app.clone(), shutdown.clone()));
            }
            Err(error) => {
                // E.g. EMFILE: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, app: Router, shutdown: CancellationToken) {
    let (stream, twin) = match with_twin(stream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!(%error, "cannot prepare accepted connection");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let reset = CancellationToken::new();
    let handle = ConnectionReset(reset.clone());
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(handle.clone());
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await;
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let connection =
        Box::pin(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    let mut connection = connection;
    tokio::select! {
        _ = connection.as_mut() => {}
        () = reset.cancelled() => {
            match TcpStream::from_std(twin) {
                Ok(twin) => {
                    let _ = twin.set_zero_linger();
                    // The hyper side closes its descriptor first; closing the twin last
                    // releases the socket, and with zero linger the kernel sends RST.
                    drop(connection);
                    drop(twin);
                }
                Err(error) => tracing::warn!(%error, "cannot reset connection"),
            }
        }
        () = shutdown.cancelled() => {}
    }
}

fn with_twin(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let twin = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, twin))
}
