//! Verifier cases generated at the exact edges of range and alignment tracking (issue 17).
//!
//! Each table in `suites/verifier/matrix/` (see suites/README.md) names its family: `range`
//! (this module), `alu` (range propagation through ALU instructions and spills, [`alu`]) or
//! `align` (alignment under `BPF_F_STRICT_ALIGNMENT`, [`align`]). Every generated case has a
//! stable name, its verdict computed from the instructions' semantics, and, when the kernel
//! lets an unprivileged user load it, an unprivileged twin.
//!
//! A `range` table lists conditional jumps and the constants they compare with. Every (jump, width, operand, side, constant) whose side bounds
//! the compared register becomes a pair of programs: the bounded register, used as an offset
//! into a 256-byte map value, reaches exactly the last (or first) byte when the verifier's
//! bound is exact, which must be accepted, and one byte past it in the other program, which
//! must be rejected. The expected verdicts and values come from the jump's semantics: the
//! register ranges over a window of 256 values around the bound, and the generator runs the
//! jump on each of them.
//!
//! Every accepted program also runs, with the register at the bound, and stores the byte it
//! read in a result map, so that a verifier accepting for the wrong reason (or a JIT taking
//! the wrong side) shows too.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use super::{
    files_in, from_yaml, read_file, resolve_maps, AgentSuite, Case, CaseError, Expectation,
    Lacking, MapSpec, ProgSpec, PROG_TYPE_XDP,
};

/// `BPF_PROG_TYPE_SOCKET_FILTER`: what an unprivileged twin loads as (uid 65534 may load no
/// XDP program).
const PROG_TYPE_SOCKET_FILTER: u32 = 1;
use crate::bpf::asm;

pub mod align;
pub mod alu;

/// The map value the bounded register indexes: as wide as the window, so that whatever part
/// of the window a jump keeps fits in it.
pub const VALUE_SIZE: i128 = 256;

/// The register starts as a byte loaded from a map (0..=255) moved into place: the window.
pub(crate) const WINDOW: i128 = 256;

/// The frame of the XDP test run: its content is never read.
pub(crate) const FRAME: usize = 64;

/// The upper half of the register holding a JMP32 constant: JMP32 compares the low halves
/// only, so a verifier that looked at the whole register would get the bound wrong.
pub(crate) const DIRTY_UPPER: u64 = 0x5a5a_5a5a_0000_0000;

/// What the accepted program returns after storing its byte (XDP_PASS, as the conformance
/// epilogue, so the agent's `R0` judgement applies); the other side returns XDP_DROP.
pub(crate) const RAN: u32 = super::conformance::EPILOGUE_ACTION;

/// The rejection's words, the same on every kernel line we run (6.1, 6.12, 7.x):
/// `__check_mem_access` names the map value before saying which bound failed.
pub(crate) const REJECTED: &str = "invalid access to map value";

/// The rejections of an index whose upper half is unknown: the pointer arithmetic is refused
/// before any access (check_reg_sane_offset), in the first words when the index's signed
/// floor is S64_MIN and in the second when it is merely far below -2^29 (x86_64 and mips64el
/// on 6.1 say either, by the constant subtracted).
const DIRTY_REJECTED: [&str; 2] = [
    "register with unbounded min value is not allowed",
    "pointer be out of bounds",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Jump {
    Jeq,
    Jne,
    Jgt,
    Jge,
    Jlt,
    Jle,
    Jsgt,
    Jsge,
    Jslt,
    Jsle,
    Jset,
}

impl Jump {
    pub const ALL: [Jump; 11] = [
        Jump::Jeq,
        Jump::Jne,
        Jump::Jgt,
        Jump::Jge,
        Jump::Jlt,
        Jump::Jle,
        Jump::Jsgt,
        Jump::Jsge,
        Jump::Jslt,
        Jump::Jsle,
        Jump::Jset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Jump::Jeq => "jeq",
            Jump::Jne => "jne",
            Jump::Jgt => "jgt",
            Jump::Jge => "jge",
            Jump::Jlt => "jlt",
            Jump::Jle => "jle",
            Jump::Jsgt => "jsgt",
            Jump::Jsge => "jsge",
            Jump::Jslt => "jslt",
            Jump::Jsle => "jsle",
            Jump::Jset => "jset",
        }
    }

    fn signed(self) -> bool {
        matches!(self, Jump::Jsgt | Jump::Jsge | Jump::Jslt | Jump::Jsle)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Width {
    Jmp64,
    Jmp32,
}

impl Width {
    pub const ALL: [Width; 2] = [Width::Jmp64, Width::Jmp32];

    pub fn name(self) -> &'static str {
        match self {
            Width::Jmp64 => "jmp64",
            Width::Jmp32 => "jmp32",
        }
    }

    pub(crate) fn bits(self) -> u32 {
        match self {
            Width::Jmp64 => 64,
            Width::Jmp32 => 32,
        }
    }

    pub(crate) fn mask(self) -> u64 {
        match self {
            Width::Jmp64 => u64::MAX,
            Width::Jmp32 => u64::from(u32::MAX),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operand {
    Imm,
    /// A register holding the constant, loaded with `lddw`.
    Reg,
}

impl Operand {
    pub const ALL: [Operand; 2] = [Operand::Imm, Operand::Reg];

    pub fn name(self) -> &'static str {
        match self {
            Operand::Imm => "imm",
            Operand::Reg => "reg",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Taken,
    FallThrough,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Taken, Side::FallThrough];

    pub fn name(self) -> &'static str {
        match self {
            Side::Taken => "taken",
            Side::FallThrough => "fall-through",
        }
    }
}

/// The values a jump compares in: its width, signed or not. Values are `i128` so that every
/// domain's range and the arithmetic around its ends fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain {
    pub bits: u32,
    pub signed: bool,
}

impl Domain {
    pub fn of(jump: Jump, width: Width) -> Domain {
        Domain {
            bits: width.bits(),
            signed: jump.signed(),
        }
    }

    pub fn min(self) -> i128 {
        if self.signed {
            -(1i128 << (self.bits - 1))
        } else {
            0
        }
    }

    pub fn max(self) -> i128 {
        if self.signed {
            (1i128 << (self.bits - 1)) - 1
        } else {
            (1i128 << self.bits) - 1
        }
    }

    /// The low `bits` of `bits_value`, read in this domain.
    pub fn value(self, bits_value: u64) -> i128 {
        let modulus = 1i128 << self.bits;
        let v = i128::from(bits_value) & (modulus - 1);
        if self.signed && v > self.max() {
            v - modulus
        } else {
            v
        }
    }

    /// The bit pattern of `v` (taken modulo 2^bits).
    pub fn bits_of(self, v: i128) -> u64 {
        (v.rem_euclid(1i128 << self.bits)) as u64
    }
}

/// What one side of a jump says about the register it compares, in the jump's domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// At most this.
    Upper(i128),
    /// At least this.
    Lower(i128),
    /// Exactly this (the equal side of JEQ and JNE).
    Exact(i128),
}

/// What `side` of `jump r1, K` (K's bits as the jump sees them) tells about `r1`, when it
/// bounds it: `None` for a side that never runs, one that bounds nothing (`r1 <= U64_MAX`),
/// and the sides that exclude one value or a set of bits (JNE taken, JSET with other
/// constants), which no interval captures.
pub fn bound(jump: Jump, width: Width, k_bits: u64, side: Side) -> Option<Bound> {
    let domain = Domain::of(jump, width);
    let k_bits = k_bits & width.mask();
    let k = domain.value(k_bits);
    let taken = side == Side::Taken;
    let bound = match (jump, taken) {
        (Jump::Jeq, true) | (Jump::Jne, false) => Bound::Exact(k),
        (Jump::Jeq, false) | (Jump::Jne, true) => return None,
        (Jump::Jle | Jump::Jsle, true) | (Jump::Jgt | Jump::Jsgt, false) => Bound::Upper(k),
        (Jump::Jlt | Jump::Jslt, true) | (Jump::Jge | Jump::Jsge, false) => Bound::Upper(k - 1),
        (Jump::Jge | Jump::Jsge, true) | (Jump::Jlt | Jump::Jslt, false) => Bound::Lower(k),
        (Jump::Jgt | Jump::Jsgt, true) | (Jump::Jle | Jump::Jsle, false) => Bound::Lower(k + 1),
        // A set single bit puts a floor under the value; clear high bits (K = ~(2^n - 1)) a
        // ceiling. Other constants leave holes the verifier's intervals cannot describe.
        (Jump::Jset, true) if k_bits.is_power_of_two() => Bound::Lower(k),
        (Jump::Jset, false) if k_bits != 0 => {
            let low = !k_bits & width.mask();
            // On this side the verifier forgets the register's ranges and keeps its known
            // bits only (reg_set_min_max: `__mark_reg_unbounded(false_reg)` before the tnum
            // is narrowed, Linux 6.1), so the floor it knows is 0, not the window's: only a
            // ceiling whose window starts at 0 is a bound it keeps exactly.
            if (u128::from(low) + 1).is_power_of_two() && i128::from(low) < WINDOW / 2 {
                Bound::Upper(i128::from(low))
            } else {
                return None;
            }
        }
        (Jump::Jset, _) => return None,
    };
    let (min, max) = (domain.min(), domain.max());
    let real = match bound {
        // Below the domain the side never runs; at its top it bounds nothing.
        Bound::Upper(b) => min <= b && b < max,
        Bound::Lower(b) => min < b && b <= max,
        Bound::Exact(_) => true,
    };
    real.then_some(bound)
}

/// Whether `jump` is taken for `x` against `k`: BPF's semantics, on the low 32 bits for JMP32.
pub fn taken(jump: Jump, width: Width, x: u64, k: u64) -> bool {
    let (x, k) = (x & width.mask(), k & width.mask());
    let signed = Domain {
        bits: width.bits(),
        signed: true,
    };
    let (sx, sk) = (signed.value(x), signed.value(k));
    match jump {
        Jump::Jeq => x == k,
        Jump::Jne => x != k,
        Jump::Jgt => x > k,
        Jump::Jge => x >= k,
        Jump::Jlt => x < k,
        Jump::Jle => x <= k,
        Jump::Jsgt => sx > sk,
        Jump::Jsge => sx >= sk,
        Jump::Jslt => sx < sk,
        Jump::Jsle => sx <= sk,
        Jump::Jset => x & k != 0,
    }
}

/// The first value of the 256-value window the register ranges over before the jump: around
/// the bound, reaching past it on the side the jump cuts, inside the domain.
pub fn window_start(bound: Bound, domain: Domain) -> i128 {
    let want = match bound {
        Bound::Upper(b) | Bound::Exact(b) => b - WINDOW / 2,
        Bound::Lower(b) => b - (WINDOW / 2 - 1),
    };
    want.clamp(domain.min(), domain.max() - (WINDOW - 1))
}

/// A constant of the table: its spelling (for case names) and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constant {
    pub name: String,
    pub value: i128,
}

/// The named constants a table may use, besides numbers.
const NAMED: [(&str, i128); 6] = [
    ("s32_min", i32::MIN as i128),
    ("s32_max", i32::MAX as i128),
    ("u32_max", u32::MAX as i128),
    ("s64_min", i64::MIN as i128),
    ("s64_max", i64::MAX as i128),
    ("u64_max", u64::MAX as i128),
];

impl Constant {
    /// Its bits in `width`, when it fits there as a signed or an unsigned number.
    pub(crate) fn bits(&self, width: Width) -> Option<u64> {
        let bits = width.bits();
        let fits = -(1i128 << (bits - 1)) <= self.value && self.value < (1i128 << bits);
        fits.then(|| {
            Domain {
                bits,
                signed: false,
            }
            .bits_of(self.value)
        })
    }
}

/// One generated shape: a jump, its operand and side, a constant, and what follows.
#[derive(Clone, Debug)]
struct Shape<'a> {
    jump: Jump,
    width: Width,
    operand: Operand,
    side: Side,
    constant: &'a Constant,
    /// The compared constant as the jump sees it (its low 32 bits for JMP32).
    k_bits: u64,
    domain: Domain,
    bound: Bound,
    start: i128,
    /// The least and greatest values of the window that reach the access: what an exact
    /// verifier knows of the register there.
    lo: i128,
    hi: i128,
}

/// One program of a pair: the register minus `minus` indexes the value, and the load sits
/// `off` bytes from there.
struct Variant {
    suffix: &'static str,
    minus: i128,
    off: i16,
    accept: bool,
    /// The register's value for the run (the bound).
    at: i128,
    /// JMP32 only: the register's upper half is unknown to the verifier, and the index is
    /// 64-bit arithmetic, so the 32-bit bound bounds nothing of it.
    dirty: bool,
}

/// How the table says which of a dimension's values a row takes; all of them when absent.
pub(crate) fn pick<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    wanted: &Option<Vec<String>>,
    what: &str,
    at: &str,
) -> Result<Vec<T>, CaseError> {
    let Some(wanted) = wanted else {
        return Ok(all.to_vec());
    };
    let mut out = Vec::new();
    for w in wanted {
        let Some(v) = all.iter().copied().find(|&v| name(v) == w) else {
            let known: Vec<&str> = all.iter().map(|&v| name(v)).collect();
            return Err(CaseError::invalid(
                at,
                format!("unknown {what} `{w}`: use one of {}", known.join(", ")),
            ));
        };
        out.push(v);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    jump: String,
    widths: Option<Vec<String>>,
    operands: Option<Vec<String>>,
    sides: Option<Vec<String>>,
    constants: Vec<serde_yaml::Value>,
}

/// Loads every table of `dir` (none when it does not exist: a suites directory without a
/// matrix has no generated cases).
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, CaseError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut cases = Vec::new();
    for path in files_in(dir, "yaml")? {
        let text = read_file(&path)?;
        cases.extend(parse(&path, &text)?);
    }
    Ok(cases)
}

/// The line (from 1) of each row of a table: the lines that start a `- KEY:` entry.
pub(crate) fn row_lines(text: &str, key: &str) -> Vec<usize> {
    let (plain, flow) = (format!("- {key}:"), format!("- {{{key}:"));
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            l.starts_with(&plain) || l.starts_with(&flow)
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// A table of any family: its rows, of the family's own kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Table<R> {
    #[allow(dead_code)] // read by `parse`, through `Head`
    family: String,
    pub rows: Vec<R>,
}

/// The first key of every table: which family its rows belong to.
#[derive(Deserialize)]
struct Head {
    family: String,
}

/// The families a table may name.
const FAMILIES: [&str; 3] = ["range", "alu", "align"];

pub(crate) fn constant(value: &serde_yaml::Value, at: &str) -> Result<Constant, CaseError> {
    let bad = || {
        let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
        CaseError::invalid(
            at,
            format!(
                "constant `{}` is neither a number nor one of {}",
                serde_yaml::to_string(value).unwrap_or_default().trim_end(),
                names.join(", ")
            ),
        )
    };
    match value {
        serde_yaml::Value::Number(n) => {
            let v = match (n.as_i64(), n.as_u64()) {
                (Some(v), _) => i128::from(v),
                (None, Some(v)) => i128::from(v),
                _ => return Err(bad()),
            };
            Ok(Constant {
                name: v.to_string(),
                value: v,
            })
        }
        serde_yaml::Value::String(s) => {
            let value = NAMED
                .iter()
                .find(|(n, _)| n == s)
                .map(|(_, v)| *v)
                .or_else(|| asm::parse_number(s))
                .ok_or_else(bad)?;
            Ok(Constant {
                name: s.clone(),
                value,
            })
        }
        _ => Err(bad()),
    }
}

/// Parses one table and generates its cases.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Case>, CaseError> {
    let head: Head = from_yaml(path, text)?;
    let cases = match head.family.as_str() {
        "range" => parse_range(path, text)?,
        "alu" => alu::parse(path, text)?,
        "align" => align::parse(path, text)?,
        other => {
            let line = text
                .lines()
                .position(|l| l.starts_with("family:"))
                .map_or(1, |i| i + 1);
            return Err(CaseError::invalid(
                format!("{}:{line}", path.display()),
                format!(
                    "unknown family `{other}`: a table is one of {}",
                    FAMILIES.join(", ")
                ),
            ));
        }
    };
    Ok(cases)
}

/// A `range` table's cases.
fn parse_range(path: &Path, text: &str) -> Result<Vec<Case>, CaseError> {
    let table: Table<Row> = from_yaml(path, text)?;
    let lines = row_lines(text, "jump");
    let mut cases = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(1);
        let at = format!("{}:{line}", path.display());
        let jumps = pick(
            &Jump::ALL,
            Jump::name,
            &Some(vec![row.jump.clone()]),
            "jump",
            &at,
        )?;
        let widths = pick(&Width::ALL, Width::name, &row.widths, "width", &at)?;
        let operands = pick(&Operand::ALL, Operand::name, &row.operands, "operand", &at)?;
        let sides = pick(&Side::ALL, Side::name, &row.sides, "side", &at)?;
        let constants: Vec<Constant> = row
            .constants
            .iter()
            .map(|c| constant(c, &at))
            .collect::<Result<_, _>>()?;
        let before = cases.len();
        for &jump in &jumps {
            for &width in &widths {
                for &operand in &operands {
                    for &side in &sides {
                        for c in &constants {
                            if let Some(shape) = shape(jump, width, operand, side, c, &at)? {
                                cases.extend(generate(&shape, path, &at)?);
                            }
                        }
                    }
                }
            }
        }
        if cases.len() == before {
            return Err(CaseError::invalid(
                at,
                format!(
                    "this row of `{}` gives no case: none of its constants bounds the register \
                     on a side listed, in a width and operand it fits; change the constants \
                     (see suites/README.md) or drop the row",
                    row.jump
                ),
            ));
        }
    }
    Ok(cases)
}

/// The shape of one combination, or `None` when it has no case: the constant does not fit
/// the width or the operand, or the side bounds nothing.
fn shape<'a>(
    jump: Jump,
    width: Width,
    operand: Operand,
    side: Side,
    constant: &'a Constant,
    at: &str,
) -> Result<Option<Shape<'a>>, CaseError> {
    let Some(bits) = constant.bits(width) else {
        return Ok(None);
    };
    // A 64-bit jump's immediate is a sign-extended 32-bit one.
    if operand == Operand::Imm
        && width == Width::Jmp64
        && bits != (bits as u32 as i32 as i64 as u64)
    {
        return Ok(None);
    }
    let Some(bound) = bound(jump, width, bits, side) else {
        return Ok(None);
    };
    let domain = Domain::of(jump, width);
    let start = window_start(bound, domain);
    // The semantics decide what reaches the access: run the jump on the whole window.
    let reach: Vec<i128> = (start..start + WINDOW)
        .filter(|&x| taken(jump, width, domain.bits_of(x), bits) == (side == Side::Taken))
        .collect();
    let wrong = |what: &str| internal(at, jump, width, side, constant, what);
    let (Some(&lo), Some(&hi)) = (reach.iter().min(), reach.iter().max()) else {
        return Err(wrong("no value reaches"));
    };
    // The jump's own edge must be where the window was cut; anything else is a mistake of
    // this generator, not of a kernel.
    let agrees = match bound {
        Bound::Upper(b) => hi == b && hi < start + WINDOW - 1,
        Bound::Lower(b) => lo == b && lo > start,
        Bound::Exact(b) => lo == b && hi == b,
    };
    if !agrees {
        return Err(wrong(&format!(
            "bound {bound:?} but {lo}..={hi} of the window from {start} reach"
        )));
    }
    Ok(Some(Shape {
        jump,
        width,
        operand,
        side,
        constant,
        k_bits: bits,
        domain,
        bound,
        start,
        lo,
        hi,
    }))
}

fn internal(at: &str, jump: Jump, width: Width, side: Side, c: &Constant, what: &str) -> CaseError {
    CaseError::invalid(
        at,
        format!(
            "the generator is wrong about {} {} {} {}: {what}; this is a bug of the harness, \
             not of the table",
            jump.name(),
            width.name(),
            side.name(),
            c.name
        ),
    )
}

/// The byte at `index` of the map value: all different, so the byte read names its offset.
pub fn pattern(index: i128) -> u8 {
    (0x5b + 7 * index).rem_euclid(256) as u8
}

/// The pair (three programs for an exact bound) of one shape.
fn variants(shape: &Shape<'_>) -> Vec<Variant> {
    // The greatest value reaching the access indexes the last byte, the least the first.
    let upper = shape.hi - (VALUE_SIZE - 1);
    let lower = shape.lo;
    let top = |accept: bool| Variant {
        suffix: if accept { "bound" } else { "bound+1" },
        minus: upper,
        off: i16::from(!accept),
        accept,
        at: shape.hi,
        dirty: false,
    };
    let floor = |accept: bool| Variant {
        suffix: if accept { "bound" } else { "bound-1" },
        minus: lower,
        off: -i16::from(!accept),
        accept,
        at: shape.lo,
        dirty: false,
    };
    let (exact, mut out) = match shape.bound {
        Bound::Upper(_) => (top(true), vec![top(false)]),
        Bound::Lower(_) => (floor(true), vec![floor(false)]),
        Bound::Exact(_) => (top(true), vec![top(false), floor(false)]),
    };
    // The accepted program again, on a register whose upper half the verifier cannot know:
    // a JMP32 bound says nothing of the 64-bit index then.
    if shape.width == Width::Jmp32 {
        out.push(Variant {
            suffix: "upper-dirty",
            accept: false,
            dirty: true,
            ..exact
        });
    }
    out.insert(0, exact);
    out
}

fn generate(shape: &Shape<'_>, path: &Path, at: &str) -> Result<Vec<Case>, CaseError> {
    let mut cases = Vec::new();
    for v in variants(shape) {
        let name = format!(
            "range/{}/{}/{}/{}/{}/{}",
            shape.jump.name(),
            shape.width.name(),
            shape.operand.name(),
            shape.side.name(),
            shape.constant.name,
            v.suffix
        );
        let raw = v.at - shape.start;
        let index = v.at - v.minus + i128::from(v.off);
        let log: Vec<String> = if v.dirty {
            DIRTY_REJECTED.iter().map(|&t| t.to_owned()).collect()
        } else {
            vec![REJECTED.to_owned()]
        };
        let generated = Generated {
            name,
            guards: guards(shape, &v, index),
            text: program(shape, &v),
            maps: maps(raw, VALUE_SIZE),
            data: vec![0; FRAME],
            prog_flags: 0,
            verdict: if v.accept {
                Verdict::Reads(u64::from(pattern(index)))
            } else {
                Verdict::Rejected(log.clone())
            },
            // The unprivileged verifier's own path is the pointer arithmetic's sanitising,
            // the same whichever operand bounded the index: the immediate's twins suffice.
            unprivileged: (shape.operand == Operand::Imm).then_some(if v.accept {
                Verdict::Accepted
            } else {
                Verdict::Rejected(log)
            }),
            lacking: None,
        };
        cases.extend(generated.cases(path, at)?);
    }
    Ok(cases)
}

/// What a generated program must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Load, run, and store this value in the result map (then return [`RAN`]).
    Reads(u64),
    /// Load (an unprivileged twin is never run).
    Accepted,
    /// Be rejected, the log holding one of these.
    Rejected(Vec<String>),
}

/// One generated program, before assembly: what every family gives the builder.
pub(crate) struct Generated {
    pub name: String,
    pub guards: String,
    /// Assembly; map references by name (`map:values`).
    pub text: String,
    /// Slot 0 is the result map.
    pub maps: Vec<MapSpec>,
    /// The XDP test run's frame.
    pub data: Vec<u8>,
    pub prog_flags: u32,
    pub verdict: Verdict,
    /// What the same program does loaded by an unprivileged user, as a socket filter; `None`
    /// when it has no twin.
    pub unprivileged: Option<Verdict>,
    /// The privileged case's skip on a kernel line without the tracking it needs.
    pub lacking: Option<Lacking>,
}

impl Generated {
    /// The case, and its unprivileged twin (named `NAME (unprivileged)`, as the hand-written
    /// suites name theirs) when it has one.
    pub(crate) fn cases(self, path: &Path, at: &str) -> Result<Vec<Case>, CaseError> {
        let line: usize = at
            .rsplit_once(':')
            .and_then(|(_, l)| l.parse().ok())
            .unwrap_or(1);
        let program = asm::assemble(&self.text).map_err(|e| {
            CaseError::invalid(
                at,
                format!(
                    "{}: the generated program does not assemble at its line {}: {} (a bug \
                     of the harness)",
                    self.name, e.line, e.message
                ),
            )
        })?;
        let insns = resolve_maps(path, line, &program, &self.maps)?;
        let case = |prog_type: u32, verdict: &Verdict, unprivileged: bool, name: String| {
            let (expect, run, read_maps) = match verdict {
                Verdict::Reads(value) => (Expectation::R0(*value), true, vec![(0, vec![0; 4])]),
                Verdict::Accepted => (
                    Expectation::Verdict {
                        accept: true,
                        log: Vec::new(),
                    },
                    false,
                    Vec::new(),
                ),
                Verdict::Rejected(log) => (
                    Expectation::Verdict {
                        accept: false,
                        log: log.clone(),
                    },
                    false,
                    Vec::new(),
                ),
            };
            Case {
                suite: AgentSuite::Verifier,
                name,
                number: 0, // `load` numbers the cases it read
                origin: at.to_owned(),
                guards: Some(self.guards.clone()),
                maps: self.maps.clone(),
                progs: vec![ProgSpec {
                    prog_type,
                    expected_attach_type: 0,
                    prog_flags: self.prog_flags,
                    insns: insns.clone(),
                }],
                data: self.data.clone(),
                run,
                attach: false,
                unprivileged,
                jit_image: true,
                read_maps,
                expect,
                needs_isa_v4: false,
                little_endian_only: false,
                lacking: self.lacking.clone(),
            }
        };
        let mut out = vec![case(PROG_TYPE_XDP, &self.verdict, false, self.name.clone())];
        if let Some(verdict) = &self.unprivileged {
            out.push(case(
                PROG_TYPE_SOCKET_FILTER,
                verdict,
                true,
                format!("{} (unprivileged)", self.name),
            ));
        }
        Ok(out)
    }
}

fn guards(shape: &Shape<'_>, v: &Variant, index: i128) -> String {
    let what = match shape.bound {
        Bound::Upper(b) => format!("at most {b}"),
        Bound::Lower(b) => format!("at least {b}"),
        Bound::Exact(b) => format!("exactly {b}"),
    };
    let domain = if shape.domain.signed { "s" } else { "u" };
    let head = format!(
        "the {} side of {}{} against {} {} ({}{}) keeps r1 {what}",
        shape.side.name(),
        shape.jump.name(),
        if shape.width == Width::Jmp32 {
            "32"
        } else {
            ""
        },
        match shape.operand {
            Operand::Imm => "the immediate",
            Operand::Reg => "a register holding",
        },
        shape.constant.name,
        domain,
        shape.domain.bits,
    );
    if v.dirty {
        format!("{head} in its low half only: with the upper half unknown, a load at the bound through a 64-bit index is rejected")
    } else if v.accept {
        format!("{head}: a 1-byte load at the bound (offset {index} of a 256-byte map value) is accepted and reads that byte")
    } else {
        format!("{head}: the same load one byte past the bound (offset {index} of a 256-byte map value) is rejected")
    }
}

/// The case's maps: slot 0 the result (read back as the agent reads a conformance result),
/// then the input byte that sets the register (and its upper half, for a dirty one), then the
/// value it indexes, `value_size` bytes of [`pattern`].
pub(crate) fn maps(raw: i128, value_size: i128) -> Vec<MapSpec> {
    let mut input = vec![0; 8];
    input[0] = raw as u8;
    vec![
        MapSpec::array("result", vec![0; 8]),
        MapSpec::array("input", input),
        MapSpec::array("values", (0..value_size).map(pattern).collect()),
    ]
}

/// The start of every generated program: the three maps looked up, each pointer in a
/// callee-saved register: r6 input, r7 values, r8 result (`out` returns 1 when one fails).
pub(crate) fn lookups() -> String {
    let mut t = String::new();
    for (map, reg) in [("input", 6), ("values", 7), ("result", 8)] {
        let _ = write!(
            t,
            "stw [%r10-4], 0\nlddw %r1, map:{map}\nmov %r2, %r10\nadd %r2, -4\n\
             call map_lookup_elem\njeq %r0, 0, out\nmov %r{reg}, %r0\n"
        );
    }
    t
}

/// The program text: r1 = input byte, moved onto the window; the jump; r1 minus the index's
/// origin; a load from the map value at r1.
fn program(shape: &Shape<'_>, v: &Variant) -> String {
    let mut t = lookups();
    t.push_str("ldxb %r1, [%r6+0]\n");
    let suffix = match shape.width {
        Width::Jmp64 => "",
        Width::Jmp32 => "32",
    };
    // JMP32 works on the low half, so the window and the index are 32-bit arithmetic too;
    // the index, zero-extended, is the same 64-bit value.
    let start = shape.domain.bits_of(shape.start);
    let minus = shape.domain.bits_of(v.minus);
    match shape.width {
        Width::Jmp64 => {
            let _ = writeln!(t, "lddw %r3, {start:#x}\nadd %r1, %r3");
        }
        Width::Jmp32 => {
            let _ = writeln!(t, "add32 %r1, {}", start as u32 as i32);
        }
    }
    if v.dirty {
        // The input's low word as r1's upper half: unknown to the verifier.
        t.push_str("ldxdw %r4, [%r6+0]\nlsh %r4, 32\nor %r1, %r4\n");
    }
    let operand = match (shape.operand, shape.width) {
        (Operand::Imm, Width::Jmp64) => (shape.k_bits as i64).to_string(),
        (Operand::Imm, Width::Jmp32) => (shape.k_bits as u32 as i32).to_string(),
        (Operand::Reg, Width::Jmp64) => {
            let _ = writeln!(t, "lddw %r2, {:#x}", shape.k_bits);
            "%r2".to_owned()
        }
        (Operand::Reg, Width::Jmp32) => {
            let _ = writeln!(t, "lddw %r2, {:#x}", DIRTY_UPPER | shape.k_bits);
            "%r2".to_owned()
        }
    };
    let jump = format!("{}{suffix} %r1, {operand}", shape.jump.name());
    match shape.side {
        Side::Taken => {
            let _ = writeln!(t, "{jump}, bounded\nja out\nbounded:");
        }
        Side::FallThrough => {
            let _ = writeln!(t, "{jump}, out");
        }
    }
    if v.dirty {
        // What makes the bound's zero-extended value the same index in 64-bit arithmetic: were
        // the upper half clean, this program would be the accepted one.
        let at = i128::from(shape.domain.bits_of(v.at));
        let minus = at - (v.at - v.minus);
        let minus = Domain {
            bits: 64,
            signed: false,
        }
        .bits_of(minus);
        let _ = writeln!(t, "lddw %r3, {minus:#x}\nsub %r1, %r3");
    } else if shape.width == Width::Jmp64 {
        let _ = writeln!(t, "lddw %r3, {minus:#x}\nsub %r1, %r3");
    } else {
        let _ = writeln!(t, "sub32 %r1, {}", minus as u32 as i32);
    }
    let _ = write!(
        t,
        "add %r7, %r1\nldxb %r1, [%r7{:+}]\nstxdw [%r8+0], %r1\nmov %r0, {RAN}\nexit\n\
         out:\nmov %r0, 1\nexit\n",
        v.off
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Every table's cases.
    fn all() -> Vec<Case> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/verifier/matrix");
        load_dir(&dir).unwrap()
    }

    /// The privileged cases of the `range` table.
    fn table() -> (std::path::PathBuf, Vec<Case>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/verifier/matrix");
        let cases = all()
            .into_iter()
            .filter(|c| c.name.starts_with("range/") && !c.unprivileged)
            .collect();
        (dir, cases)
    }

    #[test]
    fn names_are_stable_unique_and_well_formed() {
        let first = all();
        let again = all();
        let names: Vec<&str> = first.iter().map(|c| c.name.as_str()).collect();
        let again: Vec<&str> = again.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, again);
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "a name repeats");
        // An unprivileged twin is its case's name and ` (unprivileged)`, of a socket filter.
        for c in &first {
            let base = c.name.strip_suffix(" (unprivileged)");
            assert_eq!(base.is_some(), c.unprivileged, "{}", c.name);
            if let Some(base) = base {
                assert!(unique.contains(base), "{} has no privileged case", c.name);
                assert_eq!(c.progs[0].prog_type, PROG_TYPE_SOCKET_FILTER);
                assert!(!c.run);
            }
        }
        let (_, range) = table();
        for name in range.iter().map(|c| c.name.as_str()) {
            let parts: Vec<&str> = name.split('/').collect();
            assert_eq!(parts.len(), 7, "{name}");
            assert_eq!(parts[0], "range");
            assert!(Jump::ALL.iter().any(|j| j.name() == parts[1]), "{name}");
            assert!(["jmp64", "jmp32"].contains(&parts[2]), "{name}");
            assert!(["imm", "reg"].contains(&parts[3]), "{name}");
            assert!(["taken", "fall-through"].contains(&parts[4]), "{name}");
            assert!(
                ["bound", "bound+1", "bound-1", "upper-dirty"].contains(&parts[6]),
                "{name}"
            );
        }
    }

    /// docs/suites.md gives each family's size: a change of a table changes it there too.
    #[test]
    fn the_tables_give_the_cases_the_docs_say() {
        let cases = all();
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/suites.md");
        let docs = std::fs::read_to_string(docs).unwrap();
        for family in FAMILIES {
            let of = |unprivileged: bool| {
                cases
                    .iter()
                    .filter(|c| c.unprivileged == unprivileged)
                    .filter(|c| c.name.starts_with(&format!("{family}/")))
                    .count()
            };
            let said = format!("| `{family}` | {} | {} |", of(false), of(true));
            assert!(docs.contains(&said), "docs/suites.md should say `{said}`");
        }
        let said = format!("{} cases in all", cases.len());
        assert!(docs.contains(&said), "docs/suites.md should say `{said}`");
    }

    /// Every jump appears in both widths, with both operands, on each side that can bound:
    /// the equal side for JEQ and JNE, both sides for the others.
    #[test]
    fn every_jump_width_operand_and_side_is_present() {
        let (_, cases) = table();
        let mut seen: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
        let mut pairs: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for c in &cases {
            let p: Vec<&str> = c.name.split('/').collect();
            seen.entry((p[1].into(), p[4].into()))
                .or_default()
                .insert((p[2].into(), p[3].into()));
            let key = p[..6].join("/");
            let entry = pairs.entry(key).or_default();
            match &c.expect {
                Expectation::R0(_) => entry.0 += 1,
                Expectation::Verdict { accept: false, .. } => entry.1 += 1,
                other => panic!("{}: {other:?}", c.name),
            }
        }
        let all: BTreeSet<(String, String)> = ["jmp64", "jmp32"]
            .iter()
            .flat_map(|w| ["imm", "reg"].map(|o| (w.to_string(), o.to_string())))
            .collect();
        for jump in Jump::ALL {
            for side in Side::ALL {
                let bounds = !matches!(
                    (jump, side),
                    (Jump::Jeq, Side::FallThrough) | (Jump::Jne, Side::Taken)
                );
                let got = seen.get(&(jump.name().into(), side.name().into()));
                if bounds {
                    assert_eq!(got, Some(&all), "{} {}", jump.name(), side.name());
                } else {
                    assert_eq!(got, None, "{} {}", jump.name(), side.name());
                }
            }
        }
        // One accepted program per shape, and one or two rejected beside it.
        for (shape, (accepted, rejected)) in pairs {
            assert_eq!(accepted, 1, "{shape}");
            let dirty = usize::from(shape.contains("/jmp32/"));
            assert!((1 + dirty..=2 + dirty).contains(&rejected), "{shape}");
        }
    }

    #[test]
    fn bounds_at_the_signed_and_unsigned_edges() {
        use Bound::*;
        use Jump::*;
        use Side::*;
        use Width::*;
        let s64_min = i64::MIN as u64;
        let b = bound;
        // Signed 64: INT_MIN, -1, 0.
        assert_eq!(b(Jsle, Jmp64, s64_min, Taken), Some(Upper(i64::MIN.into())));
        assert_eq!(
            b(Jsle, Jmp64, s64_min, FallThrough),
            Some(Lower(i128::from(i64::MIN) + 1))
        );
        assert_eq!(b(Jsge, Jmp64, s64_min, Taken), None); // always true
        assert_eq!(b(Jslt, Jmp64, s64_min, Taken), None); // never true
        assert_eq!(b(Jslt, Jmp64, s64_min, FallThrough), None);
        assert_eq!(b(Jsgt, Jmp64, u64::MAX, Taken), Some(Lower(0)));
        assert_eq!(b(Jslt, Jmp64, 0, Taken), Some(Upper(-1)));
        assert_eq!(b(Jsle, Jmp64, u64::MAX, Taken), Some(Upper(-1)));
        assert_eq!(b(Jsgt, Jmp64, i64::MAX as u64, Taken), None);
        // Unsigned 64: 0, U32_MAX, U64_MAX.
        assert_eq!(b(Jle, Jmp64, 0, Taken), Some(Upper(0)));
        assert_eq!(b(Jlt, Jmp64, 0, Taken), None);
        assert_eq!(b(Jge, Jmp64, 0, Taken), None);
        assert_eq!(b(Jgt, Jmp64, 0, Taken), Some(Lower(1)));
        assert_eq!(
            b(Jle, Jmp64, u32::MAX.into(), Taken),
            Some(Upper(u32::MAX.into()))
        );
        assert_eq!(b(Jle, Jmp64, u64::MAX, Taken), None);
        assert_eq!(
            b(Jlt, Jmp64, u64::MAX, Taken),
            Some(Upper(i128::from(u64::MAX) - 1))
        );
        assert_eq!(b(Jge, Jmp64, u64::MAX, Taken), Some(Lower(u64::MAX.into())));
        assert_eq!(b(Jgt, Jmp64, u64::MAX, Taken), None);
        // JMP32 reads the low half only: U32_MAX is -1 to a signed compare, the top to an
        // unsigned one, and the upper half of the constant is ignored.
        assert_eq!(b(Jle, Jmp32, u32::MAX.into(), Taken), None);
        assert_eq!(
            b(Jlt, Jmp32, u32::MAX.into(), Taken),
            Some(Upper(i128::from(u32::MAX) - 1))
        );
        assert_eq!(b(Jsle, Jmp32, u32::MAX.into(), Taken), Some(Upper(-1)));
        assert_eq!(b(Jsle, Jmp32, DIRTY_UPPER | 5, Taken), Some(Upper(5)));
        assert_eq!(
            b(Jsgt, Jmp32, 0x8000_0000, FallThrough),
            Some(Upper(i32::MIN.into()))
        );
        assert_eq!(b(Jsge, Jmp32, 0x8000_0000, Taken), None);
        assert_eq!(b(Jslt, Jmp32, 0x8000_0000, FallThrough), None);
        assert_eq!(b(Jgt, Jmp32, u64::MAX, Taken), None);
        // JEQ and JNE: the equal side only.
        assert_eq!(b(Jeq, Jmp64, 7, Taken), Some(Exact(7)));
        assert_eq!(b(Jeq, Jmp64, 7, FallThrough), None);
        assert_eq!(
            b(Jne, Jmp32, u64::MAX, FallThrough),
            Some(Exact(u32::MAX.into()))
        );
        assert_eq!(b(Jne, Jmp32, u64::MAX, Taken), None);
        // JSET: a single bit is a floor, cleared high bits a ceiling.
        assert_eq!(b(Jset, Jmp64, 64, Taken), Some(Lower(64)));
        assert_eq!(b(Jset, Jmp64, 64, FallThrough), None);
        assert_eq!(b(Jset, Jmp64, -64i64 as u64, FallThrough), Some(Upper(63)));
        assert_eq!(b(Jset, Jmp32, -64i64 as u64, FallThrough), Some(Upper(63)));
        assert_eq!(b(Jset, Jmp64, u64::MAX, FallThrough), Some(Upper(0)));
        assert_eq!(b(Jset, Jmp64, 3, Taken), None);
        assert_eq!(b(Jset, Jmp64, 0, FallThrough), None);
        // Clearing bit 31 and up leaves 0..=2^31-1, which no 256-byte value holds.
        assert_eq!(b(Jset, Jmp32, 0x8000_0000, FallThrough), None);
        assert_eq!(
            b(Jset, Jmp64, -128i64 as u64, FallThrough),
            Some(Upper(127))
        );
        assert_eq!(b(Jset, Jmp64, -256i64 as u64, FallThrough), None);
        assert_eq!(b(Jset, Jmp64, s64_min, Taken), Some(Lower(1i128 << 63)));
    }

    #[test]
    fn the_semantics_wrap_and_sign_in_the_jumps_width() {
        use Jump::*;
        use Width::*;
        // -1 < 0 signed, > 0 unsigned; JMP32 ignores the upper half of both.
        assert!(taken(Jslt, Jmp64, u64::MAX, 0));
        assert!(!taken(Jlt, Jmp64, u64::MAX, 0));
        assert!(taken(Jeq, Jmp32, 0xffff_ffff_0000_0005, 5));
        assert!(taken(Jslt, Jmp32, 0x0000_0000_8000_0000, 0));
        assert!(!taken(Jslt, Jmp64, 0x0000_0000_8000_0000, 0));
        assert!(taken(Jset, Jmp64, 1 << 40, 1 << 40));
        assert!(!taken(Jset, Jmp32, 1 << 40, 1 << 40));
        let d = Domain::of(Jsle, Jmp32);
        assert_eq!((d.min(), d.max()), (i32::MIN.into(), i32::MAX.into()));
        assert_eq!(d.value(0xffff_ffff), -1);
        assert_eq!(d.bits_of(-1), 0xffff_ffff);
    }

    fn case<'a>(cases: &'a [Case], name: &str) -> &'a Case {
        cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"))
    }

    /// The middle of a program: from the input byte to the load, as the disassembler writes it.
    fn core(c: &Case) -> String {
        let text = crate::bpf::insn::to_asm(&c.progs[0].insns);
        let lines: Vec<&str> = text.lines().collect();
        let from = lines
            .iter()
            .position(|l| l.starts_with("ldxb r1, [r6"))
            .unwrap();
        lines[from..].join("\n")
    }

    /// The end of the JLE-0 programs, from the jump: index the last byte, store it, pass.
    const JLE_0_TAIL: &str = "jle r1, 0, +1\n\
         ja +8\n\
         lddw r3, 0xffffffffffffff01\n\
         sub r1, r3\n\
         add r7, r1\n\
         ldxb r1, [r7+0]\n\
         stxdw [r8+0], r1\n\
         mov r0, 2\n\
         exit\n\
         mov r0, 1\n\
         exit";

    #[test]
    fn generated_programs_disassemble_as_written() {
        let (_, cases) = table();
        // JLE 0 taken: r1 in 0..=255 before, 0 after; index r1 + 255, the last byte.
        let c = case(&cases, "range/jle/jmp64/imm/taken/0/bound");
        assert_eq!(
            core(c),
            "ldxb r1, [r6+0]\n\
             lddw r3, 0x0\n\
             add r1, r3\n"
                .to_owned()
                + JLE_0_TAIL
        );
        assert_eq!(c.expect, Expectation::R0(u64::from(pattern(255))));
        assert_eq!(c.maps[1].init[0].1[0], 0, "the run's input is the bound");
        // JSLE32 against a register holding -1 (upper half dirty), fall-through: r1 >= 0 on
        // a window of -127..=128; one byte before the first is rejected.
        let c = case(&cases, "range/jsle/jmp32/reg/fall-through/-1/bound-1");
        assert_eq!(
            core(c),
            "ldxb r1, [r6+0]\n\
             add32 r1, -127\n\
             lddw r2, 0x5a5a5a5affffffff\n\
             jsle32 r1, r2, +6\n\
             sub32 r1, 0\n\
             add r7, r1\n\
             ldxb r1, [r7-1]\n\
             stxdw [r8+0], r1\n\
             mov r0, 2\n\
             exit\n\
             mov r0, 1\n\
             exit"
        );
        assert_eq!(
            c.expect,
            Expectation::Verdict {
                accept: false,
                log: vec![REJECTED.into()]
            }
        );
        assert!(!c.run);
        // The accepted JLE32 program with r1's upper half from the input map: the bound is
        // the low half's only, and the index is 64-bit, so it is rejected.
        let c = case(&cases, "range/jle/jmp32/imm/taken/0/upper-dirty");
        assert_eq!(
            core(c),
            "ldxb r1, [r6+0]\n\
             add32 r1, 0\n\
             ldxdw r4, [r6+0]\n\
             lsh r4, 32\n\
             or r1, r4\n"
                .to_owned()
                + &JLE_0_TAIL.replacen("jle", "jle32", 1)
        );
        assert!(matches!(&c.expect, Expectation::Verdict { accept: false, log } if log.len() == 2));
    }

    /// For every accepted case, the run's input reaches the access, and the byte read is the
    /// one the index names; every index the bounded side allows is inside the value.
    #[test]
    fn accepted_cases_stay_inside_and_rejected_ones_step_out_by_one() {
        let dir = Path::new("t");
        let (_, cases) = table();
        assert!(!cases.is_empty());
        // Recompute from the shapes: each variant's index range.
        let text =
            "family: range\nrows:\n  - jump: jsgt\n    constants: [s64_min, -1, 0, s32_min]\n";
        let cases_small = parse(dir, text).unwrap();
        assert!(!cases_small.is_empty());
        for jump in Jump::ALL {
            for width in Width::ALL {
                for side in Side::ALL {
                    for value in [
                        0i128,
                        -1,
                        1,
                        64,
                        i32::MIN.into(),
                        u32::MAX.into(),
                        i64::MIN.into(),
                        -64,
                    ] {
                        let c = Constant {
                            name: value.to_string(),
                            value,
                        };
                        let Some(shape) = shape(jump, width, Operand::Reg, side, &c, "t").unwrap()
                        else {
                            continue;
                        };
                        for v in variants(&shape).into_iter().filter(|v| !v.dirty) {
                            let first = shape.lo - v.minus + i128::from(v.off);
                            let last = shape.hi - v.minus + i128::from(v.off);
                            let inside = 0 <= first && last < VALUE_SIZE;
                            assert_eq!(inside, v.accept, "{jump:?} {width:?} {side:?} {value}");
                            if !v.accept {
                                assert!(
                                    first == -1 || last == VALUE_SIZE,
                                    "{jump:?} {width:?} {side:?} {value}"
                                );
                            }
                            let raw = v.at - shape.start;
                            assert!((0..WINDOW).contains(&raw));
                            assert_eq!(
                                taken(jump, width, shape.domain.bits_of(v.at), shape.k_bits),
                                side == Side::Taken
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn table_mistakes_name_their_line() {
        let mistakes = [
            (
                "family: range\nrows:\n  - jump: jle\n    constants: [0]\n  - jump: jlte\n    constants: [0]\n",
                "m.yaml:5: unknown jump `jlte`: use one of jeq, jne, jgt, jge, jlt, jle, jsgt, jsge, jslt, jsle, jset",
            ),
            (
                "family: range\nrows:\n  - jump: jle\n    sides: [taken]\n    constants: [u64_max]\n",
                "m.yaml:3: this row of `jle` gives no case",
            ),
            (
                "family: range\nrows:\n  - jump: jle\n    constants: [big]\n",
                "m.yaml:3: constant `big` is neither a number nor one of s32_min",
            ),
            (
                "# a table\nfamily: aligned\nrows: []\n",
                "m.yaml:2: unknown family `aligned`: a table is one of range, alu, align",
            ),
            (
                "family: range\nrows:\n  - jump: jle\n    constant: [0]\n",
                "m.yaml:4:5: rows[0]: unknown field `constant`",
            ),
            (
                "family: alu\nrows:\n  - op: add\n  - op: neg\n",
                "m.yaml:3: `add` takes a second operand: give its `constants`",
            ),
            (
                "family: alu\nrows:\n  - op: neg\n    constants: [1]\n",
                "m.yaml:3: `neg` takes no operand: drop its `constants`",
            ),
            (
                "family: alu\nrows:\n  - op: lsh\n    from: -1\n    constants: [40]\n",
                "m.yaml:3: this row of `lsh` gives no case",
            ),
            (
                "family: align\nrows:\n  - pointer: map\n    masks: [0x48]\n",
                "m.yaml:3: mask `72` is not a number from 1 to 0x40",
            ),
            (
                "family: align\nrows:\n  - pointer: heap\n",
                "m.yaml:3: unknown pointer `heap`: use one of packet, map, stack",
            ),
        ];
        for (text, said) in mistakes {
            let err = parse(Path::new("m.yaml"), text).unwrap_err().to_string();
            assert!(err.starts_with(said), "{text}: {err}");
        }
    }
}
