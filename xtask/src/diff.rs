//! `cargo xtask report diff OLD NEW`: a run against a baseline or another run, after the fact.

use runner::baseline::Baseline;
use runner::report::Report;

use crate::flags::Diff;
use crate::gate::Gate;
use crate::UsageError;

impl Diff {
    pub fn run(self) -> anyhow::Result<u8> {
        let new = Report::read_run(&self.new).map_err(UsageError::wrap)?;
        let (arch, flavour) = (new.kernel.arch, new.kernel.flavour());
        let is_baseline = self
            .old
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml");
        let old = if is_baseline {
            Baseline::read(&self.old, arch, &flavour).map_err(UsageError::wrap)?
        } else {
            Report::read_run(&self.old)
                .map_err(UsageError::wrap)?
                .baseline()
        };
        // OLD stands in for the baseline; the quarantine and the classes still apply.
        let mut gate = Gate::with_rules(&self.rules)?;
        gate.baseline = Some((old, self.old.clone()));
        let mut judged = new;
        gate.judge(&mut judged);
        if let Some(diff) = &judged.diff {
            print!("{}", diff.render_text(&gate.fail_on));
        }
        Ok(gate.exit_code(&judged))
    }
}
