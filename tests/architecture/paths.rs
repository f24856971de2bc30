//! Collecting paths from the syntax tree: a `syn` visitor over one module's items that records every
//! path that may point into the crate (`use` trees, one per leaf; paths in bodies, types, attribute and
//! macro arguments, and `serde` attribute strings), skipping test-only code, and the names its `use`
//! items bind.

use crate::loader::{attrs_of, expr_attrs, ident, is_test, item_attrs};
use crate::model::Ref;
use proc_macro2::{Spacing, Span, TokenStream, TokenTree};
use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, ImplItem, Item, Meta, Token, TraitItem, UseTree, Visibility};

/// Collects the paths used by the items of one module, and the names its `use` items bind.
pub(crate) struct Collector<'f> {
    file: &'f str,
    pub(crate) refs: Vec<Ref>,
    pub(crate) bindings: Vec<(String, Vec<String>)>,
}

impl<'f> Collector<'f> {
    pub(crate) fn new(file: &'f str) -> Collector<'f> {
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
