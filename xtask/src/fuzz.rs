//! `cargo xtask fuzz`: programs from `runner::fuzz`, run in guests by the agent in each mode,
//! each result checked against the host's reference interpreter. A program every mode refuses
//! to load is counted, not a finding; any other disagreement (a wrong value in one mode, a
//! crash, a hang, a load that fails in one mode only) is a finding, minimised in further guest
//! runs and written out as a conformance case.
//!
//! The run directory holds `batch-N/` (each batch's `test` run, with its report and console
//! logs), `findings/` (one `.data` per finding) and `fuzz.md` / `fuzz.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rayon::prelude::*;
use runner::arch::Endian;
use runner::bpf::insn::{to_asm, Insn};
use runner::cases::{conformance, Case, MapSpec};
use runner::fuzz::{self, shrink, Config, Coverage};
use runner::model::{Mode, Status};
use runner::report::Report;

use crate::flags::{FuzzCmd, Isa, Test};
use crate::signals;

/// Rounds of minimising one finding, at most: each is one guest run of all candidates.
const SHRINK_ROUNDS: usize = 40;
/// Candidates per guest run when minimising a hang.
const HANG_GROUP: usize = 4;

/// What each mode said of a program that did not pass: (mode, status, message).
type Said = Vec<(Mode, Status, String)>;

/// What one program did in the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Every mode agrees with the reference.
    Agrees,
    /// Every mode refused to load it (or the kernel lacks ISA v4): not a finding.
    Refused(String),
    /// A mode never reached it (the guest gave up after crashes before it) and the others
    /// agree: nothing is known of it.
    NotRun,
    /// A disagreement: the modes that showed it and what each said.
    Finding(Said),
}

/// A program that disagreed, and its smallest version that still does.
struct Finding {
    index: u64,
    /// The program in `form`.
    insns: Vec<Insn>,
    form: Form,
    expected: u64,
    what: Said,
    /// The run directory of the guest run that last showed it.
    batch: PathBuf,
}

/// How a finding's program is run: as generated, with its maps, or in the conformance
/// convention of the `.data` file it becomes (r1 the memory, r0 the result). Minimising goes
/// on in the second form, so the file's own instructions are the ones shrunk and checked.
#[derive(Clone)]
enum Form {
    Generated(Vec<MapSpec>),
    Conformance(Vec<u8>),
    /// The `.data` form with the map lookups kept (`fuzz::with_lookups`), and the value the
    /// reference gave the program as generated.
    Lookups {
        mem: Vec<u8>,
        expected: u64,
    },
}

/// A program of a minimising round that still shows the finding.
struct Hit {
    /// Its position among the round's programs.
    number: usize,
    insns: Vec<Insn>,
    expected: u64,
    what: Said,
    batch: PathBuf,
}

/// The run's counts.
#[derive(Default, serde::Serialize)]
struct Totals {
    generated: u64,
    /// The host reference refused (a bug of the generator or the reference, not the kernel).
    reference_refused: u64,
    ran: u64,
    agreed: u64,
    /// Not run in some mode (the deadline cut its batch, or its guest gave up), agreeing in
    /// the others; not counted in `ran`.
    not_run: u64,
    refused: u64,
    findings: u64,
    /// Programs run per second of the agent's passes, by mode.
    per_second: BTreeMap<String, f64>,
    #[serde(skip)]
    agent_seconds: BTreeMap<String, (usize, f64)>,
    /// The verifier's first words for each refusal, and how often.
    refusals: BTreeMap<String, u64>,
}

/// What the batches gather: the run's counts, the coverage and the findings.
#[derive(Default)]
struct Gathered {
    totals: Totals,
    coverage: Coverage,
    findings: Vec<Finding>,
}

/// The programs of a batch the reference runs, by index, with the value it gave each.
type Programs = BTreeMap<u64, (fuzz::Generated, u64)>;

impl Gathered {
    /// Generates programs `indices` and runs the reference on them, on every core: the
    /// programs it runs, and their cases; the others are counted and told of.
    fn generate(
        &mut self,
        config: &Config,
        indices: std::ops::Range<u64>,
        seed: u64,
        endian: Endian,
    ) -> (Programs, Vec<Case>) {
        let mut programs = BTreeMap::new();
        let mut cases = Vec::new();
        // Generating and running the reference take as long as the guests do: on every core.
        let generated: Vec<_> = indices
            .into_par_iter()
            .map(|index| {
                let g = fuzz::generate(config, index);
                let expected = fuzz::reference(&g.insns, &g.maps, endian);
                (index, g, expected)
            })
            .collect();
        for (index, g, expected) in generated {
            self.totals.generated += 1;
            self.coverage.add(&g.insns);
            match expected {
                Ok(expected) => {
                    cases.push(fuzz::case(
                        name(seed, index),
                        g.insns.clone(),
                        g.maps.clone(),
                        expected,
                    ));
                    programs.insert(index, (g, expected));
                }
                Err(e) => {
                    self.totals.reference_refused += 1;
                    eprintln!("fuzz: program {index}: {e}");
                }
            }
        }
        (programs, cases)
    }

    /// Counts the outcomes of the batch run in `dir`, and keeps its findings.
    fn tally(&mut self, report: &Report, seed: u64, mut programs: Programs, dir: &Path) {
        let totals = &mut self.totals;
        for (index, outcome) in outcomes(report, seed) {
            // Programs the deadline or a crash left unrun in some mode count apart.
            totals.ran += u64::from(outcome != Outcome::NotRun);
            match outcome {
                Outcome::NotRun => totals.not_run += 1,
                Outcome::Agrees => totals.agreed += 1,
                Outcome::Refused(why) => {
                    totals.refused += 1;
                    *totals.refusals.entry(why).or_default() += 1;
                }
                Outcome::Finding(what) => {
                    totals.findings += 1;
                    if let Some((g, expected)) = programs.remove(&index) {
                        eprintln!("fuzz: finding: program {index}: {}", describe(&what));
                        self.findings.push(Finding {
                            index,
                            insns: g.insns,
                            form: Form::Generated(g.maps),
                            expected,
                            what,
                            batch: dir.to_owned(),
                        });
                    }
                }
            }
        }
    }
}

impl Totals {
    /// Adds the agent's passes of a batch to the time each mode took.
    fn add_timing(&mut self, report: &Report) {
        for pass in &report.timing.agent {
            let entry = self
                .agent_seconds
                .entry(pass.mode.name().to_owned())
                .or_default();
            entry.0 += pass.cases;
            entry.1 += pass.seconds;
        }
    }

    /// Sets the programs run per second in each mode from the time the modes took.
    fn set_rates(&mut self) {
        for (mode, (cases, seconds)) in &self.agent_seconds {
            if *seconds > 0.0 {
                self.per_second
                    .insert(mode.clone(), *cases as f64 / seconds);
            }
        }
    }
}

impl FuzzCmd {
    /// `cargo xtask fuzz --arch ARCH` with every other flag at its default (`bench` starts
    /// its runs from it).
    pub fn new(arch: runner::arch::Arch) -> FuzzCmd {
        FuzzCmd {
            arch,
            kernel: None,
            patch: Vec::new(),
            seed: 1,
            start: 0,
            count: None,
            time: None,
            batch: 1000,
            len: 4..=400,
            isa: Isa::Auto,
            mode: vec![Mode::Interp, Mode::Jit, Mode::JitHardened],
            silence_timeout: 20,
            minimise: 3,
            jobs: None,
            out: None,
            cache_dir: None,
        }
    }
}

impl FuzzCmd {
    pub fn run(self) -> anyhow::Result<u8> {
        let cancel = Arc::new(AtomicBool::new(false));
        signals::install(Arc::clone(&cancel))?;
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| crate::test::run_dir(&format!("fuzz-{}", self.arch)));
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create the run directory {}", out.display()))?;
        let endian = self.arch.elf().endian;
        let config = self.config(&out, endian, &cancel)?;
        let started = Instant::now();
        let Gathered {
            mut totals,
            coverage,
            mut findings,
        } = self.run_batches(&config, &out, endian, started, &cancel)?;
        totals.set_rates();
        let findings_dir = out.join("findings");
        std::fs::create_dir_all(&findings_dir)?;
        self.settle(&mut findings, &out, endian, &cancel)?;
        self.write_findings(&findings, &findings_dir, config.isa_v4, endian)?;
        let summary = summary(&self, &totals, &coverage, &findings, started.elapsed());
        std::fs::write(out.join("fuzz.md"), &summary)?;
        std::fs::write(
            out.join("fuzz.json"),
            serde_json::to_string_pretty(&totals)?,
        )?;
        println!("{summary}");
        println!("fuzz: {}", out.join("fuzz.md").display());
        Ok(if cancel.load(Ordering::SeqCst) {
            130
        } else {
            u8::from(!findings.is_empty())
        })
    }

    /// The generator's settings, with the instruction set `--isa` names or, for `auto`, the
    /// one the kernel takes.
    fn config(&self, out: &Path, endian: Endian, cancel: &AtomicBool) -> anyhow::Result<Config> {
        let mut config = Config {
            seed: self.seed,
            len: self.len.clone(),
            // The probe's stream; the run's instruction set is decided just below.
            isa_v4: true,
            loops: true,
            value_size: 512,
        };
        config.isa_v4 = match self.isa {
            Isa::V3 => false,
            Isa::V4 => true,
            Isa::Auto => self.kernel_takes_isa_v4(&config, out, endian, cancel)?,
        };
        eprintln!(
            "fuzz: instruction set {}",
            if config.isa_v4 { "v4" } else { "v3" }
        );
        Ok(config)
    }

    /// How long the batches may go on: as long as `--count` takes, else `--time`, else ten
    /// minutes.
    fn budget(&self) -> Option<Duration> {
        match (self.count, self.time) {
            (Some(_), _) => None,
            (None, Some(time)) => Some(time),
            (None, None) => Some(Duration::from_secs(600)),
        }
    }

    /// Generates and runs batch after batch, from `--start`, until `--count` programs or the
    /// time budget (from `started`) are used up, or Ctrl-C.
    fn run_batches(
        &self,
        config: &Config,
        out: &Path,
        endian: Endian,
        started: Instant,
        cancel: &AtomicBool,
    ) -> anyhow::Result<Gathered> {
        let budget = self.budget();
        let mut gathered = Gathered::default();
        let mut next = self.start;
        let end = self.count.map(|c| self.start.saturating_add(c));
        let mut batch = 0usize;
        while !cancel.load(Ordering::SeqCst) {
            if budget.is_some_and(|b| started.elapsed() >= b) || end.is_some_and(|end| next >= end)
            {
                break;
            }
            let size = match end {
                Some(end) => self.batch.min(end - next),
                None => self.batch,
            };
            let (programs, cases) = gathered.generate(config, next..next + size, self.seed, endian);
            next += size;
            let dir = out.join(format!("batch-{batch}"));
            batch += 1;
            eprintln!(
                "fuzz: batch {batch}: programs {}..{} in {}",
                next - size,
                next,
                dir.display()
            );
            let report = match budget {
                Some(budget) => {
                    let deadline = started + budget;
                    self.guest_run_until(cases, &dir, deadline, cancel)?
                }
                None => self.guest_run(cases, &self.mode, &dir, cancel)?,
            };
            gathered.totals.add_timing(&report);
            gathered.tally(&report, self.seed, programs, &dir);
        }
        Ok(gathered)
    }

    /// Minimises the first `--minimise` findings, and runs the others once more for their JIT
    /// images, until Ctrl-C.
    fn settle(
        &self,
        findings: &mut [Finding],
        out: &Path,
        endian: Endian,
        cancel: &AtomicBool,
    ) -> anyhow::Result<()> {
        for finding in findings.iter_mut().take(self.minimise) {
            if !cancel.load(Ordering::SeqCst) {
                self.minimise(finding, out, endian, cancel)?;
            }
        }
        // Minimising ran its programs with their JIT images; the others run once more for them.
        if findings.len() > self.minimise && !cancel.load(Ordering::SeqCst) {
            self.with_images(&mut findings[self.minimise..], out, endian, cancel)?;
        }
        Ok(())
    }

    /// Writes each finding as a `.data` file into `dir`.
    fn write_findings(
        &self,
        findings: &[Finding],
        dir: &Path,
        isa_v4: bool,
        endian: Endian,
    ) -> anyhow::Result<()> {
        for finding in findings {
            let path = dir.join(format!("fuzz-{}-{}.data", self.seed, finding.index));
            let text = self.finding_data(finding, isa_v4, endian);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("fuzz: wrote {}", path.display());
        }
        Ok(())
    }

    /// Whether the kernel loads an ISA v4 program: the first of the seed's v4 stream that has
    /// a v4 instruction, run once in the first mode. A kernel without v4 gives it `skip`.
    fn kernel_takes_isa_v4(
        &self,
        config: &Config,
        out: &Path,
        endian: Endian,
        cancel: &AtomicBool,
    ) -> anyhow::Result<bool> {
        let probe = (0..10_000)
            .map(|index| fuzz::generate(config, index))
            .find(|g| g.needs_isa_v4)
            .context("the generator gave no ISA v4 program in 10000: a generator bug")?;
        let expected = fuzz::reference(&probe.insns, &probe.maps, endian)
            .context("the host reference refused the ISA v4 probe: a generator bug")?;
        let case = fuzz::case(
            name(self.seed, probe.index),
            probe.insns,
            probe.maps,
            expected,
        );
        let modes = &self.mode[..1.min(self.mode.len())];
        let report = self.guest_run(vec![case], modes, &out.join("isa-probe"), cancel)?;
        Ok(!report.results.iter().any(|r| r.status == Status::Skip))
    }

    /// Runs `findings` once more, with their JIT images, in the modes that disagreed: their
    /// messages then show the code of the failing mode.
    fn with_images(
        &self,
        findings: &mut [Finding],
        out: &Path,
        endian: Endian,
        cancel: &AtomicBool,
    ) -> anyhow::Result<()> {
        let cases = findings
            .iter()
            .filter_map(|f| Some(self.case_of(&f.form, f.index, &f.insns, endian)?.0))
            .collect();
        let dir = out.join("images");
        let report = self.guest_run(cases, &self.mode, &dir, cancel)?;
        let mut by_index: BTreeMap<u64, Outcome> =
            outcomes(&report, self.seed).into_iter().collect();
        for finding in findings {
            if let Some(Outcome::Finding(what)) = by_index.remove(&finding.index) {
                if failing(&what) == failing(&finding.what) {
                    finding.what = what;
                    finding.batch = dir.clone();
                }
            }
        }
        Ok(())
    }

    /// A batch's `test` run, cut short at `deadline` (as Ctrl-C would: the programs not run by
    /// then are `not_run`), so that a batch of hangs cannot outlast `--time`.
    fn guest_run_until(
        &self,
        cases: Vec<Case>,
        dir: &Path,
        deadline: Instant,
        cancel: &AtomicBool,
    ) -> anyhow::Result<Report> {
        let stop = AtomicBool::new(false);
        let finished = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !finished.load(Ordering::SeqCst) {
                    if cancel.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        stop.store(true, Ordering::SeqCst);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let report = self.guest_run(cases, &self.mode, dir, &stop);
            finished.store(true, Ordering::SeqCst);
            report
        })
    }

    /// One `test` run of `cases` in `modes`, its report read back.
    fn guest_run(
        &self,
        cases: Vec<Case>,
        modes: &[Mode],
        dir: &Path,
        cancel: &AtomicBool,
    ) -> anyhow::Result<Report> {
        let mut test = Test::new(self.arch);
        test.selection.mode = modes.to_vec();
        test.gate.no_baseline = true;
        test.out = Some(dir.to_owned());
        test.silence_timeout = self.silence_timeout;
        test.kernel = match &self.kernel {
            Some(kernel) => Some(kernel.parse().map_err(anyhow::Error::msg)?),
            None => None,
        };
        test.build.patch.clone_from(&self.patch);
        test.jobs = self.jobs;
        test.cache_dir.clone_from(&self.cache_dir);
        test.generated = Some(cases);
        Ok(test.run_until(cancel)?.report)
    }

    /// Shrinks `finding` as generated, then turns it into the form of its `.data` file: the
    /// lean one (the map lookups gone), shrunk further, if that still shows it; else the one
    /// with the lookups kept; else it stays as generated.
    fn minimise(
        &self,
        finding: &mut Finding,
        out: &Path,
        endian: Endian,
        cancel: &AtomicBool,
    ) -> anyhow::Result<()> {
        let mut modes: Vec<Mode> = failing(&finding.what);
        // The interpreter's agreement shows that a candidate is still about the JIT.
        if !modes.contains(&Mode::Interp) && self.mode.contains(&Mode::Interp) {
            modes.insert(0, Mode::Interp);
        }
        self.shrink(
            finding,
            &modes,
            &out.join(format!("shrink-{}", finding.index)),
            endian,
            cancel,
        )?;
        let Form::Generated(maps) = &finding.form else {
            return Ok(());
        };
        let (insns, mem) = fuzz::as_conformance(&finding.insns, maps);
        let (kept, all) = fuzz::with_lookups(&finding.insns, maps);
        // The memory it needs, then all of it (a few bytes read better than 512), then the
        // lookups kept, for a finding that needs their calls or verifier states.
        let forms = [
            (
                insns.clone(),
                Form::Conformance(fuzz::shortest_memory(&insns, &mem, endian)),
            ),
            (insns, Form::Conformance(mem)),
            (
                kept,
                Form::Lookups {
                    mem: all,
                    expected: finding.expected,
                },
            ),
        ];
        let dir = out.join(format!("shrink-{}-data", finding.index));
        let mut converted = None;
        for (n, (insns, form)) in forms.into_iter().enumerate() {
            let run = dir.join(format!("convert-{n}"));
            let hits = self.trial(finding, vec![insns], &modes, &form, &run, endian, cancel)?;
            if let Some(hit) = hits.into_iter().next() {
                converted = Some((hit, form));
                break;
            }
        }
        let Some((hit, form)) = converted else {
            eprintln!(
                "fuzz: program {}: its .data forms do not show it; kept as generated",
                finding.index
            );
            return Ok(());
        };
        let shrinks = matches!(form, Form::Conformance(_));
        let mut converted = Finding {
            insns: Vec::new(),
            form,
            what: Vec::new(),
            batch: PathBuf::new(),
            ..*finding
        };
        converted.adopt(hit);
        // The reference runs no lookups: a program with them is not shrunk further.
        if shrinks {
            self.shrink(&mut converted, &modes, &dir, endian, cancel)?;
        }
        *finding = converted;
        Ok(())
    }

    /// Rounds of shrinking: every smaller candidate the reference still runs goes to a guest,
    /// in `modes`; then all the removals that kept the finding are tried together; the
    /// smallest program that still shows it is kept. Each round's runs go under `dir`.
    fn shrink(
        &self,
        finding: &mut Finding,
        modes: &[Mode],
        dir: &Path,
        endian: Endian,
        cancel: &AtomicBool,
    ) -> anyhow::Result<()> {
        // Every candidate that still hangs costs a silence timeout and a boot: a hang's
        // candidates go a few at a time, largest cuts first, and the first that hangs is taken.
        let hangs = finding.what.iter().any(|w| w.1 == Status::Hang);
        let group = if hangs { HANG_GROUP } else { usize::MAX };
        for round in 0..SHRINK_ROUNDS {
            if cancel.load(Ordering::SeqCst) {
                break;
            }
            let candidates = shrink::candidates(&finding.insns);
            let form = finding.form.clone();
            let mut kept = Vec::new();
            for (n, chunk) in candidates.chunks(group).enumerate() {
                let programs = chunk.iter().map(|c| c.insns.clone()).collect();
                let run = dir.join(format!("round-{round}-{n}"));
                kept = self.trial(finding, programs, modes, &form, &run, endian, cancel)?;
                // Numbered within the chunk: renumber within the round.
                for hit in &mut kept {
                    hit.number += n * group.min(candidates.len());
                }
                if !kept.is_empty() || cancel.load(Ordering::SeqCst) {
                    break;
                }
            }
            let together: Vec<shrink::Change> = kept
                .iter()
                .filter_map(|hit| Some(candidates.get(hit.number)?.change))
                .collect();
            let mut best = kept.into_iter().min_by_key(|hit| shrink::size(&hit.insns));
            if let (Some(combined), Some(single)) =
                (shrink::with_all(&finding.insns, &together), &best)
            {
                if shrink::size(&combined) < shrink::size(&single.insns) {
                    let run = dir.join(format!("round-{round}-together"));
                    let hits =
                        self.trial(finding, vec![combined], modes, &form, &run, endian, cancel)?;
                    best = hits.into_iter().next().or(best);
                }
            }
            match best {
                Some(hit) if shrink::size(&hit.insns) < shrink::size(&finding.insns) => {
                    eprintln!(
                        "fuzz: program {}: {} slots still disagree",
                        finding.index,
                        hit.insns.len()
                    );
                    finding.adopt(hit);
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Program `insns` in `form` as a case named for `number`, with its JIT image, and the
    /// value the reference expects; `None` when the reference does not run it.
    fn case_of(
        &self,
        form: &Form,
        number: u64,
        insns: &[Insn],
        endian: Endian,
    ) -> Option<(Case, u64)> {
        let name = name(self.seed, number);
        let mut case = match form {
            Form::Generated(maps) => {
                let expected = fuzz::reference(insns, maps, endian).ok()?;
                fuzz::case(name, insns.to_vec(), maps.clone(), expected)
            }
            Form::Conformance(mem) | Form::Lookups { mem, .. } => {
                let expected = match form {
                    Form::Lookups { expected, .. } => *expected,
                    _ => fuzz::reference_conformance(insns, mem, endian)?,
                };
                let text = conformance_text(insns, mem, expected, endian);
                conformance::parse(
                    Path::new(&name),
                    &text,
                    &name,
                    conformance::Memory::MapValue,
                )
                .ok()?
            }
        };
        case.jit_image = true;
        let expected = match case.expect {
            runner::cases::Expectation::R0(value) => value,
            _ => return None,
        };
        Some((case, expected))
    }

    /// Runs `programs` in `form` and `modes`, in `dir`: those the reference runs and that
    /// still show the finding, where the same modes disagree (a candidate that leaks a
    /// pointer, say, disagrees in every mode, and is another matter).
    #[allow(clippy::too_many_arguments)]
    fn trial(
        &self,
        finding: &Finding,
        programs: Vec<Vec<Insn>>,
        modes: &[Mode],
        form: &Form,
        dir: &Path,
        endian: Endian,
        cancel: &AtomicBool,
    ) -> anyhow::Result<Vec<Hit>> {
        let mut cases = Vec::new();
        let mut expected = BTreeMap::new();
        for (number, insns) in programs.iter().enumerate() {
            if let Some((case, value)) = self.case_of(form, number as u64, insns, endian) {
                cases.push(case);
                expected.insert(number as u64, value);
            }
        }
        if cases.is_empty() {
            return Ok(Vec::new());
        }
        let report = self.guest_run(cases, modes, dir, cancel)?;
        let want = failing(&finding.what);
        Ok(outcomes(&report, self.seed)
            .into_iter()
            .filter_map(|(number, outcome)| match outcome {
                Outcome::Finding(what) if failing(&what) == want => Some(Hit {
                    number: number as usize,
                    insns: programs.get(number as usize)?.clone(),
                    expected: *expected.get(&number)?,
                    what,
                    batch: dir.to_owned(),
                }),
                _ => None,
            })
            .collect())
    }

    /// The finding as a bpf_conformance `.data` file: the program with its map lookups turned
    /// into the conformance convention (r1 the memory, r0 the result), the seed, arch, kernel
    /// and modes in its header, and what each mode said.
    fn finding_data(&self, finding: &Finding, isa_v4: bool, endian: Endian) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "# guards: a program of `cargo xtask fuzz --seed {} --arch {} --isa {}` (program {}), \
             minimised: {}",
            self.seed,
            self.arch,
            if isa_v4 { "v4" } else { "v3" },
            finding.index,
            describe(&finding.what)
        );
        let _ = writeln!(
            t,
            "# kernel: {}; modes: {}; run: {}",
            self.kernel.as_deref().unwrap_or("the arch's default"),
            self.mode
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(","),
            finding.batch.display()
        );
        let mut said: Vec<&(Mode, Status, String)> = Vec::new();
        for w in &finding.what {
            if !said.contains(&w) {
                said.push(w);
            }
        }
        // A divergence's message ends with the failing mode's JIT image, one line each.
        for (mode, status, message) in said {
            let mut lines = message.lines();
            let first = lines.next().unwrap_or_default();
            let _ = writeln!(t, "# {} {}: {first}", mode.name(), status.name());
            for line in lines {
                let _ = writeln!(t, "#   {line}");
            }
        }
        // Its `.data` form did not show it: the program that does, for a person to go on.
        if let Form::Generated(_) = finding.form {
            t.push_str("# as generated (its .data form below may not show it):\n");
            for line in to_asm(&finding.insns).lines() {
                let _ = writeln!(t, "#   {line}");
            }
        }
        let (insns, mem) = match &finding.form {
            Form::Generated(maps) => fuzz::as_conformance(&finding.insns, maps),
            Form::Conformance(mem) | Form::Lookups { mem, .. } => {
                (finding.insns.clone(), mem.clone())
            }
        };
        let expected = fuzz::reference_conformance(&insns, &mem, endian);
        t + &conformance_text(&insns, &mem, expected.unwrap_or(finding.expected), endian)
    }
}

impl Finding {
    /// Takes `hit`, a smaller program that still shows it, as its program.
    fn adopt(&mut self, hit: Hit) {
        self.insns = hit.insns;
        self.expected = hit.expected;
        self.what = hit.what;
        self.batch = hit.batch;
    }
}

/// The body of a bpf_conformance `.data` file: the program, its memory and the value r0 ends
/// with on an `endian` machine (a little-endian file says so: a big-endian guest skips it).
fn conformance_text(insns: &[Insn], mem: &[u8], expected: u64, endian: Endian) -> String {
    let mut t = String::new();
    if endian == Endian::Little {
        t.push_str("# endian: little\n");
    }
    // Map slots name the conformance runner's maps (a program with its lookups kept).
    let asm = to_asm(insns)
        .replace(
            &format!("map_by_fd({})", fuzz::RESULT_MAP),
            "map_by_fd(__result)",
        )
        .replace(
            &format!("map_by_fd({})", fuzz::VALUES_MAP),
            "map_by_fd(__input)",
        );
    t.push_str("-- asm\n");
    t.push_str(&asm);
    t.push_str("-- mem\n");
    for chunk in mem.chunks(16) {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(t, "{}", hex.join(" "));
    }
    let _ = writeln!(t, "-- result\n{expected:#x}");
    t
}

/// The case name of program `index` of `seed`.
fn name(seed: u64, index: u64) -> String {
    format!("fuzz-{seed}-{index}")
}

/// Each program's outcome, by index, from a batch's report.
fn outcomes(report: &Report, seed: u64) -> Vec<(u64, Outcome)> {
    let prefix = format!("fuzz-{seed}-");
    let mut by_index: BTreeMap<u64, Said> = BTreeMap::new();
    for r in &report.results {
        let Some(index) = r
            .name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        by_index.entry(index).or_default().push((
            r.mode,
            r.status,
            r.message.clone().unwrap_or_default(),
        ));
    }
    by_index
        .into_iter()
        .map(|(index, results)| (index, outcome(&results)))
        .collect()
}

/// One program's outcome from its results in every mode (and its divergence entry).
fn outcome(results: &[(Mode, Status, String)]) -> Outcome {
    // A load the kernel splatted in is a finding, even when it failed.
    let refused = |(_, status, message): &(Mode, Status, String)| {
        (*status == Status::Fail
            && message.starts_with("load failed")
            && !message.contains(runner::splat::WHILE_IT_RAN))
            || *status == Status::Skip
    };
    let modes: Vec<_> = results
        .iter()
        .filter(|r| r.1 != Status::Divergence)
        .collect();
    if modes.iter().all(|r| r.1 == Status::Pass) {
        return Outcome::Agrees;
    }
    if modes
        .iter()
        .all(|r| matches!(r.1, Status::Pass | Status::NotRun))
    {
        return Outcome::NotRun;
    }
    if modes.iter().all(|r| refused(r)) {
        let why = modes.first().map(|r| first_words(&r.2)).unwrap_or_default();
        return Outcome::Refused(why);
    }
    Outcome::Finding(
        results
            .iter()
            .filter(|r| r.1 != Status::Pass)
            .cloned()
            .collect(),
    )
}

/// The verifier's reason in a load failure's message, without numbers: for counting.
fn first_words(message: &str) -> String {
    let tail = message.rsplit(" | ").nth(1).unwrap_or(message);
    tail.chars()
        .map(|c| if c.is_ascii_digit() { 'N' } else { c })
        .take(80)
        .collect()
}

/// The modes in which a finding shows (its divergence entry aside).
fn failing(what: &[(Mode, Status, String)]) -> Vec<Mode> {
    let mut modes: Vec<Mode> = what
        .iter()
        .filter(|w| w.1 != Status::Divergence)
        .map(|w| w.0)
        .collect();
    modes.sort_by_key(|m| m.name());
    modes.dedup();
    modes
}

fn describe(what: &[(Mode, Status, String)]) -> String {
    what.iter()
        .filter(|w| w.1 != Status::Divergence)
        .map(|(mode, status, message)| {
            let first = message.lines().next().unwrap_or("");
            format!(
                "{} {}: {}",
                mode.name(),
                status.name(),
                first.chars().take(120).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn summary(
    cmd: &FuzzCmd,
    totals: &Totals,
    coverage: &Coverage,
    findings: &[Finding],
    elapsed: Duration,
) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# cargo xtask fuzz --arch {} --seed {}{}\n",
        cmd.arch,
        cmd.seed,
        cmd.kernel
            .as_deref()
            .map(|k| format!(" --kernel {k}"))
            .unwrap_or_default()
    );
    let accepted = totals.ran - totals.refused;
    let rate = |n: u64| {
        if totals.ran == 0 {
            0.0
        } else {
            100.0 * n as f64 / totals.ran as f64
        }
    };
    let _ = writeln!(t, "| measure | value |\n| --- | --- |");
    let _ = writeln!(t, "| programs generated | {} |", totals.generated);
    let _ = writeln!(
        t,
        "| refused by the host reference | {} |",
        totals.reference_refused
    );
    let _ = writeln!(t, "| run in the guest | {} |", totals.ran);
    let _ = writeln!(
        t,
        "| accepted by the verifier | {accepted} ({:.1} %) |",
        rate(accepted)
    );
    let _ = writeln!(t, "| agreeing in every mode | {} |", totals.agreed);
    if totals.not_run > 0 {
        let _ = writeln!(
            t,
            "| not run in some mode (the deadline, or a guest that gave up) | {} |",
            totals.not_run
        );
    }
    let _ = writeln!(t, "| findings | {} |", totals.findings);
    for (mode, per_second) in &totals.per_second {
        let _ = writeln!(t, "| programs per second, {mode} | {per_second:.0} |");
    }
    let _ = writeln!(t, "| wall time | {:.0} s |", elapsed.as_secs_f64());
    if !totals.refusals.is_empty() {
        let _ = writeln!(t, "\n## Refused by the verifier\n");
        for (why, n) in &totals.refusals {
            let _ = writeln!(t, "- {n} × {why}");
        }
    }
    let _ = writeln!(t, "\n## Findings\n");
    if findings.is_empty() {
        let _ = writeln!(t, "None.");
    }
    for f in findings {
        let _ = writeln!(
            t,
            "- program {} ({} slots): {}",
            f.index,
            f.insns.len(),
            describe(&f.what)
        );
    }
    let _ = writeln!(t, "\n## Coverage\n\n{coverage}");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `FuzzCmd::new` is `fuzz --arch A` as clap reads it.
    #[test]
    fn new_has_the_command_line_defaults() {
        use clap::Parser as _;
        for arch in runner::arch::Arch::ALL {
            let argv = ["cargo xtask", "fuzz", "--arch", arch.name()];
            let flags = crate::flags::Xtask::try_parse_from(argv).expect("valid");
            let crate::flags::Command::Fuzz(parsed) = flags.command else {
                unreachable!("a fuzz command")
            };
            assert_eq!(format!("{:?}", FuzzCmd::new(arch)), format!("{parsed:?}"));
        }
    }

    fn said(mode: Mode, status: Status, message: &str) -> (Mode, Status, String) {
        (mode, status, message.to_owned())
    }

    #[test]
    fn refusals_in_every_mode_are_counted_and_the_rest_are_findings() {
        use Mode::*;
        let pass = |m| said(m, Status::Pass, "");
        assert_eq!(
            outcome(&[pass(Interp), pass(Jit), pass(JitHardened)]),
            Outcome::Agrees
        );
        let refused = |m| {
            said(
                m,
                Status::Fail,
                "load failed (errno 13); verifier: 7: R3 !read_ok",
            )
        };
        assert!(matches!(
            outcome(&[refused(Interp), refused(Jit)]),
            Outcome::Refused(why) if why.contains("RN !read_ok")
        ));
        // Refused by the JIT's mode only: a finding.
        let jit_only = outcome(&[pass(Interp), refused(Jit)]);
        assert!(matches!(&jit_only, Outcome::Finding(w) if failing(w) == [Jit]));
        // A wrong value, its divergence entry beside it.
        let wrong = outcome(&[
            pass(Interp),
            said(Jit, Status::Fail, "r0 = 0x0, expected 0x1"),
            said(Jit, Status::Divergence, "modes disagree"),
        ]);
        assert!(matches!(&wrong, Outcome::Finding(w) if failing(w) == [Jit]));
        let never = said(
            Jit,
            Status::NotRun,
            "not run: the agent never reached this case",
        );
        assert_eq!(outcome(&[pass(Interp), never]), Outcome::NotRun);
        let crash = outcome(&[pass(Interp), said(Jit, Status::Crash, "Oops")]);
        assert!(matches!(crash, Outcome::Finding(_)));
        // A refusal the kernel splatted in is no refusal.
        let warned = said(
            Jit,
            Status::Fail,
            "load failed (errno 22); kernel splat while it ran: WARNING in build_insn",
        );
        assert!(matches!(
            outcome(&[refused(Interp), warned]),
            Outcome::Finding(_)
        ));
    }
}
