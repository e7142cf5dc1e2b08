//! Tidy check of the code: no function in `xtask/src/` or `runner/src/` runs over
//! [`MAX_LINES`] lines, from its `fn` to its closing brace, unless [`ALLOWED`] names it with
//! the reason. A function a reader cannot hold in their head is split, not allowed.

use std::fs;
use std::path::Path;

use syn::visit::Visit;

mod sources;

const MAX_LINES: usize = 80;

/// Functions allowed over the limit, as `path-from-root::Owner::name`, each with why. The list
/// only shrinks: an entry whose function got short enough, or is gone, fails the test. It is
/// empty: every function the check found when it came has been split.
const ALLOWED: &[(&str, &str)] = &[];

/// A function's place and length.
#[derive(Debug)]
struct Function {
    /// `runner/src/agent.rs::judge`, or `xtask/src/fuzz.rs::FuzzCmd::run` in an impl.
    name: String,
    line: usize,
    lines: usize,
}

struct Lengths<'a> {
    file: &'a str,
    owner: Vec<String>,
    found: Vec<Function>,
}

impl Lengths<'_> {
    fn record(&mut self, ident: &syn::Ident, (first, last): (usize, usize)) {
        let mut name = self.file.to_owned();
        for part in self.owner.iter().chain([&ident.to_string()]) {
            name.push_str("::");
            name.push_str(part);
        }
        self.found.push(Function {
            name,
            line: first,
            lines: last + 1 - first,
        });
    }
}

/// The lines from `fn` (past doc comments and attributes) to the closing brace.
fn from_fn(sig: &syn::Signature, block: &syn::Block) -> (usize, usize) {
    (
        sig.fn_token.span.start().line,
        block.brace_token.span.close().end().line,
    )
}

impl<'ast> Visit<'ast> for Lengths<'_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.record(&f.sig.ident, from_fn(&f.sig, &f.block));
        self.owner.push(f.sig.ident.to_string());
        syn::visit::visit_item_fn(self, f);
        self.owner.pop();
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.record(&f.sig.ident, from_fn(&f.sig, &f.block));
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.record(&f.sig.ident, from_fn(&f.sig, block));
        }
        syn::visit::visit_trait_item_fn(self, f);
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let owner = match &*i.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        self.owner.push(owner.unwrap_or_else(|| "impl".to_owned()));
        syn::visit::visit_item_impl(self, i);
        self.owner.pop();
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // Unit tests may run long: a test is a list of cases, read one at a time.
        let is_tests = m.attrs.iter().any(|a| {
            a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
        });
        if !is_tests {
            self.owner.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.owner.pop();
        }
    }
}

fn functions(root: &Path) -> Vec<Function> {
    let mut files = Vec::new();
    for dir in ["xtask/src", "runner/src"] {
        files.extend(sources::rust_files(&root.join(dir)));
    }
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let ast = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("cannot parse {} as Rust: {e}", path.display()));
        let file = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let mut lengths = Lengths {
            file: &file,
            owner: Vec::new(),
            found: Vec::new(),
        };
        lengths.visit_file(&ast);
        found.append(&mut lengths.found);
    }
    found
}

#[test]
fn no_function_runs_over_the_limit() {
    let found = functions(&sources::root());
    assert!(
        found.len() > 500,
        "only {} functions found: is the walk broken?",
        found.len()
    );
    let mut problems = Vec::new();
    for f in found.iter().filter(|f| f.lines > MAX_LINES) {
        if !ALLOWED.iter().any(|(name, _)| *name == f.name) {
            problems.push(format!(
                "{} (line {}) is {} lines, over {MAX_LINES}: split it, or add it to ALLOWED in \
                 xtask/tests/function_length.rs with the reason",
                f.name, f.line, f.lines
            ));
        }
    }
    for (name, _) in ALLOWED {
        match found.iter().find(|f| f.name == *name) {
            None => problems.push(format!(
                "ALLOWED names {name}, which does not exist: remove it"
            )),
            Some(f) if f.lines <= MAX_LINES => problems.push(format!(
                "ALLOWED names {name}, which is {} lines now: remove it from the list",
                f.lines
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
