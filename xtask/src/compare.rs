//! `cargo xtask compare`: the same cases on two architectures (or kernels), side by side.

use std::collections::BTreeMap;

use runner::model::{keys, Status, TestKey};
use runner::report::Report;

use crate::flags::Compare;
use crate::UsageError;

/// Each result's status by [`TestKey`], divergence findings left out: tests are matched by
/// name, as baselines match them, since two kernels may number the same test differently.
fn index(report: &Report) -> BTreeMap<TestKey, Status> {
    keys(&report.results)
        .into_iter()
        .zip(&report.results)
        .filter(|(_, r)| r.status != Status::Divergence)
        .map(|(k, r)| (k, r.status))
        .collect()
}

impl Compare {
    pub fn run(self) -> anyhow::Result<u8> {
        let read = |p: &std::path::Path| Report::read_run(p).map_err(UsageError::wrap);
        let (a, b) = (read(&self.a)?, read(&self.b)?);
        let label = |r: &Report| {
            format!(
                "{} {}",
                r.kernel.arch,
                r.kernel.release.as_deref().unwrap_or("?")
            )
        };
        let (la, lb) = (label(&a), label(&b));
        let (ia, ib) = (index(&a), index(&b));
        let mut differ = 0;
        let mut only = 0;
        for (k, sa) in &ia {
            match ib.get(k) {
                Some(sb) if sa != sb => {
                    differ += 1;
                    println!("{k}: {la}: {}, {lb}: {}", sa.name(), sb.name());
                }
                Some(_) => {}
                None => only += 1,
            }
        }
        let common = ia.keys().filter(|k| ib.contains_key(*k)).count();
        let only_b = ib.keys().filter(|k| !ia.contains_key(*k)).count();
        println!(
            "{common} results in both: {differ} differ; {only} only in {la}, {only_b} only in {lb}"
        );
        Ok(u8::from(differ > 0))
    }
}
