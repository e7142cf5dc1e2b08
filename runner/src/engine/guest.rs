//! One guest: its image or snapshot, its QEMU supervised to the end, and what it produced
//! turned into results, timings and the agent's run.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use super::{Event, OnEvent};
use crate::agent::{AgentOutput, AgentRun, AgentSpan};
use crate::arch::Arch;
use crate::cases::Case;
use crate::durations::Durations;
use crate::image;
use crate::kernel::Kernel;
use crate::model::{Catalog, Mode, TestResult};
use crate::plan::Plan;
use crate::qemu::{QemuConfig, Window};
use crate::report::{AgentPass, GuestTiming};
use crate::session::{self, Outcome, Progress, Timeouts};
use crate::shard::Shard;
use crate::snapshot::Template;

/// What every guest of a run shares.
pub struct Setup<'a> {
    pub arch: Arch,
    pub kernel: &'a Kernel,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// The guest's PID 1, built from `images/init.c`.
    pub init: &'a Path,
    pub agent: Option<&'a Path>,
    pub cases: &'a [Case],
    pub modes: &'a [Mode],
    pub catalog: Option<&'a Catalog>,
    pub timeouts: Timeouts,
    /// Crash the first guest this many seconds after its init starts.
    pub inject_panic_after_s: Option<u32>,
    /// A booted guest to start module-load guests from, instead of booting each.
    pub snapshot: Option<&'a Template>,
    /// Where the console logs go.
    pub out: &'a Path,
    /// Where images and half-written logs go; nothing of it is kept.
    pub scratch: &'a Path,
}

/// What one guest produced, turned into results.
#[derive(Debug, Default)]
pub struct GuestRun {
    /// 1 for the first guest started, and so on.
    pub number: usize,
    pub results: Vec<TestResult>,
    pub errors: Vec<String>,
    pub release: Option<String>,
    /// The guest ran its shard to the end, or another guest took over the rest.
    pub complete: bool,
    pub interrupted: bool,
    pub invalid_selection: bool,
    pub timing: GuestTiming,
    /// What its agent did, judged with the other guests' once all have run: a resumed
    /// guest's cases and the first guest's are one pass over the bundle.
    pub agent: Option<AgentRun>,
    pub agent_passes: Vec<AgentPass>,
    pub durations: Durations,
}

/// Boots one guest for `shard`, into `guest`: its results, errors, timing and agent run.
pub fn boot(
    setup: &Setup<'_>,
    shard: &Shard,
    guest: &mut GuestRun,
    cancel: &AtomicBool,
    on_event: OnEvent<'_>,
) -> anyhow::Result<()> {
    let number = guest.number;
    let dir = setup.scratch.join(format!("guest-{number}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut plan = shard.plan(setup.catalog);
    if number == 1 {
        plan.inject_panic_after_s = setup.inject_panic_after_s;
    }
    if cancel.load(Ordering::SeqCst) {
        // No guest boots once the run is interrupted; its tests are reported as not run.
        let outcome = session::cancelled(&plan);
        guest.interrupted = true;
        guest.results = outcome.results;
        guest.timing.console.clear();
        return Ok(());
    }
    let config = config(setup, shard, &plan, &dir)?;
    let shown = shard.to_string();
    let console_tmp = dir.join("console.log");
    let mut console = std::fs::File::create(&console_tmp)
        .with_context(|| format!("cannot create {}", console_tmp.display()))?;
    let mut outcome = session::run(
        &config,
        &plan,
        setup.timeouts,
        &mut console,
        cancel,
        &mut |event| {
            if let Progress::Booted { .. } = event {
                on_event(Event::GuestRuns {
                    guest: number,
                    shard: &shown,
                });
            }
            on_event(Event::Progress(event));
        },
    )
    .with_context(|| format!("cannot boot guest {number}"))?;
    drop(console);
    publish(&console_tmp, &setup.out.join(&guest.timing.console))?;
    guest.take(&mut outcome);
    if let Some(problem) = memory_problem(&outcome, config.memory_mib) {
        guest.errors.push(format!("guest {number}: {problem}"));
    }
    if let Some(span) = shard.agent {
        agent_run(setup, span, guest, &outcome)?;
    }
    Ok(())
}

/// The guest's command line: it starts from the booted template, the agent's bundle in its
/// window, unless it injects a fault or the template cannot take the bundle; then its image,
/// its own, has what it runs.
fn config(setup: &Setup<'_>, shard: &Shard, plan: &Plan, dir: &Path) -> anyhow::Result<QemuConfig> {
    let initrd = dir.join("initramfs.cpio");
    let qmp = dir.join("qmp.sock");
    let mut config = QemuConfig {
        agent_output: plan.agent.then(|| dir.join("agent.out")),
        memory_mib: setup.memory_mib,
        tb_size_mib: match plan.loads.is_empty() {
            true => crate::qemu::AGENT_TB_SIZE_MIB,
            false => crate::qemu::TB_SIZE_MIB,
        },
        ..QemuConfig::boot(setup.arch, setup.kernel.image.clone(), initrd.clone())
    };
    let bundle = shard
        .agent
        .filter(|_| setup.agent.is_some())
        .map(|span| crate::agent::bundle(setup.cases, setup.modes, span));
    let template = setup
        .snapshot
        .filter(|_| plan.inject_panic_after_s.is_none());
    match (template, bundle) {
        (Some(template), None) if !plan.agent => Ok(template.guest(&config, plan, qmp)),
        (Some(template), Some(bundle))
            if template.runs_agent() && Window::fits(bundle.as_bytes()) =>
        {
            let path = dir.join("window");
            let window = Window::create(path.clone(), bundle.into_bytes())
                .with_context(|| format!("cannot create {}", path.display()))?;
            config.window = Some(window);
            Ok(template.guest(&config, plan, qmp))
        }
        (_, bundle) => {
            let agent_files = setup
                .agent
                .zip(bundle)
                .map(|(binary, bundle)| image::AgentFiles { binary, bundle });
            image::build(
                setup.arch,
                setup.init,
                setup.kernel,
                plan,
                agent_files,
                &initrd,
            )?;
            Ok(config)
        }
    }
}

/// What to tell the user when the guest may have had too little memory: the kernel said it ran
/// out, or the guest never booted and nothing was printed (a kernel that does not fit exits or
/// hangs before it prints).
fn memory_problem(outcome: &Outcome, memory_mib: u32) -> Option<String> {
    if let Some(said) = &outcome.out_of_memory {
        return Some(format!(
            "the guest ran out of its {memory_mib} MiB of memory (the kernel said: {said}); \
             give it more with --memory MIB"
        ));
    }
    let never_booted = outcome.timing.boot_s.is_none() && !outcome.interrupted;
    (never_booted && outcome.silent).then(|| {
        format!(
            "the guest did not boot with {memory_mib} MiB of memory: if the kernel does not fit \
             in it, it ends or hangs before it prints; give it more with --memory MIB"
        )
    })
}

impl GuestRun {
    /// Takes the session's results, errors and timing out of `outcome`; its agent's output
    /// stays for [`agent_run`].
    fn take(&mut self, outcome: &mut Outcome) {
        let number = self.number;
        self.timing.boot_s = outcome.timing.boot_s;
        self.timing.to_first_test_s = outcome.timing.to_first_test_s;
        self.timing.total_s = outcome.timing.total_s;
        self.timing.peak_rss_mib = outcome.timing.peak_rss_mib;
        self.timing.peak_own_mib = outcome.timing.peak_own_mib;
        self.release = outcome.release.take();
        self.complete = outcome.complete;
        self.interrupted = outcome.interrupted;
        self.invalid_selection = outcome.invalid_selection;
        self.durations = std::mem::take(&mut outcome.durations);
        self.results = std::mem::take(&mut outcome.results);
        self.errors = outcome
            .errors
            .drain(..)
            .map(|e| format!("guest {number}: {e}"))
            .collect();
    }
}

/// The agent's part of a guest: its log kept, its passes timed, its problems and unpinned
/// warnings made the run's errors, its run kept for judging with the other guests'.
fn agent_run(
    setup: &Setup<'_>,
    span: AgentSpan,
    guest: &mut GuestRun,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let number = guest.number;
    let agent_log = setup.out.join(super::pool::log_name("agent", number));
    crate::report::write_atomically(&agent_log, &outcome.agent_output)
        .with_context(|| format!("cannot write {}", agent_log.display()))?;
    let output = crate::agent::parse_output(&outcome.agent_output);
    guest.agent_passes = agent_passes(&output, setup.modes, span, setup.cases.len());
    for pass in &guest.agent_passes {
        guest
            .durations
            .record_agent(pass.mode, pass.cases, pass.seconds);
    }
    let problems = agent_problems(&output, outcome.agent_status, setup.modes, outcome.complete);
    // A console warning the agent pinned on a case fails that case; any other is the run's.
    let unpinned = session::warnings_on_no_case(&outcome.agent_warnings, &pinned(&output));
    guest.errors.extend(
        problems
            .into_iter()
            .chain(unpinned)
            .map(|e| format!("guest {number}: {e}")),
    );
    guest.agent = Some(AgentRun {
        span,
        output,
        stop: outcome.agent_stop.clone(),
    });
    Ok(())
}

/// Moves a finished log from the scratch directory into the output directory, whole.
fn publish(from: &Path, to: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    crate::report::write_atomically(to, &data)
        .with_context(|| format!("cannot write {}", to.display()))
}

/// The agent's passes, timed in the guest: each over the cases of its mode in `span`.
fn agent_passes(
    output: &AgentOutput,
    modes: &[Mode],
    span: AgentSpan,
    cases: usize,
) -> Vec<AgentPass> {
    output
        .mode_ns
        .iter()
        .filter_map(|(&index, &ns)| {
            Some(AgentPass {
                mode: *modes.get(index)?,
                cases: span.cases_in(index, cases),
                seconds: ns as f64 / 1e9,
            })
        })
        .collect()
}

/// The titles of the splats the agent's `kmsg` lines pinned on its cases.
fn pinned(output: &AgentOutput) -> Vec<String> {
    output
        .observations
        .values()
        .flat_map(|o| o.splats())
        .map(|s| s.title)
        .collect()
}

/// What went wrong with the agent as a whole, as opposed to any one case.
fn agent_problems(
    output: &AgentOutput,
    status: Option<i32>,
    modes: &[Mode],
    guest_complete: bool,
) -> Vec<String> {
    let mut problems = output.errors.clone();
    if guest_complete {
        if status != Some(0) {
            problems.push(format!(
                "the agent exited with status {}",
                status.map_or("?".into(), |s| s.to_string())
            ));
        }
        if !output.finished {
            problems.push("the agent's output ends without `agent bye`".into());
        }
    }
    for (index, mode) in modes.iter().enumerate() {
        let (enable, harden) = mode.sysctls();
        match output.modes.get(&index) {
            Some(&got) if got != (enable, harden) => problems.push(format!(
                "mode {}: the guest kept bpf_jit_enable={} bpf_jit_harden={}, not {enable} {harden} \
                 (a kernel with CONFIG_BPF_JIT_ALWAYS_ON cannot run the interpreter)",
                mode.name(),
                got.0,
                got.1
            )),
            _ => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_little_memory_is_named_only_where_it_may_be_the_cause() {
        let oom = Outcome {
            out_of_memory: Some("insmod invoked oom-killer: order=0".to_owned()),
            ..Outcome::default()
        };
        let said = memory_problem(&oom, 80).expect("the kernel said so");
        assert!(
            said.contains("its 80 MiB") && said.contains("--memory MIB"),
            "{said}"
        );
        let silent = Outcome {
            silent: true,
            ..Outcome::default()
        };
        let said = memory_problem(&silent, 48).expect("a silent guest that never booted");
        assert!(
            said.contains("with 48 MiB") && said.contains("--memory MIB"),
            "{said}"
        );
        // QEMU said why it ended (a missing BIOS), or the guest printed its boot.
        assert_eq!(memory_problem(&Outcome::default(), 128), None);
    }
}
