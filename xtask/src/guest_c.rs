//! Builds the guest's C programs (`images/init.c`, `images/agent/agent.c`) for a guest
//! architecture, once per source and compiler; and, with [`Clang`], the C programs of the
//! harness's own cases (suites/xdp), as BPF objects.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use runner::arch::Arch;
use xshell::{cmd, Shell};

use crate::project_root;
use crate::tools::{self, Install, Tool};

/// Flags for every build: static, because the guest has no C library; warnings are errors so
/// that a cross compiler's complaint (byte order, word size) is never missed.
const CFLAGS: [&str; 6] = [
    "-static",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-std=gnu11",
];

/// A program that runs inside the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// The guest's PID 1: mounts, sysctls, module loads and the `harness: ` protocol.
    Init,
    /// The agent that runs the harness's own cases (`images/agent/PROTOCOL.md`).
    Agent,
}

impl Program {
    /// Its source, relative to the project root.
    fn source(self) -> &'static str {
        match self {
            Program::Init => "images/init.c",
            Program::Agent => "images/agent/agent.c",
        }
    }

    /// The cache directory under which each arch's binary is kept, and the binary's name.
    fn cache_names(self) -> (&'static str, &'static str) {
        match self {
            Program::Init => ("init", "init"),
            Program::Agent => ("agent", "bpf-agent"),
        }
    }
}

/// Returns `program` built for `arch`, compiling it if the source or the compiler changed.
pub fn build(
    sh: &Shell,
    arch: Arch,
    cache: &Path,
    install: Install,
    program: Program,
) -> anyhow::Result<PathBuf> {
    let toolchain = arch.toolchain();
    tools::ensure(
        &[Tool {
            program: toolchain.cc,
            packages: toolchain.packages,
        }],
        install,
    )?;
    let source_path = project_root().join(program.source());
    let source = fs::read_to_string(&source_path)
        .with_context(|| format!("cannot read {}", source_path.display()))?;
    let cc = toolchain.cc;
    let version = cmd!(sh, "{cc} --version")
        .quiet()
        .read()
        .with_context(|| format!("cannot run {cc}"))?;
    // The key is the whole input: compiler, flags and source, kept beside the binary.
    let key = format!("{version}\n{}\n{source}", CFLAGS.join(" "));
    let (dir_name, name) = program.cache_names();
    let dir = cache.join(dir_name).join(arch.name());
    let (binary, key_path) = (dir.join(name), dir.join(format!("{name}.key")));
    let built = || binary.is_file() && fs::read_to_string(&key_path).is_ok_and(|k| k == key);
    if built() {
        return Ok(binary);
    }
    // The binary and its key are two files: one build at a time writes them.
    let _lock = crate::cache::Lock::acquire(
        cache,
        &format!("{dir_name}/{}/{name}", arch.name()),
        &format!("building {name} for {arch}"),
    )?;
    if built() {
        return Ok(binary);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let staged = tempfile::NamedTempFile::new_in(&dir)?.into_temp_path();
    let staged_path = staged.to_path_buf();
    let output = cmd!(sh, "{cc} {CFLAGS...} -o {staged_path} {source_path}")
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("cannot run {cc}"))?;
    if !output.status.success() {
        bail!(
            "{cc} failed to build {}:\n{}",
            source_path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    staged
        .persist(&binary)
        .with_context(|| format!("cannot write {}", binary.display()))?;
    fs::write(&key_path, key).with_context(|| format!("cannot write {}", key_path.display()))?;
    Ok(binary)
}

/// clang, the C compiler of the cases' BPF programs (`runner::cases::load` reads the objects).
pub struct Clang;

impl runner::cases::CCompiler for Clang {
    fn compile(&self, source: &Path, big_endian: bool, object: &Path) -> Result<(), String> {
        let target = if big_endian { "bpfeb" } else { "bpfel" };
        let output = Command::new("clang")
            .args(["-O2", "-g0", "-Wall", "-Werror", "-target", target, "-c"])
            .arg(source)
            .arg("-o")
            .arg(object)
            .output()
            .map_err(|e| {
                format!("cannot run clang ({e}): install it, e.g. `apt-get install clang`")
            })?;
        if !output.status.success() {
            return Err(format!(
                "clang failed:\n{}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(())
    }
}
