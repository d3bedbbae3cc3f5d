//! Local time for tool output; the conversion lives in the client crate so
//! the storage's access log formats times the same way.

pub use fdfs_util::localtime::*;
