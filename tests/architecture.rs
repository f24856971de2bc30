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

use proc_macro2::{Spacing, Span, TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::Path;
use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, ImplItem, Item, ItemMod, Meta, Token, TraitItem, UseTree, Visibility};

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
    // 3 the Config compiled once into a Plan
    &["plan"],
    // 4 the latest value per topic; written by mqtt, read by collect and web
    &["store"],
    // 5 the sinks: the Xymon status wire format, outbox and sender; the RRD writer, defs and graphs
    &["xymon", "rrd"],
    // 6 the status builders, one per kind
    &["status"],
    // 7 the collector: loop and timers, rounds, rule tests, snapshots
    &["collect"],
    // 8 broker sessions, snapshot sessions, subscriptions; feeds store and collect
    &["mqtt"],
    // 9 the dashboard and the API; reads store, outbox, rrd, plan
    &["web"],
    // 10 the supervisor: spawns and stops the stages
    &["bridge"],
    // 11 the CLI commands: check, explain, xymon-config
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
        "{} architecture violation(s) (the rules: LAYERS in tests/architecture.rs):\n{}\n",
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

// ---------------------------------------------------------------------------------------------------
// The crate model: modules, the names their `use` items bind, the paths they use.

/// The library's modules, read from its source.
struct Crate {
    /// `modules[0]` is the crate root.
    modules: Vec<Module>,
    /// What the crate root holds besides module declarations and `pub use`: (file, line, what).
    root_items: Vec<(String, usize, String)>,
    /// Files that could not be found, read or parsed.
    problems: Vec<String>,
}

struct Module {
    /// From the crate root: `["web", "api"]`; empty for the root.
    path: Vec<String>,
    /// The file it is in (an inline module: its parent's file).
    file: String,
    inline: bool,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    /// Names bound by its `use` items, to the path as written.
    bindings: BTreeMap<String, Vec<String>>,
    /// Every path it uses that may point into the crate.
    refs: Vec<Ref>,
}

/// A path used in the source, as written (a `use` group expanded: one per leaf).
#[derive(Clone)]
struct Ref {
    file: String,
    line: usize,
    segs: Vec<String>,
}

impl Ref {
    fn written(&self) -> String {
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
struct Edge<'a> {
    from: usize,
    to: usize,
    r: &'a Ref,
    canonical: String,
}

impl Edge<'_> {
    /// The path as written, and from the crate root when it was written otherwise.
    fn shown(&self) -> String {
        let written = self.r.written();
        if written == self.canonical {
            written
        } else {
            format!("{written} (= {})", self.canonical)
        }
    }
}

impl Crate {
    /// Reads the crate from `src/lib.rs`; `read` gets a path relative to the package (`src/a/b.rs`).
    fn load(read: &dyn Fn(&str) -> Option<String>) -> Crate {
        let mut loader = Loader {
            read,
            krate: Crate {
                modules: vec![Module::new(Vec::new(), "src/lib.rs", false, None)],
                root_items: Vec::new(),
                problems: Vec::new(),
            },
        };
        if let Some(file) = loader.parse("src/lib.rs") {
            loader.module_attrs(0, "src/lib.rs", &file.attrs);
            loader.items(0, "src/lib.rs", "src", &file.items);
        }
        loader.krate
    }

    fn label(&self, m: usize) -> String {
        let module = &self.modules[m];
        if module.inline {
            format!("{} (mod {})", module.file, module.path.join("::"))
        } else {
            module.file.clone()
        }
    }

    fn top(&self, m: usize) -> Option<&str> {
        self.modules[m].path.first().map(String::as_str)
    }

    /// The modules from the root down to `m`.
    fn chain(&self, m: usize) -> Vec<usize> {
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
    fn edges(&self) -> Vec<Edge<'_>> {
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
    fn new(path: Vec<String>, file: &str, inline: bool, parent: Option<usize>) -> Module {
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

struct Loader<'r> {
    read: &'r dyn Fn(&str) -> Option<String>,
    krate: Crate,
}

impl Loader<'_> {
    fn parse(&mut self, file: &str) -> Option<syn::File> {
        let Some(text) = (self.read)(file) else {
            self.krate.problems.push(format!("{file}: cannot read"));
            return None;
        };
        match syn::parse_file(&text) {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                let line = e.span().start().line;
                self.krate
                    .problems
                    .push(format!("{file}:{line}: cannot parse: {e}"));
                None
            }
        }
    }

    /// The inner attributes of a module's file (`#![...]`).
    fn module_attrs(&mut self, m: usize, file: &str, attrs: &[Attribute]) {
        let mut c = Collector::new(file);
        for a in attrs {
            c.visit_attribute(a);
        }
        self.add(m, c);
    }

    /// The items of module `m`; `dir` is where the files of its child modules are.
    fn items(&mut self, m: usize, file: &str, dir: &str, items: &[Item]) {
        for item in items {
            if is_test(item_attrs(item)) {
                continue;
            }
            if let Item::Mod(decl) = item {
                self.declare(m, file, dir, decl);
                continue;
            }
            if m == 0 && !matches!(item, Item::Use(u) if matches!(u.vis, Visibility::Public(_))) {
                let (span, what) = describe(item);
                self.krate
                    .root_items
                    .push((file.to_string(), span.start().line, what));
            }
            let mut c = Collector::new(file);
            c.visit_item(item);
            self.add(m, c);
        }
    }

    fn add(&mut self, m: usize, c: Collector) {
        let module = &mut self.krate.modules[m];
        module.refs.extend(c.refs);
        module.bindings.extend(c.bindings);
    }

    fn declare(&mut self, parent: usize, file: &str, dir: &str, decl: &ItemMod) {
        let name = ident(&decl.ident);
        let mut path = self.krate.modules[parent].path.clone();
        path.push(name.clone());
        let inline = decl.content.is_some();
        let m = self.krate.modules.len();
        self.krate
            .modules
            .push(Module::new(path, file, inline, Some(parent)));
        self.krate.modules[parent].children.insert(name.clone(), m);
        if let Some((_, items)) = &decl.content {
            self.items(m, file, &format!("{dir}/{name}"), items);
            return;
        }
        let line = decl.ident.span().start().line;
        let candidates = match path_attr(&decl.attrs) {
            // `#[path]`: relative to the file's directory, or, inside an inline module, to its directory.
            Some(p) if self.krate.modules[parent].inline => vec![normalize(&format!("{dir}/{p}"))],
            Some(p) => vec![normalize(&format!("{}/{p}", parent_dir(file)))],
            None => vec![format!("{dir}/{name}.rs"), format!("{dir}/{name}/mod.rs")],
        };
        let found: Vec<&String> = candidates
            .iter()
            .filter(|c| (self.read)(c).is_some())
            .collect();
        let child_file = match found.as_slice() {
            [f] => (*f).clone(),
            [] => {
                self.krate.problems.push(format!(
                    "{file}:{line}: mod {name}: no file {}",
                    candidates.join(" or ")
                ));
                return;
            }
            _ => {
                self.krate.problems.push(format!(
                    "{file}:{line}: mod {name}: both {} exist",
                    candidates.join(" and ")
                ));
                return;
            }
        };
        self.krate.modules[m].file = child_file.clone();
        // A `mod.rs` (or a `#[path]` file) has its children beside it; `a.rs` has them in `a/`.
        let child_dir = if child_file.ends_with("/mod.rs") || path_attr(&decl.attrs).is_some() {
            parent_dir(&child_file).to_string()
        } else {
            child_file.trim_end_matches(".rs").to_string()
        };
        if let Some(parsed) = self.parse(&child_file) {
            self.module_attrs(m, &child_file, &parsed.attrs);
            self.items(m, &child_file, &child_dir, &parsed.items);
        }
    }
}

fn parent_dir(file: &str) -> &str {
    file.rsplit_once('/').map_or("", |(d, _)| d)
}

fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn path_attr(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

fn ident(i: &proc_macro2::Ident) -> String {
    i.to_string().trim_start_matches("r#").to_string()
}

/// What a crate-root item is, for the message that says it does not belong there.
fn describe(item: &Item) -> (Span, String) {
    fn self_type(ty: &syn::Type) -> String {
        match ty {
            syn::Type::Path(p) => p
                .path
                .segments
                .last()
                .map_or_else(String::new, |s| ident(&s.ident)),
            _ => "…".to_string(),
        }
    }
    match item {
        Item::Const(i) => (i.ident.span(), format!("const {}", i.ident)),
        Item::Enum(i) => (i.ident.span(), format!("enum {}", i.ident)),
        Item::ExternCrate(i) => (i.ident.span(), format!("extern crate {}", i.ident)),
        Item::Fn(i) => (i.sig.ident.span(), format!("fn {}", i.sig.ident)),
        Item::ForeignMod(i) => (i.abi.extern_token.span, "an extern block".to_string()),
        Item::Impl(i) => (i.impl_token.span, format!("impl {}", self_type(&i.self_ty))),
        Item::Macro(i) => match &i.ident {
            Some(name) => (name.span(), format!("macro {name}")),
            None => (
                i.mac.path.segments[0].ident.span(),
                "a macro call".to_string(),
            ),
        },
        Item::Static(i) => (i.ident.span(), format!("static {}", i.ident)),
        Item::Struct(i) => (i.ident.span(), format!("struct {}", i.ident)),
        Item::Trait(i) => (i.ident.span(), format!("trait {}", i.ident)),
        Item::TraitAlias(i) => (i.ident.span(), format!("trait {}", i.ident)),
        Item::Type(i) => (i.ident.span(), format!("type {}", i.ident)),
        Item::Union(i) => (i.ident.span(), format!("union {}", i.ident)),
        Item::Use(i) => (
            i.use_token.span,
            format!("use {} (not a `pub use`)", render_use(&i.tree)),
        ),
        _ => (Span::call_site(), "an item syn does not know".to_string()),
    }
}

fn render_use(tree: &UseTree) -> String {
    match tree {
        UseTree::Path(p) => format!("{}::{}", p.ident, render_use(&p.tree)),
        UseTree::Name(n) => n.ident.to_string(),
        UseTree::Rename(r) => format!("{} as {}", r.ident, r.rename),
        UseTree::Glob(_) => "*".to_string(),
        UseTree::Group(g) => {
            let items: Vec<String> = g.items.iter().map(render_use).collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Test-only code: `#[cfg(test)]` (or a cfg that requires `test`), `#[test]`, `#[tokio::test]`.

fn is_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        if a.path().is_ident("cfg") {
            a.parse_args::<Meta>().is_ok_and(|m| cfg_requires_test(&m))
        } else {
            a.path().segments.last().is_some_and(|s| s.ident == "test")
        }
    })
}

fn cfg_requires_test(m: &Meta) -> bool {
    match m {
        Meta::Path(p) => p.is_ident("test"),
        Meta::List(l) => {
            let Ok(nested) = l.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            else {
                return false;
            };
            if l.path.is_ident("all") {
                nested.iter().any(cfg_requires_test)
            } else if l.path.is_ident("any") {
                !nested.is_empty() && nested.iter().all(cfg_requires_test)
            } else {
                false
            }
        }
        Meta::NameValue(_) => false,
    }
}

macro_rules! attrs_of {
    ($value:expr, $enum:ident: $($variant:ident),* $(,)?) => {
        match $value {
            $($enum::$variant(x) => &x.attrs,)*
            _ => &[],
        }
    };
}

fn item_attrs(i: &Item) -> &[Attribute] {
    attrs_of!(i, Item: Const, Enum, ExternCrate, Fn, ForeignMod, Impl, Macro, Mod, Static, Struct,
        Trait, TraitAlias, Type, Union, Use)
}

fn expr_attrs(e: &Expr) -> &[Attribute] {
    attrs_of!(e, Expr: Array, Assign, Async, Await, Binary, Block, Break, Call, Cast, Closure, Const,
        Continue, Field, ForLoop, Group, If, Index, Infer, Let, Lit, Loop, Macro, Match, MethodCall,
        Paren, Path, Range, RawAddr, Reference, Repeat, Return, Struct, Try, TryBlock, Tuple, Unary,
        Unsafe, While, Yield)
}

// ---------------------------------------------------------------------------------------------------
// Collecting paths from the syntax tree.

/// Collects the paths used by the items of one module, and the names its `use` items bind.
struct Collector<'f> {
    file: &'f str,
    refs: Vec<Ref>,
    bindings: Vec<(String, Vec<String>)>,
}

impl<'f> Collector<'f> {
    fn new(file: &'f str) -> Collector<'f> {
        Collector {
            file,
            refs: Vec::new(),
            bindings: Vec::new(),
        }
    }

    fn push(&mut self, segs: Vec<String>, span: Span) {
        self.refs.push(Ref {
            file: self.file.to_string(),
            line: span.start().line,
            segs,
        });
    }

    fn use_tree(&mut self, tree: &UseTree, prefix: &mut Vec<String>) {
        let (leaf, bind, span) = match tree {
            UseTree::Path(p) => {
                prefix.push(ident(&p.ident));
                self.use_tree(&p.tree, prefix);
                prefix.pop();
                return;
            }
            UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, prefix);
                }
                return;
            }
            UseTree::Name(n) => (Some(ident(&n.ident)), None, n.ident.span()),
            UseTree::Rename(r) => (
                Some(ident(&r.ident)),
                Some(ident(&r.rename)),
                r.ident.span(),
            ),
            UseTree::Glob(g) => (None, None, g.star_token.spans[0]),
        };
        let mut segs = prefix.clone();
        segs.extend(leaf.filter(|l| l != "self"));
        let Some(last) = segs.last().cloned() else {
            return;
        };
        // The name it binds: its own (`a::b::{self}` binds `b`), another with `as`, none for a glob.
        let bind = match tree {
            UseTree::Glob(_) => None,
            _ => Some(bind.unwrap_or(last)),
        };
        if let Some(name) = bind.filter(|n| n != "_") {
            self.bindings.push((name, segs.clone()));
        }
        self.push(segs, span);
    }

    /// Tokens that are not a syntax tree (macro input, attribute arguments): parsed as expressions or
    /// items where they parse, else scanned for paths (`a::b::c`) token by token.
    fn tokens(&mut self, tokens: &TokenStream) {
        if let Ok(exprs) = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(tokens.clone()) {
            for e in &exprs {
                self.visit_expr(e);
            }
        } else if let Ok(file) = syn::parse2::<syn::File>(tokens.clone()) {
            for i in &file.items {
                self.visit_item(i);
            }
        } else {
            self.scan(tokens.clone());
        }
    }

    fn scan(&mut self, tokens: TokenStream) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let colon2 = |i: usize| {
            matches!((tts.get(i), tts.get(i + 1)),
                (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                    if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
        };
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Group(g) => self.scan(g.stream()),
                // The first segment of a path (not one after `::`, as in `::std::x`).
                TokenTree::Ident(first) if !(i >= 2 && colon2(i - 2)) => {
                    let mut segs = vec![ident(first)];
                    while colon2(i + 1) {
                        let Some(TokenTree::Ident(next)) = tts.get(i + 3) else {
                            break;
                        };
                        segs.push(ident(next));
                        i += 3;
                    }
                    if segs.len() >= 2 {
                        self.push(segs, first.span());
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// `#[serde(with = "names::f")]`-style paths in a string.
    fn string_path(&mut self, e: &Expr) {
        if let Expr::Assign(a) = e {
            if let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &*a.right
            {
                if let Ok(ty) = s.parse::<syn::Type>() {
                    self.visit_type(&ty);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, i: &'ast Item) {
        if !is_test(item_attrs(i)) {
            visit::visit_item(self, i);
        }
    }

    fn visit_impl_item(&mut self, i: &'ast ImplItem) {
        if !is_test(attrs_of!(i, ImplItem: Const, Fn, Type, Macro)) {
            visit::visit_impl_item(self, i);
        }
    }

    fn visit_trait_item(&mut self, i: &'ast TraitItem) {
        if !is_test(attrs_of!(i, TraitItem: Const, Fn, Type, Macro)) {
            visit::visit_trait_item(self, i);
        }
    }

    fn visit_expr(&mut self, e: &'ast Expr) {
        if !is_test(expr_attrs(e)) {
            visit::visit_expr(self, e);
        }
    }

    fn visit_local(&mut self, l: &'ast syn::Local) {
        if !is_test(&l.attrs) {
            visit::visit_local(self, l);
        }
    }

    fn visit_stmt_macro(&mut self, m: &'ast syn::StmtMacro) {
        if !is_test(&m.attrs) {
            visit::visit_stmt_macro(self, m);
        }
    }

    fn visit_field(&mut self, f: &'ast syn::Field) {
        if !is_test(&f.attrs) {
            visit::visit_field(self, f);
        }
    }

    fn visit_variant(&mut self, v: &'ast syn::Variant) {
        if !is_test(&v.attrs) {
            visit::visit_variant(self, v);
        }
    }

    fn visit_arm(&mut self, a: &'ast syn::Arm) {
        if !is_test(&a.attrs) {
            visit::visit_arm(self, a);
        }
    }

    fn visit_field_value(&mut self, f: &'ast syn::FieldValue) {
        if !is_test(&f.attrs) {
            visit::visit_field_value(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.use_tree(&u.tree, &mut Vec::new());
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() && p.segments.len() >= 2 {
            let segs = p.segments.iter().map(|s| ident(&s.ident)).collect();
            self.push(segs, p.segments[0].ident.span());
        }
        visit::visit_path(self, p);
    }

    /// `pub(in crate::a)` restricts visibility; it imports nothing.
    fn visit_visibility(&mut self, _: &'ast Visibility) {}

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(&m.tokens);
    }

    fn visit_attribute(&mut self, a: &'ast Attribute) {
        match &a.meta {
            Meta::Path(p) => self.visit_path(p),
            Meta::NameValue(nv) => {
                if !nv.path.is_ident("doc") {
                    self.visit_path(&nv.path);
                    self.visit_expr(&nv.value);
                }
            }
            Meta::List(l) => {
                self.visit_path(&l.path);
                if l.path.is_ident("cfg") {
                    return;
                }
                let args = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(l.tokens.clone());
                match args {
                    Ok(args) => {
                        for e in &args {
                            if l.path.is_ident("serde") {
                                self.string_path(e);
                            }
                            self.visit_expr(e);
                        }
                    }
                    Err(_) => self.scan(l.tokens.clone()),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The rules.

/// Every violation of the rules, one message each, in a stable order.
fn check(krate: &Crate, layers: &[&[&str]]) -> Vec<String> {
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

fn graph(krate: &Crate, layers: &[&[&str]]) -> String {
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

// ---------------------------------------------------------------------------------------------------
// The checker's own tests, on small sources in memory.

mod checker {
    use super::*;

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
}
