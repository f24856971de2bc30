//! The crate model: the library's modules, the names their `use` items bind and the paths they use;
//! where a path written in a module points (`resolve`), and from that every use of one module by
//! another (`Crate::edges`), the input of the rules.

use std::collections::BTreeMap;

/// The library's modules, read from its source.
pub(crate) struct Crate {
    /// `modules[0]` is the crate root.
    pub(crate) modules: Vec<Module>,
    /// What the crate root holds besides module declarations and `pub use`: (file, line, what).
    pub(crate) root_items: Vec<(String, usize, String)>,
    /// Files that could not be found, read or parsed.
    pub(crate) problems: Vec<String>,
}

pub(crate) struct Module {
    /// From the crate root: `["web", "api"]`; empty for the root.
    pub(crate) path: Vec<String>,
    /// The file it is in (an inline module: its parent's file).
    pub(crate) file: String,
    pub(crate) inline: bool,
    pub(crate) parent: Option<usize>,
    pub(crate) children: BTreeMap<String, usize>,
    /// Names bound by its `use` items, to the path as written.
    pub(crate) bindings: BTreeMap<String, Vec<String>>,
    /// Every path it uses that may point into the crate.
    pub(crate) refs: Vec<Ref>,
}

/// A path used in the source, as written (a `use` group expanded: one per leaf).
#[derive(Clone)]
pub(crate) struct Ref {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) segs: Vec<String>,
}

impl Ref {
    pub(crate) fn written(&self) -> String {
        self.segs.join("::")
    }
}

/// Where a path points: the module, and the path from the crate root (`crate::mqtt::Wanted`).
struct Target {
    module: usize,
    canonical: Vec<String>,
    /// The path names the module itself (`crate::mqtt`, `use crate::mqtt::{self}`, a glob).
    exact: bool,
}

/// A resolved use of one module by another.
pub(crate) struct Edge<'a> {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) r: &'a Ref,
    canonical: String,
}

impl Edge<'_> {
    /// The path as written, and from the crate root when it was written otherwise.
    pub(crate) fn shown(&self) -> String {
        let written = self.r.written();
        if written == self.canonical {
            written
        } else {
            format!("{written} (= {})", self.canonical)
        }
    }
}

impl Crate {
    pub(crate) fn label(&self, m: usize) -> String {
        let module = &self.modules[m];
        if module.inline {
            format!("{} (mod {})", module.file, module.path.join("::"))
        } else {
            module.file.clone()
        }
    }

    pub(crate) fn top(&self, m: usize) -> Option<&str> {
        self.modules[m].path.first().map(String::as_str)
    }

    /// The modules from the root down to `m`.
    pub(crate) fn chain(&self, m: usize) -> Vec<usize> {
        let mut chain = vec![m];
        while let Some(p) = self.modules[*chain.last().unwrap()].parent {
            chain.push(p);
        }
        chain.reverse();
        chain
    }

    /// The module a path written in module `from` points into; `None` for anything outside the crate
    /// (std, dependencies, local names).
    fn resolve(&self, from: usize, segs: &[String]) -> Option<Target> {
        self.resolve_at(from, segs, 0)
    }

    fn resolve_at(&self, from: usize, segs: &[String], depth: usize) -> Option<Target> {
        if depth > 8 || segs.is_empty() {
            return None;
        }
        let (mut cur, mut i) = match segs[0].as_str() {
            "crate" | "$crate" => (0, 1),
            "self" => (from, 1),
            "super" => (from, 0),
            first if self.modules[from].children.contains_key(first) => (from, 0),
            first => {
                // A name bound by a `use` of a module (`use crate::mqtt::{self}`, then `mqtt::Wanted`).
                // Paths through an imported item (`Colour::Red`) add nothing to the `use` itself.
                let bound = self.modules[from].bindings.get(first)?;
                let target = self.resolve_at(from, bound, depth + 1)?;
                if !target.exact {
                    return None;
                }
                (target.module, 1)
            }
        };
        while segs.get(i).map(String::as_str) == Some("super") {
            cur = self.modules[cur].parent?;
            i += 1;
        }
        while let Some(seg) = segs.get(i) {
            if let Some(&child) = self.modules[cur].children.get(seg) {
                cur = child;
                i += 1;
                continue;
            }
            // The root's `use` items (re-exports) lead on to the module the name comes from.
            if cur == 0 {
                if let Some(bound) = self.modules[0].bindings.get(seg) {
                    let mut through = bound.clone();
                    through.extend(segs[i + 1..].iter().cloned());
                    if let Some(target) = self.resolve_at(0, &through, depth + 1) {
                        return Some(target);
                    }
                }
            }
            break;
        }
        let mut canonical = vec!["crate".to_string()];
        canonical.extend(self.modules[cur].path.iter().cloned());
        canonical.extend(segs[i..].iter().cloned());
        Some(Target {
            module: cur,
            canonical,
            exact: i == segs.len(),
        })
    }

    /// Every use of one module by another, in source order.
    pub(crate) fn edges(&self) -> Vec<Edge<'_>> {
        let mut edges = Vec::new();
        for (from, module) in self.modules.iter().enumerate() {
            for r in &module.refs {
                if let Some(t) = self.resolve(from, &r.segs) {
                    if t.module != from {
                        edges.push(Edge {
                            from,
                            to: t.module,
                            r,
                            canonical: t.canonical.join("::"),
                        });
                    }
                }
            }
        }
        edges.sort_by(|a, b| (&a.r.file, a.r.line).cmp(&(&b.r.file, b.r.line)));
        edges
    }
}

impl Module {
    pub(crate) fn new(
        path: Vec<String>,
        file: &str,
        inline: bool,
        parent: Option<usize>,
    ) -> Module {
        Module {
            path,
            file: file.to_string(),
            inline,
            parent,
            children: BTreeMap::new(),
            bindings: BTreeMap::new(),
            refs: Vec::new(),
        }
    }
}
