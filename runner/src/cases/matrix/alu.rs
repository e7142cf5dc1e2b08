//! The `alu` family: range propagation through ALU instructions and a spill to the stack.
//!
//! A row names an operation, the window of 256 values the register holds before it (`from`,
//! default 0: a byte loaded from a map, plus `from`), and the constants of a binary operation.
//! For each width (alu64; alu32, whose result is zero-extended: `mov` is alu32 only, on a
//! register with its upper half set) and operand (immediate, or a register holding the
//! constant, in alu32 with a dirty upper half that must be ignored), the generator runs the operation on all 256 values. The result, minus its
//! least value, indexes a map value exactly as large as the results' span: the program reading
//! there must be accepted (and reads, run with the input that gives the greatest result, the
//! last byte), the same load one byte before or after must be rejected.
//!
//! A combination whose results spread over more than [`MAX_SPAN`] bytes (a wrap, a shift past
//! the width) has no case: no map value holds it.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use super::{
    constant, lookups, maps, pattern, pick, row_lines, Constant, Generated, Operand, Table,
    Verdict, DIRTY_UPPER, FRAME, RAN, REJECTED, WINDOW,
};
use crate::cases::{from_yaml, Case, CaseError, Lacking};

/// The largest map value a case indexes.
pub const MAX_SPAN: i128 = 4096;

/// What a kernel that does not track the result rejects the accepted program with: the index
/// is unbounded below (Linux 6.1 and 6.12 make the result of a BPF_NEG unknown).
const UNTRACKED: &str = "unbounded min value";

/// What the unprivileged verifier says of an index it knows nothing of, when the pointer
/// arithmetic is not refused outright (UNTRACKED).
const UNPRIVILEGED_UNKNOWN: &str = "pointer arithmetic of map value goes out of range";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Lsh,
    Rsh,
    Arsh,
    Neg,
    /// `mov32 r1, r1`: zero extension alone.
    Mov,
    /// A store of the register to the stack and a load back, of the width's size.
    Spill,
}

impl Op {
    pub const ALL: [Op; 12] = [
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::And,
        Op::Or,
        Op::Xor,
        Op::Lsh,
        Op::Rsh,
        Op::Arsh,
        Op::Neg,
        Op::Mov,
        Op::Spill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::And => "and",
            Op::Or => "or",
            Op::Xor => "xor",
            Op::Lsh => "lsh",
            Op::Rsh => "rsh",
            Op::Arsh => "arsh",
            Op::Neg => "neg",
            Op::Mov => "mov",
            Op::Spill => "spill",
        }
    }

    /// Takes a second operand (and so the table's constants).
    fn binary(self) -> bool {
        !matches!(self, Op::Neg | Op::Mov | Op::Spill)
    }

    fn shift(self) -> bool {
        matches!(self, Op::Lsh | Op::Rsh | Op::Arsh)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Width {
    Alu64,
    Alu32,
}

impl Width {
    pub const ALL: [Width; 2] = [Width::Alu64, Width::Alu32];

    pub fn name(self) -> &'static str {
        match self {
            Width::Alu64 => "alu64",
            Width::Alu32 => "alu32",
        }
    }

    fn bits(self) -> u32 {
        match self {
            Width::Alu64 => 64,
            Width::Alu32 => 32,
        }
    }
}

/// `op` on `x` with `k`, as BPF computes it: alu32 on the low halves, the result
/// zero-extended. `None` for a shift by the width or more, which BPF leaves undefined.
pub fn apply(op: Op, width: Width, x: u64, k: u64) -> Option<u64> {
    let bits = width.bits();
    if op.shift() && k >= u64::from(bits) {
        return None;
    }
    // alu32 is the 64-bit operation on the low halves (sign-extended for arsh, whose sign
    // bit is bit 31 there), truncated: the result is zero-extended.
    let (x, k) = match width {
        Width::Alu64 => (x, k),
        Width::Alu32 if op == Op::Arsh => (x as u32 as i32 as i64 as u64, k as u32 as u64),
        Width::Alu32 => (x as u32 as u64, k as u32 as u64),
    };
    let r = match op {
        Op::Add => x.wrapping_add(k),
        Op::Sub => x.wrapping_sub(k),
        Op::Mul => x.wrapping_mul(k),
        Op::And => x & k,
        Op::Or => x | k,
        Op::Xor => x ^ k,
        Op::Lsh => x << k,
        Op::Rsh => x >> k,
        Op::Arsh => ((x as i64) >> k) as u64,
        Op::Neg => (x as i64).wrapping_neg() as u64,
        Op::Mov | Op::Spill => x,
    };
    let r = match width {
        Width::Alu64 => r,
        Width::Alu32 => r as u32 as u64,
    };
    Some(r)
}

/// The results of one combination over the window, as the index sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Results {
    /// The least and greatest result, read as signed 64-bit numbers or as unsigned ones,
    /// whichever spans less.
    pub lo: i128,
    pub hi: i128,
    /// The window's offset (the input byte) that gives `hi`.
    pub at_hi: i128,
}

/// The results of `op` with `k` over the window from `from`, when they fit a map value.
pub fn results(op: Op, width: Width, from: i128, k: u64) -> Option<Results> {
    let mut values = Vec::with_capacity(WINDOW as usize);
    for x in 0..WINDOW {
        let input = (x + from).rem_euclid(1i128 << 64) as u64;
        values.push(apply(op, width, input, k)?);
    }
    let signed: Vec<i128> = values.iter().map(|&v| i128::from(v as i64)).collect();
    let unsigned: Vec<i128> = values.iter().map(|&v| i128::from(v)).collect();
    let span = |vs: &[i128]| {
        let (lo, hi) = (vs.iter().min()?, vs.iter().max()?);
        Some((*lo, *hi))
    };
    let (s, u) = (span(&signed)?, span(&unsigned)?);
    let (read, (lo, hi)) = if s.1 - s.0 <= u.1 - u.0 {
        (signed, s)
    } else {
        (unsigned, u)
    };
    if hi - lo + 1 > MAX_SPAN {
        return None;
    }
    let at_hi = read.iter().position(|&v| v == hi)? as i128;
    Some(Results { lo, hi, at_hi })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    op: String,
    from: Option<serde_yaml::Value>,
    widths: Option<Vec<String>>,
    operands: Option<Vec<String>>,
    #[serde(default)]
    constants: Vec<serde_yaml::Value>,
}

/// An `alu` table's cases.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Case>, CaseError> {
    let table: Table<Row> = from_yaml(path, text)?;
    let lines = row_lines(text, "op");
    let mut cases = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let at = format!("{}:{}", path.display(), lines.get(i).copied().unwrap_or(1));
        let op = pick(&Op::ALL, Op::name, &Some(vec![row.op.clone()]), "op", &at)?[0];
        let widths = pick(&Width::ALL, Width::name, &row.widths, "width", &at)?;
        let operands = pick(&Operand::ALL, Operand::name, &row.operands, "operand", &at)?;
        let from = match &row.from {
            Some(v) => constant(v, &at)?.value,
            None => 0,
        };
        let constants: Vec<Constant> = row
            .constants
            .iter()
            .map(|c| constant(c, &at))
            .collect::<Result<_, _>>()?;
        match (op.binary(), constants.is_empty()) {
            (true, true) => {
                return Err(CaseError::invalid(
                    &at,
                    format!(
                        "`{}` takes a second operand: give its `constants`",
                        op.name()
                    ),
                ))
            }
            (false, false) => {
                return Err(CaseError::invalid(
                    &at,
                    format!("`{}` takes no operand: drop its `constants`", op.name()),
                ))
            }
            _ => {}
        }
        let before = cases.len();
        for &width in &widths {
            // `mov32 r1, r1` is the zero extension; a 64-bit move of a register to itself
            // changes nothing.
            if op == Op::Mov && width == Width::Alu64 {
                continue;
            }
            if op.binary() {
                for &operand in &operands {
                    for c in &constants {
                        if let Some(g) = generate(op, width, Some((operand, c)), from) {
                            for g in g {
                                cases.extend(g.cases(path, &at)?);
                            }
                        }
                    }
                }
            } else if let Some(g) = generate(op, width, None, from) {
                for g in g {
                    cases.extend(g.cases(path, &at)?);
                }
            }
        }
        if cases.len() == before {
            return Err(CaseError::invalid(
                &at,
                format!(
                    "this row of `{}` gives no case: in every width and with every constant, \
                     its results spread over more than {MAX_SPAN} bytes; change `from` or the \
                     constants (see suites/README.md)",
                    op.name()
                ),
            ));
        }
    }
    Ok(cases)
}

/// The constant's bits as the operand carries it, when it fits there.
fn operand_bits(c: &Constant, width: Width, operand: Operand) -> Option<u64> {
    let bits = c.bits(match width {
        Width::Alu64 => super::Width::Jmp64,
        Width::Alu32 => super::Width::Jmp32,
    })?;
    // An immediate is 32 bits, sign-extended by a 64-bit operation.
    let fits_imm = match width {
        Width::Alu64 => bits == bits as u32 as i32 as i64 as u64,
        Width::Alu32 => true,
    };
    (operand == Operand::Reg || fits_imm).then_some(bits)
}

/// The accepted program and the two one byte out of it, or `None` when the combination has
/// no case.
fn generate(
    op: Op,
    width: Width,
    operand: Option<(Operand, &Constant)>,
    from: i128,
) -> Option<Vec<Generated>> {
    let k = match operand {
        Some((o, c)) => operand_bits(c, width, o)?,
        None => 0,
    };
    let r = results(op, width, from, k)?;
    let span = r.hi - r.lo + 1;
    let (head, what) = names(op, width, operand);
    let text = |off: i16| program(op, width, operand.map(|(o, _)| o), k, from, r.lo, off);
    let maps = maps(r.at_hi, span);
    // A kernel that does not track a BPF_NEG rejects all three for that.
    let rejected = Verdict::Rejected(if op == Op::Neg {
        vec![REJECTED.to_owned(), UNTRACKED.to_owned()]
    } else {
        vec![REJECTED.to_owned()]
    });
    // An unprivileged spill is not tracked (check_stack_write_fixed_off asks for
    // bpf_capable): the filled register is unknown, and the pointer arithmetic refused.
    let unprivileged_accepts = op != Op::Spill;
    let untracked = Verdict::Rejected(vec![UNTRACKED.to_owned(), UNPRIVILEGED_UNKNOWN.to_owned()]);
    let mut out = Vec::new();
    for (suffix, off) in [("bound", 0i16), ("bound+1", 1), ("bound-1", -1)] {
        let accept = off == 0;
        let guards = guards(&what, from, &r, off);
        let verdict = if accept {
            Verdict::Reads(u64::from(pattern(r.hi - r.lo)))
        } else {
            rejected.clone()
        };
        let unprivileged = match (accept, unprivileged_accepts) {
            (true, true) => Verdict::Accepted,
            (false, true) => rejected.clone(),
            (_, false) => untracked.clone(),
        };
        out.push(Generated {
            name: format!("{head}/{suffix}"),
            guards,
            text: text(off),
            maps: maps.clone(),
            data: vec![0; FRAME],
            prog_flags: 0,
            verdict,
            unprivileged: Some(unprivileged),
            lacking: (op == Op::Neg).then(|| Lacking {
                log: UNTRACKED.to_owned(),
                reason: "this kernel does not track the range of a BPF_NEG result (6.1 and \
                         6.12 do not, 7.2 does)"
                    .to_owned(),
            }),
        });
    }
    Some(out)
}

/// A combination's case name without its suffix (`alu/add/alu32/reg/1`) and the operation
/// in words for its guards (`add32 by a register holding 1`).
fn names(op: Op, width: Width, operand: Option<(Operand, &Constant)>) -> (String, String) {
    let head = match operand {
        Some((o, c)) => format!("alu/{}/{}/{}/{}", op.name(), width.name(), o.name(), c.name),
        None => format!("alu/{}/{}", op.name(), width.name()),
    };
    let what = match operand {
        Some((o, c)) => format!(
            "{}{} by {} {}",
            op.name(),
            if width == Width::Alu32 { "32" } else { "" },
            match o {
                Operand::Imm => "the immediate",
                Operand::Reg => "a register holding",
            },
            c.name
        ),
        None => format!(
            "{}{}",
            op.name(),
            if width == Width::Alu32 { "32" } else { "" }
        ),
    };
    (head, what)
}

/// What the case whose load is `off` bytes from the value's start guards, `what` being the
/// operation in words and `r` its results over the window from `from`.
fn guards(what: &str, from: i128, r: &Results, off: i16) -> String {
    let span = r.hi - r.lo + 1;
    format!(
        "{what} of r1 in {from}..={} gives {}..={}: a 1-byte load at r1 - {} {} of \
         a {span}-byte map value is {}",
        from + WINDOW - 1,
        r.lo,
        r.hi,
        r.lo,
        match off {
            0 => "(every byte of it)".to_owned(),
            1 => "+ 1 (one past its end)".to_owned(),
            _ => "- 1 (one before its start)".to_owned(),
        },
        if off == 0 {
            "accepted and, run at the greatest result, reads the last byte"
        } else {
            "rejected"
        },
    )
}

/// r1 = input byte (+ an unknown upper half, for alu32) + `from`; the operation; r1 - `lo`
/// indexes the value, the load `off` bytes from there.
fn program(
    op: Op,
    width: Width,
    operand: Option<Operand>,
    k: u64,
    from: i128,
    lo: i128,
    off: i16,
) -> String {
    let mut t = lookups();
    t.push_str("ldxb %r1, [%r6+0]\n");
    if from != 0 {
        let _ = writeln!(t, "lddw %r3, {:#x}\nadd %r1, %r3", bits64(from));
    }
    let suffix = if width == Width::Alu32 { "32" } else { "" };
    match (op, operand) {
        (Op::Neg, _) => {
            let _ = writeln!(t, "neg{suffix} %r1");
        }
        (Op::Mov, _) => t.push_str("mov32 %r1, %r1\n"),
        (Op::Spill, _) => {
            let size = if width == Width::Alu32 { "w" } else { "dw" };
            let _ = writeln!(t, "stx{size} [%r10-16], %r1\nldx{size} %r1, [%r10-16]");
        }
        (_, Some(Operand::Reg)) => {
            // alu32 must ignore the register's upper half; but a shift count is known only
            // when all of its register is (adjust_scalar_min_max_vals: `umax_val >=
            // insn_bitness` makes the result unknown), a fair loss, so it stays clean.
            let k = if width == Width::Alu32 && !op.shift() {
                DIRTY_UPPER | k
            } else {
                k
            };
            let _ = writeln!(t, "lddw %r2, {k:#x}\n{}{suffix} %r1, %r2", op.name());
        }
        (_, _) => {
            let _ = writeln!(t, "{}{suffix} %r1, {}", op.name(), k as u32 as i32);
        }
    }
    let _ = write!(
        t,
        "lddw %r3, {:#x}\nsub %r1, %r3\nadd %r7, %r1\nldxb %r1, [%r7{off:+}]\n\
         stxdw [%r8+0], %r1\nmov %r0, {RAN}\nexit\nout:\nmov %r0, 1\nexit\n",
        bits64(lo)
    );
    t
}

fn bits64(v: i128) -> u64 {
    v.rem_euclid(1i128 << 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::Expectation;
    use std::collections::BTreeSet;

    fn table() -> Vec<Case> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/verifier/matrix/alu.yaml");
        parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// Every operation of the issue is in the table, in both widths (`mov` in alu32 only) and,
    /// for the binary ones, with both operands; each as an accepted program and the two
    /// programs one byte out.
    #[test]
    fn every_operation_width_and_operand_is_present() {
        let cases = table();
        let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        for op in Op::ALL {
            for width in Width::ALL {
                if op == Op::Mov && width == Width::Alu64 {
                    continue;
                }
                let operands: Vec<String> = if op.binary() {
                    Operand::ALL
                        .iter()
                        .map(|o| format!("/{}/", o.name()))
                        .collect()
                } else {
                    vec![String::new()]
                };
                for o in operands {
                    let head = format!("alu/{}/{}{o}", op.name(), width.name());
                    for suffix in ["bound", "bound+1", "bound-1"] {
                        assert!(
                            names.iter().any(|n| n.starts_with(&head) && n.ends_with(&format!("/{suffix}"))),
                            "no {head}…/{suffix}"
                        );
                    }
                }
            }
        }
        for c in cases.iter().filter(|c| !c.unprivileged) {
            let accept = c.name.ends_with("/bound");
            assert_eq!(matches!(c.expect, Expectation::R0(_)), accept, "{}", c.name);
        }
    }

    /// The accepted program's run reads the value's last byte; the map value is as large as
    /// the results' span.
    #[test]
    fn the_run_reads_the_last_byte_of_a_value_as_large_as_the_span() {
        let cases = table();
        let c = cases
            .iter()
            .find(|c| c.name == "alu/lsh/alu64/imm/4/bound")
            .unwrap();
        assert_eq!(c.maps[2].value_size, 4081);
        assert_eq!(c.maps[1].init[0].1[0], 255);
        assert_eq!(c.expect, Expectation::R0(u64::from(pattern(4080))));
        let c = cases
            .iter()
            .find(|c| c.name == "alu/arsh/alu32/imm/4/bound")
            .unwrap();
        assert_eq!(c.maps[2].value_size, 16);
    }

    #[test]
    fn semantics_in_each_width() {
        assert_eq!(apply(Op::Neg, Width::Alu64, 5, 0), Some(-5i64 as u64));
        assert_eq!(apply(Op::Neg, Width::Alu32, 5, 0), Some(0xffff_fffb));
        assert_eq!(
            apply(Op::Arsh, Width::Alu32, 0xffff_ff00, 4),
            Some(0xffff_fff0)
        );
        assert_eq!(
            apply(Op::Arsh, Width::Alu64, 0xffff_ff00, 4),
            Some(0x0fff_fff0)
        );
        assert_eq!(apply(Op::Lsh, Width::Alu32, 1, 32), None);
        assert_eq!(
            apply(Op::Mov, Width::Alu32, 0x5a5a_0000_0000_0007, 0),
            Some(7)
        );
        assert_eq!(apply(Op::Add, Width::Alu32, 0xffff_ffff, 1), Some(0));
    }

    #[test]
    fn results_read_signed_or_unsigned_whichever_is_narrower() {
        // neg of 0..=255: -255..=0, signed.
        let r = results(Op::Neg, Width::Alu64, 0, 0).unwrap();
        assert_eq!((r.lo, r.hi, r.at_hi), (-255, 0, 0));
        // arsh32 of -256..=-1 by 4: 0xfffffff0..=0xffffffff, zero-extended: unsigned.
        let r = results(Op::Arsh, Width::Alu32, -256, 4).unwrap();
        assert_eq!((r.lo, r.hi), (0xffff_fff0, 0xffff_ffff));
        // lsh by 4: 0..=4080.
        let r = results(Op::Lsh, Width::Alu64, 0, 4).unwrap();
        assert_eq!((r.lo, r.hi, r.at_hi), (0, 4080, 255));
        // sub32 1 from 0..=255 wraps: no map value holds 0xffffffff and 0.
        assert_eq!(results(Op::Sub, Width::Alu32, 0, 1), None);
        assert_eq!(results(Op::Lsh, Width::Alu64, 0, 8), None);
    }
}
