//! The fuzz corpus as a normal test, on stable: every input in fuzz/seeds/TARGET/ (written by hand: the
//! example config, real payloads, hostile strings) and fuzz/corpus/TARGET/ (what the fuzzers found and
//! kept, minimised) goes through the same invariant checks as the fuzz targets (fuzz/checks.rs), so
//! `cargo test` replays them all.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file of fuzz/seeds/`target` and fuzz/corpus/`target`; fails naming each input
/// whose check panicked.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = 0;
    let mut failed = Vec::new();
    for kind in ["seeds", "corpus"] {
        let dir = fuzz.join(kind).join(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            inputs += 1;
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(inputs >= 10, "{target}: only {inputs} inputs");
    assert!(
        failed.is_empty(),
        "{} of {inputs} inputs break an invariant:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn topic_filter_and_captures() {
    replay("filter", checks::filter);
}

#[test]
fn payload_extraction() {
    replay("extract", checks::extract);
}

#[test]
fn config_loader() {
    replay("config", checks::config);
}

#[test]
fn status_sanitiser() {
    replay("sanitise", checks::sanitise);
}

#[test]
fn xymon_message_builder() {
    replay("message", checks::message);
}
