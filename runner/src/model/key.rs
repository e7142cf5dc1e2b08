//! "The same test" across runs, kernels and machines: [`TestKey`]. Baselines, diffs, tracking,
//! `compare` and the recorded durations all know a test by it. Inside one kernel's run, a
//! retry knows a test by [`TestResult::same_test_in_one_kernel`] instead.

use std::collections::BTreeMap;
use std::fmt;

use super::{Mode, Status, SuiteName, TestResult};

/// The mode key under which a suite's divergence findings are kept: a finding is about a case
/// across modes, so the mode that failed is part of its message, not of its identity.
pub const DIVERGENCE_KEY: &str = "divergence";

/// What identifies one result across runs: suite, name, and mode (or [`DIVERGENCE_KEY`]).
/// test_bpf repeats some names; the second test of a name is `NAME (2)`, and so on, counted in
/// the module's order. No test numbers: a kernel that adds a test renumbers every later one.
/// Strings, not types: a baseline may name suites and modes another version of the harness
/// knows, and its entries sort by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TestKey {
    pub suite: String,
    pub name: String,
    pub mode: String,
}

impl fmt::Display for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} [{}]", self.suite, self.name, self.mode)
    }
}

impl TestKey {
    /// The key of one test named `name` (as given: no numbering), in `mode`.
    pub fn new(suite: &str, name: &str, mode: &str) -> TestKey {
        TestKey {
            suite: suite.to_owned(),
            name: name.to_owned(),
            mode: mode.to_owned(),
        }
    }
}

impl TestResult {
    /// Whether `self` and `other` are the same test in the same mode, both from runs of one
    /// kernel (a run and its `--retry-failures`): kernel tests by id, agent cases by name.
    ///
    /// Not [`TestKey`], which numbers repeated names over a whole run's results: a retry
    /// runs only the failing kernel tests, by number, in the same kernel, so the numbering
    /// over its few results would differ from the run's, while the ids are the same.
    pub fn same_test_in_one_kernel(&self, other: &TestResult) -> bool {
        self.suite == other.suite
            && self.mode == other.mode
            && match self.suite {
                SuiteName::Kernel(_) => self.id == other.id,
                SuiteName::Agent(_) => self.name == other.name,
            }
    }
}

/// Every result's key, numbering repeated names in the results' order.
pub fn keys(results: &[TestResult]) -> Vec<TestKey> {
    let mut seen: BTreeMap<(&str, &str, Mode, bool), u32> = BTreeMap::new();
    results
        .iter()
        .map(|r| {
            let finding = r.status == Status::Divergence;
            let n = seen
                .entry((r.suite.name(), &r.name, r.mode, finding))
                .or_insert(0);
            *n += 1;
            let name = match *n {
                1 => r.name.clone(),
                n => format!("{} ({n})", r.name),
            };
            TestKey {
                suite: r.suite.name().to_owned(),
                name,
                mode: if finding {
                    DIVERGENCE_KEY.to_owned()
                } else {
                    r.mode.name().to_owned()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentSuite, Suite};

    #[test]
    fn in_one_kernel_kernel_tests_are_known_by_id_and_cases_by_name() {
        let t = |id, name: &str| {
            TestResult::new(Suite::TestBpf, Some(id), name, Mode::Jit, Status::Pass)
        };
        // A repeated name: the retry's only result named so is the run's second.
        assert!(t(7, "LD_ABS").same_test_in_one_kernel(&t(7, "LD_ABS")));
        assert!(!t(3, "LD_ABS").same_test_in_one_kernel(&t(7, "LD_ABS")));
        let mut interp = t(7, "LD_ABS");
        interp.mode = Mode::Interp;
        assert!(!t(7, "LD_ABS").same_test_in_one_kernel(&interp));
        let c = |id, name: &str| {
            TestResult::new(AgentSuite::Xdp, Some(id), name, Mode::Jit, Status::Fail)
        };
        assert!(c(0, "drop").same_test_in_one_kernel(&c(4, "drop")));
        assert!(!c(0, "drop").same_test_in_one_kernel(&c(0, "pass")));
    }
}
