//! Tracking across kernel revisions: per arch and kernel flavour, every test's result at each
//! revision of a series, and each change pinned on the first revision that shows it.
//!
//! The input is the history store's runs, one report per revision; the output is
//! `track.json` (a [`Track`]), `track.md` ([`markdown`]) and `track.html` ([`html`]).
//! A revision where a test did not run (`not_run`, `error`, or not selected) tells nothing
//! about it: a change is judged against the last revision that did run it, so a dead guest
//! neither hides a regression nor moves it.

pub mod html;
pub mod markdown;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::baseline::Entry;
use crate::diff::{self, Class};
use crate::model::{keys, Status, TestKey};
use crate::report::Report;

/// Version of `track.json`'s layout.
pub const SCHEMA_VERSION: u32 = 1;

/// A revision as the history store records it beside its report (`revision.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionInfo {
    /// What names it: a Debian ABI (`6.1.0-50`) or a commit.
    pub id: String,
    /// Its place in the series: revisions are shown in this order, then by id.
    pub order: u64,
    /// One line on what it is: a commit's subject, a package's version.
    pub subject: String,
}

/// One revision of a series in the view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    #[serde(flatten)]
    pub info: RevisionInfo,
    /// `uname -r` of its kernel, when the guest said.
    pub release: Option<String>,
    /// False when its run was cut short: its results are what was seen until then.
    pub complete: bool,
    /// How many results of each status it had.
    pub counts: BTreeMap<Status, usize>,
    /// Run by this invocation: what "since the previous nightly" covers.
    pub new: bool,
}

/// One test whose result changed somewhere in a series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestLine {
    pub suite: String,
    /// The name as baselines key it (`NAME (2)` for a repeated name).
    pub name: String,
    /// A mode, or `divergence` for a divergence finding.
    pub mode: String,
    /// Per revision, in the series' order: `pass jited`, `fail`, ...; `None` where the
    /// revision has no such result.
    pub results: Vec<Option<String>>,
    pub changes: Vec<Change>,
    /// Changed back and forth, or passed only when run again: its changes are noise, not a
    /// stream of regressions and fixes.
    pub flaky: bool,
}

/// One change of one test between two revisions that ran it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub class: Class,
    /// The first revision that shows the new result: the one the change is pinned on.
    pub revision: String,
    /// The last revision before it that ran the test: the change came in after this one, up
    /// to and including `revision`.
    pub since: String,
    /// `None` when the test did not exist at `since`.
    pub before: Option<String>,
    /// `None` when the test no longer exists at `revision`.
    pub after: Option<String>,
}

/// One arch and kernel flavour across its revisions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub arch: Arch,
    /// The line of kernels, as baselines name it: `debian-6.1-amd64`, `built`.
    pub flavour: String,
    /// In the series' order.
    pub revisions: Vec<Revision>,
    /// Every test that changed, in key order (suite, mode, name).
    pub tests: Vec<TestLine>,
}

/// Everything `track` shows: `track.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub schema_version: u32,
    pub series: Vec<Series>,
}

/// A run of one revision, as read from the history store.
pub struct Run {
    pub info: RevisionInfo,
    pub report: Report,
    /// Run by this invocation.
    pub new: bool,
}

/// What one revision tells about one test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// It ran, with this result; `None`: the kernel has no such test.
    Known(Option<Entry>),
    /// Not run, or the harness failed: no evidence either way.
    Unknown,
}

impl Series {
    /// The view of `runs` of one arch and flavour, in any order.
    pub fn build(arch: Arch, flavour: &str, mut runs: Vec<Run>) -> Series {
        runs.sort_by(|a, b| (a.info.order, &a.info.id).cmp(&(b.info.order, &b.info.id)));
        let per_run: Vec<BTreeMap<TestKey, (Entry, bool)>> = runs
            .iter()
            .map(|run| {
                keys(&run.report.results)
                    .into_iter()
                    .zip(&run.report.results)
                    .map(|(key, r)| (key, (Entry::of(r), r.flaky.is_some())))
                    .collect()
            })
            .collect();
        let keys: BTreeSet<&TestKey> = per_run.iter().flat_map(|m| m.keys()).collect();
        let mut tests = Vec::new();
        for key in keys {
            let seen: Vec<Seen> = runs
                .iter()
                .zip(&per_run)
                .map(|(run, results)| match results.get(key) {
                    Some((entry, _)) if diff::is_infrastructure(entry.status) => Seen::Unknown,
                    Some((entry, _)) => Seen::Known(Some(*entry)),
                    // Absent: gone from the kernel only if the run selected it.
                    None => match diff::selected(run.report.scope.as_ref(), key) {
                        Some(true) => Seen::Known(None),
                        Some(false) | None => Seen::Unknown,
                    },
                })
                .collect();
            let changes = changes(&runs, &seen);
            let retried = per_run
                .iter()
                .any(|m| m.get(key).is_some_and(|(_, flaky)| *flaky));
            if changes.is_empty() && !retried {
                continue;
            }
            tests.push(TestLine {
                suite: key.suite.clone(),
                name: key.name.clone(),
                mode: key.mode.clone(),
                results: per_run
                    .iter()
                    .map(|m| m.get(key).map(|(entry, _)| entry.to_string()))
                    .collect(),
                flaky: retried || back_and_forth(&changes),
                changes,
            });
        }
        let revisions = runs
            .into_iter()
            .map(|run| Revision {
                counts: Status::ALL
                    .iter()
                    .map(|&s| (s, run.report.count(s)))
                    .filter(|&(_, n)| n > 0)
                    .collect(),
                release: run.report.kernel.release.clone(),
                complete: run.report.complete,
                info: run.info,
                new: run.new,
            })
            .collect();
        Series {
            arch,
            flavour: flavour.to_owned(),
            revisions,
            tests,
        }
    }

    /// The changes pinned on revisions run by this invocation, flaky tests' left out.
    pub fn new_changes(&self) -> impl Iterator<Item = (&TestLine, &Change)> {
        let new: BTreeSet<&str> = self
            .revisions
            .iter()
            .filter(|r| r.new)
            .map(|r| r.info.id.as_str())
            .collect();
        self.tests
            .iter()
            .filter(|t| !t.flaky)
            .flat_map(|t| t.changes.iter().map(move |c| (t, c)))
            .filter(move |(_, c)| new.contains(c.revision.as_str()))
    }
}

/// Each change between consecutive revisions that ran the test, pinned on the later one.
fn changes(runs: &[Run], seen: &[Seen]) -> Vec<Change> {
    let mut out = Vec::new();
    let mut last: Option<(usize, Option<Entry>)> = None;
    for (i, s) in seen.iter().enumerate() {
        let Seen::Known(now) = *s else { continue };
        if let Some((at, before)) = last {
            let class = match (before, now) {
                (Some(b), Some(a)) => diff::classify(b, a),
                (None, Some(a)) if a.status.is_test_failure() => Some(Class::Regression),
                (None, Some(_)) => Some(Class::New),
                (Some(_), None) => Some(Class::Removed),
                (None, None) => None,
            };
            if let Some(class) = class {
                out.push(Change {
                    class,
                    revision: runs[i].info.id.clone(),
                    since: runs[at].info.id.clone(),
                    before: before.map(|e| e.to_string()),
                    after: now.map(|e| e.to_string()),
                });
            }
        }
        last = Some((i, now));
    }
    out
}

/// Whether a test went back to a result it had left, then left it again: three changes or
/// more with a return. One regression and its fix (two changes) is not flaky.
fn back_and_forth(changes: &[Change]) -> bool {
    changes.len() >= 3
        && changes
            .iter()
            .enumerate()
            .any(|(i, c)| changes[..i].iter().any(|earlier| earlier.before == c.after))
}

impl Track {
    pub fn new(series: Vec<Series>) -> Track {
        Track {
            schema_version: SCHEMA_VERSION,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mode, Suite, TestResult};
    use crate::report::{KernelInfo, Scope};

    pub(crate) fn report(results: &[(&str, Status, Option<bool>)]) -> Report {
        let kernel = KernelInfo {
            arch: Arch::X86_64,
            release: Some("6.1.0-test".into()),
            source: "debian:linux-image-6.1.0-50-amd64-unsigned=6.1.176-1".into(),
            revision: None,
            config_hash: None,
        };
        let results = results
            .iter()
            .enumerate()
            .map(|(i, &(name, status, jited))| TestResult {
                jited,
                ..TestResult::new(Suite::TestBpf, Some(i as u32), name, Mode::Jit, status)
            })
            .collect();
        let mut report = Report::new(kernel, results, Vec::new(), true, Default::default());
        report.scope = Some(Scope {
            suites: vec!["test_bpf".into()],
            modes: vec![Mode::Jit],
            filter: None,
        });
        report
    }

    pub(crate) fn run(id: &str, order: u64, report: Report) -> Run {
        Run {
            info: RevisionInfo {
                id: id.into(),
                order,
                subject: format!("revision {id}"),
            },
            report,
            new: false,
        }
    }

    use Status::{Fail, NotRun, Pass};

    #[test]
    fn a_change_is_pinned_on_the_first_revision_that_shows_it() {
        let ok = || report(&[("A", Pass, Some(true)), ("B", Pass, Some(true))]);
        let bad = || report(&[("A", Pass, Some(true)), ("B", Fail, Some(true))]);
        // Given out of order: the series sorts by order.
        let runs = vec![run("r3", 3, bad()), run("r1", 1, ok()), run("r2", 2, bad())];
        let series = Series::build(Arch::X86_64, "debian-6.1-amd64", runs);
        let ids: Vec<&str> = series
            .revisions
            .iter()
            .map(|r| r.info.id.as_str())
            .collect();
        assert_eq!(ids, ["r1", "r2", "r3"]);
        assert_eq!(series.tests.len(), 1, "only B changed");
        let b = &series.tests[0];
        assert_eq!(b.name, "B");
        assert!(!b.flaky);
        assert_eq!(
            b.changes,
            [Change {
                class: Class::Regression,
                revision: "r2".into(),
                since: "r1".into(),
                before: Some("pass jited".into()),
                after: Some("fail jited".into()),
            }]
        );
        assert_eq!(
            b.results,
            [
                Some("pass jited".into()),
                Some("fail jited".into()),
                Some("fail jited".into())
            ]
        );
    }

    #[test]
    fn a_revision_that_did_not_run_the_test_neither_hides_nor_moves_a_change() {
        let runs = vec![
            run("r1", 1, report(&[("A", Pass, Some(true))])),
            run("r2", 2, report(&[("A", NotRun, None)])),
            run("r3", 3, report(&[("A", Fail, Some(true))])),
        ];
        let series = Series::build(Arch::X86_64, "built", runs);
        let change = &series.tests[0].changes;
        assert_eq!(change.len(), 1);
        assert_eq!(
            (change[0].since.as_str(), change[0].revision.as_str()),
            ("r1", "r3")
        );
        assert_eq!(change[0].class, Class::Regression);
    }

    #[test]
    fn back_and_forth_is_flaky_but_a_regression_and_its_fix_are_not() {
        let seq = |statuses: &[Status]| -> Series {
            let runs = statuses
                .iter()
                .enumerate()
                .map(|(i, &s)| run(&format!("r{i}"), i as u64, report(&[("A", s, Some(true))])))
                .collect();
            Series::build(Arch::X86_64, "built", runs)
        };
        let fixed = seq(&[Pass, Fail, Pass, Pass]);
        assert_eq!(fixed.tests[0].changes.len(), 2);
        assert!(!fixed.tests[0].flaky);
        let flaky = seq(&[Pass, Fail, Pass, Fail, Pass]);
        assert!(flaky.tests[0].flaky);
        assert_eq!(
            flaky.new_changes().count(),
            0,
            "a flaky test's changes are not news"
        );
    }

    #[test]
    fn tests_that_appear_or_go_are_new_or_removed_and_a_failing_newcomer_is_a_regression() {
        let runs = vec![
            run(
                "r1",
                1,
                report(&[("A", Pass, Some(true)), ("B", Pass, Some(true))]),
            ),
            run(
                "r2",
                2,
                report(&[
                    ("A", Pass, Some(true)),
                    ("C", Pass, Some(true)),
                    ("D", Fail, Some(true)),
                ]),
            ),
        ];
        let series = Series::build(Arch::X86_64, "built", runs);
        let classes: Vec<(&str, Class)> = series
            .tests
            .iter()
            .map(|t| (t.name.as_str(), t.changes[0].class))
            .collect();
        assert_eq!(
            classes,
            [
                ("B", Class::Removed),
                ("C", Class::New),
                ("D", Class::Regression)
            ]
        );
    }

    #[test]
    fn news_are_the_changes_pinned_on_revisions_run_now() {
        let ok = report(&[("A", Pass, Some(true))]);
        let lost = report(&[("A", Pass, Some(false))]);
        let mut runs = vec![
            run("r1", 1, ok.clone()),
            run("r2", 2, lost),
            run("r3", 3, ok),
        ];
        runs[2].new = true;
        let series = Series::build(Arch::X86_64, "built", runs);
        let news: Vec<(Class, &str)> = series
            .new_changes()
            .map(|(_, c)| (c.class, c.revision.as_str()))
            .collect();
        assert_eq!(news, [(Class::CoverageGained, "r3")]);
    }
}
