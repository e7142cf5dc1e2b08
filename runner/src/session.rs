//! One guest from boot to power-off: QEMU's console turned into results as it arrives.

use std::io::Write;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::arch::Arch;
use crate::console::{self, LineSplitter};
use crate::durations::Durations;
use crate::model::{Status, TestResult};
use crate::plan::Plan;
use crate::protocol::{self, GuestLine};
use crate::qemu::{Output, Qemu, QemuConfig, QemuError};
use crate::report::{KernelInfo, Report, Timing};
use crate::splat::{self, Splat};
use crate::test_bpf::LoadParser;

/// When to give up on a guest.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// QEMU start to the guest's `harness: start`.
    pub boot: Duration,
    /// Longest time without a byte on the console once booted.
    pub silence: Duration,
}

/// What a run tells its caller while it goes on.
#[derive(Debug)]
pub enum Progress<'a> {
    Booted { release: Option<&'a str> },
    LoadStarted { index: usize, of: usize },
    AgentStarted,
    TestFinished(&'a TestResult),
}

/// Everything one guest produced.
#[derive(Debug, Default)]
pub struct Outcome {
    pub results: Vec<TestResult>,
    /// Problems that belong to no single test: boot failures, protocol errors, count mismatches.
    pub errors: Vec<String>,
    pub release: Option<String>,
    pub timing: Timing,
    /// The guest ran its whole plan and powered off.
    pub complete: bool,
    pub interrupted: bool,
    /// test_bpf refused the selection (no such test name, number or range): the user's error.
    pub invalid_selection: bool,
    /// The kernel's first line saying it ran out of memory.
    pub out_of_memory: Option<String>,
    /// Neither the guest nor QEMU printed a thing: what a kernel too big for its memory does.
    pub silent: bool,
    /// The agent's exit status, once it ended.
    pub agent_status: Option<i32>,
    /// Why the agent never finished, when it was running as the guest stopped: a crash's
    /// title, a hang, an interruption. The case it was on gets this status.
    pub agent_stop: Option<(Status, String)>,
    /// Everything the agent wrote on its channel.
    pub agent_output: Vec<u8>,
    /// Warning splats (WARNING, KASAN, UBSAN) on the console once the agent had begun, each
    /// with its console line: which case each came in is for the agent's `kmsg` lines to say
    /// ([`warnings_on_no_case`]).
    pub agent_warnings: Vec<(String, usize)>,
    /// How long each test that printed a verdict took, from the end of the one before (or the
    /// start of its module load) to its verdict's arrival.
    pub durations: Durations,
}

/// The harness errors for the console's warnings during the agent's run (`agent_warnings`)
/// that no case accounts for: each title in `pinned`, the splats the agent's `kmsg` lines
/// pinned on its cases, accounts for one warning of that title.
pub fn warnings_on_no_case(agent_warnings: &[(String, usize)], pinned: &[String]) -> Vec<String> {
    let mut left: Vec<&String> = pinned.iter().collect();
    let mut errors = Vec::new();
    for (title, line) in agent_warnings {
        match left.iter().position(|p| *p == title) {
            Some(at) => {
                left.swap_remove(at);
            }
            None => errors.push(format!(
                "kernel splat while the agent ran, on none of its cases: {title} (console line {line})"
            )),
        }
    }
    errors
}

/// After a crash or stall, how long to keep reading the console for the rest of the report.
const CRASH_TAIL: Duration = Duration::from_secs(10);

/// How long a guest that said `done` gets to power off by itself.
const POWEROFF_GRACE: Duration = Duration::from_secs(10);

/// How long QEMU gets to end after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

enum Phase {
    Booting,
    /// Between module loads; `next` is the plan index expected next.
    Idle {
        next: usize,
    },
    Loading {
        index: usize,
        parser: LoadParser,
    },
    /// The agent is running its bundle.
    Agent,
    Done,
}

struct Run<'p> {
    plan: &'p Plan,
    phase: Phase,
    out: Outcome,
    started: Instant,
    /// The first fatal splat or stall: the status it gives the running test, and its title.
    crash: Option<(Status, String)>,
    /// A warning splat (WARNING, KASAN, UBSAN) waiting for the verdict of the test it came in.
    warning: Option<String>,
    /// Console lines seen, for pointing at a splat in the log.
    lines_seen: usize,
    /// The harness ended the guest on purpose (hang, timeout, cancel).
    stopped: bool,
    /// When the test now running began: the previous verdict, or its module load.
    test_started: Instant,
    /// Whether the console comes from a live guest, whose tests' durations mean something.
    live: bool,
    /// No test of the running load has finished yet.
    first_of_load: bool,
    /// Counts what shows the guest moving on: verdicts and protocol lines.
    marks: u64,
    /// The guest asked for its bundle and the host has not answered yet.
    bundle_wanted: bool,
}

/// Boots the guest in `config`, runs `plan` and returns what happened. The raw console goes
/// to `console_log` byte for byte. Setting `cancel` ends the guest early.
pub fn run(
    config: &QemuConfig,
    plan: &Plan,
    timeouts: Timeouts,
    console_log: &mut dyn Write,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Outcome, QemuError> {
    let mut qemu = Qemu::spawn(config)?;
    Ok(supervise(
        &mut qemu,
        plan,
        timeouts,
        config.agent_output.as_deref(),
        console_log,
        cancel,
        progress,
    ))
}

/// The outcome of a guest the run was cancelled before booting: every test of `plan` is
/// `not_run`.
pub fn cancelled(plan: &Plan) -> Outcome {
    let mut run = Run::new(plan);
    run.out.interrupted = true;
    run.stop("interrupted: the run was cancelled before this guest booted");
    run.finish()
}

impl Outcome {
    /// The report of this guest alone, on the kernel `source` names (replays, tools).
    pub fn into_report(self, arch: Arch, source: String) -> Report {
        let kernel = KernelInfo {
            arch,
            release: self.release,
            source,
            revision: None,
            config_hash: None,
        };
        Report::new(
            kernel,
            self.results,
            self.errors,
            self.complete,
            self.timing,
        )
    }
}

/// Reads a recorded console (a `console.log`) as if it came from a guest running `plan`.
pub fn replay(console: &[u8], plan: &Plan) -> Outcome {
    let mut run = Run::new(plan);
    run.live = false;
    let mut lines = LineSplitter::new();
    let mut ignore = |_: Progress<'_>| {};
    lines.push(console, |line| run.line(line, &mut ignore));
    lines.finish(|line| run.line(line, &mut ignore));
    if !matches!(run.phase, Phase::Done) && run.crash.is_none() {
        run.stop("the console log ends before the guest finished its plan");
    }
    let mut outcome = run.finish();
    // A recording has no wall clock worth reporting, nor the agent's channel to pin a warning.
    outcome.timing = Timing::default();
    let unpinned = warnings_on_no_case(&outcome.agent_warnings, &[]);
    outcome.errors.extend(unpinned);
    outcome
}

/// Drives an already started QEMU (real or fake) through `plan`. `agent_log` is the file
/// QEMU writes the agent's channel to: its growth counts as progress, and its content ends up
/// in [`Outcome::agent_output`].
pub fn supervise(
    qemu: &mut Qemu,
    plan: &Plan,
    timeouts: Timeouts,
    agent_log: Option<&Path>,
    console_log: &mut dyn Write,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Outcome {
    let mut watch = Watch::new(plan);
    loop {
        watch.note_progress(agent_log);
        if cancel.load(Ordering::SeqCst) {
            watch.run.out.interrupted = true;
            watch
                .run
                .stop("interrupted: the run was cancelled (Ctrl-C or SIGTERM)");
            break;
        }
        let limit = watch.time_left(timeouts);
        match qemu.read(limit.min(Duration::from_millis(250))) {
            Output::Bytes(bytes) => {
                watch.console_bytes(&bytes, console_log, progress);
                if std::mem::take(&mut watch.run.bundle_wanted) {
                    if let Err(e) = qemu.fill_window() {
                        watch.run.out.errors.push(e);
                    }
                }
            }
            Output::Closed => {
                watch.lines.finish(|line| watch.run.line(line, progress));
                break;
            }
            // QEMU gone while something it started still holds the console pipe open.
            Output::Quiet if qemu.try_wait().is_some() => break,
            Output::Quiet if !limit.is_zero() => {}
            Output::Quiet => {
                watch.time_out(timeouts, progress);
                break;
            }
        }
    }
    let _ = console_log.flush();
    watch.read_agent_output(agent_log);
    let status = qemu.terminate(TERM_GRACE);
    watch.run.out.silent = watch.run.lines_seen == 0 && qemu.said().is_none();
    watch.run.out.timing.total_s = watch.run.started.elapsed().as_secs_f64();
    watch.run.out.timing.peak_rss_mib = qemu.peak_rss_mib();
    watch.run.out.timing.peak_own_mib = qemu.peak_own_mib();
    watch.note_unexpected_end(qemu, status);
    watch.run.finish()
}

/// What [`supervise`] keeps track of between two reads of the console: the run, and the
/// clocks its timeouts run on.
struct Watch<'p> {
    run: Run<'p>,
    lines: LineSplitter,
    /// The last byte on the console, or growth of the agent's channel.
    last_output: Instant,
    /// Output is not progress: a guest can print the same stall report forever. Progress is a
    /// test's verdict, a protocol line, or the agent's channel growing.
    last_progress: Instant,
    /// The run's `marks` when last looked at.
    marks: u64,
    /// When the run first saw a crash or stall: the rest of the report gets [`CRASH_TAIL`].
    crashed_at: Option<Instant>,
    /// Writing the console log failed once: it is not tried again.
    log_failed: bool,
    /// The agent's channel's length when last looked at.
    agent_len: u64,
}

impl<'p> Watch<'p> {
    /// A watch on a guest about to run `plan`, its clocks starting now.
    fn new(plan: &'p Plan) -> Self {
        Watch {
            run: Run::new(plan),
            lines: LineSplitter::new(),
            last_output: Instant::now(),
            last_progress: Instant::now(),
            marks: 0,
            crashed_at: None,
            log_failed: false,
            agent_len: 0,
        }
    }

    /// Restarts the clocks if the agent's channel at `agent_log` grew or the run moved on.
    fn note_progress(&mut self, agent_log: Option<&Path>) {
        // The agent reports on its own channel while the console stays quiet.
        let len = agent_log
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        if len > self.agent_len {
            self.agent_len = len;
            self.last_output = Instant::now();
            self.last_progress = self.last_output;
        }
        if self.run.marks != self.marks {
            self.marks = self.run.marks;
            self.last_progress = Instant::now();
        }
    }

    /// How long the guest has left before the current phase's timeout, or the crash tail's.
    fn time_left(&self, timeouts: Timeouts) -> Duration {
        let limit = match self.run.phase {
            Phase::Booting => timeouts.boot.saturating_sub(self.run.started.elapsed()),
            Phase::Done => POWEROFF_GRACE.saturating_sub(self.last_output.elapsed()),
            _ => timeouts
                .silence
                .saturating_sub(self.last_progress.elapsed()),
        };
        match self.crashed_at {
            Some(at) => limit.min(CRASH_TAIL.saturating_sub(at.elapsed())),
            None => limit,
        }
    }

    /// Console `bytes` from the guest: logged to `console_log`, then read line by line.
    fn console_bytes(
        &mut self,
        bytes: &[u8],
        console_log: &mut dyn Write,
        progress: &mut dyn FnMut(Progress<'_>),
    ) {
        self.last_output = Instant::now();
        if !self.log_failed {
            if let Err(e) = console_log.write_all(bytes) {
                self.log_failed = true;
                self.run
                    .out
                    .errors
                    .push(format!("cannot write the console log: {e}"));
            }
        }
        self.lines.push(bytes, |line| self.run.line(line, progress));
        if self.run.crash.is_some() && self.crashed_at.is_none() {
            self.crashed_at = Some(Instant::now());
        }
    }

    /// The time left ran out on a quiet console: a boot that never came, or a hang, unless it
    /// was the tail after a crash.
    fn time_out(&mut self, timeouts: Timeouts, progress: &mut dyn FnMut(Progress<'_>)) {
        if self.crashed_at.is_some() {
            // The crash report is in; a kernel that does not reboot by itself is ended.
            return;
        }
        // A test's line ends only with its verdict: what came of it names the test.
        self.lines.finish(|line| self.run.line(line, progress));
        match self.run.phase {
            Phase::Booting => self.run.stop(&format!(
                "the guest did not reach init within {} s (boot hang, or a kernel that \
                 cannot use this console); see console.log",
                timeouts.boot.as_secs()
            )),
            Phase::Done => {}
            _ => self.run.hang(
                timeouts.silence,
                self.last_output.elapsed() < timeouts.silence,
            ),
        }
    }

    /// Takes in the agent's channel from `agent_log`; failing to read it is an error only of
    /// a plan that runs the agent.
    fn read_agent_output(&mut self, agent_log: Option<&Path>) {
        let Some(path) = agent_log else {
            return;
        };
        match std::fs::read(path) {
            Ok(bytes) => self.run.out.agent_output = bytes,
            Err(e) if self.run.plan.agent => self.run.out.errors.push(format!(
                "cannot read the agent's output {}: {e}",
                path.display()
            )),
            Err(_) => {}
        }
    }

    /// Stops the run with why QEMU ended (`status`) if it did before the plan was done, and
    /// not because the harness ended it or the kernel crashed.
    fn note_unexpected_end(&mut self, qemu: &Qemu, status: Option<ExitStatus>) {
        let run = &mut self.run;
        if matches!(run.phase, Phase::Done) || run.stopped || run.crash.is_some() {
            return;
        }
        let phase = match run.phase {
            Phase::Booting => "before the guest booted",
            _ => "before the guest finished its plan",
        };
        let status = status.map_or("unknown status".to_owned(), |s| s.to_string());
        let said = qemu
            .said()
            .map_or_else(String::new, |said| format!(": {said}"));
        run.stop(&format!(
            "{} ended ({status}) {phase}{said}",
            qemu.program()
        ));
    }
}

impl<'p> Run<'p> {
    fn new(plan: &'p Plan) -> Self {
        Run {
            plan,
            phase: Phase::Booting,
            out: Outcome::default(),
            started: Instant::now(),
            crash: None,
            warning: None,
            lines_seen: 0,
            stopped: false,
            test_started: Instant::now(),
            live: true,
            first_of_load: false,
            marks: 0,
            bundle_wanted: false,
        }
    }

    fn line(&mut self, raw: &[u8], progress: &mut dyn FnMut(Progress<'_>)) {
        let text = console::text(raw);
        self.lines_seen += 1;
        match console::split_interrupted(text) {
            Some((init, kernel)) => {
                self.text_line(init, progress);
                self.text_line(console::text(kernel), progress);
            }
            None => self.text_line(text, progress),
        }
    }

    /// One line of text: a protocol line, or kernel output.
    fn text_line(&mut self, text: &[u8], progress: &mut dyn FnMut(Progress<'_>)) {
        if self.out.out_of_memory.is_none() && splat::out_of_memory(text) {
            self.out.out_of_memory = Some(console::str_of(text).trim().to_owned());
        }
        if let Some(splat) = splat::detect(text) {
            self.splat(splat);
        }
        match protocol::parse(text) {
            Some(Ok(line)) => self.guest_line(line, progress),
            Some(Err(e)) => self.out.errors.push(e.to_string()),
            None => {
                if let Phase::Loading { parser, .. } = &mut self.phase {
                    if parser.line(text) == crate::test_bpf::Event::Finished {
                        if let Some(title) = self.warning.take() {
                            parser.fail_last(&format!("{}: {title}", splat::WHILE_IT_RAN));
                        }
                        if let Some(result) = parser.results().last() {
                            // The first test of a load also waited for the module to load,
                            // which every shard pays anyway: its own time is unknown.
                            if self.live && !std::mem::take(&mut self.first_of_load) {
                                self.out.durations.record_test(
                                    result.mode,
                                    result.suite.name(),
                                    &result.name,
                                    self.test_started.elapsed().as_secs_f64(),
                                );
                            }
                            self.test_started = Instant::now();
                            self.marks += 1;
                            progress(Progress::TestFinished(result));
                        }
                    }
                }
            }
        }
    }

    /// A protocol line from the guest's init: moves the phase machine on, or is an error when
    /// out of order.
    fn guest_line(&mut self, line: GuestLine, progress: &mut dyn FnMut(Progress<'_>)) {
        self.marks += 1;
        let elapsed = self.started.elapsed().as_secs_f64();
        match (line, &mut self.phase) {
            (GuestLine::Start, Phase::Booting) => {
                self.out.timing.boot_s = Some(elapsed);
                self.phase = Phase::Idle { next: 0 };
            }
            (GuestLine::Uname(release), Phase::Idle { .. }) => {
                progress(Progress::Booted {
                    release: Some(&release),
                });
                self.out.release = Some(release);
            }
            (GuestLine::LoadBegin { index }, Phase::Idle { next }) if index == *next => {
                self.begin_load(index, elapsed, progress);
            }
            (GuestLine::LoadEnd { index, status }, Phase::Loading { index: running, .. })
                if index == *running =>
            {
                self.end_load(index, status);
            }
            (GuestLine::Error(what), _) => self.out.errors.push(format!("guest init: {what}")),
            (GuestLine::BundleWanted, Phase::Idle { next })
                if *next == self.plan.loads.len() && self.plan.agent =>
            {
                self.bundle_wanted = true;
            }
            (GuestLine::AgentBegin, Phase::Idle { next })
                if *next == self.plan.loads.len()
                    && self.plan.agent
                    && self.out.agent_status.is_none() =>
            {
                if self.out.timing.to_first_test_s.is_none() {
                    self.out.timing.to_first_test_s = Some(elapsed);
                }
                progress(Progress::AgentStarted);
                self.phase = Phase::Agent;
            }
            (GuestLine::AgentEnd { status }, Phase::Agent) => {
                self.out.agent_status = Some(status);
                self.phase = Phase::Idle {
                    next: self.plan.loads.len(),
                };
            }
            (GuestLine::Done, Phase::Idle { next })
                if *next == self.plan.loads.len()
                    && self.plan.agent == self.out.agent_status.is_some() =>
            {
                self.phase = Phase::Done;
                self.out.complete = true;
            }
            (line, _) => self.out.errors.push(format!(
                "protocol line out of order from the guest: {line:?} ({})",
                self.phase_name()
            )),
        }
    }

    /// The guest began the plan's load `index`, `elapsed` seconds into the run: its tests'
    /// lines go to a parser of that load from now on.
    fn begin_load(&mut self, index: usize, elapsed: f64, progress: &mut dyn FnMut(Progress<'_>)) {
        let Some(load) = self.plan.loads.get(index) else {
            self.out.errors.push(format!(
                "the guest began load {index}, which is not in the plan"
            ));
            return;
        };
        if index == 0 {
            self.out.timing.to_first_test_s = Some(elapsed);
        }
        progress(Progress::LoadStarted {
            index,
            of: self.plan.loads.len(),
        });
        self.test_started = Instant::now();
        self.first_of_load = true;
        self.phase = Phase::Loading {
            index,
            parser: match &self.plan.catalog {
                Some(catalog) => LoadParser::new(load.mode, load.suites.clone())
                    .with_catalog(catalog, load.filter.as_ref()),
                None => LoadParser::new(load.mode, load.suites.clone()),
            },
        };
    }

    /// The load `index` in progress ended with the module's exit `status`: its results and
    /// errors go to the outcome, and the next load is expected.
    fn end_load(&mut self, index: usize, status: i32) {
        if let Phase::Loading { mut parser, .. } =
            std::mem::replace(&mut self.phase, Phase::Idle { next: index + 1 })
        {
            let errors = parser.end(status);
            self.out.invalid_selection |= parser.invalid_selection();
            self.out
                .errors
                .extend(errors.into_iter().map(|e| format!("load {index}: {e}")));
            self.out.results.extend(parser.into_results());
        }
    }

    /// A splat on the console: a crash or stall ends the running test and the guest, a
    /// warning fails the running test once its verdict comes, or is left for the agent's case
    /// it came in.
    fn splat(&mut self, splat: Splat) {
        let title = format!("{} (console line {})", splat.title, self.lines_seen);
        let status = match splat.kind {
            splat::Kind::Warning => {
                match self.phase {
                    Phase::Loading { .. } => {
                        self.warning.get_or_insert(title);
                    }
                    // After the agent's end too: the console may lag behind its channel.
                    _ if matches!(self.phase, Phase::Agent) || self.out.agent_status.is_some() => {
                        self.out.agent_warnings.push((splat.title, self.lines_seen));
                    }
                    _ => self
                        .out
                        .errors
                        .push(format!("kernel splat outside any test_bpf test: {title}")),
                }
                return;
            }
            splat::Kind::Fatal => Status::Crash,
            splat::Kind::Stall => Status::Hang,
        };
        if self.crash.is_some() {
            // The panic after an oops, the stall report after a stall: the first one names it.
            return;
        }
        self.crash = Some((status, title.clone()));
        if let Phase::Loading { parser, .. } = &mut self.phase {
            parser.interrupt(status, &title);
        } else if let Phase::Agent = self.phase {
            self.out.agent_stop = Some((status, title));
        } else {
            self.out
                .errors
                .push(format!("the kernel crashed outside any test: {title}"));
        }
    }

    fn phase_name(&self) -> String {
        match &self.phase {
            Phase::Booting => "while booting".into(),
            Phase::Idle { next } => format!("expecting load {next}"),
            Phase::Loading { index, .. } => format!("during load {index}"),
            Phase::Agent => "while the agent runs".into(),
            Phase::Done => "after done".into(),
        }
    }

    /// The guest made no progress for `silence`; `chatty` if it kept printing all the same.
    fn hang(&mut self, silence: Duration, chatty: bool) {
        let message = if chatty {
            format!(
                "no progress for {} s, though the console kept printing",
                silence.as_secs()
            )
        } else {
            format!("no console output for {} s", silence.as_secs())
        };
        match &mut self.phase {
            Phase::Loading { parser, .. } => parser.interrupt(Status::Hang, &message),
            Phase::Agent => self.out.agent_stop = Some((Status::Hang, message)),
            _ => self
                .out
                .errors
                .push(format!("the guest hung between tests: {message}")),
        }
        self.stopped = true;
        self.out.complete = false;
    }

    /// Ends the run early for `why`.
    fn stop(&mut self, why: &str) {
        self.out.errors.push(why.to_owned());
        self.stopped = true;
        self.out.complete = false;
    }

    /// Closes the load in progress and marks the loads never begun as not run.
    fn finish(mut self) -> Outcome {
        let next = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Booting => 0,
            Phase::Idle { next } => next,
            Phase::Agent => {
                if self.out.agent_stop.is_none() {
                    let why = if self.out.interrupted {
                        "the run was interrupted"
                    } else {
                        "the guest stopped"
                    };
                    self.out.agent_stop = Some((Status::NotRun, format!("not run: {why}")));
                }
                self.plan.loads.len()
            }
            Phase::Loading { index, mut parser } => {
                if self.crash.is_none() {
                    let why = if self.out.interrupted {
                        "the run was interrupted"
                    } else {
                        "the guest stopped"
                    };
                    parser.interrupt(Status::NotRun, why);
                }
                self.out.results.extend(parser.into_results());
                index + 1
            }
            Phase::Done => self.plan.loads.len(),
        };
        for load in self.plan.loads.iter().skip(next) {
            for suite in &load.suites {
                self.out.results.push(TestResult::not_run(
                    *suite,
                    load.mode,
                    format!("{suite} (whole suite)"),
                    "not run: the guest ended before this load",
                ));
            }
        }
        if let Some((status, title)) = &self.crash {
            self.out.complete = false;
            // Pinned on a test, or on the agent's case in flight: not an error of its own.
            let pinned = self.out.results.iter().any(|r| r.status == *status)
                || self
                    .out
                    .agent_stop
                    .as_ref()
                    .is_some_and(|(s, _)| s == status);
            if !pinned {
                self.out.errors.push(format!("the kernel crashed: {title}"));
            }
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WARN: &str = "WARNING: CPU: 0 PID: 71 at arch/mips/mm/uasm.c:64 build_insn+0x3c4/0x4d8";

    fn agent_plan() -> Plan {
        Plan {
            loads: Vec::new(),
            agent: true,
            inject_panic_after_s: None,
            catalog: None,
        }
    }

    /// The console of an agent-only guest that printed `during` while the agent ran.
    fn agent_console(during: &str) -> String {
        format!(
            "harness: start\nharness: uname 6.1.0\nharness: agent-begin\n{during}\n\
             harness: agent-end 0\nharness: done\n"
        )
    }

    /// What a live guest with that console gives its caller (a replay has no agent channel).
    fn live(console: &str) -> Outcome {
        let plan = agent_plan();
        let mut run = Run::new(&plan);
        let mut ignore = |_: Progress<'_>| {};
        LineSplitter::new().push(console.as_bytes(), |line| run.line(line, &mut ignore));
        run.finish()
    }

    #[test]
    fn a_warning_while_the_agent_runs_is_left_for_the_case_that_pinned_it() {
        let outcome = live(&agent_console(&format!("[   12.5] {WARN}")));
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        assert_eq!(
            outcome.agent_warnings,
            [("WARNING in build_insn".to_owned(), 4)]
        );
        let pinned = ["WARNING in build_insn".to_owned()];
        assert!(warnings_on_no_case(&outcome.agent_warnings, &pinned).is_empty());
    }

    #[test]
    fn a_warning_no_case_pinned_is_an_error_of_the_run() {
        let outcome = live(&agent_console(&format!("{WARN}\n{WARN}")));
        // Each pinned splat accounts for one warning of its title.
        let pinned = ["WARNING in build_insn".to_owned()];
        assert_eq!(
            warnings_on_no_case(&outcome.agent_warnings, &pinned),
            ["kernel splat while the agent ran, on none of its cases: WARNING in build_insn (console line 5)"]
        );
        let other = ["WARNING in bpf_prog_select_runtime".to_owned()];
        assert_eq!(
            warnings_on_no_case(&outcome.agent_warnings, &other).len(),
            2
        );
        // A replay has no agent channel: every such warning is an error.
        let replayed = replay(agent_console(WARN).as_bytes(), &agent_plan());
        assert_eq!(
            replayed.errors,
            ["kernel splat while the agent ran, on none of its cases: WARNING in build_insn (console line 4)"]
        );
    }
}
