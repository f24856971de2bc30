//! Topic filters with captures, plain MQTT filters and name templates; the invariants are in fuzz/checks.rs.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::filter(data));
