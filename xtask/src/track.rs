//! `cargo xtask track`: the suites over a series of kernel revisions, each run kept in the
//! history (`history.rs`), then the view of every test that changed (`runner::track`),
//! written as track.md, track.json and track.html. A revision the history has is not run
//! again, so a nightly run builds and runs only what is new.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use runner::arch::Arch;
use runner::diff::Class;
use runner::engine::ExitKind;
use runner::report::Report;
use runner::track::{self, RevisionInfo, Series, Track};
use xshell::Shell;

use crate::flags::{BuildArgs, Test, TrackCmd};
use crate::git;
use crate::history::History;
use crate::kernel::{self, KernelSpec};
use crate::{cache, project_root, signals, UsageError};

/// The changes of a new revision that make `track` exit with status 1, as the gate's default.
const FAILING: [Class; 2] = Class::GATE_DEFAULT;

/// A revision to run: what the history records, and the kernel to boot.
pub struct Revision {
    pub info: RevisionInfo,
    pub kernel: KernelChoice,
}

pub enum KernelChoice {
    /// One of Debian's packaged kernels, by ABI.
    Debian(String),
    /// A commit of `--kernel-source`, built.
    Commit(String),
}

impl TrackCmd {
    pub fn run(self) -> anyhow::Result<u8> {
        let cancel = Arc::new(AtomicBool::new(false));
        signals::install(Arc::clone(&cancel))?;
        if self.bisect.is_some() {
            return crate::bisect::run(&self, &cancel);
        }
        let sh = Shell::new()?;
        let history = History::new(
            self.history
                .clone()
                .unwrap_or_else(|| project_root().join("reports").join("history")),
        );
        let mut series: BTreeSet<(Arch, String)> = BTreeSet::new();
        let mut new: BTreeSet<(Arch, String)> = BTreeSet::new();
        let mut failed: Vec<String> = Vec::new();
        for &arch in &self.arch {
            for revision in self.revisions(&sh, arch)? {
                let id = &revision.info.id;
                match self.track_one(&history, arch, &revision, &cancel)? {
                    Tracked::Interrupted => return Ok(130),
                    Tracked::Failed => failed.push(format!("{arch} {id}")),
                    Tracked::Known(flavour) => series.extend(flavour.map(|f| (arch, f))),
                    Tracked::Kept(arch, flavour) => {
                        new.insert((arch, id.clone()));
                        series.insert((arch, flavour));
                    }
                }
            }
        }
        let mut views = Vec::new();
        for (arch, flavour) in &series {
            let runs = history.runs(*arch, flavour, |id| new.contains(&(*arch, id.to_owned())))?;
            views.push(Series::build(*arch, flavour, runs));
        }
        let view = Track::new(views);
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| history.root().to_owned());
        write_outputs(&out, &view)?;
        let regressions = print_news(&view);
        println!("track: {}", out.join("track.md").display());
        Ok(if !failed.is_empty() {
            eprintln!("error: not kept in the history: {}", failed.join(", "));
            crate::EXIT_HARNESS
        } else if regressions > 0 {
            1
        } else {
            0
        })
    }

    /// The revisions to run on `arch`, oldest first.
    fn revisions(&self, sh: &Shell, arch: Arch) -> anyhow::Result<Vec<Revision>> {
        if !self.debian.is_empty() {
            let cache = self.cache()?;
            let mut out = Vec::new();
            for name in &self.debian {
                let choice = match crate::lines::choose(name, arch) {
                    Ok(choice) => choice,
                    Err(e) => {
                        eprintln!("track: {e}; skipped");
                        continue;
                    }
                };
                let abi = &choice.abi;
                let available = kernel::debian_abis(sh, arch, choice.line, &cache)?;
                if !available.contains(abi) {
                    eprintln!(
                        "track: Debian's archive has no {abi} kernel for {arch}; skipped ({} has {})",
                        choice.line,
                        available.join(", ")
                    );
                    continue;
                }
                out.push(Revision {
                    info: RevisionInfo {
                        id: abi.clone(),
                        order: abi_order(abi),
                        subject: format!("Debian {abi}"),
                    },
                    kernel: KernelChoice::Debian(abi.clone()),
                });
            }
            return Ok(out);
        }
        let (Some(tree), Some(range)) = (&self.kernel_source, &self.revs) else {
            return Err(UsageError::wrap(anyhow::anyhow!(
                "say which revisions: --debian ABI,ABI... or --kernel-source DIR --revs A..B \
                 (or --bisect TEST --good A --bad B)"
            )));
        };
        let Some((from, to)) = range.split_once("..") else {
            return Err(UsageError::wrap(anyhow::anyhow!(
                "--revs {range}: expected A..B"
            )));
        };
        let from = git::resolve(sh, tree, from)?;
        let to = git::resolve(sh, tree, to)?;
        let after = git::between(sh, tree, &from, &to, true)?;
        let step = self.step as usize;
        let last = after.len() - 1;
        let picked = std::iter::once(&from).chain(
            after
                .iter()
                .enumerate()
                .filter(|&(i, _)| (i + 1) % step == 0 || i == last)
                .map(|(_, c)| c),
        );
        picked
            .map(|hash| {
                let commit = git::commit(sh, tree, hash)?;
                Ok(Revision {
                    info: commit.info,
                    kernel: KernelChoice::Commit(commit.hash),
                })
            })
            .collect()
    }

    fn cache(&self) -> anyhow::Result<PathBuf> {
        match &self.cache_dir {
            Some(dir) => Ok(dir.clone()),
            None => cache::default_dir(),
        }
    }

    /// One revision on `arch`: found in the history, or run and kept there.
    fn track_one(
        &self,
        history: &History,
        arch: Arch,
        revision: &Revision,
        cancel: &AtomicBool,
    ) -> anyhow::Result<Tracked> {
        let id = &revision.info.id;
        if let Some(entry) = history.find(arch, id).filter(|_| !self.rerun) {
            eprintln!(
                "track: {arch} {id} is in the history already ({})",
                entry.display()
            );
            let flavour = entry.parent().and_then(Path::file_name);
            return Ok(Tracked::Known(
                flavour.map(|f| f.to_string_lossy().into_owned()),
            ));
        }
        eprintln!("track: {arch} {id}: {}", revision.info.subject);
        let started = Instant::now();
        let staged = history.staging()?;
        let test = self.test(arch, &revision.kernel, staged.path())?;
        match test.run_until(cancel) {
            Ok(run) if run.exit == ExitKind::Interrupted => return Ok(Tracked::Interrupted),
            Ok(_) => {}
            Err(e) if e.chain().any(|c| c.is::<UsageError>()) => return Err(e),
            Err(e) => {
                eprintln!("error: {arch} {id}: {e:#}");
                return Ok(Tracked::Failed);
            }
        }
        let report_path = staged.path().join("report.json");
        let complete = Report::read(&report_path).map(|r| r.complete);
        if !matches!(complete, Ok(true)) {
            eprintln!("error: {arch} {id}: the run did not finish; not kept in the history");
            return Ok(Tracked::Failed);
        }
        let mut info = revision.info.clone();
        if let KernelChoice::Debian(_) = revision.kernel {
            info.subject = debian_version(&report_path).unwrap_or(info.subject);
        }
        let (arch, flavour) = history.store(staged, &info, self.rerun)?;
        eprintln!(
            "track: {arch} {id} ({flavour}) kernel ready and run in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Tracked::Kept(arch, flavour))
    }

    /// The `test` run of `kernel` on `arch` with this command's selection, into `out`.
    pub fn test(&self, arch: Arch, kernel: &KernelChoice, out: &Path) -> anyhow::Result<Test> {
        let mut test = Test::new(arch);
        test.gate.no_baseline = true;
        test.selection = self.selection.clone();
        test.out = Some(out.to_owned());
        test.cache_dir = self.cache_dir.clone();
        test.no_install = self.no_install;
        test.jobs = self.jobs;
        test.retry_failures = self.retry_failures;
        match kernel {
            KernelChoice::Debian(abi) => {
                test.kernel = Some(KernelSpec::Debian { name: abi.clone() });
            }
            KernelChoice::Commit(hash) => {
                test.build = BuildArgs {
                    kernel_source: self.kernel_source.clone(),
                    rev: Some(hash.clone()),
                    ..Default::default()
                };
            }
        }
        Ok(test)
    }
}

/// What became of one revision.
enum Tracked {
    /// In the history already, under its flavour (when the entry's path names one).
    Known(Option<String>),
    /// Run and kept, under its arch and flavour.
    Kept(Arch, String),
    /// Not kept: the run failed or did not finish.
    Failed,
    /// Ctrl-C.
    Interrupted,
}

/// `6.1.0-50` as one number that orders ABIs: each part below 1000.
fn abi_order(abi: &str) -> u64 {
    let mut parts = kernel::version_key(abi);
    parts.resize(4, 0);
    parts.iter().fold(0, |order, &p| order * 1000 + p.min(999))
}

/// The package version a Debian run's report names (`6.1.170-1`), as its subject.
fn debian_version(report: &Path) -> Option<String> {
    let report = Report::read(report).ok()?;
    let (package, version) = report.kernel.source.split_once('=')?;
    Some(format!(
        "{} {version}",
        package.strip_prefix("debian:").unwrap_or(package)
    ))
}

fn write_outputs(out: &Path, view: &Track) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut json = serde_json::to_vec_pretty(view)?;
    json.push(b'\n');
    let files: [(&str, Vec<u8>); 3] = [
        ("track.json", json),
        ("track.md", track::markdown::render(view).into_bytes()),
        ("track.html", track::html::render(view).into_bytes()),
    ];
    for (name, data) in files {
        let path = out.join(name);
        runner::report::write_atomically(&path, &data)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Prints each series' news, and returns how many of them fail (regression, coverage lost).
fn print_news(view: &Track) -> usize {
    let mut failing = 0;
    for series in &view.series {
        let new = series.revisions.iter().filter(|r| r.new).count();
        let news: Vec<_> = series.new_changes().collect();
        println!(
            "{} {}: {} revisions, {new} new, {} change(s) in the new ones",
            series.arch,
            series.flavour,
            series.revisions.len(),
            news.len()
        );
        for (test, change) in news {
            failing += usize::from(FAILING.contains(&change.class));
            println!(
                "  {} {} {} [{}]: {} -> {}, first in {} (after {})",
                change.class.name(),
                test.suite,
                test.name,
                test.mode,
                change.before.as_deref().unwrap_or("absent"),
                change.after.as_deref().unwrap_or("absent"),
                change.revision,
                change.since
            );
        }
    }
    failing
}

#[cfg(test)]
mod tests {
    use super::abi_order;

    #[test]
    fn abis_order_by_their_numbers() {
        assert!(abi_order("6.1.0-9") < abi_order("6.1.0-47"));
        assert!(abi_order("6.1.0-56") < abi_order("6.12.0-1"));
    }
}
