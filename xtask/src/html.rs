//! `cargo xtask report html RUN... --out FILE`: several runs on one page, e.g. both arches.

use anyhow::Context;
use runner::report::Report;

use crate::flags::Html;
use crate::UsageError;

impl Html {
    pub fn run(self) -> anyhow::Result<u8> {
        let runs = self
            .runs
            .iter()
            .map(|run| Report::read_run(run).map_err(UsageError::wrap))
            .collect::<anyhow::Result<Vec<Report>>>()?;
        let page = runner::outputs::html::render(&runs.iter().collect::<Vec<_>>());
        runner::report::write_atomically(&self.out, page.as_bytes())
            .with_context(|| format!("cannot write {}", self.out.display()))?;
        println!("{}: {} runs", self.out.display(), runs.len());
        Ok(0)
    }
}
