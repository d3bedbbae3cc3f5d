//! The trunk server's allocator on disk: `data/trunk/binlog`, `storage_trunk.dat`, trunk file creation, unconfirmed allocations.
