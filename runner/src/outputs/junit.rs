//! `junit.xml`: the run's results for the test views of CI systems (GitLab, Jenkins, GitHub
//! test-report actions), which all read JUnit XML.
//!
//! One `<testsuites>` for the run, one `<testsuite>` per suite and mode in the order the report
//! lists them, and one `<testcase>` per result. A case's classname is `ARCH.SUITE.MODE`, so that
//! views which group by class keep an architecture's modes apart.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, SerializeError, TestCase, TestCaseStatus, TestSuite};

use crate::model::{Mode, Status, TestResult};
use crate::report::Report;

/// What the `<testsuites>` name starts with: the tool that wrote the file.
const HARNESS: &str = "bpf-jit-harness";

/// Renders the whole report as a JUnit XML document.
pub fn render(report: &Report) -> Result<String, SerializeError> {
    let arch = report.kernel.arch.name();
    let mut run = quick_junit::Report::new(attribute(&run_name(report)));
    // A replayed recording has no wall clock (0 s): leave the time out rather than claim 0.
    if let Ok(total) = Duration::try_from_secs_f64(report.timing.total_s) {
        if !total.is_zero() {
            run.set_time(total);
        }
    }

    // A handful of groups at most (suites × modes): a linear search keeps the first-seen order.
    let mut suites: Vec<((&str, Mode), TestSuite)> = Vec::new();
    for result in &report.results {
        let key = (result.suite.name(), result.mode);
        let index = match suites.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                suites.push((key, test_suite(report, result.suite.name(), result.mode)));
                suites.len() - 1
            }
        };
        let class = format!("{arch}.{}.{}", result.suite, result.mode.name());
        suites[index].1.add_test_case(test_case(result, &class));
    }
    run.add_test_suites(suites.into_iter().map(|(_, suite)| suite));
    run.to_string()
}

/// `bpf-jit-harness x86_64 6.1.0-56-amd64`, plus the part for a sharded run: enough to tell two
/// runs' files apart in a CI view that lists several.
fn run_name(report: &Report) -> String {
    let release = report
        .kernel
        .release
        .as_deref()
        .unwrap_or("unknown-release");
    let mut name = format!("{HARNESS} {} {release}", report.kernel.arch);
    if let Some(shard) = report.shard {
        name.push_str(&format!(" shard {shard}"));
    }
    name
}

/// An empty `<testsuite>` for one suite in one mode, with the kernel it ran on as properties.
fn test_suite(report: &Report, suite: &str, mode: Mode) -> TestSuite {
    let kernel = &report.kernel;
    let mut junit = TestSuite::new(attribute(&format!(
        "{}.{suite}.{}",
        kernel.arch,
        mode.name()
    )));
    // quick-junit takes its timestamps as chrono values, and this crate does not use chrono:
    // the report's string is RFC 3339 already, so it goes in as the attribute itself. Every
    // suite gets the run's start, the only time the report keeps.
    if let Some(started) = &report.started {
        junit
            .extra
            .insert("timestamp".into(), attribute(started).into());
    }
    let mut properties = vec![
        ("arch", kernel.arch.name().to_owned()),
        ("kernel.source", attribute(&kernel.source)),
        ("kernel.flavour", attribute(&kernel.flavour())),
        ("mode", mode.name().to_owned()),
        ("run.complete", report.complete.to_string()),
    ];
    if let Some(release) = &kernel.release {
        properties.insert(1, ("kernel.release", attribute(release)));
    }
    junit.add_properties(
        properties
            .into_iter()
            .map(|(name, value)| Property::new(name, value)),
    );
    junit
}

fn test_case(result: &TestResult, class: &str) -> TestCase {
    let mut case = TestCase::new(attribute(&case_name(result)), status(result));
    case.set_classname(attribute(class));
    if let Some(jited) = result.jited {
        case.add_property(Property::new("jited", jited.to_string()));
    }
    case
}

/// The test's name; a kernel suite's test also has its number in front, because test_bpf
/// repeats names (several `JMP_JSET_K: if (0x3 & 0x2) return 1`) and consumers key on names.
fn case_name(result: &TestResult) -> String {
    let kernel_suite = result.suite.kernel().is_some();
    match result.id {
        Some(id) if kernel_suite => format!("#{id} {}", result.name),
        _ => result.name.clone(),
    }
}

/// Maps a result's status onto JUnit's four outcomes.
///
/// JUnit's `failure` means the code under test did the wrong thing; `error` means the test
/// could not be carried out, and consumers count and show errors apart from failures. A crash
/// or a hang is the kernel under test breaking while it ran that test: to a kernel developer
/// that is the test's failure, the worst kind, and the harness counts it with `fail` and
/// `divergence` (`Status::is_test_failure`, exit status 1). So crash and hang are failures,
/// with their own `type`, and `<error>` is kept for the harness's `error` (exit status 3):
/// JUnit's failures are then exactly the kernel's bugs, its errors the harness's trouble.
fn status(result: &TestResult) -> TestCaseStatus {
    let mut junit = match result.status {
        Status::Pass => return TestCaseStatus::success(),
        Status::Fail | Status::Divergence | Status::Crash | Status::Hang => {
            TestCaseStatus::non_success(NonSuccessKind::Failure)
        }
        Status::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
        // A test never reached is an outcome of the infrastructure, not a result of the test:
        // skipped, and the message says so.
        Status::Skip | Status::NotRun => TestCaseStatus::skipped(),
    };
    junit.set_type(result.status.name());
    let reason = result.message.as_deref().unwrap_or("");
    let message = match (result.status, reason) {
        (Status::NotRun, "") => "not run".to_owned(),
        (Status::NotRun, _) => format!("not run: {reason}"),
        _ => reason.to_owned(),
    };
    if !message.is_empty() {
        // An attribute holds one line; views show the element's text as the details.
        junit.set_message(attribute(message.lines().next().unwrap_or("")));
        junit.set_description(text(&message));
    }
    junit
}

/// `s` for an attribute value: line breaks and tabs become spaces, as an XML parser would read
/// them anyway; the rest as in [`text`].
fn attribute(s: &str) -> String {
    clean(s, false)
}

/// `s` for element text: line breaks kept, tabs as spaces (quick-junit would drop them and join
/// the words around), and every character that XML 1.0 forbids or discourages replaced with
/// U+FFFD, so that the file stays well-formed and a name shows where something was.
///
/// quick-junit removes C0 control characters itself, but not U+FFFE and U+FFFF, which XML
/// forbids too; and it removes ANSI escape sequences whole, which would change a name silently
/// (an ESC in a test name is garbage from the guest, not colour). Replacing them first leaves
/// it nothing to remove.
fn text(s: &str) -> String {
    clean(s, true)
}

fn clean(s: &str, keep_newlines: bool) -> String {
    s.chars()
        .map(|c| match c {
            '\n' if keep_newlines => c,
            '\t' | '\n' | '\r' => ' ',
            // Outside XML 1.0's `Char`: C0 controls, U+FFFE, U+FFFF. Discouraged by it: DEL and
            // C1 controls, which a terminal parser (quick-junit's) would also take for escapes.
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::model::{AgentSuite, Suite, SuiteName};
    use crate::report::{KernelInfo, Timing};

    fn result(
        suite: impl Into<SuiteName>,
        id: u32,
        name: &str,
        status: Status,
        message: &str,
    ) -> TestResult {
        let r = TestResult::new(suite, Some(id), name, Mode::Jit, status).with_jited(Some(true));
        match message {
            "" => r,
            m => r.with_message(m),
        }
    }

    fn report(results: Vec<TestResult>) -> Report {
        let kernel = KernelInfo {
            arch: Arch::X86_64,
            release: Some("6.1.0-56-amd64".to_owned()),
            source: "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2".to_owned(),
            revision: None,
            config_hash: None,
        };
        let mut report = Report::new(kernel, results, Vec::new(), true, Timing::default());
        report.started = Some("2025-01-02T03:04:05Z".to_owned());
        report
    }

    /// The kind, type, message and text a status becomes.
    fn mapped(status: Status, message: &str) -> (&'static str, String, String, String) {
        let junit = super::status(&result(Suite::TestBpf, 1, "t", status, message));
        let string = |s: &Option<quick_junit::XmlString>| {
            s.as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default()
        };
        match &junit {
            TestCaseStatus::Success { .. } => {
                ("success", String::new(), String::new(), String::new())
            }
            TestCaseStatus::NonSuccess {
                kind,
                message,
                ty,
                description,
                ..
            } => (
                match kind {
                    NonSuccessKind::Failure => "failure",
                    NonSuccessKind::Error => "error",
                },
                string(ty),
                string(message),
                string(description),
            ),
            TestCaseStatus::Skipped {
                message,
                ty,
                description,
            } => ("skipped", string(ty), string(message), string(description)),
        }
    }

    #[test]
    fn every_status_maps_to_its_junit_outcome() {
        let two_lines = "ret 0 != 123\nFAIL (1 times)";
        fn expect(
            kind: &'static str,
            ty: &str,
            message: &str,
            description: &str,
        ) -> (&'static str, String, String, String) {
            let owned = |s: &str| s.to_owned();
            (kind, owned(ty), owned(message), owned(description))
        }
        assert_eq!(mapped(Status::Pass, ""), expect("success", "", "", ""));
        assert_eq!(
            mapped(Status::Fail, two_lines),
            expect("failure", "fail", "ret 0 != 123", two_lines)
        );
        assert_eq!(
            mapped(Status::Divergence, "jit: 1, interp: 2"),
            expect(
                "failure",
                "divergence",
                "jit: 1, interp: 2",
                "jit: 1, interp: 2"
            )
        );
        assert_eq!(
            mapped(Status::Crash, "BUG: unable to handle page fault"),
            expect(
                "failure",
                "crash",
                "BUG: unable to handle page fault",
                "BUG: unable to handle page fault"
            )
        );
        assert_eq!(
            mapped(Status::Hang, "no output for 60 s"),
            expect(
                "failure",
                "hang",
                "no output for 60 s",
                "no output for 60 s"
            )
        );
        assert_eq!(
            mapped(Status::Error, "no verdict"),
            expect("error", "error", "no verdict", "no verdict")
        );
        assert_eq!(
            mapped(Status::Skip, "ISA v4"),
            expect("skipped", "skip", "ISA v4", "ISA v4")
        );
        assert_eq!(
            mapped(Status::NotRun, "guest crashed"),
            expect(
                "skipped",
                "not_run",
                "not run: guest crashed",
                "not run: guest crashed"
            )
        );
        assert_eq!(
            mapped(Status::NotRun, ""),
            expect("skipped", "not_run", "not run", "not run")
        );
        assert_eq!(mapped(Status::Fail, ""), expect("failure", "fail", "", ""));
    }

    #[test]
    fn suites_follow_the_report_and_cases_carry_their_class() {
        let mut interp = result(Suite::TestTailCalls, 0, "Tail call leaf", Status::Pass, "");
        interp.mode = Mode::Interp;
        interp.jited = Some(false);
        let mut whole_suite = result(
            Suite::TestSkbSegment,
            0,
            "test_skb_segment",
            Status::NotRun,
            "",
        );
        whole_suite.id = None;
        let mut agent = result(AgentSuite::Verifier, 3, "ld_imm64", Status::Pass, "");
        agent.jited = None;
        let results = vec![
            interp,
            result(Suite::TestBpf, 12, "TAX", Status::Pass, ""),
            whole_suite,
            agent,
            result(Suite::TestBpf, 13, "TXA", Status::Fail, "ret 0 != 1"),
        ];
        let xml = render(&report(results)).expect("renders");
        let parsed = quick_junit::Report::deserialize_from_str(&xml).expect("quick-junit reads it");
        assert_eq!(
            parsed.name.as_deref(),
            Some("bpf-jit-harness x86_64 6.1.0-56-amd64")
        );
        let names: Vec<&str> = parsed.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "x86_64.test_tail_calls.interp",
                "x86_64.test_bpf.jit",
                "x86_64.test_skb_segment.jit",
                "x86_64.verifier.jit"
            ]
        );
        let test_bpf = &parsed.test_suites[1];
        assert_eq!((test_bpf.tests, test_bpf.failures), (2, 1));
        let cases: Vec<(&str, Option<&str>)> = test_bpf
            .test_cases
            .iter()
            .map(|c| (c.name.as_str(), c.classname.as_deref()))
            .collect();
        assert_eq!(
            cases,
            [
                ("#12 TAX", Some("x86_64.test_bpf.jit")),
                ("#13 TXA", Some("x86_64.test_bpf.jit"))
            ]
        );
        // Only kernel suites' tests are numbered, and only when they have a number.
        assert_eq!(
            parsed.test_suites[2].test_cases[0].name.as_str(),
            "test_skb_segment"
        );
        assert_eq!(
            parsed.test_suites[3].test_cases[0].name.as_str(),
            "ld_imm64"
        );
        // jited as a property, absent when no program ran.
        let jited = |suite: usize| {
            let props = &parsed.test_suites[suite].test_cases[0].properties;
            props
                .iter()
                .map(|p| format!("{}={}", p.name.as_str(), p.value.as_str()))
                .collect::<Vec<_>>()
        };
        assert_eq!(jited(0), ["jited=false"]);
        assert_eq!(jited(1), ["jited=true"]);
        assert!(jited(3).is_empty());
        assert!(xml.contains(r#"timestamp="2025-01-02T03:04:05Z""#), "{xml}");
    }

    #[test]
    fn time_is_the_run_s_when_it_has_one() {
        let mut timed = report(vec![result(Suite::TestBpf, 0, "TAX", Status::Pass, "")]);
        let untimed = render(&timed).expect("renders");
        assert!(!untimed.contains("time="), "{untimed}");
        timed.timing.total_s = 42.5;
        let xml = render(&timed).expect("renders");
        assert!(xml.contains(r#"time="42.500""#), "{xml}");
    }

    #[test]
    fn hostile_names_stay_well_formed_and_recognisable() {
        let hostile = "a\u{1}b\u{1b}[31mred\u{1b}[0m ]]> \"q\" 'q' <x> & \t\ttab\r\nnl \u{fffe}\u{ffff}\u{85}\u{7f} ok";
        let results = vec![
            result(Suite::TestBpf, 7, hostile, Status::Fail, hostile),
            result(Suite::TestBpf, 8, "", Status::Skip, "]]>\u{0}"),
        ];
        let xml = render(&report(results)).expect("renders");
        // Nothing XML 1.0 forbids, and no control character but line breaks, anywhere.
        let bad: Vec<char> = xml
            .chars()
            .filter(|&c| c != '\n' && (c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}')))
            .collect();
        assert!(bad.is_empty(), "{bad:?} in {xml}");
        assert!(!xml.contains("]]>"), "{xml}");

        let parsed = quick_junit::Report::deserialize_from_str(&xml).expect("quick-junit reads it");
        let case = &parsed.test_suites[0].test_cases[0];
        let shown = "a\u{fffd}b\u{fffd}[31mred\u{fffd}[0m ]]> \"q\" 'q' <x> &   tab  nl \u{fffd}\u{fffd}\u{fffd}\u{fffd} ok";
        assert_eq!(case.name.as_str(), format!("#7 {shown}"));
        let TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } = &case.status
        else {
            panic!("a failure: {:?}", case.status);
        };
        // The message attribute is the first line; the text keeps the line break.
        assert_eq!(
            message.as_deref(),
            Some("a\u{fffd}b\u{fffd}[31mred\u{fffd}[0m ]]> \"q\" 'q' <x> &   tab")
        );
        let description = description.as_deref().expect("has text");
        assert!(description.ends_with("tab \nnl \u{fffd}\u{fffd}\u{fffd}\u{fffd} ok"));
    }
}
