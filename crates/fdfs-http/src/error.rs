//! Gateway errors: start-up failures ([`HttpError`]) and per-request
//! refusals ([`Reject`]) that carry the HTTP status they answer with.

use hyper::StatusCode;

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A configuration the gateway cannot serve with.
    #[error("configuration: {0}")]
    Config(String),
}

impl HttpError {
    /// The status a request would get if this error surfaced while serving.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// A request the gateway refuses; `reason` goes to the log, never to the
/// client (the body is the status text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct Reject {
    pub status: StatusCode,
    pub reason: String,
}

impl Reject {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Reject {
            status,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, reason)
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, reason)
    }

    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, reason)
    }

    pub fn bad_gateway(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, reason)
    }

    /// Not an answer: the file's path walk needs the disk, which an async
    /// worker must not wait for. The caller opens it again on the blocking
    /// pool (were it ever sent, a 503 would be the honest answer).
    pub fn needs_disk() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, NEEDS_DISK)
    }

    /// Whether this is [`Reject::needs_disk`].
    pub fn is_needs_disk(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE && self.reason == NEEDS_DISK
    }
}

const NEEDS_DISK: &str = "the path walk needs the disk";
