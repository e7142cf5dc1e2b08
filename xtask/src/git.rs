//! The revisions of a kernel tree, as `track` and its bisection walk them.

use std::path::Path;

use anyhow::Context;
use runner::track::RevisionInfo;
use xshell::{cmd, Shell};

use crate::UsageError;

/// A commit, and what the history records of it.
pub struct Commit {
    /// The full hash: what is built.
    pub hash: String,
    pub info: RevisionInfo,
}

/// The commit `rev` names in `tree`; an error naming both when there is none.
pub fn resolve(sh: &Shell, tree: &Path, rev: &str) -> anyhow::Result<String> {
    let spec = format!("{rev}^{{commit}}");
    cmd!(sh, "git -C {tree} rev-parse --verify --quiet {spec}")
        .quiet()
        .ignore_stderr()
        .read()
        .map_err(|_| {
            UsageError::wrap(anyhow::anyhow!(
                "{rev}: no such revision in {}",
                tree.display()
            ))
        })
}

/// `hash` with its short id (12 digits), subject, and place in history: the number of
/// commits it contains, which grows along every line of descent.
pub fn commit(sh: &Shell, tree: &Path, hash: &str) -> anyhow::Result<Commit> {
    let count = cmd!(sh, "git -C {tree} rev-list --count {hash}")
        .quiet()
        .read()
        .with_context(|| format!("cannot count the commits of {hash} in {}", tree.display()))?;
    let format = "--format=%h%x00%s";
    let line = cmd!(sh, "git -C {tree} log -1 --abbrev=12 {format} {hash}")
        .quiet()
        .read()
        .with_context(|| format!("cannot read commit {hash} of {}", tree.display()))?;
    let (short, subject) = line.split_once('\0').unwrap_or((hash, ""));
    Ok(Commit {
        hash: hash.to_owned(),
        info: RevisionInfo {
            id: short.to_owned(),
            order: count.trim().parse().unwrap_or(0),
            subject: subject.to_owned(),
        },
    })
}

/// The commits after `from` up to `to` included, oldest first: the first-parent line when
/// `first_parent`, else every commit on the ancestry path between them (what a bisection
/// searches).
pub fn between(
    sh: &Shell,
    tree: &Path,
    from: &str,
    to: &str,
    first_parent: bool,
) -> anyhow::Result<Vec<String>> {
    let line = if first_parent {
        "--first-parent"
    } else {
        "--ancestry-path"
    };
    let range = format!("{from}..{to}");
    let list = cmd!(sh, "git -C {tree} rev-list --reverse {line} {range}")
        .quiet()
        .read()
        .with_context(|| format!("cannot list {range} in {}", tree.display()))?;
    let commits: Vec<String> = list.lines().map(str::to_owned).collect();
    if commits.is_empty() {
        return Err(UsageError::wrap(anyhow::anyhow!(
            "{range}: no commit after {from} leads to {to} in {}",
            tree.display()
        )));
    }
    Ok(commits)
}
