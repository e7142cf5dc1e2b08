//! Shared by the tests that run the `cargo xtask` binary.

use std::path::{Path, PathBuf};
use std::process::Output;

use runner::arch::Arch;
use runner::model::Mode;
use runner::plan::Selection;
use runner::report::{Report, Scope};

/// A command's status and output, for an assertion's message.
pub fn show(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A path as an argument; the tests' temporary paths are UTF-8.
#[allow(dead_code)]
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The workspace's root.
#[allow(dead_code)]
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_owned()
}

/// The harness's default cache, as the binary finds it: `$XDG_CACHE_HOME/bpf-jit-harness`,
/// else `~/.cache/bpf-jit-harness`.
#[allow(dead_code)]
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cache"))
        .join("bpf-jit-harness")
}

/// The report a default x86_64 run writes for this console log, edited first by `edit`.
#[allow(dead_code)]
pub fn recorded_run(log: &str, edit: impl Fn(String) -> String) -> Report {
    let path = root().join("runner/tests/fixtures").join(log);
    let console = std::fs::read(&path).expect("the fixture is there");
    let console = edit(String::from_utf8_lossy(&console).into_owned());
    let selection = Selection {
        suite: Vec::new(),
        mode: vec![Mode::Jit],
        filter: None,
    };
    let plan = selection.plan().expect("the default selection plans");
    let source = "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2".to_owned();
    let mut report =
        runner::session::replay(console.as_bytes(), &plan).into_report(Arch::X86_64, source);
    report.scope = Some(Scope {
        suites: ["test_bpf", "test_tail_calls", "test_skb_segment"]
            .map(String::from)
            .to_vec(),
        modes: vec![Mode::Jit],
        filter: None,
    });
    report
}
