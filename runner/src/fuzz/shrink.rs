//! Smaller versions of a program, for minimising a finding: runs of instructions removed (the
//! jumps over them shortened), register copies dropped with their register renamed, and
//! constants moved toward zero. Which candidates still show the
//! finding is for the caller to find out (in a guest); this only proposes them.

use super::check::target;
use crate::bpf::insn::{
    Insn, ALU, ALU64, CALL, DW, END, EXIT, IMM, JA, JMP, JMP32, LD, LDX, MOV, STX, X,
};

/// The operation bits of an opcode.
const OP: u8 = 0xf0;
/// `lddw`: the only two-slot instruction.
const LDDW: u8 = LD | DW | IMM;

/// `prog` without slots `from..to` (which must not split a `lddw`), every jump over or into
/// the hole retargeted to the slot after it. `None` when a jump would leave the program or no
/// longer fit its field.
pub fn without(prog: &[Insn], from: usize, to: usize) -> Option<Vec<Insn>> {
    if from >= to || to > prog.len() {
        return None;
    }
    let removed = to - from;
    // The new index of old slot `i` (a slot in the hole maps to the one after it).
    let moved = |i: i64| -> i64 {
        if i < from as i64 {
            i
        } else if i < to as i64 {
            from as i64
        } else {
            i - removed as i64
        }
    };
    let mut out = Vec::with_capacity(prog.len() - removed);
    for (at, insn) in prog.iter().enumerate() {
        if (from..to).contains(&at) {
            continue;
        }
        let mut insn = *insn;
        if let Some(old) = target(at, insn) {
            if old < 0 || old > prog.len() as i64 {
                return None;
            }
            let new = moved(old) - moved(at as i64) - 1;
            // `gotol` keeps its distance in `imm`.
            if insn.code == JMP32 | JA {
                insn.imm = i32::try_from(new).ok()?;
            } else {
                insn.off = i16::try_from(new).ok()?;
            }
        }
        out.push(insn);
    }
    Some(out)
}

/// The slots where an instruction starts (a `lddw` takes two).
fn starts(prog: &[Insn]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < prog.len() {
        out.push(at);
        at += if prog[at].code == LDDW { 2 } else { 1 };
    }
    out
}

/// One candidate: the program, and how it differs from the original.
pub struct Candidate {
    pub insns: Vec<Insn>,
    pub change: Change,
}

/// How a candidate differs from the program it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Slots `from..to` are gone.
    Removed(usize, usize),
    /// The instruction at a slot has a smaller constant.
    Replaced(usize, Insn),
    /// A register copy is gone, its register renamed after it: not combined with others.
    Renamed,
}

/// Every candidate smaller than `prog`, largest cuts first: runs of 1/2, 1/4, ... down to one
/// instruction removed (never the last, its `exit`), then each immediate halved and zeroed.
pub fn candidates(prog: &[Insn]) -> Vec<Candidate> {
    let starts = starts(prog);
    // The last instruction is the exit that ends the program: keep it.
    let removable = starts.len().saturating_sub(1);
    let mut out = Vec::new();
    let mut chunk = removable.div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < removable {
            let end = (i + chunk).min(removable);
            let (from, to) = (starts[i], starts.get(end).copied().unwrap_or(prog.len()));
            if let Some(insns) = without(prog, from, to) {
                out.push(Candidate {
                    insns,
                    change: Change::Removed(from, to),
                });
            }
            i += chunk;
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    for &at in &starts {
        if let Some(insns) = without_copy(prog, at) {
            out.push(Candidate {
                insns,
                change: Change::Renamed,
            });
        }
    }
    for &at in &starts {
        for smaller in smaller_constants(&prog[at]) {
            let mut insns = prog.to_vec();
            insns[at] = smaller;
            out.push(Candidate {
                insns,
                change: Change::Replaced(at, smaller),
            });
        }
    }
    out
}

/// `prog` with every one of `changes`, the changes that each kept a finding, together: the
/// smaller constants (the first for each slot), then the removals that do not overlap a larger
/// one before them.
pub fn with_all(prog: &[Insn], changes: &[Change]) -> Option<Vec<Insn>> {
    let mut out = prog.to_vec();
    let mut replaced = Vec::new();
    for change in changes {
        if let Change::Replaced(at, insn) = *change {
            if !replaced.contains(&at) && at < out.len() {
                out[at] = insn;
                replaced.push(at);
            }
        }
    }
    let ranges: Vec<(usize, usize)> = changes
        .iter()
        .filter_map(|change| match *change {
            Change::Removed(from, to) => Some((from, to)),
            Change::Replaced(..) | Change::Renamed => None,
        })
        .collect();
    without_all(&out, &ranges)
}

/// `prog` without every one of `ranges` that does not overlap a larger one before it.
fn without_all(prog: &[Insn], ranges: &[(usize, usize)]) -> Option<Vec<Insn>> {
    let mut ranges = ranges.to_vec();
    ranges.sort_by_key(|&(from, to)| std::cmp::Reverse(to - from));
    let mut kept: Vec<(usize, usize)> = Vec::new();
    for (from, to) in ranges {
        if kept.iter().all(|&(f, t)| to <= f || t <= from) {
            kept.push((from, to));
        }
    }
    // From the last, so that the earlier slots keep their numbers.
    kept.sort_unstable();
    let mut out = prog.to_vec();
    for &(from, to) in kept.iter().rev() {
        out = without(&out, from, to)?;
    }
    Some(out)
}

/// `prog` without the copy `mov rA, rB` at `at`, every later use of rA made a use of rB: the
/// copy that only renamed a value goes (removing it alone would leave rA unset).
fn without_copy(prog: &[Insn], at: usize) -> Option<Vec<Insn>> {
    let copy = prog[at];
    let (a, b) = (copy.dst, copy.src);
    // r0 is the result and r10 the frame pointer: neither is renamed.
    if copy.code != ALU64 | MOV | X || copy.off != 0 || a == b || a == 0 || b == 10 {
        return None;
    }
    let mut out = without(prog, at, at + 1)?;
    for insn in &mut out[at..] {
        if insn.src == a && reads_src_register(insn) {
            insn.src = b;
        }
        // (A `lddw`'s second slot and `call`, `exit` and `ja` have dst 0, never renamed.)
        if insn.dst == a {
            insn.dst = b;
        }
    }
    Some(out)
}

/// Whether `insn`'s `src` field names a register (not a pseudo source or an unused field).
fn reads_src_register(insn: &Insn) -> bool {
    let class = insn.class();
    match class {
        ALU | ALU64 => insn.code & X != 0 && insn.code & OP != END,
        JMP | JMP32 => insn.code & X != 0 && !matches!(insn.code & OP, CALL | EXIT | JA),
        LDX | STX => true,
        _ => false,
    }
}

/// The instruction with its immediate nearer zero: zero, then half, for ALU instructions and
/// the low half of a `lddw` (jumps keep theirs: it is their distance for `gotol`).
fn smaller_constants(insn: &Insn) -> Vec<Insn> {
    let class = insn.class();
    let shrinks = matches!(class, ALU | ALU64) || insn.code == LDDW;
    if !shrinks || insn.imm == 0 {
        return Vec::new();
    }
    let mut out = vec![Insn { imm: 0, ..*insn }];
    if insn.imm / 2 != 0 {
        out.push(Insn {
            imm: insn.imm / 2,
            ..*insn
        });
    }
    out
}

/// A program's size for choosing among candidates: its instructions, then how far its
/// constants are from zero.
pub fn size(prog: &[Insn]) -> (usize, u64) {
    let constants = prog.iter().map(|i| u64::from(i.imm.unsigned_abs())).sum();
    (prog.len(), constants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::asm::assemble;
    use crate::bpf::insn::to_asm;

    fn prog(text: &str) -> Vec<Insn> {
        assemble(text).unwrap().encode().unwrap()
    }

    #[test]
    fn removing_instructions_keeps_the_jumps_on_their_targets() {
        let p =
            prog("mov %r0, 1\njeq %r0, 1, done\nmov %r0, 2\nadd %r0, 3\ndone:\nadd %r0, 4\nexit\n");
        // Without `mov %r0, 2`: the jump still lands on `add %r0, 4`.
        let q = without(&p, 2, 3).unwrap();
        assert_eq!(
            to_asm(&q),
            "mov r0, 1\njeq r0, 1, +1\nadd r0, 3\nadd r0, 4\nexit\n"
        );
        // Without the target itself: the jump lands on what follows.
        let q = without(&p, 4, 5).unwrap();
        assert_eq!(
            to_asm(&q),
            "mov r0, 1\njeq r0, 1, +2\nmov r0, 2\nadd r0, 3\nexit\n"
        );
        // A backward jump over the hole.
        let p = prog("mov %r0, 0\nloop:\nadd %r0, 1\nmov %r1, 0\njlt %r0, 3, loop\nexit\n");
        let q = without(&p, 2, 3).unwrap();
        assert_eq!(to_asm(&q), "mov r0, 0\nadd r0, 1\njlt r0, 3, -2\nexit\n");
    }

    #[test]
    fn candidates_never_split_a_lddw_nor_drop_the_exit() {
        let p = prog("lddw %r0, 0x100000001\nmov %r1, 7\nadd %r0, %r1\nexit\n");
        let all: Vec<Vec<Insn>> = candidates(&p).into_iter().map(|c| c.insns).collect();
        assert!(!all.is_empty());
        for c in &all {
            assert_eq!(c.last().map(|i| i.code), p.last().map(|i| i.code));
            // Every candidate disassembles: no half of a lddw is left.
            let text = to_asm(c);
            assert_eq!(prog(&text), *c, "{text}");
        }
        // The smallest removal leaves `mov`, `add` and `exit`; constants shrink too.
        assert!(all.iter().any(|c| c.len() == 3));
        assert!(all.iter().any(|c| c.len() == p.len() && c[2].imm == 0));
    }

    #[test]
    fn changes_that_each_kept_a_finding_are_tried_together() {
        let p = prog("mov %r0, 1\nmov %r1, 2\nmov %r2, 3\nmov %r3, 4\nexit\n");
        // 1..2 and 3..4 do not overlap; 0..2 is larger and overlaps 1..2, so it wins; the
        // smaller constant of slot 2 comes before the removals shift it.
        let smaller = Insn { imm: 1, ..p[2] };
        let changes = [
            Change::Removed(1, 2),
            Change::Removed(3, 4),
            Change::Replaced(2, smaller),
            Change::Removed(0, 2),
        ];
        let q = with_all(&p, &changes).unwrap();
        assert_eq!(to_asm(&q), "mov r2, 1\nexit\n");
    }

    #[test]
    fn a_copy_goes_with_its_register_renamed() {
        let p = prog("mov %r1, 5\nmov %r6, %r1\nadd %r6, 1\nmov %r0, %r6\nexit\n");
        let renamed: Vec<String> = candidates(&p)
            .into_iter()
            .filter(|c| c.change == Change::Renamed)
            .map(|c| to_asm(&c.insns))
            .collect();
        assert_eq!(renamed, ["mov r1, 5\nadd r1, 1\nmov r0, r1\nexit\n"]);
    }

    #[test]
    fn size_orders_by_length_then_constants() {
        let a = prog("mov %r0, 8\nexit\n");
        let b = prog("mov %r0, 1\nexit\n");
        let c = prog("mov %r0, 1\nmov %r0, 1\nexit\n");
        assert!(size(&b) < size(&a));
        assert!(size(&a) < size(&c));
    }
}
