//! What kernel builds leave in the cache once the tree they came from is gone: the worktree
//! of a deleted repository (a bisect's clone in /tmp, a test's) and the build directories of
//! such trees; and the staging directories of a run that was killed while it unpacked a
//! source or a kernel, or saved a snapshot. A worktree of Linux is 1.5 GB, so every build starts by removing them
//! (`prune`), and nothing gone stays on the disk past the next build.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The file in a build directory that names the tree it builds, one path on one line.
pub const TREE_RECORD: &str = "harness-tree";

/// A directory `prune` removed, and why.
pub struct Removed {
    pub path: PathBuf,
    pub why: &'static str,
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "removed {}: {}", self.path.display(), self.why)
    }
}

/// Removes the worktrees and build directories in `cache` whose tree is gone, and staging
/// directories whose process is gone; returns them. A worktree or build directory whose lock
/// another process holds is in use (a worktree being added has no `.git` yet): it stays.
pub fn prune(cache: &Path) -> Vec<Removed> {
    let mut removed: Vec<Removed> = ["src", "kernels", "snapshots"]
        .iter()
        .flat_map(|parent| remove_staging(&cache.join(parent)))
        .collect();
    let mut remove = |path: PathBuf, why| {
        let part = match path.strip_prefix(cache) {
            Ok(part) => part.to_string_lossy().into_owned(),
            Err(_) => return false,
        };
        let lock = match path.parent().is_some_and(|p| name_of(p) == "worktrees") {
            true => crate::cache::tree_part(&name_of(&path)),
            false => part,
        };
        let Ok(Some(_lock)) = crate::cache::Lock::try_acquire(cache, &lock, "removing it") else {
            return false;
        };
        let gone = fs::remove_dir_all(&path).is_ok();
        if gone {
            removed.push(Removed { path, why });
        }
        gone
    };
    let mut gone_worktrees = Vec::new();
    for dir in subdirectories(&cache.join("worktrees")) {
        // A worktree's `.git` is a file, `gitdir: REPO/worktrees/NAME`, which its repository
        // keeps: without it, the repository is gone or has forgotten the worktree.
        let why = match fs::read_to_string(dir.join(".git")) {
            Err(_) => "`git worktree add` stopped halfway",
            Ok(text) => match text.strip_prefix("gitdir:") {
                Some(gitdir) if Path::new(gitdir.trim()).exists() => continue,
                _ => "its repository is gone",
            },
        };
        let name = name_of(&dir);
        if remove(dir, why) {
            gone_worktrees.push(name);
        }
    }
    for dir in subdirectories(&cache.join("build")) {
        let tree_gone = match fs::read_to_string(dir.join(TREE_RECORD)) {
            Ok(tree) => !Path::new(tree.trim_end_matches('\n')).exists(),
            // Made before build directories named their tree: `ARCH-NAME`, where NAME is its
            // worktree's.
            Err(_) => {
                let name = name_of(&dir);
                gone_worktrees.iter().any(|w| {
                    name.strip_suffix(w.as_str())
                        .is_some_and(|arch| arch.ends_with('-'))
                })
            }
        };
        if tree_gone {
            remove(dir, "its tree is gone");
        }
    }
    removed
}

/// Removes the staging directories in `dir` whose process is gone: those of
/// [`crate::cache::staging_dir`], `.tmp-PID-XXXXXX`, and the `.tmpXXXXXX` of older harnesses,
/// which made them only under a lock of the whole cache.
pub fn remove_staging(dir: &Path) -> Vec<Removed> {
    subdirectories(dir)
        .into_iter()
        .filter(|d| {
            let name = name_of(d);
            let Some(rest) = name.strip_prefix(".tmp") else {
                return false;
            };
            let pid = rest.strip_prefix('-').and_then(|r| r.split('-').next());
            match pid {
                Some(pid) => !Path::new("/proc").join(pid).exists(),
                None => true,
            }
        })
        .filter(|d| fs::remove_dir_all(d).is_ok())
        .map(|path| Removed {
            path,
            why: "a staging directory of a run that was killed",
        })
        .collect()
}

fn name_of(dir: &Path) -> String {
    dir.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).expect("mkdir");
        for (name, text) in files {
            fs::write(dir.join(name), text).expect("write");
        }
    }

    #[test]
    fn only_what_belongs_to_a_tree_that_is_gone_is_removed() {
        let root = tempfile::tempdir().expect("a temporary directory");
        let cache = root.path().join("cache");
        let repo = root.path().join("net-next.git");
        make(&repo.join("worktrees/net-next.git-1111aaaa"), &[]);
        let live_gitdir = format!(
            "gitdir: {}\n",
            repo.join("worktrees/net-next.git-1111aaaa").display()
        );
        let dead_gitdir = format!(
            "gitdir: {}\n",
            root.path()
                .join("gone.git/worktrees/gone.git-2222bbbb")
                .display()
        );
        let user_tree = root.path().join("linux");
        make(&user_tree, &[]);
        let live_tree = format!("{}\n", user_tree.display());
        let dead_tree = format!("{}\n", root.path().join("deleted-linux").display());

        make(
            &cache.join("worktrees/net-next.git-1111aaaa"),
            &[(".git", &live_gitdir)],
        );
        make(
            &cache.join("worktrees/gone.git-2222bbbb"),
            &[(".git", &dead_gitdir)],
        );
        make(
            &cache.join("worktrees/half-added-3333cccc"),
            &[("Makefile", "")],
        );
        make(&cache.join("build/x86_64-net-next.git-1111aaaa"), &[]);
        make(&cache.join("build/x86_64-gone.git-2222bbbb"), &[]);
        make(&cache.join("build/mips-gone.git-2222bbbb"), &[]);
        make(
            &cache.join("build/mips-linux-4444dddd"),
            &[(TREE_RECORD, &live_tree)],
        );
        make(
            &cache.join("build/mips-deleted-linux-5555eeee"),
            &[(TREE_RECORD, &dead_tree)],
        );
        make(&cache.join("build/x86_64-linux-source-6.1"), &[]);
        make(&cache.join("src/.tmpAbC123"), &[("Makefile", "")]);
        make(
            &cache.join("src/linux-source-6.1=6.1.192-2"),
            &[("Makefile", "")],
        );
        make(&cache.join("kernels/.tmp-4194304000-XyZ789"), &[]);
        // This process's own, and one of a worktree and a build directory in use.
        let live = format!("kernels/.tmp-{}-LiVe12", std::process::id());
        make(&cache.join(&live), &[]);
        make(
            &cache.join("worktrees/being-added-6666ffff"),
            &[("Makefile", "")],
        );
        make(
            &cache.join("build/mips-being-added-6666ffff"),
            &[(TREE_RECORD, &dead_tree)],
        );
        let tree = crate::cache::tree_part("being-added-6666ffff");
        let _adding = crate::cache::Lock::acquire(&cache, &tree, "adding").expect("a free lock");
        let _building =
            crate::cache::Lock::acquire(&cache, "build/mips-being-added-6666ffff", "building")
                .expect("a free lock");
        make(&cache.join("kernels/built-mips-0123456789abcdef"), &[]);
        make(
            &cache.join("snapshots/.tmpQrS456"),
            &[("initramfs.cpio", "")],
        );
        make(
            &cache.join("snapshots/x86_64-0123456789abcdef"),
            &[("snapshot.bin", "")],
        );

        let removed: Vec<String> = prune(&cache)
            .iter()
            .map(|r| r.to_string().replace(&format!("{}/", cache.display()), ""))
            .collect();
        assert_eq!(
            removed,
            [
                "removed src/.tmpAbC123: a staging directory of a run that was killed",
                "removed kernels/.tmp-4194304000-XyZ789: a staging directory of a run that was killed",
                "removed snapshots/.tmpQrS456: a staging directory of a run that was killed",
                "removed worktrees/gone.git-2222bbbb: its repository is gone",
                "removed worktrees/half-added-3333cccc: `git worktree add` stopped halfway",
                "removed build/mips-deleted-linux-5555eeee: its tree is gone",
                "removed build/mips-gone.git-2222bbbb: its tree is gone",
                "removed build/x86_64-gone.git-2222bbbb: its tree is gone",
            ]
        );
        for kept in [
            "worktrees/net-next.git-1111aaaa",
            "build/x86_64-net-next.git-1111aaaa",
            "build/mips-linux-4444dddd",
            "build/x86_64-linux-source-6.1",
            "src/linux-source-6.1=6.1.192-2",
            "kernels/built-mips-0123456789abcdef",
            "snapshots/x86_64-0123456789abcdef",
            &live,
            "worktrees/being-added-6666ffff",
            "build/mips-being-added-6666ffff",
        ] {
            assert!(cache.join(kept).is_dir(), "{kept} is kept");
        }
        assert!(prune(&cache).is_empty(), "a second prune finds nothing");
    }
}
