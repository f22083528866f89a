//! The HTTP listener: binds, serves the [`super::router`] and shuts down
//! gracefully (mutations already queued still run to completion).

use std::net::SocketAddr;

/// How long shutdown waits for open HTTP connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A running HTTP listener.
pub struct HttpServer {
    local: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves `app` (the node's API or the gateway's
    /// reader). Must be called inside a tokio runtime.
    pub async fn start(app: axum::Router, addr: SocketAddr) -> std::io::Result<HttpServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // The peer's address reaches handlers as `ConnectInfo` (the
            // source of security events).
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
        });
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
