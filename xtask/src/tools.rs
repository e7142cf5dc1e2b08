//! Host tools: find them, or install them with apt when we may.

use std::path::PathBuf;

use anyhow::{bail, Context};

/// A program the harness runs, and the Debian packages that make it work.
#[derive(Clone, Copy, Debug)]
pub struct Tool<'a> {
    pub program: &'a str,
    pub packages: &'a [&'a str],
}

/// Whether missing tools may be installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    Allowed,
    Forbidden,
}

/// Makes sure every tool is on PATH. Missing ones are installed with apt when running as
/// root on Debian and `install` allows it; otherwise the error gives the command to run.
pub fn ensure(tools: &[Tool<'_>], install: Install) -> anyhow::Result<()> {
    let missing: Vec<Tool<'_>> = tools
        .iter()
        .copied()
        .filter(|t| find(t.program).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing
        .iter()
        .flat_map(|t| t.packages.iter().copied())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    let programs: Vec<&str> = missing.iter().map(|t| t.program).collect();
    // Recommends break the QEMU install on Debian 12 hosts (qemu-block-extra conflicts with a
    // newer qemu-utils), and none of them is needed.
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    let root = rustix::process::geteuid().is_root();
    let debian = std::path::Path::new("/etc/debian_version").exists();
    if install == Install::Forbidden || !root || !debian {
        let why = if install == Install::Forbidden {
            "--no-install was given"
        } else if !debian {
            "this host is not Debian, so the package names may differ"
        } else {
            "installing needs root"
        };
        bail!(
            "missing host tools: {} ({why}); install them with:\n    sudo {command}",
            programs.join(", ")
        );
    }
    eprintln!(
        "installing missing host tools ({}): {command}",
        programs.join(", ")
    );
    // apt's progress goes to stderr: stdout is the verb's own (`kernel --config-only` prints
    // a path there, which scripts read).
    let apt_get = |args: &[&str]| -> anyhow::Result<()> {
        let status = std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::io::stderr())
            .status()
            .context("cannot run apt-get")?;
        match status.success() {
            true => Ok(()),
            false => bail!("apt-get {} failed ({status})", args.join(" ")),
        }
    };
    let install: Vec<&str> = ["install", "-y", "--no-install-recommends"]
        .into_iter()
        .chain(packages.iter().copied())
        .collect();
    if apt_get(&install).is_err() {
        // A fresh machine may have no package lists yet.
        apt_get(&["update"])?;
        apt_get(&install).with_context(|| format!("`{command}` failed"))?;
    }
    for tool in &missing {
        if find(tool.program).is_none() {
            bail!(
                "{} is still missing after installing {}; install it by hand",
                tool.program,
                tool.packages.join(" ")
            );
        }
    }
    Ok(())
}

/// The full path of `program` on PATH. An absolute path names a file a package installs (a
/// header, a tarball): it only has to exist.
pub fn find(program: &str) -> Option<PathBuf> {
    if program.starts_with('/') {
        let file = PathBuf::from(program);
        return file.is_file().then_some(file);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| {
                    m.is_file()
                        && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                })
                .unwrap_or(false)
        })
}
