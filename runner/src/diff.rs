//! A run against its baseline: every test that changed, in exactly one class.
//!
//! The classes go by direction. A test that got worse is a `regression`; one that got better a
//! `fix`; one the JIT stopped (or started) compiling, or that stopped (or started) running at
//! all, is JIT coverage `lost` (`gained`). Infrastructure (`not_run`, `error`, on either side)
//! is a class of its own, so that a guest that died neither hides a regression nor fakes a
//! fix.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::baseline::{Baseline, Entry};
use crate::model::{keys, Filter, Scope, Status, TestKey, TestResult, DIVERGENCE_KEY};

/// The class of one change. The serialized names are part of `report.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Worse than the baseline: pass or skip to fail, crash, hang; fail to crash; a new
    /// divergence; a test not in the baseline that fails (the baseline had no failure there).
    Regression,
    /// JIT-compiled before, not now; or run before and skipped now.
    CoverageLost,
    /// Better than the baseline: a failure that passes, a crash that only fails now, a
    /// divergence gone.
    Fix,
    /// Not JIT-compiled before and compiled now; or skipped before and run now.
    CoverageGained,
    /// In the run, not in the baseline, and not failing.
    New,
    /// In the baseline and in what the run selected, but the kernel no longer has it.
    Removed,
    /// `not_run` or `error` on either side: the harness or the guest failed, not the test.
    NotRun,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::Regression,
        Class::CoverageLost,
        Class::Fix,
        Class::CoverageGained,
        Class::New,
        Class::Removed,
        Class::NotRun,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Regression => "regression",
            Class::CoverageLost => "coverage-lost",
            Class::Fix => "fix",
            Class::CoverageGained => "coverage-gained",
            Class::New => "new",
            Class::Removed => "removed",
            Class::NotRun => "not-run",
        }
    }

    /// What the gate fails on unless told otherwise.
    pub const GATE_DEFAULT: [Class; 2] = [Class::Regression, Class::CoverageLost];
}

impl std::str::FromStr for Class {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Class::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Class::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown change class `{s}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// One test that changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub class: Class,
    pub suite: String,
    /// The name as the baseline keys it (`NAME (2)` for a repeated name).
    pub name: String,
    /// A mode, or `divergence` for a divergence finding.
    pub mode: String,
    /// In the baseline: `pass jited`, `fail`, ...; `None` for a new test.
    pub before: Option<String>,
    /// In this run; `None` for a removed test.
    pub after: Option<String>,
    /// The run's message for the test, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the gate lets this change pass (`suites/quarantine.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
}

/// A run against its baseline: the part of `report.json` under `diff`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// The baseline file, as given.
    pub baseline: String,
    /// How many of each class, every class present.
    pub counts: BTreeMap<Class, usize>,
    /// Results the same as in the baseline.
    pub unchanged: usize,
    pub changes: Vec<Change>,
    /// Why removed tests were not judged, when they could not be (a shard, a number filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_not_judged: Option<String>,
}

/// How bad a status is, for telling a regression from a fix between two failures.
fn severity(status: Status) -> u8 {
    match status {
        Status::Pass => 0,
        Status::Skip => 1,
        Status::Fail | Status::Divergence => 2,
        Status::Hang => 3,
        Status::Crash => 4,
        // Not judged: infrastructure.
        Status::NotRun | Status::Error => 0,
    }
}

pub fn is_infrastructure(status: Status) -> bool {
    matches!(status, Status::NotRun | Status::Error)
}

/// The class of a result that is in both, or `None` when it did not change.
pub fn classify(before: Entry, after: Entry) -> Option<Class> {
    let jited = |e: Entry| e.jited == Some(true);
    if before.status == after.status {
        return match (jited(before), jited(after)) {
            (true, false) => Some(Class::CoverageLost),
            (false, true) => Some(Class::CoverageGained),
            _ => None,
        };
    }
    if is_infrastructure(before.status) || is_infrastructure(after.status) {
        return Some(Class::NotRun);
    }
    Some(match (before.status, after.status) {
        (_, Status::Skip) if before.status == Status::Pass => Class::CoverageLost,
        (Status::Skip, Status::Pass) => Class::CoverageGained,
        // A failure that now skips hides itself: the test no longer runs.
        (_, Status::Skip) => Class::CoverageLost,
        (b, a) if severity(a) > severity(b) => Class::Regression,
        _ => Class::Fix,
    })
}

/// Whether a run of `scope` selected `key`: its suite and mode, and its name under the run's
/// filter. `None` when it cannot tell.
pub fn selected(scope: Option<&Scope>, key: &TestKey) -> Option<bool> {
    let scope = scope?;
    if !scope.suites.contains(&key.suite) {
        return Some(false);
    }
    let mode_selected = if key.mode == DIVERGENCE_KEY {
        // A divergence compares modes: it can appear only when two ran.
        scope.modes.len() > 1
    } else {
        scope.modes.iter().any(|m| m.name() == key.mode)
    };
    if !mode_selected {
        return Some(false);
    }
    match &scope.filter {
        None => Some(true),
        Some(filter) => {
            let filter: Filter = filter.parse().ok()?;
            // The filter cuts the first suite only; a numbered key's name is not the test's.
            if scope.suites.first() != Some(&key.suite) {
                return Some(true);
            }
            filter.selects(None, Some(&key.name))
        }
    }
}

fn change(
    class: Class,
    key: &TestKey,
    before: Option<Entry>,
    after: Option<Entry>,
    message: Option<String>,
) -> Change {
    Change {
        class,
        suite: key.suite.clone(),
        name: key.name.clone(),
        mode: key.mode.clone(),
        before: before.map(|e| e.to_string()),
        after: after.map(|e| e.to_string()),
        message,
        quarantined: None,
    }
}

/// What of a run a diff reads.
#[derive(Clone, Copy, Debug)]
pub struct RunResults<'a> {
    pub results: &'a [TestResult],
    /// What the run selected; `None` in a report that does not say.
    pub scope: Option<&'a Scope>,
    /// Whether the run is one shard of a selection.
    pub sharded: bool,
}

/// `run` against `baseline` (read from `baseline_path`).
pub fn diff(baseline: &Baseline, baseline_path: &str, run: RunResults<'_>) -> Diff {
    let before: BTreeMap<TestKey, Entry> = baseline.entries().collect();
    let mut out = Diff {
        baseline: baseline_path.to_owned(),
        counts: Class::ALL.iter().map(|&c| (c, 0)).collect(),
        ..Diff::default()
    };
    let seen = judge_results(&before, run.results, &mut out);
    judge_missing(&before, &seen, run, &mut out);
    for change in &out.changes {
        *out.counts.entry(change.class).or_default() += 1;
    }
    out
}

/// Where the run could not name its tests (no guest booted, say), the entries that stand for
/// them, by suite and mode.
fn placeholders(results: &[TestResult]) -> BTreeMap<(&str, &str), &TestResult> {
    results
        .iter()
        .filter(|r| r.is_placeholder())
        .map(|r| ((r.suite.name(), r.mode.name()), r))
        .collect()
}

/// Judges each of the run's results against its baseline entry, into `out`; returns the
/// keys of the results.
fn judge_results(
    before: &BTreeMap<TestKey, Entry>,
    results: &[TestResult],
    out: &mut Diff,
) -> BTreeSet<TestKey> {
    // A placeholder's tests of that suite and mode were not run, not removed: it is counted
    // through the baseline's tests it stands for (`judge_missing`).
    let in_baseline: BTreeSet<(&str, &str)> = before
        .keys()
        .map(|k| (k.suite.as_str(), k.mode.as_str()))
        .collect();
    let mut seen = BTreeSet::new();
    for (key, result) in keys(results).into_iter().zip(results) {
        seen.insert(key.clone());
        if result.is_placeholder()
            && in_baseline.contains(&(result.suite.name(), result.mode.name()))
        {
            continue;
        }
        let after = Entry::of(result);
        let class = match before.get(&key) {
            Some(&b) => classify(b, after),
            None if result.status.is_test_failure() => Some(Class::Regression),
            None if is_infrastructure(result.status) => Some(Class::NotRun),
            None => Some(Class::New),
        };
        match class {
            Some(class) => out.changes.push(change(
                class,
                &key,
                before.get(&key).copied(),
                Some(after),
                result.message.clone(),
            )),
            None => out.unchanged += 1,
        }
    }
    seen
}

/// Judges the baseline's tests the run did not report (`seen` holds those it did): removed,
/// not run, a divergence gone, or not selected; into `out`.
fn judge_missing(
    before: &BTreeMap<TestKey, Entry>,
    seen: &BTreeSet<TestKey>,
    run: RunResults<'_>,
    out: &mut Diff,
) {
    let placeholders = placeholders(run.results);
    let cannot_judge = if run.sharded {
        Some("a shard holds part of the selection: judge removed tests on the merged report")
    } else if run.scope.is_none() {
        Some("the report does not say what was selected")
    } else {
        None
    };
    let mut unjudged = false;
    for (key, &b) in before.iter().filter(|(key, _)| !seen.contains(key)) {
        let selected = selected(run.scope, key);
        if key.mode == DIVERGENCE_KEY {
            // Gone because the modes agree now, if both modes ran.
            if selected == Some(true) && cannot_judge.is_none() {
                out.changes
                    .push(change(Class::Fix, key, Some(b), None, None));
            }
            continue;
        }
        if let Some(stand_in) = placeholders.get(&(key.suite.as_str(), key.mode.as_str())) {
            let after = Some(Entry::of(stand_in));
            let message = stand_in.message.clone();
            out.changes
                .push(change(Class::NotRun, key, Some(b), after, message));
            continue;
        }
        match (cannot_judge, selected) {
            (None, Some(true)) => {
                out.changes
                    .push(change(Class::Removed, key, Some(b), None, None))
            }
            (None, Some(false)) => {}
            _ => unjudged = true,
        }
    }
    out.removed_not_judged = match cannot_judge {
        Some(why) => Some(why.to_owned()),
        None if unjudged => Some("the run's --filter names tests by number".to_owned()),
        None => None,
    };
}

impl Diff {
    /// The changes that fail the gate: of a class in `fail_on`, and not quarantined.
    pub fn gate_failures<'a>(&'a self, fail_on: &'a [Class]) -> impl Iterator<Item = &'a Change> {
        self.changes
            .iter()
            .filter(move |c| fail_on.contains(&c.class) && c.quarantined.is_none())
    }

    pub fn count(&self, class: Class) -> usize {
        self.counts.get(&class).copied().unwrap_or(0)
    }

    /// The diff for a terminal: the headline, then one line per change, the ones that fail
    /// the gate marked; tests not run, which a guest that never booted makes by the
    /// thousand, in one line (report.json lists them).
    pub fn render_text(&self, fail_on: &[Class]) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "against {}: {} ({} unchanged)\n",
            self.baseline,
            self.headline(),
            self.unchanged
        );
        let mut not_run: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for c in self.changes.iter().filter(|c| c.class == Class::NotRun) {
            *not_run.entry((&c.suite, &c.mode)).or_default() += 1;
        }
        if !not_run.is_empty() {
            let parts: Vec<String> = not_run
                .iter()
                .map(|((suite, mode), n)| format!("{suite} [{mode}] {n}"))
                .collect();
            let mark = match fail_on.contains(&Class::NotRun) {
                true => " <- fails the gate",
                false => "",
            };
            let _ = writeln!(
                out,
                "  {:<15} {} not run: {} (the run's errors say why){mark}",
                Class::NotRun.name(),
                self.count(Class::NotRun),
                parts.join(", ")
            );
        }
        for c in self.changes.iter().filter(|c| c.class != Class::NotRun) {
            let mark = match (&c.quarantined, fail_on.contains(&c.class)) {
                (Some(why), _) => format!(" (quarantined: {why})"),
                (None, true) => " <- fails the gate".to_owned(),
                (None, false) => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<15} {} {} [{}]: {} -> {}{mark}",
                c.class.name(),
                c.suite,
                c.name,
                c.mode,
                c.before.as_deref().unwrap_or("(none)"),
                c.after.as_deref().unwrap_or("(none)"),
            );
        }
        if let Some(why) = &self.removed_not_judged {
            let _ = writeln!(out, "  removed tests not judged: {why}");
        }
        out
    }

    /// `no change` or the count of each class that has any.
    pub fn headline(&self) -> String {
        let parts: Vec<String> = Class::ALL
            .iter()
            .filter(|&&c| self.count(c) > 0)
            .map(|&c| format!("{} {}", self.count(c), c.name()))
            .collect();
        if parts.is_empty() {
            "no change".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::model::{AgentSuite, Mode, Suite, TestResult};
    use crate::report::{KernelInfo, Report, Scope, Timing};

    fn result(name: &str, status: Status, jited: Option<bool>) -> TestResult {
        TestResult {
            jited,
            ..TestResult::new(Suite::TestBpf, Some(0), name, Mode::Jit, status)
        }
    }

    /// `run` against `baseline`, as the gate diffs it.
    fn diff(baseline: &Baseline, path: &str, run: &Report) -> Diff {
        run.diff_against(baseline, path)
    }

    fn report(results: Vec<TestResult>) -> Report {
        let mut r = Report::new(
            KernelInfo {
                arch: Arch::X86_64,
                release: None,
                source: "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2".into(),
                revision: None,
                config_hash: None,
            },
            results,
            Vec::new(),
            true,
            Timing::default(),
        );
        r.scope = Some(Scope {
            suites: vec!["test_bpf".into()],
            modes: vec![Mode::Jit],
            filter: None,
        });
        r
    }

    fn e(status: Status, jited: Option<bool>) -> Entry {
        Entry { status, jited }
    }

    #[test]
    fn every_pair_of_statuses_gets_one_class() {
        use Status::*;
        let j = Some(true);
        let cases = [
            (e(Pass, j), e(Pass, j), None),
            (e(Pass, j), e(Fail, j), Some(Class::Regression)),
            (e(Pass, j), e(Crash, None), Some(Class::Regression)),
            (e(Pass, j), e(Hang, None), Some(Class::Regression)),
            (e(Skip, None), e(Fail, j), Some(Class::Regression)),
            (e(Fail, j), e(Crash, None), Some(Class::Regression)),
            (e(Fail, j), e(Pass, j), Some(Class::Fix)),
            (e(Crash, None), e(Fail, j), Some(Class::Fix)),
            (e(Pass, j), e(Pass, Some(false)), Some(Class::CoverageLost)),
            (e(Pass, j), e(Skip, None), Some(Class::CoverageLost)),
            (e(Fail, j), e(Skip, None), Some(Class::CoverageLost)),
            (
                e(Pass, Some(false)),
                e(Pass, j),
                Some(Class::CoverageGained),
            ),
            (e(Skip, None), e(Pass, j), Some(Class::CoverageGained)),
            (e(Pass, j), e(NotRun, None), Some(Class::NotRun)),
            (e(NotRun, None), e(Pass, j), Some(Class::NotRun)),
            (e(Error, None), e(Fail, j), Some(Class::NotRun)),
            (e(NotRun, None), e(NotRun, None), None),
        ];
        for (b, a, want) in cases {
            assert_eq!(classify(b, a), want, "{b} -> {a}");
        }
    }

    fn baseline_of(results: Vec<TestResult>) -> Baseline {
        report(results).baseline()
    }

    #[test]
    fn a_run_that_booted_no_guest_removes_nothing_and_says_so_in_one_line() {
        let passed: Vec<TestResult> = (0..500)
            .map(|i| result(&format!("T{i}"), Status::Pass, Some(true)))
            .collect();
        // What two guests that never booted leave: a stand-in per load, none per test.
        let stand_in = || {
            TestResult::not_run(
                Suite::TestBpf,
                Mode::Jit,
                "test_bpf (whole suite)".into(),
                "not run: the guest ended before this load",
            )
        };
        let d = diff(
            &baseline_of(passed),
            "b.yaml",
            &report(vec![stand_in(), stand_in()]),
        );
        assert_eq!(d.count(Class::Removed), 0);
        assert_eq!(d.count(Class::NotRun), 500);
        assert_eq!(d.headline(), "500 not-run");
        assert_eq!(
            d.render_text(&Class::GATE_DEFAULT),
            "against b.yaml: 500 not-run (0 unchanged)\n  not-run         500 not run: \
             test_bpf [jit] 500 (the run's errors say why)\n"
        );
        // A kernel that ran and no longer has a test: that is removed, still.
        let d = diff(
            &baseline_of(vec![
                result("A", Status::Pass, Some(true)),
                result("B", Status::Pass, Some(true)),
            ]),
            "b.yaml",
            &report(vec![result("A", Status::Pass, Some(true))]),
        );
        assert_eq!(d.headline(), "1 removed");
    }

    #[test]
    fn a_clean_run_is_no_change() {
        let results = vec![result("A", Status::Pass, Some(true))];
        let d = diff(&baseline_of(results.clone()), "b.yaml", &report(results));
        assert_eq!(d.headline(), "no change");
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.gate_failures(&Class::GATE_DEFAULT).count(), 0);
    }

    #[test]
    fn new_removed_and_regressed_tests_are_named() {
        let base = baseline_of(vec![
            result("A", Status::Pass, Some(true)),
            result("B", Status::Pass, Some(true)),
            result("gone", Status::Pass, Some(true)),
        ]);
        let run = report(vec![
            result("A", Status::Fail, Some(true)),
            result("B", Status::Pass, Some(false)),
            result("added", Status::Pass, Some(true)),
            result("added and failing", Status::Crash, None),
        ]);
        let d = diff(&base, "b.yaml", &run);
        let got: Vec<(Class, &str)> = d
            .changes
            .iter()
            .map(|c| (c.class, c.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Class::Regression, "A"),
                (Class::CoverageLost, "B"),
                (Class::New, "added"),
                (Class::Regression, "added and failing"),
                (Class::Removed, "gone"),
            ]
        );
        assert_eq!(
            d.headline(),
            "2 regression, 1 coverage-lost, 1 new, 1 removed"
        );
        assert_eq!(d.gate_failures(&Class::GATE_DEFAULT).count(), 3);
        assert_eq!(d.gate_failures(&[Class::Removed]).count(), 1);
    }

    #[test]
    fn tests_outside_the_selection_are_not_removed() {
        let mut interp = result("A", Status::Pass, Some(false));
        interp.mode = Mode::Interp;
        let base = baseline_of(vec![result("A", Status::Pass, Some(true)), interp]);
        let d = diff(
            &base,
            "b.yaml",
            &report(vec![result("A", Status::Pass, Some(true))]),
        );
        assert_eq!(d.headline(), "no change");

        let mut run = report(Vec::new());
        if let Some(scope) = run.scope.as_mut() {
            scope.filter = Some("name:A".into());
        }
        let d = diff(&base, "b.yaml", &run);
        assert_eq!(d.headline(), "1 removed");

        run.shard = Some(crate::report::ShardId { index: 1, count: 2 });
        let d = diff(&base, "b.yaml", &run);
        assert_eq!(d.headline(), "no change");
        assert!(d.removed_not_judged.is_some());
    }

    #[test]
    fn a_divergence_that_appears_is_a_regression_and_one_that_goes_a_fix() {
        let mut jit = result("c", Status::Pass, Some(true));
        jit.suite = AgentSuite::Verifier.into();
        let mut interp = jit.clone();
        interp.mode = Mode::Interp;
        let mut finding = jit.clone();
        finding.status = Status::Divergence;
        let mut run = report(vec![interp.clone(), jit.clone(), finding]);
        if let Some(scope) = run.scope.as_mut() {
            scope.suites = vec!["verifier".into()];
            scope.modes = vec![Mode::Interp, Mode::Jit];
        }
        let clean = baseline_of(vec![interp.clone(), jit.clone()]);
        assert_eq!(diff(&clean, "b", &run).headline(), "1 regression");

        let diverged = run.baseline();
        run.results.pop();
        assert_eq!(diff(&diverged, "b", &run).headline(), "1 fix");
    }
}
