#![no_main]
//! cargo-fuzz entry of the `conf_include` target; the checks live in fdfs-fuzz-targets.

libfuzzer_sys::fuzz_target!(|data: &[u8]| fdfs_fuzz_targets::conf_include(data));
