//! `suites/quarantine.yaml`: tests known to be flaky. A quarantined test still runs and is
//! reported, but its change does not fail the gate; an entry past its expiry date fails every
//! run until someone fixes the test or renews the entry, so that nothing stays quarantined by
//! oversight.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::arch::Arch;
use crate::diff::Diff;
use crate::reviewed_list;

/// One entry of the file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// `SUITE/NAME`, the name as a baseline keys it (`NAME (2)` for a repeated test_bpf name),
    /// or `SUITE/PREFIX*` for every test whose name starts so.
    pub test: String,
    /// An arch, several separated by commas (`mips, mipsel`), or `any`.
    pub arch: String,
    /// A mode (`interp`, `jit`, `jit-hardened`, `divergence`); every mode when left out.
    #[serde(default)]
    pub mode: Option<String>,
    pub reason: String,
    /// The bug report or mailing-list thread.
    pub link: String,
    /// `YYYY-MM-DD`: the last day the entry holds.
    pub expires: String,
    /// The entry's line in the file, for messages.
    #[serde(skip)]
    pub line: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
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
    #[error(
        "{path}:{line}: the quarantine of {test} on {arch} expired on {expires}: fix the test \
         and remove the entry, or renew it with a new date and the reason it still fails"
    )]
    Expired {
        path: PathBuf,
        line: usize,
        test: String,
        arch: String,
        expires: String,
    },
}

/// The quarantine list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quarantine {
    pub entries: Vec<Entry>,
}

impl Quarantine {
    /// Reads the list at `path` (none there: an empty list) and refuses it if an entry is
    /// malformed or has expired before `today` (`YYYY-MM-DD`).
    pub fn read(path: &Path, today: &str) -> Result<Quarantine, QuarantineError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Quarantine::default()),
            Err(source) => {
                return Err(QuarantineError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Quarantine::parse(path, &text, today)
    }

    pub fn parse(path: &Path, text: &str, today: &str) -> Result<Quarantine, QuarantineError> {
        let invalid = |at: String, message: String| QuarantineError::Invalid {
            path: path.to_owned(),
            at,
            message,
        };
        let mut entries: Vec<Entry> = Vec::new();
        for (line, mut entry) in
            reviewed_list::parse::<Entry>(text).map_err(|(at, message)| invalid(at, message))?
        {
            entry.line = line;
            let at = format!(":{}", entry.line);
            if !entry.test.contains('/') {
                return Err(invalid(
                    at,
                    format!(
                        "test `{}`: write it as SUITE/NAME, e.g. test_bpf/ALU_MOV_X",
                        entry.test
                    ),
                ));
            }
            if let Some(unknown) = reviewed_list::unknown_arch(&entry.arch) {
                return Err(invalid(
                    at,
                    format!("arch `{unknown}`: expected {}", reviewed_list::ARCH_FIELD),
                ));
            }
            if let Some(mode) = &entry.mode {
                let known = [
                    "interp",
                    "jit",
                    "jit-hardened",
                    crate::model::DIVERGENCE_KEY,
                ];
                if !known.contains(&mode.as_str()) {
                    return Err(invalid(
                        at,
                        format!("mode `{mode}`: expected one of {}", known.join(", ")),
                    ));
                }
            }
            for (field, value) in [("reason", &entry.reason), ("link", &entry.link)] {
                if value.trim().is_empty() {
                    return Err(invalid(
                        at,
                        format!("`{field}` is empty: say why, and where"),
                    ));
                }
            }
            if !is_date(&entry.expires) {
                return Err(invalid(
                    at,
                    format!("expires `{}`: expected a date, YYYY-MM-DD", entry.expires),
                ));
            }
            // Dates of one format compare as text.
            if entry.expires.as_str() < today {
                return Err(QuarantineError::Expired {
                    path: path.to_owned(),
                    line: entry.line,
                    test: entry.test.clone(),
                    arch: entry.arch.clone(),
                    expires: entry.expires.clone(),
                });
            }
            entries.push(entry);
        }
        Ok(Quarantine { entries })
    }

    /// The entry covering this test on `arch`, if any.
    pub fn find(&self, arch: Arch, suite: &str, name: &str, mode: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| {
            e.test
                .split_once('/')
                .is_some_and(|(s, pattern)| s == suite && names(pattern, name))
                && reviewed_list::covers_arch(&e.arch, arch)
                && e.mode.as_deref().is_none_or(|m| m == mode)
        })
    }

    /// Marks the changes of `diff` that this list covers.
    pub fn apply(&self, arch: Arch, diff: &mut Diff) {
        for change in &mut diff.changes {
            if let Some(entry) = self.find(arch, &change.suite, &change.name, &change.mode) {
                change.quarantined = Some(format!("{} ({})", entry.reason, entry.link));
            }
        }
    }
}

/// Whether `pattern` (a name, or a prefix and `*`) names `name`.
fn names(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    now.get(..10).unwrap_or(&now).to_owned()
}

fn is_date(s: &str) -> bool {
    // A real calendar date: humantime refuses February 30th.
    s.len() == 10 && humantime::parse_rfc3339(&format!("{s}T00:00:00Z")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{Change, Class};

    const FILE: &str = "\
# flaky on mips
- test: test_bpf/ALU64_DIV_X
  arch: mips64el
  reason: times out under TCG now and then
  link: https://lore.kernel.org/bpf/example
  expires: 2026-12-31

- test: verifier/spill
  arch: any
  mode: jit
  reason: r
  link: l
  expires: 2027-01-15
";

    #[test]
    fn entries_match_by_test_arch_and_mode() {
        let q = Quarantine::parse(Path::new("q.yaml"), FILE, "2026-11-27").expect("valid");
        assert_eq!(q.entries[1].line, 8);
        assert!(q
            .find(Arch::Mips64el, "test_bpf", "ALU64_DIV_X", "jit")
            .is_some());
        assert!(q
            .find(Arch::X86_64, "test_bpf", "ALU64_DIV_X", "jit")
            .is_none());
        assert!(q.find(Arch::X86_64, "verifier", "spill", "jit").is_some());
        assert!(q
            .find(Arch::X86_64, "verifier", "spill", "interp")
            .is_none());

        let mut diff = Diff {
            changes: vec![Change {
                class: Class::Regression,
                suite: "test_bpf".into(),
                name: "ALU64_DIV_X".into(),
                mode: "jit".into(),
                before: Some("pass jited".into()),
                after: Some("fail jited".into()),
                message: None,
                quarantined: None,
            }],
            ..Diff::default()
        };
        q.apply(Arch::Mips64el, &mut diff);
        assert_eq!(diff.gate_failures(&Class::GATE_DEFAULT).count(), 0);
    }

    #[test]
    fn a_name_ending_in_a_star_is_a_prefix() {
        let text = "- test: conformance/alu32-sdiv-*\n  arch: mips\n  reason: r\n  link: l\n  expires: 2027-01-15\n";
        let q = Quarantine::parse(Path::new("q.yaml"), text, "2026-12-03").expect("valid");
        let find = |name| q.find(Arch::Mips, "conformance", name, "jit").is_some();
        assert!(find("alu32-sdiv-reg-r3-by-r0"));
        assert!(find("alu32-sdiv-"));
        assert!(!find("alu32-smod-reg-r3-by-r0"));
        assert!(q
            .find(Arch::Mips, "verifier", "alu32-sdiv-x", "jit")
            .is_none());
    }

    #[test]
    fn an_expired_entry_fails_naming_its_line() {
        let e = Quarantine::parse(Path::new("suites/quarantine.yaml"), FILE, "2027-01-01")
            .expect_err("expired")
            .to_string();
        assert!(
            e.starts_with("suites/quarantine.yaml:2: the quarantine of test_bpf/ALU64_DIV_X on mips64el expired on 2026-12-31"),
            "{e}"
        );
    }

    #[test]
    fn malformed_entries_are_refused_with_their_line() {
        let bad_date = FILE.replace("2027-01-15", "2027-02-30");
        let e = Quarantine::parse(Path::new("q.yaml"), &bad_date, "2026-11-27")
            .expect_err("bad date")
            .to_string();
        assert!(e.starts_with("q.yaml:8: expires `2027-02-30`"), "{e}");
        let unknown = FILE.replace("  mode: jit", "  modes: jit");
        let e = Quarantine::parse(Path::new("q.yaml"), &unknown, "2026-11-27")
            .expect_err("unknown field")
            .to_string();
        assert!(e.contains("unknown field `modes`"), "{e}");
        assert!(
            Quarantine::parse(Path::new("q.yaml"), "# nothing yet\n", "2026-11-27")
                .expect("an empty list")
                .entries
                .is_empty()
        );
    }
}
