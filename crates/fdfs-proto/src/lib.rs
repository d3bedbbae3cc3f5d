//! Sans-IO FastDFS wire format (FastDFS 6.16 compatible): the 10-byte header,
//! command codes, errno statuses, every client-facing request and response,
//! the storage <-> tracker reporting messages, the file-ID codec and the
//! trunk storage formats.
//!
//! Nothing in this crate performs I/O: encoders append to a `BytesMut`,
//! decoders read a complete body slice and never panic on peer bytes.

pub mod base64;
pub mod cluster_stat;
pub mod cmd;
pub mod fileid;
pub mod header;
pub mod leader_msg;
pub mod metadata;
pub mod stat;
pub mod status;
pub mod storage_msg;
pub mod sync_msg;
pub mod tracker_msg;
pub mod trunk;
pub mod trunk_binlog;
pub mod trunk_msg;
pub mod trunk_scrub;
pub mod wire;

pub use cmd::{
    StorageCmd, TrackerCmd, CMD_ACTIVE_TEST, CMD_CLUSTER_CHALLENGE, CMD_CLUSTER_PROVE, CMD_QUIT,
    CMD_RESP,
};
pub use fileid::{FileId, FileNameRecord, RemoteName};
pub use header::{Header, HEADER_LEN};
pub use status::{ProtoError, Status};
pub use trunk::{SlotHeader, TrunkLocation};

/// Version string both daemons report (JOIN, LIST_STORAGE): clients and
/// monitoring tools compare it with the C release they know.
pub const FDFS_VERSION: &str = "6.16.1";
/// Group names are at most 16 bytes on the wire.
pub const GROUP_NAME_MAX_LEN: usize = 16;
/// Storage ids are at most 15 characters plus NUL.
pub const STORAGE_ID_MAX_SIZE: usize = 16;
/// Extension field width (without dot).
pub const FILE_EXT_NAME_MAX_LEN: usize = 6;
/// Slave prefix field width.
pub const FILE_PREFIX_MAX_LEN: usize = 16;
/// IPv4 text field width in client-facing tracker answers (response_ip_addr_size=16).
pub const IPV4_ADDRESS_SIZE: usize = 16;
/// IP text field width used between servers in 6.16 (INET6_ADDRSTRLEN).
pub const IP_ADDRESS_SIZE: usize = 46;
/// Length of `Mxx/HH/HH/` + 27 base64 chars + ext7.
pub const NORMAL_LOGIC_FILENAME_LENGTH: usize = 44;
/// Length of a trunk remote name.
pub const TRUNK_LOGIC_FILENAME_LENGTH: usize = 60;
/// Maximum number of storage servers in one group.
pub const MAX_SERVERS_EACH_GROUP: usize = 32;
/// Maximum number of tracker servers.
pub const MAX_TRACKERS: usize = 16;

/// True when `name` is a valid group name: 1..=16 of `[A-Za-z0-9]`.
pub fn is_valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= GROUP_NAME_MAX_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Standard CRC-32 (zlib), as used in file names and QUERY_FILE_INFO.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}
