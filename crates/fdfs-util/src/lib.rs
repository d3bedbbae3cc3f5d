//! What every FastDFS daemon and tool shares, and nothing else: packet
//! framing on a socket, the accept loop with its allow list, host lists in
//! the `allow_hosts` syntax, zero-copy sends, durable atomic files and file
//! CRCs, address text, process limits, time, and poison-tolerant locks.
//!
//! Depends only on fdfs-proto (sans-IO) below it; never on the config,
//! client or daemon crates.

pub mod cluster_secret;
pub mod framing;
pub mod fs;
pub mod hosts;
pub mod json;
pub mod localtime;
pub mod logfile;
pub mod metrics;
pub mod net;
pub mod op_error;
pub mod serve;
pub mod sync;
pub mod sys;
pub mod text;
pub mod time;
pub mod zerocopy;

pub use hosts::HostList;
pub use time::now_secs;
