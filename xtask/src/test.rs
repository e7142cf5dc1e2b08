//! `cargo xtask test`: fetch the kernel, build the image, boot it, write the report.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use runner::qemu::{Accel, QemuConfig};
use runner::report::{render_summary, KernelInfo, Report};
use runner::session::{self, Timeouts};
use xshell::Shell;

use crate::flags::Test;
use crate::kernel::KernelSpec;
use crate::progress::Reporter;
use crate::tools::{self, Install, Tool};
use crate::{cache, image, project_root, UsageError};

impl Test {
    pub fn run(self) -> anyhow::Result<u8> {
        let plan = self.selection.plan().map_err(UsageError::wrap)?;
        let sh = Shell::new()?;
        let arch = self.arch;
        let qemu = arch.qemu();
        let install = if self.no_install {
            Install::Forbidden
        } else {
            Install::Allowed
        };
        tools::ensure(
            &sh,
            &[Tool {
                program: qemu.binary,
                package: qemu.package,
            }],
            install,
        )?;

        let cache = match &self.cache_dir {
            Some(dir) => dir.clone(),
            None => cache::default_dir()?,
        };
        let cache_lock = cache::Lock::acquire(&cache)?;
        let spec = self.kernel.clone().unwrap_or_else(|| KernelSpec::Debian {
            abi: crate::kernel::default_debian_abi(arch).to_owned(),
        });
        let kernel = spec.resolve(&sh, arch, &cache)?;
        let busybox = image::busybox(&sh, arch, &cache)?;
        drop(cache_lock);

        let out = match &self.out {
            Some(out) => out.clone(),
            None => default_out_dir(arch),
        };
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create the output directory {}", out.display()))?;
        let scratch = tempfile::TempDir::new().context("cannot create a temporary directory")?;
        let initrd = scratch.path().join("initramfs.cpio.gz");
        image::build(arch, &busybox, &kernel, &plan, &initrd).map_err(UsageError::wrap)?;

        let cancel = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&cancel))
                .context("cannot install the signal handler")?;
        }

        let config = QemuConfig {
            arch,
            accel: Accel::detect(arch),
            kernel: kernel.image.clone(),
            initrd,
            append: String::new(),
        };
        let timeouts = Timeouts {
            boot: Duration::from_secs(qemu.boot_timeout_secs),
            silence: Duration::from_secs(self.silence_timeout),
        };
        let mut console = tempfile::NamedTempFile::new_in(&out)
            .with_context(|| format!("cannot create a file in {}", out.display()))?;
        runner::report::publish_mode(console.as_file())?;
        let mut reporter = Reporter::new(&format!("{arch} ({})", kernel.source));
        let outcome = session::run(
            &config,
            &plan,
            timeouts,
            console.as_file_mut(),
            &cancel,
            &mut |event| reporter.update(event),
        )
        .context("cannot boot the guest")?;
        reporter.finish();

        let (interrupted, invalid_selection) = (outcome.interrupted, outcome.invalid_selection);
        let console_path = out.join("console.log");
        console
            .persist(&console_path)
            .with_context(|| format!("cannot write {}", console_path.display()))?;
        let report = Report::new(
            KernelInfo {
                arch,
                release: outcome.release,
                source: kernel.source.clone(),
            },
            outcome.results,
            outcome.errors,
            outcome.complete,
            outcome.timing,
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
