//! `track.html`: the tracking view as one static page, for a kernel developer looking in the
//! morning at what the nightly runs changed.
//!
//! A section per series (arch and flavour) holds a table: a row per changed test, a column per
//! revision, oldest left. The cell of the revision a change is pinned on (the first one that
//! shows the new result) carries a thick left edge and `data-change="CLASS"`. Flaky tests
//! come last, in a group of their own and muted, so that their noise never reads as a stream
//! of regressions.
//!
//! The page runs no script at all, and its Content-Security-Policy forbids fetching anything
//! and running any script, so a mistake in escaping still cannot run code. Every string in a
//! track (names, ids, subjects, results) came from a kernel or a guest, so all of it is
//! escaped, and class names on the page come only from our own fixed sets.
//!
//! The page depends only on the track, never on when it was rendered, so that it can be
//! snapshot-tested.

use std::fmt::{self, Write as _};

use super::{Change, Revision, Series, TestLine, Track};
use crate::diff::Class;
use crate::model::Status;
use crate::outputs::html::Esc;

/// Columns before the revisions: suite, test, mode.
const KEY_COLUMNS: usize = 3;

/// The page for `track`.
pub fn render(track: &Track) -> String {
    let cells: usize = track
        .series
        .iter()
        .map(|s| s.tests.len() * s.revisions.len())
        .sum();
    let mut page = String::with_capacity(8192 + cells * 40);
    // Writing to a String cannot fail.
    let _ = write_page(&mut page, track);
    page
}

fn write_page(out: &mut String, track: &Track) -> fmt::Result {
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>BPF tracking</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>BPF tracking</h1>"
    )?;
    write_summary(out, track)?;
    write_legend(out)?;
    if track.series.is_empty() {
        writeln!(out, "<p>No series.</p>")?;
    }
    for series in &track.series {
        write_series(out, series)?;
    }
    writeln!(out, "</body>\n</html>")
}

/// How much the page covers, then the news first: what changed in the revisions run now.
fn write_summary(out: &mut String, track: &Track) -> fmt::Result {
    let revisions: usize = track.series.iter().map(|s| s.revisions.len()).sum();
    let new = track
        .series
        .iter()
        .flat_map(|s| &s.revisions)
        .filter(|r| r.new)
        .count();
    writeln!(
        out,
        "<p class=\"sum\">{}, {}; {} run now.",
        plural(track.series.len(), "series", "series"),
        plural(revisions, "revision", "revisions"),
        new
    )?;
    if new > 0 {
        let news = news(track.series.iter().flat_map(|s| s.new_changes()));
        if news.is_empty() {
            writeln!(out, "No change in them.")?;
        } else {
            writeln!(out, "Changes in them: {news}.")?;
        }
    }
    writeln!(out, "</p>")
}

/// `1 regression, 2 coverage-lost`: how many changes of each class, in the classes' order;
/// empty for none.
fn news<'a>(changes: impl Iterator<Item = (&'a TestLine, &'a Change)>) -> String {
    let classes: Vec<Class> = changes.map(|(_, c)| c.class).collect();
    Class::ALL
        .into_iter()
        .filter_map(|class| {
            let n = classes.iter().filter(|&&c| c == class).count();
            (n > 0).then(|| format!("{n} {}", class.name()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 revision`, `3 revisions`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the colours and edges mean. It uses the same classes as the tables, so it cannot
/// drift from them.
fn write_legend(out: &mut String) -> fmt::Result {
    write!(out, "<div class=\"legend\">\n<p>Results: ")?;
    for status in Status::ALL {
        write!(out, "<span class=\"c {0}\">{0}</span> ", status.name())?;
    }
    writeln!(
        out,
        "<span class=\"c absent\">—</span> not in that revision.</p>\n<p>Changes, on the \
         first revision that shows the new result (hover for since when): "
    )?;
    for class in Class::ALL {
        write!(
            out,
            "<span class=\"c\" data-change=\"{0}\">{0}</span> ",
            class.name()
        )?;
    }
    writeln!(
        out,
        "<span class=\"c\" data-change=\"flaky\">flaky</span>.</p>\n<p>A revision marked \
         <span class=\"badge new\">new</span> was run now; one marked \
         <span class=\"badge inc\">incomplete</span> was cut short, and its missing results \
         tell nothing. Flaky tests (changed back and forth, or passed only when run again) \
         are listed apart, last.</p>\n</div>"
    )
}

fn write_series(out: &mut String, series: &Series) -> fmt::Result {
    let (flaky, steady): (Vec<&TestLine>, Vec<&TestLine>) =
        series.tests.iter().partition(|t| t.flaky);
    writeln!(
        out,
        "<section class=\"series\">\n<h2>{} · {}</h2>",
        series.arch,
        Esc(&series.flavour)
    )?;
    write!(
        out,
        "<p class=\"sub\">{}; {} changed",
        plural(series.revisions.len(), "revision", "revisions"),
        plural(steady.len(), "test", "tests"),
    )?;
    if !flaky.is_empty() {
        write!(out, ", {} flaky", flaky.len())?;
    }
    let news = news(series.new_changes());
    if !news.is_empty() {
        write!(out, "; in the new revisions: {news}")?;
    }
    writeln!(out, ".</p>\n<div class=\"wrap\">\n<table>")?;
    write_head(out, &series.revisions)?;
    write_changed(out, series, &steady, flaky.is_empty())?;
    if !flaky.is_empty() {
        write_flaky(out, series, &flaky)?;
    }
    write_counts(out, &series.revisions)?;
    writeln!(out, "</table>\n</div>\n</section>")
}

/// A column per revision: its id, its subject and release in the tooltip, and badges for a
/// revision run now and one cut short.
fn write_head(out: &mut String, revisions: &[Revision]) -> fmt::Result {
    write!(
        out,
        "<thead>\n<tr><th scope=\"col\">suite</th><th scope=\"col\">test</th>\
         <th scope=\"col\">mode</th>"
    )?;
    for revision in revisions {
        let mut title = revision.info.subject.clone();
        if let Some(release) = &revision.release {
            title.push_str(" · release ");
            title.push_str(release);
        }
        if !revision.complete {
            title.push_str(" · incomplete: its run was cut short");
        }
        let class = match (revision.new, revision.complete) {
            (true, true) => "rev new",
            (true, false) => "rev new inc",
            (false, true) => "rev",
            (false, false) => "rev inc",
        };
        write!(
            out,
            "<th scope=\"col\" class=\"{class}\" title=\"{}\">{}",
            Esc(&title),
            Esc(&revision.info.id)
        )?;
        if revision.new {
            write!(out, " <span class=\"badge new\">new</span>")?;
        }
        if !revision.complete {
            write!(out, " <span class=\"badge inc\">incomplete</span>")?;
        }
        write!(out, "</th>")?;
    }
    writeln!(out, "</tr>\n</thead>")
}

/// The tests whose changes count, or a line saying there are none.
fn write_changed(
    out: &mut String,
    series: &Series,
    tests: &[&TestLine],
    no_flaky: bool,
) -> fmt::Result {
    writeln!(out, "<tbody class=\"changed\">")?;
    if tests.is_empty() {
        let n = series.revisions.len();
        let across = match n {
            1 => "in this one revision".to_owned(),
            n => format!("across these {n} revisions"),
        };
        let but = if no_flaky {
            ""
        } else {
            " but the flaky ones below"
        };
        writeln!(
            out,
            "<tr class=\"none\"><td colspan=\"{}\">no test changed {across}{but}</td></tr>",
            KEY_COLUMNS + n
        )?;
    }
    for test in tests {
        write_test(out, series, test)?;
    }
    writeln!(out, "</tbody>")
}

/// The flaky tests, under a heading that says why their changes are not news.
fn write_flaky(out: &mut String, series: &Series, tests: &[&TestLine]) -> fmt::Result {
    writeln!(
        out,
        "<tbody class=\"flaky\">\n<tr class=\"g\"><th colspan=\"{}\" scope=\"rowgroup\">flaky: \
         changed back and forth, or passed only when run again; their changes are noise, \
         not regressions</th></tr>",
        KEY_COLUMNS + series.revisions.len()
    )?;
    for test in tests {
        write_test(out, series, test)?;
    }
    writeln!(out, "</tbody>")
}

/// A test's row: its key, then its result in each revision.
fn write_test(out: &mut String, series: &Series, test: &TestLine) -> fmt::Result {
    let class = if test.flaky { "t flaky" } else { "t" };
    write!(
        out,
        "<tr class=\"{class}\"><td class=\"u\">{}</td><td class=\"n\">{}",
        Esc(&test.suite),
        Esc(&test.name)
    )?;
    if test.flaky {
        write!(out, " <span class=\"badge flaky\">flaky</span>")?;
    }
    write!(out, "</td><td class=\"o\">{}</td>", Esc(&test.mode))?;
    for (i, revision) in series.revisions.iter().enumerate() {
        // A track read back from disk may be short of results: a missing one is absent.
        let result = test.results.get(i).and_then(Option::as_deref);
        let change = test.changes.iter().find(|c| c.revision == revision.info.id);
        write_cell(out, result, change, test.flaky)?;
    }
    writeln!(out, "</tr>")
}

/// One result, coloured by its status; the cell a change is pinned on gets its marker and a
/// tooltip saying since when. A flaky test's changes get the flaky marker, whatever their
/// class.
fn write_cell(
    out: &mut String,
    result: Option<&str>,
    change: Option<&Change>,
    flaky: bool,
) -> fmt::Result {
    let class = match result {
        None => "absent",
        Some(text) => status_of(text).map_or("other", Status::name),
    };
    write!(out, "<td class=\"{class}\"")?;
    if let Some(change) = change {
        let marker = if flaky { "flaky" } else { change.class.name() };
        let shown = |r: &Option<String>| r.clone().unwrap_or_else(|| "absent".to_owned());
        let mut title = format!(
            "{} since {}: {} → {}",
            change.class.name(),
            change.since,
            shown(&change.before),
            shown(&change.after)
        );
        if flaky {
            title.push_str(" (flaky: noise, not news)");
        }
        write!(out, " data-change=\"{marker}\" title=\"{}\"", Esc(&title))?;
    }
    write!(out, ">{}</td>", Esc(result.unwrap_or("—")))
}

/// The status a result starts with (`fail jited` is a fail); `None` for text that names none.
fn status_of(result: &str) -> Option<Status> {
    let word = result.split(' ').next()?;
    Status::ALL.into_iter().find(|s| s.name() == word)
}

/// Each revision's counts of results by status, under its column: a revision whose counts
/// collapse (many `not_run`) explains the changes above it.
fn write_counts(out: &mut String, revisions: &[Revision]) -> fmt::Result {
    write!(
        out,
        "<tfoot>\n<tr class=\"counts\"><th colspan=\"{KEY_COLUMNS}\" scope=\"row\">\
         results per revision</th>"
    )?;
    for revision in revisions {
        write!(out, "<td>")?;
        if revision.counts.is_empty() {
            write!(out, "none")?;
        }
        for (status, n) in &revision.counts {
            write!(out, "<span class=\"k {0}\">{n} {0}</span>", status.name())?;
        }
        write!(out, "</td>")?;
    }
    writeln!(out, "</tr>\n</tfoot>")
}

/// Status colours as on `index.html`, with the failures in shades of red; each text colour has
/// at least 4.5:1 contrast. Markers are edges of their own colour plus a sign, so that a
/// change does not speak by colour alone.
const STYLE: &str = r#"body{font:14px/1.35 system-ui,sans-serif;margin:1em;color:#111;background:#fff}
h1{font-size:1.3em;margin:0 0 .3em}
h2{font-size:1.1em;margin:1.2em 0 .1em}
.sum{margin:.2em 0 .5em}
.legend{color:#333;font-size:.9em;border:1px solid #ccc;border-radius:4px;padding:.1em .7em}
.legend p{margin:.35em 0}
.sub{color:#555;margin:.1em 0 .4em}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:12px}
th{background:#e4e4e4;font-weight:600;text-align:left}
th,td{border:1px solid #fff;padding:2px 6px;white-space:nowrap}
td.u,td.o{color:#555}
td.n{white-space:normal;max-width:40em;overflow-wrap:anywhere}
th.new{background:#fff1b8}
.badge{display:inline-block;font-size:.8em;font-weight:600;padding:0 .3em;border-radius:3px;vertical-align:1px}
.badge.new{background:#1565c0;color:#fff}
.badge.inc{background:#ef8f00;color:#000}
.badge.flaky{background:#757575;color:#fff}
.c{display:inline-block;padding:0 .35em;border-radius:3px}
.pass{background:#b8e0b8;color:#0b3d0b}
.fail{background:#c62828;color:#fff}
.crash{background:#7f0000;color:#fff}
.hang{background:#bf360c;color:#fff}
.divergence{background:#ad1457;color:#fff}
.skip{background:#d0d0d0;color:#222}
.not_run{background:#ffe49a;color:#5c4300}
.error{background:#ffb74d;color:#3e2500}
.other{background:#f0f0f0;color:#111}
.absent{background:none;color:#999;text-align:center}
[data-change]{border-left:5px solid #000}
[data-change]::before{font-weight:700;padding-right:.3em}
[data-change=regression]{border-left-color:#2b0000}
[data-change=regression]::before{content:"▼"}
[data-change=coverage-lost]{border-left-color:#e65100}
[data-change=coverage-lost]::before{content:"▽"}
[data-change=fix]{border-left-color:#1b5e20}
[data-change=fix]::before{content:"▲"}
[data-change=coverage-gained]{border-left-color:#00695c}
[data-change=coverage-gained]::before{content:"△"}
[data-change=new]{border-left-color:#1565c0}
[data-change=new]::before{content:"+"}
[data-change=removed]{border-left-color:#555}
[data-change=removed]::before{content:"×"}
[data-change=not-run]{border-left-color:#b58900}
[data-change=not-run]::before{content:"?"}
[data-change=flaky]{border-left:5px dotted #888}
[data-change=flaky]::before{content:"~"}
tr.g>th{background:#f0f0f0;color:#555;font-weight:400;font-style:italic}
tr.flaky>td{opacity:.6;filter:grayscale(.8)}
tr.none>td{color:#555;font-style:italic}
tfoot th{background:#f0f0f0;font-weight:400;color:#555}
tfoot td{vertical-align:top;background:#f7f7f7}
.k{display:block;margin:1px 0;padding:0 .3em;border-radius:3px;font-size:.9em}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::track::RevisionInfo;

    fn revision(id: &str) -> Revision {
        Revision {
            info: RevisionInfo {
                id: id.to_owned(),
                order: 0,
                subject: format!("subject of {id}"),
            },
            release: None,
            complete: true,
            counts: Default::default(),
            new: false,
        }
    }

    fn series(tests: Vec<TestLine>) -> Series {
        Series {
            arch: Arch::X86_64,
            flavour: "built".to_owned(),
            revisions: vec![revision("r1"), revision("r2")],
            tests,
        }
    }

    #[test]
    fn a_short_or_odd_track_from_disk_still_renders() {
        let test = TestLine {
            suite: "test_bpf".to_owned(),
            name: "A".to_owned(),
            mode: "jit".to_owned(),
            // One result for two revisions, and one of a status no one knows.
            results: vec![Some("bogus\" onmouseover=x".to_owned())],
            changes: vec![Change {
                class: Class::Regression,
                revision: "gone".to_owned(),
                since: "r1".to_owned(),
                before: None,
                after: None,
            }],
            flaky: false,
        };
        let page = render(&Track::new(vec![series(vec![test])]));
        assert!(page.contains("<td class=\"other\">bogus&quot; onmouseover=x</td>"));
        assert!(page.contains("<td class=\"absent\">—</td></tr>"));
        assert!(!page.contains("data-change=\"regression\" title"));
    }

    #[test]
    fn guest_text_is_escaped_in_text_and_attributes() {
        let evil = "</table><script>alert(1)</script>";
        let mut s = series(Vec::new());
        s.flavour = evil.to_owned();
        s.revisions[0].info.id = evil.to_owned();
        s.revisions[0].info.subject = "\"><script>alert(2)</script>".to_owned();
        let page = render(&Track::new(vec![s]));
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;/table&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("title=\"&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;\""));
    }

    #[test]
    fn no_series_and_one_revision_read_well() {
        assert!(render(&Track::new(Vec::new())).contains("<p>No series.</p>"));
        let mut s = series(Vec::new());
        s.revisions.truncate(1);
        let page = render(&Track::new(vec![s]));
        assert!(page.contains("no test changed in this one revision</td>"));
        assert!(page.contains("1 revision; 0 tests changed."));
    }
}
