//! No guest needs a firmware file that only a Recommends of QEMU ships: `cargo xtask test
//! --arch mips64el` as a fresh machine's first command installs `qemu-system-mips` without
//! them. The machine running the tests may have them anyway (`qemu-system-x86` depends on
//! seabios), so each QEMU runs in a mount namespace of its own whose firmware directories
//! hold only what the packages that QEMU package depends on ship.
//!
//! And a run whose guests cannot boot, shown with a real QEMU that lacks its BIOS: one
//! harness error that names the package to install, no `removed` tests, and the cache's
//! durations as they were.

#![allow(clippy::unwrap_used, reason = "a test panics to fail")]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{cache_dir, path_str, root, show};
use runner::arch::Arch;
use runner::qemu::{Accel, QemuConfig};
use runner::qmp::Qmp;
use runner::report::Report;

/// The packages `package` depends on, itself and recursively, as installed here.
fn depends_closure(package: &str) -> BTreeSet<String> {
    let output = Command::new("apt-cache")
        .args(["depends", "--recurse", "--installed", "--no-recommends"])
        .args([
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
        ])
        .args(["--no-enhances", package])
        .output()
        .expect("apt-cache runs");
    assert!(output.status.success(), "{}", show(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('<'))
        .map(|l| l.split(':').next().unwrap_or(l).to_owned())
        .collect()
}

/// The directories `binary` looks for firmware in, as it says itself.
fn firmware_dirs(binary: &str) -> Vec<PathBuf> {
    let output = Command::new(binary)
        .args(["-L", "help"])
        .output()
        .unwrap_or_else(|e| panic!("{binary} runs (.ci/run installs it): {e}"));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| std::fs::canonicalize(l.trim()).ok())
        .collect()
}

/// Every file below `dir`, links resolved: (its path below `dir`, the file it is).
fn files_below(dir: &Path, below: &Path, out: &mut Vec<(PathBuf, PathBuf)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = below.join(entry.file_name());
        match std::fs::canonicalize(&path) {
            Ok(real) if real.is_dir() => files_below(&path, &name, out),
            Ok(real) => out.push((name, real)),
            Err(_) => {} // a dangling link: a firmware that is not there
        }
    }
}

/// The package that owns each of `files`, by dpkg's database.
fn owners(files: &[&Path]) -> Vec<(PathBuf, BTreeSet<String>)> {
    let output = Command::new("dpkg")
        .arg("-S")
        .args(files)
        .output()
        .expect("dpkg runs");
    // `pkg1, pkg2: /path`; files no package owns are said on stderr.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with("diversion"))
        .filter_map(|l| {
            let (packages, path) = l.split_once(": ")?;
            let packages = packages
                .split(", ")
                .map(|p| p.split(':').next().unwrap_or(p).to_owned())
                .collect();
            Some((PathBuf::from(path), packages))
        })
        .collect()
}

/// Bind mounts that leave in each of `binary`'s firmware directories only the files of the
/// packages in `allowed`: (a copy of the directory so cut, the directory).
fn firmware_of(binary: &str, allowed: &BTreeSet<String>, tmp: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut mounts = Vec::new();
    for (n, dir) in firmware_dirs(binary).into_iter().enumerate() {
        let mut files = Vec::new();
        files_below(&dir, Path::new(""), &mut files);
        let reals: Vec<&Path> = files.iter().map(|(_, real)| real.as_path()).collect();
        let owned = match reals.is_empty() {
            true => Vec::new(),
            false => owners(&reals),
        };
        let shadow = tmp.join(format!("firmware-{n}"));
        std::fs::create_dir_all(&shadow).unwrap();
        for (name, real) in &files {
            let owner = owned.iter().find(|(path, _)| path == real);
            if owner.is_some_and(|(_, packages)| packages.iter().any(|p| allowed.contains(p))) {
                let copy = shadow.join(name);
                std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
                std::fs::copy(real, &copy).unwrap();
            }
        }
        mounts.push((shadow, dir));
    }
    mounts
}

/// `program ARGS`, run in a mount namespace where each `(from, onto)` is bind-mounted.
fn in_namespace(mounts: &[(PathBuf, PathBuf)], program: &Path, args: &[String]) -> Command {
    let mut script = String::new();
    for (i, _) in mounts.iter().enumerate() {
        // Positional parameters: the paths are never parsed by the shell.
        script.push_str(&format!(
            "mount --bind \"${}\" \"${}\" || exit 99\n",
            2 * i + 1,
            2 * i + 2
        ));
    }
    script.push_str(&format!("shift {}\nexec \"$@\"", 2 * mounts.len()));
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--map-root-user", "sh", "-c", &script, "sh"])
        .args(mounts.iter().flat_map(|(from, onto)| [from, onto]))
        .arg(program)
        .args(args);
    command
}

/// The smallest kernel QEMU loads for `arch`: a static ELF that spins, built with the
/// compiler of the arch's guest programs. QEMU's PC loads an ELF only with a PVH entry note.
fn spinning_kernel(arch: Arch, dir: &Path) -> PathBuf {
    // An R6 core loads what an R2 one does: the ELF's class, byte order and machine.
    let arch = match arch {
        Arch::Mips64r6el => Arch::Mips64el,
        arch => arch,
    };
    let source = dir.join(format!("{arch}.c"));
    let note = r#"__asm__(".pushsection .note.Xen,\"a\",@note\n.balign 4\n.long 4, 4, 18\n.asciz \"Xen\"\n.long __start\n.popsection");"#;
    let body = "void __start(void) { for (;;) ; }\n";
    let text = match arch {
        Arch::X86_64 => format!("{note}\n{body}"),
        _ => body.to_owned(),
    };
    std::fs::write(&source, text).unwrap();
    let kernel = dir.join(format!("{arch}.elf"));
    let cc = arch.toolchain().cc;
    let output = Command::new(cc)
        .args([
            "-nostdlib",
            "-static",
            "-no-pie",
            "-O2",
            "-Wl,-e,__start",
            "-o",
        ])
        .arg(&kernel)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("{cc} runs (.ci/run installs it): {e}"));
    assert!(output.status.success(), "{}", show(&output));
    kernel
}

/// Starts `arch`'s QEMU as the harness does, stopped before its first instruction (`-S`), with
/// only the firmware of QEMU's dependencies; `Ok` once QEMU answers over QMP (its machine is
/// made: every ROM loaded), else what QEMU said on exiting.
fn start_with_only_dependencies(arch: Arch, tmp: &Path) -> Result<(), String> {
    let settings = arch.qemu();
    let allowed = depends_closure(settings.package);
    let dir = tmp.join(arch.name());
    std::fs::create_dir_all(&dir).unwrap();
    let mounts = firmware_of(settings.binary, &allowed, &dir);
    let initrd = dir.join("initramfs.cpio");
    std::fs::write(&initrd, [0u8; 512]).unwrap();
    let socket = dir.join("qmp.sock");
    let config = QemuConfig {
        accel: Accel::Tcg,
        agent_output: Some(dir.join("agent.out")),
        qmp: Some(socket.clone()),
        ..QemuConfig::boot(arch, spinning_kernel(arch, &dir), initrd)
    };
    let (program, mut args) = config.command_line();
    args.push("-S".into());
    let mut qemu = in_namespace(&mounts, Path::new(&program), &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let answered = loop {
        if let Some(status) = qemu.try_wait().unwrap() {
            break Err(status);
        }
        if let Ok(mut qmp) = Qmp::connect(&socket, Duration::from_secs(30)) {
            let status = qmp.execute(serde_json::json!({ "execute": "query-status" }));
            let _ = qmp.execute(serde_json::json!({ "execute": "quit" }));
            break Ok(status.map_err(|e| e.to_string()));
        }
        assert!(Instant::now() < deadline, "{program} made no QMP socket");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = qemu.kill();
    let output = qemu.wait_with_output().unwrap();
    match answered {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{program} answered QMP with an error: {e}")),
        Err(status) => Err(format!(
            "{program} exited ({status}) before its machine was made: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

#[test]
fn every_arch_starts_with_only_the_firmware_its_qemu_package_depends_on() {
    let tmp = tempfile::tempdir().unwrap();
    let failures: Vec<String> = Arch::ALL
        .iter()
        .filter_map(|&arch| {
            start_with_only_dependencies(arch, tmp.path())
                .err()
                .map(|e| format!("{arch}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

fn xtask_in_namespace(mounts: &[(PathBuf, PathBuf)], cache: &Path, out: &Path) -> Output {
    let args: Vec<String> = [
        "test",
        "--arch",
        "x86_64",
        "--jobs",
        "2",
        "--cache-dir",
        path_str(cache),
        "--out",
        path_str(out),
    ]
    .map(String::from)
    .to_vec();
    in_namespace(mounts, Path::new(env!("CARGO_BIN_EXE_xtask")), &args)
        .output()
        .unwrap()
}

/// How the run in `out` cut its selection: what each guest ran.
fn cut(out: &Path) -> Vec<String> {
    let report = Report::read(&out.join("report.json")).unwrap();
    report.timing.guests.into_iter().map(|g| g.shard).collect()
}

#[test]
fn a_run_whose_guests_cannot_boot_says_what_to_install_and_changes_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    // The real cache's kernels (fetched now if need be), and durations of the test's own.
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for part in ["kernels", "apt"] {
        std::fs::create_dir_all(cache_dir().join(part)).unwrap();
        std::os::unix::fs::symlink(cache_dir().join(part), cache.join(part)).unwrap();
    }
    // QEMU for the PC without seabios, which ships its BIOS.
    let mut allowed = depends_closure("qemu-system-x86");
    allowed.remove("seabios");
    let mounts = firmware_of("qemu-system-x86_64", &allowed, tmp.path());

    let (first_out, second_out) = (tmp.path().join("first"), tmp.path().join("second"));
    let first = xtask_in_namespace(&mounts, &cache, &first_out);
    assert_ne!(first.status.code(), Some(99), "no mount: {}", show(&first));
    assert_eq!(first.status.code(), Some(3), "{}", show(&first));
    let durations = cache.join("durations/x86_64-debian-6.1-amd64.json");
    assert!(
        !durations.exists(),
        "a run that timed nothing wrote {durations:?}"
    );

    let stdout = String::from_utf8_lossy(&first.stdout);
    let mut lines = stdout.lines();
    let heading = lines.next().unwrap_or("");
    assert!(
        heading.starts_with("x86_64 debian:linux-image-6.1.0-56-amd64-unsigned=")
            && heading.ends_with(" (no guest booted)"),
        "{}",
        show(&first)
    );
    let errors: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("harness error: "))
        .collect();
    assert_eq!(errors.len(), 1, "said once: {}", show(&first));
    assert!(
        errors[0].starts_with("harness error: guests 1, 2: qemu-system-x86_64 ended")
            && errors[0].contains("bios-256k.bin")
            && errors[0].ends_with(
                "which Debian's seabios ships: `apt-get install --no-install-recommends seabios`"
            ),
        "{}",
        show(&first)
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("  removed")),
        "{}",
        show(&first)
    );
    assert!(
        stdout.contains("\n  not-run         1038 not run: test_bpf [jit] 1026, "),
        "{}",
        show(&first)
    );

    // A cache file that knows only some tests: the others are cut by the committed figures,
    // so the cut is the one without the file; and it stays as it was.
    let committed = root().join("reports/durations/x86_64.json");
    let mut partial: serde_json::Value =
        serde_json::from_slice(&std::fs::read(committed).unwrap()).unwrap();
    let tests = partial["tests"].as_object_mut().unwrap();
    let kept: Vec<String> = tests.keys().step_by(3).cloned().collect();
    tests.retain(|key, _| kept.contains(key));
    std::fs::create_dir_all(durations.parent().unwrap()).unwrap();
    let written = serde_json::to_vec_pretty(&partial).unwrap();
    std::fs::write(&durations, &written).unwrap();
    let second = xtask_in_namespace(&mounts, &cache, &second_out);
    assert_eq!(second.status.code(), Some(3), "{}", show(&second));
    assert_eq!(std::fs::read(&durations).unwrap(), written);
    assert_eq!(cut(&second_out), cut(&first_out));
    assert_eq!(cut(&first_out).len(), 2, "{}", show(&first));
}
