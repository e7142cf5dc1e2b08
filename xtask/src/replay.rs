//! `cargo xtask replay`: a recorded console log turned back into a report, exactly as the live
//! run that recorded it would have made it.

use anyhow::Context;
use runner::report::render_summary;
use runner::session;

use crate::flags::Replay;
use crate::UsageError;

impl Replay {
    /// Prints the summary and writes report.json (with `--out`). Exit status: the report's,
    /// or 2 when the selection is not the log's; every error is taken as the input's (2).
    pub fn run(self) -> anyhow::Result<u8> {
        self.replay().map_err(UsageError::wrap)
    }

    fn replay(self) -> anyhow::Result<u8> {
        let plan = self.selection.selection().plan()?;
        let console = &self.console;
        let bytes = std::fs::read(console)
            .with_context(|| format!("cannot read the console log {}", console.display()))?;
        let outcome = session::replay(&bytes, &plan);
        let invalid_selection = outcome.invalid_selection;
        let report = outcome.into_report(self.arch, self.source);
        if let Some(out) = self.out {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let path = out.join("report.json");
            report
                .write(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        print!("{}", render_summary(&report));
        Ok(if invalid_selection {
            2
        } else {
            report.exit_code()
        })
    }
}
