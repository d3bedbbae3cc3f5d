#![no_main]
//! cargo-fuzz entry of the `http_request` target; the checks live in fdfs-fuzz-targets.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fdfs_fuzz_targets::http_request(data));
