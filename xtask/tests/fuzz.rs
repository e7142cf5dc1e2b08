//! `cargo xtask fuzz` end to end on a real guest: a JIT bug planted in the x86_64 kernel built
//! from linux-source-6.1 (`jsle` emitted as `jl`: equal operands no longer jump) is found in
//! the first programs, minimised to a few instructions, and the `.data` case written for it
//! fails the gate on the patched kernel and passes on the clean one. Kept short: twenty
//! programs, one finding minimised.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{path_str, root, show};

use runner::model::Status;
use runner::report::Report;

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("cannot run the xtask binary")
}

/// The instructions of a `.data` file's `-- asm` section.
fn asm_lines(data: &str) -> Vec<&str> {
    data.lines()
        .skip_while(|l| *l != "-- asm")
        .skip(1)
        .take_while(|l| !l.starts_with("-- "))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// `test` of the findings alone on the built x86_64 kernel, with `patch` if given.
fn gate(findings: &Path, out: &Path, patch: Option<&Path>) -> (Output, Report) {
    let mut args = vec![
        "test",
        "--arch",
        "x86_64",
        "--kernel",
        "linux-source",
        "--mode",
        "jit",
        "--no-baseline",
        "--conformance-dir",
        path_str(findings),
        "--out",
        path_str(out),
    ];
    if let Some(patch) = patch {
        args.extend(["--patch", path_str(patch)]);
    }
    let output = xtask(&args);
    let report = Report::read_run(out).unwrap_or_else(|e| panic!("{e}\n{}", show(&output)));
    (output, report)
}

#[test]
fn a_planted_jit_bug_is_found_minimised_and_fails_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let patch = root().join("images/patches/bites/x86-jit-jsle-as-jl.patch");
    let run = dir.path().join("fuzz");
    let output = xtask(&[
        "fuzz",
        "--arch",
        "x86_64",
        "--kernel",
        "linux-source",
        "--patch",
        path_str(&patch),
        "--count",
        "20",
        "--minimise",
        "1",
        "--jobs",
        "1",
        "--out",
        path_str(&run),
    ]);
    // Findings: exit status 1.
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let findings = run.join("findings");
    let mut files: Vec<_> = std::fs::read_dir(&findings)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}", show(&output));
    let summary = std::fs::read_to_string(run.join("fuzz.md")).unwrap();
    assert!(
        summary.contains("| accepted by the verifier | 20 (100.0 %) |"),
        "{summary}"
    );

    // The first finding was minimised: a handful of instructions around a `jsle`, and the
    // JIT image of the failing mode in its header, where the planted `jl` shows.
    let first = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|text| text.contains("minimised"))
        .expect("one finding is minimised");
    let asm = asm_lines(&first);
    assert!(asm.len() <= 10, "{first}");
    assert!(asm.iter().any(|l| l.starts_with("jsle")), "{first}");
    assert!(
        first.contains("JIT image") && first.contains("jl "),
        "{first}"
    );

    // The gate: every finding fails on the patched kernel, and passes without the patch.
    let (output, report) = gate(&findings, &dir.path().join("patched"), Some(&patch));
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let failed = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .count();
    assert_eq!(failed, files.len(), "{}", show(&output));
    let (output, report) = gate(&findings, &dir.path().join("clean"), None);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        report.results.iter().all(|r| r.status == Status::Pass),
        "{}",
        show(&output)
    );
}
