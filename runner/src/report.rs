//! The results of a run and their on-disk form, `report.json`.
//!
//! The serialized names of [`Status`], [`Mode`] and every field are part of the format:
//! tools read them, so they change only with [`SCHEMA_VERSION`].

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::baseline::Baseline;
use crate::diff::{self, Diff, RunResults};
pub use crate::model::Scope;
pub use crate::model::{Mode, Status, TestResult};
use crate::model::{Suite, SuiteName};

/// Version of `report.json`'s layout.
pub const SCHEMA_VERSION: u32 = 4;

/// The kernel a run booted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    pub arch: Arch,
    /// `uname -r` inside the guest; `None` if the guest never said.
    pub release: Option<String>,
    /// Where the kernel came from, e.g. `debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2`
    /// or `built:git:COMMIT`.
    pub source: String,
    /// For a kernel built here: the commit, or the source package's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// For a kernel built here: a hash of its resolved `.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

impl KernelInfo {
    /// The kernel's name for people: its release as the guest said it (`6.1.0-56-amd64`),
    /// else what the run meant to boot (`linux-image-6.1.0-50-5kc-malta=6.1.176-1`).
    pub fn name(&self) -> &str {
        match &self.release {
            Some(release) => release,
            None => self.source.strip_prefix("debian:").unwrap_or(&self.source),
        }
    }

    /// What `track` follows across revisions and lines of kernels: the flavour without its
    /// line (`debian-amd64` for every line of Debian's amd64 kernels), so that a change is
    /// pinned on the line that brought it.
    pub fn family(&self) -> String {
        let flavour = self.flavour();
        if flavour.starts_with("built") {
            return "built".to_owned();
        }
        let Some(rest) = flavour.strip_prefix("debian-") else {
            return flavour;
        };
        match rest.split_once('-') {
            Some((_line, kind)) => format!("debian-{kind}"),
            None => flavour,
        }
    }

    /// What a baseline is kept per, beside the arch: the kernel's origin, series and
    /// flavour, without the revision, so that every revision of one line of kernels is
    /// compared with the same baseline. `debian-6.1-amd64` for Debian's
    /// `linux-image-6.1.0-56-amd64-unsigned`, `built` for a kernel built here from
    /// images/kconfig/'s fragments (`built-7.2` from Debian's linux-source-7.2: the
    /// first source, 6.1, keeps the plain name of its baselines), `local` for a directory.
    pub fn flavour(&self) -> String {
        if let Some(built) = self.source.strip_prefix("built:") {
            let series = built
                .strip_prefix("linux-source-")
                .and_then(|package| package.split('=').next());
            return match series {
                Some(series) if series != "6.1" => format!("built-{series}"),
                _ => "built".to_owned(),
            };
        }
        let Some(package) = self.source.strip_prefix("debian:linux-image-") else {
            return "local".to_owned();
        };
        let package = package.split('=').next().unwrap_or(package);
        // The ABI, `6.1.0-56` or `6.12.95+deb12`, then the flavour: `amd64-unsigned`,
        // `5kc-malta`.
        let (version, flavour) = match package.split_once('-') {
            Some((version, rest)) if version.contains('+') => (version, rest),
            Some((version, rest)) => match rest.split_once('-') {
                Some((_abi, flavour)) => (version, flavour),
                None => return "local".to_owned(),
            },
            None => return "local".to_owned(),
        };
        let series: Vec<&str> = version.split('.').take(2).collect();
        let flavour = flavour.strip_suffix("-unsigned").unwrap_or(flavour);
        format!("debian-{}-{flavour}", series.join("."))
    }
}

/// Wall-clock figures of a run, in seconds, measured on the host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// QEMU start to the guest's first protocol line (`harness: start`).
    pub boot_s: Option<f64>,
    /// QEMU start to the first test module load.
    pub to_first_test_s: Option<f64>,
    /// QEMU start to QEMU exit.
    pub total_s: f64,
    /// The highest peak resident memory of the run's QEMUs, in MiB (see
    /// [`crate::qemu::Qemu::peak_rss_mib`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    /// The highest peak of memory of the run's QEMUs that is theirs alone, in MiB (see
    /// [`crate::qemu::Qemu::peak_own_mib`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_own_mib: Option<f64>,
    /// The agent's passes over its cases, one per mode, timed in the guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent: Vec<AgentPass>,
    /// Each guest of the run, in the order they started (several with `--jobs`, or when a
    /// guest was resumed after a crash).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<GuestTiming>,
}

/// One guest of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestTiming {
    /// Its console log, in the run's directory.
    pub console: String,
    /// What it ran: its module loads (mode and parameters) and whether the agent ran.
    pub shard: String,
    pub boot_s: Option<f64>,
    pub to_first_test_s: Option<f64>,
    pub total_s: f64,
    /// Its QEMU's peak resident memory, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    /// Its QEMU's peak memory that is its alone, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_own_mib: Option<f64>,
}

/// One pass of the agent over all its cases in one mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentPass {
    pub mode: Mode,
    pub cases: usize,
    pub seconds: f64,
}

/// Everything a run produced: `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// False when the run was interrupted or the harness failed before the end: the results
    /// are what was seen until then.
    pub complete: bool,
    pub kernel: KernelInfo,
    pub results: Vec<TestResult>,
    /// How many results have each status; every status is present, zeros included.
    pub summary: BTreeMap<Status, usize>,
    /// Problems of the harness or the guest that are not any one test's result.
    pub errors: Vec<String>,
    pub timing: Timing,
    /// Which part of a sharded run this is (`--shard K/N`); `None` for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardId>,
    /// When the run started, RFC 3339 in UTC; `None` for a replayed recording.
    #[serde(default)]
    pub started: Option<String>,
    /// What was selected; `None` for a replayed recording or an older report.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// The run against its baseline; `None` when there was none to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Diff>,
}

/// Part `index` of `count` (both from 1, as `--shard K/N` says them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardId {
    pub index: u32,
    pub count: u32,
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for ShardId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad shard `{s}`: expected K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(ShardId { index, count })
    }
}

/// Puts results in the one order every run uses, however it was cut into guests: the
/// kernel's suites by mode, suite and test number; then the harness's own by suite, case and
/// mode, each case's divergence after its modes.
pub fn canonical_order(results: &mut [TestResult]) {
    results.sort_by_cached_key(|r| {
        let id = r.id.unwrap_or(u32::MAX);
        match r.suite {
            SuiteName::Kernel(suite) => (0, r.mode, suite as u8, "", id, false),
            SuiteName::Agent(_) => (
                1,
                Mode::Interp,
                0,
                r.suite.name(),
                id,
                r.status == Status::Divergence,
            ),
        }
    })
}

impl Report {
    /// What a diff reads of the run.
    pub fn run_results(&self) -> RunResults<'_> {
        RunResults {
            results: &self.results,
            scope: self.scope.as_ref(),
            sharded: self.shard.is_some(),
        }
    }

    /// The run against `baseline` (read from `baseline_path`).
    pub fn diff_against(&self, baseline: &Baseline, baseline_path: &str) -> Diff {
        diff::diff(baseline, baseline_path, self.run_results())
    }

    /// The run's baseline: its results in canonical form, kept for its kernel's flavour.
    pub fn baseline(&self) -> Baseline {
        let kernel = &self.kernel;
        let release = kernel.release.as_deref().unwrap_or("release unknown");
        Baseline::new(
            kernel.arch,
            kernel.flavour(),
            format!("{} ({release})", kernel.source),
            &self.results,
        )
    }

    pub fn new(
        kernel: KernelInfo,
        results: Vec<TestResult>,
        errors: Vec<String>,
        complete: bool,
        timing: Timing,
    ) -> Self {
        let summary = summarize(&results);
        Report {
            schema_version: SCHEMA_VERSION,
            complete,
            kernel,
            results,
            summary,
            errors,
            timing,
            shard: None,
            started: None,
            scope: None,
            diff: None,
        }
    }

    pub fn count(&self, status: Status) -> usize {
        self.summary.get(&status).copied().unwrap_or(0)
    }

    /// The process exit status this report calls for (see docs/outputs.md, "Exit status").
    pub fn exit_code(&self) -> u8 {
        if self.results.iter().any(|r| r.status.is_test_failure()) {
            1
        } else if !self.errors.is_empty()
            || !self.complete
            || self.count(Status::Error) > 0
            || self.count(Status::NotRun) > 0
        {
            3
        } else {
            0
        }
    }

    /// Writes `report.json` atomically: readers see the old file or the whole new one.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        json.push(b'\n');
        write_atomically(path, &json)
    }

    /// Reads a run's report, given its directory or the file itself.
    pub fn read_run(given: &Path) -> anyhow::Result<Report> {
        if given.is_dir() {
            Report::read(&given.join("report.json"))
        } else {
            Report::read(given)
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Report> {
        use anyhow::Context;
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&data)
            .with_context(|| format!("{} is not a valid report.json", path.display()))
    }
}

pub fn summarize(results: &[TestResult]) -> BTreeMap<Status, usize> {
    let mut summary: BTreeMap<Status, usize> = Status::ALL.iter().map(|&s| (s, 0)).collect();
    for result in results {
        *summary.entry(result.status).or_default() += 1;
    }
    summary
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Created under the lock, so that none is created after `discard_partial_writes`.
    let (mut tmp, tmp_path) = {
        let mut files = writing();
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        files.insert(tmp.path().to_owned());
        let path = tmp.path().to_owned();
        (tmp, path)
    };
    let written = (|| {
        publish_mode(tmp.as_file())?;
        // The file, not the `NamedTempFile`: its errors repeat themselves with the temporary
        // path, and the caller names the path that matters.
        tmp.as_file_mut().write_all(data)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)
    })();
    writing().remove(&tmp_path);
    written.map(drop)
}

/// The temporary files [`write_atomically`] is writing now.
static WRITING: std::sync::Mutex<std::collections::BTreeSet<std::path::PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn writing() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<std::path::PathBuf>> {
    WRITING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deletes the temporary files being written now, for a process about to exit at once (a
/// second Ctrl-C): it leaves no half-written file behind. The lock stays held, so no write
/// starts after.
pub fn discard_partial_writes() {
    let mut files = writing();
    for path in files.iter() {
        let _ = std::fs::remove_file(path);
    }
    files.clear();
    std::mem::forget(files);
}

/// The short human summary printed at the end of a run.
pub fn render_summary(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    write_kernel_line(&mut out, report);
    write_group_counts(&mut out, report);
    write_not_passed(&mut out, report);
    for e in &report.errors {
        let _ = writeln!(out, "harness error: {e}");
    }
    for pass in &report.timing.agent {
        let rate = pass.cases as f64 / pass.seconds.max(1e-9);
        let _ = writeln!(
            out,
            "agent {}: {} cases in {:.2} s ({rate:.0} cases/s)",
            pass.mode.name(),
            pass.cases,
            pass.seconds
        );
    }
    let _ = writeln!(out, "{}", totals_line(report));
    out
}

/// The summary's first line: the kernel, and whether a guest booted it.
fn write_kernel_line(out: &mut String, report: &Report) {
    use std::fmt::Write as _;
    let kernel = &report.kernel;
    let booted =
        report.timing.guests.iter().any(|g| g.boot_s.is_some()) || report.timing.boot_s.is_some();
    let _ = match (&kernel.release, booted) {
        (Some(release), _) => writeln!(out, "{} {release} ({})", kernel.arch, kernel.source),
        (None, false) => writeln!(out, "{} {} (no guest booted)", kernel.arch, kernel.source),
        (None, true) => writeln!(out, "{} {} (release not seen)", kernel.arch, kernel.source),
    };
}

/// One line per mode and suite: how many results have each status, and how many were JIT'ed.
fn write_group_counts(out: &mut String, report: &Report) {
    use std::fmt::Write as _;
    // Suites in the order they run, then any others by name.
    let rank = |suite: SuiteName| {
        suite
            .kernel()
            .and_then(|kernel| Suite::ALL.iter().position(|&s| s == kernel))
            .unwrap_or(usize::MAX)
    };
    let mut groups: BTreeMap<(Mode, usize, &str), Vec<&TestResult>> = BTreeMap::new();
    for r in &report.results {
        groups
            .entry((r.mode, rank(r.suite), r.suite.name()))
            .or_default()
            .push(r);
    }
    for ((mode, _, suite), results) in &groups {
        let counts = summarize(&results.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
        let mut line = format!("  {:<12} {suite:<17}", mode.name());
        for status in Status::ALL {
            let n = counts.get(&status).copied().unwrap_or(0);
            if n > 0 {
                let _ = write!(line, " {n} {}", status.name());
            }
        }
        let ran: Vec<bool> = results.iter().filter_map(|r| r.jited).collect();
        if !ran.is_empty() {
            let jited = ran.iter().filter(|&&j| j).count();
            let _ = write!(line, "  [{jited}/{} JIT'ed]", ran.len());
        }
        let _ = writeln!(out, "{line}");
    }
}

/// The `not passed:` section, when any result did not pass.
fn write_not_passed(out: &mut String, report: &Report) {
    use std::fmt::Write as _;
    // Tests never reached are one line per reason; everything else, one line per test.
    let failures: Vec<&TestResult> = report
        .results
        .iter()
        .filter(|r| !matches!(r.status, Status::Pass | Status::NotRun))
        .collect();
    // In the order the reasons first appear.
    let mut not_run: Vec<((&str, Mode, &str), usize)> = Vec::new();
    for r in report.results.iter().filter(|r| r.status == Status::NotRun) {
        let key = (r.suite.name(), r.mode, r.message.as_deref().unwrap_or(""));
        match not_run.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => not_run.push((key, 1)),
        }
    }
    if failures.is_empty() && not_run.is_empty() {
        return;
    }
    let _ = writeln!(out, "not passed:");
    for r in failures.iter().take(50) {
        let id = r.id.map_or(String::new(), |id| format!(" #{id}"));
        let _ = writeln!(
            out,
            "  {} {}{id} {} [{}]: {}",
            r.status.name(),
            r.suite,
            r.name,
            r.mode.name(),
            first_line(r.message.as_deref().unwrap_or(""))
        );
    }
    if failures.len() > 50 {
        let _ = writeln!(out, "  ... and {} more in report.json", failures.len() - 50);
    }
    for ((suite, mode, why), n) in &not_run {
        let entries = if *n == 1 { "entry" } else { "entries" };
        let _ = writeln!(
            out,
            "  not_run {suite} [{}]: {n} {entries}: {why}",
            mode.name()
        );
    }
}

/// The summary's last line: the counts of each status, and how long the run took.
fn totals_line(report: &Report) -> String {
    use std::fmt::Write as _;
    let counts: Vec<String> = Status::ALL
        .iter()
        .filter(|&&s| report.count(s) > 0)
        .map(|&s| format!("{} {}", report.count(s), s.name()))
        .collect();
    let mut last = if counts.is_empty() {
        "no results".to_owned()
    } else {
        counts.join(", ")
    };
    if !report.complete {
        last.push_str(" (incomplete run)");
    }
    // A replayed recording has no wall-clock time.
    if report.timing.total_s > 0.0 {
        let _ = write!(last, " in {:.1} s", report.timing.total_s);
    }
    if let Some(t) = report.timing.to_first_test_s {
        let _ = write!(last, " (first test after {t:.1} s)");
    }
    last
}

/// The first line of a message, saying how much more report.json holds.
fn first_line(message: &str) -> String {
    match message.split_once('\n') {
        Some((first, rest)) => format!("{first} [+{} lines in report.json]", rest.lines().count()),
        None => message.to_owned(),
    }
}

/// Gives a file the usual mode of a published file: temporary files start private (0600).
pub fn publish_mode(file: &std::fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(source: &str) -> KernelInfo {
        KernelInfo {
            arch: Arch::X86_64,
            release: None,
            source: source.to_owned(),
            revision: None,
            config_hash: None,
        }
    }

    #[test]
    fn every_line_of_debian_kernels_has_a_flavour_of_its_own() {
        let flavour = |source: &str| kernel(source).flavour();
        let cases = [
            (
                "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2",
                "debian-6.1-amd64",
            ),
            (
                "debian:linux-image-6.1.0-50-5kc-malta=6.1.176-1",
                "debian-6.1-5kc-malta",
            ),
            (
                "debian:linux-image-6.12.95+deb12-amd64-unsigned=6.12.95-1~bpo12+1",
                "debian-6.12-amd64",
            ),
            (
                "debian:linux-image-6.12.95+deb12-5kc-malta=6.12.95-1~bpo12+1",
                "debian-6.12-5kc-malta",
            ),
            (
                "debian:linux-image-7.2.13+deb14-amd64=7.2.13-1",
                "debian-7.2-amd64",
            ),
            ("built:linux-source-6.1=6.1.192-2", "built"),
            ("dir:/tmp/k", "local"),
            ("built:linux-source-7.2=7.2.13-1", "built-7.2"),
            ("built:git:0123abcd", "built"),
        ];
        for (source, want) in cases {
            assert_eq!(flavour(source), want, "{source}");
        }
        let family = |source: &str| kernel(source).family();
        assert_eq!(family(cases[0].0), "debian-amd64");
        assert_eq!(family(cases[2].0), family(cases[4].0));
        assert_eq!(family(cases[3].0), "debian-5kc-malta");
        assert_eq!(family(cases[5].0), "built");
        assert_eq!(family(cases[7].0), "built");
    }
}
