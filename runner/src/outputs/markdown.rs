//! `summary.md`: a run in a few lines of Markdown, for a CI step summary (GitHub's
//! `$GITHUB_STEP_SUMMARY`) or a merge request comment: the counts, the diff against the
//! baseline, and the first lines of each failure.

use std::fmt::Write as _;

use crate::diff::{Class, Diff};
use crate::model::Status;
use crate::report::Report;

/// How many changes or failures a section lists before saying how many more there are: a
/// step summary is read, not searched.
pub(crate) const LIST_AT_MOST: usize = 50;
/// Lines of a failure's message shown.
const MESSAGE_LINES: usize = 3;

/// The page. `fail_on` is what the gate fails on, to mark those changes.
pub fn render(report: &Report, fail_on: &[Class]) -> String {
    let mut out = String::new();
    let kernel = &report.kernel;
    let _ = writeln!(
        out,
        "## BPF JIT tests: {} {}\n",
        kernel.arch,
        cell(kernel.name())
    );
    let _ = write!(out, "Kernel: `{}`", kernel.source.replace('`', "'"));
    match report.shard {
        Some(shard) => {
            let _ = writeln!(out, ", shard {shard}");
        }
        None => out.push('\n'),
    }
    if !report.complete {
        let _ = writeln!(
            out,
            "\n**Incomplete run**: the results are those seen before it stopped."
        );
    }
    let _ = writeln!(out, "\n| status | tests |\n| --- | ---: |");
    for status in Status::ALL {
        let n = report.count(status);
        if n > 0 {
            let _ = writeln!(out, "| {} | {n} |", status.name());
        }
    }
    match &report.diff {
        Some(diff) => render_diff(&mut out, diff, fail_on),
        None => {
            let _ = writeln!(out, "\nNo baseline to compare with.");
        }
    }
    render_failures(&mut out, report);
    if !report.errors.is_empty() {
        let _ = writeln!(out, "\n### Harness errors\n");
        for e in &report.errors {
            let _ = writeln!(out, "- {}", cell(first_line(e)));
        }
    }
    out
}

fn render_diff(out: &mut String, diff: &Diff, fail_on: &[Class]) {
    let gate = diff.gate_failures(fail_on).count();
    let _ = writeln!(
        out,
        "\n### Against the baseline: {}\n\nBaseline `{}`; {} unchanged. {}",
        diff.headline(),
        diff.baseline,
        diff.unchanged,
        match gate {
            0 => "The gate passes.".to_owned(),
            n => format!("**{n} change(s) fail the gate.**"),
        }
    );
    if let Some(why) = &diff.removed_not_judged {
        let _ = writeln!(out, "\nRemoved tests were not judged: {why}.");
    }
    for class in Class::ALL {
        let changes: Vec<_> = diff.changes.iter().filter(|c| c.class == class).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n#### {} ({})\n\n| test | mode | before | now | |\n| --- | --- | --- | --- | --- |",
            class.name(),
            changes.len()
        );
        for c in changes.iter().take(LIST_AT_MOST) {
            let note = match (&c.quarantined, fail_on.contains(&c.class)) {
                (Some(why), _) => format!("quarantined: {}", cell(why)),
                (None, true) => "**fails the gate**".to_owned(),
                (None, false) => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} {} | {} | {} | {} | {note} |",
                c.suite,
                cell(&c.name),
                c.mode,
                c.before.as_deref().unwrap_or("-"),
                c.after.as_deref().unwrap_or("-"),
            );
        }
        more(out, changes.len());
    }
}

fn render_failures(out: &mut String, report: &Report) {
    let failures: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.status.is_test_failure() || r.status == Status::Error)
        .collect();
    if failures.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Failures ({})\n", failures.len());
    for r in failures.iter().take(LIST_AT_MOST) {
        let id = r.id.map(|id| format!(" #{id}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "- **{}** {}{id} {} [{}]",
            r.status.name(),
            r.suite,
            cell(&r.name),
            r.mode.name()
        );
        if let Some(message) = &r.message {
            let lines: Vec<&str> = message.lines().take(MESSAGE_LINES).collect();
            let _ = writeln!(out, "  ```\n  {}\n  ```", fence(&lines.join("\n  ")));
        }
    }
    more(out, failures.len());
}

pub(crate) fn more(out: &mut String, total: usize) {
    if total > LIST_AT_MOST {
        let _ = writeln!(
            out,
            "\n... and {} more in report.json.",
            total - LIST_AT_MOST
        );
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Text from the guest inside a table cell or a list item: no line breaks, no cell breaks, no
/// markup or HTML of its own.
pub(crate) fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            // `_` is left alone: inside a word (ALU_MOV_X) it is no emphasis.
            '|' | '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '#' | '&' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Text inside a code fence: it cannot close the fence.
fn fence(s: &str) -> String {
    s.replace("```", "'''")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::diff::Change;
    use crate::model::{Mode, Suite, TestResult};
    use crate::report::{KernelInfo, Timing};

    fn report() -> Report {
        let result = |name: &str, status, message: Option<&str>| TestResult {
            jited: Some(true),
            message: message.map(Into::into),
            ..TestResult::new(Suite::TestBpf, Some(7), name, Mode::Jit, status)
        };
        let mut r = Report::new(
            KernelInfo {
                arch: Arch::Mips64el,
                release: Some("6.1.0-50-5kc-malta".into()),
                source: "debian:linux-image-6.1.0-50-5kc-malta=6.1.176-1".into(),
                revision: None,
                config_hash: None,
            },
            vec![
                result("ok", Status::Pass, None),
                result(
                    "a|b <i>`x`</i>",
                    Status::Fail,
                    Some("ret 0 != 1\nline two\nline three\nline four ```"),
                ),
            ],
            Vec::new(),
            true,
            Timing::default(),
        );
        r.diff = Some(Diff {
            baseline: "reports/baselines/mips64el-debian-6.1-5kc-malta.yaml".into(),
            counts: [(Class::Regression, 1)].into_iter().collect(),
            unchanged: 1,
            changes: vec![Change {
                class: Class::Regression,
                suite: "test_bpf".into(),
                name: "a|b <i>`x`</i>".into(),
                mode: "jit".into(),
                before: Some("pass jited".into()),
                after: Some("fail jited".into()),
                message: None,
                quarantined: None,
            }],
            removed_not_judged: None,
        });
        r
    }

    #[test]
    fn the_summary_shows_counts_the_diff_and_failures() {
        insta::assert_snapshot!(render(&report(), &Class::GATE_DEFAULT));
    }

    #[test]
    fn guest_text_cannot_break_a_table_or_a_fence() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell("<script>"), "\\<script\\>");
        assert_eq!(fence("x ``` y\u{1b}"), "x ''' y\u{fffd}");
    }
}
