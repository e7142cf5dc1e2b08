//! `cargo xtask test`: fetch the kernel, cut the selection into shards, boot a guest per
//! shard (see `guests.rs`), write the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use runner::arch::Arch;
use runner::cases;
use runner::durations::Durations;
use runner::known_differences::KnownDifferences;
use runner::model::{AgentSuite, TestResult};
use runner::plan::Plan;
use runner::qemu::QemuConfig;
use runner::report::{self, render_summary, KernelInfo, Report, Timing};
use runner::session::Timeouts;
use runner::shard::{self, Shard};
use xshell::Shell;

use crate::flags::Test;
use crate::gate::Gate;
use crate::guest_c::{self, Program};
use crate::guests::{self, GuestRun};
use crate::kernel::{Kernel, KernelSpec};
use crate::progress::Reporter;
use crate::snapshot::{self, Template};
use crate::tools::{self, Install, Tool};
use crate::{cache, image, project_root, signals, UsageError};

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

    pub fn run(self) -> anyhow::Result<u8> {
        // First of all: a Ctrl-C while kernels download still ends the run in order.
        let cancel = Arc::new(AtomicBool::new(false));
        signals::install(Arc::clone(&cancel))?;
        self.run_until(&cancel)
    }

    /// The run, ended in order (partial report, status 130) once `cancel` is set: for callers
    /// that run many and own the signal handling (`track`).
    pub fn run_until(self, cancel: &AtomicBool) -> anyhow::Result<u8> {
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
        let out = match &self.out {
            Some(out) => out.clone(),
            None => default_out_dir(arch),
        };
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create the output directory {}", out.display()))?;
        let _out_lock = cache::Lock::acquire_for_run(&out)?;

        // The module's own list of tests names those a crash or hang kept from printing.
        let module = std::fs::read(&inputs.kernel.test_bpf)
            .with_context(|| format!("cannot read {}", inputs.kernel.test_bpf.display()))?;
        match runner::module_tests::test_names(&module) {
            Ok(catalog) => plan.catalog = Some(catalog),
            Err(e) => eprintln!(
                "warning: cannot list the tests of {} ({e}); tests never reached are reported per suite",
                inputs.kernel.test_bpf.display()
            ),
        }
        // Per line of kernels: a 7.2 run is cut by 7.2's times.
        let flavour = kernel_info.flavour();
        let history_path = cache
            .join("durations")
            .join(format!("{arch}-{flavour}.json"));
        let history = Durations::read(&history_path).map_err(UsageError::wrap)?;
        let shards = self.shards(&plan, cases.len(), &flavour, history.as_ref())?;
        let jobs = self
            .jobs
            .map_or_else(default_jobs, usize::from)
            .min(shards.len())
            .max(1);

        let scratch = tempfile::TempDir::new().context("cannot create a temporary directory")?;
        let setup = guests::Setup {
            arch,
            kernel: &inputs.kernel,
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
        };
        let what = match jobs {
            1 => format!("{arch} ({})", inputs.kernel.source),
            n => format!("{arch} ({}) in {n} guests", inputs.kernel.source),
        };
        let reporter = Mutex::new(Reporter::new(&what));
        let started = Instant::now();
        let one_shard = shards.len() == 1;
        let guests = guests::run(&setup, shards, jobs, 1, cancel, &reporter);
        let retried = match self.retry_failures {
            true => retry(&setup, &guests, cancel, &reporter),
            false => Vec::new(),
        };
        let wall_s = started.elapsed().as_secs_f64();
        reporter
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .finish();

        let unreadable_results: Vec<TestResult> = unreadable
            .iter()
            .flat_map(|bad| modes.iter().map(|&mode| bad.result(mode)))
            .collect();
        let (mut report, applied) = assemble(
            &guests,
            &retried,
            unreadable_results,
            &known,
            arch,
            &inputs.kernel,
            wall_s,
        );
        report.shard = self.shard;
        report.started = Some(started_at);
        report.scope = Some(self.scope(&plan));
        gate.judge(&mut report);
        runner::outputs::write_all(&out, &report, &gate.fail_on)?;
        // Durations only matter to a cut into shards, where each shard runs in a freshly
        // started guest, and there some tests run slower than late in a long one (test_bpf's
        // "Staggered jumps" by a fifth on mips64el). So a run of one shard only adds tests
        // never timed; a run of several updates them all. A run that timed nothing (no guest
        // booted) leaves the file as it was.
        if guests.iter().any(|g| !g.durations.is_empty()) {
            let mut recorded = history.unwrap_or_default();
            for guest in &guests {
                match one_shard {
                    true => recorded.fill(&guest.durations),
                    false => recorded.update(&guest.durations),
                }
            }
            if let Err(e) = std::fs::create_dir_all(cache.join("durations"))
                .and_then(|()| recorded.write(&history_path))
            {
                eprintln!(
                    "warning: cannot record test durations in {}: {e}",
                    history_path.display()
                );
            }
        }
        print!("{}", render_summary(&report));
        if let Some(diff) = &report.diff {
            print!("{}", diff.render_text(&gate.fail_on));
        }
        for note in &applied.passed {
            eprintln!("note: {note}");
        }
        println!("report: {}", out.join("report.json").display());
        if !unreadable.is_empty() {
            eprintln!(
                "error: {} of the corpus's files cannot be read as cases; each is an `error` \
                 result, the rest ran:",
                unreadable.len()
            );
            for bad in &unreadable {
                eprintln!("  {}", bad.error);
            }
        }
        Ok(exit_status(
            guests.iter().chain(&retried).any(|g| g.interrupted),
            guests.iter().any(|g| g.invalid_selection) || !unreadable.is_empty(),
            || gate.exit_code(&report),
        ))
    }

    /// The shards this run's guests take: the whole plan cut into `--jobs` parts, or this
    /// machine's part of `--shard K/N` cut again.
    fn shards(
        &self,
        plan: &Plan,
        cases: usize,
        flavour: &str,
        history: Option<&Durations>,
    ) -> anyhow::Result<Vec<Shard>> {
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
            return Ok(shard::partition(plan, cases, catalog, durations, jobs));
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
        Ok(shard::partition(&mine, cases, catalog, durations, jobs))
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

    /// What this run selected, for the report.
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
                runner::agent::AgentStart::default(),
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
            ..QemuConfig::boot(self.arch, inputs.kernel.image.clone(), initrd)
        };
        // Started as the harness starts it: from the booted template, when it would.
        Ok(match &snapshot {
            Some(template) if !plan.agent => template.guest(&config, &plan),
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
            tools::ensure(&Shell::new()?, &[clang], self.install())?;
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
        tools::ensure(&sh, &[tool], install)?;
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

    /// The booted guest module-load guests start from (`None` when each boots), made once per
    /// kernel and image: this boots a guest, so it comes after every check of the input.
    fn snapshot(
        &self,
        plan: &Plan,
        inputs: &Inputs,
        cache: &Path,
    ) -> anyhow::Result<Option<Template>> {
        if self.cold_boot || plan.loads.is_empty() {
            return Ok(None);
        }
        let timeout = Duration::from_secs(self.arch.qemu().boot_timeout_secs);
        match snapshot::template(self.arch, &inputs.kernel, &inputs.init, cache, timeout) {
            Ok(template) => Ok(Some(template)),
            Err(e) => {
                eprintln!("warning: {e:#}; every guest boots instead");
                Ok(None)
            }
        }
    }
}

/// A finished run's exit status: 130 when interrupted; 2 when its input was at fault (a
/// selection the guest refused, corpus files that could not be read), once the rest ran and
/// the report was written; else the gate's.
fn exit_status(interrupted: bool, bad_input: bool, gate: impl FnOnce() -> u8) -> u8 {
    if interrupted {
        130
    } else if bad_input {
        crate::EXIT_USAGE
    } else {
        gate()
    }
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

/// Runs the failures of `guests` once more (`--retry-failures`), in one fresh guest.
fn retry(
    setup: &guests::Setup<'_>,
    guests: &[GuestRun],
    cancel: &AtomicBool,
    reporter: &Mutex<Reporter>,
) -> Vec<GuestRun> {
    let results: Vec<TestResult> = guests.iter().flat_map(|g| g.results.clone()).collect();
    let Some(retry) = runner::retry::plan(&results) else {
        return Vec::new();
    };
    if guests.iter().any(|g| g.interrupted) {
        return Vec::new();
    }
    let cases: Vec<cases::Case> = setup
        .cases
        .iter()
        .filter(|c| {
            let key = (c.suite, c.name.clone());
            retry.cases.contains(&key)
        })
        .cloned()
        .collect();
    let setup = guests::Setup {
        cases: &cases,
        inject_panic_after_s: None,
        ..*setup
    };
    guests::run(
        &setup,
        vec![retry.shard],
        1,
        guests.len() + 1,
        cancel,
        reporter,
    )
}

/// The run's report from its guests' results, with the failures that passed when `retried`
/// marked flaky, the `error` results of what could not run at all (`unreadable`), and the
/// known differences applied.
fn assemble(
    guests: &[GuestRun],
    retried: &[GuestRun],
    unreadable: Vec<TestResult>,
    known: &KnownDifferences,
    arch: Arch,
    kernel: &Kernel,
    wall_s: f64,
) -> (Report, runner::known_differences::Applied) {
    let mut results: Vec<TestResult> = guests.iter().flat_map(|g| g.results.clone()).collect();
    let again: Vec<TestResult> = retried.iter().flat_map(|g| g.results.clone()).collect();
    runner::retry::apply(&mut results, &again);
    results.extend(unreadable);
    report::canonical_order(&mut results);
    let kernel_info = KernelInfo {
        arch,
        release: guests.iter().find_map(|g| g.release.clone()),
        source: kernel.source.clone(),
        revision: kernel.revision.clone(),
        config_hash: kernel.config_hash.clone(),
    };
    let applied = known.apply(&kernel_info, &mut results);
    let errors = guests::errors_said_once(guests);
    let first = guests.first();
    let timing = Timing {
        boot_s: first.and_then(|g| g.timing.boot_s),
        to_first_test_s: first.and_then(|g| g.timing.to_first_test_s),
        total_s: wall_s,
        agent: guests.iter().flat_map(|g| g.agent_passes.clone()).collect(),
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
        let results: Vec<TestResult> = loaded
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
        assert_eq!(exit_status(false, true, || 0), 2);
        assert_eq!(exit_status(false, true, || 1), 2);
        assert_eq!(exit_status(true, true, || 1), 130);
        assert_eq!(exit_status(false, false, || 1), 1);
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
