#![no_main]
//! cargo-fuzz entry of the `packet_header` target; the checks live in fdfs-fuzz-targets.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fdfs_fuzz_targets::packet_header(data));
