//! Fuzz target: see `mailferry::fuzzing::maildir_name` for what it feeds and asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mailferry::fuzzing::maildir_name(data));
