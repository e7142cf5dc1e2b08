//! `--retry-failures`, for nightly runs: each failing test once more, in a fresh guest. A test
//! that passes then is `pass`, marked flaky with its first failure. Only `fail` and
//! `divergence` are retried: a crash or a hang is never retried away.

use std::collections::BTreeSet;

use crate::agent::AgentSpan;
use crate::model::{AgentSuite, Status, SuiteName, TestResult};
use crate::plan::{Filter, ModuleLoad};
use crate::shard::Shard;

/// What a retry runs: the module loads of the kernel's tests, and the harness's cases by
/// (suite, name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retry {
    pub shard: Shard,
    pub cases: BTreeSet<(AgentSuite, String)>,
}

fn retried(result: &TestResult) -> bool {
    matches!(result.status, Status::Fail | Status::Divergence)
}

/// The retry of `results`' failures, or `None` when nothing failed.
pub fn plan(results: &[TestResult]) -> Option<Retry> {
    let mut retry = Retry::default();
    for r in results.iter().filter(|r| retried(r)) {
        match (r.suite, r.id) {
            (SuiteName::Kernel(suite), Some(id)) => retry.shard.loads.push(ModuleLoad {
                mode: r.mode,
                suites: vec![suite],
                filter: Some(Filter::Id(id)),
            }),
            // A kernel test without a number cannot be picked out of the module.
            (SuiteName::Kernel(_), None) => {}
            (SuiteName::Agent(suite), _) => {
                retry.cases.insert((suite, r.name.clone()));
            }
        }
    }
    retry.shard.agent = (!retry.cases.is_empty()).then_some(AgentSpan::WHOLE);
    (!retry.shard.loads.is_empty() || retry.shard.agent.is_some()).then_some(retry)
}

/// Marks the failures of `results` that passed in `again` (the retry's results) as flaky.
pub fn apply(results: &mut [TestResult], again: &[TestResult]) {
    for r in results.iter_mut().filter(|r| retried(r)) {
        let passed = match r.status {
            // The finding did not come back: every mode of the case ran and none diverged.
            Status::Divergence => {
                let modes_ran = again
                    .iter()
                    .any(|a| a.suite == r.suite && a.name == r.name && a.status == Status::Pass);
                let diverged = again.iter().any(|a| {
                    a.suite == r.suite && a.name == r.name && a.status == Status::Divergence
                });
                modes_ran && !diverged
            }
            _ => again
                .iter()
                .find(|a| r.same_test_in_one_kernel(a) && a.status != Status::Divergence)
                .is_some_and(|a| a.status == Status::Pass),
        };
        if passed {
            r.flaky = Some(
                r.message
                    .take()
                    .unwrap_or_else(|| r.status.name().to_owned()),
            );
            r.status = Status::Pass;
            if let Some(a) = again.iter().find(|a| r.same_test_in_one_kernel(a)) {
                r.jited = a.jited;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mode, Suite};

    fn result(
        suite: impl Into<SuiteName>,
        id: u32,
        status: Status,
        message: Option<&str>,
    ) -> TestResult {
        let r = TestResult::new(suite, Some(id), &format!("t{id}"), Mode::Jit, status)
            .with_jited(Some(true));
        match message {
            Some(m) => r.with_message(m),
            None => r,
        }
    }

    #[test]
    fn only_failures_are_retried_never_crashes_or_hangs() {
        let results = vec![
            result(Suite::TestBpf, 1, Status::Pass, None),
            result(Suite::TestBpf, 2, Status::Fail, Some("ret 0 != 1")),
            result(Suite::TestBpf, 3, Status::Crash, Some("kernel panic")),
            result(Suite::TestBpf, 4, Status::Hang, None),
            result(AgentSuite::Verifier, 5, Status::Fail, Some("wrong verdict")),
        ];
        let retry = plan(&results).expect("something to retry");
        assert_eq!(retry.shard.loads.len(), 1);
        assert_eq!(
            retry.shard.loads[0].params(),
            "test_suite=test_bpf test_id=2"
        );
        assert_eq!(retry.shard.agent, Some(AgentSpan::WHOLE));
        assert_eq!(
            retry.cases.into_iter().collect::<Vec<_>>(),
            [(AgentSuite::Verifier, "t5".to_owned())]
        );
        assert_eq!(plan(&results[..1]), None);
        assert_eq!(plan(&results[2..4]), None);
    }

    #[test]
    fn a_failure_that_passes_again_is_flaky_and_one_that_fails_again_stays() {
        let mut results = vec![
            result(Suite::TestBpf, 2, Status::Fail, Some("ret 0 != 1")),
            result(Suite::TestBpf, 7, Status::Fail, Some("ret 5 != 1")),
            result(Suite::TestBpf, 9, Status::Crash, Some("kernel panic")),
        ];
        let again = vec![
            result(Suite::TestBpf, 2, Status::Pass, None),
            result(Suite::TestBpf, 7, Status::Fail, Some("ret 5 != 1")),
            result(Suite::TestBpf, 9, Status::Pass, None),
        ];
        apply(&mut results, &again);
        assert_eq!(results[0].status, Status::Pass);
        assert_eq!(results[0].flaky.as_deref(), Some("ret 0 != 1"));
        assert_eq!(results[0].message, None);
        assert_eq!(results[1].status, Status::Fail);
        assert_eq!(results[1].flaky, None);
        assert_eq!(
            results[2].status,
            Status::Crash,
            "a crash is never retried away"
        );
    }

    #[test]
    fn a_divergence_is_flaky_only_if_the_modes_agree_when_run_again() {
        let finding = result(
            AgentSuite::Xdp,
            0,
            Status::Divergence,
            Some("modes disagree"),
        );
        let mut results = vec![finding.clone()];
        apply(
            &mut results,
            &[
                result(AgentSuite::Xdp, 0, Status::Pass, None),
                finding.clone(),
            ],
        );
        assert_eq!(results[0].status, Status::Divergence);
        apply(
            &mut results,
            &[result(AgentSuite::Xdp, 0, Status::Pass, None)],
        );
        assert_eq!(results[0].status, Status::Pass);
        assert_eq!(results[0].flaky.as_deref(), Some("modes disagree"));
    }
}
