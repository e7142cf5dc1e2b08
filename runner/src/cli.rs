//! Command-line pieces shared by `cargo xtask test` and the `runner` binary.

use clap::Args;

pub use crate::model::SuiteName;
use crate::model::{AgentSuite, Mode, Suite};
use crate::plan::{Filter, Plan, PlanError};

/// Which tests to run, and how.
#[derive(Args, Clone, Debug)]
pub struct Selection {
    /// Suites to run, comma-separated: the kernel's JIT suite (test_bpf, test_tail_calls,
    /// test_skb_segment) and the harness's own (conformance, verifier, xdp).
    /// Default: the kernel's three.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SUITE",
        value_parser = SuiteName::selectable
    )]
    pub suite: Vec<SuiteName>,

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
    /// In the harness's own suites a number is a case's position (from 0) in the suite.
    #[arg(long, value_name = "TESTS")]
    pub filter: Option<Filter>,
}

impl Selection {
    /// The harness's own suites selected.
    pub fn agent_suites(&self) -> Vec<AgentSuite> {
        let mut suites: Vec<AgentSuite> = self
            .suite
            .iter()
            .filter_map(|s| match s {
                SuiteName::Agent(a) => Some(*a),
                SuiteName::Kernel(_) => None,
            })
            .collect();
        suites.sort();
        suites.dedup();
        suites
    }

    /// The filter, when it cuts one of the harness's suites (the only suite selected): the
    /// cases it names go into the bundle (`cases::select`), no module load is filtered.
    pub fn agent_filter(&self) -> Option<&Filter> {
        match self.suite.as_slice() {
            [SuiteName::Agent(_)] => self.filter.as_ref(),
            _ => None,
        }
    }

    pub fn plan(&self) -> Result<Plan, PlanError> {
        let kernel: Vec<Suite> = self
            .suite
            .iter()
            .filter_map(|s| match s {
                SuiteName::Kernel(k) => Some(*k),
                SuiteName::Agent(_) => None,
            })
            .collect();
        let agent = !self.agent_suites().is_empty();
        let kernel = match (&self.filter, self.suite.is_empty()) {
            // The module's own default when a test is named without a suite.
            (Some(_), true) => vec![Suite::TestBpf],
            (None, true) => Suite::ALL.to_vec(),
            _ => kernel,
        };
        if kernel.is_empty() {
            if self.filter.is_some() && self.agent_filter().is_none() {
                return Err(PlanError::FilterNeedsOneSuite);
            }
            return Ok(Plan {
                loads: Vec::new(),
                agent,
                inject_panic_after_s: None,
                catalog: None,
            });
        }
        let mut plan = Plan::new(&kernel, &self.mode, self.filter.clone())?;
        plan.agent = agent;
        Ok(plan)
    }
}
