//! The download cache: Debian packages' apt state, unpacked kernels, the guest programs
//! built from C (`guest_c`); the locks of its parts, its staging directories, and the free
//! space a write into it needs.

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

/// A lock on one part of the cache, held until dropped: a kernel's entry, a source tree, a
/// build directory, a package architecture's apt state. Each part has its own, so a run that
/// needs only what is there never waits for a build of something else; whoever must wait says
/// so at once, naming the process that holds the lock and what for.
///
/// The locks are `flock`s of files in `CACHE/locks/`; they go with their process, however it
/// ends. Each file names its holder: its pid and what it holds the lock for.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Waits for the lock of `part` (a path in `cache`, or any name), held for `what`.
    pub fn acquire(cache: &Path, part: &str, what: &str) -> anyhow::Result<Lock> {
        Lock::wait(cache, part, what, false)
    }

    /// Waits for a share of the lock of `part`, which other sharers hold with it and an
    /// exclusive holder without them.
    pub fn acquire_shared(cache: &Path, part: &str, what: &str) -> anyhow::Result<Lock> {
        Lock::wait(cache, part, what, true)
    }

    fn wait(cache: &Path, part: &str, what: &str, shared: bool) -> anyhow::Result<Lock> {
        let (mut file, path) = Lock::open(cache, part)?;
        let tried = match shared {
            true => file.try_lock_shared(),
            false => file.try_lock(),
        };
        match tried {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                eprintln!("waiting for {what}: {}", holder(&path));
                match shared {
                    true => file.lock_shared(),
                    false => file.lock(),
                }
                .with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        Lock::claim(&mut file, &path, what)?;
        Ok(Lock { _file: file })
    }

    /// The lock of `part` if no other process holds it: for removing what may be in use.
    pub fn try_acquire(cache: &Path, part: &str, what: &str) -> anyhow::Result<Option<Lock>> {
        let (mut file, path) = Lock::open(cache, part)?;
        match file.try_lock() {
            Ok(()) => {
                Lock::claim(&mut file, &path, what)?;
                Ok(Some(Lock { _file: file }))
            }
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    fn open(cache: &Path, part: &str) -> anyhow::Result<(File, PathBuf)> {
        let dir = cache.join("locks");
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        let path = dir.join(lock_name(part));
        // Not truncated on open: the holder's name stays readable to those who wait.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok((file, path))
    }

    /// Writes who holds the lock into its file, for those who will wait on it.
    fn claim(file: &mut File, path: &Path, what: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        file.set_len(0)
            .and_then(|()| write!(file, "{}\n{what}\n", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The part whose lock a source tree has: by its name (a worktree's name in the cache, or the
/// source package's for every version of it). Builds share it while the tree holds their
/// checkout; checking out, adding and removing the tree take it alone.
pub fn tree_part(name: &str) -> String {
    format!("tree-{name}")
}

/// The file name of a part's lock: its path in the cache, `/` made `.`.
fn lock_name(part: &str) -> String {
    let name: String = part
        .chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    format!("{}.lock", name.trim_start_matches('.'))
}

/// Who holds the lock at `path`: the process the kernel's lock table (`/proc/locks`) names,
/// and what for, as the file says when that process wrote it (whoever holds a lock without
/// writing its file, `flock(1)` say, is named without it).
fn holder(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    let (written_by, what) = (lines.next().unwrap_or("").trim(), lines.next());
    let pid = lock_owner(path).unwrap_or_else(|| written_by.to_owned());
    let command = fs::read(Path::new("/proc").join(&pid).join("cmdline"))
        .ok()
        .filter(|_| !pid.is_empty())
        .map(|raw| {
            let words: Vec<String> = raw
                .split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            words.join(" ")
        });
    let process = match (pid.is_empty(), command) {
        (true, _) => "another process".to_owned(),
        (false, Some(command)) => format!("process {pid} ({command})"),
        (false, None) => format!("process {pid}"),
    };
    match what.filter(|_| written_by == pid) {
        Some(what) => format!("{process} holds {} for {what}", path.display()),
        None => format!("{process} holds {}", path.display()),
    }
}

/// The pid that holds a lock of the file at `path`, from `/proc/locks`, whose lines read
/// `1: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE 0 EOF` (waiters have `->` after the number).
fn lock_owner(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    let dev = rustix::fs::Dev::from(meta.dev());
    let file = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev),
        meta.ino()
    );
    let table = fs::read_to_string("/proc/locks").ok()?;
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, "FLOCK", _, _, pid, id, ..] if *id == file => Some((*pid).to_owned()),
            _ => None,
        }
    })
}

/// A run's scratch directory, where its guests' files and QMP sockets go: in `$TMPDIR`, or in
/// /tmp where `$TMPDIR` is so long that a socket's path (`.../.tmpXXXXXX/guest-N/qmp.sock`)
/// would pass the 107 bytes a Unix socket's path may have.
pub fn scratch_dir() -> anyhow::Result<tempfile::TempDir> {
    const ROOM: usize = 107 - "/.tmpXXXXXX/guest-9999/qmp.sock".len();
    let tmp = std::env::temp_dir();
    let base = match tmp.as_os_str().len() <= ROOM {
        true => tmp,
        false => PathBuf::from("/tmp"),
    };
    tempfile::TempDir::new_in(&base)
        .with_context(|| format!("cannot create a directory in {}", base.display()))
}

/// A staging directory in `parent`, to be renamed into place whole: `.tmp-PID-XXXXXX`, so that
/// [`crate::orphans`] removes only those whose process is gone.
pub fn staging_dir(parent: &Path) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!(".tmp-{}-", std::process::id()))
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))
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
    fn a_held_lock_names_its_holder_and_what_for() {
        let cache = tempfile::tempdir().expect("a temporary directory");
        let held = Lock::acquire(cache.path(), "build/mips-linux-source-6.1", "building mips")
            .expect("a free lock");
        let path = cache.path().join("locks/build.mips-linux-source-6.1.lock");
        let said = holder(&path);
        let want = format!("process {} (", std::process::id());
        assert!(said.starts_with(&want), "{said}");
        assert!(
            said.ends_with(&format!("holds {} for building mips", path.display())),
            "{said}"
        );
        // A lock is the process's own: another open file description of it cannot take it.
        let other = Lock::try_acquire(cache.path(), "build/mips-linux-source-6.1", "pruning");
        assert!(other.expect("no error").is_none(), "taken twice");
        drop(held);
        let free = Lock::try_acquire(cache.path(), "build/mips-linux-source-6.1", "pruning");
        assert!(free.expect("no error").is_some(), "not released");
        let other = Lock::try_acquire(cache.path(), "kernels/built-x86_64-0123", "a run");
        assert!(
            other.expect("no error").is_some(),
            "locks of other parts are apart"
        );

        // A holder that does not write the file (its last writer is gone) is named by the
        // kernel's lock table, without the writer's purpose.
        // In a group of its own: flock's `sleep` must end with it, not outlive the test.
        use std::os::unix::process::CommandExt as _;
        let mut flock = std::process::Command::new("flock")
            .arg(&path)
            .args(["sleep", "60"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("flock, from util-linux, runs");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while Lock::try_acquire(cache.path(), "build/mips-linux-source-6.1", "x")
            .expect("no error")
            .is_some()
        {
            assert!(std::time::Instant::now() < deadline, "flock never took it");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The try above wrote this process's pid into the file, as a holder that died would.
        let said = holder(&path);
        if let Some(group) = rustix::process::Pid::from_raw(flock.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = flock.wait();
        let want = format!("process {} (flock {}", flock.id(), path.display());
        assert!(said.starts_with(&want), "{said}");
        assert!(!said.contains(" for "), "{said}");
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
