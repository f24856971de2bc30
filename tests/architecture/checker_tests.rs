//! The checker's own tests, on small sources in memory: sibling cycles, layer violations, test-only
//! code skipped, where paths are found (bodies, types, macros, attributes, `use` groups, names bound by
//! a `use`), the crate root's items, unplaced modules, `#[path]`, and missing or unparsable files.

use crate::model::Crate;
use crate::rules::check;
use std::collections::BTreeMap;

fn load(files: &[(&str, &str)]) -> Crate {
    let files: BTreeMap<String, String> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    Crate::load(&move |p: &str| files.get(p).cloned())
}

fn run(files: &[(&str, &str)], layers: &[&[&str]]) -> Vec<String> {
    check(&load(files), layers)
}

/// (from module, to module, line, path as written)
fn edges(files: &[(&str, &str)]) -> Vec<(String, String, usize, String)> {
    let krate = load(files);
    assert!(krate.problems.is_empty(), "{:?}", krate.problems);
    krate
        .edges()
        .iter()
        .map(|e| {
            (
                krate.modules[e.from].path.join("::"),
                krate.modules[e.to].path.join("::"),
                e.r.line,
                e.r.written(),
            )
        })
        .collect()
}

fn edge(from: &str, to: &str, line: usize, path: &str) -> (String, String, usize, String) {
    (from.into(), to.into(), line, path.into())
}

const LIB_AB: &str = "pub mod a;\npub mod b;\n";

#[test]
fn a_sibling_cycle_is_found() {
    let v = run(
        &[
            ("src/lib.rs", "pub mod web;\n"),
            (
                "src/web/mod.rs",
                "pub mod api;\npub mod sse;\npub struct AppState;\nfn f() { api::topics(); }\n",
            ),
            (
                "src/web/api.rs",
                "use super::AppState;\n\n#[derive(OpenApi)]\n#[openapi(paths(topics, super::sse::events))]\nstruct Doc;\npub fn topics() {}\n",
            ),
            (
                "src/web/sse.rs",
                "pub fn events(_: super::AppState) {}\nfn f() {\n    let _ = super::api::topics();\n}\n",
            ),
        ],
        &[&["web"]],
    );
    assert_eq!(
        v,
        ["import cycle between the children of crate::web: src/web/api.rs -> src/web/sse.rs -> src/web/api.rs\
          \n    src/web/api.rs:4: super::sse::events (= crate::web::sse::events)\
          \n    src/web/sse.rs:3: super::api::topics (= crate::web::api::topics)"]
    );
}

#[test]
fn a_longer_cycle_is_found_and_a_chain_is_not_a_cycle() {
    let files = |last: &'static str| {
        vec![
            ("src/lib.rs", "mod x;\n"),
            ("src/x/mod.rs", "mod p;\nmod q;\nmod r;\n"),
            ("src/x/p.rs", "use super::q::Q;\n"),
            ("src/x/q.rs", "pub struct Q;\nuse super::r::R;\n"),
            ("src/x/r.rs", last),
        ]
    };
    let v = run(&files("pub struct R;\nuse super::p;\n"), &[&["x"]]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].starts_with("import cycle between the children of crate::x: src/x/p.rs -> src/x/q.rs -> src/x/r.rs -> src/x/p.rs"),
        "{v:?}"
    );
    assert!(v[0].contains("src/x/r.rs:2: super::p"), "{v:?}");
    assert_eq!(
        run(&files("pub struct R;\n"), &[&["x"]]),
        Vec::<String>::new()
    );
}

#[test]
fn an_upward_or_same_layer_import_is_found() {
    let files = [
        ("src/lib.rs", LIB_AB),
        ("src/a.rs", "use crate::b::X;\n"),
        ("src/b.rs", "pub struct X;\n"),
    ];
    assert_eq!(
        run(&files, &[&["a"], &["b"]]),
        ["src/a.rs:1: imports crate::b::X (layer 1 b) from layer 0 a"]
    );
    assert_eq!(
        run(&files, &[&["a", "b"]]),
        ["src/a.rs:1: imports crate::b::X (layer 0 b) from layer 0 a"]
    );
    assert_eq!(run(&files, &[&["b"], &["a"]]), Vec::<String>::new());
}

#[test]
fn cfg_test_code_is_ignored() {
    let v = run(
        &[
            ("src/lib.rs", LIB_AB),
            ("src/b.rs", "pub fn f() {}\n"),
            (
                "src/a.rs",
                r#"
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod inline {
    use crate::b::f;
}
#[cfg(test)]
use crate::b::f;
#[cfg(all(test, feature = "x"))]
fn g() { crate::b::f() }
#[test]
fn t() { crate::b::f() }
pub struct S;
#[cfg(test)]
impl S { fn h() { crate::b::f() } }
impl S {
    #[cfg(test)]
    fn i() { crate::b::f() }
    fn j() {
        #[cfg(test)]
        crate::b::f();
        #[cfg(test)]
        let _x = crate::b::f();
    }
}
"#,
            ),
            // Never read: reached only through `#[cfg(test)]` declarations.
            ("src/a/tests.rs", "use crate::b::f;\n"),
            ("src/a/fixtures.rs", "use crate::b::f;\n"),
        ],
        &[&["a"], &["b"]],
    );
    assert_eq!(v, Vec::<String>::new());

    // Code that is also built outside tests counts.
    let v = run(
        &[
            ("src/lib.rs", LIB_AB),
            ("src/b.rs", "pub fn f() {}\n"),
            (
                "src/a.rs",
                "#[cfg(not(test))]\nfn g() { crate::b::f() }\n#[cfg(any(test, feature = \"x\"))]\nfn h() { crate::b::f() }\n",
            ),
        ],
        &[&["a"], &["b"]],
    );
    assert_eq!(
        v,
        ["src/a.rs:2: imports crate::b::f (layer 1 b) from layer 0 a (also line 4)"]
    );
}

#[test]
fn paths_in_bodies_types_macros_and_attributes_are_seen() {
    let e = edges(&[
        (
            "src/lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub mod e;\n",
        ),
        ("src/b.rs", ""),
        ("src/c.rs", ""),
        ("src/d.rs", ""),
        ("src/e.rs", ""),
        (
            "src/a.rs",
            r#"pub fn f() -> u32 {
    let m = crate::b::Metrics::new();
    m.0
}
pub struct S(super::c::T);
/// Not a path: crate::e::Doc
fn g() {
    println!("{}", crate::d::x());
    tracing::info!(a = %crate::e::y(), "text");
}
#[serde(deserialize_with = "crate::e::de")]
struct D;
"#,
        ),
    ]);
    assert_eq!(
        e,
        [
            edge("a", "b", 2, "crate::b::Metrics::new"),
            edge("a", "c", 5, "super::c::T"),
            edge("a", "d", 8, "crate::d::x"),
            edge("a", "e", 9, "crate::e::y"),
            edge("a", "e", 11, "crate::e::de"),
        ]
    );
}

#[test]
fn a_use_group_yields_an_edge_per_leaf() {
    let files = [
        ("src/lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        (
            "src/a.rs",
            "use crate::{\n    b::X,\n    c::{self, Y},\n};\n",
        ),
        ("src/b.rs", "pub struct X;\n"),
        ("src/c.rs", "pub struct Y;\n"),
    ];
    assert_eq!(
        edges(&files),
        [
            edge("a", "b", 2, "crate::b::X"),
            edge("a", "c", 3, "crate::c"),
            edge("a", "c", 3, "crate::c::Y"),
        ]
    );
    assert_eq!(
        run(&files, &[&["a"], &["b", "c"]]),
        [
            "src/a.rs:2: imports crate::b::X (layer 1 b) from layer 0 a",
            "src/a.rs:3: imports crate::c (layer 1 c) from layer 0 a",
        ]
    );
}

#[test]
fn bare_paths_through_children_and_imported_modules() {
    let e = edges(&[
        ("src/lib.rs", "pub mod collect;\npub mod mqtt;\npub mod rrd;\n"),
        ("src/mqtt.rs", "pub struct Wanted;\n"),
        ("src/rrd.rs", ""),
        (
            "src/collect/mod.rs",
            "mod round;\nuse crate::mqtt::{self, Wanted as W};\nfn f() {\n    round::Offer::new();\n    mqtt::Wanted::default();\n    W::x();\n    rrd::Handle::new();\n}\n",
        ),
        ("src/collect/round.rs", "pub struct Offer;\n"),
    ]);
    assert_eq!(
        e,
        [
            edge("collect", "mqtt", 2, "crate::mqtt"),
            edge("collect", "mqtt", 2, "crate::mqtt::Wanted"),
            edge("collect", "collect::round", 4, "round::Offer::new"),
            edge("collect", "mqtt", 5, "mqtt::Wanted::default"),
        ],
        "`W::x` is an imported item's own path, `rrd::` is the rrd crate here, not crate::rrd"
    );
}

#[test]
fn the_crate_root_holds_only_modules_and_re_exports() {
    let v = run(
        &[
            (
                "src/lib.rs",
                "//! Docs.\npub mod a;\npub mod b;\npub use b::Thing;\nuse std::sync::Arc;\npub const X: u32 = 1;\npub fn run() {}\n",
            ),
            ("src/a.rs", "use crate::X;\nuse crate::Thing;\nfn f() { super::run() }\n"),
            ("src/b.rs", "pub struct Thing;\n"),
        ],
        &[&["b"], &["a"]],
    );
    assert_eq!(
        v,
        [
            "src/lib.rs:5: the crate root holds use std::sync::Arc (not a `pub use`); it may contain only module declarations, `pub use` re-exports and docs",
            "src/lib.rs:6: the crate root holds const X; it may contain only module declarations, `pub use` re-exports and docs",
            "src/lib.rs:7: the crate root holds fn run; it may contain only module declarations, `pub use` re-exports and docs",
            "src/a.rs:1: imports crate::X, an item of the crate root (src/lib.rs), from layer 1 a (also line 3)",
        ],
        "crate::Thing is a re-export of b"
    );
}

#[test]
fn an_unplaced_module_is_a_failure() {
    let v = run(
        &[
            ("src/lib.rs", LIB_AB),
            ("src/a.rs", ""),
            ("src/b/mod.rs", ""),
        ],
        &[&["a"]],
    );
    assert_eq!(
        v,
        ["src/b/mod.rs: module b is not placed in a layer; add it to LAYERS"]
    );
}

#[test]
fn a_path_attribute_is_followed() {
    let v = run(
        &[
            (
                "src/lib.rs",
                "#[path = \"other/x.rs\"]\npub mod a;\npub mod b;\n",
            ),
            ("src/other/x.rs", "mod c;\n"),
            ("src/other/c.rs", "use crate::b::X;\n"),
            ("src/b.rs", "pub struct X;\n"),
        ],
        &[&["a"], &["b"]],
    );
    assert_eq!(
        v,
        ["src/other/c.rs:1: imports crate::b::X (layer 1 b) from layer 0 a"]
    );
}

#[test]
fn missing_and_unparsable_files_are_reported() {
    let v = run(
        &[
            ("src/lib.rs", "pub mod a;\npub mod b;\n"),
            ("src/a.rs", "fn ("),
        ],
        &[&["a", "b"]],
    );
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].starts_with("src/a.rs:1: cannot parse"), "{v:?}");
    assert_eq!(
        v[1],
        "src/lib.rs:2: mod b: no file src/b.rs or src/b/mod.rs"
    );
}
