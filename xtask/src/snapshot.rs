//! Guests that start booted. Under TCG a guest spends 0.3 to 3 s booting before its first
//! test (Malta's kernels alone spend 1 to 2 s timing their clock against the RTC), and every
//! guest of a run, and every guest resumed after a crash, boots the same kernel into the same
//! state. So a template guest is booted once per (QEMU, kernel, image), run up to its init's
//! `harness: ready`, and saved with QEMU's own migration into a file of the cache. Each guest
//! of a run then starts from that file (`-incoming`) and takes its plan on the console.
//!
//! Only guests with module loads alone start this way: the agent's bundle and fault
//! injection go in the image, so those guests boot.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use runner::arch::Arch;
use runner::plan::Plan;
use runner::qemu::{Output, Qemu, QemuConfig};
use runner::qmp::Qmp;
use sha2::{Digest, Sha256};

use crate::kernel::Kernel;

/// A booted guest, saved.
#[derive(Clone, Debug)]
pub struct Template {
    /// The image it booted, which every restore must name again: QEMU checks that the
    /// loaded images have the sizes of the saved ones.
    pub initrd: PathBuf,
    pub snapshot: PathBuf,
}

/// How long saving may take: about 1 s for the 90 MB a guest's memory holds.
const SAVE_TIMEOUT: Duration = Duration::from_secs(120);

impl Template {
    /// The guest that runs `plan` from this template: the template's command line, started
    /// from the snapshot, with the plan for its console.
    pub fn guest(&self, base: &QemuConfig, plan: &Plan) -> QemuConfig {
        // Newlines first: a restore can drop the first bytes sent (those the serial port took
        // before its saved state was loaded); init skips everything before `begin`.
        let input = format!("{}begin\n{plan}end\n", "\n".repeat(64));
        QemuConfig {
            initrd: self.initrd.clone(),
            restore: Some(self.snapshot.clone()),
            input: input.into_bytes(),
            ..base.clone()
        }
    }
}

/// The template for `kernel` on `arch` (booting `init`), made now if the cache has none.
pub fn template(
    arch: Arch,
    kernel: &Kernel,
    init: &Path,
    cache: &Path,
    boot_timeout: Duration,
) -> anyhow::Result<Template> {
    let dir = cache.join("snapshots");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Those of runs killed while they made a template.
    for removed in crate::orphans::remove_staging(&dir) {
        eprintln!("{removed}");
    }
    let staging = crate::cache::staging_dir(&dir)?;
    let initrd = staging.path().join("initramfs.cpio");
    crate::image::template(arch, init, kernel, &initrd)?;
    let key = key(arch, kernel, &initrd)?;
    let entry = dir.join(format!("{arch}-{key}"));
    let template = Template {
        initrd: entry.join("initramfs.cpio"),
        snapshot: entry.join("snapshot.bin"),
    };
    let found = || {
        // Its time says when it was last used: the least recently used go first.
        template.snapshot.is_file()
            && fs::File::options()
                .append(true)
                .open(&template.snapshot)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                .is_ok()
    };
    if found() {
        return Ok(template);
    }
    let part = format!("snapshots/{arch}-{key}");
    let _lock = crate::cache::Lock::acquire(
        cache,
        &part,
        &format!("the template guest of {arch} in {}", entry.display()),
    )?;
    // Another run may have made it while this one waited.
    if found() {
        return Ok(template);
    }
    eprintln!("booting a template guest of {arch} once, to start every guest from it");
    let started = Instant::now();
    let config = QemuConfig {
        qmp: Some(staging.path().join("qmp.sock")),
        ..QemuConfig::boot(arch, kernel.image.clone(), template.initrd.clone())
    };
    // Booted from the entry's own path: the image's path is on QEMU's command line only,
    // but keep it the one restores use.
    fs::create_dir_all(&entry).with_context(|| format!("cannot create {}", entry.display()))?;
    fs::rename(&initrd, &template.initrd)
        .with_context(|| format!("cannot move the image to {}", template.initrd.display()))?;
    let saved = staging.path().join("snapshot.bin");
    boot_and_save(&config, &saved, boot_timeout)
        .with_context(|| format!("cannot make a snapshot of a booted {arch} guest"))?;
    fs::rename(&saved, &template.snapshot).with_context(|| {
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
    prune(cache, &entry);
    Ok(template)
}

/// Snapshots kept in the cache: each is about 100 MB, and a `track` over many revisions
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
fn key(arch: Arch, kernel: &Kernel, initrd: &Path) -> anyhow::Result<String> {
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
    let probe = QemuConfig::boot(arch, PathBuf::from("K"), PathBuf::from("I"));
    let (_, args) = probe.command_line();
    hash.update(args.join(" ").as_bytes());
    let digest = hash.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Boots `config` until its init is ready, saves it into `dest`, and ends it.
fn boot_and_save(config: &QemuConfig, dest: &Path, timeout: Duration) -> anyhow::Result<()> {
    let mut qemu = Qemu::spawn(config)?;
    let result = wait_ready(&qemu, timeout).and_then(|()| {
        let socket = config.qmp.as_deref().context("no QMP socket")?;
        save(socket, dest)
    });
    qemu.terminate(Duration::from_secs(3));
    result.map_err(|e| match qemu.said() {
        Some(said) => e.context(format!("QEMU said: {said}")),
        None => e,
    })
}

fn wait_ready(qemu: &Qemu, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut console = Vec::new();
    while Instant::now() < deadline {
        match qemu.read(Duration::from_millis(200)) {
            Output::Bytes(bytes) => console.extend_from_slice(&bytes),
            Output::Quiet => {}
            Output::Closed => bail!("QEMU exited before the guest was ready"),
        }
        if console
            .windows(15)
            .any(|w| w == b"harness: ready\r" || w == b"harness: ready\n")
        {
            return Ok(());
        }
    }
    bail!("the guest was not ready after {} s", timeout.as_secs())
}

/// Saves the guest behind the QMP `socket` into `dest`, through QEMU's migration.
fn save(socket: &Path, dest: &Path) -> anyhow::Result<()> {
    let mut qmp = Qmp::connect(socket, SAVE_TIMEOUT)?;
    let quoted = dest.display().to_string().replace('\'', "'\\''");
    qmp.execute(serde_json::json!({
        "execute": "migrate",
        "arguments": { "uri": format!("exec:cat > '{quoted}'") }
    }))?;
    let deadline = Instant::now() + SAVE_TIMEOUT;
    while Instant::now() < deadline {
        let reply = qmp.execute(serde_json::json!({ "execute": "query-migrate" }))?;
        match reply["return"]["status"].as_str() {
            Some("completed") => return Ok(()),
            Some(status @ ("failed" | "cancelled")) => bail!(
                "QEMU's migration {status}: {}",
                reply["return"]["error-desc"]
                    .as_str()
                    .unwrap_or("no reason given")
            ),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    bail!("saving took over {} s", SAVE_TIMEOUT.as_secs())
}
