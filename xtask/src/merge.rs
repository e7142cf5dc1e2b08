//! `cargo xtask report merge`: one report from the reports of a sharded run.

use anyhow::Context;
use runner::report::{render_summary, Report};

use crate::flags::Merge;
use crate::UsageError;

impl Merge {
    pub fn run(self) -> anyhow::Result<u8> {
        let mut reports = Vec::new();
        for given in &self.reports {
            let path = if given.is_dir() {
                given.join("report.json")
            } else {
                given.clone()
            };
            let report = Report::read(&path).map_err(UsageError::wrap)?;
            reports.push((path.display().to_string(), report));
        }
        let merged = runner::merge::merge(&reports).map_err(UsageError::wrap)?;
        // A `.json` path is the report itself; anything else is its run directory.
        let path = if self.out.extension().is_some_and(|e| e == "json") {
            self.out.clone()
        } else {
            std::fs::create_dir_all(&self.out)
                .with_context(|| format!("cannot create {}", self.out.display()))?;
            self.out.join("report.json")
        };
        merged
            .write(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        print!("{}", render_summary(&merged));
        println!("report: {}", path.display());
        Ok(merged.exit_code())
    }
}
