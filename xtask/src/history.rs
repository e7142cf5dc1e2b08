//! The history `track` keeps: one run per (arch, kernel flavour, revision), in
//! `HISTORY/ARCH/FLAVOUR/REVISION/`, each a whole run directory (report.json and the rest)
//! with `revision.json` beside it.
//!
//! An entry is run in a staging directory of the history and renamed into place whole, so a
//! crash or Ctrl-C never leaves half an entry. An entry is never rewritten: `--rerun` moves
//! the old one aside before the new one goes in, and removes it after.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use runner::arch::Arch;
use runner::report::Report;
use runner::track::{RevisionInfo, Run};

/// Staging directories live here, inside the history so that renames stay on one disk.
const STAGING: &str = ".staging";
const REVISION_FILE: &str = "revision.json";

pub struct History {
    root: PathBuf,
}

impl History {
    pub fn new(root: PathBuf) -> History {
        History { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The entry of revision `id` on `arch`, whatever its flavour.
    pub fn find(&self, arch: Arch, id: &str) -> Option<PathBuf> {
        let flavours = fs::read_dir(self.root.join(arch.name())).ok()?;
        flavours
            .flatten()
            .map(|f| f.path().join(dir_name(id)))
            .find(|dir| dir.join(REVISION_FILE).is_file())
    }

    /// A new directory for a run, inside the history; removed when dropped unless stored.
    pub fn staging(&self) -> anyhow::Result<tempfile::TempDir> {
        let dir = self.root.join(STAGING);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        tempfile::TempDir::new_in(&dir)
            .with_context(|| format!("cannot create a directory in {}", dir.display()))
    }

    /// Moves the finished run in `staged` into its place, with `info` beside it, and returns
    /// the entry's (arch, flavour). An entry already there is replaced only if `replace`.
    pub fn store(
        &self,
        staged: tempfile::TempDir,
        info: &RevisionInfo,
        replace: bool,
    ) -> anyhow::Result<(Arch, String)> {
        let report = Report::read(&staged.path().join("report.json"))?;
        // Every line of a flavour in one series: a change is pinned on the line it came with.
        let (arch, flavour) = (report.kernel.arch, report.kernel.family());
        let info_path = staged.path().join(REVISION_FILE);
        runner::report::write_atomically(&info_path, &serde_json::to_vec_pretty(info)?)
            .with_context(|| format!("cannot write {}", info_path.display()))?;
        let parent = self.root.join(arch.name()).join(&flavour);
        fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let dest = parent.join(dir_name(&info.id));
        let old = match (dest.exists(), replace) {
            (false, _) => None,
            (true, false) => bail!("{} is in the history already", dest.display()),
            (true, true) => {
                let aside = self.staging()?.keep();
                fs::rename(&dest, aside.join("old"))
                    .with_context(|| format!("cannot move {} aside", dest.display()))?;
                Some(aside)
            }
        };
        let staged = staged.keep();
        fs::rename(&staged, &dest)
            .with_context(|| format!("cannot move {} to {}", staged.display(), dest.display()))?;
        if let Some(old) = old {
            let _ = fs::remove_dir_all(old);
        }
        Ok((arch, flavour))
    }

    /// Every run of `arch` and `flavour` in the history; those whose revision `is_new` says
    /// were run now are marked so.
    pub fn runs(
        &self,
        arch: Arch,
        flavour: &str,
        is_new: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Vec<Run>> {
        let dir = self.root.join(arch.name()).join(flavour);
        let entries =
            fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let mut runs = Vec::new();
        for entry in entries.flatten() {
            let info_path = entry.path().join(REVISION_FILE);
            if !info_path.is_file() {
                continue;
            }
            let text = fs::read(&info_path)
                .with_context(|| format!("cannot read {}", info_path.display()))?;
            let info: RevisionInfo = serde_json::from_slice(&text).with_context(|| {
                format!(
                    "{} is not a history entry; remove its directory to run the revision again",
                    info_path.display()
                )
            })?;
            let report = Report::read(&entry.path().join("report.json"))?;
            runs.push(Run {
                new: is_new(&info.id),
                info,
                report,
            });
        }
        Ok(runs)
    }
}

/// The directory of revision `id`: the id, with anything that is not a plain file-name
/// character replaced.
fn dir_name(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '+' => c,
            _ => '_',
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}
