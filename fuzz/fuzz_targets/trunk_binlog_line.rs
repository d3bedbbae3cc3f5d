#![no_main]
//! cargo-fuzz entry of the `trunk_binlog_line` target; the checks live in fdfs-fuzz-targets.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fdfs_fuzz_targets::trunk_binlog_line(data));
