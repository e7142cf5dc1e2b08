//! Tidy check of `runner`'s imports: they point down. The modules directly under
//! `runner/src/` form no import circle but the ones [`KNOWN_CIRCLES`] lists (each to be
//! broken, issue 19), and `model`, the results layer at the bottom, imports nothing of the
//! crate but `arch`. Unit-test modules (`#[cfg(test)]` to the end of a file) do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

mod sources;

/// The circles there were when this check came: each a set of modules that import each
/// other. The list only shrinks: a circle that grew, or is gone, fails the test.
const KNOWN_CIRCLES: &[&[&str]] = &[
    // `Report.diff: Option<Diff>`; the diff keys results by the baseline's `TestKey`, which
    // reads reports.
    &["baseline", "diff", "report"],
    // `Plan` holds test_bpf's `Catalog`; the parser takes the plan's `Filter`.
    &["plan", "test_bpf"],
];

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

/// The `crate::NAME` paths a text names, outside its unit tests.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
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
        deps.extend(imports(&text).into_iter().filter(|d| *d != module));
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
    let known: BTreeSet<BTreeSet<String>> = KNOWN_CIRCLES
        .iter()
        .map(|c| c.iter().map(|m| (*m).to_owned()).collect())
        .collect();
    let found = circles(graph);
    let mut problems = Vec::new();
    for circle in found.difference(&known) {
        problems.push(format!(
            "runner's modules {circle:?} import one another: make the lower one not import the \
             upper (move the shared type down, e.g. into model.rs)"
        ));
    }
    for circle in known.difference(&found) {
        problems.push(format!(
            "KNOWN_CIRCLES in xtask/tests/layers.rs lists {circle:?}, which is no longer a \
             circle: remove it"
        ));
    }
    for dep in graph.get("model").into_iter().flatten() {
        if !MODEL_MAY_IMPORT.contains(&dep.as_str()) {
            problems.push(format!(
                "runner/src/model.rs imports crate::{dep}: the results model imports nothing \
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
        problems.contains("model.rs imports crate::report"),
        "{problems}"
    );
    assert!(
        problems.contains("\"qemu\"") && problems.contains("\"session\""),
        "{problems}"
    );
}
