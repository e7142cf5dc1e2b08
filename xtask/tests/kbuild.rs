//! Kernels built from source: Debian's linux-source-6.1 for x86_64, built once, booted, and
//! the suite run on it; and the errors a build must give before it spends minutes compiling.
//! The first test builds a kernel (minutes when the cache is cold); the others need only
//! `allnoconfig` or nothing at all.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use common::{path_str, show};

use runner::model::Status;
use runner::report::Report;

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("cannot run the xtask binary")
}

#[test]
fn linux_source_builds_once_and_its_kernel_runs_the_suite() {
    let output = xtask(&["kernel", "--arch", "x86_64"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let vmlinux = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(vmlinux.is_file(), "{}", show(&output));

    // The same command again: the same key, nothing built.
    let started = Instant::now();
    let again = xtask(&["kernel", "--arch", "x86_64"]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is built already"),
        "{}",
        show(&again)
    );
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());

    // The list names it, and where the cache's disk goes.
    let list = xtask(&["kernel", "--list"]);
    assert_eq!(list.status.code(), Some(0), "{}", show(&list));
    let stdout = String::from_utf8_lossy(&list.stdout);
    let entry = vmlinux.parent().expect("the kernel's cache entry");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("x86_64") && l.ends_with(path_str(entry))),
        "{}",
        show(&list)
    );
    let usage = stdout.lines().last().unwrap_or("");
    for part in ["kernels", "src", "worktrees", "build", "snapshots"] {
        assert!(usage.contains(&format!(" {part} ")), "{}", show(&list));
    }
    assert!(
        !usage.contains("src 0.0 GB"),
        "the unpacked source: {usage}"
    );

    let out = tempfile::tempdir().expect("a temporary directory");
    let output = xtask(&[
        "test",
        "--arch",
        "x86_64",
        "--kernel",
        "linux-source",
        "--filter",
        "0-99",
        "--out",
        path_str(out.path()),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let report = Report::read(&out.path().join("report.json")).expect("a report");
    assert_eq!(report.count(Status::Pass), 100, "{}", show(&output));
    let kernel = &report.kernel;
    assert!(
        kernel.source.starts_with("built:linux-source-6.1="),
        "{kernel:?}"
    );
    assert!(
        kernel
            .revision
            .as_deref()
            .is_some_and(|r| r.starts_with("linux-source-6.1=")),
        "{kernel:?}"
    );
    assert_eq!(kernel.config_hash.as_deref().map(str::len), Some(16));
    assert!(
        kernel
            .release
            .as_deref()
            .is_some_and(|r| r.starts_with("6.1.")),
        "{kernel:?}"
    );

    runs_need_no_lock_of_a_build_in_progress();
}

/// While every lock a build takes is held (by flock(1), as a cold build holds them for
/// minutes), a run of a Debian kernel and a run of the built kernel start at once, and a build
/// of the same tree with a patch says at once whom it waits for.
fn runs_need_no_lock_of_a_build_in_progress() {
    let locks = common::cache_dir().join("locks");
    let mut held: Vec<PathBuf> = std::fs::read_dir(&locks)
        .expect("the cache's locks")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".lock")
                && ["tree-", "build.", "kernels.built-"]
                    .iter()
                    .any(|kind| name.starts_with(kind))
        })
        .collect();
    held.sort();
    let tree = locks.join("tree-linux-source-6.1.lock");
    assert!(held.contains(&tree), "{held:?}");
    let mut chain = Command::new("flock");
    chain.arg(&held[0]);
    for lock in &held[1..] {
        chain.arg("flock").arg(lock);
    }
    let mut holder = chain
        .args(["sleep", "600"])
        .process_group(0)
        .spawn()
        .expect("flock, from util-linux, runs");
    let is_held = |lock: &PathBuf| {
        !Command::new("flock")
            .args(["-n", "-s"])
            .arg(lock)
            .arg("true")
            .status()
            .expect("flock runs")
            .success()
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !held.iter().all(is_held) {
        assert!(Instant::now() < deadline, "flock never took {held:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    for kernel in [None, Some("linux-source")] {
        let out = tempfile::tempdir().expect("a temporary directory");
        let mut args = vec!["test", "--arch", "x86_64", "--filter", "0-9", "--jobs", "1"];
        args.extend(kernel.iter().flat_map(|k| ["--kernel", *k]));
        args.extend(["--out", path_str(out.path())]);
        let started = Instant::now();
        let output = xtask(&args);
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("waiting for"),
            "{}",
            show(&output)
        );
        assert!(started.elapsed().as_secs() < 300, "{:?}", started.elapsed());
    }

    // A patch of its own, so that no cache has its kernel built already.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let patch = dir.path().join("new-file.patch");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    std::fs::write(
        &patch,
        format!(
            "diff --git a/harness-lock-test b/harness-lock-test\nnew file mode 100644\n\
             --- /dev/null\n+++ b/harness-lock-test\n@@ -0,0 +1 @@\n+{nanos}\n"
        ),
    )
    .expect("write");
    let mut build = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["kernel", "--arch", "x86_64", "--patch", path_str(&patch)])
        .stderr(Stdio::piped())
        .spawn()
        .expect("the xtask binary runs");
    let stderr = BufReader::new(build.stderr.take().expect("piped"));
    let (said, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = said.send(line);
        }
    });
    let mut seen = Vec::new();
    let waiting = loop {
        match lines.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(line) if line.starts_with("waiting for ") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    let _ = build.kill();
    let _ = build.wait();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", holder.id())])
        .status();
    let _ = holder.wait();
    let waiting = waiting.unwrap_or_else(|| panic!("never said it waits: {seen:#?}"));
    assert!(
        waiting.starts_with("waiting for building linux-source-6.1=")
            && waiting.contains(" (flock ")
            && waiting.contains(&format!("holds {}", tree.display())),
        "{waiting}"
    );
}

#[test]
fn a_fragment_line_that_cannot_stick_is_named_with_what_it_depends_on() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let fragment = dir.path().join("builtin-test-bpf.config");
    std::fs::write(
        &fragment,
        "# test_bpf built in\nCONFIG_TEST_BPF=y # cannot: it depends on m\n",
    )
    .expect("write");
    let output = xtask(&[
        "kernel",
        "--arch",
        "x86_64",
        "--config-fragment",
        path_str(&fragment),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let want = format!(
        "{}:2: CONFIG_TEST_BPF=y did not stick: the resolved .config has CONFIG_TEST_BPF=m",
        fragment.display()
    );
    assert!(stderr.contains(&want), "wanted {want}\n{}", show(&output));
    assert!(
        stderr.contains("Kconfig: depends on m && NET (lib/Kconfig.debug)"),
        "{}",
        show(&output)
    );
    assert!(!stderr.contains("building vmlinux"), "{}", show(&output));
}

#[test]
fn a_patch_that_does_not_apply_is_refused_before_building() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let patch = dir.path().join("stale.patch");
    std::fs::write(
        &patch,
        "--- a/lib/test_bpf.c\n+++ b/lib/test_bpf.c\n@@ -1,3 +1,3 @@\n-no such line\n+a line\n no such context\n no such context either\n",
    )
    .expect("write");
    // `--kernel linux-source` names the tree the patch goes on, as leaving it out does.
    let kernel: &[&str] = &["kernel", "--arch", "x86_64"];
    let test: &[&str] = &["test", "--arch", "x86_64", "--kernel", "linux-source"];
    for command in [kernel, test] {
        let output = xtask(&[command, &["--patch", path_str(&patch)]].concat());
        assert_eq!(output.status.code(), Some(2), "{}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("stale.patch does not apply on linux-source-6.1="),
            "{}",
            show(&output)
        );
        assert!(
            stderr.contains("patch failed: lib/test_bpf.c:1"),
            "{}",
            show(&output)
        );
        assert!(!stderr.contains("configuring"), "{}", show(&output));
    }
}

#[test]
fn a_missing_cross_compiler_names_the_packages_to_install() {
    // A PATH with every program of the host but big-endian MIPS's compiler.
    let bin = tempfile::tempdir().expect("a temporary directory");
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let link = bin.path().join(&name);
            if !name.to_string_lossy().starts_with("mips-linux-gnu-") && !link.exists() {
                std::os::unix::fs::symlink(entry.path(), link).expect("symlink");
            }
        }
    }
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["kernel", "--arch", "mips", "--no-install"])
        .env("PATH", bin.path())
        .output()
        .expect("cannot run the xtask binary");
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("missing host tools: mips-linux-gnu-gcc (--no-install was given)"),
        "{}",
        show(&output)
    );
    assert!(
        stderr.contains(
            "apt-get install -y --no-install-recommends gcc-mips-linux-gnu libc6-dev-mips-cross"
        ),
        "{}",
        show(&output)
    );
}

/// The newest line's source, fetched with the private apt state and configured for every
/// arch: each fragment line must hold on 7.x as on 6.1 (`--config-only` checks them all).
#[test]
fn newest_source_line_configures_for_every_arch() {
    for arch in ["x86_64", "mips64el", "mipsel", "mips", "mips64r6el"] {
        let args = ["kernel", "--arch", arch, "--kernel", "linux-source-7.2"];
        let output = xtask(&[&args[..], &["--config-only"]].concat());
        assert_eq!(output.status.code(), Some(0), "{arch}: {}", show(&output));
        let config = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let text = std::fs::read_to_string(&config)
            .unwrap_or_else(|e| panic!("{arch}: the printed .config: {e}: {}", show(&output)));
        assert!(
            text.contains("CONFIG_TEST_BPF=m"),
            "{arch}: {}",
            config.display()
        );
        assert!(
            path_str(&config).ends_with(&format!("/build/{arch}-linux-source-7.2/.config")),
            "{}",
            config.display()
        );
    }
    // A version the archive does not carry: what it carries, before anything is fetched.
    let output = xtask(&[
        "kernel",
        "--arch",
        "mips",
        "--kernel",
        "linux-source-7.2=0.1-1",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("linux-source-7.2=0.1-1: Debian's archive does not carry it; it has")
            && stderr.contains("7.2 line (sid)"),
        "{}",
        show(&output)
    );
}
