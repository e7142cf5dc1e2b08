//! `index.html`: the results of one or more runs as one static page, for people.
//!
//! One run gives a column per mode. Several runs (two architectures, two kernels) give a
//! matrix: a row per test, a column per (run, mode). The page stands alone: inline CSS and a
//! small inline script, nothing fetched. Its Content-Security-Policy forbids fetching anything
//! and running any script but ours, so a mistake in escaping still cannot run code.
//!
//! Every string in a report came from the guest, so all of it is escaped for HTML, and none of
//! it goes into the script: the script reads the table it filters.
//!
//! The page depends only on the reports, never on when it was rendered, so that it can be
//! snapshot-tested.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use crate::model::{Mode, Status, TestResult};
use crate::report::{KernelInfo, Report};

/// The page for `runs`, in the order given: their columns appear left to right in that order.
pub fn render(runs: &[&Report]) -> String {
    let columns = columns(runs);
    let rows = rows(runs, &columns);
    let mut page = String::with_capacity(8192 + rows.len() * (100 + 30 * columns.len()));
    // Writing to a String cannot fail.
    let _ = write_page(&mut page, runs, &columns, &rows);
    page
}

/// What a column shows for its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The results in one mode.
    Mode(Mode),
    /// The cases whose modes disagreed. A divergence is a finding beside the case's result in
    /// each mode, not one of them, so it gets a column of its own.
    Divergence,
}

impl Kind {
    fn of(result: &TestResult) -> Kind {
        match result.status {
            Status::Divergence => Kind::Divergence,
            _ => Kind::Mode(result.mode),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Mode(mode) => mode.name(),
            Kind::Divergence => "divergence",
        }
    }
}

#[derive(Debug)]
struct Column {
    /// Index into the runs.
    run: usize,
    kind: Kind,
}

/// Each run's modes in their usual order, then its divergences; only what the run has.
fn columns(runs: &[&Report]) -> Vec<Column> {
    let kinds: Vec<Kind> = Mode::ALL
        .into_iter()
        .map(Kind::Mode)
        .chain([Kind::Divergence])
        .collect();
    let mut columns = Vec::new();
    for (run, report) in runs.iter().enumerate() {
        for &kind in &kinds {
            if report.results.iter().any(|r| Kind::of(r) == kind) {
                columns.push(Column { run, kind });
            }
        }
    }
    columns
}

/// One test across every column.
#[derive(Debug)]
struct Row<'a> {
    suite: &'a str,
    name: &'a str,
    /// The test's numbers in the runs. Shown only when they agree: numbers shift between
    /// kernel revisions.
    ids: Vec<u32>,
    /// One per column; `None` where that run has no such test.
    cells: Vec<Option<&'a TestResult>>,
}

/// The tests in the order they first appear. A test is its suite, its name and which of the
/// results of that name it is in its column: test_bpf repeats names within a suite, and its
/// numbers shift between kernel revisions, so the number cannot identify it.
fn rows<'a>(runs: &[&'a Report], columns: &[Column]) -> Vec<Row<'a>> {
    let mut rows: Vec<Row<'a>> = Vec::new();
    let mut index: HashMap<(&'a str, &'a str, usize), usize> = HashMap::new();
    for (run, report) in runs.iter().copied().enumerate() {
        // How many results of each (column, suite, name) this run has shown so far.
        let mut seen: HashMap<(usize, &str, &str), usize> = HashMap::new();
        for result in &report.results {
            let kind = Kind::of(result);
            let Some(column) = columns.iter().position(|c| c.run == run && c.kind == kind) else {
                continue;
            };
            let (suite, name) = (result.suite.name(), result.name.as_str());
            let occurrence = seen.entry((column, suite, name)).or_default();
            let key = (suite, name, *occurrence);
            *occurrence += 1;
            let row = *index.entry(key).or_insert_with(|| {
                rows.push(Row {
                    suite,
                    name,
                    ids: Vec::new(),
                    cells: vec![None; columns.len()],
                });
                rows.len() - 1
            });
            let row = &mut rows[row];
            row.cells[column] = Some(result);
            if let Some(id) = result.id.filter(|id| !row.ids.contains(id)) {
                row.ids.push(id);
            }
        }
    }
    rows
}

fn write_page(out: &mut String, runs: &[&Report], columns: &[Column], rows: &[Row]) -> fmt::Result {
    let title: Vec<String> = runs.iter().map(|r| kernel_label(&r.kernel)).collect();
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    )?;
    writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'sha256-{}'\">",
        script_sha256()
    )?;
    writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>BPF JIT tests: {}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>BPF JIT tests</h1>",
        Esc(&title.join(", "))
    )?;
    write_runs(out, runs)?;
    write_toolbar(out)?;
    write_table(out, runs, columns, rows)?;
    writeln!(out, "<script>{SCRIPT}</script>\n</body>\n</html>")
}

/// `x86_64 6.1.0-56-amd64`.
fn kernel_label(kernel: &KernelInfo) -> String {
    format!("{} {}", kernel.arch, kernel.name())
}

/// A card per run: its kernel, when it ran, whether it finished, its counts and errors.
fn write_runs(out: &mut String, runs: &[&Report]) -> fmt::Result {
    if runs.is_empty() {
        writeln!(out, "<p>No runs.</p>")?;
    }
    writeln!(out, "<div class=\"runs\">")?;
    for report in runs {
        let kernel = &report.kernel;
        write!(
            out,
            "<section class=\"run\">\n<h2>{}</h2>\n<dl>\n<dt>kernel</dt><dd>{}",
            Esc(&kernel_label(kernel)),
            Esc(&kernel.source),
        )?;
        // What its baseline is kept per; nothing to add for a kernel from a directory.
        let flavour = kernel.flavour();
        if flavour != "local" {
            write!(out, " ({})", Esc(&flavour))?;
        }
        writeln!(out, "</dd>")?;
        let started = report
            .started
            .as_deref()
            .unwrap_or("(a replayed recording)");
        writeln!(out, "<dt>started</dt><dd>{}</dd>", Esc(started))?;
        let state = match (report.complete, report.shard) {
            (true, None) => "complete".to_owned(),
            (true, Some(shard)) => format!("complete, part {shard}"),
            (false, _) => "<strong>incomplete</strong>: interrupted or stopped early".to_owned(),
        };
        writeln!(out, "<dt>run</dt><dd>{state}</dd>")?;
        if let Some(scope) = &report.scope {
            let modes: Vec<&str> = scope.modes.iter().map(|m| m.name()).collect();
            write!(
                out,
                "<dt>selected</dt><dd>{}; {}",
                Esc(&scope.suites.join(", ")),
                modes.join(", ")
            )?;
            if let Some(filter) = &scope.filter {
                write!(out, "; filter {}", Esc(filter))?;
            }
            writeln!(out, "</dd>")?;
        }
        let counts: Vec<String> = Status::ALL
            .into_iter()
            .filter(|&s| report.count(s) > 0)
            .map(|s| Badge(s, &format!("{} {}", report.count(s), s.name())).to_string())
            .collect();
        let counts = if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(" ")
        };
        writeln!(out, "<dt>results</dt><dd>{counts}</dd>\n</dl>")?;
        if !report.errors.is_empty() {
            writeln!(out, "<ul class=\"err\">")?;
            for error in &report.errors {
                writeln!(out, "<li>{}</li>", Esc(error))?;
            }
            writeln!(out, "</ul>")?;
        }
        writeln!(out, "</section>")?;
    }
    writeln!(out, "</div>")
}

/// The filters, which are also the legend. The script reads and writes them in the URL's
/// fragment: `#filter=TEXT&status=fail,crash&notpass=1`.
fn write_toolbar(out: &mut String) -> fmt::Result {
    writeln!(
        out,
        "<div id=\"bar\">\n<input id=\"q\" type=\"search\" placeholder=\"filter by suite or name\" \
         aria-label=\"filter by suite or name\">\n\
         <label><input id=\"np\" type=\"checkbox\"> not passing</label>\n<span id=\"st\">"
    )?;
    for status in Status::ALL {
        let checkbox = format!("<input type=\"checkbox\" value=\"{}\">", status.name());
        writeln!(
            out,
            "<label>{checkbox}{}</label>",
            Badge(status, status.name())
        )?;
    }
    writeln!(
        out,
        "</span>\n<output id=\"shown\"></output>\n</div>\n<p class=\"hint\">A small j: the \
         program was JIT-compiled. Click an underlined cell for its message. Link to a view \
         with <code>#filter=TEXT&amp;status=fail,crash&amp;notpass=1</code>.</p>"
    )
}

fn write_table(
    out: &mut String,
    runs: &[&Report],
    columns: &[Column],
    rows: &[Row],
) -> fmt::Result {
    write!(
        out,
        "<table>\n<thead>\n<tr><th rowspan=\"2\">suite</th><th rowspan=\"2\">test</th>"
    )?;
    for (run, report) in runs.iter().enumerate() {
        let span = columns.iter().filter(|c| c.run == run).count();
        if span > 0 {
            let kernel = &report.kernel;
            let release = kernel.name();
            write!(
                out,
                "<th colspan=\"{span}\">{}<br><small>{}</small></th>",
                kernel.arch,
                Esc(release)
            )?;
        }
    }
    write!(out, "</tr>\n<tr>")?;
    for column in columns {
        write!(out, "<th>{}</th>", column.kind.label())?;
    }
    writeln!(out, "</tr>\n</thead>\n<tbody id=\"rows\">")?;
    for row in rows {
        write_row(out, runs, columns, row)?;
    }
    writeln!(out, "</tbody>\n</table>")
}

/// A test's row, then, when any of its results has a message, a row with those messages.
fn write_row(out: &mut String, runs: &[&Report], columns: &[Column], row: &Row) -> fmt::Result {
    let results = || row.cells.iter().flatten();
    let statuses: Vec<&str> = Status::ALL
        .into_iter()
        .filter(|&s| results().any(|r| r.status == s))
        .map(Status::name)
        .collect();
    write!(
        out,
        "<tr class=\"r\" data-s=\"{}\"><td class=\"u\">{}</td><td class=\"t\">{}",
        statuses.join(" "),
        Esc(row.suite),
        Esc(row.name)
    )?;
    if let [id] = row.ids[..] {
        write!(out, " <small>#{id}</small>")?;
    }
    write!(out, "</td>")?;
    for cell in &row.cells {
        let Some(result) = cell else {
            write!(out, "<td></td>")?;
            continue;
        };
        let jited = if result.jited == Some(true) { " j" } else { "" };
        let (class, focus) = match message(result) {
            Some(_) => (" m", " tabindex=\"0\""),
            None => ("", ""),
        };
        write!(
            out,
            "<td class=\"{}{jited}{class}\"{focus}>{}</td>",
            result.status.name(),
            letter(result.status)
        )?;
    }
    writeln!(out, "</tr>")?;
    if results().all(|r| message(r).is_none()) {
        return Ok(());
    }
    write!(
        out,
        "<tr class=\"d\"><td colspan=\"{}\">",
        columns.len() + 2
    )?;
    for (i, (cell, column)) in row.cells.iter().zip(columns).enumerate() {
        let Some((result, message)) = cell.and_then(|r| Some((r, message(r)?))) else {
            continue;
        };
        let kernel = runs.get(column.run).map(|r| kernel_label(&r.kernel));
        // `data-c` is the cell's index in its row, which is how the script finds it. The
        // newline after <pre> is eaten by the parser, so a message's own first one survives.
        write!(
            out,
            "<details data-c=\"{}\"><summary>{} {}: {}</summary><pre>\n{}</pre></details>",
            i + 2,
            Esc(kernel.as_deref().unwrap_or("")),
            result.mode.name(),
            result.status.name(),
            Esc(message)
        )?;
    }
    writeln!(out, "</td></tr>")
}

fn message(result: &TestResult) -> Option<&str> {
    result.message.as_deref().filter(|m| !m.is_empty())
}

/// A letter per status, so that a cell does not speak by colour alone.
fn letter(status: Status) -> &'static str {
    match status {
        Status::Pass => "P",
        Status::Fail => "F",
        Status::Skip => "S",
        Status::Crash => "C",
        Status::Hang => "H",
        Status::NotRun => "N",
        Status::Error => "E",
        Status::Divergence => "D",
    }
}

/// A status's colour, letter and some text, for the run cards and the legend.
struct Badge<'a>(Status, &'a str);

impl fmt::Display for Badge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Badge(status, text) = *self;
        let (name, letter) = (status.name(), letter(status));
        write!(f, "<span class=\"b {name}\">{letter} {}</span>", Esc(text))
    }
}

/// Text escaped for HTML, in text or in a quoted attribute. Control characters other than
/// newline and tab become visible: the console's escape sequences and stray carriage returns
/// show as ␛ and ␍ instead of vanishing or upsetting the parser.
pub(crate) struct Esc<'a>(pub(crate) &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0;
        // Copies the runs between special characters whole.
        let mut start = 0;
        for (i, c) in text.char_indices() {
            let entity = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                '\n' | '\t' => continue,
                c if c.is_control() => {
                    f.write_str(&text[start..i])?;
                    f.write_char(control_picture(c))?;
                    start = i + c.len_utf8();
                    continue;
                }
                _ => continue,
            };
            f.write_str(&text[start..i])?;
            f.write_str(entity)?;
            start = i + c.len_utf8();
        }
        f.write_str(&text[start..])
    }
}

/// The Unicode "control picture" of a C0 control or DEL, U+FFFD for the C1 controls.
fn control_picture(c: char) -> char {
    match c as u32 {
        code @ 0..=0x1f => char::from_u32(0x2400 + code).unwrap_or('\u{fffd}'),
        0x7f => '\u{2421}',
        _ => '\u{fffd}',
    }
}

/// Distinct colours, each with a text colour of at least 4.5:1 contrast. Red and green differ
/// in lightness too, and every cell also has its letter.
const STYLE: &str = r#"body{font:14px/1.35 system-ui,sans-serif;margin:1em;color:#111;background:#fff}
h1{font-size:1.3em;margin:0 0 .4em}
.runs{display:flex;flex-wrap:wrap;gap:.6em}
.run{border:1px solid #bbb;border-radius:4px;padding:.3em .8em .5em}
.run h2{font-size:1.05em;margin:.2em 0}
dl{display:grid;grid-template-columns:auto 1fr;gap:0 .8em;margin:0}
dt{color:#555}
dd{margin:0}
.err{color:#8b0000;margin:.3em 0 0;padding-left:1.2em}
.err li{white-space:pre-wrap}
#bar{display:flex;flex-wrap:wrap;gap:.4em;align-items:center;margin:.8em 0 .3em}
#bar label{white-space:nowrap}
.hint{color:#555;font-size:.9em;margin:.2em 0 .6em}
.b{display:inline-block;padding:0 .35em;border-radius:3px}
table{border-collapse:collapse;font-size:12px}
thead{position:sticky;top:0;z-index:1}
th{background:#e4e4e4;font-weight:600}
th,td{border:1px solid #fff;padding:1px 4px}
td.u{color:#666}
td.t{max-width:45em;overflow-wrap:anywhere}
tr.r>td:nth-child(n+3){text-align:center;min-width:1.4em;font-weight:600}
td.j::after{content:"j";font-size:.75em;vertical-align:super;font-weight:400}
td.m{cursor:pointer;text-decoration:underline}
tr.d>td{background:#f6f6f6}
.js tr.d:not(.o){display:none}
pre{margin:.2em 0 .5em;white-space:pre-wrap;overflow-wrap:anywhere;max-height:40em;overflow:auto}
.pass{background:#b8e0b8;color:#0b3d0b}
.fail{background:#c62828;color:#fff}
.skip{background:#d0d0d0;color:#222}
.crash{background:#6a1b9a;color:#fff}
.hang{background:#ef8f00;color:#000}
.not_run{background:#f0f0f0;color:#555}
.error{background:#f3e03b;color:#000}
.divergence{background:#1565c0;color:#fff}
"#;

/// Filters rows, opens messages and keeps the view in the URL's fragment. It reads its data
/// from the table, so nothing from a report is ever part of script source. One delegated
/// handler serves every cell: a page has thousands.
const SCRIPT: &str = r##"
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const q = $("q"), np = $("np"), shown = $("shown"), body = $("rows");
  const boxes = Array.from(document.querySelectorAll("#st input"));
  const rows = Array.from(body.rows).filter((tr) => tr.classList.contains("r")).map((tr) => {
    const next = tr.nextElementSibling;
    return {
      tr,
      detail: next && next.classList.contains("d") ? next : null,
      text: (tr.cells[0].textContent + " " + tr.cells[1].textContent).toLowerCase(),
      statuses: tr.dataset.s.split(" "),
    };
  });
  function apply() {
    const text = q.value.trim().toLowerCase();
    const wanted = boxes.filter((b) => b.checked).map((b) => b.value);
    let n = 0;
    for (const row of rows) {
      const show = row.text.includes(text)
        && (!np.checked || row.statuses.some((s) => s !== "pass"))
        && (wanted.length === 0 || row.statuses.some((s) => wanted.includes(s)));
      if (row.tr.hidden === show) {
        row.tr.hidden = !show;
        if (row.detail) row.detail.hidden = !show;
      }
      if (show) n++;
    }
    shown.textContent = n + " of " + rows.length + " tests shown";
  }
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    q.value = p.get("filter") || "";
    np.checked = p.has("notpass") && p.get("notpass") !== "0";
    const wanted = (p.get("status") || "").split(",");
    for (const b of boxes) b.checked = wanted.includes(b.value);
    apply();
  }
  function writeHash() {
    const parts = [];
    if (q.value) parts.push("filter=" + encodeURIComponent(q.value));
    const wanted = boxes.filter((b) => b.checked).map((b) => b.value);
    if (wanted.length) parts.push("status=" + wanted.join(","));
    if (np.checked) parts.push("notpass=1");
    const url = parts.length ? "#" + parts.join("&") : location.pathname + location.search;
    try { history.replaceState(null, "", url); } catch (e) { /* the view works without */ }
  }
  function toggle(td) {
    const detail = td.parentElement.nextElementSibling;
    if (!detail || !detail.classList.contains("d")) return;
    const details = detail.querySelector('details[data-c="' + td.cellIndex + '"]');
    if (!details) return;
    details.open = !(detail.classList.contains("o") && details.open);
    detail.classList.toggle("o", detail.querySelector("details[open]") !== null);
  }
  body.addEventListener("click", (e) => {
    const td = e.target.closest("td.m");
    if (td) toggle(td);
  });
  body.addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === " ") && e.target.matches("td.m")) {
      e.preventDefault();
      toggle(e.target);
    }
  });
  q.addEventListener("input", apply);
  $("bar").addEventListener("change", () => { apply(); writeHash(); });
  window.addEventListener("hashchange", readHash);
  readHash();
  document.documentElement.classList.add("js");
})();
"##;

/// SHA-256 of [`SCRIPT`], base64: the page's Content-Security-Policy lets only this script
/// run. Computed, so that it always matches the script.
fn script_sha256() -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(SCRIPT.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::model::{AgentSuite, Suite, SuiteName};

    fn result(
        suite: impl Into<SuiteName>,
        id: u32,
        name: &str,
        mode: Mode,
        status: Status,
    ) -> TestResult {
        let r = TestResult::new(suite, Some(id), name, mode, status)
            .with_jited(Some(mode != Mode::Interp));
        match status {
            Status::Pass => r,
            _ => r.with_message(format!("{name} did not pass")),
        }
    }

    fn report(release: &str, results: Vec<TestResult>) -> Report {
        let kernel = KernelInfo {
            arch: Arch::X86_64,
            release: Some(release.to_owned()),
            source: "local".to_owned(),
            revision: None,
            config_hash: None,
        };
        Report::new(kernel, results, Vec::new(), true, Default::default())
    }

    #[test]
    fn guest_text_is_escaped() {
        let evil = "</script><img src=x onerror=alert(1)>";
        let mut results = vec![
            result(Suite::TestBpf, 0, evil, Mode::Jit, Status::Fail),
            result(Suite::TestBpf, 1, "<b>&\"'", Mode::Jit, Status::Pass),
        ];
        results[0].message = Some("</pre><script>alert(2)</script>".to_owned());
        let mut run = report("6.1<i>", results);
        run.errors.push("<svg onload=alert(3)>".to_owned());
        let page = render(&[&run]);
        assert!(page.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(page.contains("&lt;b&gt;&amp;&quot;&#39;"));
        assert!(page.contains("&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
        assert!(page.contains("6.1&lt;i&gt;"));
        assert!(page.contains("&lt;svg onload=alert(3)&gt;"));
        // Our script is the only one, and nothing the guest wrote became a tag.
        assert_eq!(page.matches("<script").count(), 1);
        assert_eq!(page.matches("</script>").count(), 1);
        for tag in ["<img", "<b>", "<i>", "<svg", "</pre><script"] {
            assert!(!page.contains(tag), "{tag} is in the page");
        }
    }

    #[test]
    fn control_characters_become_visible() {
        let escaped = Esc("a\u{1b}[0m\r\n\tb\u{7f}\u{85}").to_string();
        assert_eq!(escaped, "a\u{241b}[0m\u{240d}\n\tb\u{2421}\u{fffd}");
    }

    /// Rows line up by name and occurrence although the second kernel numbers them
    /// differently and has a test the first lacks.
    #[test]
    fn repeated_names_line_up_by_occurrence_not_number() {
        let old = report(
            "6.1.0-1",
            vec![
                result(Suite::TestBpf, 0, "A", Mode::Jit, Status::Pass),
                result(Suite::TestBpf, 1, "dup", Mode::Jit, Status::Pass),
                result(Suite::TestBpf, 2, "dup", Mode::Jit, Status::Fail),
            ],
        );
        let new = report(
            "6.1.0-2",
            vec![
                result(Suite::TestBpf, 0, "new", Mode::Jit, Status::Pass),
                result(Suite::TestBpf, 1, "A", Mode::Jit, Status::Pass),
                result(Suite::TestBpf, 2, "dup", Mode::Jit, Status::Pass),
                result(Suite::TestBpf, 3, "dup", Mode::Jit, Status::Pass),
            ],
        );
        let runs = [&old, &new];
        let columns = columns(&runs);
        let rows = rows(&runs, &columns);
        let shape: Vec<String> = rows
            .iter()
            .map(|r| {
                let cells: Vec<&str> = r
                    .cells
                    .iter()
                    .map(|c| c.map_or("-", |c| letter(c.status)))
                    .collect();
                format!("{} {:?} {}", r.name, r.ids, cells.join(" "))
            })
            .collect();
        assert_eq!(
            shape,
            [
                "A [0, 1] P P",
                "dup [1, 2] P P",
                "dup [2, 3] F P",
                "new [0] - P"
            ]
        );
    }

    #[test]
    fn a_divergence_has_a_column_of_its_own() {
        let run = report(
            "6.1",
            vec![
                result(
                    AgentSuite::Conformance,
                    0,
                    "alu",
                    Mode::Interp,
                    Status::Pass,
                ),
                result(AgentSuite::Conformance, 0, "alu", Mode::Jit, Status::Fail),
                result(
                    AgentSuite::Conformance,
                    0,
                    "alu",
                    Mode::Jit,
                    Status::Divergence,
                ),
            ],
        );
        let runs = [&run];
        let columns = columns(&runs);
        let kinds: Vec<Kind> = columns.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Mode(Mode::Interp),
                Kind::Mode(Mode::Jit),
                Kind::Divergence
            ]
        );
        let rows = rows(&runs, &columns);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].cells.iter().all(Option::is_some));
        let page = render(&runs);
        assert!(page.contains("data-s=\"pass fail divergence\""));
        assert!(page.contains("x86_64 6.1 jit: divergence</summary>"));
    }

    #[test]
    fn no_runs_is_a_page_too() {
        let page = render(&[]);
        assert!(page.contains("<p>No runs.</p>"));
        assert!(page.ends_with("</html>\n"));
    }
}
