//! Shared by the tests that check an output with its real consumer.

#[allow(dead_code)]
pub mod browser;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One venv creation at a time in this test binary.
static VENV: Mutex<()> = Mutex::new(());

/// A Python virtual environment under the target directory with `packages` (pinned
/// `name==version` requirements) installed from PyPI, made once and kept. Returns its
/// `python`. Panics, naming the command, when Python or PyPI is not there: the consumer is
/// the test.
#[allow(dead_code)]
pub fn python_with(name: &str, packages: &[&str]) -> PathBuf {
    let _guard = VENV.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pyenv-{name}"));
    let python = dir.join("bin").join("python");
    let stamp = dir.join("installed.txt");
    let wanted = packages.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir));
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages));
    std::fs::write(&stamp, wanted).expect("cannot write the venv's stamp");
    python
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed: {status}");
}

/// The report a default run (the kernel's suites, `jit`) writes for a recorded console in
/// `tests/fixtures/`, with the kernel named by `source`.
#[allow(dead_code)]
pub fn replayed(log: &str, arch: runner::arch::Arch, source: &str) -> runner::report::Report {
    use runner::model::Mode;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(log);
    let console = std::fs::read(&path).expect("the fixture is readable");
    let plan = runner::plan::Plan::new(&runner::model::Suite::ALL, &[Mode::Jit], None)
        .expect("the default plan is valid");
    runner::session::replay(&console, &plan).into_report(arch, source.to_owned())
}
