//! The crate's module structure, checked from its source: the layer order of the top-level modules and
//! no import cycle between sibling modules.
//!
//! The test parses the library's non-test source with `syn`, starting at `src/lib.rs` and following its
//! module declarations (items under `#[cfg(test)]`, `#[test]` functions and files reached only through
//! them are skipped; `src/main.rs`, the binary, is not part of it). Every path the source uses is
//! collected: `use` trees, and paths in bodies, types, attribute arguments and macro arguments (parsed
//! as expressions or items where they parse, else scanned token by token), then resolved to the module it
//! points into. The rules are below, in `LAYERS`.
//!
//! - `cargo test --test architecture`: fails with the full list of violations, file and line each.
//! - `cargo test --test architecture module_graph -- --nocapture`: prints the top-level module graph,
//!   layer by layer (for the README's architecture section).
//!
//! The checker is in the sibling files: `model` (the crate's modules and how a path resolves),
//! `loader` (reading the source and following `mod` declarations), `paths` (collecting the paths a
//! module uses), `rules` (the checks and the graph printout); `checker_tests` tests it on small sources
//! in memory.

mod checker_tests;
mod loader;
mod model;
mod paths;
mod rules;

use model::Crate;
use rules::{check, graph};
use std::path::Path;

/// The architecture: the top-level modules by layer, lowest first.
///
/// A top-level module may import only top-level modules of a lower layer: never one of its own layer,
/// never a higher one. Every top-level module must be placed here. The crate root (`src/lib.rs`) may
/// contain only module declarations, `pub use` re-exports and docs, so no module imports an item of the
/// root. Within a module, the sibling modules (`web::api` and `web::sse`, both children of `web`) must
/// not import each other in a cycle; a child using its parent, or a parent its children, is fine.
const LAYERS: &[&[&str]] = &[
    // 0 leaf vocabulary and utilities: they import nothing of the crate
    &[
        "names",
        "colour",
        "filter",
        "text",
        "limits",
        "backoff",
        "log_limit",
        "heap",
        "metrics",
    ],
    // 1 the TOML schema, defaults and validation
    &["config"],
    // 2 the pure rule engine: compiled rules, extraction, thresholds, staleness, instance state
    &["rules"],
    // 3 Home Assistant discovery: announcements, templates and device columns; above rules because it
    //   reuses their thresholds and staleness, below plan, which compiles its config
    &["discovery"],
    // 4 the Config compiled once into a Plan
    &["plan"],
    // 5 the latest value per topic; written by mqtt, read by collect and web
    &["store"],
    // 6 the sinks: the Xymon status wire format, outbox and sender; the RRD writer, defs and graphs
    &["xymon", "rrd"],
    // 7 the status builders, one per kind
    &["status"],
    // 8 the collector: loop and timers, rounds, rule tests, snapshots
    &["collect"],
    // 9 broker sessions, snapshot sessions, subscriptions; feeds store and collect
    &["mqtt"],
    // 10 the dashboard and the API; reads store, outbox, rrd, plan
    &["web"],
    // 11 the supervisor: spawns and stops the stages
    &["bridge"],
    // 12 the CLI commands: check, explain, xymon-config
    &["cli"],
];

#[test]
fn modules_follow_the_layers_without_sibling_cycles() {
    let krate = Crate::load(&read_src);
    assert!(
        krate.modules.len() > 1,
        "no module found under src/: {:?}",
        krate.problems
    );
    let violations = check(&krate, LAYERS);
    assert!(
        violations.is_empty(),
        "{} architecture violation(s) (the rules: LAYERS in tests/architecture/main.rs):\n{}\n",
        violations.len(),
        violations.join("\n")
    );
}

/// Prints the top-level module graph: `cargo test --test architecture module_graph -- --nocapture`.
#[test]
fn module_graph() {
    let krate = Crate::load(&read_src);
    assert!(krate.problems.is_empty(), "{:?}", krate.problems);
    print!("{}", graph(&krate, LAYERS));
}

fn read_src(rel: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).ok()
}
