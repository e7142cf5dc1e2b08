//! `cargo xtask test`: fetch the kernel, build the image, boot it, write the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use runner::agent::AgentOutput;
use runner::cases;
use runner::plan::Plan;
use runner::qemu::{Accel, QemuConfig};
use runner::report::{render_summary, AgentPass, KernelInfo, Mode, Report};
use runner::session::{self, Timeouts};
use xshell::Shell;

use crate::flags::Test;
use crate::kernel::{Kernel, KernelSpec};
use crate::progress::Reporter;
use crate::tools::{self, Install, Tool};
use crate::{agent, cache, image, project_root, UsageError};

/// Everything a guest needs from the host, fetched or built.
struct Inputs {
    kernel: Kernel,
    busybox: PathBuf,
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
        let arch = self.arch;
        let (mut plan, cases) = self.plan_and_cases()?;
        let modes = self.selection.mode.clone();
        let inputs = self.fetch_inputs(&plan)?;
        let out = match &self.out {
            Some(out) => out.clone(),
            None => default_out_dir(arch),
        };
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create the output directory {}", out.display()))?;

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
        let scratch = tempfile::TempDir::new().context("cannot create a temporary directory")?;
        let initrd = scratch.path().join("initramfs.cpio.gz");
        let agent_files = inputs.agent.as_deref().map(|binary| image::AgentFiles {
            binary,
            bundle: runner::agent::bundle(&cases, &modes),
        });
        image::build(
            arch,
            &inputs.busybox,
            &inputs.kernel,
            &plan,
            agent_files,
            &initrd,
        )
        .map_err(UsageError::wrap)?;
        let config = QemuConfig {
            arch,
            accel: Accel::detect(arch),
            kernel: inputs.kernel.image.clone(),
            initrd,
            append: String::new(),
            agent_output: plan.agent.then(|| scratch.path().join("agent.out")),
        };
        let outcome = self.boot(&config, &plan, &inputs.kernel, &out)?;

        let (interrupted, invalid_selection) = (outcome.interrupted, outcome.invalid_selection);
        let mut results = outcome.results;
        let mut errors = outcome.errors;
        let mut timing = outcome.timing;
        if plan.agent {
            let agent_path = out.join("agent.log");
            runner::report::write_atomically(&agent_path, &outcome.agent_output)
                .with_context(|| format!("cannot write {}", agent_path.display()))?;
            let output = runner::agent::parse_output(&outcome.agent_output);
            timing.agent = agent_passes(&output, &modes, cases.len());
            errors.extend(agent_problems(
                &output,
                outcome.agent_status,
                &modes,
                outcome.complete,
            ));
            results.extend(runner::agent::results(
                &cases,
                &modes,
                &output,
                arch,
                outcome.agent_stop.as_ref(),
            ));
        }
        let report = Report::new(
            KernelInfo {
                arch,
                release: outcome.release,
                source: inputs.kernel.source.clone(),
            },
            results,
            errors,
            outcome.complete,
            timing,
        );
        let report_path = out.join("report.json");
        report
            .write(&report_path)
            .with_context(|| format!("cannot write {}", report_path.display()))?;
        print!("{}", render_summary(&report));
        println!("report: {}", report_path.display());
        Ok(if interrupted {
            130
        } else if invalid_selection {
            crate::EXIT_USAGE
        } else {
            report.exit_code()
        })
    }

    /// What the guest runs: module loads from the selection, and the agent's cases.
    fn plan_and_cases(&self) -> anyhow::Result<(Plan, Vec<cases::Case>)> {
        let mut plan = self.selection.plan().map_err(UsageError::wrap)?;
        plan.inject_panic_after_s = self.inject_panic_after;
        if self.conformance_dir.is_some() {
            plan.agent = true;
            if self.selection.suite.is_empty() && self.selection.filter.is_none() {
                // `--conformance-dir` alone runs just that directory.
                plan.loads.clear();
            }
        }
        let agent_suites = self.selection.agent_suites();
        if agent_suites.contains(&cases::AgentSuite::Xdp) {
            // suites/xdp holds programs written in C.
            let clang = Tool {
                program: "clang",
                packages: &["clang"],
            };
            tools::ensure(&Shell::new()?, &[clang], self.install())?;
        }
        let cases = if plan.agent {
            cases::load(
                &project_root().join("suites"),
                &agent_suites,
                self.conformance_dir.as_deref(),
                self.arch.elf().endian == runner::arch::Endian::Big,
            )
            .map_err(UsageError::wrap)?
        } else {
            Vec::new()
        };
        Ok((plan, cases))
    }

    /// QEMU, the kernel, busybox and (when the plan needs it) the agent, from the cache.
    fn fetch_inputs(&self, plan: &Plan) -> anyhow::Result<Inputs> {
        let sh = Shell::new()?;
        let (arch, install) = (self.arch, self.install());
        let qemu = arch.qemu();
        let tool = Tool {
            program: qemu.binary,
            packages: &[qemu.package],
        };
        tools::ensure(&sh, &[tool], install)?;
        let cache = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => cache::default_dir()?,
        };
        let _lock = cache::Lock::acquire(&cache)?;
        let spec = self.kernel.clone().unwrap_or_else(|| KernelSpec::Debian {
            abi: crate::kernel::default_debian_abi(arch).to_owned(),
        });
        Ok(Inputs {
            kernel: spec.resolve(&sh, arch, &cache)?,
            busybox: image::busybox(&sh, arch, &cache)?,
            agent: match plan.agent {
                true => Some(agent::build(&sh, arch, &cache, install)?),
                false => None,
            },
        })
    }

    /// Boots the guest and follows it to the end, writing `console.log` into `out`. Ctrl-C and
    /// SIGTERM end the guest early.
    fn boot(
        &self,
        config: &QemuConfig,
        plan: &Plan,
        kernel: &Kernel,
        out: &Path,
    ) -> anyhow::Result<session::Outcome> {
        let cancel = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&cancel))
                .context("cannot install the signal handler")?;
        }
        let timeouts = Timeouts {
            boot: Duration::from_secs(self.arch.qemu().boot_timeout_secs),
            silence: Duration::from_secs(self.silence_timeout),
        };
        let mut console = tempfile::NamedTempFile::new_in(out)
            .with_context(|| format!("cannot create a file in {}", out.display()))?;
        runner::report::publish_mode(console.as_file())?;
        let mut reporter = Reporter::new(&format!("{} ({})", self.arch, kernel.source));
        let outcome = session::run(
            config,
            plan,
            timeouts,
            console.as_file_mut(),
            &cancel,
            &mut |event| reporter.update(event),
        )
        .context("cannot boot the guest")?;
        reporter.finish();
        let console_path = out.join("console.log");
        console
            .persist(&console_path)
            .with_context(|| format!("cannot write {}", console_path.display()))?;
        Ok(outcome)
    }
}

/// The agent's passes, timed in the guest.
fn agent_passes(output: &AgentOutput, modes: &[Mode], cases: usize) -> Vec<AgentPass> {
    output
        .mode_ns
        .iter()
        .filter_map(|(&index, &ns)| {
            Some(AgentPass {
                mode: *modes.get(index)?,
                cases,
                seconds: ns as f64 / 1e9,
            })
        })
        .collect()
}

/// `reports/runs/ARCH-YYYYMMDDTHHMMSSZ`: a new directory per run, so no run overwrites another.
fn default_out_dir(arch: runner::arch::Arch) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    project_root()
        .join("reports")
        .join("runs")
        .join(format!("{arch}-{stamp}"))
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
