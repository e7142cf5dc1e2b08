//! `kcidb.json`: the run's results as one KCIDB I/O document, so that they can be submitted to
//! KernelCI's common reporting database (`kcidb-submit`).
//!
//! The document follows the latest schema that `kcidb-io` 141 carries, v5.3
//! (`kcidb_io.schema.LATEST`). It holds one checkout (where the kernel's source came from), one
//! build (the kernel that was booted) and one test per result. `runner/tests/kcidb.rs` checks
//! every document against kcidb-io's own validator.
//!
//! Ids are opaque to KCIDB but must be unique per origin: a submission with an id already
//! stored updates that object. So the checkout and the build are named by what they are (the
//! same Debian package gives the same build in every run), and each test by its build, the
//! run's start time and its path.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::arch::Arch;
use crate::model::{Status, TestResult};
use crate::report::{KernelInfo, Report};

/// The CI system KCIDB credits with the objects; the schema wants `[a-z0-9_]+`.
pub const ORIGIN: &str = "bpf_jit_harness";

/// The KCIDB I/O schema version written (major, minor): kcidb-io 141's latest.
pub const SCHEMA_VERSION: (u32, u32) = (5, 3);

/// The first segment of every test's path: all of this harness's tests in KCIDB's test tree.
const PATH_ROOT: &str = "bpf";

/// The schema's `maxLength` of `log_excerpt`, in characters.
const EXCERPT_MAX_CHARS: usize = 16384;

/// `report.started` is not an RFC 3339 date-time, so no valid document can carry it.
#[derive(Debug, thiserror::Error)]
#[error("the report's start time `{0}` is not an RFC 3339 date-time")]
pub struct BadStartTime(pub String);

/// Renders the whole report as one KCIDB I/O document.
///
/// Fails only when `report.started` is malformed: every other field is made valid (text
/// cleaned, names sanitized, messages cut to the schema's limits).
pub fn render(report: &Report) -> Result<Value, BadStartTime> {
    if let Some(started) = &report.started {
        if !is_rfc3339(started) {
            return Err(BadStartTime(started.clone()));
        }
    }
    let source = Source::of(&report.kernel);
    let checkout_id = format!("{ORIGIN}:{}", source.checkout);
    let build_id = format!(
        "{ORIGIN}:{}:{}",
        clean(&report.kernel.source),
        report.kernel.arch
    );
    // A report without a start time is a replayed recording (see `Report::started`).
    let run = report.started.as_deref().unwrap_or("replay");
    let tests: Vec<Value> = report
        .results
        .iter()
        .zip(test_paths(&report.results))
        .map(|(result, path)| {
            let id = format!("{build_id}:{run}:{path}");
            test(report, result, id, &build_id, path)
        })
        .collect();
    let (major, minor) = SCHEMA_VERSION;
    Ok(json!({
        "version": { "major": major, "minor": minor },
        "checkouts": [checkout(report, &source, &checkout_id)],
        "builds": [build(report, &checkout_id, &build_id)],
        "tests": tests,
    }))
}

/// What is known of the kernel's source: no git commit, only a package or a directory.
struct Source {
    /// The checkout's id without the origin: the same for every flavour and architecture built
    /// from one Debian source version, so that they appear as builds of one checkout.
    checkout: String,
    tree: Option<&'static str>,
    comment: String,
    misc: Value,
}

impl Source {
    fn of(kernel: &KernelInfo) -> Source {
        let source = clean(&kernel.source);
        // `debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2`: every linux-image package is
        // built from Debian's `linux` source package, at the same version.
        let debian = source
            .strip_prefix("debian:")
            .and_then(|package| package.split_once('='));
        match debian {
            Some((package, version)) if package.starts_with("linux-image-") => Source {
                checkout: format!("debian:linux={version}"),
                tree: Some("debian"),
                comment: format!("Debian's linux {version}"),
                misc: json!({ "source_package": "linux", "package_version": version }),
            },
            _ => Source {
                checkout: source.clone(),
                tree: None,
                comment: format!("kernel from {source}"),
                misc: json!({ "source": source }),
            },
        }
    }
}

fn checkout(report: &Report, source: &Source, id: &str) -> Value {
    let mut checkout = Map::new();
    checkout.insert("id".into(), id.into());
    checkout.insert("origin".into(), ORIGIN.into());
    if let Some(tree) = source.tree {
        checkout.insert("tree_name".into(), tree.into());
    }
    checkout.insert("comment".into(), source.comment.as_str().into());
    // The run had the kernel, so its source could be had.
    checkout.insert("valid".into(), true.into());
    insert_start_time(&mut checkout, report);
    checkout.insert("misc".into(), source.misc.clone());
    checkout.into()
}

fn build(report: &Report, checkout_id: &str, id: &str) -> Value {
    let kernel = &report.kernel;
    let mut misc = Map::new();
    misc.insert("source".into(), clean(&kernel.source).into());
    misc.insert("guest_arch".into(), kernel.arch.name().into());
    if let Some(release) = &kernel.release {
        misc.insert("release".into(), clean(release).into());
    }
    let mut build = Map::new();
    build.insert("id".into(), id.into());
    build.insert("origin".into(), ORIGIN.into());
    build.insert("checkout_id".into(), checkout_id.into());
    build.insert("architecture".into(), architecture(kernel.arch).into());
    build.insert("config_name".into(), kernel.flavour().into());
    let comment = match &kernel.release {
        Some(release) => format!("{} ({})", clean(&kernel.source), clean(release)),
        None => clean(&kernel.source),
    };
    build.insert("comment".into(), comment.into());
    // The harness does not build kernels: one it booted was built, by its distribution or
    // by whoever filled the directory.
    build.insert("status".into(), "PASS".into());
    insert_start_time(&mut build, report);
    build.insert("misc".into(), misc.into());
    build.into()
}

fn test(report: &Report, result: &TestResult, id: String, build_id: &str, path: String) -> Value {
    let (jit_enable, jit_harden) = result.mode.sysctls();
    let mut misc = Map::new();
    misc.insert("suite".into(), clean(result.suite.name()).into());
    if let Some(number) = result.id {
        misc.insert("test_number".into(), number.into());
    }
    misc.insert("name".into(), clean(&result.name).into());
    misc.insert("mode".into(), result.mode.name().into());
    if let Some(jited) = result.jited {
        misc.insert("jited".into(), jited.into());
    }
    // KCIDB's statuses are coarser than ours: keep ours (crash, hang, divergence, ...).
    misc.insert("harness_status".into(), result.status.name().into());

    let mut test = Map::new();
    test.insert("id".into(), id.into());
    test.insert("origin".into(), ORIGIN.into());
    test.insert("build_id".into(), build_id.into());
    test.insert("path".into(), path.into());
    test.insert("status".into(), status(result.status).into());
    // The path lost the name's punctuation; dashboards show the comment as it was.
    test.insert("comment".into(), clean(&result.name).into());
    test.insert(
        "environment".into(),
        json!({
            "comment": format!("QEMU {} guest", report.kernel.arch),
            "misc": { "bpf_jit_enable": jit_enable, "bpf_jit_harden": jit_harden },
        }),
    );
    if let Some(message) = result.message.as_deref().filter(|m| !m.is_empty()) {
        test.insert("log_excerpt".into(), excerpt(message).into());
    }
    insert_start_time(&mut test, report);
    test.insert("misc".into(), misc.into());
    test.into()
}

/// The run's start time, for every object the run obtained or ran: the schema allows no
/// null, so a report without one (a replayed recording) leaves the field out.
fn insert_start_time(object: &mut Map<String, Value>, report: &Report) {
    if let Some(started) = &report.started {
        object.insert("start_time".into(), started.as_str().into());
    }
}

/// KCIDB's status for ours, by the schema's own definitions: FAIL is "completed and reported
/// the tested code as faulty", ERROR "didn't complete due to a failure in its [the test's]
/// code", MISS "didn't run due to a failure in the test harness", SKIP "not applicable".
fn status(status: Status) -> &'static str {
    match status {
        Status::Pass => "PASS",
        // A crash or a hang is the kernel under test failing while it ran the test: its
        // status is known, and it is faulty. Modes that disagree mean a faulty JIT.
        Status::Fail | Status::Crash | Status::Hang | Status::Divergence => "FAIL",
        // ISA v4 on an older kernel, a refused map type: not applicable to this kernel.
        Status::Skip => "SKIP",
        // Never reached, after an earlier crash or an interruption: nothing is known.
        Status::NotRun => "MISS",
        // The harness could not tell what happened.
        Status::Error => "ERROR",
    }
}

/// The kernel's name for an architecture (`ARCH=`), which KernelCI uses.
fn architecture(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Mips64el | Arch::Mipsel | Arch::Mips | Arch::Mips64r6el => "mips",
    }
}

/// Every result's path, `bpf.SUITE.MODE.NAME`, unique within the report.
///
/// Names are sanitized into path segments, which can make two names equal (`Shift < 32` and
/// `Shift > 32`), and test_bpf itself has duplicate names. Every result of such a group gets
/// `__` and its test number (or, without distinct numbers, its position in the report) as a
/// suffix. A plain segment never holds `__`, so a suffixed path equals no other.
fn test_paths(results: &[TestResult]) -> Vec<String> {
    let bases: Vec<String> = results.iter().map(base_path).collect();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, base) in bases.iter().enumerate() {
        groups.entry(base).or_default().push(index);
    }
    let mut paths = bases.clone();
    for members in groups.values().filter(|members| members.len() > 1) {
        let mut numbers: Vec<Option<u32>> = members.iter().map(|&i| results[i].id).collect();
        numbers.sort();
        numbers.dedup();
        let numbered = numbers.len() == members.len() && numbers.iter().all(Option::is_some);
        for &index in members {
            let tag = match results[index].id {
                Some(number) if numbered => number.to_string(),
                _ => format!("r{index}"),
            };
            paths[index] = format!("{}__{tag}", bases[index]);
        }
    }
    paths
}

/// `bpf.SUITE.MODE.NAME`. A divergence is a finding across modes, beside each mode's own
/// result for the case: it takes `divergence` for the mode, or it would share that path.
fn base_path(result: &TestResult) -> String {
    let mode = match result.status {
        Status::Divergence => "divergence",
        _ => result.mode.name(),
    };
    format!(
        "{PATH_ROOT}.{}.{mode}.{}",
        segment(result.suite.name()),
        segment(&result.name)
    )
}

/// One path segment, `[a-zA-Z0-9_-]+` as the schema wants: every other character (spaces,
/// punctuation, dots, non-ASCII) becomes `_`, runs of `_` become one, and none is left at
/// either end. Never empty.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "unnamed".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A message as a `log_excerpt`: cleaned, and cut to the schema's limit with a note saying
/// where the rest is. The head is kept: it holds the verdict or the crash's title.
fn excerpt(message: &str) -> String {
    let message = clean(message);
    let total = message.chars().count();
    if total <= EXCERPT_MAX_CHARS {
        return message;
    }
    // The note's own length depends on the count it gives; the total bounds it from above.
    let note_len = format!("\n[... {total} more characters in report.json]")
        .chars()
        .count();
    let keep = EXCERPT_MAX_CHARS - note_len;
    let mut out: String = message.chars().take(keep).collect();
    out.push_str(&format!(
        "\n[... {} more characters in report.json]",
        total - keep
    ));
    out
}

/// Text from the guest or the report, fit for KCIDB: the schema forbids NUL in its strings
/// (and its database could not store one), so each becomes U+FFFD.
fn clean(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// Whether `time` is an RFC 3339 date-time (`2025-01-02T03:04:05Z`, `...05.25+01:00`), as
/// the schema's validator checks it: real calendar days, no leap seconds.
fn is_rfc3339(time: &str) -> bool {
    let bytes = time.as_bytes();
    let number = |at, len| digits(bytes, at, len);
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        number(0, 4),
        number(5, 2),
        number(8, 2),
        number(11, 2),
        number(14, 2),
        number(17, 2),
    ) else {
        return false;
    };
    let is = |at: usize, c: u8| bytes.get(at).is_some_and(|b| b.eq_ignore_ascii_case(&c));
    let valid = is(4, b'-')
        && is(7, b'-')
        && is(10, b'T')
        && is(13, b':')
        && is(16, b':')
        && year >= 1
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    if !valid {
        return false;
    }
    let mut rest = &bytes[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if len == 0 {
            return false;
        }
        rest = &fraction[len..];
    }
    match rest {
        [zulu] => zulu.eq_ignore_ascii_case(&b'Z'),
        [b'+' | b'-', _, _, b':', _, _] => {
            digits(rest, 1, 2).is_some_and(|h| h <= 23)
                && digits(rest, 4, 2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// The decimal number in `bytes[at..at + len]`, if those are all digits.
fn digits(bytes: &[u8], at: usize, len: usize) -> Option<u32> {
    let digits = bytes.get(at..at + len)?;
    digits.iter().try_fold(0, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentSuite, Mode, Suite, SuiteName};
    use crate::report::Timing;

    fn result(
        suite: impl Into<SuiteName>,
        id: Option<u32>,
        name: &str,
        mode: Mode,
        status: Status,
    ) -> TestResult {
        TestResult::new(suite, id, name, mode, status).with_jited(Some(true))
    }

    fn report(results: Vec<TestResult>) -> Report {
        let kernel = KernelInfo {
            arch: Arch::X86_64,
            release: Some("6.1.0-56-amd64".to_owned()),
            source: "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2".to_owned(),
            revision: None,
            config_hash: None,
        };
        Report::new(kernel, results, Vec::new(), true, Timing::default())
    }

    fn is_path(path: &str) -> bool {
        path.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    }

    #[test]
    fn statuses_map_to_kcidb_by_its_definitions() {
        let mapped: Vec<(Status, &str)> = Status::ALL.iter().map(|&s| (s, status(s))).collect();
        assert_eq!(
            mapped,
            [
                (Status::Pass, "PASS"),
                (Status::Fail, "FAIL"),
                (Status::Skip, "SKIP"),
                (Status::Crash, "FAIL"),
                (Status::Hang, "FAIL"),
                (Status::NotRun, "MISS"),
                (Status::Error, "ERROR"),
                (Status::Divergence, "FAIL"),
            ]
        );
    }

    #[test]
    fn architectures_take_the_kernels_names() {
        assert_eq!(architecture(Arch::X86_64), "x86_64");
        assert_eq!(architecture(Arch::Mips64el), "mips");
    }

    #[test]
    fn segments_keep_only_what_a_path_allows() {
        for (name, expected) in [
            ("JGE (jt 0), test 1", "JGE_jt_0_test_1"),
            ("M[]: alt STX + LDX", "M_alt_STX_LDX"),
            ("ALU_MOD_X: 3 % 2 = 1", "ALU_MOD_X_3_2_1"),
            ("a.b/c:d'e\"f\\g", "a_b_c_d_e_f_g"),
            ("  __tail__call-7  ", "tail_call-7"),
            ("prüfung ünïcödé", "pr_fung_n_c_d"),
            ("über", "ber"),
            ("…", "unnamed"),
            ("", "unnamed"),
            ("a\0b\nc\td", "a_b_c_d"),
        ] {
            let got = segment(name);
            assert_eq!(got, expected, "{name:?}");
            assert!(is_path(&got) && !got.contains("__"), "{got:?}");
        }
    }

    #[test]
    fn paths_name_suite_mode_and_test() {
        let r = report(vec![
            result(
                Suite::TestBpf,
                Some(29),
                "JGE (jt 0), test 1",
                Mode::JitHardened,
                Status::Pass,
            ),
            result(
                AgentSuite::Conformance,
                Some(3),
                "add.data",
                Mode::Jit,
                Status::Fail,
            ),
            result(
                AgentSuite::Conformance,
                Some(3),
                "add.data",
                Mode::Jit,
                Status::Divergence,
            ),
        ]);
        assert_eq!(
            test_paths(&r.results),
            [
                "bpf.test_bpf.jit-hardened.JGE_jt_0_test_1",
                "bpf.conformance.jit.add_data",
                "bpf.conformance.divergence.add_data",
            ]
        );
    }

    #[test]
    fn names_alike_after_sanitizing_get_their_numbers() {
        let results = vec![
            result(
                Suite::TestBpf,
                Some(10),
                "Shift < 32, low word",
                Mode::Jit,
                Status::Pass,
            ),
            result(
                Suite::TestBpf,
                Some(11),
                "Shift > 32, low word",
                Mode::Jit,
                Status::Pass,
            ),
            // test_bpf really has duplicate names.
            result(
                Suite::TestBpf,
                Some(745),
                "JSGT_K: zext",
                Mode::Jit,
                Status::Pass,
            ),
            result(
                Suite::TestBpf,
                Some(747),
                "JSGT_K: zext",
                Mode::Jit,
                Status::Pass,
            ),
            // The same names in another mode are other paths already.
            result(
                Suite::TestBpf,
                Some(10),
                "Shift < 32, low word",
                Mode::Interp,
                Status::Pass,
            ),
            // A name that looks like a suffixed one stays apart.
            result(
                Suite::TestBpf,
                Some(1),
                "Shift_32_low_word 10",
                Mode::Jit,
                Status::Pass,
            ),
        ];
        assert_eq!(
            test_paths(&results),
            [
                "bpf.test_bpf.jit.Shift_32_low_word__10",
                "bpf.test_bpf.jit.Shift_32_low_word__11",
                "bpf.test_bpf.jit.JSGT_K_zext__745",
                "bpf.test_bpf.jit.JSGT_K_zext__747",
                "bpf.test_bpf.interp.Shift_32_low_word",
                "bpf.test_bpf.jit.Shift_32_low_word_10",
            ]
        );
    }

    #[test]
    fn names_alike_without_distinct_numbers_get_their_positions() {
        let results = vec![
            result(
                Suite::TestBpf,
                None,
                "all: never ran",
                Mode::Jit,
                Status::NotRun,
            ),
            result(
                Suite::TestBpf,
                None,
                "all never ran",
                Mode::Jit,
                Status::NotRun,
            ),
            result(Suite::TestBpf, Some(4), "x", Mode::Jit, Status::Pass),
            result(Suite::TestBpf, Some(4), "x", Mode::Jit, Status::Pass),
        ];
        assert_eq!(
            test_paths(&results),
            [
                "bpf.test_bpf.jit.all_never_ran__r0",
                "bpf.test_bpf.jit.all_never_ran__r1",
                "bpf.test_bpf.jit.x__r2",
                "bpf.test_bpf.jit.x__r3",
            ]
        );
    }

    #[test]
    fn test_ids_are_unique_and_deterministic_when_names_collide() {
        let results: Vec<TestResult> = ["a b", "a:b", "a.b", "a/b", "a\"b", "a'b", "a b"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                result(
                    Suite::TestBpf,
                    Some(i as u32),
                    name,
                    Mode::Jit,
                    Status::Pass,
                )
            })
            .collect();
        let mut r = report(results);
        r.started = Some("2025-03-04T05:06:07Z".to_owned());
        let ids = |doc: &Value| -> Vec<String> {
            doc["tests"]
                .as_array()
                .map(|tests| tests.iter().map(|t| t["id"].to_string()).collect())
                .unwrap_or_default()
        };
        let first = render(&r).expect("the report is valid");
        let mut unique = ids(&first);
        assert_eq!(unique.len(), 7);
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 7, "{unique:?}");
        assert_eq!(render(&r).expect("the report is valid"), first);
        assert_eq!(
            first["tests"][0]["id"],
            "bpf_jit_harness:debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2:x86_64:\
             2025-03-04T05:06:07Z:bpf.test_bpf.jit.a_b__0"
        );
    }

    #[test]
    fn a_debian_kernel_is_a_build_of_debians_linux_source() {
        let mut r = report(vec![result(
            Suite::TestBpf,
            Some(0),
            "TAX",
            Mode::Interp,
            Status::Pass,
        )]);
        r.results[0].jited = Some(false);
        r.results[0].message = Some("ok".to_owned());
        let doc = render(&r).expect("the report is valid");
        assert_eq!(doc["version"], json!({ "major": 5, "minor": 3 }));
        assert_eq!(
            doc["checkouts"],
            json!([{
                "id": "bpf_jit_harness:debian:linux=6.1.192-2",
                "origin": "bpf_jit_harness",
                "tree_name": "debian",
                "comment": "Debian's linux 6.1.192-2",
                "valid": true,
                "misc": { "source_package": "linux", "package_version": "6.1.192-2" },
            }])
        );
        let build = &doc["builds"][0];
        assert_eq!(build["checkout_id"], doc["checkouts"][0]["id"]);
        assert_eq!(build["architecture"], "x86_64");
        assert_eq!(build["config_name"], "debian-6.1-amd64");
        assert_eq!(build["misc"]["release"], "6.1.0-56-amd64");
        let test = &doc["tests"][0];
        assert_eq!(test["build_id"], build["id"]);
        assert_eq!(test["path"], "bpf.test_bpf.interp.TAX");
        assert_eq!(test["log_excerpt"], "ok");
        assert_eq!(
            test["misc"],
            json!({
                "suite": "test_bpf",
                "test_number": 0,
                "name": "TAX",
                "mode": "interp",
                "jited": false,
                "harness_status": "pass",
            })
        );
        assert_eq!(
            test["environment"]["misc"],
            json!({ "bpf_jit_enable": 0, "bpf_jit_harden": 0 })
        );
        // A replayed recording has no start time, and the schema no null.
        assert!(test.get("start_time").is_none() && build.get("start_time").is_none());
        assert!(test["id"]
            .as_str()
            .is_some_and(|id| id.contains(":replay:")));
    }

    #[test]
    fn a_local_kernel_is_its_own_checkout() {
        let mut r = report(Vec::new());
        r.kernel.source = "dir:/home/me/linux".to_owned();
        r.kernel.release = None;
        let doc = render(&r).expect("the report is valid");
        assert_eq!(
            doc["checkouts"][0]["id"],
            "bpf_jit_harness:dir:/home/me/linux"
        );
        assert!(doc["checkouts"][0].get("tree_name").is_none());
        assert_eq!(
            doc["builds"][0]["id"],
            "bpf_jit_harness:dir:/home/me/linux:x86_64"
        );
        assert_eq!(doc["builds"][0]["config_name"], "local");
        assert_eq!(doc["tests"], json!([]));
    }

    #[test]
    fn the_start_time_goes_on_every_object() {
        let mut r = report(vec![result(
            Suite::TestBpf,
            Some(1),
            "n",
            Mode::Jit,
            Status::Pass,
        )]);
        r.started = Some("2025-03-04T05:06:07.5+01:00".to_owned());
        let doc = render(&r).expect("the report is valid");
        for object in [&doc["checkouts"][0], &doc["builds"][0], &doc["tests"][0]] {
            assert_eq!(object["start_time"], "2025-03-04T05:06:07.5+01:00");
        }
    }

    #[test]
    fn a_malformed_start_time_is_an_error() {
        let mut r = report(Vec::new());
        r.started = Some("yesterday".to_owned());
        let error = render(&r).expect_err("the start time is not RFC 3339");
        assert_eq!(
            error.to_string(),
            "the report's start time `yesterday` is not an RFC 3339 date-time"
        );
    }

    #[test]
    fn rfc3339_is_checked_as_kcidbs_validator_does() {
        for good in [
            "2025-01-02T03:04:05Z",
            "2025-01-02t03:04:05z",
            "2024-02-29T23:59:59.123456Z",
            "2025-12-31T00:00:00-05:30",
            "0001-01-01T00:00:00+00:00",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "",
            "2025-01-02",
            "2025-01-02 03:04:05Z",
            "2025-01-02T03:04:05",
            "2025-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2025-01-02T24:00:00Z",
            "2025-01-02T03:60:00Z",
            "2025-01-02T03:04:60Z",
            "2025-01-02T03:04:05.Z",
            "2025-01-02T03:04:05+0100",
            "2025-01-02T03:04:05+24:00",
            "2025-01-02T03:04:05Zjunk",
            "２025-01-02T03:04:05Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn a_huge_message_is_cut_to_the_schemas_limit() {
        let message = format!("ret 0 != 1\n{}", "x".repeat(3 * EXCERPT_MAX_CHARS));
        let cut = excerpt(&message);
        assert!(cut.chars().count() <= EXCERPT_MAX_CHARS);
        assert!(cut.starts_with("ret 0 != 1\n"));
        assert!(
            cut.ends_with("more characters in report.json]"),
            "{}",
            &cut[cut.len() - 60..]
        );
        // Characters, not bytes: multi-byte text fits as well.
        let wide = "é".repeat(EXCERPT_MAX_CHARS);
        assert_eq!(excerpt(&wide), wide);
        let wider = "é".repeat(EXCERPT_MAX_CHARS + 1);
        assert!(excerpt(&wider).chars().count() <= EXCERPT_MAX_CHARS);
    }

    #[test]
    fn nul_never_reaches_the_document() {
        let mut r = report(vec![result(
            Suite::TestBpf,
            Some(1),
            "a\0b",
            Mode::Jit,
            Status::Fail,
        )]);
        r.results[0].message = Some("bad\0byte".to_owned());
        let doc = render(&r).expect("the report is valid");
        assert!(!doc.to_string().contains("\\u0000"));
        assert_eq!(doc["tests"][0]["comment"], "a\u{FFFD}b");
    }
}
