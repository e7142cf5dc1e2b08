//! Baselines: the canonical, stable form of a run's results, committed under
//! `reports/baselines/` per arch and kernel flavour, that later runs are diffed against.
//!
//! A baseline holds no times, paths, messages or test numbers: only what a regression gate
//! judges (each result's status and whether the JIT compiled it), so that a baseline changes
//! only when results do. Test numbers are left out because a kernel that adds a test renumbers
//! every later one; a test is known by its suite, name and mode.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arch::Arch;
use crate::model::{keys, Status, TestKey, TestResult};

/// Version of the baseline file's layout.
pub const SCHEMA_VERSION: u32 = 1;

/// What a baseline records of one result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub status: Status,
    /// `Some(true)` when the kernel JIT-compiled the program, `None` when no program ran.
    pub jited: Option<bool>,
}

impl Entry {
    pub fn of(result: &TestResult) -> Entry {
        Entry {
            status: result.status,
            jited: result.jited,
        }
    }
}

/// `pass jited`, `pass not-jited`, `fail`: one short word pair per result, so that a baseline
/// reads (and diffs in git) one line per test.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.name())?;
        match self.jited {
            Some(true) => f.write_str(" jited"),
            Some(false) => f.write_str(" not-jited"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for Entry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split(' ');
        let status_word = words.next().unwrap_or("");
        let status = Status::ALL
            .into_iter()
            .find(|st| st.name() == status_word)
            .ok_or_else(|| {
                format!("unknown status `{status_word}` in `{s}`: expected one of pass, fail, skip, crash, hang, not_run, error, divergence")
            })?;
        let jited = match words.next() {
            None => None,
            Some("jited") => Some(true),
            Some("not-jited") => Some(false),
            Some(other) => {
                return Err(format!(
                    "`{other}` in `{s}`: expected `jited`, `not-jited` or nothing after the status"
                ))
            }
        };
        if let Some(extra) = words.next() {
            return Err(format!("unexpected `{extra}` in `{s}`"));
        }
        Ok(Entry { status, jited })
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Suite → mode → test name → entry, all sorted.
pub type Entries = BTreeMap<String, BTreeMap<String, BTreeMap<String, Entry>>>;

/// A baseline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub schema: u32,
    pub arch: Arch,
    /// The line of kernels it is kept for ([`crate::report::KernelInfo::flavour`]).
    pub flavour: String,
    /// The kernel of the run it was blessed from, for people: `source` and `uname -r`.
    pub blessed_from: String,
    pub results: Entries,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(
        "no baseline at {path} for {arch} {flavour}: nothing to compare with; check a clean \
         run and accept it with `cargo xtask report bless RUN_DIR`"
    )]
    Missing {
        path: PathBuf,
        arch: Arch,
        flavour: String,
    },
    #[error("cannot read the baseline {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}{at}: not a valid baseline: {message}; fix that line, or bless a run again \
         with `cargo xtask report bless RUN_DIR`"
    )]
    Corrupt {
        path: PathBuf,
        /// `:LINE:COLUMN` when known.
        at: String,
        message: String,
    },
    #[error(
        "{path} is a baseline of schema {found}; this harness reads schema {SCHEMA_VERSION}: \
         bless a run again with `cargo xtask report bless RUN_DIR`"
    )]
    OldSchema { path: PathBuf, found: u32 },
    #[error(
        "{path} is the baseline of {found}, not of this run's {expected}: give the baseline \
         of the same arch and kernel flavour"
    )]
    Mismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

/// Where the baseline of `arch` and `flavour` lives under a project's `reports/`.
pub fn default_path(reports_dir: &Path, arch: Arch, flavour: &str) -> PathBuf {
    reports_dir
        .join("baselines")
        .join(format!("{arch}-{flavour}.yaml"))
}

impl Baseline {
    /// The baseline of a run's `results` on `arch`, for the kernels of `flavour`, blessed from
    /// the kernel `blessed_from` (its source and release, for people).
    pub fn new(arch: Arch, flavour: String, blessed_from: String, results: &[TestResult]) -> Self {
        let mut entries = Entries::new();
        for (key, result) in keys(results).into_iter().zip(results) {
            entries
                .entry(key.suite)
                .or_default()
                .entry(key.mode)
                .or_default()
                .insert(key.name, Entry::of(result));
        }
        Baseline {
            schema: SCHEMA_VERSION,
            arch,
            flavour,
            blessed_from,
            results: entries,
        }
    }

    /// Every entry with its key.
    pub fn entries(&self) -> impl Iterator<Item = (TestKey, Entry)> + '_ {
        self.results.iter().flat_map(|(suite, modes)| {
            modes.iter().flat_map(move |(mode, tests)| {
                tests.iter().map(move |(name, entry)| {
                    (
                        TestKey {
                            suite: suite.clone(),
                            name: name.clone(),
                            mode: mode.clone(),
                        },
                        *entry,
                    )
                })
            })
        })
    }

    /// The file's text: a header saying what it is, then the YAML.
    pub fn to_text(&self) -> Result<String, serde_yaml::Error> {
        let header = format!(
            "# Baseline of {} on {} kernels: one line per test and mode, `STATUS [jited|not-jited]`.\n\
             # Written by `cargo xtask report bless`; change it only by blessing a reviewed run.\n",
            self.arch, self.flavour
        );
        Ok(header + &serde_yaml::to_string(self)?)
    }

    /// Reads the baseline at `path`, checking that it is of this schema and of `arch` and
    /// `flavour`.
    pub fn read(path: &Path, arch: Arch, flavour: &str) -> Result<Baseline, BaselineError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BaselineError::Missing {
                    path: path.to_owned(),
                    arch,
                    flavour: flavour.to_owned(),
                })
            }
            Err(source) => {
                return Err(BaselineError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let baseline = Baseline::parse(path, &text)?;
        let expected = format!("{arch} {flavour}");
        let found = format!("{} {}", baseline.arch, baseline.flavour);
        if found != expected {
            return Err(BaselineError::Mismatch {
                path: path.to_owned(),
                found,
                expected,
            });
        }
        Ok(baseline)
    }

    /// Parses a baseline's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Baseline, BaselineError> {
        let corrupt = |e: serde_yaml::Error| BaselineError::Corrupt {
            path: path.to_owned(),
            at: e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default(),
            message: e.to_string(),
        };
        // The schema first, so that an older layout is named as such, not as corrupt.
        #[derive(Deserialize)]
        struct Version {
            schema: Option<u32>,
        }
        let version: Version = serde_yaml::from_str(text).map_err(corrupt)?;
        match version.schema {
            Some(SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(BaselineError::OldSchema {
                    path: path.to_owned(),
                    found,
                })
            }
            None => {
                return Err(BaselineError::Corrupt {
                    path: path.to_owned(),
                    at: String::new(),
                    message: "no `schema:` line".to_owned(),
                })
            }
        }
        serde_yaml::from_str(text).map_err(corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentSuite, Mode, Suite, SuiteName};
    use crate::report::{KernelInfo, Report, Timing};

    fn result(
        suite: impl Into<SuiteName>,
        name: &str,
        mode: Mode,
        status: Status,
        jited: Option<bool>,
    ) -> TestResult {
        TestResult::new(suite, Some(0), name, mode, status)
            .with_jited(jited)
            .with_message("not kept")
    }

    fn report(results: Vec<TestResult>) -> Report {
        Report::new(
            KernelInfo {
                arch: Arch::X86_64,
                release: Some("6.1.0-56-amd64".into()),
                source: "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2".into(),
                revision: None,
                config_hash: None,
            },
            results,
            Vec::new(),
            true,
            Timing::default(),
        )
    }

    #[test]
    fn repeated_names_are_numbered_and_divergences_keyed_apart() {
        let results = vec![
            result(Suite::TestBpf, "A", Mode::Jit, Status::Pass, Some(true)),
            result(Suite::TestBpf, "A", Mode::Jit, Status::Fail, Some(true)),
            result(Suite::TestBpf, "A", Mode::Interp, Status::Pass, Some(false)),
            result(
                AgentSuite::Verifier,
                "c",
                Mode::Jit,
                Status::Fail,
                Some(true),
            ),
            result(
                AgentSuite::Verifier,
                "c",
                Mode::Jit,
                Status::Divergence,
                None,
            ),
        ];
        let names: Vec<String> = keys(&results).iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "test_bpf A [jit]",
                "test_bpf A (2) [jit]",
                "test_bpf A [interp]",
                "verifier c [jit]",
                "verifier c [divergence]"
            ]
        );
    }

    #[test]
    fn a_baseline_reads_back_as_written_without_times_or_messages() {
        let run = report(vec![
            result(Suite::TestBpf, "TAX", Mode::Jit, Status::Pass, Some(true)),
            result(
                Suite::TestBpf,
                "LD: \"odd\" # name",
                Mode::Jit,
                Status::Pass,
                Some(false),
            ),
            result(Suite::TestSkbSegment, "seg", Mode::Jit, Status::Pass, None),
        ]);
        let baseline = run.baseline();
        assert_eq!(baseline.flavour, "debian-6.1-amd64");
        let text = baseline.to_text().expect("serializes");
        assert!(!text.contains("not kept"), "{text}");
        assert!(text.contains("TAX: pass jited"), "{text}");
        let back = Baseline::parse(Path::new("b.yaml"), &text).expect("parses");
        assert_eq!(back, baseline);
    }

    #[test]
    fn a_bad_status_names_its_line() {
        let text = "schema: 1\narch: x86_64\nflavour: f\nblessed_from: x\nresults:\n  test_bpf:\n    jit:\n      TAX: passed\n";
        let e = Baseline::parse(Path::new("reports/baselines/x.yaml"), text)
            .expect_err("bad status")
            .to_string();
        assert!(e.starts_with("reports/baselines/x.yaml:8:"), "{e}");
        assert!(e.contains("unknown status `passed`"), "{e}");
    }

    #[test]
    fn an_old_schema_is_named_not_called_corrupt() {
        let e = Baseline::parse(Path::new("b.yaml"), "schema: 0\nwhatever: [\n")
            .map(drop)
            .expect_err("schema 0");
        // The whole file does not parse, but the schema line is read first only if the
        // document parses; a broken document is corrupt.
        assert!(matches!(e, BaselineError::Corrupt { .. }), "{e}");
        let e =
            Baseline::parse(Path::new("b.yaml"), "schema: 0\nresults: {}\n").expect_err("schema 0");
        assert!(
            matches!(e, BaselineError::OldSchema { found: 0, .. }),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_mismatched_baseline_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x86_64-debian-6.1-amd64.yaml");
        let e = Baseline::read(&path, Arch::X86_64, "debian-6.1-amd64")
            .expect_err("missing")
            .to_string();
        assert!(e.contains("cargo xtask report bless"), "{e}");
        let text = report(Vec::new()).baseline().to_text().expect("serializes");
        std::fs::write(&path, text).expect("write");
        let e = Baseline::read(&path, Arch::Mips64el, "debian-6.1-5kc-malta")
            .expect_err("mismatch")
            .to_string();
        assert!(e.contains("not of this run's mips64el"), "{e}");
    }
}
