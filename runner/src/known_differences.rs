//! `suites/known-differences.yaml`: conformance cases (mostly bpf_conformance's corpus) whose
//! programs test behaviour a kernel refuses or does otherwise by design, each reviewed once
//! with its reason and a link. A listed case that does not pass is a `skip` with that reason
//! and the kernel's own words; a case not listed stays a `fail`, so that nothing is excluded
//! silently.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{AgentSuite, Status, SuiteName, TestResult};
use crate::report::KernelInfo;
use crate::reviewed_list;

/// The suite whose cases the file lists.
const SUITE: SuiteName = SuiteName::Agent(AgentSuite::Conformance);

/// One entry of the file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The conformance case's name: a corpus file's name without `.data`.
    pub case: String,
    /// An arch, several separated by commas (`mips64el, mipsel`), or `any`.
    pub arch: String,
    /// A line of kernels by its series (`6.1`, `6.12`, `7.2`), or `any`.
    pub kernel: String,
    /// Text the result's message must hold (the verifier's words, say), so that the entry
    /// covers this difference and not another failure of the same case.
    #[serde(default)]
    pub says: Option<String>,
    pub reason: String,
    /// Where the behaviour is decided or discussed: the kernel's source, a thread.
    pub link: String,
    /// The entry's line in the file, for messages.
    #[serde(skip)]
    pub line: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum KnownDifferencesError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}{at}: {message}")]
    Invalid {
        path: PathBuf,
        at: String,
        message: String,
    },
}

/// The list, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownDifferences {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// What [`KnownDifferences::apply`] did to a run's results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// How many results became `skip`.
    pub skipped: usize,
    /// Entries whose case passed here: `FILE:LINE: ...`, for a note that they may be stale.
    pub passed: Vec<String>,
}

impl KnownDifferences {
    /// Reads the list at `path`; a missing file is an empty list when `optional`.
    pub fn read(path: &Path, optional: bool) -> Result<KnownDifferences, KnownDifferencesError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KnownDifferences {
                    path: path.to_owned(),
                    entries: Vec::new(),
                })
            }
            Err(source) => {
                return Err(KnownDifferencesError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        KnownDifferences::parse(path, &text)
    }

    /// Parses the list, refusing an entry without a reason or a link, or with an arch or a
    /// kernel line it cannot name.
    pub fn parse(path: &Path, text: &str) -> Result<KnownDifferences, KnownDifferencesError> {
        let invalid = |at: String, message: String| KnownDifferencesError::Invalid {
            path: path.to_owned(),
            at,
            message,
        };
        let mut entries: Vec<Entry> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (line, mut entry) in
            reviewed_list::parse::<Entry>(text).map_err(|(at, message)| invalid(at, message))?
        {
            entry.line = line;
            let at = format!(":{}", entry.line);
            if entry.case.trim().is_empty() || entry.case.contains('/') {
                return Err(invalid(
                    at,
                    format!(
                        "case `{}`: give the conformance case's name, a corpus file's name \
                         without `.data`",
                        entry.case
                    ),
                ));
            }
            if let Some(unknown) = reviewed_list::unknown_arch(&entry.arch) {
                return Err(invalid(
                    at,
                    format!("arch `{unknown}`: expected {}", reviewed_list::ARCH_FIELD),
                ));
            }
            if entry.kernel != "any" && !is_series(&entry.kernel) {
                return Err(invalid(
                    at,
                    format!(
                        "kernel `{}`: expected a line's series (6.1, 6.12, 7.2) or any",
                        entry.kernel
                    ),
                ));
            }
            for (field, value) in [("reason", &entry.reason), ("link", &entry.link)] {
                if value.trim().is_empty() {
                    return Err(invalid(
                        at,
                        format!("`{field}` is empty: say why, and where it is decided"),
                    ));
                }
            }
            let key = (entry.case.clone(), entry.arch.clone(), entry.kernel.clone());
            if let Some(first) = seen.insert(key, entry.line) {
                return Err(invalid(
                    at,
                    format!(
                        "{} on {} and kernel {} is listed already, at line {first}",
                        entry.case, entry.arch, entry.kernel
                    ),
                ));
            }
            entries.push(entry);
        }
        Ok(KnownDifferences {
            path: path.to_owned(),
            entries,
        })
    }

    /// The entry covering `result` of a run of `kernel`, if any.
    pub fn find(&self, kernel: &KernelInfo, result: &TestResult) -> Option<&Entry> {
        if result.suite != SUITE {
            return None;
        }
        let series = series(kernel);
        let message = result.message.as_deref().unwrap_or("");
        self.entries.iter().find(|e| {
            e.case == result.name
                && reviewed_list::covers_arch(&e.arch, kernel.arch)
                && (e.kernel == "any" || series.as_deref() == Some(e.kernel.as_str()))
                && e.says
                    .as_deref()
                    .is_none_or(|says| result.status != Status::Fail || message.contains(says))
        })
    }

    /// Turns every listed case's `fail` into a `skip` with the entry's reason, the kernel's
    /// words kept; notes the entries whose case passed.
    pub fn apply(&self, kernel: &KernelInfo, results: &mut [TestResult]) -> Applied {
        let mut applied = Applied::default();
        for result in results.iter_mut() {
            if !matches!(result.status, Status::Fail | Status::Pass) {
                continue;
            }
            let Some(entry) = self.find(kernel, result) else {
                continue;
            };
            if result.status == Status::Pass {
                applied.passed.push(format!(
                    "{}:{}: {} passed in {} on {} {}: the difference may be gone",
                    self.path.display(),
                    entry.line,
                    result.name,
                    result.mode.name(),
                    kernel.arch,
                    kernel.name()
                ));
                continue;
            }
            let here = result.message.take().unwrap_or_default();
            result.status = Status::Skip;
            result.message = Some(format!(
                "known difference ({}:{}): {} ({}); here: {here}",
                self.path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                entry.line,
                entry.reason,
                entry.link
            ));
            applied.skipped += 1;
        }
        applied
    }
}

/// `6.1`, `6.12`, `7.2`: two numbers and a dot.
fn is_series(s: &str) -> bool {
    let mut parts = s.split('.');
    let number =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    number(parts.next()) && number(parts.next()) && parts.next().is_none()
}

/// The kernel's series (`6.1`, `6.12`, `7.2`): from the release the guest said, else from
/// where the kernel came from (a Debian package, a Debian source package); `None` for a
/// kernel that says neither.
pub fn series(kernel: &KernelInfo) -> Option<String> {
    let from = |version: &str| -> Option<String> {
        let mut numbers = version
            .split(|c: char| !c.is_ascii_digit())
            .take(2)
            .filter(|n| !n.is_empty());
        let (major, minor) = (numbers.next()?, numbers.next()?);
        let series = format!("{major}.{minor}");
        version.starts_with(&series).then_some(series)
    };
    if let Some(release) = &kernel.release {
        return from(release);
    }
    let source = &kernel.source;
    ["debian:linux-image-", "built:linux-source-"]
        .iter()
        .find_map(|prefix| source.strip_prefix(prefix))
        .and_then(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::model::Mode;

    const FILE: &str = "\
# shifts
- case: lsh32-imm-high
  arch: any
  kernel: any
  says: invalid shift
  reason: the verifier refuses a shift by 32 or more
  link: https://example.org/verifier.c

- case: callx
  arch: x86_64
  kernel: \"6.1\"
  reason: no callx
  link: https://example.org/callx
";

    fn kernel(release: Option<&str>, source: &str) -> KernelInfo {
        KernelInfo {
            arch: Arch::X86_64,
            release: release.map(str::to_owned),
            source: source.to_owned(),
            revision: None,
            config_hash: None,
        }
    }

    fn result(name: &str, status: Status, message: &str) -> TestResult {
        TestResult::new(AgentSuite::Conformance, Some(3), name, Mode::Jit, status)
            .with_message(message)
    }

    #[test]
    fn series_come_from_the_release_or_the_package() {
        let s = |release, source| series(&kernel(release, source));
        assert_eq!(s(Some("6.1.0-56-amd64"), "x").as_deref(), Some("6.1"));
        assert_eq!(s(Some("6.12.95+deb12-amd64"), "x").as_deref(), Some("6.12"));
        assert_eq!(s(Some("7.2.13+deb14-amd64"), "x").as_deref(), Some("7.2"));
        assert_eq!(
            s(
                None,
                "debian:linux-image-6.12.117+deb13-amd64-unsigned=6.12.117-1"
            )
            .as_deref(),
            Some("6.12")
        );
        assert_eq!(
            s(None, "built:linux-source-7.2=7.2.13-1").as_deref(),
            Some("7.2")
        );
        assert_eq!(s(None, "dir:/tmp/k"), None);
        assert!(is_series("6.12") && !is_series("6") && !is_series("6.1.0") && !is_series("a.b"));
    }

    #[test]
    fn a_listed_failure_is_a_skip_with_its_reason_and_the_kernels_words() {
        let known = KnownDifferences::parse(Path::new("suites/known-differences.yaml"), FILE)
            .expect("valid");
        assert_eq!(known.entries[1].line, 9);
        let k61 = kernel(Some("6.1.0-56-amd64"), "x");
        let words = "load failed (errno 22); verifier: 4: (64) w0 <<= 32 | invalid shift 32";
        let mut results = vec![
            result("lsh32-imm-high", Status::Fail, words),
            // The same case failing otherwise is not the difference listed.
            result("lsh32-imm-high", Status::Fail, "r0 = 0x1, expected 0x0"),
            result("callx", Status::Fail, "load failed (errno 22)"),
            result("not-listed", Status::Fail, words),
            result("lsh32-imm-high", Status::Pass, ""),
        ];
        let applied = known.apply(&k61, &mut results);
        let statuses: Vec<Status> = results.iter().map(|r| r.status).collect();
        use Status::{Fail, Pass, Skip};
        assert_eq!(statuses, [Skip, Fail, Skip, Fail, Pass]);
        assert_eq!(applied.skipped, 2);
        assert_eq!(
            results[0].message.as_deref(),
            Some(
                "known difference (known-differences.yaml:2): the verifier refuses a shift by \
                 32 or more (https://example.org/verifier.c); here: load failed (errno 22); \
                 verifier: 4: (64) w0 <<= 32 | invalid shift 32"
            )
        );
        assert_eq!(applied.passed.len(), 1, "{:?}", applied.passed);
        assert!(applied.passed[0]
            .starts_with("suites/known-differences.yaml:2: lsh32-imm-high passed in jit"));

        // Another kernel line, another arch, another suite: no entry.
        let k72 = kernel(Some("7.2.13+deb14-amd64"), "x");
        let mut callx = vec![result("callx", Status::Fail, "load failed")];
        assert_eq!(known.apply(&k72, &mut callx).skipped, 0);
        let mips = KernelInfo {
            arch: Arch::Mips64el,
            ..k61.clone()
        };
        assert_eq!(known.apply(&mips, &mut callx).skipped, 0);
        let mut verifier = vec![TestResult {
            suite: AgentSuite::Verifier.into(),
            ..result("lsh32-imm-high", Status::Fail, words)
        }];
        assert_eq!(known.apply(&k61, &mut verifier).skipped, 0);
    }

    #[test]
    fn an_entry_may_name_several_arches() {
        let text =
            "- case: ldxw\n  arch: mips64el, mipsel\n  kernel: any\n  reason: r\n  link: l\n";
        let known = KnownDifferences::parse(Path::new("k.yaml"), text).expect("valid");
        let skipped = |arch| {
            let k = KernelInfo {
                arch,
                ..kernel(Some("6.1.0-50-5kc-malta"), "x")
            };
            let mut results = vec![result("ldxw", Status::Fail, "misaligned value access")];
            known.apply(&k, &mut results).skipped
        };
        assert_eq!(skipped(Arch::Mips64el), 1);
        assert_eq!(skipped(Arch::Mipsel), 1);
        assert_eq!(skipped(Arch::X86_64), 0);
        assert_eq!(skipped(Arch::Mips), 0);
    }

    #[test]
    fn the_committed_list_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/known-differences.yaml");
        let known = KnownDifferences::read(&path, false).expect("suites/known-differences.yaml");
        assert!(!known.entries.is_empty());
        for entry in &known.entries {
            assert!(entry.link.starts_with("https://"), "{entry:?}");
        }
    }

    #[test]
    fn malformed_entries_are_refused_with_their_line() {
        let refuse = |text: &str| {
            KnownDifferences::parse(Path::new("k.yaml"), text)
                .expect_err("refused")
                .to_string()
        };
        let entry = |arch: &str, kernel: &str, reason: &str| {
            format!(
                "- case: x\n  arch: {arch}\n  kernel: \"{kernel}\"\n  reason: \"{reason}\"\n  link: l\n"
            )
        };
        assert!(refuse(&entry("sparc", "6.1", "r")).starts_with("k.yaml:1: arch `sparc`"));
        assert!(refuse(&entry("mips, sparc", "6.1", "r")).starts_with("k.yaml:1: arch `sparc`"));
        assert!(refuse(&entry("any", "sid", "r")).starts_with("k.yaml:1: kernel `sid`"));
        assert!(refuse(&entry("any", "any", " ")).starts_with("k.yaml:1: `reason` is empty"));
        let twice = format!("{}{}", entry("any", "any", "r"), entry("any", "any", "r"));
        assert_eq!(
            refuse(&twice),
            "k.yaml:6: x on any and kernel any is listed already, at line 1"
        );
        assert!(refuse("- case: x\n  arch: any\n  kernel: any\n  reason: r\n  link: l\n  expires: 2027-01-01\n")
            .contains("unknown field `expires`"));
        assert_eq!(
            KnownDifferences::read(Path::new("/nonexistent/k.yaml"), true)
                .expect("optional")
                .entries,
            []
        );
        assert!(KnownDifferences::read(Path::new("/nonexistent/k.yaml"), false).is_err());
    }
}
