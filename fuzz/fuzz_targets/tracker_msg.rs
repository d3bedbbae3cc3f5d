#![no_main]
//! cargo-fuzz entry of the `tracker_msg` target; the checks live in fdfs-fuzz-targets.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fdfs_fuzz_targets::tracker_msg(data));
