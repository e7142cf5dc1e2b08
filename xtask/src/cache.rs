//! The download cache: Debian packages' apt state, unpacked kernels, the guest programs
//! built from C (`guest_c`).

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
