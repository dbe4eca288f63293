#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trace_fuzz::config::check(data));
