//! The accept loop every daemon shares (tracker, storage, HTTP gateway):
//! bounded connections, one task per connection, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Accepts connections until `shutdown` is cancelled and runs `handle` for
/// each on `tasks`, with at most `max_connections` at once. A permit is
/// taken before `accept`, so a flood waits in the kernel backlog instead of
/// costing memory here. Returns when shutdown starts; the listener is
/// dropped then, so the port is free at once.
pub async fn accept_until_shutdown<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
    mut handle: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn = handle(stream, peer);
                tasks.spawn(async move {
                    conn.await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
            }
        }
    }
}

/// Closes `tasks` and waits for them up to `grace`; false if they did not
/// all finish in time.
pub async fn drain(tasks: &TaskTracker, grace: Duration) -> bool {
    tasks.close();
    tokio::time::timeout(grace, tasks.wait()).await.is_ok()
}
