//! Client errors; each knows the errno the classic tools print for it.

use fdfs_proto::{ProtoError, Status};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-zero status.
    #[error("server answered status {}: {}", .0.0, .0.message())]
    Status(Status),
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Proto(#[from] ProtoError),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// The errno value the C tools report for this error.
    pub fn errno(&self) -> u8 {
        match self {
            ClientError::Status(s) => s.0,
            ClientError::Io(e) => e
                .raw_os_error()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(match e.kind() {
                    std::io::ErrorKind::NotFound => 2,
                    std::io::ErrorKind::ConnectionRefused => 111,
                    std::io::ErrorKind::UnexpectedEof => 107,
                    std::io::ErrorKind::ConnectionReset => 104,
                    std::io::ErrorKind::TimedOut => 110,
                    _ => 5,
                }),
            ClientError::Proto(_) | ClientError::Invalid(_) => 22,
            ClientError::Timeout => 110,
        }
    }

    /// True for failures of the transport (connect, read, write, timeout),
    /// which justify trying another tracker; a status answer does not.
    pub fn is_network(&self) -> bool {
        matches!(self, ClientError::Io(_) | ClientError::Timeout)
    }

    /// True when the server closed the connection instead of answering,
    /// which is how a server refuses a host that its `allow_hosts` does not
    /// list (the field report's "errno 107" puzzle).
    pub fn closed_without_answer(&self) -> bool {
        use std::io::ErrorKind as K;
        matches!(self, ClientError::Io(e)
            if matches!(e.kind(), K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted))
    }

    /// A write found the connection already closed by the peer: nothing
    /// of the request reached it.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ClientError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// What the tools add to a [`Self::closed_without_answer`] failure.
    pub const CLOSED_HINT: &'static str =
        "the server closed the connection without answering; it may not allow this host: see allow_hosts in its tracker.conf or storage.conf";

    /// "error no: N, error info: TEXT" as the tools print it.
    pub fn tool_text(&self) -> String {
        let n = self.errno();
        format!(
            "error no: {n}, error info: {}",
            fdfs_proto::status::strerror(n)
        )
    }
}
