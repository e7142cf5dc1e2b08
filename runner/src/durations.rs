//! How long each test took in earlier runs: what shards are balanced by.
//!
//! Kept per architecture in the cache (`durations/ARCH.json`), updated after every run. A test
//! is known by mode, suite and name, not by number, so that the figures survive kernels that
//! add tests; a test never timed in its mode borrows its time from another mode.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::Mode;

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
    /// `MODE SUITE NAME` to seconds.
    tests: BTreeMap<String, f64>,
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

fn key(mode: Mode, suite: &str, name: &str) -> String {
    format!("{} {suite} {name}", mode.name())
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
    }
}
