//! FastDFS storage server as a library: `run(listener, conf, shutdown)`
//! serves the client protocol (§3 of PROTOCOL.md) from the classic on-disk
//! layout and reports to the configured trackers.

pub mod access_log;
pub mod binlog;
mod conn;
pub mod disk;
pub mod error;
pub mod metrics;
mod ops;
pub mod pending;
pub mod recovery;
pub mod reporter;
mod session;
pub mod state;
pub mod store;
pub mod sync;
pub mod trunk;
pub mod writers;

use std::sync::Arc;
use std::time::Duration;

use fdfs_config::storage::StorageConf;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::StorageError;
pub use state::Storage;

/// How long shutdown waits for in-flight requests before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Opens the store (creating the data tree on first start), starts the
/// tracker reporters and serves connections until `shutdown` is cancelled.
pub async fn run(
    listener: TcpListener,
    conf: StorageConf,
    shutdown: CancellationToken,
) -> Result<(), StorageError> {
    let port = listener.local_addr()?.port();
    let storage = Storage::open(conf, port).await?;
    serve(listener, storage, shutdown).await
}

/// Serves an already opened storage; `run` is `Storage::open` + `serve`.
pub async fn serve(
    listener: TcpListener,
    storage: Arc<Storage>,
    shutdown: CancellationToken,
) -> Result<(), StorageError> {
    let admission =
        fdfs_util::serve::Admission::from_conf(&storage.conf.allow_hosts, "allow_hosts")
            .map_err(StorageError::Config)?;
    serve_admitting(listener, storage, Arc::new(admission), shutdown).await
}

/// Like [`serve`] with an allow list the caller keeps (to reload it).
pub async fn serve_admitting(
    listener: TcpListener,
    storage: Arc<Storage>,
    admission: Arc<fdfs_util::serve::Admission>,
    shutdown: CancellationToken,
) -> Result<(), StorageError> {
    let _ = storage.counters.admission.set(admission.clone());
    let tasks = TaskTracker::new();
    if storage.is_recovering() {
        // Like the original, the storage joins its trackers (and replicates)
        // only once its store paths are rebuilt: until then it must not be
        // handed to clients, and its own binlog names files it lacks.
        let (s, t, stop) = (storage.clone(), tasks.clone(), shutdown.clone());
        tasks.spawn(async move {
            if recovery::run(&s, &stop).await {
                sync::enable(&s, &t, stop.clone());
                reporter::spawn_all(&s, &t, stop);
            }
        });
    } else {
        sync::enable(&storage, &tasks, shutdown.clone());
        reporter::spawn_all(&storage, &tasks, shutdown.clone());
    }
    tracing::info!(
        addr = %listener.local_addr()?,
        group = %storage.group,
        "storage server listening"
    );
    let max_connections = storage.conf.net.max_connections as usize;
    fdfs_util::serve::accept_until_shutdown(
        listener,
        max_connections,
        &admission,
        fdfs_util::serve::WhenFull::ReclaimIdle,
        &tasks,
        &shutdown,
        |stream, peer, slot| {
            let storage = storage.clone();
            storage.count_connection(1);
            storage
                .counters
                .accepted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                conn::serve_connection(stream, peer, storage.clone(), slot).await;
                storage.count_connection(-1);
            }
        },
    )
    .await;
    storage.begin_stop();
    if !fdfs_util::serve::drain(&tasks, SHUTDOWN_GRACE).await {
        tracing::warn!("shutdown: in-flight requests did not finish in time");
    }
    storage.persist_state();
    tracing::info!("storage server stopped");
    Ok(())
}
