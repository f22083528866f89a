//! The HTTP listener: binds, serves the [`super::router`] (or the
//! gateway's reader) under the [`Limits`] of `[http.limits]`, and shuts
//! down gracefully (mutations already queued still run to completion).
//!
//! The accept loop is cpid's own, over hyper's HTTP/1.1 connection
//! (what `axum::serve` runs, with the knobs it does not expose):
//! - at most `max_connections` connections are served; one more gets a
//!   `503 too_many_connections` written on accept (one non-blocking write,
//!   no task, the request never read) and is closed, so a flood of
//!   connections costs a syscall each rather than memory or a slot;
//! - hyper's header read timeout closes a connection whose request head
//!   does not arrive in `header_timeout_ms` (a slow-loris client), and an
//!   idle keep-alive connection after as long;
//! - [`super::limits::guard`] runs in front of every route: the
//!   per-address rate, then the body within its size and time limits.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::limits::{self, Connection, Limits};

/// How long shutdown waits for open HTTP connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How often the rate limiters forget clients whose buckets are full.
const UPKEEP: std::time::Duration = std::time::Duration::from_secs(10);

/// A running HTTP listener.
pub struct HttpServer {
    local: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves `app` (the node's API or the gateway's
    /// reader) under `limits`. Must be called inside a tokio runtime.
    pub async fn start(
        app: axum::Router,
        addr: SocketAddr,
        limits: Arc<Limits>,
    ) -> std::io::Result<HttpServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = app
            .layer(DefaultBodyLimit::max(limits.max_body_bytes()))
            .layer(axum::middleware::from_fn_with_state(
                limits.clone(),
                limits::guard,
            ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, limits, stopped));
        Ok(HttpServer {
            local,
            stop: Some(stop),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting and lets requests in flight finish (mutations run
    /// to completion in their own tasks regardless); connections still open
    /// after [`SHUTDOWN_GRACE`] are cut.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(joined) => joined.map_err(std::io::Error::other)?,
            Err(_) => {
                tracing::warn!(
                    "HTTP connections still open after {SHUTDOWN_GRACE:?}; closing them"
                );
                self.task.abort();
                Ok(())
            }
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Arc<Limits>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections()));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout());
    let mut upkeep = tokio::time::interval(UPKEEP);
    let overflow = limits::overflow_response();
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stopped => break,
            _ = upkeep.tick() => {
                limits.upkeep();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            limits::counted("connections");
            // Best effort: the socket's send buffer is empty, so this write
            // does not block; the request is never read.
            let _ = stream.try_write(&overflow);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Connection::default());
        let io = TokioIo::new(Counted {
            inner: stream,
            conn: conn.clone(),
        });
        let seen = conn.clone();
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(seen.clone());
                req
            },
        ));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                if e.is_timeout() && conn.held() {
                    limits::counted("header_timeout");
                }
                tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The client's stream, counting what it sends (see [`Connection`]).
struct Counted {
    inner: TcpStream,
    conn: Arc<Connection>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let n = buf.filled().len().saturating_sub(before);
            self.conn
                .read
                .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
