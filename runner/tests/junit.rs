//! `junit.xml` read by a real JUnit consumer: Python's junitparser, with the standard library's
//! XML parser as the judge of well-formedness. Two reports: a made-up one with every status,
//! hostile names and two modes, and a real one replayed from a recorded console with a
//! failing test.

mod common;

use std::process::Command;

use runner::arch::Arch;
use runner::model::{AgentSuite, Mode, Status, Suite, SuiteName, TestResult};
use runner::report::{KernelInfo, Report, ShardId, Timing};
use serde_json::Value;

/// Loads the file given as argv[1] with ElementTree (which refuses ill-formed XML) and with
/// junitparser, walks every suite and case, and prints what it saw as JSON.
const READ_JUNIT: &str = r#"
import json, sys
import xml.etree.ElementTree as ET
from junitparser import JUnitXml, Failure, Error, Skipped

path = sys.argv[1]
tree = ET.parse(path)
xml = JUnitXml.fromfile(path)
kinds = {Failure: "failure", Error: "error", Skipped: "skipped"}
suites, cases = [], []
for suite in xml:
    walked = 0
    for case in suite:
        walked += 1
        entry = {"suite": suite.name, "name": case.name, "classname": case.classname,
                 "kind": "passed"}
        if case.result:
            result = case.result[0]
            entry.update(kind=kinds[type(result)], type=result.type,
                         message=result.message, text=result.text)
        cases.append(entry)
    suites.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures,
                   "errors": suite.errors, "skipped": suite.skipped,
                   "timestamp": suite.timestamp, "walked": walked})
jited = []
for testcase in tree.getroot().iter("testcase"):
    values = [p.get("value") for p in testcase.iter("property") if p.get("name") == "jited"]
    jited.append(values[0] if values else None)
print(json.dumps({
    "name": xml.name, "time": xml.time, "time_attribute": tree.getroot().get("time"),
    "tests": xml.tests, "failures": xml.failures,
    "errors": xml.errors, "skipped": xml.skipped,
    "suites": suites, "cases": cases, "jited": jited,
}))
"#;

/// Renders `report`, has Python read the file, and returns its summary.
fn read_back(report: &Report) -> Value {
    let python = common::python_with("junit", &["junitparser==5.0.3"]);
    let xml = runner::outputs::junit::render(report).expect("the report renders");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("junit.xml");
    std::fs::write(&path, xml).expect("junit.xml is written");
    let output = Command::new(&python)
        .arg("-c")
        .arg(READ_JUNIT)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "junitparser refused junit.xml: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// The JUnit element a status becomes, as junitparser names it.
fn junit_kind(status: Status) -> &'static str {
    match status {
        Status::Pass => "passed",
        Status::Fail | Status::Divergence | Status::Crash | Status::Hang => "failure",
        Status::Error => "error",
        Status::Skip | Status::NotRun => "skipped",
    }
}

fn count(report: &Report, kind: &str) -> u64 {
    let n = report
        .results
        .iter()
        .filter(|r| junit_kind(r.status) == kind)
        .count();
    u64::try_from(n).expect("fits")
}

/// The results grouped as suites: by suite and mode in the order each group first appears,
/// each group's results in the report's order (the harness's own suites list a case's modes
/// one after the other).
fn grouped(report: &Report) -> Vec<&TestResult> {
    let mut groups: Vec<((&str, Mode), Vec<&TestResult>)> = Vec::new();
    for r in &report.results {
        let key = (r.suite.name(), r.mode);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(_, members)| members)
        .collect()
}

/// What every report must give: one case per result, suite by suite, each with its outcome
/// and class, and totals that add up at every level.
fn check_against(report: &Report, seen: &Value) {
    let arch = report.kernel.arch.name();
    let results = grouped(report);
    let cases = seen["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), results.len(), "one case per result");
    for (result, case) in results.iter().zip(cases) {
        let class = format!("{arch}.{}.{}", result.suite, result.mode.name());
        assert_eq!(case["classname"], class.as_str(), "{case}");
        assert_eq!(case["suite"], class.as_str(), "{case}");
        assert_eq!(case["kind"], junit_kind(result.status), "{case}");
        if result.status != Status::Pass {
            assert_eq!(case["type"], result.status.name(), "{case}");
        }
    }
    let jited: Vec<Value> = results
        .iter()
        .map(|r| r.jited.map_or(Value::Null, |j| j.to_string().into()))
        .collect();
    assert_eq!(seen["jited"], Value::Array(jited));

    let totals = (
        seen["tests"].as_u64(),
        seen["failures"].as_u64(),
        seen["errors"].as_u64(),
        seen["skipped"].as_u64(),
    );
    let expected = (
        Some(u64::try_from(report.results.len()).expect("fits")),
        Some(count(report, "failure")),
        Some(count(report, "error")),
        Some(count(report, "skipped")),
    );
    assert_eq!(totals, expected, "{seen}");

    // Each suite's attributes against its own cases, and the suites in the report's order.
    let suites = seen["suites"].as_array().expect("suites");
    let mut order: Vec<String> = Vec::new();
    for r in &report.results {
        let name = format!("{arch}.{}.{}", r.suite, r.mode.name());
        if !order.contains(&name) {
            order.push(name);
        }
    }
    let names: Vec<&str> = suites.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, order);
    for suite in suites {
        let of_suite: Vec<&Value> = cases
            .iter()
            .filter(|c| c["suite"] == suite["name"])
            .collect();
        let of_kind = |kind: &str| of_suite.iter().filter(|c| c["kind"] == kind).count();
        assert_eq!(suite["walked"].as_u64(), suite["tests"].as_u64(), "{suite}");
        assert_eq!(suite["tests"], of_suite.len(), "{suite}");
        assert_eq!(suite["failures"], of_kind("failure"), "{suite}");
        assert_eq!(suite["errors"], of_kind("error"), "{suite}");
        assert_eq!(suite["skipped"], of_kind("skipped"), "{suite}");
    }
}

/// The one case junitparser saw in class `class` under `name`.
fn case<'a>(seen: &'a Value, class: &str, name: &str) -> &'a Value {
    let cases = seen["cases"].as_array().expect("cases");
    let mut found = cases
        .iter()
        .filter(|c| c["classname"] == class && c["name"] == name);
    let case = found
        .next()
        .unwrap_or_else(|| panic!("no case `{name}` in {class}"));
    assert!(found.next().is_none(), "two cases `{name}` in {class}");
    case
}

fn result(
    suite: impl Into<SuiteName>,
    id: Option<u32>,
    name: &str,
    mode: Mode,
    status: Status,
) -> TestResult {
    TestResult::new(suite, id, name, mode, status)
        .with_jited((status == Status::Pass).then_some(mode != Mode::Interp))
}

/// A name as the guest could send it: control characters, an ANSI colour, a CDATA end, both
/// quotes, markup, characters XML forbids, a tab and a line break.
const HOSTILE: &str =
    "x\u{1}y \u{1b}[1mbold\u{1b}[0m ]]> \"dq\" 'sq' <b>&amp;</b>\tz\nw \u{fffe}\u{ffff}\u{7}";
/// The same as consumers see it: forbidden characters as U+FFFD, tab and line break as spaces.
const HOSTILE_SHOWN: &str = "x\u{fffd}y \u{fffd}[1mbold\u{fffd}[0m ]]> \"dq\" 'sq' <b>&amp;</b> z w \u{fffd}\u{fffd}\u{fffd}";

fn realistic_report() -> Report {
    use Mode::{Interp, Jit};
    use Status::*;
    let results = vec![
        // The kernel's suites, in both modes; test_bpf repeats names, the numbers tell them apart.
        result(Suite::TestBpf, Some(0), "TAX", Interp, Pass),
        result(Suite::TestBpf, Some(1), "JMP_JSET_K", Interp, Fail)
            .with_message("ret 0 != 1\nFAIL (1 times)"),
        result(Suite::TestBpf, Some(2), "JMP_JSET_K", Interp, Pass),
        result(Suite::TestBpf, Some(3), HOSTILE, Interp, Crash)
            .with_message("BUG: kernel NULL pointer dereference\nRIP: bpf_int_jit_compile"),
        result(Suite::TestBpf, Some(4), "ALU64_MOV_X", Interp, NotRun)
            .with_message("the guest crashed on #3"),
        result(Suite::TestBpf, Some(0), "TAX", Jit, Pass),
        result(Suite::TestBpf, Some(1), "JMP_JSET_K", Jit, Hang)
            .with_message("no verdict for 60 s"),
        result(Suite::TestBpf, Some(2), "JMP_JSET_K", Jit, Error)
            .with_message("verdict line cut: \u{1}\u{ffff}"),
        result(Suite::TestBpf, Some(3), HOSTILE, Jit, Pass),
        result(Suite::TestTailCalls, None, "test_tail_calls", Jit, NotRun)
            .with_message("the module stopped after a failing suite"),
        // The harness's own suite: each case in both modes, then its divergence.
        result(AgentSuite::Conformance, Some(0), "sdiv32", Interp, Skip)
            .with_message("ISA v4: needs Linux 6.6"),
        result(AgentSuite::Conformance, Some(0), "sdiv32", Jit, Skip)
            .with_message("ISA v4: needs Linux 6.6"),
        result(
            AgentSuite::Conformance,
            Some(1),
            "mov64 ]]> \"q\"",
            Interp,
            Pass,
        ),
        result(
            AgentSuite::Conformance,
            Some(1),
            "mov64 ]]> \"q\"",
            Jit,
            Fail,
        )
        .with_message("r0 = 0x1 != 0x100000001"),
        result(
            AgentSuite::Conformance,
            Some(1),
            "mov64 ]]> \"q\"",
            Jit,
            Divergence,
        )
        .with_message("interp: 0x100000001\njit: 0x1"),
    ];
    let kernel = KernelInfo {
        arch: Arch::X86_64,
        release: Some("6.1.0-56-amd64".to_owned()),
        source: "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2".to_owned(),
        revision: None,
        config_hash: None,
    };
    let timing = Timing {
        total_s: 93.25,
        ..Timing::default()
    };
    let mut report = Report::new(kernel, results, Vec::new(), true, timing);
    report.started = Some("2025-03-04T05:06:07Z".to_owned());
    report.shard = Some(ShardId { index: 1, count: 2 });
    report
}

#[test]
fn junitparser_reads_every_status_and_hostile_names() {
    let report = realistic_report();
    for status in Status::ALL {
        assert!(report.count(status) > 0, "no {status:?} in the report");
    }
    let seen = read_back(&report);
    check_against(&report, &seen);

    assert_eq!(
        seen["name"],
        "bpf-jit-harness x86_64 6.1.0-56-amd64 shard 1/2"
    );
    assert_eq!(seen["time"], 93.25);
    let suites = seen["suites"].as_array().expect("suites");
    assert!(suites
        .iter()
        .all(|s| s["timestamp"] == "2025-03-04T05:06:07Z"));

    let crashed = case(
        &seen,
        "x86_64.test_bpf.interp",
        &format!("#3 {HOSTILE_SHOWN}"),
    );
    assert_eq!(crashed["message"], "BUG: kernel NULL pointer dereference");
    assert_eq!(
        crashed["text"],
        "BUG: kernel NULL pointer dereference\nRIP: bpf_int_jit_compile"
    );
    let failed = case(&seen, "x86_64.test_bpf.interp", "#1 JMP_JSET_K");
    assert_eq!(failed["message"], "ret 0 != 1");
    let not_run = case(&seen, "x86_64.test_tail_calls.jit", "test_tail_calls");
    assert_eq!(
        not_run["message"],
        "not run: the module stopped after a failing suite"
    );
    let error = case(&seen, "x86_64.test_bpf.jit", "#2 JMP_JSET_K");
    assert_eq!(error["message"], "verdict line cut: \u{fffd}\u{fffd}");
    // The harness's own cases are not numbered.
    let divergent: Vec<&Value> = seen["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["name"] == "mov64 ]]> \"q\"" && c["type"] == "divergence")
        .collect();
    assert_eq!(divergent.len(), 1);
    assert_eq!(divergent[0]["text"], "interp: 0x100000001\njit: 0x1");
}

#[test]
fn junitparser_finds_the_injected_failure_of_a_replayed_run() {
    // What `cargo xtask test --arch x86_64` runs by default, as the fixture was recorded.
    let report = common::replayed("x86_64-injected-failure.log", Arch::X86_64, "fixture");
    assert_eq!(report.results.len(), 1026 + 2);

    let seen = read_back(&report);
    check_against(&report, &seen);
    assert_eq!(
        (
            &seen["tests"],
            &seen["failures"],
            &seen["errors"],
            &seen["skipped"]
        ),
        (&1028.into(), &1.into(), &0.into(), &2.into())
    );
    let failed = case(
        &seen,
        "x86_64.test_bpf.jit",
        "#445 JMP32_JLT_K: Small immediate",
    );
    assert_eq!(failed["kind"], "failure");
    assert_eq!(failed["type"], "fail");
    assert_eq!(failed["message"], "ret 0 != 123; FAIL (1 times)");
    // A replayed recording has no wall clock: no time rather than 0 s.
    assert_eq!(seen["time_attribute"], Value::Null);
}
