//! Golden tests: console logs recorded from real guests (see runner/tests/fixtures/README.md)
//! replayed through the `cargo xtask replay` command, checked against the kernel's own numbers
//! and snapshotted.

#![allow(clippy::unwrap_used, reason = "a test panics to fail")]

use std::path::{Path, PathBuf};
use std::process::Command;

use runner::model::{Mode, Status, Suite, SuiteName};
use runner::report::Report;
use runner::session;

/// A recorded log of `runner/tests/fixtures/`, from the workspace's root.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("runner/tests/fixtures")
        .join(name)
}

/// Runs `cargo xtask replay` on a fixture and returns its exit code, stdout and report.
fn replay(log: &str, arch: &str, args: &[&str]) -> (i32, String, Report) {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("replay")
        .arg(fixture(log))
        .args(["--arch", arch, "--source", "fixture"])
        .args(args)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.is_empty(),
        "cargo xtask replay wrote to stderr: {stderr}"
    );
    let report = Report::read(&out.path().join("report.json")).unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.code().unwrap(), stdout, report)
}

/// The numbers Debian's 6.1 kernels print for a full run with the JIT on.
fn assert_full_jit_run(report: &Report) {
    assert!(report.complete, "{:?}", report.errors);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.results.len(), 1026 + 10 + 2);
    assert_eq!(report.count(Status::Pass), 1038);
    let count = |suite: Suite, jited: Option<bool>| {
        report
            .results
            .iter()
            .filter(|r| r.suite == SuiteName::Kernel(suite) && r.jited == jited)
            .count()
    };
    assert_eq!(count(Suite::TestBpf, Some(true)), 1014);
    assert_eq!(count(Suite::TestBpf, None), 12);
    assert_eq!(count(Suite::TestTailCalls, Some(true)), 10);
    assert_eq!(count(Suite::TestSkbSegment, None), 2);
    // Every test once, numbered from 0 without gaps in each suite.
    for (suite, n) in [
        (Suite::TestBpf, 1026),
        (Suite::TestTailCalls, 10),
        (Suite::TestSkbSegment, 2),
    ] {
        let ids: Vec<u32> = report
            .results
            .iter()
            .filter(|r| r.suite == SuiteName::Kernel(suite))
            .filter_map(|r| r.id)
            .collect();
        assert_eq!(ids, (0..n).collect::<Vec<u32>>(), "{suite}");
    }
}

#[test]
fn x86_64_full_run() {
    let (code, stdout, report) = replay("x86_64-full.log", "x86_64", &[]);
    assert_eq!(code, 0);
    assert_full_jit_run(&report);
    assert_eq!(report.kernel.release.as_deref(), Some("6.1.0-56-amd64"));
    insta::assert_snapshot!(stdout);
}

#[test]
fn mips64el_full_run() {
    let (code, stdout, report) = replay("mips64el-full.log", "mips64el", &[]);
    assert_eq!(code, 0);
    assert_full_jit_run(&report);
    assert_eq!(report.kernel.release.as_deref(), Some("6.1.0-50-5kc-malta"));
    insta::assert_snapshot!(stdout);
}

#[test]
fn names_keep_their_punctuation() {
    let (_, _, report) = replay("x86_64-full.log", "x86_64", &[]);
    let name = |id: u32| {
        report
            .results
            .iter()
            .find(|r| r.suite == SuiteName::Kernel(Suite::TestBpf) && r.id == Some(id))
            .unwrap()
            .name
            .clone()
    };
    assert_eq!(name(29), "JGE (jt 0), test 1");
    assert_eq!(name(57), "M[]: alt STX + LDX");
    assert_eq!(name(149), "ALU_MOD_X: 3 % 2 = 1");
    assert_eq!(
        name(419),
        "BPF_ATOMIC | BPF_W, BPF_CMPXCHG: Test failure return"
    );
    assert_eq!(name(50), "check: missing ret");
}

#[test]
fn an_injected_failure_exits_1_and_names_the_test() {
    let (code, stdout, report) = replay("x86_64-injected-failure.log", "x86_64", &[]);
    assert_eq!(code, 1);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, Some(445));
    assert_eq!(failed[0].name, "JMP32_JLT_K: Small immediate");
    assert_eq!(
        failed[0].message.as_deref(),
        Some("ret 0 != 123; FAIL (1 times)")
    );
    // The module stops after a failing suite: the other two are reported, as not run.
    let not_run: Vec<&str> = report
        .results
        .iter()
        .filter(|r| r.status == Status::NotRun)
        .map(|r| r.suite.name())
        .collect();
    assert_eq!(not_run, ["test_tail_calls", "test_skb_segment"]);
    // busybox insmod ran the suite twice; only the first pass counts.
    assert_eq!(report.results.len(), 1026 + 2);
    insta::assert_snapshot!(stdout);
}

#[test]
fn two_modes_in_one_guest() {
    let (code, stdout, report) = replay(
        "mips64el-tailcalls-interp-jit.log",
        "mips64el",
        &["--suite", "test_tail_calls", "--mode", "interp,jit"],
    );
    assert_eq!(code, 0);
    let interp: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.mode == Mode::Interp)
        .collect();
    let jit: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.mode == Mode::Jit)
        .collect();
    assert_eq!((interp.len(), jit.len()), (10, 10));
    assert!(interp
        .iter()
        .all(|r| r.jited == Some(false) && r.status == Status::Pass));
    assert!(jit
        .iter()
        .all(|r| r.jited == Some(true) && r.status == Status::Pass));
    insta::assert_snapshot!(stdout);
}

#[test]
fn a_test_name_with_spaces_selects_that_test() {
    let (code, _, report) = replay(
        "x86_64-name-with-spaces-hardened.log",
        "x86_64",
        &["--filter", "JGE (jt 0), test 1", "--mode", "jit-hardened"],
    );
    assert_eq!(code, 0);
    assert_eq!(report.results.len(), 1);
    let r = &report.results[0];
    assert_eq!(
        (r.id, r.name.as_str(), r.mode, r.jited),
        (
            Some(29),
            "JGE (jt 0), test 1",
            Mode::JitHardened,
            Some(true)
        )
    );
}

#[test]
fn an_unknown_test_name_is_a_usage_error() {
    let (code, stdout, report) = replay(
        "x86_64-missing-name.log",
        "x86_64",
        &["--filter", "name:NoSuchTest"],
    );
    assert_eq!(code, 2);
    assert_eq!(report.results.len(), 1);
    assert_eq!(report.results[0].status, Status::NotRun);
    insta::assert_snapshot!(stdout);
}

#[test]
fn a_log_cut_short_is_incomplete_and_exits_3() {
    let full = std::fs::read(fixture("x86_64-full.log")).unwrap();
    let cut = &full[..full.len() / 2];
    let plan = runner::plan::Plan::new(&Suite::ALL, &[Mode::Jit], None).unwrap();
    let outcome = session::replay(cut, &plan);
    assert!(!outcome.complete);
    assert!(outcome.results.iter().any(|r| r.status == Status::NotRun));
    assert!(outcome.results.iter().all(|r| r.status != Status::Fail));
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.contains("ends before the guest finished")),
        "{:?}",
        outcome.errors
    );
}

#[test]
fn line_splitting_does_not_depend_on_how_the_bytes_arrive() {
    for name in [
        "mips64el-tailcalls-interp-jit.log",
        "x86_64-name-with-spaces-hardened.log",
    ] {
        let log = std::fs::read(fixture(name)).unwrap();
        let split = |chunk: usize| {
            let mut splitter = runner::console::LineSplitter::new();
            let mut lines = Vec::new();
            for piece in log.chunks(chunk) {
                splitter.push(piece, |l| lines.push(l.to_vec()));
            }
            splitter.finish(|l| lines.push(l.to_vec()));
            lines
        };
        let whole = split(log.len());
        assert!(whole.len() > 100, "{name}");
        for chunk in [1, 7, 4096] {
            assert_eq!(split(chunk), whole, "{name}, chunks of {chunk}");
        }
    }
}
