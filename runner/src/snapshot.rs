//! Guests that start booted. Under TCG a guest spends 0.3 to 3 s booting before its first
//! test (Malta's kernels alone spend 1 to 2 s timing their clock against the RTC), and every
//! guest of a run, and every guest resumed after a crash, boots the same kernel into the same
//! state. So a template guest is booted once per (QEMU, kernel, image), run up to its init's
//! `harness: ready`, and saved with QEMU's own migration into a file of the cache. Each guest
//! of a run then starts from that file (`-incoming`) and takes its plan on the console.
//!
//! Only guests with module loads alone start this way: the agent's bundle and fault
//! injection go in the image, so those guests boot. Where templates are kept, and when one
//! is made, is the host's (`cargo xtask`'s cache); this is the guest's side.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::console::{self, LineSplitter};
use crate::plan::Plan;
use crate::protocol::{self, GuestLine};
use crate::qemu::{Output, Qemu, QemuConfig};
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
        let (kernel, initrd) = match &self.stand_in {
            Some(stand_in) => (stand_in.clone(), None),
            None => (base.kernel.clone(), Some(self.initrd.clone())),
        };
        QemuConfig {
            kernel,
            initrd,
            restore: Some(self.snapshot.clone()),
            input: input.into_bytes(),
            ..base.clone()
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
