//! `cargo xtask bench`: the harness's speed on this machine, each figure beside the one it is
//! judged against, measured in one run (these machines are too noisy to compare runs made
//! apart). The runs compared are interleaved, round after round, and each figure is its best
//! round: noise on a shared machine only ever slows a run down.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use runner::arch::Arch;
use runner::engine::ExitKind;
use runner::model::{AgentSuite, Filter, Mode, Status, Suite, SuiteName};
use runner::plan::Plan;
use runner::report::Report;

use crate::flags::{Bench, BenchPart, FuzzCmd, Isa, Test};
use crate::project_root;

/// `test --arch ARCH [--kernel KERNEL]`.
fn test_of(arch: Arch, kernel: Option<&str>) -> anyhow::Result<Test> {
    let mut test = Test::new(arch);
    if let Some(kernel) = kernel {
        test.kernel = Some(kernel.parse().map_err(anyhow::Error::msg)?);
    }
    Ok(test)
}

/// The flags of a bench's `test` run of `kernel`, as a person would give them.
fn test_text(test: &Test, kernel: Option<&str>) -> String {
    let mut text = format!("test --arch {}", test.arch);
    let selection = &test.selection;
    if !selection.suite.is_empty() {
        let suites: Vec<String> = selection.suite.iter().map(|s| s.to_string()).collect();
        let modes: Vec<&str> = selection.mode.iter().map(|m| m.name()).collect();
        text += &format!(" --suite {} --mode {}", suites.join(","), modes.join(","));
    }
    if let Some(memory) = test.memory {
        text += &format!(" --memory {memory}");
    }
    if let Some(filter) = &test.selection.filter {
        text += &format!(" --filter {filter}");
    }
    if let Some(jobs) = test.jobs {
        text += &format!(" --jobs {jobs}");
    }
    if let Some(kernel) = kernel {
        text += &format!(" --kernel {kernel}");
    }
    if let Some(out) = &test.out {
        text += &format!(" --out {}", out.display());
    }
    text
}

/// MiB to MB: the and the tables' unit is the MB.
const MIB_IN_MB: f64 = 1.048_576;

/// The lines of kernels the per-line measures run on: Debian's on x86_64 and mips64el, then
/// the minimal ones built from linux-source-6.1 (built first if the cache has none yet).
const LINES: [(Arch, Option<&str>); 9] = [
    (Arch::X86_64, None),
    (Arch::Mips64el, None),
    (Arch::X86_64, Some("debian:6.12")),
    (Arch::Mips64el, Some("debian:6.12")),
    (Arch::X86_64, Some("debian:sid")),
    (Arch::X86_64, Some("linux-source")),
    (Arch::Mips64el, Some("linux-source")),
    (Arch::Mipsel, Some("linux-source")),
    (Arch::Mips, Some("linux-source")),
];

/// One row of the table.
struct Row {
    what: String,
    value: String,
    target: &'static str,
}

impl Row {
    fn new(what: String, value: String, target: &'static str) -> Row {
        Row {
            what,
            value,
            target,
        }
    }
}

impl Bench {
    pub fn run(self) -> anyhow::Result<u8> {
        let mut rows = Vec::new();
        if self.part.contains(&BenchPart::Parse) {
            rows.push(parse_throughput()?);
            eprintln!("bench: {} {}", rows[0].what, rows[0].value);
        }
        if self.part.contains(&BenchPart::First) {
            rows.extend(self.first_test()?);
        }
        let mut same = true;
        if self.part.contains(&BenchPart::Jobs) {
            let (jobs, agree) = self.jobs()?;
            rows.extend(jobs);
            same = agree;
        }
        if self.part.contains(&BenchPart::Memory) {
            rows.extend(self.memory()?);
        }
        if self.part.contains(&BenchPart::Fuzz) {
            rows.extend(self.fuzz()?);
        }
        print_table(&rows);
        Ok(if same { 0 } else { 1 })
    }

    /// Boot to the first test, on every line of [`LINES`].
    fn first_test(&self) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        for (arch, kernel) in LINES {
            let mut best = f64::INFINITY;
            let mut source = String::new();
            for _ in 0..3 {
                let mut test = test_of(arch, kernel)?;
                test.selection.filter = Some(Filter::Id(0));
                test.jobs = Some(1);
                let report = self.test(test, kernel, "first")?;
                best = best.min(report.timing.to_first_test_s.unwrap_or(f64::INFINITY));
                source = report.kernel.source;
            }
            rows.push(Row {
                what: format!("{arch}: boot to first test, best of 3 ({source})"),
                value: format!("{best:.2} s"),
                target: "<= 0.5 s with a minimal built kernel",
            });
        }
        Ok(rows)
    }

    /// The kernel's whole suites with one guest and with two, and bare QEMU on the same
    /// image, in interleaved rounds; and whether both runs gave the same results.
    fn jobs(&self) -> anyhow::Result<(Vec<Row>, bool)> {
        let arch = self.arch;
        let (mut one, mut two, mut bare) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        let mut source = String::new();
        let (mut outside, mut cpu) = (f64::INFINITY, f64::INFINITY);
        let mut same = true;
        let mut peak = [f64::NAN; 2];
        for round in 1..=self.rounds {
            eprintln!("bench: round {round} of {}", self.rounds);
            let cpu_before = cpu_seconds()?;
            let jobs1 = self.test_jobs(1)?;
            source.clone_from(&jobs1.kernel.source);
            cpu = cpu.min((cpu_seconds()? - cpu_before) / jobs1.timing.total_s);
            let qemu_s: f64 = jobs1.timing.guests.iter().map(|g| g.total_s).sum();
            outside = outside.min(jobs1.timing.total_s / qemu_s - 1.0);
            let jobs2 = self.test_jobs(2)?;
            same &= statuses(&jobs1) == statuses(&jobs2);
            for (peak, run) in peak.iter_mut().zip([&jobs1, &jobs2]) {
                *peak = peak.max(run.timing.peak_rss_mib.unwrap_or(f64::NAN));
            }
            one = one.min(jobs1.timing.total_s);
            two = two.min(jobs2.timing.total_s);
            bare = bare.min(self.bare_qemu(arch)?);
        }
        let rounds = self.rounds;
        let ratio = two / one;
        let results = if same { "same" } else { "DIFFERENT" };
        let rows = vec![
            Row::new(
                format!("{arch}: full test_bpf, --jobs 1, best of {rounds} ({source})"),
                format!("{one:.1} s"),
                "",
            ),
            Row::new(
                format!("{arch}: full test_bpf, --jobs 2, best of {rounds}"),
                format!("{two:.1} s"),
                "",
            ),
            Row::new(
                format!("{arch}: --jobs 2 / --jobs 1 ({results} results)"),
                format!("{ratio:.3}"),
                "<= 0.55 on 2 cores",
            ),
            Row::new(
                format!("{arch}: peak memory per guest (--jobs 1 / --jobs 2)"),
                format!("{} / {}", mb(peak[0]), mb(peak[1])),
                "<= 150 MB",
            ),
            Row::new(
                format!("{arch}: bare QEMU, same image, one guest, best of {rounds}"),
                format!("{bare:.1} s"),
                "",
            ),
            Row::new(
                format!("{arch}: harness overhead over bare QEMU (--jobs 1)"),
                format!("{:+.1} %", (one / bare - 1.0) * 100.0),
                "<= 2 %",
            ),
            Row::new(
                format!("{arch}: wall time the harness adds around its QEMU (--jobs 1)"),
                format!("{:+.1} %", outside * 100.0),
                "<= 2 %",
            ),
            Row::new(
                format!("{arch}: the harness's own CPU time while it runs (--jobs 1)"),
                format!("{:.1} % of one core", cpu * 100.0),
                "",
            ),
        ];
        Ok((rows, same))
    }

    /// On the lines of [`LINES`] on x86_64 and mips64el: the peak memory of a guest running the kernel's suites and of one
    /// running the harness's own in every mode, the booted template's size, and how soon a
    /// guest restored from it runs its plan.
    fn memory(&self) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        let lines = LINES
            .iter()
            .filter(|(arch, _)| matches!(arch, Arch::X86_64 | Arch::Mips64el));
        for &(arch, kernel) in lines {
            let suites = test_of(arch, kernel)?;
            let (template, memory) = suites.template()?;
            let kernel_suites = self.test(suites, kernel, "memory-kernel")?;
            let mut own = test_of(arch, kernel)?;
            own.selection.suite = AgentSuite::ALL.map(SuiteName::Agent).to_vec();
            own.selection.mode = Mode::ALL.to_vec();
            let own_suites = self.test(own, kernel, "memory-own")?;
            let source = &kernel_suites.kernel.source;
            let peak = |report: &Report| mb(report.timing.peak_rss_mib.unwrap_or(f64::NAN));
            rows.push(Row::new(
                format!("{arch}: peak memory per guest, -m {memory}, kernel's suites / harness's own ({source})"),
                format!("{} / {}", peak(&kernel_suites), peak(&own_suites)),
                "<= 150 MB",
            ));
            let own = |report: &Report| mb(report.timing.peak_own_mib.unwrap_or(f64::NAN));
            rows.push(Row::new(
                format!("{arch}: of which its own alone, not shared files (RssAnon)"),
                format!("{} / {}", own(&kernel_suites), own(&own_suites)),
                "",
            ));
            let restored = kernel_suites.timing.guests.iter().filter_map(|g| g.boot_s);
            let restored = restored.reduce(f64::min).unwrap_or(f64::NAN);
            let size = match &template {
                Some(template) => disk_bytes(&template.snapshot)? + disk_bytes(&template.memory)?,
                None => 0,
            };
            rows.push(Row::new(
                format!(
                    "{arch}: booted template, on disk / QEMU start to the restored guest's first line"
                ),
                format!("{:.0} MB / {restored:.2} s", size as f64 / 1e6),
                "",
            ));
        }
        Ok(rows)
    }

    /// `fuzz` with one guest: 1000 programs of about 100 instructions (a 30..50-slot body,
    /// with the prologue and the fold), on x86_64 and mips64el, Debian's 6.1 and 6.12 and the
    /// newest x86_64 line. ISA v3 everywhere: both MIPS JITs get v4's signed operations wrong
    /// (docs/lines.md), and a bench needs a clean run.
    fn fuzz(&self) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        let kernels = [
            (Arch::X86_64, "debian:6.1"),
            (Arch::Mips64el, "debian:6.1"),
            (Arch::X86_64, "debian:6.12"),
            (Arch::Mips64el, "debian:6.12"),
            (Arch::X86_64, "debian:sid"),
        ];
        for (arch, kernel) in kernels {
            let out = tempfile::TempDir::new().context("cannot create a temporary directory")?;
            let dir = out.path().join("fuzz");
            let mut fuzz = FuzzCmd::new(arch);
            fuzz.kernel = Some(kernel.to_owned());
            fuzz.count = Some(1000);
            fuzz.len = 30..=50;
            fuzz.isa = Isa::V3;
            fuzz.jobs = Some(1);
            fuzz.minimise = 0;
            fuzz.out = Some(dir.clone());
            let what = format!(
                "fuzz --arch {arch} --kernel {kernel} --count 1000 --len 30..50 --isa v3 --jobs 1 \
                 --minimise 0 --out {}",
                dir.display()
            );
            eprintln!("bench: {what}");
            let code = fuzz.run()?;
            let totals: FuzzTotals = serde_json::from_slice(&read(&dir.join("fuzz.json"))?)
                .with_context(|| format!("cannot read {}", dir.join("fuzz.json").display()))?;
            if code != 0 || totals.findings > 0 {
                anyhow::bail!("`cargo xtask {what}` exited with {code}; bench needs a clean run");
            }
            let accepted = 100.0 * (totals.ran - totals.refused) as f64 / totals.ran.max(1) as f64;
            let per_second: Vec<String> = totals
                .per_second
                .iter()
                .map(|(mode, n)| format!("{mode} {n:.0}"))
                .collect();
            rows.push(Row::new(
                format!("{arch}: fuzz, programs per second, one guest ({kernel})"),
                per_second.join(", "),
                ">= 150 per mode",
            ));
            rows.push(Row::new(
                format!("{arch}: fuzz, accepted by the verifier ({kernel})"),
                format!("{accepted:.1} %"),
                ">= 95 %",
            ));
        }
        Ok(rows)
    }

    /// `test --jobs JOBS` of the bench's arch and kernel: the kernel's whole suites.
    fn test_jobs(&self, jobs: u16) -> anyhow::Result<Report> {
        let mut test = test_of(self.arch, self.kernel.as_deref())?;
        test.jobs = Some(jobs);
        self.test(test, self.kernel.as_deref(), &format!("jobs{jobs}"))
    }

    /// Runs `test` into a scratch directory and returns its report.
    fn test(&self, mut test: Test, kernel: Option<&str>, label: &str) -> anyhow::Result<Report> {
        let out = tempfile::TempDir::new().context("cannot create a temporary directory")?;
        let out_arg = out.path().join(label);
        test.out = Some(out_arg.clone());
        let what = test_text(&test, kernel);
        eprintln!("bench: {what}");
        let run = test.run_to_end()?;
        if run.exit != ExitKind::Clean {
            anyhow::bail!(
                "`cargo xtask {what}` exited with {}; bench needs a passing run",
                run.exit.code()
            );
        }
        Ok(run.report)
    }

    /// Seconds from QEMU's start to its exit, running the image of a whole `--jobs 1` run
    /// without the harness: its console goes to a file, nobody reads it.
    fn bare_qemu(&self, arch: Arch) -> anyhow::Result<f64> {
        let dir = crate::cache::scratch_dir()?;
        let config = test_of(arch, self.kernel.as_deref())?.bare_guest(dir.path())?;
        let (program, args) = config.command_line();
        let console = std::fs::File::create(dir.path().join("console.log"))?;
        eprintln!("bench: bare {program}");
        let started = Instant::now();
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(console)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {program}"))?;
        // A guest started from a snapshot takes its plan on the console, as the harness's do.
        let mut stdin = child.stdin.take();
        if let Some(pipe) = &mut stdin {
            pipe.write_all(&config.input)
                .with_context(|| format!("cannot write to {program}"))?;
        }
        if let (Some(snapshot), Some(socket)) = (&config.restore, &config.qmp) {
            let mut running = || matches!(child.try_wait(), Ok(None));
            if let Err(e) = runner::qemu::start_restore(&config, snapshot, socket, &mut running) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e).with_context(|| format!("cannot restore {}", snapshot.display()));
            }
        }
        let status = child
            .wait()
            .with_context(|| format!("cannot wait for {program}"))?;
        drop(stdin);
        let seconds = started.elapsed().as_secs_f64();
        let log = std::fs::read(dir.path().join("console.log"))?;
        if !status.success() || !contains(&log, b"harness: done") {
            anyhow::bail!("bare {program} did not finish its plan ({status})");
        }
        Ok(seconds)
    }
}

/// What `bench` reads of a `fuzz` run's fuzz.json.
#[derive(serde::Deserialize)]
struct FuzzTotals {
    ran: u64,
    refused: u64,
    findings: u64,
    per_second: std::collections::BTreeMap<String, f64>,
}

/// The bytes `path` takes on disk: a template's memory file has holes where it is zero.
fn disk_bytes(path: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(metadata.blocks() * 512)
}

/// CPU seconds this process (every thread, no child) has used: `utime + stime` of
/// /proc/self/stat.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc/self/stat has no command name")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        let field = fields.get(i - 3).context("/proc/self/stat is short")?;
        Ok(field.parse::<f64>()?)
    };
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    Ok((ticks(14)? + ticks(15)?) / per_second)
}

/// A size in MiB as MB, for the tables.
fn mb(mib: f64) -> String {
    match mib.is_nan() {
        true => "unknown".to_owned(),
        false => format!("{:.0} MB", mib * MIB_IN_MB),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Each result's status, in order: two runs of one selection must agree.
fn statuses(report: &Report) -> Vec<(SuiteName, Option<u32>, Mode, Status)> {
    report
        .results
        .iter()
        .map(|r| (r.suite, r.id, r.mode, r.status))
        .collect()
}

/// MB/s of recorded consoles through the same parser a live guest's goes through.
fn parse_throughput() -> anyhow::Result<Row> {
    let fixtures = project_root().join("runner/tests/fixtures");
    let logs: Vec<Vec<u8>> = ["x86_64-full.log", "mips64el-full.log"]
        .iter()
        .map(|name| read(&fixtures.join(name)))
        .collect::<anyhow::Result<_>>()?;
    let plan = Plan::new(&Suite::ALL, &[Mode::Jit], None)?;
    let mut best: f64 = 0.0;
    for _ in 0..10 {
        let (mut bytes, mut passes) = (0usize, 0usize);
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(300) {
            for log in &logs {
                let outcome = runner::session::replay(log, &plan);
                bytes += log.len();
                passes += usize::from(outcome.complete);
            }
        }
        if passes == 0 {
            anyhow::bail!("the recorded logs no longer parse as complete runs");
        }
        best = best.max(bytes as f64 / 1e6 / started.elapsed().as_secs_f64());
    }
    let mb_s = best;
    Ok(Row {
        what: "console parse throughput (recorded full runs), best of 10".into(),
        value: format!("{mb_s:.0} MB/s"),
        target: ">= 200 MB/s",
    })
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn print_table(rows: &[Row]) {
    println!("| measure | value | target |");
    println!("| --- | --- | --- |");
    for row in rows {
        println!("| {} | {} | {} |", row.what, row.value, row.target);
    }
}
