//! What a guest runs: an ordered list of test module loads, written into the image as `/plan`.
//!
//! Each line of `/plan` is `<bpf_jit_enable> <bpf_jit_harden> <module parameters>`; init sets
//! the two sysctls, then loads `test_bpf.ko` with the parameters (see `images/init.c`).

use std::fmt;

use crate::model::{AgentSuite, Catalog, Mode, Suite, SuiteName};
pub use crate::model::{Filter, FilterError};

/// One load of `test_bpf.ko`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleLoad {
    pub mode: Mode,
    /// The suites this load runs, in the module's order.
    pub suites: Vec<Suite>,
    pub filter: Option<Filter>,
}

impl ModuleLoad {
    /// The module parameters, as the kernel parses them (double quotes group spaces).
    pub fn params(&self) -> String {
        let mut params = Vec::new();
        if self.suites != Suite::ALL {
            // A load names one suite; `Plan::new` splits other selections into several loads.
            params.push(format!("test_suite={}", self.suites[0]));
        }
        match &self.filter {
            None => {}
            Some(Filter::Id(id)) => params.push(format!("test_id={id}")),
            Some(Filter::Range(a, b)) => params.push(format!("test_range={a},{b}")),
            Some(Filter::Name(name)) => params.push(format!("test_name=\"{name}\"")),
        }
        params.join(" ")
    }
}

/// Everything one guest runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub loads: Vec<ModuleLoad>,
    /// Whether the agent runs its bundle (`/agent/bundle`) after the module loads.
    pub agent: bool,
    /// Fault injection for testing the harness: crash the guest kernel (sysrq-c) this many
    /// seconds after init starts.
    pub inject_panic_after_s: Option<u32>,
    /// The tests the module holds, when read from it: lets results name tests the kernel
    /// never printed.
    pub catalog: Option<Catalog>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--filter selects tests of one suite; name exactly one with --suite")]
    FilterNeedsOneSuite,
    #[error("nothing to run: select at least one suite and one mode")]
    Empty,
}

impl Plan {
    /// Plans `suites` (any order, deduplicated) in each of `modes`, cut down by `filter`.
    pub fn new(
        suites: &[Suite],
        modes: &[Mode],
        filter: Option<Filter>,
    ) -> Result<Plan, PlanError> {
        let mut suites = suites.to_vec();
        suites.sort();
        suites.dedup();
        if suites.is_empty() || modes.is_empty() {
            return Err(PlanError::Empty);
        }
        if filter.is_some() && suites.len() != 1 {
            return Err(PlanError::FilterNeedsOneSuite);
        }
        let mut loads = Vec::new();
        for &mode in modes {
            if suites == Suite::ALL {
                // One load runs all three, as a plain `insmod test_bpf.ko` does.
                loads.push(ModuleLoad {
                    mode,
                    suites: suites.clone(),
                    filter: None,
                });
            } else {
                loads.extend(suites.iter().map(|&suite| ModuleLoad {
                    mode,
                    suites: vec![suite],
                    filter: filter.clone(),
                }));
            }
        }
        Ok(Plan {
            loads,
            agent: false,
            inject_panic_after_s: None,
            catalog: None,
        })
    }
}

impl fmt::Display for Plan {
    /// The `/plan` file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for load in &self.loads {
            let (enable, harden) = load.mode.sysctls();
            writeln!(f, "{enable} {harden} {}", load.params())?;
        }
        Ok(())
    }
}

/// Which tests to run, and how: the `--suite`, `--mode` and `--filter` of `cargo xtask test`
/// and `cargo xtask replay`, turned into a [`Plan`].
#[derive(Clone, Debug)]
pub struct Selection {
    /// The suites; empty for the kernel's three.
    pub suite: Vec<SuiteName>,
    /// The execution modes.
    pub mode: Vec<Mode>,
    /// One suite cut down to some tests.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_suites_in_one_load_per_mode() {
        let plan = Plan::new(&Suite::ALL, &[Mode::Jit, Mode::Interp], None).unwrap();
        assert_eq!(plan.to_string(), "1 0 \n0 0 \n");
    }

    #[test]
    fn filtered_suite() {
        let plan = Plan::new(
            &[Suite::TestBpf],
            &[Mode::JitHardened],
            Some(Filter::Name("ALU_MOV_X: dst = 2".into())),
        )
        .unwrap();
        assert_eq!(
            plan.to_string(),
            "1 2 test_suite=test_bpf test_name=\"ALU_MOV_X: dst = 2\"\n"
        );
        let plan = Plan::new(
            &[Suite::TestTailCalls],
            &[Mode::Jit],
            Some(Filter::Range(0, 3)),
        )
        .unwrap();
        assert_eq!(
            plan.to_string(),
            "1 0 test_suite=test_tail_calls test_range=0,3\n"
        );
    }

    #[test]
    fn two_suites_are_two_loads() {
        let plan = Plan::new(&[Suite::TestSkbSegment, Suite::TestBpf], &[Mode::Jit], None).unwrap();
        assert_eq!(
            plan.to_string(),
            "1 0 test_suite=test_bpf\n1 0 test_suite=test_skb_segment\n"
        );
    }

    #[test]
    fn a_filter_needs_exactly_one_suite() {
        assert_eq!(
            Plan::new(&Suite::ALL, &[Mode::Jit], Some(Filter::Id(1))),
            Err(PlanError::FilterNeedsOneSuite)
        );
    }
}
