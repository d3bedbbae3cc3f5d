//! Async FastDFS client library. The framing it speaks is fdfs-util's,
//! shared with the daemons.
//!
//! Layers: [`conn`] (framing, timeouts, streaming), [`tracker`] and
//! [`storage`] (one command family each over a borrowed connection),
//! [`pool`] (idle connections), and [`Client`] (tracker failover, routing
//! and pooling on top).

pub mod client;
pub mod conn;
pub mod error;
pub mod fileinfo;
pub mod localfile;
pub mod pool;
pub mod storage;
pub mod tracker;

pub use client::{Client, ClientOptions, TrackerFuture, UploadOptions};
pub use conn::Conn;
pub use error::ClientError;
pub use fileinfo::{decode_remote_name, FileInfo};
pub use storage::{StorageClient, UploadKind, FINFO_FLAG_KEEP_SILENCE, FINFO_FLAG_NO_CRC32};
pub use tracker::TrackerClient;
