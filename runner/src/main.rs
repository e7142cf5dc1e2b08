//! `runner`: the library's command line. `runner replay` turns a recorded console log back
//! into a report, exactly as a live run would have.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runner::arch::Arch;
use runner::cli::Selection;
use runner::report::render_summary;
use runner::session;

#[derive(Parser, Debug)]
#[command(name = "runner", about = "BPF test guest runner", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse a recorded console log (console.log of an earlier run) into a report.
    Replay {
        /// The console log, raw bytes as QEMU wrote them.
        console: PathBuf,
        /// The guest architecture the log came from.
        #[arg(long)]
        arch: Arch,
        /// The plan the guest ran: must match the run that recorded the log.
        #[command(flatten)]
        selection: Selection,
        /// Where the kernel came from, for the report.
        #[arg(long, default_value = "recorded")]
        source: String,
        /// Write report.json into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Replay {
            console,
            arch,
            selection,
            source,
            out,
        } => {
            let plan = selection.plan()?;
            let bytes = std::fs::read(&console)
                .with_context(|| format!("cannot read the console log {}", console.display()))?;
            let outcome = session::replay(&bytes, &plan);
            let invalid_selection = outcome.invalid_selection;
            let report = outcome.into_report(arch, source);
            if let Some(out) = out {
                std::fs::create_dir_all(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                let path = out.join("report.json");
                report
                    .write(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            print!("{}", render_summary(&report));
            Ok(if invalid_selection {
                2
            } else {
                report.exit_code()
            })
        }
    }
}
