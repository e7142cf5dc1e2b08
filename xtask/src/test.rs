//! `cargo xtask test`: fetch the kernel, cut the selection into shards, boot a guest per
//! shard (see `guests.rs`), write the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use runner::arch::Arch;
use runner::cases;
use runner::cases::Unreadable;
use runner::durations::Durations;
use runner::engine::{self, ExitKind};
use runner::image;
use runner::known_differences::KnownDifferences;
use runner::model::{AgentSuite, Catalog, Mode};
use runner::plan::Plan;
use runner::qemu::QemuConfig;
use runner::report::{self, render_summary, KernelInfo};
use runner::session::Timeouts;
use runner::shard::{self, Shard};
use runner::snapshot::Template;
use xshell::Shell;

use crate::flags::{BuildArgs, GateArgs, SelectionArgs, Test};
use crate::gate::Gate;
use crate::guest_c::{self, Program};
use crate::kernel::{Kernel, KernelSpec};
use crate::progress::Reporter;
use crate::snapshot;
use crate::tools::{self, Install, Tool};
use crate::{cache, project_root, signals, UsageError};

/// A `test` run done: its report, judged and written, and how it exits.
pub struct Finished {
    pub report: runner::report::Report,
    pub exit: ExitKind,
}

/// Everything a guest needs from the host, fetched or built.
struct Inputs {
    kernel: Kernel,
    /// The guest's PID 1.
    init: PathBuf,
    agent: Option<PathBuf>,
}

impl Test {
    fn install(&self) -> Install {
        if self.no_install {
            Install::Forbidden
        } else {
            Install::Allowed
        }
    }

    /// `cargo xtask test --arch ARCH` with every other flag at its default: where the verbs
    /// that run tests (`track`, `bench`, `fuzz`) start theirs.
    pub fn new(arch: Arch) -> Test {
        Test {
            arch,
            kernel: None,
            selection: SelectionArgs {
                suite: Vec::new(),
                mode: vec![Mode::Jit],
                filter: None,
            },
            conformance_dir: None,
            known_differences: None,
            out: None,
            cache_dir: None,
            no_install: false,
            build: BuildArgs::default(),
            inject_panic_after: None,
            jobs: None,
            memory: None,
            shard: None,
            silence_timeout: 120,
            retry_failures: false,
            cold_boot: false,
            gate: GateArgs::default(),
            generated: None,
        }
    }

    pub fn run(self) -> anyhow::Result<u8> {
        Ok(self.run_to_end()?.exit.code())
    }

    /// The run, with Ctrl-C handled: a first one ends it in order.
    pub fn run_to_end(self) -> anyhow::Result<Finished> {
        // First of all: a Ctrl-C while kernels download still ends the run in order.
        let cancel = Arc::new(AtomicBool::new(false));
        signals::install(Arc::clone(&cancel))?;
        self.run_until(&cancel)
    }

    /// The run, ended in order (partial report, interrupted) once `cancel` is set: for callers
    /// that run many and own the signal handling (`track`).
    pub fn run_until(self, cancel: &AtomicBool) -> anyhow::Result<Finished> {
        let arch = self.arch;
        let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let (mut plan, loaded) = self.plan_and_cases()?;
        let cases::Loaded { cases, unreadable } = loaded;
        let known = self.known_differences()?;
        let modes = self.selection.mode.clone();
        let cache = self.cache_dir()?;
        let inputs = self.fetch_inputs(&plan, &cache)?;
        let kernel_info = KernelInfo {
            arch,
            release: None,
            source: inputs.kernel.source.clone(),
            revision: None,
            config_hash: None,
        };
        let gate = Gate::load(&self.gate, arch, &kernel_info.flavour())?;
        // After the gate: a bad baseline stops the run before any guest boots.
        let snapshot = self.snapshot(&plan, &inputs, &cache)?;
        let out = self.out_dir()?;
        let _out_lock = cache::Lock::acquire_for_run(&out)?;

        plan.catalog = catalog(&inputs.kernel)?;
        // Per line of kernels: a 7.2 run is cut by 7.2's times.
        let flavour = kernel_info.flavour();
        let history_path = cache
            .join("durations")
            .join(format!("{arch}-{flavour}.json"));
        let history = Durations::read(&history_path).map_err(UsageError::wrap)?;
        let shards = self.shards(&plan, &cases, &flavour, history.as_ref())?;
        // No more guests than shards.
        let jobs = self.jobs.map_or_else(default_jobs, usize::from);
        let jobs = jobs.min(shards.len()).max(1);

        let scratch = crate::cache::scratch_dir()?;
        let spec = engine::RunSpec {
            guests: engine::Setup {
                arch,
                kernel: &inputs.kernel,
                memory_mib: self.memory_mib(&inputs.kernel),
                init: &inputs.init,
                agent: inputs.agent.as_deref(),
                snapshot: snapshot.as_ref(),
                cases: &cases,
                modes: &modes,
                catalog: plan.catalog.as_ref(),
                timeouts: Timeouts {
                    boot: Duration::from_secs(arch.qemu().boot_timeout_secs),
                    silence: Duration::from_secs(self.silence_timeout),
                },
                inject_panic_after_s: self.inject_panic_after,
                out: &out,
                scratch: scratch.path(),
            },
            shards,
            jobs,
            retry_failures: self.retry_failures,
            unreadable: &unreadable,
            known: &known,
            scope: self.scope(&plan),
            shard: self.shard,
            started: started_at,
        };
        let what = match jobs {
            1 => format!("{arch} ({})", inputs.kernel.source),
            n => format!("{arch} ({}) in {n} guests", inputs.kernel.source),
        };
        let reporter = Mutex::new(Reporter::new(&what));
        let run = engine::run(spec, cancel, &|event| progress(&reporter, event));
        reporter
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .finish();
        let durations = (history, history_path.as_path());
        finish(run, &gate, &out, durations, &unreadable)
    }

    /// `--out`, or a new directory under reports/runs/, created.
    fn out_dir(&self) -> anyhow::Result<PathBuf> {
        let out = match &self.out {
            Some(out) => out.clone(),
            None => default_out_dir(self.arch),
        };
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create the output directory {}", out.display()))?;
        Ok(out)
    }

    /// The shards this run's guests take: the whole plan cut into `--jobs` parts, or this
    /// machine's part of `--shard K/N` cut again; the agent's part, of `cases`, in spans
    /// (`shard::cut_agent`).
    fn shards(
        &self,
        plan: &Plan,
        agent_cases: &[cases::Case],
        flavour: &str,
        history: Option<&Durations>,
    ) -> anyhow::Result<Vec<Shard>> {
        let cases = agent_cases.len();
        let modes = &self.selection.mode;
        // The committed times of this line, else of the arch's first line.
        let committed = project_root().join("reports").join("durations");
        let seed_path = [
            format!("{}-{flavour}.json", self.arch),
            format!("{}.json", self.arch),
        ]
        .iter()
        .map(|name| committed.join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| committed.join(format!("{}.json", self.arch)));
        let seed = Durations::read(&seed_path)
            .map_err(UsageError::wrap)?
            .unwrap_or_default();
        let jobs = self.jobs.map_or_else(default_jobs, usize::from);
        let catalog = plan.catalog.as_ref();
        // This machine's own times where it has them, the committed ones for the rest.
        let durations = history.map_or_else(|| seed.clone(), |own| own.or(&seed));
        let durations = &durations;
        let Some(id) = self.shard else {
            let jobs = shard::worth_guests(plan, cases, catalog, durations, jobs);
            let shards = shard::partition(plan, cases, catalog, durations, jobs);
            return Ok(shard::cut_agent(shards, agent_cases, modes, durations));
        };
        // Every machine of a CI matrix must cut alike: by the committed durations only.
        let all = shard::partition(plan, cases, catalog, &seed, id.count as usize);
        let Some(mine) = all.get(id.index as usize - 1) else {
            return Err(UsageError::wrap(anyhow::anyhow!(
                "--shard {id}: the selection makes only {} shards; use at most that many",
                all.len()
            )));
        };
        let mine = mine.plan(catalog);
        let jobs = shard::worth_guests(&mine, cases, catalog, durations, jobs);
        let shards = shard::partition(&mine, cases, catalog, durations, jobs);
        Ok(shard::cut_agent(shards, agent_cases, modes, durations))
    }

    /// The kernel to boot: `--kernel`, a build of `--kernel-source`, or the arch's default.
    fn kernel_spec(&self) -> anyhow::Result<KernelSpec> {
        let build = self.build.spec();
        match (&self.kernel, build != Default::default()) {
            // `--kernel linux-source-7.2 --patch P`: the tree the flags build on is that one.
            (Some(KernelSpec::Build(base)), true) if self.build.kernel_source.is_none() => {
                Ok(KernelSpec::Build(crate::kbuild::BuildSpec {
                    source: base.source.clone(),
                    ..build
                }))
            }
            (Some(_), true) => Err(UsageError::wrap(anyhow::anyhow!(
                "--kernel takes a ready kernel; --kernel-source, --patch and --config-fragment \
                 build one: give one or the other"
            ))),
            (Some(spec), false) => Ok(spec.clone()),
            (None, true) => Ok(KernelSpec::Build(build)),
            (None, false) => Ok(crate::kernel::default_spec(self.arch)),
        }
    }

    /// Memory per guest, in MiB: `--memory`, or what the arch needs for `kernel`'s version.
    pub fn memory_mib(&self, kernel: &Kernel) -> u32 {
        self.memory
            .unwrap_or_else(|| self.arch.memory_mib(kernel.version()))
    }

    fn scope(&self, plan: &Plan) -> report::Scope {
        let mut suites: Vec<String> = Vec::new();
        for load in &plan.loads {
            for suite in &load.suites {
                if !suites.iter().any(|s| s == suite.name()) {
                    suites.push(suite.name().to_owned());
                }
            }
        }
        if plan.agent {
            suites.extend(
                self.selection
                    .selection()
                    .agent_suites()
                    .iter()
                    .map(|s| s.name().to_owned()),
            );
            if self.conformance_dir.is_some() && !suites.iter().any(|s| s == "conformance") {
                suites.push("conformance".to_owned());
            }
        }
        report::Scope {
            suites,
            modes: self.selection.mode.clone(),
            filter: self.selection.filter.as_ref().map(ToString::to_string),
        }
    }

    /// The booted template this run's guests start from (`None` when each boots), made now if
    /// the cache has none, and its guests' memory in MiB: `cargo xtask bench` weighs them.
    pub fn template(&self) -> anyhow::Result<(Option<Template>, u32)> {
        let (plan, _) = self.plan_and_cases()?;
        let cache = self.cache_dir()?;
        let inputs = self.fetch_inputs(&plan, &cache)?;
        let template = self.snapshot(&plan, &inputs, &cache)?;
        Ok((template, self.memory_mib(&inputs.kernel)))
    }

    /// The image and QEMU command line of the whole selection in one guest, built in `dir`,
    /// for running QEMU without the harness (`cargo xtask bench`).
    pub fn bare_guest(&self, dir: &Path) -> anyhow::Result<QemuConfig> {
        let (plan, loaded) = self.plan_and_cases()?;
        let cases = loaded.cases;
        let cache = self.cache_dir()?;
        let inputs = self.fetch_inputs(&plan, &cache)?;
        let snapshot = self.snapshot(&plan, &inputs, &cache)?;
        let initrd = dir.join("initramfs.cpio");
        let agent = inputs.agent.as_deref().map(|binary| image::AgentFiles {
            binary,
            bundle: runner::agent::bundle(
                &cases,
                &self.selection.mode,
                runner::agent::AgentSpan::WHOLE,
            ),
        });
        image::build(
            self.arch,
            &inputs.init,
            &inputs.kernel,
            &plan,
            agent,
            &initrd,
        )?;
        let config = QemuConfig {
            agent_output: plan.agent.then(|| dir.join("agent.out")),
            memory_mib: self.memory_mib(&inputs.kernel),
            ..QemuConfig::boot(self.arch, inputs.kernel.image.clone(), initrd)
        };
        // Started as the harness starts it: from the booted template, when it would.
        Ok(match &snapshot {
            Some(template) if !plan.agent => template.guest(&config, &plan, dir.join("qmp.sock")),
            _ => config,
        })
    }

    fn cache_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.cache_dir {
            Some(dir) => Ok(dir.clone()),
            None => cache::default_dir(),
        }
    }

    /// The list of known differences: `--known-differences`, or suites/known-differences.yaml
    /// (an empty list when that is missing). Read before any guest boots.
    fn known_differences(&self) -> anyhow::Result<KnownDifferences> {
        let (path, optional) = match &self.known_differences {
            Some(path) => (path.clone(), false),
            None => (
                project_root().join("suites").join("known-differences.yaml"),
                true,
            ),
        };
        KnownDifferences::read(&path, optional).map_err(UsageError::wrap)
    }

    /// What the guest runs: module loads from the selection, and the agent's cases; with
    /// them, the corpus files that cannot be read, which run nowhere.
    fn plan_and_cases(&self) -> anyhow::Result<(Plan, cases::Loaded)> {
        let selection = self.selection.selection();
        let mut plan = selection.plan().map_err(UsageError::wrap)?;
        plan.inject_panic_after_s = self.inject_panic_after;
        if let Some(generated) = &self.generated {
            plan.agent = true;
            plan.loads.clear();
            let cases = generated
                .iter()
                .enumerate()
                .map(|(number, case)| cases::Case {
                    number: u32::try_from(number).unwrap_or(u32::MAX),
                    ..case.clone()
                })
                .collect();
            return Ok((
                plan,
                cases::Loaded {
                    cases,
                    unreadable: Vec::new(),
                },
            ));
        }
        if self.conformance_dir.is_some() {
            plan.agent = true;
            if self.selection.suite.is_empty() && self.selection.filter.is_none() {
                // `--conformance-dir` alone runs just that directory.
                plan.loads.clear();
            }
        }
        let agent_suites = selection.agent_suites();
        if agent_suites.contains(&AgentSuite::Xdp) {
            // suites/xdp holds programs written in C.
            let clang = Tool {
                program: "clang",
                packages: &["clang"],
            };
            tools::ensure(&[clang], self.install())?;
        }
        let mut cases = if plan.agent {
            cases::load(
                &project_root().join("suites"),
                &agent_suites,
                self.conformance_dir.as_deref(),
                self.arch.elf().endian == runner::arch::Endian::Big,
                &guest_c::Clang,
            )
            .map_err(UsageError::wrap)?
        } else {
            cases::Loaded::default()
        };
        if let Some(filter) = selection.agent_filter() {
            cases = cases::select(cases, filter).map_err(UsageError::wrap)?;
        }
        Ok((plan, cases))
    }

    /// QEMU, the kernel, the guest's init and (when the plan needs it) the agent, from the
    /// cache.
    fn fetch_inputs(&self, plan: &Plan, cache: &Path) -> anyhow::Result<Inputs> {
        let sh = Shell::new()?;
        let (arch, install) = (self.arch, self.install());
        let qemu = arch.qemu();
        let tool = Tool {
            program: qemu.binary,
            packages: &[qemu.package],
        };
        tools::ensure(&[tool], install)?;
        let spec = self.kernel_spec()?;
        let kernel = spec.resolve(&sh, arch, cache, install)?;
        let init = guest_c::build(&sh, arch, cache, install, Program::Init)?;
        Ok(Inputs {
            kernel,
            init,
            agent: match plan.agent {
                true => Some(guest_c::build(&sh, arch, cache, install, Program::Agent)?),
                false => None,
            },
        })
    }

    /// The booted guest the run's guests start from (`None` when each boots), made once per
    /// kernel and image: this boots a guest, so it comes after every check of the input.
    fn snapshot(
        &self,
        plan: &Plan,
        inputs: &Inputs,
        cache: &Path,
    ) -> anyhow::Result<Option<Template>> {
        let agent_starts =
            plan.agent && runner::snapshot::agents_start_booted(self.arch, &inputs.kernel);
        if self.cold_boot || (plan.loads.is_empty() && !agent_starts) {
            return Ok(None);
        }
        let timeout = Duration::from_secs(self.arch.qemu().boot_timeout_secs);
        let guest = snapshot::Guest {
            arch: self.arch,
            kernel: &inputs.kernel,
            init: &inputs.init,
            memory_mib: self.memory_mib(&inputs.kernel),
            agent: inputs.agent.as_deref(),
        };
        match snapshot::template(&guest, cache, timeout) {
            Ok(template) => Ok(Some(template)),
            Err(e) => {
                eprintln!("warning: {e:#}; every guest boots instead");
                Ok(None)
            }
        }
    }
}

/// The module's own list of tests, which names those a crash or hang kept from printing.
fn catalog(kernel: &Kernel) -> anyhow::Result<Option<Catalog>> {
    let module = std::fs::read(&kernel.test_bpf)
        .with_context(|| format!("cannot read {}", kernel.test_bpf.display()))?;
    match runner::module_tests::test_names(&module) {
        Ok(catalog) => Ok(Some(catalog)),
        Err(e) => {
            eprintln!(
                "warning: cannot list the tests of {} ({e}); tests never reached are reported per suite",
                kernel.test_bpf.display()
            );
            Ok(None)
        }
    }
}

/// An engine event shown by the progress `reporter`.
fn progress(reporter: &Mutex<Reporter>, event: engine::Event<'_>) {
    let mut reporter = reporter.lock().unwrap_or_else(|e| e.into_inner());
    match event {
        engine::Event::GuestRuns { guest, shard } => {
            reporter.note(&format!("guest {guest} runs {shard}"))
        }
        engine::Event::Progress(progress) => reporter.update(progress),
    }
}

/// A run's end: judged by `gate`, its outputs written into `out`, the durations recorded
/// (`history`, read from and written to its path), its summary and diff printed, and what
/// could not be read said.
fn finish(
    mut run: engine::RunResult,
    gate: &Gate,
    out: &Path,
    (history, history_path): (Option<Durations>, &Path),
    unreadable: &[Unreadable],
) -> anyhow::Result<Finished> {
    gate.judge(&mut run.report);
    let report = &run.report;
    runner::outputs::write_all(out, report, &gate.fail_on)?;
    if let Some(recorded) = run.durations(history) {
        let written = history_path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| recorded.write(history_path));
        if let Err(e) = written {
            eprintln!(
                "warning: cannot record test durations in {}: {e}",
                history_path.display()
            );
        }
    }
    print!("{}", render_summary(report));
    if let Some(diff) = &report.diff {
        print!("{}", diff.render_text(&gate.fail_on));
    }
    for note in &run.applied.passed {
        eprintln!("note: {note}");
    }
    println!("report: {}", out.join("report.json").display());
    if !unreadable.is_empty() {
        eprintln!(
            "error: {} of the corpus's files cannot be read as cases; each is an `error` \
             result, the rest ran:",
            unreadable.len()
        );
        for bad in unreadable {
            eprintln!("  {}", bad.error);
        }
    }
    let exit = run.exit(gate.verdict(report));
    Ok(Finished {
        report: run.report,
        exit,
    })
}

/// `reports/runs/ARCH-YYYYMMDDTHHMMSSZ`: a new directory per run, so no run overwrites another.
fn default_out_dir(arch: runner::arch::Arch) -> PathBuf {
    run_dir(&arch.to_string())
}

/// `reports/runs/NAME-TIME`, the default directory of a run.
pub fn run_dir(name: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    project_root()
        .join("reports")
        .join("runs")
        .join(format!("{name}-{stamp}"))
}

/// One guest per core: each QEMU under TCG keeps one busy.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{Command, Xtask};
    use clap::Parser;
    use runner::model::{Mode, Status};

    fn test(args: &[&str]) -> Test {
        let argv = [&["cargo xtask", "test", "--arch", "x86_64"], args].concat();
        match Xtask::try_parse_from(argv).expect("valid flags").command {
            Command::Test(test) => *test,
            _ => unreachable!("a test command"),
        }
    }

    fn fixtures(name: &str) -> String {
        project_root()
            .join("runner/tests/fixtures")
            .join(name)
            .display()
            .to_string()
    }

    /// The planning side of a corpus with one broken file: only the agent runs, with the good
    /// files as cases, and the broken one is kept aside, to be reported and to make the run's
    /// status 2, before any guest boots.
    #[test]
    fn a_broken_corpus_file_is_planned_as_an_error_and_the_rest_as_cases() {
        let dir = fixtures("conformance-malformed");
        let (plan, loaded) = test(&["--conformance-dir", &dir, "--mode", "interp,jit"])
            .plan_and_cases()
            .expect("planned");
        assert!(plan.agent && plan.loads.is_empty());
        let names: Vec<&str> = loaded.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["add32-wraps", "lddw-upper-half"]);
        let results: Vec<runner::model::TestResult> = loaded
            .unreadable
            .iter()
            .flat_map(|bad| [Mode::Interp, Mode::Jit].map(|mode| bad.result(mode)))
            .collect();
        let got: Vec<(&str, Option<u32>, Status)> = results
            .iter()
            .map(|r| (r.name.as_str(), r.id, r.status))
            .collect();
        assert_eq!(
            got,
            [
                ("bad-operand", Some(1), Status::Error),
                ("bad-operand", Some(1), Status::Error)
            ]
        );
        assert!(results[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("bad-operand.data:4:10: expected a register")));
        // The same file among our own suites is refused: there is no `--suites-dir` to point
        // elsewhere, so this is runner's test (cases::tests::a_malformed_case_of_ours_...).
        // What that does to the exit: engine::tests::bad_input_exits_2_once_the_rest_ran.
    }

    /// `Test::new` is `test --arch A` as clap reads it: the defaults are written twice, and
    /// this keeps them one.
    #[test]
    fn new_has_the_command_line_defaults() {
        for arch in runner::arch::Arch::ALL {
            let argv = ["cargo xtask", "test", "--arch", arch.name()];
            let Command::Test(parsed) = Xtask::try_parse_from(argv).expect("valid").command else {
                unreachable!("a test command")
            };
            assert_eq!(format!("{:?}", Test::new(arch)), format!("{parsed:?}"));
        }
    }

    /// The committed list of known differences reads, and a named one that is missing is
    /// refused before anything runs.
    #[test]
    fn the_known_differences_are_read_before_any_guest() {
        let known = test(&[])
            .known_differences()
            .expect("the committed list reads");
        assert!(known.entries.iter().any(|e| e.case == "callx"));
        let missing = test(&["--known-differences", "/nonexistent/known.yaml"])
            .known_differences()
            .expect_err("a named file must be there");
        assert!(
            missing.downcast_ref::<UsageError>().is_some(),
            "{missing:#}"
        );
    }
}
