//! The failure of one request as both daemons answer it: the wire status
//! (an errno byte) the peer sees, and the reason that only the log sees.

use fdfs_proto::{ProtoError, Status};

/// A request that failed with a wire status. The reason may quote peer
/// bytes: log it with `?` (Debug), which escapes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub status: Status,
    pub reason: String,
}

impl OpError {
    pub fn new(status: Status, reason: impl Into<String>) -> Self {
        OpError {
            status,
            reason: reason.into(),
        }
    }

    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::new(Status::EINVAL, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(Status::ENOENT, reason)
    }
}

impl From<ProtoError> for OpError {
    fn from(e: ProtoError) -> Self {
        OpError::new(e.status(), e.to_string())
    }
}

impl From<std::io::Error> for OpError {
    fn from(e: std::io::Error) -> Self {
        let status = match e.kind() {
            std::io::ErrorKind::NotFound => Status::ENOENT,
            std::io::ErrorKind::AlreadyExists => Status::EEXIST,
            _ => e
                .raw_os_error()
                .and_then(|c| u8::try_from(c).ok())
                .map(Status)
                .unwrap_or(Status::EIO),
        };
        OpError::new(status, e.to_string())
    }
}

pub type OpResult<T> = Result<T, OpError>;
