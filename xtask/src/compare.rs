//! `cargo xtask compare`: the same cases on two architectures (or kernels), side by side.

use std::collections::BTreeMap;

use runner::model::{Status, SuiteName};
use runner::report::Report;

use crate::flags::Compare;
use crate::UsageError;

/// What identifies one result across runs: the kernel's suites number their tests (names
/// repeat there), the harness's suites name theirs.
type Key = (&'static str, String, &'static str);

fn key(r: &runner::model::TestResult) -> Key {
    let id = match (r.suite, r.id) {
        (SuiteName::Kernel(_), Some(id)) => {
            format!("#{id} {}", r.name)
        }
        _ => r.name.clone(),
    };
    (r.suite.name(), id, r.mode.name())
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
        let index = |r: &Report| -> BTreeMap<Key, Status> {
            r.results
                .iter()
                .filter(|r| r.status != Status::Divergence)
                .map(|r| (key(r), r.status))
                .collect()
        };
        let (ia, ib) = (index(&a), index(&b));
        let mut differ = 0;
        let mut only = 0;
        for (k, sa) in &ia {
            match ib.get(k) {
                Some(sb) if sa != sb => {
                    differ += 1;
                    println!(
                        "{} {} [{}]: {la}: {}, {lb}: {}",
                        k.0,
                        k.1,
                        k.2,
                        sa.name(),
                        sb.name()
                    );
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
