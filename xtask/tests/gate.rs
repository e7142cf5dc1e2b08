//! The regression gate on recorded runs: `cargo xtask report diff` and `report bless` against
//! the committed baselines in reports/baselines/, with no guest booted. The recorded consoles
//! are real runs of the pinned kernels (runner/tests/fixtures/README.md).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{path_str, recorded_run, root, show};

use runner::model::Status;
use runner::report::Report;

const X86_BASELINE: &str = "reports/baselines/x86_64-debian-6.1-amd64.yaml";

fn unchanged(text: String) -> String {
    text
}

/// Writes `report` into a new run directory.
fn run_dir(report: &Report) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    report
        .write(&dir.path().join("report.json"))
        .expect("the report is written");
    dir
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(root())
        .env_remove("CI")
        .output()
        .expect("cannot run the xtask binary")
}

/// `cargo xtask report diff OLD RUN EXTRA...`.
fn diff(old: &str, run: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["report", "diff", old, path_str(run)];
    args.extend_from_slice(extra);
    xtask(&args)
}

#[test]
fn a_clean_recorded_run_is_no_change() {
    let run = run_dir(&recorded_run("x86_64-full.log", unchanged));
    let output = diff(X86_BASELINE, run.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(": no change (1038 unchanged)"),
        "{}",
        show(&output)
    );
}

#[test]
fn an_injected_failure_exits_1_naming_it_as_a_regression() {
    let report = recorded_run("x86_64-injected-failure.log", unchanged);
    let failed = report
        .results
        .iter()
        .find(|r| r.status == Status::Fail)
        .expect("the fixture has a failing test");
    assert_eq!(failed.name, "JMP32_JLT_K: Small immediate");
    let run = run_dir(&report);
    let output = diff(X86_BASELINE, run.path(), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "regression      test_bpf JMP32_JLT_K: Small immediate [jit]: pass jited -> fail jited <- fails the gate"
        ),
        "{}",
        show(&output)
    );
    // The suites the failure stopped are infrastructure, kept apart from regressions.
    assert!(stdout.contains("1 regression"), "{}", show(&output));
    assert!(
        !stdout.contains("regression      test_bpf_tail"),
        "{}",
        show(&output)
    );
}

#[test]
fn a_test_missing_its_jit_flag_is_coverage_lost() {
    let report = recorded_run("x86_64-full.log", |log| {
        // As a kernel whose JIT gave up on one program prints it.
        log.replace("#10 LD_ABS_NET jited:1", "#10 LD_ABS_NET jited:0")
            .replace("[1014/1014 JIT'ed]", "[1013/1014 JIT'ed]")
    });
    let run = run_dir(&report);
    let output = diff(X86_BASELINE, run.path(), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("coverage-lost   test_bpf LD_ABS_NET [jit]: pass jited -> pass not-jited <- fails the gate"),
        "{}",
        show(&output)
    );
    // Unless the gate is told to let coverage go.
    let output = diff(X86_BASELINE, run.path(), &["--fail-on", "regression"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
}

#[test]
fn a_quarantined_test_is_reported_but_does_not_fail_the_gate() {
    let run = run_dir(&recorded_run("x86_64-injected-failure.log", unchanged));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let list = dir.path().join("quarantine.yaml");
    let entry = "- test: \"test_bpf/JMP32_JLT_K: Small immediate\"\n  arch: x86_64\n  reason: flaky under TCG\n  link: https://example.org/bug/1\n  expires: ";
    std::fs::write(&list, format!("{entry}2999-12-31\n")).expect("write");
    let output = diff(X86_BASELINE, run.path(), &["--quarantine", path_str(&list)]);
    // Not 1: the regression is quarantined. Still not 0: two suites never ran.
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("(quarantined: flaky under TCG (https://example.org/bug/1))"),
        "{}",
        show(&output)
    );

    std::fs::write(&list, format!("# flaky\n{entry}2020-01-31\n")).expect("write");
    let output = diff(X86_BASELINE, run.path(), &["--quarantine", path_str(&list)]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2: the quarantine of test_bpf/JMP32_JLT_K: Small immediate on x86_64 expired on 2020-01-31",
            list.display()
        )),
        "{}",
        show(&output)
    );
}

#[test]
fn a_corrupt_or_old_baseline_is_refused_with_where_and_what_to_do() {
    let run = run_dir(&recorded_run("x86_64-full.log", unchanged));
    let text = std::fs::read_to_string(root().join(X86_BASELINE)).expect("the baseline");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let broken = dir.path().join("x86_64-broken.yaml");
    let line = text
        .lines()
        .position(|l| l.contains(": pass jited"))
        .expect("a passing test");
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| match i == line {
            true => l.replace(": pass jited", ": passed"),
            false => l.to_owned(),
        })
        .collect();
    std::fs::write(&broken, edited.join("\n")).expect("write");
    let output = diff(path_str(&broken), run.path(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let at = format!("{}:{}:", broken.display(), line + 1);
    assert!(stderr.contains(&at), "wanted {at}\n{}", show(&output));
    assert!(
        stderr.contains("unknown status `passed`"),
        "{}",
        show(&output)
    );

    let old = dir.path().join("x86_64-old.yaml");
    std::fs::write(&old, text.replace("schema: 1", "schema: 0")).expect("write");
    let output = diff(path_str(&old), run.path(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is a baseline of schema 0"),
        "{}",
        show(&output)
    );
}

#[test]
fn bless_accepts_a_reviewed_run_and_refuses_under_ci() {
    let report = recorded_run("x86_64-injected-failure.log", unchanged);
    let run = run_dir(&report);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let baseline = dir.path().join("x86_64-local.yaml");
    let bless = [
        "report",
        "bless",
        path_str(run.path()),
        "--baseline",
        path_str(&baseline),
    ];
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(bless)
        .env("CI", "true")
        .output()
        .expect("cannot run the xtask binary");
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(!baseline.exists());

    let output = xtask(&bless);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let output = diff(path_str(&baseline), run.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("no change"),
        "{}",
        show(&output)
    );

    // Against the injected failure, the clean run is a fix.
    let clean = run_dir(&recorded_run("x86_64-full.log", unchanged));
    let output = diff(path_str(&baseline), clean.path(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(
            "fix             test_bpf JMP32_JLT_K: Small immediate [jit]: fail jited -> pass jited"
        ),
        "{}",
        show(&output)
    );
}
