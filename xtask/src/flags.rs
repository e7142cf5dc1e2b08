//! The command line of `cargo xtask`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use runner::arch::Arch;
use runner::diff::Class;
use runner::model::{Mode, SuiteName};
use runner::plan::{Filter, Selection};
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
    /// Run generated programs (random, verifier-acceptable, from --seed) under the
    /// interpreter, the JIT and the hardened JIT in guests, check each against the host's
    /// reference interpreter, and minimise every disagreement into a ready-to-commit case.
    Fuzz(Box<FuzzCmd>),
    /// Measure the harness on this machine: parse throughput, boot to first test, --jobs 1
    /// against --jobs 2, overhead over bare QEMU. Prints a Markdown table.
    Bench(Bench),
    /// Work with reports: `diff` one against a baseline or another run, `bless` one as the
    /// baseline, `merge` the reports of a sharded run.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Run the suites over a series of kernel revisions (Debian's packaged ones, or a range
    /// of a tree), keep each run in a history, and show every test that changed, pinned on
    /// the first revision that shows it (track.md, track.json, track.html). With --bisect,
    /// find the commit that changed one test.
    Track(Box<TrackCmd>),
    /// Parse a recorded console log (console.log of an earlier run) into a report.
    Replay(Replay),
}

#[derive(Args, Debug, Clone)]
pub struct TrackCmd {
    /// Guest architectures, comma-separated (one with --bisect).
    #[arg(long, value_delimiter = ',', required = true)]
    pub arch: Vec<Arch>,

    /// Debian's packaged kernels, by line or ABI, comma-separated (6.1.0-47,6.1.0-50, or
    /// 6.1,6.12,sid across lines); one the archive lacks for an arch is skipped with a note.
    #[arg(long, value_delimiter = ',', value_name = "LINE|ABI", conflicts_with_all = ["revs", "bisect"])]
    pub debian: Vec<String>,

    /// The tree whose revisions --revs and --bisect build.
    #[arg(long, value_name = "DIR")]
    pub kernel_source: Option<PathBuf>,

    /// Revisions of --kernel-source, `A..B`: A, every --step-th commit after it on the first
    /// parent line, and B.
    #[arg(long, value_name = "A..B", requires = "kernel_source")]
    pub revs: Option<String>,

    /// With --revs: build and run every STEP-th commit.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub step: u32,

    /// Find the first commit between --good and --bad of --kernel-source where TEST stops
    /// passing. TEST is `SUITE NAME [MODE]` as track.md and diffs print it, e.g.
    /// `test_bpf JMP32_JLT_K: Small immediate [jit]` (the mode defaults to jit).
    #[arg(long, value_name = "TEST", requires_all = ["good", "bad", "kernel_source"])]
    pub bisect: Option<String>,

    /// With --bisect: a revision where TEST passes.
    #[arg(long, value_name = "REV")]
    pub good: Option<String>,

    /// With --bisect: a later revision where it does not.
    #[arg(long, value_name = "REV")]
    pub bad: Option<String>,

    /// The history: one run per (arch, flavour, revision). Default: reports/history.
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,

    /// Where track.md, track.json and track.html go. Default: the history's directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Run revisions the history has already again, replacing their entries.
    #[arg(long)]
    pub rerun: bool,

    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Guests to run at once for each revision. Default: the host's cores.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// For nightly runs: run each failing test once more, so that a flaky test is marked as
    /// such rather than seen as a regression.
    #[arg(long)]
    pub retry_failures: bool,

    /// Where downloaded and built kernels are kept.
    /// Default: $XDG_CACHE_HOME/bpf-jit-harness or ~/.cache/bpf-jit-harness.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,

    /// Never install missing host tools; say what to install instead.
    #[arg(long)]
    pub no_install: bool,
}

#[derive(Args, Debug)]
pub struct FuzzCmd {
    #[arg(long)]
    pub arch: Arch,

    /// The kernel, as `test --kernel` takes it. Default: the arch's default kernel.
    #[arg(long, value_parser = kernel_as_given)]
    pub kernel: Option<String>,

    /// Patches to build the kernel with (as `test --patch`): a planted bug, say.
    #[arg(long, value_name = "FILE")]
    pub patch: Vec<PathBuf>,

    /// The seed of the programs: the same seed gives the same programs on every machine.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// The index of the first program in the seed's stream: `--start 2093 --count 1` runs a
    /// finding's program again.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub start: u64,

    /// Stop after this many programs.
    #[arg(long, value_name = "N", conflicts_with = "time")]
    pub count: Option<u64>,

    /// Stop starting batches after this long (`10m`, `90s`). Default, without --count: 10m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub time: Option<std::time::Duration>,

    /// Programs per batch: one test run, split over the guests.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,

    /// The slots of a program's body, `MIN..MAX` (log-uniform between).
    #[arg(long, default_value = "4..400", value_parser = parse_len)]
    pub len: std::ops::RangeInclusive<usize>,

    /// The instruction set: `v4` adds sdiv, smod, movsx, ldsx, bswap and gotol (Linux 6.6+);
    /// `auto` asks the kernel first, with one ISA v4 program.
    #[arg(long, value_enum, default_value_t = Isa::Auto)]
    pub isa: Isa,

    /// Execution modes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "interp,jit,jit-hardened")]
    pub mode: Vec<runner::model::Mode>,

    /// Seconds without a program's result before a guest counts as hung: a program runs in
    /// milliseconds, and every candidate of a hang's minimising that still hangs costs this.
    #[arg(long, default_value_t = 20)]
    pub silence_timeout: u64,

    /// Findings to minimise (each takes guest runs); the others are written as found.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub minimise: usize,

    /// Guests to run at once. Default: the host's cores.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,

    /// The run directory. Default: reports/runs/fuzz-ARCH-TIME.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Where downloaded and built kernels are kept.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// Which instruction set `fuzz` generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Isa {
    Auto,
    V3,
    V4,
}

/// `MIN..MAX` slots.
fn parse_len(text: &str) -> Result<std::ops::RangeInclusive<usize>, String> {
    let (lo, hi) = text
        .split_once("..")
        .ok_or_else(|| format!("`{text}` is not MIN..MAX"))?;
    let lo: usize = lo.parse().map_err(|_| format!("`{lo}` is not a number"))?;
    let hi: usize = hi
        .trim_start_matches('=')
        .parse()
        .map_err(|_| format!("`{hi}` is not a number"))?;
    if lo == 0 || lo > hi {
        return Err(format!("`{text}`: MIN must be at least 1 and at most MAX"));
    }
    Ok(lo..=hi)
}

#[derive(Args, Debug)]
pub struct Bench {
    /// The architecture of the --jobs and bare-QEMU measures.
    #[arg(long, default_value = "mips64el")]
    pub arch: Arch,

    /// The kernel of the --jobs and bare-QEMU measures, as `test --kernel` takes it (e.g.
    /// debian:sid for the newest line). Default: the arch's default kernel.
    #[arg(long, value_parser = kernel_as_given)]
    pub kernel: Option<String>,

    /// Rounds of the full-suite runs (--jobs 1, --jobs 2, bare QEMU), interleaved.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,

    /// The measures to take, comma-separated. Default: all.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "parse,first,jobs,memory,fuzz"
    )]
    pub part: Vec<BenchPart>,
}

/// A group of `bench`'s measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchPart {
    /// The console parser's throughput on recorded runs.
    Parse,
    /// Boot to the first test, on every arch and kernel line.
    First,
    /// The kernel's suites with one and two guests, and bare QEMU.
    Jobs,
    /// Peak memory per guest, the template's size and restore, per arch and kernel line.
    Memory,
    /// `fuzz`'s programs per second and acceptance, per mode, x86_64 and mips64el.
    Fuzz,
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
#[derive(Args, Debug, Clone, Default)]
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
#[derive(Args, Debug, Clone, Default)]
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
    /// Build the kernel from this tree (as it is, or at --rev); without it, the kernel is
    /// built from Debian's linux-source-6.1 (or the --kernel linux-source-SERIES named).
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
            source: match &self.kernel_source {
                Some(dir) => crate::kbuild::Source::Tree(dir.clone()),
                None => Default::default(),
            },
            rev: self.rev.clone(),
            patches: self.patch.clone(),
            fragments: self.config_fragment.clone(),
        }
    }
}

/// `cargo xtask kernel`: build a kernel, or look after the built ones.
#[derive(Args, Debug)]
pub struct KernelCmd {
    /// Guest architecture: x86_64, mips64el, mipsel, mips or mips64r6el.
    #[arg(long, required_unless_present_any = ["list", "prune"])]
    pub arch: Option<Arch>,

    /// Debian's kernel source to build: linux-source-6.1 (the default), linux-source-6.12
    /// or linux-source-7.2, optionally pinned (linux-source-7.2=7.2.13-1).
    #[arg(
        long,
        value_name = "linux-source-SERIES",
        conflicts_with = "kernel_source"
    )]
    pub kernel: Option<crate::lines::SourcePackage>,

    #[command(flatten)]
    pub build: BuildArgs,

    /// Configure only: allnoconfig plus the fragments, every line checked against the
    /// resolved .config, which is printed; nothing is built.
    #[arg(long)]
    pub config_only: bool,

    /// List the kernels built into the cache.
    #[arg(long, conflicts_with = "prune")]
    pub list: bool,

    /// Remove built kernels but the newest --keep of each arch, and the worktrees and build
    /// directories of trees that are gone (every build removes those too).
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
    /// Guest architecture: x86_64, mips64el, mipsel, mips or mips64r6el.
    #[arg(long)]
    pub arch: Arch,

    /// The kernel: `debian:LINE` (6.1, 6.12, trixie, sid) or `debian:ABI` (e.g.
    /// debian:6.1.0-50, debian:6.12.95+deb12) for one of Debian's packaged kernels,
    /// `linux-source` for Debian's linux-source-6.1 built here with images/kconfig/
    /// (`linux-source-6.12`, `linux-source-7.2` for the newer lines' sources, `=VERSION` to
    /// pin one), or a directory holding a kernel image, its config and test_bpf.ko.
    /// Default: the 6.1 line's pinned kernel (x86_64, mips64el), linux-source (mipsel, mips,
    /// mips64r6el).
    #[arg(long)]
    pub kernel: Option<KernelSpec>,

    #[command(flatten)]
    pub selection: SelectionArgs,

    /// Run every bpf_conformance `.data` file of this directory, unchanged, each under its
    /// own name (with no --suite, only these). A file that cannot be read is an `error`
    /// result naming its line and column; the others run, and the run exits 2.
    #[arg(long, value_name = "DIR")]
    pub conformance_dir: Option<PathBuf>,

    /// The reviewed list of conformance cases a kernel refuses or does otherwise by design,
    /// each a `skip` with its reason when it does not pass. Default:
    /// suites/known-differences.yaml.
    #[arg(long, value_name = "FILE")]
    pub known_differences: Option<PathBuf>,

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

    /// Memory per guest, in MiB. Default: the arch's, measured for the kernel's suites and
    /// the harness's own (docs/speed.md, "Guest memory"); a kernel of your own may need more.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(16..))]
    pub memory: Option<u32>,

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

    /// Boot every guest. By default a guest that only loads test modules starts from a
    /// snapshot of one booted once per kernel (kept in the cache).
    #[arg(long)]
    pub cold_boot: bool,

    #[command(flatten)]
    pub gate: GateArgs,

    /// Cases handed over by another verb (`fuzz`) instead of the suites': the guests run
    /// only these.
    #[arg(skip)]
    pub generated: Option<Vec<runner::cases::Case>>,
}

/// Which tests to run, and how: `--suite`, `--mode`, `--filter`, a [`Selection`].
#[derive(Args, Clone, Debug)]
pub struct SelectionArgs {
    /// Suites to run, comma-separated: the kernel's JIT suite (test_bpf, test_tail_calls,
    /// test_skb_segment) and the harness's own (conformance, verifier, xdp).
    /// Default: the kernel's three.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "SUITE",
        value_parser = SuiteName::selectable
    )]
    pub suite: Vec<SuiteName>,

    /// Execution modes: interp (bpf_jit_enable=0), jit, jit-hardened (bpf_jit_harden=2).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "MODE",
        default_value = "jit"
    )]
    pub mode: Vec<Mode>,

    /// Cut one suite down: a test number (42), an inclusive range (10-20) or an exact test
    /// name (`name:` forces a name that looks like a number). With no --suite, test_bpf.
    /// In the harness's own suites a number is a case's position (from 0) in the suite.
    #[arg(long, value_name = "TESTS")]
    pub filter: Option<Filter>,
}

impl SelectionArgs {
    /// The selection these flags make.
    pub fn selection(&self) -> Selection {
        Selection::from(self.clone())
    }
}

impl From<SelectionArgs> for Selection {
    fn from(args: SelectionArgs) -> Selection {
        let SelectionArgs {
            suite,
            mode,
            filter,
        } = args;
        Selection {
            suite,
            mode,
            filter,
        }
    }
}

#[derive(Args, Debug)]
pub struct Replay {
    /// The console log, raw bytes as QEMU wrote them.
    pub console: PathBuf,
    /// The guest architecture the log came from.
    #[arg(long)]
    pub arch: Arch,
    /// The plan the guest ran: must match the run that recorded the log.
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Where the kernel came from, for the report.
    #[arg(long, default_value = "recorded")]
    pub source: String,
    /// Write report.json into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A `--kernel` as written, once `test` would take it.
fn kernel_as_given(text: &str) -> Result<String, String> {
    text.parse::<KernelSpec>().map(|_| text.to_owned())
}
