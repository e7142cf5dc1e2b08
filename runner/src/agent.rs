//! The host's side of the in-guest agent (images/agent/PROTOCOL.md): the bundle it reads, the
//! lines it writes, and the judging of each case in each mode.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use crate::arch::{Arch, Endian};
use crate::cases::{to_hex, Case, Expectation};
use crate::model::{AgentSuite, Mode, Status, TestResult};
use crate::splat::{self, Splat};

/// A place in the agent's bundle: the pair (case, mode) where a guest's agent starts (the
/// beginning; in a guest resumed after a crash or hang, just past the case that was in
/// flight; a span's first) or where its span ends. The agent runs mode by mode, each over every case in order, so
/// places order by mode, then case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AgentPlace {
    /// The index of the mode.
    pub mode: usize,
    /// How many cases of that mode come before it.
    pub skip: usize,
}

impl AgentPlace {
    /// The first case of the mode of index `mode`.
    pub fn mode_start(mode: usize) -> AgentPlace {
        AgentPlace { mode, skip: 0 }
    }

    /// Whether the pair (`case`, `mode`) is here or after.
    pub fn runs(self, case: usize, mode: usize) -> bool {
        (mode, case) >= (self.mode, self.skip)
    }

    /// Where to go on after the pair (`case`, `mode`): `None` past the last.
    pub fn after(case: usize, mode: usize, cases: usize, modes: usize) -> Option<AgentPlace> {
        if case + 1 < cases {
            Some(AgentPlace {
                mode,
                skip: case + 1,
            })
        } else {
            (mode + 1 < modes).then(|| AgentPlace::mode_start(mode + 1))
        }
    }

    /// Where to go on when the rest of `case`'s suite in mode `mode` is given up: the next
    /// suite's first case in that mode, else the next mode. `suites` is each case's suite, in
    /// bundle order (a suite's cases are together). `None` past the last.
    pub fn past_suite(
        case: usize,
        mode: usize,
        suites: &[AgentSuite],
        modes: usize,
    ) -> Option<AgentPlace> {
        let suite = suites.get(case)?;
        match suites[case..].iter().position(|s| s != suite) {
            Some(offset) => Some(AgentPlace {
                mode,
                skip: case + offset,
            }),
            None => (mode + 1 < modes).then(|| AgentPlace::mode_start(mode + 1)),
        }
    }
}

/// The part of the bundle one guest's agent runs: the pairs from `start` up to, not
/// including, `end` (`None`: to the last). A run cuts its own suites into spans of one suite
/// in one mode, each in a fresh guest (`shard::cut_agent`): what one span's programs made the
/// guest's kernel touch is not held while the next runs, and the spans run side by side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentSpan {
    pub start: AgentPlace,
    pub end: Option<AgentPlace>,
}

impl AgentSpan {
    /// The whole bundle.
    pub const WHOLE: AgentSpan = AgentSpan {
        start: AgentPlace { mode: 0, skip: 0 },
        end: None,
    };

    /// Whether this span runs `case` in the mode of index `mode`.
    pub fn runs(self, case: usize, mode: usize) -> bool {
        self.start.runs(case, mode) && !self.end.is_some_and(|end| end.runs(case, mode))
    }

    /// The rest of this span from `start` on (`None` for none): `None` when nothing is left.
    pub fn from(self, start: Option<AgentPlace>) -> Option<AgentSpan> {
        let start = start?;
        let left = self.end.is_none_or(|end| start < end);
        left.then_some(AgentSpan {
            start,
            end: self.end,
        })
    }

    /// For a span of one mode, that mode and its cases, of `cases`: all its bundle lists (its
    /// positions are then the bundle's own, and no `start` is needed). `None` for any other.
    fn one_mode(self, cases: usize) -> Option<(usize, Range<usize>)> {
        let AgentSpan { start, end } = self;
        match end? {
            end if end.mode == start.mode => Some((start.mode, start.skip..end.skip)),
            end if end == AgentPlace::mode_start(start.mode + 1) => {
                Some((start.mode, start.skip..cases))
            }
            _ => None,
        }
    }

    /// How many cases this span runs in the mode of index `mode`, of `cases`.
    pub fn cases_in(self, mode: usize, cases: usize) -> usize {
        (0..cases).filter(|&case| self.runs(case, mode)).count()
    }
}

/// What one guest's agent produced: the span it ran, what it wrote, and why it stopped
/// early, if it did.
#[derive(Clone, Debug, Default)]
pub struct AgentRun {
    pub span: AgentSpan,
    pub output: AgentOutput,
    pub stop: Option<(Status, String)>,
}

impl AgentRun {
    /// The (case, mode) pair the agent was on when it stopped: the first of its span it did
    /// not finish. `None` when it did not stop early.
    pub fn in_flight(&self, cases: usize, modes: usize) -> Option<(usize, usize)> {
        self.stop.as_ref()?;
        (self.span.start.mode..modes)
            .flat_map(|m| (0..cases).map(move |c| (c, m)))
            .filter(|&(c, m)| self.span.runs(c, m))
            .find(|key| !self.output.observations.get(key).is_some_and(|o| o.done))
    }
}

/// Writes the bundle of `span`: the modes to run, where to start, then the cases. A span of
/// one mode gets only that mode and its own cases (each under its number in `cases`): its
/// guest neither reads nor holds the others.
pub fn bundle(cases: &[Case], modes: &[Mode], span: AgentSpan) -> String {
    let mut out = String::from("bundle 1\n");
    let one_mode = span.one_mode(cases.len());
    for (index, mode) in modes.iter().enumerate() {
        if one_mode.as_ref().is_none_or(|(only, _)| *only == index) {
            let (enable, harden) = mode.sysctls();
            let _ = writeln!(out, "mode {index} {enable} {harden}");
        }
    }
    let start = span.start;
    if one_mode.is_none() && start != AgentPlace::default() {
        let _ = writeln!(out, "start {} {}", start.mode, start.skip);
    }
    for (id, case) in cases.iter().enumerate() {
        if one_mode.as_ref().is_some_and(|(_, ids)| !ids.contains(&id)) {
            continue;
        }
        // RUN, UNPRIV, and JITDUMP: a divergence report shows the JIT'ed code. LOG for
        // a case that must be rejected: the agent loads it once, with the log, instead of
        // once for the verdict and again for the log (it fetches the log itself when any
        // other load fails).
        let rejected = matches!(
            case.expect,
            Expectation::Verdict { accept: false, .. } | Expectation::LoadError(_)
        );
        let flags = u32::from(case.run)
            | (u32::from(case.unprivileged) << 1)
            | (u32::from(case.jit_image) << 2)
            | (u32::from(rejected) << 3)
            | (u32::from(case.attach) << 4);
        let _ = writeln!(out, "case {id} {flags}");
        for (slot, map) in case.maps.iter().enumerate() {
            let inner = map.inner.map_or("-".to_owned(), |i| i.to_string());
            let _ = writeln!(
                out,
                "map {slot} {} {} {} {} {} {inner}",
                map.map_type, map.key_size, map.value_size, map.max_entries, map.flags
            );
        }
        for (slot, map) in case.maps.iter().enumerate() {
            for (key, value) in &map.init {
                let _ = writeln!(out, "mapinit {slot} {} {}", to_hex(key), to_hex(value));
            }
            for (index, inner) in &map.map_entries {
                let _ = writeln!(out, "mapmap {slot} {index} {inner}");
            }
            for (index, prog) in &map.prog_entries {
                let _ = writeln!(out, "mapprog {slot} {index} {prog}");
            }
        }
        for (slot, prog) in case.progs.iter().enumerate() {
            let _ = writeln!(
                out,
                "prog {slot} {} {} {} {}",
                prog.prog_type,
                prog.expected_attach_type,
                prog.prog_flags,
                prog.insns.len()
            );
            for insn in &prog.insns {
                let _ = writeln!(
                    out,
                    "insn {} {} {} {} {}",
                    insn.code, insn.dst, insn.src, insn.off, insn.imm
                );
            }
        }
        if case.run || case.attach {
            let _ = writeln!(out, "data {}", to_hex(&case.data));
        }
        if let Expectation::Device { frames, .. } = case.expect {
            let _ = writeln!(out, "repeat {frames}");
        }
        for (slot, key) in &case.read_maps {
            let _ = writeln!(out, "readmap {slot} {}", to_hex(key));
        }
        out.push_str("end\n");
    }
    out
}

/// What the agent reported for one case in one mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// `(prog slot, errno)` per load attempted.
    pub loads: Vec<(usize, i32)>,
    pub log: Option<String>,
    /// `(errno, retval, duration ns)`.
    pub run: Option<(i32, u32, u64)>,
    /// `(errno, frames sent)` of an attached run.
    pub attach: Option<(i32, u32)>,
    pub out: Option<Vec<u8>>,
    /// `(slot, errno, value)`.
    pub maps: Vec<(usize, i32, Vec<u8>)>,
    /// `(jited, jited length, image)`.
    pub jit: Option<(bool, u32, Vec<u8>)>,
    /// The kernel's log records of level warning or worse while it ran, as `/dev/kmsg` gives
    /// them (`\x0a` for a newline inside a record).
    pub kmsg: Vec<String>,
    pub done: bool,
}

impl Observation {
    /// The kernel splats among the `kmsg` records, in order. Each line of a record is looked
    /// at, as on the console: a record can hold several.
    pub fn splats(&self) -> Vec<Splat> {
        self.kmsg
            .iter()
            .flat_map(|record| record.split("\\x0a"))
            .filter_map(|line| splat::detect(line.as_bytes()))
            .collect()
    }
}

/// Everything the agent wrote, parsed.
#[derive(Clone, Debug, Default)]
pub struct AgentOutput {
    pub hello: Option<String>,
    /// `(case id, mode index)` to what was seen.
    pub observations: BTreeMap<(usize, usize), Observation>,
    /// `mode index` to the sysctl values read back.
    pub modes: BTreeMap<usize, (u8, u8)>,
    /// `mode index` to the guest's time for the whole pass, in nanoseconds.
    pub mode_ns: BTreeMap<usize, u64>,
    pub finished: bool,
    pub errors: Vec<String>,
}

fn hex(field: &str) -> Result<Vec<u8>, String> {
    if field == "-" {
        return Ok(Vec::new());
    }
    crate::cases::parse_hex(field)
}

/// Parses the agent's output strictly: an unknown or malformed line is an error.
pub fn parse_output(text: &[u8]) -> AgentOutput {
    let mut out = AgentOutput::default();
    for (n, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if let Err(e) = parse_line(&mut out, line) {
            out.errors
                .push(format!("agent output line {}: {e}: {line:?}", n + 1));
        }
    }
    out
}

/// One line of the agent's output, split at spaces.
struct Fields<'a>(Vec<&'a str>);

impl Fields<'_> {
    /// Field `i` (from 0) as a number.
    fn num(&self, i: usize) -> Result<u64, String> {
        self.0
            .get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("field {} is not a number", i + 1))
    }

    /// Checks the line has exactly `n` fields.
    fn want(&self, n: usize) -> Result<(), String> {
        if self.0.len() == n {
            Ok(())
        } else {
            Err(format!("expected {n} fields"))
        }
    }

    /// The `(case id, mode index)` in fields 1 and 2.
    fn key(&self) -> Result<(usize, usize), String> {
        Ok((self.num(1)? as usize, self.num(2)? as usize))
    }
}

fn parse_line(out: &mut AgentOutput, line: &str) -> Result<(), String> {
    let f = Fields(line.split(' ').collect());
    match f.0[0] {
        "agent" => match f.0.get(1).copied() {
            Some("hello") => out.hello = Some(f.0[2..].join(" ")),
            Some("bye") => out.finished = true,
            Some("error") => out.errors.push(format!("agent: {}", f.0[2..].join(" "))),
            _ => return Err("unknown agent record".into()),
        },
        "mode" => match f.0.get(2).copied() {
            Some("begin") => {
                f.want(5)?;
                out.modes
                    .insert(f.num(1)? as usize, (f.num(3)? as u8, f.num(4)? as u8));
            }
            Some("end") => {
                f.want(4)?;
                out.mode_ns.insert(f.num(1)? as usize, f.num(3)?);
            }
            _ => return Err("unknown mode record".into()),
        },
        _ => return parse_case_record(&mut out.observations, &f),
    }
    Ok(())
}

/// Parses a record about one case in one mode into its observation.
fn parse_case_record(
    observations: &mut BTreeMap<(usize, usize), Observation>,
    f: &Fields<'_>,
) -> Result<(), String> {
    match f.0[0] {
        "load" => {
            f.want(5)?;
            let obs = observations.entry(f.key()?).or_default();
            obs.loads.push((f.num(3)? as usize, f.num(4)? as i32));
        }
        "log" => {
            f.want(4)?;
            let log = hex(f.0[3])?;
            observations.entry(f.key()?).or_default().log =
                Some(String::from_utf8_lossy(&log).into_owned());
        }
        "run" => {
            f.want(7)?;
            let run = (f.num(3)? as i32, f.num(4)? as u32, f.num(5)?);
            observations.entry(f.key()?).or_default().run = Some(run);
        }
        "attach" => {
            f.want(5)?;
            let attach = (f.num(3)? as i32, f.num(4)? as u32);
            observations.entry(f.key()?).or_default().attach = Some(attach);
        }
        "out" => {
            f.want(4)?;
            observations.entry(f.key()?).or_default().out = Some(hex(f.0[3])?);
        }
        "map" => {
            f.want(6)?;
            let entry = (f.num(3)? as usize, f.num(4)? as i32, hex(f.0[5])?);
            observations.entry(f.key()?).or_default().maps.push(entry);
        }
        "jit" => {
            f.want(7)?;
            let jit = (f.num(3)? != 0, f.num(4)? as u32, hex(f.0[6])?);
            observations.entry(f.key()?).or_default().jit = Some(jit);
        }
        "kmsg" => {
            f.want(4)?;
            let text = String::from_utf8_lossy(&hex(f.0[3])?).into_owned();
            observations.entry(f.key()?).or_default().kmsg.push(text);
        }
        "done" => {
            f.want(3)?;
            observations.entry(f.key()?).or_default().done = true;
        }
        _ => return Err("unknown record".into()),
    }
    Ok(())
}

/// The last lines of a verifier log, for failure messages.
fn log_tail(log: &Option<String>) -> String {
    let Some(log) = log else { return String::new() };
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!("; verifier: {}", tail.join(" | "))
    }
}

type Verdict = (Status, Option<String>);

/// Whether a verifier log reads as a kernel without ISA v4 refusing its instructions, in the
/// words Linux 6.1 has for them: an opcode it does not know (`unknown opcode 91`: ldxsb;
/// bswap, gotol), or a field it reserves (`BPF_ALU uses reserved fields`: sdiv, smod;
/// `BPF_MOV uses reserved fields`: movsx). A kernel that knows version 4 refuses such a
/// program for its own reasons (`div by zero`), which are the case's to judge. Without a log,
/// the refusal is taken as the instructions'.
fn refuses_isa_v4(log: Option<&str>) -> bool {
    log.is_none_or(|log| log.contains("unknown opcode") || log.contains("uses reserved fields"))
}

fn load_failed(obs: &Observation, errno: i32) -> Verdict {
    (
        Status::Fail,
        Some(format!("load failed (errno {errno}){}", log_tail(&obs.log))),
    )
}

/// The return value of a test run after a successful load, or the verdict when there is none.
fn test_run(obs: &Observation, loaded: bool, load_errno: i32) -> Result<u32, Verdict> {
    if !loaded {
        return Err(load_failed(obs, load_errno));
    }
    match obs.run {
        None => Err((Status::Error, Some("loaded but never run".into()))),
        Some((errno, _, _)) if errno != 0 => Err((
            Status::Fail,
            Some(format!("BPF_PROG_TEST_RUN failed: errno {errno}")),
        )),
        Some((_, retval, _)) => Ok(retval),
    }
}

/// Judges one case in one mode: against its expectation, then by the kernel splats the agent
/// saw while it ran.
pub fn judge(case: &Case, obs: Option<&Observation>, endian: Endian) -> Verdict {
    let verdict = expectation(case, obs, endian);
    match obs {
        Some(obs) => with_splats(verdict, &obs.splats()),
        None => verdict,
    }
}

/// A case the kernel splatted in fails (a fatal splat makes it a crash, a stall a hang),
/// whatever its expectation said; one that failed already keeps its status, and its message
/// says both.
fn with_splats((status, message): Verdict, splats: &[Splat]) -> Verdict {
    if splats.is_empty() {
        return (status, message);
    }
    let kind = |k| splats.iter().any(|s| s.kind == k);
    let splat_status = if kind(splat::Kind::Fatal) {
        Status::Crash
    } else if kind(splat::Kind::Stall) {
        Status::Hang
    } else {
        Status::Fail
    };
    let mut titles: Vec<&str> = Vec::new();
    for splat in splats {
        if !titles.contains(&splat.title.as_str()) {
            titles.push(&splat.title);
        }
    }
    let said = format!("{}: {}", splat::WHILE_IT_RAN, titles.join("; "));
    match (status, message) {
        (Status::Fail | Status::Crash | Status::Hang, Some(m)) => {
            (status, Some(format!("{m}; {said}")))
        }
        (Status::Fail | Status::Crash | Status::Hang, None) => (status, Some(said)),
        (other, Some(m)) => (
            splat_status,
            Some(format!("{said} (otherwise {}: {m})", other.name())),
        ),
        (_, None) => (splat_status, Some(said)),
    }
}

/// Judges one case in one mode against its expectation.
fn expectation(case: &Case, obs: Option<&Observation>, endian: Endian) -> Verdict {
    let Some(obs) = obs else {
        return (
            Status::NotRun,
            Some("not run: the agent never reached this case".into()),
        );
    };
    if !obs.done {
        return (
            Status::Error,
            Some("the agent's report of this case is incomplete".into()),
        );
    }
    let load_errno = obs
        .loads
        .iter()
        .map(|&(_, e)| e)
        .find(|&e| e != 0)
        .unwrap_or(0);
    let loaded = load_errno == 0 && !obs.loads.is_empty();
    if let Some(skip) = cannot_run_here(case, obs, endian, loaded, load_errno) {
        return skip;
    }
    match &case.expect {
        Expectation::Verdict { accept, log } => {
            verdict_expected(obs, loaded, load_errno, *accept, log)
        }
        Expectation::LoadError(text) => load_error_expected(obs, loaded, load_errno, text),
        Expectation::R0(want) => r0_expected(obs, loaded, load_errno, endian, *want),
        Expectation::Device { frames, maps } => {
            device_expected(case, obs, loaded, load_errno, *frames, maps)
        }
        Expectation::Xdp { action, packet } => {
            xdp_expected(obs, loaded, load_errno, *action, packet.as_deref())
        }
    }
}

/// The skip for a case this kernel or machine cannot run, whatever its JIT does; `None` when
/// the case ran and is to be judged.
fn cannot_run_here(
    case: &Case,
    obs: &Observation,
    endian: Endian,
    loaded: bool,
    load_errno: i32,
) -> Option<Verdict> {
    // A failed map line before any load: the kernel refuses a map the case needs (a type it was
    // built without). The case cannot run here, which says nothing about the JIT.
    let map_failure = obs
        .maps
        .iter()
        .find(|m| m.1 != 0)
        .filter(|_| obs.loads.is_empty());
    if let Some((slot, errno, _)) = map_failure {
        let map = case.maps.get(*slot).map_or("?", |m| m.name.as_str());
        return Some((
            Status::Skip,
            Some(format!(
                "the kernel cannot set up map `{map}` (errno {errno})"
            )),
        ));
    }
    if case.little_endian_only && endian == Endian::Big {
        return Some((
            Status::Skip,
            Some(
                "written for a little-endian machine (`# endian: little`): its memory and \
                 expected value are in that byte order"
                    .into(),
            ),
        ));
    }
    if !loaded && case.needs_isa_v4 && refuses_isa_v4(obs.log.as_deref()) {
        return Some((
            Status::Skip,
            Some(format!(
                "needs ISA v4 instructions (sdiv, smod, movsx, ldsx, bswap, gotol), which this \
                 kernel rejects (errno {load_errno}){}",
                log_tail(&obs.log)
            )),
        ));
    }
    let lacking = case.lacking.as_ref().filter(|_| !loaded)?;
    obs.log
        .as_deref()
        .unwrap_or("")
        .contains(lacking.log.as_str())
        .then(|| {
            (
                Status::Skip,
                Some(format!("{}{}", lacking.reason, log_tail(&obs.log))),
            )
        })
}

/// Judges [`Expectation::Verdict`]: accepted or rejected as expected, with a rejection's log
/// holding one of `log` when any is given.
fn verdict_expected(
    obs: &Observation,
    loaded: bool,
    load_errno: i32,
    accept: bool,
    log: &[String],
) -> Verdict {
    if accept && !loaded {
        return (
            Status::Fail,
            Some(format!(
                "rejected (errno {load_errno}), expected accept{}",
                log_tail(&obs.log)
            )),
        );
    }
    if !accept && loaded {
        return (Status::Fail, Some("accepted, expected reject".into()));
    }
    let said = obs.log.as_deref().unwrap_or("");
    if !accept && !log.is_empty() && !log.iter().any(|text| said.contains(text.as_str())) {
        let texts: Vec<String> = log.iter().map(|t| format!("{t:?}")).collect();
        return (
            Status::Fail,
            Some(format!(
                "rejected as expected, but the log lacks {}{}",
                texts.join(" or "),
                log_tail(&obs.log)
            )),
        );
    }
    (Status::Pass, None)
}

/// Judges [`Expectation::LoadError`]: the load failed with `text` in its log.
fn load_error_expected(obs: &Observation, loaded: bool, load_errno: i32, text: &str) -> Verdict {
    if loaded {
        (
            Status::Fail,
            Some(format!("loaded, expected a load error containing {text:?}")),
        )
    } else if obs.log.as_deref().unwrap_or("").contains(text) {
        (Status::Pass, None)
    } else {
        (
            Status::Fail,
            Some(format!(
                "load failed (errno {load_errno}) without {text:?}{}",
                log_tail(&obs.log)
            )),
        )
    }
}

/// Judges [`Expectation::R0`]: the epilogue ran and stored `want` in the result map.
fn r0_expected(
    obs: &Observation,
    loaded: bool,
    load_errno: i32,
    endian: Endian,
    want: u64,
) -> Verdict {
    let retval = match test_run(obs, loaded, load_errno) {
        Ok(retval) => retval,
        Err(verdict) => return verdict,
    };
    if retval != crate::cases::conformance::EPILOGUE_ACTION {
        return (
            Status::Error,
            Some(format!(
                "the harness's epilogue did not run (retval {retval})"
            )),
        );
    }
    let Some((_, 0, value)) = obs.maps.first() else {
        return (
            Status::Error,
            Some("the result map could not be read".into()),
        );
    };
    let Ok(bytes) = <[u8; 8]>::try_from(value.as_slice()) else {
        return (
            Status::Error,
            Some(format!(
                "the result map value has {} bytes, not 8",
                value.len()
            )),
        );
    };
    let got = match endian {
        Endian::Little => u64::from_le_bytes(bytes),
        Endian::Big => u64::from_be_bytes(bytes),
    };
    if got == want {
        (Status::Pass, None)
    } else {
        (
            Status::Fail,
            Some(format!("r0 = {got:#x}, expected {want:#x}")),
        )
    }
}

/// Judges [`Expectation::Device`]: attached, sent all `frames`, and left `maps` holding the
/// expected `(slot, key, value)` entries.
fn device_expected(
    case: &Case,
    obs: &Observation,
    loaded: bool,
    load_errno: i32,
    frames: u32,
    maps: &[(usize, Vec<u8>, Vec<u8>)],
) -> Verdict {
    if !loaded {
        return load_failed(obs, load_errno);
    }
    match obs.attach {
        None => return (Status::Error, Some("loaded but never attached".into())),
        // The device is the guest's, not the JIT's: without it the case cannot run.
        Some((errno, _)) if errno != 0 => {
            return (
                Status::Skip,
                Some(format!(
                    "cannot attach to a veth device or send through it (errno {errno})"
                )),
            )
        }
        Some((_, sent)) if sent != frames => {
            return (
                Status::Error,
                Some(format!("sent {sent} of {frames} frames")),
            )
        }
        Some(_) => {}
    }
    for (slot, key, want) in maps {
        let got = obs.maps.iter().find(|(s, _, _)| s == slot);
        match got {
            Some((_, 0, value)) if value == want => {}
            Some((_, 0, value)) => {
                let name = case.maps.get(*slot).map_or("?", |m| m.name.as_str());
                return (
                    Status::Fail,
                    Some(format!(
                        "after {frames} frames map `{name}` key {} holds {}, expected {}",
                        to_hex(key),
                        to_hex(value),
                        to_hex(want)
                    )),
                );
            }
            _ => {
                return (
                    Status::Error,
                    Some(format!("map slot {slot} could not be read")),
                )
            }
        }
    }
    (Status::Pass, None)
}

/// Judges [`Expectation::Xdp`]: the run returned `action`, and left `packet` as the frame when
/// given.
fn xdp_expected(
    obs: &Observation,
    loaded: bool,
    load_errno: i32,
    action: u32,
    packet: Option<&[u8]>,
) -> Verdict {
    let retval = match test_run(obs, loaded, load_errno) {
        Ok(retval) => retval,
        Err(verdict) => return verdict,
    };
    if retval != action {
        return (
            Status::Fail,
            Some(format!("action {retval}, expected {action}")),
        );
    }
    if let Some(want) = packet {
        let got = obs.out.clone().unwrap_or_default();
        if got != want {
            return (
                Status::Fail,
                Some(format!(
                    "output frame {}, expected {}",
                    to_hex(&got),
                    to_hex(want)
                )),
            );
        }
    }
    (Status::Pass, None)
}

/// Turns the agent's output into one result per case and mode, plus a `divergence` result for
/// each case whose modes disagree. `runs` are the guests that ran the agent, in order: the
/// first from the start, each next one resumed past the case the one before stopped on. The
/// case a guest stopped on gets the status of its stop (crash, hang, not run).
pub fn results(cases: &[Case], modes: &[Mode], runs: &[AgentRun], arch: Arch) -> Vec<TestResult> {
    let endian = arch.elf().endian;
    let mut observations: BTreeMap<(usize, usize), &Observation> = BTreeMap::new();
    let mut stops: BTreeMap<(usize, usize), &(Status, String)> = BTreeMap::new();
    for run in runs {
        for (&(case, mode), obs) in &run.output.observations {
            if run.span.runs(case, mode) {
                observations.insert((case, mode), obs);
            }
        }
        if let (Some(stop), Some(at)) = (&run.stop, run.in_flight(cases.len(), modes.len())) {
            stops.insert(at, stop);
        }
    }
    let mut results = Vec::new();
    for (id, case) in cases.iter().enumerate() {
        let mut per_mode = Vec::new();
        for (index, &mode) in modes.iter().enumerate() {
            let obs = observations.get(&(id, index)).copied();
            let (status, message) = match stops.get(&(id, index)) {
                Some((status, why)) => (*status, Some(stop_message(why, obs, arch))),
                None => judge(case, obs, endian),
            };
            let jited = obs.and_then(|o| o.jit.as_ref()).map(|j| j.0);
            per_mode.push((mode, status, message.clone(), obs));
            results.push(TestResult {
                jited,
                message,
                ..TestResult::new(case.suite, Some(case.number), &case.name, mode, status)
            });
        }
        if let Some(divergence) = divergence(case, &per_mode, arch) {
            results.push(divergence);
        }
    }
    results
}

/// The most instructions of a JIT image a message lists: a 15000-instruction program would
/// otherwise put 95000 lines into the report, for a reader who wants the first screens.
const LISTING_LINES: usize = 400;

/// A JIT image disassembled, cut to its first `LISTING_LINES` lines (or in hex, when the
/// disassembler cannot run).
fn listing(arch: Arch, image: &[u8]) -> String {
    let code = match crate::disasm::jit_image(arch, image) {
        Ok(code) => code,
        Err(e) => return format!("({e}) {}", to_hex(image)),
    };
    let lines: Vec<&str> = code.lines().collect();
    if lines.len() <= LISTING_LINES {
        return code;
    }
    format!(
        "{}\n... {} more lines",
        lines[..LISTING_LINES].join("\n"),
        lines.len() - LISTING_LINES
    )
}

/// A crash's or hang's message, with what the agent got to before it: a program that loaded
/// and then never returned from its run shows its JIT image, the likeliest culprit.
fn stop_message(why: &str, obs: Option<&Observation>, arch: Arch) -> String {
    // Stopped after the run (reading maps, say): nothing more to tell.
    let Some(obs) = obs.filter(|o| o.run.is_none() && o.attach.is_none()) else {
        return why.to_owned();
    };
    match &obs.jit {
        Some((true, len, image)) => {
            let code = if image.is_empty() {
                "(no image: the case does not dump it)".to_owned()
            } else {
                listing(arch, image)
            };
            format!("{why}, in the run of the program it had loaded; its JIT image, {len} bytes:\n{code}")
        }
        Some((false, ..)) => {
            format!("{why}, in the run of the program it had loaded (not JIT'ed)")
        }
        None if !obs.loads.is_empty() => format!("{why}, while loading its programs"),
        None => why.to_owned(),
    }
}

type ModeVerdict<'a> = (Mode, Status, Option<String>, Option<&'a Observation>);

/// A finding when modes that all ran disagree on the verdict.
fn divergence(case: &Case, per_mode: &[ModeVerdict<'_>], arch: Arch) -> Option<TestResult> {
    let judged: Vec<_> = per_mode
        .iter()
        .filter(|(_, s, _, _)| matches!(s, Status::Pass | Status::Fail))
        .collect();
    let first = judged.first()?;
    if judged.iter().all(|(_, s, _, _)| *s == first.1) {
        return None;
    }
    let describe = |(mode, status, message, _): &&ModeVerdict<'_>| match message {
        Some(m) => format!("{}: {} ({m})", mode.name(), status.name()),
        None => format!("{}: {}", mode.name(), status.name()),
    };
    let matched: Vec<&str> = judged
        .iter()
        .filter(|v| v.1 == Status::Pass)
        .map(|v| v.0.name())
        .collect();
    let failing = judged.iter().find(|v| v.1 == Status::Fail)?;
    let mut message = format!(
        "modes disagree; {} matched the expectation. {}",
        matched.join(", "),
        judged.iter().map(describe).collect::<Vec<_>>().join("; ")
    );
    // Only an image the agent sent: a case run without JITDUMP reports the length alone.
    if let Some((true, len, image)) = failing
        .3
        .and_then(|o| o.jit.as_ref())
        .filter(|(_, _, image)| !image.is_empty())
    {
        let code = listing(arch, image);
        let _ = write!(
            message,
            ". {} JIT image, {len} bytes:\n{code}",
            failing.0.name()
        );
    }
    Some(TestResult {
        message: Some(message),
        ..TestResult::new(
            case.suite,
            Some(case.number),
            &case.name,
            failing.0,
            Status::Divergence,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::conformance;
    use std::path::Path;

    fn case() -> Case {
        conformance::parse(
            Path::new("t.data"),
            "-- asm\nmov r0, 7\nexit\n-- result\n0x7\n",
            "t",
            conformance::Memory::Packet,
        )
        .unwrap()
    }

    #[test]
    fn bundle_lists_modes_maps_programs_and_reads() {
        let text = bundle(
            &[case()],
            &[Mode::Interp, Mode::JitHardened],
            AgentSpan::WHOLE,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            &lines[..5],
            [
                "bundle 1",
                "mode 0 0 0",
                "mode 1 1 2",
                "case 0 5",
                "map 0 2 4 8 1 0 -"
            ]
        );
        assert!(lines[5].starts_with("prog 0 6 0 0 "));
        assert_eq!(lines[6], "insn 97 2 1 4 0");
        assert_eq!(&lines[lines.len() - 3..], ["data 00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000", "readmap 0 00000000", "end"]);
    }

    fn output(value_le: &str) -> AgentOutput {
        parse_output(
            format!(
                "agent hello 1 6.1.0\nmode 0 begin 1 0\nload 0 0 0 0\nrun 0 0 0 2 100 64\nout 0 0 -\n\
                 map 0 0 0 0 {value_le}\njit 0 0 1 120 90 c3\ndone 0 0\nmode 0 end 5000\nagent bye\n"
            )
            .as_bytes(),
        )
    }

    /// A guest's agent run from the start, to its end.
    fn whole(output: AgentOutput) -> AgentRun {
        AgentRun {
            output,
            ..AgentRun::default()
        }
    }

    fn stopped(output: AgentOutput, stop: (Status, String)) -> AgentRun {
        AgentRun {
            output,
            stop: Some(stop),
            ..AgentRun::default()
        }
    }

    #[test]
    fn a_resumed_guest_carries_on_past_the_case_in_flight_and_divergences_span_guests() {
        // Three cases in two modes. The first guest finishes case 0 in interp and crashes on
        // case 1; the second starts past it.
        let first = stopped(
            parse_output(
                b"mode 0 begin 0 0\nload 0 0 0 0\nrun 0 0 0 2 1 64\nmap 0 0 0 0 0700000000000000\n\
                  jit 0 0 0 0 9 -\ndone 0 0\nload 1 0 0 0\n",
            ),
            (Status::Crash, "Oops".to_owned()),
        );
        let at = first.in_flight(3, 2).expect("it stopped on a case");
        assert_eq!(at, (1, 0));
        let span = AgentSpan::WHOLE.from(AgentPlace::after(at.0, at.1, 3, 2));
        let span = span.expect("cases are left");
        assert_eq!(span.start, AgentPlace { mode: 0, skip: 2 });
        let text = bundle(&[case(), case(), case()], &[Mode::Interp, Mode::Jit], span);
        assert!(text.lines().any(|l| l == "start 0 2"), "{text}");
        let mut rest = String::from("mode 0 begin 0 0\n");
        let pass = |c: usize, m: usize| {
            format!("load {c} {m} 0 0\nrun {c} {m} 0 2 1 64\nmap {c} {m} 0 0 0700000000000000\njit {c} {m} 1 3 9 c3c3c3\ndone {c} {m}\n")
        };
        rest.push_str(&pass(2, 0));
        rest.push_str("mode 0 end 10\nmode 1 begin 1 0\n");
        for c in 0..3 {
            rest.push_str(&pass(c, 1));
        }
        // The second guest's case 0 fails in jit: against the first guest's interp pass.
        rest = rest.replacen(
            "map 0 1 0 0 0700000000000000",
            "map 0 1 0 0 0800000000000000",
            1,
        );
        rest.push_str("mode 1 end 10\nagent bye\n");
        let second = AgentRun {
            span,
            output: parse_output(rest.as_bytes()),
            stop: None,
        };
        let numbered = |number| Case { number, ..case() };
        let r = results(
            &[numbered(0), numbered(1), numbered(2)],
            &[Mode::Interp, Mode::Jit],
            &[first, second],
            Arch::X86_64,
        );
        let got: Vec<(u32, Mode, Status)> = r
            .iter()
            .map(|r| (r.id.unwrap_or(99), r.mode, r.status))
            .collect();
        use Mode::{Interp, Jit};
        use Status::*;
        assert_eq!(
            got,
            [
                (0, Interp, Pass),
                (0, Jit, Fail),
                (0, Jit, Divergence),
                (1, Interp, Crash),
                (1, Jit, Pass),
                (2, Interp, Pass),
                (2, Jit, Pass),
            ]
        );
        assert_eq!(
            AgentPlace::after(2, 1, 3, 2),
            None,
            "nothing after the last pair"
        );
    }

    #[test]
    fn a_span_runs_its_pairs_only_and_its_rest_ends_where_it_ends() {
        // Cases 0..3 in two modes; the span is mode 0's cases 1 and 2.
        let span = AgentSpan {
            start: AgentPlace { mode: 0, skip: 1 },
            end: Some(AgentPlace { mode: 1, skip: 0 }),
        };
        let ran: Vec<(usize, usize)> = (0..2)
            .flat_map(|m| (0..3).map(move |c| (c, m)))
            .filter(|&(c, m)| span.runs(c, m))
            .collect();
        assert_eq!(ran, [(1, 0), (2, 0)]);
        assert_eq!((span.cases_in(0, 3), span.cases_in(1, 3)), (2, 0));
        let text = bundle(&[case(), case(), case()], &[Mode::Interp, Mode::Jit], span);
        let heads: Vec<&str> = text
            .lines()
            .filter(|l| ["mode", "case", "start"].iter().any(|h| l.starts_with(h)))
            .collect();
        assert_eq!(heads, ["mode 0 0 0", "case 1 5", "case 2 5"], "{text}");
        // A crash on case 1 leaves case 2; one on case 2 leaves nothing of this span.
        let rest = span.from(AgentPlace::after(1, 0, 3, 2));
        assert_eq!(rest.map(|r| r.start), Some(AgentPlace { mode: 0, skip: 2 }));
        assert_eq!(span.from(AgentPlace::after(2, 0, 3, 2)), None);
        // A guest that stopped on case 2 of mode 0 had case 2 in flight, not mode 1's.
        let run = AgentRun {
            span,
            output: parse_output(b"mode 0 begin 0 0\nload 1 0 0 0\ndone 1 0\nload 2 0 0 0\n"),
            stop: Some((Status::Hang, "silent".to_owned())),
        };
        assert_eq!(run.in_flight(3, 2), Some((2, 0)));
    }

    #[test]
    fn a_long_jit_image_is_listed_in_part() {
        let nops = vec![0x90; LISTING_LINES + 100];
        let text = listing(Arch::X86_64, &nops);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), LISTING_LINES + 1, "{text}");
        assert!(lines[0].contains("nop"), "{text}");
        assert_eq!(lines[LISTING_LINES], "... 100 more lines");
    }

    #[test]
    fn giving_up_a_suite_goes_on_with_the_next_suite_then_the_next_mode() {
        use AgentSuite::{Conformance, Verifier, Xdp};
        let suites = [Conformance, Conformance, Conformance, Verifier, Xdp, Xdp];
        let past = |case, mode| AgentPlace::past_suite(case, mode, &suites, 2);
        assert_eq!(past(1, 0), Some(AgentPlace { mode: 0, skip: 3 }));
        assert_eq!(past(3, 0), Some(AgentPlace { mode: 0, skip: 4 }));
        assert_eq!(past(4, 0), Some(AgentPlace { mode: 1, skip: 0 }));
        assert_eq!(
            past(5, 1),
            None,
            "nothing after the last suite of the last mode"
        );
        assert_eq!(past(9, 0), None, "no such case");
    }

    #[test]
    fn a_program_that_never_returns_is_shown_with_its_jit_image() {
        // x86_64: `mov eax, 7; jmp .` (an endless loop where `ret` should be).
        let looping = stopped(
            parse_output(b"mode 0 begin 1 2\nload 0 0 0 0\njit 0 0 1 7 16 b807000000ebfe\n"),
            (Status::Hang, "no console output for 20 s".to_owned()),
        );
        let r = results(&[case()], &[Mode::JitHardened], &[looping], Arch::X86_64);
        assert_eq!((r[0].status, r[0].jited), (Status::Hang, Some(true)));
        let message = r[0].message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with(
                "no console output for 20 s, in the run of the program it had loaded; \
                 its JIT image, 7 bytes:\n"
            ),
            "{message}"
        );
        assert!(message.contains("jmp"), "{message}");

        let loading = stopped(
            parse_output(b"mode 0 begin 1 2\nload 0 0 0 0\n"),
            (Status::Crash, "Oops".to_owned()),
        );
        let r = results(&[case()], &[Mode::Jit], &[loading], Arch::X86_64);
        assert_eq!(
            r[0].message.as_deref(),
            Some("Oops, while loading its programs")
        );
    }

    #[test]
    fn a_run_is_judged_by_the_full_r0() {
        let out = output("0700000000000000");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert!(out.finished);
        let r = results(&[case()], &[Mode::Jit], &[whole(out.clone())], Arch::X86_64);
        assert_eq!((r[0].status, r[0].jited), (Status::Pass, Some(true)));
        let out = output("0700000001000000");
        let r = results(&[case()], &[Mode::Jit], &[whole(out.clone())], Arch::X86_64);
        assert_eq!(r[0].status, Status::Fail);
        assert_eq!(
            r[0].message.as_deref(),
            Some("r0 = 0x100000007, expected 0x7")
        );
    }

    #[test]
    fn big_endian_guests_store_the_value_big_endian() {
        let out = output("0000000000000007");
        let obs = out.observations.get(&(0, 0));
        assert_eq!(judge(&case(), obs, Endian::Big).0, Status::Pass);
        assert_eq!(judge(&case(), obs, Endian::Little).0, Status::Fail);
    }

    #[test]
    fn a_little_endian_case_is_a_skip_on_a_big_endian_guest() {
        let out = output("0700000000000000");
        let obs = out.observations.get(&(0, 0));
        let mut le_case = case();
        le_case.little_endian_only = true;
        let (status, why) = judge(&le_case, obs, Endian::Big);
        assert_eq!(status, Status::Skip);
        assert!(why.is_some_and(|w| w.contains("# endian: little")));
        assert_eq!(judge(&le_case, obs, Endian::Little).0, Status::Pass);
        // Never reached is still not_run, whatever the byte order.
        assert_eq!(judge(&le_case, None, Endian::Big).0, Status::NotRun);
    }

    /// A refused load of case 0 in mode 0, with this verifier log.
    fn refused(log: &str) -> AgentOutput {
        let log: String = log.bytes().map(|b| format!("{b:02x}")).collect();
        parse_output(
            format!("mode 0 begin 1 0\nload 0 0 0 22\nlog 0 0 {log}\ndone 0 0\n").as_bytes(),
        )
    }

    #[test]
    fn a_refusal_in_the_words_of_a_kernel_without_isa_v4_is_a_skip_and_any_other_is_judged() {
        let v4 = |text: &str, expect: Expectation| Case {
            needs_isa_v4: true,
            expect,
            ..conformance::parse(Path::new("t.data"), text, "t", conformance::Memory::Packet)
                .unwrap()
        };
        let sdiv = v4(
            "-- asm\nmov r0, 1\nsdiv r0, 0\nexit\n-- error\ndiv by zero\n",
            Expectation::LoadError("div by zero".into()),
        );
        let judged = |case: &Case, log: &str| {
            let out = refused(log);
            judge(case, out.observations.get(&(0, 0)), Endian::Little)
        };
        // Linux 6.1: sdiv's offset is a reserved field there.
        let (status, why) = judged(&sdiv, "0: (b7) r0 = 1\nBPF_ALU uses reserved fields\n");
        assert_eq!(status, Status::Skip);
        assert!(
            why.as_deref().is_some_and(|w| w.starts_with("needs ISA v4")
                && w.ends_with("verifier: 0: (b7) r0 = 1 | BPF_ALU uses reserved fields")),
            "{why:?}"
        );
        assert_eq!(judged(&sdiv, "unknown opcode d7\n").0, Status::Skip);
        // Linux 7.2 knows sdiv and refuses the division by zero itself: the case's to judge.
        assert_eq!(
            judged(&sdiv, "4: (37) r0 s/= 0\ndiv by zero\n").0,
            Status::Pass
        );
        // A program of version 4 that a kernel of version 4 refuses for another reason fails,
        // with the verifier's words.
        let load = v4(
            "-- asm\nldxsh r0, [r1+1]\nexit\n-- mem\n00 00 00\n-- result\n0\n",
            Expectation::R0(0),
        );
        let (status, why) = judged(&load, "misaligned packet access off 2+1+0 size 2\n");
        assert_eq!(status, Status::Fail);
        assert_eq!(
            why.as_deref(),
            Some("load failed (errno 22); verifier: misaligned packet access off 2+1+0 size 2")
        );
    }

    /// The text as a `kmsg` line's hex field.
    fn kmsg_hex(text: &str) -> String {
        text.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// `output(value)` with `kmsg` lines of these texts before its `done`.
    fn with_kmsg(value_le: &str, texts: &[&str]) -> AgentOutput {
        let kmsg: String = texts
            .iter()
            .map(|t| format!("kmsg 0 0 {}\n", kmsg_hex(t)))
            .collect();
        parse_output(
            format!(
                "mode 0 begin 1 0\nload 0 0 0 0\njit 0 0 1 120 90 -\nrun 0 0 0 2 100 64\n\
                 out 0 0 -\nmap 0 0 0 0 {value_le}\n{kmsg}done 0 0\n"
            )
            .as_bytes(),
        )
    }

    const WARN: &str = "WARNING: CPU: 0 PID: 71 at arch/mips/mm/uasm.c:64 build_insn+0x3c4/0x4d8";

    #[test]
    fn kmsg_lines_are_kept_per_case_and_mode() {
        let out = with_kmsg(
            "0700000000000000",
            &["Micro-assembler field overflow", WARN],
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let obs = &out.observations[&(0, 0)];
        assert_eq!(obs.kmsg, ["Micro-assembler field overflow", WARN]);
        assert_eq!(obs.splats().len(), 1);
        let out = parse_output(b"kmsg 0 0\nkmsg 0 0 zz\nkmsg 0 0 -\n");
        assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
        assert_eq!(out.observations[&(0, 0)].kmsg, [""]);
    }

    #[test]
    fn a_case_the_kernel_warned_in_fails_with_the_title() {
        let judged = |value: &str, texts: &[&str]| {
            let out = with_kmsg(value, texts);
            judge(&case(), out.observations.get(&(0, 0)), Endian::Little)
        };
        // Right value, but the JIT warned while compiling it.
        assert_eq!(
            judged(
                "0700000000000000",
                &["Micro-assembler field overflow", WARN]
            ),
            (
                Status::Fail,
                Some("kernel splat while it ran: WARNING in build_insn".into())
            )
        );
        // Records of no splat change nothing.
        assert_eq!(
            judged(
                "0700000000000000",
                &["bpf_jit: unaligned access (no splat)"]
            ),
            (Status::Pass, None)
        );
        // A case that failed already says both.
        assert_eq!(
            judged("0800000000000000", &[WARN]),
            (
                Status::Fail,
                Some(
                    "r0 = 0x8, expected 0x7; kernel splat while it ran: WARNING in build_insn"
                        .into()
                )
            )
        );
        // A fatal splat on a later line of a record, seen before the guest died: a crash.
        let oops = format!("{WARN}\\x0aOops[#1]:");
        let (status, why) = judged("0700000000000000", &[&oops]);
        assert_eq!(status, Status::Crash);
        assert_eq!(
            why.as_deref(),
            Some("kernel splat while it ran: WARNING in build_insn; Oops")
        );
    }

    #[test]
    fn malformed_lines_are_errors() {
        let out = parse_output(b"load 0 0 0\nwhat 1\nrun x 0 0 0 0 0\n");
        assert_eq!(out.errors.len(), 3, "{:?}", out.errors);
        assert_eq!(
            out.errors[0],
            "agent output line 1: expected 5 fields: \"load 0 0 0\""
        );
    }

    #[test]
    fn a_crash_is_pinned_on_the_case_in_flight() {
        let out = parse_output(b"mode 0 begin 1 0\nload 0 0 0 0\ndone 0 0\nload 1 0 0 0\n");
        let stop = (
            Status::Crash,
            "Kernel panic - not syncing: Fatal exception".to_owned(),
        );
        let cases = [case(), case(), case()];
        let r = results(&cases, &[Mode::Jit], &[stopped(out, stop)], Arch::X86_64);
        let statuses: Vec<Status> = r.iter().map(|r| r.status).collect();
        assert_eq!(statuses[1..], [Status::Crash, Status::NotRun]);
        assert_eq!(
            r[1].message.as_deref(),
            Some("Kernel panic - not syncing: Fatal exception, while loading its programs")
        );
    }

    #[test]
    fn modes_that_disagree_are_a_divergence() {
        let text = "mode 0 begin 0 0\nload 0 0 0 0\nrun 0 0 0 2 1 64\nmap 0 0 0 0 0700000000000000\njit 0 0 0 0 9 -\ndone 0 0\n\
                    mode 1 begin 1 0\nload 0 1 0 0\nrun 0 1 0 2 1 64\nmap 0 1 0 0 0800000000000000\njit 0 1 1 3 9 c3c3c3\ndone 0 1\n";
        let out = parse_output(text.as_bytes());
        let r = results(
            &[case()],
            &[Mode::Interp, Mode::Jit],
            &[whole(out)],
            Arch::X86_64,
        );
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].status, r[2].mode), (Status::Divergence, Mode::Jit));
        assert_eq!(
            r[2].message.as_deref(),
            Some(
                "modes disagree; interp matched the expectation. interp: pass; jit: fail (r0 = \
                 0x8, expected 0x7). jit JIT image, 3 bytes:\n0:\tc3                   \tret\n1:\tc3                   \tret\n2:\tc3                   \tret"
            )
        );
    }
}
