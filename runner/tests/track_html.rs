//! `track.html` in its real consumer: Debian's headless Chromium loads the page, and its DOM
//! and a screenshot are checked. Plus a snapshot of a small track.
//!
//! Chromium is required, not optional: without `/usr/bin/chromium` these tests fail and
//! name the package to install.

mod common;

use common::browser::{self, chromium};
use runner::arch::Arch;
use runner::model::{Mode, Status, Suite, TestResult};
use runner::report::{KernelInfo, Report, Scope};
use runner::track::{html, RevisionInfo, Run, Series, Track};

/// A test name that closes the table and opens a script if it is not escaped.
const EVIL: &str = "</table><script>alert(1)</script>";

/// The revisions of the first series, oldest first.
const REVISIONS: [&str; 5] = ["6.1.0-50", "6.1.0-51", "6.1.0-52", "6.1.0-53", "6.1.0-54"];

const REGRESSION: &str = "JMP32_JLT_K: Small immediate";
const FIX: &str = "ALU_MOV_X: dst = src";
const COVERAGE: &str = "Tail call: max count reached";
const FLAKY: &str = "ALU64_MUL_K: timing sensitive";
const STEADY: &str = "LD_IMM64";

/// The report of one revision: each test's status, JIT-compiled when it ran. `None` leaves
/// the test out.
fn report(release: &str, results: &[(&str, Option<Status>)], complete: bool) -> Report {
    let results = results
        .iter()
        .filter_map(|&(name, status)| Some((name, status?)))
        .enumerate()
        .map(|(i, (name, status))| {
            TestResult::new(Suite::TestBpf, Some(i as u32), name, Mode::Jit, status)
                .with_jited((status != Status::NotRun).then_some(true))
        })
        .collect::<Vec<_>>();
    let kernel = KernelInfo {
        arch: Arch::X86_64,
        release: Some(release.to_owned()),
        source: "debian:linux-image-6.1.0-50-amd64-unsigned=6.1.176-1".to_owned(),
        revision: None,
        config_hash: None,
    };
    let mut report = Report::new(kernel, results, Vec::new(), complete, Default::default());
    report.scope = Some(Scope {
        suites: vec!["test_bpf".to_owned()],
        modes: vec![Mode::Jit],
        filter: None,
    });
    report
}

fn run(id: &str, order: u64, subject: &str, report: Report) -> Run {
    Run {
        info: RevisionInfo {
            id: id.to_owned(),
            order,
            subject: subject.to_owned(),
        },
        report,
        new: false,
    }
}

/// A series of five revisions: a regression pinned on the middle one, a fix on the fourth
/// (cut short), JIT coverage lost on the fifth (run now), a test that comes and goes, and a
/// test with an evil name that appears on the third. Plus a series where nothing changed.
fn track() -> Track {
    use Status::{Fail, NotRun, Pass};
    let table: [(&str, [Option<Status>; 5]); 6] = [
        (STEADY, [Some(Pass); 5]),
        (
            REGRESSION,
            [Some(Pass), Some(Pass), Some(Fail), Some(Fail), Some(Fail)],
        ),
        (
            FIX,
            [Some(Fail), Some(Fail), Some(Fail), Some(Pass), Some(Pass)],
        ),
        (COVERAGE, [Some(Pass); 5]),
        (
            FLAKY,
            [Some(Pass), Some(Fail), Some(Pass), Some(Fail), Some(Pass)],
        ),
        (EVIL, [None, None, Some(Pass), Some(Pass), Some(Pass)]),
    ];
    let subjects = [
        "6.1.176-1",
        "6.1.177-1",
        "6.1.178-1: \"bpf: fix\" & <b>more</b>",
        "6.1.179-1",
        "6.1.180-1",
    ];
    let mut runs: Vec<Run> = (0..5)
        .map(|i| {
            let mut results: Vec<(&str, Option<Status>)> =
                table.iter().map(|(name, s)| (*name, s[i])).collect();
            // The fourth run was cut short before the tail call.
            if i == 3 {
                results[3].1 = Some(NotRun);
            }
            let release = format!("{}-amd64", REVISIONS[i]);
            let mut report = report(&release, &results, i != 3);
            // The last revision's kernel stopped JIT-compiling the tail call.
            if i == 4 {
                for r in report.results.iter_mut().filter(|r| r.name == COVERAGE) {
                    r.jited = Some(false);
                }
            }
            run(REVISIONS[i], i as u64 + 1, subjects[i], report)
        })
        .collect();
    runs[4].new = true;
    let x86 = Series::build(Arch::X86_64, "debian-6.1-amd64", runs);

    let same = || report("6.12.0", &[(STEADY, Some(Pass)), (FIX, Some(Pass))], true);
    let mips = Series::build(
        Arch::Mips64el,
        "built",
        vec![
            run("a1b2c3d", 1, "bpf: one", same()),
            run("e4f5a6b", 2, "bpf: two", same()),
        ],
    );
    Track::new(vec![x86, mips])
}

fn write_page(page: &str) -> (tempfile::TempDir, String) {
    browser::write_page("track.html", page)
}

/// The window both the DOM and the screenshot are taken in, so that they share a layout.
const WINDOW: &str = "--window-size=1280,900";

fn dom(url: &str) -> String {
    chromium(&["--dump-dom", WINDOW], url)
}

/// The part of `text` from `start` to the next `end`, both excluded.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    rest.find(end).map(|i| &rest[..i])
}

/// A table of the DOM, cut into what the tests look at.
struct Table<'a> {
    /// The header cells' HTML, one per column.
    head: Vec<&'a str>,
    /// Each test row: its name (as HTML, without a badge), whether it is in the flaky group,
    /// and its cells' HTML from `<td` on, one per column.
    rows: Vec<(String, bool, Vec<&'a str>)>,
    html: &'a str,
}

fn tables(dom: &str) -> Vec<Table<'_>> {
    dom.split("<table>")
        .skip(1)
        .map(|rest| {
            let html = rest.split("</table>").next().unwrap_or(rest);
            let thead = between(html, "<thead>", "</thead>").expect("a table has a head");
            let head = thead.split("<th").skip(1).collect();
            let flaky_at = html.find("<tbody class=\"flaky\">").unwrap_or(html.len());
            let rows = html
                .match_indices("<tr class=\"t")
                .map(|(at, _)| {
                    let row = between(&html[at..], ">", "</tr>").expect("a row ends");
                    let name = between(row, "<td class=\"n\">", "</td>").expect("a name cell");
                    let name = name.split(" <span").next().unwrap_or(name).to_owned();
                    (name, at > flaky_at, row.split("<td").skip(1).collect())
                })
                .collect();
            Table { head, rows, html }
        })
        .collect()
}

fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[test]
fn a_small_track_page_is_stable() {
    let track = track();
    let page = html::render(&track);
    assert_eq!(page, html::render(&track), "the page is deterministic");
    insta::assert_snapshot!(page);
}

#[test]
fn the_track_in_chromium() {
    let track = track();
    let page = html::render(&track);
    assert!(!page.contains("<script"), "the page has no script at all");
    let (_dir, url) = write_page(&page);
    let dom = dom(&url);

    let tables = tables(&dom);
    assert_eq!(tables.len(), 2, "one table per series");
    let (x86, mips) = (&tables[0], &tables[1]);
    assert!(dom.contains("<h2>x86_64 · debian-6.1-amd64</h2>"));
    assert!(dom.contains("<h2>mips64el · built</h2>"));

    // Suite, test, mode, then a column per revision, in order, the new and the cut short
    // ones marked.
    assert_eq!(x86.head.len(), 3 + REVISIONS.len());
    for (th, id) in x86.head[3..].iter().zip(REVISIONS) {
        assert!(th.contains(&format!("\">{id}")), "{th} is not {id}'s");
    }
    assert!(x86.head[6].contains("incomplete</span>"), "{}", x86.head[6]);
    assert!(!x86.head[6].contains(">new</span>"));
    assert!(x86.head[7].contains(">new</span>"), "{}", x86.head[7]);
    assert!(x86.head[5].contains("&quot;bpf: fix&quot; &amp; &lt;b&gt;more&lt;/b&gt;"));

    // Every changed test is a row with a cell per column; the steady test is not there, the
    // flaky one is in its group at the bottom.
    let names: Vec<(&str, bool)> = x86.rows.iter().map(|(n, f, _)| (n.as_str(), *f)).collect();
    let evil = escaped(EVIL);
    assert_eq!(
        names,
        [
            (evil.as_str(), false),
            (FIX, false),
            (REGRESSION, false),
            (COVERAGE, false),
            (FLAKY, true),
        ]
    );
    assert!(x86.rows.iter().all(|(_, _, cells)| cells.len() == 8));
    let row = |name: &str| {
        let (_, _, cells) = x86
            .rows
            .iter()
            .find(|(n, _, _)| *n == name)
            .expect("a row of that name");
        cells
    };

    // The regression is pinned on the third revision, and only there.
    let cells = row(REGRESSION);
    let pinned: Vec<usize> = (0..cells.len())
        .filter(|&i| cells[i].contains("data-change="))
        .collect();
    assert_eq!(pinned, [3 + 2]);
    assert!(cells[5].starts_with(" class=\"fail\" data-change=\"regression\""));
    assert!(cells[5].contains("regression since 6.1.0-51: pass jited → fail jited"));
    assert!(cells[4].starts_with(" class=\"pass\">pass jited"));
    assert_eq!(x86.html.matches("data-change=\"regression\"").count(), 1);
    // The fix on the fourth, the coverage lost on the fifth despite the fourth not running it.
    assert!(row(FIX)[6].contains("data-change=\"fix\""));
    assert!(row(COVERAGE)[6].starts_with(" class=\"not_run\">not_run"));
    assert!(row(COVERAGE)[7].contains("data-change=\"coverage-lost\""));
    assert!(row(COVERAGE)[7].contains("since 6.1.0-52"));
    // The newcomer: absent, then new.
    assert!(row(&evil)[3].starts_with(" class=\"absent\">—"));
    assert!(row(&evil)[5].contains("data-change=\"new\""));
    // The flaky test's changes carry the flaky marker, never a class's.
    let flaky = row(FLAKY);
    assert_eq!(
        flaky
            .iter()
            .filter(|c| c.contains("data-change=\"flaky\""))
            .count(),
        4
    );
    assert!(flaky
        .iter()
        .all(|c| !c.contains("data-change=\"regression\"")));

    // The counts under each revision.
    let counts = between(x86.html, "<tfoot>", "</tfoot>").expect("counts");
    assert_eq!(counts.matches("<td>").count(), 5);
    assert!(counts.contains(
        "<span class=\"k pass\">5 pass</span><span class=\"k fail\">1 fail</span></td></tr>"
    ));

    // The series where nothing changed.
    assert_eq!(mips.head.len(), 3 + 2);
    assert!(mips.rows.is_empty());
    assert!(mips
        .html
        .contains("no test changed across these 2 revisions</td>"));

    // The evil name is text; no element came of it.
    assert!(dom.contains(&evil));
    assert!(!dom.contains("<script"), "a script element is in the DOM");
    assert!(dom.contains("<p class=\"sum\">2 series, 7 revisions; 1 run now.\nChanges in them: 1 coverage-lost.\n</p>"));
}

/// Where the regression's pinned cell and the pass before it are, in CSS pixels
/// (`left,top,width,height`), measured by a script on a copy of the page. The copy has no
/// Content-Security-Policy, which would stop that script, and the same layout.
fn cell_boxes(page: &str) -> [[u32; 4]; 2] {
    const MEASURE: &str = r#"<script>
(() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return [r.left, r.top, r.width, r.height].map(Math.round).join(",");
  };
  const pinned = document.querySelector('table td[data-change="regression"]');
  document.body.dataset.boxes = [pinned, pinned.previousElementSibling].map(box).join(" ");
})();
</script>
</body>"#;
    let (start, end) = (
        page.find("<meta http-equiv").expect("a CSP"),
        page.find("<meta name").expect("a viewport"),
    );
    let copy = format!("{}{}", &page[..start], &page[end..]).replace("</body>", MEASURE);
    let (_dir, url) = write_page(&copy);
    let dom = dom(&url);
    // Ours is the only script even without the policy: the evil name made none.
    assert_eq!(dom.matches("<script").count(), 1);
    let boxes = between(&dom, "data-boxes=\"", "\"").expect("the script measured the cells");
    let boxes: Vec<[u32; 4]> = boxes
        .split(' ')
        .map(|b| {
            let n: Vec<u32> = b.split(',').map(|n| n.parse().expect("a number")).collect();
            [n[0], n[1], n[2], n[3]]
        })
        .collect();
    [boxes[0], boxes[1]]
}

/// A screenshot of `url`: its width, height and RGB pixels.
fn screenshot(url: &str) -> (usize, usize, Vec<[u8; 3]>) {
    browser::screenshot(url, WINDOW)
}

/// The share of a box's pixels that `wanted` accepts, its edges (border, marker) left out.
fn share(shot: &(usize, usize, Vec<[u8; 3]>), b: [u32; 4], wanted: fn([u8; 3]) -> bool) -> f64 {
    let (width, height, pixels) = shot;
    let [left, top, w, h] = b.map(|n| n as usize);
    assert!(
        left + w <= *width && top + h <= *height,
        "{b:?} is off screen"
    );
    let (xs, ys) = (left + 7..left + w - 2, top + 2..top + h - 2);
    let total = xs.len() * ys.len();
    assert!(total > 100, "{b:?} is too small");
    let hits = ys
        .flat_map(|y| xs.clone().map(move |x| (x, y)))
        .filter(|&(x, y)| wanted(pixels[y * width + x]))
        .count();
    hits as f64 / total as f64
}

#[test]
fn the_regression_is_red_and_the_pass_before_it_green_in_a_screenshot() {
    let page = html::render(&track());
    let [regression, pass] = cell_boxes(&page);
    let (_dir, url) = write_page(&page);
    let shot = screenshot(&url);
    assert_eq!((shot.0, shot.1), (1280, 900), "the window's size");

    let red = |[r, g, b]: [u8; 3]| r > 150 && g < 90 && b < 90;
    let green = |[r, g, b]: [u8; 3]| g > r.saturating_add(25) && g > b.saturating_add(25);
    let reddish = share(&shot, regression, red);
    let greenish = share(&shot, pass, green);
    assert!(reddish > 0.6, "the regression's cell is {reddish:.2} red");
    assert!(greenish > 0.6, "the pass's cell is {greenish:.2} green");
    assert!(share(&shot, regression, green) < 0.01);
    assert!(share(&shot, pass, red) < 0.01);

    // The marker: a dark edge on the pinned cell's left, none on the pass's.
    let (width, _, pixels) = &shot;
    let edge = |b: [u32; 4]| {
        let (x, y) = (b[0] as usize + 1, (b[1] + b[3] / 2) as usize);
        pixels[y * width + x]
    };
    let [r, g, b] = edge(regression);
    assert!(r < 90 && g < 30 && b < 30, "the marker is {:?}", [r, g, b]);
    assert!(!red(edge(pass)) && edge(pass)[1] > 100, "{:?}", edge(pass));
}
