//! `cargo xtask track --bisect TEST`: the first commit between a good and a bad revision
//! where TEST stops passing, by binary search over the commits between them. Each probe
//! builds its commit (through the build cache: a kept build directory makes each one an
//! incremental build) and runs that one test on the one arch; the ends are taken as given,
//! as `git bisect` takes them, so n commits cost ceil(log2 n) builds.

use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context};
use runner::engine::ExitKind;
use runner::model::{Mode, Status, SuiteName};
use runner::plan::Filter;
use runner::report::Report;
use xshell::Shell;

use crate::flags::TrackCmd;
use crate::git;
use crate::track::KernelChoice;
use crate::UsageError;

/// The test a bisection follows.
#[derive(Debug, PartialEq)]
struct Target {
    suite: SuiteName,
    name: String,
    mode: Mode,
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `SUITE NAME [MODE]`, as diffs and track.md print a test.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (suite, rest) = s.trim().split_once(' ').ok_or_else(|| {
            format!("--bisect `{s}`: expected SUITE NAME [MODE], e.g. `test_bpf JMP_JA: Jump, gap, jump, ... [jit]`")
        })?;
        let suite = SuiteName::selectable(suite)?;
        let rest = rest.trim();
        let (name, mode) = match rest.strip_suffix(']').and_then(|r| r.rsplit_once(" [")) {
            Some((name, mode)) => (name.trim(), mode.parse::<Mode>()?),
            None => (rest, Mode::Jit),
        };
        if name.is_empty() {
            return Err(format!("--bisect `{s}`: the test's name is missing"));
        }
        Ok(Target {
            suite,
            name: name.to_owned(),
            mode,
        })
    }
}

pub fn run(cmd: &TrackCmd, cancel: &AtomicBool) -> anyhow::Result<u8> {
    let (Some(test), Some(tree), Some(good), Some(bad)) =
        (&cmd.bisect, &cmd.kernel_source, &cmd.good, &cmd.bad)
    else {
        bail!("--bisect needs --kernel-source, --good and --bad");
    };
    let target: Target = test
        .parse()
        .map_err(|e: String| UsageError::wrap(anyhow::anyhow!(e)))?;
    let &[arch] = cmd.arch.as_slice() else {
        return Err(UsageError::wrap(anyhow::anyhow!(
            "--bisect follows a test on one arch; give one --arch"
        )));
    };
    let sh = Shell::new()?;
    let good = git::resolve(&sh, tree, good)?;
    let bad = git::resolve(&sh, tree, bad)?;
    let commits = git::between(&sh, tree, &good, &bad, false)?;
    // A probe runs the one test: its suite, in its mode, by name, in one guest.
    let probe = TrackCmd {
        selection: crate::flags::SelectionArgs {
            suite: vec![target.suite],
            mode: vec![target.mode],
            filter: Some(Filter::Name(target.name.clone())),
        },
        jobs: Some(1),
        retry_failures: false,
        ..cmd.clone()
    };
    println!(
        "bisect: {} commits after {} up to {}; about {} builds",
        commits.len(),
        &good[..12.min(good.len())],
        &bad[..12.min(bad.len())],
        builds_for(commits.len())
    );
    // The first bad commit is in commits[lo+1..=hi]; lo = -1 stands for `good` itself.
    let (mut lo, mut hi): (isize, isize) = (-1, commits.len() as isize - 1);
    let mut builds = 0;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let hash = &commits[mid as usize];
        let commit = git::commit(&sh, tree, hash)?;
        let out = tempfile::TempDir::new().context("cannot create a temporary directory")?;
        let test_of_commit = probe.test(arch, &KernelChoice::Commit(hash.clone()), out.path())?;
        builds += 1;
        let run = test_of_commit.run_until(cancel)?;
        if run.exit == ExitKind::Interrupted {
            return Ok(130);
        }
        let status = status_of(&run.report, &target).with_context(|| {
            format!(
                "cannot judge {}: its run has no result for `{test}`",
                commit.info.id
            )
        })?;
        let is_good = status == Status::Pass;
        println!(
            "bisect: [{builds}] {} {}: {} -> {}",
            commit.info.id,
            commit.info.subject,
            status.name(),
            if is_good { "good" } else { "bad" }
        );
        if is_good {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let first = git::commit(&sh, tree, &commits[hi as usize])?;
    println!(
        "bisect: first bad commit: {} {}\nbisect: {} builds for {} commits",
        first.hash,
        first.info.subject,
        builds,
        commits.len()
    );
    Ok(0)
}

/// The probe's verdict on the target: a status that says whether the test passed. A run
/// that could not tell (`not_run`, `error`) is an error, not a verdict.
fn status_of(report: &Report, target: &Target) -> Option<Status> {
    report
        .results
        .iter()
        .find(|r| r.suite == target.suite && r.name == target.name && r.mode == target.mode)
        .map(|r| r.status)
        .filter(|s| !runner::diff::is_infrastructure(*s))
}

/// ceil(log2 n): the probes a binary search over n commits with known ends needs.
fn builds_for(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_reads_as_diffs_print_it() {
        let t: Target = "test_bpf JMP32_JLT_K: Small immediate [jit]"
            .parse()
            .unwrap();
        assert_eq!(t.name, "JMP32_JLT_K: Small immediate");
        assert_eq!(t.mode, Mode::Jit);
        let t: Target = "conformance alu64-rsh-reg [interp]".parse().unwrap();
        assert_eq!((t.name.as_str(), t.mode), ("alu64-rsh-reg", Mode::Interp));
        assert!("test_bpf LD_IMM64 [x]".parse::<Target>().is_err());
        assert!("test_bpf".parse::<Target>().is_err());
    }

    #[test]
    fn n_commits_take_ceil_log2_n_builds() {
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(builds_for), [0, 1, 2, 2, 3, 3, 4]);
    }
}
