//! Kernels built from source: Debian's linux-source-6.1 for x86_64, built once, booted, and
//! the suite run on it; and the errors a build must give before it spends minutes compiling.
//! The first test builds a kernel (minutes when the cache is cold); the others need only
//! `allnoconfig` or nothing at all.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

use common::{path_str, show};

use runner::report::{Report, Status};

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
