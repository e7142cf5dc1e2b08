//! Tidy check of `runner`'s imports: they point down. The modules directly under
//! `runner/src/` form no import circle, and `model`, the results layer at the bottom, imports
//! nothing of the crate but `arch`. Each file is read as Rust (syn): an import is a path that starts with
//! `crate::`, in a `use` (grouped ones too), in code or in a macro's arguments. Items marked
//! `#[cfg(test)]` (unit-test modules, test-only functions, uses and impls) do not count,
//! wherever they stand in the file; doc comments and strings never do.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

mod sources;

/// What `model` may import.
const MODEL_MAY_IMPORT: &[&str] = &["arch"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn runner_src() -> PathBuf {
    sources::root().join("runner/src")
}

/// The module a file belongs to: its top-level name under `runner/src/`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file);
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy());
    first.unwrap_or_default().trim_end_matches(".rs").to_owned()
}

/// Whether `attrs` hold `#[cfg(test)]`: the item is compiled for unit tests only.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

/// The attributes of an item (none for one syn does not parse).
fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The attributes of an item in an impl block.
fn impl_item_attrs(item: &syn::ImplItem) -> &[syn::Attribute] {
    match item {
        syn::ImplItem::Const(i) => &i.attrs,
        syn::ImplItem::Fn(i) => &i.attrs,
        syn::ImplItem::Type(i) => &i.attrs,
        syn::ImplItem::Macro(i) => &i.attrs,
        _ => &[],
    }
}

/// The NAMEs of the `crate::NAME` paths met, outside items for tests only.
#[derive(Default)]
struct Imports(BTreeSet<String>);

impl Imports {
    /// The names a `use` tree takes from `crate`: `use crate::a::B`, `use crate::{a, b::C}`,
    /// also within a group (`use {crate::a, std::fmt}`).
    fn use_tree(&mut self, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) if p.ident == "crate" => self.under_crate(&p.tree),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(t)),
            _ => {}
        }
    }

    /// The first names of the tree that follows `use crate::`.
    fn under_crate(&mut self, tree: &syn::UseTree) {
        let name = match tree {
            syn::UseTree::Path(p) => &p.ident,
            syn::UseTree::Name(n) => &n.ident,
            syn::UseTree::Rename(r) => &r.ident,
            syn::UseTree::Group(g) => {
                g.items.iter().for_each(|t| self.under_crate(t));
                return;
            }
            syn::UseTree::Glob(_) => return,
        };
        self.0.insert(name.to_string());
    }

    /// The `crate :: NAME` token runs of a macro's arguments, which syn leaves unparsed.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (at, token) in tokens.iter().enumerate() {
            match (token, &tokens[at + 1..]) {
                (TokenTree::Group(g), _) => self.tokens(g.stream()),
                (
                    TokenTree::Ident(krate),
                    [TokenTree::Punct(a), TokenTree::Punct(b), TokenTree::Ident(name), ..],
                ) if krate == "crate" && a.as_char() == ':' && b.as_char() == ':' => {
                    self.0.insert(name.to_string());
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Imports {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test_only(item_attrs(item)) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if !is_test_only(impl_item_attrs(item)) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&u.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter();
        if let (Some(first), Some(second)) = (segments.next(), segments.next()) {
            if first.ident == "crate" {
                self.0.insert(second.ident.to_string());
            }
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// The `crate::NAME` paths a file names, outside its items for tests only.
fn imports(text: &str) -> syn::Result<BTreeSet<String>> {
    let file = syn::parse_file(text)?;
    let mut imports = Imports::default();
    imports.visit_file(&file);
    Ok(imports.0)
}

fn graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for file in sources::rust_files(src) {
        let module = module_of(src, &file);
        if module == "lib" || module == "main" {
            continue;
        }
        let text = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let deps = graph.entry(module.clone()).or_default();
        let names = imports(&text)
            .unwrap_or_else(|e| panic!("cannot parse {} as Rust: {e}", file.display()));
        deps.extend(names.into_iter().filter(|d| *d != module));
    }
    graph
}

fn reachable(graph: &Graph, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(m) = stack.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

/// The import circles: each a set of two or more modules that reach one another.
fn circles(graph: &Graph) -> BTreeSet<BTreeSet<String>> {
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reachable(graph, m))).collect();
    let mut found = BTreeSet::new();
    for (m, from_m) in &reach {
        let circle: BTreeSet<String> = from_m
            .iter()
            .filter(|other| reach.get(other).is_some_and(|r| r.contains(*m)))
            .cloned()
            .collect();
        if circle.len() >= 2 {
            found.insert(circle);
        }
    }
    found
}

fn problems(graph: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for circle in circles(graph) {
        problems.push(format!(
            "runner's modules {circle:?} import one another: make the lower one not import the \
             upper (move the shared type down, e.g. into model/)"
        ));
    }
    for dep in graph.get("model").into_iter().flatten() {
        if !MODEL_MAY_IMPORT.contains(&dep.as_str()) {
            problems.push(format!(
                "runner/src/model/ imports crate::{dep}: the results model imports nothing \
                 of ours but {MODEL_MAY_IMPORT:?}"
            ));
        }
    }
    problems
}

#[test]
fn runner_imports_point_down() {
    let graph = graph(&runner_src());
    assert!(
        graph.len() > 20,
        "only {} modules found: is the walk broken?",
        graph.len()
    );
    let problems = problems(&graph);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_planted_import_up_is_caught() {
    let mut graph = graph(&runner_src());
    // model -> report: the bottom layer importing one above it makes a new circle.
    graph
        .entry("model".to_owned())
        .or_default()
        .insert("report".to_owned());
    // qemu -> session, while session imports qemu: a new circle.
    graph
        .entry("qemu".to_owned())
        .or_default()
        .insert("session".to_owned());
    let problems = problems(&graph).join("\n");
    assert!(
        problems.contains("model/ imports crate::report"),
        "{problems}"
    );
    assert!(
        problems.contains("\"qemu\"") && problems.contains("\"session\""),
        "{problems}"
    );
}

/// A file with a test-only function in its middle and a unit-test module at its end.
const MIXED: &str = r#"
use crate::model::Mode;

#[cfg(test)]
fn fixture() -> crate::report::Report {
    unimplemented!()
}

use crate::{plan, qemu::Qemu};

pub fn parse(text: &str) -> crate::test_bpf::Catalog {
    let filter = crate::plan::Filter::parse(text);
    println!("{}", crate::arch::Arch::X86_64);
    unimplemented!()
}

#[cfg(test)]
mod tests {
    use crate::session::Run;

    fn case() {
        crate::diff::diff();
    }
}
"#;

#[test]
fn an_import_after_a_test_only_fn_is_seen() {
    let found = imports(MIXED).unwrap_or_else(|e| panic!("cannot parse MIXED: {e}"));
    for name in ["model", "plan", "qemu", "test_bpf", "arch"] {
        assert!(found.contains(name), "{name} not in {found:?}");
    }
    assert!(
        !found.contains("report"),
        "the test-only fn counted: {found:?}"
    );
}

#[test]
fn an_import_in_a_test_module_is_not() {
    let found = imports(MIXED).unwrap_or_else(|e| panic!("cannot parse MIXED: {e}"));
    for name in ["session", "diff"] {
        assert!(!found.contains(name), "{name} in {found:?}");
    }
}
