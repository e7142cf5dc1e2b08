//! The kernel's JIT suite, `lib/test_bpf.c`: its console output turned into results.
//!
//! One [`LoadParser`] reads the console lines of one load of `test_bpf.ko`. The module runs up
//! to three suites in a fixed order, printing one line per test and a `Summary:` line per
//! suite; the parser attributes each test to its suite by that order and checks its own counts
//! against every Summary. Shapes handled (kernel 4.x to 6.x):
//!
//! ```text
//! test_bpf: #0 TAX jited:1 100 75 75 PASS
//! test_bpf: #445 JMP32_JLT_K: Small immediate jited:1 ret 0 != 123 FAIL (1 times)
//! test_bpf: #81 ALU_MOVSX | BPF_B jited:1 ret 2 != 1 (0x2 != 0x1)FAIL (1 times)
//! test_bpf: #12 name jited:1 0 ret -1 != 1 0 FAIL (1 times)
//! test_bpf: #30 check: missing ret PASS                  (expected reject, never run)
//! test_bpf: #31 name UNEXPECTED_PASS
//! test_bpf: #32 name FAIL to prog_create err=-22 len=4096
//! test_bpf: #33 name FAIL to select_runtime err=-524
//! test_bpf: #3 Tail call error path, NULL target jited:1 ret 1 != 2 FAIL
//! test_bpf: #0 gso_with_rx_frags PASS
//! test_bpf: Summary: 1026 PASSED, 0 FAILED, [1014/1014 JIT'ed]
//! test_bpf: test_tail_calls: Summary: 10 PASSED, 0 FAILED, [10/10 JIT'ed]
//! test_bpf: test_skb_segment: Summary: 2 PASSED, 0 FAILED
//! ```
//!
//! A test line cut in two by another kernel message (printk ends a continuation when someone
//! else prints) is joined back: a line without the `test_bpf: ` prefix that continues an open
//! test's verdict belongs to it.

use std::collections::BTreeMap;

pub use crate::model::{Catalog, Suite};
use crate::model::{Filter, Mode, Status, TestResult};

/// A suite's own count of its results, from its `Summary:` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub suite: Suite,
    pub passed: u32,
    pub failed: u32,
    /// `[jited/run JIT'ed]`; absent for test_skb_segment.
    pub jited: Option<(u32, u32)>,
}

const PREFIX: &[u8] = b"test_bpf: ";

/// A test whose first line was seen but whose verdict was not yet.
#[derive(Debug)]
struct OpenTest {
    id: u32,
    /// Everything after `#<id> `, continuation fragments appended.
    text: String,
}

/// What the parser learned from one line.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// A test finished; its result is the last one in [`LoadParser::results`].
    Finished,
    /// A suite printed its Summary.
    Summary(Summary),
    Nothing,
}

/// Parses the console lines of one load of `test_bpf.ko`.
#[derive(Debug)]
pub struct LoadParser {
    mode: Mode,
    /// The suites this load runs, in order.
    suites: Vec<Suite>,
    /// Index into `suites` of the suite now running.
    current: usize,
    open: Option<OpenTest>,
    /// Set once the module's tests are over: every suite summarized, or one failed.
    finished: bool,
    results: Vec<TestResult>,
    summaries: Vec<Summary>,
    /// `test_bpf:` lines that are neither tests nor summaries (the module's own errors).
    notes: Vec<String>,
    errors: Vec<String>,
    /// Test lines seen after the module finished: a loader that retried the load.
    repeated_lines: usize,
    /// The module refused its parameters: the selection names no test it has.
    invalid_selection: bool,
    /// Per suite, the ids and names of the tests this load runs, when the module's own list is
    /// known (see `module_tests`): tests never reached are then reported one by one, and a
    /// crash is pinned on its test even before the kernel printed that test's line.
    expected: BTreeMap<Suite, Vec<(u32, String)>>,
}

/// What test_bpf says when its parameters select nothing (`prepare_test_range()`).
const SELECTION_ERRORS: [&str; 5] = [
    "no test named",
    "invalid test_id",
    "test_range is out of bound",
    "test_range is ending before it starts",
    "invalid test_suite",
];

impl LoadParser {
    pub fn new(mode: Mode, suites: Vec<Suite>) -> Self {
        LoadParser {
            mode,
            suites,
            current: 0,
            open: None,
            finished: false,
            results: Vec::new(),
            summaries: Vec::new(),
            notes: Vec::new(),
            errors: Vec::new(),
            repeated_lines: 0,
            invalid_selection: false,
            expected: BTreeMap::new(),
        }
    }

    /// A parser that knows which tests the load runs: the module's `catalog` cut down by the
    /// load's `filter`, as test_bpf's `prepare_test_range()` does.
    pub fn with_catalog(mut self, catalog: &Catalog, filter: Option<&Filter>) -> Self {
        for &suite in &self.suites {
            let Some(names) = catalog.get(&suite) else {
                continue;
            };
            let selected = match filter {
                None => (0u32..).zip(names.iter().cloned()).collect(),
                Some(filter) => filter
                    .cut(names)
                    .into_iter()
                    .map(|(id, name)| (id, name.to_owned()))
                    .collect(),
            };
            self.expected.insert(suite, selected);
        }
        self
    }

    pub fn results(&self) -> &[TestResult] {
        &self.results
    }

    pub fn summaries(&self) -> &[Summary] {
        &self.summaries
    }

    /// The test running now, if any: `(suite, id, name)` for attributing a crash or a hang.
    pub fn running(&self) -> Option<(Suite, u32, String)> {
        let open = self.open.as_ref()?;
        Some((self.suite(), open.id, descr_of(&open.text)))
    }

    fn suite(&self) -> Suite {
        self.suites[self.current.min(self.suites.len() - 1)]
    }

    /// Feeds one console line, already stripped of `\r` and time stamp.
    pub fn line(&mut self, text: &[u8]) -> Event {
        let text = crate::console::str_of(text);
        if !text.as_bytes().starts_with(PREFIX) {
            return self.continuation(&text);
        }
        // PREFIX is ASCII: the rest starts on a character boundary.
        let rest = &text[PREFIX.len()..];
        if let Some(record) = rest.strip_prefix('#') {
            return self.test_line(record);
        }
        if let Some(summary) = parse_summary(rest) {
            return self.summary(summary);
        }
        // A retried load repeats the module's messages; one copy says it.
        if !self.notes.iter().any(|n| n == rest) {
            self.notes.push(rest.to_owned());
        }
        Event::Nothing
    }

    fn test_line(&mut self, record: &str) -> Event {
        if self.finished {
            self.repeated_lines += 1;
            return Event::Nothing;
        }
        let (id, text) = record.split_once(' ').unwrap_or((record, ""));
        let Ok(id) = id.parse::<u32>() else {
            self.errors
                .push(format!("test line with a bad number: #{record}"));
            return Event::Nothing;
        };
        if let Some(open) = self.open.take() {
            self.errors.push(format!(
                "{} #{}: no verdict before the next test started: {:?}",
                self.suite(),
                open.id,
                open.text
            ));
        }
        // Nearly always the verdict is on the test's own line.
        if let Some(verdict) = parse_verdict(text) {
            self.push_verdict(id, verdict);
            return Event::Finished;
        }
        self.open = Some(OpenTest {
            id,
            text: text.to_owned(),
        });
        Event::Nothing
    }

    fn continuation(&mut self, text: &str) -> Event {
        let Some(open) = &mut self.open else {
            return Event::Nothing;
        };
        let first = text.split_whitespace().next().unwrap_or("");
        let continues = first.parse::<i64>().is_ok()
            || first.starts_with("jited:")
            || [
                "ret",
                "PASS",
                "FAIL",
                "UNEXPECTED_PASS",
                "UNEXPECTED_FAIL",
                "data",
            ]
            .iter()
            .any(|w| first.starts_with(w));
        if continues {
            if !open.text.ends_with(' ') {
                open.text.push(' ');
            }
            open.text.push_str(text.trim_start());
            return self.try_close();
        }
        Event::Nothing
    }

    /// Closes the open test if its text now holds a verdict.
    fn try_close(&mut self) -> Event {
        let Some(open) = &self.open else {
            return Event::Nothing;
        };
        let Some(verdict) = parse_verdict(&open.text) else {
            return Event::Nothing;
        };
        let id = open.id;
        self.open = None;
        self.push_verdict(id, verdict);
        Event::Finished
    }

    fn push_verdict(&mut self, id: u32, verdict: Verdict) {
        let (status, message) = match verdict.outcome {
            Outcome::Pass => (Status::Pass, None),
            Outcome::Fail(text) => (Status::Fail, Some(text)),
        };
        self.results.push(TestResult {
            suite: self.suite().into(),
            id: Some(id),
            name: verdict.descr,
            mode: self.mode,
            status,
            jited: verdict.jited,
            message,
            flaky: None,
        });
    }

    fn summary(&mut self, summary: Summary) -> Event {
        if self.finished {
            self.repeated_lines += 1;
            return Event::Nothing;
        }
        if let Some(open) = self.open.take() {
            self.errors.push(format!(
                "{} #{}: no verdict before the suite's summary: {:?}",
                self.suite(),
                open.id,
                open.text
            ));
        }
        let expected = self.suite();
        if summary.suite != expected {
            self.errors.push(format!(
                "summary of {} while {} was running",
                summary.suite, expected
            ));
            return Event::Nothing;
        }
        self.check_summary(&summary);
        self.summaries.push(summary);
        self.current += 1;
        if summary.failed > 0 {
            // test_bpf_init() returns at the first failing suite: the later ones never run.
            self.finish_load(&format!(
                "not run: {expected} failed, so the module stopped before this suite"
            ));
        } else if self.current == self.suites.len() {
            self.finished = true;
        }
        Event::Summary(summary)
    }

    /// Checks our count of one suite's results against the kernel's own.
    fn check_summary(&mut self, summary: &Summary) {
        let name = summary.suite.name();
        let ours = self
            .results
            .iter()
            .filter(|r| r.suite.kernel() == Some(summary.suite));
        let (mut passed, mut failed, mut jited, mut run) = (0, 0, 0, 0);
        for r in ours {
            match r.status {
                Status::Pass => passed += 1,
                _ => failed += 1,
            }
            if let Some(j) = r.jited {
                run += 1;
                jited += u32::from(j);
            }
        }
        let mut mismatch = Vec::new();
        if (passed, failed) != (summary.passed, summary.failed) {
            mismatch.push(format!(
                "{passed} passed, {failed} failed parsed, but the kernel counted {} passed, {} \
                 failed",
                summary.passed, summary.failed
            ));
        }
        if let Some((k_jited, k_run)) = summary.jited {
            if (jited, run) != (k_jited, k_run) {
                mismatch.push(format!(
                    "{jited}/{run} JIT'ed parsed, but the kernel counted {k_jited}/{k_run}"
                ));
            }
        }
        for m in mismatch {
            self.errors.push(format!("{name}: {m}"));
        }
    }

    /// Marks every suite not yet started as not run, with `why`.
    fn finish_load(&mut self, why: &str) {
        self.finished = true;
        let rest: Vec<Suite> = self.suites[self.current.min(self.suites.len())..].to_vec();
        for suite in rest {
            self.push_rest_of_suite(suite, why);
        }
        self.current = self.suites.len();
    }

    /// The tests of `suite` this load runs that have no result yet, when known.
    fn missing(&self, suite: Suite) -> Option<Vec<(u32, String)>> {
        let expected = self.expected.get(&suite)?;
        let done: std::collections::BTreeSet<u32> = self
            .results
            .iter()
            .filter(|r| r.suite.kernel() == Some(suite))
            .filter_map(|r| r.id)
            .collect();
        Some(
            expected
                .iter()
                .filter(|(id, _)| !done.contains(id))
                .cloned()
                .collect(),
        )
    }

    /// Ends the load because the kernel crashed or hung: the running test gets `status` with
    /// `message`, the suites after it are not run.
    pub fn interrupt(&mut self, status: Status, message: &str) {
        if self.finished {
            return;
        }
        let suite = self.suite();
        // What stopped the load, as seen by the tests that never ran.
        let cause = match status {
            Status::Crash => "the kernel crashed".to_owned(),
            Status::Hang => "the kernel hung".to_owned(),
            _ => message.to_owned(),
        };
        if let Some(open) = self.open.take() {
            self.results.push(TestResult {
                suite: suite.into(),
                id: Some(open.id),
                name: descr_of(&open.text),
                mode: self.mode,
                status,
                jited: jited_of(&open.text),
                message: Some(message.to_owned()),
                flaky: None,
            });
            let rest = format!("not run: {cause} during {suite} #{}", open.id);
            self.push_rest_of_suite(suite, &rest);
        } else if let Some((id, name)) = self.missing(suite).and_then(|m| m.into_iter().next()) {
            // The kernel had not printed the test's line yet; the module's list names it.
            self.results.push(TestResult {
                suite: suite.into(),
                id: Some(id),
                name,
                mode: self.mode,
                status,
                jited: None,
                message: Some(message.to_owned()),
                flaky: None,
            });
            self.push_rest_of_suite(suite, &format!("not run: {cause} during {suite} #{id}"));
        } else {
            let rest = match status {
                Status::Crash | Status::Hang => format!("{}: {message}", status.name()),
                _ => format!("not run: {message}"),
            };
            self.push_rest_of_suite(suite, &rest);
        }
        self.current += 1;
        self.finish_load(&format!("not run: {cause} in an earlier suite"));
    }

    fn push_rest_of_suite(&mut self, suite: Suite, why: &str) {
        if let Some(missing) = self.missing(suite) {
            for (id, name) in missing {
                let mut result = TestResult::not_run(suite, self.mode, name, why);
                result.id = Some(id);
                self.results.push(result);
            }
            return;
        }
        let after = self
            .results
            .iter()
            .filter(|r| r.suite.kernel() == Some(suite))
            .filter_map(|r| r.id)
            .max();
        let name = match after {
            Some(id) => format!("{suite} (tests after #{id})"),
            None => format!("{suite} (whole suite)"),
        };
        self.results
            .push(TestResult::not_run(suite, self.mode, name, why));
    }

    /// Ends the load when the guest reports the loader's exit status. Returns the harness
    /// errors found in this load.
    pub fn end(&mut self, status: i32) -> Vec<String> {
        if let Some(open) = self.open.take() {
            self.errors.push(format!(
                "{} #{}: the module load ended without this test's verdict: {:?}",
                self.suite(),
                open.id,
                open.text
            ));
        }
        let failed = self.summaries.iter().any(|s| s.failed > 0);
        if !self.finished {
            let module_said = self.module_messages();
            let refused = self
                .notes
                .iter()
                .any(|n| SELECTION_ERRORS.iter().any(|e| n.contains(e)));
            if self.results.is_empty() && self.summaries.is_empty() && refused {
                self.invalid_selection = true;
                self.errors.push(format!(
                    "test_bpf.ko refused the test selection (status {status}){module_said}"
                ));
            } else if self.results.is_empty() && self.summaries.is_empty() && status != 0 {
                self.errors.push(format!(
                    "test_bpf.ko failed to load (status {status}) before running any test{module_said}"
                ));
            } else {
                self.errors.push(format!(
                    "the module load ended (status {status}) before {} printed its summary{module_said}",
                    self.suite()
                ));
            }
            self.finish_load("not run: the module load ended early");
        } else if (status == 0) == failed {
            self.errors.push(format!(
                "the module load returned status {status}, but its summaries say {}",
                if failed {
                    "tests failed"
                } else {
                    "every test passed"
                }
            ));
        }
        if self.repeated_lines > 0 {
            // busybox insmod, the loader of older guests (recorded logs), retried a failed
            // finit_module() with init_module(), running every test again; only the first
            // pass counts.
            self.notes.push(format!(
                "ignored {} test lines from a repeated module load",
                self.repeated_lines
            ));
        }
        std::mem::take(&mut self.errors)
    }

    fn module_messages(&self) -> String {
        if self.notes.is_empty() {
            String::new()
        } else {
            format!("; the module said: {}", self.notes.join(" | "))
        }
    }

    /// Whether the module refused the selection: a usage error, not a harness one.
    pub fn invalid_selection(&self) -> bool {
        self.invalid_selection
    }

    /// Fails the test that finished last, for `why` (a kernel splat while it ran).
    pub fn fail_last(&mut self, why: &str) {
        if let Some(last) = self.results.last_mut() {
            last.message = Some(match last.message.take() {
                Some(said) => format!("{why}; {said}"),
                None => why.to_owned(),
            });
            last.status = Status::Fail;
        }
    }

    pub fn into_results(self) -> Vec<TestResult> {
        self.results
    }
}

enum Outcome {
    Pass,
    Fail(String),
}

struct Verdict {
    descr: String,
    jited: Option<bool>,
    outcome: Outcome,
}

/// Finds the verdict in a test's text (everything after `#<id> `), or `None` if it has not
/// been printed yet.
fn parse_verdict(text: &str) -> Option<Verdict> {
    let (descr, jited, after) = match find_jited(text) {
        Some((at, jited, after)) => (&text[..at], Some(jited), after),
        None => {
            // No program ran (expected-reject filters, skb_segment) or creating it failed: the
            // verdict follows the description. Find its first word from the right, since
            // descriptions contain spaces.
            let at = verdict_start(text)?;
            (&text[..at], None, &text[at..])
        }
    };
    let outcome = parse_outcome(after)?;
    Some(Verdict {
        descr: descr.trim_end().to_owned(),
        jited,
        outcome,
    })
}

/// `(start of " jited:N", N == 1, text after it)`.
fn find_jited(text: &str) -> Option<(usize, bool, &str)> {
    let at = memchr::memmem::rfind(text.as_bytes(), b" jited:")
        .or_else(|| text.starts_with("jited:").then_some(0))?;
    let after = text[at..].trim_start().strip_prefix("jited:")?;
    let (value, after) = after.split_once(' ').unwrap_or((after, ""));
    let jited = value.parse::<u32>().ok()? != 0;
    Some((at, jited, after))
}

fn jited_of(text: &str) -> Option<bool> {
    find_jited(text).map(|(_, j, _)| j)
}

fn descr_of(text: &str) -> String {
    match find_jited(text) {
        Some((at, _, _)) => text[..at].trim_end().to_owned(),
        None => text.trim_end().to_owned(),
    }
}

/// Start of the verdict in a text without `jited:`: the first FAIL-word ("FAIL to prog_create
/// err=..", "UNEXPECTED_FAIL no memory left"), else the last PASS-word.
fn verdict_start(text: &str) -> Option<usize> {
    let words = || {
        text.split(' ').scan(0, |pos, word| {
            let at = *pos;
            *pos += word.len() + 1;
            Some((at, word))
        })
    };
    words()
        .find(|(_, w)| *w == "FAIL" || *w == "UNEXPECTED_FAIL")
        .or_else(|| {
            words()
                .filter(|(_, w)| *w == "PASS" || *w == "UNEXPECTED_PASS")
                .last()
        })
        .map(|(at, _)| at)
}

/// Parses what follows `jited:N` (durations, mismatches, the verdict). `None` until the
/// verdict is there.
fn parse_outcome(after: &str) -> Option<Outcome> {
    // The common case, numbers (run times) then PASS, without collecting tokens.
    let mut words = after.split_ascii_whitespace();
    if words.next_back() == Some("PASS") && words.all(|w| w.bytes().all(|b| b.is_ascii_digit())) {
        return Some(Outcome::Pass);
    }
    let mut tokens: Vec<&str> = Vec::new();
    for word in after.split_whitespace() {
        // "(0x2 != 0x1)FAIL": the kernel prints no space before FAIL after the hex pair.
        match word.find(')') {
            Some(at) if at + 1 < word.len() => {
                tokens.push(&word[..=at]);
                tokens.push(&word[at + 1..]);
            }
            _ => tokens.push(word),
        }
    }
    let mut mismatches = Vec::new();
    let mut other = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i];
        if t == "PASS" {
            return Some(if mismatches.is_empty() && other.is_empty() {
                Outcome::Pass
            } else {
                // A PASS after a mismatch cannot come from the kernel: keep what we saw.
                Outcome::Fail(join_failure(&mismatches, &other, &tokens[i..]))
            });
        }
        if t.starts_with("FAIL") || t.starts_with("UNEXPECTED_") {
            return Some(Outcome::Fail(join_failure(
                &mismatches,
                &other,
                &tokens[i..],
            )));
        }
        if t == "ret" && tokens.get(i + 2) == Some(&"!=") {
            let (got, want) = (tokens.get(i + 1)?, tokens.get(i + 3)?);
            let mut m = format!("ret {got} != {want}");
            i += 4;
            if tokens.get(i).is_some_and(|t| t.starts_with('(')) && i + 2 < tokens.len() {
                m.push_str(&format!(" {} != {}", tokens[i], tokens[i + 2]));
                i += 3;
            }
            mismatches.push(m);
            continue;
        }
        if t.parse::<i64>().is_err() {
            other.push(t);
        }
        i += 1;
    }
    None
}

fn join_failure(mismatches: &[String], other: &[&str], verdict: &[&str]) -> String {
    let mut parts: Vec<String> = mismatches.to_vec();
    if !other.is_empty() {
        parts.push(other.join(" "));
    }
    parts.push(verdict.join(" "));
    parts.join("; ")
}

/// Parses `[<suite>: ]Summary: P PASSED, F FAILED[, [J/R JIT'ed]]...`.
pub fn parse_summary(rest: &str) -> Option<Summary> {
    let (suite, body) = match rest.split_once("Summary: ") {
        Some(("", body)) => (Suite::TestBpf, body),
        Some((prefix, body)) => (prefix.strip_suffix(": ")?.parse().ok()?, body),
        None => return None,
    };
    let mut words = body.split_whitespace();
    let passed = words.next()?.parse().ok()?;
    if words.next()? != "PASSED," {
        return None;
    }
    let failed = words.next()?.parse().ok()?;
    if !words.next()?.starts_with("FAILED") {
        return None;
    }
    let jited = match words.next() {
        Some(w) if w.starts_with('[') => {
            let (j, r) = w.trim_start_matches('[').split_once('/')?;
            if words.next() != Some("JIT'ed]") {
                return None;
            }
            Some((j.parse().ok()?, r.parse().ok()?))
        }
        _ => None,
    };
    Some(Summary {
        suite,
        passed,
        failed,
        jited,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(suites: &[Suite], lines: &[&str], status: i32) -> (Vec<TestResult>, Vec<String>) {
        let mut p = LoadParser::new(Mode::Jit, suites.to_vec());
        for l in lines {
            p.line(l.as_bytes());
        }
        let errors = p.end(status);
        (p.into_results(), errors)
    }

    fn one(line: &str) -> TestResult {
        let mut p = LoadParser::new(Mode::Jit, vec![Suite::TestBpf]);
        assert_eq!(p.line(line.as_bytes()), Event::Finished, "{line}");
        p.results()[0].clone()
    }

    #[test]
    fn pass_line() {
        let r = one("test_bpf: #0 TAX jited:1 100 75 75 PASS");
        assert_eq!(
            (r.id, r.name.as_str(), r.status, r.jited),
            (Some(0), "TAX", Status::Pass, Some(true))
        );
        assert_eq!(r.message, None);
    }

    #[test]
    fn names_with_spaces_colons_and_pipes() {
        let r = one("test_bpf: #81 ALU_MOVSX | BPF_B jited:0 6 PASS");
        assert_eq!(
            (r.name.as_str(), r.jited),
            ("ALU_MOVSX | BPF_B", Some(false))
        );
        let r =
            one("test_bpf: #445 JMP32_JLT_K: Small immediate jited:1 ret 0 != 123 FAIL (1 times)");
        assert_eq!(r.name, "JMP32_JLT_K: Small immediate");
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.message.as_deref(), Some("ret 0 != 123; FAIL (1 times)"));
    }

    #[test]
    fn failure_with_hex_pair_and_no_space_before_fail() {
        let r =
            one("test_bpf: #81 ALU_MOVSX | BPF_B jited:1 ret 2 != 1 (0x2 != 0x1)FAIL (1 times)");
        assert_eq!(r.status, Status::Fail);
        assert_eq!(
            r.message.as_deref(),
            Some("ret 2 != 1 (0x2 != 0x1); FAIL (1 times)")
        );
    }

    #[test]
    fn failing_subtest_between_timings() {
        let r = one("test_bpf: #12 LD_ABS jited:1 0 ret -1 != 1 0 FAIL (1 times)");
        assert_eq!(r.message.as_deref(), Some("ret -1 != 1; FAIL (1 times)"));
    }

    #[test]
    fn outcomes_without_a_program() {
        let r = one("test_bpf: #30 check: missing ret PASS");
        assert_eq!(
            (r.name.as_str(), r.status, r.jited),
            ("check: missing ret", Status::Pass, None)
        );
        let r = one("test_bpf: #31 check: div_k_0 UNEXPECTED_PASS");
        assert_eq!(
            (r.name.as_str(), r.status),
            ("check: div_k_0", Status::Fail)
        );
        assert_eq!(r.message.as_deref(), Some("UNEXPECTED_PASS"));
        let r = one("test_bpf: #32 LD_IMM64 FAIL to prog_create err=-22 len=4096");
        assert_eq!((r.name.as_str(), r.status), ("LD_IMM64", Status::Fail));
        assert_eq!(
            r.message.as_deref(),
            Some("FAIL to prog_create err=-22 len=4096")
        );
        let r = one("test_bpf: #33 BPF_MAXINSNS: jump over MSH FAIL to select_runtime err=-524");
        assert_eq!(r.name, "BPF_MAXINSNS: jump over MSH");
        assert_eq!(
            r.message.as_deref(),
            Some("FAIL to select_runtime err=-524")
        );
        let r = one("test_bpf: #34 big UNEXPECTED_FAIL no memory left");
        assert_eq!(r.message.as_deref(), Some("UNEXPECTED_FAIL no memory left"));
        let r = one("test_bpf: #35 ld_abs gen jited:1 data generation failed FAIL (1 times)");
        assert_eq!(
            r.message.as_deref(),
            Some("data generation failed; FAIL (1 times)")
        );
    }

    #[test]
    fn tail_call_failure() {
        let mut p = LoadParser::new(Mode::Jit, vec![Suite::TestTailCalls]);
        p.line(b"test_bpf: #3 Tail call error path, NULL target jited:1 ret 1 != 2 FAIL");
        let r = &p.results()[0];
        assert_eq!(
            (r.suite.name(), r.name.as_str()),
            ("test_tail_calls", "Tail call error path, NULL target")
        );
        assert_eq!(r.message.as_deref(), Some("ret 1 != 2; FAIL"));
    }

    #[test]
    fn verdict_split_by_another_message_is_joined() {
        let mut p = LoadParser::new(Mode::Jit, vec![Suite::TestBpf]);
        assert_eq!(p.line(b"test_bpf: #7 ALU_ADD_X jited:1 "), Event::Nothing);
        assert_eq!(p.line(b"random: crng init done"), Event::Nothing);
        assert_eq!(p.line(b"12 34 PASS"), Event::Finished);
        assert_eq!(p.results()[0].name, "ALU_ADD_X");
        assert_eq!(p.results()[0].status, Status::Pass);
    }

    #[test]
    fn summaries_of_each_suite() {
        assert_eq!(
            parse_summary("Summary: 1026 PASSED, 0 FAILED, [1014/1014 JIT'ed]"),
            Some(Summary {
                suite: Suite::TestBpf,
                passed: 1026,
                failed: 0,
                jited: Some((1014, 1014))
            })
        );
        assert_eq!(
            parse_summary(
                "test_tail_calls: Summary: 10 PASSED, 0 FAILED, [10/10 JIT'ed] in 12 nsec"
            ),
            Some(Summary {
                suite: Suite::TestTailCalls,
                passed: 10,
                failed: 0,
                jited: Some((10, 10))
            })
        );
        assert_eq!(
            parse_summary("test_skb_segment: Summary: 2 PASSED, 0 FAILED"),
            Some(Summary {
                suite: Suite::TestSkbSegment,
                passed: 2,
                failed: 0,
                jited: None
            })
        );
        assert_eq!(parse_summary("Summary: lots PASSED"), None);
        assert_eq!(parse_summary("bogus: Summary: 1 PASSED, 0 FAILED"), None);
    }

    #[test]
    fn suites_follow_each_other() {
        let (results, errors) = parse_all(
            &Suite::ALL,
            &[
                "test_bpf: #0 TAX jited:1 5 PASS",
                "test_bpf: #1 check PASS",
                "test_bpf: Summary: 2 PASSED, 0 FAILED, [1/1 JIT'ed]",
                "test_bpf: #0 Tail call leaf jited:1 9 PASS",
                "test_bpf: test_tail_calls: Summary: 1 PASSED, 0 FAILED, [1/1 JIT'ed]",
                "test_bpf: #0 gso_with_rx_frags PASS",
                "test_bpf: test_skb_segment: Summary: 1 PASSED, 0 FAILED",
            ],
            0,
        );
        assert_eq!(errors, Vec::<String>::new());
        let suites: Vec<&str> = results.iter().map(|r| r.suite.name()).collect();
        assert_eq!(
            suites,
            [
                "test_bpf",
                "test_bpf",
                "test_tail_calls",
                "test_skb_segment"
            ]
        );
    }

    #[test]
    fn a_failing_suite_stops_the_module_and_a_retry_is_ignored() {
        let first_pass = [
            "test_bpf: #0 TAX jited:1 5 PASS",
            "test_bpf: #1 JMP32_JLT_K: Small immediate jited:1 ret 0 != 123 FAIL (1 times)",
            "test_bpf: Summary: 1 PASSED, 1 FAILED, [2/2 JIT'ed]",
        ];
        let mut lines = first_pass.to_vec();
        lines.extend(first_pass);
        let (results, errors) = parse_all(&Suite::ALL, &lines, 1);
        assert_eq!(errors, Vec::<String>::new());
        let got: Vec<(&str, Option<u32>, Status)> = results
            .iter()
            .map(|r| (r.suite.name(), r.id, r.status))
            .collect();
        assert_eq!(
            got,
            [
                ("test_bpf", Some(0), Status::Pass),
                ("test_bpf", Some(1), Status::Fail),
                ("test_tail_calls", None, Status::NotRun),
                ("test_skb_segment", None, Status::NotRun),
            ]
        );
    }

    #[test]
    fn counts_that_disagree_with_the_summary_are_errors() {
        let (_, errors) = parse_all(
            &[Suite::TestBpf],
            &[
                "test_bpf: #0 TAX jited:1 5 PASS",
                "test_bpf: Summary: 2 PASSED, 0 FAILED, [2/2 JIT'ed]",
            ],
            0,
        );
        assert_eq!(
            errors,
            [
                "test_bpf: 1 passed, 0 failed parsed, but the kernel counted 2 passed, 0 failed",
                "test_bpf: 1/1 JIT'ed parsed, but the kernel counted 2/2"
            ]
        );
    }

    #[test]
    fn load_failing_before_any_test_names_the_module_message() {
        let (results, errors) = parse_all(
            &[Suite::TestBpf],
            &["test_bpf: test_bpf: no test named 'nope' found for 'test_bpf' suite."],
            1,
        );
        assert_eq!(
            errors,
            [
                "test_bpf.ko refused the test selection (status 1); the module said: \
              test_bpf: no test named 'nope' found for 'test_bpf' suite."
            ]
        );
        assert_eq!(results[0].status, Status::NotRun);
    }

    #[test]
    fn load_failing_for_another_reason_is_a_harness_error() {
        let (_, errors) = parse_all(&[Suite::TestBpf], &[], 1);
        assert_eq!(
            errors,
            ["test_bpf.ko failed to load (status 1) before running any test"]
        );
    }

    #[test]
    fn exit_status_must_agree_with_summaries() {
        let (_, errors) = parse_all(
            &[Suite::TestSkbSegment],
            &[
                "test_bpf: #0 gso PASS",
                "test_bpf: test_skb_segment: Summary: 1 PASSED, 0 FAILED",
            ],
            1,
        );
        assert_eq!(
            errors,
            ["the module load returned status 1, but its summaries say every test passed"]
        );
    }

    #[test]
    fn a_crash_is_pinned_on_the_running_test() {
        let mut p = LoadParser::new(Mode::Jit, Suite::ALL.to_vec());
        p.line(b"test_bpf: #0 TAX jited:1 5 PASS");
        p.line(b"test_bpf: #1 LD_ABS jited:1 ");
        assert_eq!(p.running(), Some((Suite::TestBpf, 1, "LD_ABS".to_owned())));
        p.interrupt(Status::Crash, "Kernel panic - not syncing: Fatal exception");
        let got: Vec<(&str, Option<u32>, Status, &str)> = p
            .results()
            .iter()
            .map(|r| (r.suite.name(), r.id, r.status, r.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("test_bpf", Some(0), Status::Pass, "TAX"),
                ("test_bpf", Some(1), Status::Crash, "LD_ABS"),
                (
                    "test_bpf",
                    None,
                    Status::NotRun,
                    "test_bpf (tests after #1)"
                ),
                (
                    "test_tail_calls",
                    None,
                    Status::NotRun,
                    "test_tail_calls (whole suite)"
                ),
                (
                    "test_skb_segment",
                    None,
                    Status::NotRun,
                    "test_skb_segment (whole suite)"
                ),
            ]
        );
    }

    #[test]
    fn with_the_module_list_a_crash_names_its_test_and_every_other_test_is_listed() {
        let catalog: Catalog = [
            (
                Suite::TestBpf,
                vec!["TAX".to_owned(), "TXA".to_owned(), "ADD".to_owned()],
            ),
            (Suite::TestTailCalls, vec!["Tail call leaf".to_owned()]),
            (Suite::TestSkbSegment, vec!["gso".to_owned()]),
        ]
        .into();
        let mut p = LoadParser::new(Mode::Jit, Suite::ALL.to_vec()).with_catalog(&catalog, None);
        p.line(b"test_bpf: #0 TAX jited:1 5 PASS");
        // The kernel died before printing #1's line.
        p.interrupt(
            Status::Crash,
            "Kernel panic - not syncing: sysrq triggered crash",
        );
        let got: Vec<(&str, Option<u32>, &str, Status)> = p
            .results()
            .iter()
            .map(|r| (r.suite.name(), r.id, r.name.as_str(), r.status))
            .collect();
        assert_eq!(
            got,
            [
                ("test_bpf", Some(0), "TAX", Status::Pass),
                ("test_bpf", Some(1), "TXA", Status::Crash),
                ("test_bpf", Some(2), "ADD", Status::NotRun),
                ("test_tail_calls", Some(0), "Tail call leaf", Status::NotRun),
                ("test_skb_segment", Some(0), "gso", Status::NotRun),
            ]
        );
        let filtered = LoadParser::new(Mode::Jit, vec![Suite::TestBpf])
            .with_catalog(&catalog, Some(&Filter::Range(1, 2)));
        assert_eq!(filtered.missing(Suite::TestBpf).unwrap().len(), 2);
    }

    #[test]
    fn an_interrupted_load_says_why_tests_did_not_run() {
        let mut p = LoadParser::new(Mode::Jit, Suite::ALL.to_vec());
        p.line(b"test_bpf: #0 TAX jited:1 5 PASS");
        p.interrupt(Status::NotRun, "the run was interrupted");
        let messages: Vec<(&str, &str)> = p
            .results()
            .iter()
            .skip(1)
            .map(|r| (r.name.as_str(), r.message.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            messages,
            [
                (
                    "test_bpf (tests after #0)",
                    "not run: the run was interrupted"
                ),
                (
                    "test_tail_calls (whole suite)",
                    "not run: the run was interrupted in an earlier suite"
                ),
                (
                    "test_skb_segment (whole suite)",
                    "not run: the run was interrupted in an earlier suite"
                ),
            ]
        );
    }
}
