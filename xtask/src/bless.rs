//! `cargo xtask report bless RUN...`: accept reviewed runs as the baseline of their arch and
//! kernel flavour. The one way a baseline changes; never done by CI.

use anyhow::Context;
use runner::baseline::{self, Baseline, BaselineError};
use runner::report::Report;

use crate::flags::Bless;
use crate::{project_root, UsageError};

impl Bless {
    pub fn run(self) -> anyhow::Result<u8> {
        // As insta does: a CI job checks baselines, it never rewrites one.
        if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
            return Err(UsageError::wrap(anyhow::anyhow!(
                "refusing to bless under CI (the CI variable is set): baselines change only by a \
                 reviewed commit; bless on your machine and commit the file"
            )));
        }
        let report = self.combined()?;
        let (arch, flavour) = (report.kernel.arch, report.kernel.flavour());
        let path = self.baseline.clone().unwrap_or_else(|| {
            baseline::default_path(&project_root().join("reports"), arch, &flavour)
        });
        let new = report.baseline();
        // Say what this accepts, so that a bless is a decision, not a reflex.
        match Baseline::read(&path, arch, &flavour) {
            Ok(old) => {
                let diff = report.diff_against(&old, &path.display().to_string());
                print!("{}", diff.render_text(&[]));
            }
            Err(BaselineError::Missing { .. }) => println!("{}: new baseline", path.display()),
            // A broken or older baseline is what bless replaces.
            Err(e) => println!("replacing: {:#}", anyhow::Error::new(e)),
        }
        let text = new.to_text().context("cannot serialize the baseline")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        runner::report::write_atomically(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "blessed {} results of {arch} {flavour} into {}",
            new.entries().count(),
            path.display()
        );
        Ok(0)
    }

    /// The runs as one report: each whole, finished cleanly, of one kernel, none repeating
    /// another's results.
    fn combined(&self) -> anyhow::Result<Report> {
        let mut combined: Option<Report> = None;
        for given in &self.runs {
            let report = Report::read_run(given).map_err(UsageError::wrap)?;
            let refuse = |why: String| {
                Err(UsageError::wrap(anyhow::anyhow!(
                    "refusing to bless {}: {why}",
                    given.display()
                )))
            };
            if let Some(shard) = report.shard {
                return refuse(format!(
                    "it is shard {shard}; merge the shards with `cargo xtask report merge` and \
                     bless the result"
                ));
            }
            if !report.complete || !report.errors.is_empty() {
                return refuse(
                    "the run did not finish cleanly (incomplete, or harness errors); run again"
                        .to_owned(),
                );
            }
            let Some(all) = combined.as_mut() else {
                combined = Some(report);
                continue;
            };
            if (report.kernel.arch, &report.kernel.source) != (all.kernel.arch, &all.kernel.source)
            {
                return refuse(format!(
                    "it ran {} {}, the first run {} {}",
                    report.kernel.arch, report.kernel.source, all.kernel.arch, all.kernel.source
                ));
            }
            let seen: std::collections::BTreeSet<_> =
                runner::model::keys(&all.results).into_iter().collect();
            if let Some(key) = runner::model::keys(&report.results)
                .into_iter()
                .find(|k| seen.contains(k))
            {
                return refuse(format!("{key} is in an earlier run too"));
            }
            all.results.extend(report.results);
        }
        combined.ok_or_else(|| UsageError::wrap(anyhow::anyhow!("no run to bless")))
    }
}
