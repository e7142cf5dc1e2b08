//! The guest image: an initramfs with a static busybox, `images/init`, the kernel's
//! test_bpf.ko and the run's plan.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use runner::arch::Arch;
use runner::elf;
use runner::initramfs::Initramfs;
use runner::plan::Plan;
use xshell::Shell;

use crate::debian::{self, Apt};
use crate::kernel::Kernel;

/// The guest's PID 1, a busybox shell script (see the file for its protocol).
const INIT: &str = include_str!("../../images/init");

/// A static busybox for `arch`: Debian's `busybox-static`, fetched once into the cache.
pub fn busybox(sh: &Shell, arch: Arch, cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = cache.join("busybox").join(arch.debian_name());
    let path = dir.join("busybox");
    if path.is_file() {
        return Ok(path);
    }
    let apt = Apt::new(cache, arch.debian_name())?;
    let deb = apt.download(sh, "busybox-static")?;
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let staging = tempfile::NamedTempFile::new_in(&dir)?;
    let copied = debian::extract(&deb, |p| {
        (p == "bin/busybox").then(|| staging.path().to_owned())
    })?;
    if copied.is_empty() {
        anyhow::bail!("{} has no bin/busybox", deb.display());
    }
    staging
        .persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let _ = fs::remove_file(&deb);
    Ok(path)
}

/// The agent and what it runs.
pub struct AgentFiles<'a> {
    pub binary: &'a Path,
    pub bundle: String,
}

/// Writes the image for one guest to `dest`.
pub fn build(
    arch: Arch,
    busybox: &Path,
    kernel: &Kernel,
    plan: &Plan,
    agent: Option<AgentFiles<'_>>,
    dest: &Path,
) -> anyhow::Result<()> {
    let mut image = Initramfs::new();
    let extra = kernel.extra_modules.iter().map(PathBuf::as_path);
    for binary in [busybox, kernel.test_bpf.as_path()]
        .into_iter()
        .chain(extra)
    {
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
    if let Some(agent) = agent {
        elf::check_file(agent.binary, arch)?;
        let read = fs::read(agent.binary)
            .with_context(|| format!("cannot read {}", agent.binary.display()))?;
        image.file("bin/bpf-agent", 0o755, read).file(
            "agent/bundle",
            0o644,
            agent.bundle.into_bytes(),
        );
    }
    let read = |p: &Path| fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    image
        .dir("proc")
        .dir("sys")
        .char_device("dev/console", 5, 1)
        .file("bin/busybox", 0o755, read(busybox)?)
        .file("init", 0o755, INIT.as_bytes().to_vec())
        .file("test_bpf.ko", 0o644, read(&kernel.test_bpf)?)
        .file("plan", 0o644, plan.to_string().into_bytes());
    if let Some(seconds) = plan.inject_panic_after_s {
        image.file("inject-panic", 0o644, format!("{seconds}\n").into_bytes());
    }
    image
        .write_file(dest)
        .with_context(|| format!("cannot write the guest image {}", dest.display()))
}
