//! What the request handlers share: the per-connection state they read
//! and update ([`ConnCtx`]), and their result, an answer body or an
//! [`OpError`] (the wire status and the reason for the log). Handlers
//! depend on this module, the connection loop on the handlers.

use std::net::{IpAddr, SocketAddr};

use fdfs_proto::Status;

pub use fdfs_util::op_error::OpError;

/// The storage a connection has JOINed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub group: String,
    pub id: String,
    /// Connection generation recorded in the storage record at JOIN.
    pub conn_gen: u64,
}

/// Per-connection state the handlers see.
#[derive(Debug, Clone)]
pub struct ConnCtx {
    /// The peer's IP as text (IPv4-mapped addresses unmapped).
    pub peer_ip: String,
    /// The same address, parsed.
    pub peer_addr: IpAddr,
    /// Our own address on this connection: the leader address we announce.
    pub local_ip: String,
    pub local_port: u16,
    pub joined: Option<Joined>,
    /// Group change counter last reported on this connection; `None` until
    /// the first BEAT/84/89 answer, which also carries the leader brief.
    pub seen_change: Option<u64>,
    /// Leader generation last announced on this connection.
    pub seen_leader_gen: Option<u64>,
    /// Group trunk change counter last announced on this connection.
    pub seen_trunk: Option<u64>,
    /// Cluster trunk generation last sent to the follower on this
    /// connection (PING_LEADER).
    pub seen_trunk_gen: Option<u64>,
    /// Unique per connection (the data-file copy lock names its holder).
    pub conn_id: u64,
    /// The follower tracker that sent JOIN_LEADER on this connection.
    pub leader_follower: Option<SocketAddr>,
    /// True after the first PING_LEADER answer of this connection.
    pub pinged: bool,
    /// Data files snapshotted by GET_SYS_FILES_START (61) for 63.
    pub sys_files: Option<[Vec<u8>; 4]>,
    /// The cluster-secret exchange of this connection.
    pub cluster: fdfs_util::cluster_secret::Challenge,
}

fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

impl ConnCtx {
    pub fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        ConnCtx {
            peer_ip: ip_text(peer.ip()),
            peer_addr: peer.ip().to_canonical(),
            local_ip: ip_text(local.ip()),
            local_port: local.port(),
            joined: None,
            seen_change: None,
            seen_leader_gen: None,
            seen_trunk: None,
            seen_trunk_gen: None,
            conn_id: 0,
            leader_follower: None,
            pinged: false,
            sys_files: None,
            cluster: Default::default(),
        }
    }

    /// The joined storage, or EACCES for storage commands sent before JOIN.
    pub fn joined(&self) -> Result<Joined, OpError> {
        self.joined
            .clone()
            .ok_or_else(|| OpError::new(Status::EACCES, "storage command before JOIN"))
    }

    /// `ip:port` of this tracker as the peer reached it.
    pub fn local_addr_text(&self) -> String {
        fdfs_util::net::host_port(&self.local_ip, self.local_port)
    }
}

/// Result of a handler: an answer body, or an errno with an empty body
/// and the reason for the log. A malformed body converts to EINVAL with
/// the decoder's message, which may quote the peer's bytes: the connection
/// loop logs reasons escaped.
pub type HandlerResult = Result<Vec<u8>, OpError>;

/// EINVAL for a body of a length the command does not take.
pub fn bad_length(body: &[u8]) -> OpError {
    OpError::invalid(format!("body of {} bytes", body.len()))
}

/// Commands that carry no body refuse one (EINVAL).
pub fn expect_no_body(body: &[u8]) -> Result<(), OpError> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(bad_length(body))
    }
}
