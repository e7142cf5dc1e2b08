//! The guest image: an initramfs with the static init built from `images/init.c`, the kernel's
//! test_bpf.ko, the run's plan and, when the plan needs it, the agent and its bundle.

use std::fs;
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::elf;
use crate::initramfs::Initramfs;
use crate::plan::Plan;
use anyhow::Context;

use crate::kernel::Kernel;

/// The agent and what it runs.
pub struct AgentFiles<'a> {
    pub binary: &'a Path,
    pub bundle: String,
}

/// Writes the image for one guest to `dest`.
pub fn build(
    arch: Arch,
    init: &Path,
    kernel: &Kernel,
    plan: &Plan,
    agent: Option<AgentFiles<'_>>,
    dest: &Path,
) -> anyhow::Result<()> {
    let mut image = base(arch, init, kernel)?;
    if let Some(agent) = agent {
        add_agent(&mut image, arch, agent.binary)?;
        image.file("agent/bundle", 0o644, agent.bundle.into_bytes());
    }
    image.file("plan", 0o644, plan.to_string().into_bytes());
    if let Some(seconds) = plan.inject_panic_after_s {
        image.file("inject-panic", 0o644, format!("{seconds}\n").into_bytes());
    }
    write(image, dest)
}

/// Writes the image of a snapshot's guest to `dest`: no plan; its init waits for one on the
/// console (`snapshot.rs`). With `agent`, the agent too, without a bundle.
pub fn template(
    arch: Arch,
    init: &Path,
    kernel: &Kernel,
    agent: Option<&Path>,
    dest: &Path,
) -> anyhow::Result<()> {
    let mut image = base(arch, init, kernel)?;
    if let Some(binary) = agent {
        add_agent(&mut image, arch, binary)?;
    }
    image.file("plan-from-console", 0o644, Vec::new());
    write(image, dest)
}

fn add_agent(image: &mut Initramfs, arch: Arch, binary: &Path) -> anyhow::Result<()> {
    elf::check_file(binary, arch)?;
    let read = fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    image.file("bin/bpf-agent", 0o755, read);
    Ok(())
}

/// What every image holds: init, test_bpf.ko and the modules the agent's cases need.
fn base(arch: Arch, init: &Path, kernel: &Kernel) -> anyhow::Result<Initramfs> {
    let mut image = Initramfs::new();
    let extra = kernel.extra_modules.iter().map(PathBuf::as_path);
    for binary in [init, kernel.test_bpf.as_path()].into_iter().chain(extra) {
        elf::check_file(binary, arch)?;
    }
    for module in &kernel.extra_modules {
        let name = module
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data = fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
        image.file(&format!("lib/extra/{name}"), 0o644, data);
    }
    let read = |p: &Path| fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    image
        .dir("proc")
        .dir("sys")
        .char_device("dev/console", 5, 1)
        .file("init", 0o755, read(init)?)
        .file("test_bpf.ko", 0o644, read(&kernel.test_bpf)?);
    Ok(image)
}

fn write(image: Initramfs, dest: &Path) -> anyhow::Result<()> {
    image
        .write_file(dest)
        .with_context(|| format!("cannot write the guest image {}", dest.display()))
}
