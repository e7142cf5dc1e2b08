//! The download cache: Debian packages' apt state, unpacked kernels, the guest programs
//! built from C (`guest_c`); its lock, and the free space a write into it needs.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// `$XDG_CACHE_HOME/bpf-jit-harness`, else `~/.cache/bpf-jit-harness`.
pub fn default_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set; pass --cache-dir")?;
    Ok(base.join("bpf-jit-harness"))
}

/// Fails, before anything is written, when the filesystem of `dir` has less than `need`
/// bytes free for `what`: a disk that fills halfway through a checkout or a build leaves a
/// tree or a build directory that is neither there nor gone, and an error from deep inside git
/// or make.
pub fn ensure_free(dir: &Path, need: u64, what: &str) -> anyhow::Result<()> {
    // The nearest directory that exists: `dir` itself may be about to be made.
    let existing = dir
        .ancestors()
        .find(|d| d.is_dir())
        .unwrap_or(Path::new("/"));
    let stat = rustix::fs::statvfs(existing)
        .with_context(|| format!("cannot tell the free space of {}", existing.display()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < need {
        anyhow::bail!(
            "{what} needs about {} in {}, but its filesystem has {} free; free some space \
             (`cargo xtask kernel --prune` removes older built kernels) or give another \
             --cache-dir",
            gigabytes(need),
            dir.display(),
            gigabytes(free)
        );
    }
    Ok(())
}

/// The disk space the files under `dir` take, in bytes (blocks, as `du`), links not followed.
pub fn disk_use(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return 0;
    };
    let inner: u64 = match meta.is_dir() {
        true => fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| disk_use(&e.path()))
            .sum(),
        false => 0,
    };
    meta.blocks() * 512 + inner
}

pub fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Holds the cache for one run's fetches: runs started together (parallel CI jobs, tests)
/// must not download and unpack the same package into the same place at once.
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(cache: &Path) -> anyhow::Result<Lock> {
        fs::create_dir_all(cache)
            .with_context(|| format!("cannot create the cache directory {}", cache.display()))?;
        let path = cache.join("lock");
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Lock { _file: file })
    }
}

impl Lock {
    /// Holds a run's output directory: a second run into the same directory is refused, so
    /// two runs never write the same report. The lock is the kernel's; it goes with the
    /// process, however that ends.
    pub fn acquire_for_run(out: &Path) -> anyhow::Result<Lock> {
        let path = out.join(".lock");
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(crate::UsageError::wrap(anyhow::anyhow!(
                "another run is writing to {} (it holds {}); give this one another --out",
                out.display(),
                path.display()
            ))),
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_little_free_space_is_said_with_the_directory_and_the_figures() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let worktree = dir.path().join("worktrees").join("net-next-0123abcd");
        ensure_free(&worktree, 1, "a worktree").expect("a byte is free");
        let error = ensure_free(&worktree, 10u64.pow(18), "a worktree of net-next")
            .expect_err("no disk is that big");
        let message = format!("{error:#}");
        let want = format!(
            "a worktree of net-next needs about 1000000000.0 GB in {}, but its filesystem has ",
            worktree.display()
        );
        assert!(message.starts_with(&want), "{message}");
        assert!(
            message.contains("`cargo xtask kernel --prune`"),
            "{message}"
        );
    }

    #[test]
    fn disk_use_counts_every_file_below_once() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let empty = disk_use(dir.path());
        fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        fs::write(dir.path().join("a/b/big"), vec![1u8; 1 << 20]).expect("write");
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("loop")).expect("link");
        let used = disk_use(dir.path()) - empty;
        // A megabyte of data, two directories and a link: not two megabytes, and no loop.
        assert!((1 << 20..3 << 19).contains(&used), "{used}");
        assert_eq!(disk_use(&dir.path().join("no such")), 0);
    }
}
