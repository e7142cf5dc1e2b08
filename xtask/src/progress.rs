//! Progress of a running guest on stderr: a live line on a terminal, a line every so often
//! in a log.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use runner::model::{Status, TestResult};
use runner::session::Progress;

/// How often a non-terminal gets a progress line.
const LOG_EVERY: Duration = Duration::from_secs(15);

pub struct Reporter {
    bar: Option<ProgressBar>,
    done: usize,
    not_passed: usize,
    last_log: Instant,
    started: Instant,
}

impl Reporter {
    pub fn new(what: &str) -> Reporter {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar.set_message(format!("booting {what}"));
            bar
        });
        if bar.is_none() {
            eprintln!("booting {what}");
        }
        Reporter {
            bar,
            done: 0,
            not_passed: 0,
            last_log: Instant::now(),
            started: Instant::now(),
        }
    }

    pub fn update(&mut self, event: Progress<'_>) {
        let message = match event {
            Progress::Booted { release } => {
                format!(
                    "booted {} after {:.1} s",
                    release.unwrap_or("?"),
                    self.started.elapsed().as_secs_f64()
                )
            }
            Progress::LoadStarted { index, of } => format!("module load {}/{of}", index + 1),
            Progress::AgentStarted => "the agent runs its cases".to_owned(),
            Progress::TestFinished(result) => {
                self.done += 1;
                if result.status != Status::Pass {
                    self.not_passed += 1;
                    self.note(&failure_line(result));
                }
                format!(
                    "{} tests, {} not passed; {} #{} {}",
                    self.done,
                    self.not_passed,
                    result.suite,
                    result.id.unwrap_or(0),
                    result.name
                )
            }
        };
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => {
                let periodic = matches!(event, Progress::TestFinished(_));
                if !periodic || self.last_log.elapsed() >= LOG_EVERY {
                    eprintln!(
                        "[{:>5.1} s] {message}",
                        self.started.elapsed().as_secs_f64()
                    );
                    self.last_log = Instant::now();
                }
            }
        }
    }

    /// A line of its own, above the live one.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

fn failure_line(r: &TestResult) -> String {
    format!(
        "{} {} #{} {}: {}",
        r.status.name().to_uppercase(),
        r.suite,
        r.id.unwrap_or(0),
        r.name,
        r.message.as_deref().unwrap_or("")
    )
}
