//! Joining the reports of a run's shards (`--shard K/N` on N machines) into the report one
//! unsharded run would have written, timings aside.

use std::collections::BTreeMap;

use crate::model::{Status, SuiteName, TestResult};
use crate::report::{canonical_order, Report, Timing};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give the reports of every shard")]
    Empty,
    #[error("{0} is not a shard's report (it was run without --shard)")]
    NotAShard(String),
    #[error("{path} is shard {index} of {count}, but {first} is of {first_count}")]
    Count {
        path: String,
        index: u32,
        count: u32,
        first: String,
        first_count: u32,
    },
    #[error("{path} and {other} are both shard {index}")]
    Twice {
        path: String,
        other: String,
        index: u32,
    },
    #[error("shard {missing} of {count} is missing")]
    Missing { missing: String, count: u32 },
    #[error("{path} ran {what}, but {first} ran {first_what}: shards of one run share a kernel")]
    Kernel {
        path: String,
        what: String,
        first: String,
        first_what: String,
    },
    #[error("{suite} {mode} {name:?} is in both {a} and {b}: these are not shards of one run")]
    Overlap {
        suite: SuiteName,
        mode: &'static str,
        name: String,
        a: String,
        b: String,
    },
}

/// Merges `reports`, each named by its path, into one.
pub fn merge(reports: &[(String, Report)]) -> Result<Report, MergeError> {
    let first = check_shards(reports)?;
    let (mut results, errors, mut timing) = join_shards(reports)?;
    canonical_order(&mut results);
    let earliest = |f: fn(&Timing) -> Option<f64>| {
        reports
            .iter()
            .filter_map(|(_, r)| f(&r.timing))
            .min_by(f64::total_cmp)
    };
    timing.boot_s = earliest(|t| t.boot_s);
    timing.to_first_test_s = earliest(|t| t.to_first_test_s);
    let mut kernel = first.kernel.clone();
    kernel.release = reports.iter().find_map(|(_, r)| r.kernel.release.clone());
    let mut merged = Report::new(
        kernel,
        results,
        errors,
        reports.iter().all(|(_, r)| r.complete),
        timing,
    );
    // RFC 3339 in UTC sorts as text.
    merged.started = reports.iter().filter_map(|(_, r)| r.started.clone()).min();
    merged.scope = first.scope.clone();
    Ok(merged)
}

/// Checks that `reports` are every shard of one run, each once, on one kernel; returns the
/// first.
fn check_shards(reports: &[(String, Report)]) -> Result<&Report, MergeError> {
    let (first_path, first) = reports.first().ok_or(MergeError::Empty)?;
    let first_id = first
        .shard
        .ok_or_else(|| MergeError::NotAShard(first_path.clone()))?;
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for (path, report) in reports {
        let id = report
            .shard
            .ok_or_else(|| MergeError::NotAShard(path.clone()))?;
        if id.count != first_id.count {
            return Err(MergeError::Count {
                path: path.clone(),
                index: id.index,
                count: id.count,
                first: first_path.clone(),
                first_count: first_id.count,
            });
        }
        if let Some(other) = seen.insert(id.index, path) {
            return Err(MergeError::Twice {
                path: path.clone(),
                other: other.to_owned(),
                index: id.index,
            });
        }
        let what = |r: &Report| format!("{} {}", r.kernel.arch, r.kernel.source);
        if what(report) != what(first) {
            return Err(MergeError::Kernel {
                path: path.clone(),
                what: what(report),
                first: first_path.clone(),
                first_what: what(first),
            });
        }
    }
    let missing: Vec<String> = (1..=first_id.count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing: missing.join(", "),
            count: first_id.count,
        });
    }
    Ok(first)
}

/// The shards' results (refusing a test two shards ran), their errors labelled with the
/// shard, and their timings joined but for the boot and first-test times.
fn join_shards(
    reports: &[(String, Report)],
) -> Result<(Vec<TestResult>, Vec<String>, Timing), MergeError> {
    let mut owner: BTreeMap<(&'static str, &'static str, Option<u32>, String, bool), &str> =
        BTreeMap::new();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let mut timing = Timing::default();
    for (path, report) in reports {
        for r in &report.results {
            let key = (
                r.suite.name(),
                r.mode.name(),
                r.id,
                r.name.clone(),
                r.status == Status::Divergence,
            );
            if let Some(a) = owner.insert(key, path) {
                return Err(MergeError::Overlap {
                    suite: r.suite,
                    mode: r.mode.name(),
                    name: r.name.clone(),
                    a: a.to_owned(),
                    b: path.clone(),
                });
            }
            results.push(r.clone());
        }
        let label = report.shard.map(|s| s.to_string()).unwrap_or_default();
        errors.extend(report.errors.iter().map(|e| format!("shard {label}: {e}")));
        timing.total_s = timing.total_s.max(report.timing.total_s);
        timing.agent.extend(report.timing.agent.iter().cloned());
        timing.guests.extend(report.timing.guests.iter().cloned());
    }
    Ok((results, errors, timing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::model::{Mode, Suite, TestResult};
    use crate::report::{KernelInfo, ShardId};

    fn result(id: u32, mode: Mode) -> TestResult {
        TestResult::new(
            Suite::TestBpf,
            Some(id),
            &format!("T{id}"),
            mode,
            Status::Pass,
        )
        .with_jited(Some(true))
    }

    fn shard(index: u32, count: u32, ids: &[u32]) -> (String, Report) {
        let mut report = Report::new(
            KernelInfo {
                arch: Arch::Mips64el,
                release: Some("6.1".into()),
                source: "debian:x".into(),
                revision: None,
                config_hash: None,
            },
            ids.iter().map(|&i| result(i, Mode::Jit)).collect(),
            Vec::new(),
            true,
            Timing::default(),
        );
        report.shard = Some(ShardId { index, count });
        (format!("s{index}.json"), report)
    }

    #[test]
    fn shards_merge_into_the_unsharded_order() {
        let merged = merge(&[shard(2, 2, &[2, 3]), shard(1, 2, &[0, 1])]).unwrap();
        let ids: Vec<u32> = merged.results.iter().filter_map(|r| r.id).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        assert_eq!(merged.shard, None);
        assert!(merged.complete);
        assert_eq!(merged.count(Status::Pass), 4);
    }

    #[test]
    fn wrong_sets_of_shards_are_refused() {
        let err = |r: &[(String, Report)]| merge(r).unwrap_err().to_string();
        assert_eq!(
            err(&[]),
            "nothing to merge: give the reports of every shard"
        );
        assert_eq!(err(&[shard(1, 3, &[0])]), "shard 2, 3 of 3 is missing");
        assert_eq!(
            err(&[shard(1, 2, &[0]), shard(1, 2, &[1])]),
            "s1.json and s1.json are both shard 1"
        );
        assert_eq!(
            err(&[shard(1, 2, &[0]), shard(2, 3, &[1])]),
            "s2.json is shard 2 of 3, but s1.json is of 2"
        );
        assert!(err(&[shard(1, 2, &[0]), shard(2, 2, &[0])]).contains("is in both"));
        let mut whole = shard(1, 1, &[0]);
        whole.1.shard = None;
        assert_eq!(
            err(&[whole]),
            "s1.json is not a shard's report (it was run without --shard)"
        );
    }
}
