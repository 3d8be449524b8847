//! Fuzz target: see `mailferry::fuzzing::imap_responses` for what it feeds and asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mailferry::fuzzing::imap_responses(data));
