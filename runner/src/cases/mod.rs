//! Test cases the in-guest agent runs: what to load, what to feed it, what must come out.
//!
//! The three formats in `suites/` (see suites/README.md) each become a list of [`Case`].

pub mod c;
pub mod conformance;
pub mod matrix;
pub mod yaml;

use std::path::{Path, PathBuf};

use crate::bpf::asm::{self, Program};
use crate::bpf::insn::Insn;
pub use crate::model::AgentSuite;
use crate::model::{Mode, Status, TestResult};
use crate::plan::Filter;
pub use c::CCompiler;

/// A map a case creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSpec {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// For map-in-map types: the slot of the map that serves as the inner template.
    pub inner: Option<usize>,
    /// `(key, value)` stored before the run.
    pub init: Vec<(Vec<u8>, Vec<u8>)>,
    /// Prog arrays: `(index, program slot)` stored once the programs are loaded.
    pub prog_entries: Vec<(u32, usize)>,
    /// Map-in-map: `(index, map slot)` stored before the run.
    pub map_entries: Vec<(u32, usize)>,
}

impl MapSpec {
    /// A one-entry array (key 0, 4-byte key) holding `value`.
    pub fn array(name: &str, value: Vec<u8>) -> MapSpec {
        MapSpec {
            name: name.to_owned(),
            map_type: MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: u32::try_from(value.len()).unwrap_or(u32::MAX),
            max_entries: 1,
            flags: 0,
            inner: None,
            init: vec![(vec![0; 4], value)],
            prog_entries: Vec::new(),
            map_entries: Vec::new(),
        }
    }
}

/// A program a case loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgSpec {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub prog_flags: u32,
    /// Encoded instructions; map references carry the map's slot in `imm`.
    pub insns: Vec<Insn>,
}

/// What a case must produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// The program loads and runs, and leaves this full 64-bit value in `r0`, which the harness's
    /// epilogue stores in map slot 0.
    R0(u64),
    /// The load fails and the verifier log contains this text.
    LoadError(String),
    /// The verifier accepts or rejects the program; a rejection's log contains one of `log`
    /// (kernels word the same rejection differently), when any is given.
    Verdict { accept: bool, log: Vec<String> },
    /// An XDP program run returns `action`, and leaves `packet` as the frame when given.
    Xdp {
        action: u32,
        packet: Option<Vec<u8>>,
    },
    /// An XDP program attached to a real device sees `frames` real frames, after which the
    /// maps hold these `(slot, key, value)` entries.
    Device {
        frames: u32,
        maps: Vec<(usize, Vec<u8>, Vec<u8>)>,
    },
}

/// One case, ready to be written into a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub suite: AgentSuite,
    /// Unique within its suite.
    pub name: String,
    /// Its position (from 0) among the cases `load` read: what a number `--filter` counts,
    /// and its results' number, in a run of part of the suite too.
    pub number: u32,
    /// `file:line` of its definition, for messages.
    pub origin: String,
    pub guards: Option<String>,
    pub maps: Vec<MapSpec>,
    /// Slot 0 is the program that runs.
    pub progs: Vec<ProgSpec>,
    /// Input frame or memory for `BPF_PROG_TEST_RUN`.
    pub data: Vec<u8>,
    /// Run slot 0 after loading.
    pub run: bool,
    /// Attach slot 0 to a real device and send `data` through it, instead of a test run.
    pub attach: bool,
    /// Load as an unprivileged user instead of root.
    pub unprivileged: bool,
    /// Fetch slot 0's JIT image, for a failure's report. Off for generated programs in bulk:
    /// thousands of images over the emulated serial port would cost more than running them.
    pub jit_image: bool,
    /// Map slots and keys to read back after the run.
    pub read_maps: Vec<(usize, Vec<u8>)>,
    pub expect: Expectation,
    /// Uses instructions newer than the classic ISA (v4: sdiv, movsx, ...); a kernel that
    /// rejects them gets `skip`, not `fail`.
    pub needs_isa_v4: bool,
    /// Written for a little-endian machine (`# endian: little`): its memory and expected
    /// value are in that byte order, so a big-endian guest gets `skip`, not `fail`.
    pub little_endian_only: bool,
    /// What a kernel line without something the case needs (a range it does not track yet)
    /// says when it rejects the case: `skip`, with the reason, not `fail`.
    pub lacking: Option<Lacking>,
}

/// `text` of `path` read as YAML into `T`; a mistake is named by its file, line and column.
pub fn from_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, CaseError> {
    serde_yaml::from_str(text).map_err(|e| {
        let at = match e.location() {
            Some(l) => format!("{}:{}:{}", path.display(), l.line(), l.column()),
            None => path.display().to_string(),
        };
        // serde_yaml appends "at line L column C", which `at` already says.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m)
            .to_owned();
        CaseError::invalid(at, message)
    })
}

/// A rejection that means the kernel lacks a feature, not that it is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lacking {
    /// Text of the verifier's log that marks the rejection.
    pub log: String,
    /// Why that is a skip, for the report.
    pub reason: String,
}

/// A file of a bpf_conformance corpus (`--conformance-dir`) that cannot be read as a case: it
/// runs in no guest, and stands in the report as an `error` result in every mode, saying where
/// the file went wrong and what was expected there. Our own suites have none: a malformed case
/// of theirs stops the run before any guest boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub suite: AgentSuite,
    /// The file's name without `.data`, as a case of it would be named.
    pub name: String,
    /// Its position among what `load` read, as a case's.
    pub number: u32,
    /// `file:1`, as a case's origin.
    pub origin: String,
    /// `file:line:column: what was expected, found what` (or why the file cannot be read).
    pub error: String,
}

impl Unreadable {
    /// Its result in `mode`: an `error`, never a pass or a failure of the kernel.
    pub fn result(&self, mode: Mode) -> TestResult {
        TestResult {
            message: Some(format!(
                "not run: the harness cannot read this file as a case: {}",
                self.error
            )),
            ..TestResult::new(
                self.suite,
                Some(self.number),
                &self.name,
                mode,
                Status::Error,
            )
        }
    }
}

/// What [`load`] read: the cases to run, and the corpus files that cannot run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub cases: Vec<Case>,
    pub unreadable: Vec<Unreadable>,
}

/// A suite file that cannot be read as cases.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `at` is `file:line:column` (or `file:line`).
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

impl CaseError {
    pub fn invalid(at: impl Into<String>, message: impl Into<String>) -> CaseError {
        CaseError::Invalid {
            at: at.into(),
            message: message.into(),
        }
    }

    /// The whole error in one line, its cause included (`cannot read F: invalid UTF-8`).
    pub fn one_line(&self) -> String {
        match self {
            CaseError::Read { path, source } => {
                format!("{}: cannot read it: {source}", path.display())
            }
            CaseError::Invalid { .. } => self.to_string(),
        }
    }
}

/// `enum bpf_prog_type` values by the names suites use.
pub const PROG_TYPES: [(&str, u32); 9] = [
    ("socket_filter", 1),
    ("kprobe", 2),
    ("sched_cls", 3),
    ("sched_act", 4),
    ("tracepoint", 5),
    ("xdp", 6),
    ("perf_event", 7),
    ("cgroup_skb", 8),
    ("sk_skb", 14),
];
pub const PROG_TYPE_XDP: u32 = 6;

/// `enum bpf_map_type` values by the names suites use.
pub const MAP_TYPES: [(&str, u32); 9] = [
    ("hash", 1),
    ("array", 2),
    ("prog_array", 3),
    ("percpu_array", 6),
    ("lru_hash", 9),
    ("array_of_maps", 12),
    ("hash_of_maps", 13),
    ("devmap", 14),
    ("sockmap", 15),
];
pub const MAP_TYPE_ARRAY: u32 = 2;

/// `BPF_F_STRICT_ALIGNMENT`.
pub const F_STRICT_ALIGNMENT: u32 = 1;

/// Assembles `text` (which starts at `first_line` of `file`) and resolves its map references
/// against `maps`, giving the instructions with map slots in `imm`.
pub fn assemble_in(
    file: &Path,
    first_line: usize,
    text: &str,
    maps: &[MapSpec],
) -> Result<(Program, Vec<Insn>), CaseError> {
    let at = |line: usize, column: usize| {
        format!("{}:{}:{column}", file.display(), first_line + line - 1)
    };
    let program =
        asm::assemble(text).map_err(|e| CaseError::invalid(at(e.line, e.column), e.message))?;
    let insns = resolve_maps(file, first_line, &program, maps)?;
    Ok((program, insns))
}

/// Encodes `program`, putting each referenced map's slot in its `lddw`.
pub fn resolve_maps(
    file: &Path,
    first_line: usize,
    program: &Program,
    maps: &[MapSpec],
) -> Result<Vec<Insn>, CaseError> {
    let mut insns = program
        .encode()
        .map_err(|e| CaseError::invalid(format!("{}:{first_line}", file.display()), e))?;
    for (slot, name) in program.map_refs() {
        let Some(index) = maps.iter().position(|m| m.name == name) else {
            let known: Vec<&str> = maps.iter().map(|m| m.name.as_str()).collect();
            return Err(CaseError::invalid(
                format!("{}:{first_line}", file.display()),
                format!(
                    "the program uses map `{name}`, which the case does not define (maps: {})",
                    known.join(", ")
                ),
            ));
        };
        insns[slot].imm = index as i32;
    }
    Ok(insns)
}

/// Parses hex bytes, ignoring whitespace: `"00 01 ff"` or `"0001ff"`.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in `{}`", text.trim()));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).map_err(|_| "not hex".to_owned())?;
            u8::from_str_radix(pair, 16).map_err(|_| format!("`{pair}` is not a hex byte"))
        })
        .collect()
}

/// Lowercase hex without separators; `-` for nothing (the agent protocol's form).
pub fn to_hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".to_owned();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads every case of `suites` from the `suites/` directory, strictly: a file that cannot be
/// read is an error. Then the bpf_conformance files of `conformance_dir`, when given, each
/// under its own name (the file's, without `.data`); one of those that cannot be read is
/// [`Unreadable`], and the others load all the same. Names must be unique within a suite.
/// Programs written in C are built by `compiler`.
pub fn load(
    suites_dir: &Path,
    suites: &[AgentSuite],
    conformance_dir: Option<&Path>,
    big_endian: bool,
    compiler: &dyn CCompiler,
) -> Result<Loaded, CaseError> {
    let mut entries: Vec<Result<Case, Unreadable>> = Vec::new();
    for &suite in suites {
        let dir = suites_dir.join(suite.name());
        let cases = match suite {
            AgentSuite::Conformance => conformance::load_dir(&dir)?,
            AgentSuite::Verifier => {
                // The hand-written cases, then those generated from the tables of `matrix/`.
                let mut cases = yaml::load_dir(&dir, suite, big_endian, compiler)?;
                cases.extend(matrix::load_dir(&dir.join("matrix"))?);
                cases
            }
            AgentSuite::Xdp => yaml::load_dir(&dir, suite, big_endian, compiler)?,
            // Generated by `cargo xtask fuzz`, which hands them over itself.
            AgentSuite::Fuzz => Vec::new(),
        };
        entries.extend(cases.into_iter().map(Ok));
    }
    if let Some(dir) = conformance_dir {
        entries.extend(conformance::load_corpus(dir)?);
    }
    let mut loaded = Loaded::default();
    let mut seen = std::collections::HashMap::new();
    for (number, entry) in entries.into_iter().enumerate() {
        let number = u32::try_from(number).unwrap_or(u32::MAX);
        let (suite, name, origin) = match &entry {
            Ok(case) => (case.suite, case.name.clone(), case.origin.clone()),
            Err(bad) => (bad.suite, bad.name.clone(), bad.origin.clone()),
        };
        if let Some(first) = seen.insert((suite, name.clone()), origin.clone()) {
            return Err(CaseError::invalid(
                origin,
                format!("case name `{name}` is already used at {first}"),
            ));
        }
        match entry {
            Ok(case) => loaded.cases.push(Case { number, ..case }),
            Err(bad) => loaded.unreadable.push(Unreadable { number, ..bad }),
        }
    }
    Ok(loaded)
}

/// What `filter` selects: an exact name, or positions (from 0) in the order loaded, among
/// the cases and the unreadable corpus files alike. Selecting none is an error naming the
/// filter, so a typo does not pass as an empty run.
pub fn select(loaded: Loaded, filter: &Filter) -> Result<Loaded, CaseError> {
    let Loaded { cases, unreadable } = loaded;
    let count = cases.len() + unreadable.len();
    let selected = Loaded {
        cases: cases
            .into_iter()
            .filter(|case| filter.selects(Some(case.number), Some(&case.name)) == Some(true))
            .collect(),
        unreadable: unreadable
            .into_iter()
            .filter(|bad| filter.selects(Some(bad.number), Some(&bad.name)) == Some(true))
            .collect(),
    };
    if selected.cases.is_empty() && selected.unreadable.is_empty() {
        return Err(CaseError::invalid(
            "--filter",
            format!(
                "`{filter}` selects none of the {count} cases; give a case's exact name \
                 (as the report lists it) or a position from 0 to {}",
                count.saturating_sub(1)
            ),
        ));
    }
    Ok(selected)
}

/// The files of `dir` with extension `ext`, sorted.
fn files_in(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, CaseError> {
    let read = std::fs::read_dir(dir).map_err(|source| CaseError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = read
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<String, CaseError> {
    std::fs::read_to_string(path).map_err(|source| CaseError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(parse_hex("00 01 ff\n7f").unwrap(), [0, 1, 0xff, 0x7f]);
        assert_eq!(to_hex(&[0, 1, 0xff]), "0001ff");
        assert_eq!(to_hex(&[]), "-");
        assert!(parse_hex("0").is_err());
        assert!(parse_hex("zz").is_err());
    }

    #[test]
    fn a_filter_picks_cases_by_name_or_position_and_refuses_to_pick_none() {
        let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
        let all = load(
            &suites,
            &[AgentSuite::Conformance],
            None,
            false,
            &c::TestClang,
        )
        .unwrap()
        .cases;
        let names =
            |cases: &[Case]| -> Vec<String> { cases.iter().map(|c| c.name.clone()).collect() };
        let third = all[2].name.clone();
        let loaded = |cases: &[Case]| Loaded {
            cases: cases.to_vec(),
            unreadable: Vec::new(),
        };
        let by_name = select(loaded(&all), &Filter::Name(third.clone()))
            .unwrap()
            .cases;
        assert_eq!(names(&by_name), std::slice::from_ref(&third));
        let by_position = select(loaded(&all), &Filter::Range(1, 2)).unwrap().cases;
        assert_eq!(names(&by_position), [all[1].name.clone(), third]);
        // Results keep the numbers of the whole suite.
        assert_eq!(by_position[0].number, 1);
        let none = select(loaded(&all), &Filter::Name("no-such-case".into())).unwrap_err();
        assert_eq!(
            none.to_string(),
            format!(
                "--filter: `name:no-such-case` selects none of the {} cases; give a case's \
                 exact name (as the report lists it) or a position from 0 to {}",
                all.len(),
                all.len() - 1
            )
        );
    }

    fn fixtures(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    /// A corpus directory with one broken file among good ones: the good ones are cases
    /// under their own names, the broken one an `error` in every mode naming its position,
    /// and all keep their places in the order of the files.
    #[test]
    fn a_corpus_file_that_cannot_be_read_is_one_error_among_the_cases() {
        let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
        let dir = fixtures("conformance-malformed");
        let loaded = load(&suites, &[], Some(&dir), false, &c::TestClang).unwrap();
        let names: Vec<(&str, u32)> = loaded
            .cases
            .iter()
            .map(|c| (c.name.as_str(), c.number))
            .collect();
        assert_eq!(names, [("add32-wraps", 0), ("lddw-upper-half", 2)]);
        let [bad] = loaded.unreadable.as_slice() else {
            panic!("one unreadable file: {:?}", loaded.unreadable);
        };
        assert_eq!((bad.name.as_str(), bad.number), ("bad-operand", 1));
        let at = format!("{}/bad-operand.data:4:10", dir.display());
        assert_eq!(
            bad.error,
            format!("{at}: expected a register or an immediate, found `[%r1+2]`")
        );
        let result = bad.result(Mode::Jit);
        assert_eq!(
            (result.suite.name(), result.id, result.status),
            ("conformance", Some(1), Status::Error)
        );
        assert_eq!(
            result.message,
            Some(format!(
                "not run: the harness cannot read this file as a case: {}",
                bad.error
            ))
        );
        // Selected by its name or position like a case; alone, it selects no case to run.
        let only = select(loaded.clone(), &Filter::Range(1, 1)).unwrap();
        assert!(only.cases.is_empty());
        assert_eq!(only.unreadable.len(), 1);
        let good = select(loaded, &Filter::Name("lddw-upper-half".into())).unwrap();
        assert_eq!((good.cases.len(), good.unreadable.len()), (1, 0));
    }

    /// suites/xdp's programs written in C build for both byte orders, through the compiler
    /// given.
    #[test]
    fn the_xdp_suite_builds_with_the_compiler_given() {
        let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
        for big_endian in [false, true] {
            let loaded = load(&suites, &[AgentSuite::Xdp], None, big_endian, &c::TestClang)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!loaded.cases.is_empty());
        }
    }

    /// Our own suites stay strict: the same file among them stops the load, naming it.
    #[test]
    fn a_malformed_case_of_ours_stops_the_load() {
        let suites = tempfile::tempdir().unwrap();
        let own = suites.path().join("conformance");
        std::fs::create_dir(&own).unwrap();
        for file in ["add32-wraps.data", "bad-operand.data"] {
            std::fs::copy(fixtures("conformance-malformed").join(file), own.join(file)).unwrap();
        }
        let err = load(
            suites.path(),
            &[AgentSuite::Conformance],
            None,
            false,
            &c::TestClang,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}/bad-operand.data:4:10: expected a register or an immediate, found `[%r1+2]`",
                own.display()
            )
        );
        // A corpus file named as one of ours is refused before anything runs: the report
        // would hold two results of one name.
        std::fs::remove_file(own.join("bad-operand.data")).unwrap();
        let dir = fixtures("conformance-malformed");
        let err = load(
            suites.path(),
            &[AgentSuite::Conformance],
            Some(&dir),
            false,
            &c::TestClang,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}/add32-wraps.data:1: case name `add32-wraps` is already used at {}/add32-wraps.data:1",
                dir.display(),
                own.display()
            )
        );
    }
}
