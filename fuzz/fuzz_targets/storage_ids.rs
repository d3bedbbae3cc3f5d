#![no_main]
//! cargo-fuzz entry of the `storage_ids` target; the checks live in fdfs-fuzz-targets.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fdfs_fuzz_targets::storage_ids(data));
