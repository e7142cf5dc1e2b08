//! The cache of booted guests (`runner::snapshot`): a template per (QEMU, kernel, image),
//! made when missing, kept under a lock, the least recently used pruned.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use runner::arch::Arch;
use runner::image;
use runner::kernel::Kernel;
use runner::qemu::{MemoryFile, QemuConfig, Window};
use runner::snapshot::{agent_devices, boot_and_save, Template};
use sha2::{Digest, Sha256};

/// What a template guest is made of: the cache keeps one per kind.
pub struct Guest<'a> {
    pub arch: Arch,
    pub kernel: &'a Kernel,
    /// Its PID 1.
    pub init: &'a Path,
    pub memory_mib: u32,
    /// The agent, for a template agent guests start from too: its image has the agent and
    /// QEMU gives it a shared-memory window. Ignored where QEMU has no window, or the kernel
    /// no PCI to see it on.
    pub agent: Option<&'a Path>,
}

/// The template of `guest`, made now if the cache has none.
pub fn template(
    guest: &Guest<'_>,
    cache: &Path,
    boot_timeout: Duration,
) -> anyhow::Result<Template> {
    let Guest {
        arch,
        kernel,
        init,
        memory_mib,
        agent,
    } = *guest;
    let agent = agent.filter(|_| runner::snapshot::agents_start_booted(arch, kernel));
    let dir = cache.join("snapshots");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Those of runs killed while they made a template.
    for removed in crate::orphans::remove_staging(&dir) {
        eprintln!("{removed}");
    }
    let staging = crate::cache::staging_dir(&dir)?;
    let initrd = staging.path().join("initramfs.cpio");
    image::template(arch, init, kernel, agent, &initrd)?;
    let key = key(arch, kernel, &initrd, memory_mib, agent.is_some())?;
    let entry = dir.join(format!("{arch}-{key}"));
    let template = Template {
        initrd: entry.join("initramfs.cpio"),
        snapshot: entry.join("snapshot.bin"),
        memory: entry.join("memory"),
        stand_in: None,
        window: agent.map(|_| entry.join("window")),
    };
    let found = || {
        // Its time says when it was last used: the least recently used go first.
        template.memory.is_file()
            && template.snapshot.is_file()
            && fs::File::options()
                .append(true)
                .open(&template.snapshot)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                .is_ok()
    };
    if found() {
        return with_stand_in(template, kernel, &entry);
    }
    let part = format!("snapshots/{arch}-{key}");
    let _lock = crate::cache::Lock::acquire(
        cache,
        &part,
        &format!("the template guest of {arch} in {}", entry.display()),
    )?;
    // Another run may have made it while this one waited.
    if found() {
        return with_stand_in(template, kernel, &entry);
    }
    let staged = Staged {
        initrd: &initrd,
        qmp: staging.path().join("qmp.sock"),
        saved: staging.path().join("snapshot.bin"),
        memory: staging.path().join("memory"),
    };
    boot_and_keep(guest, &template, &entry, &staged, boot_timeout)?;
    prune(cache, &entry);
    with_stand_in(template, kernel, &entry)
}

/// Where a template being made is, before it moves into its entry.
struct Staged<'a> {
    initrd: &'a Path,
    qmp: PathBuf,
    saved: PathBuf,
    memory: PathBuf,
}

/// Boots `guest` from the `staged` image, saves it, and moves both into `entry` as `template`.
fn boot_and_keep(
    guest: &Guest<'_>,
    template: &Template,
    entry: &Path,
    staged: &Staged<'_>,
    boot_timeout: Duration,
) -> anyhow::Result<()> {
    let (arch, memory_mib) = (guest.arch, guest.memory_mib);
    eprintln!("booting a template guest of {arch} once, to start every guest from it");
    let started = Instant::now();
    // Booted from the entry's own paths: the image's and window's are on QEMU's command line
    // only, but keep them the ones restores use.
    fs::create_dir_all(entry).with_context(|| format!("cannot create {}", entry.display()))?;
    let mut config = QemuConfig {
        qmp: Some(staged.qmp.clone()),
        memory_file: Some(MemoryFile {
            path: staged.memory.clone(),
            shared: true,
        }),
        memory_mib,
        ..QemuConfig::boot(arch, guest.kernel.image.clone(), template.initrd.clone())
    };
    if let Some(path) = &template.window {
        Window::create(path.clone(), Vec::new())
            .with_context(|| format!("cannot create {}", path.display()))?;
        config = agent_devices(config, path);
    }
    fs::rename(staged.initrd, &template.initrd)
        .with_context(|| format!("cannot move the image to {}", template.initrd.display()))?;
    boot_and_save(&config, &staged.saved, boot_timeout).with_context(|| {
        format!("cannot make a snapshot of a booted {arch} guest ({memory_mib} MiB of memory)")
    })?;
    // The memory first: a snapshot in the entry says the template is whole. Restored guests
    // map the file, so it never changes once there: a template made again gets a new one.
    fs::rename(&staged.memory, &template.memory)
        .with_context(|| format!("cannot move the memory to {}", template.memory.display()))?;
    fs::rename(&staged.saved, &template.snapshot).with_context(|| {
        format!(
            "cannot move the snapshot to {}",
            template.snapshot.display()
        )
    })?;
    eprintln!(
        "template guest saved in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        template.snapshot.display()
    );
    Ok(())
}

/// `template` with the stand-in its restores load instead of `kernel`, written into its
/// `entry` once (entries made before stand-ins get theirs now).
fn with_stand_in(template: Template, kernel: &Kernel, entry: &Path) -> anyhow::Result<Template> {
    let path = entry.join("stand-in.elf");
    if !path.is_file() {
        let image = fs::read(&kernel.image)
            .with_context(|| format!("cannot read {}", kernel.image.display()))?;
        let Some(stand_in) = runner::vmlinux::stand_in(&image) else {
            return Ok(template);
        };
        runner::report::write_atomically(&path, &stand_in)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(Template {
        stand_in: Some(path),
        ..template
    })
}

/// Templates kept in the cache: each is 16 to 78 MB on disk, and a `track` over many revisions
/// makes one per kernel.
const KEEP: usize = 8;

/// Removes the least recently used snapshots beyond [`KEEP`], never `keep` nor one another run
/// is making.
fn prune(cache: &Path, keep: &Path) {
    let dir = cache.join("snapshots");
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != keep)
        .filter_map(|p| {
            let used = fs::metadata(p.join("snapshot.bin")).ok()?.modified().ok()?;
            Some((used, p))
        })
        .collect();
    entries.sort();
    let excess = (entries.len() + 1).saturating_sub(KEEP);
    for (_, old) in entries.into_iter().take(excess) {
        let part = format!(
            "snapshots/{}",
            old.file_name().unwrap_or_default().to_string_lossy()
        );
        if let Ok(Some(_lock)) = crate::cache::Lock::try_acquire(cache, &part, "removing it") {
            let _ = fs::remove_dir_all(old);
        }
    }
}

/// What decides a snapshot: QEMU's version, the kernel, the image, and the command line.
fn key(
    arch: Arch,
    kernel: &Kernel,
    initrd: &Path,
    memory_mib: u32,
    window: bool,
) -> anyhow::Result<String> {
    let qemu = arch.qemu().binary;
    let version = std::process::Command::new(qemu)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {qemu}"))?;
    let mut hash = Sha256::new();
    hash.update(&version.stdout);
    for file in [&kernel.image, &initrd.to_path_buf()] {
        let data = fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        hash.update(&data);
    }
    // The paths are the entry's, named by this key: the rest of the command line counts.
    let mut probe = QemuConfig {
        memory_mib,
        ..QemuConfig::boot(arch, PathBuf::from("K"), PathBuf::from("I"))
    };
    if window {
        probe = agent_devices(probe, Path::new("W"));
    }
    probe.memory_file = Some(MemoryFile {
        path: PathBuf::from("M"),
        shared: true,
    });
    let (_, args) = probe.command_line();
    hash.update(args.join(" ").as_bytes());
    let digest = hash.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}
