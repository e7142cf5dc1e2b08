//! Ctrl-C and SIGTERM: the first ends the guests in order and writes a partial report; the
//! second ends everything at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Sets `cancel` on the first SIGINT or SIGTERM. On the second, kills every QEMU at once and
/// exits with status 130.
pub fn install(cancel: Arc<AtomicBool>) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if cancel.swap(true, Ordering::SeqCst) {
                    runner::qemu::kill_all();
                    runner::report::discard_partial_writes();
                    eprintln!("interrupted again: ending at once, without a report");
                    std::process::exit(130);
                }
                eprintln!("interrupted: ending the guests and writing a partial report (again to end at once)");
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}
