//! The sanitiser of untrusted text (untrusted, line1, visible, short); the invariants are in fuzz/checks.rs.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sanitise(data));
