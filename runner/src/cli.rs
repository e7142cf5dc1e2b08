//! Command-line pieces shared by `cargo xtask test` and the `runner` binary.

use clap::Args;

use crate::plan::{Filter, Plan, PlanError};
use crate::report::Mode;
use crate::test_bpf::Suite;

/// Which tests to run, and how.
#[derive(Args, Clone, Debug)]
pub struct Selection {
    /// Suites of the kernel's JIT suite to run: test_bpf, test_tail_calls, test_skb_segment
    /// (comma-separated). Default: all three.
    #[arg(long, value_delimiter = ',', value_name = "SUITE")]
    pub suite: Vec<Suite>,

    /// Execution modes: interp (bpf_jit_enable=0), jit, jit-hardened (bpf_jit_harden=2).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "MODE",
        default_value = "jit"
    )]
    pub mode: Vec<Mode>,

    /// Cut one suite down: a test number (42), an inclusive range (10-20) or an exact test
    /// name (`name:` forces a name that looks like a number). With no --suite, test_bpf.
    #[arg(long, value_name = "TESTS")]
    pub filter: Option<Filter>,
}

impl Selection {
    pub fn plan(&self) -> Result<Plan, PlanError> {
        let suites: Vec<Suite> = match (&self.filter, self.suite.is_empty()) {
            // The module's own default when a test is named without a suite.
            (Some(_), true) => vec![Suite::TestBpf],
            (None, true) => Suite::ALL.to_vec(),
            _ => self.suite.clone(),
        };
        Plan::new(&suites, &self.mode, self.filter.clone())
    }
}
