//! The results model: how a test ran ([`Mode`]), how it ended ([`Status`]), which suite it
//! belongs to ([`SuiteName`]: one of the kernel's [`Suite`]s or one of our [`AgentSuite`]s)
//! and one test's [`TestResult`]; what a run selects ([`Filter`], [`Scope`]), what a kernel
//! holds ([`Catalog`]), and what makes two results the same test ([`TestKey`]).
//!
//! Imports point down: every other module may build on these, and this one imports nothing
//! of the crate but, if ever needed, `arch`. The serialized names are part of `report.json`'s
//! format: they change only with `report::SCHEMA_VERSION`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod filter;
mod key;

pub use filter::{Filter, FilterError};
pub use key::{keys, TestKey, DIVERGENCE_KEY};

/// The outcome of one test. A closed set: every result is exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    /// The kernel crashed (panic, oops, BUG) while this test ran.
    Crash,
    /// The guest stopped making progress while this test ran.
    Hang,
    /// The test was selected but never reached.
    NotRun,
    /// The harness could not tell what happened.
    Error,
    /// Execution modes disagreed on a case: a finding of its own, beside each mode's result.
    Divergence,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Pass,
        Status::Fail,
        Status::Skip,
        Status::Crash,
        Status::Hang,
        Status::NotRun,
        Status::Error,
        Status::Divergence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Crash => "crash",
            Status::Hang => "hang",
            Status::NotRun => "not_run",
            Status::Error => "error",
            Status::Divergence => "divergence",
        }
    }

    /// Whether this outcome means the code under test is broken (as opposed to the harness).
    pub fn is_test_failure(self) -> bool {
        matches!(
            self,
            Status::Fail | Status::Crash | Status::Hang | Status::Divergence
        )
    }
}

/// How the kernel executed BPF programs for a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `bpf_jit_enable=0`.
    Interp,
    /// `bpf_jit_enable=1`.
    Jit,
    /// `bpf_jit_enable=1`, `bpf_jit_harden=2`: constant blinding for every program.
    JitHardened,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Interp, Mode::Jit, Mode::JitHardened];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Interp => "interp",
            Mode::Jit => "jit",
            Mode::JitHardened => "jit-hardened",
        }
    }

    /// The values written to `net.core.bpf_jit_enable` and `net.core.bpf_jit_harden`.
    pub fn sysctls(self) -> (u8, u8) {
        match self {
            Mode::Interp => (0, 0),
            Mode::Jit => (1, 0),
            Mode::JitHardened => (1, 2),
        }
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mode `{s}`: expected interp, jit or jit-hardened"))
    }
}

/// The three suites of `test_bpf.ko`, in the order the module runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    TestBpf,
    TestTailCalls,
    TestSkbSegment,
}

impl Suite {
    pub const ALL: [Suite; 3] = [Suite::TestBpf, Suite::TestTailCalls, Suite::TestSkbSegment];

    /// The name the module uses for `test_suite=` and in its Summary lines.
    pub fn name(self) -> &'static str {
        match self {
            Suite::TestBpf => "test_bpf",
            Suite::TestTailCalls => "test_tail_calls",
            Suite::TestSkbSegment => "test_skb_segment",
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Suite {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Suite::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown suite `{s}`: expected test_bpf, test_tail_calls or test_skb_segment"
                )
            })
    }
}

/// Which of the harness's own suites a case belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgentSuite {
    Conformance,
    Verifier,
    Xdp,
    /// Programs `cargo xtask fuzz` generates: never read from suites/, so not in `ALL`.
    Fuzz,
}

impl AgentSuite {
    pub const ALL: [AgentSuite; 3] = [
        AgentSuite::Conformance,
        AgentSuite::Verifier,
        AgentSuite::Xdp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AgentSuite::Conformance => "conformance",
            AgentSuite::Verifier => "verifier",
            AgentSuite::Xdp => "xdp",
            AgentSuite::Fuzz => "fuzz",
        }
    }
}

impl fmt::Display for AgentSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A suite's name: one of the kernel's JIT suite's three, or one of ours. Serialized as its
/// name (`test_bpf`, `conformance`, `fuzz`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuiteName {
    Kernel(Suite),
    Agent(AgentSuite),
}

impl SuiteName {
    pub fn name(self) -> &'static str {
        match self {
            SuiteName::Kernel(s) => s.name(),
            SuiteName::Agent(s) => s.name(),
        }
    }

    /// The kernel's suite, if this is one.
    pub fn kernel(self) -> Option<Suite> {
        match self {
            SuiteName::Kernel(s) => Some(s),
            SuiteName::Agent(_) => None,
        }
    }

    /// A suite a run can select (`--suite`, `--bisect`): any but `fuzz`, whose programs only
    /// `cargo xtask fuzz` makes.
    pub fn selectable(s: &str) -> Result<SuiteName, String> {
        if let Some(agent) = AgentSuite::ALL.into_iter().find(|a| a.name() == s) {
            return Ok(SuiteName::Agent(agent));
        }
        s.parse().map(SuiteName::Kernel).map_err(|_| {
            format!(
                "unknown suite `{s}`: expected test_bpf, test_tail_calls, test_skb_segment, \
                 conformance, verifier or xdp"
            )
        })
    }
}

impl From<Suite> for SuiteName {
    fn from(suite: Suite) -> Self {
        SuiteName::Kernel(suite)
    }
}

impl From<AgentSuite> for SuiteName {
    fn from(suite: AgentSuite) -> Self {
        SuiteName::Agent(suite)
    }
}

/// Any suite's name, `fuzz` included (a run cannot select it: see [`SuiteName::selectable`]).
impl FromStr for SuiteName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == AgentSuite::Fuzz.name() {
            return Ok(SuiteName::Agent(AgentSuite::Fuzz));
        }
        SuiteName::selectable(s).map_err(|_| {
            format!(
                "unknown suite `{s}`: expected test_bpf, test_tail_calls, test_skb_segment, \
                 conformance, verifier, xdp or fuzz"
            )
        })
    }
}

impl fmt::Display for SuiteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuiteName::Kernel(s) => s.fmt(f),
            SuiteName::Agent(s) => s.fmt(f),
        }
    }
}

impl Serialize for SuiteName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SuiteName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One test's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// The suite, written as its name: `test_bpf`, `test_tail_calls`, `test_skb_segment`,
    /// `conformance`, `verifier`, `xdp` or `fuzz`.
    pub suite: SuiteName,
    /// The test's number inside its suite; `None` for an entry that stands for a whole suite
    /// that never ran.
    pub id: Option<u32>,
    pub name: String,
    pub mode: Mode,
    pub status: Status,
    /// Whether the kernel JIT-compiled the program; `None` when no program ran (expected-reject
    /// filters, the skb_segment suite, tests never reached).
    pub jited: Option<bool>,
    /// Why the test did not pass: the kernel's failure text, a crash title, a reason.
    pub message: Option<String>,
    /// For a test that failed, was run again (`--retry-failures`) and passed: the first
    /// attempt's failure. The status is then `pass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaky: Option<String>,
}

impl TestResult {
    /// A result with no JIT information, message or retry: add those with [`Self::with_jited`]
    /// and [`Self::with_message`], or set the fields.
    pub fn new(
        suite: impl Into<SuiteName>,
        id: Option<u32>,
        name: &str,
        mode: Mode,
        status: Status,
    ) -> TestResult {
        TestResult {
            suite: suite.into(),
            id,
            name: name.to_owned(),
            mode,
            status,
            jited: None,
            message: None,
            flaky: None,
        }
    }

    /// This result with `jited` set.
    pub fn with_jited(self, jited: Option<bool>) -> TestResult {
        TestResult { jited, ..self }
    }

    /// This result with `message` as its message.
    pub fn with_message(self, message: impl Into<String>) -> TestResult {
        TestResult {
            message: Some(message.into()),
            ..self
        }
    }

    /// An entry for tests that never ran: a whole suite, or the rest of one after a crash.
    pub fn not_run(suite: impl Into<SuiteName>, mode: Mode, name: String, why: &str) -> TestResult {
        TestResult::new(suite, None, &name, mode, Status::NotRun).with_message(why)
    }

    /// Whether this entry stands for tests the run could not name one by one, because the
    /// guest never told them: `SUITE (whole suite)`, `SUITE (tests after #N)`.
    pub fn is_placeholder(&self) -> bool {
        self.status == Status::NotRun
            && self.id.is_none()
            && self
                .name
                .strip_prefix(self.suite.name())
                .is_some_and(|rest| rest.starts_with(" ("))
    }
}

/// Each suite's test names, in id order, as the module holds them (`module_tests` reads them).
pub type Catalog = BTreeMap<Suite, Vec<String>>;

/// What a run was asked to run: lets a diff tell a test the kernel dropped from one the run
/// did not select.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Suite names, in the order given (the defaults filled in).
    pub suites: Vec<String>,
    pub modes: Vec<Mode>,
    /// `--filter` as given (`42`, `10-20`, `name:NAME`).
    pub filter: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suite_name_is_written_and_read_as_its_name() {
        let all = Suite::ALL
            .into_iter()
            .map(SuiteName::from)
            .chain(AgentSuite::ALL.into_iter().map(SuiteName::from))
            .chain([SuiteName::Agent(AgentSuite::Fuzz)]);
        for suite in all {
            let json = serde_json::to_string(&suite).ok();
            assert_eq!(json, Some(format!("\"{}\"", suite.name())));
            let back: Option<SuiteName> = json.and_then(|j| serde_json::from_str(&j).ok());
            assert_eq!(back, Some(suite));
            assert_eq!(suite.name().parse::<SuiteName>(), Ok(suite));
        }
    }

    #[test]
    fn an_unknown_suite_is_refused_by_name() {
        let err = serde_json::from_str::<SuiteName>("\"test_bfp\"").err();
        assert!(err.is_some_and(|e| e.to_string().contains("unknown suite `test_bfp`")));
    }

    #[test]
    fn a_run_cannot_select_fuzz() {
        assert_eq!(
            SuiteName::selectable("fuzz"),
            Err(
                "unknown suite `fuzz`: expected test_bpf, test_tail_calls, test_skb_segment, \
                 conformance, verifier or xdp"
                    .to_owned()
            )
        );
        assert_eq!(
            SuiteName::selectable("xdp"),
            Ok(SuiteName::Agent(AgentSuite::Xdp))
        );
    }
}
