//! Reading the crate into the model: `Crate::load` parses `src/lib.rs` and follows its `mod`
//! declarations (inline modules, `a.rs` and `a/mod.rs`, `#[path]`) to every file of the library, noting
//! the crate root's items that are not module declarations or `pub use`, and files that cannot be found
//! or parsed; the syntax helpers it and the path collector share; and the detection of test-only code
//! (`#[cfg(test)]`, `#[test]`), which is skipped.

use crate::model::{Crate, Module};
use crate::paths::Collector;
use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Attribute, Expr, Item, ItemMod, Meta, Token, UseTree, Visibility};

impl Crate {
    /// Reads the crate from `src/lib.rs`; `read` gets a path relative to the package (`src/a/b.rs`).
    pub(crate) fn load(read: &dyn Fn(&str) -> Option<String>) -> Crate {
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

pub(crate) fn ident(i: &proc_macro2::Ident) -> String {
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

pub(crate) fn is_test(attrs: &[Attribute]) -> bool {
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
pub(crate) use attrs_of;

pub(crate) fn item_attrs(i: &Item) -> &[Attribute] {
    attrs_of!(i, Item: Const, Enum, ExternCrate, Fn, ForeignMod, Impl, Macro, Mod, Static, Struct,
        Trait, TraitAlias, Type, Union, Use)
}

pub(crate) fn expr_attrs(e: &Expr) -> &[Attribute] {
    attrs_of!(e, Expr: Array, Assign, Async, Await, Binary, Block, Break, Call, Cast, Closure, Const,
        Continue, Field, ForLoop, Group, If, Index, Infer, Let, Lit, Loop, Macro, Match, MethodCall,
        Paren, Path, Range, RawAddr, Reference, Repeat, Return, Struct, Try, TryBlock, Tuple, Unary,
        Unsafe, While, Yield)
}
