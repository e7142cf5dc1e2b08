//! "The same test" across runs, kernels and machines: [`TestKey`]. Baselines, diffs, tracking,
//! `compare` and the recorded durations all know a test by it.

use std::collections::BTreeMap;
use std::fmt;

use super::{Mode, Status, TestResult};

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
