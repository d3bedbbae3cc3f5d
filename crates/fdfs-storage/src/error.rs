//! Storage errors: start-up failures, and request failures that carry the
//! errno status the original answers with (the `{status, reason}` type both
//! daemons share).

pub use fdfs_util::op_error::{OpError, OpResult};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
}
