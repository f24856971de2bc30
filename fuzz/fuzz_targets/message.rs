//! The Xymon message builder: statuses of topics tests, rules and broken brokers, and combos; the
//! invariants are in fuzz/checks.rs.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::message(data));
