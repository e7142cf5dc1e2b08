//! `cargo xtask`: the harness's front door. This file only dispatches; each verb lives in a
//! module of its own.

mod bench;
mod bisect;
mod bless;
mod cache;
mod compare;
mod debian;
mod diff;
mod flags;
mod fuzz;
mod gate;
mod git;
mod guest_c;
mod history;
mod html;
mod kbuild;
mod kernel;
mod kernels;
mod lines;
mod merge;
mod orphans;
mod progress;
mod replay;
mod signals;
mod snapshot;
mod test;
mod tools;
mod track;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Exit status for bad usage or bad input (see docs/outputs.md, "Exit status").
const EXIT_USAGE: u8 = 2;
/// Exit status when the harness or its tools failed.
const EXIT_HARNESS: u8 = 3;

/// An error caused by what the user gave us (arguments, files), not by the harness.
#[derive(Debug)]
pub struct UsageError(anyhow::Error);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

impl UsageError {
    pub fn wrap(error: impl Into<anyhow::Error>) -> anyhow::Error {
        anyhow::Error::new(UsageError(error.into()))
    }
}

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    let result = match flags.command {
        flags::Command::Test(cmd) => cmd.run(),
        flags::Command::Kernel(cmd) => cmd.run(),
        flags::Command::Compare(cmd) => cmd.run(),
        flags::Command::Bench(cmd) => cmd.run(),
        flags::Command::Fuzz(cmd) => cmd.run(),
        flags::Command::Report(flags::ReportCommand::Merge(cmd)) => cmd.run(),
        flags::Command::Report(flags::ReportCommand::Diff(cmd)) => cmd.run(),
        flags::Command::Report(flags::ReportCommand::Bless(cmd)) => cmd.run(),
        flags::Command::Report(flags::ReportCommand::Html(cmd)) => cmd.run(),
        flags::Command::Track(cmd) => cmd.run(),
        flags::Command::Replay(cmd) => cmd.run(),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.chain().any(|e| e.is::<UsageError>()) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_HARNESS)
            }
        }
    }
}

/// The workspace root: `cargo xtask` may be run from any directory inside it.
pub fn project_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(PathBuf::from).unwrap_or(dir)
}
