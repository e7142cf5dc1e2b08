//! `track.md`: what changed since the previous nightly, in a few lines of Markdown for an
//! email or a CI step summary; then every change of each series, and its flaky tests.

use std::fmt::Write as _;

use super::{Change, Series, TestLine, Track};
use crate::model::Status;
use crate::outputs::markdown::{cell, more, LIST_AT_MOST};

/// The page.
pub fn render(track: &Track) -> String {
    let mut out = String::from("# BPF tracking\n");
    if track.series.is_empty() {
        out.push_str("\nThe history holds no run yet.\n");
    }
    for series in &track.series {
        render_series(&mut out, series);
    }
    out
}

/// One series: its heading, then what changed since the previous run, its revisions, every
/// change and its flaky tests.
fn render_series(out: &mut String, series: &Series) {
    let new: Vec<&str> = series
        .revisions
        .iter()
        .filter(|r| r.new)
        .map(|r| r.info.id.as_str())
        .collect();
    let _ = writeln!(
        out,
        "\n## {} {}: {} revisions, {} new\n",
        series.arch,
        cell(&series.flavour),
        series.revisions.len(),
        new.len()
    );
    since_previous_run(out, series, &new);
    revisions_table(out, series);
    every_change(out, series);
    flaky_list(out, series);
}

/// The changes the `new` revisions brought, or why there are none.
fn since_previous_run(out: &mut String, series: &Series, new: &[&str]) {
    let _ = writeln!(out, "### Since the previous run\n");
    let news: Vec<(&TestLine, &Change)> = series.new_changes().collect();
    match (new.is_empty(), news.is_empty()) {
        (true, _) => {
            let _ = writeln!(out, "No new revision: nothing was run.");
        }
        (false, true) => {
            let _ = writeln!(
                out,
                "No test changed in {}.",
                new.iter().map(|id| cell(id)).collect::<Vec<_>>().join(", ")
            );
        }
        (false, false) => changes_table(out, &news),
    }
}

/// Each revision of the series with its release and its count of each status.
fn revisions_table(out: &mut String, series: &Series) {
    let _ = writeln!(
        out,
        "\n### Revisions\n\n| revision | what | release | results |\n| --- | --- | --- | --- |"
    );
    for r in &series.revisions {
        let counts: Vec<String> = Status::ALL
            .iter()
            .filter_map(|s| r.counts.get(s).map(|n| format!("{n} {}", s.name())))
            .collect();
        let _ = writeln!(
            out,
            "| {}{}{} | {} | {} | {} |",
            cell(&r.info.id),
            if r.new { " (new)" } else { "" },
            if r.complete { "" } else { " (incomplete)" },
            cell(&r.info.subject),
            cell(r.release.as_deref().unwrap_or("-")),
            counts.join(", ")
        );
    }
}

/// Every change of the series' tests that are not flaky.
fn every_change(out: &mut String, series: &Series) {
    let all: Vec<(&TestLine, &Change)> = series
        .tests
        .iter()
        .filter(|t| !t.flaky)
        .flat_map(|t| t.changes.iter().map(move |c| (t, c)))
        .collect();
    let _ = writeln!(out, "\n### Every change in the series\n");
    match all.is_empty() {
        true => {
            let _ = writeln!(out, "None.");
        }
        false => changes_table(out, &all),
    }
}

/// The flaky tests with their results revision by revision; nothing when there are none.
fn flaky_list(out: &mut String, series: &Series) {
    let flaky: Vec<&TestLine> = series.tests.iter().filter(|t| t.flaky).collect();
    if flaky.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Flaky ({})\n\nTheir changes are not counted as regressions.\n",
        flaky.len()
    );
    for t in flaky.iter().take(LIST_AT_MOST) {
        let results: Vec<&str> = t
            .results
            .iter()
            .map(|r| r.as_deref().unwrap_or("-"))
            .collect();
        let _ = writeln!(
            out,
            "- {} {} [{}]: {}",
            t.suite,
            cell(&t.name),
            t.mode,
            results.join(" → ")
        );
    }
    more(out, flaky.len());
}

/// Changes, worst class first, then by test.
fn changes_table(out: &mut String, changes: &[(&TestLine, &Change)]) {
    let mut changes = changes.to_vec();
    changes.sort_by_key(|(t, c)| (c.class, &t.suite, &t.mode, &t.name));
    let _ = writeln!(
        out,
        "| class | test | mode | before | after | first in | last before |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for (t, c) in changes.iter().take(LIST_AT_MOST) {
        let _ = writeln!(
            out,
            "| {} | {} {} | {} | {} | {} | {} | {} |",
            c.class.name(),
            t.suite,
            cell(&t.name),
            t.mode,
            c.before.as_deref().unwrap_or("-"),
            c.after.as_deref().unwrap_or("-"),
            cell(&c.revision),
            cell(&c.since),
        );
    }
    more(out, changes.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::model::Status::{Fail, Pass};
    use crate::track::tests::{report, run};

    #[test]
    fn news_come_first_then_the_revisions_and_every_change() {
        let ok = report(&[("A|pipe", Pass, Some(true)), ("B", Pass, Some(true))]);
        let bad = report(&[("A|pipe", Fail, Some(true)), ("B", Pass, Some(true))]);
        let mut runs = vec![run("6.1.0-47", 47, ok.clone()), run("6.1.0-50", 50, ok)];
        runs.push(run("6.1.0-53", 53, bad));
        runs[2].new = true;
        let track = Track::new(vec![Series::build(Arch::X86_64, "debian-6.1-amd64", runs)]);
        insta::assert_snapshot!(render(&track));
    }
}
