//! The rules, checked on the loaded crate: every top-level module placed in `LAYERS` once, the crate
//! root holding only module declarations and `pub use`, imports only down the layers, and no import
//! cycle between sibling modules (Tarjan's components, a shortest cycle shown for each); and the
//! top-level module graph, layer by layer, that the `module_graph` test prints for the README.

use crate::model::{Crate, Edge};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// Every violation of the rules, one message each, in a stable order.
pub(crate) fn check(krate: &Crate, layers: &[&[&str]]) -> Vec<String> {
    let mut out = krate.problems.clone();
    let layer_of = layer_index(layers, &mut out);

    for (name, &m) in &krate.modules[0].children {
        if !layer_of.contains_key(name.as_str()) {
            out.push(format!(
                "{}: module {name} is not placed in a layer; add it to LAYERS",
                krate.label(m)
            ));
        }
    }
    for (file, line, what) in &krate.root_items {
        out.push(format!(
            "{file}:{line}: the crate root holds {what}; it may contain only module declarations, \
             `pub use` re-exports and docs"
        ));
    }

    let edges = krate.edges();
    out.extend(layer_violations(krate, &edges, &layer_of));
    out.extend(sibling_cycles(krate, &edges));
    out
}

fn layer_index<'a>(layers: &[&[&'a str]], out: &mut Vec<String>) -> BTreeMap<&'a str, usize> {
    let mut layer_of = BTreeMap::new();
    for (n, layer) in layers.iter().enumerate() {
        for &name in *layer {
            if let Some(before) = layer_of.insert(name, n) {
                out.push(format!(
                    "LAYERS places {name} twice (layers {before} and {n})"
                ));
            }
        }
    }
    layer_of
}

/// Whether a top-level module may import another (`None`: the crate root).
fn allowed(layer_of: &BTreeMap<&str, usize>, from: &str, to: Option<&str>) -> bool {
    match (layer_of.get(from), to.map(|t| layer_of.get(t))) {
        (_, None) => false,
        (Some(f), Some(Some(t))) => t < f,
        // An unplaced module is reported by itself.
        _ => true,
    }
}

/// Imports against the layer order, and imports of the crate root's items: one message per file and
/// module imported, at its first use, with the lines of the others.
fn layer_violations(
    krate: &Crate,
    edges: &[Edge],
    layer_of: &BTreeMap<&str, usize>,
) -> Vec<String> {
    let mut found: BTreeMap<(&str, usize), (&Edge, BTreeSet<usize>)> = BTreeMap::new();
    for e in edges {
        let Some(from) = krate.top(e.from) else {
            continue;
        };
        let to = krate.top(e.to);
        if to == Some(from) || allowed(layer_of, from, to) {
            continue;
        }
        found
            .entry((e.r.file.as_str(), e.to))
            .or_insert_with(|| (e, BTreeSet::new()))
            .1
            .insert(e.r.line);
    }
    let mut out: Vec<(&str, usize, String)> = Vec::new();
    for ((file, _), (e, mut lines)) in found {
        lines.remove(&e.r.line);
        let also = if lines.is_empty() {
            String::new()
        } else {
            let plural = if lines.len() > 1 { "s" } else { "" };
            let lines: Vec<String> = lines.iter().map(usize::to_string).collect();
            format!(" (also line{plural} {})", lines.join(", "))
        };
        let from = at(layer_of, krate.top(e.from).unwrap_or_default());
        let what = match krate.top(e.to) {
            None => format!(
                "imports {}, an item of the crate root (src/lib.rs), from {from}",
                e.shown()
            ),
            Some(to) => format!("imports {} ({}) from {from}", e.shown(), at(layer_of, to)),
        };
        out.push((file, e.r.line, format!("{file}:{}: {what}{also}", e.r.line)));
    }
    out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    out.into_iter().map(|(_, _, m)| m).collect()
}

/// `layer 6 status`, or `unplaced x`.
fn at(layer_of: &BTreeMap<&str, usize>, module: &str) -> String {
    match layer_of.get(module) {
        Some(n) => format!("layer {n} {module}"),
        None => format!("unplaced {module}"),
    }
}

/// Import cycles between the children of one module (below the crate root, where the layers rule).
fn sibling_cycles(krate: &Crate, edges: &[Edge]) -> Vec<String> {
    // parent -> (child, child) -> the first use that makes the edge
    let mut graphs: BTreeMap<usize, BTreeMap<(usize, usize), &Edge>> = BTreeMap::new();
    for e in edges {
        let (a, b) = (krate.chain(e.from), krate.chain(e.to));
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        // One is an ancestor of the other (a parent using its child, a child its parent), or the two
        // are in different top-level modules.
        if common == a.len() || common == b.len() || common < 2 {
            continue;
        }
        graphs
            .entry(a[common - 1])
            .or_default()
            .entry((a[common], b[common]))
            .or_insert(e);
    }
    let mut out = Vec::new();
    for (parent, graph) in graphs {
        let nodes: BTreeSet<usize> = graph.keys().flat_map(|&(x, y)| [x, y]).collect();
        let next = |n: usize| graph.keys().filter(move |(x, _)| *x == n).map(|&(_, y)| y);
        for component in strongly_connected(&nodes, &next) {
            if component.len() < 2 {
                continue;
            }
            let start = component[0];
            let cycle = shortest_cycle(start, &component, &next);
            let files: Vec<String> = cycle.iter().map(|&m| krate.label(m)).collect();
            let mut msg = format!(
                "import cycle between the children of crate::{}: {}",
                krate.modules[parent].path.join("::"),
                files.join(" -> ")
            );
            for w in cycle.windows(2) {
                let e = graph[&(w[0], w[1])];
                let _ = write!(msg, "\n    {}:{}: {}", e.r.file, e.r.line, e.shown());
            }
            if component.len() + 1 > cycle.len() {
                let all: Vec<String> = component.iter().map(|&m| krate.label(m)).collect();
                let _ = write!(msg, "\n    (part of a larger knot: {})", all.join(", "));
            }
            out.push(msg);
        }
    }
    out
}

/// Tarjan's strongly connected components; each sorted.
fn strongly_connected<I: Iterator<Item = usize>>(
    nodes: &BTreeSet<usize>,
    next: &dyn Fn(usize) -> I,
) -> Vec<Vec<usize>> {
    struct State {
        index: BTreeMap<usize, usize>,
        low: BTreeMap<usize, usize>,
        stack: Vec<usize>,
        on_stack: BTreeSet<usize>,
        out: Vec<Vec<usize>>,
    }
    fn visit<I: Iterator<Item = usize>>(n: usize, next: &dyn Fn(usize) -> I, s: &mut State) {
        let i = s.index.len();
        s.index.insert(n, i);
        s.low.insert(n, i);
        s.stack.push(n);
        s.on_stack.insert(n);
        for m in next(n) {
            if !s.index.contains_key(&m) {
                visit(m, next, s);
                let low = s.low[&n].min(s.low[&m]);
                s.low.insert(n, low);
            } else if s.on_stack.contains(&m) {
                let low = s.low[&n].min(s.index[&m]);
                s.low.insert(n, low);
            }
        }
        if s.low[&n] == s.index[&n] {
            let mut component = Vec::new();
            while let Some(m) = s.stack.pop() {
                s.on_stack.remove(&m);
                component.push(m);
                if m == n {
                    break;
                }
            }
            component.sort_unstable();
            s.out.push(component);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &n in nodes {
        if !s.index.contains_key(&n) {
            visit(n, next, &mut s);
        }
    }
    s.out.sort();
    s.out
}

/// A shortest cycle from `start` back to it within `component`: `[start, .., start]`.
fn shortest_cycle<I: Iterator<Item = usize>>(
    start: usize,
    component: &[usize],
    next: &dyn Fn(usize) -> I,
) -> Vec<usize> {
    let mut before: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for m in next(n) {
            if m == start {
                // Back from n to start along the search, then reversed.
                let mut cycle = vec![start, n];
                while let Some(&p) = before.get(cycle.last().unwrap()) {
                    cycle.push(p);
                }
                cycle.reverse();
                return cycle;
            }
            if component.contains(&m) && !before.contains_key(&m) {
                before.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    unreachable!("a strongly connected component has a cycle through each of its modules")
}

// ---------------------------------------------------------------------------------------------------
// The graph, for the README.

pub(crate) fn graph(krate: &Crate, layers: &[&[&str]]) -> String {
    let mut ignored = Vec::new();
    let layer_of = layer_index(layers, &mut ignored);
    let mut deps: BTreeMap<&str, BTreeSet<Option<&str>>> = krate.modules[0]
        .children
        .keys()
        .map(|name| (name.as_str(), BTreeSet::new()))
        .collect();
    for e in krate.edges() {
        if let Some(from) = krate.top(e.from) {
            let to = krate.top(e.to);
            if to != Some(from) {
                deps.entry(from).or_default().insert(to);
            }
        }
    }
    let row = |out: &mut String, name: &str| {
        let Some(uses) = deps.get(name) else {
            let _ = writeln!(out, "  {name:<10}   (no such module yet)");
            return;
        };
        let uses: Vec<String> = uses
            .iter()
            .map(|&to| {
                let shown = to.unwrap_or("crate root");
                if allowed(&layer_of, name, to) {
                    shown.to_string()
                } else {
                    format!("{shown}!")
                }
            })
            .collect();
        let uses = if uses.is_empty() {
            "-".to_string()
        } else {
            uses.join(", ")
        };
        let _ = writeln!(out, "  {name:<10} -> {uses}");
    };
    let mut out = String::from(
        "Top-level modules by layer, lowest first, each with the modules it imports \
         (`!`: an import the layers refuse)\n",
    );
    for (n, layer) in layers.iter().enumerate() {
        let _ = writeln!(out, "layer {n}");
        for name in *layer {
            row(&mut out, name);
        }
    }
    let unplaced: Vec<&str> = deps
        .keys()
        .copied()
        .filter(|m| !layer_of.contains_key(m))
        .collect();
    if !unplaced.is_empty() {
        out.push_str("not placed in a layer\n");
        for name in unplaced {
            row(&mut out, name);
        }
    }
    out
}
