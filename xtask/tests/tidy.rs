//! Tidy checks of the docs, run with the fast tests: no VM, no network, only file reads.
//!
//! - ARCHITECTURE.md and README.md stay under 12,000 bytes each.
//! - ARCHITECTURE.md's code map names every module of `xtask/src/` and `runner/src/` (each
//!   `.rs` file as `` `name.rs` ``, each directory as `` `name/` ``, under its crate's heading),
//!   so that a new module cannot land without its line; and it names no file or directory that
//!   does not exist, so that a stale line fails.
//! - Every test target under `runner/tests/` and `xtask/tests/` is in one tier: named by the
//!   `test-fast` alias of `.cargo/config.toml`, or in [`FULL_TIER`] with the reason.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

mod sources;

/// The most bytes ARCHITECTURE.md and README.md may each hold.
const MAX_DOC_BYTES: u64 = 12_000;

/// The crates whose modules the code map lists, each under a heading that names it as
/// `` `CRATE/` ``.
const CRATES: [&str; 2] = ["xtask", "runner"];

use sources::root;

/// The test targets the fast tier (`cargo test-fast`) leaves out, each with what makes it
/// slow or needs what a developer's machine may not have.
const FULL_TIER: [(&str, &str); 9] = [
    ("e2e", "boots Debian's kernels under QEMU; downloads them"),
    ("kbuild", "builds linux-source and boots it"),
    (
        "track",
        "real kernels over revisions; a bisect builds kernels",
    ),
    ("fuzz", "builds a kernel with a planted bug and boots it"),
    (
        "firmware",
        "boots each arch under real QEMU; installs packages",
    ),
    ("junit", "junitparser in a venv, from PyPI"),
    ("kcidb", "kcidb-io's validator in a venv, from PyPI"),
    ("html", "headless Chromium"),
    ("track_html", "headless Chromium"),
];

/// The crates whose `tests/` directories hold test targets.
const TEST_DIRS: [&str; 2] = ["runner/tests", "xtask/tests"];

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `.rs` files and the directories directly under `dir`, by name.
fn modules(dir: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            dirs.insert(name);
        } else if name.ends_with(".rs") {
            files.insert(name);
        }
    }
    (files, dirs)
}

/// The lines under the first heading that contains `title`, up to the next heading of the
/// same or a higher level; `None` if no heading contains it.
fn section<'a>(doc: &'a str, title: &str) -> Option<Vec<&'a str>> {
    let mut level = None;
    let mut lines = Vec::new();
    let mut in_code = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let heading = if in_code || !line.starts_with('#') {
            None
        } else {
            Some(line.chars().take_while(|c| *c == '#').count())
        };
        match (level, heading) {
            (None, Some(_)) if line.contains(title) => level = heading,
            (Some(open), Some(this)) if this <= open => break,
            (Some(_), _) => lines.push(line),
            (None, _) => {}
        }
    }
    level.map(|_| lines)
}

/// The text between backticks on `line`.
fn code_spans(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// A code span that names a module path: a `.rs` file or a directory (`name/`), lowercase
/// words joined by `/`, such as `qemu.rs`, `bpf/insn.rs`, `fuzz/` or `runner/tests/html.rs`.
fn is_module_path(span: &str) -> bool {
    let stem = span
        .strip_suffix(".rs")
        .or_else(|| span.strip_suffix('/'))
        .unwrap_or("");
    !stem.is_empty()
        && stem.split('/').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Whether `path` exists as what `span` names: a directory for `name/`, a file for `name.rs`.
fn exists_as(path: &Path, span: &str) -> bool {
    if span.ends_with('/') {
        path.is_dir()
    } else {
        path.is_file()
    }
}

#[test]
fn architecture_and_readme_stay_under_12_kb() {
    let root = root();
    let mut problems = Vec::new();
    for doc in ["ARCHITECTURE.md", "README.md"] {
        let path = root.join(doc);
        let bytes = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
            .len();
        if bytes >= MAX_DOC_BYTES {
            problems.push(format!(
                "{doc} is {bytes} bytes, the limit is {MAX_DOC_BYTES}: shorten it, moving \
                 details to docs/*.md (figures) or to the code's doc comments (functions)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_code_map_names_every_module_and_no_module_that_is_gone() {
    let root = root();
    let doc = read(&root.join("ARCHITECTURE.md"));
    let mut problems = Vec::new();

    for krate in CRATES {
        let title = format!("`{krate}/`");
        let src = root.join(krate).join("src");
        let Some(lines) = section(&doc, &title) else {
            problems.push(format!(
                "ARCHITECTURE.md has no heading with {title}: the code map keeps one heading \
                 per crate, with a line for each module of {krate}/src/ under it"
            ));
            continue;
        };
        let spans: BTreeSet<&str> = lines.iter().flat_map(|l| code_spans(l)).collect();

        let (files, dirs) = modules(&src);
        let named = files
            .iter()
            .cloned()
            .chain(dirs.iter().map(|d| format!("{d}/")));
        for module in named {
            if !spans.contains(module.as_str()) {
                problems.push(format!(
                    "ARCHITECTURE.md has no line for {krate}/src/{module}: add \"- `{module}`: \
                     its main type or function and its job\" under the heading {title}"
                ));
            }
        }

        // Paths in a crate's section are inside its src/, except those from the root.
        for span in spans.iter().filter(|s| is_module_path(s)) {
            if span.starts_with("xtask/") || span.starts_with("runner/") {
                continue;
            }
            if !exists_as(&src.join(span), span) {
                problems.push(format!(
                    "ARCHITECTURE.md names `{span}` under the heading {title}, but \
                     {krate}/src/{span} does not exist: remove or correct that stale line"
                ));
            }
        }
    }

    // Paths from the root, anywhere in the document (the test tiers name test files).
    for span in doc.lines().flat_map(code_spans) {
        let from_root = CRATES.iter().any(|k| span.starts_with(&format!("{k}/")));
        if from_root && is_module_path(span) && !exists_as(&root.join(span), span) {
            problems.push(format!(
                "ARCHITECTURE.md names `{span}`, which does not exist: remove or correct that \
                 stale line"
            ));
        }
    }

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_section_ends_at_the_next_heading_of_its_level() {
    let doc = "# A\n## `x/`\n- `a.rs`\n### sub\n- `b.rs`\n## next\n- `c.rs`\n";
    let lines = section(doc, "`x/`").expect("the heading is there");
    let spans: Vec<&str> = lines.iter().flat_map(|l| code_spans(l)).collect();
    assert_eq!(spans, ["a.rs", "b.rs"]);
    assert!(section(doc, "`y/`").is_none());
}

#[test]
fn module_paths_are_rs_files_and_directories() {
    for yes in [
        "qemu.rs",
        "bpf/insn.rs",
        "fuzz/",
        "runner/tests/html.rs",
        "guest_c.rs",
    ] {
        assert!(is_module_path(yes), "{yes}");
    }
    for no in [
        "xshell",
        "/plan",
        "runner::merge",
        "Qemu::drop",
        ".rs",
        "a//b.rs",
        "A.rs",
    ] {
        assert!(!is_module_path(no), "{no}");
    }
}

/// The `--test` targets of `.cargo/config.toml`'s `test-fast` alias.
fn fast_tier(config: &str) -> Vec<&str> {
    let alias = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("test-fast"))
        .and_then(|rest| rest.trim_start().strip_prefix('='))
        .expect(".cargo/config.toml has no `test-fast = \"test ...\"` alias");
    let words: Vec<&str> = alias.trim().trim_matches('"').split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "--test")
        .map(|w| w[1])
        .collect()
}

#[test]
fn every_test_target_is_in_the_fast_tier_or_the_full_tier() {
    let root = root();
    let config = read(&root.join(".cargo/config.toml"));
    let fast = fast_tier(&config);
    let full: BTreeSet<&str> = FULL_TIER.iter().map(|(name, _)| *name).collect();
    let mut targets = BTreeSet::new();
    for dir in TEST_DIRS {
        let (files, _) = modules(&root.join(dir));
        targets.extend(files.iter().map(|f| f.trim_end_matches(".rs").to_owned()));
    }
    let mut problems = Vec::new();
    for target in &targets {
        match (
            fast.contains(&target.as_str()),
            full.contains(target.as_str()),
        ) {
            (false, false) => problems.push(format!(
                "the test target `{target}` is in no tier: add `--test {target}` to the \
                 `test-fast` alias in .cargo/config.toml if it needs no guest, kernel build, \
                 network or browser, else add it to FULL_TIER in xtask/tests/tidy.rs with why"
            )),
            (true, true) => problems.push(format!(
                "the test target `{target}` is in both tiers: the test-fast alias and FULL_TIER"
            )),
            _ => {}
        }
    }
    for name in fast.iter().copied().chain(full.iter().copied()) {
        if !targets.contains(name) {
            problems.push(format!(
                "`{name}` is named as a test target, but no {}/{name}.rs exists: remove it",
                TEST_DIRS.join(" or ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_fast_tier_is_read_from_the_alias() {
    let config = "[alias]\nxtask = \"run\"\ntest-fast = \"test --lib --test a --test b_c\"\n";
    assert_eq!(fast_tier(config), ["a", "b_c"]);
}
