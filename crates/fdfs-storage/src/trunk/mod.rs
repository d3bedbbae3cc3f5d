//! Trunk storage (PROTOCOL.md §6.7, §11.5): small files kept in slots of
//! large trunk files. The submodules split it by owner: the free-space
//! pool and its binlog (`pool`, `space`), slot I/O (`slot`), the trunk
//! server role and its commands (`role`, `server`, `client`), the trunk
//! server's batched uploads (`batch`), and what a
//! replica remembers of deletes that arrived first (`tombstones`).

pub mod batch;
pub mod client;
pub mod pool;
pub mod role;
pub mod scrub;
pub mod server;
pub mod slot;
pub mod space;
pub mod tombstones;
