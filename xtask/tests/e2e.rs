//! End to end: `cargo xtask test` boots Debian's real kernels under real QEMU on both
//! architectures and runs the kernel's JIT suite. Needs QEMU (installed by the command itself
//! when run as root on Debian) and Debian's package mirrors; the first run downloads ~120 MB
//! into the cache, later runs nothing.

#![allow(clippy::unwrap_used, reason = "a test panics to fail")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{cache_dir, path_str, show};

use runner::model::{AgentSuite, Mode, Status, Suite, SuiteName};
use runner::report::Report;

fn xtask(args: &[&str], out: &Path) -> (Output, Option<Report>) {
    xtask_with_path(args, out, &std::env::var("PATH").unwrap())
}

/// [`xtask`] with `path` for `PATH`: where it finds QEMU.
fn xtask_with_path(args: &[&str], out: &Path, path: &str) -> (Output, Option<Report>) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--out")
        .arg(out)
        .env("PATH", path)
        .output()
        .expect("cannot run the xtask binary");
    let report_path = out.join("report.json");
    let report = report_path
        .exists()
        .then(|| Report::read(&report_path).unwrap());
    (output, report)
}

/// Starts `cargo xtask ARGS --out OUT` in the background, its output discarded.
fn spawn_quietly(args: &[&str], out: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Per suite: (tests, passed, JIT'ed), from the report.
fn per_suite(report: &Report) -> Vec<(String, usize, usize, usize)> {
    Suite::ALL
        .iter()
        .map(|&suite| {
            let of: Vec<_> = report
                .results
                .iter()
                .filter(|r| r.suite == SuiteName::Kernel(suite))
                .collect();
            let passed = of.iter().filter(|r| r.status == Status::Pass).count();
            let jited = of.iter().filter(|r| r.jited == Some(true)).count();
            (suite.name().to_owned(), of.len(), passed, jited)
        })
        .collect()
}

fn full_suite_passes(arch: &str, release: &str, jobs: usize) {
    let out = tempfile::tempdir().unwrap();
    let jobs_arg = jobs.to_string();
    let (output, report) = xtask(&["test", "--arch", arch, "--jobs", &jobs_arg], out.path());
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let report = report.unwrap();
    assert!(
        report.complete && report.errors.is_empty(),
        "{:?}",
        report.errors
    );
    assert_eq!(report.kernel.release.as_deref(), Some(release));
    // Debian's 6.1 kernels print: Summary: 1026 PASSED, 0 FAILED, [1014/1014 JIT'ed];
    // test_tail_calls 10 PASSED [10/10 JIT'ed]; test_skb_segment 2 PASSED.
    assert_eq!(
        per_suite(&report),
        [
            ("test_bpf".to_owned(), 1026, 1026, 1014),
            ("test_tail_calls".to_owned(), 10, 10, 10),
            ("test_skb_segment".to_owned(), 2, 2, 0),
        ]
    );
    if jobs == 1 {
        let console = std::fs::read(out.path().join("console.log")).unwrap();
        let summary = b"test_bpf: Summary: 1026 PASSED, 0 FAILED, [1014/1014 JIT'ed]";
        assert!(console.windows(summary.len()).any(|w| w == summary));
    } else {
        // Each guest ran a part, with a console log of its own.
        assert_eq!(report.timing.guests.len(), jobs, "{:?}", report.timing);
        for guest in &report.timing.guests {
            assert!(out.path().join(&guest.console).exists(), "{guest:?}");
            assert!(guest.total_s < report.timing.total_s);
        }
    }
    // Against the committed baseline of Debian's kernel: nothing changed.
    let diff = report.diff.as_ref().expect("a diff against the baseline");
    assert_eq!(diff.headline(), "no change", "{}", show(&output));
    assert!(diff.baseline.starts_with("reports/baselines/"), "{diff:?}");
    let timing = &report.timing;
    assert!(timing.boot_s.unwrap() <= timing.to_first_test_s.unwrap());
    assert!(timing.to_first_test_s.unwrap() < timing.total_s);
}

#[test]
fn x86_64_runs_the_whole_jit_suite() {
    full_suite_passes("x86_64", "6.1.0-56-amd64", 1);
}

#[test]
fn mips64el_runs_the_whole_jit_suite_in_two_guests() {
    full_suite_passes("mips64el", "6.1.0-50-5kc-malta", 2);
}

/// Debian's newer lines, fetched by name (6.12 from bookworm-backports, sid's split 7.x
/// packages, modules compressed), each against its own committed baseline. Tests 60-199 hold
/// the ISA v4 ones that the mips64el JIT of 6.12 gets wrong (its baseline has them failing).
#[test]
fn newer_debian_lines_run_against_their_baselines() {
    for (arch, line, release, failing) in [
        ("x86_64", "6.12", "6.12.95+deb12-amd64", 0),
        ("mips64el", "6.12", "6.12.95+deb12-5kc-malta", 11),
        ("x86_64", "sid", "7.2.13+deb14-amd64", 0),
    ] {
        let out = tempfile::tempdir().unwrap();
        let kernel = format!("debian:{line}");
        let (output, report) = xtask(
            &[
                "test", "--arch", arch, "--kernel", &kernel, "--filter", "60-199",
            ],
            out.path(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        let report = report.unwrap();
        assert_eq!(report.kernel.release.as_deref(), Some(release));
        assert_eq!(report.results.len(), 140, "{}", show(&output));
        assert_eq!(report.count(Status::Fail), failing, "{}", show(&output));
        assert_eq!(
            report.count(Status::Pass),
            140 - failing,
            "{}",
            show(&output)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let baseline = format!("reports/baselines/{arch}-{}.yaml", report.kernel.flavour());
        assert!(
            stdout.contains(&format!("{baseline}: no change")),
            "{}",
            show(&output)
        );
    }
}

/// Downloads `packages` with apt, from `suite` (a private state of the test's, never the
/// host's), and unpacks them all with dpkg-deb into `dir/unpacked`, which it returns: for a
/// kernel, the directory a user would pass with `--kernel DIR`.
fn unpack_packages(suite: &str, packages: &[String], dir: &Path) -> PathBuf {
    let state = dir.join("apt");
    for sub in ["lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(state.join(sub)).unwrap();
    }
    let sources = state.join("sources.list");
    std::fs::write(
        &sources,
        format!("deb http://deb.debian.org/debian {suite} main\n"),
    )
    .unwrap();
    let options = [
        format!("-oDir::Etc::SourceList={}", sources.display()),
        "-oDir::Etc::SourceParts=/dev/null".to_owned(),
        format!("-oDir::State::Lists={}", state.join("lists").display()),
        format!("-oDir::Cache={}", state.join("cache").display()),
        "-oAPT::Architecture=amd64".to_owned(),
        "-oAPT::Architectures=amd64".to_owned(),
        "-oAPT::Sandbox::User=root".to_owned(),
    ];
    let apt = |args: &[&str]| {
        let output = Command::new("apt-get")
            .arg("-q")
            .args(&options)
            .args(args)
            .current_dir(&state)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", show(&output));
    };
    apt(&["update"]);
    let names: Vec<&str> = packages.iter().map(String::as_str).collect();
    apt(&[&["download"][..], &names].concat());
    let unpacked = dir.join("unpacked");
    for deb in std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .map(|e| e.path())
    {
        if deb.extension().is_some_and(|e| e == "deb") {
            let status = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(&unpacked)
                .status()
                .unwrap();
            assert!(status.success(), "dpkg-deb -x {}", deb.display());
        }
    }
    unpacked
}

/// `--kernel DIR` on Debian's packages as `dpkg-deb -x` leaves them: 6.12's one package
/// (`boot/`, `lib/modules/`, modules compressed) and 7.x's three split ones (merged `/usr`).
#[test]
fn unpacked_packages_of_every_layout_boot_as_a_kernel_directory() {
    let split = ["binary", "base", "modules"].map(|p| format!("linux-{p}-7.2.13+deb14-amd64"));
    for (suite, packages, release) in [
        (
            "bookworm-backports",
            vec!["linux-image-6.12.95+deb12-amd64-unsigned".to_owned()],
            "6.12.95+deb12-amd64",
        ),
        ("sid", split.to_vec(), "7.2.13+deb14-amd64"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let kernel = unpack_packages(suite, &packages, dir.path());
        let out = dir.path().join("run");
        let (output, report) = xtask(
            &[
                "test",
                "--arch",
                "x86_64",
                "--kernel",
                path_str(&kernel),
                "--filter",
                "60-199",
                "--no-baseline",
            ],
            &out,
        );
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        let report = report.unwrap();
        assert_eq!(report.kernel.release.as_deref(), Some(release));
        assert_eq!(report.count(Status::Pass), 140, "{}", show(&output));
    }
}

#[test]
fn mips64el_cut_down_range_in_two_modes() {
    let out = tempfile::tempdir().unwrap();
    let (output, report) = xtask(
        &[
            "test",
            "--arch",
            "mips64el",
            "--filter",
            "100-139",
            "--mode",
            "interp,jit-hardened",
        ],
        out.path(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let report = report.unwrap();
    assert_eq!(report.results.len(), 80);
    for (mode, jited) in [(Mode::Interp, false), (Mode::JitHardened, true)] {
        let ids: Vec<u32> = report
            .results
            .iter()
            .filter(|r| r.mode == mode)
            .inspect(|r| assert_eq!((r.status, r.jited), (Status::Pass, Some(jited)), "{r:?}"))
            .filter_map(|r| r.id)
            .collect();
        assert_eq!(ids, (100..140).collect::<Vec<u32>>());
    }
}

#[test]
fn x86_64_unknown_test_name_is_a_usage_error() {
    let out = tempfile::tempdir().unwrap();
    let (output, report) = xtask(
        &["test", "--arch", "x86_64", "--filter", "name:No Such Test"],
        out.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let report = report.unwrap();
    assert!(
        report.errors[0].contains("no test named 'No Such Test'"),
        "{:?}",
        report.errors
    );
}

#[test]
fn a_guest_short_of_memory_is_a_harness_error_naming_its_size_and_the_flag() {
    let out = tempfile::tempdir().unwrap();
    // Debian's 6.1 kernel runs out of memory while it boots in 80 MiB.
    let (output, report) = xtask(
        &["test", "--arch", "x86_64", "--memory", "80", "--jobs", "1"],
        out.path(),
    );
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    let report = report.unwrap();
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("80 MiB of memory") && e.contains("--memory MIB")),
        "{:?}",
        report.errors
    );
}

#[test]
fn a_kernel_directory_without_test_bpf_is_refused_before_booting() {
    let out = tempfile::tempdir().unwrap();
    let kernel = tempfile::tempdir().unwrap();
    std::fs::write(kernel.path().join("bzImage"), b"not really").unwrap();
    let kernel_arg = kernel.path().to_str().unwrap();
    let (output, report) = xtask(
        &["test", "--arch", "x86_64", "--kernel", kernel_arg],
        out.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(report.is_none());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has no test_bpf.ko"), "{stderr}");
}

#[test]
fn a_missing_qemu_names_the_command_that_installs_it() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["test", "--arch", "mips64el", "--no-install", "--out"])
        .arg(out.path())
        .env("PATH", out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("missing host tools: qemu-system-mips64el (--no-install was given)")
            && stderr.contains("apt-get install -y --no-install-recommends qemu-system-mips"),
        "{stderr}"
    );
}

/// The pids of `parent`'s children whose command name starts with `prefix`.
fn children(parent: u32, prefix: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && comm.starts_with(prefix) {
            found.extend(stat[..open].trim().parse::<u32>().ok());
        }
    }
    found
}

/// Whether `path` is one of the files a run writes beside its report, and whole.
fn is_whole_output(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match name.as_ref() {
        "kcidb.json" => serde_json::from_str::<serde_json::Value>(&text).is_ok(),
        "junit.xml" => text.trim_end().ends_with("</testsuites>"),
        "index.html" => text.trim_end().ends_with("</html>"),
        "summary.md" => text.starts_with("## "),
        _ => false,
    }
}

#[test]
fn ctrl_c_ends_qemu_and_writes_a_partial_report() {
    let out = tempfile::tempdir().unwrap();
    let mut child = spawn_quietly(&["test", "--arch", "x86_64", "--jobs", "1"], out.path());
    // Wait for QEMU, then for the guest to be well into the suite.
    let started = std::time::Instant::now();
    let qemu = loop {
        if let Some(&pid) = children(child.id(), "qemu-system").first() {
            break pid;
        }
        assert!(started.elapsed().as_secs() < 120, "QEMU never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    std::thread::sleep(std::time::Duration::from_secs(15));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let interrupted = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(
        interrupted.elapsed().as_secs() < 10,
        "{:?}",
        interrupted.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    assert!(
        !Path::new(&format!("/proc/{qemu}")).exists(),
        "QEMU {qemu} outlived the run"
    );
    let report = Report::read(&out.path().join("report.json")).unwrap();
    assert!(!report.complete);
    assert!(report.count(Status::Pass) > 0);
    assert!(report.results.iter().any(|r| r.status == Status::NotRun));
    assert!(report
        .results
        .iter()
        .all(|r| r.status == Status::Pass || r.status == Status::NotRun));
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "report.json" && n != "console.log" && n != ".lock")
        .filter(|n| !is_whole_output(&out.path().join(n)))
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written files left: {leftovers:?}"
    );
}

/// Live processes (zombies aside) with `TAG=tag` in their environment: a run and everything
/// it started, QEMU included, inherit it.
fn tagged(tag: &str) -> Vec<u32> {
    let needle = format!("BPF_HARNESS_E2E_TAG={tag}\0");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn twenty_interrupted_runs_leave_no_qemu_and_no_half_written_file() {
    use std::time::Duration;
    let out = tempfile::tempdir().unwrap();
    for i in 0..20u64 {
        let tag = format!("{}-{i}", std::process::id());
        let dir = out.path().join(i.to_string());
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([
                "test", "--arch", "x86_64", "--filter", "0-400", "--jobs", "2",
            ])
            .arg("--out")
            .arg(&dir)
            .env("BPF_HARNESS_E2E_TAG", &tag)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // From before any guest exists, through booting, to well into the tests.
        std::thread::sleep(Duration::from_millis(350 * i));
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        if i % 2 == 1 {
            // The second Ctrl-C ends the run at once.
            std::thread::sleep(Duration::from_millis(200));
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        let status = child.wait().unwrap();
        assert!(
            matches!(status.code(), Some(0 | 130))
                || std::os::unix::process::ExitStatusExt::signal(&status) == Some(2),
            "run {i}: {status:?}"
        );
        // A process killed a moment ago may take a moment to go.
        let mut left = tagged(&tag);
        for _ in 0..20 {
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            left = tagged(&tag);
        }
        assert!(left.is_empty(), "run {i}: processes left: {left:?}");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            match name.as_str() {
                ".lock" => {}
                "report.json" => {
                    Report::read(&entry.path()).unwrap();
                }
                _ if is_whole_output(&entry.path()) => {}
                n if n.starts_with("console") && n.ends_with(".log") => {}
                n => panic!("run {i}: half-written file {n}"),
            }
        }
    }
}

/// A run into a directory on a filesystem of 16 KiB, a tmpfs mounted in a mount namespace
/// of the run's own (`unshare`, as root or through a user namespace): the console log fits,
/// the report does not.
#[test]
fn a_full_disk_fails_the_run_and_leaves_no_half_written_file() {
    let out = tempfile::tempdir().unwrap();
    let (full, kept) = (out.path().join("full"), out.path().join("kept"));
    std::fs::create_dir(&full).unwrap();
    let tag = format!("{}-full", std::process::id());
    // The tmpfs goes with the namespace, so what the run left is copied out first.
    let script = r#"mount -t tmpfs -o size=16k tmpfs "$1" || exit 99
"$3" test --arch x86_64 --filter 0-99 --jobs 1 --out "$1/run"
rc=$?
cp -a "$1/run" "$2"
exit $rc"#;
    let output = Command::new("unshare")
        .args(["--mount", "--map-root-user", "sh", "-c", script, "sh"])
        .args([&full, &kept])
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .env("BPF_HARNESS_E2E_TAG", &tag)
        .output()
        .expect("unshare, from util-linux, runs");
    assert_ne!(
        output.status.code(),
        Some(99),
        "no tmpfs: {}",
        show(&output)
    );
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = format!(
        "error: cannot write {}/run/report.json: No space left on device (os error 28)\n",
        full.display()
    );
    assert!(stderr.contains(&said), "{}", show(&output));
    assert_eq!(stderr.matches("No space left").count(), 1, "said once");
    assert!(
        tagged(&tag).is_empty(),
        "processes left: {:?}",
        tagged(&tag)
    );
    let mut left: Vec<String> = std::fs::read_dir(&kept)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".lock", "console.log"], "{}", show(&output));
    let console = std::fs::read_to_string(kept.join("console.log")).unwrap();
    assert!(
        console.contains("test_bpf: Summary: 100 PASSED"),
        "{console}"
    );
}

#[test]
fn a_second_run_into_the_same_directory_is_refused() {
    let out = tempfile::tempdir().unwrap();
    // The whole suite in one guest: long enough (half a minute) that the first run is still
    // writing when the second starts, on a loaded machine too.
    let first = spawn_quietly(&["test", "--arch", "x86_64", "--jobs", "1"], out.path());
    // The first run's lock file, then a moment for it to take the lock (created and locked
    // one after the other), of a run that lasts half a minute. QEMU alone is not a sign: the
    // snapshot's guest boots before the run takes the directory.
    let started = std::time::Instant::now();
    while !out.path().join(".lock").exists() {
        assert!(
            started.elapsed().as_secs() < 300,
            "the first run never took its directory"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (second, _) = xtask(
        &["test", "--arch", "x86_64", "--filter", "0-200"],
        out.path(),
    );
    assert_eq!(second.status.code(), Some(2), "{}", show(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another run is writing to"),
        "{}",
        show(&second)
    );
    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0));
    let report = Report::read(&out.path().join("report.json")).unwrap();
    assert_eq!(report.count(Status::Pass), report.results.len());
    assert!(report.results.len() > 1000, "{}", report.results.len());
}

fn fixtures(name: &str) -> String {
    format!(
        "{}/../runner/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn a_wrong_expectation_fails_in_every_mode_on_both_arches() {
    for arch in ["x86_64", "mips64el"] {
        let out = tempfile::tempdir().unwrap();
        let dir = fixtures("conformance-wrong");
        let (output, report) = xtask(
            &[
                "test",
                "--arch",
                arch,
                "--conformance-dir",
                &dir,
                "--mode",
                "interp,jit,jit-hardened",
            ],
            out.path(),
        );
        assert_eq!(output.status.code(), Some(1), "{}", show(&output));
        let report = report.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let got: Vec<(&str, Mode, Status, Option<&str>)> = report
            .results
            .iter()
            .map(|r| (r.name.as_str(), r.mode, r.status, r.message.as_deref()))
            .collect();
        let wrong = Some("r0 = 0x1, expected 0x2");
        assert_eq!(
            got,
            [
                ("lddw-full", Mode::Interp, Status::Pass, None),
                ("lddw-full", Mode::Jit, Status::Pass, None),
                ("lddw-full", Mode::JitHardened, Status::Pass, None),
                ("wrong-r0", Mode::Interp, Status::Fail, wrong),
                ("wrong-r0", Mode::Jit, Status::Fail, wrong),
                ("wrong-r0", Mode::JitHardened, Status::Fail, wrong),
            ],
            "{arch}"
        );
        let jited: Vec<Option<bool>> = report.results.iter().map(|r| r.jited).collect();
        assert_eq!(
            jited,
            [Some(false), Some(true), Some(true)].repeat(2),
            "{arch}"
        );
    }
}

#[test]
fn a_failure_is_retried_once_in_a_fresh_guest_and_stays_a_failure() {
    let out = tempfile::tempdir().unwrap();
    let dir = fixtures("conformance-wrong");
    let (output, report) = xtask(
        &[
            "test",
            "--arch",
            "x86_64",
            "--conformance-dir",
            &dir,
            "--filter",
            "3",
            "--suite",
            "test_bpf,conformance",
            "--retry-failures",
            // One guest whatever durations this machine has recorded, then the retry's.
            "--jobs",
            "1",
        ],
        out.path(),
    );
    // Not in the baseline and failing: a regression, whatever the retry says.
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let report = report.unwrap();
    let wrong = report
        .results
        .iter()
        .find(|r| r.name == "wrong-r0")
        .unwrap();
    assert_eq!((wrong.status, wrong.flaky.as_deref()), (Status::Fail, None));
    // The retry ran in a guest of its own, with its own console log, after the run's:
    // test_bpf's, and conformance's spans.
    let guests = &report.timing.guests;
    let retry = guests.last().unwrap();
    let console = format!("console-{}.log", guests.len());
    assert!(guests.len() > 2, "{:?}", report.timing);
    assert_eq!((retry.shard.as_str(), &retry.console), ("agent", &console));
    assert!(out.path().join(&console).exists());
    let diff = report.diff.as_ref().unwrap();
    assert_eq!(diff.count(runner::diff::Class::Regression), 1, "{diff:?}");
}

/// Runs the corpus of `fixture` on x86_64 with `extra` flags; the directory holds the run.
fn x86_64_corpus(fixture: &str, extra: &[&str]) -> (Output, Option<Report>, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let dir = fixtures(fixture);
    let args = [
        &["test", "--arch", "x86_64", "--conformance-dir", &dir],
        extra,
    ]
    .concat();
    let (output, report) = xtask(&args, out.path());
    (output, report, out)
}

/// One broken file among good ones in a corpus: the good ones run and pass, the broken one is
/// an `error` in every mode naming its position, the report is written, and the run exits 2.
#[test]
fn a_malformed_corpus_file_is_one_error_result_and_the_rest_runs() {
    let (output, report, out) = x86_64_corpus("conformance-malformed", &["--mode", "interp,jit"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let report = report.unwrap_or_else(|| panic!("no report: {}", show(&output)));
    assert!(
        report.complete && report.errors.is_empty(),
        "{:?}",
        report.errors
    );
    let got: Vec<(&str, Option<u32>, Mode, Status)> = report
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.id, r.mode, r.status))
        .collect();
    assert_eq!(
        got,
        [
            ("add32-wraps", Some(0), Mode::Interp, Status::Pass),
            ("add32-wraps", Some(0), Mode::Jit, Status::Pass),
            ("bad-operand", Some(1), Mode::Interp, Status::Error),
            ("bad-operand", Some(1), Mode::Jit, Status::Error),
            ("lddw-upper-half", Some(2), Mode::Interp, Status::Pass),
            ("lddw-upper-half", Some(2), Mode::Jit, Status::Pass),
        ]
    );
    let at = "conformance-malformed/bad-operand.data:4:10: expected a register or an immediate, \
              found `[%r1+2]`";
    let message = report.results[2].message.as_deref().unwrap_or_default();
    assert!(message.contains(at), "{message}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(at), "{stderr}");
    for file in ["junit.xml", "summary.md", "index.html", "kcidb.json"] {
        assert!(out.path().join(file).exists(), "{file} not written");
    }
}

/// Runs the harness's own suites in all three modes and returns the report.
/// The run of the harness's own suites in every mode, and its guests' consoles.
fn own_suites(arch: &str) -> (Output, Report, String) {
    let out = tempfile::tempdir().unwrap();
    let (output, report) = xtask(
        &[
            "test",
            "--arch",
            arch,
            "--suite",
            "conformance,verifier,xdp",
            "--mode",
            "interp,jit,jit-hardened",
        ],
        out.path(),
    );
    let report = report.unwrap_or_else(|| panic!("no report: {}", show(&output)));
    let consoles = consoles(&report, out.path());
    (output, report, consoles)
}

/// The consoles of a run's guests, one after the other.
fn consoles(report: &Report, out: &Path) -> String {
    report
        .timing
        .guests
        .iter()
        .map(|g| std::fs::read_to_string(out.join(&g.console)).unwrap_or_default())
        .collect()
}

/// Every result that is neither `pass` nor a reasoned `skip`, as (suite, name, mode, status).
fn findings(report: &Report) -> Vec<(SuiteName, String, Mode, Status)> {
    for r in &report.results {
        if r.status == Status::Skip {
            assert!(
                r.message.as_deref().is_some_and(|m| !m.is_empty()),
                "a skip without a reason: {r:?}"
            );
        }
    }
    report
        .results
        .iter()
        .filter(|r| !matches!(r.status, Status::Pass | Status::Skip))
        .map(|r| (r.suite, r.name.clone(), r.mode, r.status))
        .collect()
}

fn assert_every_case_in_every_mode(report: &Report) {
    assert!(
        report.complete && report.errors.is_empty(),
        "{:?}",
        report.errors
    );
    let per_mode = |mode| {
        report
            .results
            .iter()
            .filter(|r| r.mode == mode && r.status != Status::Divergence)
            .count()
    };
    let cases = per_mode(Mode::Jit);
    assert!(cases >= 260, "only {cases} cases ran");
    assert_eq!(
        (per_mode(Mode::Interp), per_mode(Mode::JitHardened)),
        (cases, cases)
    );
    // Under the interpreter nothing may come out JIT'ed.
    assert!(report
        .results
        .iter()
        .filter(|r| r.mode == Mode::Interp)
        .all(|r| r.jited != Some(true)));
}

#[test]
fn x86_64_own_suites_pass_in_every_mode() {
    let (output, report, consoles) = own_suites("x86_64");
    assert_every_case_in_every_mode(&report);
    // Its guest started from the snapshot, and took its bundle through its window.
    assert!(
        consoles.contains("harness: bundle-wanted") && !consoles.contains("Linux version"),
        "{consoles}"
    );
    assert_eq!(findings(&report), [], "{}", show(&output));
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn mips64el_own_suites_find_the_tail_call_index_bug() {
    let (output, report, _) = own_suites("mips64el");
    assert_every_case_in_every_mode(&report);
    // Linux 6.1's MIPS64 JIT compares the whole 64-bit r3 with max_entries in a tail call,
    // where the helper takes a u32 index: the interpreter and x86_64 agree, the JIT falls
    // through. A real bug, and the harness must keep finding it.
    // And Debian's 6.1 verifier takes `ja32` (backported) while its MIPS64 JIT has no
    // BPF_JMP32 | BPF_JA: with the JIT on, the load fails with ENOTSUPP (524).
    let ja32 = [
        "ja32-backward-32769",
        "ja32-backward-loop",
        "ja32-forward-32768",
        "ja32-forward-over-lddw",
        "ja32-forward-over-one",
        "ja32-offset-zero",
        "ja32-over-conditional-jumps",
    ];
    let expected: Vec<_> = ja32
        .iter()
        .map(|case| (AgentSuite::Conformance, *case))
        .chain([(AgentSuite::Xdp, "tail-call-index-upper-bits-ignored")])
        .flat_map(|(suite, case)| {
            [
                (Mode::Jit, Status::Fail),
                (Mode::JitHardened, Status::Fail),
                (Mode::Jit, Status::Divergence),
            ]
            .map(|(mode, status)| (suite.into(), case.to_owned(), mode, status))
        })
        .collect();
    assert_eq!(findings(&report), expected, "{}", show(&output));
    // The committed baseline knows the bug: the gate passes, with nothing new.
    let diff = report.diff.as_ref().expect("a diff against the baseline");
    assert_eq!(diff.headline(), "no change", "{}", show(&output));
    assert_eq!(output.status.code(), Some(0));
}

/// Debian 12's backports' QEMU 10, unpacked under `dir`, as `qemu-system-x86_64` and
/// `qemu-system-mips64el` in a directory for `PATH`, which it returns, with the file where
/// each call writes its program and arguments.
fn qemu_10_on_path(dir: &Path) -> (PathBuf, PathBuf) {
    let packages = ["qemu-system-x86", "qemu-system-mips", "qemu-system-data"].map(String::from);
    let root = unpack_packages("bookworm-backports", &packages, dir);
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = dir.join("calls");
    for qemu in ["qemu-system-x86_64", "qemu-system-mips64el"] {
        // Its own firmware, the host's SeaBIOS (a Depends of Debian 12's QEMU), and none of
        // the host QEMU's modules, which a QEMU of another build refuses.
        let script = format!(
            "#!/bin/sh\necho \"{qemu} $*\" >> {calls}\nQEMU_MODULE_DIR={root}/none exec \
             {root}/usr/bin/{qemu} -L {root}/usr/share/qemu -L /usr/share/seabios \"$@\"\n",
            calls = calls.display(),
            root = root.display(),
        );
        let path = bin.join(qemu);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let version = Command::new(&path).arg("--version").output().unwrap();
        assert!(
            String::from_utf8_lossy(&version.stdout).contains("version 10."),
            "{}",
            show(&version)
        );
    }
    (bin, calls)
}

/// QEMU 9 and later under TCG abort saving a guest whose first RAM block is not its RAM, as
/// the agent's template was with its window first (docs/speed.md, "Guests start booted").
/// Debian 12's backports carry QEMU 10: its agent guests must start from the template too,
/// mapping the template's memory (its `x-ignore-shared` restore).
#[test]
fn agent_guests_start_booted_under_qemu_10() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, calls) = qemu_10_on_path(dir.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for arch in ["x86_64", "mips64el"] {
        let out = dir.path().join(format!("run-{arch}"));
        let args = [
            "test",
            "--arch",
            arch,
            "--suite",
            "conformance",
            "--mode",
            "jit",
        ];
        let (output, report) = xtask_with_path(&args, &out, &path);
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("cannot make a snapshot"),
            "{}",
            show(&output)
        );
        let consoles = consoles(&report.unwrap(), &out);
        assert!(
            consoles.contains("harness: bundle-wanted") && !consoles.contains("Linux version"),
            "{arch}: {consoles}"
        );
    }
    // Both QEMU 10s ran, and started guests from templates, on the templates' memory.
    let calls = std::fs::read_to_string(&calls).unwrap();
    for qemu in ["qemu-system-x86_64", "qemu-system-mips64el"] {
        assert!(
            calls.lines().any(|l| l.starts_with(qemu)
                && l.contains("-incoming defer")
                && l.contains("/memory,share=off")),
            "{calls}"
        );
    }
}

#[test]
fn isa_v4_instructions_are_skipped_with_a_reason_on_6_1() {
    let (output, report, _out) = x86_64_corpus("conformance-isa-v4", &["--mode", "interp,jit"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let report = report.unwrap();
    assert_eq!(report.results.len(), 2);
    for r in &report.results {
        assert_eq!(r.status, Status::Skip, "{r:?}");
        assert!(
            r.message
                .as_deref()
                .unwrap()
                .starts_with("needs ISA v4 instructions"),
            "{r:?}"
        );
    }
}

/// A corpus case the verifier refuses by design: `skip` with the reason of its entry in
/// suites/known-differences.yaml and the verifier's words; with an empty list, a `fail` with
/// the same words.
#[test]
fn a_known_difference_is_a_skip_with_its_reason_and_without_an_entry_a_fail() {
    let run = |extra: &[&str]| {
        let args = [&["--no-baseline"], extra].concat();
        let (output, report, _out) = x86_64_corpus("conformance-known-difference", &args);
        (output, report.unwrap())
    };
    let (output, report) = run(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let got: Vec<(&str, Status)> = report
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    assert_eq!(
        got,
        [
            ("lsh64-imm-high", Status::Skip),
            ("lsh64-imm-in-range", Status::Pass)
        ]
    );
    let message = report.results[0].message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("known difference (known-differences.yaml:")
            && message.contains("invalid shift 68"),
        "{message}"
    );

    let empty = tempfile::NamedTempFile::new().unwrap();
    let list = empty.path().display().to_string();
    let (output, report) = run(&["--known-differences", &list]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert_eq!(report.results[0].status, Status::Fail);
    let message = report.results[0].message.as_deref().unwrap_or_default();
    assert!(message.contains("invalid shift 68"), "{message}");
}

/// The one `crash` of a run whose first guest was made to panic: the run exits 1 (a test
/// failed, the harness did not), and the crash carries the panic's title.
fn the_forced_panic<'a>(output: &Output, report: &'a Report) -> &'a runner::model::TestResult {
    assert_eq!(output.status.code(), Some(1), "{}", show(output));
    let crashed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Crash)
        .collect();
    let [crash] = crashed.as_slice() else {
        panic!("one crash: {}", show(output));
    };
    assert!(
        crash
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("kernel panic: sysrq triggered crash")),
        "{crash:?}"
    );
    crash
}

#[test]
fn a_real_panic_is_pinned_on_its_test_and_a_fresh_guest_runs_the_rest() {
    let out = tempfile::tempdir().unwrap();
    // sysrq-c from the first guest's init, 3 s after it starts: in the middle of its part of
    // test_bpf, while the second guest runs the other part. Tests 700 to 1025 are the slow
    // ones (0.1 to 0.3 s each; the first 500 take half a second together), so each guest's
    // part lasts 15 s or more however the durations cut it.
    let (output, report) = xtask(
        &[
            "test",
            "--arch",
            "x86_64",
            "--jobs",
            "2",
            "--filter",
            "700-1025",
            "--inject-panic-after",
            "3",
        ],
        out.path(),
    );
    let report = report.unwrap();
    let crash = the_forced_panic(&output, &report);
    assert_eq!(crash.suite, SuiteName::Kernel(Suite::TestBpf));
    assert!(crash.id.is_some() && !crash.name.is_empty(), "{crash:?}");
    // Every other test ran, in the first guest before the crash or in the guest that took
    // over after it, and passed; each is there once.
    for r in &report.results {
        if r.status != Status::Crash {
            assert_eq!(r.status, Status::Pass, "{r:?}");
        }
    }
    assert_eq!(
        per_suite(&report)
            .iter()
            .map(|(s, n, _, _)| (s.as_str(), *n))
            .collect::<Vec<_>>(),
        [
            ("test_bpf", 326),
            ("test_tail_calls", 0),
            ("test_skb_segment", 0)
        ]
    );
    let ids: Vec<u32> = report
        .results
        .iter()
        .filter(|r| r.suite == SuiteName::Kernel(Suite::TestBpf))
        .filter_map(|r| r.id)
        .collect();
    assert_eq!(ids, (700..1026).collect::<Vec<u32>>());
    // The crashed guest, the other one, and the one that resumed after the crash.
    assert_eq!(report.timing.guests.len(), 3, "{:?}", report.timing);
    let resumed = &report.timing.guests[2].shard;
    assert!(
        resumed.contains(&format!("test_range={},", crash.id.unwrap() + 1)),
        "{resumed}"
    );
    assert!(report.complete, "{:?}", report.errors);
}

#[test]
fn shards_merge_into_the_report_of_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "test", "--arch", "x86_64", "--filter", "0-300", "--jobs", "1",
        ];
        args.extend_from_slice(extra);
        let (output, report) = xtask(&args, &out);
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        (out, report.unwrap())
    };
    let (_, whole) = run("whole", &[]);
    let (one, first) = run("one", &["--shard", "1/2"]);
    let (two, second) = run("two", &["--shard", "2/2"]);
    // Each machine of a matrix runs a part, and no test twice.
    assert!(!first.results.is_empty() && !second.results.is_empty());
    assert_eq!(first.results.len() + second.results.len(), 301);
    let merged_dir = dir.path().join("merged");
    std::fs::create_dir_all(&merged_dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["report", "merge"])
        .arg(&two)
        .arg(&one)
        .arg("--out")
        .arg(&merged_dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let merged = Report::read(&merged_dir.join("report.json")).unwrap();
    assert_eq!(merged.results, whole.results);
    assert_eq!(merged.summary, whole.summary);
    assert!(merged.complete && merged.errors.is_empty());
    assert_eq!(merged.shard, None);
    // The merge writes the run's files and judges the whole against the baseline.
    let diff = merged.diff.as_ref().expect("a diff against the baseline");
    assert_eq!(diff.headline(), "no change");
    for file in ["junit.xml", "summary.md", "index.html", "kcidb.json"] {
        assert!(merged_dir.join(file).exists(), "no {file}");
    }
    // A part missing is refused, naming it.
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["report", "merge"])
        .arg(&one)
        .arg("--out")
        .arg(&merged_dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("shard 2 of 2 is missing"));
}

#[test]
fn a_real_panic_in_the_agent_is_pinned_on_its_case_and_a_fresh_guest_runs_the_rest() {
    let out = tempfile::tempdir().unwrap();
    // The agent runs conformance's second half in the hardened JIT, in spans. The first
    // guest takes the longest span (the most cases, cold cache or warm), which starts with a
    // 32K-instruction program: sysrq-c 1 s after its init starts lands on its first few
    // cases, with over a second of its span to go. (With the interpreter too, a cold cache
    // would give the first guest the interpreter's span, which can end within the second.)
    let (output, report) = xtask(
        &[
            "test",
            "--arch",
            "x86_64",
            "--suite",
            "conformance",
            "--mode",
            "jit-hardened",
            "--filter",
            "278-554",
            "--inject-panic-after",
            "1",
            "--no-baseline",
        ],
        out.path(),
    );
    let report = report.unwrap();
    let crash = the_forced_panic(&output, &report);
    assert_eq!(crash.suite, SuiteName::Agent(AgentSuite::Conformance));
    assert_eq!(crash.mode, Mode::JitHardened);
    // Every other case ran, before the crash or in the guest resumed after it, and passed
    // (or, of ISA v4, is skipped by 6.1's verifier); none is there twice.
    assert_eq!(report.results.len(), 277, "{}", show(&output));
    let ids: std::collections::BTreeSet<_> = report.results.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 277, "{}", show(&output));
    for r in &report.results {
        let v4_skip = r.status == Status::Skip
            && r.message
                .as_deref()
                .is_some_and(|m| m.starts_with("needs ISA v4"));
        if r.status != Status::Crash && !v4_skip {
            assert_eq!(r.status, Status::Pass, "{r:?}");
        }
    }
    let shards: Vec<&str> = report
        .timing
        .guests
        .iter()
        .map(|g| g.shard.as_str())
        .collect();
    // A guest per span, and one more that resumed the crashed span past its case (by its
    // place in the bundle: the case numbered 278 is the bundle's first).
    let distinct: std::collections::BTreeSet<&&str> = shards.iter().collect();
    assert_eq!(distinct.len(), shards.len(), "{shards:?}");
    // The bundle's one mode is mode 0.
    let expected = format!("agent from mode 0 case {}", crash.id.unwrap() - 278 + 1);
    let resumed: Vec<&&str> = shards
        .iter()
        .filter(|s| **s == expected || s.starts_with(&format!("{expected} to ")))
        .collect();
    assert_eq!(resumed.len(), 1, "{expected} in {shards:?}");
    assert!(
        report.complete && report.errors.is_empty(),
        "{:?}",
        report.errors
    );
}

/// A bad baseline stops a run before any guest boots (full tier: it needs Debian's kernel
/// in the cache, and fetches it into an empty one).
#[test]
fn a_run_with_a_broken_or_missing_baseline_stops_before_booting() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "schema: 1\narch: x86_64\nresults: [\n").expect("write");
    let missing = dir.path().join("missing.yaml");
    // A cache with the real one's kernels but no snapshot, so that the run would boot a
    // template guest if it did not read the baseline first.
    let real = cache_dir();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).expect("a cache");
    for part in ["kernels", "apt"] {
        std::fs::create_dir_all(real.join(part)).expect("the cache's directories");
        std::os::unix::fs::symlink(real.join(part), cache.join(part)).expect("symlink");
    }
    for (baseline, says) in [
        (&broken, format!("{}:", broken.display())),
        (&missing, format!("no baseline at {}", missing.display())),
    ] {
        let out = dir.path().join("run");
        let output = run_xtask(&[
            "test",
            "--arch",
            "x86_64",
            "--baseline",
            path_str(baseline),
            "--cache-dir",
            path_str(&cache),
            "--out",
            path_str(&out),
        ]);
        assert_eq!(output.status.code(), Some(2), "{}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&says), "wanted {says}\n{}", show(&output));
        assert!(!stderr.contains("booting"), "{}", show(&output));
        assert!(!out.join("report.json").exists());
    }
}

/// `cargo xtask ARGS` as a user runs it, its output whatever it is.
fn run_xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(common::root())
        .env_remove("CI")
        .output()
        .unwrap()
}
