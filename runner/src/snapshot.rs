//! Guests that start booted. Under TCG a guest spends 0.3 to 3 s booting before its first
//! test (Malta's kernels alone spend 1 to 2 s timing their clock against the RTC), and every
//! guest of a run, and every guest resumed after a crash, boots the same kernel into the same
//! state. So a template guest is booted once per (QEMU, kernel, image), run up to its init's
//! `harness: ready`, and saved with QEMU's own migration into a file of the cache. Each guest
//! of a run then starts from that file (`-incoming`) and takes its plan on the console.
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
use crate::qemu::{Output, Qemu, QemuConfig, Window};
use crate::qmp::Qmp;
use anyhow::{bail, Context};

/// A booted guest, saved.
#[derive(Clone, Debug)]
pub struct Template {
    /// The image it booted.
    pub initrd: PathBuf,
    pub snapshot: PathBuf,
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

/// How long saving may take: about 1 s for the 90 MB a guest's memory holds.
const SAVE_TIMEOUT: Duration = Duration::from_secs(120);

impl Template {
    /// Whether guests that run the agent can start from it.
    pub fn runs_agent(&self) -> bool {
        self.window.is_some()
    }

    /// The guest that runs `plan` from this template: the template's command line, started
    /// from the snapshot, with the plan for its console. An agent's `base` has its window.
    pub fn guest(&self, base: &QemuConfig, plan: &Plan) -> QemuConfig {
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
            restore: Some(self.snapshot.clone()),
            input: input.into_bytes(),
            ..base
        }
    }
}

/// Boots `config` until its init is ready, saves it into `dest`, and ends it.
pub fn boot_and_save(config: &QemuConfig, dest: &Path, timeout: Duration) -> anyhow::Result<()> {
    let mut qemu = Qemu::spawn(config)?;
    let result = wait_ready(&mut qemu, timeout).and_then(|()| {
        let socket = config.qmp.as_deref().context("no QMP socket")?;
        save(socket, dest)
    });
    qemu.terminate(Duration::from_secs(3));
    result.map_err(|e| match qemu.said() {
        Some(said) => e.context(format!("QEMU said: {said}")),
        None => e,
    })
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
        let guest = template(true).guest(&base, &plan(true));
        let input = String::from_utf8(guest.input).unwrap_or_default();
        assert!(input.ends_with("begin\nbundle\nend\n"), "{input:?}");
        let window = guest.window.unwrap_or_else(|| panic!("no window"));
        assert_eq!(window.path, PathBuf::from("/g/window"));
        assert_eq!(guest.agent_output, Some(PathBuf::from("/g/agent.out")));
        assert_eq!(guest.initrd, None);
    }

    #[test]
    fn a_guest_without_agent_has_the_templates_devices_and_asks_for_nothing() {
        let guest = template(true).guest(&base(), &plan(false));
        let input = String::from_utf8(guest.input).unwrap_or_default();
        assert!(input.ends_with("begin\nend\n"), "{input:?}");
        let window = guest.window.unwrap_or_else(|| panic!("no window"));
        assert_eq!(window.path, PathBuf::from("/t/window"));
        assert!(window.bundle.is_empty());
        assert_eq!(guest.agent_output, Some(PathBuf::from(NO_AGENT_OUTPUT)));

        let plain = template(false).guest(&base(), &plan(false));
        assert!(plain.window.is_none() && plain.agent_output.is_none());
    }
}
