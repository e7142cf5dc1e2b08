//! The command line of `cargo xtask`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use runner::arch::Arch;
use runner::cli::Selection;
use runner::diff::Class;
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
    Test(Box<Test>),
    /// Build a kernel from source for ARCH (Debian's linux-source-6.1 by default, or
    /// --kernel-source at --rev with --patch), or list and prune the built ones.
    Kernel(KernelCmd),
    /// Compare two runs (e.g. the same cases on x86_64 and mips64el): every result whose
    /// status differs. Exit status 1 when any does.
    Compare(Compare),
    /// Measure the harness on this machine: parse throughput, boot to first test, --jobs 1
    /// against --jobs 2, overhead over bare QEMU. Prints a Markdown table.
    Bench(Bench),
    /// Work with reports: `diff` one against a baseline or another run, `bless` one as the
    /// baseline, `merge` the reports of a sharded run.
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
    /// run writes, with all its files and the diff against the baseline. Exit status as
    /// `test` would give for the whole run.
    Merge(Merge),
    /// Every change from OLD to NEW, each in one class (regression, coverage-lost, fix,
    /// coverage-gained, new, removed, not-run). Exit status 1 when the gate fails.
    Diff(Diff),
    /// Accept a run as the baseline of its arch and kernel flavour (reports/baselines/),
    /// after reviewing its diff. Refused for an incomplete run, a shard, and under CI.
    Bless(Bless),
    /// One index.html of several runs side by side: a column per (arch, kernel, mode).
    Html(Html),
}

#[derive(Args, Debug)]
pub struct Html {
    /// The runs: their directories or report.json files, in the order of the columns.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The page to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// How a run is judged against its baseline.
#[derive(Args, Debug, Clone)]
pub struct GateArgs {
    /// The baseline to compare with. Default: reports/baselines/ARCH-FLAVOUR.yaml, where
    /// FLAVOUR names the line of kernels (e.g. debian-6.1-amd64); a run without one says so.
    #[arg(long, value_name = "FILE", conflicts_with = "no_baseline")]
    pub baseline: Option<PathBuf>,

    /// Compare with no baseline: any failing test fails the run.
    #[arg(long)]
    pub no_baseline: bool,

    #[command(flatten)]
    pub rules: GateRules,
}

/// What fails the gate.
#[derive(Args, Debug, Clone)]
pub struct GateRules {
    /// Change classes that fail the gate, comma-separated.
    /// Default: regression,coverage-lost.
    #[arg(long, value_delimiter = ',', value_name = "CLASS")]
    pub fail_on: Option<Vec<Class>>,

    /// The list of flaky tests whose changes do not fail the gate. Default:
    /// suites/quarantine.yaml.
    #[arg(long, value_name = "FILE")]
    pub quarantine: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct Diff {
    /// The old side: a baseline (.yaml), a run's directory or its report.json.
    pub old: PathBuf,
    /// The new side: a run's directory or its report.json.
    pub new: PathBuf,

    #[command(flatten)]
    pub rules: GateRules,
}

#[derive(Args, Debug)]
pub struct Bless {
    /// The runs to accept, as one baseline: their directories or report.json files. Several
    /// runs of one arch and kernel may each cover part (e.g. the kernel's suites in two
    /// modes, the harness's own in three).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where the baseline goes. Default: reports/baselines/ARCH-FLAVOUR.yaml.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
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

    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Args, Debug)]
pub struct Compare {
    /// A run's directory or its report.json.
    pub a: PathBuf,
    /// Another run's directory or report.json.
    pub b: PathBuf,
}

/// A kernel built from source.
#[derive(Args, Debug, Clone, Default)]
pub struct BuildArgs {
    /// Build the kernel from this tree (as it is, or at --rev); without it and without
    /// --kernel, mipsel and mips build Debian's linux-source-6.1.
    #[arg(long, value_name = "DIR")]
    pub kernel_source: Option<PathBuf>,

    /// A revision of --kernel-source to build, checked out in a worktree of the cache (the
    /// tree's own checkout is never touched).
    #[arg(long, value_name = "REV", requires = "kernel_source")]
    pub rev: Option<String>,

    /// A patch to apply on top (repeatable, in order); refused if it does not apply.
    #[arg(long, value_name = "FILE")]
    pub patch: Vec<PathBuf>,

    /// A Kconfig fragment to add to images/kconfig/'s (repeatable): e.g. KASAN for a run.
    #[arg(long, value_name = "FILE")]
    pub config_fragment: Vec<PathBuf>,
}

impl BuildArgs {
    pub fn spec(&self) -> crate::kbuild::BuildSpec {
        crate::kbuild::BuildSpec {
            source: self.kernel_source.clone(),
            rev: self.rev.clone(),
            patches: self.patch.clone(),
            fragments: self.config_fragment.clone(),
        }
    }
}

/// `cargo xtask kernel`: build a kernel, or look after the built ones.
#[derive(Args, Debug)]
pub struct KernelCmd {
    /// Guest architecture: x86_64, mips64el, mipsel or mips.
    #[arg(long, required_unless_present_any = ["list", "prune"])]
    pub arch: Option<Arch>,

    #[command(flatten)]
    pub build: BuildArgs,

    /// List the kernels built into the cache.
    #[arg(long, conflicts_with = "prune")]
    pub list: bool,

    /// Remove built kernels but the newest --keep of each arch.
    #[arg(long)]
    pub prune: bool,

    /// With --prune: how many to keep per arch.
    #[arg(long, default_value_t = 2)]
    pub keep: usize,

    /// Where built kernels are kept. Default: $XDG_CACHE_HOME/bpf-jit-harness or
    /// ~/.cache/bpf-jit-harness.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,

    /// Never install missing host tools; say what to install instead.
    #[arg(long)]
    pub no_install: bool,
}

#[derive(Args, Debug)]
pub struct Test {
    /// Guest architecture: x86_64, mips64el, mipsel or mips.
    #[arg(long)]
    pub arch: Arch,

    /// The kernel: `debian:ABI` (e.g. debian:6.1.0-50) for one of Debian's packaged kernels,
    /// `linux-source` for Debian's linux-source-6.1 built here with images/kconfig/, or a
    /// directory holding a kernel image, its config and test_bpf.ko.
    /// Default: the pinned Debian kernel (x86_64, mips64el), linux-source (mipsel, mips).
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

    #[command(flatten)]
    pub build: BuildArgs,

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

    /// For nightly runs: run each failing test once more, in a fresh guest; one that passes
    /// then is `pass`, marked flaky. A crash or a hang is never retried.
    #[arg(long)]
    pub retry_failures: bool,

    #[command(flatten)]
    pub gate: GateArgs,
}
