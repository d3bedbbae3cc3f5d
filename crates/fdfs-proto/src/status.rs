//! Wire statuses (Linux errno values) and the decode error type.

/// An errno value as carried in the header status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u8);

impl Status {
    pub const OK: Status = Status(0);
    pub const EPERM: Status = Status(1);
    pub const ENOENT: Status = Status(2);
    pub const EINTR: Status = Status(4);
    pub const EIO: Status = Status(5);
    pub const EAGAIN: Status = Status(11);
    pub const ENOMEM: Status = Status(12);
    pub const EACCES: Status = Status(13);
    pub const EFAULT: Status = Status(14);
    pub const EBUSY: Status = Status(16);
    pub const EEXIST: Status = Status(17);
    pub const ENOTDIR: Status = Status(20);
    pub const EISDIR: Status = Status(21);
    pub const EINVAL: Status = Status(22);
    pub const ENOSPC: Status = Status(28);
    pub const ENAMETOOLONG: Status = Status(36);
    pub const ENONET: Status = Status(64);
    pub const EOPNOTSUPP: Status = Status(95);
    pub const ECONNREFUSED: Status = Status(111);
    pub const ETIMEDOUT: Status = Status(110);
    pub const EALREADY: Status = Status(114);
    pub const ENOTCONN: Status = Status(107);

    /// The glibc `strerror` text, which the classic tools print.
    pub fn message(self) -> &'static str {
        strerror(self.0)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// glibc's text for the errno values FastDFS uses.
pub fn strerror(code: u8) -> &'static str {
    match code {
        0 => "Success",
        1 => "Operation not permitted",
        2 => "No such file or directory",
        4 => "Interrupted system call",
        5 => "Input/output error",
        11 => "Resource temporarily unavailable",
        12 => "Cannot allocate memory",
        13 => "Permission denied",
        14 => "Bad address",
        16 => "Device or resource busy",
        17 => "File exists",
        20 => "Not a directory",
        21 => "Is a directory",
        22 => "Invalid argument",
        28 => "No space left on device",
        32 => "Broken pipe",
        36 => "File name too long",
        64 => "Machine is not on the network",
        95 => "Operation not supported",
        104 => "Connection reset by peer",
        107 => "Transport endpoint is not connected",
        110 => "Connection timed out",
        111 => "Connection refused",
        113 => "No route to host",
        114 => "Operation already in progress",
        _ => "Unknown error",
    }
}

/// A request or response body that does not follow the wire format. Every
/// variant answers EINVAL, as the C servers do for malformed requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("body too short: need {need} bytes, got {got}")]
    Short { need: usize, got: usize },
    #[error("invalid body length {0}")]
    BadLength(usize),
    #[error("{0}")]
    Invalid(String),
}

impl ProtoError {
    pub fn status(&self) -> Status {
        Status::EINVAL
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        ProtoError::Invalid(msg.into())
    }
}
