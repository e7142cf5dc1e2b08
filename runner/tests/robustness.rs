//! The console parsers on damaged input, the stable-Rust side of the fuzz targets in `fuzz/`:
//! recorded consoles cut short, cut into reads of every size, salted with garbage, and a crash
//! line split across reads. Nothing panics and the results do not depend on how the bytes
//! arrived.

#![allow(clippy::unwrap_used, reason = "a test panics to fail")]

use std::path::PathBuf;

use runner::console::LineSplitter;
use runner::model::{Mode, Status, Suite};
use runner::plan::Plan;
use runner::session;
use runner::test_bpf::Catalog;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(path).unwrap()
}

fn full_plan() -> Plan {
    Plan::new(&Suite::ALL, &[Mode::Jit], None).unwrap()
}

/// The plan with the module's list of tests, as a live run has it (`module_tests`): the
/// Debian 6.1 module's counts, with stand-in names.
fn full_plan_with_catalog() -> Plan {
    let mut plan = full_plan();
    let mut catalog = Catalog::new();
    for (suite, n) in [
        (Suite::TestBpf, 1026),
        (Suite::TestTailCalls, 10),
        (Suite::TestSkbSegment, 2),
    ] {
        catalog.insert(suite, (0..n).map(|i| format!("test {i}")).collect());
    }
    plan.catalog = Some(catalog);
    plan
}

fn lines(chunks: impl Iterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut splitter = LineSplitter::new();
    for chunk in chunks {
        splitter.push(&chunk, |l| out.push(l.to_vec()));
    }
    splitter.finish(|l| out.push(l.to_vec()));
    out
}

#[test]
fn reads_of_any_size_give_the_same_lines() {
    let log = fixture("mips64el-full.log");
    let whole = lines(std::iter::once(log.clone()));
    for size in [1, 2, 3, 7, 64, 4095] {
        assert_eq!(lines(log.chunks(size).map(<[u8]>::to_vec)), whole, "{size}");
    }
}

#[test]
fn a_console_cut_anywhere_parses_as_an_unfinished_run() {
    let log = fixture("x86_64-full.log");
    let plan = full_plan();
    // Up to the guest's last word: a log cut after `harness: done` is a finished run.
    let done = log.windows(13).position(|w| w == b"harness: done").unwrap();
    for cut in (0..done).step_by(done / 97) {
        let outcome = session::replay(&log[..cut], &plan);
        assert!(!outcome.complete, "cut at {cut}");
        assert!(!outcome.errors.is_empty(), "cut at {cut}: no reason given");
        // Whatever ran is there, and the tests cut off are reported, not lost.
        assert!(outcome
            .results
            .iter()
            .all(|r| r.status == Status::Pass || r.status == Status::NotRun));
        assert!(
            outcome.results.iter().any(|r| r.status == Status::NotRun),
            "cut at {cut}"
        );
    }
}

#[test]
fn garbage_bytes_between_lines_change_no_result() {
    let log = fixture("mips64el-full.log");
    let plan = full_plan();
    let clean = session::replay(&log, &plan);
    // Lines of noise a broken UART or a confused guest could send: NULs, invalid UTF-8,
    // escape sequences, a lone carriage return.
    let mut salted = Vec::new();
    let mut seed = 0x2545_f491_u32;
    for line in log.split_inclusive(|&b| b == b'\n') {
        salted.extend_from_slice(line);
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        if seed.is_multiple_of(5) {
            salted.extend_from_slice(b"\x00\xff\xfe\x1b[31m\r\xc3\x28 noise\n");
        }
    }
    let noisy = session::replay(&salted, &plan);
    assert!(noisy.complete, "{:?}", noisy.errors);
    assert_eq!(noisy.results, clean.results);
}

#[test]
fn a_panic_split_across_reads_is_still_a_crash() {
    let log = fixture("x86_64-full.log");
    let plan = full_plan_with_catalog();
    // Cut the run after test #500's line and crash there: the kernel never printed #501's
    // line, the module's list names it.
    let at = log
        .windows(14)
        .position(|w| w == b"test_bpf: #501")
        .unwrap();
    let line_start = log[..at].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let mut crashed = log[..line_start].to_vec();
    crashed
        .extend_from_slice(b"[   30.000000] Kernel panic - not syncing: sysrq triggered crash\n");
    let whole = lines(std::iter::once(crashed.clone()));
    for size in [1, 5, 33] {
        assert_eq!(lines(crashed.chunks(size).map(<[u8]>::to_vec)), whole);
    }
    let outcome = session::replay(&crashed, &plan);
    let crash: Vec<_> = outcome
        .results
        .iter()
        .filter(|r| r.status == Status::Crash)
        .collect();
    assert_eq!(crash.len(), 1, "{:?}", outcome.errors);
    assert_eq!(crash[0].id, Some(501));
    assert!(crash[0]
        .message
        .as_deref()
        .unwrap()
        .starts_with("kernel panic: sysrq triggered crash"));
}

/// As seen on a real x86_64 boot: the kernel printed a record between init's `harness: start`
/// and its newline. Every protocol line of the log interrupted so must give the same report.
#[test]
fn a_kernel_record_inside_a_protocol_line_is_taken_apart() {
    let log = fixture("x86_64-full.log");
    let clean = session::replay(&log, &full_plan());
    let text = String::from_utf8_lossy(&log).into_owned();
    let interrupted: String = text
        .lines()
        .map(|line| match line.starts_with("harness: ") {
            true => format!(
                "{line}[    2.699799] tsc: Refined TSC clocksource calibration: 2599.980 MHz\n\n"
            ),
            false => format!("{line}\n"),
        })
        .collect();
    assert_ne!(interrupted.as_bytes(), &log[..]);
    let outcome = session::replay(interrupted.as_bytes(), &full_plan());
    assert_eq!(outcome.errors, clean.errors);
    assert_eq!(outcome.results, clean.results);
    assert!(outcome.complete);
}
