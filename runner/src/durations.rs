//! How long each test took in earlier runs: what shards are balanced by.
//!
//! Kept per architecture in the cache (`durations/ARCH.json`), updated after every run. A test
//! is known by its [`TestKey`] (mode, suite and name as the kernel gives it), not by number,
//! so that the figures survive kernels that add tests; a test never timed in its mode borrows
//! its time from another mode. In the file a key is one string, `MODE SUITE NAME`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{Mode, TestKey};

/// Version of the file's layout.
const VERSION: u32 = 1;

/// What a test never timed is guessed to take: test_bpf's mean under TCG (about 80 s for
/// 1038 tests on both arches).
pub const UNKNOWN_TEST_S: f64 = 0.08;

/// What the agent is guessed to take for one case in one mode, when never timed.
pub const UNKNOWN_AGENT_CASE_S: f64 = 0.015;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    version: u32,
    /// Each test's seconds; written as `MODE SUITE NAME` to seconds, in that string's order.
    #[serde(with = "by_line")]
    tests: BTreeMap<TestKey, f64>,
    /// Mode to seconds per agent case.
    agent_case_s: BTreeMap<Mode, f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DurationsError {
    #[error("cannot read {path}")]
    Read { path: String, source: io::Error },
    // The cause in the middle of the message, so not a `source`: it would be said twice.
    #[error("{path} is not a durations file: {error}; delete it, the next run writes it anew")]
    Parse {
        path: String,
        error: serde_json::Error,
    },
    #[error("{path} has layout version {found}, this harness writes {VERSION}; delete it")]
    Version { path: String, found: u32 },
}

fn key(mode: Mode, suite: &str, name: &str) -> TestKey {
    TestKey::new(suite, name, mode.name())
}

/// The file's form of the tests' map: each key as the string `MODE SUITE NAME` (neither mode
/// nor suite holds a space; a name may), the entries in that string's order, as the layout
/// has always been written.
mod by_line {
    use std::collections::BTreeMap;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::model::TestKey;

    pub fn line(key: &TestKey) -> String {
        format!("{} {} {}", key.mode, key.suite, key.name)
    }

    pub fn parse(line: &str) -> Option<TestKey> {
        let (mode, rest) = line.split_once(' ')?;
        let (suite, name) = rest.split_once(' ')?;
        Some(TestKey::new(suite, name, mode))
    }

    pub fn serialize<S: Serializer>(
        tests: &BTreeMap<TestKey, f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let lines: BTreeMap<String, f64> = tests.iter().map(|(k, &s)| (line(k), s)).collect();
        lines.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<TestKey, f64>, D::Error> {
        BTreeMap::<String, f64>::deserialize(deserializer)?
            .into_iter()
            .map(|(l, s)| match parse(&l) {
                Some(key) => Ok((key, s)),
                None => Err(D::Error::custom(format!(
                    "`{l}` is not a test's key: expected `MODE SUITE NAME`"
                ))),
            })
            .collect()
    }
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            version: VERSION,
            tests: BTreeMap::new(),
            agent_case_s: BTreeMap::new(),
        }
    }
}

impl Durations {
    pub fn new() -> Self {
        Durations::default()
    }

    /// Reads `path`; `None` when there is no such file.
    pub fn read(path: &Path) -> Result<Option<Durations>, DurationsError> {
        let data = match std::fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(DurationsError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let durations: Durations =
            serde_json::from_slice(&data).map_err(|error| DurationsError::Parse {
                path: path.display().to_string(),
                error,
            })?;
        if durations.version != VERSION {
            return Err(DurationsError::Version {
                path: path.display().to_string(),
                found: durations.version,
            });
        }
        Ok(Some(durations))
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        json.push(b'\n');
        crate::report::write_atomically(path, &json)
    }

    pub fn is_empty(&self) -> bool {
        self.tests.is_empty() && self.agent_case_s.is_empty()
    }

    pub fn record_test(&mut self, mode: Mode, suite: &str, name: &str, seconds: f64) {
        self.tests.insert(key(mode, suite, name), seconds);
    }

    pub fn record_agent(&mut self, mode: Mode, cases: usize, seconds: f64) {
        if cases > 0 {
            self.agent_case_s.insert(mode, seconds / cases as f64);
        }
    }

    /// Adds what `newer` timed: a test timed before keeps the mean of its old time and the
    /// new one, since one run's figure varies by 10 % or more on a shared machine.
    pub fn update(&mut self, newer: &Durations) {
        for (key, &seconds) in &newer.tests {
            let kept = self.tests.entry(key.clone()).or_insert(seconds);
            *kept = (*kept + seconds) / 2.0;
        }
        for (&mode, &seconds) in &newer.agent_case_s {
            let kept = self.agent_case_s.entry(mode).or_insert(seconds);
            *kept = (*kept + seconds) / 2.0;
        }
    }

    /// Adds what `newer` timed of tests never timed before, keeping every time already known:
    /// for a run in one guest, whose times are not those a cut into shards meets (see
    /// `xtask/src/test.rs`).
    pub fn fill(&mut self, newer: &Durations) {
        for (key, &seconds) in &newer.tests {
            self.tests.entry(key.clone()).or_insert(seconds);
        }
        for (&mode, &seconds) in &newer.agent_case_s {
            self.agent_case_s.entry(mode).or_insert(seconds);
        }
    }

    /// These times, and `fallback`'s for every test and mode these never timed: a cache file
    /// that knows only some tests (a run cut short, a new kernel's) still cuts the others by
    /// the committed figures rather than by a guess.
    pub fn or(&self, fallback: &Durations) -> Durations {
        let mut merged = self.clone();
        merged.fill(fallback);
        merged
    }

    /// The time of one test: as timed in this mode, else in another mode, else a guess.
    pub fn test(&self, mode: Mode, suite: &str, name: &str) -> f64 {
        if let Some(&s) = self.tests.get(&key(mode, suite, name)) {
            return s;
        }
        Mode::ALL
            .iter()
            .find_map(|&other| self.tests.get(&key(other, suite, name)).copied())
            .unwrap_or(UNKNOWN_TEST_S)
    }

    /// The time of the agent's pass over `cases` cases in `mode`.
    pub fn agent(&self, mode: Mode, cases: usize) -> f64 {
        let per_case = self
            .agent_case_s
            .get(&mode)
            .copied()
            .unwrap_or(UNKNOWN_AGENT_CASE_S);
        per_case * cases as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_timed_in_another_mode_borrows_that_time() {
        let mut d = Durations::new();
        d.record_test(Mode::Jit, "test_bpf", "TAX", 0.5);
        assert_eq!(d.test(Mode::Jit, "test_bpf", "TAX"), 0.5);
        assert_eq!(d.test(Mode::Interp, "test_bpf", "TAX"), 0.5);
        assert_eq!(d.test(Mode::Jit, "test_bpf", "TXA"), UNKNOWN_TEST_S);
        d.record_test(Mode::Interp, "test_bpf", "TAX", 2.0);
        assert_eq!(d.test(Mode::Interp, "test_bpf", "TAX"), 2.0);
    }

    #[test]
    fn a_test_the_cache_never_timed_takes_the_fallbacks_time() {
        let mut cache = Durations::new();
        cache.record_test(Mode::Jit, "test_bpf", "A", 1.0);
        let mut committed = Durations::new();
        committed.record_test(Mode::Jit, "test_bpf", "A", 9.0);
        committed.record_test(Mode::Jit, "test_bpf", "B", 2.0);
        committed.record_agent(Mode::Jit, 10, 1.0);
        let merged = cache.or(&committed);
        assert_eq!(
            merged.test(Mode::Jit, "test_bpf", "A"),
            1.0,
            "the cache's own wins"
        );
        assert_eq!(merged.test(Mode::Jit, "test_bpf", "B"), 2.0);
        assert_eq!(merged.agent(Mode::Jit, 10), 1.0);
        // An empty cache file, as a run that booted nothing once wrote, is no figure at all.
        assert_eq!(Durations::new().or(&committed), committed);
    }

    #[test]
    fn a_new_time_is_averaged_with_the_old() {
        let mut old = Durations::new();
        old.record_test(Mode::Jit, "test_bpf", "A", 1.0);
        let mut new = Durations::new();
        new.record_test(Mode::Jit, "test_bpf", "A", 2.0);
        new.record_test(Mode::Jit, "test_bpf", "B", 3.0);
        old.update(&new);
        assert_eq!(old.test(Mode::Jit, "test_bpf", "A"), 1.5);
        assert_eq!(old.test(Mode::Jit, "test_bpf", "B"), 3.0);
    }

    #[test]
    fn round_trips_and_refuses_other_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.json");
        assert!(Durations::read(&path).unwrap().is_none());
        let mut d = Durations::new();
        d.record_test(Mode::Jit, "test_bpf", "A", 1.0);
        d.record_agent(Mode::Interp, 100, 2.0);
        d.write(&path).unwrap();
        let back = Durations::read(&path).unwrap().unwrap();
        assert_eq!(back, d);
        assert_eq!(back.agent(Mode::Interp, 10), 0.2);
        std::fs::write(&path, r#"{"version": 9, "tests": {}, "agent_case_s": {}}"#).unwrap();
        let e = Durations::read(&path).unwrap_err().to_string();
        assert!(e.contains("layout version 9"), "{e}");
        std::fs::write(&path, "{").unwrap();
        let e = Durations::read(&path).unwrap_err().to_string();
        assert!(e.contains("not a durations file"), "{e}");
        std::fs::write(
            &path,
            r#"{"version": 1, "tests": {"jit": 1.0}, "agent_case_s": {}}"#,
        )
        .unwrap();
        let e = Durations::read(&path).unwrap_err().to_string();
        assert!(e.contains("`jit` is not a test's key"), "{e}");
    }

    #[test]
    fn a_key_is_written_as_mode_suite_name_and_read_back() {
        let key = key(Mode::JitHardened, "test_bpf", "LD_ABS with spaces (2)");
        assert_eq!(
            by_line::line(&key),
            "jit-hardened test_bpf LD_ABS with spaces (2)"
        );
        assert_eq!(by_line::parse(&by_line::line(&key)), Some(key));
    }

    /// Committed files another tool wrote: Python's floats (`5.4322e-05`), which serde_json
    /// writes as `0.000054322`. They read back to the same figures, not the same bytes.
    const NOT_WRITTEN_BY_THE_HARNESS: [&str; 1] = ["mips64el.json"];

    #[test]
    fn every_committed_file_reads_and_writes_back_byte_for_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/durations");
        let tmp = tempfile::tempdir().unwrap();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let committed = std::fs::read(&path).unwrap();
            let durations = Durations::read(&path).unwrap().unwrap();
            assert!(!durations.tests.is_empty(), "{}", path.display());
            let again = tmp.path().join("again.json");
            durations.write(&again).unwrap();
            assert_eq!(Durations::read(&again).unwrap().as_ref(), Some(&durations));
            let name = path.file_name().unwrap().to_string_lossy();
            if !NOT_WRITTEN_BY_THE_HARNESS.contains(&name.as_ref()) {
                assert!(
                    std::fs::read(&again).unwrap() == committed,
                    "{} is written back otherwise than it reads",
                    path.display()
                );
                files += 1;
            }
        }
        assert!(files > 0, "no durations file under {}", dir.display());
    }
}
