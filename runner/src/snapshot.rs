//! Guests that start booted. Under TCG a guest spends 0.3 to 3 s booting before its first
//! test (Malta's kernels alone spend 1 to 2 s timing their clock against the RTC), and every
//! guest of a run, and every guest resumed after a crash, boots the same kernel into the same
//! state. So a template guest is booted once per (QEMU, kernel, image), run up to its init's
//! `harness: ready`, and saved with QEMU's own migration into a file of the cache. Each guest
//! of a run then starts from that file (`-incoming`) and takes its plan on the console. The
//! template's RAM is a file of its own ([`MemoryFile`]), which the snapshot leaves out and
//! every restored guest maps copy-on-write.
//!
//! A template made with the agent in its image and a shared-memory window starts agent guests
//! too: each gets its bundle through its own window ([`Window`]). Guests with fault injection,
//! and agent guests where QEMU has no window, boot. Where templates are kept, and when one is
//! made, is the host's (`cargo xtask`'s cache); this is the guest's side.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::console::{self, LineSplitter};
use crate::plan::Plan;
use crate::protocol::{self, GuestLine};
use crate::qemu::{MemoryFile, Output, Qemu, QemuConfig, Window};
use crate::qmp::Qmp;
use anyhow::{bail, Context};

/// A booted guest, saved.
#[derive(Clone, Debug)]
pub struct Template {
    /// The image it booted.
    pub initrd: PathBuf,
    /// Its devices' state: what QEMU's migration saved, its RAM left out.
    pub snapshot: PathBuf,
    /// Its RAM, zero pages left as holes.
    pub memory: PathBuf,
    /// What a restore loads instead of the kernel and its image ([`crate::vmlinux::stand_in`]);
    /// `None` for a kernel that is no ELF, whose restores name the kernel and image booted.
    pub stand_in: Option<PathBuf>,
    /// The empty window file it was booted with, when its image has the agent: guests without
    /// a bundle map it too, since a restored guest has the template's devices.
    pub window: Option<PathBuf>,
}

/// Whether agent guests of `kernel` on `arch` can start from a template: QEMU has the window
/// ([`crate::arch::QemuSettings::shared_window`]) and the kernel PCI, where the guest sees it.
pub fn agents_start_booted(arch: crate::arch::Arch, kernel: &crate::kernel::Kernel) -> bool {
    arch.qemu().shared_window && kernel.has_pci()
}

/// Where the agent's serial port of a guest that runs no agent goes: a template made for
/// agents has that port, and every guest restored from it must have it too.
const NO_AGENT_OUTPUT: &str = "/dev/null";

/// `config` with the devices of a template made for agents, where it has none of its own: the
/// empty window at `window`, and the agent's serial port.
pub fn agent_devices(config: QemuConfig, window: &Path) -> QemuConfig {
    QemuConfig {
        window: config.window.or_else(|| {
            Some(Window {
                path: window.to_owned(),
                bundle: Vec::new(),
            })
        }),
        agent_output: config
            .agent_output
            .or_else(|| Some(PathBuf::from(NO_AGENT_OUTPUT))),
        ..config
    }
}

/// How long a template guest idles after `harness: ready` before it is saved: long enough for
/// a kernel with an idle tick (Debian's, and the built ones: images/kconfig's MIPS fragments)
/// to stop it. A guest saved so sets its timer again when it first wakes, even if saved the
/// moment Count passed Compare, whose timer a MIPS restore cannot set again
/// ([`crate::arch::QemuSettings::restore_loses_timer`]). Saved at once, 1 of about 15
/// templates gave mips64el guests that most likely had no timer (docs/speed.md).
const SETTLE: Duration = Duration::from_secs(1);

/// How long saving may take: it writes the devices' state only, in milliseconds, but a host
/// under load may be slow.
const SAVE_TIMEOUT: Duration = Duration::from_secs(120);

impl Template {
    /// Whether guests that run the agent can start from it.
    pub fn runs_agent(&self) -> bool {
        self.window.is_some()
    }

    /// The guest that runs `plan` from this template: the template's command line, started
    /// from the snapshot through a QMP socket at `qmp`, with the plan for its console. An
    /// agent's `base` has its window.
    pub fn guest(&self, base: &QemuConfig, plan: &Plan, qmp: PathBuf) -> QemuConfig {
        // Newlines first: a restore can drop the first bytes sent (those the serial port took
        // before its saved state was loaded); init skips everything before `begin`.
        let bundle = if plan.agent { "bundle\n" } else { "" };
        let input = format!("{}begin\n{plan}{bundle}end\n", "\n".repeat(64));
        // A restore needs the template's devices; an agent's own window and port stay.
        let base = match &self.window {
            Some(path) => agent_devices(base.clone(), path),
            None => base.clone(),
        };
        let (kernel, initrd) = match &self.stand_in {
            Some(stand_in) => (stand_in.clone(), None),
            None => (base.kernel.clone(), Some(self.initrd.clone())),
        };
        QemuConfig {
            kernel,
            initrd,
            memory_file: Some(MemoryFile {
                path: self.memory.clone(),
                shared: false,
            }),
            restore: Some(self.snapshot.clone()),
            qmp: Some(qmp),
            input: input.into_bytes(),
            ..base
        }
    }
}

/// Boots `config` until its init is ready, saves it into `dest`, and ends it. Its RAM, in
/// its memory file, stays there, with holes where it is zero.
pub fn boot_and_save(config: &QemuConfig, dest: &Path, timeout: Duration) -> anyhow::Result<()> {
    let memory = match &config.memory_file {
        Some(MemoryFile { path, shared: true }) => path,
        _ => bail!("a template guest needs its RAM in a file it shares"),
    };
    let mut qemu = Qemu::spawn(config)?;
    let result = wait_ready(&mut qemu, timeout).and_then(|()| {
        std::thread::sleep(SETTLE);
        let socket = config.qmp.as_deref().context("no QMP socket")?;
        save(socket, dest)
    });
    qemu.terminate(Duration::from_secs(3));
    result.map_err(|e| match qemu.said() {
        Some(said) => e.context(format!("QEMU said: {said}")),
        None => e,
    })?;
    match punch_zero_pages(memory) {
        // Holes only save disk: a filesystem without them keeps the zeros.
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(()),
        result => result.with_context(|| format!("cannot make {} sparse", memory.display())),
    }
}

/// A page of guest memory, the unit [`punch_zero_pages`] looks at.
const PAGE: usize = 4096;

/// Turns the zero pages of `path` into holes. Init zeroes the guest's free memory before it is
/// saved, which writes most of the RAM file: x86_64 Debian 6.12's holds 124 of its 128 MiB,
/// of which about 30 are not zero.
pub fn punch_zero_pages(path: &Path) -> std::io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    let file = std::fs::File::options().read(true).write(true).open(path)?;
    let punch = |start: u64, end: u64| {
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        fallocate(&file, flags, start, end - start)
    };
    let mut chunk = vec![0u8; 256 * PAGE];
    let (mut offset, mut zeros_from) = (0u64, None);
    loop {
        let n = read_full(&file, &mut chunk)?;
        for page in chunk[..n].chunks(PAGE) {
            let zero = page.iter().all(|&b| b == 0);
            match (zero, zeros_from) {
                (true, None) => zeros_from = Some(offset),
                (false, Some(start)) => {
                    punch(start, offset)?;
                    zeros_from = None;
                }
                _ => {}
            }
            offset += page.len() as u64;
        }
        if n < chunk.len() {
            break;
        }
    }
    if let Some(start) = zeros_from {
        punch(start, offset)?;
    }
    Ok(())
}

/// Reads into `buf` until it is full or the file ends; returns how much it read.
fn read_full(mut file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn wait_ready(qemu: &mut Qemu, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut lines = LineSplitter::new();
    let mut ready = false;
    while Instant::now() < deadline {
        match qemu.read(Duration::from_millis(200)) {
            Output::Bytes(bytes) => lines.push(&bytes, |line| {
                ready |= protocol::parse(console::text(line)) == Some(Ok(GuestLine::Ready));
            }),
            Output::Quiet => {}
            Output::Closed => bail!("QEMU exited before the guest was ready"),
        }
        if ready {
            return Ok(());
        }
    }
    bail!("the guest was not ready after {} s", timeout.as_secs())
}

/// Saves the guest behind the QMP `socket` into `dest`, through QEMU's migration.
fn save(socket: &Path, dest: &Path) -> anyhow::Result<()> {
    let mut qmp = Qmp::connect(socket, SAVE_TIMEOUT)?;
    crate::qemu::leave_out_file_memory(&mut qmp)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    fn template(window: bool) -> Template {
        Template {
            initrd: PathBuf::from("/t/initramfs.cpio"),
            snapshot: PathBuf::from("/t/snapshot.bin"),
            memory: PathBuf::from("/t/memory"),
            stand_in: Some(PathBuf::from("/t/stand-in.elf")),
            window: window.then(|| PathBuf::from("/t/window")),
        }
    }

    fn plan(agent: bool) -> Plan {
        Plan {
            loads: Vec::new(),
            agent,
            inject_panic_after_s: None,
            catalog: None,
        }
    }

    fn base() -> QemuConfig {
        QemuConfig::boot(
            Arch::Mips64el,
            "/k/vmlinux".into(),
            "/g/initramfs.cpio".into(),
        )
    }

    #[test]
    fn an_agent_guest_asks_for_its_bundle_and_maps_its_own_window() {
        let own = Window {
            path: PathBuf::from("/g/window"),
            bundle: b"bundle 1\n".to_vec(),
        };
        let base = QemuConfig {
            window: Some(own),
            agent_output: Some(PathBuf::from("/g/agent.out")),
            ..base()
        };
        let guest = template(true).guest(&base, &plan(true), "/g/qmp.sock".into());
        let input = String::from_utf8(guest.input).unwrap_or_default();
        assert!(input.ends_with("begin\nbundle\nend\n"), "{input:?}");
        let window = guest.window.unwrap_or_else(|| panic!("no window"));
        assert_eq!(window.path, PathBuf::from("/g/window"));
        assert_eq!(guest.agent_output, Some(PathBuf::from("/g/agent.out")));
        assert_eq!(guest.initrd, None);
        let memory = guest
            .memory_file
            .unwrap_or_else(|| panic!("no memory file"));
        assert_eq!(memory.path, PathBuf::from("/t/memory"));
        assert!(
            !memory.shared,
            "a restored guest must not write the template's memory"
        );
        assert_eq!(guest.restore, Some(PathBuf::from("/t/snapshot.bin")));
        assert_eq!(guest.qmp, Some(PathBuf::from("/g/qmp.sock")));
    }

    #[test]
    fn a_guest_without_agent_has_the_templates_devices_and_asks_for_nothing() {
        let guest = template(true).guest(&base(), &plan(false), "/g/qmp.sock".into());
        let input = String::from_utf8(guest.input).unwrap_or_default();
        assert!(input.ends_with("begin\nend\n"), "{input:?}");
        let window = guest.window.unwrap_or_else(|| panic!("no window"));
        assert_eq!(window.path, PathBuf::from("/t/window"));
        assert!(window.bundle.is_empty());
        assert_eq!(guest.agent_output, Some(PathBuf::from(NO_AGENT_OUTPUT)));

        let plain = template(false).guest(&base(), &plan(false), "/g/qmp.sock".into());
        assert!(plain.window.is_none() && plain.agent_output.is_none());
    }

    #[test]
    fn zero_pages_become_holes_and_the_rest_stays() -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("memory");
        // 64 pages: data in pages 3, 40 and 63 (its last byte), zeros elsewhere.
        let mut memory = vec![0u8; 64 * PAGE];
        memory[3 * PAGE + 17] = 0xaa;
        memory[40 * PAGE] = 1;
        memory[64 * PAGE - 1] = 0x55;
        std::fs::write(&path, &memory)?;
        let before = std::fs::metadata(&path)?.blocks();
        punch_zero_pages(&path)?;
        assert_eq!(std::fs::read(&path)?, memory);
        let after = std::fs::metadata(&path)?.blocks();
        // 512-byte blocks: three pages of data, where the filesystem supports holes.
        assert!(
            after <= 3 * 8 && after < before,
            "{before} -> {after} blocks"
        );
        Ok(())
    }
}
