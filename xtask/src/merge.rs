//! `cargo xtask report merge`: one report from the reports of a sharded run, with the run's
//! files and its diff against the baseline.

use anyhow::Context;
use runner::report::{render_summary, Report};

use crate::flags::Merge;
use crate::gate::Gate;
use crate::UsageError;

impl Merge {
    pub fn run(self) -> anyhow::Result<u8> {
        let mut reports = Vec::new();
        for given in &self.reports {
            let report = Report::read_run(given).map_err(UsageError::wrap)?;
            reports.push((given.display().to_string(), report));
        }
        let mut merged = runner::merge::merge(&reports).map_err(UsageError::wrap)?;
        let gate = Gate::load(&self.gate, merged.kernel.arch, &merged.kernel.flavour())?;
        gate.judge(&mut merged);
        // A `.json` path is the report alone; anything else is a run directory for all files.
        let path = if self.out.extension().is_some_and(|e| e == "json") {
            merged
                .write(&self.out)
                .with_context(|| format!("cannot write {}", self.out.display()))?;
            self.out.clone()
        } else {
            std::fs::create_dir_all(&self.out)
                .with_context(|| format!("cannot create {}", self.out.display()))?;
            runner::outputs::write_all(&self.out, &merged, &gate.fail_on)?;
            self.out.join("report.json")
        };
        print!("{}", render_summary(&merged));
        if let Some(diff) = &merged.diff {
            print!("{}", diff.render_text(&gate.fail_on));
        }
        println!("report: {}", path.display());
        Ok(gate.exit_code(&merged))
    }
}
