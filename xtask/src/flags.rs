//! The command line of `cargo xtask`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use runner::arch::Arch;
use runner::cli::Selection;
use runner::report::ShardId;

use crate::kernel::KernelSpec;

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    about = "BPF JIT and verifier test harness",
    version
)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Boot a kernel for ARCH under QEMU, run the kernel's JIT suite and write a report.
    Test(Test),
    /// Compare two runs (e.g. the same cases on x86_64 and mips64el): every result whose
    /// status differs. Exit status 1 when any does.
    Compare(Compare),
    /// Measure the harness on this machine: parse throughput, boot to first test, --jobs 1
    /// against --jobs 2, overhead over bare QEMU. Prints a Markdown table.
    Bench(Bench),
    /// Work with reports: `merge` joins the reports of a sharded run.
    #[command(subcommand)]
    Report(ReportCommand),
}

#[derive(Args, Debug)]
pub struct Bench {
    /// The architecture of the --jobs and bare-QEMU measures.
    #[arg(long, default_value = "mips64el")]
    pub arch: Arch,

    /// Rounds of the full-suite runs (--jobs 1, --jobs 2, bare QEMU), interleaved.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Join the reports of every shard of a run (`--shard K/N`) into the report one unsharded
    /// run writes. Exit status as `test` would give for the whole run.
    Merge(Merge),
}

#[derive(Args, Debug)]
pub struct Merge {
    /// Each shard's run directory or report.json.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Where the merged report goes: a directory (created if need be) for its report.json, or
    /// a path ending in `.json`.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct Compare {
    /// A run's directory or its report.json.
    pub a: PathBuf,
    /// Another run's directory or report.json.
    pub b: PathBuf,
}

#[derive(Args, Debug)]
pub struct Test {
    /// Guest architecture: x86_64 or mips64el.
    #[arg(long)]
    pub arch: Arch,

    /// The kernel: `debian:ABI` (e.g. debian:6.1.0-50) for one of Debian's packaged kernels,
    /// or a directory holding a kernel image, its config and test_bpf.ko.
    /// Default: the pinned Debian kernel of the architecture.
    #[arg(long)]
    pub kernel: Option<KernelSpec>,

    #[command(flatten)]
    pub selection: Selection,

    /// Run every bpf_conformance `.data` file of this directory, unchanged (with no --suite,
    /// only these).
    #[arg(long, value_name = "DIR")]
    pub conformance_dir: Option<PathBuf>,

    /// Where the report goes. Default: reports/runs/ARCH-TIMESTAMP.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Where downloaded kernels and packages are kept between runs.
    /// Default: $XDG_CACHE_HOME/bpf-jit-harness or ~/.cache/bpf-jit-harness.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,

    /// Never install missing host tools; say what to install instead.
    #[arg(long)]
    pub no_install: bool,

    /// For testing the harness itself: crash the guest kernel (sysrq-c) this many seconds
    /// after its init starts.
    #[arg(long, value_name = "SECS")]
    pub inject_panic_after: Option<u32>,

    /// Guests to run at once. Default: the host's cores.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// Run only part K of N of the selection (e.g. 2/4), cut the same way on every machine,
    /// for a CI job matrix; `cargo xtask report merge` joins the parts' reports.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<ShardId>,

    /// Seconds without progress (a test's verdict, a protocol line, agent output), once
    /// booted, before a guest counts as hung, however much else the console prints.
    #[arg(long, default_value_t = 120)]
    pub silence_timeout: u64,
}
