//! Payload extraction: JSONPath, string maps, numbers; the invariants are in fuzz/checks.rs.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::extract(data));
