//! The regression gate: a run against its committed baseline, with the quarantine list, and
//! the exit status that follows. `test`, `report merge` and `report diff` share it.

use std::path::PathBuf;

use runner::arch::Arch;
use runner::baseline::{self, Baseline, BaselineError};
use runner::diff::Class;
use runner::quarantine::{self, Quarantine};
use runner::report::Report;

use crate::flags::{GateArgs, GateRules};
use crate::{project_root, UsageError};

/// What a run is judged against, read before the run starts: a broken baseline or an expired
/// quarantine entry stops the run before it spends minutes booting guests.
pub struct Gate {
    /// The baseline and the path it was read from; `None` when there is none (said once).
    pub baseline: Option<(Baseline, PathBuf)>,
    pub quarantine: Quarantine,
    pub fail_on: Vec<Class>,
}

impl Gate {
    /// The gate of a run of `arch` on kernels of `flavour`.
    pub fn load(args: &GateArgs, arch: Arch, flavour: &str) -> anyhow::Result<Gate> {
        let mut gate = Gate::with_rules(&args.rules)?;
        if args.no_baseline {
            return Ok(gate);
        }
        let path = args.baseline.clone().unwrap_or_else(|| {
            baseline::default_path(&project_root().join("reports"), arch, flavour)
        });
        match Baseline::read(&path, arch, flavour) {
            Ok(b) => gate.baseline = Some((b, path)),
            // Only the default baseline may be missing: one named must be there.
            Err(e @ BaselineError::Missing { .. }) if args.baseline.is_none() => {
                eprintln!("note: {e}")
            }
            Err(e) => return Err(UsageError::wrap(e)),
        }
        Ok(gate)
    }

    /// A gate with no baseline yet: the quarantine list read and checked, the classes set.
    pub fn with_rules(rules: &GateRules) -> anyhow::Result<Gate> {
        let quarantine_path = rules
            .quarantine
            .clone()
            .unwrap_or_else(|| project_root().join("suites").join("quarantine.yaml"));
        let quarantine =
            Quarantine::read(&quarantine_path, &quarantine::today()).map_err(UsageError::wrap)?;
        Ok(Gate {
            baseline: None,
            quarantine,
            fail_on: rules
                .fail_on
                .clone()
                .unwrap_or_else(|| Class::GATE_DEFAULT.to_vec()),
        })
    }

    /// Puts the diff against the baseline into `report`.
    pub fn judge(&self, report: &mut Report) {
        let Some((baseline, path)) = &self.baseline else {
            return;
        };
        let shown = path
            .strip_prefix(project_root())
            .unwrap_or(path)
            .display()
            .to_string();
        let mut diff = report.diff_against(baseline, &shown);
        self.quarantine.apply(report.kernel.arch, &mut diff);
        report.diff = Some(diff);
    }

    /// The gate's verdict on `report`, as an exit.
    pub fn verdict(&self, report: &Report) -> runner::engine::ExitKind {
        use runner::engine::ExitKind;
        match self.exit_code(report) {
            0 => ExitKind::Clean,
            1 => ExitKind::GateFailed,
            _ => ExitKind::Harness,
        }
    }

    /// The exit status: with a diff, 1 only for changes the gate fails on; 3 for a run the
    /// harness could not finish or tests it could not run that the baseline had run. Without
    /// one, any failing test gives 1.
    pub fn exit_code(&self, report: &Report) -> u8 {
        let Some(diff) = &report.diff else {
            return report.exit_code();
        };
        let infrastructure = |after: &Option<String>| {
            after
                .as_deref()
                .is_some_and(|a| a.starts_with("not_run") || a.starts_with("error"))
        };
        if diff.gate_failures(&self.fail_on).next().is_some() {
            1
        } else if !report.errors.is_empty()
            || !report.complete
            || diff.changes.iter().any(|c| infrastructure(&c.after))
        {
            crate::EXIT_HARNESS
        } else {
            0
        }
    }
}
