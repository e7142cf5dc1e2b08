//! A whole campaign, as a library call: [`run`] takes a [`RunSpec`] (the kernel and images to
//! boot, the cases, the shards), runs the shards on guests at once, resumes past crashes and
//! hangs, retries failures when asked, and gives one [`RunResult`]: the report, not yet
//! judged against a baseline, and what its exit depends on. Progress comes as [`Event`]s.
//!
//! What is the host's stays out: fetching and building kernels, the cache, signals, progress
//! bars, the baseline's files. `cargo xtask test` gathers those and calls [`run`].

mod guest;
mod pool;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

pub use guest::{GuestRun, Setup};
pub use pool::{errors_said_once, log_name};

use crate::cases::{Case, Unreadable};
use crate::durations::Durations;
use crate::known_differences::{Applied, KnownDifferences};
use crate::model::{Scope, TestResult};
use crate::report::{self, AgentPass, KernelInfo, Report, ShardId, Timing};
use crate::session::Progress;
use crate::shard::Shard;

/// What a campaign runs.
pub struct RunSpec<'a> {
    /// What every guest shares: kernel, images, cases, modes, timeouts, where logs go.
    pub guests: Setup<'a>,
    /// The work, cut for the guests (`shard::partition`).
    pub shards: Vec<Shard>,
    /// Guests at once.
    pub jobs: usize,
    /// Each failure once more in a fresh guest (`--retry-failures`).
    pub retry_failures: bool,
    /// Corpus files that could not be read as cases: an `error` result each, per mode.
    pub unreadable: &'a [Unreadable],
    /// Failures by design, turned into skips.
    pub known: &'a KnownDifferences,
    /// What was selected, for the report.
    pub scope: Scope,
    /// This machine's part of a CI matrix (`--shard K/N`), for the report.
    pub shard: Option<ShardId>,
    /// When the run started (RFC 3339), for the report.
    pub started: String,
}

/// What a run tells while it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// Guest `guest` booted and runs `shard` (as `Shard` displays it).
    GuestRuns { guest: usize, shard: &'a str },
    /// A guest's progress.
    Progress(Progress<'a>),
}

/// Where events go: called from every guest's thread.
pub type OnEvent<'a> = &'a (dyn Fn(Event<'_>) + Sync);

/// How a run ends, as the process's exit status says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Everything selected ran, and the gate lets it pass.
    Clean,
    /// A change the gate fails on (or, without a baseline, a failing test).
    GateFailed,
    /// The user's input was at fault: a selection the guest refused, unreadable cases.
    Usage,
    /// The harness or its tools could not finish the run.
    Harness,
    /// Cancelled (Ctrl-C): the report holds what ran.
    Interrupted,
}

impl ExitKind {
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Clean => 0,
            ExitKind::GateFailed => 1,
            ExitKind::Usage => 2,
            ExitKind::Harness => 3,
            ExitKind::Interrupted => 130,
        }
    }
}

/// What a campaign gave.
pub struct RunResult {
    /// Every result, in canonical order, known differences applied; not yet diffed.
    pub report: Report,
    /// What the known differences did.
    pub applied: Applied,
    /// Each test's seconds as this run timed them, per guest.
    guest_durations: Vec<Durations>,
    one_shard: bool,
    interrupted: bool,
    bad_input: bool,
}

impl RunResult {
    /// The run's exit, given the gate's `verdict` on the report: an interruption first, then
    /// the user's input (once the rest ran and the report was written), then the verdict.
    pub fn exit(&self, verdict: ExitKind) -> ExitKind {
        if self.interrupted {
            ExitKind::Interrupted
        } else if self.bad_input {
            ExitKind::Usage
        } else {
            verdict
        }
    }

    /// `recorded` durations with this run's added; `None` when the run timed nothing (no guest
    /// booted). Durations only matter to a cut into shards, where each shard runs in a
    /// freshly started guest, and there some tests run slower than late in a long one
    /// (test_bpf's "Staggered jumps" by a fifth on mips64el). So a run of one shard only adds
    /// tests never timed; a run of several updates them all.
    pub fn durations(&self, recorded: Option<Durations>) -> Option<Durations> {
        if self.guest_durations.iter().all(|d| d.is_empty()) {
            return None;
        }
        let mut recorded = recorded.unwrap_or_default();
        for timed in &self.guest_durations {
            match self.one_shard {
                true => recorded.fill(timed),
                false => recorded.update(timed),
            }
        }
        Some(recorded)
    }
}

/// Runs `spec` to the end, or in order once `cancel` is set (the report then holds what ran).
pub fn run(spec: RunSpec<'_>, cancel: &AtomicBool, on_event: OnEvent<'_>) -> RunResult {
    let started = Instant::now();
    let one_shard = spec.shards.len() == 1;
    let setup = &spec.guests;
    let guests = pool::run_shards(
        setup,
        spec.shards,
        spec.jobs,
        1,
        cancel,
        on_event,
        &guest::boot,
    );
    let retried = match spec.retry_failures {
        true => retry(setup, &guests, cancel, on_event),
        false => Vec::new(),
    };
    let wall_s = started.elapsed().as_secs_f64();
    let unreadable: Vec<TestResult> = spec
        .unreadable
        .iter()
        .flat_map(|bad| setup.modes.iter().map(|&mode| bad.result(mode)))
        .collect();
    let (mut report, applied) = assemble(setup, &guests, &retried, unreadable, spec.known, wall_s);
    report.shard = spec.shard;
    report.started = Some(spec.started);
    report.scope = Some(spec.scope);
    RunResult {
        report,
        applied,
        guest_durations: guests.iter().map(|g| g.durations.clone()).collect(),
        one_shard,
        interrupted: guests.iter().chain(&retried).any(|g| g.interrupted),
        bad_input: guests.iter().any(|g| g.invalid_selection) || !spec.unreadable.is_empty(),
    }
}

/// The agent's passes, one per mode in the order first run: a mode's spans, in however many
/// guests, summed.
fn passes_by_mode<'p>(passes: impl Iterator<Item = &'p AgentPass>) -> Vec<AgentPass> {
    let mut modes: Vec<AgentPass> = Vec::new();
    for pass in passes {
        match modes.iter_mut().find(|m| m.mode == pass.mode) {
            Some(sum) => {
                sum.cases += pass.cases;
                sum.seconds += pass.seconds;
            }
            None => modes.push(pass.clone()),
        }
    }
    modes
}

/// Runs the failures of `guests` once more (`--retry-failures`), in one fresh guest.
fn retry(
    setup: &Setup<'_>,
    guests: &[GuestRun],
    cancel: &AtomicBool,
    on_event: OnEvent<'_>,
) -> Vec<GuestRun> {
    let results: Vec<TestResult> = guests.iter().flat_map(|g| g.results.clone()).collect();
    let Some(retry) = crate::retry::plan(&results) else {
        return Vec::new();
    };
    if guests.iter().any(|g| g.interrupted) {
        return Vec::new();
    }
    let cases: Vec<Case> = setup
        .cases
        .iter()
        .filter(|c| retry.cases.contains(&(c.suite, c.name.clone())))
        .cloned()
        .collect();
    let setup = Setup {
        cases: &cases,
        inject_panic_after_s: None,
        ..*setup
    };
    let first_number = guests.len() + 1;
    pool::run_shards(
        &setup,
        vec![retry.shard],
        1,
        first_number,
        cancel,
        on_event,
        &guest::boot,
    )
}

/// The run's report from its guests' results, with the failures that passed when `retried`
/// marked flaky, the `error` results of what could not run at all (`unreadable`), and the
/// known differences applied.
fn assemble(
    setup: &Setup<'_>,
    guests: &[GuestRun],
    retried: &[GuestRun],
    unreadable: Vec<TestResult>,
    known: &KnownDifferences,
    wall_s: f64,
) -> (Report, Applied) {
    let mut results: Vec<TestResult> = guests.iter().flat_map(|g| g.results.clone()).collect();
    let again: Vec<TestResult> = retried.iter().flat_map(|g| g.results.clone()).collect();
    crate::retry::apply(&mut results, &again);
    results.extend(unreadable);
    report::canonical_order(&mut results);
    let kernel = setup.kernel;
    let kernel_info = KernelInfo {
        arch: setup.arch,
        release: guests.iter().find_map(|g| g.release.clone()),
        source: kernel.source.clone(),
        revision: kernel.revision.clone(),
        config_hash: kernel.config_hash.clone(),
    };
    let applied = known.apply(&kernel_info, &mut results);
    let errors = errors_said_once(guests);
    let first = guests.first();
    let timing = Timing {
        boot_s: first.and_then(|g| g.timing.boot_s),
        to_first_test_s: first.and_then(|g| g.timing.to_first_test_s),
        total_s: wall_s,
        peak_rss_mib: guests
            .iter()
            .chain(retried)
            .filter_map(|g| g.timing.peak_rss_mib)
            .reduce(f64::max),
        peak_own_mib: guests
            .iter()
            .chain(retried)
            .filter_map(|g| g.timing.peak_own_mib)
            .reduce(f64::max),
        agent: passes_by_mode(guests.iter().flat_map(|g| g.agent_passes.iter())),
        guests: guests
            .iter()
            .chain(retried)
            .map(|g| g.timing.clone())
            .collect(),
    };
    let complete = !guests.is_empty() && guests.iter().all(|g| g.complete);
    let report = Report::new(kernel_info, results, errors, complete, timing);
    (report, applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(interrupted: bool, bad_input: bool) -> RunResult {
        RunResult {
            report: Report::new(
                KernelInfo {
                    arch: crate::arch::Arch::X86_64,
                    release: None,
                    source: "test".into(),
                    revision: None,
                    config_hash: None,
                },
                Vec::new(),
                Vec::new(),
                true,
                Timing::default(),
            ),
            applied: Applied::default(),
            guest_durations: Vec::new(),
            one_shard: true,
            interrupted,
            bad_input,
        }
    }

    #[test]
    fn bad_input_exits_2_once_the_rest_ran() {
        assert_eq!(result(false, true).exit(ExitKind::Clean).code(), 2);
        assert_eq!(result(false, true).exit(ExitKind::GateFailed).code(), 2);
        assert_eq!(result(true, true).exit(ExitKind::GateFailed).code(), 130);
        assert_eq!(result(false, false).exit(ExitKind::GateFailed).code(), 1);
        assert_eq!(result(false, false).exit(ExitKind::Harness).code(), 3);
    }

    #[test]
    fn a_run_that_timed_nothing_leaves_the_durations_as_they_were() {
        assert!(result(false, false).durations(None).is_none());
    }
}
