//! `index.html` in its real consumer: Debian's headless Chromium loads the page, runs its
//! script, and its DOM and a screenshot are checked. Plus a snapshot of a small page.
//!
//! Chromium is required, not optional: without `/usr/bin/chromium` these tests fail and
//! name the package to install.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use common::browser::{self, chromium};

use runner::arch::Arch;
use runner::model::{AgentSuite, Mode, Status, Suite, SuiteName, TestResult};
use runner::outputs::html;
use runner::report::{KernelInfo, Report, Scope};

const EVIL: &str = "</script><img src=x onerror=alert(1)>";

/// The report `cargo xtask replay` would write for a recorded full run in JIT mode.
fn replayed(log: &str, arch: Arch) -> Report {
    common::replayed(log, arch, "fixture")
}

fn result(
    suite: impl Into<SuiteName>,
    id: u32,
    name: &str,
    mode: Mode,
    status: Status,
) -> TestResult {
    TestResult::new(suite, Some(id), name, mode, status).with_jited(Some(mode != Mode::Interp))
}

/// Every status, awkward names, two modes, a repeated name, a divergence, a message of
/// several lines, and enough plain tests to fill a screenshot.
fn synthetic() -> Report {
    use Mode::{Interp, Jit};
    use Status::*;
    let mut results = Vec::new();
    let mut add = |suite: SuiteName, name: &str, interp: Status, jit: Status, message: &str| {
        let id = results.len() as u32 / 2;
        for (mode, status) in [(Interp, interp), (Jit, jit)] {
            let r = result(suite, id, name, mode, status);
            results.push(if status == Pass {
                r
            } else {
                r.with_message(message)
            });
        }
    };
    add(Suite::TestBpf.into(), "plain", Pass, Pass, "");
    add(
        Suite::TestBpf.into(),
        "with spaces, \"double\" and 'single' quotes",
        Pass,
        Fail,
        "ret 0 != 1\nFAIL (1 times)",
    );
    add(
        Suite::TestBpf.into(),
        EVIL,
        Pass,
        Crash,
        "BUG: unable to handle page fault\n<4>RIP: 0010:</pre><b>x</b>",
    );
    add(
        Suite::TestBpf.into(),
        "<b>&\"'",
        Skip,
        Skip,
        "needs <feature> & more",
    );
    add(
        Suite::TestBpf.into(),
        "unicode: µs → ✓ 日本語",
        Pass,
        Hang,
        "no output for 60 s",
    );
    add(Suite::TestBpf.into(), "dup", Pass, Pass, "");
    add(Suite::TestBpf.into(), "dup", Pass, Error, "cannot tell");
    add(
        Suite::TestTailCalls.into(),
        "never reached",
        NotRun,
        NotRun,
        "crashed earlier",
    );
    for i in 0..40 {
        let jit = if i % 4 == 3 { Fail } else { Pass };
        add(
            Suite::TestBpf.into(),
            &format!("filler {i}"),
            Pass,
            jit,
            "ret 1 != 2",
        );
    }
    add(
        AgentSuite::Conformance.into(),
        "alu64 mul",
        Pass,
        Fail,
        "r0 = 0x8, expected 0x7",
    );
    results.push(
        result(AgentSuite::Conformance, 48, "alu64 mul", Jit, Divergence)
            .with_jited(None)
            .with_message("modes disagree.\n0:\tc3\tret"),
    );
    let kernel = KernelInfo {
        arch: Arch::Mips64el,
        release: Some("6.12.0-synthetic <i>".to_owned()),
        source: "local".to_owned(),
        revision: None,
        config_hash: None,
    };
    let mut report = Report::new(kernel, results, Vec::new(), false, Default::default());
    report
        .errors
        .push("guest said <svg onload=alert(2)>".to_owned());
    report
}

fn write_page(page: &str) -> (tempfile::TempDir, String) {
    browser::write_page("index.html", page)
}

/// The DOM after the page's script ran, checked for the script's mark.
fn dom(url: &str) -> String {
    let dom = chromium(&["--dump-dom"], url);
    assert!(
        dom.contains("<html lang=\"en\" class=\"js\">"),
        "the page's script did not run (blocked by the page's Content-Security-Policy?)\n{}",
        dom.get(..2000).unwrap_or(&dom)
    );
    dom
}

/// How many cells of the table have each status: a cell's first class is its status.
fn cells(dom: &str) -> BTreeMap<Status, usize> {
    let mut counts: BTreeMap<Status, usize> = Status::ALL.iter().map(|&s| (s, 0)).collect();
    for piece in dom.split("<td class=\"").skip(1) {
        let class = piece.split(['"', ' ']).next().unwrap_or("");
        if let Some(&status) = Status::ALL.iter().find(|s| s.name() == class) {
            *counts.entry(status).or_default() += 1;
        }
    }
    counts
}

/// Each test row's name (unescaped, without its number) and whether the script hid it.
fn rows(dom: &str) -> Vec<(String, bool)> {
    let mut rows = Vec::new();
    for piece in dom.split("<tr class=\"r\"").skip(1) {
        let tag = piece.split('>').next().unwrap_or("");
        let name = piece
            .split("<td class=\"t\">")
            .nth(1)
            .and_then(|cell| cell.split("</td>").next())
            .expect("a test row has a name cell");
        let name = name.split(" <small>#").next().unwrap_or(name);
        rows.push((unescape(name), tag.contains(" hidden")));
    }
    rows
}

fn visible(dom: &str) -> Vec<String> {
    let rows = rows(dom);
    rows.into_iter()
        .filter(|(_, hidden)| !hidden)
        .map(|(name, _)| name)
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn report_counts(runs: &[&Report]) -> BTreeMap<Status, usize> {
    Status::ALL
        .iter()
        .map(|&s| (s, runs.iter().map(|r| r.count(s)).sum()))
        .collect()
}

/// An `#rrggbb` colour the page's style gives a status's background.
fn colour(page: &str, status: Status) -> [u8; 3] {
    let rule = format!(".{}{{background:#", status.name());
    let hex = page
        .split(&rule)
        .nth(1)
        .and_then(|rest| rest.get(..6))
        .expect("the style gives every status a colour");
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("a hex colour");
    [byte(0), byte(2), byte(4)]
}

/// A 1280×900 screenshot of `url`: how many of its pixels have each of `colours`.
fn screenshot(url: &str, colours: &[[u8; 3]]) -> Vec<usize> {
    let (width, height, pixels) = browser::screenshot(url, "--window-size=1280,900");
    assert!(width >= 1000 && height >= 700, "{width}x{height}");
    let near = |a: u8, b: u8| a.abs_diff(b) <= 3;
    colours
        .iter()
        .map(|c| {
            pixels
                .iter()
                .filter(|p| near(p[0], c[0]) && near(p[1], c[1]) && near(p[2], c[2]))
                .count()
        })
        .collect()
}

/// How many pixels of the fail colour a page shows with no results: its legend's.
fn legend_fail_pixels(fail: [u8; 3]) -> usize {
    static LEGEND: OnceLock<usize> = OnceLock::new();
    *LEGEND.get_or_init(|| {
        let (_dir, url) = write_page(&html::render(&[]));
        let legend = screenshot(&url, &[fail])[0];
        assert!(legend > 100, "the legend shows fail: {legend} pixels");
        legend
    })
}

#[test]
fn a_small_page_is_stable() {
    let results = vec![
        result(Suite::TestBpf, 0, "LD_IMM64", Mode::Interp, Status::Pass),
        result(Suite::TestBpf, 1, "JMP32_JLT_K", Mode::Interp, Status::Pass),
        result(Suite::TestBpf, 0, "LD_IMM64", Mode::Jit, Status::Pass),
        result(Suite::TestBpf, 1, "JMP32_JLT_K", Mode::Jit, Status::Fail)
            .with_message("ret 0 != 123\nFAIL (1 times)"),
    ];
    let kernel = KernelInfo {
        arch: Arch::X86_64,
        release: Some("6.1.0-56-amd64".to_owned()),
        source: "debian:linux-image-6.1.0-56-amd64-unsigned=6.1.192-2".to_owned(),
        revision: None,
        config_hash: None,
    };
    let mut report = Report::new(kernel, results, Vec::new(), true, Default::default());
    report.started = Some("2025-01-02T03:04:05Z".to_owned());
    report.scope = Some(Scope {
        suites: vec!["test_bpf".to_owned()],
        modes: vec![Mode::Interp, Mode::Jit],
        filter: Some("0-1".to_owned()),
    });
    let page = html::render(&[&report]);
    assert_eq!(page, html::render(&[&report]), "the page is deterministic");
    insta::assert_snapshot!(page);
}

#[test]
fn every_status_and_awkward_names_in_chromium() {
    let report = synthetic();
    let page = html::render(&[&report]);
    let (_dir, url) = write_page(&page);

    let dom = dom(&url);
    assert_eq!(cells(&dom), report_counts(&[&report]));
    // The script counted the rows: a test is one row, whatever its modes and divergences.
    let rows = rows(&dom);
    assert_eq!(rows.len(), 49);
    assert!(dom.contains("<output id=\"shown\">49 of 49 tests shown</output>"));
    assert!(rows.iter().all(|(_, hidden)| !hidden));
    // What the guest wrote is text, and no element of it exists.
    let names: BTreeSet<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    for name in [EVIL, "<b>&\"'", "unicode: µs → ✓ 日本語"] {
        assert!(names.contains(name), "{name} is not a row: {names:?}");
    }
    assert!(dom.contains("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(dom.contains("6.12.0-synthetic &lt;i&gt;"));
    assert!(dom.contains("guest said &lt;svg onload=alert(2)&gt;"));
    for tag in ["<img", "<b>", "<i>", "<svg"] {
        assert!(!dom.contains(tag), "{tag} became an element");
    }
    assert_eq!(dom.matches("<script").count(), 1);
    // Messages keep their lines, inside the test's message row.
    assert!(dom.contains("<pre>ret 0 != 1\nFAIL (1 times)</pre>"));
    assert!(dom.contains("modes disagree.\n0:\tc3\tret</pre>"));

    // Views from the URL's fragment.
    let shown = |fragment: &str| visible(&dom_of(&url, fragment));
    let fails: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(shown("#status=fail"), fails);
    assert_eq!(
        shown("#status=crash,hang"),
        [EVIL, "unicode: µs → ✓ 日本語"]
    );
    assert_eq!(
        shown("#filter=FILLER%201&notpass=1"),
        ["filler 11", "filler 15", "filler 19"]
    );
    assert_eq!(shown("#filter=%3Cb%3E%26"), ["<b>&\"'"]);
    assert_eq!(shown("#filter=tail_CALLS"), ["never reached"]);

    let [pass, fail] = [Status::Pass, Status::Fail].map(|s| colour(&page, s));
    let counts = screenshot(&url, &[pass, fail]);
    let legend = legend_fail_pixels(fail);
    assert!(counts[0] > 5000, "pass pixels: {counts:?}");
    assert!(
        counts[1] > legend + 1500,
        "fail pixels: {counts:?}, the legend's {legend}"
    );
}

/// What a user does, played by a second script on a copy of the page: clicks and keys on
/// cells open their messages, typing and ticking filter rows and update the URL. The copy has
/// no Content-Security-Policy, which would stop this second script.
#[test]
fn clicks_keys_and_typing_work_in_chromium() {
    const USER: &str = r#"<script>
(() => {
  const rows = Array.from(document.querySelectorAll("tr.r"));
  const cell = (name) => rows.find((tr) => tr.cells[1].textContent.startsWith(name)).cells[3];
  cell("with spaces").click();
  cell("\x3c/script>").dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  cell("unicode").click();
  cell("unicode").click();
  const q = document.getElementById("q");
  q.value = "FILLER 3";
  q.dispatchEvent(new Event("input", { bubbles: true }));
  document.getElementById("np").click();
  document.body.dataset.hash = location.hash;
})();
</script>
</body>"#;
    let page = html::render(&[&synthetic()]);
    let (start, end) = (
        page.find("<meta http-equiv").expect("a CSP"),
        page.find("<meta name").expect("a viewport"),
    );
    let page = format!("{}{}", &page[..start], &page[end..]).replace("</body>", USER);
    let (_dir, url) = write_page(&page);
    let dom = dom(&url);
    assert!(
        dom.contains("data-hash=\"#filter=FILLER%203&amp;notpass=1\""),
        "{}",
        dom.get(dom.len().saturating_sub(300)..).unwrap_or(&dom)
    );
    assert_eq!(
        visible(&dom),
        ["filler 3", "filler 31", "filler 35", "filler 39"]
    );
    assert!(dom.contains("4 of 49 tests shown"));
    // Two messages open, the third opened and closed again.
    assert_eq!(dom.matches("<tr class=\"d o\" hidden=\"\">").count(), 2);
    assert_eq!(dom.matches("<details data-c=\"3\" open=\"\">").count(), 2);
    assert!(dom.contains("jit: crash</summary>"));
}

/// The DOM of `url` opened at `fragment`.
fn dom_of(url: &str, fragment: &str) -> String {
    dom(&format!("{url}{fragment}"))
}

#[test]
fn two_architectures_as_a_matrix_in_chromium() {
    let x86 = replayed("x86_64-full.log", Arch::X86_64);
    let mips = replayed("mips64el-full.log", Arch::Mips64el);
    assert!(x86.complete && mips.complete);
    let page = html::render(&[&x86, &mips]);
    println!("index.html of both full runs: {} bytes", page.len());
    let single = html::render(&[&x86]).len();
    println!("index.html of the x86_64 full run: {single} bytes");
    assert!(page.len() < 1_000_000, "{} bytes", page.len());
    let (_dir, url) = write_page(&page);

    let dom = dom(&url);
    assert_eq!(cells(&dom), report_counts(&[&x86, &mips]));
    assert_eq!(cells(&dom)[&Status::Pass], 2 * 1038);
    // Both kernels run the same tests, so each is one row with a cell per architecture.
    assert_eq!(rows(&dom).len(), 1038);
    assert!(dom.contains("1038 of 1038 tests shown"));
    assert!(!dom.contains("<td></td>"), "a test is missing on one side");

    let wanted: Vec<&str> = x86
        .results
        .iter()
        .map(|r| r.name.as_str())
        .filter(|name| name.to_lowercase().contains("jmp32_jlt"))
        .collect();
    assert!(wanted.len() > 3);
    assert_eq!(visible(&dom_of(&url, "#filter=jmp32_jlt")), wanted);
    assert_eq!(visible(&dom_of(&url, "#notpass=1")), Vec::<String>::new());

    // All passed: the only red is the legend's, as on a page of no runs.
    let [pass, fail] = [Status::Pass, Status::Fail].map(|s| colour(&page, s));
    let counts = screenshot(&url, &[pass, fail]);
    let legend = legend_fail_pixels(fail);
    assert!(counts[0] > 5000, "pass pixels: {counts:?}");
    // Text in the badge antialiases a little differently where it lands; a cell is ~1500.
    assert!(
        counts[1].abs_diff(legend) < 200,
        "fail pixels {} beside the legend's {legend}",
        counts[1]
    );
}

/// A real failure beside a real pass: a link to `#status=fail` shows that one test.
#[test]
fn a_link_to_the_failures_shows_only_them() {
    let x86 = replayed("x86_64-injected-failure.log", Arch::X86_64);
    let mips = replayed("mips64el-full.log", Arch::Mips64el);
    let (_dir, url) = write_page(&html::render(&[&x86, &mips]));
    let dom = dom_of(&url, "#status=fail");
    assert_eq!(visible(&dom), ["JMP32_JLT_K: Small immediate"]);
    assert!(dom.contains("<pre>ret 0 != 123; FAIL (1 times)</pre>"));
    assert!(dom.contains("1 of "));
}
