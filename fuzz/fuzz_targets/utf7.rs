//! Fuzz target: see `mailferry::fuzzing::utf7` for what it feeds and asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mailferry::fuzzing::utf7(data));
