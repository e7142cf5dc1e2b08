//! `kcidb.json` checked by its real consumer: kcidb-io's own schema validator, from PyPI.
//!
//! Needs `python3` with its `venv` module and access to PyPI (see `common::python_with`).

mod common;

use std::process::Command;

use runner::arch::Arch;
use runner::model::{AgentSuite, Mode, Status, Suite, SuiteName, TestResult};
use runner::outputs::kcidb;
use runner::report::{KernelInfo, Report, Timing};
use serde_json::Value;

/// The kcidb-io release whose latest schema `kcidb::render` writes.
const KCIDB_IO: &str = "kcidb-io==141";

/// Validates the JSON file named by `argv[1]` with kcidb-io's latest schema, exactly that
/// version (not an older one the document might also fit). Prints the schema's version; a
/// failure raises, so Python exits non-zero with the validation error on stderr.
const VALIDATE: &str = r#"
import json, sys
import kcidb_io
latest = kcidb_io.schema.LATEST
print(f"{latest.major}.{latest.minor}")
with open(sys.argv[1]) as f:
    data = json.load(f)
if not latest.is_compatible_exactly(data):
    sys.exit(f"not a v{latest.major}.{latest.minor} document: {data.get('version')}")
latest.validate_exactly(data)
"#;

/// What the validator said: its success, its stdout and its stderr.
struct Verdict {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn validate(document: &Value) -> Verdict {
    let python = common::python_with("kcidb", &[KCIDB_IO]);
    let dir = tempfile::tempdir().expect("cannot create a temporary directory");
    let path = dir.path().join("kcidb.json");
    let json = serde_json::to_vec_pretty(document).expect("a JSON value serializes");
    std::fs::write(&path, json).expect("cannot write kcidb.json");
    let output = Command::new(&python)
        .args(["-c", VALIDATE])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    Verdict {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Fails the test, with the validator's own words, unless kcidb-io accepts the document as
/// the version `kcidb::SCHEMA_VERSION` says.
fn assert_valid(document: &Value) {
    let verdict = validate(document);
    assert!(
        verdict.ok,
        "kcidb-io rejected the document:\n{}",
        verdict.stderr
    );
    let (major, minor) = kcidb::SCHEMA_VERSION;
    assert_eq!(
        verdict.stdout.trim(),
        format!("{major}.{minor}"),
        "{KCIDB_IO}'s latest schema is not the one kcidb::render writes"
    );
}

fn tests(document: &Value) -> &Vec<Value> {
    document["tests"]
        .as_array()
        .expect("the document has a list of tests")
}

/// Every test's id and path are unique and each test names the one build.
fn assert_unique_and_linked(document: &Value, results: usize) {
    let tests = tests(document);
    assert_eq!(tests.len(), results);
    for field in ["id", "path"] {
        let mut values: Vec<&str> = tests.iter().filter_map(|t| t[field].as_str()).collect();
        assert_eq!(values.len(), results, "every test has a {field}");
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), results, "the tests' {field}s are unique");
    }
    let build = &document["builds"][0]["id"];
    assert!(tests.iter().all(|t| &t["build_id"] == build));
    assert_eq!(
        document["builds"][0]["checkout_id"],
        document["checkouts"][0]["id"]
    );
}

fn result(
    suite: impl Into<SuiteName>,
    id: Option<u32>,
    name: &str,
    mode: Mode,
    status: Status,
) -> TestResult {
    TestResult::new(suite, id, name, mode, status).with_jited(id.map(|_| mode != Mode::Interp))
}

/// A run of a MIPS kernel in two modes with every status, names no path can hold as they
/// are, and a message far over the schema's limit.
fn realistic_report() -> Report {
    let jit_image = format!(
        "modes disagree; interp matched the expectation. jit JIT image, 4096 bytes:\n{}",
        "   0:\t27bdffd0 \taddiu\tsp,sp,-48\n".repeat(1000)
    );
    let mut results = Vec::new();
    for mode in [Mode::Interp, Mode::Jit] {
        results.extend([
            result(Suite::TestBpf, Some(0), "TAX", mode, Status::Pass),
            result(
                Suite::TestBpf,
                Some(29),
                "JGE (jt 0), test 1",
                mode,
                Status::Pass,
            ),
            result(
                Suite::TestBpf,
                Some(64),
                "ALU64_LSH_X: Shift < 32, low word",
                mode,
                Status::Fail,
            )
            .with_message("ret 0 != 1; FAIL (1 times)"),
            result(
                Suite::TestBpf,
                Some(65),
                "ALU64_LSH_X: Shift > 32, low word",
                mode,
                Status::Pass,
            ),
            result(
                Suite::TestBpf,
                Some(745),
                "JMP32_JSGT_K: operand preserved in zext",
                mode,
                Status::Pass,
            ),
            result(
                Suite::TestBpf,
                Some(747),
                "JMP32_JSGT_K: operand preserved in zext",
                mode,
                Status::Pass,
            ),
            result(
                Suite::TestBpf,
                Some(800),
                "\"quoted\" 'names' with.dots/and/slashes: ünïcödé ✓",
                mode,
                Status::Crash,
            )
            .with_message("Oops: general protection fault in do_jit\0"),
            result(
                Suite::TestTailCalls,
                Some(3),
                "Tail call error path, max count reached",
                mode,
                Status::Hang,
            )
            .with_message("no console output for 120 s"),
            TestResult::not_run(
                Suite::TestSkbSegment,
                mode,
                "(all tests)".to_owned(),
                "the guest crashed in an earlier suite",
            ),
            result(
                AgentSuite::Conformance,
                Some(12),
                "lock_xchg_dw.data",
                mode,
                Status::Skip,
            )
            .with_message("ISA v4 instruction, refused by this kernel"),
            result(
                AgentSuite::Verifier,
                Some(4),
                "ld_imm64: r1 = map[0] (unprivileged)",
                mode,
                Status::Error,
            )
            .with_message("the agent's output ended mid-case"),
            result(AgentSuite::Xdp, Some(2), "…", mode, Status::Pass).with_message(""),
        ]);
    }
    results.push(
        result(
            AgentSuite::Conformance,
            Some(7),
            "jit_divergence.data",
            Mode::Jit,
            Status::Divergence,
        )
        .with_message(&jit_image),
    );
    let kernel = KernelInfo {
        arch: Arch::Mips64el,
        release: Some("6.1.0-50-5kc-malta".to_owned()),
        source: "debian:linux-image-6.1.0-50-5kc-malta=6.1.164-1".to_owned(),
        revision: None,
        config_hash: None,
    };
    let mut report = Report::new(
        kernel,
        results,
        vec!["a harness error".to_owned()],
        false,
        Timing::default(),
    );
    report.started = Some("2025-06-30T12:34:56.789Z".to_owned());
    report
}

/// The report `cargo xtask replay` makes of a recorded full run on x86_64, with its defaults.
fn replayed_report() -> Report {
    common::replayed(
        "x86_64-full.log",
        Arch::X86_64,
        "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2",
    )
}

#[test]
fn a_report_with_every_status_and_odd_names_validates() {
    let report = realistic_report();
    let document = kcidb::render(&report).expect("the report renders");
    assert_valid(&document);
    assert_unique_and_linked(&document, report.results.len());

    let statuses: Vec<(&str, &str)> = tests(&document)
        .iter()
        .filter_map(|t| Some((t["misc"]["harness_status"].as_str()?, t["status"].as_str()?)))
        .collect();
    for status in Status::ALL {
        assert!(
            statuses.iter().any(|(ours, _)| *ours == status.name()),
            "{status:?} is in the report"
        );
    }
    for (ours, theirs) in [
        ("pass", "PASS"),
        ("fail", "FAIL"),
        ("crash", "FAIL"),
        ("hang", "FAIL"),
        ("divergence", "FAIL"),
        ("skip", "SKIP"),
        ("not_run", "MISS"),
        ("error", "ERROR"),
    ] {
        assert!(statuses.contains(&(ours, theirs)), "{ours} -> {theirs}");
    }

    let build = &document["builds"][0];
    assert_eq!(build["architecture"], "mips");
    assert_eq!(build["config_name"], "debian-6.1-5kc-malta");
    let paths: Vec<&str> = tests(&document)
        .iter()
        .filter_map(|t| t["path"].as_str())
        .collect();
    for path in [
        "bpf.test_bpf.jit.JGE_jt_0_test_1",
        "bpf.test_bpf.interp.ALU64_LSH_X_Shift_32_low_word__64",
        "bpf.test_bpf.interp.ALU64_LSH_X_Shift_32_low_word__65",
        "bpf.test_bpf.jit.JMP32_JSGT_K_operand_preserved_in_zext__747",
        "bpf.test_bpf.jit.quoted_names_with_dots_and_slashes_n_c_d",
        "bpf.test_skb_segment.interp.all_tests",
        "bpf.conformance.divergence.jit_divergence_data",
        "bpf.xdp.jit.unnamed",
    ] {
        assert!(paths.contains(&path), "{path} in {paths:#?}");
    }
    let divergence = tests(&document)
        .iter()
        .find(|t| t["misc"]["harness_status"] == "divergence")
        .expect("the divergence is a test");
    let excerpt = divergence["log_excerpt"]
        .as_str()
        .expect("the divergence has its message");
    assert!(excerpt.starts_with("modes disagree") && excerpt.ends_with("in report.json]"));
}

#[test]
fn the_replayed_full_run_validates() {
    let report = replayed_report();
    assert!(report.complete, "{:?}", report.errors);
    assert_eq!(report.results.len(), 1038);
    let document = kcidb::render(&report).expect("the report renders");
    assert_valid(&document);
    assert_unique_and_linked(&document, 1038);
    assert!(tests(&document)
        .iter()
        .all(|t| t["status"] == "PASS" && t.get("start_time").is_none()));
    // test_bpf names two of its tests alike; both keep a path of their own.
    for number in [745, 747] {
        let path = format!("bpf.test_bpf.jit.JMP32_JSGT_K_operand_preserved_in_zext__{number}");
        assert!(tests(&document).iter().any(|t| t["path"] == path.as_str()));
    }
}

#[test]
fn the_validator_rejects_a_broken_document() {
    let report = realistic_report();
    let valid = kcidb::render(&report).expect("the report renders");
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut document = valid.clone();
        edit(&mut document);
        validate(&document)
    };

    let verdict = broken(&|d| d["tests"][0]["status"] = "BROKEN".into());
    assert!(!verdict.ok, "an unknown status was accepted");
    assert!(
        verdict.stderr.contains("ValidationError") && verdict.stderr.contains("BROKEN"),
        "{}",
        verdict.stderr
    );
    let verdict = broken(&|d| d["tests"][0]["path"] = "bpf.test bpf".into());
    assert!(!verdict.ok, "a path with a space was accepted");
    let verdict = broken(&|d| d["tests"][0]["start_time"] = "2025-02-30T00:00:00Z".into());
    assert!(!verdict.ok, "a date that does not exist was accepted");
    let verdict = broken(&|d| d["version"]["minor"] = 2.into());
    assert!(!verdict.ok, "an older version was taken for the latest");
}
