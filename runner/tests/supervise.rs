//! Supervision faults a real QEMU cannot be made to show on demand, played by a fake QEMU
//! (a shell script): hangs, early exits, garbage, a child ignoring SIGTERM, a grandchild
//! holding the console open, cancellation. Each test also checks that nothing is left running.

#![allow(clippy::unwrap_used, reason = "a test panics to fail")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner::model::{Mode, Status, Suite, SuiteName};
use runner::plan::Plan;
use runner::qemu::{Qemu, Window};
use runner::session::{self, Outcome, Timeouts};

const BOOTED: &str = "echo 'harness: start'; echo 'harness: uname 6.1.0-test'";

struct Fake {
    outcome: Outcome,
    console: Vec<u8>,
    elapsed: Duration,
}

fn fake_qemu(script: &str, timeouts: Timeouts, cancel_after: Option<Duration>) -> Fake {
    let plan = Plan::new(&Suite::ALL, &[Mode::Jit], None).unwrap();
    let mut qemu =
        Qemu::spawn_program("/bin/sh".as_ref(), &["-c".to_owned(), script.to_owned()]).unwrap();
    let pid = rustix::process::Pid::from_raw(qemu.pid() as i32).unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    if let Some(after) = cancel_after {
        let cancel = Arc::clone(&cancel);
        std::thread::spawn(move || {
            std::thread::sleep(after);
            cancel.store(true, Ordering::SeqCst);
        });
    }
    let mut console = Vec::new();
    let started = Instant::now();
    let outcome = session::supervise(
        &mut qemu,
        &plan,
        timeouts,
        None,
        &mut console,
        &cancel,
        &mut |_| {},
    );
    let elapsed = started.elapsed();
    // Killed members of the group linger as zombies until their new parent reaps them.
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        rustix::process::test_kill_process_group(pid).is_err()
    });
    assert!(gone, "the fake QEMU's process group outlived the run");
    Fake {
        outcome,
        console,
        elapsed,
    }
}

fn secs(boot: u64, silence: u64) -> Timeouts {
    Timeouts {
        boot: Duration::from_secs(boot),
        silence: Duration::from_secs(silence),
    }
}

fn statuses(outcome: &Outcome) -> Vec<(SuiteName, Option<u32>, Status)> {
    outcome
        .results
        .iter()
        .map(|r| (r.suite, r.id, r.status))
        .collect()
}

fn all_not_run() -> Vec<(SuiteName, Option<u32>, Status)> {
    Suite::ALL
        .iter()
        .map(|&s| (s.into(), None, Status::NotRun))
        .collect()
}

#[test]
fn a_guest_that_never_boots_is_a_boot_failure() {
    let fake = fake_qemu("echo 'SeaBIOS'; sleep 30", secs(1, 60), None);
    assert!(fake.elapsed < Duration::from_secs(10), "{:?}", fake.elapsed);
    assert!(!fake.outcome.complete);
    assert_eq!(statuses(&fake.outcome), all_not_run());
    assert!(fake.outcome.errors[0].starts_with("the guest did not reach init within 1 s"));
    assert_eq!(fake.console, b"SeaBIOS\n");
    assert!(!fake.outcome.silent);
}

#[test]
fn a_guest_that_exits_without_a_word_is_silent() {
    let fake = fake_qemu("exit 0", secs(1, 60), None);
    assert!(fake.outcome.silent);
    let fake = fake_qemu(
        "echo 'qemu: could not load PC BIOS' >&2; exit 1",
        secs(1, 60),
        None,
    );
    assert!(!fake.outcome.silent, "QEMU said why");
}

#[test]
fn silence_during_a_test_is_a_hang_of_that_test() {
    // The verdict and the next test's start in one write: output that came after the last
    // progress would make the hang "chatty", however loaded the machine.
    let script = format!(
        "{BOOTED}; echo 'harness: load-begin 0'; \
         printf 'test_bpf: #0 TAX jited:1 5 PASS\\ntest_bpf: #1 TXA jited:1 '; sleep 30"
    );
    let fake = fake_qemu(&script, secs(10, 1), None);
    assert!(fake.elapsed < Duration::from_secs(10), "{:?}", fake.elapsed);
    let got = statuses(&fake.outcome);
    assert_eq!(got[0], (Suite::TestBpf.into(), Some(0), Status::Pass));
    assert_eq!(got[1], (Suite::TestBpf.into(), Some(1), Status::Hang));
    assert_eq!(got[2], (Suite::TestBpf.into(), None, Status::NotRun));
    assert_eq!(got.len(), 5);
    assert_eq!(
        fake.outcome.results[1].message.as_deref(),
        Some("no console output for 1 s")
    );
}

#[test]
fn a_panic_is_pinned_on_the_running_test() {
    let script = format!(
        "{BOOTED}; echo 'harness: load-begin 0'; echo '[    3.1] test_bpf: #0 TAX jited:1 5 PASS'; \
         echo '[    3.2] test_bpf: #1 LD_ABS jited:1 '; \
         echo '[    3.3] BUG: unable to handle page fault for address: 0000000000000010'; \
         echo '[    3.4] Kernel panic - not syncing: Fatal exception'; exit 0"
    );
    let fake = fake_qemu(&script, secs(10, 10), None);
    let crashed = &fake.outcome.results[1];
    assert_eq!((crashed.id, crashed.status), (Some(1), Status::Crash));
    assert_eq!(
        crashed.message.as_deref(),
        Some("BUG: unable to handle page fault for address: ADDR (console line 6)")
    );
    assert!(!fake.outcome.complete);
}

#[test]
fn qemu_dying_early_is_reported_with_its_stderr() {
    let script = format!(
        "{BOOTED}; echo 'harness: load-begin 0'; echo 'test_bpf: #0 TAX jited:1 5 PASS'; \
         echo 'qemu-system-x86_64: cannot allocate memory' >&2; exit 1"
    );
    let fake = fake_qemu(&script, secs(10, 10), None);
    let errors = fake.outcome.errors.join("\n");
    assert!(
        errors.contains(
            "/bin/sh ended (exit status: 1) before the guest finished its plan: \
                         qemu-system-x86_64: cannot allocate memory"
        ),
        "{errors}"
    );
    assert_eq!(fake.outcome.results[0].status, Status::Pass);
    assert!(fake.outcome.results[1..]
        .iter()
        .all(|r| r.status == Status::NotRun));
}

#[test]
fn a_qemu_ignoring_sigterm_is_killed() {
    let script = format!("trap '' TERM; {BOOTED}; sleep 30");
    let fake = fake_qemu(&script, secs(10, 1), None);
    // One second of silence, three of grace after SIGTERM, then SIGKILL.
    assert!(fake.elapsed < Duration::from_secs(8), "{:?}", fake.elapsed);
    assert!(fake
        .outcome
        .errors
        .iter()
        .any(|e| e.contains("hung between tests")));
}

#[test]
fn the_kernel_running_out_of_memory_is_kept_with_its_words() {
    let script = format!(
        "{BOOTED}; echo 'harness: load-begin 0'; \
         echo '[    9.1] insmod invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0'; \
         echo '[    9.2] Kernel panic - not syncing: System is deadlocked on memory'; sleep 30"
    );
    let fake = fake_qemu(&script, secs(10, 1), None);
    assert_eq!(
        fake.outcome.out_of_memory.as_deref(),
        Some("insmod invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0")
    );
    assert!(!fake.outcome.complete);
}

#[test]
fn a_grandchild_holding_the_console_does_not_block_the_run() {
    let script = format!("{BOOTED}; sleep 60 & exit 3");
    let fake = fake_qemu(&script, secs(10, 30), None);
    assert!(fake.elapsed < Duration::from_secs(10), "{:?}", fake.elapsed);
    assert!(
        fake.outcome
            .errors
            .iter()
            .any(|e| e.contains("exit status: 3")),
        "{:?}",
        fake.outcome.errors
    );
}

#[test]
fn garbage_and_invalid_utf8_do_not_derail_the_parser() {
    let script = format!(
        "printf '\\377\\376\\000garbage\\r\\n\\033[2J\\n'; {BOOTED}; echo 'harness: load-begin 0'; \
         printf 'test_bpf: #0 TA\\377X jited:1 5 PASS\\r\\n'; \
         echo 'test_bpf: Summary: 1 PASSED, 0 FAILED, [1/1 JIT'\"'\"'ed]'; \
         echo 'test_bpf: test_tail_calls: Summary: 0 PASSED, 0 FAILED, [0/0 JIT'\"'\"'ed]'; \
         echo 'test_bpf: test_skb_segment: Summary: 0 PASSED, 0 FAILED'; \
         echo 'harness: load-end 0 0'; echo 'harness: done'"
    );
    let fake = fake_qemu(&script, secs(10, 10), None);
    assert!(fake.outcome.complete, "{:?}", fake.outcome.errors);
    assert!(fake.outcome.errors.is_empty(), "{:?}", fake.outcome.errors);
    assert_eq!(fake.outcome.results.len(), 1);
    assert_eq!(fake.outcome.results[0].name, "TA\u{fffd}X");
    assert!(fake.console.starts_with(b"\xff\xfe\x00garbage\r\n"));
}

#[test]
fn an_unknown_protocol_line_is_an_error() {
    let script = format!("{BOOTED}; echo 'harness: reboot-now'; sleep 30");
    let fake = fake_qemu(&script, secs(10, 1), None);
    assert!(
        fake.outcome
            .errors
            .iter()
            .any(|e| e.contains("bad protocol line from the guest (unknown verb)")),
        "{:?}",
        fake.outcome.errors
    );
}

#[test]
fn cancelling_ends_the_guest_and_keeps_what_ran() {
    let script = format!(
        "{BOOTED}; echo 'harness: load-begin 0'; echo 'test_bpf: #0 TAX jited:1 5 PASS'; sleep 30"
    );
    let fake = fake_qemu(&script, secs(10, 60), Some(Duration::from_millis(500)));
    assert!(fake.elapsed < Duration::from_secs(8), "{:?}", fake.elapsed);
    assert!(fake.outcome.interrupted);
    assert!(!fake.outcome.complete);
    assert_eq!(fake.outcome.results[0].status, Status::Pass);
    assert!(fake.outcome.results[1..]
        .iter()
        .all(|r| r.status == Status::NotRun));
}

#[test]
fn a_warning_fails_the_test_it_came_in_and_a_soft_lockup_is_a_hang() {
    // The test's line is flushed by the WARNING and its verdict comes as a line of its own.
    let script = format!(
        "{BOOTED}; echo 'harness: load-begin 0'; echo '[    3.1] test_bpf: #0 TAX jited:1 5 PASS'; \
         echo '[    3.2] test_bpf: #1 LD_ABS '; \
         echo '[    3.3] WARNING: CPU: 0 PID: 9 at kernel/bpf/core.c:2155 bpf_prog_select_runtime+0x1c/0x180'; \
         echo '[    3.4] jited:1 7 PASS'; \
         echo '[    3.5] test_bpf: #2 TXA '; \
         echo '[   25.6] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:88]'; sleep 30"
    );
    let fake = fake_qemu(&script, secs(10, 20), None);
    let got = statuses(&fake.outcome);
    assert_eq!(got[0], (Suite::TestBpf.into(), Some(0), Status::Pass));
    assert_eq!(got[1], (Suite::TestBpf.into(), Some(1), Status::Fail));
    assert_eq!(
        fake.outcome.results[1].message.as_deref(),
        Some("kernel splat while it ran: WARNING in bpf_prog_select_runtime (console line 6)")
    );
    assert_eq!(got[2], (Suite::TestBpf.into(), Some(2), Status::Hang));
    assert_eq!(
        fake.outcome.results[2].message.as_deref(),
        Some("BUG: soft lockup in insmod (console line 9)")
    );
    // A stall ends the guest once its report is in, without waiting out the silence timeout.
    assert!(fake.elapsed < Duration::from_secs(15), "{:?}", fake.elapsed);
}

#[test]
fn a_guest_that_keeps_printing_without_progress_is_a_hang() {
    // A stall report repeated forever: bytes keep coming, no verdict does.
    let script = format!(
        "{BOOTED}; echo 'harness: load-begin 0'; echo 'test_bpf: #0 TAX jited:1 5 PASS'; \
         echo 'test_bpf: #1 TXA '; \
         while true; do echo 'rcu: rcu_sched kthread starved for 2000 jiffies'; sleep 0.2; done"
    );
    let fake = fake_qemu(&script, secs(10, 2), None);
    assert!(fake.elapsed < Duration::from_secs(8), "{:?}", fake.elapsed);
    let got = statuses(&fake.outcome);
    assert_eq!(got[0], (Suite::TestBpf.into(), Some(0), Status::Pass));
    assert_eq!(got[1], (Suite::TestBpf.into(), Some(1), Status::Hang));
    assert_eq!(
        fake.outcome.results[1].message.as_deref(),
        Some("no progress for 2 s, though the console kept printing")
    );
}

/// A restored agent guest asks for its bundle: the host writes it into the window, then says
/// `bundle-ready` on the console, and only then.
#[test]
fn a_guest_that_asks_for_its_bundle_finds_it_in_its_window_once_told() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("window");
    let window = Window::create(path.clone(), b"bundle 1\nmode 0 1 0\n".to_vec()).unwrap();
    // The fake reads the window only after the answer, as init does.
    let script = format!(
        "{BOOTED}; echo 'harness: bundle-wanted'; read answer; echo \"answer: $answer\"; \
         echo \"window: $(head -n 1 '{}')\"; echo 'harness: agent-begin'; \
         echo 'harness: agent-end 0'; echo 'harness: done'",
        path.display()
    );
    let plan = Plan {
        loads: Vec::new(),
        agent: true,
        inject_panic_after_s: None,
        catalog: None,
    };
    let mut qemu =
        Qemu::spawn_program_with_window("/bin/sh".as_ref(), &["-c".to_owned(), script], window)
            .unwrap();
    let mut console = Vec::new();
    let outcome = session::supervise(
        &mut qemu,
        &plan,
        secs(10, 10),
        None,
        &mut console,
        &AtomicBool::new(false),
        &mut |_| {},
    );
    let console = String::from_utf8_lossy(&console);
    assert!(console.contains("answer: bundle-ready\n"), "{console}");
    assert!(console.contains("window: bundle 1\n"), "{console}");
    assert_eq!(outcome.agent_status, Some(0), "{:?}", outcome.errors);
    // The bundle ends with a NUL, where init stops reading; the file keeps its size.
    let written = std::fs::read(&path).unwrap();
    assert_eq!(&written[..21], b"bundle 1\nmode 0 1 0\n\0");
    assert_eq!(written.len() as u64, runner::qemu::WINDOW_BYTES);
}

/// A guest that asks for a bundle it has no window for gets an error, not a wait.
#[test]
fn a_guest_without_a_window_that_asks_for_a_bundle_is_an_error() {
    let script = format!(
        "{BOOTED}; echo 'harness: bundle-wanted'; echo 'harness: agent-begin'; \
         echo 'harness: agent-end 1'; echo 'harness: done'"
    );
    let plan = Plan {
        loads: Vec::new(),
        agent: true,
        inject_panic_after_s: None,
        catalog: None,
    };
    let mut qemu = Qemu::spawn_program("/bin/sh".as_ref(), &["-c".to_owned(), script]).unwrap();
    let outcome = session::supervise(
        &mut qemu,
        &plan,
        secs(10, 10),
        None,
        &mut Vec::new(),
        &AtomicBool::new(false),
        &mut |_| {},
    );
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.contains("no shared-memory window")),
        "{:?}",
        outcome.errors
    );
}
